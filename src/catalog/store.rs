//! Installed models on disk: the data folder, the manifest that marks a model installed, and
//! the one atomic step (a folder rename) that turns a finished staging folder into an
//! installed model.
//!
//! Layout under the data folder (`LOCOSEP_DATA_DIR`, else the XDG data dir, e.g.
//! `~/.local/share/locosep`):
//!
//! ```text
//! models/<name>/…                  installed models, each with locosep-model.toml
//! staging/<name>/…                 downloads in progress (<file>.part is resumed)
//! trash/                           models being replaced or removed (deleted right away)
//! ```
//!
//! Invariant: a folder under `models/` only ever appears by renaming a complete, verified
//! staging folder that already holds its manifest, so no partial model is ever installed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::entries::{ModelEntry, validate_name};
use super::error::CatalogError;

/// The file inside a model folder that marks it installed.
pub const MANIFEST: &str = "locosep-model.toml";

/// Suffix of a file being downloaded.
pub const PART_SUFFIX: &str = ".part";

/// One installed file, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledFile {
    /// Path relative to the model folder, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex sha256 of the content (recorded at download or import).
    pub sha256: String,
}

/// What `locosep-model.toml` records about an installed model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The model's name (its folder name).
    pub name: String,
    /// Where it came from: the base URL it was downloaded from, or `imported from <folder>`.
    pub origin: String,
    /// Seconds since the Unix epoch at install time.
    pub installed_at: u64,
    /// Every file with its size and hash.
    pub files: Vec<InstalledFile>,
}

impl Manifest {
    /// The sum of the file sizes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// An installed model: its folder and manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledModel {
    /// The model folder.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

/// The data folder holding installed models and downloads in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    root: PathBuf,
}

/// Environment variable that replaces the XDG data folder.
pub const DATA_DIR_ENV: &str = "LOCOSEP_DATA_DIR";

impl Store {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The user's store: `$LOCOSEP_DATA_DIR`, else the XDG data folder of locosep.
    pub fn from_env() -> Result<Self, CatalogError> {
        if let Some(p) = std::env::var_os(DATA_DIR_ENV).filter(|p| !p.is_empty()) {
            return Ok(Self::new(PathBuf::from(p)));
        }
        directories::ProjectDirs::from("org", "locosep", "locosep")
            .map(|d| Self::new(d.data_dir()))
            .ok_or(CatalogError::NoDataDir)
    }

    /// The data folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where model `name` is (or would be) installed.
    pub fn model_dir(&self, name: &str) -> PathBuf {
        self.root.join("models").join(name)
    }

    /// The staging folder of a download of `name`.
    pub fn staging_dir(&self, name: &str) -> PathBuf {
        self.root.join("staging").join(name)
    }

    /// Model `name` when it is installed (folder and readable manifest).
    pub fn get(&self, name: &str) -> Option<InstalledModel> {
        validate_name(name).ok()?;
        let dir = self.model_dir(name);
        let manifest = read_manifest(&dir).ok()?;
        Some(InstalledModel { dir, manifest })
    }

