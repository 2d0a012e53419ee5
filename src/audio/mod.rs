//! Audio input/output for locosep: decoding, resampling and encoding.
//!
//! * [`decode`]: any supported container/codec → planar `f32` [`AudioBuffer`] (symphonia, and
//!   libopus for Opus).
//! * [`resample`]: delay-compensated, sample-aligned sample-rate conversion (rubato).
//! * [`encode`]: atomic WAV (16/24-bit int, 32-bit float) and FLAC writers.
//!
//! All fallible functions return [`AudioError`], whose messages are written for end users and
//! always name the file involved (when one is).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// File extensions of the audio files locosep decodes (symphonia's demuxers and codecs as built
/// here, plus Opus through libopus): what the open dialog offers and what a dataset folder's
/// stems may be. Video containers (`mp4`, `mov`, `mkv`, `webm`) count: their first audio track
/// is read and the video is ignored.
pub const AUDIO_EXTENSIONS: [&str; 17] = [
    "wav", "flac", "mp3", "ogg", "oga", "opus", "m4a", "aac", "mp4", "m4v", "mov", "mkv", "mka",
    "webm", "aiff", "aif", "caf",
];

pub mod decode;
pub mod encode;
pub mod resample;

pub use decode::{
    AudioInfo, DecodeOptions, DecodeStats, StreamDecoder, audio_track_count, decode_file,
    decode_file_with_stats, probe_info,
};
pub use encode::{SampleFormat, clean_temp_files, is_temp_file, write_atomic, write_audio};
pub use resample::{StreamResampler, resample};

/// Planar 32-bit float audio.
///
/// Invariant (checked by [`AudioBuffer::new`], assumed by every function in this module): all
/// channels have the same length. Samples are nominally in `[-1.0, 1.0]` but may exceed it
/// (e.g. after resampling); writers clip when converting to integer formats.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioBuffer {
    /// Sample rate in Hz (always > 0 for buffers produced by this module).
    pub sample_rate: u32,
    /// One `Vec` per channel (planar layout), all of equal length.
    pub channels: Vec<Vec<f32>>,
}

impl AudioBuffer {
    /// Creates a buffer, checking that the sample rate is non-zero and that every channel has the
    /// same length.
    pub fn new(sample_rate: u32, channels: Vec<Vec<f32>>) -> Result<Self, AudioError> {
        if sample_rate == 0 {
            return Err(AudioError::InvalidBuffer(
                "sample rate must be greater than 0 Hz".into(),
            ));
        }
        if let Some(first) = channels.first() {
            let len = first.len();
            if let Some((i, c)) = channels.iter().enumerate().find(|(_, c)| c.len() != len) {
                return Err(AudioError::InvalidBuffer(format!(
                    "channel {i} has {} samples but channel 0 has {len}; all channels must have the same length",
                    c.len()
                )));
            }
        }
        Ok(Self {
            sample_rate,
            channels,
        })
    }

