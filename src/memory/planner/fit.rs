//! [`fit`] / [`fit_with`]: the settings that keep the predicted peak under a budget, and the
//! lines that explain the choice.

use serde::{Deserialize, Serialize};

use super::model::PlanModel;
use super::plan::{MemoryPlan, plan};
use super::request::{AttentionStrategy, Calibration, Mode, PlanRequest, Precision};
use super::units::{GIB, MIB, format_bytes};

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
    /// The device's largest single buffer (cubecl's `max_page_size`: 128 MiB on lavapipe,
    /// about 2 GiB on NVIDIA/AMD Vulkan); settings whose largest allocation exceeds it are
    /// passed over. `None`: no limit (the CPU).
    #[serde(default)]
    pub max_allocation_bytes: Option<u64>,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            precision: Precision::F32,
            calibration: Calibration::NEUTRAL,
            max_batch: 8,
            min_segment_samples: None,
            target_fraction: 0.9,
            max_allocation_bytes: None,
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
    /// Settings within the budget exist, but each needs one buffer larger than the device's
    /// largest, down to one item with the finest path sub-batches.
    #[error(
        "{what} needs {} in one buffer, more than this device's largest buffer ({}), even for \
         one item (one segment of one channel) with every path in the finest sub-batches; {}",
        format_bytes(*bytes),
        format_bytes(*limit_bytes),
        longest_segment_note(*longest_segment_seconds)
    )]
    BufferTooLarge {
        /// The tensor, with its shape.
        what: String,
        /// Its bytes.
        bytes: u64,
        /// The device's largest buffer.
        limit_bytes: u64,
        /// The longest segment (s) whose buffers all fit under the limit with those settings;
        /// `None` when not even one hop does.
        longest_segment_seconds: Option<f64>,
    },
}

/// The end of [`FitError::BufferTooLarge`]'s message.
fn longest_segment_note(seconds: Option<f64>) -> String {
    match seconds {
        Some(s) => format!("the longest segment that fits is {s:.3} s"),
        None => "even a segment of one hop needs a larger buffer".into(),
    }
}

impl FitError {
    /// The [`FitError::BufferTooLarge`] of `req` (its plan's largest allocation exceeds
    /// `limit`), with the longest segment that fits at the same settings.
    pub(super) fn buffer_too_large(model: &PlanModel, req: &PlanRequest, limit: u64) -> FitError {
        let p = plan(model, req);
        FitError::BufferTooLarge {
            what: p.largest_allocation,
            bytes: p.largest_allocation_bytes,
            limit_bytes: limit,
            longest_segment_seconds: longest_segment_within(model, req, limit)
                .map(|n| n as f64 / model.sample_rate.max(1) as f64),
        }
    }
}

/// The longest segment (samples, at least one hop, at most `req`'s) whose largest allocation
/// at `req`'s other settings is at most `limit`; `None` when even one hop exceeds it. The
/// largest allocation grows with the segment, so a bisection finds it.
pub(super) fn longest_segment_within(
    model: &PlanModel,
    req: &PlanRequest,
    limit: u64,
) -> Option<usize> {
    let fits = |samples: usize| {
        let r = PlanRequest {
            segment_samples: samples,
            ..req.clone()
        };
        plan(model, &r).largest_allocation_bytes <= limit
    };
    let (mut lo, mut hi) = (model.hop.max(1), req.segment_samples.max(1));
    if !fits(lo) {
        return None;
    }
    if fits(hi) {
        return Some(hi);
    }
    // fits(lo) and !fits(hi).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(lo)
}

