//! Fine-tuning a band-split model (mixit-mss's BS-Locoformer layout, tiny) on generated stems:
//! the loss falls, a resumed run continues exactly, and the saved checkpoint loads back as the
//! same architecture.

use locosep::cancel::CancelToken;
use std::path::Path;

use locosep::model::config::{Arch, BsFlavour, ModelConfig};
use locosep::model::loader::{from_state_dict, to_state_dict};
use locosep::model::state_dict::load_state_dict;
use locosep::synth::musdb::{SynthOptions, synth_dataset};
use locosep::train::trainer::{TrainConfig, TrainEvent, TrainState, train};

mod common;

/// mixit-mss's layout at test size: stereo, 62 bands of a 2048-point STFT, 8 channels.
fn tiny_bs() -> ModelConfig {
    let toml = r#"
description = "tiny band-split test model"
[model]
architecture = "bslocoformer-mixit"
n_fft = 2048
hop_length = 512
n_sources = 4
n_layers = 1
emb_dim = 8
n_heads = 2
attention_dim = 8
ffn_type = ["swiglu_conv1d", "swiglu_conv1d"]
ffn_hidden_dim = [16, 16]
num_groups = 2
conv1d_kernel = 4
conv1d_shift = 1
css_segment_size = 0.6
css_shift_size = 0.4
[audio]
sample_rate = 44100
audio_channels = 2
"#;
    ModelConfig::from_toml_str(toml, "tiny-bs").expect("tiny BS config")
}

fn run(cfg: &TrainConfig, resume: bool) -> TrainState {
    train(
        &tiny_bs(),
        cfg,
        resume,
        CancelToken::new(),
        &mut |_e: TrainEvent| {},
    )
    .expect("training")
}

fn train_config(data: &Path, out: &Path, steps: usize) -> TrainConfig {
    common::train_config(data, out, steps, 0.3, 9)
}

#[test]
fn band_split_model_trains_resumes_exactly_and_reloads() {
    let cfg = tiny_bs();
    assert!(matches!(&cfg.arch, Arch::BandSplit(bs) if bs.flavour == BsFlavour::Mixit));
    assert_eq!(cfg.sources, vec!["bass", "drums", "vocals", "other"]);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut opts = SynthOptions::new(&data);
    opts.tracks = 2;
    opts.seconds = 3.0;
    opts.seed = 77;
    opts.threads = 2;
    synth_dataset(&opts, &|_, _| {}).expect("rendering songs");

    let long = run(&train_config(&data, &tmp.path().join("long"), 16), false);
    let losses: Vec<f32> = long.steps.iter().map(|s| s.loss).collect();
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let head: f32 = losses[..4].iter().sum::<f32>() / 4.0;
    let tail: f32 = losses[12..].iter().sum::<f32>() / 4.0;
    assert!(
        tail < head,
        "loss did not fall: {head} → {tail} ({losses:?})"
    );

    // 2 steps, stop, resume to 4: steps 3 and 4 equal those of an uninterrupted 4-step run.
    let straight = run(&train_config(&data, &tmp.path().join("straight"), 4), false);
    let split = tmp.path().join("split");
    run(&train_config(&data, &split, 2), false);
    let resumed = run(&train_config(&data, &split, 4), true);
    common::assert_resume_is_exact(&straight, &resumed);

    // The checkpoint is a band-split model again, bit for bit.
    let last = split.join("last");
    let saved = load_state_dict(last.join("model.safetensors")).unwrap();
    let back = ModelConfig::from_file(&last.join("config.json")).unwrap();
    assert_eq!(back.arch, cfg.arch);
    assert_eq!(back.sources, cfg.sources);
    assert_eq!(back.pipeline, cfg.pipeline);
    assert!(saved.keys().any(|k| k.starts_with("band_split_module.")));
    let model = from_state_dict(&back, &saved, &burn::tensor::Device::flex()).unwrap();
    let again = to_state_dict(&back, &model);
    assert_eq!(saved.len(), again.len());
    for (key, t) in &saved {
        assert!(
            t.data
                .iter()
                .zip(&again[key].data)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{key} changed in the round trip"
        );
    }
}
