//! `locosep model-check`: run the network on a fixture-style tensor file, write the outputs,
//! and optionally compare them with a reference file at the fixture tolerance.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::{Tensor, TensorData};
use clap::Args;

use crate::engine::Separator;
use crate::engine::device::{DeviceChoice, resolve};
use crate::model::config::ModelConfig;
use crate::model::state_dict::{
    StateDict, TensorF32, load_state_dict, read_safetensors, write_safetensors,
};

/// Arguments of `model-check`.
#[derive(Args, Debug)]
pub struct ModelCheckArgs {
    /// Model config (.json reference kwargs, .yaml, or .toml preset file).
    #[arg(long)]
    pub config: PathBuf,
    /// Checkpoint (.safetensors or .pth).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Input tensors: `input.real`/`input.imag` [B, T, F] (spectra) or `mixture` [B, N] (waveforms).
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
    let cfg = ModelConfig::from_file(&a.config)?;
    let sd = load_state_dict(&a.checkpoint)
        .with_context(|| format!("loading {}", a.checkpoint.display()))?;
    let device = resolve(a.device)?;
    eprintln!("running {} on {}", cfg.name, device.description);
    let sep = Separator::new(cfg.clone(), &sd, device)?;
    let input =
        read_safetensors(&a.input).with_context(|| format!("reading {}", a.input.display()))?;
    let mut out = StateDict::new();
    if let (Some(re), Some(im)) = (input.get("input.real"), input.get("input.imag")) {
        if re.shape.len() != 3 || re.shape != im.shape {
            bail!(
                "input.real/input.imag must both be [B, T, F], got {:?} and {:?}",
                re.shape,
                im.shape
            );
        }
        let [b, t, f] = [re.shape[0], re.shape[1], re.shape[2]];
        // The network itself works for any F (a spectral separator's config has no n_fft).
        if cfg.audio_channels != 1 {
            bail!(
                "spectral model-check inputs are mono; this config has audio_channels = {}",
                cfg.audio_channels
            );
        }
        let dev = &sep.device().device;
        let re = Tensor::<3>::from_data(TensorData::new(re.data.clone(), [b, t, f]), dev);
        let im = Tensor::<3>::from_data(TensorData::new(im.data.clone(), [b, t, f]), dev);
        let y = sep
            .network()
            .forward(Tensor::stack(vec![re, im], 1), Default::default());
        let s = cfg.n_sources();
        let y = y.reshape([b, s, 2, t, f]);
        for (name, idx) in [("output.real", 0), ("output.imag", 1)] {
            let v: Vec<f32> = y
                .clone()
                .narrow(2, idx, 1)
                .reshape([b, s, t, f])
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap_or_default();
            out.insert(name.into(), tensor(vec![b, s, t, f], v));
        }
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
            "{} has neither `input.real`/`input.imag` nor `mixture`",
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
