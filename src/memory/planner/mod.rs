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
//! follow that ownership. Only the constant terms are meant to be calibrated per backend
//! ([`Calibration`]); the growth with T, F, layers, heads and batch comes from the formulas.
//!
//! Everything here is pure arithmetic: no burn, no device.
//!
//! # Files
//!
//! | file | what is inside |
//! |---|---|
//! | `units.rs` | [`KIB`], [`MIB`], [`GIB`], the f32 size, [`format_bytes`], [`parse_bytes`] |
//! | `category.rs` | [`Category`]: what a block of memory is used for |
//! | `model.rs` | [`PlanModel`] (the network's dimensions) and [`param_count`] |
//! | `request.rs` | the question: [`PlanRequest`], [`Mode`], [`AttentionStrategy`], [`Precision`], [`Calibration`] |
//! | `geometry.rs` | one path's tensor shapes (`Geom`) and the byte list type (`Parts`) |
//! | `stages.rs` | what is alive at each stage of one path: forward, saved for autograd, backward |
//! | `run.rs` | the sizes of the whole run (`RunShapes`: frames, residual stream, STFT buffers) |
//! | `phases.rs` | the whole run's phases per [`Mode`], built from the path stages |
//! | `plan.rs` | [`plan`] / [`plan_checked`] and their answer [`MemoryPlan`] |
//! | `fit.rs` | [`fit`] / [`fit_with`]: settings that fit a budget, with the explanation |
//! | `step_layout.rs` | [`fit_step`]: a training micro-batch under the device's largest buffer (path sub-batches, pieces) |
//! | `report.rs` | [`MemoryPlan::table`] |
//!
//! The table goes bottom-up: a file imports only files above it (`units` and `category` are
//! leaves; `plan` sits on `phases`, `phases` on `run` and `stages`; `fit`, `step_layout` and
//! `report` on `plan`).

mod category;
mod fit;
mod geometry;
mod model;
mod phases;
mod plan;
mod report;
mod request;
mod run;
mod stages;
mod step_layout;
#[cfg(test)]
mod tests;
mod units;

pub use category::Category;
pub use fit::{BackendKind, FitError, FitOptions, FitResult, fit, fit_with};
pub use model::{PlanModel, param_count};
pub use plan::{MemoryPlan, PathPlan, PlanTooLarge, plan, plan_checked};
pub use request::{AttentionStrategy, Calibration, Mode, PlanRequest, Precision};
pub use step_layout::{StepLayout, fit_step, with_items};

pub use units::{GIB, KIB, MIB, ParseError, format_bytes, parse_bytes};
