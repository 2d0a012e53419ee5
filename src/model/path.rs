//! The two paths of a TF-Locoformer block as a type: the axis each one's attention runs along,
//! the order they run in (`tf_order`), the reference's names for them, and how the residual
//! stream `[B, T, F, C]` is viewed as each one's independent sequences.
//!
//! Every piece of code that walks a block's paths (the burn-ops blocks, the host blocks, the
//! golden taps, activation checkpointing) takes the order from [`PathAxis::in_order`], so it is
//! written down once.

use burn::tensor::Tensor;

use super::config::TfOrder;

/// The axis a path's attention runs along, and how the residual stream `[B, T, F, C]` is
/// viewed as that path's independent sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathAxis {
    /// Sequences are frames: `[B·T, F, C]` (a reshape, no copy). original: `freq_path`.
    Frequency,
    /// Sequences are bins: `[B·F, T, C]` (T and F swapped). original: `frame_path`.
    Time,
}

impl PathAxis {
    /// The two paths in the order a block with `order` runs them.
    pub fn in_order(order: TfOrder) -> [PathAxis; 2] {
        match order {
            TfOrder::FreqTime => [PathAxis::Frequency, PathAxis::Time],
            TfOrder::TimeFreq => [PathAxis::Time, PathAxis::Frequency],
        }
    }

    /// The reference's attribute name of the path (`freq_path`, `frame_path`), as used in
    /// checkpoint keys and golden tap names.
    pub fn name(self) -> &'static str {
        match self {
            PathAxis::Frequency => "freq_path",
            PathAxis::Time => "frame_path",
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn order_follows_tf_order_and_names_follow_the_reference() {
        let names = |o| PathAxis::in_order(o).map(PathAxis::name);
        assert_eq!(names(TfOrder::FreqTime), ["freq_path", "frame_path"]);
        assert_eq!(names(TfOrder::TimeFreq), ["frame_path", "freq_path"]);
    }

    /// Rows of the frequency path are frames, rows of the time path bins, and `from_rows`
    /// undoes `to_rows`.
    #[test]
    fn rows_are_frames_or_bins_and_round_trip() {
        let dev = Device::flex();
        let dims = [2, 3, 5, 4];
        let x = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &dev);
        let want = x.clone().into_data();
        for axis in [PathAxis::Frequency, PathAxis::Time] {
            let rows = axis.to_rows(x.clone());
            let [b, t, f, c] = dims;
            let expected = match axis {
                PathAxis::Frequency => [b * t, f, c],
                PathAxis::Time => [b * f, t, c],
            };
            assert_eq!(rows.dims(), expected);
            // Row 1 of the time path is bin 1 of item 0: x[0, :, 1, :].
            if axis == PathAxis::Time {
                let row = rows.clone().narrow(0, 1, 1).reshape([t, c]);
                let bin = x.clone().narrow(0, 0, 1).narrow(2, 1, 1).reshape([t, c]);
                row.into_data().assert_eq(&bin.into_data(), true);
            }
            axis.from_rows(rows, dims)
                .into_data()
                .assert_eq(&want, true);
        }
    }
}
