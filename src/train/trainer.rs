//! The training loop: AdamW, gradient clipping and accumulation, optional activation
//! checkpointing, reduce-on-plateau, deterministic seeding, validation SDR, checkpoints with
//! keep-last-K and best-by-validation, exact resume, Ctrl-C saves and stops.
//!
//! Determinism: the batch of step `s`, micro-batch `m` is drawn from an RNG seeded with
//! `(seed, s, m)`, and the device RNG (dropout) is reseeded the same way, so a run resumed
//! at step `s` draws exactly what the uninterrupted run would have.

use crate::cancel::CancelToken;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsAccumulator, ModuleOptimizer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::augment::{AugmentConfig, augment};
use super::dataset::{Example, Track, check_for_training, scan, split_by_track};
use super::loss::LossConfig;
use super::run_dir;
use super::step::{MicroStep, StepKit};
use crate::engine::device::{DeviceChoice, ResolvedDevice};
use crate::model::config::ModelConfig;
use crate::model::loader::{from_state_dict, init_state_dict, to_state_dict};
use crate::model::network::TfLocoformer;
use crate::model::state_dict::{StateDict, load_state_dict, write_safetensors};

pub use super::error::TrainError;

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TrainError {
    let context = context.into();
    move |source| TrainError::Io { context, source }
}

/// Everything a run needs; saved next to the checkpoints as `train.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Training data folder.
    pub data: PathBuf,
    /// Validation data folder (default: every 5th track of `data`, split by track).
    pub valid: Option<PathBuf>,
    /// Output folder for checkpoints, logs and curves.
    pub out: PathBuf,
    /// Checkpoint to start from (fine-tuning); None = fresh weights.
    pub from: Option<PathBuf>,
    /// Optimizer steps.
    pub steps: usize,
    /// Segments per micro-batch (each stereo segment gives two mono items for ac = 1).
    pub batch: usize,
    /// Micro-batches per optimizer step.
    pub accumulate: usize,
    /// Training segment length (s).
    pub segment_seconds: f64,
    /// Learning rate.
    pub lr: f64,
    /// AdamW β₁, β₂.
    pub betas: (f32, f32),
    /// AdamW weight decay.
    pub weight_decay: f32,
    /// AdamW ε.
    pub adam_eps: f32,
    /// Gradient-norm clip (0 = off).
    pub grad_clip: f32,
    /// Activation checkpointing per block (`train::checkpoint`: keep block inputs, recompute
    /// each block in the backward).
    pub checkpointing: bool,
    /// With checkpointing: keep the block inputs in host memory.
    #[serde(default)]
    pub offload: bool,
    /// Validate every N steps (0 = only at the end).
    pub valid_every: usize,
    /// Seconds of each validation track used (from its middle).
    pub valid_seconds: f64,
    /// Save every N steps.
    pub save_every: usize,
    /// Step checkpoints kept.
    pub keep_last: usize,
    /// Reduce-on-plateau: validations without improvement before the LR is cut.
    pub plateau_patience: usize,
    /// Reduce-on-plateau factor.
    pub plateau_factor: f64,
    /// Seed.
    pub seed: u64,
    /// Augmentations.
    pub augment: AugmentConfig,
    /// Loss weights.
    pub loss: LossConfig,
    /// Train into a non-empty `out` that is not a locosep run, and let this run replace an
    /// existing `best/` whatever its score (see [`super::run_dir`]).
    pub overwrite: bool,
    /// Where to train: `auto` (a hardware GPU when wgpu finds one, else the CPU), `gpu` (any
    /// wgpu adapter, software ones included) or `cpu`. Validation runs on the same device.
    pub device: DeviceChoice,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            data: PathBuf::new(),
            valid: None,
            out: PathBuf::from("runs/locosep"),
            from: None,
            steps: 1000,
            batch: 1,
            accumulate: 1,
            segment_seconds: 2.0,
            lr: 5e-4,
            betas: (0.9, 0.999),
            weight_decay: 0.01,
            adam_eps: 1e-8,
            grad_clip: 5.0,
            checkpointing: false,
            offload: false,
            valid_every: 100,
            valid_seconds: 6.0,
            save_every: 100,
            keep_last: 3,
            plateau_patience: 3,
            plateau_factor: 0.5,
            seed: 0,
            augment: AugmentConfig::default(),
            loss: LossConfig::default(),
            overwrite: false,
            device: DeviceChoice::Auto,
        }
    }
}

