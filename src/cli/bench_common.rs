//! What the benchmarks share: the synthetic inputs they time and the memory lines they print.
//! `bench`, `bench train` and `bench gpu-check` import it; it imports none of them.

use crate::memory::sampler::MemoryTrace;
use crate::model::config::ModelConfig;
use crate::train::dataset::Example;

/// `b` bytes in MiB with one decimal.
pub(super) fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

/// Two channels of `n` samples of a synthetic signal (sines + a little noise, seeded), as the
/// reference benchmark.
pub(super) fn synthetic_stereo(n: usize, rate: u32) -> Vec<Vec<f32>> {
    let mut seed = 12345u32;
    let mut noise = move || {
        seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
        (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    (0..2)
        .map(|c| {
            (0..n)
                .map(|i| {
                    let t = i as f32 / rate as f32;
                    0.3 * (2.0 * std::f32::consts::PI * (220.0 + 110.0 * c as f32) * t).sin()
                        + 0.05 * noise()
                })
                .collect()
        })
        .collect()
}

/// A stereo song as the network's batch items: one stereo item for a stereo model, two mono
/// items for a mono one.
///
/// # Shapes
/// - chans: `[2][N]`
/// - output: `[B][ac][N]` with B = 2 / ac
pub(super) fn network_items(cfg: &ModelConfig, chans: &[Vec<f32>]) -> Vec<Vec<Vec<f32>>> {
    if cfg.audio_channels == 1 {
        chans.iter().map(|c| vec![c.clone()]).collect()
    } else {
        vec![chans.to_vec()]
    }
}

/// One stereo training example of `n` samples: four stems of different tones with a little
/// noise (seeded).
pub(super) fn training_example(n: usize, rate: u32) -> Example {
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

/// The memory lines of a benchmark: the process's RSS high-water mark during the timed `what`
/// (and the RSS before them), and the allocator's in-use and reserved peaks where the device
/// has an allocator.
pub(super) fn print_memory(trace: &MemoryTrace, rss_before: u64, what: &str) {
    if let Some(p) = trace.peak_rss {
        println!(
            "peak RSS          {} (process high-water mark during the timed {what}; {} before)",
            mib(p),
            mib(rss_before)
        );
    }
    if let Some(p) = trace.peak_in_use {
        println!(
            "device in use     {} peak (allocator, sampled every 5 ms)",
            mib(p)
        );
    }
    if let Some(p) = trace.peak_reserved {
        println!("device reserved   {} peak", mib(p));
    }
}

/// The best and the mean of timed repetitions (seconds; at least one).
pub(super) fn best_and_mean(times: &[f64]) -> (f64, f64) {
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    (best, times.iter().sum::<f64>() / times.len().max(1) as f64)
}

/// The two lines every bench report opens with: the preset and the device.
pub(super) fn print_header(cfg: &ModelConfig, device: &str) {
    println!(
        "preset            {} ({} parameters)",
        cfg.name,
        cfg.param_count()
    );
    println!("device            {device}");
}
