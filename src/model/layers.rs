//! The building blocks of a TF-Locoformer path, each mirroring one class of the reference
//! (`espnet2/enh/separator/tflocoformer_separator.py`, MERL tf-locoformer 1.0.1).
//!
//! Weights are stored in PyTorch's layouts (conv `[out, in, k]`, transposed conv
//! `[in, out, k]`) except linear weights, which are stored `[in, out]` as burn's `linear`
//! expects; `loader.rs` is the only place that knows the key names and transposes.
//!
//! Inside a path every tensor is channel-last `[N, L, C]`: N independent sequences (B·T frames
//! on the frequency path, B·F bins on the time path) of length L.

use burn::module::{Module, Param};
use burn::nn::Dropout;
use burn::tensor::activation::silu;
use burn::tensor::module::linear;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Device, Tensor, TensorData};

use super::conv::{conv_transpose1d_nobias, conv1d_nobias};
use super::reduce::expand_to;
use crate::kernels::attention::{attention, attention_reference_chunked};

/// Which normalisation a [`Norm`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    /// RMS group normalisation: each group of `C/groups` channels is divided by its RMS
    /// (`x / (sqrt(mean x²) + eps)`, eps **outside** the root, as the reference), then scaled by
    /// `gamma`. original: `RMSGroupNorm`.
    RmsGroup {
        /// Channel groups.
        groups: usize,
    },
    /// `nn.LayerNorm(C)`: `(x − mean) / sqrt(var + eps) · gamma + beta` over the channels
    /// (biased variance, eps **inside** the root).
    Layer,
}

/// The pre-norm of a path's sub-layers, over the channel axis at each position.
/// original: `RMSGroupNorm` / `nn.LayerNorm`.
#[derive(Module, Debug)]
pub struct Norm {
    /// Per-channel scale `[C]`.
    pub gamma: Param<Tensor<1>>,
    /// Per-channel bias `[C]` (LayerNorm only).
    pub beta: Option<Param<Tensor<1>>>,
    #[module(skip)]
    kind: NormKind,
    #[module(skip)]
    eps: f64,
}

impl Norm {
    /// An RMSGroupNorm from its `gamma` `[C]`.
    pub fn rms_group(gamma: Param<Tensor<1>>, groups: usize, eps: f64) -> Self {
        Self {
            gamma,
            beta: None,
            kind: NormKind::RmsGroup { groups },
            eps,
        }
    }

    /// A LayerNorm from its `weight` and `bias` `[C]`.
    pub fn layer(gamma: Param<Tensor<1>>, beta: Param<Tensor<1>>, eps: f64) -> Self {
        Self {
            gamma,
            beta: Some(beta),
            kind: NormKind::Layer,
            eps,
        }
    }

    /// `(kind, eps)`.
    pub fn params(&self) -> (NormKind, f64) {
        (self.kind, self.eps)
    }

    /// Normalises the channels at each position.
    ///
    /// # Shapes
    /// - x: `[N, L, C]`
    /// - output: `[N, L, C]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [n, l, c] = x.dims();
        let y = match self.kind {
            NormKind::RmsGroup { groups } => {
                let xg = x.reshape([n, l, groups, c / groups]);
                let rms = xg.clone().square().mean_dim(3).sqrt();
                (xg / rms.add_scalar(self.eps)).reshape([n, l, c])
            }
            NormKind::Layer => {
                let mean = x.clone().mean_dim(2);
                let centred = x - mean;
                let var = centred.clone().square().mean_dim(2);
                centred / var.add_scalar(self.eps).sqrt()
            }
        };
        // Gain and bias through explicit expands: exact gradients on wgpu (see `reduce`).
        let y = y * expand_to(self.gamma.val().reshape([1, 1, c]), [n, l, c]);
        match &self.beta {
            Some(beta) => y + expand_to(beta.val().reshape([1, 1, c]), [n, l, c]),
            None => y,
        }
    }
}

/// Convolutional SwiGLU feed-forward network over the sequence axis: pad, Conv1d C→2H,
/// value·SiLU(gate), ConvTranspose1d H→C, crop to the input length.
/// original: `SwiGLUConvDeconv1d`.
#[derive(Module, Debug)]
pub struct ConvSwiGlu {
    /// Conv1d weight `[2H, C, K]` (first H output channels: value, last H: gate).
    pub conv_w: Param<Tensor<3>>,
    /// Conv1d bias `[2H]`.
    pub conv_b: Param<Tensor<1>>,
    /// ConvTranspose1d weight `[H, C, K]`.
    pub deconv_w: Param<Tensor<3>>,
    /// ConvTranspose1d bias `[C]`.
    pub deconv_b: Param<Tensor<1>>,
    /// Dropout after the gate and after the transposed conv (training only).
    pub dropout: Dropout,
    #[module(skip)]
    hidden: usize,
    #[module(skip)]
    kernel: usize,
    #[module(skip)]
    shift: usize,
}

