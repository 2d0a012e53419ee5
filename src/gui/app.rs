//! The eframe app: panels drawn from state, buttons push [`Command`]s applied after drawing,
//! the engine reached only through its two channels.

use eframe::egui;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

use egui::{Color32, RichText, Ui};

use super::command::Command;
use super::compare::{ComparePanel, RunStatus, reference_files};
use super::dialogs::{Picker, SystemDialogs};
use super::export_panel::ExportPanel;
use super::finetune::{Field, FineTuneAction, FineTuneForm, FineTunePanel};
use super::lane::Lane;
use super::memory_graph::MemoryGraph;
use super::mixer::MixerState;
use super::models_window::{ModelChange, ModelsWindow, RowState};
use super::notices::{self, Notice};
use super::player::Player;
use super::presets_panel::{PresetsPanel, SongShape};
use super::settings::{Settings, Tab};
use super::spectrogram::Spectrograms;
use super::time_view::TimeView;
use super::waveform::{self, WaveAction, format_time};
use super::weights_check::{self, Verdict, WeightsFor};
use crate::audio::AudioBuffer;
use crate::engine::export::track_name;
use crate::engine::messages::{EngineCommand, EngineEvent, JobId, ModelChoice};
use crate::engine::separator::{SeparateParams, Stems};
use crate::train::trainer::TrainConfig;
use crate::train::worker::{ModelSpec as TrainModel, TrainCommand, TrainUpdate};

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

/// Progress of a `--screenshot` run.
#[derive(Debug)]
struct ScreenshotJob {
    path: PathBuf,
    started: std::time::Instant,
    requested: bool,
    /// Set by the screenshot callback: `Ok` once the PNG is written.
    done: Arc<std::sync::Mutex<Option<Result<(), String>>>>,
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

    /// Adds installed models to the model list and drops removed ones.
    fn apply_model_changes(&mut self) {
        let Some(w) = &mut self.models_window else {
            return;
        };
        let mut changed = false;
        for change in w.take_changes() {
            match change {
                ModelChange::Installed(dir) => match crate::catalog::find_model_files(&dir) {
                    Ok(f) => {
                        let pair = (f.config, f.weights);
                        if !self.settings.custom.contains(&pair) {
                            self.settings.custom.push(pair);
                            changed = true;
                        }
                    }
                    Err(e) => self.error(e.to_string()),
                },
                ModelChange::Removed(dir) => {
                    self.settings.custom.retain(|(c, _)| !c.starts_with(&dir));
                    if let ModelChoice::Config { config, .. } = &self.settings.model
                        && config.starts_with(&dir)
                    {
                        self.settings.model = ModelChoice::Bundled;
                    }
                    changed = true;
                }
            }
        }
        if changed {
            self.store_settings();
        }
    }

    /// The Fine-tune tab's form (tests fill it in).
    pub fn finetune_form_mut(&mut self) -> &mut FineTuneForm {
        &mut self.finetune.form
    }

