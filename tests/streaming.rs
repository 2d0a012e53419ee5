//! Streamed separation (`locosep separate` on a file): the stems equal the in-memory path's
//! byte for byte, and peak memory does not grow with the song's length.
//!
//! The model is a tiny random-weight TF-Locoformer at 8 kHz (built here, described in
//! `tiny_model`): the point is the pipeline's memory and arithmetic, not separation quality,
//! and it keeps an hour of audio to about a minute of CPU time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use locosep::audio::{DecodeOptions, SampleFormat, decode_file};
use locosep::engine::device::{DeviceChoice, resolve};
use locosep::engine::export::ExportOptions;
use locosep::engine::separator::{CancelToken, SeparateParams, Separator};
use locosep::model::config::ModelConfig;
use locosep::model::loader::init_state_dict;
use locosep::model::state_dict::write_safetensors;

mod common;

/// The shared tiny model with n_fft 128 at 8 kHz, 2 s segments, std input normalisation.
fn tiny_toml() -> String {
    let audio =
        "sample_rate = 8000\nsegment_seconds = 2.0\naudio_channels = 1\ninput_norm = \"std\"";
    common::tiny_model_toml(128, 64, audio)
}

fn tiny_model(dir: &Path) -> (PathBuf, PathBuf) {
    let config = dir.join("tiny.toml");
    std::fs::write(&config, tiny_toml()).unwrap();
    let cfg = ModelConfig::from_file(&config).unwrap();
    let weights = dir.join("tiny.safetensors");
    write_safetensors(&weights, &init_state_dict(&cfg, 11), None, false).unwrap();
    (config, weights)
}

/// A WAV of `secs` seconds: a few drifting tones plus noise, streamed to disk.
fn write_song(path: &Path, secs: f64, rate: u32, channels: u16) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let n = (secs * rate as f64).round() as u64;
    let mut seed = 0x2545_f491_u32;
    for i in 0..n {
        let t = i as f32 / rate as f32;
        for c in 0..channels {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (seed >> 9) as f32 / (1u32 << 23) as f32 - 0.5;
            let f = 220.0 * (1.0 + c as f32) + 30.0 * (0.1 * t).sin();
            let x = 0.3 * (2.0 * std::f32::consts::PI * f * t).sin()
                + 0.2 * (2.0 * std::f32::consts::PI * 3.0 * t).sin().signum() * 0.5
                + 0.05 * noise;
            w.write_sample((x * 32767.0) as i16).unwrap();
        }
    }
    w.finalize().unwrap();
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("binary runs");
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- stderr\n{err}");
    assert!(out.status.success(), "locosep failed: {err}");
    out
}

fn separate_cmd(input: &Path, model: &(PathBuf, PathBuf), out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_locosep"));
    c.arg("separate")
        .arg(input)
        .args(["--device", "cpu", "--config"])
        .arg(&model.0)
        .arg("--checkpoint")
        .arg(&model.1)
        .arg("--out")
        .arg(out)
        .args(extra);
    c
}

/// The CLI streams the file block by block (decoder packets); the library call separates the
/// decoded song in memory (1-second blocks) and writes it whole. Same bytes, for WAV and FLAC,
/// with resampling both ways (44.1 kHz ↔ 8 kHz), std normalisation and the instrumental mix.
#[test]
fn streamed_file_equals_in_memory_separation() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let song = dir.path().join("song.wav");
    write_song(&song, 9.37, 44_100, 2);
    let cfg = ModelConfig::from_file(&model.0).unwrap();
    let sd = locosep::model::state_dict::load_state_dict(&model.1).unwrap();
    let sep = Separator::new(cfg, &sd, resolve(DeviceChoice::Cpu).unwrap()).unwrap();
    let audio = decode_file(&song, &DecodeOptions::default()).unwrap();
    let stems = sep
        .separate(
            &audio,
            &SeparateParams {
                batch: 2,
                ..Default::default()
            },
            &CancelToken::new(),
            &mut |_| {},
        )
        .unwrap();
    for (format, ext) in [(SampleFormat::Wav16, "wav"), (SampleFormat::Flac, "flac")] {
        let names = "vocals,drums,bass,other,instrumental";
        let streamed = dir.path().join(format!("streamed-{ext}"));
        run(&mut separate_cmd(
            &song,
            &model,
            &streamed,
            &["--batch", "2", "--stems", names, "--format", format.name()],
        ));
        let in_memory = ExportOptions {
            out_dir: dir.path().join(format!("memory-{ext}")),
            format,
            stems: Some(names.split(',').map(String::from).collect()),
            ..Default::default()
        };
        let written = in_memory.write("song", &stems).unwrap();
        assert_eq!(written.len(), 5);
        for path in written {
            let name = path.file_name().unwrap();
            let a = std::fs::read(streamed.join("song").join(name)).unwrap();
            let b = std::fs::read(&path).unwrap();
            assert!(
                a == b,
                "{} differs between streamed and in-memory",
                name.display()
            );
        }
    }
    // The stems are not silence, have the input's length, and sum to about the mixture
    // (a random model's masks do not, so only check the length and that they are finite).
    let v = decode_file(
        &dir.path().join("streamed-flac/song/vocals.flac"),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(
        (v.sample_rate, v.num_channels(), v.len()),
        (44_100, 2, audio.len())
    );
    assert!(v.channels[0].iter().all(|x| x.is_finite()));
    assert!(v.channels[0].iter().any(|&x| x.abs() > 1e-4));
}

fn peak_mib(out: &Output) -> f64 {
    let err = String::from_utf8_lossy(&out.stderr);
    let at = err
        .find("peak memory ")
        .expect("summary line with peak memory")
        + 12;
    err[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Peak resident memory of `locosep separate` for a 60-minute file is at most 1.2× that for a
/// 5-minute file (LOCOSEP_LONG_MINUTES changes 60). The stems of the long file are complete.
#[test]
fn hour_long_input_streams_in_bounded_memory() {
    let long_min: f64 = std::env::var("LOCOSEP_LONG_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60.0);
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut peaks = Vec::new();
    for minutes in [5.0, long_min] {
        let song = dir.path().join(format!("mix-{minutes}min.wav"));
        write_song(&song, minutes * 60.0, 22_050, 1);
        let out_dir = dir.path().join(format!("out-{minutes}"));
        let t = std::time::Instant::now();
        let out = run(&mut separate_cmd(
            &song,
            &model,
            &out_dir,
            &["--stems", "vocals,drums"],
        ));
        let peak = peak_mib(&out);
        let _ = writeln!(
            std::io::stderr(),
            "{minutes} min: peak memory {peak:.1} MiB, {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let stem = out_dir.join(format!("mix-{minutes}min/drums.wav"));
        let r = hound::WavReader::open(&stem).unwrap();
        assert_eq!(
            r.duration() as u64,
            (minutes * 60.0 * 22_050.0).round() as u64,
            "the stem has the input's length"
        );
        drop(r);
        // Free the disk early: an hour of stems is ~300 MB.
        std::fs::remove_dir_all(&out_dir).unwrap();
        std::fs::remove_file(&song).unwrap();
        peaks.push(peak);
    }
    let ratio = peaks[1] / peaks[0];
    eprintln!(
        "peak memory: 5 min {:.1} MiB, {long_min} min {:.1} MiB, ratio {ratio:.3}",
        peaks[0], peaks[1]
    );
    assert!(ratio <= 1.2, "memory grows with the input: {peaks:?}");
}
