//! Scaled dot-product attention without the score matrix.
//!
//! The frequency path of TF-Locoformer attends over L = F bins with a batch of B·T frames; a
//! materialised score tensor costs `batch · heads · L² · 4 B` (80.89 GiB for the balanced
//! preset), so on wgpu attention runs as a fused WGSL kernel (tiled, online softmax, the
//! log-sum-exp saved for a backward that recomputes scores tile by tile): memory
//! O(batch · heads · L · d) forward and backward. Elsewhere the plain-ops reference runs in
//! sub-batches sized by the caller.
//!
//! Layout follows burn's `custom-wgpu-kernel` example: [`AttentionBackend`] is the backend
//! extension trait, `forward.rs` the wgpu implementation, `backward.rs` the autodiff one, and
//! [`attention_reference`] the same maths in tensor ops.
//!
//! Entry point for model code: [`attention`].

mod backward;
pub mod bench;
pub mod cpu;
mod flex;
mod forward;

use forward::MAX_HEAD_DIM;

use burn::backend::{Dispatch, DispatchDevice, backend_extension, tensor::FloatTensor};
use burn::tensor::{DType, Device, Tensor, activation};

/// Backend extension trait for fused attention.
///
/// Implemented for burn's cubecl backend (`CubeBackend`, wgpu runtime only, f32: WGSL
/// kernels), for `Flex` (CPU: the host kernels of `cpu.rs`) and for `Autodiff` over either. Call it through [`fused_attention`] rather than directly.
#[backend_extension(Autodiff, Cube, Flex)]
pub trait AttentionBackend: burn::backend::Backend {
    /// Fused softmax(Q Kᵀ / √d) V.
    ///
    /// # Shapes
    ///
    /// - `q`, `k`, `v`: `[batch, heads, L, d]` (same shape, f32)
    /// - returns `(out [batch, heads, L, d], lse [batch, heads, L])`, where
    ///   `lse[i] = log Σⱼ exp(qᵢ·kⱼ / √d)` is the per-row log-sum-exp. Gradients flow through
    ///   `out` only.
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// Gradients of [`fused_attention`](AttentionBackend::fused_attention)'s `out` w.r.t.
    /// Q, K and V, recomputing the scores tile by tile (no L² buffer). Not itself
    /// differentiable.
    ///
    /// # Shapes
    ///
    /// - `q`, `k`, `v`, `out`, `grad_out`: `[batch, heads, L, d]`
    /// - `lse`: `[batch, heads, L]`, as returned by the forward
    /// - returns `(grad_q, grad_k, grad_v)`, each `[batch, heads, L, d]`
    fn fused_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        out: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        grad_out: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// Whether [`fused_attention`] can run on `device`: a wgpu device, plain or autodiff.
///
/// burn 0.22 has one `Cube` backend for every cubecl runtime; the runtime is a property of the
/// device value (`DispatchDevice::Cube(cubecl::Device::Wgpu(..))`), possibly wrapped in
/// `DispatchDevice::Autodiff`. The kernels are WGSL, which the wgpu runtime compiles as long as
/// burn's `vulkan`/`metal` features (SPIR-V/MSL compilers) are off, as they are in locosep.
pub fn fused_available(device: &Device) -> bool {
    fn is_wgpu(device: &DispatchDevice) -> bool {
        match device {
            DispatchDevice::Cube(burn::cubecl::Device::Wgpu(_)) => true,
            DispatchDevice::Autodiff(inner) => is_wgpu(inner),
            _ => false,
        }
    }
    is_wgpu(device.as_dispatch())
}

/// Whether the CPU implementation of [`AttentionBackend`] serves `device`: burn's `flex`,
/// plain or autodiff.
pub fn cpu_kernel_available(device: &Device) -> bool {
    fn is_flex(device: &DispatchDevice) -> bool {
        match device {
            DispatchDevice::Flex(_) => true,
            DispatchDevice::Autodiff(inner) => is_flex(inner),
            _ => false,
        }
    }
    is_flex(device.as_dispatch())
}

/// Fused attention on a wgpu device (WGSL kernels) or a flex device (host kernels), returning the output and the per-row log-sum-exp.
///
/// Differentiable (w.r.t. `q`, `k`, `v`) on an autodiff device.
///
/// # Shapes
///
/// - `q`, `k`, `v`: `[batch, heads, L, d]`, f32, L ≥ 1, 1 ≤ d ≤ [`MAX_HEAD_DIM`]
/// - returns `(out [batch, heads, L, d], lse [batch, heads, L])`
///
/// # Panics
///
/// If the tensors are not f32 on a wgpu or flex device (check [`fused_available`] /
/// [`cpu_kernel_available`]) or shapes differ.
pub fn fused_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<3>) {
    let (out, lse) = <Dispatch as AttentionBackend>::fused_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
    );
    (Tensor::from_dispatch(out), Tensor::from_dispatch(lse))
}

/// Attention in plain tensor ops: softmax(q kᵀ / √d) v, materialising the scores.
///
/// # Shapes
///
/// - `q`, `k`, `v`: `[batch, heads, L, d]`
/// - returns `[batch, heads, L, d]`
pub fn attention_reference(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let d = q.dims()[3];
    let scores = q
        .matmul(k.swap_dims(2, 3))
        .mul_scalar(1.0 / (d as f64).sqrt());
    activation::softmax(scores, 3).matmul(v)
}

