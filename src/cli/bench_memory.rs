//! `locosep bench memory`: the planner's predicted peak against the device allocator's measured
//! peak, for inference forwards and training steps of several shapes (the table in the README).
//!
//! Each case runs on a fresh wgpu device (no pages or live tensors from another case). The
//! measured figure is the exact in-use peak read by [`crate::memory::probe`]; the reserved peak
//! (device memory the pools held) is printed beside it.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::{Device, Distribution, Tensor};

use crate::kernels::attention::bench::fresh_wgpu_device;
use crate::memory::planner::{Calibration, MemoryPlan, Mode, PlanRequest, format_bytes, plan};
use crate::memory::probe::AllocatorProbe;
use crate::model::config::{ModelConfig, preset};
use crate::model::loader::{from_state_dict, init_state_dict};
use crate::model::network::{AttentionImpl, ForwardOptions};

/// One measured configuration: a preset with some dimensions changed.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryCase {
    /// Preset the dimensions start from.
    pub preset: &'static str,
    /// Segment length in seconds (at the preset's sample rate).
    pub seconds: f64,
    /// Number of blocks.
    pub layers: usize,
    /// Attention heads (`None`: the preset's).
    pub heads: Option<usize>,
    /// STFT size, with hop = n_fft / 4 (`None`: the preset's).
    pub n_fft: Option<usize>,
    /// Network batch items.
    pub batch: usize,
    /// Inference, training, or checkpointed training.
    pub mode: Mode,
    /// Inference: cap on one path sub-batch's working set, bytes (`ForwardOptions::
    /// max_chunk_bytes` and the planner's `path_chunk_bytes`). `None`, and in training (whose
    /// step runs each path whole): each path on all its sequences at once.
    pub chunk_bytes: Option<u64>,
    /// Checkpointed training: the block inputs in host memory (`train --offload`).
    pub offload: bool,
}

impl MemoryCase {
    /// The model configuration this case runs.
    pub fn config(&self) -> Result<ModelConfig> {
        let mut cfg = preset(self.preset)?.config;
        cfg.n_layers = self.layers;
        cfg.segment_seconds = self.seconds;
        if let Some(h) = self.heads {
            cfg.n_heads = h;
        }
        if let Some(n) = self.n_fft {
            cfg.n_fft = n;
            cfg.hop_length = n / 4;
        }
        Ok(cfg)
    }

    /// Samples per segment.
    pub fn samples(&self, cfg: &ModelConfig) -> usize {
        (self.seconds * cfg.sample_rate as f64).round() as usize
    }

    /// Short description for tables: `demo 2 s L2 h4 nfft512 B1 infer`.
    pub fn label(&self) -> String {
        let mut s = format!("{} {} s L{}", self.preset, self.seconds, self.layers);
        if let Some(h) = self.heads {
            s += &format!(" h{h}");
        }
        if let Some(n) = self.n_fft {
            s += &format!(" nfft{n}");
        }
        s += &format!(" B{}", self.batch);
        s += match self.mode {
            Mode::Inference => " infer",
            Mode::Training => " train",
            Mode::TrainingCheckpointed => " train-ckpt",
        };
        if let Some(c) = self.chunk_bytes {
            s += &format!(" chunk {}", format_bytes(c));
        }
        if self.offload {
            s += " offload";
        }
        s
    }

    /// The planner's prediction for this case (fused attention).
    pub fn predict(&self, calibration: Calibration) -> Result<MemoryPlan> {
        let cfg = self.config()?;
        let mut m = crate::engine::plan::plan_model(&cfg);
        m.segment_samples = self.samples(&cfg);
        let req = PlanRequest {
            batch: self.batch,
            song_channels: 1,
            mode: self.mode,
            calibration,
            path_chunk_bytes: self.chunk_bytes.filter(|_| self.mode == Mode::Inference),
            offload_checkpoints: self.offload,
            ..PlanRequest::new(&m)
        };
        Ok(plan(&m, &req))
    }
}

