//! The question put to the planner: [`PlanRequest`] and the choices it is made of.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::model::PlanModel;
use super::units::format_bytes;

/// What the run does with the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Forward only, no autograd.
    Inference,
    /// Forward + backward + AdamW step; autograd keeps every block's activations.
    Training,
    /// As `Training`, but only each block's input is kept; the backward recomputes one block at
    /// a time (and, with [`PlanRequest::path_chunk_bytes`], one path sub-batch at a time).
    TrainingCheckpointed,
}

impl Mode {
    /// Whether the run has a backward (and so gradients and optimizer state).
    pub(super) fn is_training(self) -> bool {
        !matches!(self, Mode::Inference)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Inference => "inference",
            Mode::Training => "training",
            Mode::TrainingCheckpointed => "training (checkpointed)",
        })
    }
}

/// How attention computes `softmax(QKᵀ/√d)·V`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttentionStrategy {
    /// One `[batch·heads, L, L]` score tensor per call.
    Materialized,
    /// Sequences in sub-batches sized so that one sub-batch's score tensor is at most
    /// `max_score_bytes` (at least one sequence per sub-batch).
    Chunked {
        /// Cap on one sub-batch's `[sub·heads, L, L]` score tensor, bytes.
        max_score_bytes: u64,
    },
    /// Tiled online-softmax kernel: no score tensor, `O(batch·L·d)` memory plus a f32
    /// log-sum-exp `[batch, heads, L]` kept for the backward.
    Fused,
}

impl fmt::Display for AttentionStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttentionStrategy::Materialized => f.write_str("materialised"),
            AttentionStrategy::Chunked { max_score_bytes } => {
                write!(f, "chunked (scores ≤ {})", format_bytes(*max_score_bytes))
            }
            AttentionStrategy::Fused => f.write_str("fused"),
        }
    }
}

/// Element type of activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    /// Everything f32.
    F32,
    /// f16 activations (and f16 weights in inference); training keeps f32 master weights,
    /// f32 gradients and f32 AdamW moments plus an f16 copy of the weights.
    F16,
    /// As `F16`, with bf16.
    BF16,
}

impl Precision {
    /// Bytes of one activation element.
    pub fn activation_bytes(self) -> u64 {
        match self {
            Precision::F32 => 4,
            Precision::F16 | Precision::BF16 => 2,
        }
    }
}

/// Per-backend constants; the only numbers in the planner that may be fitted to measurements.
///
/// `constant_bytes` is what the backend holds regardless of shapes (context, pools, kernels);
/// `activation_factor` scales every activation-derived term (allocator rounding, pooling
/// slack). Both are neutral (0, 1.0) until someone measures them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Fixed bytes the backend holds (added to the workspace).
    pub constant_bytes: u64,
    /// Multiplier applied to activation, score, FFN, STFT and workspace terms.
    pub activation_factor: f64,
}

impl Calibration {
    /// No correction: the pure formulas.
    pub const NEUTRAL: Calibration = Calibration {
        constant_bytes: 0,
        activation_factor: 1.0,
    };
    /// burn-wgpu (cubecl allocator): neutral; the formulas alone land within 0.93–0.995 of the
    /// allocator's in-use peak for inference and training steps (`tests/memory.rs`).
    pub const WGPU: Calibration = Calibration::NEUTRAL;
    /// burn's `flex` CPU backend. Not measured yet: neutral.
    pub const FLEX: Calibration = Calibration::NEUTRAL;
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration::NEUTRAL
    }
}

/// One question to the planner: how much memory does this run need?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRequest {
    /// Samples per segment (chunk) `N`.
    pub segment_samples: usize,
    /// Chunks per forward (≥ 1).
    pub batch: usize,
    /// Channels of the song (1 or 2).
    pub song_channels: usize,
    /// Inference or training (with or without checkpointing).
    pub mode: Mode,
    /// How attention is computed.
    pub attention: AttentionStrategy,
    /// Activation precision.
    pub precision: Precision,
    /// When set, each path runs its sequences (frames on the frequency path, bins on the time
    /// path) in sub-batches sized so that one sub-batch's stage working set (FFN hidden,
    /// attention, and in checkpointed training its saved activations and backward) stays at
    /// most this many bytes; outputs are written into a preallocated path output. `None` runs
    /// each path on all its sequences at once.
    pub path_chunk_bytes: Option<u64>,
    /// Checkpointed training only: the kept block inputs live in host memory, one at a time
    /// on the device (`train --offload`).
    #[serde(default)]
    pub offload_checkpoints: bool,
    /// Backend constants.
    pub calibration: Calibration,
}

impl PlanRequest {
    /// Inference of one mono chunk of the preset's segment with fused attention, f32, no path
    /// chunking, neutral calibration.
    pub fn new(model: &PlanModel) -> Self {
        PlanRequest {
            segment_samples: model.segment_samples,
            batch: 1,
            song_channels: 1,
            mode: Mode::Inference,
            attention: AttentionStrategy::Fused,
            precision: Precision::F32,
            path_chunk_bytes: None,
            offload_checkpoints: false,
            calibration: Calibration::NEUTRAL,
        }
    }
}
