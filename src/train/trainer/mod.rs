//! The training loop: AdamW, gradient clipping and accumulation, optional activation
//! checkpointing, reduce-on-plateau, deterministic seeding, validation SDR, checkpoints with
//! keep-last-K and best-by-validation, exact resume, Ctrl-C saves and stops; every step laid
//! out by the memory planner so that no buffer exceeds the device's largest (and, with a
//! budget, the peak stays under it).
//!
//! Determinism: the batch of step `s`, micro-batch `m` is drawn from an RNG seeded with
//! `(seed, s, m)`, and the device RNG (dropout) is reseeded the same way, so a run resumed
//! at step `s` draws exactly what the uninterrupted run would have.
//!
//! The files: [`config`] (the run's settings and their ranges), [`state`] (the logs, the
//! resumable state and the events), `layout` (the device's largest buffer and the budget:
//! how each step runs), `sample` (training segments and the per-step RNG), `save` (checkpoint
//! folders) and [`run`] (the loop and validation).

pub mod config;
mod layout;
pub mod run;
mod sample;
mod save;
pub mod state;

pub use super::error::TrainError;
pub use config::{
    MAX_ACCUMULATE, MAX_BATCH, MAX_SEGMENT_SECONDS, MIN_SEGMENT_SECONDS, TrainConfig,
};
pub use run::{train, validate};
pub use state::{StepLog, TrainEvent, TrainState, ValidLog};

/// Maps an I/O error to [`TrainError::Io`] with `context`.
fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TrainError {
    let context = context.into();
    move |source| TrainError::Io { context, source }
}
