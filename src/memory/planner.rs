//! Analytic peak-memory model of TF-Locoformer: predict, explain and fit before anything runs.
//!
//! Every size here is derived from the real tensor shapes of the network (see
//! `shared/fixtures/tflocoformer/README.md` and `design/ARCHITECTURE.md`), never from a rule
//! of thumb:
//!
//! - STFT with `center=True`: `T = 1 + N / hop` frames, `F = n_fft / 2 + 1` bins.
//! - Items per forward `B = batch · song_channels` for `audio_channels = 1` (each channel of a
//!   stereo song is its own batch item), `B = batch` for `audio_channels = 2`.
//! - The residual stream is `[B, C, T, F]`; the frequency path views it as `[B·T, F, C]`
//!   (attention over `L = F`, batch `B·T` frames), the time path as `[B·F, T, C]`
//!   (attention over `L = T`, batch `B·F` bins).
//! - A materialised score tensor is `[batch·heads, L, L]`; on the frequency path that is
//!   `B·T · heads · F²` elements, which is why `balanced` at 10 s needs 80.89 GiB in one
//!   allocation.
//!
//! The model walks through the stages of the forward (and, in training, the backward) and
//! writes down which tensors are alive at each stage; the peak is the maximum over stages.
//! Burn tensors are moved into ops, so a tensor dies right after its last use; the stage lists
//! below follow that ownership. Only the constant terms are meant to be calibrated per backend
//! ([`Calibration`]); the growth with T, F, layers, heads and batch comes from the formulas.
//!
//! Everything here is pure arithmetic: no burn, no device.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One kibibyte (1024 bytes).
pub const KIB: u64 = 1 << 10;
/// One mebibyte (1024² bytes).
pub const MIB: u64 = 1 << 20;
/// One gibibyte (1024³ bytes).
pub const GIB: u64 = 1 << 30;

/// Bytes of one f32 element (weights, gradients, optimizer moments, STFT buffers, log-sum-exp).
const F32: u64 = 4;

/// Score-sized tensors autograd keeps per attention call with a materialised softmax.
///
/// burn's `softmax` is composed of `x - max(x).detach()`, `exp`, `sum_dim` and `div`: `div`
/// keeps its numerator `exp(x - max)` (needed for the gradient of the denominator), and the
/// following `P·V` matmul keeps `P`. Two `[batch·heads, L, L]` tensors per call.
const SOFTMAX_SAVED_SCORE_TENSORS: u64 = 2;

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
    /// The preset's segment length in samples; [`fit`] starts from it.
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
    fn is_training(self) -> bool {
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
    fn is_activation(&self) -> bool {
        !matches!(
            self,
            Category::Weights | Category::Optimizer | Category::Gradients
        )
    }
}

/// How one path (frequency or time) of every block is run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathPlan {
    /// "frequency" or "time".
    pub name: String,
    /// Sequences the path attends within: `B·T` frames (frequency) or `B·F` bins (time).
    pub sequences: usize,
    /// Sequence length `L`: `F` (frequency) or `T` (time).
    pub length: usize,
    /// Sequences processed at once by the path's stages (= `sequences` without path chunking).
    pub sub_batch: usize,
    /// Sequences per attention call (score tensor batch).
    pub attention_sub_batch: usize,
    /// Bytes of one score tensor as planned (0 with fused attention).
    pub score_bytes: u64,
    /// Bytes a materialised score tensor for the whole path would need.
    pub materialized_score_bytes: u64,
}

/// The planner's answer: peak, largest single allocation and where the bytes go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryPlan {
    /// The request this plan answers.
    pub request: PlanRequest,
    /// Parameter count of the model.
    pub param_count: usize,
    /// Segment length in seconds.
    pub segment_seconds: f64,
    /// Network batch items `B`.
    pub items: usize,
    /// STFT frames `T`.
    pub frames: usize,
    /// STFT bins `F`.
    pub bins: usize,
    /// Predicted peak device memory, bytes (= sum of `breakdown`).
    pub peak_bytes: u64,
    /// Where the peak happens (phase and stage).
    pub peak_phase: String,
    /// The largest single tensor, bytes.
    pub largest_allocation_bytes: u64,
    /// Which tensor that is, with its shape.
    pub largest_allocation: String,
    /// What is alive at the peak, by category (sums to `peak_bytes`).
    pub breakdown: Vec<(Category, u64)>,
    /// How each path is run.
    pub paths: Vec<PathPlan>,
    /// Host memory holding the block inputs with [`PlanRequest::offload_checkpoints`]
    /// (0 otherwise), bytes.
    pub offloaded_bytes: u64,
}

/// Parameter count of the model (what a PyTorch `state_dict` holds, `rope.freqs` included).
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
    // Attention norm, qkv [3A, C], aggregate_heads [C, A], rope.freqs [d/2].
    let path = ffns + norm + 3 * a * c + c * a + model.head_dim() / 2;
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

/// Bytes of the largest single parameter tensor (f32): usually an FFN conv1d `[2H, C, K]`.
fn largest_param_elements(model: &PlanModel) -> usize {
    let c = model.emb_dim;
    let h = model.ffn_hidden.iter().copied().max().unwrap_or(0);
    let candidates = [
        2 * h * c * model.kernel,
        3 * model.attention_dim * c,
        c * 2 * model.n_sources * model.audio_channels * 9,
    ];
    candidates.into_iter().max().unwrap_or(0)
}

/// A list of (category, bytes), merged by category.
#[derive(Debug, Clone, Default)]
struct Parts(Vec<(Category, u64)>);

impl Parts {
    fn add(&mut self, category: Category, bytes: u64) -> &mut Self {
        if bytes == 0 {
            return self;
        }
        if let Some(entry) = self.0.iter_mut().find(|(c, _)| *c == category) {
            entry.1 += bytes;
        } else {
            self.0.push((category, bytes));
        }
        self
    }

    fn with(mut self, category: Category, bytes: u64) -> Self {
        self.add(category, bytes);
        self
    }

    fn extend(&mut self, other: &Parts) -> &mut Self {
        for &(c, b) in &other.0 {
            self.add(c, b);
        }
        self
    }

    fn total(&self) -> u64 {
        self.0.iter().map(|(_, b)| b).sum()
    }
}

/// A named moment of the run and what is alive then.
#[derive(Debug, Clone)]
struct Stage {
    name: String,
    parts: Parts,
}

fn stage(name: impl Into<String>, parts: Parts) -> Stage {
    Stage {
        name: name.into(),
        parts,
    }
}

/// Which of the two paths of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathKind {
    Frequency,
    Time,
}

/// Shapes of one path: `b` sequences of length `l`, everything else from the model.
#[derive(Debug, Clone, Copy)]
struct Geom {
    kind: PathKind,
    /// Sequences: `B·T` (frequency) or `B·F` (time).
    b: u64,
    /// Attended length: `F` (frequency) or `T` (time).
    l: u64,
    /// Network items `B`.
    items: u64,
    c: u64,
    a: u64,
    heads: u64,
    groups: u64,
    k: u64,
    hidden: [u64; 2],
    /// Activation element bytes.
    e: u64,
}

impl Geom {
    fn name(&self) -> &'static str {
        match self.kind {
            PathKind::Frequency => "frequency",
            PathKind::Time => "time",
        }
    }

    /// What one sequence is: "frames" on the frequency path, "bins" on the time path.
    fn unit(&self) -> &'static str {
        match self.kind {
            PathKind::Frequency => "frames",
            PathKind::Time => "bins",
        }
    }

    /// Padded FFN input length `L + 2(K−1)` (pad K−1 both sides).
    fn l_pad(&self) -> u64 {
        self.l + 2 * (self.k - 1)
    }

    /// Conv1d output length `L + 2(K−1) − K + 1 = L + K − 1`.
    fn l_conv(&self) -> u64 {
        self.l + self.k - 1
    }

    /// `[s, L, C]` activation bytes.
    fn x(&self, s: u64) -> u64 {
        s * self.l * self.c * self.e
    }

    /// `[s, C, L+2(K−1)]` padded FFN input (also the deconv output before the crop).
    fn pad(&self, s: u64) -> u64 {
        s * self.l_pad() * self.c * self.e
    }

    /// `[s, H, L+K−1]`: one H-wide slab of the FFN hidden.
    fn hid(&self, s: u64, h: u64) -> u64 {
        s * self.l_conv() * h * self.e
    }

    /// `[s, heads, L, d]` = `[s, L, A]`: one of q, k, v or the attention output.
    fn q(&self, s: u64) -> u64 {
        s * self.l * self.a * self.e
    }

    /// `[s·heads, L, L]` score tensor.
    fn scores(&self, s: u64) -> u64 {
        s * self.heads * self.l * self.l * self.e
    }

    /// `[s, heads, L]` f32 log-sum-exp of the fused kernel.
    fn lse(&self, s: u64) -> u64 {
        s * self.heads * self.l * F32
    }

    /// RMSGroupNorm statistics `[s, L, groups]`, f32.
    fn stats(&self, s: u64) -> u64 {
        s * self.l * self.groups * F32
    }

    /// Sequences per attention call for a stage sub-batch of `s`.
    fn attention_sub_batch(&self, s: u64, attention: AttentionStrategy) -> u64 {
        match attention {
            AttentionStrategy::Chunked { max_score_bytes } => {
                (max_score_bytes / self.scores(1).max(1)).clamp(1, s.max(1))
            }
            AttentionStrategy::Materialized | AttentionStrategy::Fused => s,
        }
    }

    /// "431 frames × 1 item" style description of the sequences.
    fn batch_words(&self) -> String {
        let per_item = self.b / self.items.max(1);
        let item = if self.items == 1 { "item" } else { "items" };
        format!("{per_item} {} × {} {item}", self.unit(), self.items)
    }

    fn score_description(&self, s_att: u64) -> String {
        let who = if s_att == self.b {
            format!("batch = {}", self.batch_words())
        } else {
            format!(
                "sub-batch of {s_att} of {} sequences = {}",
                self.b,
                self.batch_words()
            )
        };
        format!(
            "{}-path attention scores [{}·{}, {}, {}] ({who})",
            self.name(),
            s_att,
            self.heads,
            self.l,
            self.l
        )
    }
}

