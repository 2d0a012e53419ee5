//! `locosep synth`: write MUSDB18-HQ-layout multitrack songs rendered from MIDI.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::synth::musdb::{SynthOptions, synth_dataset};

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
