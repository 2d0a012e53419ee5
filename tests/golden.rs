//! Golden parity against the PyTorch reference (tests/fixtures/tflocoformer, copied from the
//! shared fixture set): every intermediate tap, all three weight formats, flex and wgpu.
//! Tolerance: max |a − b| ≤ 1e-4 · max(1, max |ref|) per tensor.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use locosep::model::config::ModelConfig;
use locosep::model::loader::from_state_dict;
use locosep::model::network::{AttentionImpl, ForwardOptions};
use locosep::model::state_dict::{StateDict, TensorF32, load_state_dict, read_safetensors};

mod common;
use common::{compare, to_vec};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tflocoformer")
}

/// Builds the `[B, 2, T, F]` encoder input from `<prefix>.real` / `<prefix>.imag` `[B, T, F]`.
fn spec_input(tensors: &StateDict, prefix: &str, device: &Device) -> Tensor<4> {
    let re = &tensors[&format!("{prefix}.real")];
    let im = &tensors[&format!("{prefix}.imag")];
    let [b, t, f] = [re.shape[0], re.shape[1], re.shape[2]];
    let re = Tensor::<3>::from_data(TensorData::new(re.data.clone(), [b, t, f]), device);
    let im = Tensor::<3>::from_data(TensorData::new(im.data.clone(), [b, t, f]), device);
    Tensor::stack(vec![re, im], 1)
}

/// Runs the network on a fixture folder and checks every tap and the outputs, with `opts`, or
/// (`None`) with what a separation uses on `device`: the host blocks on flex, the fused kernel
/// on wgpu.
fn check_folder(
    folder: &str,
    weights: &str,
    input: &str,
    out_prefix: &str,
    device: &Device,
    opts: Option<ForwardOptions<'static>>,
) {
    let dir = fixtures().join(folder);
    let cfg = ModelConfig::from_file(&dir.join("config.json")).unwrap();
    let sd = load_state_dict(&dir.join(weights)).unwrap();
    let net = from_state_dict(&cfg, &sd, device).unwrap();
    let tensors = read_safetensors(&dir.join("tensors.safetensors")).unwrap();
    let host = net.host_network();
    let opts = opts.unwrap_or(ForwardOptions {
        attention: AttentionImpl::kernels(host.as_ref()),
        ..Default::default()
    });
    let (out, taps) = net.forward_with_taps(spec_input(&tensors, input, device), opts);
    let mut report = vec![];
    for (name, t) in taps {
        if let Some(want) = tensors.get(&name) {
            report.push(compare(&name, &to_vec(t), want));
        }
    }
    // Output channel 2s = real, 2s+1 = imaginary of source s → reference `[B, S, T, F]`.
    let [b, ch, t, f] = out.dims();
    let s = ch / 2;
    let out = out.reshape([b, s, 2, t, f]);
    for (part, idx) in [("real", 0), ("imag", 1)] {
        let got = to_vec(out.clone().narrow(2, idx, 1).reshape([b, s, t, f]));
        report.push(compare(
            &format!("{out_prefix}.{part}"),
            &got,
            &tensors[&format!("{out_prefix}.{part}")],
        ));
    }
    let failures: Vec<_> = report.iter().filter_map(|r| r.as_ref().err()).collect();
    // tiny-separator stores encoder + 3 taps per block; mss-tiny stores only the outputs.
    let want = tensors
        .keys()
        .filter(|k| k.starts_with("encoder") || k.starts_with("block") || k.starts_with(out_prefix))
        .count();
    assert_eq!(report.len(), want, "every stored tap must be compared");
    assert!(
        failures.is_empty(),
        "{folder}/{weights} diverges (first listed first):\n{failures:#?}"
    );
}

fn devices() -> Vec<(&'static str, Device)> {
    vec![
        ("flex", Device::flex()),
        (
            "wgpu",
            Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        ),
    ]
}

#[test]
fn tiny_separator_all_taps_all_weight_formats() {
    for (dev_name, device) in devices() {
        for weights in ["weights.safetensors", "espnet_checkpoint.pth"] {
            eprintln!("tiny-separator {weights} on {dev_name}");
            check_folder("tiny-separator", weights, "input", "output", &device, None);
        }
    }
}

