//! What buttons ask for; applied after the panels are drawn.

use std::path::PathBuf;

use super::finetune::FineTuneAction;
use super::settings::Tab;
use super::time_view::TimeView;
use crate::engine::device::DeviceChoice;
use crate::engine::messages::{JobId, ModelChoice};

/// A user request collected while drawing and applied at the end of the frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Show the open-file dialog.
    OpenDialog,
    /// Decode and show this file.
    Open(PathBuf),
    /// Add files to the song queue.
    Enqueue(Vec<PathBuf>),
    /// Show the add-to-queue dialog.
    EnqueueDialog,
    /// Remove a queued song.
    Dequeue(usize),
    /// Separate and export every queued song.
    RunQueue,
    /// Separate the open song with the selected model.
    Separate,
    /// Stop a job.
    Cancel(JobId),
    /// Use this model for Separate.
    SelectModel(ModelChoice),
    /// Choose weights for a preset (file dialog).
    PickCheckpoint(String),
    /// Import a config + checkpoint (file dialogs).
    ImportCustom,
    /// Open the Get-models window.
    ShowModels,
    /// Run on this device.
    SetDevice(DeviceChoice),
    /// Start playback.
    Play,
    /// Pause playback.
    Pause,
    /// Move the playhead, seconds.
    Seek(f64),
    /// Set or clear the loop region, seconds.
    SetLoop(Option<(f64, f64)>),
    /// Zoom or scroll the time view.
    SetView(TimeView),
    /// Mute a mixer strip.
    SetMute(usize, bool),
    /// Solo a mixer strip.
    SetSolo(usize, bool),
    /// Set a strip's gain, dB.
    SetGain(usize, f32),
    /// Choose the export folder (dialog).
    PickExportDir,
    /// Export the stems; `overwrite` after the user confirmed.
    Export {
        /// Replace existing files.
        overwrite: bool,
    },
    /// Close the overwrite question without exporting.
    CancelOverwrite,
    /// Show a tab.
    SetTab(Tab),
    /// Tick or untick a model for comparison.
    ToggleCompare(ModelChoice),
    /// Run the ticked models on the song (or the loop region).
    RunCompare,
    /// Dismiss an error message.
    DismissError(usize),
    /// Start or pause playback (Space).
    TogglePlay,
    /// Close the open dialog or question (Esc).
    CloseDialog,
    /// Close the window (File → Quit, Ctrl+Q).
    Quit,
    /// Something the Fine-tune tab asked for.
    FineTune(FineTuneAction),
}
