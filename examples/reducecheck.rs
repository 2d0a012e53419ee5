//! wgpu vs flex for a long reduction: `cargo run --example reducecheck`.
use burn::tensor::{Device, Distribution, Tensor};
fn main() {
    let cpu = Device::flex();
    let gpu = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    for n in [200_000usize, 262_144, 262_145, 300_000, 412_800, 1_000_000] {
        let x = Tensor::<2>::random([1, n], Distribution::Normal(0.5, 1.0), &cpu);
        let xg = Tensor::<2>::from_data(x.clone().into_data(), &gpu);
        let (vc, mc) = x.clone().var_mean_bias(1);
        let (vg, mg) = xg.clone().var_mean_bias(1);
        let s_c: f32 = x.clone().sum().into_scalar();
        let s_g: f32 = xg.clone().sum().into_scalar();
        let m_c: f32 = x.clone().mean_dim(1).into_scalar();
        let m_g: f32 = xg.clone().mean_dim(1).into_scalar();
        let sd_c: f32 = x.clone().sum_dim(1).into_scalar();
        let sd_g: f32 = xg.clone().sum_dim(1).into_scalar();
        let sq_g: f32 = (xg.clone() * xg.clone()).sum_dim(1).into_scalar();
        let sq_c: f32 = (x.clone() * x.clone()).sum_dim(1).into_scalar();
        println!("n={n}: sum_dim {sd_c} vs {sd_g}; sum sq {sq_c} vs {sq_g}");
        println!(
            "n={n}: var {} vs {}, mean {} vs {}, sum {s_c} vs {s_g}, mean_dim {m_c} vs {m_g}",
            vc.into_scalar::<f32>(),
            vg.into_scalar::<f32>(),
            mc.into_scalar::<f32>(),
            mg.into_scalar::<f32>()
        );
    }
}
