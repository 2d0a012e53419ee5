//! Model loading, once for every front end: a [`ModelChoice`] becomes a config, its weights and
//! a description. The CLI maps its `--model/--preset/--config/--checkpoint` arguments to a
//! choice; the GUI keeps one in its settings.

use std::path::{Path, PathBuf};

use crate::engine::EngineError;
use crate::engine::messages::ModelChoice;
use crate::model::config::{ModelConfig, preset};
use crate::model::folder::{find_model_files, find_weights};
use crate::model::state_dict::{StateDict, load_state_dict};

/// A model ready to build a separator from.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    /// The architecture.
    pub config: ModelConfig,
    /// The weights, under the reference names.
    pub weights: StateDict,
    /// What was loaded, for people: `model NAME`, `preset NAME`, a config or folder path, or
    /// the bundled model's description.
    pub description: String,
}

/// Reads the config and weights of `choice`. Every error says which file or name was wrong;
/// the checkpoint errors name the file.
pub fn load_model(choice: &ModelChoice) -> Result<LoadedModel, EngineError> {
    let (config, weights, description) = match choice {
        ModelChoice::Bundled => {
            let (config, weights, desc) =
                crate::assets::default_model().ok_or(EngineError::NoBundledModel)?;
            (ModelConfig::from_file(&config)?, weights, desc.to_string())
        }
        ModelChoice::Installed { name } => {
            let dir = installed_model_dir(name)?;
            let files = find_model_files(&dir).map_err(EngineError::ModelFolder)?;
            (
                ModelConfig::from_file(&files.config)?,
                files.weights,
                format!("model {name}"),
            )
        }
        ModelChoice::Folder { dir } => {
            let files = find_model_files(dir).map_err(EngineError::ModelFolder)?;
            (
                ModelConfig::from_file(&files.config)?,
                files.weights,
                dir.display().to_string(),
            )
        }
        // The preset is checked before the checkpoint: an unknown name lists the known ones.
        ModelChoice::Preset { name, checkpoint } => (
            preset(name)?.config,
            weights_in(checkpoint)?,
            format!("preset {name}"),
        ),
        ModelChoice::Config { config, checkpoint } => (
            ModelConfig::from_file(config)?,
            weights_in(checkpoint)?,
            config.display().to_string(),
        ),
    };
    Ok(LoadedModel {
        weights: load_state_dict(&weights)?,
        config,
        description,
    })
}

/// The folder of the installed (or bundled) model `name`, or [`EngineError::NotInstalled`].
pub fn installed_model_dir(name: &str) -> Result<PathBuf, EngineError> {
    crate::catalog::installed_model_dir(name).ok_or_else(|| EngineError::NotInstalled(name.into()))
}

/// `path` itself, or the weight file inside it when it is a model folder.
fn weights_in(path: &Path) -> Result<PathBuf, EngineError> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    find_weights(path)
        .map_err(EngineError::ModelFolder)?
        .ok_or_else(|| EngineError::ModelFolder(format!("{} holds no weight file", path.display())))
}

/// A parameter count for people: `1.39 M`, `12.3 k`, or the plain number below a thousand.
pub fn human_count(n: usize) -> String {
    if n >= 1_000_000 {
        format!("{:.2} M", n as f64 / 1e6)
    } else if n >= 1_000 {
        format!("{:.1} k", n as f64 / 1e3)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_folder() -> PathBuf {
        crate::assets::default_model()
            .expect("the bundled demo model")
            .0
            .parent()
            .expect("its folder")
            .to_path_buf()
    }

    #[test]
    fn bundled_folder_and_config_choices_load_the_same_weights() {
        let bundled = load_model(&ModelChoice::Bundled).unwrap();
        let dir = demo_folder();
        let folder = load_model(&ModelChoice::Folder { dir: dir.clone() }).unwrap();
        assert_eq!(folder.description, dir.display().to_string());
        let files = find_model_files(&dir).unwrap();
        // A folder given as the checkpoint of a config: its weight file is found.
        let config = load_model(&ModelChoice::Config {
            config: files.config.clone(),
            checkpoint: dir.clone(),
        })
        .unwrap();
        for m in [&folder, &config] {
            assert_eq!(m.config, bundled.config);
            assert_eq!(
                m.weights.keys().collect::<Vec<_>>(),
                bundled.weights.keys().collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let e = load_model(&ModelChoice::Installed {
            name: "no-such-model".into(),
        })
        .unwrap_err();
        assert!(matches!(e, EngineError::NotInstalled(_)), "{e}");
        assert!(
            e.to_string()
                .contains("locosep models download no-such-model")
        );
        let e = load_model(&ModelChoice::Preset {
            name: "nope".into(),
            checkpoint: "x.safetensors".into(),
        })
        .unwrap_err();
        assert!(e.to_string().contains("small"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = load_model(&ModelChoice::Folder {
            dir: empty.path().to_path_buf(),
        })
        .unwrap_err();
        assert!(e.to_string().contains("holds no model config"), "{e}");
        let e = load_model(&ModelChoice::Config {
            config: find_model_files(&demo_folder()).unwrap().config,
            checkpoint: empty.path().to_path_buf(),
        })
        .unwrap_err();
        assert!(e.to_string().contains("holds no weight file"), "{e}");
    }

    #[test]
    fn parameter_counts_for_people() {
        assert_eq!(human_count(1_390_000), "1.39 M");
        assert_eq!(human_count(12_345), "12.3 k");
        assert_eq!(human_count(512), "512");
    }
}
