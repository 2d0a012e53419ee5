//! The headless front end: clap subcommands over the engine, indicatif progress.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::audio::decode::DecodeOptions;
use crate::audio::encode::SampleFormat;
use crate::engine::device::{DeviceChoice, resolve};
use crate::engine::export::{ExportOptions, track_name, unique_track_names, validate_stems};
use crate::engine::load::{LoadedModel, human_count, load_model as load};
use crate::engine::stream::separate_file_as;
use crate::engine::{CancelToken, EngineError, ModelChoice, SeparateParams, Separator};
use crate::model::config::builtin_presets;

mod bench;
mod bench_common;
pub mod bench_memory;
mod bench_train;
pub mod export;
mod gpu_check;
mod model_check;
pub mod models;
mod plan;
mod synth;
mod train;

/// locosep — separate songs into vocals, drums, bass and other.
#[derive(Parser, Debug)]
#[command(name = "locosep", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Subcommand; without one the desktop app opens.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// A song to open in the desktop app.
    pub path: Option<PathBuf>,
    /// Open the app, wait until the song is shown, save a PNG of the window here and exit
    /// (for documentation and end-to-end tests; no sound output).
    #[arg(long, value_name = "PNG")]
    pub screenshot: Option<PathBuf>,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Separate audio files into stems.
    Separate(SeparateArgs),
    /// Run the network on a fixture-style tensor file (verifies a reference checkpoint).
    ModelCheck(model_check::ModelCheckArgs),
    /// List the presets with their sizes.
    Presets,
    /// Predict device memory for a preset, or fit settings to a budget.
    Plan(plan::PlanArgs),
    /// Measure real-time factor and peak memory.
    Bench(bench::BenchArgs),
    /// Render synthetic multitrack songs (MUSDB18-HQ layout) from MIDI.
    Synth(synth::SynthArgs),
    /// Train or fine-tune a model on multitrack songs.
    Train(train::TrainArgs),
    /// Score a model (or estimates on disk) against true stems: SDR, uSDR, SI-SDR.
    Eval(train::EvalArgs),
    /// List, download, import or remove models (the catalog of published checkpoints).
    Models(models::ModelsArgs),
    /// Write a model's weights as a PyTorch checkpoint (the fork's or ESPnet's layout) or as
    /// safetensors, for continuing a run in the reference trainers.
    Export(export::ExportArgs),
}

/// Which model to load.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Preset name (see `locosep presets`).
    #[arg(long, conflicts_with = "config")]
    pub preset: Option<String>,
    /// Model config file: .toml preset, reference .json, or the fork's/ESPnet's .yaml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Checkpoint: .safetensors (reference names), MERL/ESPnet .pth, the fork's .pth, a
    /// Lightning .ckpt, or a model folder (config + weights, e.g. a downloaded mixit-mss model).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// An installed model by name (see `locosep models`), instead of --preset/--config/--checkpoint.
    #[arg(long, conflicts_with_all = ["preset", "config", "checkpoint"])]
    pub model: Option<String>,
    /// Where to run: auto (GPU if present, else CPU), gpu, cpu.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
}

/// The folder of the installed model `name`, or an error that says how to get it.
pub fn installed_model(name: &str) -> Result<PathBuf> {
    Ok(crate::engine::load::installed_model_dir(name)?)
}

