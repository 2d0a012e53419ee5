//! Multitrack datasets read as streams of random segments — a dataset is never loaded whole.
//!
//! Layouts:
//! - MUSDB18-HQ folders: `<root>/<track>/{mixture,vocals,drums,bass,other}.wav` (also what
//!   `locosep synth` writes);
//! - MUSDB18 `.stem.mp4` files in the root: `<root>/<track>.stem.mp4`, five AAC streams in
//!   the order mixture, drums, bass, other, vocals (each stream's encoder delay is trimmed by
//!   the decoder's edit-list handling, so stems stay aligned with the mixture);
//! - a user's own folders of stems: any subset of the four (missing stems are silence), other
//!   stem files mapped by `stem_for_name` (e.g. `lead_vocals.wav` → vocals, `guitar.wav` →
//!   other) and summed; the mixture is the sum of the stems when no `mixture.*` exists.
//!
//! WAV files are read by seeking to the segment (hound); other formats (and each stream of a
//! `.stem.mp4`) are decoded whole, one stream at a time, and cut.

use std::path::{Path, PathBuf};

use crate::audio::decode::{DecodeOptions, audio_track_count, decode_file, probe_info};
use crate::audio::resample::resample;

/// The four target stems, in model order.
pub const STEMS: [&str; 4] = ["vocals", "drums", "bass", "other"];

/// Errors of dataset reading.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// No usable track under the root.
    #[error(
        "no tracks found in {0}: expected <track>/ folders holding mixture.wav and/or stem files (vocals, drums, bass, other), or <track>.stem.mp4 files"
    )]
    NoTracks(PathBuf),
    /// The folder could not be listed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Folder.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A file could not be decoded.
    #[error(transparent)]
    Audio(#[from] crate::audio::AudioError),
    /// A file does not have the layout its name promises.
    #[error("{path}: {detail}")]
    Format {
        /// File.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A WAV segment read failed.
    #[error("cannot read {path}: {detail}")]
    Wav {
        /// File.
        path: PathBuf,
        /// Cause.
        detail: String,
    },
}

/// Maps a stem file name (without extension) to one of [`STEMS`], or `None` for files that are
/// not stems (the mixture, unrelated files).
fn stem_for_name(name: &str) -> Option<usize> {
    let n = name.to_ascii_lowercase();
    if n == "mixture" || n == "mix" || n == "linear_mixture" {
        return None;
    }
    let has = |words: &[&str]| words.iter().any(|w| n.contains(w));
    if has(&[
        "vocal",
        "voice",
        "vox",
        "sing",
        "choir",
        "lead_v",
        "backing_v",
    ]) {
        Some(0)
    } else if has(&[
        "drum", "kick", "snare", "hat", "cymbal", "tom", "perc", "overhead",
    ]) {
        Some(1)
    } else if has(&["bass"]) {
        Some(2)
    } else {
        Some(3)
    }
}

/// Where one stem's audio lives: a file, or one audio stream of a multi-stream file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The file.
    pub path: PathBuf,
    /// Audio stream index inside it (`.stem.mp4`); None = its default stream.
    pub audio_track: Option<usize>,
}

impl From<PathBuf> for Source {
    fn from(path: PathBuf) -> Self {
        Self {
            path,
            audio_track: None,
        }
    }
}

/// Stream order of a MUSDB18 `.stem.mp4` as indices into [`STEMS`] (stream 0 is the mixture).
const STEM_MP4_ORDER: [usize; 4] = [1, 2, 3, 0];

/// One track: its sources per stem (several may sum into one stem) and length.
#[derive(Debug, Clone)]
pub struct Track {
    /// Folder name (or `.stem.mp4` file name without that suffix).
    pub name: String,
    /// Explicit mixture, if any.
    pub mixture: Option<Source>,
    /// Sources summed into each of the four stems (empty = silence).
    pub stems: [Vec<Source>; 4],
    /// Length in samples at `rate`.
    pub len: usize,
    /// Sample rate of the files.
    pub rate: u32,
}

