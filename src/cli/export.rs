//! `locosep export`: a model's weights as a checkpoint the reference trainers load with
//! `load_state_dict(strict=True)` (the music fork's or ESPnet's `.pth`), or as safetensors.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use super::{ModelArgs, load_model};
use crate::engine::device::DeviceChoice;
use crate::engine::load::LoadedModel;
use crate::model::checkpoint::{PthLayout, write_pth, write_safetensors};
use crate::model::loader::{from_state_dict, to_state_dict};

/// Checkpoint formats `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// The music fork's training checkpoint: `{"model_state_dict": …}` (`torch.save` zip).
    PthFork,
    /// ESPnet's model state dict: every key prefixed `separator.` (`torch.save` zip).
    PthEspnet,
    /// safetensors with the reference names (what locosep's runs write).
    Safetensors,
}

/// Arguments of `export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Preset of the architecture (with --checkpoint).
    #[arg(long, conflicts_with = "config")]
    pub preset: Option<String>,
    /// Model config file (with --checkpoint).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Weights to export: .safetensors, .pth, .ckpt, or a model folder (default: the bundled
    /// model).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// An installed model by name (see `locosep models`).
    #[arg(long, conflicts_with_all = ["preset", "config", "checkpoint"])]
    pub model: Option<String>,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Output file.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Replace an existing file at --out.
    #[arg(long)]
    pub overwrite: bool,
}

/// Runs `export`: loads and checks the weights against the model (every tensor present, right
/// shape, finite), then writes them under the reference names in the chosen container.
pub fn run(a: ExportArgs) -> Result<()> {
    let LoadedModel {
        config: cfg,
        weights: sd,
        description: what,
    } = load_model(&ModelArgs {
        preset: a.preset.clone(),
        config: a.config.clone(),
        checkpoint: a.checkpoint.clone(),
        model: a.model.clone(),
        device: DeviceChoice::Cpu,
    })?;
    // Through the model and back: names canonical for the architecture, nothing extra.
    let model = from_state_dict(&cfg, &sd, &burn::tensor::Device::flex())?;
    let out_sd = to_state_dict(&cfg, &model);
    let params: usize = out_sd.values().map(|t| t.numel()).sum();
    match a.format {
        ExportFormat::PthFork => write_pth(&a.out, &out_sd, PthLayout::Fork, a.overwrite),
        ExportFormat::PthEspnet => write_pth(&a.out, &out_sd, PthLayout::Espnet, a.overwrite),
        ExportFormat::Safetensors => write_safetensors(&a.out, &out_sd, None, a.overwrite),
    }
    .with_context(|| format!("exporting {what}"))?;
    println!(
        "wrote {} ({} tensors, {} values) from {what}",
        a.out.display(),
        out_sd.len(),
        params
    );
    Ok(())
}
