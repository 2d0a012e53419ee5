//! [`fit_step`]: how one training micro-batch must run so that no buffer exceeds the device's
//! largest (and, with a budget, the peak stays under it): path sub-batches, then the
//! micro-batch in pieces whose gradients are accumulated.
//!
//! The segment and the mode (checkpointing, offload) are the caller's; [`super::fit_with`]
//! chooses those for a budget. Here only what leaves the step's result unchanged is varied:
//! how many sequences a path runs at once and how many items go through the network together.

use serde::Serialize;

use super::GIB;
use super::fit::{FitError, PATH_CHUNK_LADDER};
use super::model::PlanModel;
use super::plan::{MemoryPlan, plan};
use super::request::{AttentionStrategy, PlanRequest};
use super::units::format_bytes;

/// How a training micro-batch runs: the answer of [`fit_step`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepLayout {
    /// The request of one piece: the caller's segment, mode and offload, the path-chunk cap
    /// chosen, and the piece's items (see [`with_items`]).
    pub request: PlanRequest,
    /// The plan of one piece.
    pub plan: MemoryPlan,
    /// The plan of the micro-batch as asked (all items at once, no path chunking).
    pub unsplit: MemoryPlan,
    /// Network items of the whole micro-batch.
    pub items: usize,
    /// Items per piece: the micro-batch runs in `ceil(items / items_per_piece)` pieces.
    pub items_per_piece: usize,
    /// Frames per sub-batch of the frequency path (`None`: all at once).
    pub frequency_rows: Option<usize>,
    /// Bins per sub-batch of the time path (`None`: all at once).
    pub time_rows: Option<usize>,
    /// One line per decision.
    pub explanation: Vec<String>,
}

impl StepLayout {
    /// Pieces the micro-batch runs in.
    pub fn pieces(&self) -> usize {
        self.items.div_ceil(self.items_per_piece.max(1))
    }

    /// Whether the step runs differently from the unsplit one (path sub-batches or pieces).
    pub fn is_split(&self) -> bool {
        self.request.path_chunk_bytes.is_some() || self.items_per_piece < self.items
    }
}

/// `req` with `items` network items: `batch = items` chunks of one channel for a mono model
/// (each channel is its own item), of two for a stereo one.
pub fn with_items(model: &PlanModel, req: &PlanRequest, items: usize) -> PlanRequest {
    PlanRequest {
        batch: items.max(1),
        song_channels: if model.audio_channels == 1 { 1 } else { 2 },
        ..req.clone()
    }
}

/// `req` with path-chunk cap `cap`; chunked attention caps its score tensors at the same bytes
/// (1 GiB without a cap), as [`super::fit_with`]'s candidates do.
fn with_cap(req: &PlanRequest, cap: Option<u64>) -> PlanRequest {
    PlanRequest {
        path_chunk_bytes: cap,
        attention: match req.attention {
            AttentionStrategy::Chunked { .. } => AttentionStrategy::Chunked {
                max_score_bytes: cap.unwrap_or(GIB),
            },
            other => other,
        },
        ..req.clone()
    }
}

/// Piece sizes tried for `items`, largest first: `ceil(items / p)` for p = 1, 2, … (each size
/// once), down to 1.
fn piece_sizes(items: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = Vec::new();
    for p in 1..=items.max(1) {
        let k = items.max(1).div_ceil(p);
        if sizes.last() != Some(&k) {
            sizes.push(k);
        }
    }
    sizes
}

