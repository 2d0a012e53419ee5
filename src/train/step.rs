//! One micro-batch of training: the batch tensors from example segments, the forward (plain or
//! checkpointed), the loss and the gradients of every parameter. The trainer, `bench train`,
//! the memory benchmark and the GPU-vs-CPU gradient check all go through [`StepKit`], so what
//! they measure is what training does.
//!
//! A micro-batch too large for the device's largest buffer runs in pieces of items
//! ([`StepKit::gradients_in_pieces`]): each piece's loss is weighted by its share of what the
//! whole batch's loss averages over, so the accumulated gradients are the whole batch's.

use std::ops::Range;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};

use super::checkpoint::{CheckpointOptions, checkpointed_gradients};
use super::dataset::Example;
use super::error::TrainError;
use super::loss::{LossConfig, SILENT_POWER, SeparationLoss};
use super::spectral::DiffIstft;
use crate::dsp::stft::Stft;
use crate::model::config::ModelConfig;
use crate::model::network::{AttentionImpl, ForwardOptions, TfLocoformer};
use crate::model::reduce::mean_rows;

/// What one micro-batch gives back.
pub struct MicroStep {
    /// The loss (detached), `[1]`.
    pub loss: Tensor<1>,
    /// Mean SI-SDR per model output of the batch (dB).
    pub si_sdr: Vec<f32>,
    /// The gradient of every parameter that took part.
    pub grads: GradientsParams,
}

/// The fixed parts of a step for one model on one device: STFT, differentiable iSTFT, loss and
/// the checkpointing choice.
pub struct StepKit {
    stft: Stft,
    istft: DiffIstft,
    loss: SeparationLoss,
    /// The loss in two parts for pieces of a batch: the (SI-)SDR terms, averaged over the
    /// active rows, and the L1 and spectral terms, averaged over every item.
    parts: [SeparationLoss; 2],
    checkpoint: Option<CheckpointOptions>,
    opts: ForwardOptions<'static>,
}

/// A micro-batch on the host: every item's network input and targets, from which the device
/// tensors of the whole batch or of a piece of it are made.
pub struct HostBatch {
    /// Input spectra, item-major `[items, 2·ac, T, F]`.
    spec: Vec<f32>,
    /// Targets, item-major `[items, 4·ac, N]`.
    target: Vec<f32>,
    items: usize,
    ac: usize,
    t: usize,
    f: usize,
    n: usize,
}

impl HostBatch {
    /// Network items (`2·examples / ac`).
    pub fn items(&self) -> usize {
        self.items
    }

    /// Samples per item.
    pub fn samples(&self) -> usize {
        self.n
    }

    /// The input and targets of items `range` on `device`.
    ///
    /// # Shapes
    /// - output: (`[r, 2·ac, T, F]`, `[r, 4·ac, N]`) with r = the range's length
    pub fn tensors(&self, range: Range<usize>, device: &Device) -> (Tensor<4>, Tensor<3>) {
        let r = range.len();
        let (x_len, y_len) = (2 * self.ac * self.t * self.f, 4 * self.ac * self.n);
        let spec = self.spec[range.start * x_len..range.end * x_len].to_vec();
        let target = self.target[range.start * y_len..range.end * y_len].to_vec();
        (
            Tensor::from_data(
                TensorData::new(spec, [r, 2 * self.ac, self.t, self.f]),
                device,
            ),
            Tensor::from_data(TensorData::new(target, [r, 4 * self.ac, self.n]), device),
        )
    }
}

impl StepKit {
    /// The kit for `model` on `device` (an autodiff device); `checkpoint` = per-block
    /// activation checkpointing with these options, `None` = plain backward.
    pub fn new(
        model: &ModelConfig,
        loss: LossConfig,
        checkpoint: Option<CheckpointOptions>,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let stft = Stft::new(model.n_fft, model.hop_length)
            .map_err(|e| TrainError::Invalid(e.to_string()))?;
        let sdr_terms = LossConfig {
            l1_weight: 0.0,
            spectral_weight: 0.0,
            spectral_ffts: Vec::new(),
            ..loss.clone()
        };
        let other_terms = LossConfig {
            si_sdr_weight: 0.0,
            sdr_weight: 0.0,
            ..loss.clone()
        };
        Ok(Self {
            stft,
            istft: DiffIstft::new(model.n_fft, model.hop_length, device),
            loss: SeparationLoss::new(loss, device),
            parts: [
                SeparationLoss::new(sdr_terms, device),
                SeparationLoss::new(other_terms, device),
            ],
            checkpoint,
            // The backend's kernel: WGSL on wgpu, the host attention kernel on flex.
            opts: ForwardOptions {
                attention: AttentionImpl::Fused,
                ..Default::default()
            },
        })
    }

