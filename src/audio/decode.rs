//! Decoding of audio files into planar `f32` [`AudioBuffer`]s using symphonia.
//!
//! Supported: WAV (PCM int/float), FLAC, MP3, OGG/Vorbis, M4A (AAC-LC and ALAC), plus whatever
//! else symphonia's `all-formats`/`all-codecs` set handles (AIFF, CAF, MKV/WebM, ADTS AAC, ...).
//!
//! # Error policy (mirrors symphonia-play)
//! * A packet that fails to decode (`DecodeError`, or an `IoError` raised by the *decoder*) is
//!   skipped and counted in [`DecodeStats::skipped_packets`]; decoding continues.
//! * `ResetRequired` (e.g. chained OGG streams) → the track is re-selected and the decoder is
//!   rebuilt; decoding continues.
//! * An I/O error from the *demuxer* is fatal, except `UnexpectedEof`, which is how symphonia
//!   reports the end of the stream (also for truncated files: we keep what was decoded).
//! * Anything else is fatal. Symphonia is additionally wrapped in `catch_unwind`, so a panic
//!   inside a decoder on malicious input becomes [`AudioError::Corrupt`] instead of a crash.
//!
//! * A sample that is not a finite number (NaN or ±infinity, possible in float WAV/CAF files)
//!   becomes 0 and is counted in [`DecodeStats::nonfinite_samples`]; one such sample would
//!   otherwise turn every stem into NaN.
//!
//! # Gapless / encoder delay
//! * MP3 (LAME/Xing info tag) and OGG/Vorbis: symphonia trims encoder delay and padding itself
//!   (`AudioDecoderOptions::gapless`, on by default).
//! * M4A/MP4: symphonia 0.6.1 parses the edit list (`elst`) but does not apply it, and the AAC
//!   decoder does not trim. We therefore read `moov/trak/{tkhd,edts/elst,mdia/mdhd}` ourselves
//!   (a tiny bounded parser, see [`mp4_edit`]) and apply the first non-empty edit: drop
//!   `media_time` leading frames (the encoder priming, 1024 for ffmpeg/Apple AAC) and keep
//!   `mdhd.duration - media_time` frames (the exact source length; the `elst` segment duration is
//!   only used if it disagrees by more than one movie-timescale tick, because ffmpeg stores it in
//!   milliseconds). iTunes `iTunSMPB` gapless metadata and raw ADTS `.aac` files are not handled:
//!   such streams keep their priming samples.
//!
//! # Downmix
//! Files with more than two channels are refused with [`AudioError::TooManyChannels`] unless
//! [`DecodeOptions::downmix`] is set, in which case they are mixed to **stereo**:
//! left = mean of all left-side and centre channels, right = mean of all right-side and centre
//! channels, LFE channels are dropped. For layouts without speaker positions (discrete/unknown),
//! even-indexed channels count as left and odd-indexed as right.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use symphonia::core::audio::{Channels, Position};
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, Track, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use super::{AudioBuffer, AudioError};

/// Largest channel count accepted from a file header at all (even with downmix).
pub const MAX_CHANNELS: usize = 64;
/// Largest sample rate accepted (Hz).
pub const MAX_SAMPLE_RATE: u32 = 768_000;
/// Smallest sample rate accepted (Hz). The lowest rate in real use is 8 kHz (telephony); below
/// 4 kHz nothing of music is left, and resampling such a rate to a model's 44.1 kHz needs FFTs
/// of millions of points (a 1 Hz header cost 2.2 GB for 5 samples).
pub const MIN_SAMPLE_RATE: u32 = 4_000;
/// Longest audio accepted, in seconds (6 hours). Protects against absurd lengths reported by
/// headers and against unbounded memory growth while decoding.
pub const MAX_DURATION_SECS: u64 = 6 * 3600;
/// At most this many seconds are pre-allocated from a header's stated length.
const MAX_PREALLOC_SECS: u64 = 600;

/// Options for [`decode_file`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Mix files with more than two channels down to stereo (see the module docs for the rule).
    /// When `false` (the default) such files produce [`AudioError::TooManyChannels`].
    pub downmix: bool,
    /// Which audio track of a multi-track file to decode, counted from 0 in container order
    /// among audio tracks (e.g. the five streams of a MUSDB18 `.stem.mp4`). `None` (the
    /// default): the file's default audio track.
    pub audio_track: Option<usize>,
}

/// Basic information about an audio file, obtained without decoding it.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioInfo {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Number of channels in the file (before any downmix).
    pub channels: usize,
    /// Duration in seconds, if the container states it.
    pub duration_secs: Option<f64>,
}

