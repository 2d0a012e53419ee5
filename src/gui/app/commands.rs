//! Carrying out [`Command`]s, after the panels are drawn: the only place that changes app-wide
//! state, sends engine jobs or opens dialogs.

use eframe::egui;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{LocosepApp, QueueItem, RunningJob, file_name};
use crate::engine::export::track_name;
use crate::engine::messages::{EngineCommand, ModelChoice};
use crate::gui::command::Command;
use crate::gui::compare::RunStatus;
use crate::gui::finetune::{Field, FineTuneAction};
use crate::gui::weights_check::{self, WeightsFor};
use crate::train::trainer::TrainConfig;
use crate::train::worker::{ModelSpec as TrainModel, TrainCommand};

impl LocosepApp {
    /// Carries out a Fine-tune tab action.
    pub(super) fn finetune_action(&mut self, action: FineTuneAction) {
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
                    batch: f.batch,
                    checkpointing: f.checkpointing,
                    offload: f.checkpointing && f.offload,
                    valid_every: f.every,
                    save_every: f.every,
                    overwrite: f.overwrite && !resume,
                    device: f.device,
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

    /// The file a dialog returned; when no dialog could open, the reason goes to the
    /// window's error list.
    pub(super) fn picked<T>(&mut self, picked: crate::gui::dialogs::Picked<T>) -> Option<T> {
        picked.unwrap_or_else(|e| {
            self.error(e);
            None
        })
    }

    pub(super) fn apply(&mut self, ctx: &egui::Context, command: Command) {
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
                self.weights_note = None;
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
            Command::FineTune(action) => self.finetune_action(action),
        }
    }

    /// Starts checking weights picked for `target` against `config`; the answer arrives in
    /// [`Self::poll_weights_check`]. Nothing is selected or stored before it passes.
    pub(super) fn check_weights(
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

    pub(super) fn set_strip(&mut self, i: usize, f: impl FnOnce(&mut crate::gui::mixer::Strip)) {
        if let Some(s) = self.mixer.strips.get_mut(i) {
            f(s);
        }
        self.player.set_gains(self.mixer.gains());
    }

    pub(super) fn prediction_for(&self, choice: &ModelChoice) -> Option<u64> {
        let cfg = self.presets.config_of(&self.settings, choice)?;
        let song = self.song_shape()?;
        Some(self.presets.predict(
            &cfg,
            song,
            self.settings.batch,
            self.presets.fused(self.settings.device),
        ))
    }

    pub(super) fn start_memory_graph(&mut self, choice: &ModelChoice) {
        self.memory.clear();
        self.memory.prediction = self.prediction_for(choice);
        self.memory.ceiling = Some(self.presets.budget(&self.settings));
    }

    pub(super) fn separate(&mut self) {
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

    pub(super) fn run_compare(&mut self) {
        let Some(song) = self.song.as_ref().map(|s| s.audio.clone()) else {
            return;
        };
        let excerpt = self.selection;
        self.compare.reset(excerpt, &mut self.specs);
        let input = Arc::new(crate::gui::compare::excerpt(&song, excerpt));
        let models = self.settings.compare.clone();
        if let Some(first) = models.first() {
            self.start_memory_graph(first);
        }
        for model in models {
            let job = self.new_job();
            self.compare.runs.push(crate::gui::compare::CompareRun {
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

    pub(super) fn run_queue(&mut self) {
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

    pub(super) fn export(&mut self, overwrite: bool) {
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
}
