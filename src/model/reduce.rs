//! Row reductions that stay exact for long rows on every backend.
//!
//! burn-wgpu 0.22's `sum_dim`/`mean_dim` return wrong values when the reduced dimension is
//! longer than 2¹⁸ = 262 144 (measured on lavapipe with `cargo run --example reducecheck`:
//! for 300 000 values only about the first 262 144 are summed), while full `sum()` is right.
//! The encoder's GroupNorm reduces C·T·F values per item (≈ 400 k already for the mss-tiny
//! fixture model on 3 s) and the training losses reduce whole segments, so both go through
//! [`sum_rows`], which reduces in stages of at most [`STAGE`] values.

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
pub fn var_mean_rows(x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let mean = mean_rows(x.clone());
    let var = mean_rows((x - mean.clone()).square());
    (var, mean)
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
