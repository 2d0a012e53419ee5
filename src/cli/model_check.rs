//! `locosep model-check`: run the network on a fixture-style tensor file, write the outputs,
//! and optionally compare them with a reference file at the fixture tolerance.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::{Tensor, TensorData};
use clap::Args;

use crate::engine::Separator;
use crate::engine::device::{DeviceChoice, resolve};
use crate::model::config::ModelConfig;
use crate::model::state_dict::{StateDict, TensorF32, read_safetensors, write_safetensors};

/// Arguments of `model-check`.
#[derive(Args, Debug)]
pub struct ModelCheckArgs {
    /// Model config (.json reference kwargs, .yaml, or .toml preset file); optional when
    /// --checkpoint is a model folder.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Checkpoint (.safetensors or .pth), or a model folder (config + weights).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Input tensors: `input.real`/`input.imag` [B, (M,) T, F] (spectra; taps are written
    /// too), `mixture` [B, N] (waveforms through one forward), or mixit-mss's `wav_mixture`
    /// [1, M, N] (the whole pipeline → `stems` [S, M, N]) with `segment.input` [1, M, n]
    /// (one segment → `segment.output` [1, S, M, n]).
    #[arg(long)]
    pub input: PathBuf,
    /// Output safetensors file (`output.real`/`output.imag` [B, S, T, F], or one [B, N] tensor per source).
    #[arg(long)]
    pub output: PathBuf,
    /// Compare every written tensor with the same name in this file (max|a−b| ≤ 1e-4·max(1, max|ref|)).
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Where to run.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Replace an existing output file.
    #[arg(long)]
    pub overwrite: bool,
}

fn tensor(shape: Vec<usize>, data: Vec<f32>) -> TensorF32 {
    TensorF32 { shape, data }
}

/// Runs the check.
pub fn run(a: ModelCheckArgs) -> Result<()> {
    let crate::engine::load::LoadedModel {
        config: cfg,
        weights: sd,
        ..
    } = super::load_model(&super::ModelArgs {
        preset: None,
        config: a.config.clone(),
        checkpoint: Some(a.checkpoint.clone()),
        model: None,
        device: a.device,
    })?;
    let device = resolve(a.device)?;
    eprintln!("running {} on {}", cfg.name, device.description);
    let sep = Separator::new(cfg.clone(), &sd, device)?;
    let input =
        read_safetensors(&a.input).with_context(|| format!("reading {}", a.input.display()))?;
    let mut out = StateDict::new();
    if let (Some(re), Some(im)) = (input.get("input.real"), input.get("input.imag")) {
        spectral(&sep, &cfg, re, im, &mut out)?;
    } else if let Some(mix) = input.get("wav_mixture") {
        pipeline(&sep, &cfg, mix, input.get("segment.input"), &mut out)?;
    } else if let Some(mix) = input.get("mixture") {
        if mix.shape.len() != 2 {
            bail!("mixture must be [B, N], got {:?}", mix.shape);
        }
        let [b, n] = [mix.shape[0], mix.shape[1]];
        let items: Vec<Vec<Vec<f32>>> = (0..b)
            .map(|i| vec![mix.data[i * n..(i + 1) * n].to_vec()])
            .collect();
        let res = sep.forward_waveforms(&items)?;
        for (si, name) in cfg.sources.iter().enumerate() {
            let data: Vec<f32> = res
                .iter()
                .flat_map(|item| item[si][0].iter().copied())
                .collect();
            out.insert(name.clone(), tensor(vec![b, n], data));
        }
    } else {
        bail!(
            "{} has none of `input.real`/`input.imag`, `mixture`, `wav_mixture`",
            a.input.display()
        );
    }
    write_safetensors(&a.output, &out, None, a.overwrite)?;
    eprintln!("wrote {} tensor(s) to {}", out.len(), a.output.display());
    if let Some(r) = &a.reference {
        let reference = read_safetensors(r)?;
        let mut worst_ok = true;
        for (name, t) in &out {
            let Some(want) = reference.get(name) else {
                println!("{name:<16} (not in reference)");
                continue;
            };
            let max_ref = want.data.iter().fold(0f32, |m, v| m.max(v.abs()));
            let tol = 1e-4 * max_ref.max(1.0);
            let diff = if want.data.len() == t.data.len() {
                t.data
                    .iter()
                    .zip(&want.data)
                    .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
            } else {
                f32::INFINITY
            };
            let ok = diff <= tol;
            worst_ok &= ok;
            println!(
                "{name:<16} max|diff| {diff:.3e}  tolerance {tol:.3e}  {}",
                if ok { "ok" } else { "FAIL" }
            );
        }
        if !worst_ok {
            bail!("outputs differ from {} beyond the tolerance", r.display());
        }
    }
    Ok(())
}

