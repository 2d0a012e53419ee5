//! Pieces shared by the integration tests (each test file includes this with `mod common;`;
//! a test file uses only some of them).
#![allow(dead_code)]

use std::process::{Command, Output};

use locosep::model::state_dict::TensorF32;

/// The `locosep` binary built for these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_locosep"))
}

/// Runs `cmd`, printing its stdout and stderr (shown when a test fails).
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("binary runs");
    eprintln!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Compares one tensor with its reference at the fixture tolerance
/// `max |a − b| ≤ 1e-4 · max(1, max |ref|)`: `Ok(max diff)`, or a line naming the tensor (so
/// that a test can name the first diverging tap instead of panicking at the first).
pub fn compare(name: &str, got: &[f32], want: &TensorF32) -> Result<f32, String> {
    if got.len() != want.data.len() {
        return Err(format!(
            "{name}: {} values, reference has {}",
            got.len(),
            want.data.len()
        ));
    }
    let max_ref = want.data.iter().fold(0f32, |m, v| m.max(v.abs()));
    let tol = 1e-4 * max_ref.max(1.0);
    let diff = got
        .iter()
        .zip(&want.data)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    if diff <= tol && diff.is_finite() {
        Ok(diff)
    } else {
        Err(format!("{name}: max|diff| = {diff:e} > tol {tol:e}"))
    }
}

/// A tensor's values on the host.
pub fn to_vec<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// A TF-Locoformer config small enough for a test — one layer, 8 channels, 2 heads, hidden
/// 16 — with the given STFT and `[audio]` section (TOML lines).
pub fn tiny_model_toml(n_fft: usize, hop: usize, audio: &str) -> String {
    format!(
        r#"
description = "tiny test model"

[model]
n_fft = {n_fft}
hop_length = {hop}
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
norm_type = "rmsgroupnorm"
tf_order = "ft"
pos_enc = "rope"
eps = 1.0e-5
dropout = 0.0

[audio]
{audio}
"#
    )
}

/// A training run for the tests: `steps` steps on `data` (also the validation set), segments of
/// `segment` seconds, checkpoints every step, no remixing, validation off, seeded.
pub fn train_config(
    data: &std::path::Path,
    out: &std::path::Path,
    steps: usize,
    segment: f64,
    seed: u64,
) -> locosep::train::TrainConfig {
    let mut cfg = locosep::train::TrainConfig {
        data: data.to_path_buf(),
        valid: Some(data.to_path_buf()),
        out: out.to_path_buf(),
        steps,
        segment_seconds: segment,
        lr: 3e-3,
        valid_every: 0,
        valid_seconds: 1.0,
        save_every: 1,
        seed,
        ..Default::default()
    };
    cfg.augment.remix = false;
    cfg
}

/// Steps 3 and 4 of a run resumed after step 2 equal those of an uninterrupted run (relative
/// 1e-5: the same arithmetic in the same order).
pub fn assert_resume_is_exact(
    straight: &locosep::train::TrainState,
    resumed: &locosep::train::TrainState,
) {
    for i in 2..4 {
        let (a, b) = (straight.steps[i].loss, resumed.steps[i].loss);
        assert!(
            (a - b).abs() <= 1e-5 * a.abs().max(1.0),
            "step {}: uninterrupted {a} vs resumed {b}",
            i + 1
        );
    }
}

/// The tiny mono model of the training tests: one layer, 8 channels, 256-point STFT (F = 129).
pub fn tiny_train_model() -> locosep::model::config::ModelConfig {
    let audio =
        "sample_rate = 44100\nsegment_seconds = 0.5\naudio_channels = 1\ninput_norm = \"none\"";
    locosep::model::config::ModelConfig::from_toml_str(&tiny_model_toml(256, 128, audio), "tiny")
        .expect("tiny config")
}

/// Two procedural songs of 3 s in `dir` (MUSDB18-HQ layout), seeded.
pub fn two_songs(dir: &std::path::Path) {
    let mut opts = locosep::synth::musdb::SynthOptions::new(dir);
    opts.tracks = 2;
    opts.seconds = 3.0;
    opts.seed = 31;
    opts.threads = 2;
    locosep::synth::musdb::synth_dataset(&opts, &|_, _| {}).expect("rendering songs");
}

/// A 1 s stereo 44.1 kHz WAV of two tones in `dir` (`song.wav`), for quick separations.
pub fn fixture_song(dir: &std::path::Path) -> std::path::PathBuf {
    use locosep::audio::{AudioBuffer, SampleFormat, write_audio};
    let tone = |f: f32| -> Vec<f32> {
        (0..44100)
            .map(|i| 0.2 * (std::f32::consts::TAU * f * i as f32 / 44100.0).sin())
            .collect()
    };
    let buf = AudioBuffer::new(44100, vec![tone(220.0), tone(330.0)]).expect("buffer");
    let path = dir.join("song.wav");
    write_audio(&path, &buf, SampleFormat::Wav16, false).expect("writing song.wav");
    path
}
