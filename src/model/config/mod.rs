//! Model configuration: one resolved [`ModelConfig`] with no `Option`s, read from our preset
//! TOML files or imported from the three on-disk formats of the reference world:
//!
//! - the reference's keyword-argument JSON (`TFLocoformerSeparator(**config)` or
//!   `TFLocoformerMSS(**config)`, as in the fixtures' `config.json`);
//! - the music fork's YAML (`model:` section, plus `dataset.segment_length`/`sample_rate`);
//! - ESPnet's training YAML (`separator_conf`, with `encoder_conf` for the STFT).
//!
//! Every importer goes through [`RawConfig`], a serde mirror of the reference keyword arguments
//! whose defaults are the reference constructor's defaults (`tflocoformer_separator.py`,
//! `TFLocoformerSeparator.__init__`), and then through [`RawConfig::resolve`], the single place
//! that validates.

use std::path::Path;

use serde::{Deserialize, Serialize};

mod bands;
mod keyed;
mod number;
mod omegaconf;
mod resolve;
mod validate;
mod yaml_depth;

pub use bands::{MIXIT_BANDS, merl_band_table};
pub use number::{compact_long_numbers, fmt_number, fmt_number_f32};
pub use yaml_depth::MAX_YAML_FLOW_DEPTH;

/// Reads a config file of at most [`limits::MAX_CONFIG_BYTES`] (`--config /dev/zero` must not
/// fill the memory).
fn read_bounded(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let io = |source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(limits::MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limits::MAX_CONFIG_BYTES {
        return Err(ConfigError::Parse {
            path: path.display().to_string(),
            detail: format!(
                "the file is larger than {} MiB; a model config is a few kilobytes",
                limits::MAX_CONFIG_BYTES >> 20
            ),
        });
    }
    String::from_utf8(bytes).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        detail: format!("not UTF-8 text: {e}"),
    })
}

/// Errors raised while reading or validating a model configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// File that failed.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML/JSON/YAML or misses required parts.
    #[error("cannot parse config {path}: {detail}")]
    Parse {
        /// File that failed.
        path: String,
        /// What the parser said.
        detail: String,
    },
    /// A value is out of the range the model supports.
    #[error("invalid model config: {0}")]
    Invalid(String),
    /// A value of a config file is out of the range the model supports.
    #[error("invalid model config {path}: {detail}")]
    InvalidFile {
        /// File that was read.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// No preset of that name exists.
    #[error("unknown preset `{name}`; available presets: {available}")]
    UnknownPreset {
        /// The requested name.
        name: String,
        /// Comma-separated list of known presets.
        available: String,
    },
}

/// Order of the two paths inside a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TfOrder {
    /// Frequency path (attention over F) first, then time path — the reference default `"ft"`.
    #[serde(rename = "ft")]
    FreqTime,
    /// Time path first, then frequency path (`"tf"`).
    #[serde(rename = "tf")]
    TimeFreq,
}

/// Waveform normalisation around the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputNorm {
    /// The fork: the waveform goes straight into the STFT.
    None,
    /// ESPnet recipes: divide by the mixture's standard deviation, multiply the outputs back.
    Std,
}

/// Positional encoding of the attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PosEnc {
    /// Interleaved rotary embedding (`rotary-embedding-torch`), the reference default.
    Rope,
    /// No positional encoding (the fork's `pos_enc: nope`).
    Nope,
}

/// Normalisation layer inside the blocks. original: `norm_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NormType {
    /// RMSGroupNorm (`x / (rms + eps) · gamma` per channel group), the reference default.
    #[default]
    RmsGroupNorm,
    /// `nn.LayerNorm(C, eps)` over the channel axis (gamma and beta).
    LayerNorm,
}

/// Which of the two published band-split implementations a model follows (their key names and
/// decoder layer order differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BsFlavour {
    /// MERL `BSLocoformerSeparator` (tf-locoformer 1.1.0): decoder GN, Conv, Tanh, Conv, Conv,
    /// GLU (keys `.0 .1 .3 .4`); band table from `stft_size`/`sample_rate`.
    Merl,
    /// mixit-mss `BSLocoformer`: decoder GN, Conv, Conv, Tanh, Conv, GLU (keys `.0 .1 .2 .4`);
    /// the fixed 62-band table; always complex masking.
    Mixit,
}

