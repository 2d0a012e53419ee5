//! The messages a front end (the GUI) exchanges with the engine worker.
//!
//! The GUI sends [`EngineCommand`]s and receives [`EngineEvent`]s over two channels; it never
//! sees a burn type, and this file names no egui type. Every command that starts work carries a
//! [`JobId`] chosen by the sender, and every event about that work repeats it, so the GUI can
//! match answers to requests (and ignore answers for jobs it has forgotten).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::audio::AudioBuffer;
use crate::engine::device::DeviceChoice;
use crate::engine::export::ExportOptions;
use crate::engine::separator::{SeparateParams, Stems};
use crate::memory::sampler::MemorySample;

/// Identifies one request (a decode, a separation, an export). Chosen by the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job {}", self.0)
    }
}

/// Which weights a separation runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub enum ModelChoice {
    /// The bundled demo model (`assets/models/...`).
    #[default]
    Bundled,
    /// A built-in preset (`configs/<name>.toml`) with trained weights for it.
    Preset {
        /// Preset name, e.g. `small`.
        name: String,
        /// Checkpoint file (.safetensors or .pth), or a model folder holding one.
        checkpoint: PathBuf,
    },
    /// A config file (.toml/.json/.yaml) with its checkpoint.
    Config {
        /// Model config file.
        config: PathBuf,
        /// Checkpoint file (.safetensors or .pth), or a model folder holding one.
        checkpoint: PathBuf,
    },
    /// A model installed from the catalog (`locosep models`), by name.
    Installed {
        /// Catalog name, e.g. `sup.musdb18hq.bslocoformer-small`.
        name: String,
    },
    /// A model folder: a config and its weights side by side (`model::folder` layouts).
    Folder {
        /// The folder.
        dir: PathBuf,
    },
}

impl ModelChoice {
    /// A short name for lists and result tables.
    pub fn label(&self) -> String {
        match self {
            ModelChoice::Bundled => "bundled model".to_string(),
            ModelChoice::Preset { name, .. } | ModelChoice::Installed { name } => name.clone(),
            ModelChoice::Folder { dir } => dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| dir.display().to_string()),
            ModelChoice::Config { config, .. } => {
                let stem = config
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| config.display().to_string());
                // A training checkpoint folder (`run/best/config.json`): name it `run/best`.
                let parent = |p: Option<&std::path::Path>| {
                    p.and_then(|p| p.file_name())
                        .map(|n| n.to_string_lossy().into_owned())
                };
                match (
                    stem.as_str(),
                    parent(config.parent()),
                    parent(config.parent().and_then(|p| p.parent())),
                ) {
                    ("config", Some(dir), Some(run)) => format!("{run}/{dir}"),
                    ("config", Some(dir), None) => dir,
                    _ => stem,
                }
            }
        }
    }
}

/// What the front end asks the engine to do.
#[derive(Debug, Clone)]
pub enum EngineCommand {
    /// Decode a file (on a decode thread, not queued behind separations).
    LoadSong {
        /// Request id, repeated in `SongLoaded`/`LoadFailed`.
        job: JobId,
        /// The file.
        path: PathBuf,
    },
    /// Separate an already decoded song (queued).
    Separate {
        /// Request id.
        job: JobId,
        /// The song (or an excerpt of it).
        song: Arc<AudioBuffer>,
        /// Which weights.
        model: ModelChoice,
        /// Where to run.
        device: DeviceChoice,
        /// Segment, overlap, batch.
        params: SeparateParams,
    },
    /// Decode, separate and export a file in one queued job (the song queue).
    SeparateFile {
        /// Request id.
        job: JobId,
        /// The song file.
        path: PathBuf,
        /// Which weights.
        model: ModelChoice,
        /// Where to run.
        device: DeviceChoice,
        /// Segment, overlap, batch.
        params: SeparateParams,
        /// Where and how the stems are written.
        export: ExportOptions,
    },
    /// Stop a queued or running job before its next chunk; answered by `Cancelled`.
    Cancel {
        /// The job to stop.
        job: JobId,
    },
    /// Write stems to files (queued).
    Export {
        /// Request id.
        job: JobId,
        /// The stems to write.
        stems: Arc<Stems>,
        /// Track name used in the file-name template.
        track: String,
        /// Folder, template, format, which stems, overwrite.
        options: ExportOptions,
    },
    /// List the compute devices; answered by `Devices`.
    ListDevices,
    /// Cancel everything and stop the worker threads.
    Shutdown,
}