    /// Number of frames (samples per channel); 0 if there are no channels.
    pub fn len(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    /// True when the buffer holds no frames.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of channels.
    pub fn num_channels(&self) -> usize {
        self.channels.len()
    }

    /// Duration in seconds (`len / sample_rate`); 0.0 if the sample rate is 0.
    pub fn duration_secs(&self) -> f64 {
        if self.sample_rate == 0 {
            0.0
        } else {
            self.len() as f64 / f64::from(self.sample_rate)
        }
    }

    /// Checks the equal-length invariant (useful after building a buffer through the pub fields).
    pub fn validate(&self) -> Result<(), AudioError> {
        let len = self.len();
        if self.sample_rate == 0 {
            return Err(AudioError::InvalidBuffer(
                "sample rate must be greater than 0 Hz".into(),
            ));
        }
        if self.channels.iter().any(|c| c.len() != len) {
            return Err(AudioError::InvalidBuffer(
                "channels have different lengths; all channels must have the same length".into(),
            ));
        }
        Ok(())
    }
}

/// Errors produced by the audio module. Every variant that concerns a file carries its path and
/// names it in the message.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be opened (missing, permission denied, is a directory, ...).
    #[error("cannot open audio file '{}': {source}", path.display())]
    Open {
        /// File that could not be opened.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// An I/O error happened while reading an already opened file.
    #[error("error while reading audio file '{}': {source}", path.display())]
    Read {
        /// File being read.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is not audio, or its container/codec is not supported.
    #[error("'{}' is not a supported audio file: {reason} (supported: WAV, FLAC, MP3, Ogg Vorbis and Opus, M4A/MP4/MOV with AAC or ALAC, WebM/MKV with Opus, Vorbis, FLAC or AAC, AIFF, CAF)", path.display())]
    Unsupported {
        /// Offending file.
        path: PathBuf,
        /// Human-readable reason.
        reason: String,
    },
    /// The file looks like audio but its data is malformed or truncated.
    #[error("audio file '{}' is corrupt or truncated: {detail}", path.display())]
    Corrupt {
        /// Offending file.
        path: PathBuf,
        /// Human-readable detail.
        detail: String,
    },
    /// The file contains no audio samples.
    #[error("audio file '{}' contains no audio samples", path.display())]
    Empty {
        /// Offending file.
        path: PathBuf,
    },
    /// The file has more than two channels and downmixing was not requested.
    #[error(
        "audio file '{}' has {channels} channels, but locosep handles only mono and stereo audio; \
         use the downmix option (--downmix) to mix it down to stereo",
        path.display()
    )]
    TooManyChannels {
        /// Offending file.
        path: PathBuf,
        /// Number of channels found in the file.
        channels: usize,
    },
    /// The file (or its header) describes audio beyond the limits locosep accepts (absurd channel
    /// count, sample rate or duration), which protects against huge allocations.
    #[error("audio file '{}' is too large or has implausible parameters: {detail}", path.display())]
    TooLarge {
        /// Offending file.
        path: PathBuf,
        /// Human-readable detail.
        detail: String,
    },
    /// The output file already exists and overwriting was not allowed.
    #[error("output file '{}' already exists; pass --overwrite to replace it", path.display())]
    Exists {
        /// Existing file.
        path: PathBuf,
    },
    /// Writing the output file failed (nothing was left at the final path).
    #[error("cannot write '{}': {source}", path.display())]
    Write {
        /// Destination file.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// Encoding failed (e.g. the buffer cannot be represented in the chosen format).
    #[error("cannot encode '{}': {detail}", path.display())]
    Encode {
        /// Destination file.
        path: PathBuf,
        /// Human-readable detail.
        detail: String,
    },
    /// The audio to be written holds NaN or infinite samples; nothing was written.
    #[error(
        "refusing to write '{}': the audio contains {count} sample(s) that are not finite \
         numbers (NaN or infinity), which the model or its settings produced; no file was written",
        path.display()
    )]
    NonFinite {
        /// Destination file.
        path: PathBuf,
        /// Non-finite samples in the refused block.
        count: usize,
    },
    /// Resampling failed.
    #[error("resampling failed: {0}")]
    Resample(String),
    /// An [`AudioBuffer`] violated its invariants.
    #[error("invalid audio buffer: {0}")]
    InvalidBuffer(String),
}

impl AudioError {
    /// The file this error concerns, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            AudioError::Open { path, .. }
            | AudioError::Read { path, .. }
            | AudioError::Unsupported { path, .. }
            | AudioError::Corrupt { path, .. }
            | AudioError::Empty { path }
            | AudioError::TooManyChannels { path, .. }
            | AudioError::TooLarge { path, .. }
            | AudioError::Exists { path }
            | AudioError::Write { path, .. }
            | AudioError::Encode { path, .. }
            | AudioError::NonFinite { path, .. } => Some(path),
            AudioError::Resample(_) | AudioError::InvalidBuffer(_) => None,
        }
    }
}

/// Small helper so `Display` of a path list is easy in messages.
pub(crate) struct DisplayList<'a>(pub &'a [&'a str]);

impl fmt::Display for DisplayList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(s)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_lengths() {
        assert!(AudioBuffer::new(44100, vec![vec![0.0; 3], vec![0.0; 3]]).is_ok());
        let e = AudioBuffer::new(44100, vec![vec![0.0; 3], vec![0.0; 2]]).unwrap_err();
        assert!(matches!(e, AudioError::InvalidBuffer(_)));
        assert!(AudioBuffer::new(0, vec![vec![0.0; 3]]).is_err());
    }

    #[test]
    fn helpers() {
        let b = AudioBuffer::new(48000, vec![vec![0.0; 24000], vec![0.0; 24000]]).unwrap();
        assert_eq!(b.len(), 24000);
        assert_eq!(b.num_channels(), 2);
        assert!((b.duration_secs() - 0.5).abs() < 1e-12);
        assert!(!b.is_empty());
        let e = AudioBuffer::new(48000, vec![]).unwrap();
        assert_eq!(e.len(), 0);
        assert!(e.is_empty());
    }

    #[test]
    fn error_messages_name_file() {
        let p = PathBuf::from("/x/song.mp3");
        let e = AudioError::TooManyChannels {
            path: p.clone(),
            channels: 6,
        };
        let s = e.to_string();
        assert!(
            s.contains("song.mp3") && s.contains("mono and stereo") && s.contains("downmix"),
            "{s}"
        );
        let s = AudioError::Exists { path: p.clone() }.to_string();
        assert!(s.contains("song.mp3") && s.contains("--overwrite"), "{s}");
        assert_eq!(
            AudioError::Empty { path: p.clone() }.path(),
            Some(p.as_path())
        );
    }
}
