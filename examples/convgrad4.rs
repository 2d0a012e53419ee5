//! Scan of the burn-wgpu 0.22 Conv2d weight-gradient error vs flex by size:
//! `target/debug/examples/convgrad4 C_IN C_OUT F T...` (after `cargo build --profile test --example convgrad4`).
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};
fn rel(a: &[f32], b: &[f32]) -> f32 {
    let m = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / m
}
fn v<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}
fn main() {
    let cpu = Device::flex();
    let gpu = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (cin, cout, f) = (args[0], args[1], args[2]);
    for &t in &args[3..] {
        let b = 1;
        let x = Tensor::<4>::random([b, cin, t, f], Distribution::Normal(0.0, 1.0), &cpu);
        let w = Tensor::<4>::random([cout, cin, 3, 3], Distribution::Normal(0.0, 0.3), &cpu);
        let r = Tensor::<4>::random([b, cout, t, f], Distribution::Normal(0.0, 1.0), &cpu);
        let mut res = vec![];
        for dev in [cpu.clone().autodiff(), gpu.clone().autodiff()] {
            let xs = Tensor::<4>::from_data(x.clone().into_data(), &dev);
            let ws = Tensor::<4>::from_data(w.clone().into_data(), &dev).require_grad();
            let rs = Tensor::<4>::from_data(r.clone().into_data(), &dev);
            let y = conv2d(
                xs,
                ws.clone(),
                None,
                ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
            );
            let g = (y * rs).sum().backward();
            res.push(v(ws.grad(&g).unwrap()));
        }
        let e = rel(&res[0], &res[1]);
        println!(
            "cin {cin} cout {cout} f {f} t {t}: K {} = 2^{} odd {} err {:.1e} {}",
            t * f,
            (t * f).trailing_zeros(),
            (t * f) >> (t * f).trailing_zeros(),
            e,
            if e > 1e-4 { "BAD" } else { "" }
        );
    }
}
