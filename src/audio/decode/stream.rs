//! [`StreamDecoder`]: the packet loop shared by whole-file and streaming decodes.

use std::io;
use std::path::Path;

use symphonia::core::codecs::audio::AudioDecoder;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatReader, Track};

use super::downmix::downmix_to_stereo;
use super::mp4::mp4_edit;
use super::open::{
    audio_params, check_channels, check_rate, make_decoder, map_err, open_format, select_track,
};
use super::{DecodeOptions, DecodeStats, MAX_DURATION_SECS, MAX_PREALLOC_SECS, guard};
use crate::audio::{AudioBuffer, AudioError};

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
                        let (skip, keep) = edit.frames(rate);
                        // The edit's start includes what the decoder drops itself (the Opus
                        // pre-skip): drop only the rest here.
                        let own = self
                            .track
                            .codec_params
                            .as_ref()
                            .and_then(|p| p.audio())
                            .map_or(0, |p| {
                                let mut p = p.clone();
                                super::codecs::fix_opus_head(&mut p);
                                super::codecs::decoder_start_trim(&p)
                            });
                        self.edit = Some((skip.saturating_sub(own), keep));
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

/// The whole-file decode behind [`decode_file`](super::decode_file): the stream's blocks
/// appended to one buffer.
pub(super) fn decode_inner(
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