/// Path-chunk caps tried, from none (fastest) to fine.
pub(super) const PATH_CHUNK_LADDER: [Option<u64>; 10] = [
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
/// at the path-chunk cap (1 GiB without path chunking). With
/// [`FitOptions::max_allocation_bytes`], a candidate whose largest allocation exceeds it does
/// not fit whatever its peak; when that leaves nothing, the error is
/// [`FitError::BufferTooLarge`].
pub fn fit_with(
    model: &PlanModel,
    budget_bytes: u64,
    song_channels: usize,
    mode: Mode,
    backend: BackendKind,
    options: &FitOptions,
) -> Result<FitResult, FitError> {
    let target = (budget_bytes as f64 * options.target_fraction) as u64;
    let segments = SegmentLadder::new(model, options);
    let modes = mode_ladder(mode);
    let candidates = Candidates {
        song_channels,
        backend,
        options,
    };
    let limit = options.max_allocation_bytes;
    let mut search = first_fit(model, &segments, modes, &candidates, target, limit);
    let (req, first_plan) = match search.found.take() {
        Some(found) => found,
        None => {
            // Within the budget but over the device's buffer limit: name the buffer.
            if let (Some(limit), Some(over)) = (limit, &search.first_over_limit) {
                let finest = candidates.request(
                    segments.full,
                    1,
                    over.0,
                    PATH_CHUNK_LADDER[PATH_CHUNK_LADDER.len() - 1],
                );
                return Err(FitError::buffer_too_large(model, &finest, limit));
            }
            let (peak, req) = search.smallest.unwrap_or((
                u64::MAX,
                candidates.request(segments.min, 1, modes[0], None),
            ));
            return Err(FitError::NothingFits {
                budget_bytes,
                target_bytes: target,
                smallest_peak_bytes: peak,
                smallest: describe(model, &req),
            });
        }
    };
    // Batches beyond one only in inference: training steps use batch 1.
    let max_batch = if req.mode.is_training() {
        1
    } else {
        options.max_batch.max(1)
    };
    let (req, chosen_plan, batch_note) =
        grow_batch(model, req, first_plan, target, limit, max_batch);

    let mut lines = vec![format!(
        "budget {} → planning for a peak ≤ {} ({:.0} %)",
        format_bytes(budget_bytes),
        format_bytes(target),
        options.target_fraction * 100.0
    )];
    // The most frugal settings at the full segment: what shortening the segment avoided.
    let at_full = candidates.request(
        segments.full,
        1,
        *modes.last().unwrap_or(&(mode, false)),
        PATH_CHUNK_LADDER[PATH_CHUNK_LADDER.len() - 1],
    );
    lines.push(segment_line(model, segments.full, &req, &at_full));
    lines.extend(attention_lines(model, &req, &chosen_plan));
    lines.extend(path_chunk_lines(&req, &chosen_plan));
    lines.extend(training_lines(model, &req, &chosen_plan));
    if let Some(limit) = limit {
        lines.push(limit_line(&search, &chosen_plan, limit));
    }
    lines.push(batch_note.unwrap_or_else(|| {
        format!(
            "batch of {} chunk(s) per forward (the most allowed)",
            req.batch
        )
    }));
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

/// Segment lengths tried, longest first.
struct SegmentLadder {
    /// The preset's segment (at least the minimum).
    full: usize,
    /// The shortest allowed: `min_segment_samples` (default one second), at least one hop.
    min: usize,
    /// `full`, then shorter in eighths of it, none below `min`; always ends with `min`.
    lengths: Vec<usize>,
}

impl SegmentLadder {
    /// The ladder for `model` under `options`.
    fn new(model: &PlanModel, options: &FitOptions) -> SegmentLadder {
        let min = options
            .min_segment_samples
            .unwrap_or(model.sample_rate as usize)
            .max(model.hop);
        let full = model.segment_samples.max(min);
        let mut lengths: Vec<usize> = (0..8)
            .map(|k| full * (8 - k) / 8)
            .filter(|&s| s >= min)
            .collect();
        if lengths.last() != Some(&min) {
            lengths.push(min);
        }
        SegmentLadder { full, min, lengths }
    }
}

/// (mode, block inputs in host memory) tried for `mode`, cheapest in time first; never empty.
fn mode_ladder(mode: Mode) -> &'static [(Mode, bool)] {
    match mode {
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
    }
}

/// What every candidate request shares.
struct Candidates<'a> {
    song_channels: usize,
    backend: BackendKind,
    options: &'a FitOptions,
}

