//! The TF-Locoformer network: encoder, L dual-path blocks, decoder.
//! Mirrors `TFLocoformerSeparator` / `TFLocoformerMSS` (encoder `conv`, `blocks`, `deconv`).
//!
//! Between blocks the activation is kept channel-last `[B, T, F, C]`, so each path only needs
//! a reshape (frequency path) or one swap of T and F (time path); the reference's
//! `[B, C, T, F]` layout is produced only at the encoder/decoder and for golden taps.

use burn::module::{Module, Param};
use burn::tensor::{Tensor, TensorData};

use super::bandsplit::{BandDecoder, BandSplitEncoder};
use super::config::{ModelConfig, TfOrder};
use super::conv::{conv_transpose2d_same3, conv2d_same3};
use super::host::HostBlock;
use super::layers::{ConvSwiGlu, Mhsa, Norm};
use super::reduce::{expand_to, normalize_rows};

/// Run-time options of a forward pass that do not change its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardOptions {
    /// Upper bound on the bytes of any one large intermediate of a path (attention scores on
    /// non-fused backends, FFN hidden activations): the N sequences of a path are processed in
    /// sub-batches sized so that each stays under it. `None`: one batch.
    pub max_chunk_bytes: Option<usize>,
    /// Whether attention runs fused (no score tensor); set by the caller from the device.
    pub fused_attention: bool,
    /// Run the blocks in burn tensor ops even on the CPU inference device, where the
    /// host path (`host.rs`: per-sequence, cache-resident, same maths) is otherwise used.
    /// For tests that compare the two.
    pub burn_ops_only: bool,
    /// Compute attention with the plain-ops reference (materialised scores, sub-batched by
    /// `max_chunk_bytes`) even where a fused kernel exists, and run the blocks in burn ops.
    /// For tests that compare the kernels with the reference through the whole model.
    pub reference_attention: bool,
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
    fn bytes_per_sequence(&self, l: usize, fused: bool) -> usize {
        let ffn = self.row_bytes[0] * (l + 8);
        let scores = if fused {
            0
        } else {
            2 * self.row_bytes[1] * l * l
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
            Some(cap) => (cap / self.bytes_per_sequence(l, opts.fused_attention)).clamp(1, n),
            None => n,
        };
        self.forward_sub_batched(x, rows, opts)
    }

    /// Applies the path to N independent sequences, `rows` of them at a time (all at once for
    /// `rows ≥ N`); `opts.max_chunk_bytes` then only caps non-fused attention scores.
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
        let score_cap = if opts.fused_attention {
            None
        } else {
            opts.max_chunk_bytes
        };
        let y = self.attn_norm.forward(x.clone());
        x = x + if opts.reference_attention {
            self.attn.forward_reference(y, opts.max_chunk_bytes)
        } else {
            self.attn.forward(y, score_cap)
        };
        x.clone() + self.ffn_post.forward(self.ffn_post_norm.forward(x))
    }
}

/// The axis a path's attention runs along, and how the residual stream `[B, T, F, C]` is
/// viewed as that path's independent sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathAxis {
    /// Sequences are frames: `[B·T, F, C]` (a reshape, no copy).
    Frequency,
    /// Sequences are bins: `[B·F, T, C]` (T and F swapped).
    Time,
}

impl PathAxis {
    /// The residual stream as this path's rows.
    ///
    /// # Shapes
    /// - x: `[B, T, F, C]`
    /// - output: `[B·T, F, C]` (frequency) or `[B·F, T, C]` (time)
    pub fn to_rows(self, x: Tensor<4>) -> Tensor<3> {
        let [b, t, f, c] = x.dims();
        match self {
            PathAxis::Frequency => x.reshape([b * t, f, c]),
            PathAxis::Time => x.swap_dims(1, 2).reshape([b * f, t, c]),
        }
    }

