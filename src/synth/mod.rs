//! Synthetic multitrack songs: General MIDI arrangements rendered through a SoundFont, one
//! synthesizer per stem, so that the mixture is exactly the sum of the stems (the Slakh idea).
//!
//! - [`soundfont`]: finding and loading the SF2 bank (SF3 is refused with a clear error);
//! - [`schedule`]: a Standard MIDI File flattened to one sample-timed event list (tempo map);
//! - [`route`]: the routing rule, note → stem;
//! - [`render`]: four rustysynth synthesizers fed by that list, rendered in blocks between
//!   events, giving [`render::Stems`];
//! - [`procedural`]: a seeded song generator (one distinct song per seed);
//! - [`musdb`]: MUSDB18-HQ-layout data sets from procedural songs or `.mid` files, in parallel.
//!
//! # Routing rule
//!
//! Each note-on goes to one stem, chosen by its channel's program *at that moment*
//! (first match wins, programs 0-based, "GM n" counted from 1):
//!
//! 1. MIDI channel 10 (index 9) → **drums**;
//! 2. GM bass family, GM 33–40 (programs 32..=39) → **bass**;
//! 3. voice-like programs GM 53 Choir Aahs, 54 Voice Oohs, 55 Synth Voice, 86 Lead 6 (voice)
//!    (programs 52, 53, 54, 85), **or** any note from a track whose track or instrument name
//!    contains `vocal`, `voice`, `vox`, `melody`, `lead` or `singer` (case-insensitive;
//!    multi-track files only, since a format-0 file's one name is the song's title)
//!    → **vocals**;
//! 4. everything else → **other**.
//!
//! A program change therefore moves the channel's *later* notes; a note already sounding stays
//! in its stem, and its note-off goes to the synth that got the note-on. Controllers, program
//! changes, pitch bend and aftertouch go to all four synths, so each synth's channel state is
//! the same and a note sounds as it would in a single synth. Each synth has its own reverb and
//! chorus, so Σ stems is exactly the mixture (see [`render::Stems::mixture`]).

pub mod error;
pub mod musdb;
pub mod procedural;
pub mod render;
pub mod route;
pub mod schedule;
pub mod soundfont;

pub use error::{Result, SynthError};
pub use musdb::{SynthOptions, synth_dataset, write_track};
pub use procedural::{ProceduralSong, SongInfo, generate_song};
pub use render::{RenderLength, RenderOptions, SAMPLE_RATE, Stems, render_midi_file, render_smf};
pub use route::{Stem, route_note};
pub use soundfont::{find_soundfont, load_default_soundfont, load_soundfont};

#[cfg(test)]
mod tests;
