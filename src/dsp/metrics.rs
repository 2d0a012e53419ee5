//! Source-separation metrics.
//!
//! * [`si_sdr`]: scale-invariant SDR (Le Roux et al., "SDR – half-baked or
//!   well done?", ICASSP 2019), no mean removal.
//! * [`usdr`]: the "global"/"utterance" SDR of the Music Demixing (MDX)
//!   challenge, `10·log10((Σref² + δ) / (Σ(ref−est)² + δ))`, δ = 1e-7.
//! * [`museval_sdr`]: the per-source SDR that museval v4 reports for MUSDB18
//!   (`museval.eval_mus_track` → `museval.evaluate(win=rate, hop=rate,
//!   mode="v4")` → `museval.metrics.bss_eval(compute_permutation=False,
//!   filters_len=512, framewise_filters=False, bsseval_sources_version=False)`,
//!   then `TrackStore` quantisation and `np.nanmedian` over frames).
//!
//! All sums are accumulated in `f64`.

use super::DspError;

/// Epsilon added to numerator and denominator energies in [`si_sdr`].
pub const SI_SDR_EPS: f64 = 1e-8;

/// δ added to numerator and denominator energies in [`usdr`]; this is the
/// value of the MDX 2021 challenge starter kit (`delta = 1e-7`).
pub const USDR_EPS: f64 = 1e-7;

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum()
}

/// Scale-invariant SDR in dB of `estimate` against `reference`:
///
/// `α = <ŝ, s> / (‖s‖² + ε)`, `SI-SDR = 10·log10((‖α s‖² + ε) / (‖α s − ŝ‖² + ε))`
/// with `ε = SI_SDR_EPS`. No mean removal (the paper's definition; callers
/// wanting zero-mean SI-SDR should subtract the means first). Multichannel
/// signals can be passed flattened. Only the first `min(len)` samples are
/// compared if lengths differ. A perfect (or perfectly scaled) estimate gives
/// a large finite value (≈ `10·log10(‖s‖²/ε)`), never `inf`/`NaN`.
pub fn si_sdr(reference: &[f32], estimate: &[f32]) -> f64 {
    let n = reference.len().min(estimate.len());
    let (s, e) = (&reference[..n], &estimate[..n]);
    let ss = dot(s, s);
    let alpha = dot(e, s) / (ss + SI_SDR_EPS);
    let mut target = 0.0f64;
    let mut noise = 0.0f64;
    for (&sv, &ev) in s.iter().zip(e) {
        let t = alpha * f64::from(sv);
        target += t * t;
        let d = t - f64::from(ev);
        noise += d * d;
    }
    10.0 * ((target + SI_SDR_EPS) / (noise + SI_SDR_EPS)).log10()
}

/// MDX-challenge SDR ("uSDR" / global SDR) in dB over all channels of one
/// source: `10·log10((Σ ref² + δ) / (Σ (ref − est)² + δ))`, `δ = USDR_EPS`.
///
/// `reference[c]` / `estimate[c]` are the channels. Missing estimate
/// channels/samples count as zeros; extra ones are ignored.
pub fn usdr<R: AsRef<[f32]>, E: AsRef<[f32]>>(reference: &[R], estimate: &[E]) -> f64 {
    let mut num = 0.0f64;
    let mut den = 0.0f64;
    for (c, r) in reference.iter().enumerate() {
        let r = r.as_ref();
        let e: &[f32] = estimate.get(c).map_or(&[], |e| e.as_ref());
        for (n, &rv) in r.iter().enumerate() {
            let rv = f64::from(rv);
            let ev = e.get(n).map_or(0.0, |&v| f64::from(v));
            num += rv * rv;
            den += (rv - ev) * (rv - ev);
        }
    }
    10.0 * ((num + USDR_EPS) / (den + USDR_EPS)).log10()
}

/// museval's "silent" test (`metrics._any_source_silent`): the sum over
/// channels is exactly zero at every sample of `[lo, hi)`. Note that this
/// also flags e.g. a stereo frame with `L = −R`.
fn silent(channels: &[Vec<f32>], lo: usize, hi: usize) -> bool {
    (lo..hi).all(|n| {
        channels
            .iter()
            .map(|c| c.get(n).map_or(0.0, |&v| f64::from(v)))
            .sum::<f64>()
            == 0.0
    })
}

