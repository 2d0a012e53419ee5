//! Golden parity of the band-split variant (BS-Locoformer, both flavours) and of LayerNorm
//! TF-Locoformer against the PyTorch references (tests/fixtures/bslocoformer, copied from the
//! shared fixture set): every stored tensor, every weight file, on flex and on wgpu.
//! Tolerance: max |a − b| ≤ 1e-4 · max(1, max |ref|) per tensor.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use locosep::audio::AudioBuffer;
use locosep::engine::device::{DeviceChoice, resolve};
use locosep::engine::{CancelToken, SeparateParams, Separator};
use locosep::model::config::ModelConfig;
use locosep::model::folder::find_model_files;
use locosep::model::loader::from_state_dict;
use locosep::model::network::{AttentionImpl, ForwardOptions};
use locosep::model::state_dict::{StateDict, load_state_dict, read_safetensors};

mod common;
use common::{compare, to_vec};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bslocoformer")
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

/// The spectrum `[B, 2M, T, F]` from `input.real`/`input.imag` `[B, (M,) T, F]`.
fn spec_input(tensors: &StateDict, m: usize, device: &Device) -> Tensor<4> {
    let re = &tensors["input.real"];
    let im = &tensors["input.imag"];
    let n = re.shape.len();
    let (b, t, f) = (re.shape[0], re.shape[n - 2], re.shape[n - 1]);
    let re = Tensor::<4>::from_data(TensorData::new(re.data.clone(), [b, m, t, f]), device);
    let im = Tensor::<4>::from_data(TensorData::new(im.data.clone(), [b, m, t, f]), device);
    Tensor::cat(vec![re, im], 1)
}

/// Runs a spectral fixture folder and checks every stored tensor, with `opts`, or (`None`) with
/// what a separation uses on `device`: the host blocks on flex, the fused kernel on wgpu.
fn check_spectral(
    folder: &str,
    weights: &str,
    device: &Device,
    opts: Option<ForwardOptions<'static>>,
) {
    let dir = fixtures().join(folder);
    let cfg = ModelConfig::from_file(&dir.join("config.json")).unwrap();
    let sd = load_state_dict(dir.join(weights)).unwrap();
    let net = from_state_dict(&cfg, &sd, device).unwrap();
    let tensors = read_safetensors(dir.join("tensors.safetensors")).unwrap();
    let m = cfg.audio_channels;
    let host = net.host_network();
    let opts = opts.unwrap_or(ForwardOptions {
        attention: AttentionImpl::kernels(host.as_ref()),
        ..Default::default()
    });
    let (out, taps) = net.forward_with_taps(spec_input(&tensors, m, device), opts);
    let mut report = vec![];
    for (name, t) in taps {
        if let Some(want) = tensors.get(&name) {
            report.push(compare(&name, &to_vec(t), want));
        }
    }
    let [b, ch, t, f] = out.dims();
    let s = ch / (2 * m);
    let out = out.reshape([b, s, m, 2, t, f]);
    for (part, idx) in [("real", 0), ("imag", 1)] {
        let got = to_vec(out.clone().narrow(3, idx, 1).reshape([b, s, m, t, f]));
        report.push(compare(
            &format!("output.{part}"),
            &got,
            &tensors[&format!("output.{part}")],
        ));
    }
    let stored = tensors.keys().filter(|k| !k.starts_with("input")).count();
    assert_eq!(report.len(), stored, "every stored tensor must be compared");
    let failures: Vec<_> = report.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{folder}/{weights} diverges (first listed first):\n{failures:#?}"
    );
}

#[test]
fn merl_bs_locoformer_mono_mask_every_tap_every_weight_file() {
    for (dev, device) in devices() {
        for weights in ["weights.safetensors", "checkpoint.pth"] {
            eprintln!("bs-mono-mask {weights} on {dev}");
            check_spectral("bs-mono-mask", weights, &device, None);
        }
    }
}

#[test]
fn merl_bs_locoformer_stereo_mapping_every_tap() {
    for (dev, device) in devices() {
        eprintln!("bs-stereo-map on {dev}");
        check_spectral("bs-stereo-map", "weights.safetensors", &device, None);
    }
}

#[test]
fn layernorm_tf_locoformer_matches_on_both_paths_and_weight_files() {
    for (dev, device) in devices() {
        for weights in ["weights.safetensors", "espnet_checkpoint.pth"] {
            eprintln!("tf-layernorm {weights} on {dev}");
            check_spectral("tf-layernorm", weights, &device, None);
            // The burn-ops blocks too (flex otherwise runs the host path).
            check_spectral(
                "tf-layernorm",
                weights,
                &device,
                Some(ForwardOptions {
                    attention: AttentionImpl::Fused,
                    ..Default::default()
                }),
            );
        }
    }
}

