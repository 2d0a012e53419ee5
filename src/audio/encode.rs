//! Writing audio files (WAV via hound, FLAC via flacenc) with atomic, no-clobber semantics.
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
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use flacenc::component::BitRepr;
use flacenc::error::Verify;
use flacenc::source::Fill;

use super::{AudioBuffer, AudioError, DisplayList};

/// Suffix of temporary files created by [`write_atomic`].
pub const TEMP_SUFFIX: &str = ".locosep-tmp";

/// Output sample format.
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
}

impl SampleFormat {
    /// Names accepted by [`FromStr`], in the same order as the variants.
    pub const NAMES: [&'static str; 4] = ["wav16", "wav24", "f32", "flac"];

    /// File extension (without dot) for this format: `"wav"` for the three WAV variants,
    /// `"flac"` for FLAC.
    pub fn extension(self) -> &'static str {
        match self {
            SampleFormat::Wav16 | SampleFormat::Wav24 | SampleFormat::F32 => "wav",
            SampleFormat::Flac => "flac",
        }
    }

    /// The canonical name (`"wav16"`, `"wav24"`, `"f32"`, `"flac"`).
    pub fn name(self) -> &'static str {
        match self {
            SampleFormat::Wav16 => "wav16",
            SampleFormat::Wav24 => "wav24",
            SampleFormat::F32 => "f32",
            SampleFormat::Flac => "flac",
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

    /// Parses `wav16`, `wav24`, `f32` or `flac` (case-insensitive, surrounding spaces ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "wav16" => Ok(SampleFormat::Wav16),
            "wav24" => Ok(SampleFormat::Wav24),
            "f32" => Ok(SampleFormat::F32),
            "flac" => Ok(SampleFormat::Flac),
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
/// the nearest step (16-bit: ×32767, 24-bit: ×8388607). FLAC is always 24-bit.
///
/// This is an [`AudioFileWriter`] given the whole buffer as one block, so a file written block
/// by block from the same samples is byte-identical.
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
/// by one FLAC block plus the I/O buffer, whatever the length written.
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

fn hound_to_io(e: hound::Error) -> io::Error {
    match e {
        hound::Error::IoError(io) => io,
        other => io::Error::other(other.to_string()),
    }
}

#[inline]
fn to_int(x: f32, scale: f32) -> i32 {
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

/// `fLaC` plus the STREAMINFO block of a stream without frames (always 42 bytes).
fn stream_header_bytes(header: &flacenc::component::Stream) -> Result<Vec<u8>, FlacError> {
    let mut sink = flacenc::bitsink::ByteSink::new();
    header
        .write(&mut sink)
        .map_err(|e| FlacError::Encode(format!("FLAC header serialisation failed: {e:?}")))?;
    Ok(sink.into_inner())
}

enum FlacError {
    Io(io::Error),
    Encode(String),
}

/// 24-bit FLAC encoded frame by frame (flacenc's per-frame API) straight to the file.
///
/// The STREAMINFO header is written first as a placeholder and rewritten by
/// [`finish`](Self::finish) with the totals (sample count, MD5, frame sizes), which is how the
/// reference encoder works; its size never changes (42 bytes with the `fLaC` marker).
struct FlacWriter {
    file: BufWriter<File>,
    config: flacenc::error::Verified<flacenc::config::Encoder>,
    /// Frame buffer and MD5/frame-number context, filled one block at a time.
    fill: (flacenc::source::FrameBuf, flacenc::source::Context),
    /// Interleaved 24-bit samples not yet encoded (fewer than one block between calls).
    pending: Vec<i32>,
    header: flacenc::component::Stream,
    block_size: usize,
    channels: usize,
}

impl FlacWriter {
    fn new(mut file: BufWriter<File>, rate: u32, channels: usize) -> Result<Self, String> {
        let config = flacenc::config::Encoder::default()
            .into_verified()
            .map_err(|e| format!("invalid FLAC encoder configuration: {e:?}"))?;
        let block_size = config.block_size;
        let header = flacenc::component::Stream::new(rate as usize, channels, 24)
            .map_err(|e| format!("FLAC stream header: {e}"))?;
        let fill = (
            flacenc::source::FrameBuf::with_size(channels, block_size)
                .map_err(|e| format!("FLAC frame buffer: {e}"))?,
            flacenc::source::Context::new(24, channels),
        );
        let bytes = stream_header_bytes(&header).map_err(|e| match e {
            FlacError::Io(e) => e.to_string(),
            FlacError::Encode(d) => d,
        })?;
        file.write_all(&bytes).map_err(|e| e.to_string())?;
        Ok(Self {
            file,
            config,
            fill,
            pending: Vec::with_capacity(block_size * channels),
            header,
            block_size,
            channels,
        })
    }

    fn write<S: AsRef<[f32]>>(&mut self, block: &[S], n: usize) -> Result<(), FlacError> {
        let per_block = self.block_size * self.channels;
        for i in 0..n {
            for ch in block {
                self.pending.push(to_int(ch.as_ref()[i], 8_388_607.0));
            }
            if self.pending.len() == per_block {
                self.encode_pending()?;
            }
        }
        Ok(())
    }

    fn encode_pending(&mut self) -> Result<(), FlacError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.fill
            .fill_interleaved(&self.pending)
            .map_err(|e| FlacError::Encode(format!("FLAC input: {e}")))?;
        self.pending.clear();
        let frame_no = self.fill.1.current_frame_number().unwrap_or(0);
        let frame = flacenc::encode_fixed_size_frame(
            &self.config,
            &self.fill.0,
            frame_no,
            self.header.stream_info(),
        )
        .map_err(|e| FlacError::Encode(format!("FLAC encoding failed: {e}")))?;
        self.header.stream_info_mut().update_frame_info(&frame);
        let mut sink = flacenc::bitsink::ByteSink::new();
        frame
            .write(&mut sink)
            .map_err(|e| FlacError::Encode(format!("FLAC serialisation failed: {e:?}")))?;
        self.file.write_all(sink.as_slice()).map_err(FlacError::Io)
    }

    /// Encodes the last (short) block, rewrites the header and returns the file.
    fn finish(mut self) -> Result<File, FlacError> {
        use std::io::{Seek, SeekFrom};
        self.encode_pending()?;
        let (block_size, total, md5) = (
            self.block_size,
            self.fill.1.total_samples(),
            self.fill.1.md5_digest(),
        );
        let info = self.header.stream_info_mut();
        // flacenc lowers STREAMINFO's min block size to the (shorter) last block, which the
        // FLAC spec excludes for fixed-blocksize streams ("excluding the last block"). Decoders
        // that check it strictly (symphonia) then reject every frame header. Restore
        // min = max = block size, as the reference encoder writes.
        info.set_block_sizes(block_size, block_size)
            .map_err(|e| FlacError::Encode(format!("FLAC block size: {e}")))?;
        info.set_md5_digest(&md5);
        info.set_total_samples(total);
        if total == 0 {
            // No frame: frame sizes stay "unknown" (0), as for an empty stream.
            info.set_frame_sizes(0, 0)
                .map_err(|e| FlacError::Encode(format!("FLAC frame sizes: {e}")))?;
        }
        let bytes = stream_header_bytes(&self.header)?;
        let mut file = self
            .file
            .into_inner()
            .map_err(|e| FlacError::Io(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(FlacError::Io)?;
        file.write_all(&bytes).map_err(FlacError::Io)?;
        Ok(file)
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Temp path next to `path`: `.<file name>.<pid>-<counter>-<nanos>.locosep-tmp`.
fn temp_path_for(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the output path has no file name",
        )
    })?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp_name = format!(
        ".{}.{}-{n}-{nanos}{TEMP_SUFFIX}",
        name.to_string_lossy(),
        std::process::id()
    );
    Ok(path.with_file_name(tmp_name))
}

/// Atomically creates/replaces `path` with content produced by `f`.
///
/// `f` writes into a fresh temporary file in the same directory (it may seek; the file starts
/// empty). Afterwards the file is `fsync`ed and moved onto `path`. Missing parent directories are
/// created. If `path` exists and `overwrite` is false → [`AudioError::Exists`] and nothing is
/// written. On any error the temporary file is removed and an existing `path` is untouched.
/// Reusable for any output (audio, JSON, ...).
pub fn write_atomic(
    path: &Path,
    overwrite: bool,
    f: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), AudioError> {
    let werr = |source: io::Error| AudioError::Write {
        path: path.to_path_buf(),
        source,
    };
    if !overwrite && path.symlink_metadata().is_ok() {
        return Err(AudioError::Exists {
            path: path.to_path_buf(),
        });
    }
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        fs::create_dir_all(parent).map_err(werr)?;
    }
    let tmp = temp_path_for(path).map_err(werr)?;
    let mut file = OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .open(&tmp)
        .map_err(werr)?;
    // From here on, every error path must remove `tmp`.
    let result = f(&mut file)
        .and_then(|()| file.flush())
        .and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(werr(e));
    }
    let committed = if overwrite {
        fs::rename(&tmp, path)
    } else {
        commit_no_clobber(&tmp, path)
    };
    if let Err(e) = committed {
        let _ = fs::remove_file(&tmp);
        if e.kind() == io::ErrorKind::AlreadyExists {
            return Err(AudioError::Exists {
                path: path.to_path_buf(),
            });
        }
        return Err(werr(e));
    }
    sync_parent_dir(path);
    Ok(())
}

/// Moves `tmp` to `path` without ever replacing an existing `path`. Uses `hard_link` (fails with
/// `AlreadyExists` atomically) and falls back to check-then-rename on filesystems without links.
fn commit_no_clobber(tmp: &Path, path: &Path) -> io::Result<()> {
    match fs::hard_link(tmp, path) {
        Ok(()) => {
            let _ = fs::remove_file(tmp);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => {
            if path.symlink_metadata().is_ok() {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "file exists"));
            }
            fs::rename(tmp, path)
        }
    }
}

