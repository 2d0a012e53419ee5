//! Known public checkpoints and the models installed on this machine.
//!
//! - [`entries`]: the catalog (TOML embedded in the binary, overridable by a user file).
//! - [`store`]: the data folder; a model is installed only by renaming a complete, verified
//!   staging folder into `models/<name>`.
//! - [`download`]: resumable (HTTP Range), verified (sha256) downloads with progress and cancel.
//!
//! No burn and no egui here: whether a folder holds a model that loads is decided by a verifier
//! callback the caller supplies (the CLI's and the app's is
//! `model::folder::verify_model_dir`).

pub mod download;
pub mod entries;
pub mod error;
pub mod store;

/// The loopback HTTP server of the download tests (shared with `tests/models.rs`).
#[cfg(test)]
#[path = "../../tests/support/http_server.rs"]
pub(crate) mod test_http_server;

use std::path::{Path, PathBuf};

pub use download::{DownloadOptions, DownloadProgress, ProxyChoice, Verifier, download_model};
pub use entries::{Catalog, FileEntry, ModelEntry};
pub use error::CatalogError;
pub use store::{InstalledModel, Manifest, Store};

/// The user's catalog file: `<config dir>/catalog.toml` (e.g. `~/.config/locosep/catalog.toml`).
fn user_catalog_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "locosep", "locosep")
        .map(|d| d.config_dir().join("catalog.toml"))
}

/// The built-in catalog with the user's file merged over it.
pub fn load_catalog() -> Result<Catalog, CatalogError> {
    Catalog::load(user_catalog_path().as_deref())
}

/// The folder of model `name` when it can be used now: an installed model of the user's data
/// folder, or a bundled one (the demo model). `None` when not installed.
pub fn installed_model_dir(name: &str) -> Option<PathBuf> {
    installed_model_dir_in(&Store::from_env().ok()?, &load_catalog().ok()?, name)
}

/// [`installed_model_dir`] for a given store and catalog.
fn installed_model_dir_in(store: &Store, catalog: &Catalog, name: &str) -> Option<PathBuf> {
    if let Some(m) = store.get(name) {
        return Some(m.dir);
    }
    bundled_dir(catalog.get(name).ok()?)
}

/// Where a bundled entry's files are (the assets folder), when present.
pub fn bundled_dir(entry: &ModelEntry) -> Option<PathBuf> {
    let rel = entry.bundled.as_deref()?;
    crate::assets::find(rel).filter(|d| entry.files.iter().all(|f| d.join(&f.path).is_file()))
}

pub use crate::model::folder::ModelFiles;

/// [`crate::model::folder::find_model_files`] with the catalog's error type: the published
/// mixit-mss layout (`merged_config.yaml` + `checkpoints/model.pth`) first, then the bundled
/// layout (`config.toml` + `model.safetensors`) and the reference fixtures' names.
pub fn find_model_files(dir: &Path) -> Result<ModelFiles, CatalogError> {
    crate::model::folder::find_model_files(dir).map_err(|what| CatalogError::MissingFile {
        dir: dir.to_path_buf(),
        what,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_entry_points_at_the_bundled_files() {
        let cat = Catalog::builtin().unwrap();
        let dir = bundled_dir(cat.get("demo").unwrap()).expect("bundled demo model");
        let files = find_model_files(&dir).unwrap();
        assert!(files.config.ends_with("config.toml"));
        assert!(files.weights.ends_with("model.safetensors"));
    }

    #[test]
    fn installed_dirs_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path().join("data"));
        let cat = Catalog::builtin().unwrap();
        let name = "sup.musdb18hq.bslocoformer-small";
        assert_eq!(installed_model_dir_in(&store, &cat, name), None);
        assert_eq!(installed_model_dir_in(&store, &cat, "no-such"), None);
        let demo = installed_model_dir_in(&store, &cat, "demo").expect("bundled");
        assert!(demo.join("model.safetensors").is_file());
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("checkpoints")).unwrap();
        std::fs::write(src.join("merged_config.yaml"), "sr: 44100\n").unwrap();
        std::fs::write(src.join("checkpoints/model.pth"), "w").unwrap();
        store.import(&src, name, None, &|_| Ok(()), false).unwrap();
        assert_eq!(
            installed_model_dir_in(&store, &cat, name),
            Some(store.model_dir(name))
        );
    }

    #[test]
    fn model_files_prefer_the_published_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        assert!(matches!(
            find_model_files(d),
            Err(CatalogError::MissingFile { .. })
        ));
        std::fs::create_dir_all(d.join("checkpoints")).unwrap();
        for f in [
            "config.json",
            "merged_config.yaml",
            "model.pth",
            "checkpoints/model.pth",
        ] {
            std::fs::write(d.join(f), "x").unwrap();
        }
        let m = find_model_files(d).unwrap();
        assert_eq!(m.config, d.join("merged_config.yaml"));
        assert_eq!(m.weights, d.join("checkpoints/model.pth"));
    }
}