/// Shortest training segment accepted (s).
pub const MIN_SEGMENT_SECONDS: f64 = 0.05;
/// Longest training segment accepted (s).
pub const MAX_SEGMENT_SECONDS: f64 = 600.0;

/// Most segments per micro-batch (`--batch`): the batch is held in memory at once.
pub const MAX_BATCH: usize = 1024;
/// Most micro-batches per step (`--accumulate`).
pub const MAX_ACCUMULATE: usize = 65_536;

/// `Err` naming `what`, its allowed range and the value, unless `ok`.
fn check(
    ok: bool,
    what: &str,
    range: &str,
    value: impl std::fmt::Display,
) -> Result<(), TrainError> {
    if ok {
        Ok(())
    } else {
        Err(TrainError::Invalid(format!(
            "{what} must be {range}, got {value}"
        )))
    }
}

impl TrainConfig {
    /// Checks every number of the run against its allowed range (for `model`), before any
    /// work: the error names the setting, the range and the value.
    pub fn validate(&self, model: &ModelConfig) -> Result<(), TrainError> {
        let fin = |v: f64| v.is_finite();
        check(self.steps >= 1, "--steps", "at least 1", self.steps)?;
        check(
            (1..=MAX_BATCH).contains(&self.batch),
            "--batch",
            &format!("between 1 and {MAX_BATCH}"),
            self.batch,
        )?;
        check(
            (1..=MAX_ACCUMULATE).contains(&self.accumulate),
            "--accumulate",
            &format!("between 1 and {MAX_ACCUMULATE}"),
            self.accumulate,
        )?;
        check(
            fin(self.lr) && self.lr > 0.0 && self.lr <= 1.0,
            "the learning rate (--lr)",
            "a number in (0, 1]",
            self.lr,
        )?;
        let wd = f64::from(self.weight_decay);
        check(
            fin(wd) && (0.0..=1.0).contains(&wd),
            "the weight decay",
            "a number in [0, 1]",
            wd,
        )?;
        let clip = f64::from(self.grad_clip);
        check(
            fin(clip) && clip >= 0.0,
            "the gradient clip",
            "a finite number ≥ 0 (0 = off)",
            clip,
        )?;
        let eps = f64::from(self.adam_eps);
        check(
            fin(eps) && eps > 0.0 && eps < 1.0,
            "the AdamW epsilon",
            "a number in (0, 1)",
            eps,
        )?;
        for (name, b) in [
            ("AdamW beta 1", self.betas.0),
            ("AdamW beta 2", self.betas.1),
        ] {
            let b = f64::from(b);
            check(
                fin(b) && (0.0..1.0).contains(&b),
                name,
                "a number in [0, 1)",
                b,
            )?;
        }
        // The segment must hold the model's STFT window and the spectral loss's largest one.
        let rate = f64::from(model.sample_rate);
        let window = self
            .loss
            .spectral_ffts
            .iter()
            .copied()
            .chain([model.n_fft])
            .max()
            .unwrap_or(0);
        let min_seg = MIN_SEGMENT_SECONDS.max((window + 1) as f64 / rate);
        check(
            fin(self.segment_seconds)
                && self.segment_seconds >= min_seg
                && self.segment_seconds <= MAX_SEGMENT_SECONDS,
            "the training segment (--segment)",
            &format!("between {min_seg:.3} and {MAX_SEGMENT_SECONDS} s"),
            self.segment_seconds,
        )?;
        check(
            fin(self.valid_seconds) && self.valid_seconds >= 0.0 && self.valid_seconds <= 3600.0,
            "the validation length",
            "between 0 and 3600 s",
            self.valid_seconds,
        )?;
        check(
            fin(self.plateau_factor) && self.plateau_factor > 0.0 && self.plateau_factor <= 1.0,
            "the plateau factor",
            "a number in (0, 1]",
            self.plateau_factor,
        )?;
        let gain = f64::from(self.augment.gain_db);
        check(
            fin(gain) && (0.0..=40.0).contains(&gain),
            "the augmentation gain",
            "between 0 and 40 dB",
            gain,
        )?;
        let l = &self.loss;
        for (name, w) in [
            ("--si-sdr-weight", l.si_sdr_weight),
            ("--sdr-weight", l.sdr_weight),
            ("the L1 loss weight", l.l1_weight),
            ("the spectral loss weight", l.spectral_weight),
        ] {
            let w = f64::from(w);
            check(
                fin(w) && (0.0..=1000.0).contains(&w),
                name,
                "between 0 and 1000",
                w,
            )?;
        }
        let eps = f64::from(l.eps);
        check(
            fin(eps) && eps > 0.0 && eps < 1.0,
            "the SI-SDR epsilon",
            "a number in (0, 1)",
            eps,
        )?;
        for &n in &l.spectral_ffts {
            check(
                (16..=16_384).contains(&n),
                "a spectral loss FFT size",
                "between 16 and 16384",
                n,
            )?;
        }
        Ok(())
    }
}

