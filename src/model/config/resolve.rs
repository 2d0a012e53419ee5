//! [`RawConfig::resolve`]: the reference's defaults applied to what a file gave, then
//! [`ModelConfig::validate`].

use super::{
    Arch, BandSplit, BsFlavour, ConfigError, CssParams, InputNorm, MIXIT_BANDS, ModelConfig,
    NormType, OneOrList, Pipeline, PosEnc, RawConfig, TfOrder, default_sources, fmt_number, limits,
    merl_band_table,
};

impl RawConfig {
    /// Applies the reference defaults and validates.
    pub fn resolve(self, name: &str) -> Result<ModelConfig, ConfigError> {
        // Two spellings of one setting (the reference's and a variant's): one wins below, so
        // a disagreement would silently ignore a value.
        for (a, x, b, y) in [
            ("n_sources", self.n_sources, "num_spk", self.num_spk),
            ("n_fft", self.n_fft, "stft_size", self.stft_size),
            (
                "audio_channels",
                self.audio_channels,
                "num_chan",
                self.num_chan,
            ),
        ] {
            if let (Some(x), Some(y)) = (x, y)
                && x != y
            {
                return Err(ConfigError::Invalid(format!(
                    "{a} ({x}) and {b} ({y}) disagree; give one of them"
                )));
            }
        }
        if let (Some(shift), None) = (self.css_shift_size, self.css_segment_size) {
            return Err(ConfigError::Invalid(format!(
                "css_shift_size ({}) is given without css_segment_size",
                fmt_number(shift)
            )));
        }
        let norm_type = match self.norm_type.as_deref() {
            None | Some("rmsgroupnorm") => NormType::RmsGroupNorm,
            Some("layernorm") => NormType::LayerNorm,
            Some(other) => {
                return Err(ConfigError::Invalid(format!(
                    "norm_type `{other}` is not supported; locosep implements `rmsgroupnorm` \
                     and `layernorm`"
                )));
            }
        };
        let merl_bs = self.stft_size.is_some() || self.masking.is_some() || self.stereo.is_some();
        let flavour = match self.architecture.as_deref() {
            None if merl_bs => Some(BsFlavour::Merl),
            None | Some("tflocoformer") => None,
            Some("bslocoformer") => Some(BsFlavour::Merl),
            Some("bslocoformer-mixit") => Some(BsFlavour::Mixit),
            Some(other) => {
                return Err(ConfigError::Invalid(format!(
                    "architecture `{other}` is unknown; use tflocoformer, bslocoformer or \
                     bslocoformer-mixit"
                )));
            }
        };
        let mixit = flavour == Some(BsFlavour::Mixit);
        let ffn_types = self
            .ffn_type
            .map(OneOrList::into_vec)
            .unwrap_or_else(|| vec!["swiglu_conv1d".into()]);
        if let Some(bad) = ffn_types.iter().find(|t| t.as_str() != "swiglu_conv1d") {
            return Err(ConfigError::Invalid(format!(
                "ffn_type `{bad}` is not supported; locosep implements `swiglu_conv1d`"
            )));
        }
        let mut ffn_hidden = self
            .ffn_hidden_dim
            .map(OneOrList::into_vec)
            .unwrap_or_else(|| vec![384]);
        if ffn_hidden.len() != ffn_types.len() {
            if ffn_hidden.len() == 1 {
                ffn_hidden = vec![ffn_hidden[0]; ffn_types.len()];
            } else {
                return Err(ConfigError::Invalid(format!(
                    "ffn_type has {} entries but ffn_hidden_dim has {}",
                    ffn_types.len(),
                    ffn_hidden.len()
                )));
            }
        }
        // The reference builds its FFN list reversed: `zip(ffn_type[::-1], ffn_hidden_dim[::-1])`,
        // so module index 0 (after attention) is the LAST list entry.
        ffn_hidden.reverse();
        let n_out = self.n_sources.or(self.num_spk).unwrap_or(4);
        if !(1..=limits::MAX_SOURCES).contains(&n_out) {
            return Err(ConfigError::Invalid(format!(
                "the number of sources must be in 1..={}, got {n_out}",
                limits::MAX_SOURCES
            )));
        }
        let sources = match self.sources {
            Some(s) if s.len() == n_out || self.n_sources.is_none() && self.num_spk.is_none() => s,
            Some(s) => {
                return Err(ConfigError::Invalid(format!(
                    "{} source names given for {} outputs",
                    s.len(),
                    n_out
                )));
            }
            None => default_sources(n_out, mixit),
        };
        let sample_rate = self.sample_rate.unwrap_or(44_100);
        let n_fft = self.n_fft.or(self.stft_size).unwrap_or(2048);
        // MERL's band-split recipes use a quarter-window hop.
        let default_hop = if flavour == Some(BsFlavour::Merl) {
            n_fft / 4
        } else {
            512
        };
        let arch = match flavour {
            None => Arch::Conv,
            Some(flavour) => Arch::BandSplit(BandSplit {
                flavour,
                masking: self.masking.unwrap_or(true),
                bands: match flavour {
                    BsFlavour::Merl => merl_band_table(n_fft, sample_rate),
                    BsFlavour::Mixit => MIXIT_BANDS.to_vec(),
                },
            }),
        };
        let audio_channels = self
            .audio_channels
            .or(self.num_chan)
            .or(self.stereo.map(|s| if s { 2 } else { 1 }))
            .unwrap_or(1);
        let pipeline = match (self.css_segment_size, self.css_shift_size) {
            (Some(segment_seconds), shift) => Pipeline::Css(CssParams {
                segment_seconds,
                shift_seconds: shift.unwrap_or(segment_seconds),
                normalize_mixture: self.normalize_mixture.unwrap_or(true),
                scaling: self.scaling.unwrap_or(false),
            }),
            (None, _) => Pipeline::OverlapAdd,
        };
        let segment_seconds = match pipeline {
            Pipeline::Css(css) => self.segment_seconds.unwrap_or(css.segment_seconds),
            Pipeline::OverlapAdd => self.segment_seconds.unwrap_or(3.0),
        };
        let cfg = ModelConfig {
            name: name.to_string(),
            sample_rate,
            n_fft,
            hop_length: self.hop_length.unwrap_or(default_hop),
            sources,
            n_layers: self.n_layers.unwrap_or(6),
            emb_dim: self.emb_dim.unwrap_or(128),
            attention_dim: self.attention_dim.unwrap_or(128),
            n_heads: self.n_heads.unwrap_or(4),
            num_groups: self.num_groups.unwrap_or(4),
            ffn_hidden_dim: ffn_hidden,
            conv1d_kernel: self.conv1d_kernel.unwrap_or(4),
            conv1d_shift: self.conv1d_shift.unwrap_or(1),
            tf_order: self.tf_order.unwrap_or(TfOrder::FreqTime),
            eps: self.eps.unwrap_or(1e-5),
            dropout: self.dropout.unwrap_or(0.0),
            // mixit-mss's BS-Locoformer has no positional encoding.
            pos_enc: self
                .pos_enc
                .unwrap_or(if mixit { PosEnc::Nope } else { PosEnc::Rope }),
            audio_channels,
            input_norm: self.input_norm.unwrap_or(InputNorm::None),
            segment_seconds,
            norm_type,
            arch,
            pipeline,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}
