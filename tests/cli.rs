//! CLI end-to-end tests: the real binary on small generated inputs.

use std::path::{Path, PathBuf};

use locosep::model::state_dict::read_safetensors;

mod common;
use common::{bin, run};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tflocoformer")
}

fn write_wav16(path: &Path, channels: &[Vec<f32>], rate: u32) {
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..channels[0].len() {
        for ch in channels {
            w.write_sample((ch[i].clamp(-1.0, 1.0) * 32767.0).round() as i16)
                .unwrap();
        }
    }
    w.finalize().unwrap();
}

fn read_wav(path: &Path) -> (hound::WavSpec, Vec<f32>) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let v = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().map(|s| s.unwrap()).collect(),
        hound::SampleFormat::Int => r
            .samples::<i32>()
            .map(|s| s.unwrap() as f32 / (1 << (spec.bits_per_sample - 1)) as f32)
            .collect(),
    };
    (spec, v)
}

fn tone(n: usize, rate: f32, f: f32) -> Vec<f32> {
    (0..n)
        .map(|i| 0.4 * (2.0 * std::f32::consts::PI * f * i as f32 / rate).sin())
        .collect()
}

#[test]
fn presets_lists_every_preset_with_parameter_counts() {
    let out = run(bin().arg("presets"));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for (name, params) in [
        ("small", "1.39 M"),
        ("ultra-safe", "7.40 M"),
        ("balanced", "59.06 M"),
        ("demo", ""),
    ] {
        assert!(text.contains(name), "{name} missing");
        assert!(text.contains(params), "{params} missing");
    }
}

