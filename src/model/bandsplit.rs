//! The band-split encoder and band-wise decoder of BS-Locoformer, around the same blocks as
//! TF-Locoformer. Mirrors `BandSplitModule` of MERL's `bslocoformer_separator.py` (release
//! 1.1.0) and of mixit-mss's `mixit/model/bslocoformer.py`; the two differ only in the
//! decoder's layer order ([`BsFlavour`]).
//!
//! Layouts: the encoder reads the spectrum `[B, 2·M, T, F]` (real parts of the M channels,
//! then imaginary parts — the reference's `cat((real, imag), dim=-1)`), and a band's input
//! vector is bin-major then component (`[w_b · 2M]`), as the reference's
//! `input[:, lo:hi].reshape(B, -1, T)`. The blocks' stream is channel-last `[B, T, nb, C]`.
//! Conv1d weights with kernel 1 are stored as linear weights `[in, out]` (PyTorch
//! `[out, in, 1]`); `loader.rs` transposes.

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::activation::{sigmoid, tanh};
use burn::tensor::module::linear;

use super::config::BsFlavour;
use super::reduce::{expand_to, normalize_rows};

/// `nn.GroupNorm`'s default epsilon, used by every band GroupNorm in both references.
const GROUP_NORM_EPS: f64 = 1e-5;

/// GroupNorm with one group over all `K·T` values of each item, then a per-channel affine.
///
/// # Shapes
/// - x: `[B, T, K]` (channel-last)
/// - weight, bias: `[K]`
/// - output: `[B, T, K]`
fn group_norm_1(x: Tensor<3>, weight: &Param<Tensor<1>>, bias: &Param<Tensor<1>>) -> Tensor<3> {
    let [b, t, k] = x.dims();
    // Staged reduction: a single wgpu reduction over more than 2¹⁸ values is wrong (`reduce`).
    // Gain and bias through explicit expands: exact gradients on wgpu too.
    let y = normalize_rows(x.reshape([b, t * k]), GROUP_NORM_EPS).reshape([b, t, k]);
    y * expand_to(weight.val().reshape([1, 1, k]), [b, t, k])
        + expand_to(bias.val().reshape([1, 1, k]), [b, t, k])
}

/// One band's encoder: `GroupNorm(1, w·2M)` then `Conv1d(w·2M → C, 1)`.
/// original: `band_split_module.band_split_module.{b}`.
#[derive(Module, Debug)]
pub struct BandIn {
    /// GroupNorm weight `[w·2M]`. original: `.0.weight`.
    pub norm_w: Param<Tensor<1>>,
    /// GroupNorm bias `[w·2M]`. original: `.0.bias`.
    pub norm_b: Param<Tensor<1>>,
    /// Conv1d weight as `[w·2M, C]`. original: `.1.weight` `[C, w·2M, 1]`.
    pub proj_w: Param<Tensor<2>>,
    /// Conv1d bias `[C]`. original: `.1.bias`.
    pub proj_b: Param<Tensor<1>>,
}

/// The band-split encoder: every band normalised and projected to C channels.
#[derive(Module, Debug)]
pub struct BandSplitEncoder {
    /// One encoder per band, low to high.
    pub bands: Vec<BandIn>,
    #[module(skip)]
    widths: Vec<usize>,
}

impl BandSplitEncoder {
    /// Assembles the encoder; `bands[b]` covers `widths[b]` bins.
    pub fn new(bands: Vec<BandIn>, widths: Vec<usize>) -> Self {
        debug_assert_eq!(bands.len(), widths.len());
        Self { bands, widths }
    }

    /// Band widths in bins.
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// Splits the spectrum into bands and embeds each.
    ///
    /// # Shapes
    /// - spec: `[B, 2·M, T, F]`
    /// - output: `[B, T, nb, C]`
    pub fn forward(&self, spec: Tensor<4>) -> Tensor<4> {
        let [b, comps, t, _f] = spec.dims();
        // [B, T, F, 2M]: a band's bins are then contiguous, bin-major, component-minor.
        let x = spec.permute([0, 2, 3, 1]);
        let mut lo = 0;
        let mut out = Vec::with_capacity(self.bands.len());
        for (band, &w) in self.bands.iter().zip(&self.widths) {
            let xb = x.clone().narrow(2, lo, w).reshape([b, t, w * comps]);
            let y = group_norm_1(xb, &band.norm_w, &band.norm_b);
            out.push(linear(y, band.proj_w.val(), Some(band.proj_b.val()))); // [B, T, C]
            lo += w;
        }
        Tensor::stack(out, 2)
    }
}

/// One band's decoder: `GroupNorm(1, C)`, two Conv1d C→4C→4C with a tanh (after the first for
/// MERL, after the second for mixit-mss), Conv1d 4C → w·S·M·4, GLU over channels.
/// original: `band_split_module.bandwise_decoding_module.{b}`.
#[derive(Module, Debug)]
pub struct BandOut {
    /// GroupNorm weight `[C]`. original: `.0.weight`.
    pub norm_w: Param<Tensor<1>>,
    /// GroupNorm bias `[C]`. original: `.0.bias`.
    pub norm_b: Param<Tensor<1>>,
    /// First Conv1d as `[C, 4C]`. original: `.1.weight`.
    pub fc1_w: Param<Tensor<2>>,
    /// Its bias `[4C]`.
    pub fc1_b: Param<Tensor<1>>,
    /// Second Conv1d as `[4C, 4C]`. original: `.3.weight` (MERL) / `.2.weight` (mixit-mss).
    pub fc2_w: Param<Tensor<2>>,
    /// Its bias `[4C]`.
    pub fc2_b: Param<Tensor<1>>,
    /// Output Conv1d as `[4C, w·S·M·4]`. original: `.4.weight`.
    pub out_w: Param<Tensor<2>>,
    /// Its bias `[w·S·M·4]`.
    pub out_b: Param<Tensor<1>>,
}

