//! Writing synthetic multitrack songs as a MUSDB18-HQ-layout data set:
//! `<out>/<track>/{mixture,vocals,drums,bass,other}.wav`, 32-bit float stereo at 44.1 kHz.
//!
//! Float WAV keeps the invariant exact on disk: reading the four stems back and summing them
//! with [`sum_stems`] reproduces `mixture.wav` bit for bit. Every file is written to
//! `.<name>.locosep-tmp` beside its final name and renamed into place, so an interrupted run
//! never leaves a truncated WAV under a real name.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use rustysynth::SoundFont;

use super::error::{Result, SynthError};
use super::procedural::generate_song;
use super::render::{
    RenderLength, RenderOptions, SAMPLE_RATE, Stems, render_midi_file, render_smf, sum_stems,
};
use super::route::Stem;
use super::soundfont::load_default_soundfont;

/// File names of one track folder, mixture first.
pub const TRACK_FILES: [&str; 5] = [
    "mixture.wav",
    "vocals.wav",
    "drums.wav",
    "bass.wav",
    "other.wav",
];

/// Suffix of the temporary files that are renamed into place.
pub const TMP_SUFFIX: &str = ".locosep-tmp";

/// What [`synth_dataset`] should write.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthOptions {
    /// Folder that receives one sub-folder per track (created if missing).
    pub out_dir: PathBuf,
    /// Number of procedural songs; with `midi_dir`, the most MIDI files to use (0 = all).
    pub tracks: usize,
    /// Length of every track in seconds (songs are cut, MIDI files cut or looped).
    pub seconds: f64,
    /// Seed of the first procedural song; track `i` uses `seed + i` and is named
    /// `synth_<seed + i>`.
    pub seed: u64,
    /// SoundFont to use instead of the default search (see [`super::soundfont::find_soundfont`]).
    pub soundfont: Option<PathBuf>,
    /// Render the `.mid`/`.midi` files of this folder (sorted by name, one track each, named
    /// after the file) instead of procedural songs.
    pub midi_dir: Option<PathBuf>,
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Replace existing track folders instead of refusing to start.
    pub overwrite: bool,
    /// Asset roots searched for `soundfonts/sf_GMbank.sf2` (the CLI passes
    /// `crate::assets::asset_roots()`; empty means the source tree's `assets/`).
    pub asset_roots: Vec<PathBuf>,
}

impl SynthOptions {
    /// Defaults: 10 tracks of 30 s from seed 0, default SoundFont search, one thread per
    /// core, no overwriting.
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        SynthOptions {
            out_dir: out_dir.into(),
            tracks: 10,
            seconds: 30.0,
            seed: 0,
            soundfont: None,
            midi_dir: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            overwrite: false,
            asset_roots: Vec::new(),
        }
    }
}

/// One track to render.
#[derive(Clone, Debug)]
enum Job {
    Procedural { name: String, seed: u64 },
    Midi { name: String, path: PathBuf },
}

impl Job {
    fn name(&self) -> &str {
        match self {
            Job::Procedural { name, .. } | Job::Midi { name, .. } => name,
        }
    }
}

/// Longest track `synth_dataset` renders, in seconds (ten minutes, about MUSDB18's longest
/// song; a track is held in memory while it is rendered).
pub const MAX_SECONDS: f64 = 600.0;
/// Most tracks one `synth_dataset` call renders.
pub const MAX_TRACKS: usize = 100_000;

