//! The training loss of the seed configs: `SI-SDR + λ₁·L1 + λ₂·multi-resolution spectral`,
//! on waveforms, with per-stem terms for logging — plus an optional scale-dependent SDR term
//! (off by default, as in the seed). SI-SDR ignores the estimate's gain, and with small L1 and
//! spectral weights a model trained on it alone can come out at the wrong level (high SI-SDR,
//! poor museval SDR); `sdr_weight` trains the level directly.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::spectral::DiffStft;
use crate::model::reduce::{broadcast_rows, mean_rows, sum_rows};

/// Mean power below which a reference row counts as silent (−100 dBFS).
pub const SILENT_POWER: f64 = 1e-10;

/// Loss weights (the seed's `loss:` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LossConfig {
    /// Weight of the negative SI-SDR (dB).
    pub si_sdr_weight: f32,
    /// Weight of the negative plain SDR `10·log10(|s|² / |s − ŝ|²)` (dB, scale-dependent).
    pub sdr_weight: f32,
    /// λ₁: weight of the waveform L1.
    pub l1_weight: f32,
    /// λ₂: weight of the multi-resolution STFT magnitude L1.
    pub spectral_weight: f32,
    /// STFT sizes of the spectral term (hop = n_fft / 4).
    pub spectral_ffts: Vec<usize>,
    /// Epsilon of SI-SDR.
    pub eps: f32,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            si_sdr_weight: 1.0,
            sdr_weight: 0.0,
            l1_weight: 0.1,
            spectral_weight: 0.1,
            spectral_ffts: vec![256, 512, 1024],
            eps: 1e-8,
        }
    }
}

/// Loss value and its parts.
#[derive(Debug, Clone)]
pub struct LossParts {
    /// The scalar to differentiate.
    pub total: Tensor<1>,
    /// Mean SI-SDR per stem (dB, higher is better), for logging.
    pub si_sdr_per_stem: Vec<f32>,
    /// L1 term (unweighted).
    pub l1: f32,
    /// Spectral term (unweighted).
    pub spectral: f32,
}

/// The loss, with its STFT bases built once.
#[derive(Debug, Clone)]
pub struct SeparationLoss {
    cfg: LossConfig,
    stfts: Vec<DiffStft>,
}

impl SeparationLoss {
    /// Builds the loss for `device`.
    pub fn new(cfg: LossConfig, device: &Device) -> Self {
        let stfts = cfg
            .spectral_ffts
            .iter()
            .map(|&n| DiffStft::new(n, n / 4, device))
            .collect();
        Self { cfg, stfts }
    }

    /// Scale-invariant SDR per row, in dB.
    ///
    /// # Shapes
    /// - reference, est: `[R, N]`
    /// - output: `[R]`
    pub fn si_sdr(&self, reference: Tensor<2>, est: Tensor<2>) -> Tensor<1> {
        let eps = self.cfg.eps as f64;
        let dot = sum_rows(est.clone() * reference.clone());
        let energy = sum_rows(reference.clone().square()).add_scalar(eps);
        let [_, n] = reference.dims();
        // α broadcast in stages: an exact gradient for segments past 2¹⁸ samples on wgpu.
        let target = reference * broadcast_rows(dot / energy, n); // α·s
        let noise = est - target.clone();
        let ratio =
            sum_rows(target.square()).add_scalar(eps) / sum_rows(noise.square()).add_scalar(eps);
        let [r, _] = ratio.dims();
        (ratio.log() * (10.0 / std::f64::consts::LN_10)).reshape([r])
    }

    /// Plain (scale-dependent) SDR per row, in dB.
    ///
    /// # Shapes
    /// - reference, est: `[R, N]`
    /// - output: `[R]`
    pub fn sdr(&self, reference: Tensor<2>, est: Tensor<2>) -> Tensor<1> {
        let eps = self.cfg.eps as f64;
        let signal = sum_rows(reference.clone().square()).add_scalar(eps);
        let noise = sum_rows((est - reference).square()).add_scalar(eps);
        let [r, _] = signal.dims();
        ((signal / noise).log() * (10.0 / std::f64::consts::LN_10)).reshape([r])
    }