/// The band-split encoder/decoder of a BS-Locoformer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandSplit {
    /// Implementation the weights come from.
    pub flavour: BsFlavour,
    /// `true`: the decoder outputs a complex mask applied to the mixture spectrum; `false`:
    /// the spectrum itself (mapping). original: `masking`.
    pub masking: bool,
    /// Band widths in bins, low to high; they sum to F = n_fft/2 + 1.
    pub bands: Vec<usize>,
}

/// The network's encoder/decoder family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// TF-Locoformer: Conv2d encoder over all F bins, ConvTranspose2d decoder.
    #[default]
    Conv,
    /// BS-Locoformer: per-band GroupNorm + Conv1d to C channels, band-wise MLP decoders.
    BandSplit(BandSplit),
}

/// mixit-mss's inference (`ModelWrapper.css` inside `separate_sample.py`), reproduced so that
/// published scores carry over.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CssParams {
    /// Segment length in seconds. original: `css_segment_size`.
    pub segment_seconds: f64,
    /// Hop between segment starts in seconds. original: `css_shift_size`.
    pub shift_seconds: f64,
    /// Divide the whole mixture by its STFT-power scale first. original: `normalize_mixture`.
    pub normalize_mixture: bool,
    /// Divide each segment by its own STFT-power scale. original: `scaling`.
    pub scaling: bool,
}

/// How a song is cut into segments around the network.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Pipeline {
    /// locosep's own: triangle-window overlap-add with real neighbouring audio as context.
    #[default]
    OverlapAdd,
    /// mixit-mss's CSS stitching with STFT-power normalisation and the `N // hop` frame crop.
    Css(CssParams),
}

/// Largest values the config accepts (beyond them a model cannot run on any machine locosep
/// targets, and unchecked they cost gigabytes before anything else fails).
pub mod limits {
    /// Most sources.
    pub const MAX_SOURCES: usize = 64;
    /// Most blocks.
    pub const MAX_LAYERS: usize = 128;
    /// Widest channel/attention/FFN dimension.
    pub const MAX_DIM: usize = 8192;
    /// Largest STFT.
    pub const MAX_N_FFT: usize = 65_536;
    /// Highest sample rate (Hz).
    pub const MAX_SAMPLE_RATE: u32 = 384_000;
    /// Longest default segment (s).
    pub const MAX_SEGMENT_SECONDS: f64 = 600.0;
    /// Most STFT frames in one default segment (the time path attends over all of them).
    pub const MAX_SEGMENT_FRAMES: usize = 65_536;
    /// Largest config file read (bytes).
    pub const MAX_CONFIG_BYTES: u64 = 16 << 20;
}

/// Fully resolved configuration of a TF-Locoformer and of how it is run on audio.
///
/// Field names follow the reference keyword arguments; renamed ones say `original:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Preset or file name, for display.
    pub name: String,
    /// Audio sample rate the model was trained at (Hz).
    pub sample_rate: u32,
    /// STFT size (window = n_fft).
    pub n_fft: usize,
    /// STFT hop.
    pub hop_length: usize,
    /// Names of the separated sources, in output order. original: `n_sources` / `num_spk`.
    pub sources: Vec<String>,
    /// Number of TF-Locoformer blocks.
    pub n_layers: usize,
    /// Channel width C.
    pub emb_dim: usize,
    /// Attention width A (= heads × head dim).
    pub attention_dim: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Groups of RMSGroupNorm.
    pub num_groups: usize,
    /// FFN hidden widths; index 0 is the FFN **after** attention, index 1 (macaron) the one
    /// **before** — the reference's (reversed) list order.
    pub ffn_hidden_dim: Vec<usize>,
    /// Conv1d kernel K of the ConvSwiGLU FFN.
    pub conv1d_kernel: usize,
    /// Conv1d stride of the ConvSwiGLU FFN.
    pub conv1d_shift: usize,
    /// Order of the two paths.
    pub tf_order: TfOrder,
    /// RMSGroupNorm / GroupNorm epsilon.
    pub eps: f64,
    /// Dropout probability (training only).
    pub dropout: f64,
    /// Positional encoding.
    pub pos_enc: PosEnc,
    /// 1: a mono network run on each channel (fork-compatible); 2: joint stereo.
    pub audio_channels: usize,
    /// Waveform normalisation.
    pub input_norm: InputNorm,
    /// Default segment length for chunked separation, in seconds.
    pub segment_seconds: f64,
    /// Normalisation layer of the blocks.
    #[serde(default)]
    pub norm_type: NormType,
    /// Encoder/decoder family.
    #[serde(default)]
    pub arch: Arch,
    /// How songs are segmented and normalised around the network.
    #[serde(default)]
    pub pipeline: Pipeline,
}

