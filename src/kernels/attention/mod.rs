//! TEMPORARY attention (replaced by the fused-kernel module).
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

/// Reference attention, sub-batched along dim 0.
///
/// # Shapes
/// - q, k, v: `[batch, heads, L, d]`
/// - output: `[batch, heads, L, d]`
pub fn attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    max_score_bytes: Option<usize>,
) -> Tensor<4> {
    let [b, h, l, _d] = q.dims();
    let per = 4 * h * l * l;
    let rows = max_score_bytes.map(|m| (m / per).clamp(1, b)).unwrap_or(b);
    if rows >= b {
        return attention_reference(q, k, v);
    }
    let parts: Vec<_> = q
        .split(rows, 0)
        .into_iter()
        .zip(k.split(rows, 0))
        .zip(v.split(rows, 0))
        .map(|((q, k), v)| attention_reference(q, k, v))
        .collect();
    Tensor::cat(parts, 0)
}

/// softmax(q kᵀ/√d) v.
///
/// # Shapes
/// - q, k, v: `[batch, heads, L, d]`
/// - output: `[batch, heads, L, d]`
pub fn attention_reference(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let d = q.dims()[3];
    let s = q
        .matmul(k.swap_dims(2, 3))
        .mul_scalar(1.0 / (d as f64).sqrt());
    softmax(s, 3).matmul(v)
}

/// Whether the fused kernel runs on this device.
pub fn fused_available(_device: &burn::tensor::Device) -> bool {
    false
}
