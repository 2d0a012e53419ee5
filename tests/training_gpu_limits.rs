//! Device limits in training on wgpu (lavapipe takes no buffer over 128 MiB): a segment whose
//! step would need a larger buffer trains after the planner splits it.
//!
//! Its own test binary: its steps are the largest of the wgpu training tests, and it reads the
//! device's limits, which the other wgpu tests running beside it in one process would share.

use locosep::cancel::CancelToken;

use locosep::engine::device::{DeviceChoice, resolve};
use locosep::memory::planner::{
    Calibration, Mode, PlanRequest, fit_step, format_bytes, plan, with_items,
};
use locosep::model::config::ModelConfig;
use locosep::train::trainer::{TrainEvent, train};

mod common;

/// The tiny test model with a wide first FFN (hidden 64): the buffer that outgrows the device
/// is that FFN's hidden, reached with few frames (fused attention over long sequences is what
/// makes lavapipe slow).
fn wide_ffn_model() -> ModelConfig {
    let audio =
        "sample_rate = 44100\nsegment_seconds = 0.5\naudio_channels = 1\ninput_norm = \"none\"";
    let toml = common::tiny_model_toml(256, 128, audio)
        .replace("ffn_hidden_dim = [16, 16]", "ffn_hidden_dim = [64, 16]");
    ModelConfig::from_toml_str(&toml, "tiny-wide-ffn").expect("config")
}

/// 8 stereo segments of 0.39 s (16 mono items of 135 frames): the unsplit step's
/// frequency-path FFN hidden `[16·135, 128, 132]` is 139 MiB, above lavapipe's 128 MiB. The
/// planner says so; `train` sub-batches the paths, announces it, and trains: finite losses, a
/// checkpoint, a validation.
#[test]
fn a_segment_above_the_device_limit_trains_after_the_planner_splits_it() {
    let gpu = resolve(DeviceChoice::Gpu).expect("a wgpu adapter (lavapipe: `make deps`)");
    let limit = locosep::kernels::device::max_allocation_bytes(&gpu.device)
        .expect("wgpu reports its largest buffer");
    let model = wide_ffn_model();
    let (segment, batch) = (0.389, 8);
    let samples = (segment * 44_100.0f64).round() as usize;
    let pm = locosep::engine::plan::plan_model(&model);
    let step = PlanRequest {
        segment_samples: samples,
        batch,
        song_channels: 2,
        mode: Mode::Training,
        calibration: Calibration::WGPU,
        ..PlanRequest::new(&pm)
    };
    let unsplit = plan(&pm, &with_items(&pm, &step, 16));
    eprintln!(
        "device limit {}; unsplit largest {} ({})",
        format_bytes(limit),
        unsplit.largest_allocation,
        format_bytes(unsplit.largest_allocation_bytes)
    );
    assert!(
        unsplit.largest_allocation_bytes > limit,
        "the test needs a step above the device's largest buffer ({} ≤ {})",
        format_bytes(unsplit.largest_allocation_bytes),
        format_bytes(limit)
    );
    let layout = fit_step(&pm, &step, Some(limit), None).expect("the planner splits it");
    assert!(layout.is_split());
    assert!(layout.plan.largest_allocation_bytes <= limit);

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::two_songs(&data);
    let mut cfg = common::train_config(&data, &tmp.path().join("run"), 2, segment, 3);
    cfg.device = DeviceChoice::Gpu;
    cfg.batch = batch;
    cfg.valid_seconds = 0.5;
    let mut log = vec![];
    let t0 = std::time::Instant::now();
    let state = train(&model, &cfg, false, CancelToken::new(), &mut |e| {
        if let TrainEvent::Message(m) = e {
            eprintln!("{m}");
            log.push(m);
        }
    })
    .expect("training after the split");
    eprintln!(
        "{} steps in {:.1} s",
        state.step,
        t0.elapsed().as_secs_f64()
    );
    assert!(
        log.iter()
            .any(|m| m.contains("exceeds the device's largest buffer")),
        "{log:?}"
    );
    assert!(
        log.iter().any(|m| m.contains("paths run in sub-batches")),
        "{log:?}"
    );
    assert_eq!(state.step, 2);
    assert!(
        state.steps.iter().all(|s| s.loss.is_finite()),
        "{:?}",
        state.steps
    );
    assert_eq!(state.valid.len(), 1);
    assert!(tmp.path().join("run/last/model.safetensors").is_file());
}
