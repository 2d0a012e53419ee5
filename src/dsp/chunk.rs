//! Chunking plan: how a long signal is cut into fixed-size, overlapping
//! chunks for the model (demucs-style `apply_model` splitting).
//!
//! Chunk `i` nominally covers `[start_i, start_i + segment)` with
//! `start_i = i · stride`; the model is fed the wider *read window*
//! `[start_i − context, start_i + segment + context)`, taken from the real
//! signal wherever it exists and zero only outside `[0, length)`.

use super::DspError;

/// One chunk of a [`ChunkPlan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Index of the chunk in the plan.
    pub index: usize,
    /// First sample of the central `segment` part (`index · stride`);
    /// `start + segment` may exceed the signal length for the last chunk.
    pub start: usize,
    /// Number of central samples that lie inside the signal:
    /// `min(segment, length − start)` (always ≥ 1).
    pub valid: usize,
}

/// Pure description of how `length` samples are cut into chunks.
///
/// Invariants: `segment ≥ 1`, `1 ≤ stride ≤ segment`, `num_chunks ≥ 1`, and
/// the central parts of the chunks cover `[0, length)` completely (the last
/// chunk is the first one whose central part reaches `length`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlan {
    length: usize,
    segment: usize,
    stride: usize,
    context: usize,
    num_chunks: usize,
}

impl ChunkPlan {
    /// Plans chunks of `segment` samples overlapping by a fraction `overlap`
    /// (in `[0, 1)`), each read with `context` extra samples on both sides.
    ///
    /// `stride = segment − round(overlap · segment)`, clamped to ≥ 1.
    /// `length ≤ segment` (including `length == 0`) gives a single chunk.
    pub fn new(
        length: usize,
        segment: usize,
        overlap: f32,
        context: usize,
    ) -> Result<Self, DspError> {
        if segment == 0 {
            return Err(DspError::InvalidSegment(segment));
        }
        if !(overlap.is_finite() && (0.0..1.0).contains(&overlap)) {
            return Err(DspError::InvalidOverlap(overlap));
        }
        let ov = (f64::from(overlap) * segment as f64).round() as usize;
        let stride = segment.saturating_sub(ov).max(1);
        let num_chunks = if length <= segment {
            1
        } else {
            1 + (length - segment).div_ceil(stride)
        };
        Ok(Self {
            length,
            segment,
            stride,
            context,
            num_chunks,
        })
    }

    /// Signal length in samples.
    pub fn length(&self) -> usize {
        self.length
    }

    /// Central chunk size in samples.
    pub fn segment(&self) -> usize {
        self.segment
    }

    /// Distance between consecutive chunk starts (≥ 1).
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Extra samples of real neighbouring audio read on each side of a chunk.
    pub fn context(&self) -> usize {
        self.context
    }

    /// Samples per chunk as fed to the model: `segment + 2·context`.
    pub fn chunk_len(&self) -> usize {
        self.segment + 2 * self.context
    }

    /// Number of chunks (≥ 1).
    pub fn num_chunks(&self) -> usize {
        self.num_chunks
    }

    /// Chunk `i`, or `None` if `i >= num_chunks()`.
    pub fn chunk(&self, i: usize) -> Option<Chunk> {
        if i >= self.num_chunks {
            return None;
        }
        let start = i * self.stride;
        let valid = self.segment.min(self.length.saturating_sub(start));
        Some(Chunk {
            index: i,
            start,
            valid,
        })
    }