/// The published mixit-mss layout: the folder is the checkpoint, the whole pipeline (mixture
/// normalisation, CSS over four segments, per-segment scale, frame crop, network taps) is
/// pinned tensor by tensor.
#[test]
fn mixit_folder_reproduces_the_whole_pipeline_on_cpu_and_gpu() {
    let dir = fixtures().join("mixit-small");
    let files = find_model_files(&dir).unwrap();
    let cfg = ModelConfig::from_file(&files.config).unwrap();
    assert_eq!(cfg.name, "mixit-small");
    assert_eq!(cfg.sources, vec!["bass", "drums", "vocals", "other"]);
    let sd = load_state_dict(&files.weights).unwrap();
    let tensors = read_safetensors(dir.join("tensors.safetensors")).unwrap();
    for choice in [DeviceChoice::Cpu, DeviceChoice::Gpu] {
        let device = resolve(choice).unwrap();
        let name = device.description.clone();
        let sep = Separator::new(cfg.clone(), &sd, device).unwrap();
        let mut report = vec![];
        // One segment through the wrapper's forward, and the network's taps on it.
        let seg = &tensors["segment.input"];
        let (m, k) = (seg.shape[1], seg.shape[2]);
        let item: Vec<Vec<f32>> = (0..m)
            .map(|c| seg.data[c * k..(c + 1) * k].to_vec())
            .collect();
        let out = sep.forward_waveforms(&[item]).unwrap();
        let flat: Vec<f32> = out[0].iter().flatten().flatten().copied().collect();
        report.push(compare("segment.output", &flat, &tensors["segment.output"]));
        // The whole song.
        let mix = &tensors["wav_mixture"];
        let n = mix.shape[2];
        let chans: Vec<Vec<f32>> = (0..m)
            .map(|c| mix.data[c * n..(c + 1) * n].to_vec())
            .collect();
        let audio = AudioBuffer::new(44_100, chans).unwrap();
        let stems = sep
            .separate(
                &audio,
                &SeparateParams::default(),
                &CancelToken::new(),
                &mut |_| {},
            )
            .unwrap();
        let flat: Vec<f32> = stems
            .audio
            .iter()
            .flat_map(|a| a.channels.iter().flatten().copied())
            .collect();
        report.push(compare("stems", &flat, &tensors["stems"]));
        let failures: Vec<_> = report.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failures.is_empty(), "mixit-small on {name}:\n{failures:#?}");
    }
}

/// The network taps of the first segment (`band_split.out`, `block.{i}.out`).
#[test]
fn mixit_network_taps_of_the_first_segment() {
    let dir = fixtures().join("mixit-small");
    let files = find_model_files(&dir).unwrap();
    let cfg = ModelConfig::from_file(&files.config).unwrap();
    let sd = load_state_dict(&files.weights).unwrap();
    let tensors = read_safetensors(dir.join("tensors.safetensors")).unwrap();
    let device = Device::flex();
    let net = from_state_dict(&cfg, &sd, &device).unwrap();
    // The segment's STFT, scaled and cropped as the wrapper does.
    let seg = &tensors["segment.input"];
    let (m, k) = (seg.shape[1], seg.shape[2]);
    let stft = locosep::dsp::stft::Stft::new(cfg.n_fft, cfg.hop_length).unwrap();
    let t = k / cfg.hop_length;
    let f = cfg.n_freqs();
    let mut input = vec![0f32; 2 * m * t * f];
    for c in 0..m {
        let (mut re, mut im) = (vec![], vec![]);
        stft.forward(&seg.data[c * k..(c + 1) * k], &mut re, &mut im)
            .unwrap();
        let sc = locosep::engine::css::power_scale_of(&re, &im);
        for i in 0..t * f {
            input[c * t * f + i] = re[i] / sc;
            input[(m + c) * t * f + i] = im[i] / sc;
        }
    }
    let x = Tensor::<4>::from_data(TensorData::new(input, [1, 2 * m, t, f]), &device);
    let host = net.host_network().expect("the CPU runs the host blocks");
    let opts = ForwardOptions {
        attention: AttentionImpl::Host(&host),
        ..Default::default()
    };
    let (_, taps) = net.forward_with_taps(x, opts);
    let mut checked = 0;
    for (name, t) in taps {
        if let Some(want) = tensors.get(&name) {
            compare(&name, &to_vec(t), want).unwrap();
            checked += 1;
        }
    }
    assert_eq!(checked, 3, "band_split.out and two block outputs");
}
