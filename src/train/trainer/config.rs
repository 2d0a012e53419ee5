//! The settings of a training run ([`TrainConfig`], saved as `train.json`) and the range of
//! every number in them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::TrainError;
use crate::engine::device::DeviceChoice;
use crate::model::config::ModelConfig;
use crate::train::augment::AugmentConfig;
use crate::train::loss::LossConfig;

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
    /// existing `best/` whatever its score (see [`crate::train::run_dir`]).
    pub overwrite: bool,
    /// Where to train: `auto` (a hardware GPU when wgpu finds one, else the CPU), `gpu` (any
    /// wgpu adapter, software ones included) or `cpu`. Validation runs on the same device.
    pub device: DeviceChoice,
    /// Device memory budget (bytes): the planner's fit ([`crate::memory::planner::fit_with`])
    /// chooses the segment (never longer than `segment_seconds`), checkpointing and offload so
    /// that a step's predicted peak stays under 90 % of it, and the trainer applies them.
    /// `None`: the settings as given (the device's largest buffer is respected either way).
    pub budget: Option<u64>,
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
            budget: None,
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
    /// The shortest training segment (s) for `model` with this loss: it must hold the model's
    /// STFT window and the spectral loss's largest one.
    pub fn min_segment_seconds(&self, model: &ModelConfig) -> f64 {
        let rate = f64::from(model.sample_rate);
        let window = self
            .loss
            .spectral_ffts
            .iter()
            .copied()
            .chain([model.n_fft])
            .max()
            .unwrap_or(0);
        MIN_SEGMENT_SECONDS.max((window + 1) as f64 / rate)
    }

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
        let min_seg = self.min_segment_seconds(model);
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
