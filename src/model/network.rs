//! The TF-Locoformer network: encoder, L dual-path blocks, decoder.
//! Mirrors `TFLocoformerSeparator` / `TFLocoformerMSS` (encoder `conv`, `blocks`, `deconv`).
//!
//! Between blocks the activation is kept channel-last `[B, T, F, C]`, so each path only needs
//! a reshape (frequency path) or one swap of T and F (time path); the reference's
//! `[B, C, T, F]` layout is produced only at the encoder/decoder and for golden taps.
//!
//! There is one forward ([`TfLocoformer::forward`]); [`ForwardOptions::attention`] picks how the
//! blocks run: in burn ops with the backend's attention kernel or the plain-ops reference, or —
//! CPU inference — as the host kernels of `host.rs`, from a [`HostNetwork`] the caller builds
//! once with [`TfLocoformer::host_network`] (the engine does so when it loads a model). The
//! blocks' paths always run in the order [`PathAxis::in_order`] gives.

use burn::backend::DispatchDevice;
use burn::module::{Module, Param};
use burn::tensor::{DType, Device, Tensor, TensorData};

use super::bandsplit::{BandDecoder, BandSplitEncoder};
use super::config::{ModelConfig, TfOrder};
use super::conv::{conv_transpose2d_same3, conv2d_same3};
pub use super::host::HostNetwork;
use super::host::{HostBlock, HostPath};
use super::layers::{ConvSwiGlu, Mhsa, Norm};
pub use super::path::PathAxis;
use super::reduce::{expand_to, normalize_rows};

/// Which implementation runs attention — and, for [`Host`](Self::Host), the whole blocks. All
/// three compute the same maths and agree to fp32 rounding (golden tests, and the comparisons
/// in `tests/golden.rs` and below).
#[derive(Debug, Clone, Copy, Default)]
pub enum AttentionImpl<'a> {
    /// The backend's attention kernel through
    /// [`AttentionBackend`](crate::kernels::attention::AttentionBackend): the WGSL kernel on
    /// wgpu, the host kernel of `kernels/attention/cpu.rs` on flex, with or without autodiff
    /// (differentiable). No score tensor exists. The rest of each block runs in burn ops. On a
    /// backend with neither kernel, the reference, sub-batched under `max_chunk_bytes`.
    Fused,
    /// The whole blocks as host kernels (`host.rs`: each sequence's path start to finish on one
    /// thread, in cache), from a [`HostNetwork`] built once by
    /// [`TfLocoformer::host_network`] for this network. CPU inference only (flex without
    /// autodiff, f32; not differentiable); the fastest there. Encoder and decoder run in burn
    /// ops. A lone path ([`LocoPath::forward`]) runs as [`Fused`](Self::Fused).
    Host(&'a HostNetwork),
    /// Plain burn tensor ops with materialised attention scores, sub-batched under
    /// `max_chunk_bytes`: runs and differentiates on every device; the reference the kernels
    /// are tested against.
    #[default]
    Reference,
}

impl<'a> AttentionImpl<'a> {
    /// The fastest implementation for a network whose [`TfLocoformer::host_network`] is
    /// `host`: the host blocks where there are some, else the backend's kernel.
    pub fn kernels(host: Option<&'a HostNetwork>) -> Self {
        host.map_or(AttentionImpl::Fused, AttentionImpl::Host)
    }

    /// Whether attention materialises a score tensor (`heads · L²` per sequence).
    fn materialises_scores(self) -> bool {
        matches!(self, AttentionImpl::Reference)
    }
}

/// Run-time options of a forward pass that do not change its result (beyond fp32 rounding).
///
/// The default is the plain-ops reference in one batch, which runs on every device; callers
/// that want speed pick [`AttentionImpl::kernels`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardOptions<'a> {
    /// Upper bound on the bytes of any one large intermediate of a path on the burn-ops path
    /// (attention scores under [`AttentionImpl::Reference`], FFN hidden activations): the N
    /// sequences of a path are processed in sub-batches sized so that each stays under it.
    /// `None`: one batch. The host blocks need no cap (no intermediate beyond a few rows per
    /// thread).
    pub max_chunk_bytes: Option<usize>,
    /// Which implementation runs attention (and, for the host kernels, the blocks).
    pub attention: AttentionImpl<'a>,
}

