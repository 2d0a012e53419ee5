//! Model and device choice: presets with parameter count and the planner's predicted peak for
//! this song (with a warning when it will not fit), custom config + checkpoint import.

use eframe::egui;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use egui::{Color32, RichText, Ui};

use super::command::Command;
use super::settings::Settings;
use crate::engine::device::DeviceChoice;
use crate::engine::messages::{DeviceInfo, ModelChoice};
use crate::memory::planner::{AttentionStrategy, MIB, PlanRequest, format_bytes, plan};
use crate::model::config::{ModelConfig, builtin_presets};

/// Per-path memory cap the separator uses by default (its `max_chunk_bytes`).
const PATH_CAP: u64 = 256 * MIB;

/// One selectable model.
#[derive(Debug, Clone)]
pub struct ModelRow {
    /// What Separate runs; `None` for a preset without weights yet.
    pub choice: Option<ModelChoice>,
    /// Preset name when this is a preset.
    pub preset: Option<String>,
    /// Shown name.
    pub label: String,
    /// One line about it.
    pub description: String,
    /// Its architecture, when known.
    pub config: Option<ModelConfig>,
}

/// The song facts the prediction needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SongShape {
    /// Channels of the song.
    pub channels: usize,
    /// Duration, seconds.
    pub seconds: f64,
}

/// The model list and device choice.
pub struct PresetsPanel {
    presets: Vec<(String, String, ModelConfig)>,
    bundled: Option<(ModelConfig, String)>,
    /// Devices the engine reported.
    pub devices: Vec<DeviceInfo>,
    memo: RefCell<HashMap<(String, usize, usize, bool), u64>>,
    /// Imported configs, read once per path (the list is drawn every frame; a file that cannot
    /// be read stays `None` until the app restarts).
    configs: RefCell<HashMap<PathBuf, Option<ModelConfig>>>,
}

impl Default for PresetsPanel {
    fn default() -> Self {
        Self::new()
    }
}

impl PresetsPanel {
    /// Reads the built-in presets and the bundled model's config.
    pub fn new() -> Self {
        let presets = builtin_presets()
            .into_iter()
            .map(|p| (p.name, p.description, p.config))
            .collect();
        let bundled = crate::assets::default_model().and_then(|(cfg, _, desc)| {
            ModelConfig::from_file(&cfg)
                .ok()
                .map(|c| (c, desc.to_string()))
        });
        Self {
            presets,
            bundled,
            devices: Vec::new(),
            memo: RefCell::new(HashMap::new()),
            configs: RefCell::new(HashMap::new()),
        }
    }

    /// Every model the user can pick, in display order.
    pub fn rows(&self, settings: &Settings) -> Vec<ModelRow> {
        let mut rows = vec![ModelRow {
            choice: Some(ModelChoice::Bundled),
            preset: None,
            label: "bundled model".into(),
            description: self.bundled.as_ref().map_or_else(
                || "the demo model shipped with locosep".into(),
                |b| b.1.clone(),
            ),
            config: self.bundled.as_ref().map(|b| b.0.clone()),
        }];
        for (name, description, config) in &self.presets {
            let checkpoint = settings.checkpoints.get(name);
            rows.push(ModelRow {
                choice: checkpoint.map(|c| ModelChoice::Preset {
                    name: name.clone(),
                    checkpoint: c.clone(),
                }),
                preset: Some(name.clone()),
                label: name.clone(),
                description: description.clone(),
                config: Some(config.clone()),
            });
        }
        for (config, checkpoint) in &settings.custom {
            let choice = ModelChoice::Config {
                config: config.clone(),
                checkpoint: checkpoint.clone(),
            };
            rows.push(ModelRow {
                label: choice.label(),
                description: format!("{} + {}", config.display(), checkpoint.display()),
                config: self.config_file(config),
                choice: Some(choice),
                preset: None,
            });
        }
        rows
    }

    /// The built-in presets' names, in list order.
    pub fn names(&self) -> Vec<String> {
        self.presets.iter().map(|(n, _, _)| n.clone()).collect()
    }

    /// The config in `path`, read on first use and kept.
    fn config_file(&self, path: &Path) -> Option<ModelConfig> {
        self.configs
            .borrow_mut()
            .entry(path.to_path_buf())
            .or_insert_with(|| ModelConfig::from_file(path).ok())
            .clone()
    }

    /// The config of a choice, when known.
    pub fn config_of(&self, settings: &Settings, choice: &ModelChoice) -> Option<ModelConfig> {
        self.rows(settings)
            .into_iter()
            .find(|r| r.choice.as_ref() == Some(choice))
            .and_then(|r| r.config)
    }

    /// Whether the chosen device runs the fused attention kernel.
    pub fn fused(&self, device: DeviceChoice) -> bool {
        match device {
            DeviceChoice::Cpu => false,
            DeviceChoice::Gpu => true,
            DeviceChoice::Auto => self
                .devices
                .iter()
                .any(|d| d.choice == DeviceChoice::Gpu && d.hardware),
        }
    }

    /// Memory available on the chosen device, bytes.
    pub fn budget(&self, settings: &Settings) -> u64 {
        let cpu_ram = self
            .devices
            .iter()
            .find(|d| d.choice == DeviceChoice::Cpu)
            .and_then(|d| d.total_bytes);
        match (self.fused(settings.device), cpu_ram) {
            (false, Some(ram)) => ram,
            _ => (settings.gpu_budget_gib.max(0.1) * (1u64 << 30) as f64) as u64,
        }
    }

