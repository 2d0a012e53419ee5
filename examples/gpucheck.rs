//! The network on wgpu vs flex for one spectrum of `T` frames, with each attention choice:
//! `cargo run --example gpucheck -- CONFIG WEIGHTS T...`.
use burn::tensor::{Device, Distribution, Tensor};
use locosep::model::config::ModelConfig;
use locosep::model::loader::from_state_dict;
use locosep::model::network::{AttentionImpl, ForwardOptions};
use locosep::model::state_dict::load_state_dict;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = ModelConfig::from_file(std::path::Path::new(&args[0])).unwrap();
    let sd = load_state_dict(&args[1]).unwrap();
    let cpu = Device::flex();
    let gpu = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    let net_c = from_state_dict(&cfg, &sd, &cpu).unwrap();
    let net_g = from_state_dict(&cfg, &sd, &gpu).unwrap();
    let host_c = net_c.host_network();
    let host_opts = ForwardOptions {
        attention: AttentionImpl::kernels(host_c.as_ref()),
        ..Default::default()
    };
    let fused = ForwardOptions {
        attention: AttentionImpl::Fused,
        ..Default::default()
    };
    println!(
        "largest allocation on the GPU: {:?} bytes",
        locosep::kernels::device::max_allocation_bytes(&gpu)
    );
    let f = cfg.n_fft / 2 + 1;
    for t in args[2..].iter().map(|a| a.parse::<usize>().unwrap()) {
        let x = Tensor::<4>::random(
            [1, 2 * cfg.audio_channels, t, f],
            Distribution::Normal(0.0, 1.0),
            &cpu,
        );
        let want: Vec<f32> = net_c
            .forward(x.clone(), host_opts)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let ops: Vec<f32> = net_c
            .forward(x.clone(), fused)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let d = ops
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        println!("T={t} flex burn-ops vs flex host: max diff {d:.3e}");
        let xg = Tensor::<4>::from_data(x.clone().into_data(), &gpu);
        let (_, tc) = net_c.forward_with_taps(x.clone(), fused);
        let (_, tg) = net_g.forward_with_taps(xg.clone(), fused);
        for ((n, a), (_, b)) in tc.into_iter().zip(tg) {
            let a: Vec<f32> = a.into_data().try_to_vec::<f32>().unwrap();
            let b: Vec<f32> = b.into_data().try_to_vec::<f32>().unwrap();
            let d = a
                .iter()
                .zip(&b)
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            println!("  tap {n}: {d:.3e}");
        }
        for (name, opts) in [
            (
                "fused",
                ForwardOptions {
                    max_chunk_bytes: Some(256 << 20),
                    ..fused
                },
            ),
            ("fused-nochunk", fused),
            (
                "reference-chunked",
                ForwardOptions {
                    max_chunk_bytes: Some(256 << 20),
                    attention: AttentionImpl::Reference,
                },
            ),
            (
                "reference",
                ForwardOptions {
                    attention: AttentionImpl::Reference,
                    ..Default::default()
                },
            ),
        ] {
            let got: Vec<f32> = net_g
                .forward(xg.clone(), opts)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let d = got
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            let m = want.iter().fold(0f32, |m, a| m.max(a.abs()));
            println!("T={t} {name}: max diff {d:.3e} (max |ref| {m:.3})");
        }
    }
}