    /// Iterates over all chunks in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = Chunk> + '_ {
        (0..self.num_chunks).filter_map(|i| self.chunk(i))
    }

    /// Copies the read window of chunk `i`,
    /// `[start − context, start + segment + context)`, of the single-channel
    /// `signal` (length `length()`) into `out` (length `chunk_len()`), with
    /// zeros exactly where the window falls outside `[0, length)`.
    pub fn fill_chunk(&self, i: usize, signal: &[f32], out: &mut [f32]) -> Result<(), DspError> {
        if signal.len() != self.length {
            return Err(DspError::ShapeMismatch {
                what: "chunk source signal",
                expected: self.length,
                got: signal.len(),
            });
        }
        self.fill_chunk_from(i, signal, 0, out)
    }

    /// Range `[lo, hi)` of signal samples that chunk `i`'s read window takes from the signal
    /// (the rest of the window is zero padding outside `[0, length)`).
    pub fn source_range(&self, i: usize) -> Option<(usize, usize)> {
        let chunk = self.chunk(i)?;
        let lo = chunk.start.saturating_sub(self.context);
        let hi = (chunk.start + self.segment + self.context).min(self.length);
        Some((lo, hi.max(lo)))
    }

    /// [`fill_chunk`](Self::fill_chunk) from a window of the signal: `window` holds samples
    /// `[window_start, window_start + window.len())`, which must include
    /// [`source_range`](Self::source_range)`(i)`. This is what a streamed separation uses, so
    /// that only a few chunks of the song are in memory at once.
    pub fn fill_chunk_from(
        &self,
        i: usize,
        window: &[f32],
        window_start: usize,
        out: &mut [f32],
    ) -> Result<(), DspError> {
        let chunk = self.chunk(i).ok_or(DspError::ChunkIndex {
            index: i,
            num_chunks: self.num_chunks,
        })?;
        if out.len() != self.chunk_len() {
            return Err(DspError::ShapeMismatch {
                what: "chunk buffer",
                expected: self.chunk_len(),
                got: out.len(),
            });
        }
        // Read window in signal coordinates: [lo, hi) with lo possibly negative.
        let lo = chunk.start as isize - self.context as isize;
        let hi = lo + out.len() as isize;
        let src_lo = lo.max(0) as usize;
        let src_hi = (hi.max(0) as usize).min(self.length);
        out.fill(0.0);
        if src_lo < src_hi {
            if src_lo < window_start || src_hi > window_start + window.len() {
                return Err(DspError::ShapeMismatch {
                    what: "chunk source window end",
                    expected: src_hi,
                    got: window_start + window.len(),
                });
            }
            let dst_lo = (src_lo as isize - lo) as usize;
            out[dst_lo..dst_lo + (src_hi - src_lo)]
                .copy_from_slice(&window[src_lo - window_start..src_hi - window_start]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(ChunkPlan::new(100, 0, 0.25, 0).is_err());
        assert!(ChunkPlan::new(100, 10, 1.0, 0).is_err());
        assert!(ChunkPlan::new(100, 10, -0.1, 0).is_err());
        assert!(ChunkPlan::new(100, 10, f32::NAN, 0).is_err());
        let msg = ChunkPlan::new(100, 10, 1.5, 0).unwrap_err().to_string();
        assert!(msg.contains("[0, 1)"), "{msg}");
    }

    #[test]
    fn counts_and_coverage() {
        let p = ChunkPlan::new(100, 40, 0.25, 0).unwrap();
        assert_eq!(p.stride(), 30);
        let starts: Vec<_> = p.iter().map(|c| c.start).collect();
        assert_eq!(starts, vec![0, 30, 60]);
        assert_eq!(p.chunk(2).unwrap().valid, 40);
        let p = ChunkPlan::new(101, 40, 0.25, 0).unwrap();
        assert_eq!(p.num_chunks(), 4);
        assert_eq!(p.chunk(3).unwrap().valid, 11);
        assert_eq!(ChunkPlan::new(40, 40, 0.5, 3).unwrap().num_chunks(), 1);
        assert_eq!(ChunkPlan::new(0, 40, 0.5, 3).unwrap().num_chunks(), 1);
        // Overlap rounding to a full segment still gives stride >= 1.
        assert_eq!(ChunkPlan::new(10, 1, 0.9, 0).unwrap().stride(), 1);
        for len in 0..200 {
            for seg in 1..20 {
                let p = ChunkPlan::new(len, seg, 0.3, 2).unwrap();
                let last = p.chunk(p.num_chunks() - 1).unwrap();
                assert!(last.start + seg >= len);
                if p.num_chunks() > 1 {
                    let prev = p.chunk(p.num_chunks() - 2).unwrap();
                    assert!(prev.start + seg < len, "no superfluous chunk");
                }
            }
        }
    }

    #[test]
    fn fill_chunk_uses_real_context() {
        let sig: Vec<f32> = (1..=20).map(|v| v as f32).collect();
        let p = ChunkPlan::new(20, 8, 0.5, 3).unwrap();
        let mut buf = vec![f32::NAN; p.chunk_len()];
        p.fill_chunk(0, &sig, &mut buf).unwrap();
        assert_eq!(
            buf,
            vec![0., 0., 0., 1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11.]
        );
        p.fill_chunk(1, &sig, &mut buf).unwrap();
        assert_eq!(
            buf,
            vec![2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12., 13., 14., 15.]
        );
        let last = p.num_chunks() - 1;
        assert_eq!(p.chunk(last).unwrap().start, 12);
        p.fill_chunk(last, &sig, &mut buf).unwrap();
        assert_eq!(
            buf,
            vec![
                10., 11., 12., 13., 14., 15., 16., 17., 18., 19., 20., 0., 0., 0.
            ]
        );
        assert!(p.fill_chunk(last + 1, &sig, &mut buf).is_err());
        assert!(p.fill_chunk(0, &sig[..5], &mut buf).is_err());
        // Context larger than the whole signal.
        let p = ChunkPlan::new(3, 2, 0.0, 5).unwrap();
        let mut buf = vec![f32::NAN; p.chunk_len()];
        p.fill_chunk(1, &[1.0, 2.0, 3.0], &mut buf).unwrap();
        assert_eq!(buf, vec![0., 0., 0., 1., 2., 3., 0., 0., 0., 0., 0., 0.]);
    }
}