/// Frame-wise museval v4 SDR in dB: `result[j][t]` for source `j`, frame `t`
/// (`NaN` for skipped frames, `+inf` for an error-free frame, exactly as
/// `museval.metrics.bss_eval` returns them before aggregation).
///
/// Layout: `references[j][c]` = samples of channel `c` of source `j`; same for
/// `estimates`. Mirrors `museval.evaluate(..., win=rate, hop=rate, mode="v4")`
/// (sigsep/sigsep-mus-eval, `museval/__init__.py::evaluate` and
/// `museval/metrics.py::bss_eval`, `Framing`, `_bss_decomp_mtifilt`,
/// `_bss_crit`, `_safe_db`):
///
/// * `pad_or_truncate`: estimates are zero-padded / truncated to the
///   reference length.
/// * `validate`: error if any reference or estimate source is silent over the
///   whole signal (museval raises `ValueError`).
/// * `Framing(window=rate, hop=rate)`: `nwin = floor(nsampl / rate)` frames
///   `[t·rate, (t+1)·rate)` (last partial frame dropped) if `rate < nsampl`,
///   else one frame holding the whole signal.
/// * A frame where any reference or any estimate source is silent gives `NaN`
///   for all sources.
/// * Otherwise `SDR = 10·log10(‖s_true‖² / ‖e_spat + e_interf + e_artif‖²)`
///   (images version, `_bss_crit` with `bsseval_sources_version=False`),
///   `+inf` if the denominator is 0.
///
/// Why no 512-tap filter solve appears here: in `_bss_decomp_mtifilt`,
/// `e_artif = −s_true − e_spat − e_interf + ŝ` (ŝ zero-padded), so
/// `e_spat + e_interf + e_artif = ŝ − s_true` identically, whatever the
/// distortion filters `C`, `Cj` are. The v4 SDR therefore equals the
/// frame-wise SNR of the estimate against its own reference image; the
/// Toeplitz least-squares filters only influence ISR/SIR/SAR, which are not
/// computed here. (museval evaluates the cancellation in floating point, so
/// results agree up to ~1e-12 relative in the error energy.)
fn museval_sdr_frames(
    references: &[&[Vec<f32>]],
    estimates: &[&[Vec<f32>]],
    rate: usize,
) -> Result<Vec<Vec<f64>>, DspError> {
    let nsrc = references.len();
    if estimates.len() != nsrc {
        return Err(DspError::ShapeMismatch {
            what: "museval estimate sources",
            expected: nsrc,
            got: estimates.len(),
        });
    }
    if rate == 0 {
        return Err(DspError::InvalidMetricInput(
            "museval window (rate) must be >= 1".into(),
        ));
    }
    if nsrc == 0 {
        return Ok(Vec::new());
    }
    let nchan = references[0].len();
    if nchan == 0 {
        return Err(DspError::InvalidMetricInput(
            "museval sources need at least one channel".into(),
        ));
    }
    let nsampl = references[0][0].len();
    for (j, (r, e)) in references.iter().zip(estimates).enumerate() {
        if r.len() != nchan || e.len() != nchan {
            return Err(DspError::InvalidMetricInput(format!(
                "source {j}: {} reference / {} estimate channels, expected {nchan}",
                r.len(),
                e.len()
            )));
        }
        if let Some(c) = r.iter().find(|c| c.len() != nsampl) {
            return Err(DspError::ShapeMismatch {
                what: "museval reference length",
                expected: nsampl,
                got: c.len(),
            });
        }
    }
    if nsampl == 0 {
        // museval warns and returns empty score arrays.
        return Ok(vec![Vec::new(); nsrc]);
    }
    // validate(): every source must be non-silent over the whole signal.
    for (j, (r, e)) in references.iter().zip(estimates).enumerate() {
        if silent(r, 0, nsampl) {
            return Err(DspError::InvalidMetricInput(format!(
                "reference source {j} is all zeros (museval rejects this)"
            )));
        }
        if silent(e, 0, nsampl) {
            return Err(DspError::InvalidMetricInput(format!(
                "estimated source {j} is all zeros (museval rejects this)"
            )));
        }
    }

    let nwin = if rate < nsampl { nsampl / rate } else { 1 };
    let mut out = vec![Vec::with_capacity(nwin); nsrc];
    for t in 0..nwin {
        let lo = t * rate;
        let hi = (lo + rate).min(nsampl);
        let skip = references.iter().any(|r| silent(r, lo, hi))
            || estimates.iter().any(|e| silent(e, lo, hi));
        for j in 0..nsrc {
            if skip {
                out[j].push(f64::NAN);
                continue;
            }
            let mut num = 0.0f64;
            let mut den = 0.0f64;
            for (r, e) in references[j].iter().zip(estimates[j].iter()) {
                for (n, &rv) in r.iter().enumerate().take(hi).skip(lo) {
                    let s = f64::from(rv);
                    let ev = e.get(n).map_or(0.0, |&v| f64::from(v));
                    num += s * s;
                    den += (ev - s) * (ev - s);
                }
            }
            out[j].push(if den == 0.0 {
                f64::INFINITY
            } else {
                10.0 * (num / den).log10()
            });
        }
    }
    Ok(out)
}