/// One path (frequency or time) of a block: macaron FFN, attention, FFN, each pre-normed with a
/// residual. original: `LocoformerBlock`.
#[derive(Module, Debug)]
pub struct LocoPath {
    /// FFN before attention and its norm (reference index 1); absent for non-macaron configs.
    pub ffn_pre: Option<(Norm, ConvSwiGlu)>,
    /// Norm before attention.
    pub attn_norm: Norm,
    /// Attention.
    pub attn: Mhsa,
    /// Norm of the FFN after attention (reference index 0).
    pub ffn_post_norm: Norm,
    /// FFN after attention (reference index 0).
    pub ffn_post: ConvSwiGlu,
    #[module(skip)]
    row_bytes: [usize; 2],
}

impl LocoPath {
    /// Assembles a path from its parts.
    pub fn new(
        ffn_pre: Option<(Norm, ConvSwiGlu)>,
        attn_norm: Norm,
        attn: Mhsa,
        ffn_post_norm: Norm,
        ffn_post: ConvSwiGlu,
        cfg: &ModelConfig,
    ) -> Self {
        // Bytes per sequence per element of L for the largest intermediates: FFN hidden
        // (2H channels) and, on non-fused backends, the attention scores (heads × L per row).
        let h = cfg.ffn_hidden_dim.iter().copied().max().unwrap_or(0);
        Self {
            ffn_pre,
            attn_norm,
            attn,
            ffn_post_norm,
            ffn_post,
            row_bytes: [4 * (2 * h + 3 * cfg.attention_dim), 4 * cfg.n_heads],
        }
    }

    /// Bytes of the largest intermediate for one sequence of length `l`.
    fn bytes_per_sequence(&self, l: usize, attention: AttentionImpl) -> usize {
        let ffn = self.row_bytes[0] * (l + 8);
        let scores = if attention.materialises_scores() {
            2 * self.row_bytes[1] * l * l
        } else {
            0
        };
        ffn.max(scores).max(1)
    }

    /// Applies the path to N independent sequences, in sub-batches when asked to.
    ///
    /// # Shapes
    /// - x: `[N, L, C]`
    /// - output: `[N, L, C]`
    pub fn forward(&self, x: Tensor<3>, opts: ForwardOptions) -> Tensor<3> {
        let [n, l, _] = x.dims();
        let rows = match opts.max_chunk_bytes {
            Some(cap) => (cap / self.bytes_per_sequence(l, opts.attention)).clamp(1, n),
            None => n,
        };
        self.forward_sub_batched(x, rows, opts)
    }

    /// Applies the path to N independent sequences, `rows` of them at a time (all at once for
    /// `rows ≥ N`); `opts.max_chunk_bytes` then only caps materialised attention scores.
    ///
    /// # Shapes
    /// - x: `[N, L, C]`
    /// - output: `[N, L, C]`
    pub fn forward_sub_batched(
        &self,
        x: Tensor<3>,
        rows: usize,
        opts: ForwardOptions,
    ) -> Tensor<3> {
        let [n, _, _] = x.dims();
        let rows = rows.max(1);
        if rows >= n {
            return self.forward_rows(x, opts);
        }
        let parts: Vec<_> = x
            .split(rows, 0)
            .into_iter()
            .map(|part| self.forward_rows(part, opts))
            .collect();
        Tensor::cat(parts, 0)
    }

