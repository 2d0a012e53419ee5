//! The Fine-tune tab: pick the data, output folder, preset (or a checkpoint to start from) and
//! steps; start, stop and resume a run on the training worker (`train::worker`, reached only
//! through its message enums); watch the loss, the validation SDR and the memory live (the
//! device allocator's while training on a GPU, the process's on the CPU) against the
//! planner's predicted peak for the form's settings. When a run ends its checkpoint is added
//! to the preset picker by the app.

use eframe::egui;
use egui::{Color32, Pos2, RichText, Sense, Shape, Stroke, Ui, Vec2};
use std::path::PathBuf;

use super::memory_graph::MemoryGraph;
use crate::memory::planner::{
    AttentionStrategy, Calibration, MemoryPlan, Mode, PlanRequest, format_bytes, plan,
};
use crate::train::trainer::{MAX_BATCH, StepLog, TrainEvent, ValidLog};
use crate::train::worker::TrainUpdate;

const LOSS: Color32 = Color32::from_rgb(90, 170, 255);
const SDR: Color32 = Color32::from_rgb(120, 220, 120);

/// The form of the tab (kept across restarts in the settings).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct FineTuneForm {
    /// Training data folder (MUSDB18-HQ layout, `.stem.mp4` files or folders of stems).
    pub data: String,
    /// Validation data folder (empty: every 5th track of the data).
    pub valid: String,
    /// Output folder for checkpoints and curves.
    pub out: String,
    /// Preset of the architecture.
    pub preset: String,
    /// Checkpoint to start from (empty: fresh weights).
    pub from: String,
    /// Optimizer steps.
    pub steps: usize,
    /// Training segment length (s).
    pub segment: f64,
    /// Segments per step.
    pub batch: usize,
    /// Per-block activation checkpointing (less memory, a second forward per block).
    pub checkpointing: bool,
    /// With checkpointing: keep the block inputs in host memory.
    pub offload: bool,
    /// Validate and save every N steps.
    pub every: usize,
    /// Train with the plain (scale-dependent) SDR loss instead of the seed's SI-SDR, so the
    /// model's output level is trained too (what the bundled demo model needed).
    pub sdr_loss: bool,
    /// Where to train: auto (a hardware GPU when there is one), GPU (any adapter, software
    /// ones included) or CPU.
    pub device: crate::engine::DeviceChoice,
    /// Start even when the output folder holds other files (they are replaced). Never kept
    /// across restarts: each such start is asked for.
    #[serde(skip)]
    pub overwrite: bool,
}

/// The name of a training device in the form.
fn device_label(d: crate::engine::DeviceChoice) -> &'static str {
    match d {
        crate::engine::DeviceChoice::Auto => "auto (GPU if present)",
        crate::engine::DeviceChoice::Gpu => "GPU",
        crate::engine::DeviceChoice::Cpu => "CPU",
    }
}

/// The output folder earlier versions suggested, relative to wherever the app was started
/// (replaced by [`default_out_dir`] when found in saved settings).
pub const OLD_DEFAULT_OUT: &str = "runs/finetune";

/// Where runs go until the user picks a folder: `runs/finetune` in locosep's data folder
/// (`$LOCOSEP_DATA_DIR`, else e.g. `~/.local/share/locosep`), an absolute path, so it does not
/// depend on where the app was started from.
pub fn default_out_dir() -> PathBuf {
    crate::catalog::Store::from_env()
        .map(|s| s.root().join("runs").join("finetune"))
        .unwrap_or_else(|_| PathBuf::from("runs/finetune"))
}

impl Default for FineTuneForm {
    fn default() -> Self {
        Self {
            data: String::new(),
            valid: String::new(),
            out: default_out_dir().display().to_string(),
            preset: "demo".into(),
            from: String::new(),
            steps: 500,
            segment: 1.0,
            batch: 1,
            checkpointing: false,
            offload: false,
            every: 50,
            sdr_loss: true,
            device: crate::engine::DeviceChoice::Auto,
            overwrite: false,
        }
    }
}

/// What the planner is asked for a form: every setting that changes the training peak.
#[derive(Debug, Clone, PartialEq)]
struct PlanKey {
    preset: String,
    segment: f64,
    batch: usize,
    checkpointing: bool,
    offload: bool,
    /// Training on a GPU (fused attention) rather than the CPU (materialised scores).
    gpu: bool,
}