/// Diagnostics from a successful decode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Packets that failed to decode and were skipped (their audio is missing from the output).
    pub skipped_packets: u64,
    /// Number of decoder rebuilds caused by `ResetRequired`.
    pub resets: u64,
    /// Channel count in the file (the output may have fewer after downmix).
    pub source_channels: usize,
    /// Leading frames dropped because of encoder delay (M4A edit list); 0 otherwise.
    pub trimmed_start: u64,
    /// Samples (over all source channels) that were NaN or ±infinity and were replaced by 0.
    pub nonfinite_samples: u64,
}

/// Decodes a whole audio file into a planar `f32` buffer, keeping every channel (mono stays mono,
/// stereo stays stereo). See the module documentation for the error and gapless policies.
pub fn decode_file(path: &Path, opts: &DecodeOptions) -> Result<AudioBuffer, AudioError> {
    decode_file_with_stats(path, opts).map(|(b, _)| b)
}

/// Like [`decode_file`] but also returns [`DecodeStats`] (e.g. to warn about skipped packets).
pub fn decode_file_with_stats(
    path: &Path,
    opts: &DecodeOptions,
) -> Result<(AudioBuffer, DecodeStats), AudioError> {
    guard(path, || decode_inner(path, opts))
}

/// Reads the container header and returns sample rate, channel count and (if known) duration
/// without decoding the audio. Cheap enough for a GUI file list.
pub fn probe_info(path: &Path) -> Result<AudioInfo, AudioError> {
    guard(path, || probe_inner(path))
}

fn probe_inner(path: &Path) -> Result<AudioInfo, AudioError> {
    let format = open_format(path)?;
    let is_mp4 = format.format_info().short_name == "isomp4";
    let track = select_track(path, format.as_ref(), None)?;
    let params = audio_params(path, &track)?;
    let sample_rate = params.0.ok_or_else(|| AudioError::Unsupported {
        path: path.to_path_buf(),
        reason: "the sample rate is not stated in the header".into(),
    })?;
    let mut channels = params.1;
    if channels.is_none() {
        // Some containers (e.g. ADTS, some MP4) only reveal the channel count once decoding
        // starts: decode a single packet.
        channels = first_packet_channels(format, &track);
    }
    let channels = channels.ok_or_else(|| AudioError::Unsupported {
        path: path.to_path_buf(),
        reason: "the channel count could not be determined".into(),
    })?;
    let mut duration_secs = track_duration_secs(&track, sample_rate);
    // For M4A, report the playable length (without encoder priming/padding), as decoded.
    if is_mp4
        && let Some(edit) = mp4_edit(path, track.id)
        && let (_, Some(keep)) = edit.frames(sample_rate)
    {
        duration_secs = Some(keep as f64 / f64::from(sample_rate));
    }
    Ok(AudioInfo {
        sample_rate,
        channels,
        duration_secs,
    })
}

fn first_packet_channels(
    mut format: Box<dyn FormatReader + 'static>,
    track: &Track,
) -> Option<usize> {
    let params = track.codec_params.as_ref()?.audio()?.clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .ok()?;
    for _ in 0..64 {
        let packet = format.next_packet().ok()??;
        if packet.track_id != track.id {
            continue;
        }
        if let Ok(buf) = decoder.decode(&packet) {
            return Some(buf.spec().channels().count());
        }
    }
    None
}

fn track_duration_secs(track: &Track, sample_rate: u32) -> Option<f64> {
    if let Some(n) = track.num_frames {
        return Some(n as f64 / f64::from(sample_rate));
    }
    let tb = track.time_base?;
    let dur = track.duration?;
    tb.calc_duration(dur).map(|t| t.as_secs_f64())
}