    fn forward_rows(&self, x: Tensor<3>, opts: ForwardOptions) -> Tensor<3> {
        let mut x = x;
        if let Some((norm, ffn)) = &self.ffn_pre {
            // No ½ factor: the reference removed it (see its comment), and its weights assume so.
            x = x.clone() + ffn.forward(norm.forward(x));
        }
        let y = self.attn_norm.forward(x.clone());
        x = x + match opts.attention {
            AttentionImpl::Reference => self.attn.forward_reference(y, opts.max_chunk_bytes),
            // The cap only reaches the reference fallback of a backend without a kernel.
            AttentionImpl::Fused | AttentionImpl::Host(_) => {
                self.attn.forward(y, opts.max_chunk_bytes)
            }
        };
        x.clone() + self.ffn_post.forward(self.ffn_post_norm.forward(x))
    }

    /// The path on the residual stream: its rows along `axis`, [`forward`](Self::forward),
    /// back to the stream.
    ///
    /// # Shapes
    /// - x: `[B, T, F, C]`
    /// - output: `[B, T, F, C]`
    pub fn forward_stream(&self, axis: PathAxis, x: Tensor<4>, opts: ForwardOptions) -> Tensor<4> {
        let dims = x.dims();
        axis.from_rows(self.forward(axis.to_rows(x), opts), dims)
    }

    /// The host form of this path (weights copied and transposed), None when a layer is outside
    /// what the host kernels implement.
    fn host_path(&self) -> Option<HostPath> {
        HostPath::new(
            self.ffn_pre.as_ref().map(|(n, f)| (n, f)),
            &self.attn_norm,
            &self.attn,
            &self.ffn_post_norm,
            &self.ffn_post,
        )
    }
}

/// One TF-Locoformer block: a frequency path (attention over F, batch B·T) and a time path
/// (attention over T, batch B·F). original: `TFLocoformerBlock`.
#[derive(Module, Debug)]
pub struct LocoBlock {
    /// Frequency path. original: `freq_path`.
    pub freq_path: LocoPath,
    /// Time path. original: `frame_path`.
    pub frame_path: LocoPath,
    #[module(skip)]
    order: TfOrder,
}

/// Intermediate outputs of a forward, in the reference's `[B, C, T, F]` layout, named like the
/// golden fixtures (`encoder.out`, `block.0.freq_path.out`, …).
pub type Taps = Vec<(String, Tensor<4>)>;

fn to_bctf(x: &Tensor<4>) -> Tensor<4> {
    x.clone().permute([0, 3, 1, 2])
}

impl LocoBlock {
    /// Builds a block.
    pub fn new(freq_path: LocoPath, frame_path: LocoPath, order: TfOrder) -> Self {
        Self {
            freq_path,
            frame_path,
            order,
        }
    }

    /// The path along `axis`.
    pub fn path(&self, axis: PathAxis) -> &LocoPath {
        match axis {
            PathAxis::Frequency => &self.freq_path,
            PathAxis::Time => &self.frame_path,
        }
    }

    /// The two paths in the order they run (`tf_order`), each with the axis its attention runs
    /// along.
    pub fn paths_in_order(&self) -> [(&LocoPath, PathAxis); 2] {
        PathAxis::in_order(self.order).map(|axis| (self.path(axis), axis))
    }

    /// Applies both paths in the configured order, in burn ops.
    ///
    /// # Shapes
    /// - x: `[B, T, F, C]`
    /// - output: `[B, T, F, C]`
    pub fn forward(&self, x: Tensor<4>, opts: ForwardOptions) -> Tensor<4> {
        self.paths_in_order()
            .into_iter()
            .fold(x, |x, (path, axis)| path.forward_stream(axis, x, opts))
    }

    /// The host form of this block, None when a layer is outside what the host kernels
    /// implement.
    fn host_block(&self) -> Option<HostBlock> {
        Some(HostBlock::new(
            self.freq_path.host_path()?,
            self.frame_path.host_path()?,
        ))
    }
}

