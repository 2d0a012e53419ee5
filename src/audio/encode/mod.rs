//! Writing audio files (WAV via hound, FLAC via flacenc, MP3 via LAME, Ogg Vorbis via libvorbis)
//! with atomic, no-clobber semantics.
//!
//! Every file is first written to a hidden temporary file in the destination directory
//! (`.<file name>.<pid>-<counter>-<nanos>.locosep-tmp`), flushed and `fsync`ed, then moved onto
//! the final name. Invariants:
//! * the final path either keeps its previous content or receives the complete new file, never a
//!   partial one;
//! * with `overwrite == false` an existing file is never replaced (checked up front and, where
//!   the filesystem supports hard links, enforced atomically by linking instead of renaming);
//! * on any error the temporary file is removed. Leftovers from a crash can be cleaned with
//!   [`clean_temp_files`].

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::{AudioBuffer, AudioError, DisplayList};

mod atomic;
mod flac;
mod lossy;

pub use atomic::{
    TEMP_SUFFIX, clean_temp_files, is_temp_file, remove_own_temp_files, write_atomic,
};

use atomic::{commit_no_clobber, sync_parent_dir, temp_path_for};
use flac::{FlacError, FlacWriter};
use lossy::{LossyError, Mp3Writer, VorbisWriter};

pub use lossy::mp3_rate;

/// Output format (and sample format).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SampleFormat {
    /// WAV, 16-bit signed integer PCM (clipped to [-1, 1], rounded).
    Wav16,
    /// WAV, 24-bit signed integer PCM (clipped to [-1, 1], rounded).
    Wav24,
    /// WAV, 32-bit IEEE float (written as is, no clipping).
    F32,
    /// FLAC, 24-bit (lossless for anything up to 24-bit sources; clipped to [-1, 1], rounded).
    Flac,
    /// MP3 (LAME), constant bit rate; mono or stereo; clipped to [-1, 1]. Rates MP3 lacks are
    /// resampled (see [`mp3_rate`]).
    Mp3 {
        /// Bit rate in kbit/s, one of [`MP3_BITRATES`].
        kbps: u16,
    },
    /// Ogg Vorbis (libvorbis, aoTuV), variable bit rate aimed at `kbps`; clipped to [-1, 1].
    Vorbis {
        /// Target bit rate in kbit/s, within [`VORBIS_KBPS`].
        kbps: u16,
    },
}

/// Constant bit rates offered for MP3, in kbit/s.
pub const MP3_BITRATES: [u16; 8] = [96, 112, 128, 160, 192, 224, 256, 320];
/// Default MP3 bit rate: 320 kbit/s CBR, MP3's best (stems are material for further work).
pub const DEFAULT_MP3_KBPS: u16 = 320;
/// Target bit rates accepted for Ogg Vorbis, in kbit/s (libvorbis may still refuse the ends
/// of this range for some rates and channel counts; the error says so).
pub const VORBIS_KBPS: std::ops::RangeInclusive<u16> = 64..=480;
/// Default Ogg Vorbis target: 192 kbit/s (about quality 6, transparent for most music).
pub const DEFAULT_VORBIS_KBPS: u16 = 192;

impl SampleFormat {
    /// Names accepted by [`FromStr`], in the same order as the variants.
    pub const NAMES: [&'static str; 6] = ["wav16", "wav24", "f32", "flac", "mp3", "ogg"];

    /// File extension (without dot) for this format: `"wav"` for the three WAV variants,
    /// `"flac"`, `"mp3"`, `"ogg"`.
    pub fn extension(self) -> &'static str {
        match self {
            SampleFormat::Wav16 | SampleFormat::Wav24 | SampleFormat::F32 => "wav",
            SampleFormat::Flac => "flac",
            SampleFormat::Mp3 { .. } => "mp3",
            SampleFormat::Vorbis { .. } => "ogg",
        }
    }