/// The cases of `locosep bench memory` and `tests/memory.rs`: each of segment length (T),
/// STFT size (F), layers, heads and batch changes against a base, for inference and training.
/// All fit lavapipe's 128 MiB buffer limit.
pub fn default_cases() -> Vec<MemoryCase> {
    let base = MemoryCase {
        preset: "demo",
        seconds: 1.0,
        layers: 2,
        heads: None,
        n_fft: None,
        batch: 1,
        mode: Mode::Inference,
        chunk_bytes: None,
        offload: false,
    };
    let train = MemoryCase {
        seconds: 0.25,
        mode: Mode::Training,
        ..base.clone()
    };
    vec![
        base.clone(),
        MemoryCase {
            seconds: 2.0,
            ..base.clone()
        },
        MemoryCase {
            layers: 4,
            ..base.clone()
        },
        MemoryCase {
            n_fft: Some(512),
            seconds: 2.0,
            ..base.clone()
        },
        MemoryCase {
            batch: 2,
            ..base.clone()
        },
        MemoryCase {
            preset: "small",
            seconds: 0.5,
            layers: 3,
            ..base.clone()
        },
        MemoryCase {
            preset: "small",
            seconds: 0.5,
            layers: 3,
            heads: Some(2),
            ..base.clone()
        },
        train.clone(),
        MemoryCase {
            seconds: 0.5,
            ..train.clone()
        },
        MemoryCase {
            layers: 4,
            ..train.clone()
        },
        MemoryCase {
            batch: 2,
            ..train.clone()
        },
        MemoryCase {
            mode: Mode::TrainingCheckpointed,
            ..train.clone()
        },
        MemoryCase {
            seconds: 0.5,
            layers: 4,
            mode: Mode::TrainingCheckpointed,
            ..train.clone()
        },
    ]
}

/// One measured case.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemoryRow {
    /// What ran.
    pub label: String,
    /// Planner's predicted peak, bytes.
    pub predicted: u64,
    /// Measured in-use peak above the device's use before the case, bytes.
    pub in_use: u64,
    /// Measured reserved peak (pages the pools held), bytes.
    pub reserved: u64,
    /// Wall time of the case (all runs), seconds.
    pub seconds: f64,
    /// Runs the peaks are the largest of.
    pub runs: usize,
    /// Whether kernels were skipped (cubecl dry run: allocations happen, nothing executes).
    pub dry_run: bool,
}

impl MemoryRow {
    /// Measured in-use peak / predicted peak.
    pub fn ratio(&self) -> f64 {
        self.in_use as f64 / self.predicted.max(1) as f64
    }
}

/// Runs `case` on a fresh wgpu device and reads its peaks from `probe`.
///
/// # Errors
/// No wgpu adapter, or the run failed (e.g. a buffer over the device's limit).
pub fn measure(case: &MemoryCase, probe: &AllocatorProbe, dry_run: bool) -> Result<MemoryRow> {
    let Some(device) = fresh_wgpu_device() else {
        bail!("no wgpu adapter: the memory benchmark measures the GPU allocator");
    };
    let cfg = case.config()?;
    let predicted = case.predict(Calibration::WGPU)?.peak_bytes;
    device.sync().ok();
    probe.reset();
    let base = probe.read().last_in_use;
    let t0 = Instant::now();
    {
        let _dry = dry_run.then(burn::cubecl::dry_run::DryRun::new);
        run_case(case, &cfg, &device).with_context(|| format!("running {}", case.label()))?;
        device.sync().ok();
    }
    let seconds = t0.elapsed().as_secs_f64();
    let r = probe.read();
    Ok(MemoryRow {
        label: case.label(),
        predicted,
        in_use: r.peak_in_use.saturating_sub(base),
        reserved: r.peak_reserved,
        seconds,
        runs: 1,
        dry_run,
    })
}

