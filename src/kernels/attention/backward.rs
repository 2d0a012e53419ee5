//! Backward pass: the wgpu launch of the three kernels in `shaders/attention_bwd.wgsl`, and the
//! [`Autodiff`] implementation of [`AttentionBackend`] that registers them as the backward
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
use burn::backend::wgpu::{CubeTensor, into_contiguous};
use burn::tensor::Shape;

use super::AttentionBackend;
use super::forward::{AttentionKernel, BLOCK_ROWS, check_qkv, empty_f32, info_tensor, tile_rows};

/// Backward shader source, templated, with one section per kernel.
const BWD_WGSL: &str = include_str!("../../../shaders/attention_bwd.wgsl");

/// Marker that opens a kernel section in a shader file.
const SECTION_MARKER: &str = "//! kernel: ";

/// The WGSL module for one kernel of a sectioned shader file: the prelude (everything before
/// the first `//! kernel: ` line) followed by section `name`. `None` returns the whole file.
///
/// # Panics
///
/// If `name` is not a section of `source` (a programming error).
pub(super) fn section(source: &str, name: Option<&str>) -> String {
    let Some(name) = name else {
        return source.to_string();
    };
    let mut prelude = String::new();
    let mut body = String::new();
    let mut current: Option<&str> = None;
    for line in source.lines() {
        if let Some(section) = line.strip_prefix(SECTION_MARKER) {
            current = Some(section.trim());
            continue;
        }
        match current {
            None => prelude.push_str(line),
            Some(section) if section == name => body.push_str(line),
            Some(_) => continue,
        }
        if current.is_none() {
            prelude.push('\n');
        } else {
            body.push('\n');
        }
    }
    assert!(!body.is_empty(), "shader section `{name}` not found");
    prelude + &body
}

fn bwd_kernel(name: &'static str, d: usize) -> AttentionKernel {
    AttentionKernel {
        source: section(BWD_WGSL, Some(name)),
        name,
        head_dim: d as u32,
        block_rows: BLOCK_ROWS,
        block_tile: tile_rows(d),
    }
}

/// Launches preprocess, dK/dV and dQ; returns `(dQ, dK, dV)`, each `[b, h, L, d]`.
///
/// Memory: besides the three gradients, one `[b, h, L, 2]` buffer of (LSE, Δ) per row.
pub(super) fn launch_backward(
    q: CubeTensor,
    k: CubeTensor,
    v: CubeTensor,
    out: CubeTensor,
    lse: CubeTensor,
    grad_out: CubeTensor,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let [batch, heads, seq, d] = check_qkv(&q, &k, &v);
    assert_eq!(
        out.meta.shape(),
        q.meta.shape(),
        "attention backward: O shape"
    );
    assert_eq!(
        grad_out.meta.shape(),
        q.meta.shape(),
        "attention backward: dO shape"
    );
    assert_eq!(
        lse.meta.shape(),
        &Shape::new([batch, heads, seq]),
        "attention backward: LSE shape"
    );
    let q = into_contiguous(q);
    let k = into_contiguous(k);
    let v = into_contiguous(v);
    let out = into_contiguous(out);
    let lse = into_contiguous(lse);
    let grad_out = into_contiguous(grad_out);

    let slices = batch * heads;
    let rows = slices * seq;
    let row_tiles = seq.div_ceil(BLOCK_ROWS as usize);
    let info = info_tensor(&q, &[slices as u32, seq as u32, row_tiles as u32]);

    // Δ = rowsum(dO ∘ O), interleaved with the LSE so the later kernels need one binding.
    let stats = empty_f32(&q, Shape::new([batch, heads, seq, 2]));
    bwd_kernel("preprocess", d).launch(
        &q,
        rows.div_ceil(BLOCK_ROWS as usize),
        vec![
            out.handle.clone().binding(),
            grad_out.handle.clone().binding(),
            lse.handle.clone().binding(),
            stats.handle.clone().binding(),
            info.clone().binding(),
        ],
    );

    let shape = Shape::new([batch, heads, seq, d]);
    let grad_k = empty_f32(&q, shape.clone());
    let grad_v = empty_f32(&q, shape.clone());
    bwd_kernel("dkv", d).launch(
        &q,
        slices * row_tiles,
        vec![
            q.handle.clone().binding(),
            k.handle.clone().binding(),
            v.handle.clone().binding(),
            grad_out.handle.clone().binding(),
            stats.handle.clone().binding(),
            grad_k.handle.clone().binding(),
            grad_v.handle.clone().binding(),
            info.clone().binding(),
        ],
    );

    let grad_q = empty_f32(&q, shape);
    bwd_kernel("dq", d).launch(
        &q,
        slices * row_tiles,
        vec![
            q.handle.clone().binding(),
            k.handle.clone().binding(),
            v.handle.clone().binding(),
            grad_out.handle.clone().binding(),
            stats.handle.clone().binding(),
            grad_q.handle.clone().binding(),
            info.binding(),
        ],
    );
    (grad_q, grad_k, grad_v)
}

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