/// museval `TrackStore._q`: `inf → NaN`, otherwise quantised to 1e-5
/// (Python `Decimal.quantize`, round-half-even; done here in binary floating
/// point, which can differ only at exact decimal ties).
fn museval_quantize(v: f64) -> f64 {
    if v.is_infinite() {
        f64::NAN
    } else {
        (v * 1e5).round_ties_even() / 1e5
    }
}

/// `np.nanmedian` (mean of the two middle values for an even count);
/// `None` when every value is `NaN`.
pub fn nan_median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    })
}

/// museval v4 track-level SDR per source (the number reported on MUSDB18):
/// frame-wise SDR from `museval_sdr_frames` with 1-second frames
/// (`rate` samples, no overlap), stored the way `museval.TrackStore` stores
/// them (`inf` frames become `NaN`, values quantised to 1e-5 dB), then the
/// median over frames ignoring `NaN` (`np.nanmedian`). `None` for a source
/// with no valid frame.
///
/// `references[j][c]`: channel `c` of source `j`; `estimates` likewise.
/// Errors as `museval_sdr_frames` (mismatched shapes, a source that is all
/// zeros over the whole track).
pub fn museval_sdr(
    references: &[&[Vec<f32>]],
    estimates: &[&[Vec<f32>]],
    rate: usize,
) -> Result<Vec<Option<f64>>, DspError> {
    let frames = museval_sdr_frames(references, estimates, rate)?;
    Ok(frames
        .iter()
        .map(|f| {
            let q: Vec<f64> = f.iter().map(|&v| museval_quantize(v)).collect();
            nan_median(&q)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn si_sdr_cases() {
        let s: Vec<f32> = (0..1000)
            .map(|i| if i % 2 == 0 { 1.0 } else { 0.0 })
            .collect();
        // Perfect estimate: 10 log10(500 / 1e-8) ≈ 106.99 dB, finite.
        let perfect = si_sdr(&s, &s);
        assert!(
            perfect.is_finite() && close(perfect, 10.0 * (500.0f64 / 1e-8).log10(), 1e-3),
            "{perfect}"
        );
        // Scaled estimate is equally perfect.
        let half: Vec<f32> = s.iter().map(|v| 0.5 * v).collect();
        assert!(si_sdr(&s, &half) > 100.0);
        // Orthogonal noise: α = 1, SI-SDR = 10 log10(500 / (500·0.25)) = 6.0206 dB,
        // and it is invariant to scaling the estimate.
        let noisy: Vec<f32> = (0..1000)
            .map(|i| if i % 2 == 0 { 1.0 } else { 0.5 })
            .collect();
        assert!(close(si_sdr(&s, &noisy), 10.0 * 4.0f64.log10(), 1e-6));
        let noisy3: Vec<f32> = noisy.iter().map(|v| 3.0 * v).collect();
        assert!(close(si_sdr(&s, &noisy3), 10.0 * 4.0f64.log10(), 1e-6));
        // Degenerate inputs stay finite.
        assert!(si_sdr(&[0.0; 10], &[0.0; 10]).is_finite());
        assert!(si_sdr(&[0.0; 10], &[1.0; 10]).is_finite());
    }

    #[test]
    fn usdr_cases() {
        let r = vec![vec![1.0f32; 100], vec![-1.0f32; 100]];
        assert!(close(
            usdr(&r, &r),
            10.0 * ((200.0 + 1e-7) / 1e-7f64).log10(),
            1e-9
        ));
        let zero = vec![vec![0.0f32; 100]; 2];
        assert!(close(usdr(&r, &zero), 0.0, 1e-9));
        // est = 1.1·ref: error energy 0.01·200 → 20 dB.
        let e: Vec<Vec<f32>> = r
            .iter()
            .map(|c| c.iter().map(|v| v * 1.1).collect())
            .collect();
        assert!(close(usdr(&r, &e), 20.0, 1e-4));
        // Missing estimate channel counts as zeros.
        let one = vec![vec![1.0f32; 100]];
        assert!(close(
            usdr(&r, &one),
            10.0 * ((200.0 + 1e-7) / (100.0 + 1e-7f64)).log10(),
            1e-9
        ));
    }

    /// Stereo constant-1 reference; estimate = reference + a_t·(±1 alternating)
    /// in frame t, so frame SDR = −20·log10(a_t).
    fn make(rate: usize, amps: &[f32], tail: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let len = rate * amps.len() + tail;
        let r = vec![vec![1.0f32; len]; 2];
        let e = (0..2)
            .map(|_| {
                (0..len)
                    .map(|n| {
                        let a = amps.get(n / rate).copied().unwrap_or(0.5);
                        1.0 + if n % 2 == 0 { a } else { -a }
                    })
                    .collect()
            })
            .collect();
        (r, e)
    }

    #[test]
    fn museval_median_and_partial_frame() {
        let rate = 100;
        let (r0, e0) = make(rate, &[0.1, 0.01, 1.0, 0.001], 57);
        let (r1, e1) = make(rate, &[0.1, 0.1, 0.1, 0.1], 57);
        let refs = [&r0[..], &r1[..]];
        let ests = [&e0[..], &e1[..]];
        let frames = museval_sdr_frames(&refs, &ests, rate).unwrap();
        assert_eq!(frames[0].len(), 4, "partial last frame dropped");
        for (got, want) in frames[0].iter().zip([20.0, 40.0, 0.0, 60.0]) {
            assert!(close(*got, want, 1e-3), "{got} vs {want}");
        }
        let med = museval_sdr(&refs, &ests, rate).unwrap();
        // median of {0, 20, 40, 60} = 30
        assert!(close(med[0].unwrap(), 30.0, 1e-4));
        assert!(close(med[1].unwrap(), 20.0, 1e-4));
    }

    #[test]
    fn museval_silent_frames_skipped_for_all_sources() {
        let rate = 50;
        let (mut r0, e0) = make(rate, &[0.1, 0.01, 0.001], 0);
        let (r1, mut e1) = make(rate, &[1.0, 1.0, 0.1], 0);
        // Source 0 reference silent in frame 0 → frame 0 skipped for both sources.
        for c in &mut r0 {
            c[..rate].fill(0.0);
        }
        // Source 1 estimate silent in frame 2 → frame 2 skipped for both.
        for c in &mut e1 {
            c[2 * rate..].fill(0.0);
        }
        let refs = [&r0[..], &r1[..]];
        let ests = [&e0[..], &e1[..]];
        let frames = museval_sdr_frames(&refs, &ests, rate).unwrap();
        assert!(frames[0][0].is_nan() && frames[1][0].is_nan());
        assert!(frames[0][2].is_nan() && frames[1][2].is_nan());
        let med = museval_sdr(&refs, &ests, rate).unwrap();
        assert!(close(med[0].unwrap(), 40.0, 1e-4));
        assert!(close(med[1].unwrap(), 0.0, 1e-4));
    }

    #[test]
    fn museval_inf_frames_and_quirks() {
        let rate = 10;
        let (r, mut e) = make(rate, &[0.1, 0.1, 0.1], 0);
        // Perfect frame → +inf frame score, dropped (NaN) by TrackStore before the median.
        for c in &mut e {
            c[..rate].fill(1.0);
        }
        let frames = museval_sdr_frames(&[&r[..]], &[&e[..]], rate).unwrap();
        assert_eq!(frames[0][0], f64::INFINITY);
        assert!(close(
            museval_sdr(&[&r[..]], &[&e[..]], rate).unwrap()[0].unwrap(),
            20.0,
            1e-4
        ));
        // All frames perfect → no valid frame → None.
        assert_eq!(museval_sdr(&[&r[..]], &[&r[..]], rate).unwrap(), vec![None]);
        // Signal not longer than one window → a single frame over everything.
        let (r, e) = make(rate, &[0.1], 7);
        let frames = museval_sdr_frames(&[&r[..]], &[&e[..]], 100).unwrap();
        assert_eq!(frames[0].len(), 1);
        // Short estimate is zero-padded to the reference length.
        let (r, e) = make(rate, &[0.1, 0.1], 0);
        let short: Vec<Vec<f32>> = e.iter().map(|c| c[..15].to_vec()).collect();
        let frames = museval_sdr_frames(&[&r[..]], &[&short[..]], rate).unwrap();
        assert!(close(
            frames[0][1],
            10.0 * (20.0f64 / (10.0 * 0.01 + 10.0)).log10(),
            1e-4
        ));
        // A whole-track silent source is an error, as in museval.validate.
        let z = vec![vec![0.0f32; 20]; 2];
        assert!(museval_sdr(&[&r[..]], &[&z[..]], rate).is_err());
        // museval's silence test sums channels: L = −R counts as silent.
        let (r, e) = make(rate, &[0.1, 0.1], 0);
        let mut r2 = r.clone();
        r2[1] = r2[0].iter().map(|v| -v).collect();
        r2[0][0] = 2.0; // not silent overall
        r2[1][0] = 0.0;
        let frames = museval_sdr_frames(&[&r2[..]], &[&e[..]], rate).unwrap();
        assert!(!frames[0][0].is_nan() && frames[0][1].is_nan());
    }

    #[test]
    fn nan_median_even_odd() {
        assert_eq!(nan_median(&[3.0, f64::NAN, 1.0, 2.0]), Some(2.0));
        assert_eq!(nan_median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(nan_median(&[f64::NAN]), None);
    }
}