/// Maps a symphonia error to an [`AudioError`] naming `path`. `during_probe` selects wording:
/// an `Unsupported` at probe time means "not audio / unknown format".
fn map_err(path: &Path, e: SymError, during_probe: bool) -> AudioError {
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

fn open_format(path: &Path) -> Result<Box<dyn FormatReader + 'static>, AudioError> {
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
fn flac_declares_no_samples(path: &Path) -> bool {
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
fn check_wav_header(path: &Path, file: &mut File) -> Result<(), AudioError> {
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
fn wav_fmt(head: &[u8]) -> Option<(u16, u32)> {
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

fn audio_tracks(format: &dyn FormatReader) -> Vec<&Track> {
    format
        .tracks()
        .iter()
        .filter(|t| t.codec_params.as_ref().and_then(|p| p.audio()).is_some())
        .collect()
}

/// Picks audio track `index` (container order among audio tracks) or, for `None`, the default
/// audio track, falling back to the first audio track with a known codec.
fn select_track(
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
fn audio_params(path: &Path, track: &Track) -> Result<(Option<u32>, Option<usize>), AudioError> {
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

fn check_rate(path: &Path, rate: u32) -> Result<(), AudioError> {
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

fn check_channels(path: &Path, ch: usize) -> Result<(), AudioError> {
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

fn make_decoder(path: &Path, track: &Track) -> Result<Box<dyn AudioDecoder>, AudioError> {
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::Unsupported {
            path: path.to_path_buf(),
            reason: "the track is not an audio track".into(),
        })?;
    symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(what) => AudioError::Unsupported {
                path: path.to_path_buf(),
                reason: format!("the audio codec is not supported ({what})"),
            },
            other => map_err(path, other, false),
        })
}

fn decode_inner(
    path: &Path,
    opts: &DecodeOptions,
) -> Result<(AudioBuffer, DecodeStats), AudioError> {
    let mut dec = StreamDecoder::open_inner(path, opts)?;
    // Output planes; invariant: all have equal length after each appended block.
    let mut planes: Vec<Vec<f32>> = Vec::new();
    // Pre-reserve from the header only up to 10 minutes: a header is untrusted input, so a tiny
    // file claiming hours of audio must not trigger a huge allocation. Longer audio simply grows
    // the vectors as real samples arrive (bounded by `MAX_DURATION_SECS`).
    if let Some(reserve) = dec.reserve_hint() {
        planes = (0..dec.output_channels_hint())
            .map(|_| Vec::with_capacity(reserve))
            .collect();
    }
    let mut block = Vec::new();
    while dec.next_block_inner(&mut block)? {
        if planes.len() != block.len() {
            planes.resize_with(block.len(), Vec::new);
        }
        for (dst, src) in planes.iter_mut().zip(&block) {
            dst.extend_from_slice(src);
        }
    }
    for p in planes.iter() {
        debug_assert_eq!(p.len(), planes[0].len());
    }
    let rate = dec
        .sample_rate()
        .expect("a finished stream with audio has a rate");
    Ok((
        AudioBuffer {
            sample_rate: rate,
            channels: planes,
        },
        dec.stats,
    ))
}

/// A file decoded block by block (one codec packet at a time), for inputs too long to hold in
/// memory. Yields exactly the samples [`decode_file`] returns — same downmix, same M4A
/// encoder-delay trim, same error policy — in order; `decode_file` is built on it.
///
/// Every call is wrapped in `catch_unwind`, so a decoder panic on malformed data becomes
/// [`AudioError::Corrupt`].
pub struct StreamDecoder {
    path: std::path::PathBuf,
    opts: DecodeOptions,
    format: Box<dyn FormatReader + 'static>,
    track: Track,
    decoder: Box<dyn AudioDecoder>,
    header: (Option<u32>, Option<usize>),
    /// (rate, channels) fixed by the first decoded packet; later packets must match.
    spec: Option<(u32, usize)>,
    stats: DecodeStats,
    scratch: Vec<Vec<f32>>,
    max_frames: u64,
    /// M4A edit list, read once the rate is known: frames still to drop, frames still to keep.
    edit: Option<(u64, Option<u64>)>,
    is_mp4: bool,
    /// Frames yielded so far.
    emitted: u64,
    /// Frames decoded so far (before the edit-list trim).
    decoded: u64,
    finished: bool,
}

impl std::fmt::Debug for StreamDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamDecoder")
            .field("path", &self.path)
            .field("spec", &self.spec)
            .field("emitted", &self.emitted)
            .finish_non_exhaustive()
    }
}

impl StreamDecoder {
    /// Opens `path` and selects the audio track (see [`DecodeOptions`]). Fails early for files
    /// that cannot be read, are not audio, or have more than two channels without `downmix`.
    pub fn open(path: &Path, opts: &DecodeOptions) -> Result<Self, AudioError> {
        guard(path, || Self::open_inner(path, opts))
    }

    fn open_inner(path: &Path, opts: &DecodeOptions) -> Result<Self, AudioError> {
        let format = open_format(path)?;
        let is_mp4 = format.format_info().short_name == "isomp4";
        let track = select_track(path, format.as_ref(), opts.audio_track)?;
        let header = audio_params(path, &track)?;
        if let Some(ch) = header.1
            && ch > 2
            && !opts.downmix
        {
            return Err(AudioError::TooManyChannels {
                path: path.to_path_buf(),
                channels: ch,
            });
        }
        let decoder = make_decoder(path, &track)?;
        Ok(Self {
            path: path.to_path_buf(),
            opts: *opts,
            format,
            max_frames: header
                .0
                .map_or(u64::MAX, |r| u64::from(r) * MAX_DURATION_SECS),
            track,
            decoder,
            header,
            spec: None,
            stats: DecodeStats::default(),
            scratch: Vec::new(),
            edit: None,
            is_mp4,
            emitted: 0,
            decoded: 0,
            finished: false,
        })
    }

    /// Sample rate of the output, known once the first block was decoded (or from the header).
    pub fn sample_rate(&self) -> Option<u32> {
        self.spec.map(|s| s.0).or(self.header.0)
    }

    /// Diagnostics so far (skipped packets, resets, …).
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Frames yielded so far.
    pub fn frames_emitted(&self) -> u64 {
        self.emitted
    }

    /// Frames to pre-allocate from the header (at most 10 minutes), when it states them.
    fn reserve_hint(&self) -> Option<usize> {
        let (rate, ch) = self.header;
        match (self.track.num_frames, ch, rate) {
            (Some(n), Some(ch), Some(rate)) if ch <= 2 => {
                Some(n.min(u64::from(rate) * MAX_PREALLOC_SECS) as usize)
            }
            _ => None,
        }
    }

    fn output_channels_hint(&self) -> usize {
        self.header.1.unwrap_or(0)
    }

    /// Replaces `block` with the next decoded frames (planar, one `Vec` per output channel,
    /// never empty). Returns `false` at the end of the stream, leaving `block` empty. An input
    /// without any audio is an error ([`AudioError::Empty`], or [`AudioError::Corrupt`] when
    /// every packet failed).
    pub fn next_block(&mut self, block: &mut Vec<Vec<f32>>) -> Result<bool, AudioError> {
        let path = self.path.clone();
        guard(&path, || self.next_block_inner(block))
    }

    fn next_block_inner(&mut self, block: &mut Vec<Vec<f32>>) -> Result<bool, AudioError> {
        let path = self.path.clone();
        let path = path.as_path();
        loop {
            block.clear();
            if self.finished {
                return Ok(false);
            }
            let packet = match self.format.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return self.end(),
                Err(SymError::ResetRequired) => {
                    // Track list changed (e.g. chained OGG): re-select and rebuild the decoder.
                    self.stats.resets += 1;
                    self.track = select_track(path, self.format.as_ref(), self.opts.audio_track)?;
                    audio_params(path, &self.track)?;
                    self.decoder = make_decoder(path, &self.track)?;
                    continue;
                }
                Err(SymError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return self.end();
                }
                Err(e) => return Err(map_err(path, e, false)),
            };
            if packet.track_id != self.track.id {
                continue;
            }
            let buf = match self.decoder.decode(&packet) {
                Ok(b) => b,
                Err(SymError::DecodeError(_)) | Err(SymError::IoError(_)) => {
                    self.stats.skipped_packets += 1;
                    continue;
                }
                Err(SymError::ResetRequired) => {
                    self.stats.resets += 1;
                    self.decoder = make_decoder(path, &self.track)?;
                    continue;
                }
                Err(e) => return Err(map_err(path, e, false)),
            };
            let rate = buf.spec().rate();
            let ch = buf.num_planes();
            match self.spec {
                None => {
                    check_rate(path, rate)?;
                    check_channels(path, ch)?;
                    if ch > 2 && !self.opts.downmix {
                        return Err(AudioError::TooManyChannels {
                            path: path.to_path_buf(),
                            channels: ch,
                        });
                    }
                    self.max_frames = u64::from(rate) * MAX_DURATION_SECS;
                    self.spec = Some((rate, ch));
                    self.stats.source_channels = ch;
                    // M4A encoder delay / padding (see module docs).
                    if self.is_mp4
                        && let Some(edit) = mp4_edit(path, self.track.id)
                    {
                        self.edit = Some(edit.frames(rate));
                    }
                }
                Some((r, c)) => {
                    if r != rate || c != ch {
                        return Err(AudioError::Corrupt {
                            path: path.to_path_buf(),
                            detail: format!(
                                "the stream changes format mid-file ({c} ch @ {r} Hz → {ch} ch @ {rate} Hz)"
                            ),
                        });
                    }
                }
            }
            if buf.frames() == 0 {
                continue;
            }
            buf.copy_to_vecs_planar::<f32>(&mut self.scratch);
            let n = self.scratch.first().map_or(0, Vec::len) as u64;
            self.decoded += n;
            if self.decoded > self.max_frames {
                return Err(AudioError::TooLarge {
                    path: path.to_path_buf(),
                    detail: format!(
                        "the audio is longer than {} hours",
                        MAX_DURATION_SECS / 3600
                    ),
                });
            }
            // The part of this packet that survives the edit list: [lo, hi) of its n frames.
            let (mut lo, mut hi) = (0usize, n as usize);
            if let Some((skip, keep)) = self.edit.as_mut() {
                let s = (*skip).min(n);
                *skip -= s;
                self.stats.trimmed_start += s;
                lo = s as usize;
                if let Some(k) = keep.as_mut() {
                    let take = (*k).min((hi - lo) as u64);
                    *k -= take;
                    hi = lo + take as usize;
                }
            }
            if lo == hi {
                continue;
            }
            let mut planes: Vec<Vec<f32>> =
                self.scratch.iter().map(|p| p[lo..hi].to_vec()).collect();
            for v in planes.iter_mut().flatten() {
                if !v.is_finite() {
                    *v = 0.0;
                    self.stats.nonfinite_samples += 1;
                }
            }
            *block = if planes.len() > 2 {
                downmix_to_stereo(planes, &self.track)
            } else {
                planes
            };
            self.emitted += (hi - lo) as u64;
            return Ok(true);
        }
    }

    /// End of stream: an error when nothing was ever yielded.
    fn end(&mut self) -> Result<bool, AudioError> {
        self.finished = true;
        if self.emitted > 0 {
            return Ok(false);
        }
        if self.spec.is_none() && self.stats.skipped_packets > 0 {
            return Err(AudioError::Corrupt {
                path: self.path.clone(),
                detail: format!(
                    "none of the {} audio packets could be decoded",
                    self.stats.skipped_packets
                ),
            });
        }
        Err(AudioError::Empty {
            path: self.path.clone(),
        })
    }
}

thread_local! {
    /// Set while this thread runs inside [`guard`]: the panic hook then stays silent.
    static IN_GUARD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs, once per process, a panic hook that says nothing for panics inside [`guard`]
/// (they are caught and reported as an error) and defers to the previous hook otherwise.
fn install_quiet_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_GUARD.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, turning a panic inside symphonia into [`AudioError::Corrupt`] that carries the
/// panic message; the panic itself prints nothing (no backtrace reaches the user).
fn guard<T>(path: &Path, f: impl FnOnce() -> Result<T, AudioError>) -> Result<T, AudioError> {
    install_quiet_hook();
    let was = IN_GUARD.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    IN_GUARD.with(|g| g.set(was));
    result.unwrap_or_else(|payload| {
        let why = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(AudioError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("the decoder crashed on malformed data ({why})"),
        })
    })
}

/// Side of a channel for downmixing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Left,
    Right,
    Centre,
    Lfe,
}

fn channel_sides(n: usize, channels: Option<&Channels>) -> Vec<Side> {
    const LEFT: u64 = Position::FRONT_LEFT.bits()
        | Position::REAR_LEFT.bits()
        | Position::FRONT_LEFT_CENTER.bits()
        | Position::SIDE_LEFT.bits()
        | Position::TOP_FRONT_LEFT.bits()
        | Position::TOP_REAR_LEFT.bits()
        | Position::TOP_SIDE_LEFT.bits()
        | Position::BOTTOM_FRONT_LEFT.bits()
        | Position::FRONT_LEFT_WIDE.bits();
    const RIGHT: u64 = Position::FRONT_RIGHT.bits()
        | Position::REAR_RIGHT.bits()
        | Position::FRONT_RIGHT_CENTER.bits()
        | Position::SIDE_RIGHT.bits()
        | Position::TOP_FRONT_RIGHT.bits()
        | Position::TOP_REAR_RIGHT.bits()
        | Position::TOP_SIDE_RIGHT.bits()
        | Position::BOTTOM_FRONT_RIGHT.bits()
        | Position::FRONT_RIGHT_WIDE.bits();
    const LFE: u64 = Position::LFE1.bits() | Position::LFE2.bits();
    if let Some(Channels::Positioned(pos)) = channels {
        let bits = pos.bits();
        // Planes are in canonical order = ascending bit order of the position mask.
        let sides: Vec<Side> = (0..64u32)
            .map(|b| 1u64 << b)
            .filter(|m| bits & m != 0)
            .map(|m| {
                if m & LEFT != 0 {
                    Side::Left
                } else if m & RIGHT != 0 {
                    Side::Right
                } else if m & LFE != 0 {
                    Side::Lfe
                } else {
                    Side::Centre
                }
            })
            .collect();
        if sides.len() == n && sides.iter().any(|s| *s != Side::Lfe) {
            return sides;
        }
    }
    (0..n)
        .map(|i| if i % 2 == 0 { Side::Left } else { Side::Right })
        .collect()
}

/// Mixes >2 planes to stereo (see module docs). Consumes the input planes one at a time so peak
/// memory stays close to input + output.
fn downmix_to_stereo(planes: Vec<Vec<f32>>, track: &Track) -> Vec<Vec<f32>> {
    let n = planes.len();
    let len = planes.first().map_or(0, Vec::len);
    let layout = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .and_then(|a| a.channels.as_ref());
    let sides = channel_sides(n, layout);
    let n_left = sides
        .iter()
        .filter(|s| matches!(s, Side::Left | Side::Centre))
        .count()
        .max(1);
    let n_right = sides
        .iter()
        .filter(|s| matches!(s, Side::Right | Side::Centre))
        .count()
        .max(1);
    let (gl, gr) = (1.0 / n_left as f32, 1.0 / n_right as f32);
    let mut left = vec![0.0f32; len];
    let mut right = vec![0.0f32; len];
    for (plane, side) in planes.into_iter().zip(sides) {
        let (to_l, to_r) = match side {
            Side::Left => (true, false),
            Side::Right => (false, true),
            Side::Centre => (true, true),
            Side::Lfe => (false, false),
        };
        for (i, s) in plane.iter().enumerate() {
            if to_l {
                left[i] += s * gl;
            }
            if to_r {
                right[i] += s * gr;
            }
        }
    }
    vec![left, right]
}

/// Edit-list information for one MP4 track (all values in the media timescale).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mp4Edit {
    /// `mdhd` timescale (ticks per second of the media).
    media_timescale: u32,
    /// `mdhd` duration (media ticks, includes priming and padding for AAC).
    media_duration: u64,
    /// `mvhd` timescale.
    movie_timescale: u32,
    /// First non-empty `elst` entry: (segment duration in movie ticks, media_time in media ticks).
    edit: (u64, i64),
}