/// Arguments of `separate`.
#[derive(Args, Debug)]
pub struct SeparateArgs {
    /// Audio files (wav, flac, mp3, ogg/opus, m4a/aac, alac, the audio of mp4/mov/mkv/webm).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output folder.
    #[arg(long, short, default_value = "stems")]
    pub out: PathBuf,
    /// Output format: wav16, wav24, f32 (32-bit float WAV), flac, mp3 (LAME, constant bit
    /// rate) or ogg (Ogg Vorbis).
    #[arg(long, default_value = "wav16")]
    pub format: SampleFormat,
    /// Bit rate in kbit/s for mp3 (96, 112, 128, 160, 192, 224, 256 or 320; default 320) and
    /// ogg (64 to 480, a VBR target; default 192).
    #[arg(long, value_name = "KBPS")]
    pub bitrate: Option<u16>,
    /// File-name template under --out ({track}, {stem}, {ext}).
    #[arg(long, default_value = "{track}/{stem}.{ext}")]
    pub template: String,
    /// Overlap between segments, in [0, 0.95) (default 0.25). Giving it, or --segment, runs a
    /// mixit-mss model with locosep's overlap-add instead of its own CSS stitching.
    #[arg(long)]
    pub overlap: Option<f32>,
    /// Segment length in seconds (default: the model's).
    #[arg(long)]
    pub segment: Option<f64>,
    /// Process each file as one segment (exactly the reference's forward; needs memory).
    #[arg(long)]
    pub no_split: bool,
    /// Stems to write, comma-separated (e.g. vocals,instrumental).
    #[arg(long, value_delimiter = ',')]
    pub stems: Option<Vec<String>>,
    /// Chunks per forward pass.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Replace existing output files.
    #[arg(long)]
    pub overwrite: bool,
    /// Downmix inputs with more than two channels to stereo instead of refusing them.
    #[arg(long)]
    pub downmix: bool,
}

/// The model `--model/--preset/--config/--checkpoint` name; with none of them, the bundled
/// default model. Only the argument combinations are checked here; the loading (and its
/// errors, which name the file) is [`crate::engine::load::load_model`]'s.
fn model_choice(args: &ModelArgs) -> Result<ModelChoice> {
    if let Some(name) = &args.model {
        return Ok(ModelChoice::Installed { name: name.clone() });
    }
    Ok(match (&args.preset, &args.config, &args.checkpoint) {
        (None, None, None) => ModelChoice::Bundled,
        (None, None, Some(dir)) if dir.is_dir() => ModelChoice::Folder { dir: dir.clone() },
        (Some(p), None, Some(ck)) => ModelChoice::Preset {
            name: p.clone(),
            checkpoint: ck.clone(),
        },
        (None, Some(c), Some(ck)) => ModelChoice::Config {
            config: c.clone(),
            checkpoint: ck.clone(),
        },
        (_, _, None) => bail!(
            "a preset or config needs trained weights: pass --checkpoint FILE (.safetensors or .pth), \
             or omit --preset/--config to use the bundled model"
        ),
        (None, None, Some(ck)) => bail!(
            "--checkpoint {} needs --preset or --config to say which architecture it is \
             (or pass a model folder holding its config)",
            ck.display()
        ),
        (Some(_), Some(_), _) => bail!("give either --preset or --config, not both"),
    })
}

/// Loads the model the arguments name (see `model_choice`).
pub fn load_model(args: &ModelArgs) -> Result<LoadedModel> {
    load(&model_choice(args)?).map_err(|e| match e {
        EngineError::NoBundledModel => {
            anyhow!("no bundled model found; pass --config and --checkpoint")
        }
        e => e.into(),
    })
}

/// Builds a separator on the chosen device, printing what was chosen.
pub fn build_separator(args: &ModelArgs) -> Result<Separator> {
    let model = load_model(args)?;
    let device = resolve(args.device)?;
    for w in &device.warnings {
        eprintln!("warning: {w}");
    }
    eprintln!(
        "model: {} ({} parameters) on {}",
        model.description,
        human_count(model.config.param_count()),
        device.description
    );
    Ok(Separator::new(model.config, &model.weights, device)?)
}

fn bar(len: u64, prefix: String) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:.bold} [{bar:30}] {pos}/{len} chunks, {elapsed} elapsed, eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_prefix(prefix);
    pb
}