    /// Every installed model, sorted by name. Folders without a readable manifest are skipped.
    pub fn installed(&self) -> Result<Vec<InstalledModel>, CatalogError> {
        let models = self.root.join("models");
        let rd = match std::fs::read_dir(&models) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(CatalogError::io(&models, e)),
        };
        let mut out = vec![];
        for ent in rd.flatten() {
            if let Some(name) = ent.file_name().to_str()
                && let Some(m) = self.get(name)
            {
                out.push(m);
            }
        }
        out.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
        Ok(out)
    }

    /// Bytes already downloaded for `name` (partial and finished files in its staging folder).
    pub fn staged_bytes(&self, name: &str) -> u64 {
        dir_size(&self.staging_dir(name))
    }

    /// Takes the per-model lock (`staging/<name>.lock`, an advisory file lock the OS drops when
    /// the process ends) that keeps two downloads, imports or removals of one model apart.
    /// Held until the returned file is dropped.
    pub fn lock(&self, name: &str) -> Result<std::fs::File, CatalogError> {
        validate_name(name)?;
        let dir = self.root.join("staging");
        create_dir(&dir)?;
        let path = dir.join(format!("{name}.lock"));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| CatalogError::io(&path, e))?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => Err(CatalogError::InUse(name.to_string())),
            Err(std::fs::TryLockError::Error(e)) => Err(CatalogError::io(&path, e)),
        }
    }

    /// Removes installed model `name`: the folder is first renamed out of `models/` (so it
    /// stops being installed at once), then deleted. Also drops its staging folder.
    pub fn remove(&self, name: &str) -> Result<PathBuf, CatalogError> {
        validate_name(name)?;
        let _lock = self.lock(name)?;
        let dir = self.model_dir(name);
        if self.get(name).is_none() {
            return Err(CatalogError::NotInstalled(name.to_string()));
        }
        let trash = self.trash_slot(name)?;
        std::fs::rename(&dir, &trash).map_err(|e| CatalogError::io(&dir, e))?;
        std::fs::remove_dir_all(&trash).map_err(|e| CatalogError::io(&trash, e))?;
        let staging = self.staging_dir(name);
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| CatalogError::io(&staging, e))?;
        }
        Ok(dir)
    }

    /// Imports a folder prepared by hand as model `name`: copies it (hashing every file) into a
    /// staging folder, checks it against the catalog `entry` when one is given (every listed
    /// file present; sizes and sha256 where known), runs `verify` on the copy, and only then
    /// installs it. `replace` allows replacing an installed model of that name.
    pub fn import(
        &self,
        src: &Path,
        name: &str,
        entry: Option<&ModelEntry>,
        verify: &dyn Fn(&Path) -> Result<(), String>,
        replace: bool,
    ) -> Result<InstalledModel, CatalogError> {
        validate_name(name)?;
        if !src.is_dir() {
            return Err(CatalogError::MissingFile {
                dir: src.to_path_buf(),
                what: format!("{} is not a folder", src.display()),
            });
        }
        let _lock = self.lock(name)?;
        self.check_replace(name, replace)?;
        let staging = self.root.join("staging").join(format!("{name}.import"));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| CatalogError::io(&staging, e))?;
        }
        create_dir(&staging)?;
        let result = (|| {
            let mut files = vec![];
            copy_tree(src, &staging, "", &mut files)?;
            files.retain(|f| f.path != MANIFEST);
            if let Some(entry) = entry {
                for want in &entry.files {
                    let got = files.iter().find(|f| f.path == want.path).ok_or_else(|| {
                        CatalogError::MissingFile {
                            dir: src.to_path_buf(),
                            what: format!("{} has no {}", src.display(), want.path),
                        }
                    })?;
                    check_file(want.path.as_str(), got, want.size, want.sha256.as_deref())?;
                }
            }
            verify(&staging).map_err(|detail| CatalogError::Rejected {
                name: name.to_string(),
                detail,
            })?;
            files.sort_by(|a, b| a.path.cmp(&b.path));
            let manifest = Manifest {
                name: name.to_string(),
                origin: format!("imported from {}", src.display()),
                installed_at: now(),
                files,
            };
            self.commit(&staging, manifest, replace)
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        result
    }

    /// Fails with [`CatalogError::AlreadyInstalled`] when `name` is installed and `replace` is
    /// false.
    pub(crate) fn check_replace(&self, name: &str, replace: bool) -> Result<(), CatalogError> {
        match self.get(name) {
            Some(m) if !replace => Err(CatalogError::AlreadyInstalled {
                name: name.to_string(),
                path: m.dir,
            }),
            _ => Ok(()),
        }
    }

    /// Writes `manifest` into the verified `staging` folder and renames it into
    /// `models/<name>` — the only way a model becomes installed. An installed model of that
    /// name is moved to the trash first (only when `replace`).
    pub(crate) fn commit(
        &self,
        staging: &Path,
        manifest: Manifest,
        replace: bool,
    ) -> Result<InstalledModel, CatalogError> {
        let name = manifest.name.clone();
        let text = toml::to_string_pretty(&manifest).map_err(|e| CatalogError::Io {
            path: staging.join(MANIFEST),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&staging.join(MANIFEST), text.as_bytes())?;
        let dest = self.model_dir(&name);
        create_dir(dest.parent().unwrap_or(&self.root))?;
        let mut old = None;
        if dest.exists() {
            if self.get(&name).is_some() && !replace {
                return Err(CatalogError::AlreadyInstalled { name, path: dest });
            }
            // Installed (and replace), or a stray folder without a manifest: move it aside.
            let trash = self.trash_slot(&name)?;
            std::fs::rename(&dest, &trash).map_err(|e| CatalogError::io(&dest, e))?;
            old = Some(trash);
        }
        std::fs::rename(staging, &dest).map_err(|e| CatalogError::io(&dest, e))?;
        if let Some(old) = old {
            let _ = std::fs::remove_dir_all(old);
        }
        Ok(InstalledModel {
            dir: dest,
            manifest,
        })
    }

    /// A free path under `trash/` to move a model folder to before deleting it.
    fn trash_slot(&self, name: &str) -> Result<PathBuf, CatalogError> {
        let trash = self.root.join("trash");
        create_dir(&trash)?;
        let mut i = 0u64;
        loop {
            let p = trash.join(format!("{name}.{}.{i}", std::process::id()));
            if !p.exists() {
                return Ok(p);
            }
            i += 1;
        }
    }
}

/// Reads `<dir>/locosep-model.toml`.
fn read_manifest(dir: &Path) -> Result<Manifest, CatalogError> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| CatalogError::io(&path, e))?;
    toml::from_str(&text).map_err(|e| CatalogError::BadCatalog {
        origin: path.display().to_string(),
        detail: e.to_string(),
    })
}

