//! Training end to end on CPU with a tiny model: the loss falls, a resumed run continues exactly
//! where an uninterrupted one goes, checkpoints round-trip through safetensors; and datasets
//! read MUSDB18 `.stem.mp4` files (five AAC streams, generated here with ffmpeg) aligned with
//! their mixture.
//!
//! Requires `ffmpeg` (installed by `make deps`); the `.stem.mp4` test fails without it.

use locosep::cancel::CancelToken;
use std::path::{Path, PathBuf};
use std::process::Command;

use locosep::audio::{AudioBuffer, SampleFormat, write_audio};
use locosep::model::config::ModelConfig;
use locosep::model::loader::{from_state_dict, to_state_dict};
use locosep::model::state_dict::load_state_dict;
use locosep::train::dataset::scan;
use locosep::train::trainer::{TrainConfig, TrainEvent, TrainState, train};

mod common;

fn tiny_config() -> ModelConfig {
    common::tiny_train_model()
}

fn songs(dir: &Path) {
    common::two_songs(dir)
}

fn run(cfg: &TrainConfig, resume: bool) -> TrainState {
    let mut log = |_e: TrainEvent| {};
    train(&tiny_config(), cfg, resume, CancelToken::new(), &mut log).expect("training")
}

fn train_config(data: &Path, out: &Path, steps: usize) -> TrainConfig {
    common::train_config(data, out, steps, 0.25, 5)
}

#[test]
fn loss_falls_resume_is_exact_and_checkpoints_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    songs(&data);

    // Loss falls over 30 steps: mean of the last 5 below the mean of the first 5.
    let long = run(&train_config(&data, &tmp.path().join("long"), 30), false);
    let losses: Vec<f32> = long.steps.iter().map(|s| s.loss).collect();
    assert_eq!(losses.len(), 30);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let head: f32 = losses[..5].iter().sum::<f32>() / 5.0;
    let tail: f32 = losses[25..].iter().sum::<f32>() / 5.0;
    assert!(
        tail < head - 1.0,
        "loss did not fall: {head} → {tail} ({losses:?})"
    );

    // Resume: 2 steps, stop, resume to 4 — steps 3 and 4 equal those of an uninterrupted run.
    let straight = run(&train_config(&data, &tmp.path().join("straight"), 4), false);
    let split_out = tmp.path().join("split");
    run(&train_config(&data, &split_out, 2), false);
    let resumed = run(&train_config(&data, &split_out, 4), true);
    assert_eq!(resumed.steps.len(), 4, "resumed state keeps the step log");
    common::assert_resume_is_exact(&straight, &resumed);

    // Activation checkpointing per block (block inputs in host memory) trains the same: its
    // gradients equal plain autograd's up to summation order.
    let mut ckpt = train_config(&data, &tmp.path().join("ckpt"), 4);
    ckpt.checkpointing = true;
    ckpt.offload = true;
    let ckpt = run(&ckpt, false);
    for (a, b) in straight.steps.iter().zip(&ckpt.steps) {
        assert!(
            (a.loss - b.loss).abs() <= 1e-4 * a.loss.abs().max(1.0),
            "step {}: plain {} vs checkpointed {}",
            a.step,
            a.loss,
            b.loss
        );
    }

    // Checkpoint round trip: the saved safetensors loads into a model whose state dict is the
    // same, bit for bit, and the saved config describes the same model.
    let last = split_out.join("last");
    let saved = load_state_dict(last.join("model.safetensors")).unwrap();
    let cfg = ModelConfig::from_file(&last.join("config.json")).unwrap();
    assert_eq!(cfg.emb_dim, 8);
    assert_eq!(cfg.n_layers, 1);
    let model = from_state_dict(&cfg, &saved, &burn::tensor::Device::flex()).unwrap();
    let again = to_state_dict(&cfg, &model);
    assert_eq!(saved.len(), again.len());
    for (key, t) in &saved {
        let u = &again[key];
        assert_eq!(t.shape, u.shape, "{key}");
        assert!(
            t.data
                .iter()
                .zip(&u.data)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{key} changed in the round trip"
        );
    }
}

fn ffmpeg() -> PathBuf {
    for cand in ["ffmpeg", "/usr/bin/ffmpeg", "/usr/local/bin/ffmpeg"] {
        if Command::new(cand)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return PathBuf::from(cand);
        }
    }
    panic!("ffmpeg not found: `make deps` installs it (this test encodes a .stem.mp4 with it)");
}

/// A stem with timing: tone bursts of `freq` Hz starting every `period` s.
fn bursts(freq: f64, period: f64, phase: f64, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let t = i as f64 / 44_100.0;
            let local = (t + phase) % period;
            (0.3 * (-local * 12.0).exp() * (2.0 * std::f64::consts::PI * freq * t).sin()) as f32
        })
        .collect()
}

fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-12)
}

#[test]
fn stem_mp4_files_read_as_aligned_tracks() {
    let tmp = tempfile::tempdir().unwrap();
    let len = 88_200;
    // Stream order of a .stem.mp4: mixture, drums, bass, other, vocals.
    let drums = bursts(180.0, 0.25, 0.0, len);
    let bass = bursts(90.0, 0.5, 0.1, len);
    let other = bursts(700.0, 0.4, 0.05, len);
    let vocals = bursts(1300.0, 0.3, 0.2, len);
    let mix: Vec<f32> = (0..len)
        .map(|i| drums[i] + bass[i] + other[i] + vocals[i])
        .collect();
    let streams = [&mix, &drums, &bass, &other, &vocals];
    let mut args: Vec<String> = vec![];
    for (i, s) in streams.iter().enumerate() {
        let p = tmp.path().join(format!("s{i}.wav"));
        let buf = AudioBuffer::new(44_100, vec![s.to_vec(), s.to_vec()]).unwrap();
        write_audio(&p, &buf, SampleFormat::F32, false).unwrap();
        args.extend(["-i".into(), p.display().to_string()]);
    }
    let data = tmp.path().join("musdb");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..5 {
        args.extend(["-map".into(), format!("{i}:a")]);
    }
    let out = data.join("Some Artist - Song.stem.mp4");
    args.extend(
        ["-c:a", "aac", "-b:a", "256k"]
            .iter()
            .map(|s| s.to_string()),
    );
    args.push(out.display().to_string());
    let status = Command::new(ffmpeg())
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(&args)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg could not write the .stem.mp4");

    let tracks = scan(&data).unwrap();
    assert_eq!(tracks.len(), 1);
    let t = &tracks[0];
    assert_eq!(t.name, "Some Artist - Song");
    assert!(
        (t.len as i64 - len as i64).abs() <= 64,
        "length {} vs {len} (encoder delay/padding trimmed)",
        t.len
    );
    let ex = t.read_stems(0, len, 44_100).unwrap();
    // STEMS order: vocals, drums, bass, other.
    for (stem, want) in [(0, &vocals), (1, &drums), (2, &bass), (3, &other)] {
        let got = &ex.stems[stem][0];
        let c0 = correlation(got, want);
        assert!(c0 > 0.95, "stem {stem}: correlation {c0} at lag 0");
        // One AAC frame of misalignment would show: the lag-0 correlation must be the best.
        let shifted = correlation(&got[1024..], &want[..len - 1024]);
        assert!(
            c0 > shifted + 0.2,
            "stem {stem}: lag 0 {c0} vs lag 1024 {shifted}"
        );
    }
    let m = t.read_mixture(0, len, 44_100).unwrap();
    assert!(correlation(&m[1], &mix) > 0.95);
}