/// The network on spectra `[B, (M,) T, F]`: `output.real`/`.imag` `[B, S, (M,) T, F]` and every
/// tap, in the reference's shapes.
fn spectral(
    sep: &Separator,
    cfg: &ModelConfig,
    re: &TensorF32,
    im: &TensorF32,
    out: &mut StateDict,
) -> Result<()> {
    let m = cfg.audio_channels;
    let ok = re.shape == im.shape
        && match m {
            1 => re.shape.len() == 3,
            _ => re.shape.len() == 4 && re.shape[1] == m,
        };
    if !ok {
        bail!(
            "input.real/input.imag must both be [B, T, F] for a mono model or [B, {m}, T, F] for \
             this {m}-channel model, got {:?} and {:?}",
            re.shape,
            im.shape
        );
    }
    let n = re.shape.len();
    let (b, t, f) = (re.shape[0], re.shape[n - 2], re.shape[n - 1]);
    let dev = &sep.device().device;
    // [B, M, T, F] real and imaginary → [B, 2M, T, F] (reals first).
    let re = Tensor::<4>::from_data(TensorData::new(re.data.clone(), [b, m, t, f]), dev);
    let im = Tensor::<4>::from_data(TensorData::new(im.data.clone(), [b, m, t, f]), dev);
    let (y, taps) = sep
        .network()
        .forward_with_taps(Tensor::cat(vec![re, im], 1), sep.forward_options());
    let s = cfg.n_sources();
    let y = y.reshape([b, s, m, 2, t, f]);
    let shape = |lead: &[usize]| -> Vec<usize> {
        let mut v = lead.to_vec();
        if m > 1 {
            v.push(m);
        }
        v.extend([t, f]);
        v
    };
    for (name, idx) in [("output.real", 0), ("output.imag", 1)] {
        let v = to_vec(y.clone().narrow(3, idx, 1).reshape([b, s, m, t, f]));
        out.insert(name.into(), tensor(shape(&[b, s]), v));
    }
    for (name, t4) in taps {
        let dims = t4.dims();
        let shape = if name == "bandwise_decoding.out" {
            shape(&[b, 2, s])
        } else {
            dims.to_vec()
        };
        out.insert(name, tensor(shape, to_vec(t4)));
    }
    Ok(())
}

/// The whole separation of `wav_mixture` `[1, M, N]` at the model's rate → `stems` `[S, M, N]`,
/// and one segment's forward `segment.input` `[1, M, n]` → `segment.output` `[1, S, M, n]`.
fn pipeline(
    sep: &Separator,
    cfg: &ModelConfig,
    mix: &TensorF32,
    segment: Option<&TensorF32>,
    out: &mut StateDict,
) -> Result<()> {
    if mix.shape.len() != 3 || mix.shape[0] != 1 {
        bail!("wav_mixture must be [1, M, N], got {:?}", mix.shape);
    }
    let (m, n) = (mix.shape[1], mix.shape[2]);
    let channels: Vec<Vec<f32>> = (0..m)
        .map(|c| mix.data[c * n..(c + 1) * n].to_vec())
        .collect();
    let audio = crate::audio::AudioBuffer::new(cfg.sample_rate, channels)?;
    let stems = sep.separate(
        &audio,
        &crate::engine::SeparateParams::default(),
        &crate::engine::CancelToken::new(),
        &mut |_| {},
    )?;
    let data: Vec<f32> = stems
        .audio
        .iter()
        .flat_map(|a| a.channels.iter().flatten().copied())
        .collect();
    out.insert("stems".into(), tensor(vec![stems.audio.len(), m, n], data));
    if let Some(seg) = segment {
        if seg.shape.len() != 3 || seg.shape[0] != 1 || seg.shape[1] != cfg.audio_channels {
            bail!(
                "segment.input must be [1, {}, n], got {:?}",
                cfg.audio_channels,
                seg.shape
            );
        }
        let k = seg.shape[2];
        let item: Vec<Vec<f32>> = (0..seg.shape[1])
            .map(|c| seg.data[c * k..(c + 1) * k].to_vec())
            .collect();
        let res = sep.forward_waveforms(&[item])?;
        let data: Vec<f32> = res[0].iter().flatten().flatten().copied().collect();
        out.insert(
            "segment.output".into(),
            tensor(vec![1, cfg.n_sources(), seg.shape[1], k], data),
        );
    }
    Ok(())
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}