impl PlanKey {
    fn of(form: &FineTuneForm, gpu: bool) -> Self {
        Self {
            preset: form.preset.clone(),
            segment: form.segment,
            batch: form.batch,
            checkpointing: form.checkpointing,
            offload: form.checkpointing && form.offload,
            gpu,
        }
    }

    /// The planner's peak of one training step with these settings, or why there is none.
    fn plan(&self) -> Result<MemoryPlan, String> {
        let cfg = crate::model::config::preset(&self.preset)
            .map_err(|e| e.to_string())?
            .config;
        let mut model = crate::engine::plan::plan_model(&cfg);
        // As the trainer cuts segments: at least one STFT window.
        model.segment_samples =
            ((self.segment * cfg.sample_rate as f64).round() as usize).max(cfg.n_fft);
        let req = PlanRequest {
            batch: self.batch.max(1),
            // Training segments are stereo (two mono items each for a mono model).
            song_channels: 2,
            mode: if self.checkpointing {
                Mode::TrainingCheckpointed
            } else {
                Mode::Training
            },
            // The step's attention never stores a score tensor: the fused WGSL kernel on
            // wgpu, the host attention kernel (forward and backward) on the CPU.
            attention: AttentionStrategy::Fused,
            offload_checkpoints: self.offload,
            calibration: if self.gpu {
                Calibration::WGPU
            } else {
                Calibration::FLEX
            },
            ..PlanRequest::new(&model)
        };
        Ok(plan(&model, &req))
    }
}

/// The planner's answer for the settings it was asked with (kept until they change).
#[derive(Debug, Clone)]
struct Prediction {
    key: PlanKey,
    plan: Result<MemoryPlan, String>,
}

