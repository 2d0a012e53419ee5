//! mixit-mss's inference around a BS-Locoformer (`ModelWrapper.css`, `SupTask.normalize_wav`,
//! `separate_sample.py`), reproduced step by step so that the published scores carry over:
//!
//! 1. the whole mixture is divided by its STFT-power scale (per channel);
//! 2. it is cut into segments of `css_segment_size` seconds every `css_shift_size` seconds, the
//!    last one zero-padded; each runs through the wrapper's forward (its own power scale, STFT,
//!    `N // hop` frames, network, iSTFT, × scale — [`DeviceModel::forward_waveforms`]);
//! 3. overlaps are averaged 50/50 with what came before (no window), the rest appended;
//! 4. the result is multiplied by the mixture's scale.
//!
//! A song no longer than one segment runs as one piece, unpadded.

use crate::model::config::CssParams;

use super::EngineError;
use super::device_model::DeviceModel;
pub use super::device_model::{power_scale, power_scale_of};
use super::params::CancelToken;

/// Where the segments of a song lie (pure geometry).
///
/// Invariant: stitching the segments' outputs with [`CssPlan::stitch`] gives exactly `len`
/// samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CssPlan {
    /// Song length in samples.
    pub len: usize,
    /// Segment length T in samples (the whole song when `starts.len() == 1`).
    pub segment: usize,
    /// Overlap of consecutive segments in samples.
    pub overlap: usize,
    /// First sample of each segment.
    pub starts: Vec<usize>,
}

impl CssPlan {
    /// The plan of `ModelWrapper.css` for `len` samples at `sample_rate`.
    pub fn new(len: usize, css: &CssParams, sample_rate: u32) -> Result<Self, EngineError> {
        let fs = sample_rate as f64;
        // Python's `speech_length > css_segment_size * fs`, `int(...)`, `np.round(...)`.
        if len as f64 <= css.segment_seconds * fs {
            return Ok(Self {
                len,
                segment: len,
                overlap: 0,
                starts: vec![0],
            });
        }
        let overlap = (fs * (css.segment_seconds - css.shift_seconds)).round() as usize;
        let segment = (css.segment_seconds * fs) as usize;
        let count = ((len as f64 - overlap as f64) / (css.shift_seconds * fs)).ceil() as usize;
        if segment == 0 || overlap >= segment || count == 0 {
            return Err(EngineError::BadParameter(format!(
                "CSS segment {} s / shift {} s do not fit a {len}-sample song",
                css.segment_seconds, css.shift_seconds
            )));
        }
        let starts = (0..count)
            .map(|i| (i as f64 * css.shift_seconds * fs) as usize)
            .collect();
        Ok(Self {
            len,
            segment,
            overlap,
            starts,
        })
    }

    /// Valid samples of segment `i` (the last one may be shorter than the segment).
    pub fn valid(&self, i: usize) -> usize {
        (self.len - self.starts[i].min(self.len)).min(self.segment)
    }

    /// Stitches per-segment outputs (`outs[i][k]`: signal k of segment i, `segment` samples)
    /// into `[k][len]`: exactly `len` samples per signal.
    fn stitch(&self, outs: Vec<Vec<Vec<f32>>>) -> Result<Vec<Vec<f32>>, EngineError> {
        let mut outs = outs.into_iter();
        let mut waves = outs
            .next()
            .ok_or_else(|| EngineError::Device("no segment output".into()))?;
        let n = self.starts.len();
        let ov = self.overlap;
        for (i, mut seg) in outs.enumerate().map(|(j, s)| (j + 1, s)) {
            let t = self.valid(i);
            for (w, s) in waves.iter_mut().zip(seg.iter_mut()) {
                if i == n - 1 {
                    // The padded tail of the last segment is silence.
                    s.iter_mut().skip(t).for_each(|v| *v = 0.0);
                }
                let end = if i == n - 1 { t.max(ov) } else { s.len() };
                let base = w.len() - ov;
                for (a, b) in w[base..].iter_mut().zip(&s[..ov]) {
                    *a = (*a + *b) / 2.0;
                }
                w.extend_from_slice(&s[ov.min(end)..end]);
            }
        }
        // Segment starts are `int(i · shift · fs)` in floating point, so for some settings the
        // pieces add up to a sample more or less than the song (the reference then fails its own
        // length assertion); the result is cut or padded to the song's length instead.
        for w in waves.iter_mut() {
            w.resize(self.len, 0.0);
        }
        Ok(waves)
    }
}

