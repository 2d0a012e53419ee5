//! Sample-rate conversion with rubato's synchronous FFT resampler.
//!
//! Guarantees of [`resample`]:
//! * output length is exactly `round(len * to / from)` frames;
//! * output is sample-aligned with the input: the resampler's delay
//!   ([`rubato::Resampler::output_delay`]) is trimmed off the start, so input time `t` maps to
//!   output time `t` (an impulse at input frame `n` peaks at output frame `≈ n * to / from`);
//! * the input is processed in chunks directly into the preallocated output, so memory is the
//!   input plus the output (plus one resampler chunk of slack per channel).

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler, WindowFunction};

use super::{AudioBuffer, AudioError};

/// Target FFT block size on the input side, in frames: ~1024-frame blocks keep the anti-aliasing
/// cutoff close to Nyquist while the delay (half a block) stays small.
const TARGET_BLOCK: usize = 1024;
/// FFT sub-chunks per processing chunk.
const SUB_CHUNKS: usize = 2;

/// Chooses rubato's `chunk_size` so that both FFT sizes are even.
///
/// rubato's FFT block sizes are `k * from/g` (input) and `k * to/g` (output), `g = gcd(from, to)`.
/// Its `output_delay()` is `fft_size_out / 2` (integer division) and its filter is centred on
/// `fft_size_in / 2`, so an odd block size on either side leaves a half-sample misalignment that
/// cannot be trimmed (measured: +0.5 output samples for 48k→44.1k, −0.5 input samples for
/// 44.1k→48k). With `k` chosen so that both sizes are even, the trimmed output is exactly aligned.
fn chunk_size_for(from: u32, to: u32) -> usize {
    let g = gcd(from, to);
    let min_in = (from / g) as usize;
    let min_out = (to / g) as usize;
    let mut k = (TARGET_BLOCK as f64 / min_in as f64).round().max(1.0) as usize;
    if (k * min_in) % 2 == 1 || (k * min_out) % 2 == 1 {
        k += 1; // min_in/min_out are coprime, so at most one is even; an even k fixes both.
    }
    k * min_in * SUB_CHUNKS
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// Resamples every channel of `buf` to `to_rate` Hz.
///
/// Returns a clone when the rates are already equal. The output has exactly
/// `round(buf.len() * to_rate / buf.sample_rate)` frames and is time-aligned with the input
/// (the resampler delay is compensated). Errors with [`AudioError::Resample`] for a zero rate or
/// an internal resampler failure and with [`AudioError::InvalidBuffer`] for ragged channels.
///
/// This is [`StreamResampler`] fed the whole buffer at once, so a streamed conversion of the
/// same samples gives bit-identical output.
pub fn resample(buf: &AudioBuffer, to_rate: u32) -> Result<AudioBuffer, AudioError> {
    buf.validate()?;
    let mut rs = StreamResampler::new(buf.sample_rate, to_rate, buf.num_channels())?;
    if rs.is_identity() {
        return Ok(buf.clone());
    }
    let target = output_len(buf.len(), buf.sample_rate, to_rate);
    let mut out: Vec<Vec<f32>> = (0..buf.num_channels())
        .map(|_| Vec::with_capacity(target))
        .collect();
    rs.push(&buf.channels, &mut out)?;
    rs.finish(&mut out)?;
    Ok(AudioBuffer {
        sample_rate: to_rate,
        channels: out,
    })
}

/// Sample-rate conversion of a stream that arrives in blocks of any size.
///
/// Input frames are collected into the resampler's fixed-size chunks; each full chunk is
/// converted at once and its output appended (minus the start-up delay, which is trimmed so the
/// output is time-aligned with the input). [`finish`](Self::finish) converts the last partial
/// chunk and pumps silence until exactly `round(frames_in · to / from)` frames were produced.
///
/// Invariant: the output depends only on the concatenated input, not on how it was split into
/// blocks (every chunk the resampler sees is the same), so streamed and one-shot conversions
/// are bit-identical. Memory: one chunk of input and one of output per channel.
pub struct StreamResampler {
    from: u32,
    to: u32,
    nch: usize,
    /// `None` when `from == to` (frames are passed through).
    inner: Option<Fft<f32>>,
    /// Input frames not yet converted (fewer than one chunk between calls).
    pending: Vec<Vec<f32>>,
    /// One chunk of converted output.
    scratch: Vec<Vec<f32>>,
    /// Output frames still to drop at the start (the resampler's delay).
    to_trim: usize,
    frames_in: usize,
    frames_out: usize,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("channels", &self.nch)
            .field("frames_in", &self.frames_in)
            .field("frames_out", &self.frames_out)
            .finish_non_exhaustive()
    }
}

