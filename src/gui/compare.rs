//! Compare presets: run two or more models on the same song (or the loop region) and show, per
//! stem, their spectrograms side by side and their difference, with each run's time, peak
//! memory and — when reference stems lie next to the song — SDR per stem.

use eframe::egui;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use egui::{RichText, Ui};

use super::command::Command;
use super::spectrogram::{SpecId, SpecSource, Spectrograms};
use crate::audio::AudioBuffer;
use crate::engine::messages::{JobId, ModelChoice};
use crate::engine::separator::Stems;
use crate::memory::planner::format_bytes;

/// Reference stem names looked for beside a `mixture.*` file (MUSDB18 layout).
pub const REFERENCE_STEMS: [&str; 4] = ["vocals", "drums", "bass", "other"];

/// Where one comparison run stands.
#[derive(Debug, Clone, PartialEq)]
pub enum RunStatus {
    /// Waiting in the engine's queue.
    Queued,
    /// Running: fraction done.
    Running(f32),
    /// Finished.
    Done,
    /// Failed with this message.
    Failed(String),
    /// Cancelled.
    Cancelled,
}

/// One model's run.
#[derive(Debug, Clone)]
pub struct CompareRun {
    /// The model.
    pub choice: ModelChoice,
    /// The engine job.
    pub job: JobId,
    /// Where it stands.
    pub status: RunStatus,
    /// Its stems.
    pub stems: Option<Arc<Stems>>,
    /// Wall time, seconds.
    pub seconds: Option<f64>,
    /// Peak memory, bytes.
    pub peak: Option<u64>,
    /// SDR per stem (uSDR, dB).
    pub sdr: BTreeMap<String, f64>,
    /// One spectrogram per stem.
    pub specs: Vec<SpecId>,
}

/// The comparison tab.
pub struct ComparePanel {
    /// The runs of the current comparison.
    pub runs: Vec<CompareRun>,
    /// The region compared (seconds), `None` for the whole song.
    pub excerpt: Option<(f64, f64)>,
    /// Reference stems being decoded: job → stem name.
    pub reference_jobs: HashMap<JobId, String>,
    /// Decoded reference stems (whole song).
    pub references: BTreeMap<String, Arc<AudioBuffer>>,
    diffs: HashMap<String, SpecId>,
    sdr_requested: HashSet<JobId>,
    sdr_tx: Sender<(JobId, BTreeMap<String, f64>)>,
    sdr_rx: Receiver<(JobId, BTreeMap<String, f64>)>,
}

impl Default for ComparePanel {
    fn default() -> Self {
        let (sdr_tx, sdr_rx) = channel();
        Self {
            runs: Vec::new(),
            excerpt: None,
            reference_jobs: HashMap::new(),
            references: BTreeMap::new(),
            diffs: HashMap::new(),
            sdr_requested: HashSet::new(),
            sdr_tx,
            sdr_rx,
        }
    }
}

/// Reference stems beside `song` when it is a MUSDB-style `mixture.*`.
pub fn reference_files(song: &Path) -> Vec<(String, PathBuf)> {
    let is_mixture = song
        .file_stem()
        .is_some_and(|s| s.eq_ignore_ascii_case("mixture"));
    let Some(dir) = song.parent().filter(|_| is_mixture) else {
        return Vec::new();
    };
    REFERENCE_STEMS
        .iter()
        .filter_map(|s| {
            ["wav", "flac"]
                .iter()
                .map(|ext| dir.join(format!("{s}.{ext}")))
                .find(|p| p.exists())
                .map(|p| (s.to_string(), p))
        })
        .collect()
}

/// Samples `a..b` seconds of `audio`.
pub fn excerpt(audio: &AudioBuffer, region: Option<(f64, f64)>) -> AudioBuffer {
    let Some((a, b)) = region else {
        return audio.clone();
    };
    let sr = f64::from(audio.sample_rate);
    let (i, j) = (
        ((a * sr) as usize).min(audio.len()),
        ((b * sr) as usize).min(audio.len()),
    );
    AudioBuffer {
        sample_rate: audio.sample_rate,
        channels: audio
            .channels
            .iter()
            .map(|c| c[i..j.max(i)].to_vec())
            .collect(),
    }
}

impl ComparePanel {
    /// Starts a comparison: forgets the old runs (and their textures).
    pub fn reset(&mut self, excerpt: Option<(f64, f64)>, specs: &mut Spectrograms) {
        for run in self.runs.drain(..) {
            run.specs.into_iter().for_each(|s| specs.forget(s));
        }
        for (_, id) in self.diffs.drain() {
            specs.forget(id);
        }
        self.sdr_requested.clear();
        self.excerpt = excerpt;
    }

    /// Forgets the reference stems (another song was opened).
    pub fn clear_references(&mut self) {
        self.reference_jobs.clear();
        self.references.clear();
    }