impl Mp4Edit {
    /// Returns (frames to skip at the start, frames to keep after that) at `rate`.
    fn frames(&self, rate: u32) -> (u64, Option<u64>) {
        let to_frames = |ticks: u64| -> u64 {
            if self.media_timescale == rate {
                ticks
            } else {
                ((ticks as u128 * u128::from(rate) + u128::from(self.media_timescale) / 2)
                    / u128::from(self.media_timescale)) as u64
            }
        };
        let (seg_dur, media_time) = self.edit;
        let media_time = media_time.max(0) as u64;
        let skip = to_frames(media_time);
        let from_mdhd = self.media_duration.saturating_sub(media_time);
        // Segment duration converted to media ticks; ffmpeg writes it in ms (movie timescale
        // 1000), so allow one movie tick of disagreement and then trust the exact mdhd value.
        let keep_ticks = if self.movie_timescale == 0 || seg_dur == 0 {
            from_mdhd
        } else {
            let ts = u128::from(self.media_timescale);
            let mts = u128::from(self.movie_timescale);
            let seg_media = (u128::from(seg_dur) * ts / mts) as u64;
            let tol = ts.div_ceil(mts) as u64;
            if seg_media.abs_diff(from_mdhd) <= tol {
                from_mdhd
            } else {
                seg_media.min(from_mdhd)
            }
        };
        let keep = (keep_ticks > 0).then(|| to_frames(keep_ticks));
        (skip, keep)
    }
}