/// Best-effort fsync of the directory entry (Unix); errors are ignored.
fn sync_parent_dir(path: &Path) {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// True if `path`'s file name looks like a temporary file left by [`write_atomic`]
/// (starts with `.` and ends with `.locosep-tmp`).
pub fn is_temp_file(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
        n.starts_with('.') && n.ends_with(TEMP_SUFFIX) && n.len() > TEMP_SUFFIX.len() + 1
    })
}

/// The process id written into a temporary file's name by [`write_atomic`]
/// (`.{name}.{pid}-{n}-{nanos}.locosep-tmp`), if the name has that shape.
fn temp_owner(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?.strip_suffix(TEMP_SUFFIX)?;
    let (_, tail) = name.rsplit_once('.')?;
    tail.split('-').next()?.parse().ok()
}

/// Whether process `pid` is running (Linux: `/proc/<pid>` exists; elsewhere only this process
/// is known to run).
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        false
    }
}

/// Deletes leftover temporary files (see [`is_temp_file`]) directly inside `dir` (not
/// recursive) whose writer is no longer running — a temp file of a live process (this one or
/// another locosep writing beside it) is left alone. Returns how many were removed. A missing
/// directory counts as 0.
pub fn clean_temp_files(dir: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let p = entry.path();
        let live = temp_owner(&p).is_some_and(process_alive);
        if is_temp_file(&p) && !live && entry.file_type()?.is_file() {
            match fs::remove_file(&p) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// Deletes the temporary files (see [`is_temp_file`]) directly inside `dir` that this process
/// is writing — for a process about to exit mid-write (a second Ctrl-C). Returns how many were
/// removed; a missing directory counts as 0.
pub fn remove_own_temp_files(dir: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let me = std::process::id();
    let mut removed = 0;
    for entry in entries.flatten() {
        let p = entry.path();
        if is_temp_file(&p)
            && temp_owner(&p) == Some(me)
            && entry.file_type().is_ok_and(|t| t.is_file())
            && fs::remove_file(&p).is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_spares_temp_files_of_running_processes() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join(format!(
            ".vocals.wav.{}-0-1{TEMP_SUFFIX}",
            std::process::id()
        ));
        // Pid 0 is never a user process: a leftover of a dead writer.
        let dead = dir.path().join(format!(".drums.wav.0-3-9{TEMP_SUFFIX}"));
        let odd = dir.path().join(format!(".bass.wav{TEMP_SUFFIX}"));
        let keep = dir.path().join("other.wav");
        for p in [&own, &dead, &odd, &keep] {
            fs::write(p, b"x").unwrap();
        }
        assert_eq!(temp_owner(&own), Some(std::process::id()));
        assert_eq!(clean_temp_files(dir.path()).unwrap(), 2);
        assert!(own.exists() && keep.exists());
        assert!(!dead.exists() && !odd.exists());
    }

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
        let e = "mp3".parse::<SampleFormat>().unwrap_err();
        assert!(e.contains("wav16, wav24, f32, flac"), "{e}");
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
    fn own_temp_files_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join(format!(
            ".vocals.wav.{}-0-1{TEMP_SUFFIX}",
            std::process::id()
        ));
        let other = dir.path().join(format!(".drums.wav.0-3-9{TEMP_SUFFIX}"));
        let keep = dir.path().join("bass.wav");
        for p in [&own, &other, &keep] {
            fs::write(p, b"x").unwrap();
        }
        assert_eq!(remove_own_temp_files(dir.path()).unwrap(), 1);
        assert!(!own.exists() && other.exists() && keep.exists());
        assert_eq!(
            remove_own_temp_files(&dir.path().join("missing")).unwrap(),
            0
        );
    }

    #[test]
    fn non_finite_audio_is_an_error_never_a_file() {
        let d = tempfile::tempdir().unwrap();
        for fmt in [SampleFormat::Wav16, SampleFormat::F32, SampleFormat::Flac] {
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
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 3);
    }

    #[test]
    fn atomic_refuses_overwrite_and_cleans_up() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out.json");
        write_atomic(&p, false, |f| f.write_all(b"old")).unwrap();
        let e = write_atomic(&p, false, |f| f.write_all(b"new")).unwrap_err();
        assert!(matches!(e, AudioError::Exists { .. }));
        assert!(e.to_string().contains("--overwrite") && e.to_string().contains("out.json"));
        assert_eq!(fs::read(&p).unwrap(), b"old");
        // Failing writer: temp removed, old file untouched.
        let e = write_atomic(&p, true, |f| {
            f.write_all(b"partial")?;
            Err(io::Error::other("boom"))
        })
        .unwrap_err();
        assert!(matches!(e, AudioError::Write { .. }));
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        write_atomic(&p, true, |f| f.write_all(b"new")).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn temp_file_detection_and_cleanup() {
        let d = tempfile::tempdir().unwrap();
        let t = temp_path_for(&d.path().join("song.wav")).unwrap();
        assert!(is_temp_file(&t), "{t:?}");
        assert!(
            t.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(".song.wav.")
        );
        assert!(!is_temp_file(Path::new("song.wav")));
        assert!(!is_temp_file(Path::new(".locosep-tmp")));
        fs::write(&t, b"x").unwrap();
        // A leftover of a writer that is gone (pid 0 is never a user process).
        fs::write(d.path().join(".other.flac.0-1-2.locosep-tmp"), b"x").unwrap();
        fs::write(d.path().join("keep.wav"), b"x").unwrap();
        // This process's own temp file is in use: spared.
        assert_eq!(clean_temp_files(d.path()).unwrap(), 1);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 2);
        assert!(t.exists());
        assert_eq!(clean_temp_files(&d.path().join("missing")).unwrap(), 0);
    }
}