#[test]
fn mss_tiny_network_all_weight_formats() {
    for (dev_name, device) in devices() {
        for weights in ["weights.safetensors", "checkpoint.pth"] {
            eprintln!("mss-tiny {weights} on {dev_name}");
            check_folder("mss-tiny", weights, "stft", "separated", &device, None);
        }
    }
}

#[test]
fn sub_batched_paths_match_one_batch() {
    // 2 KiB per chunk forces many sub-batches on both paths; the result must not change.
    let opts = ForwardOptions {
        max_chunk_bytes: Some(2048),
        attention: AttentionImpl::Fused,
    };
    check_folder(
        "tiny-separator",
        "weights.safetensors",
        "input",
        "output",
        &Device::flex(),
        Some(opts),
    );
}

#[test]
fn mss_tiny_waveform_in_waveforms_out_on_both_backends() {
    use locosep::engine::Separator;
    use locosep::engine::device::ResolvedDevice;
    let dir = fixtures().join("mss-tiny");
    let cfg = ModelConfig::from_file(&dir.join("config.json")).unwrap();
    let sd = load_state_dict(&dir.join("checkpoint.pth")).unwrap();
    let tensors = read_safetensors(&dir.join("tensors.safetensors")).unwrap();
    let mix = &tensors["mixture"];
    let (b, n) = (mix.shape[0], mix.shape[1]);
    let items: Vec<Vec<Vec<f32>>> = (0..b)
        .map(|i| vec![mix.data[i * n..(i + 1) * n].to_vec()])
        .collect();
    for (name, device) in devices() {
        let resolved = ResolvedDevice {
            is_wgpu: name == "wgpu",
            device,
            description: name.into(),
            warnings: vec![],
        };
        let sep = Separator::new(cfg.clone(), &sd, resolved).unwrap();
        let out = sep.forward_waveforms(&items).unwrap();
        for (s, stem) in cfg.sources.iter().enumerate() {
            let got: Vec<f32> = out
                .iter()
                .flat_map(|item| item[s][0].iter().copied())
                .collect();
            compare(&format!("{name} {stem}"), &got, &tensors[stem]).unwrap();
        }
    }
}

/// Whole model, forward and backward: the attention kernels (WGSL on wgpu, the host kernels
/// on flex) against the plain-ops reference attention, through the tiny-separator fixture
/// weights. Compared: the output, the gradient of a weighted sum of it w.r.t. the input
/// spectrum and w.r.t. the encoder, attention and FFN weights of every block.
#[test]
fn whole_model_forward_and_backward_kernels_match_reference() {
    use burn::module::Param;
    let dir = fixtures().join("tiny-separator");
    let cfg = ModelConfig::from_file(&dir.join("config.json")).unwrap();
    let sd = load_state_dict(dir.join("weights.safetensors")).unwrap();
    let tensors = read_safetensors(dir.join("tensors.safetensors")).unwrap();
    for (dev_name, device) in devices() {
        let ad = device.clone().autodiff();
        let run = |reference: bool| {
            let net = from_state_dict(&cfg, &sd, &ad).unwrap();
            let x = spec_input(&tensors, "input", &ad).require_grad();
            let opts = ForwardOptions {
                attention: if reference {
                    AttentionImpl::Reference
                } else {
                    AttentionImpl::Fused
                },
                ..Default::default()
            };
            let out = net.forward(x.clone(), opts);
            // A fixed, non-constant upstream gradient.
            let n = out.shape().num_elements();
            let w: Vec<f32> = (0..n)
                .map(|i| ((i * 7919) % 997) as f32 / 997.0 - 0.5)
                .collect();
            let w = Tensor::<1>::from_data(TensorData::new(w, [n]), &ad).reshape(out.dims());
            let grads = (out.clone() * w).sum().backward();
            let g = |p: &Param<Tensor<2>>| to_vec(p.val().grad(&grads).expect("param grad"));
            let g3 = |p: &Param<Tensor<3>>| to_vec(p.val().grad(&grads).expect("param grad"));
            let mut named: Vec<(String, Vec<f32>)> = vec![
                ("output".into(), to_vec(out)),
                (
                    "d input".into(),
                    to_vec(x.grad(&grads).expect("input grad")),
                ),
                (
                    "d encoder".into(),
                    match &net.encoder {
                        locosep::model::network::Encoder::Conv(e) => {
                            to_vec(e.enc_w.val().grad(&grads).expect("encoder grad"))
                        }
                        locosep::model::network::Encoder::BandSplit(_) => {
                            unreachable!("tiny-separator is a TF-Locoformer")
                        }
                    },
                ),
            ];
            for (i, b) in net.blocks.iter().enumerate() {
                for (path, p) in [("freq", &b.freq_path), ("time", &b.frame_path)] {
                    named.push((format!("d block.{i}.{path}.qkv"), g(&p.attn.qkv)));
                    named.push((format!("d block.{i}.{path}.out"), g(&p.attn.out)));
                    named.push((format!("d block.{i}.{path}.ffn"), g3(&p.ffn_post.conv_w)));
                }
            }
            named
        };
        let (kernels, reference) = (run(false), run(true));
        for ((name, got), (_, want)) in kernels.iter().zip(&reference) {
            let want = TensorF32 {
                shape: vec![want.len()],
                data: want.clone(),
            };
            if let Err(e) = compare(&format!("{dev_name} {name}"), got, &want) {
                panic!("{e}");
            }
        }
    }
}

