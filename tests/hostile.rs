//! Hostile inputs, end to end on the real binary (issue #20, report
//! `shared/reports/hostile-inputs.md`): nothing is written outside `--out`, no user file is
//! deleted, bad numbers end with a message (never a panic), NaN input gives finite stems or an
//! error, and signals leave no temporary file.
//!
//! Every test works in its own temporary folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{bin, run};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit ≠ 0, a message containing every one of `needles`, and no panic.
fn assert_refused(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected a failure: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` missing from: {err}");
    }
}

fn tone(n: usize, f: f32, amp: f32) -> Vec<f32> {
    (0..n)
        .map(|i| amp * (2.0 * std::f32::consts::PI * f * i as f32 / 44_100.0).sin())
        .collect()
}

fn write_wav(path: &Path, channels: &[Vec<f32>], float: bool) {
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate: 44_100,
        bits_per_sample: if float { 32 } else { 16 },
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..channels[0].len() {
        for ch in channels {
            if float {
                w.write_sample(ch[i]).unwrap();
            } else {
                w.write_sample((ch[i].clamp(-1.0, 1.0) * 32767.0).round() as i16)
                    .unwrap();
            }
        }
    }
    w.finalize().unwrap();
}

fn song(path: &Path, f: f32, seconds: f32) {
    let n = (44_100.0 * seconds) as usize;
    write_wav(path, &[tone(n, f, 0.3), tone(n, f * 1.5, 0.3)], false);
}

/// Every path under `dir` (relative), sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if p.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = vec![];
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn separate(files: &[&Path], out: &Path, extra: &[&str]) -> Output {
    let mut c = bin();
    c.arg("separate")
        .args(files)
        .args(["--device", "cpu", "--out"])
        .arg(out)
        .args(extra);
    run(&mut c)
}

// ---------------------------------------------------------------- separate: where files go

#[test]
fn an_input_named_dotdot_wav_writes_inside_out() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in/...wav");
    song(&input, 330.0, 0.5);
    let parent = tmp.path().join("o");
    let out = parent.join("inner");
    let o = separate(&[&input], &out, &["--stems", "vocals"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tree(&parent), ["inner", "inner/__", "inner/__/vocals.wav"]);
}

#[test]
fn templates_that_leave_out_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in/song.wav");
    song(&input, 330.0, 0.5);
    let root = tmp.path().join("o");
    let out = root.join("a/b");
    let abs = tmp.path().join("abs_escape/{stem}.wav");
    for template in [
        "../../escape/{stem}.wav",
        "{track}/../../../{stem}.{ext}",
        abs.to_str().unwrap(),
        "{stem}/",
        "./{stem}.wav",
    ] {
        let o = separate(&[&input], &out, &["--template", template]);
        assert_refused(&o, &["template", template]);
        assert!(tree(&root).is_empty(), "{template}: {:?}", tree(&root));
        assert!(!tmp.path().join("abs_escape").exists());
        assert_eq!(tree(&tmp.path().join("in")), ["song.wav"]);
    }
}

#[test]
fn two_inputs_with_one_name_get_two_tracks() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (
        tmp.path().join("d1/song.wav"),
        tmp.path().join("d2/song.wav"),
    );
    song(&a, 220.0, 0.5);
    song(&b, 880.0, 0.5);
    let out = tmp.path().join("out");
    let o = separate(&[&a, &b], &out, &["--stems", "vocals", "--overwrite"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("song-2"), "the new name is printed");
    assert_eq!(
        tree(&out),
        ["song", "song-2", "song-2/vocals.wav", "song/vocals.wav"]
    );
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert_ne!(
        std::fs::read(out.join("song/vocals.wav")).unwrap(),
        std::fs::read(out.join("song-2/vocals.wav")).unwrap(),
        "each song has its own stems"
    );
    // A template without {track} cannot tell them apart: refused before any work.
    let out2 = tmp.path().join("out2");
    let o = separate(&[&a, &b], &out2, &["--template", "{stem}.wav"]);
    assert_refused(&o, &["{track}"]);
    assert!(!out2.exists());
}

#[test]
fn a_stem_listed_twice_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("song.wav");
    song(&input, 330.0, 0.5);
    let out = tmp.path().join("out");
    let o = separate(&[&input], &out, &["--stems", "vocals,vocals,drums"]);
    assert_refused(&o, &["vocals", "twice"]);
    assert!(!out.exists());
}

// ---------------------------------------------------------------- separate: NaN and Inf

fn all_finite_f32_wav(path: &Path) -> bool {
    let mut r = hound::WavReader::open(path).unwrap();
    r.samples::<f32>().all(|s| s.unwrap().is_finite())
}

#[test]
fn non_finite_input_samples_are_zeroed_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 44_100;
    let mut left = tone(n, 330.0, 0.3);
    let mut right = tone(n, 495.0, 0.3);
    left[100] = f32::NAN;
    left[20_000] = f32::INFINITY;
    right[30_000] = f32::NEG_INFINITY;
    let input = tmp.path().join("naninf.wav");
    write_wav(&input, &[left, right], true);
    let out = tmp.path().join("out");
    let o = separate(&[&input], &out, &["--format", "f32"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("3 sample(s)") && err.contains("NaN"), "{err}");
    for stem in ["vocals", "drums", "bass", "other"] {
        let p = out.join(format!("naninf/{stem}.wav"));
        assert!(all_finite_f32_wav(&p), "{} has NaN/Inf", p.display());
    }
}

#[test]
fn a_model_that_outputs_nan_writes_no_file() {
    // eps = NaN in the norms makes every output NaN (or is refused when the config loads):
    // either way the run fails and no stem file appears.
    let tmp = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/demo");
    let config = std::fs::read_to_string(demo.join("config.toml")).unwrap();
    assert!(config.contains("eps = 1.0e-5"));
    let bad = tmp.path().join("nan.toml");
    std::fs::write(&bad, config.replace("eps = 1.0e-5", "eps = nan")).unwrap();
    let input = tmp.path().join("song.wav");
    song(&input, 330.0, 0.5);
    let out = tmp.path().join("out");
    let o = separate(
        &[&input],
        &out,
        &[
            "--config",
            bad.to_str().unwrap(),
            "--checkpoint",
            demo.join("model.safetensors").to_str().unwrap(),
            "--format",
            "f32",
        ],
    );
    assert_refused(&o, &[]);
    let files: Vec<String> = tree(&out)
        .into_iter()
        .filter(|p| p.ends_with(".wav") || p.contains("locosep-tmp"))
        .collect();
    assert!(files.is_empty(), "{files:?}");
}

// ---------------------------------------------------------------- separate: signals

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().path())
                .filter(|p| locosep::audio::is_temp_file(p))
                .collect()
        })
        .unwrap_or_default()
}

/// Starts a separation of an 8 s song and returns once its temp files exist (the signal
/// handler is installed before them).
fn start_long_separation(dir: &Path) -> (std::process::Child, PathBuf) {
    let input = dir.join("song.wav");
    song(&input, 220.0, 8.0);
    let out = dir.join("out");
    let child = bin()
        .args(["separate", "--device", "cpu", "--out"])
        .arg(&out)
        .arg(&input)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let track = out.join("song");
    let t0 = std::time::Instant::now();
    while temp_files(&track).is_empty() {
        assert!(
            t0.elapsed().as_secs() < 120,
            "no temp file appeared in {}",
            track.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (child, track)
}

fn signal(child: &std::process::Child, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[cfg(unix)]
#[test]
fn sigterm_stops_like_ctrl_c_and_leaves_no_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, track) = start_long_separation(tmp.path());
    signal(&child, "-TERM");
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("stopping"), "{err}");
    assert!(temp_files(&track).is_empty(), "{:?}", temp_files(&track));
    assert!(tree(&track).is_empty(), "{:?}", tree(&track));
}

#[cfg(unix)]
#[test]
fn a_second_ctrl_c_exits_at_once_and_removes_temp_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, track) = start_long_separation(tmp.path());
    signal(&child, "-INT");
    std::thread::sleep(std::time::Duration::from_millis(50));
    signal(&child, "-INT");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(temp_files(&track).is_empty(), "{:?}", temp_files(&track));
}

// ---------------------------------------------------------------- train

/// A dataset of two 1 s tracks (`<track>/{mixture,vocals,drums,bass,other}.wav`).
fn dataset(root: &Path) {
    let n = 44_100;
    for (t, base) in [("a", 200.0), ("b", 300.0)] {
        let stems: Vec<Vec<f32>> = (0..4)
            .map(|i| tone(n, base * (i + 1) as f32, 0.1))
            .collect();
        let mix: Vec<f32> = (0..n).map(|i| stems.iter().map(|s| s[i]).sum()).collect();
        let dir = root.join(t);
        write_wav(&dir.join("mixture.wav"), &[mix.clone(), mix], false);
        for (s, name) in stems.iter().zip(["vocals", "drums", "bass", "other"]) {
            write_wav(
                &dir.join(format!("{name}.wav")),
                &[s.clone(), s.clone()],
                false,
            );
        }
    }
}

struct TrainSetup {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    config: PathBuf,
    root: PathBuf,
}

fn train_setup() -> TrainSetup {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    dataset(&data);
    let config = tmp.path().join("tiny.toml");
    let audio =
        "sample_rate = 44100\nsegment_seconds = 0.5\naudio_channels = 1\ninput_norm = \"none\"";
    std::fs::write(&config, common::tiny_model_toml(256, 128, audio)).unwrap();
    TrainSetup {
        root: tmp.path().to_path_buf(),
        _tmp: tmp,
        data,
        config,
    }
}

fn train(s: &TrainSetup, out: &Path, extra: &[&str]) -> Output {
    let mut c = bin();
    c.arg("train")
        .arg("--data")
        .arg(&s.data)
        .arg("--valid")
        .arg(&s.data)
        .arg("--config")
        .arg(&s.config)
        .arg("--out")
        .arg(out)
        .args(["--segment", "0.1", "--save-every", "1"])
        .args(extra);
    run(&mut c)
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn train_never_deletes_user_files() {
    let s = train_setup();
    let out = s.root.join("mine");
    let user_files = [
        "notes.txt",
        "best/take1.wav",
        "last/favourite_song.flac",
        "step_ my notes/notes.txt",
        "step_1/x.txt",
    ];
    for f in user_files {
        let p = out.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, f).unwrap();
    }
    let before = tree(&out);
    // Not a locosep run: refused, nothing touched.
    let o = train(&s, &out, &["--steps", "1"]);
    assert_refused(&o, &["not a locosep", "--overwrite"]);
    assert_eq!(tree(&out), before);
    // With --overwrite: best/ and last/ may be replaced, but nothing else of the user's goes,
    // even after pruning step checkpoints.
    let o = train(&s, &out, &["--steps", "5", "--overwrite"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["notes.txt", "step_ my notes/notes.txt", "step_1/x.txt"] {
        assert_eq!(read(&out.join(f)), f.as_bytes(), "{f}");
    }
    let t = tree(&out);
    for d in [
        "step_000003",
        "step_000004",
        "step_000005",
        "last/model.safetensors",
    ] {
        assert!(t.contains(&d.to_string()), "{d} missing: {t:?}");
    }
    assert!(!t.contains(&"step_000002".to_string()), "pruned: {t:?}");
    assert!(
        !t.iter()
            .any(|p| p.contains("locosep-tmp") || p.contains("locosep-old")),
        "{t:?}"
    );
}

fn set_best_score(out: &Path, score: f64) {
    let p = out.join("best/state.json");
    let mut v: serde_json::Value = serde_json::from_slice(&read(&p)).unwrap();
    v["best_sdr"] = serde_json::json!(score);
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
}

#[test]
fn a_second_run_keeps_a_better_best_and_resume_needs_a_checkpoint() {
    let s = train_setup();
    let out = s.root.join("run");
    // --resume with nothing to resume is an error, not a fresh start.
    let o = train(&s, &out, &["--steps", "1", "--resume"]);
    assert_refused(&o, &["nothing to resume"]);
    assert!(!out.join("last").exists());

    let o = train(&s, &out, &["--steps", "1", "--seed", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join(".locosep-run").is_file());
    // Pretend the first run validated far better than any 1-step run can.
    set_best_score(&out, 1000.0);
    let best_model = read(&out.join("best/model.safetensors"));
    let best_state = read(&out.join("best/state.json"));
    let o = train(&s, &out, &["--steps", "1", "--seed", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("best/ kept"), "{}", stderr(&o));
    assert_eq!(read(&out.join("best/model.safetensors")), best_model);
    assert_eq!(read(&out.join("best/state.json")), best_state);
    // A worse stored score is beaten and replaced.
    set_best_score(&out, -1000.0);
    let o = train(&s, &out, &["--steps", "1", "--seed", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(read(&out.join("best/state.json")), best_state);
    let v: serde_json::Value = serde_json::from_slice(&read(&out.join("best/state.json"))).unwrap();
    assert!(v["best_sdr"].as_f64().unwrap() > -1000.0);
    // --resume now continues the run.
    let o = train(&s, &out, &["--steps", "2", "--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resumed at step 1"), "{}", stderr(&o));
}

#[test]
fn bad_train_numbers_are_refused_with_the_value_and_range() {
    let s = train_setup();
    let out = s.root.join("never");
    for (args, needles) in [
        (&["--lr", "nan"][..], &["--lr", "NaN"][..]),
        (&["--lr=-1"], &["--lr", "-1"]),
        (&["--lr", "inf"], &["--lr", "inf"]),
        (&["--lr", "0"], &["--lr", "(0, 1]"]),
        (&["--segment=-1"], &["--segment", "-1"]),
        (&["--segment", "0.01"], &["--segment", "0.01"]),
        (&["--segment", "1e9"], &["--segment", "1000000000"]),
        (&["--segment", "nan"], &["--segment", "NaN"]),
        (&["--steps", "0"], &["--steps", "at least 1"]),
        (&["--batch", "0"], &["--batch"]),
        (
            &["--batch", "18446744073709551615"],
            &["--batch", "18446744073709551615", "1024"],
        ),
        (&["--accumulate", "0"], &["--accumulate", "65536"]),
        (
            &["--accumulate", "4294967296"],
            &["--accumulate", "4294967296"],
        ),
        (&["--si-sdr-weight", "nan"], &["--si-sdr-weight"]),
    ] {
        let mut c = bin();
        c.arg("train")
            .arg("--data")
            .arg(&s.data)
            .arg("--config")
            .arg(&s.config)
            .arg("--out")
            .arg(&out)
            .args(args);
        let o = run(&mut c);
        assert_refused(&o, needles);
        assert!(!out.exists(), "{args:?} created --out");
    }
}

#[test]
fn plan_refuses_bad_seconds_and_batch_with_the_value_and_range() {
    for (args, needles) in [
        (&["--seconds", "inf"][..], &["--seconds inf", "86400"][..]),
        (
            &["--seconds", "1e12"],
            &["--seconds 1000000000000", "86400"],
        ),
        (&["--seconds", "NaN"], &["--seconds NaN", "86400"]),
        (&["--seconds=-1"], &["--seconds -1", "86400"]),
        (
            &["--batch", "18446744073709551615"],
            &["--batch 18446744073709551615", "65536"],
        ),
        (&["--batch", "0"], &["--batch 0", "65536"]),
    ] {
        let o = run(bin()
            .args(["plan", "--preset", "xlarge", "--train"])
            .args(args));
        assert_refused(&o, needles);
    }
    // The largest accepted values are planned or refused with a message, never a panic.
    let o = run(bin().args([
        "plan",
        "--preset",
        "xlarge",
        "--train",
        "--seconds",
        "86400",
        "--batch",
        "65536",
    ]));
    assert_refused(&o, &["too large to plan"]);
}

#[test]
fn bench_and_synth_refuse_absurd_lengths_with_the_value_and_range() {
    for args in [
        &[
            "bench",
            "--preset",
            "small",
            "--device",
            "cpu",
            "--seconds",
            "1e9",
        ][..],
        &[
            "bench",
            "--preset",
            "small",
            "--device",
            "cpu",
            "--seconds=-1",
        ],
        &[
            "bench",
            "--preset",
            "small",
            "--device",
            "cpu",
            "--seconds",
            "nan",
        ],
    ] {
        let o = run(bin().args(args));
        assert_refused(&o, &["--seconds", "600"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synth");
    for (args, needles) in [
        (
            &["--tracks", "1", "--seconds", "1e9"][..],
            &["seconds", "600", "1000000000"][..],
        ),
        (
            &["--tracks", "1000000000", "--seconds", "1"],
            &["tracks", "100000", "1000000000"],
        ),
    ] {
        let o = run(bin().arg("synth").arg("--out").arg(&out).args(args));
        assert_refused(&o, needles);
        assert!(!out.exists(), "{args:?} created --out");
    }
}

/// A 16-bit PCM WAV header with any channel count and rate, and `frames` frames of silence.
fn raw_wav(path: &Path, channels: u16, rate: u32, frames: usize) {
    let data = vec![0u8; 2 * frames * usize::from(channels).clamp(1, 4)];
    let block = channels.wrapping_mul(2);
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&rate.wrapping_mul(u32::from(block)).to_le_bytes());
    v.extend_from_slice(&block.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(&data);
    std::fs::write(path, v).unwrap();
}

#[test]
fn absurd_wav_headers_are_refused_without_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let ch = tmp.path().join("ch65535.wav");
    raw_wav(&ch, 65_535, 44_100, 5);
    let rate1 = tmp.path().join("rate1.wav");
    raw_wav(&rate1, 1, 1, 5);
    let out = tmp.path().join("out");
    for extra in [&[][..], &["--downmix"]] {
        let o = separate(&[&ch], &out, extra);
        assert_refused(&o, &["65535 channels", "at most 64"]);
        assert!(!stderr(&o).contains("backtrace"), "{}", stderr(&o));
    }
    let o = separate(&[&rate1], &out, &[]);
    assert_refused(&o, &["sample rate 1 Hz", "4000..=768000"]);
}

// ---------------------------------------------------------------- eval: no silent nonsense

fn eval(data: &Path, extra: &[&std::ffi::OsStr]) -> Output {
    let mut c = bin();
    c.arg("eval").arg("--data").arg(data).args(extra);
    run(&mut c)
}

fn os<'a>(args: &'a [&'a str]) -> Vec<&'a std::ffi::OsStr> {
    args.iter().map(std::ffi::OsStr::new).collect()
}

#[test]
fn eval_refuses_missing_or_mismatched_estimates() {
    use std::ffi::OsStr;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    dataset(&data);
    let missing = tmp.path().join("nonexistent");
    let o = eval(&data, &[OsStr::new("--estimates"), missing.as_os_str()]);
    assert_refused(&o, &["nonexistent", "does not exist"]);

    // Every track is in the estimates, with vocals of half the length.
    let est = tmp.path().join("est");
    for t in ["a", "b"] {
        song(&est.join(t).join("vocals.wav"), 220.0, 1.0);
    }
    song(&est.join("b").join("vocals.wav"), 220.0, 0.5);
    let o = eval(&data, &[OsStr::new("--estimates"), est.as_os_str()]);
    assert_refused(&o, &["vocals.wav", "22050 samples", "track 'b'", "44100"]);

    // The right length at another rate.
    raw_wav(&est.join("b").join("vocals.wav"), 2, 22_050, 44_100);
    let o = eval(&data, &[OsStr::new("--estimates"), est.as_os_str()]);
    assert_refused(&o, &["22050 Hz", "track 'b'", "44100 Hz"]);

    // A track without any estimate.
    std::fs::remove_dir_all(est.join("b")).unwrap();
    let o = eval(&data, &[OsStr::new("--estimates"), est.as_os_str()]);
    assert_refused(&o, &["no estimate for track 'b'"]);
}

#[test]
fn eval_refuses_a_nan_mean_bad_seconds_and_an_existing_json() {
    use std::ffi::OsStr;
    let tmp = tempfile::tempdir().unwrap();
    let silent = tmp.path().join("silent");
    let n = 44_100;
    let dir = silent.join("quiet");
    for name in ["mixture", "vocals", "drums", "bass", "other"] {
        write_wav(
            &dir.join(format!("{name}.wav")),
            &[vec![0.0; n], vec![0.0; n]],
            false,
        );
    }
    let o = eval(&silent, &os(&["--baseline"]));
    assert_refused(&o, &["no stem of any track could be scored"]);

    let data = tmp.path().join("data");
    dataset(&data);
    for (s, shown) in [("-1", "-1"), ("NaN", "NaN"), ("1e300", "1e300")] {
        let o = eval(&data, &os(&["--baseline", &format!("--seconds={s}")]));
        assert_refused(&o, &["--seconds", shown, "21600"]);
    }

    let json = tmp.path().join("report.json");
    std::fs::write(&json, "keep me").unwrap();
    let o = eval(
        &data,
        &[
            OsStr::new("--baseline"),
            OsStr::new("--json"),
            json.as_os_str(),
        ],
    );
    assert_refused(&o, &["report.json", "already exists", "--overwrite"]);
    assert_eq!(read(&json), b"keep me");
    let o = eval(
        &data,
        &[
            OsStr::new("--baseline"),
            OsStr::new("--json"),
            json.as_os_str(),
            OsStr::new("--overwrite"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8(read(&json))
            .unwrap()
            .contains("\"summary\"")
    );
}

// ---------------------------------------------------------------- train: useless data refused

#[test]
fn train_refuses_mixture_only_tiny_and_mismatched_tracks_naming_them() {
    let s = train_setup();
    let stereo = |n: usize, f: f32| [tone(n, f, 0.1), tone(n, f, 0.1)];
    let cases: [(&str, Vec<(&str, usize)>, &[&str]); 3] = [
        (
            "onlymix",
            vec![("mixture", 44_100)],
            &["track 'onlymix'", "only a mixture"],
        ),
        (
            "tiny",
            vec![("mixture", 1), ("vocals", 1)],
            &["track 'tiny'", "1 sample(s) long", "2205"],
        ),
        (
            "lenmis",
            vec![("mixture", 44_100), ("vocals", 44_100), ("drums", 22_050)],
            &["track 'lenmis'", "drums.wav", "22050 samples", "44100"],
        ),
    ];
    for (name, files, needles) in cases {
        let data = s.root.join(format!("data_{name}"));
        dataset(&data);
        for (file, n) in files {
            write_wav(
                &data.join(name).join(format!("{file}.wav")),
                &stereo(n, 440.0),
                false,
            );
        }
        let out = s.root.join(format!("out_{name}"));
        let mut c = bin();
        c.arg("train")
            .arg("--data")
            .arg(&data)
            .arg("--config")
            .arg(&s.config)
            .arg("--out")
            .arg(&out)
            .args(["--steps", "1", "--segment", "0.1"]);
        let o = run(&mut c);
        assert_refused(&o, needles);
    }
}

// ---------------------------------------------------------------- messages

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn messages_name_the_file_and_the_os_error_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let missing = tmp.path().join("missing.wav");
    let o = separate(&[&missing], &out, &[]);
    let err = stderr(&o);
    assert_refused(&o, &["missing.wav", "os error 2"]);
    assert_eq!(count(&err, "os error 2"), 1, "{err}");
    assert_eq!(count(&err, "missing.wav"), 1, "{err}");

    let dir = tmp.path().join("a_folder.wav");
    std::fs::create_dir(&dir).unwrap();
    let o = separate(&[&dir], &out, &[]);
    let err = stderr(&o);
    assert_refused(&o, &["a_folder.wav"]);
    assert_eq!(count(&err, "a_folder.wav"), 1, "{err}");
    assert!(count(&err, "directory") <= 1, "{err}");

    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/demo");
    for (config, checkpoint) in [
        (tmp.path().join("nope.toml"), demo.join("model.safetensors")),
        (
            demo.join("config.toml"),
            tmp.path().join("nope.safetensors"),
        ),
    ] {
        let song_path = tmp.path().join("song.wav");
        song(&song_path, 330.0, 0.2);
        let o = separate(
            &[&song_path],
            &out,
            &[
                "--config",
                config.to_str().unwrap(),
                "--checkpoint",
                checkpoint.to_str().unwrap(),
            ],
        );
        let err = stderr(&o);
        assert_refused(&o, &["nope.", "os error 2"]);
        assert_eq!(count(&err, "os error 2"), 1, "{err}");
        assert_eq!(count(&err, "nope."), 1, "{err}");
    }
    // A value out of range names the config file it is in.
    let bad = tmp.path().join("bad_layers.toml");
    let text = std::fs::read_to_string(demo.join("config.toml")).unwrap();
    std::fs::write(&bad, text.replace("n_layers = 2", "n_layers = 1000000")).unwrap();
    let o = separate(
        &[&missing],
        &out,
        &[
            "--config",
            bad.to_str().unwrap(),
            "--checkpoint",
            demo.join("model.safetensors").to_str().unwrap(),
        ],
    );
    assert_refused(&o, &["bad_layers.toml", "n_layers", "0..=128", "1000000"]);
}

#[cfg(unix)]
#[test]
fn pipes_devices_and_stdin_are_refused_up_front_saying_why() {
    use std::io::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let wav = tmp.path().join("song.wav");
    song(&wav, 330.0, 0.2);
    let mut child = bin()
        .args(["separate", "--device", "cpu", "/dev/stdin", "--out"])
        .arg(&out)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The song goes into the pipe; it must be refused as a pipe, not as "no audio samples".
    let bytes = std::fs::read(&wav).unwrap();
    let _ = child.stdin.take().unwrap().write_all(&bytes);
    let o = child.wait_with_output().unwrap();
    assert_refused(&o, &["/dev/stdin", "is a pipe", "save it to a file"]);
    let o = separate(&[Path::new("/dev/zero")], &out, &[]);
    assert_refused(&o, &["/dev/zero", "is a device"]);
    let o = separate(&[Path::new("-")], &out, &[]);
    assert_refused(&o, &["standard input"]);
    assert!(!out.exists());
}
