//! burn-wgpu 0.22 conv weight gradients vs flex at model sizes (one call each):
//! `cargo build --profile test --example convgrad`, then run `target/debug/examples/convgrad`;
//! `convgrad C_IN C_OUT F T…` scans one 3×3 Conv2d per T instead.
use burn::tensor::module::{conv_transpose2d, conv1d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
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
    if std::env::args().len() > 1 {
        return scan(&cpu, &gpu);
    }
    for (b, t, f) in [
        (8usize, 261usize, 129usize),
        (8, 130, 129),
        (8, 64, 129),
        (4, 64, 129),
        (2, 64, 129),
        (1, 64, 129),
        (1, 32, 129),
    ] {
        let x = Tensor::<4>::random([b, 2, t, f], Distribution::Normal(0.0, 1.0), &cpu);
        let w = Tensor::<4>::random([8, 2, 3, 3], Distribution::Normal(0.0, 0.3), &cpu);
        let wt = Tensor::<4>::random([8, 8, 3, 3], Distribution::Normal(0.0, 0.3), &cpu);
        let r = Tensor::<4>::random([b, 8, t, f], Distribution::Normal(0.0, 1.0), &cpu);
        let mut res = vec![];
        for dev in [cpu.clone().autodiff(), gpu.clone().autodiff()] {
            let xs = Tensor::<4>::from_data(x.clone().into_data(), &dev).require_grad();
            let ws = Tensor::<4>::from_data(w.clone().into_data(), &dev).require_grad();
            let wts = Tensor::<4>::from_data(wt.clone().into_data(), &dev).require_grad();
            let rs = Tensor::<4>::from_data(r.clone().into_data(), &dev);
            let y = conv2d(
                xs.clone(),
                ws.clone(),
                None,
                ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
            );
            let z = conv_transpose2d(
                y,
                wts.clone(),
                None,
                ConvTransposeOptions::new([1, 1], [1, 1], [0, 0], [1, 1], 1),
            );
            let l = (z * rs).sum();
            let g = l.backward();
            res.push((
                v(xs.grad(&g).unwrap()),
                v(ws.grad(&g).unwrap()),
                v(wts.grad(&g).unwrap()),
            ));
        }
        println!(
            "conv2d b={b} t={t} f={f} BTF={}: gx {:.2e} gw {:.2e} gwt {:.2e}",
            b * t * f,
            rel(&res[0].0, &res[1].0),
            rel(&res[0].1, &res[1].1),
            rel(&res[0].2, &res[1].2)
        );
    }
    for (n, l) in [
        (1032usize, 261usize),
        (1032, 128),
        (516, 128),
        (258, 128),
        (64, 128),
    ] {
        let x = Tensor::<3>::random([n, 8, l], Distribution::Normal(0.0, 1.0), &cpu);
        let w = Tensor::<3>::random([32, 8, 4], Distribution::Normal(0.0, 0.3), &cpu);
        let lo = l + 3;
        let r = Tensor::<3>::random([n, 32, lo], Distribution::Normal(0.0, 1.0), &cpu);
        let mut res = vec![];
        for dev in [cpu.clone().autodiff(), gpu.clone().autodiff()] {
            let xs = Tensor::<3>::from_data(x.clone().into_data(), &dev).require_grad();
            let ws = Tensor::<3>::from_data(w.clone().into_data(), &dev).require_grad();
            let rs = Tensor::<3>::from_data(r.clone().into_data(), &dev);
            let y = conv1d(
                xs.clone(),
                ws.clone(),
                None,
                ConvOptions::new([1], [3], [1], 1),
            );
            let g = (y * rs).sum().backward();
            res.push((v(xs.grad(&g).unwrap()), v(ws.grad(&g).unwrap())));
        }
        println!(
            "conv1d n={n} l={l} NL={}: gx {:.2e} gw {:.2e}",
            n * l,
            rel(&res[0].0, &res[1].0),
            rel(&res[0].1, &res[1].1)
        );
    }
}

/// `convgrad C_IN C_OUT F T…`: one 3×3 Conv2d per T (batch 1), its weight-gradient error.
fn scan(cpu: &Device, gpu: &Device) {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (cin, cout, f) = (args[0], args[1], args[2]);
    for &t in &args[3..] {
        let b = 1;
        let x = Tensor::<4>::random([b, cin, t, f], Distribution::Normal(0.0, 1.0), cpu);
        let w = Tensor::<4>::random([cout, cin, 3, 3], Distribution::Normal(0.0, 0.3), cpu);
        let r = Tensor::<4>::random([b, cout, t, f], Distribution::Normal(0.0, 1.0), cpu);
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