    /// Steps the Fine-tune tab has logged in the current run.
    pub fn finetune_steps(&self) -> usize {
        self.finetune.logged_steps()
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

    // ----- Engine events -----

    fn poll_events(&mut self, ctx: &egui::Context) {
        while let Ok(event) = self.events.try_recv() {
            self.on_event(ctx, event);
        }
        let updates: Vec<TrainUpdate> = match &self.trainer {
            Some((_, rx)) => rx.try_iter().collect(),
            None => Vec::new(),
        };
        for u in updates {
            self.finetune.update(&u);
            if let TrainUpdate::Finished {
                config, checkpoint, ..
            } = u
            {
                // The new model joins the preset list; the Fine-tune tab offers it for
                // separating, but the Separate model changes only when the user says so.
                let pair = (config, checkpoint);
                if !self.settings.custom.contains(&pair) {
                    self.settings.custom.push(pair);
                }
                self.store_settings();
            }
        }
    }

    /// `--screenshot`: once the song is on screen with its spectrogram (or after 60 s), grab
    /// the next frame, write it as PNG, then close the window.
    fn screenshot_step(&mut self, ctx: &egui::Context) {
        let ready = self.loading.is_none() && self.pending_spectrograms() == 0;
        let Some(job) = &mut self.screenshot else {
            return;
        };
        let result = job.done.lock().map(|d| d.clone()).unwrap_or(None);
        match result {
            Some(Ok(())) => {
                eprintln!("screenshot written to {}", job.path.display());
                self.screenshot = None;
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            Some(Err(e)) => {
                eprintln!("error: screenshot: {e}");
                self.screenshot = None;
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            None if !job.requested
                && ((ready && job.started.elapsed() > Duration::from_secs(2))
                    || job.started.elapsed() > Duration::from_secs(60)) =>
            {
                job.requested = true;
                let (path, done) = (job.path.clone(), job.done.clone());
                let repaint = ctx.clone();
                ctx.request_screenshot(move |image| {
                    let r = write_png(&path, &image);
                    if let Ok(mut d) = done.lock() {
                        *d = Some(r);
                    }
                    repaint.request_repaint();
                });
            }
            None => ctx.request_repaint_after(Duration::from_millis(100)),
        }
    }

    /// Carries out a Fine-tune tab action.
    fn finetune_action(&mut self, action: FineTuneAction) {
        if let FineTuneAction::UseForSeparating { config, checkpoint } = action {
            self.settings.model = ModelChoice::Config { config, checkpoint };
            self.finetune.offer_taken();
            self.store_settings();
            return;
        }
        let Some((tx, _)) = &self.trainer else {
            return;
        };
        match action {
            FineTuneAction::Browse(field) => {
                let picked = match field {
                    Field::From => self.picker.checkpoint(),
                    _ => self.picker.folder("Choose a folder"),
                };
                if let Some(p) = self.picked(picked) {
                    let text = p.display().to_string();
                    let f = &mut self.finetune.form;
                    match field {
                        Field::Data => f.data = text,
                        Field::Valid => f.valid = text,
                        Field::Out => f.out = text,
                        Field::From => f.from = text,
                    }
                }
            }
            FineTuneAction::Start { resume } => {
                let f = self.finetune.form.clone();
                let path = |s: &str| (!s.trim().is_empty()).then(|| PathBuf::from(s.trim()));
                let config = TrainConfig {
                    data: PathBuf::from(f.data.trim()),
                    valid: path(&f.valid),
                    out: PathBuf::from(f.out.trim()),
                    from: path(&f.from),
                    steps: f.steps,
                    segment_seconds: f.segment,
                    valid_every: f.every,
                    save_every: f.every,
                    overwrite: f.overwrite && !resume,
                    loss: if f.sdr_loss {
                        crate::train::loss::LossConfig {
                            si_sdr_weight: 0.0,
                            sdr_weight: 1.0,
                            ..Default::default()
                        }
                    } else {
                        Default::default()
                    },
                    ..Default::default()
                };
                let cmd = TrainCommand::Start {
                    model: TrainModel::Preset(f.preset.clone()),
                    config: Box::new(config),
                    resume,
                };
                if tx.send(cmd).is_ok() {
                    self.finetune.starting();
                    // Replacing a folder's contents is asked for each time.
                    self.finetune.form.overwrite = false;
                } else {
                    self.error("The training worker has stopped.");
                }
                self.settings.finetune = f;
                self.store_settings();
            }
            FineTuneAction::Stop => {
                let _ = tx.send(TrainCommand::Stop);
                self.finetune.stopping();
            }
            FineTuneAction::UseForSeparating { .. } => {}
        }
    }

    fn on_event(&mut self, ctx: &egui::Context, event: EngineEvent) {
        let main = |app: &Self, job: JobId| app.job.as_ref().is_some_and(|j| j.job == job);
        match event {
            EngineEvent::SongLoaded { job, path, audio } => {
                if let Some(stem) = self.compare.reference_jobs.remove(&job) {
                    self.compare.references.insert(stem, audio);
                } else if self.loading.as_ref().is_some_and(|(j, _)| *j == job) {
                    self.loading = None;
                    self.errors.clear();
                    self.show_song(ctx, path, audio);
                }
            }
            EngineEvent::LoadFailed { job, path, error } => {
                if self.compare.reference_jobs.remove(&job).is_some() {
                    self.error(format!(
                        "Reference stem {} could not be read: {error}",
                        path.display()
                    ));
                } else if self.loading.as_ref().is_some_and(|(j, _)| *j == job) {
                    self.loading = None;
                    self.error(format!("Could not open {}: {error}", path.display()));
                }
            }
            EngineEvent::Started {
                job,
                model,
                device,
                warnings,
            } => {
                if let Some(j) = self.job.as_mut().filter(|j| j.job == job) {
                    j.model = model;
                    j.device = device;
                }
                for w in warnings {
                    self.error(w);
                }
            }
            EngineEvent::Progress {
                job,
                done,
                total,
                elapsed,
            } => {
                if let Some(j) = self.job.as_mut().filter(|j| j.job == job) {
                    (j.done, j.total, j.elapsed) = (done, total, elapsed);
                }
                let fraction = if total == 0 {
                    1.0
                } else {
                    done as f32 / total as f32
                };
                self.compare.on_progress(job, fraction);
                if let Some(q) = self.queue.iter_mut().find(|q| q.job == Some(job)) {
                    q.status = format!("{:.0} %", fraction * 100.0);
                }
            }
            EngineEvent::Memory { sample, .. } => self.memory.push(sample),
            EngineEvent::Separated {
                job,
                stems,
                seconds,
                peak_bytes,
            } => {
                let peak = peak_bytes
                    .map(crate::memory::planner::format_bytes)
                    .unwrap_or_else(|| "–".into());
                if main(self, job) {
                    self.job = None;
                    self.errors.clear();
                    self.last_result =
                        Some(format!("Separated in {seconds:.1} s, peak memory {peak}"));
                    self.show_stems(stems);
                } else if self.compare.owns(job) {
                    self.compare
                        .on_separated(job, stems, seconds, peak_bytes, &mut self.specs);
                } else if let Some(q) = self.queue.iter_mut().find(|q| q.job == Some(job)) {
                    q.status = format!("separated in {seconds:.1} s, exporting…");
                }
            }
            EngineEvent::Failed { job, error } => {
                if main(self, job) {
                    self.job = None;
                    self.error(format!("Separation failed: {error}"));
                } else if self.compare.owns(job) {
                    self.compare.on_end(job, RunStatus::Failed(error));
                } else if self.export_job == Some(job) {
                    self.export_job = None;
                    self.export.status = Some(format!("Export failed: {error}"));
                } else if let Some(q) = self.queue.iter_mut().find(|q| q.job == Some(job)) {
                    q.status = format!("failed: {error}");
                }
            }
            EngineEvent::Cancelled { job } => {
                if main(self, job) {
                    self.job = None;
                    self.last_result = Some("Separation cancelled".into());
                }
                self.compare.on_end(job, RunStatus::Cancelled);
                if let Some(q) = self.queue.iter_mut().find(|q| q.job == Some(job)) {
                    q.status = "cancelled".into();
                }
            }
            EngineEvent::Exported { job, paths } => {
                let dir = paths
                    .first()
                    .and_then(|p| p.parent())
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let text = format!("Wrote {} file(s) to {dir}", paths.len());
                if self.export_job == Some(job) {
                    self.export_job = None;
                    self.errors.clear();
                    self.export.status = Some(text);
                } else if let Some(q) = self.queue.iter_mut().find(|q| q.job == Some(job)) {
                    q.status = text;
                }
            }
            EngineEvent::Devices(list) => self.presets.devices = list,
        }
    }

    fn show_song(&mut self, ctx: &egui::Context, path: PathBuf, audio: Arc<AudioBuffer>) {
        self.forget_stems();
        if let Some(old) = self.song.take() {
            self.specs.forget(old.lane.spec);
        }
        self.view = TimeView::fit(audio.duration_secs());
        self.selection = None;
        // The previous song's separation and export messages are not about this one.
        self.last_result = None;
        self.export.status = None;
        self.export.confirm = None;
        self.mixer = MixerState::default();
        let lane = Lane::new("mix", audio.clone(), &mut self.specs);
        self.song = Some(Song {
            path: path.clone(),
            audio,
            lane,
        });
        self.player.seek(0.0);
        self.player.set_loop(None);
        self.update_player_tracks();
        self.settings.add_recent(&path);
        self.store_settings();
        // Reference stems for SDR in the comparison.
        self.compare.clear_references();
        for (stem, file) in reference_files(&path) {
            let job = self.new_job();
            self.compare.reference_jobs.insert(job, stem);
            self.send(EngineCommand::LoadSong { job, path: file });
        }
        ctx.request_repaint();
    }

    fn forget_stems(&mut self) {
        for lane in self.stem_lanes.drain(..) {
            self.specs.forget(lane.spec);
        }
        self.stems = None;
    }

    fn show_stems(&mut self, stems: Arc<Stems>) {
        self.forget_stems();
        for (name, audio) in stems.names.iter().zip(&stems.audio) {
            let lane = Lane::new(name, Arc::new(audio.clone()), &mut self.specs);
            self.stem_lanes.push(lane);
        }
        self.mixer = MixerState::with_stems(&stems.names);
        self.stems = Some(stems);
        self.update_player_tracks();
    }

    /// The file a dialog returned; when no dialog could open, the reason goes to the
    /// window's error list.
    fn picked<T>(&mut self, picked: super::dialogs::Picked<T>) -> Option<T> {
        picked.unwrap_or_else(|e| {
            self.error(e);
            None
        })
    }

    // ----- Commands -----

    fn apply(&mut self, ctx: &egui::Context, command: Command) {
        match command {
            Command::OpenDialog => {
                let picked = self.picker.audio_file();
                if let Some(p) = self.picked(picked) {
                    self.apply(ctx, Command::Open(p));
                }
            }
            Command::Open(path) => {
                let job = self.new_job();
                self.loading = Some((job, path.clone()));
                self.send(EngineCommand::LoadSong { job, path });
            }
            Command::EnqueueDialog => {
                let picked = self.picker.audio_files();
                if let Some(files) = self.picked(picked) {
                    self.apply(ctx, Command::Enqueue(files));
                }
            }
            Command::Enqueue(files) => {
                self.queue.extend(files.into_iter().map(|path| QueueItem {
                    path,
                    job: None,
                    status: "waiting".into(),
                }));
            }
            Command::Dequeue(i) => {
                if let Some(item) = self.queue.get(i) {
                    if let Some(job) = item.job {
                        self.send(EngineCommand::Cancel { job });
                    }
                    self.queue.remove(i);
                }
            }
            Command::RunQueue => self.run_queue(),
            Command::Separate => self.separate(),
            Command::Cancel(job) => {
                if let Some(j) = self.job.as_mut().filter(|j| j.job == job) {
                    j.cancelling = true;
                }
                self.send(EngineCommand::Cancel { job });
            }
            Command::SelectModel(choice) => {
                self.settings.model = choice;
                self.store_settings();
            }
            Command::PickCheckpoint(preset) => {
                let picked = self.picker.checkpoint();
                let Some(ck) = self.picked(picked) else {
                    return;
                };
                match crate::model::config::preset(&preset) {
                    Ok(p) => self.check_weights(ctx, WeightsFor::Preset(preset), p.config, ck),
                    Err(e) => self.error(e.to_string()),
                }
            }
            Command::ImportCustom => {
                let picked = self.picker.config();
                let Some(config) = self.picked(picked) else {
                    return;
                };
                match crate::model::config::ModelConfig::from_file(&config) {
                    Err(e) => self.error(format!("Cannot use {}: {e}", config.display())),
                    Ok(cfg) => {
                        let picked = self.picker.checkpoint();
                        if let Some(ck) = self.picked(picked) {
                            self.check_weights(ctx, WeightsFor::Import { config }, cfg, ck);
                        }
                    }
                }
            }
            Command::ShowModels => {
                if let Some(w) = &mut self.models_window {
                    w.open = true;
                }
            }
            Command::SetDevice(d) => {
                self.settings.device = d;
                self.store_settings();
            }
            Command::Play => self.player.play(),
            Command::Pause => self.player.pause(),
            Command::Seek(t) => self.player.seek(t),
            Command::SetLoop(region) => {
                self.selection = region;
                self.player.set_loop(region);
            }
            Command::SetView(v) => self.view = v,
            Command::SetMute(i, on) => self.set_strip(i, |s| s.mute = on),
            Command::SetSolo(i, on) => self.set_strip(i, |s| s.solo = on),
            Command::SetGain(i, db) => self.set_strip(i, |s| s.gain_db = db),
            Command::PickExportDir => {
                let picked = self.picker.folder("Export stems to…");
                if let Some(dir) = self.picked(picked) {
                    self.export.form.out_dir = dir;
                    self.store_settings();
                }
            }
            Command::Export { overwrite } => self.export(overwrite),
            Command::CancelOverwrite => {
                self.export.confirm = None;
                self.export.status = Some("Export cancelled: the existing files were kept.".into());
            }
            Command::SetTab(tab) => self.settings.layout.tab = tab,
            Command::ToggleCompare(choice) => {
                if let Some(i) = self.settings.compare.iter().position(|c| *c == choice) {
                    self.settings.compare.remove(i);
                } else {
                    self.settings.compare.push(choice);
                }
            }
            Command::RunCompare => self.run_compare(),
            Command::DismissError(i) => {
                if i < self.errors.len() {
                    self.errors.remove(i);
                }
            }
            Command::TogglePlay => {
                if self.player.is_playing() {
                    self.player.pause();
                } else {
                    self.player.play();
                }
            }
            Command::CloseDialog => {
                if self.export.confirm.is_some() {
                    self.apply(ctx, Command::CancelOverwrite);
                } else if let Some(w) = self.models_window.as_mut().filter(|w| w.open) {
                    w.open = false;
                }
            }
            Command::Quit => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
        }
    }

    /// Starts checking weights picked for `target` against `config`; the answer arrives in
    /// [`Self::poll_weights_check`]. Nothing is selected or stored before it passes.
    fn check_weights(
        &mut self,
        ctx: &egui::Context,
        target: WeightsFor,
        config: crate::model::config::ModelConfig,
        checkpoint: PathBuf,
    ) {
        let repaint = ctx.clone();
        self.weights_note = Some(format!("Checking {}…", file_name(&checkpoint)));
        self.weights_check = Some(weights_check::spawn(
            target,
            config,
            checkpoint,
            move || repaint.request_repaint(),
        ));
    }

    /// Applies a finished weights check: weights that fit are stored for their preset (or the
    /// import joins the model list); weights that do not are refused with the reason.
    fn poll_weights_check(&mut self) {
        let Some(rx) = &self.weights_check else {
            return;
        };
        let verdict = match rx.try_recv() {
            Ok(v) => v,
            Err(std::sync::mpsc::TryRecvError::Empty) => return,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                self.weights_check = None;
                self.weights_note = None;
                self.error("The weights could not be checked (no thread for it); nothing changed.");
                return;
            }
        };
        self.weights_check = None;
        self.weights_note = None;
        let Verdict {
            target,
            checkpoint,
            result,
        } = verdict;
        if let Err(notice) = result {
            self.notice(notice);
            return;
        }
        self.errors.clear();
        match target {
            // The selected model stays what it was: picking weights only makes the preset
            // selectable.
            WeightsFor::Preset(name) => {
                self.weights_note = Some(format!(
                    "Weights for {name} set: select {name} in the list to separate with it."
                ));
                self.settings.checkpoints.insert(name, checkpoint);
            }
            WeightsFor::Import { config } => {
                let pair = (config.clone(), checkpoint.clone());
                if !self.settings.custom.contains(&pair) {
                    self.settings.custom.push(pair);
                }
                self.settings.model = ModelChoice::Config { config, checkpoint };
            }
        }
        self.store_settings();
    }

    fn set_strip(&mut self, i: usize, f: impl FnOnce(&mut super::mixer::Strip)) {
        if let Some(s) = self.mixer.strips.get_mut(i) {
            f(s);
        }
        self.player.set_gains(self.mixer.gains());
    }

    fn prediction_for(&self, choice: &ModelChoice) -> Option<u64> {
        let cfg = self.presets.config_of(&self.settings, choice)?;
        let song = self.song_shape()?;
        Some(self.presets.predict(
            &cfg,
            song,
            self.settings.batch,
            self.presets.fused(self.settings.device),
        ))
    }

    fn start_memory_graph(&mut self, choice: &ModelChoice) {
        self.memory.clear();
        self.memory.prediction = self.prediction_for(choice);
        self.memory.ceiling = Some(self.presets.budget(&self.settings));
    }

    fn separate(&mut self) {
        if self.job.is_some() {
            return;
        }
        let Some(song) = self.song.as_ref().map(|s| s.audio.clone()) else {
            return;
        };
        let model = self.settings.model.clone();
        self.start_memory_graph(&model);
        let job = self.new_job();
        self.job = Some(RunningJob {
            job,
            done: 0,
            total: 0,
            elapsed: Duration::ZERO,
            model: model.label(),
            device: String::new(),
            cancelling: false,
        });
        self.last_result = None;
        let (device, params) = (self.settings.device, self.params());
        self.send(EngineCommand::Separate {
            job,
            song,
            model,
            device,
            params,
        });
    }

    fn run_compare(&mut self) {
        let Some(song) = self.song.as_ref().map(|s| s.audio.clone()) else {
            return;
        };
        let excerpt = self.selection;
        self.compare.reset(excerpt, &mut self.specs);
        let input = Arc::new(super::compare::excerpt(&song, excerpt));
        let models = self.settings.compare.clone();
        if let Some(first) = models.first() {
            self.start_memory_graph(first);
        }
        for model in models {
            let job = self.new_job();
            self.compare.runs.push(super::compare::CompareRun {
                choice: model.clone(),
                job,
                status: RunStatus::Queued,
                stems: None,
                seconds: None,
                peak: None,
                sdr: Default::default(),
                specs: Vec::new(),
            });
            let (device, params) = (self.settings.device, self.params());
            self.send(EngineCommand::Separate {
                job,
                song: input.clone(),
                model,
                device,
                params,
            });
        }
    }

    fn run_queue(&mut self) {
        let names = self
            .presets
            .config_of(&self.settings, &self.settings.model)
            .map_or_else(
                || {
                    ["vocals", "drums", "bass", "other"]
                        .map(String::from)
                        .to_vec()
                },
                |c| c.sources,
            );
        let options = match self.export.options(&names, false) {
            Ok(o) => o,
            Err(e) => {
                self.error(format!("Cannot run the queue: {e}"));
                return;
            }
        };
        let waiting: Vec<usize> = (0..self.queue.len())
            .filter(|&i| self.queue[i].job.is_none())
            .collect();
        for i in waiting {
            let job = self.new_job();
            let path = self.queue[i].path.clone();
            self.queue[i].job = Some(job);
            self.queue[i].status = "queued".into();
            let (model, device, params) = (
                self.settings.model.clone(),
                self.settings.device,
                self.params(),
            );
            self.send(EngineCommand::SeparateFile {
                job,
                path,
                model,
                device,
                params,
                export: options.clone(),
            });
        }
    }

    fn export(&mut self, overwrite: bool) {
        let (Some(stems), Some(song)) = (self.stems.clone(), self.song.as_ref()) else {
            return;
        };
        let track = track_name(&song.path);
        let options = match self.export.options(&stems.names, overwrite) {
            Ok(o) => o,
            Err(e) => {
                self.export.status = Some(e);
                return;
            }
        };
        if !overwrite {
            match options.targets(&track, &stems.names) {
                Err(e) => {
                    self.export.status = Some(e.to_string());
                    return;
                }
                Ok(targets) => {
                    let existing: Vec<PathBuf> = targets
                        .into_iter()
                        .map(|(_, p)| p)
                        .filter(|p| p.exists())
                        .collect();
                    if !existing.is_empty() {
                        self.export.confirm = Some(existing);
                        return;
                    }
                }
            }
        }
        self.export.confirm = None;
        self.store_settings();
        let job = self.new_job();
        self.export_job = Some(job);
        self.export.status = Some("Exporting…".into());
        self.send(EngineCommand::Export {
            job,
            stems,
            track,
            options,
        });
    }

    // ----- Drawing -----

    fn menu_bar(&self, ui: &mut Ui, cmds: &mut Vec<Command>) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui
                    .add(egui::Button::new("Open…").shortcut_text("Ctrl+O"))
                    .clicked()
                {
                    cmds.push(Command::OpenDialog);
                }
                if ui.button("Add to queue…").clicked() {
                    cmds.push(Command::EnqueueDialog);
                }
                if self.models_window.is_some() && ui.button("Get models…").clicked() {
                    cmds.push(Command::ShowModels);
                }
                ui.menu_button("Recent", |ui| {
                    if self.settings.recent.is_empty() {
                        ui.label("nothing yet");
                    }
                    for p in &self.settings.recent {
                        if ui.button(p.display().to_string()).clicked() {
                            cmds.push(Command::Open(p.clone()));
                        }
                    }
                });
                ui.separator();
                if ui
                    .add(egui::Button::new("Quit").shortcut_text("Ctrl+Q"))
                    .clicked()
                {
                    cmds.push(Command::Quit);
                }
            });
            ui.separator();
            let tab = self.settings.layout.tab;
            for (t, name) in [
                (Tab::Separate, "Song"),
                (Tab::Compare, "Compare"),
                (Tab::FineTune, "Fine-tune"),
            ] {
                if ui.selectable_label(tab == t, name).clicked() {
                    cmds.push(Command::SetTab(t));
                }
            }
        });
    }

    fn errors_ui(&self, ui: &mut Ui, cmds: &mut Vec<Command>) {
        notices::show(ui, &self.errors, cmds);
    }

    fn progress_ui(&self, ui: &mut Ui, cmds: &mut Vec<Command>) {
        ui.horizontal(|ui| {
            let can = self.song.is_some() && self.job.is_none();
            if ui.add_enabled(can, egui::Button::new("Separate")).clicked() {
                cmds.push(Command::Separate);
            }
            ui.label(format!("with {}", self.settings.model.label()));
            if let Some(j) = &self.job {
                let frac = if j.total == 0 {
                    0.0
                } else {
                    j.done as f32 / j.total as f32
                };
                let eta = (j.done > 0 && j.total >= j.done)
                    .then(|| j.elapsed.mul_f64((j.total - j.done) as f64 / j.done as f64))
                    .map_or_else(
                        || "ETA –".into(),
                        |d| format!("ETA {}", format_time(d.as_secs_f64(), false)),
                    );
                let text = format!("{}/{} chunks · {eta}", j.done, j.total);
                ui.add(egui::ProgressBar::new(frac).desired_width(220.0).text(text));
                let label = if j.cancelling {
                    "Cancelling…"
                } else {
                    "Cancel"
                };
                if ui
                    .add_enabled(!j.cancelling, egui::Button::new(label))
                    .clicked()
                {
                    cmds.push(Command::Cancel(j.job));
                }
                if !j.device.is_empty() {
                    let what = format!("{} on {}", j.model, j.device);
                    ui.add(egui::Label::new(RichText::new(&what).small()).truncate())
                        .on_hover_text(what);
                }
            } else if let Some(r) = &self.last_result {
                ui.add(egui::Label::new(r.as_str()).truncate())
                    .on_hover_text(r.as_str());
            }
        });
    }

    fn transport_ui(&self, ui: &mut Ui, cmds: &mut Vec<Command>) {
        ui.horizontal(|ui| {
            let playing = self.player.is_playing();
            let enabled = self.player.available();
            let (label, cmd) = if playing {
                ("Pause", Command::Pause)
            } else {
                ("Play", Command::Play)
            };
            if ui
                .add_enabled(enabled, egui::Button::new(label))
                .on_hover_text("Space")
                .clicked()
            {
                cmds.push(cmd);
            }
            let duration = self.song.as_ref().map_or(0.0, |s| s.audio.duration_secs());
            ui.monospace(format!(
                "{} / {}",
                format_time(self.player.position_secs(), true),
                format_time(duration, true)
            ));
            if let Some((a, b)) = self.selection {
                ui.label(format!(
                    "loop {}–{}",
                    format_time(a, true),
                    format_time(b, true)
                ));
                if ui.small_button("clear loop").clicked() {
                    cmds.push(Command::SetLoop(None));
                }
            }
            ui.separator();
            let mut v = self.view;
            if ui.small_button("zoom in").clicked() {
                v.zoom(0.5, v.start + v.span / 2.0);
            }
            if ui.small_button("zoom out").clicked() {
                v.zoom(2.0, v.start + v.span / 2.0);
            }
            if ui.small_button("fit").clicked() {
                v = TimeView::fit(v.duration);
            }
            if v != self.view {
                cmds.push(Command::SetView(v));
            }
        });
        if !self.player.available() {
            // Why Play is off, once, on its own wrapped line (a long message must not widen
            // the central panel, or the lanes would run under the side panel).
            ui.add(egui::Label::new(self.player.status()).wrap());
        }
        // Horizontal scroll through the song when zoomed in.
        if self.view.span < self.view.duration {
            let mut start = self.view.start;
            let max = (self.view.duration - self.view.span).max(0.0);
            let slider = egui::Slider::new(&mut start, 0.0..=max)
                .show_value(false)
                .text("scroll");
            if ui.add(slider).changed() {
                let mut v = self.view;
                v.start = start;
                v.clamp();
                cmds.push(Command::SetView(v));
            }
        }
    }

    fn lanes_ui(&self, ui: &mut Ui, cmds: &mut Vec<Command>) {
        let Some(song) = &self.song else { return };
        let layout = &self.settings.layout;
        waveform::ruler(ui, &self.view);
        egui::ScrollArea::vertical()
            .id_salt("lanes")
            .show(ui, |ui| {
                let colors = [
                    Color32::from_rgb(150, 200, 255),
                    Color32::from_rgb(255, 140, 160),
                    Color32::from_rgb(255, 200, 90),
                    Color32::from_rgb(140, 230, 140),
                    Color32::from_rgb(200, 160, 255),
                ];
                let lanes = std::iter::once(&song.lane).chain(&self.stem_lanes);
                // Lane i is mixer strip i: a lane that is not heard (muted, or another is
                // soloed) is drawn dimmed.
                let gains = self.mixer.gains();
                for (i, lane) in lanes.enumerate() {
                    let heard = gains.get(i).is_none_or(|&g| g > 0.0);
                    let color = if heard {
                        colors[i % colors.len()]
                    } else {
                        colors[i % colors.len()].gamma_multiply(0.3)
                    };
                    let playhead = self.player.position_secs();
                    if let Some(a) = waveform::show(
                        ui,
                        &lane.name,
                        &lane.peaks,
                        &self.view,
                        playhead,
                        self.selection,
                        layout.lane_height,
                        color,
                    ) {
                        cmds.push(match a {
                            WaveAction::Seek(t) => Command::Seek(t),
                            WaveAction::Select(a, b) => Command::SetLoop(Some((a, b))),
                            WaveAction::View(v) => Command::SetView(v),
                        });
                    }
                    if layout.spectrograms {
                        self.specs.show(
                            ui,
                            lane.spec,
                            &lane.name,
                            Some(&self.view),
                            layout.lane_height * 1.2,
                        );
                    }
                    ui.add_space(4.0);
                }
            });
    }

    fn separate_tab(&self, ui: &mut Ui, cmds: &mut Vec<Command>) {
        if let Some((_, path)) = &self.loading {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("Decoding {}…", file_name(path)));
            });
        }
        let Some(song) = &self.song else {
            if self.loading.is_none() {
                ui.vertical_centered(|ui| {
                    ui.add_space(60.0);
                    ui.heading("Drop a song here, or use File > Open…");
                    ui.label("WAV, FLAC, MP3, OGG, M4A/AAC, ALAC");
                    if !self.settings.recent.is_empty() {
                        ui.add_space(12.0);
                        ui.label("Recent:");
                        for p in self.settings.recent.iter().take(5) {
                            if ui.link(p.display().to_string()).clicked() {
                                cmds.push(Command::Open(p.clone()));
                            }
                        }
                    }
                });
            }
            return;
        };
        let a = &song.audio;
        ui.label(
            RichText::new(format!(
                "{} · {} Hz · {} ch · {}",
                file_name(&song.path),
                a.sample_rate,
                a.channels.len(),
                format_time(a.duration_secs(), true)
            ))
            .strong(),
        );
        self.progress_ui(ui, cmds);
        self.transport_ui(ui, cmds);
        self.lanes_ui(ui, cmds);
    }

    fn bottom_ui(&self, ui: &mut Ui, cmds: &mut Vec<Command>) {
        ui.columns(2, |cols| {
            let ui = &mut cols[0];
            ui.horizontal(|ui| {
                ui.strong("Queue");
                if ui.small_button("add…").clicked() {
                    cmds.push(Command::EnqueueDialog);
                }
                let waiting = self.queue.iter().any(|q| q.job.is_none());
                if ui.add_enabled(waiting, egui::Button::new("Separate + export queue").small()).clicked() {
                    cmds.push(Command::RunQueue);
                }
            });
            if self.queue.is_empty() {
                ui.label(RichText::new("Drop several songs to queue them; each is separated and exported with the export settings.").small());
            }
            for (i, q) in self.queue.iter().enumerate() {
                ui.horizontal(|ui| {
                    ui.label(file_name(&q.path));
                    ui.label(RichText::new(&q.status).small());
                    if ui.small_button("remove").clicked() {
                        cmds.push(Command::Dequeue(i));
                    }
                });
            }
            self.memory.show(&mut cols[1], 110.0);
        });
    }

    fn side_ui(&mut self, ui: &mut Ui, cmds: &mut Vec<Command>) {
        ui.heading("Mixer");
        self.mixer.show(ui, cmds);
        ui.separator();
        let names = self.stem_names();
        let busy = self.export_job.is_some();
        self.export.show(ui, &names, busy, cmds);
    }

    /// Space plays or pauses (unless a text field has the keyboard), Ctrl+O opens, Ctrl+E
    /// exports, Ctrl+Q quits, Esc closes the open question or window.
    fn shortcuts(&self, ctx: &egui::Context, cmds: &mut Vec<Command>) {
        use egui::{Key, KeyboardShortcut, Modifiers};
        let typing = ctx.egui_wants_keyboard_input();
        ctx.input_mut(|i| {
            let mut pressed = |m, k| i.consume_shortcut(&KeyboardShortcut::new(m, k));
            if pressed(Modifiers::COMMAND, Key::O) {
                cmds.push(Command::OpenDialog);
            }
            if pressed(Modifiers::COMMAND, Key::E) && self.stems.is_some() {
                cmds.push(Command::Export { overwrite: false });
            }
            if pressed(Modifiers::COMMAND, Key::Q) {
                cmds.push(Command::Quit);
            }
            if !typing && pressed(Modifiers::NONE, Key::Escape) {
                cmds.push(Command::CloseDialog);
            }
            if !typing && pressed(Modifiers::NONE, Key::Space) {
                cmds.push(Command::TogglePlay);
            }
        });
    }

    fn handle_drops(&self, ctx: &egui::Context, cmds: &mut Vec<Command>) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        let mut files = dropped.into_iter();
        if let Some(first) = files.next() {
            cmds.push(Command::Open(first));
            let rest: Vec<PathBuf> = files.collect();
            if !rest.is_empty() {
                cmds.push(Command::Enqueue(rest));
            }
        }
        if ctx.input(|i| !i.raw.hovered_files.is_empty()) {
            let painter = ctx.layer_painter(egui::LayerId::new(
                egui::Order::Foreground,
                egui::Id::unique("locosep-drop-overlay"),
            ));
            let rect = ctx.content_rect();
            painter.rect_filled(rect, 0.0, Color32::from_black_alpha(160));
            painter.text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                "Drop to open (more files go to the queue)",
                egui::FontId::proportional(22.0),
                Color32::WHITE,
            );
        }
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
                        let presets: Vec<String> = crate::model::config::builtin_presets()
                            .into_iter()
                            .map(|p| p.name)
                            .collect();
                        if let Some(action) = self.finetune.show(ui, &presets) {
                            self.finetune_action(action);
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

/// Writes an RGBA image as PNG (temp file + rename; replaces an existing file: the user named
/// it on the command line).
fn write_png(path: &Path, image: &egui::ColorImage) -> Result<(), String> {
    let [w, h] = image.size;
    let rgba: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    crate::audio::encode::write_atomic(path, true, |f| {
        let mut enc = png::Encoder::new(std::io::BufWriter::new(f), w as u32, h as u32);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(std::io::Error::other)?;
        writer
            .write_image_data(&rgba)
            .map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)
    })
    .map_err(|e| format!("{}: {e}", path.display()))
}