impl Candidates<'_> {
    /// The request for one point of the search. Attention follows the backend: fused, or
    /// chunked with score tensors capped at the path-chunk cap (1 GiB without one).
    fn request(
        &self,
        segment: usize,
        batch: usize,
        (mode, offload): (Mode, bool),
        cap: Option<u64>,
    ) -> PlanRequest {
        PlanRequest {
            offload_checkpoints: offload,
            segment_samples: segment,
            batch,
            song_channels: self.song_channels,
            mode,
            attention: match self.backend {
                BackendKind::Fused => AttentionStrategy::Fused,
                BackendKind::NonFused => AttentionStrategy::Chunked {
                    max_score_bytes: cap.unwrap_or(GIB),
                },
            },
            precision: self.options.precision,
            path_chunk_bytes: cap,
            calibration: self.options.calibration,
        }
    }
}

/// What [`first_fit`] saw.
struct Search {
    /// The first request that fits, with its plan.
    found: Option<(PlanRequest, MemoryPlan)>,
    /// The smallest peak seen and its request (`None` only if nothing was tried).
    smallest: Option<(u64, PlanRequest)>,
    /// Requests within the target passed over for a buffer above the device limit.
    over_limit: usize,
    /// The first of them: its (mode, offload), largest allocation and its bytes.
    first_over_limit: Option<((Mode, bool), String, u64)>,
}

/// The first batch-1 request in search order (segment → mode → path-chunk cap) whose peak is
/// at most `target` and whose largest allocation is at most `limit`, with its plan; and what
/// was passed over on the way.
fn first_fit(
    model: &PlanModel,
    segments: &SegmentLadder,
    modes: &[(Mode, bool)],
    candidates: &Candidates,
    target: u64,
    limit: Option<u64>,
) -> Search {
    let mut search = Search {
        found: None,
        smallest: None,
        over_limit: 0,
        first_over_limit: None,
    };
    for &segment in &segments.lengths {
        for &m in modes {
            for cap in PATH_CHUNK_LADDER {
                let req = candidates.request(segment, 1, m, cap);
                let p = plan(model, &req);
                if search
                    .smallest
                    .as_ref()
                    .is_none_or(|(b, _)| p.peak_bytes < *b)
                {
                    search.smallest = Some((p.peak_bytes, req.clone()));
                }
                if p.peak_bytes > target {
                    continue;
                }
                if limit.is_some_and(|l| p.largest_allocation_bytes > l) {
                    search.over_limit += 1;
                    search.first_over_limit.get_or_insert_with(|| {
                        (m, p.largest_allocation.clone(), p.largest_allocation_bytes)
                    });
                    continue;
                }
                search.found = Some((req, p));
                return search;
            }
        }
    }
    search
}

/// The device-limit line of the explanation: the chosen plan's largest buffer against the
/// limit, and what was passed over for it.
fn limit_line(search: &Search, chosen: &MemoryPlan, limit: u64) -> String {
    let mut line = format!(
        "largest buffer {} ≤ the device's largest buffer {}",
        format_bytes(chosen.largest_allocation_bytes),
        format_bytes(limit)
    );
    if let Some((_, what, bytes)) = &search.first_over_limit {
        line.push_str(&format!(
            "; {} setting(s) within the budget were passed over for a larger buffer (first: {what}, {})",
            search.over_limit,
            format_bytes(*bytes)
        ));
    }
    line
}

/// Grows the batch one chunk at a time while the peak stays at most `target` (up to
/// `max_batch`). Returns the last request that fits, its plan, and — when growth stopped
/// below `max_batch` — a line saying what the next batch would have peaked at.
fn grow_batch(
    model: &PlanModel,
    mut req: PlanRequest,
    mut chosen: MemoryPlan,
    target: u64,
    limit: Option<u64>,
    max_batch: usize,
) -> (PlanRequest, MemoryPlan, Option<String>) {
    while req.batch < max_batch {
        let next = PlanRequest {
            batch: req.batch + 1,
            ..req.clone()
        };
        let p = plan(model, &next);
        if p.peak_bytes > target {
            let note = format!(
                "batch of {} chunk(s) per forward: {} would peak at {}",
                req.batch,
                next.batch,
                format_bytes(p.peak_bytes)
            );
            return (req, chosen, Some(note));
        }
        if let Some(limit) = limit.filter(|&l| p.largest_allocation_bytes > l) {
            let note = format!(
                "batch of {} chunk(s) per forward: {} would need a {} buffer, above the device's {}",
                req.batch,
                next.batch,
                format_bytes(p.largest_allocation_bytes),
                format_bytes(limit)
            );
            return (req, chosen, Some(note));
        }
        req = next;
        chosen = p;
    }
    (req, chosen, None)
}