/// The layout of a training micro-batch `step` (its `batch`/`song_channels` give the items; its
/// path-chunk cap is replaced) on a device whose largest buffer is `limit` (`None`: no limit),
/// with the peak at most `target` when given.
///
/// Search order (first fit wins): the whole micro-batch before pieces (largest pieces first),
/// and for each piece size no path chunking before finer and finer path sub-batches. Caps above
/// `limit` are not tried: the network sizes its path sub-batches from the cap with its own,
/// less conservative rule, which keeps every path tensor under the cap but not under the
/// planner's smaller estimate. When the micro-batch already fits, it is returned unchanged.
///
/// Errors: [`FitError::BufferTooLarge`] when one item with the finest sub-batches still needs a
/// buffer above `limit`; [`FitError::NothingFits`] when it fits the limit but not `target`.
pub fn fit_step(
    model: &PlanModel,
    step: &PlanRequest,
    limit: Option<u64>,
    target: Option<u64>,
) -> Result<StepLayout, FitError> {
    let items = model.items(step.batch.max(1), step.song_channels);
    let unsplit_req = with_cap(&with_items(model, step, items), None);
    let unsplit = plan(model, &unsplit_req);
    let fits = |p: &MemoryPlan| {
        limit.is_none_or(|l| p.largest_allocation_bytes <= l)
            && target.is_none_or(|t| p.peak_bytes <= t)
    };
    let caps: Vec<Option<u64>> = PATH_CHUNK_LADDER
        .into_iter()
        .filter(|cap| match (cap, limit) {
            (Some(c), Some(l)) => *c <= l,
            _ => true,
        })
        .collect();
    let finest = *caps.last().unwrap_or(&None);
    let mut found = None;
    'search: for k in piece_sizes(items) {
        for &cap in &caps {
            let req = with_cap(&with_items(model, step, k), cap);
            let p = plan(model, &req);
            if fits(&p) {
                found = Some((k, req, p));
                break 'search;
            }
        }
    }
    let Some((k, request, piece)) = found else {
        let one = with_cap(&with_items(model, step, 1), finest);
        let p = plan(model, &one);
        if let Some(l) = limit.filter(|&l| p.largest_allocation_bytes > l) {
            return Err(FitError::buffer_too_large(model, &one, l));
        }
        let target = target.unwrap_or(u64::MAX);
        return Err(FitError::NothingFits {
            budget_bytes: target,
            target_bytes: target,
            smallest_peak_bytes: p.peak_bytes,
            smallest: format!(
                "{} · one item · path chunks ≤ {}",
                one.mode,
                finest.map_or("off".into(), format_bytes)
            ),
        });
    };
    let rows = |name: &str| {
        request
            .path_chunk_bytes
            .and(piece.paths.iter().find(|p| p.name == name))
            .map(|p| p.sub_batch)
    };
    let mut layout = StepLayout {
        frequency_rows: rows("frequency"),
        time_rows: rows("time"),
        request,
        plan: piece,
        unsplit,
        items,
        items_per_piece: k,
        explanation: Vec::new(),
    };
    layout.explanation = explain(&layout, limit, target);
    Ok(layout)
}

/// The lines that explain `layout`.
fn explain(layout: &StepLayout, limit: Option<u64>, target: Option<u64>) -> Vec<String> {
    let u = &layout.unsplit;
    let mut lines = Vec::new();
    match limit {
        Some(l) if u.largest_allocation_bytes > l => lines.push(format!(
            "the step's largest buffer, {} ({}), exceeds the device's largest buffer ({})",
            u.largest_allocation,
            format_bytes(u.largest_allocation_bytes),
            format_bytes(l)
        )),
        Some(l) => lines.push(format!(
            "the step's largest buffer, {} ({}), fits the device's largest buffer ({})",
            u.largest_allocation,
            format_bytes(u.largest_allocation_bytes),
            format_bytes(l)
        )),
        None => {}
    }
    if let Some(t) = target.filter(|&t| u.peak_bytes > t) {
        lines.push(format!(
            "the step as asked would peak at {}, above the {} allowed",
            format_bytes(u.peak_bytes),
            format_bytes(t)
        ));
    }
    if !layout.is_split() {
        return lines;
    }
    if let Some(cap) = layout.request.path_chunk_bytes {
        let part = |rows: Option<usize>, unit: &str| {
            rows.map_or(format!("all {unit} at once"), |r| {
                format!("sub-batches of {r} {unit}")
            })
        };
        lines.push(format!(
            "paths run in sub-batches (stage working set ≤ {}): frequency path in {}, time path in {}",
            format_bytes(cap),
            part(layout.frequency_rows, "frames"),
            part(layout.time_rows, "bins")
        ));
    }
    if layout.items_per_piece < layout.items {
        lines.push(format!(
            "each micro-batch of {} items runs in {} pieces of at most {} (gradients accumulated, weighted as in the whole batch: the same step)",
            layout.items,
            layout.pieces(),
            layout.items_per_piece
        ));
    }
    lines.push(format!(
        "largest buffer now {} ({}); predicted peak {}",
        layout.plan.largest_allocation,
        format_bytes(layout.plan.largest_allocation_bytes),
        format_bytes(layout.plan.peak_bytes)
    ));
    lines
}