/// Checks a finished file against the catalog's size and sha256 (when known).
pub(crate) fn check_file(
    rel: &str,
    got: &InstalledFile,
    size: Option<u64>,
    sha256: Option<&str>,
) -> Result<(), CatalogError> {
    if let Some(size) = size
        && got.size != size
    {
        return Err(CatalogError::Corrupt {
            file: rel.to_string(),
            detail: format!("{} bytes, expected {size}", got.size),
        });
    }
    if let Some(want) = sha256
        && !got.sha256.eq_ignore_ascii_case(want)
    {
        return Err(CatalogError::Corrupt {
            file: rel.to_string(),
            detail: format!("sha256 {}, expected {want}", got.sha256),
        });
    }
    Ok(())
}

/// Lower-case hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 and length of a file's content.
pub fn hash_file(path: &Path) -> Result<(String, u64), CatalogError> {
    let mut f = std::fs::File::open(path).map_err(|e| CatalogError::io(path, e))?;
    let mut h = Sha256::new();
    let n = hash_reader(&mut f, &mut h).map_err(|e| CatalogError::io(path, e))?;
    Ok((hex(&h.finalize()), n))
}

/// Feeds everything `r` yields into `h`; returns the byte count.
pub(crate) fn hash_reader(r: &mut dyn Read, h: &mut Sha256) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            return Ok(n);
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
}

/// `create_dir_all` with a classified error.
pub(crate) fn create_dir(dir: &Path) -> Result<(), CatalogError> {
    std::fs::create_dir_all(dir).map_err(|e| CatalogError::io(dir, e))
}

/// Writes `bytes` to a temporary file next to `path`, syncs it and renames it over `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CatalogError> {
    let tmp = path.with_extension("tmp-write");
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CatalogError::io(path, e)
    })
}

