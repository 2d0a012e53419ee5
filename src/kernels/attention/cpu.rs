//! Attention on the CPU for inference (burn's `flex` backend without autodiff): one score row
//! (`[L]`) at a time per thread — never a `[L, L]` matrix, never the whole batch — a
//! vectorisable exponential, rayon over (batch·head). The numbers are those of [`super::attention_reference`] to fp32 rounding.

use rayon::prelude::*;

/// `e^x` for `x ≤ 0` (softmax after max subtraction), ≈ 2 ulp: range reduction
/// `x = n·ln2 + r`, `|r| ≤ ln2/2`, degree-6 polynomial, exponent bits for `2^n`. Branch-free so
/// the loop vectorises.
#[inline(always)]
pub(crate) fn exp_neg(x: f32) -> f32 {
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

/// Instruction sets the host kernels have compiled variants for, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Simd {
    /// x86-64 with AVX-512F.
    Avx512,
    /// x86-64 with AVX2 and FMA.
    Avx2Fma,
    /// Anything else: the baseline build.
    Portable,
}

/// The best variant this CPU runs (std caches the feature detection). Invariant relied on by
/// every `unsafe` call of a `#[target_feature]` variant: it is only returned when the CPU has
/// those features.
pub(crate) fn simd() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Simd::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Simd::Avx2Fma;
        }
    }
    Simd::Portable
}

/// Reusable buffers of [`attention_head`] (one per thread): K and V transposed and zero-padded
/// to `[d, round_up(l, 16)]`, and the score rows of one query block.
#[derive(Default)]
pub struct HeadScratch {
    kt: Vec<f32>,
    vt: Vec<f32>,
    s: Vec<f32>,
    q: Vec<f32>,
    /// After [`attention_head`]: the log-sum-exp of each query row's scaled scores, `[l]`
    /// (what the backward needs to rebuild the probabilities).
    pub lse: Vec<f32>,
}

/// `out = softmax(q kᵀ · scale) v` for contiguous `[bh, l, d]` inputs, rayon over `bh`.
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
    out.par_chunks_mut(l * d)
        .enumerate()
        .for_each_init(HeadScratch::default, |scratch, (i, o)| {
            let r = i * l * d..(i + 1) * l * d;
            attention_head(&q[r.clone()], &k[r.clone()], &v[r], o, l, d, scratch);
        });
}

/// One head: `o = softmax(q kᵀ / √d) v`, never holding more than a few score rows.
///
/// Uses AVX-512 when the CPU has it (a register-blocked kernel: 4 query rows × 64 keys per
/// step), a portable loop otherwise; both equal the direct formula to fp32 rounding.
///
/// # Shapes
/// - q, k, v, o: `[l, d]` row-major
pub fn attention_head(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    o: &mut [f32],
    l: usize,
    d: usize,
    scratch: &mut HeadScratch,
) {
    debug_assert!(q.len() == l * d && k.len() == l * d && v.len() == l * d && o.len() == l * d);
    let scale = 1.0 / (d as f32).sqrt();
    match simd() {
        // SAFETY: `simd()` reports AVX-512F only when the CPU has it.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { avx512::head(q, k, v, o, l, d, scale, scratch) },
        // SAFETY: `simd()` reports AVX2 + FMA only when the CPU has them.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2Fma => unsafe { head_avx2((q, k, v), o, l, d, scale, scratch) },
        _ => head((q, k, v), o, l, d, scale, scratch),
    }
}

/// `(q, k, v)` of one head, each `[l, d]`.
pub type Head<'a> = (&'a [f32], &'a [f32], &'a [f32]);

/// The portable per-head body compiled for AVX2 + FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_avx2(h: Head, o: &mut [f32], l: usize, d: usize, scale: f32, sc: &mut HeadScratch) {
    head(h, o, l, d, scale, sc)
}