impl ModelConfig {
    /// Number of frequency bins F = n_fft/2 + 1.
    pub fn n_freqs(&self) -> usize {
        crate::dsp::stft::num_bins(self.n_fft)
    }

    /// Number of STFT frames T for `samples` samples (center padding).
    pub fn n_frames(&self, samples: usize) -> usize {
        crate::dsp::stft::num_frames(samples, self.n_fft, self.hop_length)
    }

    /// Number of separated sources S.
    pub fn n_sources(&self) -> usize {
        self.sources.len()
    }

    /// Head dimension d = A / heads.
    pub fn head_dim(&self) -> usize {
        self.attention_dim / self.n_heads
    }

    /// Default segment length in samples.
    pub fn segment_samples(&self) -> usize {
        (self.segment_seconds * self.sample_rate as f64).round() as usize
    }

    /// Length L of the frequency path's sequences: the band count for a band-split model,
    /// F otherwise.
    pub fn freq_len(&self) -> usize {
        match &self.arch {
            Arch::Conv => self.n_freqs(),
            Arch::BandSplit(bs) => bs.bands.len(),
        }
    }

    /// The band-split settings, if this is a BS-Locoformer.
    pub fn band_split(&self) -> Option<&BandSplit> {
        match &self.arch {
            Arch::Conv => None,
            Arch::BandSplit(bs) => Some(bs),
        }
    }

    /// Number of trainable parameters (excluding the RoPE frequency buffers).
    pub fn param_count(&self) -> usize {
        let (c, a, k) = (self.emb_dim, self.attention_dim, self.conv1d_kernel);
        let ac = self.audio_channels;
        let s = self.n_sources();
        // LayerNorm has a bias beside its scale.
        let norm = match self.norm_type {
            NormType::RmsGroupNorm => c,
            NormType::LayerNorm => 2 * c,
        };
        let ffn: usize = self
            .ffn_hidden_dim
            .iter()
            .map(|&h| c * 2 * h * k + 2 * h + h * c * k + c + norm)
            .sum();
        let path = ffn + norm + 3 * a * c + c * a;
        let (enc, dec) = match &self.arch {
            Arch::Conv => (2 * ac * c * 9 + c + 2 * c, c * 2 * s * ac * 9 + 2 * s * ac),
            Arch::BandSplit(bs) => bs.bands.iter().fold((0, 0), |(e, d), &w| {
                let win = w * 2 * ac;
                let wout = w * s * ac * 4;
                (
                    e + 2 * win + win * c + c,
                    d + 2 * c + (c * 4 * c + 4 * c) + (16 * c * c + 4 * c) + (4 * c * wout + wout),
                )
            }),
        };
        enc + self.n_layers * 2 * path + dec
    }

    /// The config as the reference's keyword-argument JSON (`TFLocoformerMSS(**config)`
    /// accepts the model keys; the extra audio keys are ours), readable by [`Self::from_file`].
    pub fn to_reference_json(&self) -> String {
        let mut hidden = self.ffn_hidden_dim.clone();
        // Back to the reference's list order (see `RawConfig::resolve`).
        hidden.reverse();
        let v = serde_json::json!({
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "n_sources": self.n_sources(),
            "sources": self.sources,
            "n_layers": self.n_layers,
            "emb_dim": self.emb_dim,
            "norm_type": self.norm_type,
            "num_groups": self.num_groups,
            "tf_order": self.tf_order,
            "n_heads": self.n_heads,
            "flash_attention": false,
            "attention_dim": self.attention_dim,
            "pos_enc": self.pos_enc,
            "ffn_type": vec!["swiglu_conv1d"; hidden.len()],
            "ffn_hidden_dim": hidden,
            "conv1d_kernel": self.conv1d_kernel,
            "conv1d_shift": self.conv1d_shift,
            "dropout": self.dropout,
            "eps": self.eps,
            "audio_channels": self.audio_channels,
            "input_norm": self.input_norm,
            "sample_rate": self.sample_rate,
            "segment_seconds": self.segment_seconds,
        });
        let mut v = v;
        if let (Some(bs), Some(obj)) = (self.band_split(), v.as_object_mut()) {
            let arch = match bs.flavour {
                BsFlavour::Merl => "bslocoformer",
                BsFlavour::Mixit => "bslocoformer-mixit",
            };
            obj.insert("architecture".into(), arch.into());
            obj.insert("masking".into(), bs.masking.into());
        }
        if let (Pipeline::Css(css), Some(obj)) = (self.pipeline, v.as_object_mut()) {
            obj.insert("css_segment_size".into(), css.segment_seconds.into());
            obj.insert("css_shift_size".into(), css.shift_seconds.into());
            obj.insert("normalize_mixture".into(), css.normalize_mixture.into());
            obj.insert("scaling".into(), css.scaling.into());
        }
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }

    /// Reads a config from any supported file: `.toml` (our presets), `.json` (reference
    /// keyword arguments) or `.yaml`/`.yml` (the fork's `model:` section or ESPnet's
    /// `separator_conf`).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = read_bounded(path)?;
        let mut name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "custom".into());
        // The published folders are `<model name>/merged_config.yaml`: name them after the folder.
        if name == "merged_config" || name == "config" {
            if let Some(dir) = path.parent().and_then(|p| p.file_name()) {
                name = dir.to_string_lossy().into_owned();
            }
        }
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let parse_err = |detail: String| ConfigError::Parse {
            path: path.display().to_string(),
            detail,
        };
        match ext.as_str() {
            "toml" => Self::from_toml_str(&text, &name).map_err(|e| match e {
                ConfigError::Parse { detail, .. } => parse_err(detail),
                ConfigError::Invalid(detail) => ConfigError::InvalidFile {
                    path: path.display().to_string(),
                    detail,
                },
                other => other,
            }),
            "json" => Self::from_json_str(&text, &name).map_err(|e| match e {
                ConfigError::Parse { detail, .. } => parse_err(detail),
                ConfigError::Invalid(detail) => ConfigError::InvalidFile {
                    path: path.display().to_string(),
                    detail,
                },
                other => other,
            }),
            "yaml" | "yml" => Self::from_yaml_str(&text, &name).map_err(|e| match e {
                ConfigError::Parse { detail, .. } => parse_err(detail),
                ConfigError::Invalid(detail) => ConfigError::InvalidFile {
                    path: path.display().to_string(),
                    detail,
                },
                other => other,
            }),
            other => Err(parse_err(format!(
                "unknown config extension `.{other}`; use .toml (locosep preset), .json (reference \
                 keyword arguments) or .yaml (fork or ESPnet training config)"
            ))),
        }
    }

    /// Parses one of our preset TOML files.
    pub fn from_toml_str(text: &str, name: &str) -> Result<Self, ConfigError> {
        let preset: PresetFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: name.into(),
            detail: compact_long_numbers(&e.to_string()),
        })?;
        preset.resolve(name)
    }

    /// Parses the reference's keyword-argument JSON.
    pub fn from_json_str(text: &str, name: &str) -> Result<Self, ConfigError> {
        let raw = keyed::raw_from_json(text).map_err(|detail| ConfigError::Parse {
            path: name.into(),
            detail,
        })?;
        raw.resolve(name)
    }

    /// Parses a YAML training config: the fork's (`model:` + `dataset:`) or ESPnet's
    /// (`separator_conf:` + `encoder_conf:`). A bare mapping of keyword arguments also works.
    pub fn from_yaml_str(text: &str, name: &str) -> Result<Self, ConfigError> {
        let perr = |detail: String| ConfigError::Parse {
            path: name.into(),
            detail,
        };
        if text.len() as u64 > limits::MAX_CONFIG_BYTES {
            return Err(perr(format!(
                "the text is larger than {} MiB; a model config is a few kilobytes",
                limits::MAX_CONFIG_BYTES >> 20
            )));
        }
        // Before serde_yaml, whose parser is quadratic in the flow nesting depth.
        yaml_depth::check_flow_depth(text).map_err(perr)?;
        let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| perr(e.to_string()))?;
        if let Some(raw) = omegaconf::mixit_raw_config(&doc).map_err(perr)? {
            return raw.resolve(name);
        }
        let get = |k: &str| doc.get(k).cloned();
        let (mut raw, is_espnet): (RawConfig, bool) = if let Some(model) = get("model") {
            (keyed::raw_from_yaml(&model, "model").map_err(perr)?, false)
        } else if let Some(sep) = get("separator_conf") {
            (
                keyed::raw_from_yaml(&sep, "separator_conf").map_err(perr)?,
                true,
            )
        } else {
            (keyed::raw_from_yaml(&doc, "").map_err(perr)?, false)
        };
        // A whole number of at most `max`, when the key is present.
        let uint = |v: Option<&serde_yaml::Value>, what: &str, max: u64| match v {
            None => Ok(None),
            Some(v) => match v.as_u64().filter(|n| *n <= max) {
                Some(n) => Ok(Some(n)),
                None => Err(perr(format!(
                    "{what} must be a whole number in 0..={max}, got {}",
                    serde_yaml::to_string(v)
                        .unwrap_or_default()
                        .trim()
                        .chars()
                        .take(40)
                        .collect::<String>()
                ))),
            },
        };
        let rate_max = u64::from(u32::MAX);
        if let Some(ds) = get("dataset") {
            if let Some(sr) = uint(ds.get("sample_rate"), "dataset.sample_rate", rate_max)? {
                raw.sample_rate = Some(sr as u32);
            }
            let seg = uint(ds.get("segment_length"), "dataset.segment_length", 1 << 40)?;
            if let Some(seg) = seg {
                let sr = raw.sample_rate.unwrap_or(44_100) as f64;
                raw.segment_seconds = Some(seg as f64 / sr);
            }
        }
        if is_espnet {
            if let Some(enc) = get("encoder_conf") {
                let max = limits::MAX_N_FFT as u64 * 16;
                if let Some(n) = uint(enc.get("n_fft"), "encoder_conf.n_fft", max)? {
                    raw.n_fft = Some(n as usize);
                }
                if let Some(h) = uint(enc.get("hop_length"), "encoder_conf.hop_length", max)? {
                    raw.hop_length = Some(h as usize);
                }
            }
            if let Some(fs) = uint(get("fs").as_ref(), "fs", rate_max)? {
                raw.sample_rate = Some(fs as u32);
            }
            // ESPnet enhancement recipes normalise the mixture by its standard deviation.
            raw.input_norm.get_or_insert(InputNorm::Std);
        }
        raw.resolve(name)
    }
}