impl ConvSwiGlu {
    /// Builds the FFN from its four tensors (PyTorch layouts).
    pub fn new(
        conv_w: Param<Tensor<3>>,
        conv_b: Param<Tensor<1>>,
        deconv_w: Param<Tensor<3>>,
        deconv_b: Param<Tensor<1>>,
        shift: usize,
        dropout: f64,
    ) -> Self {
        let [h2, _c, k] = conv_w.val().dims();
        Self {
            conv_w,
            conv_b,
            deconv_w,
            deconv_b,
            dropout: burn::nn::DropoutConfig::new(dropout).init(),
            hidden: h2 / 2,
            kernel: k,
            shift,
        }
    }

    /// `(hidden, kernel, shift)`.
    pub fn params(&self) -> (usize, usize, usize) {
        (self.hidden, self.kernel, self.shift)
    }

    /// Applies the FFN along L.
    ///
    /// # Shapes
    /// - x: `[N, L, C]`
    /// - output: `[N, L, C]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [_n, l, _c] = x.dims();
        let (k, s) = (self.kernel, self.shift);
        let diff = k - s;
        // Reference padding: the padded length is the smallest `m·s + K` ≥ L + 2·diff.
        let seq_len = (l + 2 * diff - k).div_ceil(s) * s + k;
        let opts = ConvOptions {
            stride: [s],
            padding: [(diff, seq_len - l - diff)],
            dilation: [1],
            groups: 1,
        };
        // Biases through explicit expands: exact gradients on wgpu (see `reduce`).
        let y = conv1d_nobias(x.swap_dims(1, 2), self.conv_w.val(), opts); // [N, 2H, L']
        let [n, h2, lp] = y.dims();
        let y = y + expand_to(self.conv_b.val().reshape([1, h2, 1]), [n, h2, lp]);
        let value = y.clone().narrow(1, 0, self.hidden);
        let gate = y.narrow(1, self.hidden, self.hidden);
        let h = self.dropout.forward(value * silu(gate));
        let z = conv_transpose1d_nobias(
            h,
            self.deconv_w.val(),
            ConvTransposeOptions::new([s], [0], [0], [1], 1),
        ); // [N, C, (L'-1)·s + K]
        let [n, c, lz] = z.dims();
        let z = z + expand_to(self.deconv_b.val().reshape([1, c, 1]), [n, c, lz]);
        self.dropout.forward(z.narrow(2, diff, l).swap_dims(1, 2))
    }
}

/// Interleaved rotary position embedding (`rotary-embedding-torch` 0.6.1,
/// `rotate_queries_or_keys`): dimension pairs (2j, 2j+1) are rotated by `pos·freqs[j]`,
/// positions 0..L−1 restarting for every sequence.
#[derive(Module, Debug)]
pub struct Rope {
    /// Inverse frequencies `10000^(-2j/d)` `[d/2]` (kept for export; not trained).
    #[module(skip)]
    freqs: Vec<f32>,
}

impl Rope {
    /// RoPE for head dimension `d`.
    pub fn new(head_dim: usize) -> Self {
        let freqs = (0..head_dim / 2)
            .map(|j| 1.0 / 10000f64.powf((2 * j) as f64 / head_dim as f64) as f32)
            .collect();
        Self { freqs }
    }

    /// The inverse frequencies `[d/2]`, as the reference's `rope.freqs` buffer.
    pub fn freqs(&self) -> &[f32] {
        &self.freqs
    }

