//! `locosep models` end to end: the real binary against a loopback HTTP server started by each
//! test, with its own data folder (LOCOSEP_DATA_DIR) and config folder, no outside network.

#[path = "support/http_server.rs"]
mod http_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use http_server::Server;

/// A TF-Locoformer that loads with today's loader (the music fork's tiny model).
fn mss_tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tflocoformer/mss-tiny")
}

/// The published-layout BS-Locoformer fixture.
fn mixit_small() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bslocoformer/mixit-small")
}

struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    fn srv(&self) -> PathBuf {
        self.tmp.path().join("srv")
    }

    /// `locosep models` with this test's folders, no mirror and no proxy.
    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_locosep"));
        cmd.arg("models")
            .env("LOCOSEP_DATA_DIR", self.data())
            .env("XDG_CONFIG_HOME", self.tmp.path().join("config"))
            .env_remove("LOCOSEP_MODEL_MIRROR");
        for v in [
            "ALL_PROXY",
            "all_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
        ] {
            cmd.env_remove(v);
        }
        cmd
    }

    /// `locosep models ARGS…`.
    fn models(&self, args: &[&str]) -> Output {
        let out = self.command().args(args).output().expect("binary runs");
        eprintln!(
            "--- locosep models {args:?}\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// A catalog file with one entry `tiny-mss` (served under `models/test/tiny-mss/`).
    fn catalog(&self) -> PathBuf {
        let path = self.tmp.path().join("catalog.toml");
        std::fs::write(
            &path,
            r#"
            [[model]]
            name = "tiny-mss"
            dir = "models/test/tiny-mss"
            base_url = "http://base-url-that-the-mirror-replaces.invalid/"
            architecture = "tf-locoformer"
            sources = ["vocals", "drums", "bass", "other"]
            sample_rate = 44100
            license = "MIT"
            description = "test model"
            files = [{ path = "config.json" }, { path = "checkpoint.pth" }]
            "#,
        )
        .unwrap();
        path
    }

    /// Lays out `models/test/tiny-mss/` under the server root.
    fn serve_tiny(&self) -> PathBuf {
        let dir = self.srv().join("models/test/tiny-mss");
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["config.json", "checkpoint.pth"] {
            std::fs::copy(mss_tiny().join(f), dir.join(f)).unwrap();
        }
        dir
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn list_shows_the_catalog_and_where_models_go() {
    let env = Env::new();
    let out = env.models(&[]);
    assert!(out.status.success());
    let s = text(&out);
    for name in [
        "sup.musdb18hq.bslocoformer-small",
        "sup.musdb18hq.bslocoformer-medium.mixit-fma-large-pretrained",
        "sup.musdb18hq.bslocoformer-large.mixit-fma-large-pretrained",
    ] {
        assert!(s.contains(name), "{name} missing");
    }
    assert!(
        s.contains("bundled: "),
        "the demo model is listed as bundled"
    );
    assert!(s.contains("not installed"));
    assert!(s.contains(&env.data().display().to_string()));
    assert!(s.contains("Saijo"));
}

#[test]
fn download_installs_lists_and_removes() {
    let env = Env::new();
    env.serve_tiny();
    let server = Server::start(&env.srv());
    let cat = env.catalog();
    let cat = cat.to_str().unwrap();
    let out = env.models(&[
        "download",
        "tiny-mss",
        "--catalog",
        cat,
        "--mirror",
        &server.base,
    ]);
    assert!(out.status.success());
    let dir = env.data().join("models/tiny-mss");
    assert!(dir.join("locosep-model.toml").is_file());
    assert!(dir.join("checkpoint.pth").is_file());
    assert!(text(&out).contains("recorded sha256"));
    let list = env.models(&["--catalog", cat]);
    assert!(text(&list).contains(&format!("installed: {}", dir.display())));
    // Already installed: refused without --replace.
    let again = env.models(&[
        "download",
        "tiny-mss",
        "--catalog",
        cat,
        "--mirror",
        &server.base,
    ]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already installed"));
    let rm = env.models(&["remove", "tiny-mss", "--catalog", cat]);
    assert!(rm.status.success());
    assert!(!dir.exists());
    assert!(text(&env.models(&["--catalog", cat])).contains("not installed"));
}

#[test]
fn mirror_from_the_environment() {
    let env = Env::new();
    env.serve_tiny();
    let server = Server::start(&env.srv());
    let cat = env.catalog();
    let out = env
        .command()
        .args(["download", "tiny-mss", "--catalog"])
        .arg(&cat)
        .env("LOCOSEP_MODEL_MIRROR", &server.base)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        env.data()
            .join("models/tiny-mss/locosep-model.toml")
            .is_file()
    );
}

#[test]
fn the_proxy_from_the_environment_is_used() {
    let env = Env::new();
    env.serve_tiny();
    // The server is the proxy; the mirror's host does not exist, so only the proxy reaches it.
    let server = Server::start(&env.srv());
    let cat = env.catalog();
    let out = env
        .command()
        .args(["download", "tiny-mss", "--catalog"])
        .arg(&cat)
        .args(["--mirror", "http://mirror.invalid/"])
        .env("HTTP_PROXY", server.base.trim_end_matches('/'))
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let tunnels = server.requests("mirror.invalid:80");
    assert_eq!(tunnels.len(), 2, "one CONNECT per file: {tunnels:?}");
    assert!(
        env.data()
            .join("models/tiny-mss/locosep-model.toml")
            .is_file()
    );
}

#[test]
fn dropped_connection_resumes_on_the_next_run() {
    let env = Env::new();
    env.serve_tiny();
    let server = Server::start(&env.srv());
    let size = std::fs::metadata(mss_tiny().join("checkpoint.pth"))
        .unwrap()
        .len();
    let cut = size / 3;
    server
        .behaviour
        .lock()
        .unwrap()
        .cut_after
        .insert("/models/test/tiny-mss/checkpoint.pth".into(), cut);
    let cat = env.catalog();
    let cat = cat.to_str().unwrap();
    let first = env.models(&[
        "download",
        "tiny-mss",
        "--catalog",
        cat,
        "--mirror",
        &server.base,
    ]);
    assert!(!first.status.success());
    assert!(text(&first).contains("cut off"), "names the truncation");
    assert!(!env.data().join("models/tiny-mss").exists());
    let listed = env.models(&["--catalog", cat]);
    assert!(text(&listed).contains("partly downloaded"));

    let second = env.models(&[
        "download",
        "tiny-mss",
        "--catalog",
        cat,
        "--mirror",
        &server.base,
    ]);
    assert!(second.status.success());
    let reqs = server.requests("checkpoint.pth");
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[1].range.as_deref(),
        Some(format!("bytes={cut}-").as_str())
    );
    assert_eq!(
        server.bytes_served("checkpoint.pth"),
        size,
        "no byte fetched twice"
    );
    assert_eq!(
        std::fs::read(env.data().join("models/tiny-mss/checkpoint.pth")).unwrap(),
        std::fs::read(mss_tiny().join("checkpoint.pth")).unwrap()
    );
}

#[test]
fn not_found_is_an_error_and_installs_nothing() {
    let env = Env::new();
    std::fs::create_dir_all(env.srv()).unwrap();
    let server = Server::start(&env.srv());
    let out = env.models(&[
        "download",
        "sup.musdb18hq.bslocoformer-small",
        "--mirror",
        &server.base,
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("HTTP 404"));
    assert!(
        !env.data()
            .join("models/sup.musdb18hq.bslocoformer-small")
            .exists()
    );
}

#[test]
fn corrupt_checkpoint_is_refused_and_not_installed() {
    let env = Env::new();
    let dir = env.serve_tiny();
    // Half a checkpoint, served complete: the download succeeds, the model does not load.
    let bytes = std::fs::read(dir.join("checkpoint.pth")).unwrap();
    std::fs::write(dir.join("checkpoint.pth"), &bytes[..bytes.len() / 2]).unwrap();
    let server = Server::start(&env.srv());
    let cat = env.catalog();
    let out = env.models(&[
        "download",
        "tiny-mss",
        "--catalog",
        cat.to_str().unwrap(),
        "--mirror",
        &server.base,
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("does not load"));
    assert!(!env.data().join("models/tiny-mss").exists());
}

#[test]
fn unknown_model_names_the_known_ones() {
    let env = Env::new();
    let out = env.models(&["download", "no-such-model"]);
    assert!(!out.status.success());
    let s = text(&out);
    assert!(s.contains("unknown model") && s.contains("sup.musdb18hq.bslocoformer-small"));
}

#[test]
fn add_imports_a_folder_after_verification() {
    let env = Env::new();
    let src = env.tmp.path().join("my-model");
    std::fs::create_dir_all(&src).unwrap();
    for f in ["config.json", "weights.safetensors"] {
        std::fs::copy(mss_tiny().join(f), src.join(f)).unwrap();
    }
    let out = env.models(&["add", src.to_str().unwrap()]);
    assert!(out.status.success());
    let dir = env.data().join("models/my-model");
    assert!(dir.join("weights.safetensors").is_file());
    assert!(
        src.join("weights.safetensors").is_file(),
        "copied, not moved"
    );
    let named = env.models(&["add", src.to_str().unwrap(), "--name", "other"]);
    assert!(named.status.success());
    assert!(env.data().join("models/other/locosep-model.toml").is_file());
    let again = env.models(&["add", src.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already installed"));
    assert!(
        env.models(&["add", src.to_str().unwrap(), "--replace"])
            .status
            .success()
    );
    let list = text(&env.models(&[]));
    assert!(list.contains("other installed models") && list.contains("my-model"));
    assert!(env.models(&["remove", "my-model"]).status.success());
    assert!(!dir.exists());
}

#[test]
fn add_refuses_a_folder_that_does_not_load() {
    let env = Env::new();
    let src = env.tmp.path().join("broken");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(mss_tiny().join("config.json"), src.join("config.json")).unwrap();
    std::fs::write(src.join("model.safetensors"), b"not a checkpoint").unwrap();
    let out = env.models(&["add", src.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("does not load"));
    assert!(!env.data().join("models/broken").exists());
    // A folder with the published layout but missing its checkpoint names what is missing.
    let half = env.tmp.path().join("sup.musdb18hq.bslocoformer-small");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::copy(
        mixit_small().join("merged_config.yaml"),
        half.join("merged_config.yaml"),
    )
    .unwrap();
    let out = env.models(&["add", half.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("checkpoints/model.pth"));
}

#[test]
fn bundled_and_missing_models_cannot_be_removed() {
    let env = Env::new();
    let out = env.models(&["remove", "demo"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("bundled"));
    let out = env.models(&["remove", "sup.musdb18hq.bslocoformer-small"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not installed"));
}

/// The real thing end to end: a published model (the built-in catalog's
/// `sup.musdb18hq.bslocoformer-small`, here the tiny `mixit-small` fixture in the published
/// layout) downloaded from a mirror, verified by loading it, and used by name to separate.
#[test]
fn a_published_band_split_model_downloads_and_separates_by_name() {
    let env = Env::new();
    let name = "sup.musdb18hq.bslocoformer-small";
    let dir = env.srv().join("models/sup").join(name);
    std::fs::create_dir_all(dir.join("checkpoints")).unwrap();
    for f in ["merged_config.yaml", "checkpoints/model.pth"] {
        std::fs::copy(mixit_small().join(f), dir.join(f)).unwrap();
    }
    let server = Server::start(&env.srv());
    let out = env.models(&["download", name, "--mirror", &server.base]);
    assert!(out.status.success());
    let installed = env.data().join("models").join(name);
    assert!(installed.join("checkpoints/model.pth").is_file());

    let stems = env.tmp.path().join("stems");
    let out = Command::new(env!("CARGO_BIN_EXE_locosep"))
        .env("LOCOSEP_DATA_DIR", env.data())
        .env("XDG_CONFIG_HOME", env.tmp.path().join("config"))
        .args(["separate", "--model", name, "--device", "cpu", "--out"])
        .arg(&stems)
        .arg(mixit_small().join("mixture.wav"))
        .output()
        .unwrap();
    eprintln!("{}", text(&out));
    assert!(out.status.success());
    for stem in ["bass", "drums", "vocals", "other"] {
        assert!(
            stems
                .join("mixit-small")
                .join(format!("{stem}.wav"))
                .is_file(),
            "{stem}"
        );
    }
    // A name that is not installed says how to get it.
    let out = Command::new(env!("CARGO_BIN_EXE_locosep"))
        .env("LOCOSEP_DATA_DIR", env.data())
        .args([
            "separate",
            "--model",
            "sup.musdb18hq.bslocoformer-large",
            "--out",
        ])
        .arg(&stems)
        .arg(mixit_small().join("mixture.wav"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("locosep models download"),
        "{}",
        text(&out)
    );
}