/// Lists the tracks of a dataset folder (sorted by name).
pub fn scan(root: &Path) -> Result<Vec<Track>, DatasetError> {
    let io = |e| DatasetError::Io {
        path: root.to_path_buf(),
        source: e,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut tracks = vec![];
    for file in entries.iter().filter(|p| p.is_file()) {
        if let Some(track) = stem_mp4_track(file)? {
            tracks.push(track);
        }
    }
    for dir in entries.into_iter().filter(|p| p.is_dir()) {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => continue,
        };
        files.sort();
        let mut mixture = None;
        let mut stems: [Vec<Source>; 4] = Default::default();
        for f in files {
            let ext = f
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            // A `.stem.mp4` is a whole multitrack, not one stem of this folder.
            let multitrack = f
                .to_string_lossy()
                .to_ascii_lowercase()
                .ends_with(".stem.mp4");
            if !crate::audio::AUDIO_EXTENSIONS.contains(&ext.as_str())
                || multitrack
                || crate::audio::encode::is_temp_file(&f)
            {
                continue;
            }
            let stem = f
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            match stem_for_name(&stem) {
                None if stem.eq_ignore_ascii_case("mixture")
                    || stem.eq_ignore_ascii_case("mix") =>
                {
                    mixture = Some(Source::from(f))
                }
                None => {}
                Some(i) => stems[i].push(Source::from(f)),
            }
        }
        let Some(first) = mixture
            .clone()
            .or_else(|| stems.iter().flatten().next().cloned())
        else {
            continue;
        };
        let info = probe_info(&first.path)?;
        let len = info
            .duration_secs
            .map_or(0, |d| (d * info.sample_rate as f64).round() as usize);
        tracks.push(Track {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            mixture,
            stems,
            len,
            rate: info.sample_rate,
        });
    }
    if tracks.is_empty() {
        return Err(DatasetError::NoTracks(root.to_path_buf()));
    }
    tracks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tracks)
}

/// A `.stem.mp4` file as a track (None for any other file). Errors when it has fewer than
/// five audio streams.
fn stem_mp4_track(file: &Path) -> Result<Option<Track>, DatasetError> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let Some(base) = lower
        .strip_suffix(".stem.mp4")
        .or_else(|| lower.strip_suffix(".stem.m4a"))
    else {
        return Ok(None);
    };
    let base = name[..base.len()].to_string();
    let streams = audio_track_count(file)?;
    if streams < 5 {
        return Err(DatasetError::Format {
            path: file.to_path_buf(),
            detail: format!(
                "a .stem.mp4 needs 5 audio streams (mixture, drums, bass, other, vocals); this \
                 one has {streams}"
            ),
        });
    }
    let source = |i: usize| Source {
        path: file.to_path_buf(),
        audio_track: Some(i),
    };
    let mut stems: [Vec<Source>; 4] = Default::default();
    for (stream, &stem) in STEM_MP4_ORDER.iter().enumerate() {
        stems[stem].push(source(stream + 1));
    }
    let info = probe_info(file)?;
    let len = info
        .duration_secs
        .map_or(0, |d| (d * info.sample_rate as f64).round() as usize);
    Ok(Some(Track {
        name: base,
        mixture: Some(source(0)),
        stems,
        len,
        rate: info.sample_rate,
    }))
}

/// Reads `[start, start+len)` of a source as stereo at `rate` (mono is duplicated),
/// zero-padded past the end.
pub fn read_segment(
    source: &Source,
    start: usize,
    len: usize,
    rate: u32,
) -> Result<[Vec<f32>; 2], DatasetError> {
    let path = source.path.as_path();
    let is_wav = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
    let mut chans: Vec<Vec<f32>> = if is_wav && source.audio_track.is_none() {
        match read_wav_segment(path, start, len) {
            Ok((r, c)) if r == rate => c,
            _ => decode_cut(source, start, len, rate)?,
        }
    } else {
        decode_cut(source, start, len, rate)?
    };
    for c in chans.iter_mut() {
        c.resize(len, 0.0);
    }
    let right = if chans.len() > 1 {
        chans.swap_remove(1)
    } else {
        chans[0].clone()
    };
    let left = chans.swap_remove(0);
    Ok([left, right])
}

