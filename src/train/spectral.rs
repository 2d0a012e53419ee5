//! Differentiable STFT/iSTFT in burn tensor ops, with exactly the conventions of
//! [`crate::dsp::stft`] (periodic Hann, center + reflect padding, one-sided, window-square
//! normalised inverse), so a loss can be taken on waveforms and on spectra of the network's
//! output. The DFT is a matmul with a windowed cos/sin basis; overlap-add is a transposed
//! convolution with an identity kernel.

use burn::tensor::module::{conv_transpose1d, conv1d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Device, Tensor, TensorData};

fn hann(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect()
}

/// Inverse STFT of `[B, T, F]` spectra.
#[derive(Debug, Clone)]
pub struct DiffIstft {
    n_fft: usize,
    hop: usize,
    /// `[F, n_fft]` real basis with window and 1/N (DC/Nyquist weight 1, others 2).
    cr: Tensor<2>,
    /// `[F, n_fft]` imaginary basis (zero rows at DC and Nyquist: their imag is ignored).
    ci: Tensor<2>,
    /// Identity kernel `[n_fft, 1, n_fft]` for the overlap-add.
    eye: Tensor<3>,
}

impl DiffIstft {
    /// Builds the bases on `device`.
    pub fn new(n_fft: usize, hop: usize, device: &Device) -> Self {
        let f = crate::dsp::stft::num_bins(n_fft);
        let w = hann(n_fft);
        let mut cr = vec![0f32; f * n_fft];
        let mut ci = vec![0f32; f * n_fft];
        for k in 0..f {
            let c = if k == 0 || 2 * k == n_fft { 1.0 } else { 2.0 };
            for n in 0..n_fft {
                let a = 2.0 * std::f64::consts::PI * (k * n % n_fft) as f64 / n_fft as f64;
                cr[k * n_fft + n] = (c * a.cos() * w[n] / n_fft as f64) as f32;
                if c == 2.0 {
                    ci[k * n_fft + n] = (c * a.sin() * w[n] / n_fft as f64) as f32;
                }
            }
        }
        let mut eye = vec![0f32; n_fft * n_fft];
        for i in 0..n_fft {
            eye[i * n_fft + i] = 1.0;
        }
        Self {
            n_fft,
            hop,
            cr: Tensor::from_data(TensorData::new(cr, [f, n_fft]), device),
            ci: Tensor::from_data(TensorData::new(ci, [f, n_fft]), device),
            eye: Tensor::from_data(TensorData::new(eye, [n_fft, 1, n_fft]), device),
        }
    }

    /// Waveforms of `length` samples from spectra.
    ///
    /// # Shapes
    /// - re, im: `[B, T, F]`
    /// - output: `[B, length]`
    pub fn forward(&self, re: Tensor<3>, im: Tensor<3>, length: usize) -> Tensor<2> {
        let [b, t, _f] = re.dims();
        let device = re.device();
        // x[n] = Σ_k c_k w[n]/N (Re X_k cos − Im X_k sin)
        let frames =
            re.matmul(self.cr.clone().unsqueeze()) - im.matmul(self.ci.clone().unsqueeze()); // [B, T, N]
        let ola = conv_transpose1d(
            frames.swap_dims(1, 2),
            self.eye.clone(),
            None,
            ConvTransposeOptions::new([self.hop], [0], [0], [1], 1),
        ); // [B, 1, (T−1)·hop + N]
        let total = (t - 1) * self.hop + self.n_fft;
        // Window-square envelope (a constant).
        let w = hann(self.n_fft);
        let mut env = vec![0f64; total];
        for fr in 0..t {
            for n in 0..self.n_fft {
                env[fr * self.hop + n] += w[n] * w[n];
            }
        }
        let start = self.n_fft / 2;
        let keep = length.min(total.saturating_sub(start));
        let inv: Vec<f32> = env[start..start + keep]
            .iter()
            .map(|&e| if e > 1e-11 { (1.0 / e) as f32 } else { 0.0 })
            .collect();
        let inv = Tensor::<1>::from_data(TensorData::new(inv, [keep]), &device).reshape([1, keep]);
        let y = ola.reshape([b, total]).narrow(1, start, keep) * inv;
        if keep < length {
            let pad = Tensor::zeros([b, length - keep], &device);
            Tensor::cat(vec![y, pad], 1)
        } else {
            y
        }
    }
}

