//! `make package`'s .deb: built from the test binary by `packaging/build-deb.sh`, installed by
//! dpkg into a scratch root (`dpkg --root`, dependencies not checked there), and run from that
//! root: it must find its bundled model and demo song under `usr/share/locosep/assets` (not
//! in the source tree) and separate the demo song.
//!
//! Requires `dpkg`/`dpkg-deb` (Debian).

use std::path::Path;
use std::process::Command;

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn deb_installs_and_runs_from_its_own_assets() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pkg");
    let deb = ok(Command::new(root.join("packaging/build-deb.sh"))
        .env("LOCOSEP_DEB_FAST", "1")
        .arg(env!("CARGO_BIN_EXE_locosep"))
        .arg(&out));
    let deb = deb.lines().last().unwrap().trim().to_string();
    let info = ok(Command::new("dpkg-deb").args(["--info", &deb]));
    assert!(info.contains("Package: locosep"), "{info}");
    let contents = ok(Command::new("dpkg-deb").args(["--contents", &deb]));
    for want in [
        "./usr/bin/locosep",
        "./usr/share/applications/locosep.desktop",
        "./usr/share/locosep/assets/demo/",
        "./usr/share/locosep/assets/models/",
    ] {
        assert!(contents.contains(want), "{want} missing from the package");
    }

    let droot = tmp.path().join("root");
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        std::fs::create_dir_all(droot.join(d)).unwrap();
    }
    std::fs::write(droot.join("var/lib/dpkg/status"), "").unwrap();
    ok(Command::new("dpkg")
        .arg(format!("--root={}", droot.display()))
        .args([
            "--force-depends",
            "--force-not-root",
            "--log=/dev/null",
            "-i",
            &deb,
        ]));

    let installed = droot.join("usr/bin/locosep");
    let presets = ok(Command::new(&installed).arg("presets"));
    let assets = droot.join("usr/bin/../share/locosep/assets");
    assert!(
        presets.contains(&assets.display().to_string()),
        "the installed binary must use its packaged model:\n{presets}"
    );
    let song = droot.join("usr/share/locosep/assets/demo");
    let song = std::fs::read_dir(&song)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("mixture.wav");
    // The first 3 s of the packaged demo song keep the test short.
    let mut r = hound::WavReader::open(&song).unwrap();
    let spec = r.spec();
    let take = 3 * spec.sample_rate as usize * spec.channels as usize;
    let samples: Vec<i32> = r.samples::<i32>().take(take).map(|s| s.unwrap()).collect();
    let clip = tmp.path().join("clip.wav");
    let mut w = hound::WavWriter::create(&clip, spec).unwrap();
    for s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    let stems = tmp.path().join("stems");
    ok(Command::new(&installed)
        .args(["separate", clip.to_str().unwrap(), "--out"])
        .arg(&stems));
    for stem in ["vocals", "drums", "bass", "other"] {
        assert!(
            stems.join(format!("clip/{stem}.wav")).exists(),
            "{stem} written"
        );
    }
}