/// Inference working set of one FFN stage on `s` sequences (beyond the path's resident
/// buffers). `chunk` is the sub-batch's own copy of the residual (0 without path chunking).
///
/// Ownership order: `normed = rms_norm(x)` (x², statistics, normed) → pad + transpose to
/// `[s, C, L+2(K−1)]` (normed dies) → conv1d to `h = [s, 2H, L+K−1]` (padded dies) →
/// `silu(gate)` `[s, H, L+K−1]` → `value · silu` in place (h dies) → ConvTranspose1d to
/// `[s, C, L+2(K−1)]` → crop + transpose to `[s, L, C]` → in-place residual add.
fn ffn_stages(g: &Geom, s: u64, h: u64, label: &str, chunk: u64) -> Vec<Stage> {
    let base = Parts::default().with(Category::ResidentActivations, chunk);
    let name = |what: &str| format!("{} path, {label}: {what}", g.name());
    vec![
        stage(
            name("RMSNorm"),
            base.clone()
                .with(Category::Workspace, 2 * g.x(s) + g.stats(s)),
        ),
        stage(
            name("pad"),
            base.clone().with(Category::Workspace, g.x(s) + g.pad(s)),
        ),
        stage(
            name("conv1d"),
            base.clone()
                .with(Category::Workspace, g.pad(s))
                .with(Category::FfnHidden, g.hid(s, 2 * h)),
        ),
        // h (value + gate) + silu(gate); `value · silu` is written in place into the silu
        // buffer (its only owner), as the allocator trace shows: the FFN's peak.
        stage(
            name("SwiGLU product"),
            base.clone().with(Category::FfnHidden, g.hid(s, 3 * h)),
        ),
        stage(
            name("conv-transpose"),
            base.clone()
                .with(Category::FfnHidden, g.hid(s, h))
                .with(Category::Workspace, g.pad(s)),
        ),
        stage(
            name("crop"),
            base.with(Category::Workspace, g.pad(s) + g.x(s)),
        ),
    ]
}

/// Inference working set of the MHSA stage on `s` sequences.
///
/// Ownership order: norm → `qkv = [s, L, 3A]` (normed dies) → q, k, v made contiguous as
/// `[s, heads, L, d]` (qkv dies, see the RoPE stage) → interleaved RoPE on q and k (two
/// A-sized temporaries) →
/// attention → merge heads `[s, L, A]` → out Linear `[s, L, C]` → in-place residual add.
/// Materialised: `S = q·kᵀ` (q, k die) → `P = softmax(S)` (S and P alive together) →
/// `O = P·V`. Chunked: q, k, v stay alive while each sub-batch's S/P/O is computed and
/// collected, then concatenated. Fused: q, k, v, O and the f32 log-sum-exp.
fn attention_stages(g: &Geom, s: u64, attention: AttentionStrategy, chunk: u64) -> Vec<Stage> {
    let base = Parts::default().with(Category::ResidentActivations, chunk);
    let name = |what: &str| format!("{} path, attention: {what}", g.name());
    let q = g.q(s);
    let mut stages = vec![
        stage(
            name("RMSNorm"),
            base.clone()
                .with(Category::Workspace, 2 * g.x(s) + g.stats(s)),
        ),
        stage(
            name("qkv projection"),
            base.clone()
                .with(Category::Workspace, g.x(s))
                .with(Category::ResidentActivations, 3 * q),
        ),
        stage(
            name("split heads"),
            base.clone().with(Category::ResidentActivations, 6 * q),
        ),
        // qkv is dead once q, k, v are copied out, but the device thread only reuses its
        // memory after the calling thread has dropped it; on a device thread that keeps up
        // with the calls (the usual case in the allocator traces) qkv is still counted when
        // RoPE allocates its two temporaries.
        stage(
            name("RoPE"),
            base.clone()
                .with(Category::ResidentActivations, 6 * q)
                .with(Category::Workspace, 2 * q),
        ),
    ];
    let s_att = g.attention_sub_batch(s, attention);
    match attention {
        AttentionStrategy::Fused => stages.push(stage(
            name("fused kernel"),
            base.clone()
                .with(Category::ResidentActivations, 4 * q)
                .with(Category::Workspace, g.lse(s)),
        )),
        _ if s_att >= s => {
            let sc = g.scores(s);
            stages.push(stage(
                name("QKᵀ"),
                base.clone()
                    .with(Category::ResidentActivations, 3 * q)
                    .with(Category::AttentionScores, sc),
            ));
            stages.push(stage(
                name("softmax"),
                base.clone()
                    .with(Category::ResidentActivations, q)
                    .with(Category::AttentionScores, 2 * sc),
            ));
            stages.push(stage(
                name("P·V"),
                base.clone()
                    .with(Category::ResidentActivations, 2 * q)
                    .with(Category::AttentionScores, sc),
            ));
        }
        _ => {
            // q, k, v + collected outputs (up to one full O) + this chunk's q/k/v slices and
            // output, with its S and P alive together during the softmax.
            let qa = g.q(s_att);
            stages.push(stage(
                name("chunked softmax"),
                base.clone()
                    .with(Category::ResidentActivations, 4 * q + 4 * qa)
                    .with(Category::AttentionScores, 2 * g.scores(s_att)),
            ));
            stages.push(stage(
                name("concatenate chunks"),
                base.clone().with(Category::ResidentActivations, 5 * q),
            ));
        }
    }
    stages.push(stage(
        name("merge heads"),
        base.clone().with(Category::ResidentActivations, 2 * q),
    ));
    stages.push(stage(
        name("out projection"),
        base.with(Category::ResidentActivations, q + g.x(s)),
    ));
    stages
}

/// All inference stages of one path on a sub-batch of `s` sequences (`chunked`: the sub-batch
/// has its own residual copy).
fn path_inference_stages(
    g: &Geom,
    s: u64,
    attention: AttentionStrategy,
    chunked: bool,
) -> Vec<Stage> {
    let chunk = if chunked { g.x(s) } else { 0 };
    let mut stages = ffn_stages(g, s, g.hidden[1], "FFN 1", chunk);
    stages.extend(attention_stages(g, s, attention, chunk));
    stages.extend(ffn_stages(g, s, g.hidden[0], "FFN 0", chunk));
    stages
}

fn max_total(stages: &[Stage]) -> u64 {
    stages.iter().map(|s| s.parts.total()).max().unwrap_or(0)
}

/// Bytes autograd keeps for one sequence of a path (burn's op-level autodiff).
///
/// Per RMSGroupNorm: its input `x` (kept by `powf`/`div`) and `x/(rms+eps)` (kept by the
/// multiply with gamma): `2·L·C`. Per ConvSwiGLU: the padded conv1d input `[C, L+2(K−1)]`,
/// `h = [2H, L+K−1]` (value and gate, kept by the product and `silu`), `sigmoid(gate)` and
/// `silu(gate)` (kept by `silu = gate·sigmoid(gate)` and the product), and the product (kept
/// by the ConvTranspose1d): `5·H·(L+K−1)`. MHSA: the qkv Linear input `L·C`, RoPE'd q and k
/// (kept by `QKᵀ`), v (kept by `P·V`), the merged output (kept by the out Linear): `4·L·A`;
/// materialised/chunked softmax adds [`SOFTMAX_SAVED_SCORE_TENSORS`] score tensors, fused
/// attention the f32 log-sum-exp. RoPE multiplies by constant cos/sin and keeps nothing large.
fn saved_per_sequence(g: &Geom, attention: AttentionStrategy) -> (u64, u64) {
    let ffn = |h: u64| 2 * g.x(1) + g.pad(1) + g.hid(1, 5 * h);
    let attn = 2 * g.x(1) + g.x(1) + 4 * g.q(1);
    let scores = match attention {
        AttentionStrategy::Fused => g.lse(1),
        _ => SOFTMAX_SAVED_SCORE_TENSORS * g.scores(1),
    };
    (ffn(g.hidden[0]) + ffn(g.hidden[1]) + attn + scores, scores)
}

