//! Memory creep on wgpu: 50 training steps keep the allocator flat.
//!
//! Its own test binary: the allocator's counters are per device and per process, so a test
//! running beside it in the same process (the other wgpu training tests) would show up in
//! its readings.

use burn::tensor::Device;
use locosep::engine::device::{DeviceChoice, resolve};
use locosep::model::config::ModelConfig;
use locosep::model::loader::{from_state_dict, init_state_dict};
use locosep::train::dataset::Example;
use locosep::train::loss::LossConfig;
use locosep::train::step::StepKit;

mod common;

/// One stereo example of `n` samples: four tones.
fn example(n: usize) -> Example {
    let mut stems: [[Vec<f32>; 2]; 4] = Default::default();
    for (s, stem) in stems.iter_mut().enumerate() {
        for (c, ch) in stem.iter_mut().enumerate() {
            let f = 110.0 * (s + 1) as f32 + 40.0 * c as f32;
            *ch = (0..n)
                .map(|i| 0.2 * (std::f32::consts::TAU * f * i as f32 / 44100.0).sin())
                .collect();
        }
    }
    Example { stems }
}

/// 50 training steps (forward, loss, backward, AdamW) on wgpu: the allocator's in-use and
/// reserved bytes, read after each step, do not grow after the first steps (burn has open
/// reports of growth on wgpu; none here).
#[test]
fn gpu_training_memory_stays_flat_over_50_steps() {
    use burn::optim::AdamWConfig;
    let gpu: Device = resolve(DeviceChoice::Gpu).expect("wgpu adapter").device;
    let audio =
        "sample_rate = 44100\nsegment_seconds = 0.5\naudio_channels = 1\ninput_norm = \"none\"";
    let cfg = ModelConfig::from_toml_str(&common::tiny_model_toml(64, 32, audio), "tiny64")
        .expect("config");
    let device = gpu.clone().autodiff();
    let mut model = from_state_dict(&cfg, &init_state_dict(&cfg, 3), &device).unwrap();
    let kit = StepKit::new(&cfg, LossConfig::default(), None, &device).unwrap();
    let mut optim = AdamWConfig::new().init();
    let ex = [example(4410)];
    let (mut in_use, mut reserved) = (vec![], vec![]);
    for _ in 0..50 {
        let (x, y, n) = kit.batch(&ex, &cfg, &device).unwrap();
        let step = kit.gradients(&model, x, y, n);
        model = optim.step(1e-3, model, step.grads);
        let _ = step.loss.into_data();
        gpu.sync().ok();
        let s = locosep::memory::sampler::sample(&gpu, 0.0);
        in_use.push(s.in_use.expect("wgpu reports allocator usage"));
        reserved.push(s.reserved.expect("wgpu reports allocator usage"));
    }
    let max = |v: &[u64]| v.iter().copied().max().unwrap_or(0);
    let (early_in, late_in) = (max(&in_use[5..10]), max(&in_use[40..]));
    let (early_res, late_res) = (max(&reserved[5..10]), max(&reserved[40..]));
    eprintln!(
        "allocator after steps 5–10 / 40–50: in use {early_in} / {late_in} B, reserved \
         {early_res} / {late_res} B"
    );
    let slack = |b: u64| b + b / 20 + (1 << 20);
    assert!(
        late_in <= slack(early_in),
        "in-use grew from {early_in} to {late_in} bytes: {in_use:?}"
    );
    assert!(
        late_res <= slack(early_res),
        "reserved grew from {early_res} to {late_res} bytes: {reserved:?}"
    );
}
