//! What is alive at each stage of one path (frequency or time) of a block: the inference
//! forward, what autograd keeps per sequence, and the backward's transients.
//!
//! Every function here describes one path on a sub-batch of `s` sequences and returns bytes
//! *beyond* what the caller already holds (the residual stream, saved activations, static
//! memory); `phases.rs` adds those around them.

use super::category::Category;
use super::geometry::{Geom, Parts, Stage, stage};
use super::request::{AttentionStrategy, Mode, PlanRequest};

/// Score-sized tensors autograd keeps per attention call with a materialised softmax.
///
/// burn's `softmax` is composed of `x - max(x).detach()`, `exp`, `sum_dim` and `div`: `div`
/// keeps its numerator `exp(x - max)` (needed for the gradient of the denominator), and the
/// following `P·V` matmul keeps `P`. Two `[batch·heads, L, L]` tensors per call.
pub(super) const SOFTMAX_SAVED_SCORE_TENSORS: u64 = 2;

/// Inference working set of one FFN stage on `s` sequences (beyond the path's resident
/// buffers). `chunk` is the sub-batch's own copy of the residual (0 without path chunking).
///
/// Ownership order: `normed = rms_norm(x)` (x², statistics, normed) → pad + transpose to
/// `[s, C, L+2(K−1)]` (normed dies) → conv1d to `h = [s, 2H, L+K−1]` (padded dies) →
/// `silu(gate)` `[s, H, L+K−1]` → `value · silu` in place (h dies) → ConvTranspose1d to
/// `[s, C, L+2(K−1)]` → crop + transpose to `[s, L, C]` → in-place residual add.
pub(super) fn ffn_stages(g: &Geom, s: u64, h: u64, label: &str, chunk: u64) -> Vec<Stage> {
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
pub(super) fn attention_stages(
    g: &Geom,
    s: u64,
    attention: AttentionStrategy,
    chunk: u64,
) -> Vec<Stage> {
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
pub(super) fn path_inference_stages(
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

/// The largest stage total, bytes (0 for no stages).
pub(super) fn max_total(stages: &[Stage]) -> u64 {
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
pub(super) fn saved_per_sequence(g: &Geom, attention: AttentionStrategy) -> (u64, u64) {
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
pub(super) fn path_backward_stages(
    g: &Geom,
    s: u64,
    attention: AttentionStrategy,
    chunk: u64,
) -> Vec<Stage> {
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

/// Sequences one sub-batch of path `g` runs at once under [`PlanRequest::path_chunk_bytes`]
/// (all `g.b` without a cap).
///
/// The working set sized against the cap is the sub-batch's stage maximum: its inference
/// stages, or in training its backward transients, and with checkpointing also what autograd
/// keeps for the recomputed sub-batch. A chunked sub-batch carries its own input copy (and, in
/// the backward, that copy's gradient).
pub(super) fn path_sub_batch(g: &Geom, req: &PlanRequest) -> u64 {
    let attention = req.attention;
    match req.mode {
        Mode::Inference | Mode::Training => choose_sub_batch(g.b, req.path_chunk_bytes, |s| {
            let chunked = s < g.b;
            let stages = if req.mode.is_training() {
                path_backward_stages(g, s, attention, if chunked { 2 * g.x(s) } else { 0 })
            } else {
                path_inference_stages(g, s, attention, chunked)
            };
            max_total(&stages)
        }),
        Mode::TrainingCheckpointed => choose_sub_batch(g.b, req.path_chunk_bytes, |s| {
            let chunk = if s < g.b { 2 * g.x(s) } else { 0 };
            saved_per_sequence(g, attention).0 * s
                + max_total(&path_backward_stages(g, s, attention, chunk))
        }),
    }
}
