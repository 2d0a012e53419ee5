//! Row reductions that stay exact for long rows on every backend.
//!
//! burn-wgpu 0.22's `sum_dim`/`mean_dim` return wrong values when the reduced dimension is
//! longer than 2¹⁸ = 262 144 (measured on lavapipe with `cargo run --example reducecheck`:
//! for 300 000 values only about the first 262 144 are summed), while full `sum()` is right.
//! The encoder's GroupNorm reduces C·T·F values per item (≈ 400 k already for the mss-tiny
//! fixture model on 3 s) and the training losses reduce whole segments, so both go through
//! [`sum_rows`], which reduces in stages of at most [`STAGE`] values.
//!
//! The backward has the same trap in another place: autodiff reduces the gradient of a
//! tensor that was *implicitly broadcast* (a norm gain `[1, 1, C]` times `[N, L, C]`, a conv
//! bias, a per-item mean) with one `sum_dims` over all broadcast dimensions together, N·L
//! values. Tracked small tensors therefore meet big ones only through [`expand_to`] (burn's
//! `expand`, whose backward sums one dimension at a time, each far below 2¹⁸) or
//! [`broadcast_rows`] (a long row split into stages first). Gradients on wgpu then equal
//! flex's (`tests/training_gpu.rs` compares every parameter past the limit).

use burn::tensor::Tensor;

/// Values reduced by one `sum_dim` call (well under the 2¹⁸ where wgpu goes wrong).
pub const STAGE: usize = 1 << 16;

/// Sum of each row.
///
/// # Shapes
/// - x: `[R, N]`
/// - output: `[R, 1]`
pub fn sum_rows(x: Tensor<2>) -> Tensor<2> {
    let [r, n] = x.dims();
    if n <= STAGE {
        return x.sum_dim(1);
    }
    // Split the row as [n / s, s] with s the largest divisor of n up to STAGE: a reshape of a
    // contiguous tensor, no copy (C·T·F and segment lengths always have one). A row with no
    // divisor of useful size (n nearly prime) is zero-padded instead, which costs a copy.
    let s = (MIN_SPLIT..=STAGE).rev().find(|s| n % s == 0);
    let (x, s) = match s {
        Some(s) => (x, s),
        None => {
            let k = n.div_ceil(STAGE);
            let pad = Tensor::<2>::zeros([r, k * STAGE - n], &x.device());
            (Tensor::cat(vec![x, pad], 1), STAGE)
        }
    };
    let [_, padded] = x.dims();
    let k = padded / s;
    sum_rows(x.reshape([r, k, s]).sum_dim(2).reshape([r, k]))
}

/// Smallest split [`sum_rows`] accepts before it pads instead.
const MIN_SPLIT: usize = 256;

/// `p` broadcast to `shape` explicitly, for combining a tracked small tensor (a gain, a bias)
/// with a big one: the gradient of `p` is then reduced one dimension at a time.
///
/// Invariant: every dimension `p` is broadcast along is at most 2¹⁸ (true of the model's
/// B·F, B·T, T, F and C axes for any song up to the 600 s segment limit).
///
/// # Shapes
/// - p: `shape` with some dimensions 1
/// - output: `shape`
pub fn expand_to<const D: usize>(p: Tensor<D>, shape: [usize; D]) -> Tensor<D> {
    debug_assert!(
        p.dims()
            .iter()
            .zip(shape)
            .all(|(&a, b)| a == b || (a == 1 && b <= 1 << 18)),
        "expand_to {:?} → {shape:?}",
        p.dims()
    );
    p.expand(shape)
}

/// A per-row value broadcast along rows of length `n`, with a gradient reduced in stages of at
/// most [`STAGE`] values (the row is viewed as `[k, s]` with `s` a divisor of `n`). Rows with no
/// divisor in `256..=STAGE` (n nearly prime and above 2¹⁸) fall back to one expand.
///
/// # Shapes
/// - m: `[R, 1]`
/// - output: `[R, n]`
pub fn broadcast_rows(m: Tensor<2>, n: usize) -> Tensor<2> {
    let [r, _] = m.dims();
    if n <= STAGE {
        return m.expand([r, n]);
    }
    match (MIN_SPLIT..=STAGE).rev().find(|s| n % s == 0) {
        Some(s) => m.reshape([r, 1, 1]).expand([r, n / s, s]).reshape([r, n]),
        None => m.expand([r, n]),
    }
}

/// Mean of each row.
///
/// # Shapes
/// - x: `[R, N]`
/// - output: `[R, 1]`
pub fn mean_rows(x: Tensor<2>) -> Tensor<2> {
    let [_, n] = x.dims();
    sum_rows(x) / n.max(1) as f64
}

/// Biased variance and mean of each row (two passes: the mean, then the mean square
/// deviation), as `var_mean_bias(1)`.
///
/// # Shapes
/// - x: `[R, N]`
/// - output: (`[R, 1]`, `[R, 1]`)
fn var_mean_rows(x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let [_, n] = x.dims();
    let mean = mean_rows(x.clone());
    let var = mean_rows((x - broadcast_rows(mean.clone(), n)).square());
    (var, mean)
}

/// Each row normalised to zero mean and unit biased variance, `(x − mean) / sqrt(var + eps)`
/// (GroupNorm with one group before its affine part), exact in value and gradient for long
/// rows on every backend.
///
/// # Shapes
/// - x: `[R, N]`
/// - output: `[R, N]`
pub fn normalize_rows(x: Tensor<2>, eps: f64) -> Tensor<2> {
    let [_, n] = x.dims();
    let (var, mean) = var_mean_rows(x.clone());
    (x - broadcast_rows(mean, n)) / broadcast_rows(var.add_scalar(eps).sqrt(), n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn host(t: Tensor<2>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    /// On flex and on wgpu (lavapipe in CI), rows of 300 007 values (a prime: the
    /// padded split) and of 16·173·257 (an encoder's C·T·F: the reshaped split): the staged
    /// reductions equal a float64 sum on the host. (burn-wgpu's own `sum_dim` fails this.)
    #[test]
    fn long_rows_reduce_exactly_on_both_backends() {
        for n in [300_007, 16 * 173 * 257] {
            check_rows(n);
        }
    }

    fn check_rows(n: usize) {
        let x = Tensor::<2>::random([2, n], Distribution::Normal(0.5, 1.0), &Device::flex());
        let v = host(x.clone());
        let want: Vec<(f64, f64)> = (0..2)
            .map(|r| {
                let row = &v[r * n..(r + 1) * n];
                let mean = row.iter().map(|&a| f64::from(a)).sum::<f64>() / n as f64;
                let var = row
                    .iter()
                    .map(|&a| (f64::from(a) - mean).powi(2))
                    .sum::<f64>()
                    / n as f64;
                (mean, var)
            })
            .collect();
        for device in [
            Device::flex(),
            Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        ] {
            let xd = Tensor::<2>::from_data(x.clone().into_data(), &device);
            let (var, mean) = var_mean_rows(xd);
            let (var, mean) = (host(var), host(mean));
            for r in 0..2 {
                assert!(
                    (f64::from(mean[r]) - want[r].0).abs() < 1e-4,
                    "{device:?} mean"
                );
                assert!(
                    (f64::from(var[r]) - want[r].1).abs() < 1e-4,
                    "{device:?} var"
                );
            }
        }
    }
}
