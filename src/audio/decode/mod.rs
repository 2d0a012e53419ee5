//! Decoding of audio files into planar `f32` [`AudioBuffer`]s using symphonia.
//!
//! Supported: WAV (PCM int/float), FLAC, MP3, Ogg Vorbis, Opus (in Ogg or Matroska/WebM, decoded
//! by libopus, see [`codecs`]), M4A (AAC-LC and ALAC), plus whatever else symphonia's
//! `all-formats`/`all-codecs` set handles (AIFF, CAF, MKV/WebM, ADTS AAC, ...). Video files
//! (MP4/MOV, MKV/WebM) give their default (else first) audio track; video tracks are skipped.
//! A track whose codec is not decoded here is refused by the codec's name.
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
//! * Opus: in Ogg the pre-skip and the end trim come from the granule positions (exact
//!   length); in Matroska/WebM the decoder drops the pre-skip of the `OpusHead` codec private
//!   data, but symphonia 0.6.1 does not apply `DiscardPadding`, so up to one Opus frame (20 ms)
//!   of end padding remains. In MP4 the edit list's start is the pre-skip itself, which the
//!   decoder already drops, so only the rest of the edit's start is cut
//!   ([`codecs::decoder_start_trim`]); MP4's `dOps` box is first rewritten into the
//!   `OpusHead` the decoder expects ([`codecs::fix_opus_head`]).
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
//!
//! # Layout
//! * `mod.rs` (this file): limits, options, whole-file decode, probing, the panic guard;
//! * [`open`]: header pre-checks, container probing, track choice and codec set-up;
//! * [`stream`]: [`StreamDecoder`], the packet loop (trims, downmix, limits);
//! * [`codecs`]: the codec registry (symphonia's codecs plus Opus through libopus) and codec
//!   names for messages;
//! * `downmix` and `mp4` (edit lists): helpers of the packet loop.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::formats::{FormatReader, Track};

use super::{AudioBuffer, AudioError};

pub mod codecs;
mod downmix;
mod mp4;
pub mod open;
mod stream;

pub use open::audio_track_count;
pub use stream::StreamDecoder;

use stream::decode_inner;

use mp4::mp4_edit;
use open::{audio_params, open_format, select_track};

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

/// What a user should be told about a file that decoded with repairs: non-finite samples
/// replaced by 0, damaged packets skipped (one line each, naming the file; none when clean).
pub fn decode_warnings(file: &Path, skipped_packets: u64, nonfinite_samples: u64) -> Vec<String> {
    let mut w = vec![];
    if nonfinite_samples > 0 {
        w.push(format!(
            "warning: {}: {nonfinite_samples} sample(s) were not finite numbers (NaN or infinity) \
             and were separated as silence (0)",
            file.display()
        ));
    }
    if skipped_packets > 0 {
        w.push(format!(
            "warning: {}: {skipped_packets} damaged packet(s) could not be decoded and were skipped",
            file.display()
        ));
    }
    w
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
    let mut params = track.codec_params.as_ref()?.audio()?.clone();
    codecs::fix_opus_head(&mut params);
    let mut decoder = codecs::registry()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
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
        assert_eq!(open::wav_fmt(&v), Some((3, 8_000)));
        assert_eq!(open::wav_fmt(b"RIFF\0\0\0\0WAVEJUNK\xff\xff\xff\xff"), None);
        assert_eq!(open::wav_fmt(b"fLaC"), None);
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
}
