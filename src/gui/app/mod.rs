//! The eframe app: panels drawn from state, buttons push [`Command`]s applied after drawing,
//! the engine reached only through its two channels.

use eframe::egui;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

use egui::{RichText, Ui};

use super::command::Command;
use super::compare::{ComparePanel, RunStatus};
use super::dialogs::{Picker, SystemDialogs};
use super::export_panel::ExportPanel;
use super::finetune::{FineTuneForm, FineTunePanel};
use super::lane::Lane;
use super::memory_graph::MemoryGraph;
use super::mixer::MixerState;
use super::models_window::{ModelsWindow, RowState};
use super::notices::Notice;
use super::player::Player;
use super::presets_panel::{PresetsPanel, SongShape};
use super::settings::{Settings, Tab};
use super::spectrogram::Spectrograms;
use super::time_view::TimeView;
use super::weights_check::Verdict;
use crate::audio::AudioBuffer;
use crate::engine::messages::{EngineCommand, EngineEvent, JobId};
use crate::engine::separator::{SeparateParams, Stems};
use crate::train::worker::{TrainCommand, TrainUpdate};

mod commands;
mod draw;
mod events;
mod screenshot;

use screenshot::ScreenshotJob;

/// How the app is started.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// A song to open at once.
    pub open: Option<PathBuf>,
    /// Where settings are stored as JSON (`None`: only in eframe's storage).
    pub settings_path: Option<PathBuf>,
    /// Open the audio output (tests leave it closed).
    pub audio: bool,
    /// Save a PNG of the window here once the song (if any) is shown, then close the app
    /// (documentation screenshots and end-to-end tests of the real binary).
    pub screenshot: Option<PathBuf>,
}

/// The song on screen.
struct Song {
    path: PathBuf,
    audio: Arc<AudioBuffer>,
    lane: Lane,
}

/// The separation the Separate tab shows.
#[derive(Debug, Clone)]
struct RunningJob {
    job: JobId,
    done: usize,
    total: usize,
    elapsed: Duration,
    model: String,
    device: String,
    cancelling: bool,
}

/// A song in the queue.
#[derive(Debug, Clone)]
struct QueueItem {
    path: PathBuf,
    job: Option<JobId>,
    status: String,
}

/// The locosep desktop app.
pub struct LocosepApp {
    settings: Settings,
    settings_path: Option<PathBuf>,
    engine: Sender<EngineCommand>,
    events: Receiver<EngineEvent>,
    next_job: u64,
    song: Option<Song>,
    loading: Option<(JobId, PathBuf)>,
    stems: Option<Arc<Stems>>,
    stem_lanes: Vec<Lane>,
    job: Option<RunningJob>,
    last_result: Option<String>,
    queue: Vec<QueueItem>,
    export_job: Option<JobId>,
    errors: Vec<Notice>,
    /// Picked weights being checked against their model (off the UI thread).
    weights_check: Option<std::sync::mpsc::Receiver<Verdict>>,
    /// A line about the last weights pick that passed its check.
    weights_note: Option<String>,
    picker: Box<dyn Picker>,
    view: TimeView,
    selection: Option<(f64, f64)>,
    player: Player,
    mixer: MixerState,
    memory: MemoryGraph,
    compare: ComparePanel,
    export: ExportPanel,
    presets: PresetsPanel,
    specs: Spectrograms,
    finetune: FineTunePanel,
    trainer: Option<(Sender<TrainCommand>, Receiver<TrainUpdate>)>,
    models_window: Option<ModelsWindow>,
    screenshot: Option<ScreenshotJob>,
}

impl LocosepApp {
    /// Builds the app on `ctx` around the engine's channels.
    pub fn new(
        ctx: &egui::Context,
        storage: Option<&dyn eframe::Storage>,
        engine: Sender<EngineCommand>,
        events: Receiver<EngineEvent>,
        options: AppOptions,
    ) -> Self {
        let settings = storage
            .and_then(|s| eframe::get_value::<Settings>(s, Settings::KEY))
            .or_else(|| options.settings_path.as_deref().and_then(Settings::load))
            .unwrap_or_default();
        let player = if options.audio {
            Player::open()
        } else {
            Player::disabled("Playback is off in this window.")
        };
        let mut app = Self {
            export: ExportPanel::new(settings.export.clone()),
            settings,
            settings_path: options.settings_path,
            engine,
            events,
            next_job: 0,
            song: None,
            loading: None,
            stems: None,
            stem_lanes: Vec::new(),
            job: None,
            last_result: None,
            queue: Vec::new(),
            export_job: None,
            errors: Vec::new(),
            weights_check: None,
            weights_note: None,
            picker: Box::new(SystemDialogs),
            view: TimeView::fit(1.0),
            selection: None,
            player,
            mixer: MixerState::default(),
            memory: MemoryGraph::default(),
            compare: ComparePanel::default(),
            presets: PresetsPanel::new(),
            specs: Spectrograms::new(ctx),
            finetune: FineTunePanel::new(Default::default()),
            trainer: None,
            models_window: None,
            screenshot: options.screenshot.clone().map(|path| ScreenshotJob {
                path,
                started: std::time::Instant::now(),
                requested: false,
                done: Arc::new(std::sync::Mutex::new(None)),
            }),
        };
        app.finetune.form = app.settings.finetune.clone();
        if app.finetune.form.out == super::finetune::OLD_DEFAULT_OUT {
            // Settings from before the default was absolute: the folder depended on where the
            // app was started.
            app.finetune.form.out = super::finetune::default_out_dir().display().to_string();
        }
        app.send(EngineCommand::ListDevices);
        if let Some(path) = options.open {
            app.apply(ctx, Command::Open(path));
        }
        app
    }

