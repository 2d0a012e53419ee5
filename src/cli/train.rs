//! `locosep train` and `locosep eval`.

use crate::cancel::CancelToken;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::model::config::{ModelConfig, preset};
use crate::train::dataset::scan;
use crate::train::eval::{evaluate_estimates, evaluate_model};
use crate::train::{TrainConfig, TrainEvent, train};

/// Arguments of `train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training data (MUSDB18-HQ layout or folders of stems).
    #[arg(long)]
    pub data: PathBuf,
    /// Validation data (default: every 5th track of --data).
    #[arg(long)]
    pub valid: Option<PathBuf>,
    /// Preset of the architecture.
    #[arg(long, conflicts_with = "config")]
    pub preset: Option<String>,
    /// Model config file instead of a preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Start from this checkpoint (fine-tuning): a weight file, a model folder, or the name
    /// of an installed model (`locosep models`).
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Output folder (checkpoints, logs, curves).
    #[arg(long)]
    pub out: PathBuf,
    /// Optimizer steps.
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Segments per micro-batch.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Micro-batches per step (gradient accumulation).
    #[arg(long, default_value_t = 1)]
    pub accumulate: usize,
    /// Activation checkpointing per block: keep each block's input, recompute the block in
    /// the backward (one more forward per step, a fraction of the memory).
    #[arg(long)]
    pub checkpointing: bool,
    /// With --checkpointing: keep the block inputs in host memory instead of device memory.
    #[arg(long, requires = "checkpointing")]
    pub offload: bool,
    /// Training segment length in seconds.
    #[arg(long, default_value_t = 2.0)]
    pub segment: f64,
    /// Learning rate.
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    /// Weight of the negative SI-SDR term of the loss (the seed's main term).
    #[arg(long, default_value_t = 1.0)]
    pub si_sdr_weight: f32,
    /// Weight of a negative plain-SDR term (scale-dependent: trains the output level too).
    #[arg(long, default_value_t = 0.0)]
    pub sdr_weight: f32,
    /// Validate every N steps.
    #[arg(long, default_value_t = 100)]
    pub valid_every: usize,
    /// Save every N steps.
    #[arg(long, default_value_t = 100)]
    pub save_every: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Continue the run in --out from its last checkpoint (an error if there is none).
    #[arg(long)]
    pub resume: bool,
    /// Train into a non-empty --out that is not a locosep run (its best/, last/ and
    /// step_NNNNNN/ may be replaced), and let this run replace an existing best/ even if it
    /// validates worse.
    #[arg(long)]
    pub overwrite: bool,
    /// Device memory budget (e.g. 8GiB): the planner chooses the segment (at most --segment),
    /// checkpointing and offload so that a step's predicted peak stays under 90 % of it, and
    /// the run trains with that plan (printed as `plan:` lines).
    #[arg(long)]
    pub budget: Option<String>,
    /// Where to train: auto (a hardware GPU when wgpu finds one, else the CPU), gpu (any wgpu
    /// adapter, software ones such as lavapipe included) or cpu. Validation runs there too.
    #[arg(long, default_value = "auto")]
    pub device: crate::engine::device::DeviceChoice,
}

/// Arguments of `eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Data with true stems (MUSDB18-HQ layout).
    #[arg(long)]
    pub data: PathBuf,
    /// Model to evaluate (with --preset or --config); default: the bundled model.
    #[command(flatten)]
    pub model: super::ModelArgs,
    /// Evaluate estimates on disk (`DIR/<track>/<stem>.wav`) instead of a model.
    #[arg(long)]
    pub estimates: Option<PathBuf>,
    /// Evaluate the mixture as every stem's estimate (the baseline).
    #[arg(long)]
    pub baseline: bool,
    /// Seconds from the middle of each track (0 = whole tracks).
    #[arg(long, default_value_t = 0.0)]
    pub seconds: f64,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Replace an existing `--json` file.
    #[arg(long)]
    pub overwrite: bool,
}

/// Most `train --steps` (a run that long would take years; a larger number is a typo).
pub const MAX_TRAIN_STEPS: usize = 100_000_000;

/// Longest `eval --seconds` excerpt accepted (6 hours, the decoder's limit).
pub const MAX_EVAL_SECONDS: f64 = 6.0 * 3600.0;

fn model_config(preset_name: &Option<String>, config: &Option<PathBuf>) -> Result<ModelConfig> {
    Ok(match (preset_name, config) {
        (Some(p), _) => preset(p)?.config,
        (None, Some(c)) => ModelConfig::from_file(c)?,
        (None, None) => bail!("give --preset or --config for the architecture"),
    })
}

/// The architecture and the starting weights: `--from` may be a model folder (a downloaded
/// `<name>/` with `merged_config.yaml` and `checkpoints/model.pth`, or a run's `best/`), whose
/// config is used when neither `--preset` nor `--config` is given.
fn model_and_start(a: &TrainArgs) -> Result<(ModelConfig, Option<PathBuf>)> {
    // A name that is not a path: an installed model.
    let from = match &a.from {
        Some(p) if !p.exists() && p.components().count() == 1 => {
            Some(super::installed_model(&p.to_string_lossy())?)
        }
        other => other.clone(),
    };
    match &from {
        Some(dir) if dir.is_dir() => {
            let files =
                crate::model::folder::find_model_files(dir).map_err(|e| anyhow::anyhow!(e))?;
            let cfg = if a.preset.is_none() && a.config.is_none() {
                ModelConfig::from_file(&files.config)?
            } else {
                model_config(&a.preset, &a.config)?
            };
            Ok((cfg, Some(files.weights)))
        }
        from => Ok((model_config(&a.preset, &a.config)?, from.clone())),
    }
}