/// One logged step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepLog {
    /// Step number (1-based, after the update).
    pub step: usize,
    /// Training loss of the step (mean over micro-batches).
    pub loss: f32,
    /// Mean SI-SDR per stem of the step's batch.
    pub si_sdr: Vec<f32>,
    /// Learning rate used.
    pub lr: f64,
}

/// One validation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ValidLog {
    /// Step.
    pub step: usize,
    /// Median museval SDR per stem over tracks (dB).
    pub sdr: Vec<f64>,
    /// Mean of `sdr`.
    pub mean_sdr: f64,
}

/// Resumable state: saved as `state.json` in each checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TrainState {
    /// Steps done.
    pub step: usize,
    /// Current LR.
    pub lr: f64,
    /// Best validation mean SDR.
    pub best_sdr: Option<f64>,
    /// Validations since the best.
    pub since_best: usize,
    /// Step log.
    pub steps: Vec<StepLog>,
    /// Validation log.
    pub valid: Vec<ValidLog>,
}

/// Events a front end shows.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    /// A step finished.
    Step(StepLog),
    /// A validation finished.
    Valid(ValidLog),
    /// A checkpoint was written.
    Saved(PathBuf),
    /// Free text.
    Message(String),
}

/// Training data: tracks and the segment sampler.
struct Sampler {
    tracks: Vec<Track>,
    rate: u32,
    len: usize,
    augment: AugmentConfig,
}

impl Sampler {
    fn example(&self, rng: &mut ChaCha8Rng) -> Result<Example, TrainError> {
        let pick = |rng: &mut ChaCha8Rng| &self.tracks[rng.random_range(0..self.tracks.len())];
        let start_in = |rng: &mut ChaCha8Rng, t: &Track| {
            if t.len > self.len {
                rng.random_range(0..t.len - self.len)
            } else {
                0
            }
        };
        let mut ex = if self.augment.remix {
            // Each stem from its own track and offset.
            let mut stems: [[Vec<f32>; 2]; 4] = Default::default();
            for (i, stem) in stems.iter_mut().enumerate() {
                let t = pick(rng);
                let s = start_in(rng, t);
                let e = t.read_stems(s, self.len, self.rate)?;
                *stem = e.stems[i].clone();
            }
            Example { stems }
        } else {
            let t = pick(rng);
            let s = start_in(rng, t);
            t.read_stems(s, self.len, self.rate)?
        };
        augment(&mut ex, &self.augment, rng);
        Ok(ex)
    }
}

fn step_rng(seed: u64, step: usize, micro: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(((step as u64) << 16) | micro as u64);
    r
}

/// Writes a checkpoint folder: `model.safetensors` (reference names), `config.json` (reference
/// keyword arguments + our audio fields), `optimizer.bin`, `state.json`. The files go to a fresh
/// temporary sibling first, which then replaces `dir` atomically ([`run_dir::replace_dir`]): an
/// interrupted save leaves the old checkpoint (or none), never a half-written one.
fn save_checkpoint(
    dir: &Path,
    cfg: &ModelConfig,
    model: &TfLocoformer,
    optim: &ModuleOptimizer,
    state: &TrainState,
) -> Result<(), TrainError> {
    let tmp = run_dir::temp_dir_for(dir)
        .map_err(io(format!("creating a folder beside {}", dir.display())))?;
    let written = write_checkpoint_files(&tmp, cfg, model, optim, state);
    let moved = written.and_then(|()| {
        run_dir::replace_dir(&tmp, dir).map_err(io(format!(
            "moving the new checkpoint into {}",
            dir.display()
        )))
    });
    if moved.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    moved
}