/// What one sequence of a path is called: frames (frequency path) or bins (time path).
fn sequence_unit(path_name: &str) -> &'static str {
    if path_name == "frequency" {
        "frames"
    } else {
        "bins"
    }
}

/// The segment chosen: the preset's, or shortened, with what `at_full` (the most frugal
/// settings at the preset's segment) would have peaked at.
fn segment_line(
    model: &PlanModel,
    full: usize,
    req: &PlanRequest,
    at_full: &PlanRequest,
) -> String {
    let seconds = |samples: usize| samples as f64 / model.sample_rate as f64;
    if req.segment_samples < full {
        format!(
            "segment shortened from {:.2} s to {:.2} s: at {:.2} s even the most frugal settings peak at {}",
            seconds(full),
            seconds(req.segment_samples),
            seconds(full),
            format_bytes(plan(model, at_full).peak_bytes)
        )
    } else {
        format!("segment {:.2} s (the preset's)", seconds(full))
    }
}

/// Attention: what materialising would cost, and what was chosen instead.
fn attention_lines(model: &PlanModel, req: &PlanRequest, chosen: &MemoryPlan) -> Vec<String> {
    let mut lines = Vec::new();
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
        let unit = sequence_unit(&worst.name);
        lines.push(format!(
            "materialised {}-path scores would need {} per item in one tensor ([{}·{}, {}, {}], batch = {} {unit}){}",
            worst.name,
            format_bytes(worst.materialized_score_bytes),
            worst.sequences,
            model.n_heads,
            worst.length,
            worst.length,
            worst.sequences,
            if chosen.items > 1 { format!(", × {} items per forward", chosen.items) } else { String::new() }
        ));
    }
    if req.attention == AttentionStrategy::Fused {
        lines.push(
            "fused attention kernel: no score tensor, only q/k/v/output and a f32 log-sum-exp"
                .into(),
        );
    } else {
        for p in &chosen.paths {
            lines.push(format!(
                "chunking {} {} in attention sub-batches of {} keeps each {}-path score tensor ≤ {}",
                p.sequences,
                sequence_unit(&p.name),
                p.attention_sub_batch,
                p.name,
                format_bytes(p.score_bytes)
            ));
        }
    }
    lines
}

/// How each path is sub-batched, or that it is not.
fn path_chunk_lines(req: &PlanRequest, chosen: &MemoryPlan) -> Vec<String> {
    match req.path_chunk_bytes {
        Some(cap) => chosen
            .paths
            .iter()
            .map(|p| {
                format!(
                    "{} path runs {} {} in sub-batches of {} so one stage's working set stays ≤ {}",
                    p.name,
                    p.sequences,
                    sequence_unit(&p.name),
                    p.sub_batch,
                    format_bytes(cap)
                )
            })
            .collect(),
        None => vec!["paths run on all their sequences at once (no path chunking needed)".into()],
    }
}

/// Training only: whether checkpointing (and offloading) was needed, with the peaks avoided.
fn training_lines(model: &PlanModel, req: &PlanRequest, chosen: &MemoryPlan) -> Vec<String> {
    if !req.mode.is_training() {
        return Vec::new();
    }
    let plain = plan(
        model,
        &PlanRequest {
            mode: Mode::Training,
            ..req.clone()
        },
    );
    if req.mode != Mode::TrainingCheckpointed {
        return vec![format!(
            "no checkpointing needed: training peaks at {}",
            format_bytes(plain.peak_bytes)
        )];
    }
    let mut lines = vec![format!(
        "training without checkpointing would peak at {}; checkpointing each block (keep block inputs, recompute in backward) peaks at {}",
        format_bytes(plain.peak_bytes),
        format_bytes(chosen.peak_bytes)
    )];
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
            format_bytes(chosen.offloaded_bytes),
            format_bytes(on_device.peak_bytes)
        ));
    }
    lines
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