/// TF-Locoformer's encoder: Conv2d(2·ac → C, 3×3) and GroupNorm(1 group).
/// original: `conv` (`conv.0` Conv2d, `conv.1` GroupNorm).
#[derive(Module, Debug)]
pub struct ConvEncoder {
    /// Conv2d weight `[C, 2·ac, 3, 3]`. original: `conv.0.weight`.
    pub enc_w: Param<Tensor<4>>,
    /// Conv2d bias `[C]`. original: `conv.0.bias`.
    pub enc_b: Param<Tensor<1>>,
    /// GroupNorm(1 group) weight `[C]`. original: `conv.1.weight`.
    pub gn_w: Param<Tensor<1>>,
    /// GroupNorm bias `[C]`. original: `conv.1.bias`.
    pub gn_b: Param<Tensor<1>>,
    #[module(skip)]
    eps: f64,
}

impl ConvEncoder {
    /// Assembles the encoder.
    pub fn new(
        enc_w: Param<Tensor<4>>,
        enc_b: Param<Tensor<1>>,
        gn_w: Param<Tensor<1>>,
        gn_b: Param<Tensor<1>>,
        eps: f64,
    ) -> Self {
        Self {
            enc_w,
            enc_b,
            gn_w,
            gn_b,
            eps,
        }
    }

    /// Conv2d and GroupNorm, returned channel-last for the blocks.
    ///
    /// # Shapes
    /// - spec: `[B, 2·ac, T, F]`
    /// - output: `[B, T, F, C]`
    pub fn forward(&self, spec: Tensor<4>) -> Tensor<4> {
        // Biases and gains are added through explicit expands, so that their gradients are
        // reduced one dimension at a time (see `reduce`).
        let x = conv2d_same3(spec, self.enc_w.val());
        let [b, c, t, f] = x.dims();
        let x = x + expand_to(self.enc_b.val().reshape([1, c, 1, 1]), [b, c, t, f]);
        // GroupNorm with one group: biased variance over all C·T·F values of an item (staged:
        // a single wgpu reduction over more than 2¹⁸ values is wrong, see `reduce`).
        let x = normalize_rows(x.reshape([b, c * t * f]), self.eps).reshape([b, c, t, f])
            * expand_to(self.gn_w.val().reshape([1, c, 1, 1]), [b, c, t, f])
            + expand_to(self.gn_b.val().reshape([1, c, 1, 1]), [b, c, t, f]);
        x.permute([0, 2, 3, 1])
    }
}

/// TF-Locoformer's decoder: ConvTranspose2d(C → 2·S·ac, 3×3). original: `deconv`.
#[derive(Module, Debug)]
pub struct ConvDecoder {
    /// ConvTranspose2d weight `[C, 2·S·ac, 3, 3]`. original: `deconv.weight`.
    pub dec_w: Param<Tensor<4>>,
    /// Bias `[2·S·ac]`. original: `deconv.bias`.
    pub dec_b: Param<Tensor<1>>,
}

impl ConvDecoder {
    /// The transposed convolution, from the blocks' channel-last layout.
    ///
    /// # Shapes
    /// - x: `[B, T, F, C]`
    /// - output: `[B, 2·S·ac, T, F]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = conv_transpose2d_same3(x, self.dec_w.val());
        let [b, o, t, f] = y.dims();
        // The bias through an explicit expand: an exact gradient (see `reduce`).
        y + expand_to(self.dec_b.val().reshape([1, o, 1, 1]), [b, o, t, f])
    }
}

/// The spectrum → residual-stream encoder of either architecture.
#[derive(Module, Debug)]
pub enum Encoder {
    /// TF-Locoformer: Conv2d over all bins.
    Conv(ConvEncoder),
    /// BS-Locoformer: per-band GroupNorm + projection.
    BandSplit(BandSplitEncoder),
}

/// The residual-stream → spectra decoder of either architecture.
#[derive(Module, Debug)]
pub enum Decoder {
    /// TF-Locoformer: ConvTranspose2d.
    Conv(ConvDecoder),
    /// BS-Locoformer: band-wise MLPs, complex mask or mapping.
    BandWise(BandDecoder),
}