fn decode_cut(
    source: &Source,
    start: usize,
    len: usize,
    rate: u32,
) -> Result<Vec<Vec<f32>>, DatasetError> {
    let opts = DecodeOptions {
        downmix: true,
        audio_track: source.audio_track,
    };
    let mut buf = decode_file(&source.path, &opts)?;
    if buf.sample_rate != rate {
        buf = resample(&buf, rate)?;
    }
    Ok(buf
        .channels
        .into_iter()
        .map(|c| {
            c.get(start.min(c.len())..(start + len).min(c.len()))
                .unwrap_or(&[])
                .to_vec()
        })
        .collect())
}

fn read_wav_segment(
    path: &Path,
    start: usize,
    len: usize,
) -> Result<(u32, Vec<Vec<f32>>), DatasetError> {
    let err = |e: hound::Error| DatasetError::Wav {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let mut r = hound::WavReader::open(path).map_err(err)?;
    let spec = r.spec();
    let ch = spec.channels as usize;
    let total = r.duration() as usize;
    let start = start.min(total);
    r.seek(start as u32)
        .map_err(|e| err(hound::Error::IoError(e)))?;
    let take = len.min(total - start) * ch;
    let mut out = vec![Vec::with_capacity(len); ch];
    match spec.sample_format {
        hound::SampleFormat::Float => {
            for (i, s) in r.samples::<f32>().take(take).enumerate() {
                out[i % ch].push(s.map_err(err)?);
            }
        }
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            for (i, s) in r.samples::<i32>().take(take).enumerate() {
                out[i % ch].push(s.map_err(err)? as f32 * scale);
            }
        }
    }
    Ok((spec.sample_rate, out))
}

/// One training example: stereo stems of one segment (the mixture is their sum after
/// augmentation).
#[derive(Debug, Clone)]
pub struct Example {
    /// `[stem][channel][sample]`.
    pub stems: [[Vec<f32>; 2]; 4],
}

impl Track {
    /// Reads the four stems of `[start, start+len)` at `rate`.
    pub fn read_stems(&self, start: usize, len: usize, rate: u32) -> Result<Example, DatasetError> {
        let mut stems: [[Vec<f32>; 2]; 4] = Default::default();
        for (i, files) in self.stems.iter().enumerate() {
            stems[i] = [vec![0.0; len], vec![0.0; len]];
            for f in files {
                let seg = read_segment(f, start, len, rate)?;
                for (acc, part) in stems[i].iter_mut().zip(seg) {
                    acc.iter_mut().zip(part).for_each(|(a, b)| *a += b);
                }
            }
        }
        Ok(Example { stems })
    }

    /// Reads the mixture of `[start, start+len)`: the mixture file when present, else Σ stems.
    pub fn read_mixture(
        &self,
        start: usize,
        len: usize,
        rate: u32,
    ) -> Result<[Vec<f32>; 2], DatasetError> {
        match &self.mixture {
            Some(m) => read_segment(m, start, len, rate),
            None => {
                let ex = self.read_stems(start, len, rate)?;
                let mut mix = [vec![0.0; len], vec![0.0; len]];
                for s in &ex.stems {
                    for (m, c) in mix.iter_mut().zip(s) {
                        m.iter_mut().zip(c).for_each(|(a, b)| *a += b);
                    }
                }
                Ok(mix)
            }
        }
    }
}

/// Shortest track accepted for training, in seconds: the shortest training segment (the
/// spectral loss needs at least this much audio).
pub const MIN_TRAIN_TRACK_SECONDS: f64 = 0.05;