    /// Connects the Fine-tune tab to a training worker (`train::worker::spawn`, or a test's
    /// fake): commands go out on `commands`, progress comes back on `updates`.
    pub fn with_trainer(
        mut self,
        commands: Sender<TrainCommand>,
        updates: Receiver<TrainUpdate>,
    ) -> Self {
        self.trainer = Some((commands, updates));
        self
    }

    /// Takes file and folder choices from `picker` instead of the desktop's dialogs (a window
    /// without a desktop session, or a test that answers them).
    pub fn with_picker(mut self, picker: Box<dyn Picker>) -> Self {
        self.picker = picker;
        self
    }

    /// Attaches the Get-models window (and its download worker). With `offer`, it opens at once
    /// when only the bundled demo model is available (a first start), so the real models are
    /// offered.
    pub fn with_models(mut self, mut window: ModelsWindow, offer: bool) -> Self {
        let downloaded = window
            .rows
            .iter()
            .any(|r| matches!(r.state, RowState::Installed(_)));
        window.open = offer && !downloaded && self.settings.custom.is_empty();
        self.models_window = Some(window);
        self
    }

    /// The Fine-tune tab's form (tests fill it in).
    pub fn finetune_form_mut(&mut self) -> &mut FineTuneForm {
        &mut self.finetune.form
    }

    /// Steps the Fine-tune tab has logged in the current run.
    pub fn finetune_steps(&self) -> usize {
        self.finetune.logged_steps()
    }

    /// The predicted peak the Fine-tune tab's memory graph shows, bytes.
    pub fn finetune_predicted_peak(&self) -> Option<u64> {
        self.finetune.memory_prediction()
    }

    /// The mixer state (what the audio thread is told).
    pub fn mixer(&self) -> &MixerState {
        &self.mixer
    }

    /// Names of the separated stems on screen.
    pub fn stem_names(&self) -> Vec<String> {
        self.stems
            .as_ref()
            .map(|s| s.names.clone())
            .unwrap_or_default()
    }

    /// Whether a song is loaded.
    pub fn has_song(&self) -> bool {
        self.song.is_some()
    }

    /// Whether a separation is running.
    pub fn is_running(&self) -> bool {
        self.job.is_some()
    }

    /// Whether picked weights are still being checked.
    pub fn checking_weights(&self) -> bool {
        self.weights_check.is_some()
    }

    /// Spectrograms still being computed.
    pub fn pending_spectrograms(&self) -> usize {
        self.specs.pending()
    }

    /// Error messages shown (their one-line summaries).
    pub fn errors(&self) -> Vec<String> {
        self.errors.iter().map(|n| n.summary.clone()).collect()
    }

    /// The visible time window of the lanes.
    pub fn view(&self) -> TimeView {
        self.view
    }

    /// Shows an error (a text whose first line is the summary); the same text twice is shown
    /// once.
    fn error(&mut self, text: impl AsRef<str>) {
        self.notice(Notice::from_text(text.as_ref()));
    }

    fn notice(&mut self, notice: Notice) {
        if !self.errors.contains(&notice) {
            self.errors.push(notice);
        }
    }