/// The whole network on complex spectra: TF-Locoformer (`TFLocoformerSeparator` /
/// `TFLocoformerMSS` without the STFT) or BS-Locoformer (`BSLocoformerSeparator`, mixit-mss
/// `BSLocoformer`), which share the blocks.
#[derive(Module, Debug)]
pub struct TfLocoformer {
    /// Spectrum encoder.
    pub encoder: Encoder,
    /// The blocks.
    pub blocks: Vec<LocoBlock>,
    /// Spectrum decoder.
    pub decoder: Decoder,
}

impl TfLocoformer {
    /// Assembles the network (see `loader.rs` for building it from a checkpoint).
    pub fn new(encoder: Encoder, blocks: Vec<LocoBlock>, decoder: Decoder) -> Self {
        Self {
            encoder,
            blocks,
            decoder,
        }
    }

    /// Maps input spectra to separated spectra.
    ///
    /// Channel layout: input `[re_0 … re_{ac−1}, im_0 … im_{ac−1}]` (ESPnet's multichannel
    /// `cat((real, imag), dim=1)`); output channel `2·(s·ac + ch) + part` with part 0 = real,
    /// 1 = imaginary, which for ac = 1 is the reference's `view(B, S, 2, T, F)`.
    ///
    /// # Shapes
    /// - spec: `[B, 2·ac, T, F]`
    /// - output: `[B, 2·S·ac, T, F]`
    pub fn forward(&self, spec: Tensor<4>, opts: ForwardOptions) -> Tensor<4> {
        self.forward_inner(spec, opts, None)
    }

    /// [`forward`](Self::forward) that also returns every golden tap.
    ///
    /// # Shapes
    /// - spec: `[B, 2·ac, T, F]`
    /// - output: `[B, 2·S·ac, T, F]`, taps `[B, C, T, F]`
    pub fn forward_with_taps(&self, spec: Tensor<4>, opts: ForwardOptions) -> (Tensor<4>, Taps) {
        let mut taps = Taps::new();
        let out = self.forward_inner(spec, opts, Some(&mut taps));
        (out, taps)
    }

    /// The blocks as host kernels, for [`AttentionImpl::Host`]: the block weights copied to
    /// the host and transposed once, here. `None` unless the network lives on the CPU inference
    /// device (flex without autodiff) in f32 and every layer is one the host kernels implement
    /// (then [`AttentionImpl::Fused`] is the fast choice).
    pub fn host_network(&self) -> Option<HostNetwork> {
        let weight = self.blocks.first()?.freq_path.attn.qkv.val();
        let flex = matches!(weight.device().as_dispatch(), DispatchDevice::Flex(_));
        if !flex || weight.dtype() != DType::F32 {
            return None;
        }
        let blocks: Option<Vec<_>> = self.blocks.iter().map(LocoBlock::host_block).collect();
        blocks.map(HostNetwork::new)
    }

    /// The encoder, returned channel-last for the blocks (L = F bins, or nb bands).
    ///
    /// # Shapes
    /// - spec: `[B, 2·ac, T, F]`
    /// - output: `[B, T, L, C]`
    pub fn encode(&self, spec: Tensor<4>) -> Tensor<4> {
        match &self.encoder {
            Encoder::Conv(e) => e.forward(spec),
            Encoder::BandSplit(e) => e.forward(spec),
        }
    }

    /// Whether [`decode`](Self::decode) needs the network's input spectrum (masking models).
    pub fn decoder_needs_input(&self) -> bool {
        matches!(&self.decoder, Decoder::BandWise(d) if d.masking())
    }

    /// The decoder. `spec`, the network's input, must be given when
    /// [`decoder_needs_input`](Self::decoder_needs_input); it is ignored otherwise (callers
    /// drop it early so that its memory is free during the blocks).
    ///
    /// # Shapes
    /// - x: `[B, T, L, C]`
    /// - spec: `[B, 2·ac, T, F]`
    /// - output: `[B, 2·S·ac, T, F]`
    pub fn decode(&self, x: Tensor<4>, spec: Option<Tensor<4>>) -> Tensor<4> {
        self.decode_with_taps(x, spec, None)
    }

