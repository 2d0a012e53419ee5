//! [`plan`]: the peak of one run, and its answer [`MemoryPlan`].
//!
//! `plan` sizes the run (`RunShapes`), the two paths (`Geom`) and their sub-batches, lists the
//! run's phases (`phases.rs`) and picks the largest; everything else here is bookkeeping of
//! what the answer reports.

use serde::Serialize;

use super::category::Category;
use super::geometry::{Geom, Parts, PathKind, Stage};
use super::model::{PlanModel, largest_param_elements, param_count, weight_elements};
use super::phases::{checkpointed_phases, inference_phases, training_phases};
use super::request::{AttentionStrategy, Mode, PlanRequest};
use super::run::RunShapes;
use super::stages::path_sub_batch;
use super::units::F32;

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
    /// Trainable parameters of the model ([`param_count`]).
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

/// Tracks the largest single tensor seen.
#[derive(Default)]
pub(super) struct Largest {
    /// Its bytes (0 before the first offer).
    pub(super) bytes: u64,
    /// Its description.
    pub(super) what: String,
}

impl Largest {
    /// Keeps `bytes` if strictly larger than the largest so far (the first of equals wins);
    /// `what` is only formed then.
    pub(super) fn offer(&mut self, bytes: u64, what: impl FnOnce() -> String) {
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
    let run = RunShapes::new(model, req);
    let paths = [PathKind::Frequency, PathKind::Time]
        .map(|kind| Geom::new(kind, model, run.items, run.t, run.e));
    let subs = paths.each_ref().map(|g| path_sub_batch(g, req));
    let fixed = static_parts(model, req);

    // Offer order matters for ties (the first of equal sizes is named): whole-run tensors,
    // then per path (frequency, time) its score tensor, FFN hidden and qkv.
    let mut largest = whole_run_largest(model, req, &run);
    let path_plans = paths
        .iter()
        .zip(subs)
        .map(|(g, s)| path_plan(g, s, req.attention, &mut largest))
        .collect();

    let phases = match req.mode {
        Mode::Inference => inference_phases(&run, &paths, &subs, req.attention),
        Mode::Training => training_phases(model, &run, &paths, &subs, req.attention),
        Mode::TrainingCheckpointed => checkpointed_phases(model, req, &run, &paths, &subs),
    };
    let (peak_phase, breakdown) = peak_of(&phases, &fixed, req.calibration.activation_factor);
    let peak_bytes = breakdown.iter().map(|(_, b)| b).sum();

    MemoryPlan {
        request: req.clone(),
        param_count: param_count(model),
        segment_seconds: run.n as f64 / model.sample_rate.max(1) as f64,
        items: run.items as usize,
        frames: run.t as usize,
        bins: run.f as usize,
        peak_bytes,
        peak_phase,
        largest_allocation_bytes: largest.bytes,
        offloaded_bytes: if req.offload_checkpoints && req.mode == Mode::TrainingCheckpointed {
            model.n_layers as u64 * run.x_full
        } else {
            0
        },
        largest_allocation: largest.what,
        breakdown,
        paths: path_plans,
    }
}

/// Static memory: the weights, and in training gradients + AdamW moments (f32, with an extra
/// half-precision copy of the weights when activations are f16/bf16); plus the backend
/// constant. Weight-sized terms use [`weight_elements`].
fn static_parts(model: &PlanModel, req: &PlanRequest) -> Parts {
    let e = req.precision.activation_bytes();
    let params = weight_elements(model) as u64;
    let mut fixed = Parts::default();
    if req.mode.is_training() {
        let half_copy = if e < F32 { params * e } else { 0 };
        fixed
            .add(Category::Weights, params * F32 + half_copy)
            .add(Category::Gradients, params * F32)
            .add(Category::Optimizer, 2 * params * F32);
    } else {
        fixed.add(Category::Weights, params * e);
    }
    fixed.add(Category::Workspace, req.calibration.constant_bytes);
    fixed
}

/// The largest of the tensors that do not depend on path sub-batching: the largest parameter,
/// the residual stream, the output spectra and (training) the iSTFT frames.
fn whole_run_largest(model: &PlanModel, req: &PlanRequest, run: &RunShapes) -> Largest {
    let training = req.mode.is_training();
    let (items, c, t, f) = (run.items, run.c, run.t, run.f);
    let ac = model.audio_channels.max(1) as u64;
    let sources = model.n_sources as u64;
    let mut largest = Largest::default();
    largest.offer(
        largest_param_elements(model) as u64 * if training { F32 } else { run.e },
        || "largest parameter tensor (FFN conv1d weight [2H, C, K])".into(),
    );
    largest.offer(run.x_full, || {
        format!("residual stream [{items}, {c}, {t}, {f}]")
    });
    largest.offer(run.stft.spec_out, || {
        format!("output spectra [{items}, {}, {t}, {f}]", 2 * sources * ac)
    });
    if training {
        largest.offer(run.stft.istft_frames, || {
            format!(
                "iSTFT frames [{}, {t}, {}]",
                items * ac * sources,
                model.n_fft
            )
        });
    }
    largest
}

/// How path `g` runs with sub-batches of `s` sequences; offers its score tensor, FFN hidden
/// and qkv to `largest`.
fn path_plan(g: &Geom, s: u64, attention: AttentionStrategy, largest: &mut Largest) -> PathPlan {
    let s_att = g.attention_sub_batch(s, attention);
    let score_bytes = if attention == AttentionStrategy::Fused {
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
    PathPlan {
        name: g.name().into(),
        sequences: g.b as usize,
        length: g.l as usize,
        sub_batch: s as usize,
        attention_sub_batch: s_att as usize,
        score_bytes,
        materialized_score_bytes: g.scores(g.b),
    }
}

/// The peak phase: its name and its breakdown, calibrated (activation terms scaled by
/// `factor`), with the static part added, in report order. The last of equal peaks wins (as
/// `max_by_key` picks); no phases at all gives the static part alone.
fn peak_of(phases: &[Stage], fixed: &Parts, factor: f64) -> (String, Vec<(Category, u64)>) {
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
    breakdown.sort_by_key(|(cat, _)| report_order(cat));
    (peak_phase, breakdown)
}

/// Stable breakdown order: static first, then saved per block, then the rest.
fn report_order(cat: &Category) -> (u8, usize) {
    match cat {
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
}