    /// This kit with each path's intermediates capped at `bytes` (the network's
    /// [`ForwardOptions::max_chunk_bytes`]: a path runs its sequences in sub-batches whose FFN
    /// hidden and qkv stay under it, and non-fused attention scores are chunked under it).
    /// `None` (the default): every path on all its sequences at once.
    pub fn with_path_chunk_bytes(mut self, bytes: Option<usize>) -> Self {
        self.opts.max_chunk_bytes = bytes;
        self
    }

    /// Network input and targets of a batch of examples (each a stereo segment; a mono model
    /// takes each channel as an item, a stereo model both channels jointly). Targets come in
    /// the model's output order whatever order the dataset's stems have.
    ///
    /// # Shapes
    /// - output: (`[B, 2·ac, T, F]`, `[B, 4·ac, N]`, N) with B = 2·examples / ac
    pub fn batch(
        &self,
        examples: &[Example],
        cfg: &ModelConfig,
        device: &Device,
    ) -> Result<(Tensor<4>, Tensor<3>, usize), TrainError> {
        let host = self.host_batch(examples, cfg)?;
        let (x, y) = host.tensors(0..host.items, device);
        Ok((x, y, host.n))
    }

    /// [`batch`](Self::batch) on the host, to be made into tensors whole or in pieces.
    pub fn host_batch(
        &self,
        examples: &[Example],
        cfg: &ModelConfig,
    ) -> Result<HostBatch, TrainError> {
        host_batch(examples, cfg, &self.stft)
    }

    /// Loss and gradients of one micro-batch.
    ///
    /// # Shapes
    /// - x: `[B, 2·ac, T, F]`
    /// - y: `[B, S·ac, n]`
    pub fn gradients(
        &self,
        model: &TfLocoformer,
        x: Tensor<4>,
        y: Tensor<3>,
        n: usize,
    ) -> MicroStep {
        self.differentiate(model, x, |out| {
            let parts = self.loss.forward(y, decode_output(out, &self.istft, n));
            (parts.total, parts.si_sdr_per_stem)
        })
    }

    /// Loss and gradients of the micro-batch `batch`, its items going through the network
    /// `items_per_piece` at a time (all at once when that is at least the batch: exactly
    /// [`gradients`](Self::gradients)).
    ///
    /// The loss averages its (SI-)SDR terms over the batch's active rows (non-silent
    /// references) and its L1 and spectral terms over every item; a piece with `c` of the
    /// batch's `C` active rows and `b` of its `B` items adds `c/C` of its (SI-)SDR terms and
    /// `b/B` of the others, so the pieces' losses, SI-SDRs and gradients sum to the whole
    /// batch's (up to summation order).
    pub fn gradients_in_pieces(
        &self,
        model: &TfLocoformer,
        batch: &HostBatch,
        items_per_piece: usize,
        device: &Device,
    ) -> MicroStep {
        let (items, n) = (batch.items, batch.n);
        let k = items_per_piece.max(1);
        if k >= items {
            let (x, y) = batch.tensors(0..items, device);
            return self.gradients(model, x, y, n);
        }
        let ranges: Vec<Range<usize>> = (0..items)
            .step_by(k)
            .map(|start| start..(start + k).min(items))
            .collect();
        // The active rows of each piece, counted as the loss counts them.
        let active: Vec<f32> = ranges
            .iter()
            .map(|r| active_rows(batch.tensors(r.clone(), device).1))
            .collect();
        let total_active = active.iter().sum::<f32>().max(1.0);
        let mut acc = GradientsAccumulator::<TfLocoformer>::new();
        let mut loss: Option<Tensor<1>> = None;
        let mut si_sdr: Vec<f32> = Vec::new();
        for (r, c) in ranges.into_iter().zip(active) {
            let share = r.len() as f64 / items as f64;
            let (x, y) = batch.tensors(r, device);
            let step = self.differentiate(model, x, |out| {
                let est = decode_output(out, &self.istft, n);
                let sdr = self.parts[0].forward(y.clone(), est.clone());
                let other = self.parts[1].forward(y, est);
                let total =
                    sdr.total * (f64::from(c) / f64::from(total_active)) + other.total * share;
                let si: Vec<f32> = sdr
                    .si_sdr_per_stem
                    .iter()
                    .map(|v| v * share as f32)
                    .collect();
                (total, si)
            });
            loss = Some(match loss {
                None => step.loss,
                Some(l) => l + step.loss,
            });
            if si_sdr.is_empty() {
                si_sdr = step.si_sdr;
            } else {
                si_sdr
                    .iter_mut()
                    .zip(&step.si_sdr)
                    .for_each(|(a, b)| *a += b);
            }
            acc.accumulate(model, step.grads);
        }
        MicroStep {
            loss: loss.expect("a batch has at least one piece"),
            si_sdr,
            grads: acc.grads(),
        }
    }

