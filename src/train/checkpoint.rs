//! Activation checkpointing per block, with the paths' backward in sub-batches and, optionally,
//! the kept block inputs in host memory.
//!
//! A plain autograd step keeps every block's activations until the backward (for `balanced` at
//! 10 s that is hundreds of GiB). Here one training step is:
//!
//! 1. **Forward without autograd** (the network's plain copy, [`Module::valid`]): the encoder,
//!    then each block, keeping only each block's input (on the device, or copied to host memory
//!    with [`CheckpointOptions::offload`]).
//! 2. **Head**: the last block's output, made a leaf that requires a gradient, goes through the
//!    decoder and the loss with autograd; its backward gives the decoder's gradients and
//!    `g = dL/dx_N`.
//! 3. **Blocks, last to first**: block `i`'s first path is recomputed without autograd to get
//!    the second path's input; then each path, second first, runs its sequences in sub-batches
//!    with autograd on a leaf input, and `sum(out · g)` is differentiated: the sub-batch's
//!    parameter gradients (accumulated) and its input gradient (assembled into the next `g`).
//!    Paths treat their sequences independently (norms over channels, attention and
//!    convolutions along the sequence), so the sub-batches' gradients sum to the whole path's.
//! 4. **Encoder**: recomputed with autograd, backward of `sum(x_0 · g)`.
//!
//! The result equals plain autograd up to summation order (`tests::matches_plain_autograd`);
//! the cost is one more forward of each block. Device memory at the backward is the kept block
//! inputs (one with offload), `g`, one path sub-batch's activations and the path's assembled
//! input gradient; `memory::planner` models exactly these phases
//! ([`Mode::TrainingCheckpointed`](crate::memory::planner::Mode::TrainingCheckpointed)).
//!
//! [`Module::valid`]: burn::module::Module::valid

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};

use crate::model::network::{ForwardOptions, LocoPath, PathAxis, TfLocoformer};

/// How a checkpointed step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckpointOptions {
    /// Sequences per sub-batch on the frequency path (`None`: all at once).
    pub frequency_rows: Option<usize>,
    /// Sequences per sub-batch on the time path (`None`: all at once).
    pub time_rows: Option<usize>,
    /// Keep the block inputs in host memory instead of on the device (one block input on the
    /// device at a time; costs a copy each way per block and step).
    pub offload: bool,
}

impl CheckpointOptions {
    fn rows(&self, axis: PathAxis) -> usize {
        match axis {
            PathAxis::Frequency => self.frequency_rows,
            PathAxis::Time => self.time_rows,
        }
        .unwrap_or(usize::MAX)
    }
}

/// A kept block input.
enum Kept {
    Device(Tensor<4>),
    Host(TensorData, Device),
}

impl Kept {
    fn new(x: Tensor<4>, offload: bool) -> Self {
        if offload {
            let device = x.device();
            Kept::Host(x.into_data(), device)
        } else {
            Kept::Device(x)
        }
    }

    fn load(self) -> Tensor<4> {
        match self {
            Kept::Device(x) => x,
            Kept::Host(data, device) => Tensor::from_data(data, &device),
        }
    }
}

/// One checkpointed forward + backward of `net` (on an autodiff device) on `spec`; `head` maps
/// the network's output to the scalar loss (decoder output → waveform → loss).
///
/// Returns the loss (detached) and the gradients of every parameter, ready for the optimizer.
///
/// # Shapes
/// - spec: `[B, 2·ac, T, F]`
/// - `head` input: `[B, 2·S·ac, T, F]`; output `[1]`
pub fn checkpointed_gradients(
    net: &TfLocoformer,
    spec: Tensor<4>,
    opts: ForwardOptions,
    options: Option<CheckpointOptions>,
    head: impl FnOnce(Tensor<4>) -> Tensor<1>,
) -> (Tensor<1>, GradientsParams) {
    let options = options.unwrap_or_default();
    let plain = net.valid();
    let mut acc = GradientsAccumulator::<TfLocoformer>::new();

    // 1. Forward without autograd, keeping each block's input.
    let mut x = plain.encode(spec.clone().inner());
    let mut kept = Vec::with_capacity(plain.blocks.len());
    for block in &plain.blocks {
        let next = forward_block(block, x.clone(), opts, &options);
        kept.push(Kept::new(x, options.offload));
        x = next;
    }

    // 2. Decoder and loss with autograd.
    let leaf = x.autodiff().require_grad();
    let loss = head(net.decode(
        leaf.clone(),
        net.decoder_needs_input().then(|| spec.clone()),
    ));
    let mut grads = loss.backward();
    let mut g = leaf
        .grad_remove(&mut grads)
        .expect("the network output depends on the last block's output");
    acc.accumulate(net, GradientsParams::from_module(&mut grads, net));
    drop((grads, leaf));

    // 3. Blocks, last to first.
    for (i, kept) in kept.into_iter().enumerate().rev() {
        let x = kept.load();
        let [(_, first_axis), (_, second_axis)] = net.blocks[i].paths_in_order();
        let [(first_plain, _), _] = plain.blocks[i].paths_in_order();
        let dims = x.dims();
        let y = first_axis.from_rows(
            first_plain.forward_sub_batched(
                first_axis.to_rows(x.clone()),
                options.rows(first_axis),
                opts,
            ),
            dims,
        );
        let [(first, _), (second, _)] = net.blocks[i].paths_in_order();
        let gy = path_backward(net, second, second_axis, y, g, opts, &options, &mut acc);
        g = path_backward(net, first, first_axis, x, gy, opts, &options, &mut acc);
    }

    // 4. Encoder with autograd.
    let x0 = net.encode(spec);
    let mut grads = (x0 * g.autodiff()).sum().backward();
    acc.accumulate(net, GradientsParams::from_module(&mut grads, net));
    (loss.detach(), acc.grads())
}

