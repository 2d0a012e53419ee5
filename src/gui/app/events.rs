//! What comes back: engine events, training updates, weights checks and the Get-models
//! window's installs, applied to the app between frames.

use eframe::egui;
use std::path::PathBuf;
use std::sync::Arc;

use super::{LocosepApp, Song};
use crate::audio::AudioBuffer;
use crate::engine::messages::{EngineCommand, EngineEvent, JobId, ModelChoice};
use crate::engine::separator::Stems;
use crate::gui::compare::{RunStatus, reference_files};
use crate::gui::lane::Lane;
use crate::gui::mixer::MixerState;
use crate::gui::models_window::ModelChange;
use crate::gui::time_view::TimeView;
use crate::gui::weights_check::{Verdict, WeightsFor};
use crate::train::worker::TrainUpdate;

impl LocosepApp {
    /// Adds installed models to the model list and drops removed ones.
    pub(super) fn apply_model_changes(&mut self) {
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

    pub(super) fn poll_events(&mut self, ctx: &egui::Context) {
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

    pub(super) fn on_event(&mut self, ctx: &egui::Context, event: EngineEvent) {
        let main = |app: &Self, job: JobId| app.job.as_ref().is_some_and(|j| j.job == job);
        match event {
            EngineEvent::SongLoaded {
                job,
                path,
                audio,
                warnings,
            } => {
                if let Some(stem) = self.compare.reference_jobs.remove(&job) {
                    self.compare.references.insert(stem, audio);
                } else if self.loading.as_ref().is_some_and(|(j, _)| *j == job) {
                    self.loading = None;
                    self.errors.clear();
                    self.show_song(ctx, path, audio);
                }
                // Repairs of the decode (zeroed NaN samples, skipped packets) are shown either way.
                for w in warnings {
                    self.error(w);
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

    pub(super) fn show_song(
        &mut self,
        ctx: &egui::Context,
        path: PathBuf,
        audio: Arc<AudioBuffer>,
    ) {
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

    pub(super) fn forget_stems(&mut self) {
        for lane in self.stem_lanes.drain(..) {
            self.specs.forget(lane.spec);
        }
        self.stems = None;
    }

    pub(super) fn show_stems(&mut self, stems: Arc<Stems>) {
        self.forget_stems();
        for (name, audio) in stems.names.iter().zip(&stems.audio) {
            let lane = Lane::new(name, Arc::new(audio.clone()), &mut self.specs);
            self.stem_lanes.push(lane);
        }
        self.mixer = MixerState::with_stems(&stems.names);
        self.stems = Some(stems);
        self.update_player_tracks();
    }

    /// Applies a finished weights check: weights that fit are stored for their preset (or the
    /// import joins the model list); weights that do not are refused with the reason.
    pub(super) fn poll_weights_check(&mut self) {
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
}
