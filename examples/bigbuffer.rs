//! Whether the wgpu device takes one buffer above its largest allocation (cubecl's
//! `max_page_size`): `cargo run --example bigbuffer -- MIB…` makes a tensor of each size,
//! adds one to it and reads one value back, catching a panic.
use burn::tensor::{Device, Tensor};
fn main() {
    let gpu = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    let limit = locosep::kernels::device::max_allocation_bytes(&gpu);
    println!("max_allocation_bytes: {limit:?}");
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    for mib in sizes {
        let n = mib * (1 << 20) / 4;
        let r = std::panic::catch_unwind(|| {
            let x = Tensor::<1>::zeros([n], &gpu) + 1.0;
            let v: f32 = x.slice([n - 1..n]).into_scalar();
            v
        });
        match r {
            Ok(v) => println!("{mib} MiB: ok (last value {v})"),
            Err(e) => println!(
                "{mib} MiB: panicked: {}",
                e.downcast_ref::<String>()
                    .map(String::as_str)
                    .or(e.downcast_ref::<&str>().copied())
                    .unwrap_or("?")
            ),
        }
    }
}