/// A value that may be given as a scalar or a two-element list (the reference accepts both
/// for `ffn_type` / `ffn_hidden_dim`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrList<T> {
    One(T),
    List(Vec<T>),
}

impl<T: Clone> OneOrList<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrList::One(x) => vec![x],
            OneOrList::List(v) => v,
        }
    }
}

/// Serde mirror of the reference keyword arguments; missing keys take the reference's
/// constructor defaults. Unknown keys are ignored (training-only options, `input_dim`, …).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawConfig {
    n_fft: Option<usize>,
    hop_length: Option<usize>,
    n_sources: Option<usize>,
    num_spk: Option<usize>,
    sources: Option<Vec<String>>,
    n_layers: Option<usize>,
    emb_dim: Option<usize>,
    norm_type: Option<String>,
    num_groups: Option<usize>,
    tf_order: Option<TfOrder>,
    n_heads: Option<usize>,
    attention_dim: Option<usize>,
    pos_enc: Option<PosEnc>,
    ffn_type: Option<OneOrList<String>>,
    ffn_hidden_dim: Option<OneOrList<usize>>,
    conv1d_kernel: Option<usize>,
    conv1d_shift: Option<usize>,
    dropout: Option<f64>,
    eps: Option<f64>,
    audio_channels: Option<usize>,
    input_norm: Option<InputNorm>,
    sample_rate: Option<u32>,
    segment_seconds: Option<f64>,
    /// locosep's key: `tflocoformer` (default), `bslocoformer` (MERL) or
    /// `bslocoformer-mixit`.
    architecture: Option<String>,
    /// MERL BS-Locoformer: STFT size (its `n_fft`).
    stft_size: Option<usize>,
    /// MERL BS-Locoformer: complex masking (true) or mapping.
    masking: Option<bool>,
    /// MERL BS-Locoformer: joint stereo.
    stereo: Option<bool>,
    /// mixit-mss BS-Locoformer: audio channels.
    num_chan: Option<usize>,
    /// mixit-mss inference: CSS segment (s).
    css_segment_size: Option<f64>,
    /// mixit-mss inference: CSS shift (s).
    css_shift_size: Option<f64>,
    /// mixit-mss inference: whole-mixture STFT-power normalisation.
    normalize_mixture: Option<bool>,
    /// mixit-mss inference: per-segment STFT-power normalisation.
    scaling: Option<bool>,
}

