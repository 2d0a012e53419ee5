//! `locosep bench train`: time and memory of training steps (forward, the trainer's loss,
//! backward, global-norm clipping, AdamW) for a preset on a device, with random weights and a
//! synthetic stereo segment.

use std::time::{Duration, Instant};

use anyhow::Result;
use burn::optim::AdamWConfig;

use super::bench_common::{best_and_mean, print_header, print_memory, training_example};
use crate::engine::device::{DeviceChoice, resolve};
use crate::memory::sampler::{MemorySampler, process_rss, reset_peak_rss};
use crate::model::config::ModelConfig;
use crate::model::loader::{from_state_dict, init_state_dict};
use crate::train::step::StepKit;

/// Runs `bench train` for `cfg`: segments of `seconds`, `repeat` timed steps (at least 3)
/// after one warm-up step, on `device`.
pub fn run(cfg: &ModelConfig, seconds: f64, repeat: usize, device: DeviceChoice) -> Result<()> {
    let resolved = resolve(device)?;
    let device = resolved.device.clone().autodiff();
    let n = ((seconds * cfg.sample_rate as f64).round() as usize).max(cfg.n_fft);
    let mut model = from_state_dict(cfg, &init_state_dict(cfg, 0), &device)?;
    let kit = StepKit::new(cfg, Default::default(), None, &device)?;
    let mut optim = AdamWConfig::new().init();
    let ex = [training_example(n, cfg.sample_rate)];
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
    for _ in 0..repeat.max(3) {
        let t0 = Instant::now();
        model = step(model)?;
        times.push(t0.elapsed().as_secs_f64());
    }
    let trace = sampler.stop();
    drop(model);
    let (best, mean) = best_and_mean(&times);
    print_header(&cfg, &resolved.description);
    println!(
        "segment           {:.2} s stereo ({} samples; {} item(s) of {} channel(s))",
        seconds,
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
        seconds / best
    );
    print_memory(&trace, rss_before, "steps");
    Ok(())
}