    /// The planner's predicted peak for `config` on this song, bytes.
    pub fn predict(&self, config: &ModelConfig, song: SongShape, batch: usize, fused: bool) -> u64 {
        let key = (config.name.clone(), song.channels, batch, fused);
        if let Some(v) = self.memo.borrow().get(&key) {
            return *v;
        }
        let pm = crate::engine::plan::plan_model(&config);
        let mut req = PlanRequest::new(&pm);
        req.batch = batch.max(1);
        req.song_channels = song.channels.max(1);
        if !fused {
            req.attention = AttentionStrategy::Chunked {
                max_score_bytes: PATH_CAP,
            };
            req.path_chunk_bytes = Some(PATH_CAP);
        }
        let peak = plan(&pm, &req).peak_bytes;
        self.memo.borrow_mut().insert(key, peak);
        peak
    }

    /// Draws the list and the device choice.
    pub fn show(
        &self,
        ui: &mut Ui,
        settings: &Settings,
        song: Option<SongShape>,
        commands: &mut Vec<Command>,
    ) {
        ui.heading("Model");
        let budget = self.budget(settings);
        let fused = self.fused(settings.device);
        for row in self.rows(settings) {
            ui.horizontal(|ui| {
                let selected = row.choice.as_ref() == Some(&settings.model);
                let enabled = row.choice.is_some();
                let r = ui.add_enabled(
                    enabled,
                    egui::RadioButton::new(selected, row.label.as_str()),
                );
                if r.clicked() {
                    if let Some(c) = &row.choice {
                        commands.push(Command::SelectModel(c.clone()));
                    }
                }
                r.on_hover_text(&row.description)
                    .on_disabled_hover_text("Choose weights for this preset first");
                if let Some(c) = &row.choice {
                    let mut ticked = settings.compare.contains(c);
                    if ui
                        .checkbox(&mut ticked, "compare")
                        .on_hover_text(format!("Include {} in the Compare tab", row.label))
                        .changed()
                    {
                        commands.push(Command::ToggleCompare(c.clone()));
                    }
                }
                if let Some(name) = &row.preset {
                    let text = if row.choice.is_some() {
                        "weights (set)"
                    } else {
                        "weights…"
                    };
                    if ui
                        .small_button(text)
                        .on_hover_text(format!("Choose the checkpoint for {name}"))
                        .clicked()
                    {
                        commands.push(Command::PickCheckpoint(name.clone()));
                    }
                }
            });
            if let Some(cfg) = &row.config {
                let mut line = format!(
                    "   {} params · {:.0} s segments",
                    human(cfg.param_count()),
                    cfg.segment_seconds
                );
                let mut over = false;
                if let Some(song) = song {
                    let peak = self.predict(cfg, song, settings.batch, fused);
                    line.push_str(&format!(" · peak {}", format_bytes(peak)));
                    over = peak > budget;
                }
                ui.label(RichText::new(line).small());
                if over {
                    ui.label(
                        RichText::new(format!(
                            "   Warning: over the {} budget",
                            format_bytes(budget)
                        ))
                        .small()
                        .color(Color32::from_rgb(240, 170, 60)),
                    );
                }
            }
        }
        if ui.button("Import config + checkpoint…").clicked() {
            commands.push(Command::ImportCustom);
        }
        ui.separator();
        ui.heading("Device");
        let mut device = settings.device;
        egui::ComboBox::from_label("device")
            .selected_text(device_label(device))
            .show_ui(ui, |ui| {
                for d in [DeviceChoice::Auto, DeviceChoice::Gpu, DeviceChoice::Cpu] {
                    ui.selectable_value(&mut device, d, device_label(d));
                }
            });
        if device != settings.device {
            commands.push(Command::SetDevice(device));
        }
        for d in &self.devices {
            let total = d
                .total_bytes
                .map(|b| format!(" · {}", format_bytes(b)))
                .unwrap_or_default();
            let soft = if d.hardware { "" } else { " (software)" };
            ui.label(RichText::new(format!("{}{soft}{total}", d.name)).small());
        }
    }
}

fn device_label(d: DeviceChoice) -> &'static str {
    match d {
        DeviceChoice::Auto => "Auto (GPU if present)",
        DeviceChoice::Gpu => "GPU (wgpu)",
        DeviceChoice::Cpu => "CPU",
    }
}

/// `1_390_000` → `1.39 M`.
fn human(n: usize) -> String {
    if n >= 1_000_000 {
        format!("{:.2} M", n as f64 / 1e6)
    } else {
        format!("{:.1} k", n as f64 / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list is drawn every frame: an imported config is read once, not per frame.
    #[test]
    fn imported_configs_are_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tflocoformer/mss-tiny/config.json");
        let config = dir.path().join("config.json");
        std::fs::copy(&fixture, &config).unwrap();
        let mut settings = Settings::default();
        settings
            .custom
            .push((config.clone(), dir.path().join("weights.safetensors")));
        let panel = PresetsPanel::new();
        let custom = |p: &PresetsPanel| p.rows(&settings).pop().and_then(|r| r.config);
        assert!(custom(&panel).is_some());
        std::fs::remove_file(&config).unwrap();
        assert!(custom(&panel).is_some(), "read again from disk");
        assert_eq!(
            panel.names().first().map(String::as_str),
            builtin_presets().first().map(|p| p.name.as_str())
        );
    }
}
