//! MP4/M4A edit lists (`elst`): the encoder delay and padding symphonia 0.6.1 does not apply.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

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
    pub(super) fn frames(&self, rate: u32) -> (u64, Option<u64>) {
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
}