/// Backward transients of one path on `s` sequences (beyond what autograd keeps).
///
/// FFN: gradients of the product, value, silu, gate and `h` (`6·H·(L+K−1)`) plus the padded
/// input gradient and the unpadded one. Attention: `dP = dO·Vᵀ`, `dS` and one temporary
/// (3 score tensors) with dO, dq, dk, dv; fused: dO, dq, dk, dv and the f32 row term `D`.
/// Norm: three `[s, L, C]` temporaries. `chunk`: the sub-batch's input and its gradient.
fn path_backward_stages(g: &Geom, s: u64, attention: AttentionStrategy, chunk: u64) -> Vec<Stage> {
    let base = Parts::default().with(Category::ResidentActivations, chunk);
    let name = |what: &str| format!("{} path backward: {what}", g.name());
    let h = g.hidden[0].max(g.hidden[1]);
    let q = g.q(s);
    let mut stages = vec![
        stage(
            name("FFN"),
            base.clone()
                .with(Category::FfnHidden, g.hid(s, 6 * h))
                .with(Category::Workspace, g.pad(s) + g.x(s)),
        ),
        stage(
            name("RMSNorm"),
            base.clone()
                .with(Category::Workspace, 3 * g.x(s) + g.stats(s)),
        ),
    ];
    let s_att = g.attention_sub_batch(s, attention);
    stages.push(match attention {
        AttentionStrategy::Fused => stage(
            name("fused attention"),
            base.with(Category::ResidentActivations, 4 * q)
                .with(Category::Workspace, g.lse(s)),
        ),
        _ => stage(
            name("attention"),
            base.with(Category::ResidentActivations, 4 * q + 4 * g.q(s_att).min(q))
                .with(Category::AttentionScores, 3 * g.scores(s_att)),
        ),
    });
    stages
}

/// Largest `s ≤ b` whose working set `ws(s)` fits `cap` (at least 1); `b` without a cap.
fn choose_sub_batch(b: u64, cap: Option<u64>, ws: impl Fn(u64) -> u64) -> u64 {
    let Some(cap) = cap else { return b };
    let one = ws(1).max(1);
    let mut s = (cap / one).clamp(1, b.max(1));
    while s > 1 && ws(s) > cap {
        s -= (s / 32).max(1);
    }
    s
}

/// Tracks the largest single tensor seen.
#[derive(Default)]
struct Largest {
    bytes: u64,
    what: String,
}

impl Largest {
    fn offer(&mut self, bytes: u64, what: impl FnOnce() -> String) {
        if bytes > self.bytes {
            self.bytes = bytes;
            self.what = what();
        }
    }
}

/// A request too large for the planner's `u64` byte arithmetic (more than 1 PiB in one term),
/// refused by [`plan_checked`] before any product can overflow.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "this request is too large to plan: {what} alone would need about {bytes:.3e} bytes \
     (the planner handles at most {limit:.3e} bytes per term)"
)]
pub struct PlanTooLarge {
    /// The term that is too large.
    pub what: &'static str,
    /// Its size in bytes (as a float: it may not fit a `u64`).
    pub bytes: f64,
    /// The largest term the planner accepts.
    pub limit: f64,
}

/// The largest term [`plan_checked`] lets through (1 PiB). Every total `plan` forms is a sum of
/// fewer than 256 products, each at most a small constant (≤ 16) times one of the terms bounded
/// there (the per-block ones already summed over the blocks), so `2^8 · 2^4 · 2^50 < 2^64`
/// keeps its `u64` arithmetic from overflowing.
const MAX_TERM_BYTES: u128 = 1 << 50;

