//! Training on the wgpu backend (lavapipe here): one step's gradients equal the CPU's for every
//! parameter at a shape past burn-wgpu's 2¹⁸-value reduction limit, and a short run on the GPU
//! lowers the loss and resumes exactly.

use locosep::cancel::CancelToken;
use std::path::Path;

use burn::tensor::Device;
use locosep::engine::device::{DeviceChoice, resolve};
use locosep::model::config::ModelConfig;
use locosep::model::loader::{from_state_dict, init_state_dict};
use locosep::train::dataset::Example;
use locosep::train::loss::LossConfig;
use locosep::train::step::{StepKit, compare_gradients, named_gradients};
use locosep::train::trainer::{TrainConfig, TrainEvent, TrainState, train};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;

fn tiny_config() -> ModelConfig {
    common::tiny_train_model()
}

/// `count` stereo examples of `n` samples: each stem a different mix of tones and noise.
fn examples(count: usize, n: usize, seed: u64) -> Vec<Example> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let mut stems: [[Vec<f32>; 2]; 4] = Default::default();
            for (s, stem) in stems.iter_mut().enumerate() {
                let f0 = 110.0 * (s + 1) as f32 * rng.random_range(0.9f32..1.1);
                for ch in stem.iter_mut() {
                    *ch = (0..n)
                        .map(|i| {
                            let t = i as f32 / 44100.0;
                            0.2 * (std::f32::consts::TAU * f0 * t).sin()
                                + 0.05 * (rng.random::<f32>() - 0.5)
                        })
                        .collect();
                }
            }
            Example { stems }
        })
        .collect()
}

/// Every parameter's gradient of one training step (forward, loss, backward; plain and
/// checkpointed) on wgpu equals flex's within 1e-4 relative, for a batch whose B·T·F =
/// 8·261·129 = 269 352 values exceeds the 2¹⁸ = 262 144 where burn-wgpu's `sum_dim` goes wrong
/// (the gradient of each norm gain and bias is a reduction over all of them).
#[test]
fn gradients_on_wgpu_equal_flex_past_the_reduction_limit() {
    let gpu = match resolve(DeviceChoice::Gpu) {
        Ok(d) => d.device,
        Err(e) => panic!("no wgpu adapter (lavapipe is installed by `make deps`): {e}"),
    };
    let cfg = tiny_config();
    let sd = init_state_dict(&cfg, 7);
    // T = 1 + n / hop = 261 frames; 4 stereo examples = 8 mono items.
    let n = 260 * 128;
    let ex = examples(4, n, 3);
    // The training loss without its multi-resolution spectral term: |STFT| at near-silent
    // bins and the L1 of nearly equal magnitudes are ill-conditioned (a rounding difference
    // flips a sign), so two correct backends differ there by more than 1e-4.
    let loss = LossConfig {
        spectral_weight: 0.0,
        ..Default::default()
    };
    let mut gradients = vec![];
    for checkpointing in [false, true] {
        let mut per_device = vec![];
        for device in [Device::flex().autodiff(), gpu.clone().autodiff()] {
            let model = from_state_dict(&cfg, &sd, &device).expect("model");
            let checkpoint = checkpointing.then(Default::default);
            let kit = StepKit::new(&cfg, loss.clone(), checkpoint, &device).unwrap();
            let (x, y, n) = kit.batch(&ex, &cfg, &device).unwrap();
            let [b, _, t, f] = x.dims();
            assert!(b * t * f > 1 << 18, "B·T·F = {}", b * t * f);
            let step = kit.gradients(&model, x, y, n);
            per_device.push(named_gradients(&model, &step.grads));
        }
        let (cpu, wgpu) = (&per_device[0], &per_device[1]);
        let cmp = compare_gradients(wgpu, cpu);
        assert_eq!(cmp.missing, 0, "tensors with a gradient on one device only");
        assert!(
            cmp.compared >= 20,
            "only {} tensors have gradients",
            cmp.compared
        );
        assert!(
            cmp.max_relative <= 1e-4,
            "checkpointing {checkpointing}: {} differs by {:.3e} relative; all above 1e-4: {:?}",
            cmp.worst,
            cmp.max_relative,
            cmp.above(1e-4)
        );
        gradients.push(per_device.remove(0));
    }
    // The checkpointed backward is the same gradient as the plain one.
    let cmp = compare_gradients(&gradients[1], &gradients[0]);
    assert!(cmp.max_relative <= 1e-4, "{cmp:?}");
}

fn songs(dir: &Path) {
    common::two_songs(dir)
}

fn run(cfg: &TrainConfig, resume: bool, log: &mut Vec<String>) -> TrainState {
    let mut events = |e: TrainEvent| {
        if let TrainEvent::Message(m) = e {
            log.push(m);
        }
    };
    train(&tiny_config(), cfg, resume, CancelToken::new(), &mut events).expect("training")
}

/// `train` with `device = gpu` runs on wgpu (it says so), the loss of the last steps is below
/// the first, validation runs, and 2 + 2 resumed steps equal 4 straight ones.
#[test]
fn gpu_training_lowers_the_loss_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    songs(&data);
    let mut cfg = common::train_config(&data, &tmp.path().join("a"), 10, 0.25, 5);
    cfg.device = DeviceChoice::Gpu;
    cfg.valid_every = 10;
    let mut log = vec![];
    let straight = run(&cfg, false, &mut log);
    assert!(
        log.iter().any(|m| m.starts_with("training on GPU")),
        "{log:?}"
    );
    let loss: Vec<f32> = straight.steps.iter().map(|s| s.loss).collect();
    let first = loss[..3].iter().sum::<f32>() / 3.0;
    let last = loss[loss.len() - 3..].iter().sum::<f32>() / 3.0;
    assert!(last < first, "loss did not fall on the GPU: {loss:?}");
    assert_eq!(straight.valid.len(), 1, "validation ran once");
    assert!(straight.valid[0].mean_sdr.is_finite());

    let mut four = common::train_config(&data, &tmp.path().join("b"), 4, 0.25, 5);
    four.device = DeviceChoice::Gpu;
    let straight = run(&four, false, &mut log);
    let mut two = common::train_config(&data, &tmp.path().join("c"), 2, 0.25, 5);
    two.device = DeviceChoice::Gpu;
    run(&two, false, &mut log);
    two.steps = 4;
    let resumed = run(&two, true, &mut log);
    common::assert_resume_is_exact(&straight, &resumed);
}
