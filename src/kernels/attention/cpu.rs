//! Attention on the CPU for inference (burn's `flex` backend without autodiff): one score row
//! (`[L]`) at a time per thread — never a `[L, L]` matrix, never the whole batch — a
//! vectorisable exponential, rayon over (batch·head). The numbers are those of [`super::attention_reference`] to fp32 rounding.

use rayon::prelude::*;

/// `e^x` for `x ≤ 0` (softmax after max subtraction), ≈ 2 ulp: range reduction
/// `x = n·ln2 + r`, `|r| ≤ ln2/2`, degree-6 polynomial, exponent bits for `2^n`. Branch-free so
/// the loop vectorises.
#[inline(always)]
fn exp_neg(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.max(-87.0);
    // Round to nearest with the 1.5·2²³ trick: `f32::round` is a libm call on baseline x86-64
    // (no SSE4.1), which would stop the vectoriser. Exact for |x·log2 e| < 2²².
    const MAGIC: f32 = 12_582_912.0;
    let n = (x * LOG2E + MAGIC) - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    f32::from_bits(((n as i32 + 127) as u32) << 23) * p
}

/// Lanes of the split reductions below: independent partial results that the vectoriser can
/// keep in one register (a float sum in plain order cannot be vectorised).
const LANES: usize = 16;

/// `Σ a·b` (or `Σ a` when `b` is None) with `LANES` partial sums.
#[inline(always)]
fn lanes_dot(a: &[f32], b: Option<&[f32]>) -> f32 {
    let mut acc = [0f32; LANES];
    let n = a.len() / LANES * LANES;
    match b {
        Some(b) => {
            for (ca, cb) in a[..n].chunks_exact(LANES).zip(b[..n].chunks_exact(LANES)) {
                for k in 0..LANES {
                    acc[k] += ca[k] * cb[k];
                }
            }
            acc.iter().sum::<f32>() + a[n..].iter().zip(&b[n..]).map(|(x, y)| x * y).sum::<f32>()
        }
        None => {
            for ca in a[..n].chunks_exact(LANES) {
                for k in 0..LANES {
                    acc[k] += ca[k];
                }
            }
            acc.iter().sum::<f32>() + a[n..].iter().sum::<f32>()
        }
    }
}

/// `max a` with `LANES` partial maxima.
#[inline(always)]
fn lanes_max(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let n = a.len() / LANES * LANES;
    for ca in a[..n].chunks_exact(LANES) {
        for k in 0..LANES {
            acc[k] = acc[k].max(ca[k]);
        }
    }
    a[n..]
        .iter()
        .chain(acc.iter())
        .fold(f32::NEG_INFINITY, |m, &x| m.max(x))
}

/// `out = softmax(q kᵀ · scale) v` for contiguous `[bh, l, d]` inputs.
///
/// Per head, K and V are transposed once to `[d, l]`, so both products become loops over
/// contiguous length-`l` rows (the vectoriser's favourite shape; `d` is small: 8–64).
///
/// # Shapes
/// - q, k, v, out: `[bh, l, d]` row-major
pub fn attention_cpu(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    bh: usize,
    l: usize,
    d: usize,
) {
    debug_assert!(
        q.len() == bh * l * d && k.len() == q.len() && v.len() == q.len() && out.len() == q.len()
    );
    let scale = 1.0 / (d as f32).sqrt();
    out.par_chunks_mut(l * d).enumerate().for_each_init(
        || (vec![0f32; d * l], vec![0f32; d * l], vec![0f32; l]),
        |(kt, vt, s), (i, o)| {
            let base = i * l * d;
            let heads = (
                &q[base..base + l * d],
                &k[base..base + l * d],
                &v[base..base + l * d],
            );
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F (checked just above).
                    return unsafe { head_avx512(heads, o, kt, vt, s, l, d, scale) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                    return unsafe { head_avx2(heads, o, kt, vt, s, l, d, scale) };
                }
            }
            head(heads, o, kt, vt, s, l, d, scale)
        },
    );
}