/// One head, portable: row by row over K and V transposed to `[d, l]`.
#[inline(always)]
fn head((qh, kh, vh): Head, o: &mut [f32], l: usize, d: usize, scale: f32, sc: &mut HeadScratch) {
    sc.kt.resize(d * l, 0.0);
    sc.vt.resize(d * l, 0.0);
    sc.s.resize(l, 0.0);
    sc.lse.resize(l, 0.0);
    let (kt, vt, s) = (&mut sc.kt[..d * l], &mut sc.vt[..d * l], &mut sc.s[..l]);
    for j in 0..l {
        for c in 0..d {
            kt[c * l + j] = kh[j * d + c];
            vt[c * l + j] = vh[j * d + c];
        }
    }
    for (i, (qi, oi)) in qh.chunks_exact(d).zip(o.chunks_exact_mut(d)).enumerate() {
        s.iter_mut().for_each(|x| *x = 0.0);
        for (c, krow) in kt.chunks_exact(l).enumerate() {
            let qc = qi[c] * scale;
            s.iter_mut()
                .zip(krow.iter())
                .for_each(|(x, kv)| *x += qc * kv);
        }
        let max = lanes_max(s);
        s.iter_mut().for_each(|x| *x = exp_neg(*x - max));
        let sum = lanes_dot(s, None);
        sc.lse[i] = max + sum.ln();
        let inv = 1.0 / sum;
        for (oc, vrow) in oi.iter_mut().zip(vt.chunks_exact(l)) {
            *oc = lanes_dot(s, Some(vrow)) * inv;
        }
    }
}

/// Reusable buffers of [`attention_head_backward`] (one per thread).
#[derive(Default)]
pub struct BackScratch {
    kt: Vec<f32>,
    vt: Vec<f32>,
    dkt: Vec<f32>,
    dvt: Vec<f32>,
    s: Vec<f32>,
    dp: Vec<f32>,
}

/// Gradients of one head of `o = softmax(q kᵀ / √d) v` w.r.t. q, k and v, given the forward's
/// output and per-row log-sum-exp: the probabilities are rebuilt one row at a time
/// (`p = exp(s − lse)`), so memory stays O(l·d).
///
/// With `Δᵢ = dOᵢ·Oᵢ` and `dSᵢⱼ = Pᵢⱼ (dOᵢ·Vⱼ − Δᵢ)`: `dQ = dS K / √d`, `dK = dSᵀ Q / √d`,
/// `dV = Pᵀ dO`.
///
/// # Shapes
/// - q, k, v, o, grad_o, dq, dk, dv: `[l, d]` row-major; lse: `[l]`
#[allow(clippy::too_many_arguments)]
pub fn attention_head_backward(
    (q, k, v): Head,
    o: &[f32],
    lse: &[f32],
    grad_o: &[f32],
    (dq, dk, dv): (&mut [f32], &mut [f32], &mut [f32]),
    l: usize,
    d: usize,
    sc: &mut BackScratch,
) {
    let (h, g) = ((q, k, v), (dq, dk, dv));
    match simd() {
        // SAFETY: `simd()` reports AVX-512F only when the CPU has it.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { backward_avx512(h, o, lse, grad_o, g, l, d, sc) },
        // SAFETY: `simd()` reports AVX2 + FMA only when the CPU has them.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2Fma => unsafe { backward_avx2(h, o, lse, grad_o, g, l, d, sc) },
        _ => backward(h, o, lse, grad_o, g, l, d, sc),
    }
}

/// `(dq, dk, dv)` of one head, each `[l, d]`.
pub type Grads<'a> = (&'a mut [f32], &'a mut [f32], &'a mut [f32]);

/// [`backward`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn backward_avx512(
    h: Head,
    o: &[f32],
    lse: &[f32],
    grad_o: &[f32],
    g: Grads,
    l: usize,
    d: usize,
    sc: &mut BackScratch,
) {
    backward(h, o, lse, grad_o, g, l, d, sc)
}

/// [`backward`] compiled for AVX2 + FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn backward_avx2(
    h: Head,
    o: &[f32],
    lse: &[f32],
    grad_o: &[f32],
    g: Grads,
    l: usize,
    d: usize,
    sc: &mut BackScratch,
) {
    backward(h, o, lse, grad_o, g, l, d, sc)
}