fn separate(args: SeparateArgs) -> Result<()> {
    let format = match args.bitrate {
        Some(kbps) => args
            .format
            .with_bitrate(kbps)
            .map_err(|e| anyhow!("--bitrate {kbps}: {e}"))?,
        None => args.format,
    };
    let export = ExportOptions {
        out_dir: args.out.clone(),
        template: args.template.clone(),
        format,
        stems: args.stems.clone(),
        overwrite: args.overwrite,
    };
    // Settings that need no model are refused before it loads.
    export.validate_template()?;
    for file in &args.files {
        check_input(file)?;
    }
    let sep = build_separator(&args.model)?;
    let cfg = sep.config().clone();
    if let Some(list) = &args.stems {
        validate_stems(list, &cfg.sources)?;
    }
    let params = SeparateParams {
        segment_seconds: args.segment,
        overlap: args.overlap.unwrap_or(0.25),
        no_split: args.no_split,
        batch: args.batch,
        overlap_add: args.segment.is_some() || args.overlap.is_some(),
        ..Default::default()
    };
    params.validate(&cfg)?;
    // One track name per input, distinct; then refuse before any work if a target exists or
    // two inputs would write the same file.
    let names = unique_track_names(&args.files);
    let mut claimed: std::collections::HashMap<PathBuf, &Path> = std::collections::HashMap::new();
    for (file, name) in args.files.iter().zip(&names) {
        if *name != track_name(file) {
            eprintln!(
                "note: another input is also named `{}`; the stems of {} go to track `{name}`",
                track_name(file),
                file.display()
            );
        }
        let targets = export.targets(name, &cfg.sources)?;
        export.check_targets(&targets)?;
        for (_, path) in targets {
            if let Some(other) = claimed.insert(path.clone(), file.as_path()) {
                bail!(
                    "{} and {} would both be written to {} (the template `{}` has no {{track}}); \
                     add {{track}} to --template or separate them one at a time",
                    other.display(),
                    file.display(),
                    path.display(),
                    export.template
                );
            }
        }
    }
    let cancel = CancelToken::new();
    {
        let cancel = cancel.clone();
        // The folders this run writes temp files in.
        let mut dirs: Vec<PathBuf> = claimed
            .keys()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        dirs.sort();
        dirs.dedup();
        // Ctrl-C, SIGTERM or SIGHUP: stop after the current chunk. A second one ends the
        // process at once, after removing this run's temp files (files are only ever renamed
        // into place complete, so nothing partial remains under a final name).
        let _ = ctrlc::set_handler(move || {
            if cancel.is_cancelled() {
                for d in &dirs {
                    let _ = crate::audio::encode::remove_own_temp_files(d);
                }
                std::process::exit(130);
            }
            eprintln!("\nstopping after the current chunk…");
            cancel.cancel();
        });
    }
    if let Ok(n) = crate::audio::encode::clean_temp_files(&args.out)
        && n > 0
    {
        eprintln!(
            "removed {n} leftover temporary file(s) from an interrupted run in {}",
            args.out.display()
        );
    }
    let mut failures = 0;
    for (file, name) in args.files.iter().zip(&names) {
        match separate_one(&sep, file, name, &params, &export, &cancel, args.downmix) {
            Ok(paths) => {
                for p in paths {
                    println!("{}", p.display());
                }
            }
            Err(e) if cancel.is_cancelled() => {
                eprintln!(
                    "cancelled: {}; no partial files were written",
                    error_text(&e)
                );
                std::process::exit(130);
            }
            Err(e) => {
                failures += 1;
                // Most errors name the file already.
                let text = error_text(&e);
                if text.contains(&file.display().to_string()) {
                    eprintln!("error: {text}");
                } else {
                    eprintln!("error: {}: {text}", file.display());
                }
            }
        }
    }
    if failures > 0 {
        bail!("{failures} of {} file(s) failed", args.files.len());
    }
    Ok(())
}

/// Refuses, before any work, an input that cannot be separated whatever its content: `-`
/// (standard input), and pipes and devices (`/dev/stdin`, `/dev/zero`): a song is read twice,
/// once to count its samples and once to separate them, which a pipe cannot do.
fn check_input(file: &Path) -> Result<()> {
    if file.as_os_str() == "-" {
        bail!(
            "reading a song from standard input (`-`) is not supported; save it to a file and \
             pass its path"
        );
    }
    // A missing file or a directory is reported by the decoder, with the reason.
    let Ok(meta) = std::fs::metadata(file) else {
        return Ok(());
    };
    if meta.is_dir() || meta.is_file() {
        return Ok(());
    }
    let kind = {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            let t = meta.file_type();
            if t.is_fifo() {
                "a pipe"
            } else if t.is_char_device() || t.is_block_device() {
                "a device"
            } else if t.is_socket() {
                "a socket"
            } else {
                "not a regular file"
            }
        }
        #[cfg(not(unix))]
        {
            "not a regular file"
        }
    };
    bail!(
        "'{}' is {kind}, not an audio file: locosep reads a song twice (once to count its \
         samples, once to separate them), which a pipe or device cannot do; save it to a file \
         first",
        file.display()
    )
}

