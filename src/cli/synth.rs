//! `locosep synth`: write MUSDB18-HQ-layout multitrack songs rendered from MIDI.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::model::config::fmt_number;
use crate::synth::musdb::{MAX_SECONDS, MAX_TRACKS, SynthOptions, synth_dataset};

/// Arguments of `synth`.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Output folder (one `<track>/{mixture,vocals,drums,bass,other}.wav` folder per song).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of songs (with --midi: the most MIDI files to use, 0 = all).
    #[arg(long, default_value_t = 10)]
    pub tracks: usize,
    /// Length of each song in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub seconds: f64,
    /// Seed of the first procedural song (song i uses seed + i).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// SoundFont (.sf2) to use instead of the bundled/system General MIDI bank.
    #[arg(long)]
    pub soundfont: Option<PathBuf>,
    /// Render the .mid files of this folder instead of procedural songs.
    #[arg(long)]
    pub midi: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Replace existing track folders.
    #[arg(long)]
    pub overwrite: bool,
}

/// Runs the renderer with a progress bar.
pub fn run(a: SynthArgs) -> Result<()> {
    // The flags by name, before the renderer checks the same ranges.
    if !(a.seconds.is_finite() && a.seconds > 0.0 && a.seconds <= MAX_SECONDS) {
        anyhow::bail!(
            "--seconds {} is out of range: it must be > 0 and at most {MAX_SECONDS}",
            fmt_number(a.seconds)
        );
    }
    let min_tracks = if a.midi.is_some() { 0 } else { 1 };
    if !(min_tracks..=MAX_TRACKS).contains(&a.tracks) {
        anyhow::bail!(
            "--tracks {} is out of range: it must be between {min_tracks} and {MAX_TRACKS}",
            a.tracks
        );
    }
    let mut opts = SynthOptions::new(&a.out);
    opts.tracks = a.tracks;
    opts.seconds = a.seconds;
    opts.seed = a.seed;
    opts.soundfont = a.soundfont;
    opts.midi_dir = a.midi;
    if let Some(t) = a.threads {
        opts.threads = t.max(1);
    }
    opts.overwrite = a.overwrite;
    opts.asset_roots = crate::assets::asset_roots();
    let pb = ProgressBar::new(a.tracks as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "synth [{bar:30}] {pos}/{len} songs, {elapsed} elapsed, eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let written = synth_dataset(&opts, &|done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    })?;
    pb.finish_and_clear();
    for p in &written {
        println!("{}", p.display());
    }
    eprintln!("wrote {} song(s) to {}", written.len(), a.out.display());
    Ok(())
}