    /// The forward (plain or checkpointed) of `x`, `head` (network output → loss and per-stem
    /// SI-SDR) and the backward.
    ///
    /// # Shapes
    /// - x: `[B, 2·ac, T, F]`
    /// - `head` input: `[B, 2·S·ac, T, F]`; its loss `[1]`
    fn differentiate(
        &self,
        model: &TfLocoformer,
        x: Tensor<4>,
        head: impl FnOnce(Tensor<4>) -> (Tensor<1>, Vec<f32>),
    ) -> MicroStep {
        match &self.checkpoint {
            Some(options) => {
                let mut si_sdr = Vec::new();
                let (loss, grads) =
                    checkpointed_gradients(model, x, self.opts, Some(*options), |out| {
                        let (total, si) = head(out);
                        si_sdr = si;
                        total
                    });
                MicroStep {
                    loss,
                    si_sdr,
                    grads,
                }
            }
            None => {
                let (total, si_sdr) = head(model.forward(x, self.opts));
                let grads = GradientsParams::from_grads(total.backward(), model);
                MicroStep {
                    loss: total.detach(),
                    si_sdr,
                    grads,
                }
            }
        }
    }
}

/// Rows of `y` the loss's SI-SDR terms count: references louder than [`SILENT_POWER`], by the
/// loss's own rule.
///
/// # Shapes
/// - y: `[B, S, N]`
fn active_rows(y: Tensor<3>) -> f32 {
    let [b, s, n] = y.dims();
    mean_rows(y.reshape([b * s, n]).square())
        .greater_elem(SILENT_POWER)
        .float()
        .sum()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(0.0)
}

/// Network input and targets on the host; see [`StepKit::batch`].
fn host_batch(
    examples: &[Example],
    cfg: &ModelConfig,
    stft: &Stft,
) -> Result<HostBatch, TrainError> {
    let ac = cfg.audio_channels;
    let n = examples[0].stems[0][0].len();
    let (t, f) = (stft.num_frames(n), stft.num_bins());
    let plane = t * f;
    let items = examples.len() * 2 / ac;
    let mut spec = vec![0f32; items * 2 * ac * plane];
    let mut target = vec![0f32; items * ac * 4 * n];
    let (mut re, mut im) = (vec![], vec![]);
    let mut mix = vec![0f32; n];
    // Dataset stems come in `dataset::STEMS` order; the model's outputs in its own (mixit-mss:
    // bass, drums, vocals, other). `slot[si]` = the model output trained on dataset stem si.
    let slot: Vec<usize> = crate::train::dataset::STEMS
        .iter()
        .map(|name| {
            cfg.sources
                .iter()
                .position(|s| s == name)
                .unwrap_or(usize::MAX)
        })
        .collect();
    if slot.contains(&usize::MAX) {
        return Err(TrainError::Invalid(format!(
            "the model's sources {:?} are not vocals, drums, bass and other",
            cfg.sources
        )));
    }
    for (ei, ex) in examples.iter().enumerate() {
        for ch in 0..2 {
            let item = (ei * 2 + ch) / ac;
            let ich = (ei * 2 + ch) % ac;
            mix.iter_mut().for_each(|v| *v = 0.0);
            for (si, stem) in ex.stems.iter().enumerate() {
                mix.iter_mut().zip(&stem[ch]).for_each(|(m, v)| *m += v);
                let base = ((item * 4 + slot[si]) * ac + ich) * n;
                target[base..base + n].copy_from_slice(&stem[ch]);
            }
            stft.forward(&mix, &mut re, &mut im)
                .map_err(|e| TrainError::Invalid(e.to_string()))?;
            let base = item * 2 * ac * plane;
            spec[base + ich * plane..base + (ich + 1) * plane].copy_from_slice(&re);
            spec[base + (ac + ich) * plane..base + (ac + ich + 1) * plane].copy_from_slice(&im);
        }
    }
    Ok(HostBatch {
        spec,
        target,
        items,
        ac,
        t,
        f,
        n,
    })
}

