//! The engine: a [`Separator`] per loaded model, device selection, and the error type every
//! front end (CLI, GUI) turns into a message.

mod chunk_stream;
pub mod css;
pub mod device;
pub mod device_model;
pub mod export;
pub mod load;
pub mod messages;
pub mod params;
pub mod plan;
pub mod separator;
pub mod stream;
pub mod worker;

pub use device::{DeviceChoice, ResolvedDevice};
pub use messages::{EngineCommand, EngineEvent, JobId, ModelChoice};
pub use separator::{CancelToken, Progress, SeparateParams, Separator, Stems};
pub use worker::EngineHandle;

/// Everything that can stop a separation, each with a message a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Reading, decoding or writing audio failed.
    #[error(transparent)]
    Audio(#[from] crate::audio::AudioError),
    /// Signal-processing parameters were invalid.
    #[error(transparent)]
    Dsp(#[from] crate::dsp::DspError),
    /// The model config is invalid.
    #[error(transparent)]
    Config(#[from] crate::model::config::ConfigError),
    /// The checkpoint could not be read.
    #[error(transparent)]
    Checkpoint(#[from] crate::model::state_dict::CheckpointError),
    /// No installed (or bundled) model has this name.
    #[error(
        "no installed model named `{0}`: `locosep models` lists the catalog, \
         `locosep models download {0}` installs it"
    )]
    NotInstalled(String),
    /// A model folder lacks its config or weights (the message names the folder).
    #[error("{0}")]
    ModelFolder(String),
    /// The bundled model is not next to the program.
    #[error("no bundled model found; choose a config and checkpoint instead")]
    NoBundledModel,
    /// The checkpoint does not fit the config.
    #[error(transparent)]
    Keys(#[from] crate::model::loader::KeyMismatch),
    /// No usable device.
    #[error(transparent)]
    NoDevice(#[from] device::DeviceError),
    /// The device failed during the run.
    #[error("device error: {0}")]
    Device(String),
    /// A parameter is out of range.
    #[error("{0}")]
    BadParameter(String),
    /// The user cancelled.
    #[error("cancelled")]
    Cancelled,
}