/// Largest `moov` box we are willing to load for edit-list parsing.
const MAX_MOOV_BYTES: u64 = 64 * 1024 * 1024;

/// Reads the edit list of track `track_id` from an MP4/M4A file. Returns `None` on any problem or
/// when there is no (non-trivial) edit; this is best-effort metadata, never an error.
pub(crate) fn mp4_edit(path: &Path, track_id: u32) -> Option<Mp4Edit> {
    let mut f = File::open(path).ok()?;
    let file_len = f.metadata().ok()?.len();
    let mut pos = 0u64;
    // Walk top-level boxes looking for moov.
    for _ in 0..4096 {
        if pos + 8 > file_len {
            return None;
        }
        f.seek(SeekFrom::Start(pos)).ok()?;
        let mut hdr = [0u8; 16];
        f.read_exact(&mut hdr[..8]).ok()?;
        let size32 = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let kind = [hdr[4], hdr[5], hdr[6], hdr[7]];
        let (size, hdr_len) = match size32 {
            0 => (file_len - pos, 8),
            1 => {
                f.read_exact(&mut hdr[8..16]).ok()?;
                (u64::from_be_bytes(hdr[8..16].try_into().ok()?), 16)
            }
            s => (u64::from(s), 8),
        };
        if size < hdr_len || pos.checked_add(size)? > file_len {
            return None;
        }
        if &kind == b"moov" {
            let body_len = size - hdr_len;
            if body_len > MAX_MOOV_BYTES {
                return None;
            }
            let mut body = vec![0u8; body_len as usize];
            f.read_exact(&mut body).ok()?;
            return parse_moov(&body, track_id);
        }
        pos += size;
    }
    None
}

