//! [`ModelConfig::validate`]: the ranges and invariants every config must meet.

use super::limits;
use super::{BsFlavour, ConfigError, ModelConfig, Pipeline, PosEnc, fmt_number};

impl ModelConfig {
    /// Checks every invariant the network relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        use limits::*;
        let in_range = |name: &str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(ConfigError::Invalid(format!(
                    "{name} must be in {lo}..={hi}, got {v}"
                )))
            }
        };
        in_range("n_fft", self.n_fft, 4, MAX_N_FFT)?;
        in_range("number of sources", self.sources.len(), 1, MAX_SOURCES)?;
        in_range("n_layers", self.n_layers, 0, MAX_LAYERS)?;
        in_range("emb_dim", self.emb_dim, 1, MAX_DIM)?;
        in_range("attention_dim", self.attention_dim, 1, MAX_DIM)?;
        for &h in &self.ffn_hidden_dim {
            in_range("ffn_hidden_dim", h, 1, MAX_DIM)?;
        }
        in_range("conv1d_kernel", self.conv1d_kernel, 1, 64)?;
        // A hop below n_fft/16 multiplies the frames (and the cost) without adding information.
        if self.hop_length < (self.n_fft / 16).max(1) {
            return bad(format!(
                "hop_length must be at least n_fft/16 = {} for n_fft {}, got {}",
                (self.n_fft / 16).max(1),
                self.n_fft,
                self.hop_length
            ));
        }
        if self.sample_rate > MAX_SAMPLE_RATE {
            return bad(format!(
                "sample_rate must be at most {MAX_SAMPLE_RATE} Hz, got {}",
                self.sample_rate
            ));
        }
        if !(self.eps.is_finite() && self.eps > 0.0 && self.eps <= 1.0) {
            return bad(format!(
                "eps must be in (0, 1], got {}",
                fmt_number(self.eps)
            ));
        }
        if let Pipeline::Css(css) = self.pipeline {
            let ok = |v: f64| v.is_finite() && v > 0.0 && v <= MAX_SEGMENT_SECONDS;
            if !(ok(css.segment_seconds) && ok(css.shift_seconds))
                || css.shift_seconds > css.segment_seconds
            {
                return bad(format!(
                    "css_segment_size ({}) and css_shift_size ({}) must satisfy 0 < shift ≤ segment ≤ {MAX_SEGMENT_SECONDS} s",
                    fmt_number(css.segment_seconds),
                    fmt_number(css.shift_seconds)
                ));
            }
        }
        if self.segment_seconds > MAX_SEGMENT_SECONDS {
            return bad(format!(
                "segment_seconds must be at most {MAX_SEGMENT_SECONDS} s, got {}",
                fmt_number(self.segment_seconds)
            ));
        }
        if let Some(bs) = self.band_split() {
            let total: usize = bs.bands.iter().sum();
            if total != self.n_freqs() || bs.bands.contains(&0) {
                return bad(format!(
                    "the band table covers {total} bins in {} bands, but n_fft {} has {} bins",
                    bs.bands.len(),
                    self.n_fft,
                    self.n_freqs()
                ));
            }
            if bs.flavour == BsFlavour::Mixit && !bs.masking {
                return bad("mixit-mss BS-Locoformer models always use complex masking".into());
            }
        }
        if self.n_fft < 4 || self.n_fft % 2 != 0 {
            return bad(format!(
                "n_fft must be an even number ≥ 4, got {}",
                self.n_fft
            ));
        }
        if self.hop_length == 0 || self.hop_length > self.n_fft {
            return bad(format!(
                "hop_length must be in 1..=n_fft ({}), got {}",
                self.n_fft, self.hop_length
            ));
        }
        if self.sources.is_empty() {
            return bad("at least one source is needed".into());
        }
        if self.n_heads == 0 || self.attention_dim % self.n_heads != 0 {
            return bad(format!(
                "attention_dim ({}) must be a multiple of n_heads ({})",
                self.attention_dim, self.n_heads
            ));
        }
        if self.head_dim() % 2 != 0 && self.pos_enc == PosEnc::Rope {
            return bad(format!(
                "RoPE needs an even head dimension, got {}",
                self.head_dim()
            ));
        }
        if self.num_groups == 0 || self.emb_dim % self.num_groups != 0 {
            return bad(format!(
                "emb_dim ({}) must be a multiple of num_groups ({})",
                self.emb_dim, self.num_groups
            ));
        }
        if self.ffn_hidden_dim.is_empty() || self.ffn_hidden_dim.len() > 2 {
            return bad("ffn_hidden_dim must have one or two entries".into());
        }
        if self.conv1d_kernel == 0
            || self.conv1d_shift == 0
            || self.conv1d_shift > self.conv1d_kernel
        {
            return bad(format!(
                "conv1d_kernel ({}) and conv1d_shift ({}) must satisfy 1 ≤ shift ≤ kernel",
                self.conv1d_kernel, self.conv1d_shift
            ));
        }
        if !(1..=2).contains(&self.audio_channels) {
            return bad(format!(
                "audio_channels must be 1 or 2, got {}",
                self.audio_channels
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!(
                "dropout must be in [0, 1), got {}",
                fmt_number(self.dropout)
            ));
        }
        if self.segment_seconds <= 0.0 || !self.segment_seconds.is_finite() {
            return bad(format!(
                "segment_seconds must be > 0 s, got {}",
                fmt_number(self.segment_seconds)
            ));
        }
        if self.sample_rate < 8000 {
            return bad(format!(
                "sample_rate must be ≥ 8000 Hz, got {}",
                self.sample_rate
            ));
        }
        // The time path attends over every frame of a segment: an absurdly fine hop (n_fft 4,
        // hop 1) would make a 3 s segment 132 301 frames long.
        let frames = self.n_frames(self.segment_samples());
        if frames > MAX_SEGMENT_FRAMES {
            return bad(format!(
                "segment_seconds ({} s) at hop_length {} makes {frames} STFT frames per segment; \
                 at most {MAX_SEGMENT_FRAMES} are accepted (raise hop_length or shorten the \
                 segment)",
                fmt_number(self.segment_seconds),
                self.hop_length
            ));
        }
        Ok(())
    }
}
