//! Resumable, verified model downloads over HTTP(S).
//!
//! Per file: `<staging>/<path>.part` is appended to, resumed with `Range: bytes=N-` after an
//! interruption (the part stays on disk across restarts), checked against the catalog's size
//! and sha256 (or, when the catalog has none, a sha256 the server states in `X-Linked-Etag` /
//! `ETag`), then renamed to `<staging>/<path>`. When every file is there the caller's verifier
//! runs on the staging folder, and only then is the folder renamed into place
//! (`Store::commit`). Redirects are followed here (not by the client) so that the
//! `X-Linked-Etag`/`X-Linked-Size` of a Hugging Face redirect are seen.
//!
//! | file         | what is in it                                                            |
//! |--------------|--------------------------------------------------------------------------|
//! | `options.rs` | [`DownloadOptions`], [`ProxyChoice`], [`DownloadProgress`], [`Verifier`] |
//! | `http.rs`    | the HTTP client: GET with a range, redirects by hand, header parsing     |
//! | `part.rs`    | the `.part` file: its path, its removal, size/sha256 check and rename    |
//! | `resume.rs`  | one file fetched into its part, resumed from what is on disk             |
//! | `install.rs` | [`download_model`]: every file, the verifier, then the install           |
//! | `tests.rs`   | end-to-end downloads against the loopback test server                    |
//!
//! Imports go one way: `install` → `resume` → `http`, `part` → `options`.

mod http;
mod install;
mod options;
mod part;
mod resume;

#[cfg(test)]
mod tests;

pub use install::download_model;
pub use options::{DownloadOptions, DownloadProgress, MIRROR_ENV, ProxyChoice, Verifier};
