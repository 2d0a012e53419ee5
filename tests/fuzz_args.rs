//! Every number a user can type, at its extremes (issue #20): each numeric field of a model
//! config — our TOML presets, the reference JSON, the fork's and ESPnet's YAML, mixit-mss's
//! merged config — and each numeric flag of `separate`, `plan`, `bench`, `synth`, `train` and
//! `eval` is set to 0, −1, NaN, ±inf, 1e12, 2⁶⁴−1 and 1e308.
//!
//! A case passes when it is refused with a message naming the field or flag (and never
//! printing a number of hundreds of digits), or succeeds where the value is legitimately
//! allowed — the cases expected to succeed are listed, so that a value that starts being
//! accepted, or stops being, fails the test. Never a panic, never a case slower than
//! [`MAX_CASE`], never a single allocation above 1 GiB (a size taken from the number without
//! a cap; a failed huge allocation would abort this binary, which fails the test too).
//!
//! Everything runs in process (`locosep::cli::run` on parsed arguments, the config parsers
//! directly), on tiny inputs: the binary is not needed to see what these numbers do.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;

mod common;

thread_local! {
    /// Largest single allocation of this thread since the last reset.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, recording the largest request per thread.
struct Recording;

// SAFETY: forwards to `System` unchanged; only records sizes.
unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(new_size)));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Recording = Recording;

const MAX_ALLOC: usize = 1 << 30;
const MAX_CASE: Duration = Duration::from_secs(20);

/// The extreme values, as typed on a command line or in JSON/TOML-ish text.
const VALUES: [&str; 8] = [
    "0",
    "-1",
    "NaN",
    "inf",
    "-inf",
    "1e12",
    "18446744073709551615",
    "1e308",
];