    /// Inverse of [`to_rows`](Self::to_rows) for a stream of dimensions `dims`.
    ///
    /// # Shapes
    /// - rows: `[B·T, F, C]` (frequency) or `[B·F, T, C]` (time)
    /// - output: `dims` = `[B, T, F, C]`
    pub fn from_rows(self, rows: Tensor<3>, dims: [usize; 4]) -> Tensor<4> {
        let [b, t, f, c] = dims;
        match self {
            PathAxis::Frequency => rows.reshape([b, t, f, c]),
            PathAxis::Time => rows.reshape([b, f, t, c]).swap_dims(1, 2),
        }
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

    fn freq(&self, x: Tensor<4>, opts: ForwardOptions) -> Tensor<4> {
        let dims = x.dims();
        PathAxis::Frequency.from_rows(
            self.freq_path.forward(PathAxis::Frequency.to_rows(x), opts),
            dims,
        )
    }

    fn time(&self, x: Tensor<4>, opts: ForwardOptions) -> Tensor<4> {
        let dims = x.dims();
        PathAxis::Time.from_rows(
            self.frame_path.forward(PathAxis::Time.to_rows(x), opts),
            dims,
        )
    }

    /// The two paths in the order they run, each with the axis its attention runs along.
    pub fn paths_in_order(&self) -> [(&LocoPath, PathAxis); 2] {
        let freq = (&self.freq_path, PathAxis::Frequency);
        let time = (&self.frame_path, PathAxis::Time);
        match self.order {
            TfOrder::FreqTime => [freq, time],
            TfOrder::TimeFreq => [time, freq],
        }
    }

    /// Whether the frequency path runs first (`tf_order = "ft"`).
    pub fn freq_first(&self) -> bool {
        self.order == TfOrder::FreqTime
    }

    /// Applies both paths in the configured order.
    ///
    /// # Shapes
    /// - x: `[B, T, F, C]`
    /// - output: `[B, T, F, C]`
    pub fn forward(
        &self,
        x: Tensor<4>,
        opts: ForwardOptions,
        taps: Option<(&mut Taps, usize)>,
    ) -> Tensor<4> {
        let (first, second) = match self.order {
            TfOrder::FreqTime => ("freq_path", "frame_path"),
            TfOrder::TimeFreq => ("frame_path", "freq_path"),
        };
        let run = |name: &str, x: Tensor<4>| {
            if name == "freq_path" {
                self.freq(x, opts)
            } else {
                self.time(x, opts)
            }
        };
        let y = run(first, x);
        match taps {
            Some((taps, i)) => {
                taps.push((format!("block.{i}.{first}.out"), to_bctf(&y)));
                let z = run(second, y);
                taps.push((format!("block.{i}.{second}.out"), to_bctf(&z)));
                taps.push((format!("block.{i}.out"), to_bctf(&z)));
                z
            }
            None => run(second, y),
        }
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

    /// The blocks as host kernels when `x` lives on the CPU inference device (flex without
    /// autodiff) and every layer is one the host path implements.
    fn host_blocks(&self, x: &Tensor<4>, opts: ForwardOptions) -> Option<Vec<HostBlock>> {
        let device = x.device();
        let flex = matches!(device.as_dispatch(), burn::backend::DispatchDevice::Flex(_));
        if opts.burn_ops_only
            || opts.reference_attention
            || !flex
            || x.dtype() != burn::tensor::DType::F32
        {
            return None;
        }
        self.blocks.iter().map(HostBlock::new).collect()
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
        let mut x = self.encode(spec); // [B, T, L, C]
        if let Some(taps) = taps.as_deref_mut() {
            let name = match self.encoder {
                Encoder::Conv(_) => "encoder.out",
                Encoder::BandSplit(_) => "band_split.out",
            };
            taps.push((name.into(), to_bctf(&x)));
        }
        match self.host_blocks(&x, opts) {
            Some(host_blocks) => x = run_host_blocks(&host_blocks, x, taps.as_deref_mut()),
            None => {
                for (i, block) in self.blocks.iter().enumerate() {
                    x = block.forward(x, opts, taps.as_deref_mut().map(|t| (t, i)));
                }
            }
        }
        self.decode_with_taps(x, keep, taps)
    }
}

/// Runs the blocks on a host copy of `x` (one copy in, one out; taps copied out per path).
///
/// # Shapes
/// - x: `[B, T, F, C]`
/// - output: `[B, T, F, C]`
fn run_host_blocks(blocks: &[HostBlock], x: Tensor<4>, mut taps: Option<&mut Taps>) -> Tensor<4> {
    let dims = x.dims();
    let device = x.device();
    let mut buf = x
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 activations");
    let tensor = |buf: &[f32]| Tensor::<4>::from_data(TensorData::new(buf.to_vec(), dims), &device);
    for (i, block) in blocks.iter().enumerate() {
        let names = if block.freq_first() {
            ["freq_path", "frame_path"]
        } else {
            ["frame_path", "freq_path"]
        };
        for (step, name) in names.iter().enumerate() {
            if *name == "freq_path" {
                block.freq(&mut buf, dims);
            } else {
                block.time(&mut buf, dims);
            }
            if let Some(taps) = taps.as_deref_mut() {
                let t = to_bctf(&tensor(&buf));
                taps.push((format!("block.{i}.{name}.out"), t.clone()));
                if step == 1 {
                    taps.push((format!("block.{i}.out"), t));
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(buf, dims), &device)
}