/// STFT magnitudes of waveforms, differentiable (for multi-resolution spectral losses).
#[derive(Debug, Clone)]
pub struct DiffStft {
    n_fft: usize,
    hop: usize,
    /// `[2F, 1, n_fft]`: windowed cos rows then windowed −sin rows.
    basis: Tensor<3>,
}

impl DiffStft {
    /// Builds the basis on `device`.
    pub fn new(n_fft: usize, hop: usize, device: &Device) -> Self {
        let f = crate::dsp::stft::num_bins(n_fft);
        let w = hann(n_fft);
        let mut basis = vec![0f32; 2 * f * n_fft];
        for k in 0..f {
            for n in 0..n_fft {
                let a = 2.0 * std::f64::consts::PI * (k * n % n_fft) as f64 / n_fft as f64;
                basis[k * n_fft + n] = (w[n] * a.cos()) as f32;
                basis[(f + k) * n_fft + n] = (-w[n] * a.sin()) as f32;
            }
        }
        Self {
            n_fft,
            hop,
            basis: Tensor::from_data(TensorData::new(basis, [2 * f, 1, n_fft]), device),
        }
    }

    /// Real and imaginary parts, center + reflect padded.
    ///
    /// # Shapes
    /// - x: `[B, N]` with N > n_fft/2
    /// - output: (re, im) each `[B, F, T]`
    pub fn forward(&self, x: Tensor<2>) -> (Tensor<3>, Tensor<3>) {
        let [b, n] = x.dims();
        let p = self.n_fft / 2;
        // Reflect padding excluding the edge sample: left = x[p..1] reversed, right = x[n-2..n-2-p].
        let left = x.clone().narrow(1, 1, p).flip([1]);
        let right = x.clone().narrow(1, n - 1 - p, p).flip([1]);
        let xp = Tensor::cat(vec![left, x, right], 1).reshape([b, 1, n + 2 * p]);
        let y = conv1d(
            xp,
            self.basis.clone(),
            None,
            ConvOptions::new([self.hop], [0], [1], 1),
        ); // [B, 2F, T]
        let f = crate::dsp::stft::num_bins(self.n_fft);
        (y.clone().narrow(1, 0, f), y.narrow(1, f, f))
    }

    /// Magnitude `sqrt(re² + im² + 1e-8)`.
    ///
    /// # Shapes
    /// - x: `[B, N]`
    /// - output: `[B, F, T]`
    pub fn magnitude(&self, x: Tensor<2>) -> Tensor<3> {
        let (re, im) = self.forward(x);
        (re.square() + im.square()).add_scalar(1e-8).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::stft::Stft;

    fn vecf<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn matches_the_realfft_stft_and_istft() {
        let device = Device::flex();
        let (n_fft, hop, n) = (64, 16, 300);
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let stft = Stft::new(n_fft, hop).unwrap();
        let (mut re, mut im) = (vec![], vec![]);
        stft.forward(&x, &mut re, &mut im).unwrap();
        let (t, f) = (stft.num_frames(n), stft.num_bins());
        // Differentiable STFT vs realfft ([B, F, T] vs [T, F]).
        let d = DiffStft::new(n_fft, hop, &device);
        let (dre, dim) = d.forward(Tensor::<1>::from_floats(x.as_slice(), &device).reshape([1, n]));
        let (dre, dim) = (vecf(dre.swap_dims(1, 2)), vecf(dim.swap_dims(1, 2)));
        let err = dre
            .iter()
            .zip(&re)
            .chain(dim.iter().zip(&im))
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 1e-4, "stft err {err}");
        // Differentiable iSTFT of the realfft spectrum gives x back, like the realfft inverse.
        let di = DiffIstft::new(n_fft, hop, &device);
        let sre = Tensor::<1>::from_floats(re.as_slice(), &device).reshape([1, t, f]);
        let sim = Tensor::<1>::from_floats(im.as_slice(), &device).reshape([1, t, f]);
        let y = vecf(di.forward(sre, sim, n));
        let err = y
            .iter()
            .zip(&x)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 1e-4, "istft err {err}");
    }
}
