//! The dual-path blocks on the host, for CPU inference (burn's `flex` device without
//! autodiff): the same maths as the burn-ops `LocoPath` of `network.rs`, but each sequence of a path runs
//! start to finish in one thread on buffers that stay in cache (norm → FFN → attention → FFN),
//! with the matrix products on the `gemm` crate and attention on
//! [`crate::kernels::attention::cpu::attention_head`]. No tensor larger than the activation
//! `[B, T, F, C]` itself is ever allocated, and no permute is needed for the time path: its
//! sequences are gathered with a stride.
//!
//! The weights are copied to the host and transposed once, when a [`HostNetwork`] is built
//! (`TfLocoformer::host_network`); a forward with `AttentionImpl::Host` then only copies the
//! activation in and out. This file knows the layers (`layers.rs`) and the path axes
//! (`path.rs`), not the network: `network.rs` assembles the host blocks and runs them.
//!
//! Training (autodiff) and wgpu use the burn-ops path; both agree to fp32 rounding (tested in
//! `network.rs` and by the golden tests, which run this path on flex).

use burn::tensor::Tensor;
use rayon::prelude::*;

use super::layers::{ConvSwiGlu, Mhsa, Norm, NormKind};
use super::path::PathAxis;
use crate::kernels::attention::cpu::{HeadScratch, Simd, attention_head, exp_neg, simd};

/// Output rows of the FFN processed per step (bounds the hidden buffers to
/// `(ROWS + K − 1) · 2H` floats so they stay in the L2 cache).
const ROWS: usize = 128;

/// Columns per `gemm` call: the `gemm` crate runs narrow right-hand sides much faster than
/// wide ones on AVX-512 (118 vs 55 GFLOP/s for the FFN's 192×384 at 48 vs 384 columns,
/// `examples/gemmbench.rs`).
const GEMM_COLS: usize = 48;

/// A weight's values on the host, row-major.
fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data")
}

