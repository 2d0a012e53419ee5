//! Global-norm gradient clipping, as the reference trainers do it (the fork and mixit-mss call
//! PyTorch's `clip_grad_norm_(params, max_norm)`): the norm of **all** gradients together,
//! `sqrt(Σ_p ‖g_p‖²)`, and every gradient scaled by `min(1, max_norm / (norm + 1e-6))`.
//! burn's `GradientClippingConfig::Norm` instead clips each tensor by its own norm, which
//! changes the direction of the update and is not what the published models were trained with.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use crate::model::reduce::sum_rows;

/// PyTorch's guard against a zero norm in `clip_grad_norm_`.
const EPS: f64 = 1e-6;

/// Scales `grads` (of `module`'s parameters) so that their global norm is at most `max_norm`;
/// returns the norm before clipping (what PyTorch's `clip_grad_norm_` returns).
pub fn clip_global_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let mut sq = SquaredNorm { grads, total: 0.0 };
    module.visit(&mut sq);
    let norm = sq.total.sqrt();
    let coef = max_norm / (norm + EPS);
    if coef < 1.0 {
        module.visit(&mut Scale { grads, coef });
    }
    norm
}

struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    total: f64,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let n = g.shape().num_elements();
            // Staged: one wgpu reduction over more than 2¹⁸ values is wrong (`reduce`).
            let s = sum_rows(g.square().reshape([1, n.max(1)]));
            let v = s
                .into_data()
                .convert::<f64>()
                .try_to_vec::<f64>()
                .ok()
                .and_then(|v| v.first().copied())
                .unwrap_or(f64::NAN);
            self.total += v;
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    coef: f64,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let id: ParamId = param.id;
        if let Some(g) = self.grads.remove::<D>(id) {
            self.grads.register(id, g.mul_scalar(self.coef));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[derive(Module, Debug)]
    struct Two {
        a: Param<Tensor<1>>,
        b: Param<Tensor<1>>,
    }

    /// Gradients [3, 4] and [12] (global norm 13): clipping to 6.5 halves both; burn's
    /// per-tensor clipping would leave the first and cut the second alone.
    fn grads(device: &Device) -> (Two, GradientsParams) {
        let p = |v: Vec<f32>| {
            let n = v.len();
            Param::from_tensor(Tensor::<1>::from_data(TensorData::new(v, [n]), device))
        };
        let m = Two {
            a: p(vec![1.0, 1.0]),
            b: p(vec![1.0]),
        };
        let wa = Tensor::<1>::from_data(TensorData::new(vec![3f32, 4.0], [2]), device);
        let wb = Tensor::<1>::from_data(TensorData::new(vec![12f32], [1]), device);
        let loss = (m.a.val() * wa).sum() + (m.b.val() * wb).sum();
        let g = GradientsParams::from_grads(loss.backward(), &m);
        (m, g)
    }

    fn vals(g: &GradientsParams, id: ParamId) -> Vec<f32> {
        g.get::<1>(id)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn clips_by_the_norm_of_all_gradients_together() {
        let device = Device::flex().autodiff();
        let (m, mut g) = grads(&device);
        let norm = clip_global_norm(&m, &mut g, 6.5);
        assert!((norm - 13.0).abs() < 1e-5, "{norm}");
        let coef = 6.5 / (13.0 + 1e-6);
        for (got, want) in vals(&g, m.a.id).iter().zip([3.0 * coef, 4.0 * coef]) {
            assert!((f64::from(*got) - want).abs() < 1e-5, "{got} vs {want}");
        }
        assert!((f64::from(vals(&g, m.b.id)[0]) - 12.0 * coef).abs() < 1e-5);
    }

    #[test]
    fn gradients_under_the_limit_are_untouched() {
        let device = Device::flex().autodiff();
        let (m, mut g) = grads(&device);
        let norm = clip_global_norm(&m, &mut g, 20.0);
        assert!((norm - 13.0).abs() < 1e-5);
        assert_eq!(vals(&g, m.a.id), vec![3.0, 4.0]);
        assert_eq!(vals(&g, m.b.id), vec![12.0]);
    }
}