/// Like [`plan`], but first bounds, in `u128`, the largest products `plan` forms (residual
/// stream, score tensors, iSTFT frames, output spectra and waveforms, parameters, offloaded
/// inputs) and refuses requests whose arithmetic could overflow.
pub fn plan_checked(model: &PlanModel, req: &PlanRequest) -> Result<MemoryPlan, PlanTooLarge> {
    let w = |x: usize| x.max(1) as u128;
    let n = w(req.segment_samples);
    let t = w(model.frames(req.segment_samples));
    let f = w(model.bins());
    let lf = w(model.freq_len());
    let items = w(req.batch).saturating_mul(w(req.song_channels));
    let ac = w(model.audio_channels);
    let sources = w(model.n_sources);
    let c = w(model.emb_dim).max(w(model.attention_dim));
    let heads = w(model.n_heads);
    let hidden = w(model.ffn_hidden[0].max(model.ffn_hidden[1]));
    let k = w(model.kernel);
    let e = 4u128;
    let l = t.max(lf);
    let prod = |xs: &[u128]| xs.iter().fold(1u128, |acc, &x| acc.saturating_mul(x));
    let terms: [(&'static str, u128); 8] = [
        ("the residual stream", prod(&[items, c, t, lf, e])),
        (
            "one attention score tensor",
            prod(&[items, l, heads, l, l, e]),
        ),
        ("the FFN hidden", prod(&[items, l, l + k, hidden, e])),
        (
            "the saved activations of every block",
            prod(&[
                w(model.n_layers),
                items,
                l,
                l,
                heads * l + k + c + hidden,
                e,
            ]),
        ),
        (
            "the output spectra",
            prod(&[items, sources, ac, t, f, 9, e]),
        ),
        (
            "the iSTFT frames",
            prod(&[items, ac, sources, t, w(model.n_fft), e]),
        ),
        ("the separated waveforms", prod(&[items, ac, sources, n, e])),
        (
            "the offloaded block inputs",
            prod(&[w(model.n_layers), items, c, t, lf, e]),
        ),
    ];
    for (what, bytes) in terms {
        if bytes > MAX_TERM_BYTES {
            return Err(PlanTooLarge {
                what,
                bytes: bytes as f64,
                limit: MAX_TERM_BYTES as f64,
            });
        }
    }
    Ok(plan(model, req))
}

/// Predict the peak device memory of one forward (inference) or one training step.
///
/// See the module docs for the conventions; the returned breakdown lists what is alive at the
/// peak and sums to `peak_bytes`.
pub fn plan(model: &PlanModel, req: &PlanRequest) -> MemoryPlan {
    let e = req.precision.activation_bytes();
    let n = req.segment_samples as u64;
    let t = model.frames(req.segment_samples) as u64;
    let f = model.bins() as u64;
    // The frequency path's length: F bins, or nb bands (band-split).
    let lf = model.freq_len() as u64;
    let band_split = !model.bands.is_empty();
    let items = model.items(req.batch.max(1), req.song_channels) as u64;
    let ac = model.audio_channels.max(1) as u64;
    let sources = model.n_sources as u64;
    let c = model.emb_dim as u64;
    let params = param_count(model) as u64;
    let training = req.mode.is_training();

    let geom = |kind: PathKind| {
        let (b, l) = match kind {
            PathKind::Frequency => (items * t, lf),
            PathKind::Time => (items * lf, t),
        };
        Geom {
            kind,
            b,
            l,
            items,
            c,
            a: model.attention_dim as u64,
            heads: model.n_heads.max(1) as u64,
            groups: model.num_groups.max(1) as u64,
            k: model.kernel.max(1) as u64,
            hidden: [model.ffn_hidden[0] as u64, model.ffn_hidden[1] as u64],
            e,
        }
    };
    let paths = [geom(PathKind::Frequency), geom(PathKind::Time)];
    // One copy of the residual stream [B, C, T, F].
    let x_full = items * c * t * lf * e;

    // Static memory: parameters, and in training gradients + AdamW moments.
    let mut fixed = Parts::default();
    if training {
        let half_copy = if e < F32 { params * e } else { 0 };
        fixed
            .add(Category::Weights, params * F32 + half_copy)
            .add(Category::Gradients, params * F32)
            .add(Category::Optimizer, 2 * params * F32);
    } else {
        fixed.add(Category::Weights, params * e);
    }
    fixed.add(Category::Workspace, req.calibration.constant_bytes);

    // STFT buffers (f32). Waveform channels after the network: B·ac.
    let wave_channels = items * ac;
    let wave_in = wave_channels * n * F32;
    let spec_in = items * 2 * ac * t * f * F32;
    let spec_out = items * 2 * sources * ac * t * f * F32;
    let waves_out = wave_channels * sources * n * F32;
    // Inference: the chunk's waveform in and the separated waveforms out (host-side on wgpu,
    // counted conservatively for the whole run); the spectrogram in lives until the encoder
    // consumes it, the output spectra from the decoder on.
    // Training: the loss (SI-SDR + L1 + spectral) is differentiated through a device iSTFT,
    // so everything from the input spectrogram to the loss is alive at the backward: input
    // waveform + spectrogram, output spectra, iSTFT frames [B·ac·S, T, n_fft], estimated and
    // target waveforms [B·ac, S, N], estimated and target spectra for the spectral loss.
    let istft_frames = wave_channels * sources * t * model.n_fft as u64 * F32;
    let train_stft = wave_in + spec_in + spec_out + istft_frames + 2 * waves_out + 2 * spec_out;

    let mut largest = Largest::default();
    largest.offer(
        largest_param_elements(model) as u64 * if training { F32 } else { e },
        || "largest parameter tensor (FFN conv1d weight [2H, C, K])".into(),
    );
    largest.offer(x_full, || {
        format!("residual stream [{items}, {c}, {t}, {f}]")
    });
    largest.offer(spec_out, || {
        format!("output spectra [{items}, {}, {t}, {f}]", 2 * sources * ac)
    });
    if training {
        largest.offer(istft_frames, || {
            format!(
                "iSTFT frames [{}, {t}, {}]",
                wave_channels * sources,
                model.n_fft
            )
        });
    }

    // Per-path sub-batches.
    let mut path_plans = Vec::new();
    let mut subs = [0u64; 2];
    for (i, g) in paths.iter().enumerate() {
        let s = match req.mode {
            Mode::Inference | Mode::Training => choose_sub_batch(g.b, req.path_chunk_bytes, |s| {
                let chunked = s < g.b;
                let stages = if training {
                    path_backward_stages(g, s, req.attention, if chunked { 2 * g.x(s) } else { 0 })
                } else {
                    path_inference_stages(g, s, req.attention, chunked)
                };
                max_total(&stages)
            }),
            Mode::TrainingCheckpointed => choose_sub_batch(g.b, req.path_chunk_bytes, |s| {
                let chunk = if s < g.b { 2 * g.x(s) } else { 0 };
                saved_per_sequence(g, req.attention).0 * s
                    + max_total(&path_backward_stages(g, s, req.attention, chunk))
            }),
        };
        subs[i] = s;
        let s_att = g.attention_sub_batch(s, req.attention);
        let score_bytes = if req.attention == AttentionStrategy::Fused {
            0
        } else {
            g.scores(s_att)
        };
        if score_bytes > 0 {
            largest.offer(score_bytes, || g.score_description(s_att));
        }
        let h = g.hidden[0].max(g.hidden[1]);
        largest.offer(g.hid(s, 2 * h), || {
            format!(
                "{}-path FFN hidden (conv1d output) [{s}, {}, {}] ({} sequences at once)",
                g.name(),
                2 * h,
                g.l_conv(),
                s
            )
        });
        largest.offer(3 * g.q(s), || {
            format!("{}-path qkv [{s}, {}, {}]", g.name(), g.l, 3 * g.a)
        });
        path_plans.push(PathPlan {
            name: g.name().into(),
            sequences: g.b as usize,
            length: g.l as usize,
            sub_batch: s as usize,
            attention_sub_batch: s_att as usize,
            score_bytes,
            materialized_score_bytes: g.scores(g.b),
        });
    }

    // Encoder/decoder scratch. Conv: im2col buffers [B, 2ac·9, T·F] / [B, 2·S·ac·9, T·F].
    // Band-split: the spectrum permuted to [B, T, F, 2ac]; the bands' outputs concatenated
    // [B, T, 2, S, ac, F] and permuted, plus one band's 4C hidden activations.
    let (enc_workspace, dec_workspace) = if band_split {
        (
            items * 2 * ac * t * f * e,
            2 * items * 2 * sources * ac * t * f * e + 2 * items * t * 4 * c * e,
        )
    } else {
        (
            items * 2 * ac * 9 * t * f * e,
            items * 2 * sources * ac * 9 * t * f * e,
        )
    };

    // Every phase of the run with what is alive; the peak is the largest.
    let mut phases: Vec<Stage> = Vec::new();
    match req.mode {
        Mode::Inference => {
            let host = wave_in + waves_out;
            // Encoder Conv2d: spectrogram in, output [B, C, T, F], and an im2col buffer
            // [B, 2ac·9, T·F] where the backend lowers the conv to a matmul.
            phases.push(stage(
                "encoder conv",
                Parts::default()
                    .with(Category::StftBuffers, host + spec_in)
                    .with(Category::ResidentActivations, x_full)
                    .with(Category::Workspace, enc_workspace),
            ));
            // GroupNorm(1 group): the centred tensor (in place on the moved conv output) and
            // its square for the variance.
            phases.push(stage(
                "encoder GroupNorm",
                Parts::default()
                    .with(Category::StftBuffers, host)
                    .with(Category::ResidentActivations, x_full)
                    .with(Category::Workspace, x_full),
            ));
            for (g, &s) in paths.iter().zip(&subs) {
                let chunked = s < g.b;
                // Path input (and, chunked, the preallocated path output).
                let resident = if chunked { 2 * x_full } else { x_full };
                phases.push(stage(
                    format!("{} path boundary: residual + permuted copy", g.name()),
                    Parts::default()
                        .with(Category::StftBuffers, host)
                        .with(Category::ResidentActivations, 2 * x_full),
                ));
                for st in path_inference_stages(g, s, req.attention, chunked) {
                    let mut parts = Parts::default()
                        .with(Category::StftBuffers, host)
                        .with(Category::ResidentActivations, resident);
                    parts.extend(&st.parts);
                    phases.push(stage(st.name, parts));
                }
            }
            // Decoder ConvTranspose2d: input, output spectra, and a column buffer
            // [B, 2·S·ac·9, T·F] where the backend lowers it to a matmul.
            phases.push(stage(
                "decoder",
                Parts::default()
                    .with(Category::StftBuffers, host + spec_out)
                    .with(Category::ResidentActivations, x_full)
                    .with(Category::Workspace, dec_workspace),
            ));
        }
        Mode::Training => {
            let mut saved = Parts::default()
                .with(Category::StftBuffers, train_stft)
                // Encoder GroupNorm keeps its input and normalised input; the decoder its input.
                .with(Category::SavedEncoderDecoder, 3 * x_full);
            let block: u64 = paths
                .iter()
                .map(|g| g.b * saved_per_sequence(g, req.attention).0)
                .sum();
            for i in 0..model.n_layers {
                saved.add(Category::SavedActivations { block: i }, block);
            }
            for (g, &s) in paths.iter().zip(&subs) {
                let chunk = if s < g.b { 2 * g.x(s) } else { 0 };
                for st in path_backward_stages(g, s, req.attention, chunk) {
                    let mut parts = saved.clone();
                    // Gradient of the residual stream flowing in and out of the stage.
                    parts.add(Category::Workspace, 2 * x_full).extend(&st.parts);
                    phases.push(stage(format!("backward, {}", st.name), parts));
                }
            }
        }
        Mode::TrainingCheckpointed => {
            // The phases of `train::checkpoint` (see its module docs), at the last block, where
            // the most block inputs are kept. Block inputs stay on the device unless offloaded
            // (then only the one being worked on is).
            let n_layers = model.n_layers as u64;
            let kept = |blocks: u64| {
                let mut parts = Parts::default();
                if !req.offload_checkpoints {
                    for i in 0..blocks.min(n_layers) {
                        parts.add(Category::SavedActivations { block: i as usize }, x_full);
                    }
                }
                parts
            };
            // 1. Forward without autograd, last block: the earlier inputs kept, this block's
            //    input alive, and a path's inference stages on its sub-batches.
            for (g, &s) in paths.iter().zip(&subs) {
                let chunked = s < g.b;
                let resident = if chunked { 2 * x_full } else { x_full };
                let mut boundary = kept(n_layers - 1);
                boundary.add(Category::ResidentActivations, 3 * x_full);
                phases.push(stage(
                    format!("no-grad forward, {} path boundary", g.name()),
                    boundary,
                ));
                for st in path_inference_stages(g, s, req.attention, chunked) {
                    let mut parts = kept(n_layers - 1);
                    parts
                        .add(Category::ResidentActivations, x_full + resident)
                        .extend(&st.parts);
                    phases.push(stage(format!("no-grad forward, {}", st.name), parts));
                }
            }
            // 2. Decoder and loss with autograd: every block input kept, the last block's
            //    output (the leaf), the loss buffers, and its gradient with the decoder's
            //    transients.
            let mut head = kept(n_layers);
            head.add(Category::StftBuffers, train_stft)
                .add(Category::SavedEncoderDecoder, x_full)
                .add(Category::Workspace, 2 * x_full);
            phases.push(stage("decoder and loss backward", head));
            // 3. The last block's backward, second path first: the earlier inputs kept; this
            //    block's input, the second path's input and the output gradient as rows, the
            //    input gradient being assembled; one sub-batch recomputed with autograd and its
            //    backward.
            for (g, &s) in paths.iter().zip(&subs).rev() {
                let chunk = if s < g.b { 2 * g.x(s) } else { 0 };
                let saved_sub = s * saved_per_sequence(g, req.attention).0;
                for st in path_backward_stages(g, s, req.attention, chunk) {
                    let mut parts = kept(n_layers - 1);
                    parts
                        .add(Category::ResidentActivations, 4 * x_full)
                        .add(Category::RecomputedBlock, saved_sub)
                        .extend(&st.parts);
                    phases.push(stage(
                        format!("recomputed sub-batch backward, {}", st.name),
                        parts,
                    ));
                }
            }
            // 4. Encoder with autograd: the gradient, the spectrogram, the conv output and the
            //    GroupNorm's kept tensors, and the backward's transients.
            phases.push(stage(
                "encoder backward",
                Parts::default()
                    .with(Category::StftBuffers, spec_in)
                    .with(Category::ResidentActivations, x_full)
                    .with(Category::SavedEncoderDecoder, 3 * x_full)
                    .with(Category::Workspace, 2 * x_full),
            ));
        }
    }

    // Calibrate, add the static part, pick the peak.
    let factor = req.calibration.activation_factor;
    let finish = |parts: &Parts| -> Parts {
        let mut out = fixed.clone();
        for &(cat, bytes) in &parts.0 {
            let b = if cat.is_activation() {
                (bytes as f64 * factor).round() as u64
            } else {
                bytes
            };
            out.add(cat, b);
        }
        out
    };
    let (peak_phase, breakdown) = phases
        .iter()
        .map(|p| (p.name.clone(), finish(&p.parts)))
        .max_by_key(|(_, parts)| parts.total())
        .unwrap_or_else(|| ("static".into(), fixed.clone()));
    let mut breakdown = breakdown.0;
    // Stable order: static first, then saved per block, then the rest.
    breakdown.sort_by_key(|(cat, _)| match cat {
        Category::Weights => (0, 0),
        Category::Gradients => (1, 0),
        Category::Optimizer => (2, 0),
        Category::SavedActivations { block } => (3, *block),
        Category::SavedEncoderDecoder => (4, 0),
        Category::RecomputedBlock => (5, 0),
        Category::ResidentActivations => (6, 0),
        Category::AttentionScores => (7, 0),
        Category::FfnHidden => (8, 0),
        Category::StftBuffers => (9, 0),
        Category::Workspace => (10, 0),
    });
    let peak_bytes = breakdown.iter().map(|(_, b)| b).sum();

    MemoryPlan {
        request: req.clone(),
        param_count: params as usize,
        segment_seconds: n as f64 / model.sample_rate.max(1) as f64,
        items: items as usize,
        frames: t as usize,
        bins: f as usize,
        peak_bytes,
        peak_phase,
        largest_allocation_bytes: largest.bytes,
        offloaded_bytes: if req.offload_checkpoints && req.mode == Mode::TrainingCheckpointed {
            model.n_layers as u64 * x_full
        } else {
            0
        },
        largest_allocation: largest.what,
        breakdown,
        paths: path_plans,
    }
}

impl MemoryPlan {
    /// Bytes of one category in the breakdown (0 when absent; saved blocks summed).
    pub fn bytes_of(&self, matches: impl Fn(&Category) -> bool) -> u64 {
        self.breakdown
            .iter()
            .filter(|(c, _)| matches(c))
            .map(|(_, b)| b)
            .sum()
    }

    /// Aligned text table of the breakdown, the peak and the largest allocation.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let r = &self.request;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} · segment {:.2} s ({} samples) · T = {} frames · F = {} bins · B = {} item(s) · attention {} · {:?}",
            r.mode,
            self.segment_seconds,
            r.segment_samples,
            self.frames,
            self.bins,
            self.items,
            r.attention,
            r.precision
        );
        for p in &self.paths {
            let _ = writeln!(
                out,
                "  {} path: {} sequences of length {}, {} at once, {} per attention call",
                p.name, p.sequences, p.length, p.sub_batch, p.attention_sub_batch
            );
        }
        if self.offloaded_bytes > 0 {
            let _ = writeln!(
                out,
                "  block inputs in host memory: {} of RAM (not counted below)",
                format_bytes(self.offloaded_bytes)
            );
        }
        let rows: Vec<(String, u64)> = self
            .breakdown
            .iter()
            .map(|(c, b)| (c.label(), *b))
            .collect();
        let width = rows
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0)
            .max(20);
        let peak = self.peak_bytes.max(1);
        let _ = writeln!(
            out,
            "  {:<width$}  {:>18}  {:>12}  {:>6}",
            "category", "bytes", "", "share"
        );
        for (label, bytes) in &rows {
            let _ = writeln!(
                out,
                "  {:<width$}  {:>18}  {:>12}  {:>5.1}%",
                label,
                bytes,
                format_bytes(*bytes),
                *bytes as f64 * 100.0 / peak as f64
            );
        }
        let _ = writeln!(
            out,
            "  {:<width$}  {:>18}  {:>12}",
            "peak",
            self.peak_bytes,
            format_bytes(self.peak_bytes)
        );
        let _ = writeln!(out, "  peak during: {}", self.peak_phase);
        let _ = writeln!(
            out,
            "  largest allocation: {} ({} B) — {}",
            format_bytes(self.largest_allocation_bytes),
            self.largest_allocation_bytes,
            self.largest_allocation
        );
        out
    }
}

