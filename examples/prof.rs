//! Times the parts of one TF-Locoformer path at the `small` preset's real sizes (flex).
use burn::tensor::{Device, Distribution, Tensor};
use locosep::model::config::preset;
use locosep::model::loader::{from_state_dict, init_state_dict};
use std::time::Instant;

fn sync<const D: usize>(x: &Tensor<D>) {
    let _ = x.clone().flatten::<1>(0, D - 1).narrow(0, 0, 1).into_data();
}
fn t<const D: usize>(name: &str, f: impl FnOnce() -> Tensor<D>) -> Tensor<D> {
    let t0 = Instant::now();
    let x = f();
    sync(&x);
    eprintln!("{name:<34} {:.3} s", t0.elapsed().as_secs_f64());
    x
}
fn main() {
    if std::env::var_os("KERNEL_ONLY").is_some() {
        return kernel_only();
    }
    let dev = Device::flex();
    let cfg = preset("small").unwrap().config;
    let net = from_state_dict(&cfg, &init_state_dict(&cfg, 0), &dev).unwrap();
    let p = &net.blocks[0].freq_path;
    for (name, n, l) in [("freq", 690, 513), ("time", 1026, 345)] {
        let x = Tensor::<3>::random([n, l, cfg.emb_dim], Distribution::Default, &dev);
        let y = t(&format!("{name} norm"), || p.attn_norm.forward(x.clone()));
        t(&format!("{name} ffn"), || p.ffn_post.forward(y.clone()));
        t(&format!("{name} attn (incl. qkv, rope)"), || {
            p.attn.forward(y.clone(), None)
        });
        let (h, d) = (cfg.n_heads, cfg.head_dim());
        let qkv = t(&format!("{name}  qkv linear"), || {
            burn::tensor::module::linear(y.clone(), p.attn.qkv.val(), None)
        });
        let q = t(&format!("{name}  split q"), || {
            qkv.clone()
                .reshape([n, l, 3, h, d])
                .narrow(2, 0, 1)
                .reshape([n, l, h, d])
                .swap_dims(1, 2)
        });
        let qr = t(&format!("{name}  rope"), || {
            p.attn.rope.as_ref().unwrap().apply(q.clone())
        });
        let o = t(&format!("{name}  attention()"), || {
            locosep::kernels::attention::attention(qr.clone(), qr.clone(), qr.clone(), None)
        });
        t(&format!("{name}  merge + out"), || {
            burn::tensor::module::linear(
                o.clone().swap_dims(1, 2).reshape([n, l, h * d]),
                p.attn.out.val(),
                None,
            )
        });
        let cw = p.ffn_post.conv_w.val();
        let yt = t(&format!("{name}  ffn swap in"), || {
            y.clone().swap_dims(1, 2) + 0.0
        });
        let z = t(&format!("{name}  ffn conv1d"), || {
            burn::tensor::module::conv1d(
                yt.clone(),
                cw.clone(),
                Some(p.ffn_post.conv_b.val()),
                burn::tensor::ops::ConvOptions {
                    stride: [1],
                    padding: [(3, 3)],
                    dilation: [1],
                    groups: 1,
                },
            )
        });
        let hdn = cw.dims()[0] / 2;
        let g = t(&format!("{name}  ffn gate"), || {
            z.clone().narrow(1, 0, hdn)
                * burn::tensor::activation::silu(z.clone().narrow(1, hdn, hdn))
        });
        let zz = t(&format!("{name}  ffn deconv"), || {
            burn::tensor::module::conv_transpose1d(
                g.clone(),
                p.ffn_post.deconv_w.val(),
                Some(p.ffn_post.deconv_b.val()),
                burn::tensor::ops::ConvTransposeOptions::new([1], [0], [0], [1], 1),
            )
        });
        t(&format!("{name}  ffn crop+swap"), || {
            zz.clone().narrow(2, 3, l).swap_dims(1, 2) + 0.0
        });
        t(&format!("{name} swap_dims copy"), || {
            x.clone()
                .reshape([2, n / 2, l, cfg.emb_dim])
                .swap_dims(1, 2)
                .reshape([n, l, cfg.emb_dim])
                + 0.0
        });
    }
}

#[allow(dead_code)]
fn kernel_only() {
    // KERNEL_SHAPE="bh,l,d" overrides the small preset's frequency-path shape.
    let shape: Vec<usize> = std::env::var("KERNEL_SHAPE")
        .unwrap_or_else(|_| "2760,513,12".into())
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect();
    let (bh, l, d) = (shape[0], shape[1], shape[2]);
    let v: Vec<f32> = (0..bh * l * d)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let mut out = vec![0f32; v.len()];
    let t0 = Instant::now();
    locosep::kernels::attention::cpu::attention_cpu(&v, &v, &v, &mut out, bh, l, d);
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "kernel only ({bh}×{l}×{d})  {secs:.3} s, {:.2} ns per score",
        secs * 1e9 / (bh * l * l) as f64
    );
    let dev = Device::flex();
    let t = Tensor::<4>::from_data(
        burn::tensor::TensorData::new(v.clone(), [bh, 1, l, d]),
        &dev,
    );
    let t0 = Instant::now();
    let h = t
        .clone()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    eprintln!(
        "into_data                          {:.3} s ({})",
        t0.elapsed().as_secs_f64(),
        h.len()
    );
    let t0 = Instant::now();
    let back = Tensor::<4>::from_data(burn::tensor::TensorData::new(h, [bh, 1, l, d]), &dev);
    sync(&back);
    eprintln!(
        "from_data                          {:.3} s",
        t0.elapsed().as_secs_f64()
    );
}