/// A compute device the engine can use.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    /// The choice that selects it.
    pub choice: DeviceChoice,
    /// Human-readable name, e.g. `GPU: NVIDIA H100 (wgpu)` or `CPU (flex)`.
    pub name: String,
    /// False for software adapters (lavapipe/llvmpipe).
    pub hardware: bool,
    /// Total memory when known (system RAM for the CPU), bytes.
    pub total_bytes: Option<u64>,
}

/// What the engine tells the front end.
#[derive(Debug, Clone)]
pub enum EngineEvent {
    /// A `LoadSong` finished.
    SongLoaded {
        /// The request.
        job: JobId,
        /// The file.
        path: PathBuf,
        /// Decoded audio.
        audio: Arc<AudioBuffer>,
        /// What the user should know about the decode (non-finite samples zeroed, damaged
        /// packets skipped); empty for a clean file.
        warnings: Vec<String>,
    },
    /// A `LoadSong` failed; `error` is written for the user.
    LoadFailed {
        /// The request.
        job: JobId,
        /// The file.
        path: PathBuf,
        /// Why.
        error: String,
    },
    /// A queued job started running (after the model was loaded).
    Started {
        /// The job.
        job: JobId,
        /// What runs, e.g. `preset small (1.39 M parameters)`.
        model: String,
        /// Where it runs, e.g. `CPU (burn flex, 2 threads)`.
        device: String,
        /// Things the user should know (software adapter, fallback…).
        warnings: Vec<String>,
    },
    /// Chunks done so far.
    Progress {
        /// The job.
        job: JobId,
        /// Chunks finished.
        done: usize,
        /// Chunks in all.
        total: usize,
        /// Time since the job started.
        elapsed: Duration,
    },
    /// A live memory reading taken while `job` runs.
    Memory {
        /// The job.
        job: JobId,
        /// The reading (`t` in seconds since the job started).
        sample: MemorySample,
    },
    /// A separation finished.
    Separated {
        /// The job.
        job: JobId,
        /// The stems, same rate/channels/length as the input.
        stems: Arc<Stems>,
        /// Wall time of the separation, seconds.
        seconds: f64,
        /// Peak device memory (allocator in-use) or, where the backend reports none, peak
        /// resident memory of the process, bytes.
        peak_bytes: Option<u64>,
    },
    /// A job failed; `error` is written for the user.
    Failed {
        /// The job.
        job: JobId,
        /// Why.
        error: String,
    },
    /// A job stopped because of `Cancel`.
    Cancelled {
        /// The job.
        job: JobId,
    },
    /// An export (or the export step of `SeparateFile`) wrote these files.
    Exported {
        /// The job.
        job: JobId,
        /// Files written.
        paths: Vec<PathBuf>,
    },
    /// The answer to `ListDevices`.
    Devices(Vec<DeviceInfo>),
}

impl EngineEvent {
    /// The job this event is about, if any.
    pub fn job(&self) -> Option<JobId> {
        match self {
            EngineEvent::SongLoaded { job, .. }
            | EngineEvent::LoadFailed { job, .. }
            | EngineEvent::Started { job, .. }
            | EngineEvent::Progress { job, .. }
            | EngineEvent::Memory { job, .. }
            | EngineEvent::Separated { job, .. }
            | EngineEvent::Failed { job, .. }
            | EngineEvent::Cancelled { job }
            | EngineEvent::Exported { job, .. } => Some(*job),
            EngineEvent::Devices(_) => None,
        }
    }
}