/// Copies the tree under `src` into `dst` (regular files and folders; links are followed),
/// hashing each file; `rel` is the path of `src` inside the model.
fn copy_tree(
    src: &Path,
    dst: &Path,
    rel: &str,
    files: &mut Vec<InstalledFile>,
) -> Result<(), CatalogError> {
    let rd = std::fs::read_dir(src).map_err(|e| CatalogError::io(src, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| CatalogError::io(src, e))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        let from = ent.path();
        let to = dst.join(&name);
        let rel_path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let meta = std::fs::metadata(&from).map_err(|e| CatalogError::io(&from, e))?;
        if meta.is_dir() {
            create_dir(&to)?;
            copy_tree(&from, &to, &rel_path, files)?;
        } else if meta.is_file() {
            let mut r = std::fs::File::open(&from).map_err(|e| CatalogError::io(&from, e))?;
            let mut w = std::fs::File::create(&to).map_err(|e| CatalogError::io(&to, e))?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            let mut size = 0u64;
            loop {
                let k = r.read(&mut buf).map_err(|e| CatalogError::io(&from, e))?;
                if k == 0 {
                    break;
                }
                h.update(&buf[..k]);
                w.write_all(&buf[..k])
                    .map_err(|e| CatalogError::io(&to, e))?;
                size += k as u64;
            }
            w.sync_all().map_err(|e| CatalogError::io(&to, e))?;
            files.push(InstalledFile {
                path: rel_path,
                size,
                sha256: hex(&h.finalize()),
            });
        }
    }
    Ok(())
}

/// Total size of the regular files under `dir` (0 when it does not exist).
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_folder(dir: &Path) {
        std::fs::create_dir_all(dir.join("checkpoints")).unwrap();
        std::fs::write(dir.join("merged_config.yaml"), "sr: 44100\n").unwrap();
        std::fs::write(dir.join("checkpoints/model.pth"), b"weights").unwrap();
    }

    fn ok(_: &Path) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn import_copies_hashes_and_installs() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("by-hand");
        model_folder(&src);
        let store = Store::new(tmp.path().join("data"));
        assert!(store.get("m").is_none());
        let m = store.import(&src, "m", None, &ok, false).unwrap();
        assert_eq!(m.dir, store.model_dir("m"));
        assert_eq!(m.manifest.files.len(), 2);
        assert_eq!(m.manifest.files[0].path, "checkpoints/model.pth");
        assert_eq!(m.manifest.files[0].sha256, hex(&Sha256::digest(b"weights")));
        assert_eq!(store.get("m").unwrap(), m);
        assert_eq!(store.installed().unwrap(), vec![m.clone()]);
        // The source folder is untouched.
        assert!(src.join("checkpoints/model.pth").exists());
        // Never overwritten without the flag.
        assert!(matches!(
            store.import(&src, "m", None, &ok, false),
            Err(CatalogError::AlreadyInstalled { .. })
        ));
        store.import(&src, "m", None, &ok, true).unwrap();
        assert!(!store.root().join("staging/m.import").exists());
    }

    #[test]
    fn refused_import_leaves_nothing_installed() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("by-hand");
        model_folder(&src);
        let store = Store::new(tmp.path().join("data"));
        let err = store
            .import(&src, "m", None, &|_| Err("bad weights".into()), false)
            .unwrap_err();
        assert!(matches!(err, CatalogError::Rejected { .. }), "{err}");
        assert!(store.get("m").is_none());
        assert!(!store.model_dir("m").exists());
        assert!(!store.root().join("staging/m.import").exists());
    }

    #[test]
    fn remove_uninstalls_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("by-hand");
        model_folder(&src);
        let store = Store::new(tmp.path().join("data"));
        store.import(&src, "m", None, &ok, false).unwrap();
        let dir = store.remove("m").unwrap();
        assert!(!dir.exists());
        assert!(store.installed().unwrap().is_empty());
        assert!(matches!(
            store.remove("m"),
            Err(CatalogError::NotInstalled(_))
        ));
        assert!(matches!(
            store.remove("../etc"),
            Err(CatalogError::BadName(_))
        ));
    }

    #[test]
    fn one_operation_per_model_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("by-hand");
        model_folder(&src);
        let store = Store::new(tmp.path().join("data"));
        let held = store.lock("m").unwrap();
        assert!(matches!(store.lock("m"), Err(CatalogError::InUse(_))));
        assert!(matches!(
            store.import(&src, "m", None, &ok, false),
            Err(CatalogError::InUse(_))
        ));
        // Other models are not blocked.
        store.import(&src, "n", None, &ok, false).unwrap();
        drop(held);
        store.import(&src, "m", None, &ok, false).unwrap();
    }

    #[test]
    fn a_folder_without_manifest_is_not_installed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        model_folder(&store.model_dir("half"));
        assert!(store.get("half").is_none());
        assert!(store.installed().unwrap().is_empty());
    }
}