    fn decode_with_taps(
        &self,
        x: Tensor<4>,
        spec: Option<Tensor<4>>,
        taps: Option<&mut Taps>,
    ) -> Tensor<4> {
        match &self.decoder {
            Decoder::Conv(d) => d.forward(x),
            Decoder::BandWise(d) => {
                let bands = d.decode_bands(x);
                if let Some(taps) = taps {
                    taps.push(("bandwise_decoding.out".into(), BandDecoder::tap(&bands)));
                }
                d.finish(bands, spec)
            }
        }
    }

    fn forward_inner(
        &self,
        spec: Tensor<4>,
        opts: ForwardOptions,
        mut taps: Option<&mut Taps>,
    ) -> Tensor<4> {
        let keep = self.decoder_needs_input().then(|| spec.clone());
        let x = self.encode(spec); // [B, T, L, C]
        if let Some(taps) = taps.as_deref_mut() {
            let name = match self.encoder {
                Encoder::Conv(_) => "encoder.out",
                Encoder::BandSplit(_) => "band_split.out",
            };
            taps.push((name.into(), to_bctf(&x)));
        }
        let x = self.run_blocks(x, opts, taps.as_deref_mut());
        self.decode_with_taps(x, keep, taps)
    }

    /// Every block, each path in its block's order, on the burn-ops or the host stream; taps
    /// `block.{i}.{path}.out` after each path and `block.{i}.out` after each block.
    ///
    /// # Shapes
    /// - x: `[B, T, L, C]`
    /// - output: `[B, T, L, C]`
    fn run_blocks(
        &self,
        x: Tensor<4>,
        opts: ForwardOptions,
        mut taps: Option<&mut Taps>,
    ) -> Tensor<4> {
        let mut stream = Stream::new(x, opts.attention);
        if let Stream::Host { net, .. } = &stream {
            assert_eq!(
                net.num_blocks(),
                self.blocks.len(),
                "AttentionImpl::Host needs the host network of this network"
            );
        }
        for (i, block) in self.blocks.iter().enumerate() {
            for (step, (path, axis)) in block.paths_in_order().into_iter().enumerate() {
                stream = stream.path(i, path, axis, opts);
                if let Some(taps) = taps.as_deref_mut() {
                    let t = to_bctf(&stream.tensor());
                    taps.push((format!("block.{i}.{}.out", axis.name()), t.clone()));
                    if step == 1 {
                        taps.push((format!("block.{i}.out"), t));
                    }
                }
            }
        }
        stream.into_tensor()
    }
}

/// The residual stream `[B, T, L, C]` between paths: a tensor for the burn-ops blocks, or one
/// host copy for the host blocks (copied in once, out once; taps copy it out per path).
enum Stream<'a> {
    /// Burn ops.
    Tensor(Tensor<4>),
    /// Host kernels, row-major `dims`.
    Host {
        net: &'a HostNetwork,
        buf: Vec<f32>,
        dims: [usize; 4],
        device: Device,
    },
}

impl<'a> Stream<'a> {
    fn new(x: Tensor<4>, attention: AttentionImpl<'a>) -> Self {
        match attention {
            AttentionImpl::Host(net) => Stream::Host {
                net,
                dims: x.dims(),
                device: x.device(),
                buf: x
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .expect("f32 activations"),
            },
            AttentionImpl::Fused | AttentionImpl::Reference => Stream::Tensor(x),
        }
    }

    /// Applies `path` (block `block`, along `axis`).
    fn path(self, block: usize, path: &LocoPath, axis: PathAxis, opts: ForwardOptions) -> Self {
        match self {
            Stream::Tensor(x) => Stream::Tensor(path.forward_stream(axis, x, opts)),
            Stream::Host {
                net,
                mut buf,
                dims,
                device,
            } => {
                net.block(block).run(axis, &mut buf, dims);
                Stream::Host {
                    net,
                    buf,
                    dims,
                    device,
                }
            }
        }
    }

