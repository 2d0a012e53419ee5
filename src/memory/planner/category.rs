//! [`Category`]: what a block of memory is used for, the key of every byte list and breakdown.
//! A leaf: it imports nothing of the planner.

use serde::{Deserialize, Serialize};

/// What a block of memory is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Category {
    /// Parameters (f32; f16 in half-precision inference; f32 master + f16 copy in training).
    Weights,
    /// AdamW first and second moments (2 × f32 per parameter).
    Optimizer,
    /// Parameter gradients (f32).
    Gradients,
    /// Activations autograd keeps for block `block`'s backward (with checkpointing: the block's
    /// input only).
    SavedActivations {
        /// Block index.
        block: usize,
    },
    /// Checkpointing: the activations of the block (or path sub-batch) being recomputed.
    RecomputedBlock,
    /// Activations autograd keeps outside the blocks (encoder GroupNorm, decoder input).
    SavedEncoderDecoder,
    /// Attention score tensors (materialised or chunked) and their gradients.
    AttentionScores,
    /// ConvSwiGLU hidden tensors `[s, 2H, L+K−1]` and their gradients.
    FfnHidden,
    /// Residual stream, normed input, q/k/v, attention output and their gradients.
    ResidentActivations,
    /// Waveforms, input spectrogram, output spectra, loss buffers.
    StftBuffers,
    /// Transients (norm statistics, RoPE temporaries, permute copies, gradient flow) plus the
    /// backend constant.
    Workspace,
}

impl Category {
    /// Human label for tables.
    pub fn label(&self) -> String {
        match self {
            Category::Weights => "weights".into(),
            Category::Optimizer => "optimizer (AdamW moments)".into(),
            Category::Gradients => "gradients".into(),
            Category::SavedActivations { block } => format!("saved activations, block {block}"),
            Category::RecomputedBlock => "recomputed block (checkpointing)".into(),
            Category::SavedEncoderDecoder => "saved activations, encoder/decoder".into(),
            Category::AttentionScores => "attention scores".into(),
            Category::FfnHidden => "FFN hidden".into(),
            Category::ResidentActivations => "resident activations".into(),
            Category::StftBuffers => "STFT buffers".into(),
            Category::Workspace => "workspace".into(),
        }
    }

    /// Whether the calibration's activation factor applies.
    pub(super) fn is_activation(&self) -> bool {
        !matches!(
            self,
            Category::Weights | Category::Optimizer | Category::Gradients
        )
    }
}
