//! The model's convolutions, cut into pieces when gradients are recorded, so that their weight
//! gradients stay exact on wgpu.
//!
//! burn-wgpu 0.22's convolution *weight* backward goes wrong once one call covers more than
//! about 2¹⁷ output positions (B·H·W; measured on lavapipe with `examples/convgrad.rs`: a
//! Conv2d weight gradient off by 17 % at 134 160 positions and by 69 % at 269 352, a Conv1d one
//! by 18 % at 269 352, all exact up to 66 048), while its forward and input gradient stay exact.
//! The size where it breaks depends on the channels (`examples/convgrad.rs C_IN C_OUT F T…` scans it), so on
//! an autodiff device the FFN's 1-D convolutions run over batch pieces of at most
//! [`POSITIONS`] output positions (autodiff adds the pieces' weight gradients) and the 3×3
//! encoder/decoder convolutions run as nine matrix products, one per tap. Inference devices
//! run burn's single call (same values).
//!
//! Biases are not taken here: callers add them through `reduce::expand_to`.

use burn::tensor::module::{conv_transpose1d, conv_transpose2d, conv1d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Device, Tensor};

use crate::kernels::device::is_autodiff;

/// Output positions of one 1-D convolution call on an autodiff device.
pub const POSITIONS: usize = 1 << 16;

/// Whether a call of `positions` output positions on `device` is cut into pieces.
fn split(device: &Device, positions: usize) -> bool {
    positions > POSITIONS && is_autodiff(device)
}