    /// The canonical name (`"wav16"`, `"wav24"`, `"f32"`, `"flac"`, `"mp3"`, `"ogg"`); the bit
    /// rate is not part of it.
    pub fn name(self) -> &'static str {
        match self {
            SampleFormat::Wav16 => "wav16",
            SampleFormat::Wav24 => "wav24",
            SampleFormat::F32 => "f32",
            SampleFormat::Flac => "flac",
            SampleFormat::Mp3 { .. } => "mp3",
            SampleFormat::Vorbis { .. } => "ogg",
        }
    }

    /// The bit rate in kbit/s of a lossy format; `None` for WAV and FLAC.
    pub fn bitrate(self) -> Option<u16> {
        match self {
            SampleFormat::Mp3 { kbps } | SampleFormat::Vorbis { kbps } => Some(kbps),
            _ => None,
        }
    }

    /// The bit rates a user may pick for this format (MP3: [`MP3_BITRATES`]; Vorbis: a few
    /// steps of [`VORBIS_KBPS`]); empty for lossless formats.
    pub fn bitrate_choices(self) -> &'static [u16] {
        match self {
            SampleFormat::Mp3 { .. } => &MP3_BITRATES,
            SampleFormat::Vorbis { .. } => &[96, 128, 160, 192, 256, 320],
            _ => &[],
        }
    }

    /// This format at bit rate `kbps`. Errors (with the allowed values) for a rate the format
    /// does not take, and for WAV/FLAC, which have no bit rate to choose.
    pub fn with_bitrate(self, kbps: u16) -> Result<Self, String> {
        match self {
            SampleFormat::Mp3 { .. } if MP3_BITRATES.contains(&kbps) => {
                Ok(SampleFormat::Mp3 { kbps })
            }
            SampleFormat::Mp3 { .. } => Err(format!(
                "MP3 bit rate {kbps} kbit/s is not offered; choose one of {}",
                MP3_BITRATES.map(|k| k.to_string()).join(", ")
            )),
            SampleFormat::Vorbis { .. } if VORBIS_KBPS.contains(&kbps) => {
                Ok(SampleFormat::Vorbis { kbps })
            }
            SampleFormat::Vorbis { .. } => Err(format!(
                "Ogg Vorbis bit rate {kbps} kbit/s is outside {}..={} kbit/s",
                VORBIS_KBPS.start(),
                VORBIS_KBPS.end()
            )),
            lossless => Err(format!(
                "a bit rate applies to mp3 and ogg only; {lossless} is lossless"
            )),
        }
    }
}

impl fmt::Display for SampleFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SampleFormat {
    type Err = String;

    /// Parses `wav16`, `wav24`, `f32`, `flac`, `mp3` (at [`DEFAULT_MP3_KBPS`]) or `ogg`
    /// (also `vorbis`; at [`DEFAULT_VORBIS_KBPS`]), case-insensitive, surrounding spaces
    /// ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "wav16" => Ok(SampleFormat::Wav16),
            "wav24" => Ok(SampleFormat::Wav24),
            "f32" => Ok(SampleFormat::F32),
            "flac" => Ok(SampleFormat::Flac),
            "mp3" => Ok(SampleFormat::Mp3 {
                kbps: DEFAULT_MP3_KBPS,
            }),
            "ogg" | "vorbis" => Ok(SampleFormat::Vorbis {
                kbps: DEFAULT_VORBIS_KBPS,
            }),
            _ => Err(format!(
                "unknown output format '{s}'; allowed values: {}",
                DisplayList(&SampleFormat::NAMES)
            )),
        }
    }
}