type Head<'a> = (&'a [f32], &'a [f32], &'a [f32]);

/// The per-head body compiled for AVX-512 (the same code, wider vectors).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn head_avx512(
    h: Head,
    o: &mut [f32],
    kt: &mut [f32],
    vt: &mut [f32],
    s: &mut [f32],
    l: usize,
    d: usize,
    scale: f32,
) {
    head(h, o, kt, vt, s, l, d, scale)
}

/// The per-head body compiled for AVX2 + FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn head_avx2(
    h: Head,
    o: &mut [f32],
    kt: &mut [f32],
    vt: &mut [f32],
    s: &mut [f32],
    l: usize,
    d: usize,
    scale: f32,
) {
    head(h, o, kt, vt, s, l, d, scale)
}

/// One head: `o = softmax(q kᵀ·scale) v`, row by row.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn head(
    (qh, kh, vh): Head,
    o: &mut [f32],
    kt: &mut [f32],
    vt: &mut [f32],
    s: &mut [f32],
    l: usize,
    d: usize,
    scale: f32,
) {
    for j in 0..l {
        for c in 0..d {
            kt[c * l + j] = kh[j * d + c];
            vt[c * l + j] = vh[j * d + c];
        }
    }
    for (qi, oi) in qh.chunks_exact(d).zip(o.chunks_exact_mut(d)) {
        s.iter_mut().for_each(|x| *x = 0.0);
        for (c, krow) in kt.chunks_exact(l).enumerate() {
            let qc = qi[c] * scale;
            s.iter_mut().zip(krow).for_each(|(x, kv)| *x += qc * kv);
        }
        let max = lanes_max(s);
        s.iter_mut().for_each(|x| *x = exp_neg(*x - max));
        let inv = 1.0 / lanes_dot(s, None);
        for (oc, vrow) in oi.iter_mut().zip(vt.chunks_exact(l)) {
            *oc = lanes_dot(s, Some(vrow)) * inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_on_the_softmax_range() {
        for i in 0..10_000 {
            let x = -87.0 * i as f32 / 10_000.0;
            let (a, b) = (exp_neg(x), x.exp());
            assert!((a - b).abs() <= 4e-7 * b.max(1e-30), "{x}: {a} vs {b}");
        }
        assert_eq!(exp_neg(0.0), 1.0);
    }

    #[test]
    fn matches_a_direct_softmax_for_odd_sizes() {
        for (bh, l, d) in [(1, 1, 8), (3, 7, 12), (2, 65, 16), (2, 130, 6)] {
            let n = bh * l * d;
            let noise = |s: u32| {
                (0..n)
                    .map(|i| {
                        (((i as u32).wrapping_mul(2654435761).wrapping_add(s)) >> 16) as f32
                            / 65536.0
                            - 0.5
                    })
                    .collect::<Vec<f32>>()
            };
            let (q, k, v) = (noise(1), noise(2), noise(3));
            let mut out = vec![0.0; n];
            attention_cpu(&q, &k, &v, &mut out, bh, l, d);
            for h in 0..bh {
                for i in 0..l {
                    let s: Vec<f32> = (0..l)
                        .map(|j| {
                            (0..d)
                                .map(|c| q[(h * l + i) * d + c] * k[(h * l + j) * d + c])
                                .sum::<f32>()
                                / (d as f32).sqrt()
                        })
                        .collect();
                    let m = s.iter().cloned().fold(f32::MIN, f32::max);
                    let e: Vec<f32> = s.iter().map(|x| (x - m).exp()).collect();
                    let z: f32 = e.iter().sum();
                    for c in 0..d {
                        let want: f32 = (0..l).map(|j| e[j] / z * v[(h * l + j) * d + c]).sum();
                        let got = out[(h * l + i) * d + c];
                        assert!((got - want).abs() < 1e-5, "{bh} {l} {d}: {got} vs {want}");
                    }
                }
            }
        }
    }
}
