//! Resumable, verified model downloads over HTTP(S).
//!
//! Per file: `<staging>/<path>.part` is appended to, resumed with `Range: bytes=N-` after an
//! interruption (the part stays on disk across restarts), checked against the catalog's size
//! and sha256 (or, when the catalog has none, a sha256 the server states in `X-Linked-Etag` /
//! `ETag`), then renamed to `<staging>/<path>`. When every file is there the caller's verifier
//! runs on the staging folder, and only then is the folder renamed into place
//! (`Store::commit`). Redirects are followed here (not by the client) so that the
//! `X-Linked-Etag`/`X-Linked-Size` of a Hugging Face redirect are seen.

use crate::cancel::CancelToken;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::entries::{FileEntry, ModelEntry, is_sha256};
use super::error::CatalogError;
use super::store::{
    InstalledFile, InstalledModel, Manifest, PART_SUFFIX, Store, check_file, create_dir, hash_file,
    hash_reader, hex, now,
};

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

fn agent(opts: &DownloadOptions) -> ureq::Agent {
    let proxy = match opts.proxy {
        ProxyChoice::FromEnv => ureq::Proxy::try_from_env(),
        ProxyChoice::Direct => None,
    };
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .proxy(proxy)
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_recv_response(Some(opts.read_timeout))
        .timeout_per_read(Some(opts.read_timeout))
        .user_agent(format!("locosep/{}", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::new_with_config(config)
}

/// What the server said about the file besides its body.
#[derive(Debug, Default)]
struct Announced {
    /// A sha256 from `X-Linked-Etag` or `ETag`.
    sha256: Option<String>,
    /// `X-Linked-Size` of a redirect.
    size: Option<u64>,
}

/// Fetches one file into `<dest>.part` (resuming), checks it and renames it to `dest`.
fn fetch_file(
    agent: &ureq::Agent,
    url: &str,
    file: &FileEntry,
    dest: &Path,
    report: &mut dyn FnMut(u64, Option<u64>, u64),
    cancel: &CancelToken,
) -> Result<InstalledFile, CatalogError> {
    let part = part_path(dest);
    let mut restarted = false;
    loop {
        let mut offset = match std::fs::metadata(&part) {
            Ok(m) => m.len(),
            Err(_) => 0,
        };
        if file.size.is_some_and(|s| offset > s) {
            remove(&part)?;
            offset = 0;
        }
        let (resp, announced) = get(agent, url, offset)?;
        let status = resp.status().as_u16();
        let header = |k: &str| {
            resp.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        let mut announced = announced;
        if announced.sha256.is_none() {
            announced.sha256 = header("x-linked-etag")
                .or_else(|| header("etag"))
                .and_then(|e| etag_sha256(&e));
        }
        let (start, total) = match status {
            200 => (0, content_length.or(announced.size)),
            206 => {
                let range = header("content-range").and_then(|v| parse_content_range(&v));
                match range {
                    Some((start, total)) if start == offset => {
                        (start, total.or(content_length.map(|n| start + n)))
                    }
                    // A range we did not ask for: start over once.
                    _ if !restarted => {
                        remove(&part)?;
                        restarted = true;
                        continue;
                    }
                    _ => {
                        return Err(CatalogError::Http {
                            url: url.to_string(),
                            status,
                        });
                    }
                }
            }
            416 if offset > 0 && !restarted => {
                // The part is as long as (or longer than) the file: check it, or start over.
                let total = header("content-range").and_then(|v| parse_content_range(&v));
                if let Some((_, Some(t))) = total
                    && t == offset
                {
                    let (sha256, size) = hash_file(&part)?;
                    return check_and_rename(&part, dest, file, &announced, sha256, size);
                }
                remove(&part)?;
                restarted = true;
                continue;
            }
            404 | 410 => {
                return Err(CatalogError::NotFound {
                    url: url.to_string(),
                });
            }
            _ => {
                return Err(CatalogError::Http {
                    url: url.to_string(),
                    status,
                });
            }
        };
        if let (Some(want), Some(t)) = (file.size, total)
            && want != t
        {
            return Err(CatalogError::Corrupt {
                file: file.path.clone(),
                detail: format!("the server has {t} bytes, the catalog says {want}"),
            });
        }
        let total = total.or(file.size);
        // Open the part: appended to on 206, rewritten from 0 on 200 (range ignored).
        let mut out = OpenOptions::new()
            .create(true)
            .append(start > 0)
            .write(true)
            .truncate(start == 0)
            .open(&part)
            .map_err(|e| CatalogError::io(&part, e))?;
        let mut hasher = Sha256::new();
        if start > 0 {
            // Hash the bytes kept on disk instead of reading the whole file again at the end.
            let mut existing =
                std::fs::File::open(&part).map_err(|e| CatalogError::io(&part, e))?;
            let n = hash_reader(&mut (&mut existing).take(start), &mut hasher)
                .map_err(|e| CatalogError::io(&part, e))?;
            if n != start {
                remove(&part)?;
                continue;
            }
        }
        let mut done = start;
        report(done, total, start);
        let mut body = resp.into_body().into_reader();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            if cancel.is_cancelled() {
                out.sync_data().map_err(|e| CatalogError::io(&part, e))?;
                return Err(CatalogError::Cancelled);
            }
            let k = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    out.sync_data().map_err(|e| CatalogError::io(&part, e))?;
                    return Err(match total {
                        Some(expected) => CatalogError::Truncated {
                            url: url.to_string(),
                            got: done,
                            expected,
                        },
                        None => CatalogError::Network {
                            url: url.to_string(),
                            detail: e.to_string(),
                        },
                    });
                }
            };
            out.write_all(&buf[..k])
                .map_err(|e| CatalogError::io(&part, e))?;
            hasher.update(&buf[..k]);
            done += k as u64;
            report(done, total, start);
        }
        out.sync_all().map_err(|e| CatalogError::io(&part, e))?;
        drop(out);
        if let Some(expected) = total
            && done < expected
        {
            return Err(CatalogError::Truncated {
                url: url.to_string(),
                got: done,
                expected,
            });
        }
        let sha256 = hex(&hasher.finalize());
        return check_and_rename(&part, dest, file, &announced, sha256, done);
    }
}

