//! Model folders: a config and a weight file side by side, in the layouts people download or
//! that locosep writes.
//!
//! - mixit-mss's published models: `<name>/merged_config.yaml` + `<name>/checkpoints/model.pth`
//!   (or a single Lightning `.ckpt` there);
//! - locosep's own checkpoints and bundled models, and MERL-style folders:
//!   `config.toml` / `config.json` + `model.safetensors` / `weights.safetensors` /
//!   `checkpoint.pth` / `model.pth`.

use std::path::{Path, PathBuf};

/// The two files of a model folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// The config file.
    pub config: PathBuf,
    /// The weight file.
    pub weights: PathBuf,
}

/// Config file names looked for in a model folder, first match wins.
pub const CONFIG_NAMES: [&str; 4] = [
    "merged_config.yaml",
    "config.yaml",
    "config.toml",
    "config.json",
];

/// Weight file names looked for in a model folder, first match wins.
pub const WEIGHT_NAMES: [&str; 5] = [
    "checkpoints/model.pth",
    "model.safetensors",
    "weights.safetensors",
    "checkpoint.pth",
    "model.pth",
];

/// Finds the config and weights in `dir`, or says what is missing.
pub fn find_model_files(dir: &Path) -> Result<ModelFiles, String> {
    let config = CONFIG_NAMES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file());
    let weights = find_weights(dir)?;
    match (config, weights) {
        (Some(config), Some(weights)) => Ok(ModelFiles { config, weights }),
        (None, _) => Err(format!(
            "{} holds no model config (looked for {})",
            dir.display(),
            CONFIG_NAMES.join(", ")
        )),
        (_, None) => Err(format!(
            "{} holds no weights (looked for {} and a single checkpoints/*.ckpt)",
            dir.display(),
            WEIGHT_NAMES.join(", ")
        )),
    }
}

/// The weight file of `dir` (see [`find_model_files`]), `None` when there is none.
pub fn find_weights(dir: &Path) -> Result<Option<PathBuf>, String> {
    if let Some(p) = WEIGHT_NAMES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
    {
        return Ok(Some(p));
    }
    // Lightning checkpoints: exactly one `.ckpt` besides `last.ckpt` (the reference averages
    // several; locosep loads one file and says so).
    let ckpts: Vec<PathBuf> = std::fs::read_dir(dir.join("checkpoints"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "ckpt"))
                .filter(|p| p.file_name().is_some_and(|n| n != "last.ckpt"))
                .collect()
        })
        .unwrap_or_default();
    match ckpts.len() {
        0 => Ok(None),
        1 => Ok(ckpts.into_iter().next()),
        n => Err(format!(
            "{} holds {n} Lightning checkpoints; the reference averages them — pass the one to \
             use with --checkpoint FILE",
            dir.join("checkpoints").display()
        )),
    }
}

/// Whether `dir` holds a model locosep can run: its config parses and validates, and its
/// weights load with every key present, of the right shape and finite. What the model catalog
/// checks before a download or an import counts as installed.
pub fn verify_model_dir(dir: &Path) -> Result<(), String> {
    let files = find_model_files(dir)?;
    let cfg = super::config::ModelConfig::from_file(&files.config).map_err(|e| e.to_string())?;
    let sd = super::state_dict::load_state_dict(&files.weights).map_err(|e| e.to_string())?;
    super::loader::check_keys(&cfg, &sd).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_and_locosep_layouts_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(find_model_files(d).unwrap_err().contains("no model config"));
        std::fs::write(d.join("merged_config.yaml"), "a: 1\n").unwrap();
        assert!(find_model_files(d).unwrap_err().contains("no weights"));
        std::fs::create_dir(d.join("checkpoints")).unwrap();
        std::fs::write(d.join("checkpoints/epoch=1.ckpt"), b"x").unwrap();
        std::fs::write(d.join("checkpoints/last.ckpt"), b"x").unwrap();
        let f = find_model_files(d).unwrap();
        assert!(f.weights.ends_with("epoch=1.ckpt"));
        std::fs::write(d.join("checkpoints/epoch=2.ckpt"), b"x").unwrap();
        assert!(find_model_files(d).unwrap_err().contains("averages"));
        std::fs::write(d.join("checkpoints/model.pth"), b"x").unwrap();
        let f = find_model_files(d).unwrap();
        assert!(f.config.ends_with("merged_config.yaml"));
        assert!(f.weights.ends_with("checkpoints/model.pth"));
    }

    #[test]
    fn the_published_fixture_verifies_and_a_damaged_copy_does_not() {
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bslocoformer/mixit-small");
        verify_model_dir(&fixture).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("checkpoints")).unwrap();
        std::fs::copy(
            fixture.join("merged_config.yaml"),
            d.join("merged_config.yaml"),
        )
        .unwrap();
        let bytes = std::fs::read(fixture.join("checkpoints/model.pth")).unwrap();
        std::fs::write(d.join("checkpoints/model.pth"), &bytes[..bytes.len() / 3]).unwrap();
        assert!(verify_model_dir(d).is_err());
    }
}