    /// Whether `job` belongs to a run.
    pub fn owns(&self, job: JobId) -> bool {
        self.runs.iter().any(|r| r.job == job)
    }

    fn run_mut(&mut self, job: JobId) -> Option<&mut CompareRun> {
        self.runs.iter_mut().find(|r| r.job == job)
    }

    /// Progress of a run.
    pub fn on_progress(&mut self, job: JobId, fraction: f32) {
        if let Some(r) = self.run_mut(job) {
            r.status = RunStatus::Running(fraction);
        }
    }

    /// A run ended without stems.
    pub fn on_end(&mut self, job: JobId, status: RunStatus) {
        if let Some(r) = self.run_mut(job) {
            r.status = status;
        }
    }

    /// A run finished: keep its stems, request their spectrograms and the differences.
    pub fn on_separated(
        &mut self,
        job: JobId,
        stems: Arc<Stems>,
        seconds: f64,
        peak: Option<u64>,
        specs: &mut Spectrograms,
    ) {
        let Some(r) = self.run_mut(job) else { return };
        r.specs = stems
            .audio
            .iter()
            .map(|a| specs.request(SpecSource::Audio(Arc::new(a.clone()))))
            .collect();
        r.status = RunStatus::Done;
        r.stems = Some(stems);
        r.seconds = Some(seconds);
        r.peak = peak;
        let done: Vec<&CompareRun> = self.runs.iter().filter(|r| r.stems.is_some()).collect();
        if let [a, b, ..] = done.as_slice() {
            if let (Some(sa), Some(sb)) = (&a.stems, &b.stems) {
                for (name, (xa, xb)) in sa.names.iter().zip(sa.audio.iter().zip(&sb.audio)) {
                    if !self.diffs.contains_key(name) {
                        let id = specs.request(SpecSource::Difference(
                            Arc::new(xa.clone()),
                            Arc::new(xb.clone()),
                        ));
                        self.diffs.insert(name.clone(), id);
                    }
                }
            }
        }
    }

    /// Starts SDR computations that became possible; collects finished ones.
    pub fn poll(&mut self, ctx: &egui::Context) {
        while let Ok((job, sdr)) = self.sdr_rx.try_recv() {
            if let Some(r) = self.run_mut(job) {
                r.sdr = sdr;
            }
        }
        if self.references.is_empty() || !self.reference_jobs.is_empty() {
            return;
        }
        for r in &self.runs {
            let Some(stems) = r
                .stems
                .clone()
                .filter(|_| !self.sdr_requested.contains(&r.job))
            else {
                continue;
            };
            self.sdr_requested.insert(r.job);
            let refs: Vec<(String, AudioBuffer)> = self
                .references
                .iter()
                .map(|(n, a)| (n.clone(), excerpt(a, self.excerpt)))
                .collect();
            let (tx, job, ctx) = (self.sdr_tx.clone(), r.job, ctx.clone());
            // Without the thread the SDR column stays empty; nothing else depends on it.
            let _ = std::thread::Builder::new()
                .name("locosep-sdr".into())
                .spawn(move || {
                    let mut out = BTreeMap::new();
                    for (name, reference) in &refs {
                        if let Some(i) = stems.names.iter().position(|n| n == name) {
                            let est = &stems.audio[i];
                            let n = reference.len().min(est.len());
                            let r: Vec<&[f32]> =
                                reference.channels.iter().map(|c| &c[..n]).collect();
                            let e: Vec<&[f32]> = est.channels.iter().map(|c| &c[..n]).collect();
                            out.insert(name.clone(), crate::dsp::metrics::usdr(&r, &e));
                        }
                    }
                    if tx.send((job, out)).is_ok() {
                        ctx.request_repaint();
                    }
                });
        }
    }