/// Default source names for `n` outputs: for 4, the MUSDB order of the model family (the fork
/// and MERL: vocals, drums, bass, other; mixit-mss: bass, drums, vocals, other), `source1..`
/// otherwise.
fn default_sources(n: usize, mixit: bool) -> Vec<String> {
    match (n, mixit) {
        (4, false) => ["vocals", "drums", "bass", "other"]
            .map(String::from)
            .to_vec(),
        (4, true) => ["bass", "drums", "vocals", "other"]
            .map(String::from)
            .to_vec(),
        _ => (1..=n).map(|i| format!("source{i}")).collect(),
    }
}

/// On-disk layout of a preset in `configs/*.toml`.
///
/// ```toml
/// description = "…"
/// [model]      # reference keyword arguments (n_fft, hop_length, n_layers, …)
/// [audio]      # sample_rate, segment_seconds, audio_channels, input_norm
/// ```
#[derive(Debug, Clone, Deserialize)]
pub struct PresetFile {
    /// One-line description shown by `locosep presets`.
    #[serde(default)]
    pub description: String,
    model: RawConfig,
    #[serde(default)]
    audio: AudioSection,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct AudioSection {
    sample_rate: Option<u32>,
    segment_seconds: Option<f64>,
    audio_channels: Option<usize>,
    input_norm: Option<InputNorm>,
}

impl PresetFile {
    fn resolve(self, name: &str) -> Result<ModelConfig, ConfigError> {
        let mut raw = self.model;
        raw.sample_rate = self.audio.sample_rate.or(raw.sample_rate);
        raw.segment_seconds = self.audio.segment_seconds.or(raw.segment_seconds);
        raw.audio_channels = self.audio.audio_channels.or(raw.audio_channels);
        raw.input_norm = self.audio.input_norm.or(raw.input_norm);
        raw.resolve(name)
    }
}

/// A preset: name, description and resolved config.
#[derive(Debug, Clone)]
pub struct Preset {
    /// File stem, e.g. `small`.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// The resolved model config.
    pub config: ModelConfig,
}

/// The presets compiled into the binary (`configs/*.toml`), in display order.
pub const BUILTIN_PRESETS: &[(&str, &str)] = &[
    ("demo", include_str!("../../../configs/demo.toml")),
    ("small", include_str!("../../../configs/small.toml")),
    (
        "ultra-safe",
        include_str!("../../../configs/ultra-safe.toml"),
    ),
    (
        "memory-optimized",
        include_str!("../../../configs/memory-optimized.toml"),
    ),
    ("balanced", include_str!("../../../configs/balanced.toml")),
    ("xlarge", include_str!("../../../configs/xlarge.toml")),
    ("bs-small", include_str!("../../../configs/bs-small.toml")),
    ("bs-medium", include_str!("../../../configs/bs-medium.toml")),
    ("bs-large", include_str!("../../../configs/bs-large.toml")),
];

/// All built-in presets, parsed. A preset file that fails to parse is a build bug, caught by
/// the tests below.
pub fn builtin_presets() -> Vec<Preset> {
    BUILTIN_PRESETS
        .iter()
        .filter_map(|(name, text)| {
            let file: PresetFile = toml::from_str(text).ok()?;
            let description = file.description.clone();
            let config = file.resolve(name).ok()?;
            Some(Preset {
                name: name.to_string(),
                description,
                config,
            })
        })
        .collect()
}

/// Looks a preset up by name (case-insensitive, `_` and `-` equivalent).
pub fn preset(name: &str) -> Result<Preset, ConfigError> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('_', "-");
    let want = norm(name);
    builtin_presets()
        .into_iter()
        .find(|p| norm(&p.name) == want)
        .ok_or_else(|| ConfigError::UnknownPreset {
            name: name.to_string(),
            available: BUILTIN_PRESETS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests;