/// Which attention kernels the backend has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendKind {
    /// The fused WGSL attention kernel is available (wgpu).
    Fused,
    /// Only plain tensor ops (flex CPU): attention is chunked.
    NonFused,
}

/// Knobs of [`fit_with`] beyond the required ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitOptions {
    /// Activation precision.
    pub precision: Precision,
    /// Backend constants.
    pub calibration: Calibration,
    /// Largest batch of chunks tried (inference); training uses batch 1.
    pub max_batch: usize,
    /// Shortest segment allowed, samples (`None`: one second).
    pub min_segment_samples: Option<usize>,
    /// Fraction of the budget the predicted peak may use.
    pub target_fraction: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            precision: Precision::F32,
            calibration: Calibration::NEUTRAL,
            max_batch: 8,
            min_segment_samples: None,
            target_fraction: 0.9,
        }
    }
}

/// What [`fit`] chose, the plan for it, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitResult {
    /// The chosen settings.
    pub request: PlanRequest,
    /// The plan of the chosen settings.
    pub plan: MemoryPlan,
    /// The budget given.
    pub budget_bytes: u64,
    /// The peak allowed (`target_fraction` of the budget).
    pub target_bytes: u64,
    /// One line per decision.
    pub explanation: Vec<String>,
}

/// Why [`fit`] found nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    /// Even the most frugal settings exceed the target.
    #[error(
        "nothing fits in {} ({} usable): the smallest configuration ({smallest}) still peaks at {}",
        format_bytes(*budget_bytes),
        format_bytes(*target_bytes),
        format_bytes(*smallest_peak_bytes)
    )]
    NothingFits {
        /// The budget given.
        budget_bytes: u64,
        /// The usable part of it.
        target_bytes: u64,
        /// The smallest predicted peak found.
        smallest_peak_bytes: u64,
        /// The settings that gave it.
        smallest: String,
    },
}

/// Path-chunk caps tried, from none (fastest) to fine.
const PATH_CHUNK_LADDER: [Option<u64>; 10] = [
    None,
    Some(GIB),
    Some(512 * MIB),
    Some(256 * MIB),
    Some(128 * MIB),
    Some(64 * MIB),
    Some(32 * MIB),
    Some(16 * MIB),
    Some(8 * MIB),
    Some(4 * MIB),
];

/// Choose segment, batch, attention strategy / sub-batches and checkpointing so the predicted
/// peak stays under 90 % of `budget_bytes`, with default [`FitOptions`].
pub fn fit(
    model: &PlanModel,
    budget_bytes: u64,
    song_channels: usize,
    mode: Mode,
    backend: BackendKind,
) -> Result<FitResult, FitError> {
    fit_with(
        model,
        budget_bytes,
        song_channels,
        mode,
        backend,
        &FitOptions::default(),
    )
}