/// Which text field a Browse button fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Training data.
    Data,
    /// Validation data.
    Valid,
    /// Output folder.
    Out,
    /// Starting checkpoint.
    From,
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FineTuneAction {
    /// Start a new run (`resume: false`) or continue the one in the output folder.
    Start {
        /// Continue from `out/last`.
        resume: bool,
    },
    /// Stop the run after its current step (it saves first).
    Stop,
    /// Open a file or folder dialog for a field.
    Browse(Field),
    /// Make the finished run's checkpoint the model Separate uses (the user accepted the offer).
    UseForSeparating {
        /// The run's config file.
        config: PathBuf,
        /// The run's weights.
        checkpoint: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Status {
    Idle,
    Starting,
    Running { steps: usize },
    Stopping,
    Done(String),
    Failed(String),
}

/// State of the tab.
#[derive(Debug, Clone)]
pub struct FineTunePanel {
    /// The form.
    pub form: FineTuneForm,
    status: Status,
    steps: Vec<StepLog>,
    valid: Vec<ValidLog>,
    memory: MemoryGraph,
    /// Whether the run's memory readings come from a device allocator (else the process).
    device_memory: bool,
    /// The planner's peak for the form as last drawn.
    prediction: Option<Prediction>,
    messages: Vec<String>,
    /// Validation songs of the current run, once the worker said how many.
    valid_tracks: Option<usize>,
    /// A finished run's (config, checkpoint), offered for separating until accepted or a new
    /// run starts; finishing a run never changes the Separate model by itself.
    offer: Option<(PathBuf, PathBuf)>,
}

impl FineTunePanel {
    /// A panel with `form` filled in.
    pub fn new(form: FineTuneForm) -> Self {
        Self {
            form,
            status: Status::Idle,
            steps: Vec::new(),
            valid: Vec::new(),
            memory: MemoryGraph::default(),
            device_memory: false,
            prediction: None,
            messages: Vec::new(),
            valid_tracks: None,
            offer: None,
        }
    }

    /// Whether a run is starting, running or stopping.
    pub fn is_running(&self) -> bool {
        matches!(
            self.status,
            Status::Starting | Status::Running { .. } | Status::Stopping
        )
    }

    /// Steps logged so far in this run.
    pub fn logged_steps(&self) -> usize {
        self.steps.len()
    }

    /// The user pressed Start or Resume: clear the curves, wait for the worker.
    pub fn starting(&mut self) {
        self.status = Status::Starting;
        self.offer = None;
        self.steps.clear();
        self.valid.clear();
        self.memory.clear();
        self.device_memory = false;
        // The form is the run's: its prediction is the graph's reference line.
        self.memory.prediction = self.predicted_peak();
        self.messages.clear();
        self.valid_tracks = None;
    }

    /// The planner's predicted peak for the form as last drawn, bytes.
    pub fn predicted_peak(&self) -> Option<u64> {
        self.prediction
            .as_ref()
            .and_then(|p| p.plan.as_ref().ok())
            .map(|p| p.peak_bytes)
    }

    /// The predicted peak drawn on the run's memory graph, bytes.
    pub fn memory_prediction(&self) -> Option<u64> {
        self.memory.prediction
    }

    /// Plans the form's settings when they differ from the last planned ones (drawn every
    /// frame; planned once per change).
    fn refresh_prediction(&mut self, gpu: bool) {
        let key = PlanKey::of(&self.form, gpu);
        if self.prediction.as_ref().is_some_and(|p| p.key == key) {
            return;
        }
        let plan = key.plan();
        self.prediction = Some(Prediction { key, plan });
    }

    /// The predicted peak line and, folded, where its bytes go.
    fn show_prediction(&self, ui: &mut Ui) {
        let Some(p) = &self.prediction else {
            return;
        };
        let plan = match &p.plan {
            Ok(plan) => plan,
            Err(e) => {
                ui.label(format!("Predicted training peak: unknown ({e})"));
                return;
            }
        };
        let on = if p.key.gpu {
            "GPU memory"
        } else {
            "memory (CPU)"
        };
        ui.label(format!(
            "Predicted training peak: {} of {on} ({}, batch {}, {:.2} s segments)",
            format_bytes(plan.peak_bytes),
            plan.request.mode,
            p.key.batch,
            p.key.segment
        ))
        .on_hover_text(
            "The memory planner's peak for one training step with these settings: weights, \
             AdamW moments, gradients and the activations the backward keeps",
        );
        egui::CollapsingHeader::new("Where the predicted peak goes")
            .id_salt("finetune plan breakdown")
            .show(ui, |ui| {
                egui::Grid::new("finetune plan table")
                    .num_columns(2)
                    .striped(true)
                    .show(ui, |ui| {
                        for (category, bytes) in &plan.breakdown {
                            ui.label(category.label());
                            ui.label(format_bytes(*bytes));
                            ui.end_row();
                        }
                    });
                ui.label(RichText::new(format!("peak during {}", plan.peak_phase)).small());
                ui.label(
                    RichText::new(format!(
                        "largest allocation {}: {}",
                        format_bytes(plan.largest_allocation_bytes),
                        plan.largest_allocation
                    ))
                    .small(),
                );
                if plan.offloaded_bytes > 0 {
                    ui.label(
                        RichText::new(format!(
                            "block inputs in host memory: {}",
                            format_bytes(plan.offloaded_bytes)
                        ))
                        .small(),
                    );
                }
            });
    }

    /// The offered run became the Separate model: stop offering it.
    pub fn offer_taken(&mut self) {
        self.offer = None;
    }

    /// Why the validation chart is empty: no validation songs (the run said so, or none has
    /// started), or the first validation is still to come.
    fn validation_note(&self) -> String {
        match self.valid_tracks {
            Some(0) => "no validation songs yet: the data gave none (give it 5 songs or more, \
                        or a validation folder)"
                .into(),
            Some(_) => format!(
                "no validation yet: the first is at step {}",
                self.form
                    .every
                    .min(self.planned_steps().unwrap_or(usize::MAX))
            ),
            None => "no validation songs yet".into(),
        }
    }

    fn planned_steps(&self) -> Option<usize> {
        match self.status {
            Status::Running { steps } => Some(steps),
            _ => None,
        }
    }

    /// The user pressed Stop.
    pub fn stopping(&mut self) {
        if self.is_running() {
            self.status = Status::Stopping;
        }
    }

    /// Applies a worker update.
    pub fn update(&mut self, u: &TrainUpdate) {
        match u {
            TrainUpdate::Started { steps, .. } => {
                if self.status != Status::Stopping {
                    self.status = Status::Running { steps: *steps };
                }
            }
            TrainUpdate::Event(TrainEvent::Step(s)) => self.steps.push(s.clone()),
            TrainUpdate::Event(TrainEvent::Valid(v)) => self.valid.push(v.clone()),
            TrainUpdate::Event(TrainEvent::Saved(p)) => {
                self.messages.push(format!("saved {}", p.display()))
            }
            TrainUpdate::Event(TrainEvent::Message(m)) => {
                if let Some(n) = validation_tracks(m) {
                    self.valid_tracks = Some(n);
                }
                self.messages.push(m.clone())
            }
            TrainUpdate::Memory(s) => {
                self.device_memory |= s.in_use.is_some();
                self.memory.push(*s)
            }
            TrainUpdate::Finished {
                steps,
                config,
                checkpoint,
                stopped,
            } => {
                let how = if *stopped { "stopped" } else { "finished" };
                self.status = Status::Done(format!(
                    "Run {how} after {steps} steps; {} is now in the preset list.",
                    checkpoint.display()
                ));
                self.offer = Some((config.clone(), checkpoint.clone()));
            }
            TrainUpdate::Failed(m) => self.status = Status::Failed(m.clone()),
        }
        if self.messages.len() > 6 {
            self.messages.drain(..self.messages.len() - 6);
        }
    }

    /// Draws the tab; returns what the user asked for. `gpu`: whether the form's device
    /// trains on a GPU (what the predicted peak assumes).
    pub fn show(&mut self, ui: &mut Ui, presets: &[String], gpu: bool) -> Option<FineTuneAction> {
        let mut action = None;
        ui.heading("Fine-tune");
        ui.label(
            "Train a preset on your own multitrack songs (folders of stems, MUSDB18-HQ folders \
             or .stem.mp4 files), or continue from a checkpoint. The finished model appears in \
             the preset list.",
        );
        let busy = self.is_running();
        ui.add_enabled_ui(!busy, |ui| {
            egui::Grid::new("finetune form")
                .num_columns(3)
                .spacing([8.0, 6.0])
                .show(ui, |ui| {
                    let f = &mut self.form;
                    for (label, field, text, hint) in [
                        ("Training data", Field::Data, &mut f.data, "folder of songs"),
                        (
                            "Validation data",
                            Field::Valid,
                            &mut f.valid,
                            "optional: every 5th song",
                        ),
                        (
                            "Output folder",
                            Field::Out,
                            &mut f.out,
                            "a new or empty folder",
                        ),
                        (
                            "Start from",
                            Field::From,
                            &mut f.from,
                            "optional checkpoint",
                        ),
                    ] {
                        let l = ui.label(label);
                        ui.add_sized(
                            [360.0, 20.0],
                            egui::TextEdit::singleline(text).hint_text(hint),
                        )
                        .labelled_by(l.id);
                        if ui
                            .button("Browse…")
                            .on_hover_text(format!("Choose the {}", label.to_lowercase()))
                            .clicked()
                        {
                            action = Some(FineTuneAction::Browse(field));
                        }
                        ui.end_row();
                    }
                    let l = ui.label("Preset");
                    egui::ComboBox::from_id_salt("finetune preset")
                        .selected_text(&f.preset)
                        .show_ui(ui, |ui| {
                            for p in presets {
                                ui.selectable_value(&mut f.preset, p.clone(), p);
                            }
                        })
                        .response
                        .labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label("Steps");
                    ui.add(egui::DragValue::new(&mut f.steps).range(1..=1_000_000))
                        .labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label("Segment (s)");
                    ui.add(
                        egui::DragValue::new(&mut f.segment)
                            .range(0.25..=30.0)
                            .speed(0.05),
                    )
                    .labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label("Batch");
                    ui.add(egui::DragValue::new(&mut f.batch).range(1..=MAX_BATCH))
                        .labelled_by(l.id)
                        .on_hover_text("Segments per step");
                    ui.end_row();
                    ui.label("Checkpointing");
                    ui.checkbox(&mut f.checkpointing, "recompute each block in the backward")
                        .on_hover_text(
                            "Keeps only each block's input for the backward, which runs each \
                             block's forward again: less memory, more time per step",
                        );
                    ui.end_row();
                    // Own row: beside the checkpointing box it pushed Browse out of the panel.
                    ui.label("Offload");
                    ui.add_enabled(
                        f.checkpointing,
                        egui::Checkbox::new(&mut f.offload, "block inputs in host memory"),
                    )
                    .on_hover_text(
                        "With checkpointing: keep the block inputs in RAM, not on the device",
                    );
                    ui.end_row();
                    let l = ui.label("Validate + save every");
                    ui.add(egui::DragValue::new(&mut f.every).range(1..=100_000))
                        .labelled_by(l.id);
                    ui.end_row();
                    ui.label("Loss");
                    ui.checkbox(&mut f.sdr_loss, "SDR (trains the output level)")
                        .on_hover_text(
                            "Off: the seed's SI-SDR loss, which ignores the output level",
                        );
                    ui.end_row();
                    let l = ui.label("Device");
                    egui::ComboBox::from_id_salt("finetune_device")
                        .selected_text(device_label(f.device))
                        .show_ui(ui, |ui| {
                            for d in [
                                crate::engine::DeviceChoice::Auto,
                                crate::engine::DeviceChoice::Gpu,
                                crate::engine::DeviceChoice::Cpu,
                            ] {
                                ui.selectable_value(&mut f.device, d, device_label(d));
                            }
                        })
                        .response
                        .labelled_by(l.id)
                        .on_hover_text(
                            "Validation runs on the same device. Auto takes a hardware GPU \
                             when wgpu finds one, else the CPU.",
                        );
                    ui.end_row();
                    ui.label("Overwrite");
                    ui.checkbox(
                        &mut f.overwrite,
                        "replace what the output folder holds (when it is not a run)",
                    )
                    .on_hover_text(
                        "Training refuses a non-empty folder that holds no run; tick this to \
                         start there anyway. Resume never needs it.",
                    );
                    ui.end_row();
                });
        });
        // After the form: a change made this frame is planned this frame.
        self.refresh_prediction(gpu);
        self.show_prediction(ui);
        ui.horizontal(|ui| {
            let ready = !busy && !self.form.data.trim().is_empty() && !self.form.out.is_empty();
            if ui
                .add_enabled(ready, egui::Button::new("Start training"))
                .clicked()
            {
                action = Some(FineTuneAction::Start { resume: false });
            }
            if ui
                .add_enabled(ready, egui::Button::new("Resume"))
                .on_hover_text("Continue the run in the output folder from its last checkpoint")
                .clicked()
            {
                action = Some(FineTuneAction::Start { resume: true });
            }
            if ui
                .add_enabled(
                    matches!(self.status, Status::Running { .. } | Status::Starting),
                    egui::Button::new("Stop"),
                )
                .on_hover_text("Stop after the current step; a checkpoint is saved first")
                .clicked()
            {
                action = Some(FineTuneAction::Stop);
            }
        });
        match &self.status {
            Status::Idle => {}
            Status::Starting => {
                ui.label("Starting…");
            }
            Status::Running { steps } => {
                let done = self.steps.len();
                ui.add(
                    egui::ProgressBar::new(done as f32 / (*steps).max(1) as f32)
                        .text(format!("step {done} / {steps}")),
                );
            }
            Status::Stopping => {
                ui.label("Stopping after the current step…");
            }
            Status::Done(m) => {
                ui.label(RichText::new(m).color(SDR));
                if let Some((config, checkpoint)) = &self.offer {
                    let run = checkpoint
                        .parent()
                        .map(|d| {
                            let mut parts = d.iter().rev().take(2).collect::<Vec<_>>();
                            parts.reverse();
                            parts
                                .iter()
                                .map(|p| p.to_string_lossy())
                                .collect::<Vec<_>>()
                                .join("/")
                        })
                        .unwrap_or_default();
                    ui.horizontal_wrapped(|ui| {
                        ui.label(format!("Use {run} for separating?"));
                        if ui.button("Use it").clicked() {
                            action = Some(FineTuneAction::UseForSeparating {
                                config: config.clone(),
                                checkpoint: checkpoint.clone(),
                            });
                        }
                    });
                }
            }
            Status::Failed(m) => {
                ui.label(RichText::new(format!("Training failed: {m}")).color(Color32::LIGHT_RED));
            }
        }
        ui.separator();
        ui.columns(2, |cols| {
            let loss: Vec<[f64; 2]> = self
                .steps
                .iter()
                .map(|s| [s.step as f64, s.loss as f64])
                .collect();
            let last = self.steps.last().map(|s| format!(" · last {:.3}", s.loss));
            cols[0].label(format!("Training loss{}", last.unwrap_or_default()));
            chart(
                &mut cols[0],
                "loss curve",
                &loss,
                LOSS,
                150.0,
                "no data yet",
            );
            let sdr: Vec<[f64; 2]> = self
                .valid
                .iter()
                .map(|v| [v.step as f64, v.mean_sdr])
                .collect();
            let last = self
                .valid
                .last()
                .map(|v| format!(" · last {:.2} dB", v.mean_sdr));
            cols[1].label(format!("Validation SDR (mean){}", last.unwrap_or_default()));
            let why = self.validation_note();
            chart(&mut cols[1], "sdr curve", &sdr, SDR, 150.0, &why);
        });
        let what = if self.device_memory {
            "Device memory in use (allocator)"
        } else {
            "Process memory"
        };
        ui.label(match self.memory.peak() {
            Some(p) => format!("{what} (peak {})", format_bytes(p)),
            None => what.into(),
        });
        self.memory.show(ui, 90.0);
        for m in &self.messages {
            ui.label(RichText::new(m).small());
        }
        action
    }
}

/// The validation song count in the trainer's "N training tracks, M validation tracks" line.
fn validation_tracks(message: &str) -> Option<usize> {
    let (_, rest) = message.split_once("training tracks, ")?;
    rest.strip_suffix(" validation tracks")?.trim().parse().ok()
}

/// A line chart of `points` (x ascending) with its min and max written at the left edge;
/// `empty` is written in its middle while there are none.
fn chart(ui: &mut Ui, name: &str, points: &[[f64; 2]], color: Color32, height: f32, empty: &str) {
    let (rect, response) =
        ui.allocate_exact_size(Vec2::new(ui.available_width(), height), Sense::hover());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, name));
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    let finite: Vec<[f64; 2]> = points
        .iter()
        .copied()
        .filter(|p| p[0].is_finite() && p[1].is_finite())
        .collect();
    if finite.is_empty() {
        // Wrapped to the chart, centred: the reason can be a sentence.
        let galley = painter.layout(
            empty.to_string(),
            egui::FontId::proportional(12.0),
            ui.visuals().weak_text_color(),
            rect.width() - 24.0,
        );
        let at = rect.center() - galley.size() / 2.0;
        painter.galley(at, galley, ui.visuals().weak_text_color());
        return;
    }
    let (x0, x1) = (
        finite[0][0],
        finite[finite.len() - 1][0].max(finite[0][0] + 1.0),
    );
    let lo = finite.iter().map(|p| p[1]).fold(f64::INFINITY, f64::min);
    let hi = finite
        .iter()
        .map(|p| p[1])
        .fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if hi - lo < 1e-9 {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo, hi)
    };
    let inner = rect.shrink(8.0);
    let to_screen = |p: [f64; 2]| {
        Pos2::new(
            inner.left() + ((p[0] - x0) / (x1 - x0)) as f32 * inner.width(),
            inner.bottom() - ((p[1] - lo) / (hi - lo)) as f32 * inner.height(),
        )
    };
    let line: Vec<Pos2> = finite.iter().map(|p| to_screen(*p)).collect();
    if line.len() == 1 {
        painter.circle_filled(line[0], 3.0, color);
    } else {
        painter.add(Shape::line(line, Stroke::new(1.5, color)));
    }
    let font = egui::FontId::proportional(11.0);
    let weak = ui.visuals().weak_text_color();
    painter.text(
        inner.left_top(),
        egui::Align2::LEFT_TOP,
        format!("{hi:.2}"),
        font.clone(),
        weak,
    );
    painter.text(
        inner.left_bottom(),
        egui::Align2::LEFT_BOTTOM,
        format!("{lo:.2}"),
        font.clone(),
        weak,
    );
    painter.text(
        inner.right_bottom(),
        egui::Align2::RIGHT_BOTTOM,
        format!("step {x1:.0}"),
        font,
        weak,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_validation_song_count_is_read_from_the_trainers_line() {
        assert_eq!(
            validation_tracks("12 training tracks, 0 validation tracks"),
            Some(0)
        );
        assert_eq!(
            validation_tracks("12 training tracks, 3 validation tracks"),
            Some(3)
        );
        assert_eq!(validation_tracks("saved /runs/x/last"), None);
    }
}