/// Estimated waveforms from the network output (the differentiable iSTFT of each source).
///
/// # Shapes
/// - out: `[B, 2·S·ac, T, F]`
/// - output: `[B, S·ac, N]`
fn decode_output(out: Tensor<4>, istft: &DiffIstft, n: usize) -> Tensor<3> {
    let [b, c, t, f] = out.dims();
    let k = c / 2;
    let z = out.reshape([b, k, 2, t, f]);
    let re = z.clone().narrow(2, 0, 1).reshape([b * k, t, f]);
    let im = z.narrow(2, 1, 1).reshape([b * k, t, f]);
    istft.forward(re, im, n).reshape([b, k, n])
}

/// One parameter's gradient on the host.
#[derive(Debug, Clone)]
pub struct NamedGradient {
    /// Module path, e.g. `blocks.0.freq.attn.qkv` (burn's field names).
    pub name: String,
    /// Shape of the parameter.
    pub shape: Vec<usize>,
    /// The gradient, row-major; empty when the parameter took no part in the loss.
    pub values: Vec<f32>,
}

/// Every float parameter of `model` with its gradient in `grads`, in the module's (fixed)
/// visiting order, so two copies of one model on different devices line up entry by entry.
pub fn named_gradients(model: &TfLocoformer, grads: &GradientsParams) -> Vec<NamedGradient> {
    struct Collect<'a> {
        grads: &'a GradientsParams,
        path: Vec<String>,
        out: Vec<NamedGradient>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let shape = param.val().dims().to_vec();
            let values = self
                .grads
                .get::<D>(param.id)
                .and_then(|g| g.into_data().convert::<f32>().try_to_vec::<f32>().ok())
                .unwrap_or_default();
            self.out.push(NamedGradient {
                name: self.path.join("."),
                shape,
                values,
            });
        }
    }
    let mut c = Collect {
        grads,
        path: vec![],
        out: vec![],
    };
    model.visit(&mut c);
    c.out
}

/// The largest difference between two gradient sets of the same model, relative to each
/// tensor's largest magnitude, with the tensor's name; also how many tensors have a gradient on
/// one side only. `b` is the reference.
///
/// The relative difference of a tensor is `max|a−b| / max(max|b|, FLOOR·G)` with G the largest
/// gradient magnitude of the whole model and FLOOR = 1e-3: a gradient that is zero in exact
/// arithmetic (a decoder bias under the scale-invariant SI-SDR loss is about 1e-8 when others
/// are about 10) is rounding noise on both sides, and comparing noise to noise says nothing;
/// a wrong reduction shows at the scale of the gradient itself.
pub fn compare_gradients(a: &[NamedGradient], b: &[NamedGradient]) -> GradientComparison {
    const FLOOR: f32 = 1e-3;
    let mut worst = GradientComparison::default();
    let global = b
        .iter()
        .flat_map(|g| g.values.iter())
        .fold(0f32, |m, v| m.max(v.abs()));
    for (ga, gb) in a.iter().zip(b) {
        if ga.values.len() != gb.values.len() {
            worst.missing += 1;
            continue;
        }
        if gb.values.is_empty() {
            continue;
        }
        worst.compared += 1;
        let scale = gb
            .values
            .iter()
            .fold(0f32, |m, v| m.max(v.abs()))
            .max(FLOOR * global)
            .max(1e-30);
        // A non-finite value on either side is an infinite difference (f32::max drops NaN).
        let diff = ga.values.iter().zip(&gb.values).fold(0f32, |m, (x, y)| {
            let d = (x - y).abs();
            if d.is_finite() {
                m.max(d)
            } else {
                f32::INFINITY
            }
        });
        let rel = diff / scale;
        worst.per_tensor.push((gb.name.clone(), rel));
        if rel > worst.max_relative || worst.worst.is_empty() {
            worst.max_relative = rel.max(worst.max_relative);
            worst.worst = gb.name.clone();
        }
    }
    worst.missing += a.len().abs_diff(b.len());
    worst
}

/// The outcome of [`compare_gradients`].
#[derive(Debug, Clone, Default)]
pub struct GradientComparison {
    /// Tensors compared.
    pub compared: usize,
    /// Tensors with a gradient on one side only (or of another size).
    pub missing: usize,
    /// The largest relative difference over every tensor.
    pub max_relative: f32,
    /// Name of the tensor where it occurs.
    pub worst: String,
    /// Every compared tensor's name and relative difference, in visiting order.
    pub per_tensor: Vec<(String, f32)>,
}

impl GradientComparison {
    /// The tensors whose relative difference exceeds `tolerance`, with it.
    pub fn above(&self, tolerance: f32) -> Vec<(String, f32)> {
        self.per_tensor
            .iter()
            .filter(|(_, r)| !(*r <= tolerance))
            .cloned()
            .collect()
    }
}
