//! [`PlanModel`]: the network dimensions the planner needs, and what its weights hold.

use serde::{Deserialize, Serialize};

/// The TF-Locoformer dimensions the planner needs, converted from the model's config.
///
/// The model code converts its resolved config into this plain struct; the planner knows no
/// preset by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanModel {
    /// STFT size; `F = n_fft / 2 + 1` bins.
    pub n_fft: usize,
    /// STFT hop; `T = 1 + N / hop` frames (center padding).
    pub hop: usize,
    /// Number of TF-Locoformer blocks (each = frequency path + time path).
    pub n_layers: usize,
    /// Embedding width `C` of the residual stream.
    pub emb_dim: usize,
    /// Attention width `A = n_heads · head_dim` (qkv projects `C → 3A`).
    pub attention_dim: usize,
    /// Number of attention heads.
    pub n_heads: usize,
    /// RMSGroupNorm groups (only the per-position statistics depend on it).
    pub num_groups: usize,
    /// ConvSwiGLU hidden widths `H` of FFN₀ and FFN₁ (reference `ffn_hidden_dim`).
    pub ffn_hidden: [usize; 2],
    /// Conv1d / ConvTranspose1d kernel `K` of the FFNs (reference `conv1d_kernel`).
    pub kernel: usize,
    /// Number of separated sources `S`.
    pub n_sources: usize,
    /// 1: each song channel is a separate batch item; 2: both channels go in jointly.
    pub audio_channels: usize,
    /// Sample rate of the model, Hz.
    pub sample_rate: u32,
    /// The preset's segment length in samples; [`fit`](super::fit) starts from it.
    pub segment_samples: usize,
    /// Band widths of a band-split model (BS-Locoformer), low to high; empty for
    /// TF-Locoformer. The frequency path then runs over `bands.len()` bands instead of the
    /// F bins, and the residual stream is `[B, C, T, nb]`.
    #[serde(default)]
    pub bands: Vec<usize>,
    /// LayerNorm in the blocks (a bias beside each scale) instead of RMSGroupNorm.
    #[serde(default)]
    pub layer_norm: bool,
}

impl PlanModel {
    /// Frames of a segment of `samples` samples: `1 + samples / hop` (center padding).
    pub fn frames(&self, samples: usize) -> usize {
        crate::dsp::stft::num_frames(samples, self.n_fft, self.hop.max(1))
    }

    /// Frequency bins `n_fft / 2 + 1`.
    pub fn bins(&self) -> usize {
        crate::dsp::stft::num_bins(self.n_fft)
    }

    /// Length of the frequency path's sequences: the band count of a band-split model, else
    /// the bins.
    pub fn freq_len(&self) -> usize {
        if self.bands.is_empty() {
            self.bins()
        } else {
            self.bands.len()
        }
    }

    /// Width of one attention head `d = A / heads`.
    pub fn head_dim(&self) -> usize {
        self.attention_dim / self.n_heads.max(1)
    }

    /// Network batch items `B` for `batch` chunks of a song with `song_channels` channels.
    pub fn items(&self, batch: usize, song_channels: usize) -> usize {
        if self.audio_channels == 1 {
            batch * song_channels.max(1)
        } else {
            batch
        }
    }
}

/// Number of trainable parameters of the model: what AdamW updates.
///
/// Agrees with `ModelConfig::param_count` for every config (tested for every preset). The
/// reference's `rope.freqs` buffers are not parameters (nothing trains them); their elements
/// are [`rope_buffer_elements`], counted apart.
pub fn param_count(model: &PlanModel) -> usize {
    let c = model.emb_dim;
    let a = model.attention_dim;
    let k = model.kernel;
    let norm = if model.layer_norm { 2 * c } else { c };
    // ConvSwiGLU: conv1d weight [2H, C, K] + bias [2H]; deconv1d weight [H, C, K] + bias [C].
    let ffns: usize = model
        .ffn_hidden
        .iter()
        .filter(|&&h| h > 0)
        .map(|&h| c * 2 * h * k + 2 * h + h * c * k + c + norm)
        .sum();
    // Attention norm, qkv [3A, C], aggregate_heads [C, A].
    let path = ffns + norm + 3 * a * c + c * a;
    let ac = model.audio_channels;
    let s = model.n_sources;
    let (encoder, decoder) = if model.bands.is_empty() {
        // Encoder Conv2d [C, 2ac, 3, 3] + bias [C]; GroupNorm weight + bias [C]. Decoder
        // ConvTranspose2d [C, 2·S·ac, 3, 3] + bias [2·S·ac].
        (2 * ac * c * 9 + c + 2 * c, c * 2 * s * ac * 9 + 2 * s * ac)
    } else {
        // Per band: GroupNorm [w·2ac]×2 + Conv1d [C, w·2ac] + [C]; decoder GroupNorm [C]×2,
        // Conv1d C→4C, 4C→4C, 4C→w·S·ac·4 with biases.
        model.bands.iter().fold((0, 0), |(e, d), &w| {
            let win = w * 2 * ac;
            let wout = w * s * ac * 4;
            (
                e + 2 * win + win * c + c,
                d + 2 * c + 4 * c * c + 4 * c + 16 * c * c + 4 * c + 4 * c * wout + wout,
            )
        })
    };
    encoder + model.n_layers * 2 * path + decoder
}

/// Elements of the `rope.freqs` buffers of a PyTorch `state_dict`: `[d/2]` in each of the
/// `2 · n_layers` paths. Not parameters (see [`param_count`]).
pub(super) fn rope_buffer_elements(model: &PlanModel) -> usize {
    model.n_layers * 2 * (model.head_dim() / 2)
}

/// Elements the planner charges per weight-sized term (weights, and in training gradients and
/// each AdamW moment): the parameters plus the `rope.freqs` buffers.
///
/// Charging the buffers in every weight-sized term over-estimates by at most `3 · n_layers · d`
/// f32 (1.5 KiB for `balanced`): they have no gradient and no moments, and the model keeps them
/// on the host. They stay so that every prediction is byte-identical to the figures
/// `tests/memory.rs` was checked against; dropping them is a separate, deliberate change.
pub(super) fn weight_elements(model: &PlanModel) -> usize {
    param_count(model) + rope_buffer_elements(model)
}

/// Elements of the largest single parameter tensor: usually an FFN conv1d `[2H, C, K]`.
pub(super) fn largest_param_elements(model: &PlanModel) -> usize {
    let c = model.emb_dim;
    let h = model.ffn_hidden.iter().copied().max().unwrap_or(0);
    let candidates = [
        2 * h * c * model.kernel,
        3 * model.attention_dim * c,
        c * 2 * model.n_sources * model.audio_channels * 9,
    ];
    candidates.into_iter().max().unwrap_or(0)
}
