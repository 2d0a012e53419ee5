//! Backward pass: the [`Autodiff`] implementation of [`AttentionBackend`] that registers the
//! fused backward kernels (launched by `forward.rs`, the wgpu implementation) as the backward
//! step of `fused_attention`.
//!
//! Mirrors `backward.rs` of burn's `custom-wgpu-kernel` example.

use burn::backend::AutodiffBackend;
use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::tensor::FloatTensor;

use super::AttentionBackend;

/// Autodiff over any backend that implements the fused op (in practice `CubeBackend` on wgpu).
///
/// The forward saves Q, K, V, O and the LSE (all O(b·h·L·d)); the backward recomputes the
/// scores tile by tile through [`AttentionBackend::fused_attention_backward`].
impl<B: AttentionBackend, C: CheckpointStrategy> AttentionBackend for Autodiff<B, C> {
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        #[derive(Debug)]
        struct FusedAttentionBackward;

        impl<B: AttentionBackend> Backward<B, 3> for FusedAttentionBackward {
            /// (Q, K, V, O, LSE) of the forward call.
            type State = (
                FloatTensor<B>,
                FloatTensor<B>,
                FloatTensor<B>,
                FloatTensor<B>,
                FloatTensor<B>,
            );

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_q, node_k, node_v] = ops.parents;
                let grad_out = grads.consume::<B>(&ops.node);
                let (q, k, v, out, lse) = ops.state;

                let (grad_q, grad_k, grad_v) =
                    B::fused_attention_backward(q, k, v, out, lse, grad_out);

                if let Some(node) = node_q {
                    grads.register::<B>(node.id, grad_q);
                }
                if let Some(node) = node_k {
                    grads.register::<B>(node.id, grad_k);
                }
                if let Some(node) = node_v {
                    grads.register::<B>(node.id, grad_v);
                }
            }
        }

        let prepared = FusedAttentionBackward
            .prepare::<C>([q.node(), k.node(), v.node()])
            // Recomputing the forward is the expensive part; keep its state instead.
            .compute_bound()
            .stateful();
        match prepared {
            OpsKind::Tracked(prep) => {
                let (q, k, v) = (q.into_primitive(), k.into_primitive(), v.into_primitive());
                let (out, lse) = B::fused_attention(q.clone(), k.clone(), v.clone());
                let state = (q, k, v, out.clone(), lse.clone());
                let out = prep.finish(state, out);
                // The LSE is an auxiliary output: no gradient flows through it.
                (out, <Self as AutodiffBackend>::from_inner(lse))
            }
            OpsKind::UnTracked(prep) => {
                let (out, lse) =
                    B::fused_attention(q.into_primitive(), k.into_primitive(), v.into_primitive());
                (prep.finish(out), <Self as AutodiffBackend>::from_inner(lse))
            }
        }
    }

    fn fused_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        out: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        grad_out: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // Not differentiable itself (no double backward): results are untracked leaves.
        let (grad_q, grad_k, grad_v) = B::fused_attention_backward(
            q.into_primitive(),
            k.into_primitive(),
            v.into_primitive(),
            out.into_primitive(),
            lse.into_primitive(),
            grad_out.into_primitive(),
        );
        (
            <Self as AutodiffBackend>::from_inner(grad_q),
            <Self as AutodiffBackend>::from_inner(grad_k),
            <Self as AutodiffBackend>::from_inner(grad_v),
        )
    }
}
