//! How to download (options, the mirror variable) and what a download reports (progress).

use std::path::Path;
use std::time::Duration;

/// Environment variable naming a mirror base URL (same as `--mirror`).
pub const MIRROR_ENV: &str = "LOCOSEP_MODEL_MIRROR";

/// Whether to use a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyChoice {
    /// `ALL_PROXY` / `HTTPS_PROXY` / `HTTP_PROXY` (and lower-case forms), honouring `NO_PROXY`.
    #[default]
    FromEnv,
    /// Connect directly.
    Direct,
}

/// How to download.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Base URL replacing the catalog's (a plain copy of the published tree).
    pub mirror: Option<String>,
    /// Proxy use.
    pub proxy: ProxyChoice,
    /// Replace an installed model of the same name.
    pub replace: bool,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for any single read (a stalled connection ends the attempt; the part stays).
    pub read_timeout: Duration,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            mirror: None,
            proxy: ProxyChoice::FromEnv,
            replace: false,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
        }
    }
}

impl DownloadOptions {
    /// Defaults with the mirror taken from `LOCOSEP_MODEL_MIRROR` when set.
    pub fn from_env() -> Self {
        Self {
            mirror: std::env::var(MIRROR_ENV).ok().filter(|m| !m.is_empty()),
            ..Self::default()
        }
    }
}

/// Progress of one file of a model download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadProgress {
    /// The file (relative path inside the model).
    pub file: String,
    /// Its index among the model's files (0-based).
    pub index: usize,
    /// How many files the model has.
    pub count: usize,
    /// Bytes of this file on disk (including those kept from an earlier attempt).
    pub done: u64,
    /// Its size, when known.
    pub total: Option<u64>,
    /// Bytes that were already on disk when this attempt started (resumed from).
    pub resumed_from: u64,
}

/// A model verifier: `Ok` when the folder holds a model that loads (config parses, every weight
/// present with the right shape), else a message saying why not.
pub type Verifier<'a> = &'a dyn Fn(&Path) -> Result<(), String>;
