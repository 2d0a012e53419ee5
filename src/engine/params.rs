//! The small types a separation is described by: its parameters, progress, cancel token, the
//! stems it returns, and what the streamed path needs to know about a song up front.

use std::time::Duration;

use crate::audio::AudioBuffer;
use crate::model::config::limits::MAX_SEGMENT_SECONDS;
use crate::model::config::{InputNorm, ModelConfig, fmt_number, fmt_number_f32};

use super::EngineError;

pub use crate::cancel::CancelToken;

/// Progress of one separation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Chunks finished.
    pub done: usize,
    /// Chunks in all.
    pub total: usize,
    /// Time since the job started.
    pub elapsed: Duration,
}

impl Progress {
    /// Fraction done in [0, 1].
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.done as f64 / self.total as f64
        }
    }
    /// Estimated time left, from the rate so far.
    pub fn eta(&self) -> Option<Duration> {
        (self.done > 0).then(|| {
            self.elapsed
                .mul_f64((self.total - self.done) as f64 / self.done as f64)
        })
    }
}

/// How a song is cut and batched.
#[derive(Debug, Clone, PartialEq)]
pub struct SeparateParams {
    /// Segment length in seconds (`None`: the preset's); ignored with `no_split`.
    pub segment_seconds: Option<f64>,
    /// Overlap fraction in [0, 0.95).
    pub overlap: f32,
    /// Exponent of the triangle window.
    pub transition_power: f32,
    /// Whole file as one segment, no context, no window (exactly the reference's forward).
    pub no_split: bool,
    /// Chunks per forward pass.
    pub batch: usize,
    /// Use locosep's overlap-add even for a model whose config names another pipeline
    /// (mixit-mss's CSS); set when the user chooses a segment or overlap.
    pub overlap_add: bool,
}

impl Default for SeparateParams {
    fn default() -> Self {
        Self {
            segment_seconds: None,
            overlap: 0.25,
            transition_power: 1.0,
            no_split: false,
            batch: 1,
            overlap_add: false,
        }
    }
}

impl SeparateParams {
    /// Checks ranges, with messages that say what is allowed.
    pub fn validate(&self, cfg: &ModelConfig) -> Result<(), EngineError> {
        let bad = |m: String| Err(EngineError::BadParameter(m));
        if !(0.0..0.95).contains(&self.overlap) {
            return bad(format!(
                "--overlap must be in [0, 0.95), got {}",
                fmt_number_f32(self.overlap)
            ));
        }
        if let Some(s) = self.segment_seconds {
            let min = (cfg.n_fft as f64) / cfg.sample_rate as f64;
            if !(s.is_finite() && s >= min && s <= MAX_SEGMENT_SECONDS) {
                return bad(format!(
                    "--segment must be between {min:.3} s (one STFT window of {} samples) for \
                     this model and {MAX_SEGMENT_SECONDS} s, got {}",
                    cfg.n_fft,
                    fmt_number(s)
                ));
            }
        }
        if !(self.transition_power.is_finite() && self.transition_power > 0.0) {
            return bad(format!(
                "transition power must be > 0, got {}",
                self.transition_power
            ));
        }
        if self.batch == 0 {
            return bad("--batch must be at least 1, got 0".into());
        }
        Ok(())
    }
}

/// Separated stems at the input's sample rate and channel count.
#[derive(Debug, Clone)]
pub struct Stems {
    /// Source names in model order.
    pub names: Vec<String>,
    /// One buffer per source, same rate/channels/length as the input.
    pub audio: Vec<AudioBuffer>,
}

/// What [`Separator::separate_stream`] needs to know about a song before its first block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamInput {
    /// Sample rate of the blocks.
    pub sample_rate: u32,
    /// Channels per block (1 or 2).
    pub channels: usize,
    /// Frames in the whole song (counted beforehand: chunking needs the length).
    pub frames: usize,
    /// Divisor applied to the model input and multiplied back on the output (see
    /// [`InputScale::scale`]); 1 for models without input normalisation.
    pub scale: f32,
}

/// Running statistics of a song's samples for the model's input normalisation, accumulated
/// per channel in sample order so that any split into blocks gives the same value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputScale {
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    count: u64,
}

impl InputScale {
    /// Statistics of a whole song.
    pub fn of(channels: &[Vec<f32>]) -> Self {
        let mut me = Self::default();
        me.add(channels);
        me
    }

    /// Adds a block (one slice per channel, equal lengths).
    pub fn add<S: AsRef<[f32]>>(&mut self, block: &[S]) {
        if self.sum.len() < block.len() {
            self.sum.resize(block.len(), 0.0);
            self.sum_sq.resize(block.len(), 0.0);
        }
        for (c, ch) in block.iter().enumerate() {
            for &v in ch.as_ref() {
                self.sum[c] += f64::from(v);
                self.sum_sq[c] += f64::from(v) * f64::from(v);
            }
        }
        self.count += block.first().map_or(0, |c| c.as_ref().len()) as u64 * block.len() as u64;
    }

    /// The input divisor for `norm`: 1 for [`InputNorm::None`]; for [`InputNorm::Std`] the
    /// unbiased standard deviation of every sample of every channel (ESPnet divides the
    /// mixture by `torch.std`), + 1e-8.
    pub fn scale(&self, norm: InputNorm) -> f32 {
        match norm {
            InputNorm::None => 1.0,
            InputNorm::Std => {
                let n = self.count as f64;
                let sum: f64 = self.sum.iter().sum();
                let sum_sq: f64 = self.sum_sq.iter().sum();
                let mean = sum / n.max(1.0);
                let var = ((sum_sq - n * mean * mean) / (n - 1.0).max(1.0)).max(0.0);
                (var.sqrt() + 1e-8) as f32
            }
        }
    }
}