/// [`fit`] with explicit options.
///
/// Search order (first fit wins): the longest segment (the preset's, then shorter in eighths,
/// never below the minimum) → no checkpointing before checkpointing (training) → no path
/// chunking before finer and finer path sub-batches; then the batch grows while it still fits.
/// Attention is fused when the backend has the kernel, else chunked with score tensors capped
/// at the path-chunk cap (1 GiB without path chunking).
pub fn fit_with(
    model: &PlanModel,
    budget_bytes: u64,
    song_channels: usize,
    mode: Mode,
    backend: BackendKind,
    options: &FitOptions,
) -> Result<FitResult, FitError> {
    let target = (budget_bytes as f64 * options.target_fraction) as u64;
    let min_segment = options
        .min_segment_samples
        .unwrap_or(model.sample_rate as usize)
        .max(model.hop);
    let full = model.segment_samples.max(min_segment);
    let mut segments: Vec<usize> = (0..8)
        .map(|k| full * (8 - k) / 8)
        .filter(|&s| s >= min_segment)
        .collect();
    if segments.last() != Some(&min_segment) {
        segments.push(min_segment);
    }
    // (mode, block inputs in host memory), cheapest in time first.
    let modes: &[(Mode, bool)] = match mode {
        Mode::Inference => &[(Mode::Inference, false)],
        Mode::Training => &[
            (Mode::Training, false),
            (Mode::TrainingCheckpointed, false),
            (Mode::TrainingCheckpointed, true),
        ],
        Mode::TrainingCheckpointed => &[
            (Mode::TrainingCheckpointed, false),
            (Mode::TrainingCheckpointed, true),
        ],
    };
    let request = |segment: usize,
                   batch: usize,
                   (mode, offload): (Mode, bool),
                   cap: Option<u64>| PlanRequest {
        offload_checkpoints: offload,
        segment_samples: segment,
        batch,
        song_channels,
        mode,
        attention: match backend {
            BackendKind::Fused => AttentionStrategy::Fused,
            BackendKind::NonFused => AttentionStrategy::Chunked {
                max_score_bytes: cap.unwrap_or(GIB),
            },
        },
        precision: options.precision,
        path_chunk_bytes: cap,
        calibration: options.calibration,
    };

    let mut smallest: Option<(u64, PlanRequest)> = None;
    let mut chosen = None;
    'search: for &segment in &segments {
        for &m in modes {
            for cap in PATH_CHUNK_LADDER {
                let req = request(segment, 1, m, cap);
                let p = plan(model, &req);
                if smallest.as_ref().is_none_or(|(b, _)| p.peak_bytes < *b) {
                    smallest = Some((p.peak_bytes, req.clone()));
                }
                if p.peak_bytes <= target {
                    chosen = Some((req, p));
                    break 'search;
                }
            }
        }
    }
    let Some((mut req, mut chosen_plan)) = chosen else {
        let (peak, req) = smallest.unwrap_or((u64::MAX, request(min_segment, 1, modes[0], None)));
        return Err(FitError::NothingFits {
            budget_bytes,
            target_bytes: target,
            smallest_peak_bytes: peak,
            smallest: describe(model, &req),
        });
    };

    // Grow the batch while it fits (inference only).
    let max_batch = if req.mode.is_training() {
        1
    } else {
        options.max_batch.max(1)
    };
    let mut batch_note = None;
    while req.batch < max_batch {
        let next = PlanRequest {
            batch: req.batch + 1,
            ..req.clone()
        };
        let p = plan(model, &next);
        if p.peak_bytes > target {
            batch_note = Some(format!(
                "batch of {} chunk(s) per forward: {} would peak at {}",
                req.batch,
                next.batch,
                format_bytes(p.peak_bytes)
            ));
            break;
        }
        req = next;
        chosen_plan = p;
    }

    let mut lines = vec![format!(
        "budget {} → planning for a peak ≤ {} ({:.0} %)",
        format_bytes(budget_bytes),
        format_bytes(target),
        options.target_fraction * 100.0
    )];
    if req.segment_samples < full {
        let at_full = request(
            full,
            1,
            *modes.last().unwrap_or(&(mode, false)),
            PATH_CHUNK_LADDER[PATH_CHUNK_LADDER.len() - 1],
        );
        lines.push(format!(
            "segment shortened from {:.2} s to {:.2} s: at {:.2} s even the most frugal settings peak at {}",
            full as f64 / model.sample_rate as f64,
            req.segment_samples as f64 / model.sample_rate as f64,
            full as f64 / model.sample_rate as f64,
            format_bytes(plan(model, &at_full).peak_bytes)
        ));
    } else {
        lines.push(format!(
            "segment {:.2} s (the preset's)",
            full as f64 / model.sample_rate as f64
        ));
    }

    // Attention: what materialising would cost, and what was chosen instead.
    // Per network item (one chunk of one channel), the way the seed's OOM is usually quoted.
    let materialized = plan(
        model,
        &PlanRequest {
            attention: AttentionStrategy::Materialized,
            path_chunk_bytes: None,
            batch: 1,
            song_channels: 1,
            ..req.clone()
        },
    );
    if let Some(worst) = materialized
        .paths
        .iter()
        .max_by_key(|p| p.materialized_score_bytes)
    {
        let unit = if worst.name == "frequency" {
            "frames"
        } else {
            "bins"
        };
        lines.push(format!(
            "materialised {}-path scores would need {} per item in one tensor ([{}·{}, {}, {}], batch = {} {unit}){}",
            worst.name,
            format_bytes(worst.materialized_score_bytes),
            worst.sequences,
            model.n_heads,
            worst.length,
            worst.length,
            worst.sequences,
            if chosen_plan.items > 1 { format!(", × {} items per forward", chosen_plan.items) } else { String::new() }
        ));
    }
    for p in &chosen_plan.paths {
        let unit = if p.name == "frequency" {
            "frames"
        } else {
            "bins"
        };
        match req.attention {
            AttentionStrategy::Fused => {}
            _ => lines.push(format!(
                "chunking {} {unit} in attention sub-batches of {} keeps each {}-path score tensor ≤ {}",
                p.sequences, p.attention_sub_batch, p.name, format_bytes(p.score_bytes)
            )),
        }
    }
    if req.attention == AttentionStrategy::Fused {
        lines.push(
            "fused attention kernel: no score tensor, only q/k/v/output and a f32 log-sum-exp"
                .into(),
        );
    }
    match req.path_chunk_bytes {
        Some(cap) => {
            for p in &chosen_plan.paths {
                let unit = if p.name == "frequency" {
                    "frames"
                } else {
                    "bins"
                };
                lines.push(format!(
                    "{} path runs {} {unit} in sub-batches of {} so one stage's working set stays ≤ {}",
                    p.name, p.sequences, p.sub_batch, format_bytes(cap)
                ));
            }
        }
        None => {
            lines.push("paths run on all their sequences at once (no path chunking needed)".into())
        }
    }
    if req.mode.is_training() {
        let plain = plan(
            model,
            &PlanRequest {
                mode: Mode::Training,
                ..req.clone()
            },
        );
        if req.mode == Mode::TrainingCheckpointed {
            lines.push(format!(
                "training without checkpointing would peak at {}; checkpointing each block (keep block inputs, recompute in backward) peaks at {}",
                format_bytes(plain.peak_bytes),
                format_bytes(chosen_plan.peak_bytes)
            ));
            if req.offload_checkpoints {
                let on_device = plan(
                    model,
                    &PlanRequest {
                        offload_checkpoints: false,
                        ..req.clone()
                    },
                );
                lines.push(format!(
                    "block inputs kept in host memory ({} of RAM): on the device they would peak at {}",
                    format_bytes(chosen_plan.offloaded_bytes),
                    format_bytes(on_device.peak_bytes)
                ));
            }
        } else {
            lines.push(format!(
                "no checkpointing needed: training peaks at {}",
                format_bytes(plain.peak_bytes)
            ));
        }
    }
    if let Some(note) = batch_note {
        lines.push(note);
    } else {
        lines.push(format!(
            "batch of {} chunk(s) per forward (the most allowed)",
            req.batch
        ));
    }
    lines.push(format!(
        "predicted peak {} = {:.1} % of the budget (during {}); largest allocation {}: {}",
        format_bytes(chosen_plan.peak_bytes),
        chosen_plan.peak_bytes as f64 * 100.0 / budget_bytes.max(1) as f64,
        chosen_plan.peak_phase,
        format_bytes(chosen_plan.largest_allocation_bytes),
        chosen_plan.largest_allocation
    ));

    Ok(FitResult {
        request: req,
        plan: chosen_plan,
        budget_bytes,
        target_bytes: target,
        explanation: lines,
    })
}

/// One-line description of a request for messages.
fn describe(model: &PlanModel, req: &PlanRequest) -> String {
    format!(
        "{} · {:.2} s segment · batch {} · attention {} · path chunks {}{}",
        req.mode,
        req.segment_samples as f64 / model.sample_rate.max(1) as f64,
        req.batch,
        req.attention,
        req.path_chunk_bytes
            .map_or("off".to_string(), |c| format!("≤ {}", format_bytes(c))),
        if req.offload_checkpoints {
            " · block inputs in host memory"
        } else {
            ""
        }
    )
}

/// `86856519888` → `"80.89 GiB"`: GiB / MiB / KiB with two decimals, plain bytes below 1 KiB.
pub fn format_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes >= GIB {
        format!("{:.2} GiB", b / GIB as f64)
    } else if bytes >= MIB {
        format!("{:.2} MiB", b / MIB as f64)
    } else if bytes >= KIB {
        format!("{:.2} KiB", b / KIB as f64)
    } else {
        format!("{bytes} B")
    }
}

/// Why a byte count could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing was given.
    #[error("empty size: expected something like 8GiB, 512MiB, 8GB or 123456")]
    Empty,
    /// The number part is not a number.
    #[error("invalid number {0:?} in size: expected something like 8GiB, 1.5GiB or 123456")]
    InvalidNumber(String),
    /// The unit is not one of B, KB/MB/GB/TB (powers of 1000), KiB/MiB/GiB/TiB or K/M/G/T
    /// (powers of 1024).
    #[error(
        "unknown unit {0:?}: use B, KiB, MiB, GiB, TiB (1024-based) or KB, MB, GB, TB (1000-based)"
    )]
    UnknownUnit(String),
    /// A negative size.
    #[error("negative size {0:?}")]
    Negative(String),
    /// A fractional number of bytes without a unit.
    #[error("fractional byte count {0:?}: give whole bytes or a unit (1.5GiB)")]
    FractionalBytes(String),
    /// More than `u64::MAX` bytes.
    #[error("size {0:?} is too large")]
    Overflow(String),
}

