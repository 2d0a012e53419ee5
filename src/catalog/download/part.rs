//! The part file `<dest>.part` a download appends to: its path, its removal, and the check
//! (size, sha256) that turns it into `dest`.

use std::path::{Path, PathBuf};

use crate::catalog::entries::FileEntry;
use crate::catalog::error::CatalogError;
use crate::catalog::store::{InstalledFile, PART_SUFFIX, check_file};

/// Checks size and sha256 (catalog first, else what the server announced); a mismatch deletes
/// the part. On success the part becomes `dest`.
pub(super) fn check_and_rename(
    part: &Path,
    dest: &Path,
    file: &FileEntry,
    announced_sha256: Option<&str>,
    sha256: String,
    size: u64,
) -> Result<InstalledFile, CatalogError> {
    let got = InstalledFile {
        path: file.path.clone(),
        size,
        sha256,
    };
    let want = file.sha256.as_deref().or(announced_sha256);
    if let Err(e) = check_file(&file.path, &got, file.size, want) {
        remove(part)?;
        return Err(e);
    }
    std::fs::rename(part, dest).map_err(|e| CatalogError::io(dest, e))?;
    Ok(got)
}

/// `<dest>.part`.
pub(super) fn part_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(PART_SUFFIX);
    PathBuf::from(s)
}

/// Removes `path`; a file that is already gone is not an error.
pub(super) fn remove(path: &Path) -> Result<(), CatalogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CatalogError::io(path, e)),
    }
}
