//! What a run records and reports: the step and validation logs, the resumable state and the
//! events a front end shows.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One logged step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepLog {
    /// Step number (1-based, after the update).
    pub step: usize,
    /// Training loss of the step (mean over micro-batches).
    pub loss: f32,
    /// Mean SI-SDR per stem of the step's batch.
    pub si_sdr: Vec<f32>,
    /// Learning rate used.
    pub lr: f64,
}

/// One validation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ValidLog {
    /// Step.
    pub step: usize,
    /// Median museval SDR per stem over tracks (dB).
    pub sdr: Vec<f64>,
    /// Mean of `sdr`.
    pub mean_sdr: f64,
}

/// Resumable state: saved as `state.json` in each checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TrainState {
    /// Steps done.
    pub step: usize,
    /// Current LR.
    pub lr: f64,
    /// Best validation mean SDR.
    pub best_sdr: Option<f64>,
    /// Validations since the best.
    pub since_best: usize,
    /// Step log.
    pub steps: Vec<StepLog>,
    /// Validation log.
    pub valid: Vec<ValidLog>,
}

/// Events a front end shows.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    /// A step finished.
    Step(StepLog),
    /// A validation finished.
    Valid(ValidLog),
    /// A checkpoint was written.
    Saved(PathBuf),
    /// Free text.
    Message(String),
}