fn write_checkpoint_files(
    tmp: &Path,
    cfg: &ModelConfig,
    model: &TfLocoformer,
    optim: &ModuleOptimizer,
    state: &TrainState,
) -> Result<(), TrainError> {
    let sd = to_state_dict(cfg, model);
    let mut meta = std::collections::HashMap::new();
    meta.insert("locosep_config".to_string(), cfg.to_reference_json());
    write_safetensors(tmp.join("model.safetensors"), &sd, Some(meta), true)?;
    std::fs::write(tmp.join("config.json"), cfg.to_reference_json())
        .map_err(io("writing config.json"))?;
    let opt_path = tmp.join("optimizer.bin");
    optim.save(&opt_path).map_err(|e| {
        TrainError::Invalid(format!(
            "saving optimizer state {}: {e:?}",
            opt_path.display()
        ))
    })?;
    let js = serde_json::to_string_pretty(state).map_err(|e| TrainError::Invalid(e.to_string()))?;
    std::fs::write(tmp.join("state.json"), js).map_err(io("writing state.json"))?;
    Ok(())
}

/// Mono training items from examples: mixture `[B, N]` and targets `[B, S, N]` (for ac = 1
/// each channel is one item; for ac = 2 items are stereo pairs, flattened as channels).
/// Trains; returns the final state. `stop` ends the run after the current step (with a save).
pub fn train(
    model_cfg: &ModelConfig,
    cfg: &TrainConfig,
    resume: bool,
    stop: CancelToken,
    events: &mut dyn FnMut(TrainEvent),
) -> Result<TrainState, TrainError> {
    cfg.validate(model_cfg)?;
    if model_cfg.n_sources() != 4 {
        return Err(TrainError::Invalid(
            "training needs a 4-source model (vocals, drums, bass, other)".into(),
        ));
    }
    // The output folder: refused before any work if it is not ours to write into.
    let folder = run_dir::check_out(&cfg.out, resume, cfg.overwrite)?;
    let rate = model_cfg.sample_rate;
    let tracks = scan(&cfg.data)?;
    let (train_tracks, valid_tracks) = match &cfg.valid {
        Some(v) => (tracks, scan(v)?),
        None => split_by_track(tracks, 0.2),
    };
    check_for_training(&train_tracks)?;
    check_for_training(&valid_tracks)?;
    events(TrainEvent::Message(format!(
        "{} training tracks, {} validation tracks",
        train_tracks.len(),
        valid_tracks.len()
    )));
    let seg = ((cfg.segment_seconds * rate as f64).round() as usize).max(model_cfg.n_fft);
    let sampler = Sampler {
        tracks: train_tracks,
        rate,
        len: seg,
        augment: cfg.augment.clone(),
    };
    let resolved = crate::engine::device::resolve(cfg.device)?;
    events(TrainEvent::Message(format!(
        "training on {}",
        resolved.description
    )));
    for w in &resolved.warnings {
        events(TrainEvent::Message(w.clone()));
    }
    let device = resolved.device.clone().autodiff();
    // Weights: resume > --from > fresh (check_out made sure a resume has a checkpoint).
    let last = cfg.out.join("last");
    let (sd, mut state): (StateDict, TrainState) = if resume {
        let st: TrainState = serde_json::from_str(
            &std::fs::read_to_string(last.join("state.json")).map_err(io("reading state.json"))?,
        )
        .map_err(|e| TrainError::Invalid(format!("state.json: {e}")))?;
        (load_state_dict(last.join("model.safetensors"))?, st)
    } else if let Some(from) = &cfg.from {
        (
            load_state_dict(from)?,
            TrainState {
                lr: cfg.lr,
                ..Default::default()
            },
        )
    } else {
        (
            init_state_dict(model_cfg, cfg.seed),
            TrainState {
                lr: cfg.lr,
                ..Default::default()
            },
        )
    };
    let mut model = from_state_dict(model_cfg, &sd, &device)?;
    // Clipping is global-norm (`train::clip`, as the reference trainers), applied before the
    // step; burn's own clipping would clip each tensor by its own norm.
    let mut optim = AdamWConfig::new()
        .with_beta_1(cfg.betas.0)
        .with_beta_2(cfg.betas.1)
        .with_epsilon(cfg.adam_eps)
        .with_weight_decay(cfg.weight_decay)
        .init();
    if resume {
        let opt_path = last.join("optimizer.bin");
        optim = optim.load(&opt_path).map_err(|e| {
            TrainError::Invalid(format!(
                "loading optimizer state {}: {e}",
                opt_path.display()
            ))
        })?;
        events(TrainEvent::Message(format!(
            "resumed at step {}",
            state.step
        )));
    }
    // Everything is checked: claim the folder (marker), clear what a killed run left.
    run_dir::claim_out(&cfg.out).map_err(io(format!("preparing {}", cfg.out.display())))?;
    let removed = run_dir::clean_leftovers(&cfg.out);
    if removed > 0 {
        events(TrainEvent::Message(format!(
            "removed {removed} temporary folder(s) of an interrupted run in {}",
            cfg.out.display()
        )));
    }
    if folder.is_run && !resume {
        events(TrainEvent::Message(format!(
            "{} holds an earlier run: its last/ and step checkpoints are replaced as this run \
             saves; best/ is kept unless this run validates better{}",
            cfg.out.display(),
            folder
                .best_to_beat
                .map(|b| format!(" than its {b:.2} dB"))
                .unwrap_or_default()
        )));
    }
    // The score an existing best/ must be beaten by (from the file, not this run's state).
    let mut best_on_disk = folder.best_to_beat;
    let js = serde_json::to_string_pretty(cfg).map_err(|e| TrainError::Invalid(e.to_string()))?;
    crate::audio::encode::write_atomic(&cfg.out.join("train.json"), true, |f| {
        std::io::Write::write_all(f, js.as_bytes())
    })?;
    let checkpoint = cfg
        .checkpointing
        .then(|| crate::train::checkpoint::CheckpointOptions {
            offload: cfg.offload,
            ..Default::default()
        });
    let kit = StepKit::new(model_cfg, cfg.loss.clone(), checkpoint, &device)?;
    let t0 = Instant::now();
    while state.step < cfg.steps {
        let step = state.step;
        let mut acc = GradientsAccumulator::<TfLocoformer>::new();
        let (mut loss_sum, mut sdr_sum) = (0f32, vec![0f32; 4]);
        for micro in 0..cfg.accumulate {
            let mut rng = step_rng(cfg.seed, step, micro);
            device.seed(rng.random());
            let examples = (0..cfg.batch)
                .map(|_| sampler.example(&mut rng))
                .collect::<Result<Vec<_>, _>>()?;
            let (x, y, n) = kit.batch(&examples, model_cfg, &device)?;
            let MicroStep {
                loss: total,
                si_sdr,
                grads,
            } = kit.gradients(&model, x, y, n);
            loss_sum += total
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap_or_default()
                .first()
                .copied()
                .unwrap_or(f32::NAN);
            for (a, b) in sdr_sum.iter_mut().zip(&si_sdr) {
                *a += b;
            }
            acc.accumulate(&model, grads);
        }
        let k = cfg.accumulate as f32;
        if !(loss_sum / k).is_finite() {
            // NaN weights would follow: stop before they are applied or saved.
            return Err(TrainError::Diverged {
                step: step + 1,
                loss: loss_sum / k,
            });
        }
        let mut grads = acc.grads();
        if cfg.grad_clip > 0.0 {
            crate::train::clip::clip_global_norm(&model, &mut grads, f64::from(cfg.grad_clip));
        }
        model = optim.step(state.lr, model, grads);
        state.step += 1;
        let log = StepLog {
            step: state.step,
            loss: loss_sum / k,
            si_sdr: sdr_sum.iter().map(|v| v / k).collect(),
            lr: state.lr,
        };
        state.steps.push(log.clone());
        events(TrainEvent::Step(log));
        let stopping = stop.is_cancelled();
        let end = state.step == cfg.steps || stopping;
        if !valid_tracks.is_empty()
            && ((cfg.valid_every > 0 && state.step % cfg.valid_every == 0) || end)
        {
            let v = validate(
                model_cfg,
                &model,
                &valid_tracks,
                cfg.valid_seconds,
                state.step,
                &resolved,
            )?;
            let improved = v.mean_sdr.is_finite() && state.best_sdr.is_none_or(|b| v.mean_sdr > b);
            if improved {
                state.best_sdr = Some(v.mean_sdr);
                state.since_best = 0;
            } else {
                state.since_best += 1;
                if state.since_best >= cfg.plateau_patience {
                    state.lr *= cfg.plateau_factor;
                    state.since_best = 0;
                    events(TrainEvent::Message(format!(
                        "validation plateau: learning rate → {:.2e}",
                        state.lr
                    )));
                }
            }
            let score = v.mean_sdr;
            state.valid.push(v.clone());
            events(TrainEvent::Valid(v));
            if improved {
                match best_on_disk {
                    Some(b) if score <= b => events(TrainEvent::Message(format!(
                        "validation mean SDR {score:.2} dB does not beat best/ ({b:.2} dB): best/ kept"
                    ))),
                    _ => {
                        save_checkpoint(&cfg.out.join("best"), model_cfg, &model, &optim, &state)?;
                        best_on_disk = Some(score);
                    }
                }
            }
        }
        if end || (cfg.save_every > 0 && state.step % cfg.save_every == 0) {
            let dir = cfg.out.join(run_dir::step_dir_name(state.step));
            save_checkpoint(&dir, model_cfg, &model, &optim, &state)?;
            save_checkpoint(&last, model_cfg, &model, &optim, &state)?;
            run_dir::prune(&cfg.out, cfg.keep_last, state.step);
            events(TrainEvent::Saved(dir));
        }
        if stopping {
            events(TrainEvent::Message(
                "stopped on request; checkpoint saved".into(),
            ));
            break;
        }
    }
    events(TrainEvent::Message(format!(
        "{} steps in {:.1} s",
        state.step,
        t0.elapsed().as_secs_f64()
    )));
    Ok(state)
}

