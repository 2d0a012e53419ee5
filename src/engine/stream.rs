//! A song file separated into stem files as a stream: decode a block, separate the chunks it
//! completes, write the stems that are final — so an hour-long input needs no more memory than a
//! five-minute one.
//!
//! Two passes over the input: the first decodes it to count its frames (chunking needs the
//! length) and to measure the input normalisation; the second separates. Nothing of the song is
//! kept between them. The stems go to temporary files beside their targets; only once the
//! whole song is separated is each renamed into place, one after the other, so a cancel, a
//! crash or an error during separation leaves no file under a final name and never touches an
//! existing one (a failure of the renames themselves can leave the stems renamed before it).
//!
//! The result is bit-identical to decoding the whole file, [`Separator::separate`] and
//! [`ExportOptions::write`] (the in-memory path runs the same stages; see `tests/streaming.rs`).

use std::path::{Path, PathBuf};

use crate::audio::encode::AudioFileWriter;
use crate::audio::{DecodeOptions, StreamDecoder};

use super::EngineError;
use super::export::{ExportOptions, mix_channels, stem_sources};
use super::separator::{CancelToken, InputScale, Progress, SeparateParams, Separator, StreamInput};

/// What [`separate_file_as`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct FileReport {
    /// The files written, in stem order.
    pub written: Vec<PathBuf>,
    /// Length of the input in seconds.
    pub seconds: f64,
    /// Packets of the input that could not be decoded and were skipped (twice the same).
    pub skipped_packets: u64,
    /// Input samples that were NaN or ±infinity and were separated as 0 (a front end warns).
    pub nonfinite_samples: u64,
}

/// Separates `input` into the stems `export` asks for, streaming (see the module docs), under
/// the track name `track` ([`track_name`](super::export::track_name) of the file, or one made
/// unique among several inputs by [`unique_track_names`](super::export::unique_track_names)).
/// `progress` is called per batch of chunks during the second pass. On a GPU the caller may
/// wrap this in [`Separator::with_fallback`]: a failed attempt leaves no file behind.
///
/// Input samples that are NaN or ±infinity are separated as 0 (counted in the report); a stem
/// with a non-finite sample is an error, and no file of the song is written.
#[allow(clippy::too_many_arguments)]
pub fn separate_file_as(
    sep: &Separator,
    input: &Path,
    track: &str,
    decode: &DecodeOptions,
    params: &SeparateParams,
    export: &ExportOptions,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(Progress),
) -> Result<FileReport, EngineError> {
    let cfg = sep.config();
    params.validate(cfg)?;
    // Pass 1: length, channels, rate and the input statistics.
    let mut dec = StreamDecoder::open(input, decode)?;
    let mut block = Vec::new();
    let mut stats = InputScale::default();
    let (mut frames, mut channels) = (0usize, 0usize);
    while dec.next_block(&mut block)? {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        channels = block.len();
        frames += block[0].len();
        stats.add(&block);
    }
    let rate = dec
        .sample_rate()
        .ok_or_else(|| EngineError::BadParameter("the input states no sample rate".into()))?;
    let skipped_packets = dec.stats().skipped_packets;
    // The decoder has replaced them by 0 (and does so again in pass 2).
    let nonfinite_samples = dec.stats().nonfinite_samples;
    drop(dec);

    let targets = export.prepare(track, &cfg.sources)?;
    let mixes = targets
        .iter()
        .map(|(stem, _)| stem_sources(&cfg.sources, stem))
        .collect::<Result<Vec<_>, _>>()?;
    // Dropping a writer before its commit removes its temp file, so every early return below
    // leaves the output folder as it was.
    let mut writers = targets
        .iter()
        .map(|(_, path)| {
            AudioFileWriter::create(path, export.format, rate, channels, export.overwrite)
        })
        .collect::<Result<Vec<_>, _>>()?;

    // Pass 2: separate.
    let mut dec = StreamDecoder::open(input, decode)?;
    sep.separate_stream(
        &StreamInput {
            sample_rate: rate,
            channels,
            frames,
            scale: stats.scale(cfg.input_norm),
        },
        params,
        &mut |b| Ok(dec.next_block(b)?),
        &mut |stems| {
            for (w, mix) in writers.iter_mut().zip(&mixes) {
                if let [one] = mix[..] {
                    w.write(&stems[one])?;
                } else {
                    let parts: Vec<&[Vec<f32>]> = mix.iter().map(|&i| &stems[i][..]).collect();
                    w.write(&mix_channels(&parts))?;
                }
            }
            Ok(())
        },
        cancel,
        progress,
    )?;
    let written = writers.iter().map(|w| w.path().to_path_buf()).collect();
    for w in writers {
        w.commit()?;
    }
    Ok(FileReport {
        written,
        seconds: frames as f64 / f64::from(rate),
        skipped_packets,
        nonfinite_samples,
    })
}