/// Refuses tracks that would train (or validate) silently wrong: a track with only a mixture
/// (every target would be silence), a track shorter than [`MIN_TRAIN_TRACK_SECONDS`], and
/// stem files whose sample rate or length differ from the track's (by more than 10 ms, the
/// slack of compressed formats' decoders). The error names the track and the file.
pub fn check_for_training(tracks: &[Track]) -> Result<(), DatasetError> {
    for t in tracks {
        let first = t
            .mixture
            .as_ref()
            .or_else(|| t.stems.iter().flatten().next());
        let Some(first) = first else { continue };
        let format = |detail: String| DatasetError::Format {
            path: first.path.clone(),
            detail,
        };
        if t.stems.iter().all(Vec::is_empty) {
            return Err(format(format!(
                "track '{}' has only a mixture: training needs at least one stem file \
                 ({}); every target would be silence",
                t.name,
                STEMS.join(", ")
            )));
        }
        // A length the header does not state (some MP3s) is not checked.
        let known = first.audio_track.is_some() || probe_info(&first.path)?.duration_secs.is_some();
        let min = (MIN_TRAIN_TRACK_SECONDS * t.rate as f64).ceil() as usize;
        if known && t.len < min {
            return Err(format(format!(
                "track '{}' is {} sample(s) long; training needs at least {min} \
                 ({MIN_TRAIN_TRACK_SECONDS} s at {} Hz)",
                t.name, t.len, t.rate
            )));
        }
        let slack = (t.rate / 100) as usize;
        for src in t.stems.iter().flatten() {
            // The streams of a `.stem.mp4` share the file's length and rate.
            if src.audio_track.is_some() {
                continue;
            }
            let info = probe_info(&src.path)?;
            let len = info
                .duration_secs
                .map_or(0, |d| (d * info.sample_rate as f64).round() as usize);
            let bad = |detail: String| DatasetError::Format {
                path: src.path.clone(),
                detail,
            };
            if info.sample_rate != t.rate {
                return Err(bad(format!(
                    "track '{}': this stem is at {} Hz but '{}' is at {} Hz",
                    t.name,
                    info.sample_rate,
                    first.path.display(),
                    t.rate
                )));
            }
            if known && info.duration_secs.is_some() && len.abs_diff(t.len) > slack {
                return Err(bad(format!(
                    "track '{}': this stem has {len} samples but '{}' has {}; the stems of a \
                     track must have one length",
                    t.name,
                    first.path.display(),
                    t.len
                )));
            }
        }
    }
    Ok(())
}

/// Splits tracks into training and validation sets by track: every `k`-th track (sorted by
/// name) is held out, `k = round(1 / valid_fraction)`.
pub fn split_by_track(tracks: Vec<Track>, valid_fraction: f64) -> (Vec<Track>, Vec<Track>) {
    if valid_fraction <= 0.0 || tracks.len() < 2 {
        return (tracks, vec![]);
    }
    let k = (1.0 / valid_fraction).round().max(2.0) as usize;
    let (mut train, mut valid) = (vec![], vec![]);
    for (i, t) in tracks.into_iter().enumerate() {
        if i % k == k - 1 {
            valid.push(t)
        } else {
            train.push(t)
        }
    }
    (train, valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stem_names_map_to_the_four_stems() {
        assert_eq!(stem_for_name("vocals"), Some(0));
        assert_eq!(stem_for_name("Lead_Vocals"), Some(0));
        assert_eq!(stem_for_name("drums"), Some(1));
        assert_eq!(stem_for_name("kick"), Some(1));
        assert_eq!(stem_for_name("bass"), Some(2));
        assert_eq!(stem_for_name("guitar"), Some(3));
        assert_eq!(stem_for_name("mixture"), None);
    }

    #[test]
    fn folders_with_subsets_of_stems_read_as_four_stems() {
        let tmp = tempfile::tempdir().unwrap();
        let track = tmp.path().join("song_a");
        std::fs::create_dir_all(&track).unwrap();
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        for (name, v) in [("vocals", 0.5f32), ("guitar", 0.25), ("piano", 0.125)] {
            let mut w = hound::WavWriter::create(track.join(format!("{name}.wav")), spec).unwrap();
            for i in 0..1000 {
                w.write_sample(v * i as f32 / 1000.0).unwrap();
                w.write_sample(-v).unwrap();
            }
            w.finalize().unwrap();
        }
        let tracks = scan(tmp.path()).unwrap();
        assert_eq!(tracks.len(), 1);
        assert_eq!(tracks[0].len, 1000);
        let ex = tracks[0].read_stems(500, 600, 44_100).unwrap();
        // Vocals read from the right offset; drums and bass silent; guitar + piano → other.
        assert!((ex.stems[0][0][0] - 0.25).abs() < 1e-6);
        assert!(ex.stems[1][0].iter().all(|&v| v == 0.0));
        assert!((ex.stems[3][1][0] + 0.375).abs() < 1e-6);
        // Past the end: zeros.
        assert_eq!(ex.stems[0][0][599], 0.0);
        let mix = tracks[0].read_mixture(0, 10, 44_100).unwrap();
        assert!(
            (mix[1][0] + 0.875).abs() < 1e-6,
            "mixture = Σ stems when absent"
        );
    }
}
