//! `locosep plan`: predicted device memory per preset, and fitting settings to a budget.

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::memory::planner::{
    AttentionStrategy, BackendKind, FitOptions, Mode, PlanRequest, fit_with, format_bytes,
    parse_bytes, plan, plan_checked,
};
use crate::model::config::{ModelConfig, builtin_presets, preset};

/// Longest segment `plan --seconds` accepts: one day.
pub const MAX_PLAN_SECONDS: f64 = 86_400.0;
/// Largest `plan --batch`.
pub const MAX_PLAN_BATCH: usize = 65_536;

/// Arguments of `plan`.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Preset (default: a summary of every preset).
    #[arg(long)]
    pub preset: Option<String>,
    /// Segment length in seconds (default: the preset's).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Plan a training step (AdamW state, gradients, saved activations).
    #[arg(long)]
    pub train: bool,
    /// With --train: activation checkpointing per block.
    #[arg(long)]
    pub checkpointing: bool,
    /// With --checkpointing: the block inputs are kept in host memory (`train --offload`).
    #[arg(long, requires = "checkpointing")]
    pub offload: bool,
    /// Chunks (or training items) per forward.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Song channels (1 mono, 2 stereo).
    #[arg(long, default_value_t = 2)]
    pub channels: usize,
    /// Memory budget, e.g. 8GiB, 512MiB: choose settings that fit 90 % of it and explain.
    #[arg(long)]
    pub budget: Option<String>,
    /// With --budget: the device's largest single buffer, e.g. 128MiB (lavapipe) or 2GiB
    /// (NVIDIA/AMD Vulkan); settings with a larger tensor are passed over, as `train` does.
    #[arg(long, requires = "budget")]
    pub max_buffer: Option<String>,
    /// Attention strategy: fused, chunked, materialized.
    #[arg(long, default_value = "fused")]
    pub attention: String,
    /// Score-tensor cap for --attention chunked, e.g. 256MiB.
    #[arg(long, default_value = "256MiB")]
    pub chunk: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn strategy(name: &str, chunk: u64) -> Result<AttentionStrategy> {
    Ok(match name {
        "fused" => AttentionStrategy::Fused,
        "chunked" => AttentionStrategy::Chunked {
            max_score_bytes: chunk,
        },
        "materialized" | "materialised" => AttentionStrategy::Materialized,
        other => bail!("unknown --attention `{other}`; use fused, chunked or materialized"),
    })
}

fn mode(a: &PlanArgs) -> Mode {
    match (a.train, a.checkpointing) {
        (false, _) => Mode::Inference,
        (true, false) => Mode::Training,
        (true, true) => Mode::TrainingCheckpointed,
    }
}

fn summary() -> Result<()> {
    println!(
        "{:<18} {:>9} {:>7} {:>14} {:>14} {:>14} {:>16} {:>16}",
        "preset",
        "params",
        "segment",
        "infer fused",
        "infer chunked",
        "largest mat.",
        "train (no ckpt)",
        "train (ckpt)"
    );
    for p in builtin_presets() {
        let m = crate::engine::plan::plan_model(&p.config);
        let base = PlanRequest {
            song_channels: 1,
            path_chunk_bytes: Some(256 << 20),
            ..PlanRequest::new(&m)
        };
        let fused = plan(&m, &base);
        let chunked = plan(
            &m,
            &PlanRequest {
                attention: AttentionStrategy::Chunked {
                    max_score_bytes: 256 << 20,
                },
                ..base.clone()
            },
        );
        let mat = plan(
            &m,
            &PlanRequest {
                attention: AttentionStrategy::Materialized,
                path_chunk_bytes: None,
                ..base.clone()
            },
        );
        let train = plan(
            &m,
            &PlanRequest {
                mode: Mode::Training,
                path_chunk_bytes: None,
                ..base.clone()
            },
        );
        let ckpt = plan(
            &m,
            &PlanRequest {
                mode: Mode::TrainingCheckpointed,
                ..base.clone()
            },
        );
        println!(
            "{:<18} {:>8.2}M {:>6}s {:>14} {:>14} {:>14} {:>16} {:>16}",
            p.name,
            fused.param_count as f64 / 1e6,
            p.config.segment_seconds,
            format_bytes(fused.peak_bytes),
            format_bytes(chunked.peak_bytes),
            format_bytes(mat.largest_allocation_bytes),
            format_bytes(train.peak_bytes),
            format_bytes(ckpt.peak_bytes)
        );
    }
    println!(
        "\nBatch 1, one mono item, f32; inference with paths sub-batched to ≤ 256 MiB per intermediate; \
         \"largest mat.\" = one materialised frequency/time-path score tensor; training with fused \
         attention, checkpointed runs sub-batched. Details: locosep plan --preset NAME [--train]."
    );
    Ok(())
}

/// Runs `plan`.
pub fn run(a: PlanArgs) -> Result<()> {
    let Some(name) = &a.preset else {
        return summary();
    };
    let cfg: ModelConfig = preset(name)?.config;
    let m = crate::engine::plan::plan_model(&cfg);
    if !(1..=2).contains(&a.channels) {
        bail!("--channels must be 1 or 2, got {}", a.channels);
    }
    if let Some(b) = &a.budget {
        let budget = parse_bytes(b).with_context(|| format!("--budget {b}"))?;
        let backend = if a.attention == "fused" {
            BackendKind::Fused
        } else {
            BackendKind::NonFused
        };
        let mode = if a.train {
            Mode::Training
        } else {
            Mode::Inference
        };
        let max_allocation_bytes = match &a.max_buffer {
            Some(x) => Some(parse_bytes(x).with_context(|| format!("--max-buffer {x}"))?),
            None => None,
        };
        let options = FitOptions {
            max_allocation_bytes,
            ..FitOptions::default()
        };
        let fitted =
            fit_with(&m, budget, a.channels, mode, backend, &options).with_context(|| match &a
                .max_buffer
            {
                Some(x) => format!("--budget {b} with --max-buffer {x}"),
                None => format!("--budget {b}"),
            })?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&fitted)?);
        } else {
            for line in &fitted.explanation {
                println!("{line}");
            }
            println!("\n{}", fitted.plan.table());
        }
        return Ok(());
    }
    let chunk = parse_bytes(&a.chunk).with_context(|| format!("--chunk {}", a.chunk))?;
    let min_seconds = m.n_fft as f64 / m.sample_rate.max(1) as f64;
    let seg = match a.seconds {
        None => m.segment_samples,
        Some(s) if s.is_finite() && (min_seconds..=MAX_PLAN_SECONDS).contains(&s) => {
            ((s * m.sample_rate as f64).round() as usize).max(m.n_fft)
        }
        Some(s) => bail!(
            "--seconds {} is out of range: it must be between one STFT window \
             ({min_seconds:.4} s = {} samples) and {MAX_PLAN_SECONDS} s",
            crate::model::config::fmt_number(s),
            m.n_fft
        ),
    };
    if !(1..=MAX_PLAN_BATCH).contains(&a.batch) {
        bail!(
            "--batch {} is out of range: it must be between 1 and {MAX_PLAN_BATCH}",
            a.batch
        );
    }
    let req = PlanRequest {
        segment_samples: seg,
        batch: a.batch,
        song_channels: a.channels,
        mode: mode(&a),
        attention: strategy(&a.attention, chunk)?,
        offload_checkpoints: a.offload,
        ..PlanRequest::new(&m)
    };
    let p = plan_checked(&m, &req)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        println!("{}", p.table());
    }
    Ok(())
}