/// `plan --budget --max-buffer`: settings with a tensor above the device's largest buffer are
/// passed over, and the chosen plan's largest allocation is under it.
#[test]
fn plan_budget_keeps_every_buffer_under_max_buffer() {
    let largest = |extra: &[&str]| {
        let out = run(bin()
            .args([
                "plan",
                "--preset",
                "small",
                "--seconds",
                "2",
                "--budget",
                "2GiB",
            ])
            .args(extra));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let line = text
            .lines()
            .find(|l| l.starts_with("predicted peak"))
            .unwrap_or_else(|| panic!("no predicted-peak line in {text}"))
            .to_string();
        // "… largest allocation 78.61 MiB: …"
        let after = line
            .split("largest allocation ")
            .nth(1)
            .expect("largest allocation");
        let mut words = after.split_whitespace();
        let value: f64 = words.next().and_then(|v| v.parse().ok()).expect("a number");
        let unit = words.next().expect("a unit").trim_end_matches(':');
        let mib = match unit {
            "GiB" => value * 1024.0,
            "MiB" => value,
            "KiB" => value / 1024.0,
            other => panic!("unit {other}"),
        };
        (mib, text)
    };
    let (free, _) = largest(&[]);
    let (capped, text) = largest(&["--max-buffer", "128MiB"]);
    assert!(
        free > 128.0,
        "without a limit the plan has a buffer above 128 MiB ({free} MiB)"
    );
    assert!(capped <= 128.0, "{capped} MiB > 128 MiB:\n{text}");
    assert!(text.contains("passed over"), "{text}");
    let out = run(bin().args([
        "plan",
        "--preset",
        "small",
        "--budget",
        "2GiB",
        "--max-buffer",
        "1KiB",
    ]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--max-buffer 1KiB"), "{err}");
}

#[test]
fn model_check_reproduces_both_fixture_folders() {
    let tmp = tempfile::tempdir().unwrap();
    for (folder, ckpt) in [
        ("tiny-separator", "espnet_checkpoint.pth"),
        ("mss-tiny", "checkpoint.pth"),
        ("mss-tiny", "weights.safetensors"),
    ] {
        let dir = fixtures().join(folder);
        let out_file = tmp.path().join(format!("{folder}-{ckpt}.safetensors"));
        let out = run(bin()
            .args(["model-check", "--device", "cpu", "--config"])
            .arg(dir.join("config.json"))
            .arg("--checkpoint")
            .arg(dir.join(ckpt))
            .arg("--input")
            .arg(dir.join("tensors.safetensors"))
            .arg("--output")
            .arg(&out_file)
            .arg("--reference")
            .arg(dir.join("tensors.safetensors")));
        assert!(out.status.success(), "{folder}/{ckpt}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("FAIL"));
        let written = read_safetensors(&out_file).unwrap();
        let expect = if folder == "mss-tiny" {
            "vocals"
        } else {
            "output.real"
        };
        assert!(
            written.contains_key(expect),
            "{folder}: {:?}",
            written.keys()
        );
    }
}

#[test]
fn no_split_on_a_16_bit_wav_matches_the_reference_stems() {
    // The fixture mixture, item 0, written as mono 16-bit WAV: the reference's outputs for the
    // unquantised mixture are the target; the quantisation step (≤ 1.5e-5) is far below the
    // tolerance after the network (checked here, not assumed).
    let dir = fixtures().join("mss-tiny");
    let t = read_safetensors(&dir.join("tensors.safetensors")).unwrap();
    let n = t["mixture"].shape[1];
    let mix = t["mixture"].data[..n].to_vec();
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("fixture_mix.wav");
    write_wav16(&wav, &[mix], 44_100);
    let out_dir = tmp.path().join("out");
    let out = run(bin()
        .arg("separate")
        .arg(&wav)
        .args([
            "--device",
            "cpu",
            "--format",
            "f32",
            "--no-split",
            "--config",
        ])
        .arg(dir.join("config.json"))
        .arg("--checkpoint")
        .arg(dir.join("checkpoint.pth"))
        .arg("--out")
        .arg(&out_dir));
    assert!(out.status.success());
    for stem in ["vocals", "drums", "bass", "other"] {
        let (spec, got) = read_wav(&out_dir.join(format!("fixture_mix/{stem}.wav")));
        assert_eq!((spec.channels, spec.sample_rate), (1, 44_100));
        let want = &t[stem].data[..n];
        assert_eq!(got.len(), n, "{stem}: output length equals input length");
        let max_ref = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = got
            .iter()
            .zip(want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            diff <= 1e-4 * max_ref.max(1.0),
            "{stem}: max|diff| {diff:e}"
        );
    }
}

#[test]
fn separate_writes_stems_refuses_overwrite_and_validates() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("song.wav");
    let n = 48_000 * 2;
    write_wav16(
        &wav,
        &[tone(n, 48_000.0, 440.0), tone(n, 48_000.0, 660.0)],
        48_000,
    );
    let out_dir = tmp.path().join("stems");
    let sep = |extra: &[&str]| {
        let mut c = bin();
        c.arg("separate")
            .arg(&wav)
            .args(["--device", "cpu", "--segment", "0.5", "--out"])
            .arg(&out_dir)
            .args(extra);
        run(&mut c)
    };
    let out = sep(&["--stems", "vocals,instrumental"]);
    assert!(out.status.success());
    for stem in ["vocals", "instrumental"] {
        let (spec, v) = read_wav(&out_dir.join(format!("song/{stem}.wav")));
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 48_000, 16)
        );
        assert_eq!(v.len(), 2 * n, "stereo stays stereo, rate and length kept");
    }
    assert!(!out_dir.join("song/drums.wav").exists());
    // Second run: refused, files untouched.
    let before = std::fs::read(out_dir.join("song/vocals.wav")).unwrap();
    let out = sep(&["--stems", "vocals"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--overwrite"));
    assert_eq!(
        before,
        std::fs::read(out_dir.join("song/vocals.wav")).unwrap()
    );
    // With --overwrite it replaces them.
    assert!(
        sep(&["--stems", "vocals", "--overwrite", "--format", "flac"])
            .status
            .success()
    );
    assert!(out_dir.join("song/vocals.flac").exists());
    // Bad parameters say what is allowed.
    let out = sep(&["--overlap", "0.99", "--overwrite"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("[0, 0.95)"));
    let out = sep(&["--stems", "kazoo", "--overwrite"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kazoo") && err.contains("vocals"), "{err}");
    let out = sep(&["--preset", "nope", "--checkpoint", "x.safetensors"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("small"));
    // A file that is not audio: clear error naming it, exit code 1.
    let junk = tmp.path().join("notes.mp3");
    std::fs::write(&junk, b"this is not audio").unwrap();
    let out = run(bin()
        .arg("separate")
        .arg(&junk)
        .args(["--device", "cpu", "--out"])
        .arg(&out_dir));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("notes.mp3"));
}

/// `separate --format mp3 --bitrate K`: MP3 stems that decode back at the song's rate and
/// length (the writer fills in LAME's gapless tag); no overwrite without --overwrite; bad bit
/// rates say what is allowed; `--help` names the formats and --bitrate.
#[test]
fn separate_writes_mp3_at_the_chosen_bitrate() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("song.wav");
    let n = 48_000;
    write_wav16(
        &wav,
        &[tone(n, 48_000.0, 440.0), tone(n, 48_000.0, 660.0)],
        48_000,
    );
    let out_dir = tmp.path().join("stems");
    let sep = |extra: &[&str]| {
        let mut c = bin();
        c.arg("separate")
            .arg(&wav)
            .args([
                "--device",
                "cpu",
                "--segment",
                "0.5",
                "--stems",
                "vocals",
                "--out",
            ])
            .arg(&out_dir)
            .args(extra);
        run(&mut c)
    };
    let out = sep(&["--format", "mp3", "--bitrate", "128"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mp3 = out_dir.join("song/vocals.mp3");
    let back = locosep::audio::decode_file(&mp3, &Default::default()).unwrap();
    assert_eq!(
        (back.sample_rate, back.num_channels(), back.len()),
        (48_000, 2, n)
    );
    // 1 s at 128 kbit/s CBR is 16 000 bytes of frames, plus the tag frame.
    let size = std::fs::metadata(&mp3).unwrap().len();
    assert!((15_000..20_000).contains(&size), "{size} bytes");
    let before = std::fs::read(&mp3).unwrap();
    let out = sep(&["--format", "mp3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--overwrite"));
    assert_eq!(before, std::fs::read(&mp3).unwrap());
    let out = sep(&["--format", "mp3", "--bitrate", "300", "--overwrite"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("96, 112, 128"),
        "{err}"
    );
    let out = sep(&["--format", "flac", "--bitrate", "320", "--overwrite"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("lossless"), "{err}");
    let help = run(bin().args(["separate", "--help"]));
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("mp3") && help.contains("--bitrate") && help.contains("ogg"),
        "{help}"
    );
}

/// SIGKILL at several moments of a separation with `--overwrite`: a file under a final name is
/// always either the untouched earlier file or a complete new one; temp files of the killed
/// runs (and a planted leftover of a dead writer) are cleaned by the next run.
#[test]
fn sigkill_never_leaves_partial_or_damaged_files() {
    let dir = tempfile::tempdir().unwrap();
    let rate = 44_100;
    let n = 8 * rate as usize;
    let input = dir.path().join("song.wav");
    write_wav16(
        &input,
        &[tone(n, rate as f32, 220.0), tone(n, rate as f32, 330.0)],
        rate,
    );
    let track = dir.path().join("out/song");
    std::fs::create_dir_all(&track).unwrap();
    let old = track.join("vocals.wav");
    write_wav16(&old, &[tone(1000, rate as f32, 440.0)], rate);
    let old_bytes = std::fs::read(&old).unwrap();
    let leftover = track.join(".drums.wav.0-7-7.locosep-tmp");
    std::fs::write(&leftover, b"half a file").unwrap();

    let check = |when: &str| {
        for stem in ["vocals", "drums", "bass", "other"] {
            let p = track.join(format!("{stem}.wav"));
            if !p.exists() {
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            if stem == "vocals" && bytes == old_bytes {
                continue;
            }
            let r = hound::WavReader::open(&p)
                .unwrap_or_else(|e| panic!("{when}: {} is not a whole WAV: {e}", p.display()));
            assert_eq!(
                r.duration() as usize,
                n,
                "{when}: {} is partial",
                p.display()
            );
        }
    };
    // Each kill lands while the child is writing: once one of its own temp files (named with
    // its pid) exists, wait `delay_ms`, check that the child still runs, then SIGKILL it.
    let mut landed = 0;
    for delay_ms in [0u64, 300, 1_500] {
        let mut child = bin()
            .args(["separate", input.to_str().unwrap(), "--overwrite", "--out"])
            .arg(dir.path().join("out"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = format!(".{}-", child.id());
        let started = std::time::Instant::now();
        let writing = loop {
            let own_temp = std::fs::read_dir(&track).unwrap().any(|e| {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                name.contains(&pid) && name.ends_with(".locosep-tmp")
            });
            if own_temp {
                break true;
            }
            if child.try_wait().unwrap().is_some()
                || started.elapsed() > std::time::Duration::from_secs(120)
            {
                break false;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        };
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        if writing && child.try_wait().unwrap().is_none() {
            landed += 1;
        }
        let _ = child.kill(); // SIGKILL on Unix.
        let _ = child.wait();
        check(&format!("killed {delay_ms} ms into writing"));
    }
    assert!(
        landed >= 2,
        "only {landed} of 3 kills landed while stems were being written"
    );
    let out = run(bin()
        .args(["separate", input.to_str().unwrap(), "--overwrite", "--out"])
        .arg(dir.path().join("out")));
    assert!(out.status.success());
    check("after a complete run");
    assert_ne!(std::fs::read(&old).unwrap(), old_bytes, "vocals replaced");
    let temps: Vec<_> = std::fs::read_dir(&track)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| locosep::audio::is_temp_file(p))
        .collect();
    assert!(temps.is_empty(), "leftover temp files: {temps:?}");
}

/// `bench train` runs timed training steps on the CPU and reports step time, throughput and
/// peak memory; an unknown benchmark is named in the error.
#[test]
fn bench_train_reports_step_time_and_memory() {
    let o = common::run(common::bin().args([
        "bench",
        "train",
        "--preset",
        "demo",
        "--seconds",
        "0.1",
        "--device",
        "cpu",
        "--repeat",
        "3",
    ]));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for line in ["step time", "mean of 3", "throughput", "peak RSS"] {
        assert!(out.contains(line), "missing `{line}` in:\n{out}");
    }
    let o = common::run(common::bin().args(["bench", "trian"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("`trian`") && err.contains("bench train"));
}