/// Validation: separate the middle `seconds` of each track with the current weights on
/// `device` (the training device, without autodiff) and take museval SDR; median over tracks
/// per stem.
pub fn validate(
    cfg: &ModelConfig,
    model: &TfLocoformer,
    tracks: &[Track],
    seconds: f64,
    step: usize,
    device: &ResolvedDevice,
) -> Result<ValidLog, TrainError> {
    let sd = to_state_dict(cfg, model);
    let sep = crate::engine::Separator::new(cfg.clone(), &sd, device.clone())?;
    let scores = super::eval::score_tracks(&sep, tracks, seconds)?;
    let sdr: Vec<f64> = (0..4)
        .map(|s| {
            crate::dsp::metrics::nan_median(&scores.iter().map(|t| t[s]).collect::<Vec<_>>())
                .unwrap_or(f64::NAN)
        })
        .collect();
    // NaN when no stem has a finite score (never a made-up 0 dB that could win best/).
    let finite = sdr.iter().filter(|v| v.is_finite()).count();
    let mean_sdr = if finite == 0 {
        f64::NAN
    } else {
        sdr.iter().filter(|v| v.is_finite()).sum::<f64>() / finite as f64
    };
    Ok(ValidLog {
        step,
        sdr,
        mean_sdr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::preset;

    #[test]
    fn validate_names_the_setting_the_range_and_the_value() {
        let model = preset("demo").unwrap().config;
        TrainConfig::default().validate(&model).unwrap();
        let cases: Vec<(TrainConfig, &[&str])> = vec![
            (
                TrainConfig {
                    lr: f64::NAN,
                    ..Default::default()
                },
                &["--lr", "NaN", "(0, 1]"],
            ),
            (
                TrainConfig {
                    lr: -1.0,
                    ..Default::default()
                },
                &["--lr", "-1"],
            ),
            (
                TrainConfig {
                    lr: f64::INFINITY,
                    ..Default::default()
                },
                &["--lr", "inf"],
            ),
            (
                TrainConfig {
                    weight_decay: -0.1,
                    ..Default::default()
                },
                &["weight decay", "[0, 1]"],
            ),
            (
                TrainConfig {
                    weight_decay: f32::NAN,
                    ..Default::default()
                },
                &["weight decay", "NaN"],
            ),
            (
                TrainConfig {
                    grad_clip: -5.0,
                    ..Default::default()
                },
                &["clip", "-5"],
            ),
            (
                TrainConfig {
                    grad_clip: f32::INFINITY,
                    ..Default::default()
                },
                &["clip", "inf"],
            ),
            (
                TrainConfig {
                    segment_seconds: 0.01,
                    ..Default::default()
                },
                &["--segment", "0.05"],
            ),
            (
                TrainConfig {
                    segment_seconds: -1.0,
                    ..Default::default()
                },
                &["--segment", "-1"],
            ),
            (
                TrainConfig {
                    segment_seconds: 1e9,
                    ..Default::default()
                },
                &["--segment", "600"],
            ),
            (
                TrainConfig {
                    steps: 0,
                    ..Default::default()
                },
                &["--steps", "0"],
            ),
            (
                TrainConfig {
                    accumulate: 0,
                    ..Default::default()
                },
                &["--accumulate"],
            ),
            (
                TrainConfig {
                    plateau_factor: 0.0,
                    ..Default::default()
                },
                &["plateau"],
            ),
        ];
        for (cfg, needles) in cases {
            let e = cfg.validate(&model).unwrap_err().to_string();
            for n in needles {
                assert!(e.contains(n), "`{n}` missing from: {e}");
            }
        }
    }
}