/// Parse a memory size: `"8GiB"`, `"512MiB"`, `"8GB"` (10⁹), `"1.5GiB"`, `"123456"`, `"8 G"`.
///
/// Units are case-insensitive; `KiB/MiB/GiB/TiB` and the bare `K/M/G/T` are powers of 1024,
/// `KB/MB/GB/TB` powers of 1000, `B` or nothing is bytes.
pub fn parse_bytes(text: &str) -> Result<u64, ParseError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(ParseError::Empty);
    }
    let split = s
        .find(|ch: char| !(ch.is_ascii_digit() || ch == '.' || ch == '-' || ch == '+'))
        .unwrap_or(s.len());
    let (number, unit) = (s[..split].trim(), s[split..].trim());
    if number.starts_with('-') {
        return Err(ParseError::Negative(text.to_string()));
    }
    if number.is_empty() {
        return Err(ParseError::InvalidNumber(text.to_string()));
    }
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => MIB,
        "g" | "gib" => GIB,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(ParseError::UnknownUnit(unit.to_string())),
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_mul(multiplier)
            .ok_or_else(|| ParseError::Overflow(text.to_string()));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| ParseError::InvalidNumber(number.to_string()))?;
    if !value.is_finite() {
        return Err(ParseError::InvalidNumber(number.to_string()));
    }
    if multiplier == 1 {
        return Err(ParseError::FractionalBytes(text.to_string()));
    }
    let bytes = value * multiplier as f64;
    if bytes >= u64::MAX as f64 {
        return Err(ParseError::Overflow(text.to_string()));
    }
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The presets of `configs/*.toml` as planner input (segment seconds, n_fft, hop, layers,
    /// C, heads, A, H, groups), with the parameter counts of ARCHITECTURE.md.
    fn presets() -> Vec<(&'static str, PlanModel, f64)> {
        let m = |seconds: f64, n_fft, hop, layers, c, heads, a, h, groups| PlanModel {
            n_fft,
            hop,
            n_layers: layers,
            emb_dim: c,
            attention_dim: a,
            n_heads: heads,
            num_groups: groups,
            ffn_hidden: [h, h],
            kernel: 4,
            n_sources: 4,
            audio_channels: 1,
            sample_rate: 44_100,
            segment_samples: (seconds * 44_100.0) as usize,
            bands: vec![],
            layer_norm: false,
        };
        vec![
            ("small", m(2.0, 1024, 256, 3, 48, 4, 48, 192, 4), 1.39e6),
            (
                "ultra-safe",
                m(3.0, 2048, 512, 4, 96, 4, 96, 384, 4),
                7.40e6,
            ),
            (
                "memory-optimized",
                m(5.0, 2048, 512, 6, 128, 8, 128, 512, 8),
                19.7e6,
            ),
            (
                "balanced",
                m(10.0, 4096, 1024, 8, 192, 12, 192, 768, 4),
                59.1e6,
            ),
            (
                "xlarge",
                m(15.0, 4096, 1024, 12, 256, 16, 256, 1024, 8),
                157e6,
            ),
        ]
    }

    fn preset(name: &str) -> PlanModel {
        presets()
            .into_iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, m, _)| m)
            .expect("known preset")
    }

    fn demo() -> PlanModel {
        PlanModel {
            n_fft: 512,
            hop: 128,
            n_layers: 2,
            emb_dim: 32,
            attention_dim: 32,
            n_heads: 4,
            num_groups: 4,
            ffn_hidden: [64, 64],
            kernel: 4,
            n_sources: 4,
            audio_channels: 1,
            sample_rate: 44_100,
            segment_samples: 3 * 44_100,
            bands: vec![],
            layer_norm: false,
        }
    }

    fn req(model: &PlanModel, mode: Mode, attention: AttentionStrategy) -> PlanRequest {
        PlanRequest {
            mode,
            attention,
            ..PlanRequest::new(model)
        }
    }

    #[test]
    fn huge_requests_are_refused_not_overflowed() {
        let m = preset("xlarge");
        for (segment_samples, batch) in [
            (usize::MAX, 1),
            (1_000_000_000_000 * 44_100, 1),
            (m.segment_samples, usize::MAX),
            (usize::MAX, usize::MAX),
        ] {
            for mode in [Mode::Inference, Mode::Training, Mode::TrainingCheckpointed] {
                let r = PlanRequest {
                    segment_samples,
                    batch,
                    song_channels: 2,
                    mode,
                    ..PlanRequest::new(&m)
                };
                let err = plan_checked(&m, &r).expect_err("must be refused");
                assert!(err.to_string().contains("too large to plan"), "{err}");
            }
        }
        // A large but plannable request goes through without an overflow panic.
        let r = PlanRequest {
            segment_samples: 10 * 44_100,
            batch: 16,
            song_channels: 2,
            mode: Mode::Training,
            attention: AttentionStrategy::Materialized,
            ..PlanRequest::new(&m)
        };
        let p = plan_checked(&m, &r).expect("plannable");
        assert!(p.peak_bytes > 0);
    }

    #[test]
    fn param_counts_match_the_preset_table() {
        for (name, model, expected) in presets() {
            let got = param_count(&model) as f64;
            let rel = (got - expected).abs() / expected;
            assert!(
                rel < 0.005,
                "{name}: {got} parameters vs {expected} ({:.3} %)",
                rel * 100.0
            );
        }
        // Exact for `small` (hand-derived): 3 · 2 · 231 414 + 1 008 + 3 464.
        assert_eq!(param_count(&preset("small")), 1_392_956);
    }

    #[test]
    fn balanced_materialised_reproduces_the_seed_oom() {
        let model = preset("balanced");
        let r = PlanRequest {
            segment_samples: 441_000,
            ..req(&model, Mode::Inference, AttentionStrategy::Materialized)
        };
        let p = plan(&model, &r);
        assert_eq!(p.frames, 431);
        assert_eq!(p.bins, 2049);
        assert_eq!(p.largest_allocation_bytes, 86_856_519_888);
        assert_eq!(p.largest_allocation_bytes, 431 * 12 * 2049 * 2049 * 4);
        assert_eq!(format_bytes(p.largest_allocation_bytes), "80.89 GiB");
        assert!(
            p.largest_allocation.contains("frequency-path"),
            "{}",
            p.largest_allocation
        );
        assert!(
            p.largest_allocation.contains("431 frames"),
            "{}",
            p.largest_allocation
        );
        assert_eq!(
            p.largest_allocation,
            "frequency-path attention scores [431·12, 2049, 2049] (batch = 431 frames × 1 item)"
        );
        // Softmax input and output alive together.
        assert!(p.peak_bytes > 2 * 86_856_519_888);
        println!("{}", p.table());
    }

    #[test]
    fn frequency_path_score_tensors_of_the_other_presets() {
        for (name, gib) in [
            ("ultra-safe", 4.05),
            ("memory-optimized", 13.5),
            ("xlarge", 161.6),
        ] {
            let model = preset(name);
            let p = plan(
                &model,
                &req(&model, Mode::Inference, AttentionStrategy::Materialized),
            );
            let got = p.largest_allocation_bytes as f64 / GIB as f64;
            assert!(
                (got - gib).abs() < 0.01 * gib,
                "{name}: {got:.3} GiB vs {gib}"
            );
            assert!(
                p.largest_allocation
                    .starts_with("frequency-path attention scores"),
                "{name}: {}",
                p.largest_allocation
            );
        }
    }

    #[test]
    fn fused_inference_with_path_chunks_stays_under_4_gib_for_every_preset() {
        for (name, model, _) in presets() {
            let r = PlanRequest {
                path_chunk_bytes: Some(256 * MIB),
                ..req(&model, Mode::Inference, AttentionStrategy::Fused)
            };
            let p = plan(&model, &r);
            assert!(
                p.peak_bytes <= 4 * GIB,
                "{name}: {}\n{}",
                format_bytes(p.peak_bytes),
                p.table()
            );
            assert_eq!(p.bytes_of(|c| *c == Category::AttentionScores), 0);
        }
    }

    #[test]
    fn breakdown_sums_to_peak_and_largest_fits_in_peak() {
        for (_, model, _) in presets() {
            for mode in [Mode::Inference, Mode::Training, Mode::TrainingCheckpointed] {
                for attention in [
                    AttentionStrategy::Materialized,
                    AttentionStrategy::Chunked {
                        max_score_bytes: 256 * MIB,
                    },
                    AttentionStrategy::Fused,
                ] {
                    for cap in [None, Some(128 * MIB)] {
                        let r = PlanRequest {
                            path_chunk_bytes: cap,
                            ..req(&model, mode, attention)
                        };
                        let p = plan(&model, &r);
                        assert_eq!(
                            p.peak_bytes,
                            p.breakdown.iter().map(|(_, b)| b).sum::<u64>()
                        );
                        assert!(p.largest_allocation_bytes <= p.peak_bytes);
                    }
                }
            }
        }
    }

    #[test]
    fn peak_grows_with_segment_batch_and_layers() {
        let strategies = [
            AttentionStrategy::Materialized,
            AttentionStrategy::Chunked {
                max_score_bytes: 64 * MIB,
            },
            AttentionStrategy::Fused,
        ];
        for (name, model, _) in presets() {
            for mode in [Mode::Inference, Mode::Training, Mode::TrainingCheckpointed] {
                for attention in strategies {
                    let base = req(&model, mode, attention);
                    let peak = |r: &PlanRequest, m: &PlanModel| plan(m, r).peak_bytes;
                    let mut last = 0;
                    for seconds in [1usize, 2, 4, 8, 16] {
                        let p = peak(
                            &PlanRequest {
                                segment_samples: seconds * 44_100,
                                ..base.clone()
                            },
                            &model,
                        );
                        assert!(p > last, "{name} {mode} {attention}: {seconds} s");
                        last = p;
                    }
                    let mut last = 0;
                    for batch in 1..=4 {
                        let p = peak(
                            &PlanRequest {
                                batch,
                                ..base.clone()
                            },
                            &model,
                        );
                        assert!(p > last, "{name} {mode} {attention}: batch {batch}");
                        last = p;
                    }
                    let mut last = 0;
                    for layers in 1..=6 {
                        let m = PlanModel {
                            n_layers: layers,
                            ..model.clone()
                        };
                        let p = peak(&base, &m);
                        assert!(p > last, "{name} {mode} {attention}: {layers} layers");
                        last = p;
                    }
                }
            }
        }
    }

    #[test]
    fn chunked_attention_caps_each_score_tensor() {
        let model = preset("balanced");
        let cap = 1200 * MIB;
        let p = plan(
            &model,
            &req(
                &model,
                Mode::Inference,
                AttentionStrategy::Chunked {
                    max_score_bytes: cap,
                },
            ),
        );
        let f = &p.paths[0];
        assert_eq!(f.name, "frequency");
        // One frame's scores: 12 · 2049² · 4 B ≈ 192 MiB → 6 frames per call.
        assert_eq!(f.attention_sub_batch, 6);
        assert!(f.score_bytes <= cap);
        assert!(p.bytes_of(|c| *c == Category::AttentionScores) <= 2 * cap);
    }

    #[test]
    fn calibration_only_moves_constants_and_scales_activations() {
        let model = preset("ultra-safe");
        let base = req(&model, Mode::Inference, AttentionStrategy::Fused);
        let p0 = plan(&model, &base);
        let cal = Calibration {
            constant_bytes: 100 * MIB,
            activation_factor: 1.1,
        };
        let p1 = plan(
            &model,
            &PlanRequest {
                calibration: cal,
                ..base
            },
        );
        let weights = p0.bytes_of(|c| *c == Category::Weights);
        let expected = weights + ((p0.peak_bytes - weights) as f64 * 1.1) as u64 + 100 * MIB;
        assert!(
            p1.peak_bytes.abs_diff(expected) < 64,
            "{} vs {expected}",
            p1.peak_bytes
        );
    }

    #[test]
    fn fit_stays_under_90_percent_and_explains() {
        for (name, model, _) in presets().into_iter().chain([("demo", demo(), 0.0)]) {
            for budget in [1, 2, 4, 8, 24].map(|g| g * GIB) {
                for (mode, backend) in [
                    (Mode::Inference, BackendKind::Fused),
                    (Mode::Inference, BackendKind::NonFused),
                    (Mode::Training, BackendKind::Fused),
                    (Mode::Training, BackendKind::NonFused),
                ] {
                    for channels in [1, 2] {
                        match fit(&model, budget, channels, mode, backend) {
                            Ok(r) => {
                                assert!(
                                    r.plan.peak_bytes * 10 <= budget * 9,
                                    "{name} {mode}: {}",
                                    r.plan.peak_bytes
                                );
                                assert_eq!(r.plan, plan(&model, &r.request));
                                assert!(r.explanation.len() >= 4);
                                assert!(r.explanation.iter().any(|l| l.contains("materialised")));
                                assert!(r.request.segment_samples >= 44_100);
                                assert!(r.request.batch >= 1);
                                if backend == BackendKind::Fused {
                                    assert_eq!(r.request.attention, AttentionStrategy::Fused);
                                }
                            }
                            Err(e) => {
                                let FitError::NothingFits {
                                    smallest_peak_bytes,
                                    target_bytes,
                                    ..
                                } = &e;
                                assert!(smallest_peak_bytes > target_bytes);
                                assert!(e.to_string().contains("nothing fits"));
                            }
                        }
                    }
                }
            }
        }
        // Inference always fits in 2 GiB for every preset (at some segment).
        for (name, model, _) in presets() {
            let r = fit(&model, 2 * GIB, 2, Mode::Inference, BackendKind::Fused).expect(name);
            println!(
                "{name}, 2 GiB, stereo, fused:\n  {}",
                r.explanation.join("\n  ")
            );
        }
        let model = preset("balanced");
        let r = fit(&model, 8 * GIB, 1, Mode::Inference, BackendKind::NonFused).expect("fits");
        println!(
            "balanced, 8 GiB, non-fused:\n  {}",
            r.explanation.join("\n  ")
        );
        assert!(r.explanation.iter().any(|l| l.contains("80.89 GiB")));
        assert!(
            r.explanation
                .iter()
                .any(|l| l.contains("attention sub-batches of"))
        );
    }

    #[test]
    fn fit_reports_nothing_fits_with_the_smallest_peak() {
        let model = preset("xlarge");
        let err =
            fit(&model, 256 * MIB, 2, Mode::Training, BackendKind::Fused).expect_err("too small");
        let msg = err.to_string();
        assert!(msg.contains("nothing fits in 256.00 MiB"), "{msg}");
        assert!(msg.contains("still peaks at"), "{msg}");
    }

    #[test]
    fn format_and_parse_bytes() {
        assert_eq!(format_bytes(86_856_519_888), "80.89 GiB");
        assert_eq!(format_bytes(512 * MIB), "512.00 MiB");
        assert_eq!(format_bytes(1536), "1.50 KiB");
        assert_eq!(format_bytes(12), "12 B");
        assert_eq!(parse_bytes("8GiB"), Ok(8 * GIB));
        assert_eq!(parse_bytes("512MiB"), Ok(512 * MIB));
        assert_eq!(parse_bytes("8GB"), Ok(8_000_000_000));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 * GIB / 2));
        assert_eq!(parse_bytes("123456"), Ok(123_456));
        assert_eq!(parse_bytes(" 8 gib "), Ok(8 * GIB));
        assert_eq!(parse_bytes("8G"), Ok(8 * GIB));
        assert_eq!(parse_bytes(""), Err(ParseError::Empty));
        assert!(matches!(
            parse_bytes("8 parsecs"),
            Err(ParseError::UnknownUnit(_))
        ));
        assert!(matches!(
            parse_bytes("GiB"),
            Err(ParseError::InvalidNumber(_))
        ));
        assert!(matches!(
            parse_bytes("1.2.3GiB"),
            Err(ParseError::InvalidNumber(_))
        ));
        assert!(matches!(parse_bytes("-1GiB"), Err(ParseError::Negative(_))));
        assert!(matches!(
            parse_bytes("1.5"),
            Err(ParseError::FractionalBytes(_))
        ));
        assert!(matches!(
            parse_bytes("99999999999TiB"),
            Err(ParseError::Overflow(_))
        ));
        assert!(
            parse_bytes("8 parsecs")
                .unwrap_err()
                .to_string()
                .contains("GiB")
        );
    }

    #[test]
    fn plan_serialises_to_json() {
        let model = preset("small");
        let p = plan(
            &model,
            &req(&model, Mode::TrainingCheckpointed, AttentionStrategy::Fused),
        );
        let json = serde_json::to_value(&p).expect("serialise");
        assert_eq!(json["peak_bytes"].as_u64(), Some(p.peak_bytes));
        assert!(json["breakdown"].as_array().is_some_and(|b| !b.is_empty()));
        let back: PlanRequest =
            serde_json::from_value(json["request"].clone()).expect("round trip");
        assert_eq!(back, p.request);
    }

    #[test]
    fn checkpointed_fused_training_fits_24_gib() {
        let cap = Some(256 * MIB);
        for (name, model, _) in presets() {
            let base = PlanRequest {
                path_chunk_bytes: cap,
                ..req(&model, Mode::TrainingCheckpointed, AttentionStrategy::Fused)
            };
            let half = plan(
                &model,
                &PlanRequest {
                    precision: Precision::BF16,
                    ..base.clone()
                },
            );
            assert!(
                half.peak_bytes <= 24 * GIB,
                "{name} bf16: {}",
                format_bytes(half.peak_bytes)
            );
            let full = plan(&model, &base);
            // XLarge f32 at 15 s included: 12 block inputs of 1.26 GiB + one path sub-batch.
            assert!(
                full.peak_bytes <= 24 * GIB,
                "{name} f32: {}",
                format_bytes(full.peak_bytes)
            );
            // Block inputs in host memory: the device holds one of them.
            let offloaded = plan(
                &model,
                &PlanRequest {
                    offload_checkpoints: true,
                    ..base.clone()
                },
            );
            assert!(offloaded.peak_bytes < full.peak_bytes, "{name}");
            assert_eq!(
                offloaded.offloaded_bytes,
                model.n_layers as u64
                    * offloaded.items as u64
                    * model.emb_dim as u64
                    * offloaded.frames as u64
                    * offloaded.bins as u64
                    * 4
            );
            let fitted = fit(&model, 24 * GIB, 1, Mode::Training, BackendKind::Fused).expect(name);
            println!(
                "{name}, 24 GiB, training, fused:\n  {}",
                fitted.explanation.join("\n  ")
            );
        }
        let model = preset("xlarge");
        let p = plan(
            &model,
            &PlanRequest {
                path_chunk_bytes: cap,
                ..req(&model, Mode::TrainingCheckpointed, AttentionStrategy::Fused)
            },
        );
        println!("{}", p.table());
    }

    /// `cargo test -- --nocapture preset_peak_table` prints the table of the report.
    #[test]
    fn preset_peak_table() {
        let row = |m: &PlanModel, mode, attention, cap| {
            let p = plan(
                m,
                &PlanRequest {
                    path_chunk_bytes: cap,
                    ..req(m, mode, attention)
                },
            );
            format!("{:>10}", format_bytes(p.peak_bytes))
        };
        let chunked = AttentionStrategy::Chunked {
            max_score_bytes: 256 * MIB,
        };
        println!(
            "{:<17} {:>6} {:>8} | {:>10} {:>10} {:>10} {:>10} {:>10} | {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "preset",
            "seg",
            "params",
            "inf mat",
            "inf chk",
            "inf fused",
            "chk+path",
            "fus+path",
            "tr fused",
            "tr ck fus",
            "tr ck chk",
            "ckF+path",
            "ckC+path",
            "ckF+p bf16"
        );
        for (name, m, _) in presets().into_iter().chain([("demo", demo(), 0.0)]) {
            let cap = Some(256 * MIB);
            println!(
                "{:<17} {:>5.1}s {:>7.2}M | {} {} {} {} {} | {} {} {} {} {} {:>10}",
                name,
                m.segment_samples as f64 / 44_100.0,
                param_count(&m) as f64 / 1e6,
                row(&m, Mode::Inference, AttentionStrategy::Materialized, None),
                row(&m, Mode::Inference, chunked, None),
                row(&m, Mode::Inference, AttentionStrategy::Fused, None),
                row(&m, Mode::Inference, chunked, cap),
                row(&m, Mode::Inference, AttentionStrategy::Fused, cap),
                row(&m, Mode::Training, AttentionStrategy::Fused, None),
                row(
                    &m,
                    Mode::TrainingCheckpointed,
                    AttentionStrategy::Fused,
                    None
                ),
                row(&m, Mode::TrainingCheckpointed, chunked, None),
                row(
                    &m,
                    Mode::TrainingCheckpointed,
                    AttentionStrategy::Fused,
                    cap
                ),
                row(&m, Mode::TrainingCheckpointed, chunked, cap),
                format_bytes(
                    plan(
                        &m,
                        &PlanRequest {
                            path_chunk_bytes: cap,
                            precision: Precision::BF16,
                            ..req(&m, Mode::TrainingCheckpointed, AttentionStrategy::Fused)
                        }
                    )
                    .peak_bytes
                ),
            );
        }
    }
}
