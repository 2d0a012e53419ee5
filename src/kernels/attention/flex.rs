//! The CPU implementation of [`AttentionBackend`] for burn's `flex` backend: the blocked host
//! kernels of `cpu.rs`, rayon over (batch · head). With the `Autodiff` implementation in
//! `backward.rs` this gives training on the CPU attention whose memory is O(batch·heads·L·d)
//! — the plain-ops path keeps `batch·heads·L²` probabilities for the backward instead.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use super::AttentionBackend;
use super::cpu::{BackScratch, HeadScratch, attention_head, attention_head_backward};

/// Contiguous f32 host copy of a flex tensor (a view when it already is one) and its dims.
fn host(t: &FlexTensor) -> (std::borrow::Cow<'_, [f32]>, Vec<usize>) {
    let dims: Vec<usize> = t.layout().shape().iter().copied().collect();
    assert_eq!(t.dtype(), DType::F32, "CPU attention runs in f32");
    match t.as_slice::<f32>() {
        Some(s) => (std::borrow::Cow::Borrowed(s), dims),
        None => (
            std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>().unwrap().to_vec()),
            dims,
        ),
    }
}

fn tensor(data: Vec<f32>, dims: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, dims.to_vec()))
}

impl AttentionBackend for Flex {
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (qh, dims) = host(&q);
        let (kh, vh) = (host(&k).0, host(&v).0);
        let [b, h, l, d] = [dims[0], dims[1], dims[2], dims[3]];
        let mut out = vec![0f32; b * h * l * d];
        let mut lse = vec![0f32; b * h * l];
        out.par_chunks_mut(l * d)
            .zip(lse.par_chunks_mut(l))
            .enumerate()
            .for_each_init(HeadScratch::default, |sc, (i, (o, lse))| {
                let r = i * l * d..(i + 1) * l * d;
                attention_head(&qh[r.clone()], &kh[r.clone()], &vh[r], o, l, d, sc);
                lse.copy_from_slice(&sc.lse[..l]);
            });
        (tensor(out, &dims), tensor(lse, &[b, h, l]))
    }

    fn fused_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        out: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        grad_out: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (qh, dims) = host(&q);
        let (kh, vh, oh, lh, gh) = (
            host(&k).0,
            host(&v).0,
            host(&out).0,
            host(&lse).0,
            host(&grad_out).0,
        );
        let [b, h, l, d] = [dims[0], dims[1], dims[2], dims[3]];
        let n = b * h * l * d;
        let (mut dq, mut dk, mut dv) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
        dq.par_chunks_mut(l * d)
            .zip(dk.par_chunks_mut(l * d))
            .zip(dv.par_chunks_mut(l * d))
            .enumerate()
            .for_each_init(BackScratch::default, |sc, (i, ((dq, dk), dv))| {
                let r = i * l * d..(i + 1) * l * d;
                attention_head_backward(
                    (&qh[r.clone()], &kh[r.clone()], &vh[r.clone()]),
                    &oh[r.clone()],
                    &lh[i * l..(i + 1) * l],
                    &gh[r],
                    (dq, dk, dv),
                    l,
                    d,
                    sc,
                );
            });
        (tensor(dq, &dims), tensor(dk, &dims), tensor(dv, &dims))
    }
}
