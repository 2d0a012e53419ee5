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
pub fn resample(buf: &AudioBuffer, to_rate: u32) -> Result<AudioBuffer, AudioError> {
    buf.validate()?;
    if to_rate == 0 {
        return Err(AudioError::Resample(
            "target sample rate must be greater than 0 Hz".into(),
        ));
    }
    let from_rate = buf.sample_rate;
    if from_rate == to_rate {
        return Ok(buf.clone());
    }
    let len = buf.len();
    let nch = buf.num_channels();
    let target = output_len(len, from_rate, to_rate);
    if nch == 0 || len == 0 {
        return Ok(AudioBuffer {
            sample_rate: to_rate,
            channels: vec![Vec::new(); nch],
        });
    }

    let mut resampler = Fft::<f32>::new_custom(
        from_rate as usize,
        to_rate as usize,
        chunk_size_for(from_rate, to_rate),
        SUB_CHUNKS,
        nch,
        WindowFunction::BlackmanHarris2,
        FixedSync::Input,
    )
    .map_err(|e| {
        AudioError::Resample(format!(
            "cannot create a {from_rate} Hz → {to_rate} Hz resampler: {e}"
        ))
    })?;

    let input = SequentialSliceOfVecs::new(&buf.channels, nch, len)
        .map_err(|e| AudioError::Resample(format!("input buffer: {e}")))?;
    // Scratch space beyond `target` that process_all_into_buffer needs (delay + one chunk).
    let needed = resampler.process_all_needed_output_len(len).max(target);
    let mut out: Vec<Vec<f32>> = (0..nch).map(|_| vec![0.0f32; needed]).collect();
    let produced = {
        let mut output = SequentialSliceOfVecs::new_mut(&mut out, nch, needed)
            .map_err(|e| AudioError::Resample(format!("output buffer: {e}")))?;
        let (_, produced) = resampler
            .process_all_into_buffer(&input, &mut output, len, None)
            .map_err(|e| AudioError::Resample(e.to_string()))?;
        produced
    };
    // `produced` = ceil(len * ratio) ≥ target; anything past `produced` is zero padding, which
    // we only rely on if float rounding made `produced` one short.
    debug_assert!(
        produced + 1 >= target,
        "produced {produced} < target {target}"
    );
    for ch in out.iter_mut() {
        ch.truncate(target);
        ch.shrink_to_fit();
    }
    Ok(AudioBuffer {
        sample_rate: to_rate,
        channels: out,
    })
}

/// `round(len * to / from)` in exact integer arithmetic (ties round up).
pub fn output_len(len: usize, from_rate: u32, to_rate: u32) -> usize {
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