    /// Draws the tab; `selection` is the loop region a run would compare (`None`: the whole
    /// song).
    #[allow(clippy::too_many_arguments)]
    pub fn show(
        &self,
        ui: &mut Ui,
        ticked: &[ModelChoice],
        selection: Option<(f64, f64)>,
        has_song: bool,
        busy: bool,
        specs: &Spectrograms,
        commands: &mut Vec<Command>,
    ) {
        ui.heading("Compare presets");
        let names: Vec<String> = ticked.iter().map(ModelChoice::label).collect();
        ui.add(
            egui::Label::new(if names.is_empty() {
                "Tick \"compare\" on two or more models in the Model list (left); a preset can be \
             ticked once its weights are chosen (weights…)."
                    .to_string()
            } else {
                format!("Ticked: {}", names.join(", "))
            })
            .wrap(),
        );
        ui.horizontal(|ui| {
            let can = has_song && ticked.len() >= 2 && !busy;
            if ui
                .add_enabled(can, egui::Button::new("Run comparison"))
                .clicked()
            {
                commands.push(Command::RunCompare);
            }
            // What the next run compares: the loop when one is selected.
            ui.label(match selection {
                Some((a, b)) => format!("on the loop {}", region(a, b)),
                None => "on the whole song".into(),
            });
        });
        if !self.runs.is_empty() && self.excerpt != selection {
            let on = self.excerpt.map_or_else(
                || "the whole song".into(),
                |(a, b)| format!("the loop {}", region(a, b)),
            );
            ui.label(RichText::new(format!("The results below are for {on}.")).small());
        }
        if selection.is_none() {
            // Its own wrapped line: a long label in the row would widen the panel.
            ui.add(
                egui::Label::new(
                    RichText::new(
                        "To compare an excerpt, drag across the waveform on the Song tab.",
                    )
                    .small(),
                )
                .wrap(),
            );
        }
        if self.references.is_empty() {
            ui.label(RichText::new("No reference stems (SDR needs vocals/drums/bass/other.wav beside a mixture.wav).").small());
        } else {
            ui.label(
                RichText::new(format!(
                    "Reference stems: {}",
                    self.references
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .small(),
            );
        }
        if self.runs.is_empty() {
            return;
        }
        let stem_names: Vec<String> = self
            .runs
            .iter()
            .find_map(|r| r.stems.as_ref().map(|s| s.names.clone()))
            .unwrap_or_default();
        egui::Grid::new("compare-results")
            .striped(true)
            .num_columns(4 + stem_names.len())
            .show(ui, |ui| {
                ui.strong("model");
                ui.strong("status");
                ui.strong("time");
                ui.strong("peak memory");
                for n in &stem_names {
                    ui.strong(format!("SDR {n}"));
                }
                ui.end_row();
                for r in &self.runs {
                    ui.label(r.choice.label());
                    match &r.status {
                        RunStatus::Queued => ui.label("queued"),
                        RunStatus::Running(f) => ui.add(
                            egui::ProgressBar::new(*f)
                                .desired_width(80.0)
                                .show_percentage(),
                        ),
                        RunStatus::Done => ui.label("done"),
                        RunStatus::Failed(e) => ui
                            .label(RichText::new("failed").color(ui.visuals().error_fg_color))
                            .on_hover_text(e),
                        RunStatus::Cancelled => ui.label("cancelled"),
                    };
                    ui.label(r.seconds.map_or("–".into(), |s| format!("{s:.2} s")));
                    ui.label(r.peak.map_or("–".into(), format_bytes));
                    for n in &stem_names {
                        ui.label(r.sdr.get(n).map_or("–".into(), |v| format!("{v:.2} dB")));
                    }
                    ui.end_row();
                }
            });
        ui.separator();
        let done: Vec<&CompareRun> = self.runs.iter().filter(|r| r.stems.is_some()).collect();
        if done.is_empty() {
            return;
        }
        egui::ScrollArea::vertical()
            .id_salt("compare-scroll")
            .show(ui, |ui| {
                for (si, name) in stem_names.iter().enumerate() {
                    ui.label(RichText::new(name).strong());
                    let cols = done.len() + usize::from(self.diffs.contains_key(name));
                    ui.columns(cols, |cols| {
                        for (c, r) in done.iter().enumerate() {
                            cols[c].label(RichText::new(r.choice.label()).small());
                            if let Some(id) = r.specs.get(si) {
                                specs.show(
                                    &mut cols[c],
                                    *id,
                                    &format!("{} {name}", r.choice.label()),
                                    None,
                                    90.0,
                                );
                            }
                        }
                        if let (Some(id), Some(col)) = (self.diffs.get(name), cols.last_mut()) {
                            let (a, b) = (done[0].choice.label(), done[1].choice.label());
                            col.add(
                                egui::Label::new(
                                    RichText::new(format!(
                                        "difference {a} - {b} (red: {a} louder)"
                                    ))
                                    .small(),
                                )
                                .truncate(),
                            );
                            specs.show(col, *id, &format!("{name} difference"), None, 90.0);
                        }
                    });
                }
            });
    }
}

/// `a–b` seconds as `0:01.0–0:02.5`.
fn region(a: f64, b: f64) -> String {
    use super::waveform::format_time;
    format!("{}–{}", format_time(a, true), format_time(b, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_only_beside_a_mixture() {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in ["mixture.wav", "vocals.wav", "bass.wav", "song.wav"] {
            std::fs::write(dir.path().join(f), b"").expect("write");
        }
        let found: Vec<String> = reference_files(&dir.path().join("mixture.wav"))
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(found, vec!["vocals".to_string(), "bass".to_string()]);
        assert!(reference_files(&dir.path().join("song.wav")).is_empty());
        let a = AudioBuffer {
            sample_rate: 10,
            channels: vec![(0..100).map(|i| i as f32).collect()],
        };
        assert_eq!(
            excerpt(&a, Some((1.0, 2.0))).channels[0],
            (10..20).map(|i| i as f32).collect::<Vec<_>>()
        );
    }
}
