//! The one error type of the catalog: every way a catalog read, a download or an install can
//! fail, each with what a person needs to fix it.

use std::path::PathBuf;

/// What went wrong in the catalog, a download or an install.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A catalog file is not valid TOML or misses required fields.
    #[error("cannot parse the model catalog {origin}: {detail}")]
    BadCatalog {
        /// `built-in` or the user file's path.
        origin: String,
        /// What the parser said.
        detail: String,
    },
    /// No catalog entry (nor installed model) has that name.
    #[error("unknown model `{name}`; known models: {known}")]
    UnknownModel {
        /// The requested name.
        name: String,
        /// Comma-separated list of catalog names.
        known: String,
    },
    /// A model name that cannot be a folder name (empty, `/`, `..`, leading dot…).
    #[error("`{0}` is not a valid model name (use letters, digits, `.`, `-`, `_`)")]
    BadName(String),
    /// The model is shipped with locosep; there is nothing to download or remove.
    #[error("`{0}` is bundled with locosep; it cannot be downloaded or removed")]
    Bundled(String),
    /// The model is already installed and no replacement was asked for.
    #[error("`{name}` is already installed at {}", path.display())]
    AlreadyInstalled {
        /// The model.
        name: String,
        /// Where it is.
        path: PathBuf,
    },
    /// Another download, import or removal of this model is running (in this or another
    /// process).
    #[error(
        "`{0}` is being downloaded, imported or removed by another locosep; try again when it is done"
    )]
    InUse(String),
    /// The model is not installed.
    #[error("`{0}` is not installed")]
    NotInstalled(String),
    /// The server could not be reached at all (DNS, refused connection, proxy, TLS, timeout).
    #[error("no network: cannot reach {url}: {detail}")]
    Network {
        /// The URL being fetched.
        url: String,
        /// The client's message.
        detail: String,
    },
    /// The server has no such file (HTTP 404).
    #[error("not found on the server (HTTP 404): {url}")]
    NotFound {
        /// The URL being fetched.
        url: String,
    },
    /// Any other HTTP status that is not success.
    #[error("the server answered HTTP {status} for {url}")]
    Http {
        /// The URL being fetched.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The connection ended before the whole file came; the part stays on disk for a resume.
    #[error(
        "download of {url} was cut off after {got} of {expected} bytes; run the download again to resume"
    )]
    Truncated {
        /// The URL being fetched.
        url: String,
        /// Bytes on disk.
        got: u64,
        /// Bytes expected.
        expected: u64,
    },
    /// The file is complete but not the file expected (size or sha256 differ); it was deleted.
    #[error("{file} is corrupt: {detail}; the file was deleted, download it again")]
    Corrupt {
        /// The file (relative path inside the model).
        file: String,
        /// Expected vs actual.
        detail: String,
    },
    /// The caller's verifier refused the downloaded model (config or weights do not load).
    #[error("model `{name}` does not load: {detail}")]
    Rejected {
        /// The model.
        name: String,
        /// The verifier's message.
        detail: String,
    },
    /// The disk (or quota) is full.
    #[error("disk full while writing {}: free some space and run the download again to resume", path.display())]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// The folder cannot be written (permissions, read-only file system).
    #[error("cannot write to {}: {detail} (set LOCOSEP_DATA_DIR to a writable folder)", path.display())]
    NotWritable {
        /// The folder or file.
        path: PathBuf,
        /// The OS message.
        detail: String,
    },
    /// Any other file-system error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A folder to import misses a file the model needs.
    #[error("{what}")]
    MissingFile {
        /// The folder.
        dir: PathBuf,
        /// What is missing and what was looked for, naming the folder.
        what: String,
    },
    /// The download was cancelled; partial files stay on disk for a resume.
    #[error("download cancelled; run it again to resume")]
    Cancelled,
    /// No data folder could be found (no home directory and no `LOCOSEP_DATA_DIR`).
    #[error("no data folder: set LOCOSEP_DATA_DIR")]
    NoDataDir,
}

impl CatalogError {
    /// Classifies an I/O error on `path`: disk full and permission problems get their own
    /// variants so that the message says what to do.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        match source.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                CatalogError::DiskFull { path }
            }
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                CatalogError::NotWritable {
                    path,
                    detail: source.to_string(),
                }
            }
            _ => CatalogError::Io { path, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn io_errors_are_classified() {
        use std::io::{Error, ErrorKind};
        let p = Path::new("/x");
        assert!(matches!(
            CatalogError::io(p, Error::from(ErrorKind::StorageFull)),
            CatalogError::DiskFull { .. }
        ));
        assert!(matches!(
            CatalogError::io(p, Error::from(ErrorKind::PermissionDenied)),
            CatalogError::NotWritable { .. }
        ));
        assert!(matches!(
            CatalogError::io(p, Error::from(ErrorKind::ReadOnlyFilesystem)),
            CatalogError::NotWritable { .. }
        ));
        assert!(matches!(
            CatalogError::io(p, Error::from(ErrorKind::NotFound)),
            CatalogError::Io { .. }
        ));
    }
}