impl StreamResampler {
    /// A converter from `from_rate` to `to_rate` Hz for `channels` planar channels.
    pub fn new(from_rate: u32, to_rate: u32, channels: usize) -> Result<Self, AudioError> {
        if from_rate == 0 || to_rate == 0 {
            return Err(AudioError::Resample(
                "sample rates must be greater than 0 Hz".into(),
            ));
        }
        let inner = if from_rate == to_rate || channels == 0 {
            None
        } else {
            Some(
                Fft::<f32>::new_custom(
                    from_rate as usize,
                    to_rate as usize,
                    chunk_size_for(from_rate, to_rate),
                    SUB_CHUNKS,
                    channels,
                    WindowFunction::BlackmanHarris2,
                    FixedSync::Input,
                )
                .map_err(|e| {
                    AudioError::Resample(format!(
                        "cannot create a {from_rate} Hz → {to_rate} Hz resampler: {e}"
                    ))
                })?,
            )
        };
        let (chunk_in, chunk_out, delay) = inner.as_ref().map_or((0, 0, 0), |r| {
            (
                r.input_frames_max(),
                r.output_frames_max(),
                r.output_delay(),
            )
        });
        Ok(Self {
            from: from_rate,
            to: to_rate,
            nch: channels,
            inner,
            pending: (0..channels)
                .map(|_| Vec::with_capacity(chunk_in))
                .collect(),
            scratch: (0..channels).map(|_| vec![0.0; chunk_out]).collect(),
            to_trim: delay,
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Whether the rates are equal (input is passed through unchanged).
    fn is_identity(&self) -> bool {
        self.inner.is_none()
    }

    /// Frames of output the whole stream will have once finished, for `frames_in` input frames.
    pub fn total_output(&self, frames_in: usize) -> usize {
        output_len(frames_in, self.from, self.to)
    }

    /// Converts `input` (one slice per channel, equal lengths) and appends every output frame
    /// that is final to `out` (one `Vec` per channel).
    pub fn push<S: AsRef<[f32]>>(
        &mut self,
        input: &[S],
        out: &mut [Vec<f32>],
    ) -> Result<(), AudioError> {
        self.check(input.len(), out.len())?;
        let n = input.first().map_or(0, |c| c.as_ref().len());
        if input.iter().any(|c| c.as_ref().len() != n) {
            return Err(AudioError::InvalidBuffer(
                "all channels of a block must have the same length".into(),
            ));
        }
        self.frames_in += n;
        let Some(rs) = self.inner.as_mut() else {
            for (o, i) in out.iter_mut().zip(input) {
                o.extend_from_slice(i.as_ref());
            }
            self.frames_out += n;
            return Ok(());
        };
        let chunk = rs.input_frames_next();
        let mut pos = 0;
        while pos < n {
            let take = (chunk - self.pending[0].len()).min(n - pos);
            for (p, i) in self.pending.iter_mut().zip(input) {
                p.extend_from_slice(&i.as_ref()[pos..pos + take]);
            }
            pos += take;
            // A chunk is converted only once more input is known to follow or at finish():
            // rubato's one-shot loop treats an exactly-full last chunk as the final partial one.
            if self.pending[0].len() == chunk && pos < n {
                self.convert(None, out)?;
            }
        }
        Ok(())
    }

    /// Converts what is left, pads with silence as needed, and appends the remaining output so
    /// that exactly [`total_output`](Self::total_output)`(frames in)` frames were produced.
    pub fn finish(&mut self, out: &mut [Vec<f32>]) -> Result<(), AudioError> {
        self.check(self.nch, out.len())?;
        let target = self.total_output(self.frames_in);
        if self.inner.is_none() {
            return Ok(());
        }
        if !self.pending[0].is_empty() {
            let n = self.pending[0].len();
            self.convert(Some(n), out)?;
        }
        while self.frames_out < target {
            self.convert(Some(0), out)?;
        }
        Ok(())
    }

    fn check(&self, nin: usize, nout: usize) -> Result<(), AudioError> {
        if nin != self.nch || nout != self.nch {
            return Err(AudioError::InvalidBuffer(format!(
                "the resampler was made for {} channel(s), got {nin} in and {nout} out",
                self.nch
            )));
        }
        Ok(())
    }

    /// Runs one chunk (`partial`: how many pending frames are real, the rest being silence)
    /// and appends its output, minus the start-up delay and past the stream's total length.
    fn convert(&mut self, partial: Option<usize>, out: &mut [Vec<f32>]) -> Result<(), AudioError> {
        let Some(rs) = self.inner.as_mut() else {
            return Ok(());
        };
        let chunk = rs.input_frames_next();
        for p in self.pending.iter_mut() {
            p.resize(chunk, 0.0);
        }
        let nout = self.scratch[0].len();
        let produced = {
            let input = SequentialSliceOfVecs::new(&self.pending, self.nch, chunk)
                .map_err(|e| AudioError::Resample(format!("input buffer: {e}")))?;
            let mut output = SequentialSliceOfVecs::new_mut(&mut self.scratch, self.nch, nout)
                .map_err(|e| AudioError::Resample(format!("output buffer: {e}")))?;
            let indexing = rubato::Indexing {
                input_offset: 0,
                output_offset: 0,
                active_channels_mask: None,
                partial_len: partial,
            };
            let (_, produced) = rs
                .process_into_buffer(&input, &mut output, Some(&indexing))
                .map_err(|e| AudioError::Resample(e.to_string()))?;
            produced
        };
        for p in self.pending.iter_mut() {
            p.clear();
        }
        let skip = self.to_trim.min(produced);
        self.to_trim -= skip;
        // Frames past the total are only emitted by finish(), which knows the total.
        let keep = if partial.is_some() {
            let target = self.total_output(self.frames_in);
            (produced - skip).min(target.saturating_sub(self.frames_out))
        } else {
            produced - skip
        };
        for (o, s) in out.iter_mut().zip(&self.scratch) {
            o.extend_from_slice(&s[skip..skip + keep]);
        }
        self.frames_out += keep;
        Ok(())
    }
}

/// `round(len * to / from)` in exact integer arithmetic (ties round up).
fn output_len(len: usize, from_rate: u32, to_rate: u32) -> usize {
    if from_rate == 0 {
        return 0;
    }
    let num = len as u128 * u128::from(to_rate) * 2 + u128::from(from_rate);
    (num / (2 * u128::from(from_rate))) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn sine(rate: u32, len: usize, freq: f64, phase: f64) -> Vec<f32> {
        (0..len)
            .map(|i| (2.0 * PI * freq * i as f64 / f64::from(rate) + phase).sin() as f32 * 0.5)
            .collect()
    }

    #[test]
    fn equal_rate_is_clone() {
        let b = AudioBuffer::new(44100, vec![sine(44100, 1000, 440.0, 0.0)]).unwrap();
        assert_eq!(resample(&b, 44100).unwrap(), b);
    }

    #[test]
    fn exact_lengths() {
        for &(from, to) in &[
            (48000u32, 44100u32),
            (44100, 48000),
            (44100, 22050),
            (8000, 44100),
            (32000, 48000),
        ] {
            for &len in &[0usize, 1, 7, 100, 1000, 44101, 48000] {
                let b = AudioBuffer::new(from, vec![vec![0.1; len], vec![-0.1; len]]).unwrap();
                let r = resample(&b, to).unwrap();
                assert_eq!(r.sample_rate, to);
                assert_eq!(r.num_channels(), 2);
                let want = ((len as f64) * f64::from(to) / f64::from(from)).round() as usize;
                assert_eq!(r.len(), want, "{from}->{to} len {len}");
                r.validate().unwrap();
            }
        }
    }

    #[test]
    fn impulse_stays_aligned() {
        for &(from, to) in &[(48000u32, 44100u32), (44100, 48000), (44100, 16000)] {
            for &pos in &[0usize, 1, 333, 5000, 9001] {
                let mut x = vec![0.0f32; 12000];
                x[pos] = 1.0;
                let b = AudioBuffer::new(from, vec![x]).unwrap();
                let r = resample(&b, to).unwrap();
                let (peak, _) =
                    r.channels[0]
                        .iter()
                        .enumerate()
                        .fold(
                            (0, 0.0f32),
                            |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) },
                        );
                let want = pos as f64 * f64::from(to) / f64::from(from);
                assert!(
                    (peak as f64 - want).abs() <= 1.0,
                    "{from}->{to}: impulse at {pos} → peak {peak}, want {want}"
                );
            }
        }
    }

    #[test]
    fn sine_phase_preserved() {
        // 1 kHz sine at 48k → 44.1k must equal the analytically sampled sine at 44.1k.
        let x = sine(48000, 48000, 1000.0, 0.3);
        let b = AudioBuffer::new(48000, vec![x]).unwrap();
        let r = resample(&b, 44100).unwrap();
        let want = sine(44100, r.len(), 1000.0, 0.3);
        let interior = 2000..r.len() - 2000;
        let max_err = interior
            .map(|i| (r.channels[0][i] - want[i]).abs())
            .fold(0.0f32, f32::max);
        assert!(max_err < 2e-3, "max interior error {max_err}");
    }

    #[test]
    fn round_trip_band_limited() {
        let len = 44100;
        let mut x = sine(44100, len, 440.0, 0.0);
        let y = sine(44100, len, 5000.0, 1.0);
        let z = sine(44100, len, 12345.0, 2.0);
        for i in 0..len {
            x[i] = (x[i] + y[i] + z[i]) / 3.0;
        }
        let b = AudioBuffer::new(44100, vec![x.clone(), x.iter().map(|v| -v).collect()]).unwrap();
        let up = resample(&b, 48000).unwrap();
        assert_eq!(up.len(), 48000);
        let back = resample(&up, 44100).unwrap();
        assert_eq!(back.len(), len);
        let interior = 2000..len - 2000;
        let max_err = interior
            .map(|i| (back.channels[0][i] - x[i]).abs())
            .fold(0.0f32, f32::max);
        assert!(max_err < 2e-3, "round trip interior error {max_err}");
        assert!((back.channels[1][10000] + back.channels[0][10000]).abs() < 1e-5);
    }

    #[test]
    fn chunk_sizes_give_even_ffts() {
        for &(a, b) in &[
            (44100u32, 48000u32),
            (48000, 44100),
            (44100, 16000),
            (44100, 44101),
            (8000, 48000),
        ] {
            let c = chunk_size_for(a, b) / SUB_CHUNKS;
            let g = gcd(a, b) as usize;
            let k = c / (a as usize / g);
            assert_eq!(c % (a as usize / g), 0);
            assert_eq!((k * a as usize / g) % 2, 0, "{a}->{b}");
            assert_eq!((k * b as usize / g) % 2, 0, "{a}->{b}");
        }
    }

    #[test]
    fn zero_rate_is_error() {
        let b = AudioBuffer::new(44100, vec![vec![0.0; 10]]).unwrap();
        assert!(matches!(resample(&b, 0), Err(AudioError::Resample(_))));
    }
}
