//! Settings that survive a restart, saved by eframe and as JSON in the user's config dir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::device::DeviceChoice;
use crate::engine::messages::ModelChoice;

/// Most recent files kept.
pub const MAX_RECENT: usize = 10;

/// Which tab the central area shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Tab {
    /// Song, stems, mixer.
    #[default]
    Separate,
    /// Preset comparison.
    Compare,
    /// Fine-tuning: train or fine-tune a model on the user's songs and watch it live
    /// (`gui/finetune.rs`).
    FineTune,
}

/// Export choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExportSettings {
    /// Output folder.
    pub out_dir: PathBuf,
    /// File-name template (`{track}`, `{stem}`, `{ext}`).
    pub template: String,
    /// `wav16`, `wav24`, `f32`, `flac`, `mp3` or `ogg`.
    pub format: String,
    /// Bit rate in kbit/s for `mp3`/`ogg`; `None`: the format's default.
    pub bitrate: Option<u16>,
    /// Stems left out (everything else is written).
    pub skipped: Vec<String>,
    /// Also write the instrumental (everything but vocals).
    pub instrumental: bool,
}

impl Default for ExportSettings {
    fn default() -> Self {
        Self {
            out_dir: default_export_dir(),
            template: "{track}/{stem}.{ext}".into(),
            format: "wav16".into(),
            bitrate: None,
            skipped: Vec::new(),
            instrumental: false,
        }
    }
}

/// Where stems go until the user picks a folder: `~/Music/locosep` (the XDG music folder), else
/// `~/locosep`; an absolute path, so it does not depend on where the app was started from.
fn default_export_dir() -> PathBuf {
    let dirs = directories::UserDirs::new();
    dirs.as_ref()
        .and_then(|d| d.audio_dir().map(|m| m.join("locosep")))
        .or_else(|| dirs.as_ref().map(|d| d.home_dir().join("locosep")))
        .unwrap_or_else(|| PathBuf::from("stems"))
}

/// Window layout choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Layout {
    /// The tab shown.
    pub tab: Tab,
    /// Show spectrograms under the waveforms.
    pub spectrograms: bool,
    /// Height of a waveform lane, points.
    pub lane_height: f32,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            tab: Tab::Separate,
            spectrograms: true,
            lane_height: 64.0,
        }
    }
}

/// Everything persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The model used by Separate.
    pub model: ModelChoice,
    /// Weights chosen for each preset.
    pub checkpoints: BTreeMap<String, PathBuf>,
    /// Imported config + checkpoint pairs.
    pub custom: Vec<(PathBuf, PathBuf)>,
    /// Where to run.
    pub device: DeviceChoice,
    /// GPU memory budget for the planner's warning when the adapter does not report it, GiB.
    pub gpu_budget_gib: f64,
    /// Chunks per forward pass.
    pub batch: usize,
    /// Overlap between chunks.
    pub overlap: f32,
    /// Export choices.
    pub export: ExportSettings,
    /// Recently opened songs, newest first.
    pub recent: Vec<PathBuf>,
    /// Window layout.
    pub layout: Layout,
    /// Models ticked for comparison.
    pub compare: Vec<ModelChoice>,
    /// The Fine-tune tab's form.
    pub finetune: super::finetune::FineTuneForm,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model: ModelChoice::Bundled,
            checkpoints: BTreeMap::new(),
            custom: Vec::new(),
            device: DeviceChoice::Auto,
            gpu_budget_gib: 8.0,
            batch: 1,
            overlap: 0.25,
            export: ExportSettings::default(),
            recent: Vec::new(),
            layout: Layout::default(),
            compare: Vec::new(),
            finetune: Default::default(),
        }
    }
}

impl Settings {
    /// The key under which eframe stores the settings.
    pub const KEY: &'static str = "locosep-settings";

    /// `<config dir>/settings.json` (e.g. `~/.config/locosep/settings.json`).
    pub fn default_path() -> Option<PathBuf> {
        directories::ProjectDirs::from("org", "locosep", "locosep")
            .map(|d| d.config_dir().join("settings.json"))
    }

    /// Reads a settings file; a missing or broken file gives the defaults.
    pub fn load(path: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the settings file, creating its folder.
    pub fn store(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Puts `path` first in the recent list.
    pub fn add_recent(&mut self, path: &Path) {
        self.recent.retain(|p| p != path);
        self.recent.insert(0, path.to_path_buf());
        self.recent.truncate(MAX_RECENT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_defaults_for_missing_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/settings.json");
        let mut s = Settings::default();
        s.add_recent(Path::new("/a.wav"));
        s.add_recent(Path::new("/b.wav"));
        s.add_recent(Path::new("/a.wav"));
        s.store(&path).expect("store");
        assert_eq!(Settings::load(&path), Some(s.clone()));
        assert_eq!(
            s.recent,
            vec![PathBuf::from("/a.wav"), PathBuf::from("/b.wav")]
        );
        let partial: Settings = serde_json::from_str(r#"{"batch": 3}"#).expect("parse");
        assert_eq!(partial.batch, 3);
        assert_eq!(partial.export, ExportSettings::default());
    }
}