/// [`measure`] `runs` times in dry runs (kernels compiled, not executed: a fraction of a second
/// per case on lavapipe), keeping the largest in-use peak.
///
/// The in-use peak of one run depends on scheduling: the device thread allocates an op's
/// output while the calling thread may or may not have dropped the tensors that op no longer
/// needs. The largest of a few runs is the peak the planner models (most single runs give it;
/// some come out up to 25 % lower).
///
/// # Errors
/// As [`measure`].
pub fn measure_max(case: &MemoryCase, probe: &AllocatorProbe, runs: usize) -> Result<MemoryRow> {
    let mut best = measure(case, probe, true)?;
    for _ in 1..runs.max(1) {
        let row = measure(case, probe, true)?;
        let total = best.seconds + row.seconds;
        let runs = best.runs + 1;
        if row.in_use > best.in_use {
            best = row;
        }
        best.seconds = total;
        best.runs = runs;
    }
    Ok(best)
}

/// One forward (inference) or one training step (forward, the trainer's loss, backward, AdamW)
/// with random weights and inputs.
fn run_case(case: &MemoryCase, cfg: &ModelConfig, device: &Device) -> Result<()> {
    let training = case.mode != Mode::Inference;
    let dev = if training {
        device.clone().autodiff()
    } else {
        device.clone()
    };
    let n = case.samples(cfg);
    let t = cfg.n_frames(n);
    let f = cfg.n_freqs();
    let net = from_state_dict(cfg, &init_state_dict(cfg, 1), &dev)?;
    let x = Tensor::<4>::random(
        [case.batch, 2 * cfg.audio_channels, t, f],
        Distribution::Normal(0.0, 1.0),
        &dev,
    );
    let opts = ForwardOptions {
        attention: AttentionImpl::Fused,
        max_chunk_bytes: case.chunk_bytes.map(|b| b as usize),
        ..Default::default()
    };
    if !training {
        let out = net.forward(x, opts);
        drop(net);
        out.into_data();
        return Ok(());
    }
    use burn::optim::AdamWConfig;
    let checkpoint = (case.mode == Mode::TrainingCheckpointed).then(|| {
        crate::train::checkpoint::CheckpointOptions {
            offload: case.offload,
            ..Default::default()
        }
    });
    let kit = crate::train::step::StepKit::new(cfg, Default::default(), checkpoint, &dev)?;
    let sources = cfg.n_sources() * cfg.audio_channels;
    let y = Tensor::<3>::random(
        [case.batch, sources, n],
        Distribution::Normal(0.0, 0.1),
        &dev,
    );
    let grads = kit.gradients(&net, x, y, n).grads;
    let mut optim = AdamWConfig::new().init();
    let net = optim.step(1e-3, net, grads);
    drop(net);
    dev.sync().ok();
    Ok(())
}

/// The cases as a Markdown table.
pub fn format_rows(rows: &[MemoryRow]) -> String {
    let mut s = String::from(
        "| case | predicted | in-use peak | in-use / predicted | reserved peak | runs | time |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {:.3} | {} | {}{} | {:.1} s |\n",
            r.label,
            format_bytes(r.predicted),
            format_bytes(r.in_use),
            r.ratio(),
            format_bytes(r.reserved),
            r.runs,
            if r.dry_run { " dry" } else { " real" },
            r.seconds
        );
    }
    s
}

/// `locosep bench memory`: installs the probe, runs every case (`runs` dry runs, or once with
/// kernels executed when `real`), prints the table.
pub fn run(only: Option<&str>, runs: usize, real: bool) -> Result<()> {
    let probe = crate::memory::probe::install()?;
    let mut rows = Vec::new();
    for case in default_cases() {
        if only.is_some_and(|o| !case.label().contains(o)) {
            continue;
        }
        let row = if real {
            measure(&case, probe, false)?
        } else {
            measure_max(&case, probe, runs)?
        };
        eprintln!(
            "{}: predicted {}, in use {} ({:.3}), reserved {}",
            row.label,
            format_bytes(row.predicted),
            format_bytes(row.in_use),
            row.ratio(),
            format_bytes(row.reserved)
        );
        rows.push(row);
    }
    println!("{}", format_rows(&rows));
    Ok(())
}
