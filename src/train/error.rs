//! The error type of training and evaluation (its own file so that the trainer and the
//! evaluator, which the trainer calls for validation, do not import each other).

/// Errors of training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Dataset problem.
    #[error(transparent)]
    Data(#[from] super::dataset::DatasetError),
    /// Checkpoint problem.
    #[error(transparent)]
    Checkpoint(#[from] crate::model::state_dict::CheckpointError),
    /// Config/weights mismatch.
    #[error(transparent)]
    Keys(#[from] crate::model::loader::KeyMismatch),
    /// Engine problem during validation.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// No device for validation.
    #[error(transparent)]
    Device(#[from] crate::engine::device::DeviceError),
    /// Files of the run.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The output folder cannot be used (not a run, nothing to resume, …).
    #[error(transparent)]
    Out(#[from] super::run_dir::OutError),
    /// Writing a file of the run.
    #[error(transparent)]
    Write(#[from] crate::audio::AudioError),
    /// The training diverged: a step's loss is not a finite number.
    #[error(
        "training diverged at step {step}: the loss is {loss}; no checkpoint of this step was \
         written (try a lower --lr)"
    )]
    Diverged {
        /// The step (1-based).
        step: usize,
        /// The loss.
        loss: f32,
    },
    /// Invalid setting.
    #[error("{0}")]
    Invalid(String),
}
