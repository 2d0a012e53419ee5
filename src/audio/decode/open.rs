//! Opening a file: header pre-checks that protect symphonia from absurd headers, container
//! probing, audio-track choice, header validation against the limits and the codec set-up.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use symphonia::core::audio::Channels;
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, Track, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use super::{MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
use crate::audio::AudioError;

/// Maps a symphonia error to an [`AudioError`] naming `path`. `during_probe` selects wording:
/// an `Unsupported` at probe time means "not audio / unknown format".
pub(super) fn map_err(path: &Path, e: SymError, during_probe: bool) -> AudioError {
    let path = path.to_path_buf();
    match e {
        SymError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => AudioError::Corrupt {
            path,
            detail: "the file ends unexpectedly (truncated?)".into(),
        },
        SymError::IoError(source) => AudioError::Read { path, source },
        SymError::DecodeError(msg) => AudioError::Corrupt {
            path,
            detail: msg.to_string(),
        },
        SymError::Unsupported(what) if during_probe => AudioError::Unsupported {
            path,
            reason: format!("unknown or unsupported format ({what})"),
        },
        SymError::Unsupported(what) => AudioError::Unsupported {
            path,
            reason: what.to_string(),
        },
        SymError::LimitError(what) => AudioError::TooLarge {
            path,
            detail: what.to_string(),
        },
        SymError::SeekError(_) => AudioError::Corrupt {
            path,
            detail: "seek failed".into(),
        },
        SymError::ResetRequired => AudioError::Corrupt {
            path,
            detail: "unexpected stream reset".into(),
        },
        other => AudioError::Corrupt {
            path,
            detail: other.to_string(),
        },
    }
}

pub(super) fn open_format(path: &Path) -> Result<Box<dyn FormatReader + 'static>, AudioError> {
    let file = File::open(path).map_err(|source| AudioError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let meta = file.metadata().map_err(|source| AudioError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        return Err(AudioError::Open {
            path: path.to_path_buf(),
            source: io::Error::other("is a directory, not a file"),
        });
    }
    if meta.len() == 0 {
        return Err(AudioError::Empty {
            path: path.to_path_buf(),
        });
    }
    let mut file = file;
    check_wav_header(path, &mut file)?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(&ext.to_ascii_lowercase());
    }
    symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| match map_err(path, e, true) {
            // A FLAC stream of zero samples is a valid file (STREAMINFO only) that the reader
            // cannot open; it holds no audio rather than being damaged.
            AudioError::Corrupt { .. } if flac_declares_no_samples(path) => AudioError::Empty {
                path: path.to_path_buf(),
            },
            other => other,
        })
}

/// Whether `path` starts with a FLAC STREAMINFO block whose total sample count is 0.
pub(super) fn flac_declares_no_samples(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 26];
    let ok = File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok();
    // "fLaC", block header (type 0 = STREAMINFO), then 10 bytes of block/frame sizes; the next
    // 64 bits are rate (20), channels − 1 (3), bits − 1 (5) and the total samples (36).
    ok && &head[..4] == b"fLaC"
        && head[4] & 0x7f == 0
        && u64::from_be_bytes(head[18..26].try_into().unwrap_or([0xff; 8])) & ((1 << 36) - 1) == 0
}

/// Checks the channel count and sample rate of a RIFF/WAVE `fmt ` chunk before symphonia
/// parses it: symphonia's WAV reader multiplies header fields unchecked (65 535 channels
/// overflowed in `chunks.rs`). Only the first 64 KiB are searched; the file is rewound.
/// Files that are not RIFF/WAVE, or whose `fmt ` chunk is not found there, are left to symphonia.
pub(super) fn check_wav_header(path: &Path, file: &mut File) -> Result<(), AudioError> {
    let read_err = |source| AudioError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut head = Vec::with_capacity(1 << 16);
    file.by_ref()
        .take(1 << 16)
        .read_to_end(&mut head)
        .map_err(read_err)?;
    file.seek(SeekFrom::Start(0)).map_err(read_err)?;
    if let Some((channels, rate)) = wav_fmt(&head) {
        check_channels(path, usize::from(channels))?;
        check_rate(path, rate)?;
    }
    Ok(())
}