/// `f` over pieces of at most `rows` items along dim 0 of `x`, concatenated along dim 0.
fn over_batch<const D: usize>(
    x: Tensor<D>,
    rows: usize,
    f: impl Fn(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    let n = x.dims()[0];
    let rows = rows.clamp(1, n.max(1));
    if rows >= n {
        return f(x);
    }
    let parts = (0..n)
        .step_by(rows)
        .map(|s| f(x.clone().narrow(0, s, rows.min(n - s))))
        .collect();
    Tensor::cat(parts, 0)
}

/// Conv1d without bias over a batch of sequences.
///
/// # Shapes
/// - x: `[N, C_in, L]`
/// - w: `[C_out, C_in, K]`
/// - output: `[N, C_out, L']` (L' from `opts`)
pub fn conv1d_nobias(x: Tensor<3>, w: Tensor<3>, opts: ConvOptions<1>) -> Tensor<3> {
    let [n, _, l] = x.dims();
    let k = w.dims()[2];
    let (pl, pr) = opts.padding[0];
    let span = opts.dilation[0] * (k.max(1) - 1) + 1;
    let l_out = (l + pl + pr).saturating_sub(span) / opts.stride[0].max(1) + 1;
    if !split(&x.device(), n * l_out) {
        return conv1d(x, w, None, opts);
    }
    over_batch(x, POSITIONS / l_out.max(1), |x| {
        conv1d(x, w.clone(), None, opts.clone())
    })
}

/// ConvTranspose1d without bias over a batch of sequences.
///
/// # Shapes
/// - x: `[N, C_in, L]`
/// - w: `[C_in, C_out, K]`
/// - output: `[N, C_out, (L−1)·stride + K − 2·padding]`
pub fn conv_transpose1d_nobias(
    x: Tensor<3>,
    w: Tensor<3>,
    opts: ConvTransposeOptions<1>,
) -> Tensor<3> {
    let [n, _, l] = x.dims();
    let k = w.dims()[2];
    let span = opts.dilation[0] * (k.max(1) - 1) + 1;
    let l_out = (l.saturating_sub(1) * opts.stride[0] + span + opts.padding_out[0])
        .saturating_sub(2 * opts.padding[0]);
    if !split(&x.device(), n * l_out) {
        return conv_transpose1d(x, w, None, opts);
    }
    over_batch(x, POSITIONS / l_out.max(1), |x| {
        conv_transpose1d(x, w.clone(), None, opts.clone())
    })
}

/// The 3×3, stride-1, padding-1 Conv2d (`same` size) of the TF-Locoformer encoder, without
/// bias. On an autodiff device it runs as nine matrix products, one per tap (see
/// [`taps_3x3`]).
///
/// # Shapes
/// - x: `[B, C_in, T, F]`
/// - w: `[C_out, C_in, 3, 3]`
/// - output: `[B, C_out, T, F]`
pub fn conv2d_same3(x: Tensor<4>, w: Tensor<4>) -> Tensor<4> {
    if !is_autodiff(&x.device()) {
        return conv2d(x, w, None, ConvOptions::new([1, 1], [1, 1], [1, 1], 1));
    }
    let [b, _, t, f] = x.dims();
    let [co, ci, _, _] = w.dims();
    // out[t, f] = Σ_taps x[t + kh − 1, f + kw − 1] · w[:, :, kh, kw]: tap (kh, kw) reads the
    // zero-padded input shifted by (kh, kw).
    let padded = pad_tf(x.permute([0, 2, 3, 1])); // [B, T+2, F+2, C_in]
    let out = taps_3x3(|kh, kw| {
        let tap = padded
            .clone()
            .narrow(1, kh, t)
            .narrow(2, kw, f)
            .reshape([b * t * f, ci]);
        let wk = w
            .clone()
            .narrow(2, kh, 1)
            .narrow(3, kw, 1)
            .reshape([co, ci]);
        tap.matmul(wk.transpose())
    });
    out.reshape([b, t, f, co]).permute([0, 3, 1, 2])
}

/// The 3×3, stride-1, padding-1 ConvTranspose2d (`same` size) of the TF-Locoformer decoder,
/// without bias, from the blocks' channel-last layout. On an autodiff device it runs as nine
/// matrix products, one per tap (see [`taps_3x3`]).
///
/// # Shapes
/// - x: `[B, T, F, C_in]`
/// - w: `[C_in, C_out, 3, 3]`
/// - output: `[B, C_out, T, F]`
pub fn conv_transpose2d_same3(x: Tensor<4>, w: Tensor<4>) -> Tensor<4> {
    if !is_autodiff(&x.device()) {
        return conv_transpose2d(
            x.permute([0, 3, 1, 2]),
            w,
            None,
            ConvTransposeOptions::new([1, 1], [1, 1], [0, 0], [1, 1], 1),
        );
    }
    let [b, t, f, ci] = x.dims();
    let co = w.dims()[1];
    let flat = x.reshape([b * t * f, ci]);
    // out[t, f] = Σ_taps x[t + 1 − kh, f + 1 − kw] · w[:, :, kh, kw]: tap (kh, kw) is the
    // product x·w_k shifted by (1 − kh, 1 − kw), zero where it falls outside.
    let out = taps_3x3(|kh, kw| {
        let wk = w
            .clone()
            .narrow(2, kh, 1)
            .narrow(3, kw, 1)
            .reshape([ci, co]);
        let y = pad_tf(flat.clone().matmul(wk).reshape([b, t, f, co]));
        y.narrow(1, 2 - kh, t)
            .narrow(2, 2 - kw, f)
            .reshape([b * t * f, co])
    });
    out.reshape([b, t, f, co]).permute([0, 3, 1, 2])
}

/// Σ over the nine taps (kh, kw) ∈ {0,1,2}² of `tap(kh, kw)`.
///
/// Why taps on autodiff devices: burn-wgpu 0.22's convolution weight backward is wrong past a
/// channel-dependent size (see the module doc; a 3×3 Conv2d with 8 in and 8 out channels is
/// exact at 20 640 positions and off by 8 % at 21 930), while matrix-product gradients are
/// exact at any size (the attention projections' gradients at 269 352 rows). The weight
/// gradient of each tap is then one exact product `tapᵀ · grad`.
///
/// # Shapes
/// - each tap: `[P, C_out]`
/// - output: `[P, C_out]`
fn taps_3x3(tap: impl Fn(usize, usize) -> Tensor<2>) -> Tensor<2> {
    let mut acc: Option<Tensor<2>> = None;
    for kh in 0..3 {
        for kw in 0..3 {
            let y = tap(kh, kw);
            acc = Some(match acc {
                None => y,
                Some(a) => a + y,
            });
        }
    }
    acc.expect("nine taps")
}

/// One zero row/column on each side of T and F.
///
/// # Shapes
/// - x: `[B, T, F, C]`
/// - output: `[B, T+2, F+2, C]`
fn pad_tf(x: Tensor<4>) -> Tensor<4> {
    let [b, t, f, c] = x.dims();
    let device = x.device();
    let rows = Tensor::<4>::zeros([b, 1, f, c], &device);
    let x = Tensor::cat(vec![rows.clone(), x, rows], 1);
    let cols = Tensor::<4>::zeros([b, t + 2, 1, c], &device);
    Tensor::cat(vec![cols.clone(), x, cols], 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    /// `max|a − b| ≤ 1e-4 · max(1e-12, max|b|)`.
    fn assert_close(what: &str, a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = b.iter().fold(1e-12f32, |m, v| m.max(v.abs()));
        let d = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(d <= 1e-4 * scale, "{what}: differs by {d} (scale {scale})");
    }

    fn random(shape: Vec<usize>, std: f64) -> TensorData {
        let v = Tensor::<1>::random(
            [shape.iter().product::<usize>()],
            Distribution::Normal(0.0, std),
            &Device::flex(),
        );
        TensorData::new(host(v), shape)
    }

    /// On an autodiff (flex) device the 3×3 convolutions run as nine tap products and give the
    /// outputs and weight gradients of burn's single calls (batches of three and of one item).
    #[test]
    fn same3_taps_equal_one_call_in_value_and_weight_gradient() {
        let ad = Device::flex().autodiff();
        for shape in [[3, 2, 300, 129], [1, 2, 600, 129]] {
            let x = random(shape.to_vec(), 1.0);
            let (w, wt) = (random(vec![4, 2, 3, 3], 0.3), random(vec![4, 3, 3, 3], 0.3));
            let mut runs = vec![];
            for pieces in [true, false] {
                let xs = Tensor::<4>::from_data(x.clone(), &ad);
                let ws = Tensor::<4>::from_data(w.clone(), &ad).require_grad();
                let wts = Tensor::<4>::from_data(wt.clone(), &ad).require_grad();
                let y = if pieces {
                    let h = conv2d_same3(xs, ws.clone()).permute([0, 2, 3, 1]);
                    conv_transpose2d_same3(h, wts.clone())
                } else {
                    let h = conv2d(
                        xs,
                        ws.clone(),
                        None,
                        ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
                    );
                    conv_transpose2d(
                        h,
                        wts.clone(),
                        None,
                        ConvTransposeOptions::new([1, 1], [1, 1], [0, 0], [1, 1], 1),
                    )
                };
                let g = y.clone().square().sum().backward();
                runs.push([
                    host(y.inner()),
                    host(ws.grad(&g).unwrap()),
                    host(wts.grad(&g).unwrap()),
                ]);
            }
            for (i, what) in ["output", "conv2d weight", "conv_transpose2d weight"]
                .iter()
                .enumerate()
            {
                assert_close(&format!("{shape:?} {what}"), &runs[0][i], &runs[1][i]);
            }
        }
    }

    /// The FFN's Conv1d/ConvTranspose1d (kernel 4, stride 1, the FFN's padding) in batch pieces
    /// — 600 sequences of 133 outputs = 79 800 positions — equal single calls, value and
    /// weight gradient.
    #[test]
    fn conv1d_pieces_equal_one_call_in_value_and_weight_gradient() {
        let ad = Device::flex().autodiff();
        let x = random(vec![600, 3, 130], 1.0);
        let (w, wt) = (random(vec![8, 3, 4], 0.3), random(vec![4, 3, 4], 0.3));
        let opts = ConvOptions {
            stride: [1],
            padding: [(3, 3)],
            dilation: [1],
            groups: 1,
        };
        let topts = ConvTransposeOptions::new([1], [0], [0], [1], 1);
        let mut runs = vec![];
        for pieces in [true, false] {
            let xs = Tensor::<3>::from_data(x.clone(), &ad);
            let ws = Tensor::<3>::from_data(w.clone(), &ad).require_grad();
            let wts = Tensor::<3>::from_data(wt.clone(), &ad).require_grad();
            let y = if pieces {
                let h = conv1d_nobias(xs, ws.clone(), opts.clone());
                conv_transpose1d_nobias(h.narrow(1, 0, 4), wts.clone(), topts.clone())
            } else {
                let h = conv1d(xs, ws.clone(), None, opts.clone());
                conv_transpose1d(h.narrow(1, 0, 4), wts.clone(), None, topts.clone())
            };
            let g = y.clone().square().sum().backward();
            runs.push([
                host(y.inner()),
                host(ws.grad(&g).unwrap()),
                host(wts.grad(&g).unwrap()),
            ]);
        }
        for (i, what) in ["output", "conv1d weight", "conv_transpose1d weight"]
            .iter()
            .enumerate()
        {
            assert_close(what, &runs[0][i], &runs[1][i]);
        }
    }
}
