//! The install step: every file of a model fetched and checked, the staging folder verified,
//! then renamed into place.

use crate::cancel::CancelToken;
use crate::catalog::entries::ModelEntry;
use crate::catalog::error::CatalogError;
use crate::catalog::store::{
    InstalledFile, InstalledModel, Manifest, Store, check_file, create_dir, hash_file, now,
};

use super::http::agent;
use super::options::{DownloadOptions, DownloadProgress, Verifier};
use super::part::remove;
use super::resume::fetch_file;

/// Downloads `entry` into `store`: every file resumed and checked, the folder verified by
/// `verify`, then installed. `progress` is called after every read; `cancel` is checked
/// between reads (a cancelled download keeps its part files for a resume).
pub fn download_model(
    store: &Store,
    entry: &ModelEntry,
    opts: &DownloadOptions,
    verify: Verifier<'_>,
    progress: &mut dyn FnMut(&DownloadProgress),
    cancel: &CancelToken,
) -> Result<InstalledModel, CatalogError> {
    if entry.bundled.is_some() {
        return Err(CatalogError::Bundled(entry.name.clone()));
    }
    let _lock = store.lock(&entry.name)?;
    store.check_replace(&entry.name, opts.replace)?;
    let base = opts.mirror.as_deref().unwrap_or(&entry.base_url);
    let staging = store.staging_dir(&entry.name);
    create_dir(&staging)?;
    let agent = agent(opts);
    let mut files = vec![];
    for (index, file) in entry.files.iter().enumerate() {
        let url = entry.file_url(base, file);
        let dest = staging.join(&file.path);
        if let Some(parent) = dest.parent() {
            create_dir(parent)?;
        }
        let mut report = |done: u64, total: Option<u64>, resumed_from: u64| {
            progress(&DownloadProgress {
                file: file.path.clone(),
                index,
                count: entry.files.len(),
                done,
                total,
                resumed_from,
            })
        };
        let got = if dest.exists() {
            // Finished in an earlier attempt (checked then); re-check what the catalog knows.
            let (sha256, size) = hash_file(&dest)?;
            let got = InstalledFile {
                path: file.path.clone(),
                size,
                sha256,
            };
            match check_file(&file.path, &got, file.size, file.sha256.as_deref()) {
                Ok(()) => {
                    report(size, Some(size), size);
                    got
                }
                Err(_) => {
                    remove(&dest)?;
                    fetch_file(&agent, &url, file, &dest, &mut report, cancel)?
                }
            }
        } else {
            fetch_file(&agent, &url, file, &dest, &mut report, cancel)?
        };
        files.push(got);
    }
    if cancel.is_cancelled() {
        return Err(CatalogError::Cancelled);
    }
    if let Err(detail) = verify(&staging) {
        // Complete files that do not load: drop them so the next attempt fetches them anew.
        let _ = std::fs::remove_dir_all(&staging);
        return Err(CatalogError::Rejected {
            name: entry.name.clone(),
            detail,
        });
    }
    let manifest = Manifest {
        name: entry.name.clone(),
        origin: base.to_string(),
        installed_at: now(),
        files,
    };
    store.commit(&staging, manifest, opts.replace)
}