/// Runs `train`.
pub fn run_train(a: TrainArgs) -> Result<()> {
    if a.steps > MAX_TRAIN_STEPS {
        bail!(
            "--steps {} is out of range: it must be between 1 and {MAX_TRAIN_STEPS}",
            a.steps
        );
    }
    let (model_cfg, from) = model_and_start(&a)?;
    let budget = match &a.budget {
        Some(b) => Some(
            crate::memory::planner::parse_bytes(b)
                .map_err(|e| anyhow::anyhow!("--budget {b}: {e}"))?,
        ),
        None => None,
    };
    let cfg = TrainConfig {
        data: a.data,
        valid: a.valid,
        out: a.out.clone(),
        from,
        steps: a.steps,
        batch: a.batch,
        accumulate: a.accumulate,
        segment_seconds: a.segment,
        lr: a.lr,
        checkpointing: a.checkpointing,
        offload: a.offload,
        valid_every: a.valid_every,
        save_every: a.save_every,
        seed: a.seed,
        overwrite: a.overwrite,
        device: a.device,
        budget,
        loss: crate::train::loss::LossConfig {
            si_sdr_weight: a.si_sdr_weight,
            sdr_weight: a.sdr_weight,
            ..Default::default()
        },
        ..Default::default()
    };
    // Numbers first; the trainer then plans the run for the device (and the budget) and
    // refuses a budget nothing fits in before any work.
    cfg.validate(&model_cfg)?;
    let stop = CancelToken::new();
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || {
            eprintln!("\nstopping: saving a checkpoint after this step…");
            stop.cancel();
        });
    }
    let pb = ProgressBar::new(a.steps as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "train [{bar:30}] {pos}/{len} steps {msg} ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    // indicatif hides its bar and `println` when stderr is not a terminal: say things plainly then.
    let say = |pb: &ProgressBar, line: String| {
        if pb.is_hidden() {
            eprintln!("{line}");
        } else {
            pb.println(line);
        }
    };
    let state = train(&model_cfg, &cfg, a.resume, stop, &mut |ev| match ev {
        TrainEvent::Step(s) => {
            pb.set_position(s.step as u64);
            pb.set_message(format!("loss {:.3}", s.loss));
            if pb.is_hidden() {
                eprintln!("step {}: loss {:.4}, lr {:.2e}", s.step, s.loss, s.lr);
            }
        }
        TrainEvent::Valid(v) => say(
            &pb,
            format!(
                "step {}: validation SDR vocals {:.2} drums {:.2} bass {:.2} other {:.2} (mean {:.2} dB)",
                v.step, v.sdr[0], v.sdr[1], v.sdr[2], v.sdr[3], v.mean_sdr
            ),
        ),
        TrainEvent::Saved(p) => say(&pb, format!("saved {}", p.display())),
        TrainEvent::Message(m) => say(&pb, m),
    })?;
    pb.finish();
    crate::train::curves::write_png(&a.out.join("curves.png"), &state)?;
    eprintln!(
        "checkpoints in {}; loss/SDR curves in {}",
        a.out.display(),
        a.out.join("curves.png").display()
    );
    Ok(())
}

/// Runs `eval`.
pub fn run_eval(a: EvalArgs) -> Result<()> {
    if !(a.seconds.is_finite() && (0.0..=MAX_EVAL_SECONDS).contains(&a.seconds)) {
        bail!(
            "--seconds {} is out of range: it must be between 0 (whole tracks) and \
             {MAX_EVAL_SECONDS} s",
            crate::model::config::fmt_number(a.seconds)
        );
    }
    if let Some(p) = &a.json
        && p.exists()
        && !a.overwrite
    {
        bail!(
            "the JSON report '{}' already exists; pass --overwrite to replace it",
            p.display()
        );
    }
    let tracks = scan(&a.data)?;
    let report = if a.baseline || a.estimates.is_some() {
        evaluate_estimates(&tracks, a.estimates.as_deref(), a.seconds, 44_100)?
    } else {
        let sep = super::build_separator(&a.model)?;
        evaluate_model(&sep, &tracks, a.seconds, &mut |t| {
            eprintln!("separating {t}")
        })?
    };
    print!("{}", report.table());
    let mean = report.mean_sdr();
    if !mean.is_finite() {
        bail!(
            "no stem of any track could be scored (SDR is undefined for every stem: silent or \
             empty references, or excerpts too short); check --data and --seconds"
        );
    }
    println!("mean SDR over stems: {mean:.2} dB");
    if !a.baseline {
        // Context for the numbers: the same metrics for the mixture used as every stem.
        let baseline = evaluate_estimates(&tracks, None, a.seconds, 44_100)?;
        println!();
        print!("{}", report.improvement_table(&baseline));
    }
    if let Some(p) = &a.json {
        let js = serde_json::to_string_pretty(&report)?;
        crate::audio::encode::write_atomic(p, a.overwrite, |f| {
            std::io::Write::write_all(f, js.as_bytes())
        })?;
    }
    Ok(())
}