/// Checks size and sha256 (catalog first, else what the server announced); a mismatch deletes
/// the part. On success the part becomes `dest`.
fn check_and_rename(
    part: &Path,
    dest: &Path,
    file: &FileEntry,
    announced: &Announced,
    sha256: String,
    size: u64,
) -> Result<InstalledFile, CatalogError> {
    let got = InstalledFile {
        path: file.path.clone(),
        size,
        sha256,
    };
    let want = file.sha256.as_deref().or(announced.sha256.as_deref());
    if let Err(e) = check_file(&file.path, &got, file.size, want) {
        remove(part)?;
        return Err(e);
    }
    std::fs::rename(part, dest).map_err(|e| CatalogError::io(dest, e))?;
    Ok(got)
}

/// GET `url` from byte `offset` on, following up to 10 redirects by hand (collecting the
/// sha256 and size a redirect announces).
fn get(
    agent: &ureq::Agent,
    url: &str,
    offset: u64,
) -> Result<(ureq::http::Response<ureq::Body>, Announced), CatalogError> {
    let mut announced = Announced::default();
    let mut current = url.to_string();
    for _ in 0..10 {
        let mut req = agent.get(&current);
        if offset > 0 {
            req = req.header("Range", format!("bytes={offset}-"));
        }
        let resp = req.call().map_err(|e| CatalogError::Network {
            url: current.clone(),
            detail: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        if !(300..400).contains(&status) || status == 304 {
            return Ok((resp, announced));
        }
        let header = |k: &str| {
            resp.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if announced.sha256.is_none() {
            announced.sha256 = header("x-linked-etag").and_then(|e| etag_sha256(&e));
        }
        if announced.size.is_none() {
            announced.size = header("x-linked-size").and_then(|v| v.trim().parse().ok());
        }
        let Some(location) = header("location") else {
            return Err(CatalogError::Http {
                url: current,
                status,
            });
        };
        current = join_url(&current, &location);
    }
    Err(CatalogError::Network {
        url: url.to_string(),
        detail: "too many redirects".into(),
    })
}

/// Resolves a `Location` against the URL it came from.
fn join_url(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{}{rest}", &base[..scheme_end]);
    }
    let authority_end = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    if location.starts_with('/') {
        return format!("{}{location}", &base[..authority_end]);
    }
    let path = base.split(['?', '#']).next().unwrap_or(base);
    let dir_end = path
        .rfind('/')
        .filter(|&i| i >= authority_end)
        .map(|i| i + 1);
    match dir_end {
        Some(i) => format!("{}{location}", &path[..i]),
        None => format!("{path}/{location}"),
    }
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`) → (START, TOTAL); `bytes */TOTAL` → (0, TOTAL).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim();
    let (range, total) = rest.split_once('/')?;
    let total = total.trim().parse().ok();
    if range.trim() == "*" {
        return Some((0, total));
    }
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total))
}

/// The sha256 carried by an entity tag (`"…64 hex…"`, maybe weak), else `None`.
pub fn etag_sha256(etag: &str) -> Option<String> {
    let t = etag.trim();
    let t = t.strip_prefix("W/").unwrap_or(t).trim_matches('"');
    is_sha256(t).then(|| t.to_ascii_lowercase())
}

fn part_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(PART_SUFFIX);
    PathBuf::from(s)
}

fn remove(path: &Path) -> Result<(), CatalogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CatalogError::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::catalog::entries::Catalog;
    use crate::catalog::test_http_server::Server;

    const NAME: &str = "sup.musdb18hq.bslocoformer-small";

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bslocoformer/mixit-small")
    }

    /// A server root laid out as the published tree, with the mixit-small fixture as `NAME`.
    fn tree(root: &Path) -> PathBuf {
        let dir = root.join("models/sup").join(NAME);
        std::fs::create_dir_all(dir.join("checkpoints")).unwrap();
        for f in ["merged_config.yaml", "checkpoints/model.pth"] {
            std::fs::copy(fixture().join(f), dir.join(f)).unwrap();
        }
        dir
    }

    fn pth_len() -> u64 {
        std::fs::metadata(fixture().join("checkpoints/model.pth"))
            .unwrap()
            .len()
    }

    fn pth_sha() -> String {
        hash_file(&fixture().join("checkpoints/model.pth"))
            .unwrap()
            .0
    }

    /// The published catalog entry, served by the test server as a mirror.
    fn entry() -> ModelEntry {
        Catalog::builtin().unwrap().get(NAME).unwrap().clone()
    }

    fn opts(server: &Server) -> DownloadOptions {
        DownloadOptions {
            mirror: Some(server.base.clone()),
            proxy: ProxyChoice::Direct,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            ..Default::default()
        }
    }

    /// Stub verifier: the YAML parses and names a BSLocoformer; the checkpoint is a zip.
    fn stub_verify(dir: &Path) -> Result<(), String> {
        let text =
            std::fs::read_to_string(dir.join("merged_config.yaml")).map_err(|e| e.to_string())?;
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| e.to_string())?;
        let target = doc["task"]["model"]["model"]["_target_"]
            .as_str()
            .unwrap_or("");
        if !target.ends_with("BSLocoformer") {
            return Err(format!("not a BSLocoformer config: {target:?}"));
        }
        let head = std::fs::read(dir.join("checkpoints/model.pth")).map_err(|e| e.to_string())?;
        if !head.starts_with(b"PK\x03\x04") {
            return Err("model.pth is not a torch.save zip".into());
        }
        Ok(())
    }

    fn run(
        store: &Store,
        entry: &ModelEntry,
        opts: &DownloadOptions,
    ) -> (Result<InstalledModel, CatalogError>, Vec<DownloadProgress>) {
        let mut seen = vec![];
        let r = download_model(
            store,
            entry,
            opts,
            &stub_verify,
            &mut |p| seen.push(p.clone()),
            &CancelToken::new(),
        );
        (r, seen)
    }

    #[test]
    fn full_download_installs_and_records_hashes() {
        let tmp = tempfile::tempdir().unwrap();
        tree(&tmp.path().join("srv"));
        let server = Server::start(&tmp.path().join("srv"));
        let store = Store::new(tmp.path().join("data"));
        let (r, seen) = run(&store, &entry(), &opts(&server));
        let m = r.unwrap();
        assert_eq!(m.dir, store.model_dir(NAME));
        assert_eq!(store.get(NAME).unwrap(), m);
        assert_eq!(m.manifest.origin, server.base);
        let pth = m
            .manifest
            .files
            .iter()
            .find(|f| f.path == "checkpoints/model.pth")
            .unwrap();
        assert_eq!((pth.size, pth.sha256.clone()), (pth_len(), pth_sha()));
        assert_eq!(
            std::fs::read(m.dir.join("checkpoints/model.pth")).unwrap(),
            std::fs::read(fixture().join("checkpoints/model.pth")).unwrap()
        );
        // Progress reached the end of each file, with its size known.
        let last = seen
            .iter()
            .rev()
            .find(|p| p.file == "checkpoints/model.pth")
            .unwrap();
        assert_eq!(
            (last.done, last.total, last.index, last.count),
            (pth_len(), Some(pth_len()), 1, 2)
        );
        assert!(server.requests("").iter().all(|l| l.range.is_none()));
        assert!(!store.staging_dir(NAME).exists());
        // Installed once; a second download without `replace` is refused.
        let (again, _) = run(&store, &entry(), &opts(&server));
        assert!(matches!(again, Err(CatalogError::AlreadyInstalled { .. })));
        let replace = DownloadOptions {
            replace: true,
            ..opts(&server)
        };
        run(&store, &entry(), &replace).0.unwrap();
    }

    #[test]
    fn dropped_connection_resumes_with_range_without_refetching() {
        let tmp = tempfile::tempdir().unwrap();
        tree(&tmp.path().join("srv"));
        let server = Server::start(&tmp.path().join("srv"));
        let path = format!("/models/sup/{NAME}/checkpoints/model.pth");
        let half = pth_len() / 2;
        server
            .behaviour
            .lock()
            .unwrap()
            .cut_after
            .insert(path.clone(), half);
        let store = Store::new(tmp.path().join("data"));

        let (r, _) = run(&store, &entry(), &opts(&server));
        match r {
            Err(CatalogError::Truncated { got, expected, .. }) => {
                assert_eq!((got, expected), (half, pth_len()))
            }
            other => panic!("expected a truncated download, got {other:?}"),
        }
        assert!(
            store.get(NAME).is_none(),
            "a partial model must not be installed"
        );
        assert!(!store.model_dir(NAME).exists());
        let part = store.staging_dir(NAME).join("checkpoints/model.pth.part");
        assert_eq!(std::fs::metadata(&part).unwrap().len(), half);

        // A new call (as after a restart) resumes from the part on disk.
        let (r, seen) = run(&store, &entry(), &opts(&server));
        let m = r.unwrap();
        let reqs = server.requests("model.pth");
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].range, None);
        assert_eq!(
            reqs[1].range.as_deref(),
            Some(format!("bytes={half}-").as_str())
        );
        assert_eq!(reqs[1].status, 206);
        // Every byte was sent once: the first half is not fetched again.
        assert_eq!(server.bytes_served("model.pth"), pth_len());
        // The finished config was not fetched again either.
        assert_eq!(server.requests("merged_config.yaml").len(), 1);
        assert!(seen.iter().any(|p| p.resumed_from == half));
        let pth = m
            .manifest
            .files
            .iter()
            .find(|f| f.path == "checkpoints/model.pth")
            .unwrap();
        assert_eq!(pth.sha256, pth_sha());
        assert!(!part.exists());
    }

    #[test]
    fn server_ignoring_range_restarts_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        tree(&tmp.path().join("srv"));
        let server = Server::start(&tmp.path().join("srv"));
        let path = format!("/models/sup/{NAME}/checkpoints/model.pth");
        server
            .behaviour
            .lock()
            .unwrap()
            .cut_after
            .insert(path, 1000);
        let store = Store::new(tmp.path().join("data"));
        assert!(run(&store, &entry(), &opts(&server)).0.is_err());
        server.behaviour.lock().unwrap().ignore_range = true;
        let m = run(&store, &entry(), &opts(&server)).0.unwrap();
        assert_eq!(server.requests("model.pth")[1].status, 200);
        assert_eq!(
            hash_file(&m.dir.join("checkpoints/model.pth")).unwrap().0,
            pth_sha()
        );
    }

    #[test]
    fn not_found_is_reported_and_nothing_installed() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("empty")).unwrap();
        let server = Server::start(&tmp.path().join("empty"));
        let store = Store::new(tmp.path().join("data"));
        let (r, _) = run(&store, &entry(), &opts(&server));
        match r {
            Err(CatalogError::NotFound { url }) => {
                assert_eq!(
                    url,
                    format!("{}models/sup/{NAME}/merged_config.yaml", server.base)
                )
            }
            other => panic!("expected 404, got {other:?}"),
        }
        assert!(store.installed().unwrap().is_empty());
    }

    #[test]
    fn no_network_is_reported() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path().join("data"));
        let o = DownloadOptions {
            mirror: Some(format!("http://127.0.0.1:{port}/")),
            proxy: ProxyChoice::Direct,
            connect_timeout: Duration::from_secs(5),
            ..Default::default()
        };
        let (r, _) = run(&store, &entry(), &o);
        assert!(matches!(r, Err(CatalogError::Network { .. })), "{r:?}");
        assert!(r.unwrap_err().to_string().starts_with("no network"));
    }

    #[test]
    fn wrong_sha256_in_the_catalog_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        tree(&tmp.path().join("srv"));
        let server = Server::start(&tmp.path().join("srv"));
        let store = Store::new(tmp.path().join("data"));
        let mut e = entry();
        e.files[1].sha256 = Some("0".repeat(64));
        let (r, _) = run(&store, &e, &opts(&server));
        assert!(
            matches!(r, Err(CatalogError::Corrupt { ref file, .. }) if file == "checkpoints/model.pth"),
            "{r:?}"
        );
        assert!(store.get(NAME).is_none());
        // The corrupt part is gone, so the next attempt starts afresh.
        assert!(
            !store
                .staging_dir(NAME)
                .join("checkpoints/model.pth.part")
                .exists()
        );
        // With the right hash it installs.
        e.files[1].sha256 = Some(pth_sha());
        e.files[1].size = Some(pth_len());
        run(&store, &e, &opts(&server)).0.unwrap();
    }

    #[test]
    fn corrupt_file_behind_a_redirect_is_caught_by_the_linked_etag() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tree(&tmp.path().join("srv"));
        // The "CDN" copy differs in one byte from the file the redirect vouches for.
        let mut bytes = std::fs::read(dir.join("checkpoints/model.pth")).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::create_dir_all(tmp.path().join("srv/cdn")).unwrap();
        std::fs::write(tmp.path().join("srv/cdn/blob"), &bytes).unwrap();
        let server = Server::start(&tmp.path().join("srv"));
        let path = format!("/models/sup/{NAME}/checkpoints/model.pth");
        let etag = vec![("X-Linked-Etag".to_string(), format!("\"{}\"", pth_sha()))];
        server
            .behaviour
            .lock()
            .unwrap()
            .redirects
            .insert(path.clone(), ("/cdn/blob".into(), etag.clone()));
        let store = Store::new(tmp.path().join("data"));
        let (r, _) = run(&store, &entry(), &opts(&server));
        assert!(matches!(r, Err(CatalogError::Corrupt { .. })), "{r:?}");
        assert!(store.get(NAME).is_none());
        // A good blob behind the same redirect installs.
        std::fs::copy(
            dir.join("checkpoints/model.pth"),
            tmp.path().join("srv/cdn/blob"),
        )
        .unwrap();
        let m = run(&store, &entry(), &opts(&server)).0.unwrap();
        assert!(m.dir.join("checkpoints/model.pth").exists());
        assert_eq!(server.requests("/cdn/blob").len(), 2);
    }

    #[test]
    fn verifier_refusal_installs_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tree(&tmp.path().join("srv"));
        // Not a zip any more: the stub verifier refuses it.
        std::fs::write(
            dir.join("checkpoints/model.pth"),
            b"garbage, not a checkpoint",
        )
        .unwrap();
        let server = Server::start(&tmp.path().join("srv"));
        let store = Store::new(tmp.path().join("data"));
        let (r, _) = run(&store, &entry(), &opts(&server));
        match r {
            Err(CatalogError::Rejected { name, detail }) => {
                assert_eq!(name, NAME);
                assert!(detail.contains("zip"), "{detail}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(store.get(NAME).is_none());
        assert!(!store.model_dir(NAME).exists());
        assert!(!store.staging_dir(NAME).exists());
    }

    #[test]
    fn cancel_keeps_the_part_for_a_resume() {
        let tmp = tempfile::tempdir().unwrap();
        tree(&tmp.path().join("srv"));
        let server = Server::start(&tmp.path().join("srv"));
        let store = Store::new(tmp.path().join("data"));
        let cancel = CancelToken::new();
        let r = download_model(
            &store,
            &entry(),
            &opts(&server),
            &stub_verify,
            &mut |p| {
                if p.file == "checkpoints/model.pth" && p.done > 0 {
                    cancel.cancel();
                }
            },
            &cancel,
        );
        assert!(matches!(r, Err(CatalogError::Cancelled)), "{r:?}");
        assert!(store.get(NAME).is_none());
        let part = store.staging_dir(NAME).join("checkpoints/model.pth.part");
        let kept = std::fs::metadata(&part).unwrap().len();
        assert!(kept > 0 && kept < pth_len());
        let m = run(&store, &entry(), &opts(&server)).0.unwrap();
        assert_eq!(
            server
                .requests("model.pth")
                .last()
                .unwrap()
                .range
                .as_deref(),
            Some(format!("bytes={kept}-").as_str())
        );
        assert_eq!(
            hash_file(&m.dir.join("checkpoints/model.pth")).unwrap().0,
            pth_sha()
        );
    }

    #[test]
    fn bundled_models_are_not_downloaded() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let demo = Catalog::builtin().unwrap().get("demo").unwrap().clone();
        let r = download_model(
            &store,
            &demo,
            &DownloadOptions::default(),
            &stub_verify,
            &mut |_| {},
            &CancelToken::new(),
        );
        assert!(matches!(r, Err(CatalogError::Bundled(_))));
    }

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

    #[test]
    fn etags_that_are_sha256() {
        let h = "a".repeat(64);
        assert_eq!(etag_sha256(&format!("\"{h}\"")), Some(h.clone()));
        assert_eq!(etag_sha256(&format!("W/\"{}\"", h.to_uppercase())), Some(h));
        // A git blob id (sha1) or a CDN tag is not a sha256.
        assert_eq!(
            etag_sha256("\"0123456789abcdef0123456789abcdef01234567\""),
            None
        );
        assert_eq!(etag_sha256("\"abc-123\""), None);
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("bytes */42"), Some((0, Some(42))));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn redirect_targets() {
        let b = "https://h.co/org/repo/resolve/abc/models/x.pth";
        assert_eq!(
            join_url(b, "https://cdn.example/y?sig=1"),
            "https://cdn.example/y?sig=1"
        );
        assert_eq!(join_url(b, "/api/z"), "https://h.co/api/z");
        assert_eq!(join_url(b, "//cdn.example/y"), "https://cdn.example/y");
        assert_eq!(
            join_url(b, "y.pth"),
            "https://h.co/org/repo/resolve/abc/models/y.pth"
        );
        assert_eq!(join_url("http://h:1", "a"), "http://h:1/a");
    }
}