    /// The stream as a tensor (a copy for the host stream).
    fn tensor(&self) -> Tensor<4> {
        match self {
            Stream::Tensor(x) => x.clone(),
            Stream::Host {
                buf, dims, device, ..
            } => Tensor::from_data(TensorData::new(buf.clone(), *dims), device),
        }
    }

    fn into_tensor(self) -> Tensor<4> {
        match self {
            Stream::Tensor(x) => x,
            Stream::Host {
                buf, dims, device, ..
            } => Tensor::from_data(TensorData::new(buf, dims), &device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::preset;
    use crate::model::loader::{from_state_dict, init_state_dict};
    use burn::tensor::Distribution;

    fn host(t: Tensor<4>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    }

    /// The host blocks equal the burn-ops blocks (backend kernel and reference attention) on
    /// random weights with non-trivial biases, for odd lengths (ragged FFN row tiles,
    /// attention tails) and both path orders.
    #[test]
    fn host_blocks_match_burn_ops() {
        let dev = Device::flex();
        for (order, dims) in [
            (TfOrder::FreqTime, [1, 7, 33, 0]),
            (TfOrder::TimeFreq, [2, 130, 9, 0]),
        ] {
            let mut cfg = preset("demo").unwrap().config;
            cfg.tf_order = order;
            cfg.n_layers = 1;
            let net = from_state_dict(&cfg, &init_state_dict(&cfg, 3), &dev).unwrap();
            let host_net = net.host_network().expect("presets are host-capable");
            let [b, t, f, _] = dims;
            let x =
                Tensor::<4>::random([b, t, f, cfg.emb_dim], Distribution::Normal(0.0, 1.0), &dev);
            let run = |attention| {
                let opts = ForwardOptions {
                    attention,
                    ..Default::default()
                };
                host(net.run_blocks(x.clone(), opts, None))
            };
            let got = run(AttentionImpl::Host(&host_net));
            for (name, want) in [
                ("fused", run(AttentionImpl::Fused)),
                ("reference", run(AttentionImpl::Reference)),
            ] {
                let err = got
                    .iter()
                    .zip(&want)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f32::max);
                let peak = want.iter().map(|x| x.abs()).fold(0.0, f32::max);
                assert!(
                    err <= 1e-4 * peak.max(1.0),
                    "{order:?} vs {name}: {err} (peak {peak})"
                );
            }
        }
    }

    /// Only a network on the CPU inference device gets host blocks: not one on an autodiff
    /// device (training), whose gradients the host kernels would not carry.
    #[test]
    fn host_network_only_for_cpu_inference() {
        let mut cfg = preset("demo").unwrap().config;
        cfg.n_layers = 2;
        let sd = init_state_dict(&cfg, 1);
        let plain = from_state_dict(&cfg, &sd, &Device::flex()).unwrap();
        assert_eq!(plain.host_network().map(|h| h.num_blocks()), Some(2));
        let ad = from_state_dict(&cfg, &sd, &Device::flex().autodiff()).unwrap();
        assert!(ad.host_network().is_none());
    }

    /// Taps name each path after the reference and follow `tf_order`, on both streams alike.
    #[test]
    fn taps_follow_the_path_order_on_both_streams() {
        let dev = Device::flex();
        let mut cfg = preset("demo").unwrap().config;
        cfg.n_layers = 1;
        cfg.tf_order = TfOrder::TimeFreq;
        let net = from_state_dict(&cfg, &init_state_dict(&cfg, 2), &dev).unwrap();
        let host_net = net.host_network().unwrap();
        let spec = Tensor::<4>::random([1, 2, 5, cfg.n_freqs()], Distribution::Default, &dev);
        for attention in [AttentionImpl::Host(&host_net), AttentionImpl::Fused] {
            let opts = ForwardOptions {
                attention,
                ..Default::default()
            };
            let (_, taps) = net.forward_with_taps(spec.clone(), opts);
            let names: Vec<_> = taps.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(
                names,
                [
                    "encoder.out",
                    "block.0.frame_path.out",
                    "block.0.freq_path.out",
                    "block.0.out"
                ],
                "{attention:?}"
            );
        }
    }
}