/// Writes `buf` to `path` in format `fmt`, atomically (see the module docs).
///
/// Creates missing parent directories. If `path` exists and `overwrite` is false, returns
/// [`AudioError::Exists`] without writing anything. Integer formats clip to [-1, 1] and round to
/// the nearest step (16-bit: ×32767, 24-bit: ×8388607). FLAC is always 24-bit. MP3 and Ogg
/// Vorbis clip to [-1, 1] too (rates MP3 lacks are resampled, see [`mp3_rate`]).
///
/// This is an [`AudioFileWriter`] given the whole buffer as one block, so a file written block
/// by block from the same samples is byte-identical (Ogg Vorbis: apart from its random stream
/// serial; the audio is identical).
pub fn write_audio(
    path: &Path,
    buf: &AudioBuffer,
    fmt: SampleFormat,
    overwrite: bool,
) -> Result<(), AudioError> {
    buf.validate()?;
    let mut w = AudioFileWriter::create(path, fmt, buf.sample_rate, buf.num_channels(), overwrite)?;
    w.write(&buf.channels)?;
    w.commit()
}

/// An audio file written block by block under a temporary name and moved onto its final name
/// only by [`commit`](Self::commit) (see the module docs for the temp-file rules).
///
/// Invariants: until `commit` succeeds the final path is untouched; dropping the writer without
/// committing (an error, a cancelled job, a panic) removes the temporary file. Memory is bounded
/// by one FLAC block, or one lossy encoder chunk (4096 frames, plus the resampler's chunk for an
/// MP3 at a rate MP3 lacks), plus the I/O buffer, whatever the length written.
pub struct AudioFileWriter {
    path: PathBuf,
    sample_rate: u32,
    tmp: PathBuf,
    overwrite: bool,
    channels: usize,
    inner: Option<Inner>,
}

enum Inner {
    Wav {
        w: hound::WavWriter<BufWriter<File>>,
        /// A second handle on the same file, to `fsync` after hound has finalised it.
        sync: File,
        fmt: SampleFormat,
    },
    Flac(Box<FlacWriter>),
    Mp3(Box<Mp3Writer>),
    Vorbis(Box<VorbisWriter>),
}

impl fmt::Debug for AudioFileWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioFileWriter")
            .field("path", &self.path)
            .field("tmp", &self.tmp)
            .finish_non_exhaustive()
    }
}