/// The portable backward body: every inner loop runs over a contiguous length-`l` row.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward(
    (qh, kh, vh): Head,
    o: &[f32],
    lse: &[f32],
    grad_o: &[f32],
    (dq, dk, dv): Grads,
    l: usize,
    d: usize,
    sc: &mut BackScratch,
) {
    let scale = 1.0 / (d as f32).sqrt();
    for buf in [&mut sc.kt, &mut sc.vt, &mut sc.dkt, &mut sc.dvt] {
        buf.clear();
        buf.resize(d * l, 0.0);
    }
    sc.s.resize(l, 0.0);
    sc.dp.resize(l, 0.0);
    let BackScratch {
        kt,
        vt,
        dkt,
        dvt,
        s,
        dp,
    } = sc;
    let (s, dp) = (&mut s[..l], &mut dp[..l]);
    for j in 0..l {
        for c in 0..d {
            kt[c * l + j] = kh[j * d + c];
            vt[c * l + j] = vh[j * d + c];
        }
    }
    for i in 0..l {
        let (qi, gi, oi) = (
            &qh[i * d..(i + 1) * d],
            &grad_o[i * d..(i + 1) * d],
            &o[i * d..(i + 1) * d],
        );
        let delta: f32 = gi.iter().zip(oi).map(|(a, b)| a * b).sum();
        s.iter_mut().for_each(|x| *x = 0.0);
        dp.iter_mut().for_each(|x| *x = 0.0);
        for c in 0..d {
            let (qc, gc) = (qi[c] * scale, gi[c]);
            let (krow, vrow) = (&kt[c * l..(c + 1) * l], &vt[c * l..(c + 1) * l]);
            s.iter_mut().zip(krow).for_each(|(x, kv)| *x += qc * kv);
            dp.iter_mut().zip(vrow).for_each(|(x, vv)| *x += gc * vv);
        }
        let m = lse[i];
        // s ← P, dp ← dS (the row's probabilities and score gradients).
        s.iter_mut().zip(dp.iter_mut()).for_each(|(p, g)| {
            *p = exp_neg((*p - m).min(0.0));
            *g = *p * (*g - delta);
        });
        for c in 0..d {
            let krow = &kt[c * l..(c + 1) * l];
            dq[i * d + c] = lanes_dot(dp, Some(krow)) * scale;
            let (qs, gc) = (qi[c] * scale, gi[c]);
            dkt[c * l..(c + 1) * l]
                .iter_mut()
                .zip(dp.iter())
                .for_each(|(x, g)| *x += qs * g);
            dvt[c * l..(c + 1) * l]
                .iter_mut()
                .zip(s.iter())
                .for_each(|(x, p)| *x += gc * p);
        }
    }
    for j in 0..l {
        for c in 0..d {
            dk[j * d + c] = dkt[c * l + j];
            dv[j * d + c] = dvt[c * l + j];
        }
    }
}