impl BandOut {
    /// The band's GLU output.
    ///
    /// # Shapes
    /// - x: `[B, T, C]`
    /// - output: `[B, T, w·S·M·2]`, channels laid out (part, source, channel, bin)
    fn forward(&self, x: Tensor<3>, flavour: BsFlavour) -> Tensor<3> {
        let y = group_norm_1(x, &self.norm_w, &self.norm_b);
        let y = linear(y, self.fc1_w.val(), Some(self.fc1_b.val()));
        let y = match flavour {
            BsFlavour::Merl => linear(tanh(y), self.fc2_w.val(), Some(self.fc2_b.val())),
            BsFlavour::Mixit => tanh(linear(y, self.fc2_w.val(), Some(self.fc2_b.val()))),
        };
        let z = linear(y, self.out_w.val(), Some(self.out_b.val()));
        let half = z.dims()[2] / 2;
        // GLU(dim = channels): first half · σ(second half).
        z.clone().narrow(2, 0, half) * sigmoid(z.narrow(2, half, half))
    }
}

/// The band-wise decoder: one MLP per band, then a complex mask or the spectrum itself.
#[derive(Module, Debug)]
pub struct BandDecoder {
    /// One decoder per band, low to high.
    pub bands: Vec<BandOut>,
    #[module(skip)]
    widths: Vec<usize>,
    #[module(skip)]
    flavour: BsFlavour,
    #[module(skip)]
    masking: bool,
    #[module(skip)]
    sources: usize,
    #[module(skip)]
    channels: usize,
}

impl BandDecoder {
    /// Assembles the decoder for `sources` sources of `channels` audio channels.
    pub fn new(
        bands: Vec<BandOut>,
        widths: Vec<usize>,
        flavour: BsFlavour,
        masking: bool,
        sources: usize,
        channels: usize,
    ) -> Self {
        Self {
            bands,
            widths,
            flavour,
            masking,
            sources,
            channels,
        }
    }

    /// Decoder flavour (decides the layer order and the key names).
    pub fn flavour(&self) -> BsFlavour {
        self.flavour
    }

    /// Whether the output is a mask applied to the input spectrum.
    pub fn masking(&self) -> bool {
        self.masking
    }

    /// The decoders' raw output, every band concatenated along the bins.
    ///
    /// # Shapes
    /// - x: `[B, T, nb, C]`
    /// - output: `[B, T, 2, S, M, F]` (part 0 real, 1 imaginary)
    pub fn decode_bands(&self, x: Tensor<4>) -> Tensor<6> {
        let [b, t, _nb, c] = x.dims();
        let (s, m) = (self.sources, self.channels);
        let parts: Vec<Tensor<6>> = self
            .bands
            .iter()
            .zip(&self.widths)
            .enumerate()
            .map(|(i, (band, &w))| {
                let xb = x.clone().narrow(2, i, 1).reshape([b, t, c]);
                band.forward(xb, self.flavour).reshape([b, t, 2, s, m, w])
            })
            .collect();
        Tensor::cat(parts, 5)
    }

    /// The separated spectra from the decoders' output and (for masking) the input spectrum.
    ///
    /// Invariant: `spec` is `Some` when [`masking`](Self::masking); it is ignored otherwise.
    ///
    /// # Shapes
    /// - bands: `[B, T, 2, S, M, F]` (from [`decode_bands`](Self::decode_bands))
    /// - spec: `[B, 2·M, T, F]`
    /// - output: `[B, 2·S·M, T, F]`, channel `2·(s·M + m) + part`
    pub fn finish(&self, bands: Tensor<6>, spec: Option<Tensor<4>>) -> Tensor<4> {
        debug_assert!(!self.masking || spec.is_some(), "masking needs the input");
        let [b, t, _, s, m, f] = bands.dims();
        let est = if let (true, Some(spec)) = (self.masking, spec) {
            // Complex product of the mask with the mixture, broadcast over the sources.
            let re = spec
                .clone()
                .narrow(1, 0, m)
                .permute([0, 2, 1, 3])
                .reshape([b, t, 1, m, f]);
            let im = spec
                .narrow(1, m, m)
                .permute([0, 2, 1, 3])
                .reshape([b, t, 1, m, f]);
            let mr = bands.clone().narrow(2, 0, 1).reshape([b, t, s, m, f]);
            let mi = bands.narrow(2, 1, 1).reshape([b, t, s, m, f]);
            let out_re = mr.clone() * re.clone() - mi.clone() * im.clone();
            let out_im = mr * im + mi * re;
            Tensor::stack::<6>(vec![out_re, out_im], 2)
        } else {
            bands
        };
        // [B, T, 2, S, M, F] → [B, S, M, 2, T, F].
        est.permute([0, 3, 4, 2, 1, 5])
            .reshape([b, s * m * 2, t, f])
    }

    /// The decoders' output in the reference's `bandwise_decoding.out` order `[B, 2, S, M, T,
    /// F]`, flattened to four dimensions for the golden taps.
    ///
    /// # Shapes
    /// - bands: `[B, T, 2, S, M, F]`
    /// - output: `[B, 2·S·M, T, F]`
    pub fn tap(bands: &Tensor<6>) -> Tensor<4> {
        let [b, t, _, s, m, f] = bands.dims();
        bands
            .clone()
            .permute([0, 2, 3, 4, 1, 5])
            .reshape([b, 2 * s * m, t, f])
    }
}