/// Separates one item (`[ac][len]` at the model rate) with the CSS pipeline.
///
/// # Shapes
/// - item: `[ac][len]`
/// - output: `[S][ac][len]`
pub fn separate_item(
    sep: &DeviceModel,
    css: &CssParams,
    item: &[Vec<f32>],
    cancel: &CancelToken,
    on_segment: &mut dyn FnMut(),
) -> Result<Vec<Vec<Vec<f32>>>, EngineError> {
    let len = item.first().map_or(0, Vec::len);
    let s = sep.config().n_sources();
    let ac = item.len();
    // 1. Whole-mixture normalisation.
    let scales: Vec<f32> = if css.normalize_mixture {
        item.iter()
            .map(|x| power_scale(sep.stft(), x))
            .collect::<Result<_, _>>()?
    } else {
        vec![1.0; ac]
    };
    let normed: Vec<Vec<f32>> = item
        .iter()
        .zip(&scales)
        .map(|(x, &sc)| x.iter().map(|v| v / sc).collect())
        .collect();
    // 2. Segments through the wrapper's forward.
    let plan = CssPlan::new(len, css, sep.config().sample_rate)?;
    let mut outs = Vec::with_capacity(plan.starts.len());
    for (i, &st) in plan.starts.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let t = plan.valid(i);
        let seg: Vec<Vec<f32>> = normed
            .iter()
            .map(|x| {
                let mut buf = vec![0f32; plan.segment];
                buf[..t].copy_from_slice(&x[st..st + t]);
                buf
            })
            .collect();
        let flat = if seg.iter().all(|c| c.iter().all(|v| *v == 0.0)) {
            // The reference skips silent segments (never the first one, which it asserts).
            vec![vec![0f32; plan.segment]; s * ac]
        } else {
            let out = sep.forward_waveforms(&[seg])?;
            out.into_iter()
                .next()
                .ok_or_else(|| EngineError::Device("missing segment output".into()))?
                .into_iter()
                .flatten()
                .collect()
        };
        outs.push(flat);
        on_segment();
    }
    // 3. Stitching, 4. × the mixture's scale.
    let stitched = plan.stitch(outs)?;
    let mut result = vec![vec![Vec::new(); ac]; s];
    for (k, mut wave) in stitched.into_iter().enumerate() {
        let (si, ch) = (k / ac, k % ac);
        wave.iter_mut().for_each(|v| *v *= scales[ch]);
        result[si][ch] = wave;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(segment: f64, shift: f64) -> CssParams {
        CssParams {
            segment_seconds: segment,
            shift_seconds: shift,
            normalize_mixture: true,
            scaling: true,
        }
    }

    #[test]
    fn plan_matches_the_reference_arithmetic() {
        // mixit-small: 1.5 s at 44.1 kHz, 0.6 s segments every 0.4 s → 4 segments.
        let p = CssPlan::new(66_150, &params(0.6, 0.4), 44_100).unwrap();
        assert_eq!(p.segment, 26_460);
        assert_eq!(p.overlap, 8_820);
        assert_eq!(p.starts, vec![0, 17_640, 35_280, 52_920]);
        assert_eq!(p.valid(3), 66_150 - 52_920);
        // Short songs run whole.
        let p = CssPlan::new(1000, &params(12.0, 6.0), 44_100).unwrap();
        assert_eq!((p.segment, p.starts.clone()), (1000, vec![0]));
    }

    #[test]
    fn stitching_averages_overlaps_and_keeps_the_length() {
        // Constant segment outputs: overlaps are the mean of neighbours, the rest as is.
        for len in [101, 130, 157, 200] {
            let css = params(0.5, 0.3);
            let p = CssPlan::new(len, &css, 100).unwrap();
            let outs: Vec<Vec<Vec<f32>>> = (0..p.starts.len())
                .map(|i| vec![vec![i as f32 + 1.0; p.segment]])
                .collect();
            let w = p.stitch(outs).unwrap();
            assert_eq!(w[0].len(), len, "len {len}");
            // Sample 0 is only segment 0; the first overlap averages segments 0 and 1.
            assert_eq!(w[0][0], 1.0);
            assert_eq!(w[0][p.starts[1]], 1.5, "len {len}");
        }
    }
}
