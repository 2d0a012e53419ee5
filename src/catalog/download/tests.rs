//! End-to-end downloads of the mixit-small fixture from the loopback test server: full,
//! resumed, restarted, refused, cancelled.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cancel::CancelToken;
use crate::catalog::entries::{Catalog, ModelEntry};
use crate::catalog::error::CatalogError;
use crate::catalog::store::{InstalledModel, Store, hash_file};
use crate::catalog::test_http_server::Server;

use super::{DownloadOptions, DownloadProgress, ProxyChoice, download_model};
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