/// Renders and writes the data set described by `opts`, in parallel over tracks, calling
/// `progress(done, total)` on the calling thread once at the start and after each track.
/// Returns the track folders in job order.
///
/// Before rendering anything it fails with [`SynthError::TrackExists`] if a track folder exists
/// and `opts.overwrite` is false. After a failure no new track is started; tracks already
/// written stay, and the first error is returned.
pub fn synth_dataset(opts: &SynthOptions, progress: &dyn Fn(usize, usize)) -> Result<Vec<PathBuf>> {
    if !(opts.seconds.is_finite() && opts.seconds > 0.0 && opts.seconds <= MAX_SECONDS) {
        return Err(SynthError::InvalidOptions(format!(
            "seconds must be > 0 and at most {MAX_SECONDS}, got {}",
            crate::model::config::fmt_number(opts.seconds)
        )));
    }
    if opts.tracks > MAX_TRACKS {
        return Err(SynthError::InvalidOptions(format!(
            "tracks must be at most {MAX_TRACKS}, got {}",
            opts.tracks
        )));
    }
    let samples = (opts.seconds * f64::from(SAMPLE_RATE)).round() as usize;
    let jobs = plan_jobs(opts)?;
    for job in &jobs {
        let dir = opts.out_dir.join(job.name());
        if dir.exists() && !opts.overwrite {
            return Err(SynthError::TrackExists { path: dir });
        }
    }
    let soundfont = load_default_soundfont(opts.soundfont.as_deref(), &opts.asset_roots)?;
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| SynthError::io(&opts.out_dir, e))?;

    let total = jobs.len();
    progress(0, total);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Result<(usize, PathBuf)>>();
    let mut done: Vec<Option<PathBuf>> = vec![None; total];
    let mut first_error = None;
    std::thread::scope(|scope| {
        for _ in 0..opts.threads.clamp(1, total.max(1)) {
            let tx = tx.clone();
            let (jobs, next, stop, soundfont) = (&jobs, &next, &stop, &soundfont);
            let out_dir = &opts.out_dir;
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let result = catch_unwind(AssertUnwindSafe(|| {
                        render_job(job, soundfont, samples, &out_dir.join(job.name()))
                    }))
                    .unwrap_or_else(|_| {
                        Err(SynthError::WorkerPanicked {
                            track: job.name().to_string(),
                        })
                    });
                    if result.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    // The receiver outlives the workers; a send error cannot happen.
                    let _ = tx.send(result.map(|dir| (i, dir)));
                }
            });
        }
        drop(tx);
        let mut finished = 0;
        for msg in rx {
            match msg {
                Ok((i, dir)) => {
                    done[i] = Some(dir);
                    finished += 1;
                    progress(finished, total);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(done.into_iter().flatten().collect()),
    }
}

/// The list of tracks to render, with unique folder names.
fn plan_jobs(opts: &SynthOptions) -> Result<Vec<Job>> {
    let Some(midi_dir) = &opts.midi_dir else {
        if opts.tracks == 0 {
            return Err(SynthError::InvalidOptions(
                "tracks must be at least 1".into(),
            ));
        }
        return Ok((0..opts.tracks as u64)
            .map(|i| {
                let seed = opts.seed.wrapping_add(i);
                Job::Procedural {
                    name: format!("synth_{seed}"),
                    seed,
                }
            })
            .collect());
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(midi_dir)
        .map_err(|e| SynthError::io(midi_dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    e.eq_ignore_ascii_case("mid") || e.eq_ignore_ascii_case("midi")
                })
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(SynthError::NoMidiFiles {
            dir: midi_dir.clone(),
        });
    }
    if opts.tracks > 0 {
        files.truncate(opts.tracks);
    }
    let mut used = std::collections::HashSet::new();
    Ok(files
        .into_iter()
        .map(|path| {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let base = sanitize(&stem);
            let mut name = base.clone();
            let mut k = 2;
            while !used.insert(name.clone()) {
                name = format!("{base}_{k}");
                k += 1;
            }
            Job::Midi { name, path }
        })
        .collect())
}

/// A folder name from a file stem: letters, digits, `-`, `_`, `.` kept, the rest `_`.
fn sanitize(stem: &str) -> String {
    let s: String = stem
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() { "track".to_string() } else { s }
}

fn render_job(
    job: &Job,
    soundfont: &Arc<SoundFont>,
    samples: usize,
    dir: &Path,
) -> Result<PathBuf> {
    let opts = RenderOptions {
        length: RenderLength::Exact {
            samples,
            loop_song: true,
        },
        ..RenderOptions::default()
    };
    let seconds = samples as f64 / f64::from(SAMPLE_RATE);
    let stems = match job {
        Job::Procedural { seed, .. } => {
            render_smf(&generate_song(*seed, seconds).smf, soundfont, &opts)?
        }
        Job::Midi { path, .. } => render_midi_file(path, soundfont, &opts)?,
    };
    write_track(dir, &stems)?;
    Ok(dir.to_path_buf())
}

/// Writes `mixture.wav` (= Σ stems, see [`Stems::mixture`]) and the four stem WAVs into `dir`
/// (created if missing), each through a temporary file and a rename.
pub fn write_track(dir: &Path, stems: &Stems) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| SynthError::io(dir, e))?;
    let mixture = stems.mixture();
    write_wav_f32(&dir.join(TRACK_FILES[0]), &mixture)?;
    for (stem, file) in Stem::ALL.into_iter().zip(&TRACK_FILES[1..]) {
        write_wav_f32(&dir.join(file), stems.get(stem))?;
    }
    Ok(())
}

/// Writes a stereo 32-bit float WAV at [`SAMPLE_RATE`] via `.<name>.locosep-tmp` + rename.
fn write_wav_f32(path: &Path, channels: &[Vec<f32>; 2]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}{TMP_SUFFIX}"));
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let wav_err = |source| SynthError::Wav {
        path: path.to_path_buf(),
        source,
    };
    let write = || -> Result<(), hound::Error> {
        let mut w = hound::WavWriter::create(&tmp, spec)?;
        for (&l, &r) in channels[0].iter().zip(&channels[1]) {
            w.write_sample(l)?;
            w.write_sample(r)?;
        }
        w.finalize()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(wav_err(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| SynthError::io(path, e))
}

/// Reads a stereo float WAV written by `write_wav_f32` (for checks and tests).
pub fn read_wav_f32(path: &Path) -> Result<[Vec<f32>; 2]> {
    let wav_err = |source| SynthError::Wav {
        path: path.to_path_buf(),
        source,
    };
    let mut r = hound::WavReader::open(path).map_err(wav_err)?;
    let spec = r.spec();
    if spec.channels != 2 || spec.sample_format != hound::SampleFormat::Float {
        return Err(SynthError::InvalidOptions(format!(
            "{}: expected stereo float WAV, found {} channel(s) {:?}",
            path.display(),
            spec.channels,
            spec.sample_format
        )));
    }
    let mut out = [Vec::new(), Vec::new()];
    for (i, s) in r.samples::<f32>().enumerate() {
        out[i % 2].push(s.map_err(wav_err)?);
    }
    Ok(out)
}

/// True when `mixture` equals [`sum_stems`] of the stems sample for sample, bit for bit.
pub fn is_exact_sum(mixture: &[Vec<f32>; 2], stems: [&[Vec<f32>; 2]; 4]) -> bool {
    (0..2).all(|c| {
        let n = mixture[c].len();
        stems.iter().all(|s| s[c].len() == n)
            && (0..n).all(|i| {
                let sum = sum_stems(
                    stems[0][c][i],
                    stems[1][c][i],
                    stems[2][c][i],
                    stems[3][c][i],
                );
                sum.to_bits() == mixture[c][i].to_bits()
            })
    })
}
