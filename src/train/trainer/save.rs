//! Checkpoint folders, written atomically.

use std::path::Path;

use burn::optim::ModuleOptimizer;

use super::{TrainError, TrainState, io};
use crate::model::config::ModelConfig;
use crate::model::loader::to_state_dict;
use crate::model::network::TfLocoformer;
use crate::model::state_dict::write_safetensors;
use crate::train::run_dir;

/// Writes a checkpoint folder: `model.safetensors` (reference names), `config.json` (reference
/// keyword arguments + our audio fields), `optimizer.bin`, `state.json`. The files go to a fresh
/// temporary sibling first, which then replaces `dir` atomically ([`run_dir::replace_dir`]): an
/// interrupted save leaves the old checkpoint (or none), never a half-written one.
pub(super) fn save_checkpoint(
    dir: &Path,
    cfg: &ModelConfig,
    model: &TfLocoformer,
    optim: &ModuleOptimizer,
    state: &TrainState,
) -> Result<(), TrainError> {
    let tmp = run_dir::temp_dir_for(dir)
        .map_err(io(format!("creating a folder beside {}", dir.display())))?;
    let written = write_checkpoint_files(&tmp, cfg, model, optim, state);
    let moved = written.and_then(|()| {
        run_dir::replace_dir(&tmp, dir).map_err(io(format!(
            "moving the new checkpoint into {}",
            dir.display()
        )))
    });
    if moved.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    moved
}

fn write_checkpoint_files(
    tmp: &Path,
    cfg: &ModelConfig,
    model: &TfLocoformer,
    optim: &ModuleOptimizer,
    state: &TrainState,
) -> Result<(), TrainError> {
    let sd = to_state_dict(cfg, model);
    let mut meta = std::collections::HashMap::new();
    meta.insert("locosep_config".to_string(), cfg.to_reference_json());
    write_safetensors(tmp.join("model.safetensors"), &sd, Some(meta), true)?;
    std::fs::write(tmp.join("config.json"), cfg.to_reference_json())
        .map_err(io("writing config.json"))?;
    let opt_path = tmp.join("optimizer.bin");
    optim.save(&opt_path).map_err(|e| {
        TrainError::Invalid(format!(
            "saving optimizer state {}: {e:?}",
            opt_path.display()
        ))
    })?;
    let js = serde_json::to_string_pretty(state).map_err(|e| TrainError::Invalid(e.to_string()))?;
    std::fs::write(tmp.join("state.json"), js).map_err(io("writing state.json"))?;
    Ok(())
}