    /// Rotates queries or keys.
    ///
    /// # Shapes
    /// - x: `[N, heads, L, d]`
    /// - output: `[N, heads, L, d]`
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [_n, _h, l, d] = x.dims();
        let device = x.device();
        let mut cos = Vec::with_capacity(l * d);
        let mut sin = Vec::with_capacity(l * d);
        for pos in 0..l {
            for j in 0..d {
                // The reference computes angles in fp32: `pos * freq` then cos/sin.
                let angle = pos as f32 * self.freqs[j / 2];
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let cos =
            Tensor::<2>::from_data(TensorData::new(cos, [l, d]), &device).reshape([1, 1, l, d]);
        let sin =
            Tensor::<2>::from_data(TensorData::new(sin, [l, d]), &device).reshape([1, 1, l, d]);
        // rotate_half as a signed permutation: out[2j] = -x[2j+1], out[2j+1] = x[2j].
        let mut rot = vec![0f32; d * d];
        for j in 0..d / 2 {
            rot[(2 * j + 1) * d + 2 * j] = -1.0;
            rot[(2 * j) * d + 2 * j + 1] = 1.0;
        }
        let rot =
            Tensor::<2>::from_data(TensorData::new(rot, [d, d]), &device).reshape([1, 1, d, d]);
        let rotated = x.clone().matmul(rot);
        x * cos + rotated * sin
    }
}

/// Multi-head self-attention with RoPE: qkv projection (no bias), RoPE on q and k,
/// softmax(QKᵀ/√d)·V, head merge, output projection (no bias).
/// original: `MultiHeadSelfAttention`.
#[derive(Module, Debug)]
pub struct Mhsa {
    /// qkv weight `[C, 3A]` (burn layout; PyTorch stores `[3A, C]`), output columns laid out
    /// (q/k/v, head, d).
    pub qkv: Param<Tensor<2>>,
    /// Output projection `[A, C]` (burn layout; PyTorch `[C, A]`), heads concatenated
    /// head-major.
    pub out: Param<Tensor<2>>,
    /// Rotary embedding (None for `pos_enc = nope`).
    pub rope: Option<Rope>,
    /// Dropout after the output projection (training only).
    pub dropout: Dropout,
    #[module(skip)]
    heads: usize,
}

impl Mhsa {
    /// Builds the attention from burn-layout weights.
    pub fn new(
        qkv: Param<Tensor<2>>,
        out: Param<Tensor<2>>,
        heads: usize,
        rope: bool,
        dropout: f64,
    ) -> Self {
        let a = out.val().dims()[0];
        Self {
            qkv,
            out,
            rope: rope.then(|| Rope::new(a / heads)),
            dropout: burn::nn::DropoutConfig::new(dropout).init(),
            heads,
        }
    }

    /// Number of heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// Attention over L for each of the N sequences.
    ///
    /// `max_score_bytes` bounds a materialised score tensor on backends without the fused
    /// kernel (see [`crate::kernels::attention::attention`]).
    ///
    /// # Shapes
    /// - x: `[N, L, C]`
    /// - output: `[N, L, C]`
    pub fn forward(&self, x: Tensor<3>, max_score_bytes: Option<usize>) -> Tensor<3> {
        self.forward_with(x, max_score_bytes, false)
    }

    /// [`forward`](Self::forward) with attention in plain tensor ops (materialised scores,
    /// sub-batched under `max_score_bytes`) on every backend: the reference the kernels are
    /// tested against.
    ///
    /// # Shapes
    /// - x: `[N, L, C]`
    /// - output: `[N, L, C]`
    pub fn forward_reference(&self, x: Tensor<3>, max_score_bytes: Option<usize>) -> Tensor<3> {
        self.forward_with(x, max_score_bytes, true)
    }

    fn forward_with(
        &self,
        x: Tensor<3>,
        max_score_bytes: Option<usize>,
        reference: bool,
    ) -> Tensor<3> {
        let [n, l, _c] = x.dims();
        let a = self.out.dims()[0];
        let (h, d) = (self.heads, a / self.heads);
        let qkv = linear(x, self.qkv.val(), None).reshape([n, l, 3, h, d]);
        let pick = |i: usize| {
            qkv.clone()
                .narrow(2, i, 1)
                .reshape([n, l, h, d])
                .swap_dims(1, 2)
        };
        let (mut q, mut k, v) = (pick(0), pick(1), pick(2));
        if let Some(rope) = &self.rope {
            q = rope.apply(q);
            k = rope.apply(k);
        }
        let o = if reference {
            attention_reference_chunked(q, k, v, max_score_bytes)
        } else {
            attention(q, k, v, max_score_bytes)
        }; // [N, h, L, d]
        let o = o.swap_dims(1, 2).reshape([n, l, a]);
        self.dropout.forward(linear(o, self.out.val(), None))
    }
}

/// A parameter whose id is derived from its reference name, so optimizer state saved by one
/// run maps onto the same parameters when training resumes.
pub(crate) fn named_param<const D: usize>(key: &str, value: Tensor<D>) -> Param<Tensor<D>> {
    // FNV-1a 64.
    let id = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    let mut p = Param::from_tensor(value);
    p.id = burn::module::ParamId::from(id);
    p
}

/// Creates a float tensor from row-major data.
pub(crate) fn tensor_from<const D: usize>(
    data: &[f32],
    shape: [usize; D],
    device: &Device,
) -> Tensor<D> {
    Tensor::from_data(TensorData::new(data.to_vec(), shape), device)
}