impl AudioFileWriter {
    /// Opens a temporary file beside `path` for `channels` channels at `sample_rate` Hz.
    /// Creates missing parent directories. With `overwrite` false an existing `path` is an
    /// [`AudioError::Exists`] now, and again at commit if one appeared meanwhile.
    pub fn create(
        path: &Path,
        fmt: SampleFormat,
        sample_rate: u32,
        channels: usize,
        overwrite: bool,
    ) -> Result<Self, AudioError> {
        let enc = |detail: String| AudioError::Encode {
            path: path.to_path_buf(),
            detail,
        };
        if channels == 0 || channels > u16::MAX as usize {
            return Err(enc(format!("cannot write audio with {channels} channels")));
        }
        if sample_rate == 0 {
            return Err(enc("cannot write audio at 0 Hz".into()));
        }
        if fmt == SampleFormat::Flac {
            if channels > 8 {
                return Err(enc(format!(
                    "FLAC supports at most 8 channels, got {channels}"
                )));
            }
            if sample_rate > 655_350 {
                return Err(enc(format!(
                    "FLAC does not support a sample rate of {sample_rate} Hz"
                )));
            }
        }
        if !overwrite && path.symlink_metadata().is_ok() {
            return Err(AudioError::Exists {
                path: path.to_path_buf(),
            });
        }
        let werr = |source: io::Error| AudioError::Write {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            fs::create_dir_all(parent).map_err(werr)?;
        }
        let tmp = temp_path_for(path).map_err(werr)?;
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(&tmp)
            .map_err(werr)?;
        // From here on the writer owns `tmp`: Drop removes it unless committed.
        let mut me = Self {
            path: path.to_path_buf(),
            sample_rate,
            tmp,
            overwrite,
            channels,
            inner: None,
        };
        let inner = match fmt {
            SampleFormat::Wav16 | SampleFormat::Wav24 | SampleFormat::F32 => {
                let (bits, float) = match fmt {
                    SampleFormat::Wav16 => (16, false),
                    SampleFormat::Wav24 => (24, false),
                    _ => (32, true),
                };
                let spec = hound::WavSpec {
                    channels: channels as u16,
                    sample_rate,
                    bits_per_sample: bits,
                    sample_format: if float {
                        hound::SampleFormat::Float
                    } else {
                        hound::SampleFormat::Int
                    },
                };
                let sync = file.try_clone().map_err(werr)?;
                let w = hound::WavWriter::new(BufWriter::new(file), spec)
                    .map_err(|e| werr(hound_to_io(e)))?;
                Inner::Wav { w, sync, fmt }
            }
            SampleFormat::Flac => Inner::Flac(Box::new(
                FlacWriter::new(BufWriter::new(file), sample_rate, channels).map_err(enc)?,
            )),
            SampleFormat::Mp3 { kbps } => Inner::Mp3(Box::new(
                Mp3Writer::new(BufWriter::new(file), sample_rate, channels, kbps).map_err(enc)?,
            )),
            SampleFormat::Vorbis { kbps } => Inner::Vorbis(Box::new(
                VorbisWriter::new(BufWriter::new(file), sample_rate, channels, kbps)
                    .map_err(enc)?,
            )),
        };
        me.inner = Some(inner);
        Ok(me)
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one block: one slice per channel, all of the same length. A block holding NaN
    /// or infinite samples is refused ([`AudioError::NonFinite`]); the writer should then be
    /// dropped, which removes the temporary file.
    pub fn write<S: AsRef<[f32]>>(&mut self, block: &[S]) -> Result<(), AudioError> {
        let n = block.first().map_or(0, |c| c.as_ref().len());
        if block.len() != self.channels || block.iter().any(|c| c.as_ref().len() != n) {
            return Err(AudioError::InvalidBuffer(format!(
                "a block for {} must have {} channel(s) of equal length",
                self.path.display(),
                self.channels
            )));
        }
        let path = self.path.clone();
        // A NaN stem is an error, never a file (16-bit output would hide it as silence).
        let count: usize = block
            .iter()
            .map(|c| c.as_ref().iter().filter(|v| !v.is_finite()).count())
            .sum();
        if count > 0 {
            return Err(AudioError::NonFinite { path, count });
        }
        match self.inner.as_mut() {
            Some(Inner::Wav { w, fmt, .. }) => {
                // A RIFF file counts its data bytes in 32 bits: refuse before hound's counter
                // wraps and a wrong header would be committed.
                let room = wav_room_frames(self.channels, w.spec().bits_per_sample);
                if u64::from(w.duration()) + n as u64 > room {
                    return Err(AudioError::Encode {
                        path,
                        detail: format!(
                            "a WAV file holds at most 4 GiB of samples ({} of this audio); \
                             write FLAC instead (--format flac)",
                            human_duration(room, self.sample_rate)
                        ),
                    });
                }
                write_wav_block(w, block, n, *fmt).map_err(|e| AudioError::Write {
                    path,
                    source: hound_to_io(e),
                })
            }
            Some(Inner::Flac(f)) => f.write(block, n).map_err(|e| match e {
                FlacError::Io(source) => AudioError::Write { path, source },
                FlacError::Encode(detail) => AudioError::Encode { path, detail },
            }),
            Some(Inner::Mp3(w)) => w.write(block).map_err(|e| lossy_err(path, e)),
            Some(Inner::Vorbis(w)) => w.write(block).map_err(|e| lossy_err(path, e)),
            None => Err(AudioError::InvalidBuffer("the writer is closed".into())),
        }
    }

    /// Finishes the file (headers, last FLAC block), `fsync`s it and moves it onto the final
    /// name — never over an existing file unless `overwrite` was given.
    pub fn commit(mut self) -> Result<(), AudioError> {
        let path = self.path.clone();
        let werr = |source: io::Error| AudioError::Write {
            path: path.clone(),
            source,
        };
        match self.inner.take() {
            Some(Inner::Wav { w, sync, .. }) => {
                w.finalize().map_err(|e| werr(hound_to_io(e)))?;
                sync.sync_all().map_err(werr)?;
            }
            Some(Inner::Flac(f)) => {
                let file = f.finish().map_err(|e| match e {
                    FlacError::Io(source) => werr(source),
                    FlacError::Encode(detail) => AudioError::Encode {
                        path: path.clone(),
                        detail,
                    },
                })?;
                file.sync_all().map_err(werr)?;
            }
            Some(Inner::Mp3(w)) => {
                let file = w.finish().map_err(|e| lossy_err(path.clone(), e))?;
                file.sync_all().map_err(werr)?;
            }
            Some(Inner::Vorbis(w)) => {
                let file = w.finish().map_err(|e| lossy_err(path.clone(), e))?;
                file.sync_all().map_err(werr)?;
            }
            None => return Err(AudioError::InvalidBuffer("the writer is closed".into())),
        }
        let committed = if self.overwrite {
            fs::rename(&self.tmp, &self.path)
        } else {
            commit_no_clobber(&self.tmp, &self.path)
        };
        if let Err(e) = committed {
            // Drop removes the temp file.
            if e.kind() == io::ErrorKind::AlreadyExists {
                return Err(AudioError::Exists { path });
            }
            return Err(werr(e));
        }
        // Committed: nothing left for Drop to remove.
        self.tmp = PathBuf::new();
        sync_parent_dir(&self.path);
        Ok(())
    }
}

impl Drop for AudioFileWriter {
    fn drop(&mut self) {
        self.inner = None; // close the file first
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Most bytes of samples a WAV file can hold (its RIFF sizes are 32-bit), leaving room for the
/// header.
const MAX_WAV_DATA_BYTES: u64 = u32::MAX as u64 - 1024;

/// Frames a WAV file with `channels` channels of `bits`-bit samples can hold.
fn wav_room_frames(channels: usize, bits: u16) -> u64 {
    MAX_WAV_DATA_BYTES / (channels as u64 * u64::from(bits).div_ceil(8)).max(1)
}

/// `frames` at `rate` as `h:mm:ss`.
fn human_duration(frames: u64, rate: u32) -> String {
    let s = frames / u64::from(rate.max(1));
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn lossy_err(path: PathBuf, e: LossyError) -> AudioError {
    match e {
        LossyError::Io(source) => AudioError::Write { path, source },
        LossyError::Encode(detail) => AudioError::Encode { path, detail },
    }
}

fn hound_to_io(e: hound::Error) -> io::Error {
    match e {
        hound::Error::IoError(io) => io,
        other => io::Error::other(other.to_string()),
    }
}

#[inline]
pub(super) fn to_int(x: f32, scale: f32) -> i32 {
    // NaN → 0 (clamp keeps NaN, `as` maps NaN to 0).
    (x.clamp(-1.0, 1.0) * scale).round() as i32
}

fn write_wav_block<S: AsRef<[f32]>>(
    w: &mut hound::WavWriter<BufWriter<File>>,
    block: &[S],
    n: usize,
    fmt: SampleFormat,
) -> Result<(), hound::Error> {
    for i in 0..n {
        for ch in block {
            let x = ch.as_ref()[i];
            match fmt {
                SampleFormat::F32 => w.write_sample(x)?,
                SampleFormat::Wav16 => w.write_sample(to_int(x, 32767.0) as i16)?,
                _ => w.write_sample(to_int(x, 8_388_607.0))?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_buf(rate: u32, nch: usize, len: usize) -> AudioBuffer {
        let channels = (0..nch)
            .map(|c| {
                (0..len)
                    .map(|i| ((i as f32) * 0.01 * (c + 1) as f32).sin() * 0.8)
                    .collect()
            })
            .collect();
        AudioBuffer::new(rate, channels).unwrap()
    }

    #[test]
    fn wav_size_limit() {
        // Stereo f32 at 48 kHz: 4 GiB is 3 h 6 min; 16-bit stereo at 44.1 kHz: 6 h 45 min.
        assert_eq!(human_duration(wav_room_frames(2, 32), 48_000), "3:06:24");
        assert_eq!(human_duration(wav_room_frames(2, 16), 44_100), "6:45:47");
        assert_eq!(wav_room_frames(1, 24), (u32::MAX as u64 - 1024) / 3);
    }

    #[test]
    fn parse_formats() {
        assert_eq!(
            "wav16".parse::<SampleFormat>().unwrap(),
            SampleFormat::Wav16
        );
        assert_eq!(
            "WAV24".parse::<SampleFormat>().unwrap(),
            SampleFormat::Wav24
        );
        assert_eq!("f32".parse::<SampleFormat>().unwrap(), SampleFormat::F32);
        assert_eq!("flac".parse::<SampleFormat>().unwrap(), SampleFormat::Flac);
        let e = "opus".parse::<SampleFormat>().unwrap_err();
        assert!(e.contains("wav16, wav24, f32, flac, mp3, ogg"), "{e}");
        let mp3 = "MP3".parse::<SampleFormat>().unwrap();
        assert_eq!(mp3, SampleFormat::Mp3 { kbps: 320 });
        assert_eq!(mp3.extension(), "mp3");
        assert_eq!(mp3.with_bitrate(192), Ok(SampleFormat::Mp3 { kbps: 192 }));
        let e = mp3.with_bitrate(300).unwrap_err();
        assert!(e.contains("96, 112, 128, 160, 192, 224, 256, 320"), "{e}");
        let ogg = "vorbis".parse::<SampleFormat>().unwrap();
        assert_eq!(
            (ogg.name(), ogg.extension(), ogg.bitrate()),
            ("ogg", "ogg", Some(192))
        );
        assert!(ogg.with_bitrate(500).is_err() && ogg.with_bitrate(128).is_ok());
        let e = SampleFormat::Flac.with_bitrate(320).unwrap_err();
        assert!(e.contains("lossless"), "{e}");
        assert_eq!(SampleFormat::F32.extension(), "wav");
        assert_eq!(SampleFormat::Flac.extension(), "flac");
        for n in SampleFormat::NAMES {
            assert_eq!(n.parse::<SampleFormat>().unwrap().name(), n);
        }
    }

    #[test]
    fn to_int_clips_and_rounds() {
        assert_eq!(to_int(1.5, 32767.0), 32767);
        assert_eq!(to_int(-1.5, 32767.0), -32767);
        assert_eq!(to_int(0.5 / 32767.0 + 1e-7, 32767.0), 1);
        assert_eq!(to_int(f32::NAN, 32767.0), 0);
    }

    #[test]
    fn wav_round_trip_hound() {
        let d = tempfile::tempdir().unwrap();
        let b = test_buf(44100, 2, 1000);
        for fmt in [SampleFormat::Wav16, SampleFormat::Wav24, SampleFormat::F32] {
            let p = d.path().join(format!("sub/dir/{fmt}.wav"));
            write_audio(&p, &b, fmt, false).unwrap();
            let r = hound::WavReader::open(&p).unwrap();
            let spec = r.spec();
            assert_eq!(spec.channels, 2);
            assert_eq!(spec.sample_rate, 44100);
            assert_eq!(r.len(), 2000);
        }
        assert_eq!(
            fs::read_dir(d.path().join("sub/dir")).unwrap().count(),
            3,
            "no temp files left"
        );
    }

    #[test]
    fn flac_zero_length_and_mono() {
        let d = tempfile::tempdir().unwrap();
        let b = test_buf(48000, 1, 5000);
        write_audio(&d.path().join("m.flac"), &b, SampleFormat::Flac, false).unwrap();
        let back = crate::audio::decode_file(
            &d.path().join("m.flac"),
            &crate::audio::DecodeOptions::default(),
        )
        .unwrap();
        assert_eq!(
            (back.num_channels(), back.len(), back.sample_rate),
            (1, 5000, 48000)
        );
        let z = AudioBuffer::new(48000, vec![vec![], vec![]]).unwrap();
        // Zero-length output: either a valid file that holds no samples, or a clean error
        // that leaves no file behind — never a panic or a damaged file.
        let zf = d.path().join("z.flac");
        match write_audio(&zf, &z, SampleFormat::Flac, false) {
            Ok(_) => {
                let back = crate::audio::decode_file(&zf, &crate::audio::DecodeOptions::default());
                assert!(
                    matches!(&back, Err(crate::audio::AudioError::Empty { .. }))
                        || back.as_ref().is_ok_and(|b| b.is_empty()),
                    "an empty FLAC must read back as empty: {back:?}"
                );
            }
            Err(_) => assert!(!zf.exists(), "a refused write leaves no file"),
        }
        write_audio(&d.path().join("z.wav"), &z, SampleFormat::Wav16, false).unwrap();
    }

    #[test]
    fn non_finite_audio_is_an_error_never_a_file() {
        let d = tempfile::tempdir().unwrap();
        for fmt in [
            SampleFormat::Wav16,
            SampleFormat::F32,
            SampleFormat::Flac,
            SampleFormat::Mp3 { kbps: 320 },
            SampleFormat::Vorbis { kbps: 192 },
        ] {
            let p = d.path().join(format!("vocals-{fmt:?}.{}", fmt.extension()));
            // An existing file is kept as it is, even with overwrite.
            fs::write(&p, b"old").unwrap();
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let mut buf = test_buf(44_100, 2, 1000);
                buf.channels[1][500] = bad;
                buf.channels[0][7] = bad;
                let e = write_audio(&p, &buf, fmt, true).unwrap_err();
                assert!(
                    matches!(e, AudioError::NonFinite { count: 2, .. }),
                    "{fmt:?} {bad}: {e:?}"
                );
                assert!(e.to_string().contains("vocals"), "{e}");
            }
            assert_eq!(fs::read(&p).unwrap(), b"old");
        }
        // No temp files left.
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 5);
    }

    #[test]
    fn lossy_files_do_not_depend_on_the_block_split() {
        let d = tempfile::tempdir().unwrap();
        for (fmt, rate) in [
            (SampleFormat::Mp3 { kbps: 192 }, 44_100),
            (SampleFormat::Mp3 { kbps: 256 }, 96_000),
            (SampleFormat::Vorbis { kbps: 160 }, 48_000),
        ] {
            let b = test_buf(rate, 2, 30_000);
            let whole = d.path().join(format!("whole-{rate}.{}", fmt.extension()));
            write_audio(&whole, &b, fmt, false).unwrap();
            let split = d.path().join(format!("split-{rate}.{}", fmt.extension()));
            let mut w = AudioFileWriter::create(&split, fmt, rate, 2, false).unwrap();
            for (lo, hi) in [(0, 1), (1, 1000), (1000, 9001), (9001, 30_000)] {
                let block: Vec<&[f32]> = b.channels.iter().map(|c| &c[lo..hi]).collect();
                w.write(&block).unwrap();
            }
            w.commit().unwrap();
            let (a, z) = (fs::read(&whole).unwrap(), fs::read(&split).unwrap());
            if matches!(fmt, SampleFormat::Mp3 { .. }) {
                // The first frame carries LAME's gapless tag.
                let head = String::from_utf8_lossy(&a[..400]).into_owned();
                assert!(head.contains("Info") && head.contains("LAME"), "{fmt:?}");
                assert!(a == z, "{fmt:?} at {rate} Hz: the files differ");
            } else {
                // Ogg pages carry a random stream serial: compare the decoded audio.
                let opts = crate::audio::DecodeOptions::default();
                let da = crate::audio::decode_file(&whole, &opts).unwrap();
                let dz = crate::audio::decode_file(&split, &opts).unwrap();
                assert!(da == dz, "{fmt:?}: the decoded audio differs");
            }
        }
    }
}