    /// The persisted settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn new_job(&mut self) -> JobId {
        self.next_job += 1;
        JobId(self.next_job)
    }

    fn send(&mut self, cmd: EngineCommand) {
        if self.engine.send(cmd).is_err() {
            self.error("The engine stopped; restart locosep.");
        }
    }

    fn store_settings(&mut self) {
        self.settings.export = self.export.form.clone();
        if let Some(path) = &self.settings_path {
            if let Err(e) = self.settings.store(path) {
                self.error(format!("Could not save settings: {e}"));
            }
        }
    }

    fn song_shape(&self) -> Option<SongShape> {
        self.song.as_ref().map(|s| SongShape {
            channels: s.audio.channels.len(),
            seconds: s.audio.duration_secs(),
        })
    }

    fn params(&self) -> SeparateParams {
        SeparateParams {
            overlap: self.settings.overlap,
            batch: self.settings.batch.max(1),
            ..SeparateParams::default()
        }
    }

    fn busy(&self) -> bool {
        self.job.is_some()
            || self
                .compare
                .runs
                .iter()
                .any(|r| matches!(r.status, RunStatus::Queued | RunStatus::Running(_)))
    }

    fn update_player_tracks(&mut self) {
        let Some(song) = &self.song else { return };
        let mut tracks = vec![song.audio.clone()];
        tracks.extend(self.stem_lanes.iter().map(|l| l.audio.clone()));
        self.player.set_tracks(song.audio.sample_rate, tracks);
        self.player.set_gains(self.mixer.gains());
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

impl eframe::App for LocosepApp {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.poll_events(&ctx);
        self.poll_weights_check();
        self.screenshot_step(&ctx);
        self.player.poll();
        self.specs.poll(&ctx);
        self.compare.poll(&ctx);
        let mut cmds = Vec::new();
        self.handle_drops(&ctx, &mut cmds);
        self.shortcuts(&ctx, &mut cmds);

        egui::Panel::top("menu").show(ui, |ui| self.menu_bar(ui, &mut cmds));
        egui::Panel::bottom("bottom")
            .resizable(true)
            .default_size(130.0)
            .show(ui, |ui| self.bottom_ui(ui, &mut cmds));
        egui::Panel::left("models")
            .resizable(true)
            .default_size(270.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("models-scroll")
                    .show(ui, |ui| {
                        self.presets
                            .show(ui, &self.settings, self.song_shape(), &mut cmds);
                        if let Some(note) = &self.weights_note {
                            ui.horizontal(|ui| {
                                if self.weights_check.is_some() {
                                    ui.spinner();
                                }
                                ui.add(egui::Label::new(RichText::new(note).small()).wrap());
                            });
                        }
                    });
            });
        egui::Panel::right("side")
            .resizable(true)
            .default_size(300.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("side-scroll")
                    .show(ui, |ui| self.side_ui(ui, &mut cmds));
            });
        egui::CentralPanel::default_margins().show(ui, |ui| {
            self.errors_ui(ui, &mut cmds);
            match self.settings.layout.tab {
                Tab::Separate => self.separate_tab(ui, &mut cmds),
                Tab::Compare => {
                    let has_song = self.song.is_some();
                    let busy = self.busy();
                    self.compare.show(
                        ui,
                        &self.settings.compare,
                        self.selection,
                        has_song,
                        busy,
                        &self.specs,
                        &mut cmds,
                    );
                }
                Tab::FineTune => {
                    if self.trainer.is_some() {
                        let names = self.presets.names();
                        let gpu = self.presets.fused(self.finetune.form.device);
                        // Scrolls: with the breakdown open the tab is taller than a small window.
                        let action = egui::ScrollArea::vertical()
                            .id_salt("finetune-scroll")
                            .show(ui, |ui| self.finetune.show(ui, &names, gpu))
                            .inner;
                        if let Some(action) = action {
                            cmds.push(Command::FineTune(action));
                        }
                        if self.finetune.is_running() {
                            ui.ctx().request_repaint_after(Duration::from_millis(500));
                        }
                    } else {
                        ui.heading("Fine-tune");
                        ui.label("No training worker in this window: use `locosep train` from the command line, then import the checkpoint with \"Import config + checkpoint…\".");
                    }
                }
            }
        });
        self.export.show_confirm(&ctx, &mut cmds);
        if let Some(w) = &mut self.models_window {
            if w.open {
                w.show(&ctx);
            } else {
                w.poll();
            }
        }
        self.apply_model_changes();

        for cmd in cmds {
            self.apply(&ctx, cmd);
        }
        // Repaint continuously only while playing or running.
        if self.player.is_playing() {
            ctx.request_repaint_after(Duration::from_millis(16));
        } else if self.busy() {
            ctx.request_repaint_after(Duration::from_millis(250));
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        self.settings.export = self.export.form.clone();
        eframe::set_value(storage, Settings::KEY, &self.settings);
        self.store_settings();
    }

    fn on_exit(&mut self) {
        // The engine cancels its jobs; a closed channel means it is already gone.
        let _ = self.engine.send(EngineCommand::Shutdown);
        if let Some((tx, _)) = &self.trainer {
            // A running training run stops after its step and saves.
            let _ = tx.send(TrainCommand::Shutdown);
        }
    }
}