/// `dst[m, n] (+)= a[m, k] · b[k, n]`, row-major with explicit row strides, in column blocks of
/// [`GEMM_COLS`], single-threaded (callers parallelise over sequences).
///
/// `a` may have a row stride smaller than `k` (overlapping rows: the im2col of a
/// channel-last sequence without copying it).
#[allow(clippy::too_many_arguments)]
fn matmul(
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    a: &[f32],
    a_rs: usize,
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
) {
    if m == 0 {
        return;
    }
    assert!(dst.len() >= (m - 1) * dst_rs + n && n <= dst_rs);
    assert!(a.len() >= (m - 1) * a_rs + k && b.len() >= k * n);
    let mut j = 0;
    while j < n {
        let nb = GEMM_COLS.min(n - j);
        // SAFETY: every index touched is inside the slices (asserted above): dst rows
        // 0..m at stride dst_rs, columns j..j+nb ≤ n ≤ dst_rs; a rows at stride a_rs with k
        // columns; b is [k, n].
        unsafe {
            gemm::gemm(
                m,
                nb,
                k,
                dst.as_mut_ptr().add(j),
                1,
                dst_rs as isize,
                accumulate,
                a.as_ptr(),
                1,
                a_rs as isize,
                b.as_ptr().add(j),
                1,
                n as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        j += nb;
    }
}

/// The logistic function `1 / (1 + e^{−x})`, branch-free so that loops over it vectorise.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    // e^{−|x|} ∈ (0, 1]; σ(x) = 1/(1+e^{−x}) for x ≥ 0, e^{x}/(1+e^{x}) otherwise.
    let e = exp_neg(-x.abs());
    let s = 1.0 / (1.0 + e);
    if x >= 0.0 { s } else { e * s }
}

struct HostNorm {
    gamma: Vec<f32>,
    /// LayerNorm's bias (None: RMSGroupNorm).
    beta: Option<Vec<f32>>,
    /// RMSGroupNorm groups (unused for LayerNorm).
    groups: usize,
    eps: f32,
}

impl HostNorm {
    fn new(n: &Norm) -> Self {
        let (kind, eps) = n.params();
        Self {
            gamma: host(n.gamma.val()),
            beta: n.beta.as_ref().map(|b| host(b.val())),
            groups: match kind {
                NormKind::RmsGroup { groups } => groups,
                NormKind::Layer => 1,
            },
            eps: eps as f32,
        }
    }

    /// `out[i] = norm(x[i])` for each row of `c` channels.
    #[inline(always)]
    fn apply(&self, x: &[f32], out: &mut [f32]) {
        let c = self.gamma.len();
        if let Some(beta) = &self.beta {
            // LayerNorm: biased variance, eps inside the root.
            for (xr, orow) in x.chunks_exact(c).zip(out.chunks_exact_mut(c)) {
                let mean = xr.iter().sum::<f32>() / c as f32;
                let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / c as f32;
                let inv = 1.0 / (var + self.eps).sqrt();
                for (((o, v), w), b) in orow.iter_mut().zip(xr).zip(&self.gamma).zip(beta) {
                    *o = (v - mean) * inv * w + b;
                }
            }
            return;
        }
        let g = c / self.groups;
        for (xr, orow) in x.chunks_exact(c).zip(out.chunks_exact_mut(c)) {
            for ((xg, og), gg) in xr
                .chunks_exact(g)
                .zip(orow.chunks_exact_mut(g))
                .zip(self.gamma.chunks_exact(g))
            {
                let ms = xg.iter().map(|v| v * v).sum::<f32>() / g as f32;
                let inv = 1.0 / (ms.sqrt() + self.eps);
                for ((o, v), w) in og.iter_mut().zip(xg).zip(gg) {
                    *o = v * inv * w;
                }
            }
        }
    }
}

struct HostFfn {
    /// Conv weight as `[K·C, 2H]`: row `t·C + c`, column `o` = `conv_w[o, c, t]`.
    w1: Vec<f32>,
    b1: Vec<f32>,
    /// Transposed-conv weight as a correlation `[K·H, C]`: row `t·H + h`, column `c` =
    /// `deconv_w[h, c, K−1−t]`.
    w2: Vec<f32>,
    b2: Vec<f32>,
    c: usize,
    h: usize,
    k: usize,
}

impl HostFfn {
    /// None when the layer's stride is not 1 (the host path supports the presets' shift 1).
    fn new(f: &ConvSwiGlu) -> Option<Self> {
        let (hidden, k, shift) = f.params();
        if shift != 1 {
            return None;
        }
        let [h2, c, _] = f.conv_w.val().dims();
        let cw = host(f.conv_w.val());
        let dw = host(f.deconv_w.val());
        let mut w1 = vec![0f32; k * c * h2];
        for o in 0..h2 {
            for ci in 0..c {
                for t in 0..k {
                    w1[(t * c + ci) * h2 + o] = cw[(o * c + ci) * k + t];
                }
            }
        }
        let mut w2 = vec![0f32; k * hidden * c];
        for hi in 0..hidden {
            for ci in 0..c {
                for t in 0..k {
                    w2[(t * hidden + hi) * c + ci] = dw[(hi * c + ci) * k + (k - 1 - t)];
                }
            }
        }
        Some(Self {
            w1,
            b1: host(f.conv_b.val()),
            w2,
            b2: host(f.deconv_b.val()),
            c,
            h: hidden,
            k,
        })
    }

    /// `x += FFN(y)` for one sequence, where `ypad` holds `y` `[L, C]` with `K − 1` zero rows
    /// before and after.
    ///
    /// With shift 1 the reference's conv output has `L + K − 1` positions `p` reading padded rows
    /// `p..p+K`, and the cropped transposed conv gives output row `i` from hidden rows
    /// `i..i+K` — so both are plain products over overlapping row windows.
    #[inline(always)]
    fn apply(&self, ypad: &[f32], x: &mut [f32], l: usize, hid: &mut Vec<f32>, g: &mut Vec<f32>) {
        let (c, h, k) = (self.c, self.h, self.k);
        let mut i0 = 0;
        while i0 < l {
            let tm = ROWS.min(l - i0);
            let rows = tm + k - 1;
            hid.resize(rows * 2 * h, 0.0);
            g.resize(rows * h, 0.0);
            for row in hid.chunks_exact_mut(2 * h) {
                row.copy_from_slice(&self.b1);
            }
            matmul(
                hid,
                2 * h,
                true,
                &ypad[i0 * c..],
                c,
                &self.w1,
                rows,
                k * c,
                2 * h,
            );
            for (gr, hr) in g.chunks_exact_mut(h).zip(hid.chunks_exact(2 * h)) {
                let (value, gate) = hr.split_at(h);
                for ((o, v), s) in gr.iter_mut().zip(value).zip(gate) {
                    *o = v * s * sigmoid(*s);
                }
            }
            let out = &mut x[i0 * c..(i0 + tm) * c];
            for row in out.chunks_exact_mut(c) {
                row.iter_mut().zip(&self.b2).for_each(|(o, b)| *o += b);
            }
            matmul(out, c, true, g, h, &self.w2, tm, k * h, c);
            i0 += tm;
        }
    }
}

struct HostAttn {
    /// `[C, 3A]`, columns (q/k/v, head, d).
    wqkv: Vec<f32>,
    /// `[A, C]`.
    wout: Vec<f32>,
    heads: usize,
    d: usize,
    freqs: Option<Vec<f32>>,
}

impl HostAttn {
    fn new(m: &Mhsa) -> Option<Self> {
        let [a, _c] = m.out.val().dims();
        let heads = m.heads();
        let d = a / heads;
        Some(Self {
            wqkv: host(m.qkv.val()),
            wout: host(m.out.val()),
            heads,
            d,
            freqs: m.rope.as_ref().map(|r| r.freqs().to_vec()),
        })
    }

    /// `(cos, sin)` of the interleaved RoPE for positions `0..l`, `[l, d/2]` each.
    fn rope_table(&self, l: usize) -> Option<(Vec<f32>, Vec<f32>)> {
        let freqs = self.freqs.as_ref()?;
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        for pos in 0..l {
            for f in freqs {
                // Same fp32 angle as the reference and `Rope::apply`.
                let angle = pos as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Some((cos, sin))
    }
}

/// Per-thread buffers of one sequence.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    ypad: Vec<f32>,
    hid: Vec<f32>,
    g: Vec<f32>,
    qkv: Vec<f32>,
    heads: [Vec<f32>; 4],
    o: Vec<f32>,
    attn: HeadScratch,
}

/// One path on the host.
pub(crate) struct HostPath {
    ffn_pre: Option<(HostNorm, HostFfn)>,
    attn_norm: HostNorm,
    attn: HostAttn,
    post_norm: HostNorm,
    ffn_post: HostFfn,
}

impl HostPath {
    /// The host form of a path's layers (weights copied and transposed here, once): the
    /// optional macaron FFN with its norm, attention with its norm, the FFN after attention
    /// with its norm. None when some layer is outside what the host path implements.
    pub(crate) fn new(
        ffn_pre: Option<(&Norm, &ConvSwiGlu)>,
        attn_norm: &Norm,
        attn: &Mhsa,
        ffn_post_norm: &Norm,
        ffn_post: &ConvSwiGlu,
    ) -> Option<Self> {
        let ffn_pre = match ffn_pre {
            Some((n, f)) => Some((HostNorm::new(n), HostFfn::new(f)?)),
            None => None,
        };
        Some(Self {
            ffn_pre,
            attn_norm: HostNorm::new(attn_norm),
            attn: HostAttn::new(attn)?,
            post_norm: HostNorm::new(ffn_post_norm),
            ffn_post: HostFfn::new(ffn_post)?,
        })
    }

    #[inline(always)]
    fn ffn(&self, norm: &HostNorm, ffn: &HostFfn, l: usize, s: &mut Scratch) {
        let (c, k) = (ffn.c, ffn.k);
        s.ypad.clear();
        s.ypad.resize((l + 2 * (k - 1)) * c, 0.0);
        norm.apply(&s.x, &mut s.ypad[(k - 1) * c..(k - 1 + l) * c]);
        ffn.apply(&s.ypad, &mut s.x, l, &mut s.hid, &mut s.g);
    }

    #[inline(always)]
    fn attention(&self, l: usize, rope: Option<&(Vec<f32>, Vec<f32>)>, s: &mut Scratch) {
        let at = &self.attn;
        let c = self.attn_norm.gamma.len();
        let (hn, d) = (at.heads, at.d);
        let a = hn * d;
        s.ypad.resize(l * c, 0.0);
        self.attn_norm.apply(&s.x, &mut s.ypad[..l * c]);
        s.qkv.resize(l * 3 * a, 0.0);
        matmul(&mut s.qkv, 3 * a, false, &s.ypad, c, &at.wqkv, l, c, 3 * a);
        s.o.resize(l * a, 0.0);
        let [qh, kh, vh, oh] = &mut s.heads;
        for buf in [&mut *qh, &mut *kh, &mut *vh, &mut *oh] {
            buf.resize(l * d, 0.0);
        }
        for head in 0..hn {
            for (which, buf) in [&mut *qh, &mut *kh, &mut *vh].into_iter().enumerate() {
                let col = which * a + head * d;
                for (pos, dst) in buf.chunks_exact_mut(d).enumerate() {
                    let src = &s.qkv[pos * 3 * a + col..pos * 3 * a + col + d];
                    match (rope, which) {
                        (Some((cos, sin)), 0 | 1) => {
                            let half = d / 2;
                            let (cr, sr) = (&cos[pos * half..], &sin[pos * half..]);
                            for j in 0..half {
                                let (x0, x1) = (src[2 * j], src[2 * j + 1]);
                                dst[2 * j] = x0 * cr[j] - x1 * sr[j];
                                dst[2 * j + 1] = x1 * cr[j] + x0 * sr[j];
                            }
                            if d % 2 == 1 {
                                dst[d - 1] = src[d - 1];
                            }
                        }
                        _ => dst.copy_from_slice(src),
                    }
                }
            }
            attention_head(qh, kh, vh, oh, l, d, &mut s.attn);
            for (pos, src) in oh.chunks_exact(d).enumerate() {
                s.o[pos * a + head * d..pos * a + head * d + d].copy_from_slice(src);
            }
        }
        matmul(&mut s.x, c, true, &s.o, a, &at.wout, l, a, c);
    }

    /// Runs the path on `n` sequences of `l` rows of `c` channels inside `x`: sequence `i`'s
    /// row `j` starts at `base(i) + j · row_stride`.
    ///
    /// Invariant (checked by the callers' construction): distinct `(i, j)` address disjoint
    /// rows, all inside `x`.
    fn run(
        &self,
        x: &mut [f32],
        n: usize,
        l: usize,
        row_stride: usize,
        base: impl Fn(usize) -> usize + Sync,
    ) {
        let c = self.attn_norm.gamma.len();
        assert!(n == 0 || base(n - 1) + (l - 1) * row_stride + c <= x.len());
        let rope = self.attn.rope_table(l);
        let ptr = SendPtr(x.as_mut_ptr());
        let x_ptr = &ptr;
        (0..n)
            .into_par_iter()
            .for_each_init(Scratch::default, |s, i| {
                let rope = rope.as_ref();
                match simd() {
                    // SAFETY: `simd()` reports AVX-512F only when the CPU has it.
                    #[cfg(target_arch = "x86_64")]
                    Simd::Avx512 => unsafe {
                        self.sequence_avx512(x_ptr, s, i, l, row_stride, &base, rope)
                    },
                    // SAFETY: `simd()` reports AVX2 + FMA only when the CPU has them.
                    #[cfg(target_arch = "x86_64")]
                    Simd::Avx2Fma => unsafe {
                        self.sequence_avx2(x_ptr, s, i, l, row_stride, &base, rope)
                    },
                    _ => self.sequence(x_ptr, s, i, l, row_stride, &base, rope),
                }
            });
    }

    /// [`Self::sequence`] compiled for AVX-512 (norms, gate and RoPE vectorise 16 wide).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn sequence_avx512(
        &self,
        p: &SendPtr,
        s: &mut Scratch,
        i: usize,
        l: usize,
        row_stride: usize,
        base: &impl Fn(usize) -> usize,
        rope: Option<&(Vec<f32>, Vec<f32>)>,
    ) {
        self.sequence(p, s, i, l, row_stride, base, rope)
    }

    /// [`Self::sequence`] compiled for AVX2 + FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn sequence_avx2(
        &self,
        p: &SendPtr,
        s: &mut Scratch,
        i: usize,
        l: usize,
        row_stride: usize,
        base: &impl Fn(usize) -> usize,
        rope: Option<&(Vec<f32>, Vec<f32>)>,
    ) {
        self.sequence(p, s, i, l, row_stride, base, rope)
    }

    /// The whole path for sequence `i`: gather its rows, run, scatter them back.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn sequence(
        &self,
        p: &SendPtr,
        s: &mut Scratch,
        i: usize,
        l: usize,
        row_stride: usize,
        base: &impl Fn(usize) -> usize,
        rope: Option<&(Vec<f32>, Vec<f32>)>,
    ) {
        let c = self.attn_norm.gamma.len();
        s.x.resize(l * c, 0.0);
        for j in 0..l {
            // SAFETY: row (i, j) is inside x (asserted above) and no other sequence
            // touches it (invariant of the caller's layout).
            let row = unsafe { std::slice::from_raw_parts(p.0.add(base(i) + j * row_stride), c) };
            s.x[j * c..(j + 1) * c].copy_from_slice(row);
        }
        if let Some((norm, ffn)) = &self.ffn_pre {
            self.ffn(norm, ffn, l, s);
        }
        self.attention(l, rope, s);
        self.ffn(&self.post_norm, &self.ffn_post, l, s);
        for j in 0..l {
            // SAFETY: as above; this thread is the only one writing row (i, j).
            let row =
                unsafe { std::slice::from_raw_parts_mut(p.0.add(base(i) + j * row_stride), c) };
            row.copy_from_slice(&s.x[j * c..(j + 1) * c]);
        }
    }
}

struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint rows of one buffer to rayon tasks (see `HostPath::run`).
unsafe impl Sync for SendPtr {}
unsafe impl Send for SendPtr {}

/// One block on the host: its two paths (the order is the caller's, see [`PathAxis::in_order`]).
pub(crate) struct HostBlock {
    freq: HostPath,
    time: HostPath,
}

impl HostBlock {
    /// A block of a frequency path and a time path.
    pub(crate) fn new(freq: HostPath, time: HostPath) -> Self {
        Self { freq, time }
    }

    /// Runs the path along `axis` in place on the residual stream `x` of dimensions `dims`.
    ///
    /// Frequency path: sequence `(b, t)` is F contiguous rows. Time path: sequence `(b, f)` is
    /// T rows at stride F·C, gathered without a permute.
    ///
    /// # Shapes
    /// - x: `[B, T, F, C]` row-major, `dims` = `[B, T, F, C]`
    pub(crate) fn run(&self, axis: PathAxis, x: &mut [f32], dims: [usize; 4]) {
        let [b, t, f, c] = dims;
        assert_eq!(x.len(), b * t * f * c, "the stream has dimensions {dims:?}");
        match axis {
            PathAxis::Frequency => self.freq.run(x, b * t, f, c, |i| i * f * c),
            PathAxis::Time => self
                .time
                .run(x, b * f, t, f * c, |i| (i / f) * t * f * c + (i % f) * c),
        }
    }
}

/// The blocks of a network as host kernels, for CPU inference: built once from a network on
/// the CPU inference device (`TfLocoformer::host_network`), then handed to each forward as
/// `AttentionImpl::Host`. Holds copies of the block weights (about the size of the blocks'
/// parameters), already in the layouts the kernels read.
///
/// Invariant: it was built from the network it is used with (same blocks, same weights); a
/// network's weights do not change after loading in inference.
pub struct HostNetwork {
    blocks: Vec<HostBlock>,
}

impl HostNetwork {
    /// The network's blocks, in order.
    pub(crate) fn new(blocks: Vec<HostBlock>) -> Self {
        Self { blocks }
    }

    /// Number of blocks.
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Block `i`.
    pub(crate) fn block(&self, i: usize) -> &HostBlock {
        &self.blocks[i]
    }
}

impl std::fmt::Debug for HostNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostNetwork")
            .field("blocks", &self.blocks.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_matches_the_formula() {
        for i in -200..=200 {
            let x = i as f32 * 0.5;
            let want = 1.0 / (1.0 + (-x as f64).exp());
            assert!((sigmoid(x) as f64 - want).abs() < 1e-6, "{x}");
        }
    }
}