/// A block's forward without autograd, with the checkpoint's sub-batches.
///
/// # Shapes
/// - x, output: `[B, T, F, C]`
fn forward_block(
    block: &crate::model::network::LocoBlock,
    mut x: Tensor<4>,
    opts: ForwardOptions,
    options: &CheckpointOptions,
) -> Tensor<4> {
    for (path, axis) in block.paths_in_order() {
        let dims = x.dims();
        x = axis.from_rows(
            path.forward_sub_batched(axis.to_rows(x), options.rows(axis), opts),
            dims,
        );
    }
    x
}

/// Backward of one path given its input `x` (no autograd) and its output gradient `g`:
/// accumulates the path's parameter gradients into `acc` and returns the input gradient.
///
/// # Shapes
/// - x, g, output: `[B, T, F, C]`
#[allow(clippy::too_many_arguments)]
fn path_backward(
    net: &TfLocoformer,
    path: &LocoPath,
    axis: PathAxis,
    x: Tensor<4>,
    g: Tensor<4>,
    opts: ForwardOptions,
    options: &CheckpointOptions,
    acc: &mut GradientsAccumulator<TfLocoformer>,
) -> Tensor<4> {
    let dims = x.dims();
    let rows_x = axis.to_rows(x);
    let rows_g = axis.to_rows(g);
    let n = rows_x.dims()[0];
    let rows = options.rows(axis).clamp(1, n);
    let mut input_grads = Vec::with_capacity(n.div_ceil(rows));
    for (xs, gs) in rows_x.split(rows, 0).into_iter().zip(rows_g.split(rows, 0)) {
        let leaf = xs.autodiff().require_grad();
        let out = path.forward_sub_batched(leaf.clone(), usize::MAX, opts);
        let mut grads = (out * gs.autodiff()).sum().backward();
        input_grads.push(
            leaf.grad_remove(&mut grads)
                .expect("a path's output depends on its input"),
        );
        acc.accumulate(net, GradientsParams::from_module(&mut grads, net));
    }
    axis.from_rows(Tensor::cat(input_grads, 0), dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::preset;
    use crate::model::loader::{from_state_dict, init_state_dict};
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::Distribution;

    /// Every parameter's gradient, in visiting order.
    struct Collect<'a>(&'a GradientsParams, Vec<Vec<f32>>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let g = self
                .0
                .get::<D>(param.id)
                .map(|g| g.into_data().convert::<f32>().try_to_vec::<f32>().unwrap())
                .unwrap_or_default();
            self.1.push(g);
        }
    }

    fn grads_of(net: &TfLocoformer, grads: &GradientsParams) -> Vec<Vec<f32>> {
        let mut c = Collect(grads, vec![]);
        net.visit(&mut c);
        c.1
    }

    /// A 2-block demo network on 0.1 s; loss = a fixed weighting of the output, so the
    /// gradient reaches every parameter.
    #[test]
    fn matches_plain_autograd() {
        let device = Device::flex().autodiff();
        let mut cfg = preset("demo").unwrap().config;
        cfg.n_layers = 2;
        let net = from_state_dict(&cfg, &init_state_dict(&cfg, 3), &device).unwrap();
        let t = cfg.n_frames(4410);
        let f = cfg.n_freqs();
        device.seed(7);
        let spec = Tensor::<4>::random([2, 2, t, f], Distribution::Normal(0.0, 1.0), &device);
        let out_dims = [2, 2 * cfg.n_sources(), t, f];
        let w = Tensor::<4>::random(out_dims, Distribution::Normal(0.0, 1.0), &device);
        let head = |out: Tensor<4>| (out * w.clone()).powi_scalar(2).mean();
        let opts = ForwardOptions {
            attention: crate::model::network::AttentionImpl::Fused,
            ..Default::default()
        };

        let loss = head(net.forward(spec.clone(), opts));
        let plain = GradientsParams::from_grads(loss.backward(), &net);
        let expected = grads_of(&net, &plain);
        let loss_value = loss.into_scalar::<f32>();

        for options in [
            CheckpointOptions::default(),
            CheckpointOptions {
                frequency_rows: Some(5),
                time_rows: Some(7),
                offload: true,
            },
        ] {
            let (l, grads) = checkpointed_gradients(&net, spec.clone(), opts, Some(options), head);
            assert!((l.into_scalar::<f32>() - loss_value).abs() <= 1e-6 * loss_value.abs());
            let got = grads_of(&net, &grads);
            assert_eq!(got.len(), expected.len());
            let mut worst = 0f32;
            for (a, b) in got.iter().zip(&expected) {
                assert_eq!(
                    a.len(),
                    b.len(),
                    "every parameter has a gradient ({options:?})"
                );
                assert!(!b.is_empty());
                let scale = b.iter().fold(1e-12f32, |m, v| m.max(v.abs()));
                for (x, y) in a.iter().zip(b) {
                    worst = worst.max((x - y).abs() / scale);
                }
            }
            assert!(
                worst < 1e-4,
                "{options:?}: worst relative difference {worst}"
            );
        }
    }
}