    /// Computes the loss of estimated vs true stems.
    ///
    /// # Shapes
    /// - reference, est: `[B, S, N]`
    /// - output: scalar `[1]` plus logged parts
    pub fn forward(&self, reference: Tensor<3>, est: Tensor<3>) -> LossParts {
        let [b, s, n] = est.dims();
        let e2 = est.clone().reshape([b * s, n]);
        let r2 = reference.clone().reshape([b * s, n]);
        let sdr = self.si_sdr(r2.clone(), e2.clone()); // [B·S]
        let sdr_stems: Vec<f32> = sdr
            .clone()
            .reshape([b, s])
            .mean_dim(0)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        // A silent reference (a stem that does not play in this segment) has no meaningful
        // SI-SDR (≈ −100 dB from the ε terms) and would swamp the loss: such rows are left out
        // of the SI-SDR term; the L1 and spectral terms still push their estimates to silence.
        let active = mean_rows(r2.clone().square())
            .reshape([b * s])
            .greater_elem(SILENT_POWER)
            .float();
        let count = active.clone().sum().clamp_min(1.0);
        let mut total =
            ((sdr * active.clone()).sum() / count.clone()).neg() * self.cfg.si_sdr_weight as f64;
        if self.cfg.sdr_weight > 0.0 {
            let plain = self.sdr(r2.clone(), e2.clone());
            total = total - (plain * active).sum() / count * self.cfg.sdr_weight as f64;
        }
        let l1 = (e2.clone() - r2.clone()).abs().mean();
        let l1_v = scalar(&l1);
        if self.cfg.l1_weight > 0.0 {
            total = total + l1 * self.cfg.l1_weight as f64;
        }
        let mut spec_v = 0.0;
        if self.cfg.spectral_weight > 0.0 {
            let mut spec: Option<Tensor<1>> = None;
            for st in self.stfts.iter().filter(|_| n > 1) {
                let term = (st.magnitude(e2.clone()) - st.magnitude(r2.clone()))
                    .abs()
                    .mean();
                spec = Some(match spec {
                    None => term,
                    Some(acc) => acc + term,
                });
            }
            if let Some(spec) = spec {
                let spec = spec / self.stfts.len() as f64;
                spec_v = scalar(&spec);
                total = total + spec * self.cfg.spectral_weight as f64;
            }
        }
        LossParts {
            total,
            si_sdr_per_stem: sdr_stems,
            l1: l1_v,
            spectral: spec_v,
        }
    }
}

fn scalar(t: &Tensor<1>) -> f32 {
    t.clone()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f32::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_references_do_not_swamp_the_loss() {
        let device = Device::flex();
        let cfg = LossConfig {
            l1_weight: 0.0,
            spectral_weight: 0.0,
            ..Default::default()
        };
        let loss = SeparationLoss::new(cfg, &device);
        let n = 256;
        let s: Vec<f32> = (0..n).map(|i| (i as f32 * 0.2).sin()).collect();
        let mut reference = s.clone();
        reference.extend(std::iter::repeat_n(0.0, n)); // source 2 is silent
        let mut est: Vec<f32> = s.iter().map(|v| 0.9 * v).collect();
        est.extend(std::iter::repeat_n(0.01, n));
        let t = |v: &Vec<f32>| Tensor::<1>::from_floats(v.as_slice(), &device).reshape([1, 2, n]);
        let parts = loss.forward(t(&reference), t(&est));
        let total = scalar(&parts.total);
        // Only the active source counts: a near-perfect estimate gives a large negative loss.
        assert!(total < -40.0, "{total}");
    }

    #[test]
    fn si_sdr_matches_the_numeric_definition() {
        let device = Device::flex();
        let loss = SeparationLoss::new(LossConfig::default(), &device);
        let s: Vec<f32> = (0..512).map(|i| (i as f32 * 0.1).sin()).collect();
        let noise: Vec<f32> = (0..512)
            .map(|i| if i % 2 == 0 { 0.1 } else { -0.1 })
            .collect();
        let est: Vec<f32> = s.iter().zip(&noise).map(|(a, b)| 2.0 * a + b).collect();
        let got = loss.si_sdr(
            Tensor::<1>::from_floats(s.as_slice(), &device).reshape([1, 512]),
            Tensor::<1>::from_floats(est.as_slice(), &device).reshape([1, 512]),
        );
        let got = scalar(&got);
        let want = crate::dsp::metrics::si_sdr(&s, &est) as f32;
        assert!((got - want).abs() < 1e-3, "{got} vs {want}");
    }

    #[test]
    fn plain_sdr_sees_the_gain_that_si_sdr_ignores() {
        let device = Device::flex();
        let loss = SeparationLoss::new(LossConfig::default(), &device);
        let s: Vec<f32> = (0..2048).map(|i| (i as f32 * 0.1).sin()).collect();
        let row = |v: &[f32]| Tensor::<1>::from_floats(v, &device).reshape([1, 2048]);
        // Half the level: SI-SDR is perfect (clamped by ε), SDR is 10·log10(1/0.25) = 6.02 dB.
        let half: Vec<f32> = s.iter().map(|x| 0.5 * x).collect();
        let plain = scalar(&loss.sdr(row(&s), row(&half)));
        assert!((plain - 6.0206).abs() < 1e-3, "{plain}");
        assert!(scalar(&loss.si_sdr(row(&s), row(&half))) > 60.0);
        // The weighted loss uses it: the SDR term with weight w adds −w·6.02 dB to the total.
        let est = row(&half).reshape([1, 1, 2048]);
        let reference = row(&s).reshape([1, 1, 2048]);
        let off = scalar(&loss.forward(reference.clone(), est.clone()).total);
        let on = SeparationLoss::new(
            LossConfig {
                sdr_weight: 2.0,
                ..Default::default()
            },
            &device,
        );
        let on = scalar(&on.forward(reference, est).total);
        assert!((off - on - 2.0 * 6.0206).abs() < 1e-2, "{off} vs {on}");
    }
}