/// Frames per sub-batch so that one score tensor `sub · heads · L² · 4 B` fits in
/// `max_score_bytes` (at least 1, at most `batch`).
///
/// # Shapes
///
/// `dims` is `[batch, heads, L, d]`.
fn sub_batch_size(dims: [usize; 4], max_score_bytes: Option<usize>) -> usize {
    let [batch, heads, seq, _] = dims;
    let per_item = heads
        .saturating_mul(seq)
        .saturating_mul(seq)
        .saturating_mul(4);
    match max_score_bytes {
        None => batch.max(1),
        Some(limit) => (limit / per_item.max(1)).clamp(1, batch.max(1)),
    }
}

/// Multi-head attention softmax(q kᵀ / √d) v, the op the model calls.
///
/// On a wgpu device (plain or autodiff) with f32 tensors this is the fused WGSL kernel, on a
/// flex device (plain or autodiff) the host kernels of `cpu.rs`: no score tensor exists and
/// memory is O(batch · heads · L · d), forward and backward. Anywhere else it is
/// [`attention_reference`] run in sub-batches along dim 0, so that no single score tensor
/// `sub_batch · heads · L² · 4 B` exceeds `max_score_bytes` (`None`: one batch). A single item
/// larger than the limit still runs, alone.
///
/// # Shapes
///
/// - `q`, `k`, `v`: `[batch, heads, L, d]` (RoPE already applied)
/// - returns `[batch, heads, L, d]`
pub fn attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    max_score_bytes: Option<usize>,
) -> Tensor<4> {
    let dims = q.dims();
    let f32 = q.dtype() == DType::F32;
    if fused_available(&q.device()) && f32 && dims[3] <= MAX_HEAD_DIM {
        return fused_attention(q, k, v).0;
    }
    if cpu_kernel_available(&q.device()) && f32 {
        // CPU (flex, plain or autodiff): the host kernels of `cpu.rs` — no score tensor beyond
        // a few rows per thread, forward or backward, so no sub-batching is needed.
        return fused_attention(q, k, v).0;
    }
    attention_reference_chunked(q, k, v, max_score_bytes)
}

/// [`attention_reference`] in sub-batches along dim 0, so that no single score tensor
/// `sub_batch · heads · L² · 4 B` exceeds `max_score_bytes` (`None`: one batch; a single item
/// larger than the limit still runs, alone). Any backend, differentiable.
///
/// # Shapes
///
/// - `q`, `k`, `v`: `[batch, heads, L, d]`
/// - returns `[batch, heads, L, d]`
pub fn attention_reference_chunked(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    max_score_bytes: Option<usize>,
) -> Tensor<4> {
    let dims = q.dims();
    let batch = dims[0];
    let sub = sub_batch_size(dims, max_score_bytes);
    if sub >= batch {
        return attention_reference(q, k, v);
    }
    let parts: Vec<Tensor<4>> = (0..batch)
        .step_by(sub)
        .map(|start| {
            let len = sub.min(batch - start);
            attention_reference(
                q.clone().narrow(0, start, len),
                k.clone().narrow(0, start, len),
                v.clone().narrow(0, start, len),
            )
        })
        .collect();
    Tensor::cat(parts, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_batch_respects_the_limit() {
        // 8 frames, 4 heads, L = 513: one item's scores = 4·513²·4 B = 4 210 704 B.
        let dims = [8, 4, 513, 12];
        assert_eq!(sub_batch_size(dims, None), 8);
        assert_eq!(sub_batch_size(dims, Some(4_210_704 * 3)), 3);
        assert_eq!(sub_batch_size(dims, Some(4_210_704 * 3 - 1)), 2);
        assert_eq!(sub_batch_size(dims, Some(1)), 1);
        assert_eq!(sub_batch_size(dims, Some(usize::MAX)), 8);
    }

    #[test]
    fn section_splits_prelude_and_kernels() {
        let src = "pre\n//! kernel: a\nA\n//! kernel: b\nB\n";
        assert_eq!(forward::section(src, Some("a")), "pre\nA\n");
        assert_eq!(forward::section(src, Some("b")), "pre\nB\n");
        assert_eq!(forward::section(src, None), src);
    }

    #[test]
    fn flex_is_not_fused() {
        assert!(!fused_available(&Device::flex()));
        assert!(!fused_available(&Device::flex().autodiff()));
    }

    #[test]
    fn chunked_reference_equals_whole_on_flex() {
        let device = Device::flex();
        let shape = [5, 2, 9, 8];
        let q = Tensor::<4>::random(shape, burn::tensor::Distribution::Default, &device);
        let k = Tensor::<4>::random(shape, burn::tensor::Distribution::Default, &device);
        let v = Tensor::<4>::random(shape, burn::tensor::Distribution::Default, &device);
        let whole = attention_reference(q.clone(), k.clone(), v.clone());
        // Two items per chunk: 2·2·81·4 B.
        let chunked = attention(q, k, v, Some(2 * 2 * 81 * 4));
        let diff = (whole - chunked).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-6, "chunked differs by {diff}");
    }
}
