//! `locosep bench train`: time and memory of training steps (forward, the trainer's loss,
//! backward, global-norm clipping, AdamW) for a preset on a device, with random weights and a
//! synthetic stereo segment.

use std::time::{Duration, Instant};

use anyhow::Result;
use burn::optim::AdamWConfig;

use super::bench::BenchArgs;
use crate::engine::device::resolve;
use crate::memory::sampler::{MemorySampler, process_rss, reset_peak_rss};
use crate::model::config::ModelConfig;
use crate::model::loader::{from_state_dict, init_state_dict};
use crate::train::dataset::Example;
use crate::train::step::StepKit;

/// One stereo example of `n` samples: four stems of different tones with a little noise.
fn example(n: usize, rate: u32) -> Example {
    let mut seed = 7u32;
    let mut noise = move || {
        seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
        (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    let mut stems: [[Vec<f32>; 2]; 4] = Default::default();
    for (s, stem) in stems.iter_mut().enumerate() {
        for (c, ch) in stem.iter_mut().enumerate() {
            let f = 110.0 * (s + 1) as f32 + 55.0 * c as f32;
            *ch = (0..n)
                .map(|i| {
                    0.2 * (std::f32::consts::TAU * f * i as f32 / rate as f32).sin()
                        + 0.02 * noise()
                })
                .collect();
        }
    }
    Example { stems }
}

/// Runs `bench train` for `cfg` with the arguments of `bench` (`--seconds` = segment length,
/// `--repeat` = timed steps after one warm-up step, `--device`).
pub fn run(a: &BenchArgs, cfg: &ModelConfig) -> Result<()> {
    let resolved = resolve(a.device)?;
    let device = resolved.device.clone().autodiff();
    let n = ((a.seconds * cfg.sample_rate as f64).round() as usize).max(cfg.n_fft);
    let mut model = from_state_dict(cfg, &init_state_dict(cfg, 0), &device)?;
    let kit = StepKit::new(cfg, Default::default(), None, &device)?;
    let mut optim = AdamWConfig::new().init();
    let ex = [example(n, cfg.sample_rate)];
    let mut step = |model: crate::model::TfLocoformer| -> Result<crate::model::TfLocoformer> {
        let (x, y, n) = kit.batch(&ex, cfg, &device)?;
        let mut micro = kit.gradients(&model, x, y, n);
        crate::train::clip::clip_global_norm(&model, &mut micro.grads, 5.0);
        let model = optim.step(1e-4, model, micro.grads);
        // The loss value on the host: the step is complete when it is read.
        let _ = micro.loss.into_data();
        Ok(model)
    };
    model = step(model)?; // warm-up: kernel compilation, allocator pools
    let rss_before = process_rss().0.unwrap_or(0);
    reset_peak_rss();
    let sampler = MemorySampler::start(resolved.device.clone(), Duration::from_millis(5), None);
    let mut times = vec![];
    for _ in 0..a.repeat.max(3) {
        let t0 = Instant::now();
        model = step(model)?;
        times.push(t0.elapsed().as_secs_f64());
    }
    let trace = sampler.stop();
    drop(model);
    let best = times.iter().cloned().fold(f64::INFINITY, f64::min);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "preset            {} ({} parameters)",
        cfg.name,
        cfg.param_count()
    );
    println!("device            {}", resolved.description);
    println!(
        "segment           {:.2} s stereo ({} samples; {} item(s) of {} channel(s))",
        a.seconds,
        n,
        2 / cfg.audio_channels.max(1),
        cfg.audio_channels
    );
    println!(
        "step time         {best:.3} s best, {mean:.3} s mean of {} (forward, loss, backward, clip, AdamW)",
        times.len()
    );
    println!(
        "throughput        {:.3} s of audio per second of training",
        a.seconds / best
    );
    super::bench::print_memory(&trace, rss_before, "steps");
    Ok(())
}