fn separate_one(
    sep: &Separator,
    file: &Path,
    track: &str,
    params: &SeparateParams,
    export: &ExportOptions,
    cancel: &CancelToken,
    downmix: bool,
) -> Result<Vec<PathBuf>> {
    let t0 = Instant::now();
    let decode = DecodeOptions {
        downmix,
        ..Default::default()
    };
    let pb = bar(1, track.to_string());
    pb.set_message(format!("{track} (reading)"));
    let report = sep.with_fallback(
        cancel,
        &mut |_, w| pb.println(format!("warning: {w}")),
        &mut |sep| {
            separate_file_as(
                sep,
                file,
                track,
                &decode,
                params,
                export,
                cancel,
                &mut |p| {
                    pb.set_message(track.to_string());
                    pb.set_length(p.total as u64);
                    pb.set_position(p.done as u64);
                },
            )
        },
    )?;
    pb.finish_and_clear();
    for w in crate::audio::decode::decode_warnings(
        file,
        report.skipped_packets,
        report.nonfinite_samples,
    ) {
        eprintln!("{w}");
    }
    let elapsed = t0.elapsed().as_secs_f64();
    // The process's resident high-water mark so far (Linux), in the summary line.
    let peak = crate::memory::sampler::process_rss()
        .1
        .map(|b| format!(", peak memory {:.1} MiB", b as f64 / (1u64 << 20) as f64))
        .unwrap_or_default();
    eprintln!(
        "{}: {:.1} s of audio in {elapsed:.1} s (real-time factor {:.2}{peak})",
        file.display(),
        report.seconds,
        elapsed / report.seconds.max(1e-9)
    );
    Ok(report.written)
}

fn presets() -> Result<()> {
    println!(
        "{:<18} {:>9} {:>8} {:>10} {:>6} {:>5} {:>6}  description",
        "preset", "params", "segment", "n_fft/hop", "layers", "C", "heads"
    );
    for p in builtin_presets() {
        let c = &p.config;
        println!(
            "{:<18} {:>9} {:>7}s {:>10} {:>6} {:>5} {:>6}  {}",
            p.name,
            human_count(c.param_count()),
            c.segment_seconds,
            format!("{}/{}", c.n_fft, c.hop_length),
            c.n_layers,
            c.emb_dim,
            c.n_heads,
            p.description
        );
    }
    match crate::assets::default_model() {
        Some((config, weights, what)) => println!(
            "\ndefault model (no --preset/--config): {what}\n  {}\n  {}",
            config.display(),
            weights.display()
        ),
        None => {
            println!("\nno bundled default model found (pass --preset/--config and --checkpoint)")
        }
    }
    Ok(())
}

/// The message `locosep` prints for `e`: its context chain joined by `: `, leaving out a cause
/// whose text the message already holds (an I/O error quoted by its wrapper would otherwise
/// appear twice: "… (os error 2): … (os error 2)"), with numbers of hundreds of digits
/// written compactly (`1e308`).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if text.contains(&c) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&c);
    }
    crate::model::config::compact_long_numbers(&text)
}

/// Runs the CLI; without a subcommand, the desktop app.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Separate(a)) => separate(a),
        Some(Command::ModelCheck(a)) => model_check::run(a),
        Some(Command::Presets) => presets(),
        Some(Command::Plan(a)) => plan::run(a),
        Some(Command::Bench(a)) => bench::run(a),
        Some(Command::Synth(a)) => synth::run(a),
        Some(Command::Train(a)) => train::run_train(a),
        Some(Command::Eval(a)) => train::run_eval(a),
        Some(Command::Models(a)) => models::run(a),
        Some(Command::Export(a)) => export::run(a),
        None => crate::gui::run(cli.path, cli.screenshot).map_err(anyhow::Error::msg),
    }
}
