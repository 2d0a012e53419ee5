//! `locosep export`: the bundled model written as the fork's `.pth`, ESPnet's `.pth` and
//! safetensors reads back with bit-identical weights under the same names; an existing file is
//! never replaced without `--overwrite`; bad weights are refused before anything is written.

use locosep::model::state_dict::{StateDict, load_state_dict};

mod common;

fn bits(sd: &StateDict) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    sd.iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.shape.clone(),
                t.data.iter().map(|v| v.to_bits()).collect(),
            )
        })
        .collect()
}

#[test]
fn exports_round_trip_bit_identically_and_never_overwrite_silently() {
    let (_, weights, _) = locosep::assets::default_model().expect("bundled model");
    let original = load_state_dict(&weights).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (format, file) in [
        ("pth-fork", "fork.pth"),
        ("pth-espnet", "espnet.pth"),
        ("safetensors", "m.safetensors"),
    ] {
        let out = dir.path().join(file);
        let o = common::run(
            common::bin()
                .args(["export", "--format", format, "--out"])
                .arg(&out),
        );
        assert!(
            o.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let back = load_state_dict(&out).unwrap();
        assert_eq!(bits(&back), bits(&original), "{format}: weights differ");
        // A second export to the same file is refused and leaves it as it was.
        let before = std::fs::read(&out).unwrap();
        let o = common::run(
            common::bin()
                .args(["export", "--format", format, "--out"])
                .arg(&out),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("exists"),
            "{format}: {err}"
        );
        assert_eq!(std::fs::read(&out).unwrap(), before);
        let o = common::run(
            common::bin()
                .args(["export", "--overwrite", "--format", format, "--out"])
                .arg(&out),
        );
        assert!(o.status.success(), "{format} --overwrite");
    }
    // The ESPnet file separates with the bundled config like the original weights.
    let (config, _, _) = locosep::assets::default_model().unwrap();
    let stems = dir.path().join("stems");
    let song = common::fixture_song(dir.path());
    let o = common::run(
        common::bin()
            .arg("separate")
            .arg(&song)
            .arg("--config")
            .arg(&config)
            .arg("--checkpoint")
            .arg(dir.path().join("espnet.pth"))
            .args(["--device", "cpu", "--out"])
            .arg(&stems),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Weights that do not fit the architecture: an error, no file.
    let bad = dir.path().join("bad.pth");
    let o = common::run(
        common::bin()
            .args(["export", "--preset", "small", "--checkpoint"])
            .arg(&weights)
            .args(["--format", "pth-fork", "--out"])
            .arg(&bad),
    );
    assert!(!o.status.success());
    assert!(!bad.exists());
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
}
