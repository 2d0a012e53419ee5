//! STFT / iSTFT matching `torch.stft` / `torch.istft` with
//! `window = torch.hann_window(n_fft)` (periodic), `win_length = n_fft`,
//! `center = True`, `pad_mode = "reflect"`, `normalized = False`,
//! `onesided = True`.
//!
//! Layout: spectra are `[T, F]` row-major (frame-major, the `F = n_fft/2 + 1`
//! bins of one frame are contiguous), real and imaginary parts in separate
//! buffers.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use super::DspError;

/// Envelope values at or below this are treated as "no coverage" by
/// [`Stft::inverse`] (torch raises an error there; we output 0).
pub const ENVELOPE_EPS: f32 = 1e-11;

/// Reusable per-call work buffers (kept in the struct so steady-state calls
/// do not allocate).
struct Scratch {
    frame: Vec<f32>,
    spec: Vec<Complex<f32>>,
    fft_scratch: Vec<Complex<f32>>,
    ola: Vec<f32>,
    env: Vec<f32>,
}

/// One-sided frequency bins of an `n_fft`-point STFT: `F = n_fft/2 + 1`. The one formula the
/// model config, the planner and the STFT share.
pub fn num_bins(n_fft: usize) -> usize {
    n_fft / 2 + 1
}

/// Frames of a `center=True` STFT of `len` samples:
/// `T = 1 + (len + 2·(n_fft/2) − n_fft) / hop` (= `1 + len/hop` for even `n_fft`); 0 when the
/// padded signal is shorter than one window. The one formula the model config, the planner and
/// the STFT share.
pub fn num_frames(len: usize, n_fft: usize, hop: usize) -> usize {
    // Saturating: the planner asks about absurd lengths before refusing them.
    let padded = len.saturating_add(2 * (n_fft / 2));
    if padded < n_fft || hop == 0 {
        0
    } else {
        1 + (padded - n_fft) / hop
    }
}

/// Short-time Fourier transform with torch-compatible conventions.
///
/// Holds the periodic Hann window, the forward/inverse FFT plans and the
/// work buffers. `Send + Sync`: the work buffers sit behind a mutex; when two
/// threads use the same `Stft` at once the loser uses temporary buffers.
pub struct Stft {
    n_fft: usize,
    hop: usize,
    window: Vec<f32>,
    fwd: Arc<dyn RealToComplex<f32>>,
    inv: Arc<dyn ComplexToReal<f32>>,
    scratch: Mutex<Scratch>,
}

impl std::fmt::Debug for Stft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stft")
            .field("n_fft", &self.n_fft)
            .field("hop", &self.hop)
            .finish()
    }
}