/// Iterates child boxes of `data`: yields (type, body).
fn boxes(data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let rest = data.get(pos..)?;
        if rest.len() < 8 {
            return None;
        }
        let size32 = u32::from_be_bytes(rest[0..4].try_into().ok()?) as usize;
        let kind: [u8; 4] = rest[4..8].try_into().ok()?;
        let (size, hdr) = match size32 {
            0 => (rest.len(), 8),
            1 => (
                usize::try_from(u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?)).ok()?,
                16,
            ),
            s => (s, 8),
        };
        if size < hdr || size > rest.len() {
            return None;
        }
        pos += size;
        Some((kind, &rest[hdr..size]))
    })
}

fn be_u32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?))
}
fn be_u64(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

/// Parses (timescale, duration) from an `mvhd`/`mdhd` body (identical layout up to duration).
fn parse_time_header(d: &[u8]) -> Option<(u32, u64)> {
    match *d.first()? {
        0 => Some((be_u32(d, 12)?, u64::from(be_u32(d, 16)?))),
        1 => Some((be_u32(d, 20)?, be_u64(d, 24)?)),
        _ => None,
    }
}

fn parse_moov(moov: &[u8], track_id: u32) -> Option<Mp4Edit> {
    let (movie_timescale, _) = boxes(moov)
        .find(|(k, _)| k == b"mvhd")
        .and_then(|(_, b)| parse_time_header(b))?;
    for (_, trak) in boxes(moov).filter(|(k, _)| k == b"trak") {
        let tkhd = boxes(trak).find(|(k, _)| k == b"tkhd")?.1;
        let id = match *tkhd.first()? {
            0 => be_u32(tkhd, 12)?,
            1 => be_u32(tkhd, 20)?,
            _ => return None,
        };
        if id != track_id {
            continue;
        }
        let mdia = boxes(trak).find(|(k, _)| k == b"mdia")?.1;
        let (media_timescale, media_duration) = boxes(mdia)
            .find(|(k, _)| k == b"mdhd")
            .and_then(|(_, b)| parse_time_header(b))?;
        if media_timescale == 0 {
            return None;
        }
        let edts = boxes(trak).find(|(k, _)| k == b"edts")?.1;
        let elst = boxes(edts).find(|(k, _)| k == b"elst")?.1;
        let version = *elst.first()?;
        let count = be_u32(elst, 4)? as usize;
        let entry_len = if version == 1 { 20 } else { 12 };
        for i in 0..count.min(1024) {
            let at = 8 + i * entry_len;
            let (seg, media_time) = if version == 1 {
                (be_u64(elst, at)?, be_u64(elst, at + 8)? as i64)
            } else {
                (
                    u64::from(be_u32(elst, at)?),
                    i64::from(be_u32(elst, at + 4)? as i32),
                )
            };
            if media_time < 0 {
                continue; // empty edit (inserted silence): not used for trimming
            }
            if media_time == 0 && media_duration == 0 {
                return None;
            }
            return Some(Mp4Edit {
                media_timescale,
                media_duration,
                movie_timescale,
                edit: (seg, media_time),
            });
        }
        return None;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        let mut f = File::create(&p).unwrap();
        f.write_all(bytes).unwrap();
        p
    }

    /// A 16-bit PCM WAV with `channels`, `rate` and `frames` zero frames, written by hand (no
    /// library refuses the header first).
    fn raw_wav(channels: u16, rate: u32, frames: usize) -> Vec<u8> {
        let data = vec![0u8; 2 * frames * usize::from(channels.max(1)).min(4)];
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
        v
    }

    #[test]
    fn absurd_wav_headers_are_refused_before_symphonia() {
        let d = tempfile::tempdir().unwrap();
        for (name, channels, rate, needle) in [
            ("ch65535.wav", 65_535, 44_100, "65535 channels (at most 64"),
            (
                "rate1.wav",
                1,
                1,
                "sample rate 1 Hz is outside 4000..=768000",
            ),
            ("rate3999.wav", 2, 3_999, "sample rate 3999 Hz"),
        ] {
            let p = write_file(d.path(), name, &raw_wav(channels, rate, 5));
            for downmix in [false, true] {
                let opts = DecodeOptions {
                    downmix,
                    ..Default::default()
                };
                let err = decode_file(&p, &opts).expect_err(name).to_string();
                assert!(err.contains(needle), "{name}: {err}");
                assert!(!err.contains("crashed"), "{name}: {err}");
            }
        }
        // The floor itself decodes.
        let p = write_file(d.path(), "rate4000.wav", &raw_wav(1, 4_000, 5));
        let buf = decode_file(&p, &DecodeOptions::default()).unwrap();
        assert_eq!(buf.sample_rate, 4_000);
    }

    #[test]
    fn wav_fmt_skips_chunks_and_is_bounded() {
        let mut v = b"RIFF\0\0\0\0WAVEJUNK\x03\0\0\0abc\0".to_vec();
        v.extend_from_slice(&raw_wav(3, 8_000, 0)[12..]);
        assert_eq!(wav_fmt(&v), Some((3, 8_000)));
        assert_eq!(wav_fmt(b"RIFF\0\0\0\0WAVEJUNK\xff\xff\xff\xff"), None);
        assert_eq!(wav_fmt(b"fLaC"), None);
    }

    #[test]
    fn a_panic_in_the_guard_becomes_an_error_with_its_message() {
        let err = guard(Path::new("x.wav"), || -> Result<(), AudioError> {
            panic!("attempt to multiply with overflow")
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("crashed"), "{err}");
        assert!(err.contains("attempt to multiply with overflow"), "{err}");
        assert!(!IN_GUARD.with(std::cell::Cell::get));
    }

    #[test]
    fn non_finite_samples_become_zero_and_are_counted() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("naninf.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        let bad = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        for i in 0..1000 {
            let (l, r) = if i % 100 == 7 && i / 100 < 3 {
                (bad[i / 100], 0.25)
            } else {
                (0.5, -0.5)
            };
            w.write_sample(l).unwrap();
            w.write_sample(r).unwrap();
        }
        w.finalize().unwrap();
        let (buf, stats) = decode_file_with_stats(&p, &DecodeOptions::default()).unwrap();
        assert_eq!(stats.nonfinite_samples, 3);
        assert!(buf.channels.iter().flatten().all(|v| v.is_finite()));
        assert_eq!(buf.channels[0][7], 0.0);
        assert_eq!(buf.channels[0][107], 0.0);
        assert_eq!(buf.channels[0][207], 0.0);
        assert_eq!(buf.channels[1][7], 0.25);
        assert_eq!(buf.channels[0][8], 0.5);
    }

    #[test]
    fn zero_byte_file_is_empty_error() {
        let d = tempfile::tempdir().unwrap();
        let p = write_file(d.path(), "empty.wav", b"");
        let e = decode_file(&p, &DecodeOptions::default()).unwrap_err();
        assert!(matches!(e, AudioError::Empty { .. }), "{e:?}");
        assert!(e.to_string().contains("empty.wav"));
    }

    #[test]
    fn missing_file_is_open_error() {
        let e = decode_file(
            Path::new("/nonexistent/dir/x.flac"),
            &DecodeOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(e, AudioError::Open { .. }), "{e:?}");
        assert!(e.to_string().contains("x.flac"));
    }

    #[test]
    fn text_file_is_unsupported() {
        let d = tempfile::tempdir().unwrap();
        let p = write_file(
            d.path(),
            "notes.mp3",
            b"hello, this is definitely not an mp3 file\n"
                .repeat(50)
                .as_slice(),
        );
        let e = decode_file(&p, &DecodeOptions::default()).unwrap_err();
        assert!(e.to_string().contains("notes.mp3"), "{e}");
        assert!(probe_info(&p).is_err());
    }

    #[test]
    fn mp4_edit_frames() {
        // ffmpeg AAC: 0.5 s @ 44.1k, priming 1024, mvhd in ms.
        let e = Mp4Edit {
            media_timescale: 44100,
            media_duration: 23074,
            movie_timescale: 1000,
            edit: (500, 1024),
        };
        assert_eq!(e.frames(44100), (1024, Some(22050)));
        // Segment disagreeing strongly with mdhd → trust the (shorter) segment.
        let e = Mp4Edit {
            media_timescale: 44100,
            media_duration: 50000,
            movie_timescale: 1000,
            edit: (500, 1024),
        };
        assert_eq!(e.frames(44100), (1024, Some(22050)));
    }

    #[test]
    fn mp4_box_parser_is_bounded() {
        // Garbage must not panic.
        for n in 0..64usize {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
            let _ = parse_moov(&data, 1);
        }
        let mut evil = vec![0u8, 0, 0, 1];
        evil.extend_from_slice(b"mvhd");
        evil.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(parse_moov(&evil, 1), None);
    }

    #[test]
    fn downmix_sides_for_5_1() {
        let ch = Channels::Positioned(
            Position::FRONT_LEFT
                | Position::FRONT_RIGHT
                | Position::FRONT_CENTER
                | Position::LFE1
                | Position::REAR_LEFT
                | Position::REAR_RIGHT,
        );
        let s = channel_sides(6, Some(&ch));
        assert_eq!(
            s,
            vec![
                Side::Left,
                Side::Right,
                Side::Centre,
                Side::Lfe,
                Side::Left,
                Side::Right
            ]
        );
        assert_eq!(
            channel_sides(3, None),
            vec![Side::Left, Side::Right, Side::Left]
        );
    }
}
