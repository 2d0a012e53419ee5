//! The one error type of the `synth` module.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while finding a SoundFont, reading MIDI, rendering stems or
/// writing a synthetic data set. Every variant that concerns a file names it.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// No SoundFont was given and none of the default places holds one.
    #[error(
        "no SoundFont found (looked in: {}); install one with \
         `apt-get install csound-soundfont` or pass `--soundfont FILE.sf2`",
        .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    SoundFontNotFound {
        /// The places that were tried, in order.
        searched: Vec<PathBuf>,
    },
    /// The SoundFont is an SF3 file (Ogg-compressed samples), which rustysynth cannot play.
    #[error(
        "{}: SF3 (compressed) SoundFonts are not supported by rustysynth; convert it to SF2 \
         first (for example with Polyphone or `sf3convert -x`), or pass another `.sf2`",
        .path.display()
    )]
    Sf3NotSupported {
        /// The offending file.
        path: PathBuf,
    },
    /// The SoundFont exists but could not be parsed.
    #[error("{}: not a usable SoundFont: {reason}", .path.display())]
    BadSoundFont {
        /// The offending file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A MIDI file could not be parsed.
    #[error("{}: not a valid Standard MIDI File: {reason}", .path.display())]
    BadMidi {
        /// The offending file (or a placeholder such as `<memory>` for in-memory songs).
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A MIDI file holds no note at all.
    #[error("{}: the MIDI file has no notes", .path.display())]
    EmptyMidi {
        /// The offending file.
        path: PathBuf,
    },
    /// The MIDI folder given for a data set holds no `.mid`/`.midi` file.
    #[error("{}: no .mid or .midi files in this folder", .dir.display())]
    NoMidiFiles {
        /// The folder that was searched.
        dir: PathBuf,
    },
    /// A track folder already exists and overwriting was not asked for.
    #[error("{}: track folder already exists (pass the overwrite flag to replace it)", .path.display())]
    TrackExists {
        /// The existing folder.
        path: PathBuf,
    },
    /// The requested options make no sense (zero tracks, non-positive length, ...).
    #[error("invalid synth options: {0}")]
    InvalidOptions(String),
    /// Reading or writing a file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Writing a WAV file failed.
    #[error("{}: could not write WAV: {source}", .path.display())]
    Wav {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        source: hound::Error,
    },
    /// rustysynth refused the synthesizer settings (should not happen with our fixed settings).
    #[error("synthesizer setup failed: {0}")]
    Synthesizer(String),
    /// A worker thread panicked while rendering a data set.
    #[error("a synth worker thread panicked while rendering {track}")]
    WorkerPanicked {
        /// The track the worker was on, if known.
        track: String,
    },
}

impl SynthError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        SynthError::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`SynthError`].
pub type Result<T, E = SynthError> = std::result::Result<T, E>;