/// How `value` is spelt in `form` (TOML and YAML have their own NaN/inf).
fn spell(form: Form, value: &str) -> String {
    match (form, value) {
        (Form::Toml, "NaN") => "nan".into(),
        (Form::Yaml, "NaN") => ".nan".into(),
        (Form::Yaml, "inf") => ".inf".into(),
        (Form::Yaml, "-inf") => "-.inf".into(),
        // TOML floats need a fraction or exponent with digits: `1e12` is one already.
        _ => value.into(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Form {
    Toml,
    Json,
    Yaml,
}

/// What one case did.
struct Outcome {
    /// `Ok` or the message a user would see.
    result: Result<(), String>,
    took: Duration,
    largest: usize,
}

/// Runs `f` and records panics, time and the largest allocation.
fn measure(f: impl FnOnce() -> Result<(), String>) -> Outcome {
    LARGEST.with(|l| l.set(0));
    let t0 = Instant::now();
    let result = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(format!(
            "panicked: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    };
    Outcome {
        result,
        took: t0.elapsed(),
        largest: LARGEST.with(Cell::get),
    }
}

/// Checks one case: refused naming one of `names`, or accepted exactly when `allowed`.
/// Returns a line describing a failure.
fn judge(case: &str, names: &[&str], allowed: bool, o: &Outcome) -> Option<String> {
    if o.took > MAX_CASE {
        return Some(format!("{case}: took {:.1} s", o.took.as_secs_f64()));
    }
    if o.largest > MAX_ALLOC {
        return Some(format!("{case}: allocated {} bytes at once", o.largest));
    }
    match (&o.result, allowed) {
        (Ok(()), true) => None,
        (Ok(()), false) => Some(format!("{case}: accepted")),
        (Err(m), _) if m.contains("panicked") => Some(format!("{case}: {m}")),
        (Err(m), true) => Some(format!("{case}: refused although allowed: {m}")),
        (Err(m), false) => {
            if !names.iter().any(|n| m.contains(n)) {
                Some(format!("{case}: the message does not name {names:?}: {m}"))
            } else if has_long_number(m) {
                Some(format!("{case}: a number with all its digits: {m}"))
            } else {
                None
            }
        }
    }
}

/// Whether `m` holds a run of more than 24 digits (1e308 printed in full; 2⁶⁴−1 has 20).
fn has_long_number(m: &str) -> bool {
    let mut run = 0;
    for c in m.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        if run > 24 {
            return true;
        }
    }
    false
}

fn report(what: &str, cases: usize, failures: &[String]) {
    eprintln!("{what}: {cases} cases, {} failure(s)", failures.len());
    assert!(failures.is_empty(), "{what}:\n{}", failures.join("\n"));
}

// ---------------------------------------------------------------- configs

fn corpus(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus/config")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `text` with the line `<indent><key><sep>…` of `section`'s block replaced by
/// `<key><sep><value>`, or such a line added at the top of the block.
fn set_line(text: &str, header: &str, indent: &str, key: &str, sep: &str, value: &str) -> String {
    let mut out = Vec::new();
    let mut in_block = header.is_empty();
    let mut done = false;
    let new = format!("{indent}{key}{sep}{value}");
    if header.is_empty() {
        out.push(new.clone());
        done = true;
    }
    for line in text.lines() {
        if !header.is_empty() && line.trim_end() == header {
            out.push(line.to_string());
            if !done {
                out.push(new.clone());
                done = true;
            }
            in_block = true;
            continue;
        }
        let is_key = line.starts_with(&format!("{indent}{key}{}", sep.trim_end()))
            && line[indent.len() + key.len()..]
                .trim_start()
                .starts_with(sep.trim());
        if in_block && is_key {
            continue; // replaced by the line added above
        }
        out.push(line.to_string());
    }
    assert!(done, "no `{header}` in the base config");
    out.join("\n") + "\n"
}

/// One numeric field of a config form: the base text, where the key goes, and the names a
/// refusal may use for it.
struct Field {
    form: Form,
    base: &'static str,
    header: &'static str,
    indent: &'static str,
    key: &'static str,
}

fn config_fields() -> Vec<Field> {
    let mut v = Vec::new();
    // Every numeric key of the reference keyword arguments (`RawConfig`).
    const MODEL_KEYS: [&str; 21] = [
        "n_fft",
        "hop_length",
        "n_sources",
        "num_spk",
        "n_layers",
        "emb_dim",
        "num_groups",
        "n_heads",
        "attention_dim",
        "ffn_hidden_dim",
        "conv1d_kernel",
        "conv1d_shift",
        "dropout",
        "eps",
        "audio_channels",
        "sample_rate",
        "segment_seconds",
        "stft_size",
        "num_chan",
        "css_segment_size",
        "css_shift_size",
    ];
    for key in MODEL_KEYS {
        v.push(Field {
            form: Form::Toml,
            base: "demo.toml",
            header: "[model]",
            indent: "",
            key,
        });
        v.push(Field {
            form: Form::Json,
            base: "reference.json",
            header: "{",
            indent: "  ",
            key,
        });
        v.push(Field {
            form: Form::Yaml,
            base: "fork.yaml",
            header: "model:",
            indent: "  ",
            key,
        });
    }
    // The preset's [audio] section and the YAML sections read besides the model's.
    for key in ["sample_rate", "segment_seconds", "audio_channels"] {
        v.push(Field {
            form: Form::Toml,
            base: "demo.toml",
            header: "[audio]",
            indent: "",
            key,
        });
    }
    for (header, key) in [
        ("dataset:", "sample_rate"),
        ("dataset:", "segment_length"),
        ("encoder_conf:", "n_fft"),
        ("encoder_conf:", "hop_length"),
    ] {
        v.push(Field {
            form: Form::Yaml,
            base: if header == "dataset:" {
                "fork_dataset.yaml"
            } else {
                "espnet.yaml"
            },
            header,
            indent: "  ",
            key,
        });
    }
    v.push(Field {
        form: Form::Yaml,
        base: "espnet.yaml",
        header: "",
        indent: "",
        key: "fs",
    });
    // mixit-mss: the top-level values interpolated into the model, and the wrapper's own.
    for key in ["sr", "n_fft", "hop_length", "n_src"] {
        v.push(Field {
            form: Form::Yaml,
            base: "mixit_merged_config.yaml",
            header: "",
            indent: "",
            key,
        });
    }
    for key in ["css_segment_size", "css_shift_size", "fs"] {
        v.push(Field {
            form: Form::Yaml,
            base: "mixit_merged_config.yaml",
            header: "  model:",
            indent: "    ",
            key,
        });
    }
    v
}

fn base_text(name: &str) -> String {
    match name {
        "fork_dataset.yaml" => corpus("fork.yaml") + "dataset:\n  sample_rate: 44100\n",
        "espnet.yaml" => "separator_conf:\n  n_layers: 1\n  emb_dim: 8\n  attention_dim: 8\n  \
                          n_heads: 2\n  num_groups: 2\n  ffn_hidden_dim: 16\nencoder_conf:\n  \
                          n_fft: 256\n  hop_length: 64\nfs: 16000\n"
            .into(),
        other => corpus(other),
    }
}

fn parse(form: Form, text: &str, name: &str) -> Result<(), String> {
    use locosep::model::config::ModelConfig;
    let cfg = match form {
        Form::Toml => ModelConfig::from_toml_str(text, name),
        Form::Json => ModelConfig::from_json_str(text, name),
        Form::Yaml => ModelConfig::from_yaml_str(text, name),
    }
    .map_err(|e| e.to_string())?;
    // What an accepted config leads to first: its size, and a plan of its memory.
    let _ = cfg.param_count();
    let m = locosep::engine::plan::plan_model(&cfg);
    let req = locosep::memory::planner::PlanRequest::new(&m);
    locosep::memory::planner::plan_checked(&m, &req).map_err(|e| e.to_string())?;
    Ok(())
}

/// The (form, base, key, value) cases a config accepts: values the reference allows too.
fn config_allowed(f: &Field, value: &str) -> bool {
    matches!((f.key, value), ("n_layers", "0") | ("dropout", "0"))
}

#[test]
fn every_numeric_config_field_at_its_extremes() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for f in config_fields() {
        let base = base_text(f.base);
        for value in VALUES {
            let v = spell(f.form, value);
            let text = if f.form == Form::Json {
                // Replace or add `"key": value` right after the opening brace.
                let mut j: serde_json::Value = serde_json::from_str(&base).unwrap();
                j.as_object_mut().unwrap().remove(f.key);
                let rest = serde_json::to_string_pretty(&j).unwrap();
                format!("{{\n  \"{}\": {v},{}", f.key, &rest[1..])
            } else {
                let sep = if f.form == Form::Toml { " = " } else { ": " };
                set_line(&base, f.header, f.indent, f.key, sep, &v)
            };
            let case = format!("{:?} {} `{}` = {value}", f.form, f.base, f.key);
            let name = format!("cfg.{}", format!("{:?}", f.form).to_lowercase());
            let o = measure(|| parse(f.form, &text, &name));
            cases += 1;
            let mut names = vec![f.key];
            // The keys a value reaches the model under.
            names.extend(match f.key {
                "sr" | "fs" => &["sample_rate", "fs"][..],
                "n_src" | "num_spk" | "n_sources" => &["source", "num_spk"],
                "stft_size" => &["n_fft"],
                "num_chan" => &["audio_channels"],
                "segment_length" => &["segment"],
                "css_segment_size" | "css_shift_size" => &["css_"],
                "ffn_hidden_dim" => &["ffn"],
                _ => &[],
            });
            if let Some(fail) = judge(&case, &names, config_allowed(&f, value), &o) {
                failures.push(fail);
            }
        }
    }
    report("config fields", cases, &failures);
}

// ---------------------------------------------------------------- CLI flags

/// Runs the CLI in process on `args`; `Err` holds what `locosep` would print.
fn cli(args: &[String]) -> Result<(), String> {
    let parsed = locosep::cli::Cli::try_parse_from(
        std::iter::once("locosep".to_string()).chain(args.iter().cloned()),
    )
    .map_err(|e| e.to_string())?;
    locosep::cli::run(parsed).map_err(|e| locosep::cli::error_text(&e))
}

/// A subcommand, its small base arguments (flag → value) and the numeric flags under test.
struct Command<'a> {
    name: &'a str,
    /// Positional arguments and switches.
    fixed: Vec<String>,
    /// Flags with the value used when another flag is under test.
    flags: Vec<(&'a str, String)>,
    /// (flag, value) pairs that succeed.
    allowed: &'a [(&'a str, &'a str)],
}

/// Runs every flag of `c` at every extreme value; `fresh` gives each case its own output
/// folder (a value for `--out`), if the command writes one.
fn run_flags(c: &Command, fresh: &mut dyn FnMut() -> Option<PathBuf>) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut cases = 0;
    for (flag, _) in &c.flags {
        for value in VALUES {
            let mut args: Vec<String> = vec![c.name.to_string()];
            args.extend(c.fixed.iter().cloned());
            for (other, default) in &c.flags {
                if other != flag {
                    args.push(format!("--{other}={default}"));
                }
            }
            args.push(format!("--{flag}={value}"));
            if let Some(out) = fresh() {
                args.push("--out".into());
                args.push(out.display().to_string());
            }
            let case = args.join(" ");
            eprintln!("case: {case}");
            let o = measure(|| cli(&args));
            eprintln!(
                "  -> {:.2} s: {}",
                o.took.as_secs_f64(),
                match &o.result {
                    Ok(()) => "ok".to_string(),
                    Err(m) => m.clone(),
                }
            );
            cases += 1;
            let allowed = c.allowed.iter().any(|(f, v)| f == flag && *v == value);
            let name = format!("--{flag}");
            if let Some(fail) = judge(&case, &[&name], allowed, &o) {
                failures.push(fail);
            }
        }
    }
    (cases, failures)
}

fn tone(n: usize, f: f32) -> Vec<f32> {
    (0..n)
        .map(|i| 0.2 * (2.0 * std::f32::consts::PI * f * i as f32 / 44_100.0).sin())
        .collect()
}

fn write_wav(path: &Path, channels: &[Vec<f32>]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..channels[0].len() {
        for ch in channels {
            w.write_sample((ch[i] * 32767.0) as i16).unwrap();
        }
    }
    w.finalize().unwrap();
}

/// A folder counter for `--out` values under `root`.
fn outs(root: &Path) -> impl FnMut() -> Option<PathBuf> + '_ {
    let mut i = 0;
    move || {
        i += 1;
        Some(root.join(format!("out{i}")))
    }
}

#[test]
fn every_numeric_flag_of_separate_plan_bench_and_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let song = tmp.path().join("song.wav");
    write_wav(&song, &[tone(13_230, 330.0), tone(13_230, 495.0)]);
    let s = |x: &str| x.to_string();
    let mut cases = 0;
    let mut failures = Vec::new();
    let separate = Command {
        name: "separate",
        fixed: vec![
            song.display().to_string(),
            s("--device=cpu"),
            s("--stems=vocals"),
        ],
        flags: vec![
            ("overlap", s("0.25")),
            ("segment", s("1")),
            ("batch", s("1")),
        ],
        allowed: &[("overlap", "0"), ("batch", "18446744073709551615")],
    };
    let (n, f) = run_flags(&separate, &mut outs(tmp.path()));
    cases += n;
    failures.extend(f);

    let plan = Command {
        name: "plan",
        fixed: vec![s("--preset=small")],
        flags: vec![
            ("seconds", s("2")),
            ("batch", s("1")),
            ("channels", s("2")),
            ("chunk", s("256MiB")),
        ],
        // A score cap of 0 bytes means one sequence per attention call; 2⁶⁴−1 bytes, no cap.
        allowed: &[("chunk", "0"), ("chunk", "18446744073709551615")],
    };
    let (n, f) = run_flags(&plan, &mut || None);
    cases += n;
    failures.extend(f);
    let budget = Command {
        name: "plan",
        fixed: vec![s("--preset=small")],
        flags: vec![("budget", s("8GiB")), ("max-buffer", s("2GiB"))],
        // 16 EiB: everything fits (as a budget or as the largest buffer).
        allowed: &[
            ("budget", "18446744073709551615"),
            ("max-buffer", "18446744073709551615"),
        ],
    };
    let (n, f) = run_flags(&budget, &mut || None);
    cases += n;
    failures.extend(f);

    let bench = Command {
        name: "bench",
        fixed: vec![s("--preset=small"), s("--device=cpu")],
        flags: vec![
            ("seconds", s("0.05")),
            ("chunk-mib", s("256")),
            ("repeat", s("1")),
            ("frames", s("1")),
        ],
        allowed: &[("chunk-mib", "0")],
    };
    let (n, f) = run_flags(&bench, &mut || None);
    cases += n;
    failures.extend(f);
    let attention = Command {
        name: "bench",
        fixed: vec![s("attention"), s("--device=cpu")],
        flags: vec![("frames", s("1"))],
        allowed: &[],
    };
    let (n, f) = run_flags(&attention, &mut || None);
    cases += n;
    failures.extend(f);

    let data = tmp.path().join("data");
    for (t, base) in [("a", 200.0), ("b", 300.0)] {
        for (i, stem) in ["mixture", "vocals", "drums", "bass", "other"]
            .iter()
            .enumerate()
        {
            let x = tone(22_050, base * (i + 1) as f32);
            write_wav(&data.join(t).join(format!("{stem}.wav")), &[x.clone(), x]);
        }
    }
    let eval = Command {
        name: "eval",
        fixed: vec![s("--data"), data.display().to_string(), s("--baseline")],
        flags: vec![("seconds", s("0"))],
        allowed: &[("seconds", "0")],
    };
    let (n, f) = run_flags(&eval, &mut || None);
    cases += n;
    failures.extend(f);
    report("separate, plan, bench, eval flags", cases, &failures);
}

#[test]
fn every_numeric_flag_of_synth_and_train() {
    let tmp = tempfile::tempdir().unwrap();
    let s = |x: &str| x.to_string();
    let mut cases = 0;
    let mut failures = Vec::new();
    let synth = Command {
        name: "synth",
        fixed: vec![],
        flags: vec![
            ("tracks", s("1")),
            ("seconds", s("0.2")),
            ("seed", s("0")),
            ("threads", s("1")),
        ],
        // --threads 0 means one thread; more threads than tracks are not started.
        allowed: &[
            ("seed", "0"),
            ("seed", "18446744073709551615"),
            ("threads", "0"),
            ("threads", "18446744073709551615"),
        ],
    };
    let synth_root = tmp.path().join("synth");
    let (n, f) = run_flags(&synth, &mut outs(&synth_root));
    cases += n;
    failures.extend(f);

    let data = tmp.path().join("data");
    for (t, base) in [("a", 200.0), ("b", 300.0)] {
        for (i, stem) in ["mixture", "vocals", "drums", "bass", "other"]
            .iter()
            .enumerate()
        {
            let x = tone(11_025, base * (i + 1) as f32);
            write_wav(&data.join(t).join(format!("{stem}.wav")), &[x.clone(), x]);
        }
    }
    let config = tmp.path().join("tiny.toml");
    let audio =
        "sample_rate = 44100\nsegment_seconds = 0.5\naudio_channels = 1\ninput_norm = \"none\"";
    std::fs::write(&config, common::tiny_model_toml(256, 128, audio)).unwrap();
    let train = Command {
        name: "train",
        fixed: vec![
            s("--data"),
            data.display().to_string(),
            s("--valid"),
            data.display().to_string(),
            s("--config"),
            config.display().to_string(),
        ],
        flags: vec![
            ("steps", s("1")),
            ("batch", s("1")),
            ("accumulate", s("1")),
            ("segment", s("0.1")),
            ("lr", s("0.0005")),
            ("si-sdr-weight", s("1")),
            ("sdr-weight", s("0")),
            ("valid-every", s("1")),
            ("save-every", s("1")),
            ("seed", s("0")),
            ("budget", s("8GiB")),
        ],
        allowed: &[
            ("si-sdr-weight", "0"),
            ("sdr-weight", "0"),
            ("valid-every", "0"),
            ("valid-every", "18446744073709551615"),
            ("save-every", "0"),
            ("save-every", "18446744073709551615"),
            ("seed", "0"),
            ("seed", "18446744073709551615"),
            ("budget", "18446744073709551615"),
        ],
    };
    let (n, f) = run_flags(&train, &mut outs(&tmp.path().join("train")));
    cases += n;
    failures.extend(f);
    report("synth and train flags", cases, &failures);
}
