//! `locosep bench`: real-time factor and peak memory of one forward pass.

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;

use super::bench_common::{
    best_and_mean, network_items, print_header, print_memory, synthetic_stereo,
};
use crate::engine::Separator;
use crate::engine::device::{DeviceChoice, resolve};
use crate::memory::sampler::{MemorySampler, process_rss, reset_peak_rss};
use crate::model::config::preset;
use crate::model::loader::init_state_dict;

/// Longest audio `bench --seconds` accepts (ten minutes).
pub const MAX_BENCH_SECONDS: f64 = 600.0;

/// Most `bench --repeat` runs.
pub const MAX_BENCH_REPEAT: usize = 1000;
/// Most `bench attention --frames`.
pub const MAX_BENCH_FRAMES: usize = 4096;
/// Largest `bench --chunk-mib` (1 TiB).
pub const MAX_BENCH_CHUNK_MIB: usize = 1 << 20;

/// Arguments of `bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// `attention`: the fused-attention table (ours vs plain ops vs burn's built-in, forward
    /// and forward+backward, per preset's frequency-path shape) instead of a whole forward.
    /// `memory`: the planner's predicted peak against the wgpu allocator's measured peak.
    /// `train`: training steps (forward, loss, backward, AdamW) of `--seconds` segments.
    /// `gpu-check`: the real-GPU check kit's Markdown report (GPU vs CPU parity, gradients,
    /// planner vs measured memory, throughput, attention; `make gpu-check`).
    pub what: Option<String>,
    /// With `gpu-check`: small shapes even on a hardware GPU (a software adapter gets them
    /// anyway).
    #[arg(long)]
    pub small: bool,
    /// With `gpu-check`: only these parts of the report (comma-separated; default all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub part: Vec<super::gpu_check::Part>,
    /// With `gpu-check`: also write the report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,
    /// With `memory`: only the cases whose label contains this text (e.g. `train`).
    #[arg(long)]
    pub only: Option<String>,
    /// With `memory`: execute the kernels (one run per case) instead of dry runs (allocations
    /// without the work; the largest of `--repeat`, at least 5, runs).
    #[arg(long)]
    pub real: bool,
    /// With `attention`: frames per call (the batch of the frequency path).
    #[arg(long, default_value_t = 1)]
    pub frames: usize,
    /// Preset to measure (random weights: speed and memory do not depend on them).
    #[arg(long, default_value = "small")]
    pub preset: String,
    /// Seconds of stereo audio in the one forward pass (two mono items for mono models).
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Where to run.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Cap per path intermediate in MiB (sub-batching); 0 = no cap.
    #[arg(long, default_value_t = 256)]
    pub chunk_mib: usize,
    /// Timed repetitions (the best and the mean are printed).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
}

/// Runs the benchmark.
pub fn run(a: BenchArgs) -> Result<()> {
    for (flag, value, lo, hi) in [
        ("--repeat", a.repeat, 1, MAX_BENCH_REPEAT),
        ("--frames", a.frames, 1, MAX_BENCH_FRAMES),
        ("--chunk-mib", a.chunk_mib, 0, MAX_BENCH_CHUNK_MIB),
    ] {
        if !(lo..=hi).contains(&value) {
            anyhow::bail!("{flag} {value} is out of range: it must be between {lo} and {hi}");
        }
    }
    match a.what.as_deref() {
        None => {}
        Some("memory") => {
            return super::bench_memory::run(a.only.as_deref(), a.repeat.max(5), a.real);
        }
        Some("attention") => {
            let device = resolve(a.device)?;
            println!("attention benchmark on {}", device.description);
            let rows = crate::kernels::attention::bench::bench_attention(
                &device.device,
                &crate::kernels::attention::bench::preset_shapes(a.frames.max(1)),
                a.repeat.max(1),
            );
            crate::kernels::attention::bench::print_table(&rows);
            return Ok(());
        }
        Some("gpu-check") => {
            return super::gpu_check::run(a.small, &a.part, a.report.as_deref());
        }
        Some("train") => {}
        Some(other) => anyhow::bail!(
            "unknown benchmark `{other}`; use `locosep bench`, `locosep bench train`, \
             `locosep bench attention`, `locosep bench memory` or `locosep bench gpu-check`"
        ),
    }
    let cfg = preset(&a.preset)?.config;
    let min_seconds = cfg.n_fft as f64 / cfg.sample_rate as f64;
    if !(a.seconds.is_finite() && (min_seconds..=MAX_BENCH_SECONDS).contains(&a.seconds)) {
        anyhow::bail!(
            "--seconds {} is out of range: it must be between one STFT window ({min_seconds:.4} s) \
             and {MAX_BENCH_SECONDS} s",
            crate::model::config::fmt_number(a.seconds)
        );
    }
    if a.what.as_deref() == Some("train") {
        return super::bench_train::run(&cfg, a.seconds, a.repeat, a.device);
    }
    let device = resolve(a.device)?;
    let sd = init_state_dict(&cfg, 0);
    let mut sep = Separator::new(cfg.clone(), &sd, device)?;
    sep.set_max_chunk_bytes((a.chunk_mib > 0).then_some(a.chunk_mib << 20));
    drop(sd);
    let n = ((a.seconds * cfg.sample_rate as f64).round() as usize).max(cfg.n_fft);
    let items = network_items(&cfg, &synthetic_stereo(n, cfg.sample_rate));
    // Warm-up on a short clip (kernel compilation, allocator pools).
    let warm: Vec<Vec<Vec<f32>>> = items
        .iter()
        .map(|it| {
            it.iter()
                .map(|c| c[..n.min(cfg.n_fft * 4)].to_vec())
                .collect()
        })
        .collect();
    sep.forward_waveforms(&warm)?;
    let rss_before = process_rss().0.unwrap_or(0);
    reset_peak_rss();
    let sampler = MemorySampler::start(sep.device().device.clone(), Duration::from_millis(5), None);
    let mut times = vec![];
    for _ in 0..a.repeat.max(1) {
        let t0 = Instant::now();
        let out = sep.forward_waveforms(&items)?;
        times.push(t0.elapsed().as_secs_f64());
        drop(out);
    }
    let trace = sampler.stop();
    let (best, mean) = best_and_mean(&times);
    print_header(&cfg, &sep.device().description);
    println!(
        "audio             {:.2} s stereo ({} items × {} samples, one forward)",
        a.seconds,
        items.len(),
        n
    );
    println!(
        "forward time      {best:.3} s best, {mean:.3} s mean of {}",
        times.len()
    );
    println!(
        "real-time factor  {:.3} (time / audio duration; < 1 is faster than real time)",
        best / a.seconds
    );
    print_memory(&trace, rss_before, "runs");
    Ok(())
}