impl Stft {
    /// Creates an STFT with FFT size `n_fft` (= window length) and hop `hop`.
    ///
    /// Errors with [`DspError::InvalidStftParams`] unless `n_fft >= 2` and `hop >= 1`.
    /// (Perfect reconstruction additionally needs `hop <= n_fft`, see [`Stft::inverse`].)
    pub fn new(n_fft: usize, hop: usize) -> Result<Self, DspError> {
        if n_fft < 2 || hop == 0 {
            return Err(DspError::InvalidStftParams { n_fft, hop });
        }
        // torch.hann_window(n_fft, periodic=True): 0.5 - 0.5 cos(2 pi n / n_fft).
        let window = (0..n_fft)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / n_fft as f64).cos()) as f32
            })
            .collect();
        let mut planner = RealFftPlanner::<f32>::new();
        let fwd = planner.plan_fft_forward(n_fft);
        let inv = planner.plan_fft_inverse(n_fft);
        let scratch = Mutex::new(Self::make_scratch(&fwd, &inv, n_fft));
        Ok(Self {
            n_fft,
            hop,
            window,
            fwd,
            inv,
            scratch,
        })
    }

    fn make_scratch(
        fwd: &Arc<dyn RealToComplex<f32>>,
        inv: &Arc<dyn ComplexToReal<f32>>,
        n_fft: usize,
    ) -> Scratch {
        let scratch_len = fwd.get_scratch_len().max(inv.get_scratch_len());
        Scratch {
            frame: vec![0.0; n_fft],
            spec: vec![Complex::new(0.0, 0.0); num_bins(n_fft)],
            fft_scratch: vec![Complex::new(0.0, 0.0); scratch_len],
            ola: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Locks the shared scratch; on contention returns `None` (caller then
    /// builds a temporary one). A poisoned lock is recovered: the scratch holds
    /// no invariants beyond its sizes, which are re-established on every use.
    fn try_scratch(&self) -> Option<MutexGuard<'_, Scratch>> {
        match self.scratch.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(PoisonError::into_inner(p)),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// FFT size (= window length).
    pub fn n_fft(&self) -> usize {
        self.n_fft
    }

    /// Hop size in samples.
    pub fn hop(&self) -> usize {
        self.hop
    }

    /// The periodic Hann analysis/synthesis window (`n_fft` samples).
    pub fn window(&self) -> &[f32] {
        &self.window
    }

    /// Number of one-sided frequency bins, `F = n_fft/2 + 1` ([`num_bins`]).
    pub fn num_bins(&self) -> usize {
        num_bins(self.n_fft)
    }

    /// Number of frames for a signal of `len` samples with `center=True` ([`num_frames`]).
    pub fn num_frames(&self, len: usize) -> usize {
        num_frames(len, self.n_fft, self.hop)
    }

    /// Minimum signal length accepted by [`Stft::forward`] (`n_fft/2 + 1`):
    /// reflect padding by `n_fft/2` needs that many samples.
    pub fn min_len(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Forward STFT of one channel `x` into `re`, `im`, each resized to
    /// `[T, F]` (`T = num_frames(x.len())`, `F = num_bins()`), frame-major.
    ///
    /// Equals `torch.stft(x, n_fft, hop, window=hann_window(n_fft), center=True,
    /// pad_mode="reflect", return_complex=True).T` up to float rounding.
    /// Errors with [`DspError::TooShort`] if `x.len() < n_fft/2 + 1`.
    pub fn forward(&self, x: &[f32], re: &mut Vec<f32>, im: &mut Vec<f32>) -> Result<(), DspError> {
        let n = x.len();
        if n < self.min_len() {
            return Err(DspError::TooShort {
                len: n,
                min: self.min_len(),
            });
        }
        let frames = self.num_frames(n);
        let bins = self.num_bins();
        re.clear();
        re.resize(frames * bins, 0.0);
        im.clear();
        im.resize(frames * bins, 0.0);

        let mut guard = self.try_scratch();
        let mut local;
        let s: &mut Scratch = match guard.as_deref_mut() {
            Some(s) => s,
            None => {
                local = Self::make_scratch(&self.fwd, &self.inv, self.n_fft);
                &mut local
            }
        };

        let pad = (self.n_fft / 2) as isize;
        let last = n as isize - 1;
        for t in 0..frames {
            let base = (t * self.hop) as isize - pad;
            for (k, (f, w)) in s.frame.iter_mut().zip(self.window.iter()).enumerate() {
                // NumPy "reflect": mirror about the edge sample, excluding it.
                // pad <= n - 1, so one reflection always suffices.
                let mut i = base + k as isize;
                if i < 0 {
                    i = -i;
                } else if i > last {
                    i = 2 * last - i;
                }
                *f = x[i as usize] * w;
            }
            self.fwd
                .process_with_scratch(&mut s.frame, &mut s.spec, &mut s.fft_scratch)
                .map_err(|_| DspError::ShapeMismatch {
                    what: "fft buffer",
                    expected: bins,
                    got: s.spec.len(),
                })?;
            let row = t * bins;
            for (b, c) in s.spec.iter().enumerate() {
                re[row + b] = c.re;
                im[row + b] = c.im;
            }
        }
        Ok(())
    }

    /// Inverse STFT of `frames` frames (`re`, `im` are `[frames, F]`
    /// frame-major) into `out`, resized to exactly `length` samples.
    ///
    /// Equals `torch.istft(spec, n_fft, hop, window=hann_window(n_fft),
    /// center=True, length=length)`: per-frame `irfft` (only the real part of
    /// the DC and, for even `n_fft`, Nyquist bins is used), windowing,
    /// overlap-add, division by the overlap-added squared window, dropping
    /// the first `n_fft/2` samples. Where the window envelope is
    /// `<= ENVELOPE_EPS` (torch raises an error) or beyond the overlap-added
    /// extent (torch zero-pads) the output is 0.
    pub fn inverse(
        &self,
        re: &[f32],
        im: &[f32],
        frames: usize,
        length: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), DspError> {
        let bins = self.num_bins();
        if re.len() != frames * bins {
            return Err(DspError::ShapeMismatch {
                what: "istft real part",
                expected: frames * bins,
                got: re.len(),
            });
        }
        if im.len() != frames * bins {
            return Err(DspError::ShapeMismatch {
                what: "istft imaginary part",
                expected: frames * bins,
                got: im.len(),
            });
        }
        out.clear();
        out.resize(length, 0.0);
        if frames == 0 {
            return Ok(());
        }

        let mut guard = self.try_scratch();
        let mut local;
        let s: &mut Scratch = match guard.as_deref_mut() {
            Some(s) => s,
            None => {
                local = Self::make_scratch(&self.fwd, &self.inv, self.n_fft);
                &mut local
            }
        };

        let ola_len = self.n_fft + self.hop * (frames - 1);
        s.ola.clear();
        s.ola.resize(ola_len, 0.0);
        s.env.clear();
        s.env.resize(ola_len, 0.0);
        let scale = 1.0 / self.n_fft as f32;
        let even = self.n_fft.is_multiple_of(2);

        for t in 0..frames {
            let row = t * bins;
            for (b, c) in s.spec.iter_mut().enumerate() {
                *c = Complex::new(re[row + b], im[row + b]);
            }
            // c2r transforms ignore the imaginary part of DC (and Nyquist).
            s.spec[0].im = 0.0;
            if even {
                s.spec[bins - 1].im = 0.0;
            }
            self.inv
                .process_with_scratch(&mut s.spec, &mut s.frame, &mut s.fft_scratch)
                .map_err(|_| DspError::ShapeMismatch {
                    what: "ifft buffer",
                    expected: self.n_fft,
                    got: s.frame.len(),
                })?;
            let off = t * self.hop;
            let ola = &mut s.ola[off..off + self.n_fft];
            let env = &mut s.env[off..off + self.n_fft];
            for k in 0..self.n_fft {
                let w = self.window[k];
                ola[k] += s.frame[k] * scale * w;
                env[k] += w * w;
            }
        }

        let start = self.n_fft / 2;
        for (i, o) in out.iter_mut().enumerate() {
            let j = start + i;
            if j >= ola_len {
                break;
            }
            let e = s.env[j];
            if e > ENVELOPE_EPS {
                *o = s.ola[j] / e;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn _assert_send_sync() {
        fn f<T: Send + Sync>() {}
        f::<Stft>();
    }

    fn fixture() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tflocoformer/mss-tiny/tensors.safetensors"
        );
        std::fs::read(path).expect("read golden fixture")
    }

    fn tensor(st: &safetensors::SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f32>) {
        let t = st.tensor(name).expect("tensor present");
        assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name} dtype");
        let data = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        (t.shape().to_vec(), data)
    }

    fn max_abs(a: &[f32]) -> f32 {
        a.iter().fold(0.0f32, |m, v| m.max(v.abs()))
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
    }

    #[test]
    fn matches_torch_golden() {
        let bytes = fixture();
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("parse fixture");
        let (mshape, mix) = tensor(&st, "mixture");
        let (sshape, sre) = tensor(&st, "stft.real");
        let (_, sim) = tensor(&st, "stft.imag");
        assert_eq!(mshape, vec![2, 4000]);
        assert_eq!(sshape, vec![2, 63, 129]);
        let stft = Stft::new(256, 64).expect("stft");
        assert_eq!(stft.num_frames(4000), 63);
        assert_eq!(stft.num_bins(), 129);

        let (mut re, mut im) = (Vec::new(), Vec::new());
        let per = 63 * 129;
        for ch in 0..2 {
            stft.forward(&mix[ch * 4000..(ch + 1) * 4000], &mut re, &mut im)
                .expect("forward");
            let rr = &sre[ch * per..(ch + 1) * per];
            let ri = &sim[ch * per..(ch + 1) * per];
            let tol = 1e-4 * max_abs(rr).max(max_abs(ri)).max(1.0);
            let d = max_diff(&re, rr).max(max_diff(&im, ri));
            eprintln!("stft ch{ch}: max diff {d:e} (tol {tol:e})");
            assert!(d <= tol, "stft mismatch {d} > {tol}");
        }

        let (pshape, pre) = tensor(&st, "separated.real");
        let (_, pim) = tensor(&st, "separated.imag");
        assert_eq!(pshape, vec![2, 4, 63, 129]);
        let mut out = Vec::new();
        for (s, name) in ["vocals", "drums", "bass", "other"].iter().enumerate() {
            let (wshape, wave) = tensor(&st, name);
            assert_eq!(wshape, vec![2, 4000]);
            for ch in 0..2 {
                let off = (ch * 4 + s) * per;
                stft.inverse(
                    &pre[off..off + per],
                    &pim[off..off + per],
                    63,
                    4000,
                    &mut out,
                )
                .expect("inverse");
                let r = &wave[ch * 4000..(ch + 1) * 4000];
                let tol = 1e-4 * max_abs(r).max(1.0);
                let d = max_diff(&out, r);
                eprintln!("istft {name} ch{ch}: max diff {d:e} (tol {tol:e})");
                assert!(d <= tol, "istft mismatch for {name} ch{ch}: {d} > {tol}");
            }
        }
    }

    #[test]
    fn too_short_is_error() {
        let stft = Stft::new(256, 64).expect("stft");
        let (mut re, mut im) = (Vec::new(), Vec::new());
        assert_eq!(
            stft.forward(&[0.0; 128], &mut re, &mut im),
            Err(DspError::TooShort { len: 128, min: 129 })
        );
        assert!(stft.forward(&[0.0; 129], &mut re, &mut im).is_ok());
        assert_eq!(re.len(), stft.num_frames(129) * 129);
        assert!(Stft::new(1, 1).is_err());
        assert!(Stft::new(16, 0).is_err());
    }

    #[test]
    fn shape_mismatch_is_error() {
        let stft = Stft::new(16, 4).expect("stft");
        let mut out = Vec::new();
        assert!(stft.inverse(&[0.0; 9], &[0.0; 9], 2, 10, &mut out).is_err());
    }

    #[test]
    fn imag_of_dc_and_nyquist_ignored() {
        let stft = Stft::new(32, 8).expect("stft");
        let x: Vec<f32> = (0..200)
            .map(|i| ((i * 7919) % 113) as f32 / 113.0 - 0.5)
            .collect();
        let (mut re, mut im) = (Vec::new(), Vec::new());
        stft.forward(&x, &mut re, &mut im).expect("fwd");
        let frames = stft.num_frames(x.len());
        let bins = stft.num_bins();
        for t in 0..frames {
            im[t * bins] = 3.0;
            im[t * bins + bins - 1] = -5.0;
        }
        let mut y = Vec::new();
        stft.inverse(&re, &im, frames, x.len(), &mut y)
            .expect("inv");
        assert!(max_diff(&x, &y) < 1e-5);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn roundtrip(
            log_nfft in 2u32..11,
            odd in any::<bool>(),
            hop_div in 4usize..17,
            extra in 0usize..3000,
            seed in any::<u64>(),
        ) {
            let n_fft = (1usize << log_nfft) + usize::from(odd);
            // hop <= n_fft/4 keeps the squared-window envelope well above 0 up to
            // the last kept sample (with hop = n_fft/2 the tail divides by ~1e-4,
            // amplifying f32 rounding exactly as torch.istft does).
            let hop = (n_fft / hop_div).max(1);
            let stft = Stft::new(n_fft, hop).expect("stft");
            let len = stft.min_len() + extra;
            let mut state = seed | 1;
            let x: Vec<f32> = (0..len).map(|_| {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            }).collect();
            let (mut re, mut im) = (Vec::new(), Vec::new());
            stft.forward(&x, &mut re, &mut im).expect("fwd");
            let frames = stft.num_frames(len);
            prop_assert_eq!(re.len(), frames * stft.num_bins());
            let mut y = Vec::new();
            stft.inverse(&re, &im, frames, len, &mut y).expect("inv");
            prop_assert_eq!(y.len(), len);
            let d = max_diff(&x, &y);
            prop_assert!(d <= 1e-5, "roundtrip error {} (n_fft {}, hop {}, len {})", d, n_fft, hop, len);
        }
    }
}