/// A GPU failure mid-separation (injected: the backend panics as on an allocation failure)
/// is caught: the job is retried on the GPU with a smaller plan, and when that fails too, on
/// the CPU — each time with a warning — and the stems equal a CPU run's.
#[test]
fn gpu_failure_retries_smaller_then_falls_back_to_the_cpu() {
    use locosep::engine::device::{DeviceChoice, resolve};
    use locosep::engine::separator::{CancelToken, SeparateParams, Separator};
    let dir = fixtures().join("mss-tiny");
    let cfg = ModelConfig::from_file(&dir.join("config.json")).unwrap();
    let sd = load_state_dict(dir.join("weights.safetensors")).unwrap();
    let gpu = resolve(DeviceChoice::Gpu).expect("a wgpu adapter (lavapipe in CI)");
    assert!(gpu.is_wgpu);
    let n = 30_000;
    let tone: Vec<f32> = (0..n).map(|i| 0.3 * (i as f32 * 0.031).sin()).collect();
    let audio = locosep::audio::AudioBuffer::new(44_100, vec![tone]).unwrap();
    let params = SeparateParams::default();
    let cpu = Separator::new(cfg.clone(), &sd, resolve(DeviceChoice::Cpu).unwrap()).unwrap();
    let want = cpu
        .separate(&audio, &params, &CancelToken::new(), &mut |_| {})
        .unwrap();
    for failures in [1, 2] {
        let sep = Separator::new(cfg.clone(), &sd, gpu.clone())
            .unwrap()
            .with_simulated_gpu_failures(failures);
        let mut warnings = Vec::new();
        let stems = sep
            .separate_or_cpu(
                &audio,
                &params,
                &CancelToken::new(),
                &mut |_| {},
                &mut |device, w| warnings.push(format!("{device}: {w}")),
            )
            .expect("separated after the failure");
        assert_eq!(warnings.len(), failures, "{warnings:?}");
        assert!(
            warnings[0].contains("out of device memory") && warnings[0].contains("smaller plan"),
            "{}",
            warnings[0]
        );
        if failures == 2 {
            assert!(warnings[1].starts_with("CPU") && warnings[1].contains("again"));
        }
        for (a, b) in stems.audio.iter().zip(&want.audio) {
            let diff = a.channels[0]
                .iter()
                .zip(&b.channels[0])
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                diff < 1e-4,
                "result after {failures} failure(s) differs from a CPU run by {diff}"
            );
        }
        assert_eq!(
            sep.simulated_gpu_failures_left(),
            0,
            "every failure was hit"
        );
    }
}