/// The AVX-512 kernel. Invariants: `kt`/`vt` are `[d, lp]` with `lp = round_up(l, 16)` and
/// zero columns `l..lp`; score rows are `lp` long and their columns `l..lp` are never read
/// as scores (masked to −∞ before the max, to 0 after the exponential).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::HeadScratch;
    use std::arch::x86_64::*;

    /// Query rows per block.
    const R: usize = 4;
    /// Output columns per accumulation group in the `P·V` product (R·CG accumulators).
    const CG: usize = 6;

    /// `e^x` on 16 lanes for `x ≤ 0` (inputs below −87 clamp): `2^n · p(r)` with
    /// `x = n·ln2 + r`, degree-6 polynomial, `scalef` for `2^n`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn exp_neg(x: __m512) -> __m512 {
        let x = _mm512_max_ps(x, _mm512_set1_ps(-87.0));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_145_75), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428_606_8e-6), r);
        let mut p = _mm512_set1_ps(1.0 / 720.0);
        for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        _mm512_scalef_ps(p, n)
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn head(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        o: &mut [f32],
        l: usize,
        d: usize,
        scale: f32,
        sc: &mut HeadScratch,
    ) {
        let lp = l.div_ceil(16) * 16;
        sc.kt.clear();
        sc.kt.resize(d * lp, 0.0);
        sc.vt.clear();
        sc.vt.resize(d * lp, 0.0);
        sc.s.resize(R * lp, 0.0);
        sc.q.resize(R * d, 0.0);
        sc.lse.resize(l, 0.0);
        for j in 0..l {
            for c in 0..d {
                sc.kt[c * lp + j] = k[j * d + c];
                sc.vt[c * lp + j] = v[j * d + c];
            }
        }
        let mut i = 0;
        while i + R <= l {
            block::<R>(q, o, i, l, lp, d, scale, sc);
            i += R;
        }
        while i < l {
            block::<1>(q, o, i, l, lp, d, scale, sc);
            i += 1;
        }
    }

    /// Rows `i0..i0+RB` of the output.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    fn block<const RB: usize>(
        q: &[f32],
        o: &mut [f32],
        i0: usize,
        l: usize,
        lp: usize,
        d: usize,
        scale: f32,
        sc: &mut HeadScratch,
    ) {
        let HeadScratch {
            kt,
            vt,
            s,
            q: qs,
            lse,
        } = sc;
        for r in 0..RB {
            for c in 0..d {
                qs[r * d + c] = q[(i0 + r) * d + c] * scale;
            }
        }
        let full = l / 16;
        let tail_mask: __mmask16 = ((1u32 << (l % 16)) - 1) as __mmask16;
        let mut mx = [_mm512_set1_ps(f32::NEG_INFINITY); RB];
        // S = Q Kᵀ: 4 key chunks × RB rows of accumulators per step while whole chunks last.
        let mut jc = 0;
        while jc + 4 <= full {
            scores::<RB, 4>(kt, s, qs, &mut mx, jc, lp, d, full, tail_mask);
            jc += 4;
        }
        while jc < lp / 16 {
            scores::<RB, 1>(kt, s, qs, &mut mx, jc, lp, d, full, tail_mask);
            jc += 1;
        }
        // P = exp(S − max) in place; padded columns become e^−∞ → clamped tiny, then zeroed.
        let mut inv = [0f32; RB];
        for r in 0..RB {
            let mr = _mm512_reduce_max_ps(mx[r]);
            let m = _mm512_set1_ps(mr);
            let mut sum = _mm512_setzero_ps();
            for jc in 0..lp / 16 {
                // SAFETY: inside row r of s.
                let p = unsafe { s.as_mut_ptr().add(r * lp + jc * 16) };
                let mut e = exp_neg(_mm512_sub_ps(unsafe { _mm512_loadu_ps(p) }, m));
                if jc == full {
                    e = _mm512_maskz_mov_ps(tail_mask, e);
                }
                sum = _mm512_add_ps(sum, e);
                unsafe { _mm512_storeu_ps(p, e) };
            }
            let total = _mm512_reduce_add_ps(sum);
            lse[i0 + r] = mr + total.ln();
            inv[r] = 1.0 / total;
        }
        // O = P V: groups of up to CG output columns, RB·CG accumulators.
        let mut c0 = 0;
        while c0 < d {
            let cg = CG.min(d - c0);
            match cg {
                6 => pv::<RB, 6>(s, vt, o, &inv, i0, c0, lp, d),
                5 => pv::<RB, 5>(s, vt, o, &inv, i0, c0, lp, d),
                4 => pv::<RB, 4>(s, vt, o, &inv, i0, c0, lp, d),
                3 => pv::<RB, 3>(s, vt, o, &inv, i0, c0, lp, d),
                2 => pv::<RB, 2>(s, vt, o, &inv, i0, c0, lp, d),
                _ => pv::<RB, 1>(s, vt, o, &inv, i0, c0, lp, d),
            }
            c0 += cg;
        }
    }

    /// Scores of RB query rows against key chunks `jc..jc+U` (16 keys each), stored into the
    /// score rows; the chunk holding key `l` (index `full`) is masked to −∞ past `l`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    fn scores<const RB: usize, const U: usize>(
        kt: &[f32],
        s: &mut [f32],
        qs: &[f32],
        mx: &mut [__m512; RB],
        jc: usize,
        lp: usize,
        d: usize,
        full: usize,
        tail_mask: __mmask16,
    ) {
        let mut acc = [[_mm512_setzero_ps(); U]; RB];
        for c in 0..d {
            let mut kv = [_mm512_setzero_ps(); U];
            for (u, kvu) in kv.iter_mut().enumerate() {
                // SAFETY: (jc+u)·16 + 16 ≤ lp and c < d: inside kt `[d, lp]`.
                *kvu = unsafe { _mm512_loadu_ps(kt.as_ptr().add(c * lp + (jc + u) * 16)) };
            }
            for r in 0..RB {
                let qb = _mm512_set1_ps(qs[r * d + c]);
                for u in 0..U {
                    acc[r][u] = _mm512_fmadd_ps(qb, kv[u], acc[r][u]);
                }
            }
        }
        let neg_inf = _mm512_set1_ps(f32::NEG_INFINITY);
        for r in 0..RB {
            for u in 0..U {
                let mut a = acc[r][u];
                if jc + u == full {
                    a = _mm512_mask_blend_ps(tail_mask, neg_inf, a);
                }
                mx[r] = _mm512_max_ps(mx[r], a);
                assert!(r * lp + (jc + u) * 16 + 16 <= s.len());
                // SAFETY: bounds asserted just above.
                unsafe { _mm512_storeu_ps(s.as_mut_ptr().add(r * lp + (jc + u) * 16), a) };
            }
        }
    }

    /// Output columns `c0..c0+CGN` of RB rows: `o = (P · V) / Σ P`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    fn pv<const RB: usize, const CGN: usize>(
        s: &[f32],
        vt: &[f32],
        o: &mut [f32],
        inv: &[f32; RB],
        i0: usize,
        c0: usize,
        lp: usize,
        d: usize,
    ) {
        assert!(RB * lp <= s.len() && (c0 + CGN) * lp <= vt.len());
        let mut acc = [[_mm512_setzero_ps(); CGN]; RB];
        for jc in 0..lp / 16 {
            let mut p = [_mm512_setzero_ps(); RB];
            for (r, pr) in p.iter_mut().enumerate() {
                // SAFETY: r < RB and jc·16 + 16 ≤ lp: inside s (asserted above).
                *pr = unsafe { _mm512_loadu_ps(s.as_ptr().add(r * lp + jc * 16)) };
            }
            for cc in 0..CGN {
                // SAFETY: c0 + cc < c0 + CGN: inside vt (asserted above).
                let vv = unsafe { _mm512_loadu_ps(vt.as_ptr().add((c0 + cc) * lp + jc * 16)) };
                for r in 0..RB {
                    acc[r][cc] = _mm512_fmadd_ps(p[r], vv, acc[r][cc]);
                }
            }
        }
        for r in 0..RB {
            for cc in 0..CGN {
                o[(i0 + r) * d + c0 + cc] = _mm512_reduce_add_ps(acc[r][cc]) * inv[r];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct (double precision) softmax attention of one head.
    fn direct(q: &[f32], k: &[f32], v: &[f32], l: usize, d: usize) -> Vec<f64> {
        let mut out = vec![0f64; l * d];
        for i in 0..l {
            let s: Vec<f64> = (0..l)
                .map(|j| {
                    (0..d)
                        .map(|c| q[i * d + c] as f64 * k[j * d + c] as f64)
                        .sum::<f64>()
                        / (d as f64).sqrt()
                })
                .collect();
            let m = s.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
            for c in 0..d {
                out[i * d + c] = (0..l)
                    .map(|j| (s[j] - m).exp() / z * v[j * d + c] as f64)
                    .sum();
            }
        }
        out
    }

    #[test]
    fn backward_matches_finite_differences() {
        for (l, d) in [(1, 4), (5, 6), (19, 8), (33, 12)] {
            let n = l * d;
            let noise = |s: u32| {
                (0..n)
                    .map(|i| {
                        (((i as u32).wrapping_mul(2654435761).wrapping_add(s)) >> 16) as f32
                            / 32768.0
                            - 1.0
                    })
                    .collect::<Vec<f32>>()
            };
            let (q, k, v, g) = (noise(11), noise(12), noise(13), noise(14));
            let mut o = vec![0.0; n];
            let mut hs = HeadScratch::default();
            attention_head(&q, &k, &v, &mut o, l, d, &mut hs);
            let (mut dq, mut dk, mut dv) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            attention_head_backward(
                (&q, &k, &v),
                &o,
                &hs.lse,
                &g,
                (&mut dq, &mut dk, &mut dv),
                l,
                d,
                &mut BackScratch::default(),
            );
            // Loss Σ g·o; central differences in f64.
            let loss = |q: &[f32], k: &[f32], v: &[f32]| -> f64 {
                direct(q, k, v, l, d)
                    .iter()
                    .zip(&g)
                    .map(|(a, b)| a * *b as f64)
                    .sum()
            };
            let eps = 1e-2f32;
            for (which, grad) in [(0, &dq), (1, &dk), (2, &dv)] {
                for idx in (0..n).step_by(n.div_ceil(7)) {
                    let mut inputs = [q.clone(), k.clone(), v.clone()];
                    inputs[which][idx] += eps;
                    let up = loss(&inputs[0], &inputs[1], &inputs[2]);
                    inputs[which][idx] -= 2.0 * eps;
                    let down = loss(&inputs[0], &inputs[1], &inputs[2]);
                    let fd = (up - down) / (2.0 * eps as f64);
                    assert!(
                        (fd - grad[idx] as f64).abs() < 2e-3 * fd.abs().max(1.0),
                        "l {l} d {d} input {which} [{idx}]: {} vs {fd}",
                        grad[idx]
                    );
                }
            }
            // The saved log-sum-exp is that of the scaled scores.
            for i in 0..l {
                let z: f64 = (0..l)
                    .map(|j| {
                        ((0..d)
                            .map(|c| q[i * d + c] as f64 * k[j * d + c] as f64)
                            .sum::<f64>()
                            / (d as f64).sqrt())
                        .exp()
                    })
                    .sum();
                assert!((hs.lse[i] as f64 - z.ln()).abs() < 1e-4, "lse row {i}");
            }
        }
    }

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
        for (bh, l, d) in [
            (1, 1, 8),
            (3, 7, 12),
            (2, 65, 16),
            (2, 130, 6),
            (1, 16, 12),
            (1, 17, 32),
            (2, 64, 64),
            (1, 70, 13),
        ] {
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