/// `(channels, sample rate)` of the first `fmt ` chunk of a RIFF/WAVE header in `head`.
pub(super) fn wav_fmt(head: &[u8]) -> Option<(u16, u32)> {
    if head.get(0..4)? != b"RIFF" || head.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut at = 12usize;
    while let Some(id) = head.get(at..at + 4) {
        let size = u32::from_le_bytes(head.get(at + 4..at + 8)?.try_into().ok()?) as usize;
        let body = at + 8;
        if id == b"fmt " {
            let f = head.get(body..body + 8)?;
            let channels = u16::from_le_bytes([f[2], f[3]]);
            let rate = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
            return Some((channels, rate));
        }
        // Chunks are padded to an even size.
        at = body.checked_add(size)?.checked_add(size & 1)?;
    }
    None
}

/// Number of audio tracks in a file (5 for a MUSDB18 `.stem.mp4`), from its header.
pub fn audio_track_count(path: &Path) -> Result<usize, AudioError> {
    let format = open_format(path)?;
    Ok(audio_tracks(format.as_ref()).len())
}

pub(super) fn audio_tracks(format: &dyn FormatReader) -> Vec<&Track> {
    format
        .tracks()
        .iter()
        .filter(|t| t.codec_params.as_ref().and_then(|p| p.audio()).is_some())
        .collect()
}

/// Picks audio track `index` (container order among audio tracks) or, for `None`, the default
/// audio track, falling back to the first audio track with a known codec.
pub(super) fn select_track(
    path: &Path,
    format: &dyn FormatReader,
    index: Option<usize>,
) -> Result<Track, AudioError> {
    if let Some(i) = index {
        let tracks = audio_tracks(format);
        let n = tracks.len();
        return tracks
            .into_iter()
            .nth(i)
            .cloned()
            .ok_or_else(|| AudioError::Unsupported {
                path: path.to_path_buf(),
                reason: format!("audio track {i} asked for, but the file has {n}"),
            });
    }
    format
        .default_track(TrackType::Audio)
        .or_else(|| format.first_track_known_codec(TrackType::Audio))
        .cloned()
        .ok_or_else(|| AudioError::Unsupported {
            path: path.to_path_buf(),
            reason: "the file contains no audio track".into(),
        })
}

/// Returns (sample rate, channel count) from the track header, validated against the caps.
pub(super) fn audio_params(
    path: &Path,
    track: &Track,
) -> Result<(Option<u32>, Option<usize>), AudioError> {
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::Unsupported {
            path: path.to_path_buf(),
            reason: "the track is not an audio track".into(),
        })?;
    if let Some(rate) = params.sample_rate {
        check_rate(path, rate)?;
    }
    let channels = params.channels.as_ref().map(Channels::count);
    if let Some(ch) = channels {
        check_channels(path, ch)?;
    }
    Ok((params.sample_rate, channels))
}

pub(super) fn check_rate(path: &Path, rate: u32) -> Result<(), AudioError> {
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        return Err(AudioError::TooLarge {
            path: path.to_path_buf(),
            detail: format!(
                "sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz"
            ),
        });
    }
    Ok(())
}

pub(super) fn check_channels(path: &Path, ch: usize) -> Result<(), AudioError> {
    if ch == 0 {
        return Err(AudioError::Corrupt {
            path: path.to_path_buf(),
            detail: "the header states 0 channels".into(),
        });
    }
    if ch > MAX_CHANNELS {
        return Err(AudioError::TooLarge {
            path: path.to_path_buf(),
            detail: format!("{ch} channels (at most {MAX_CHANNELS} are accepted)"),
        });
    }
    Ok(())
}

pub(super) fn make_decoder(
    path: &Path,
    track: &Track,
) -> Result<Box<dyn AudioDecoder>, AudioError> {
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::Unsupported {
            path: path.to_path_buf(),
            reason: "the track is not an audio track".into(),
        })?;
    if !super::codecs::is_supported(params.codec) {
        return Err(AudioError::Unsupported {
            path: path.to_path_buf(),
            reason: format!(
                "its audio codec, {}, is not one locosep decodes",
                super::codecs::codec_name(params.codec)
            ),
        });
    }
    let mut params = params.clone();
    super::codecs::fix_opus_head(&mut params);
    super::codecs::registry()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(what) => AudioError::Unsupported {
                path: path.to_path_buf(),
                reason: format!(
                    "its {} audio cannot be decoded ({what})",
                    super::codecs::codec_name(params.codec)
                ),
            },
            other => map_err(path, other, false),
        })
}
