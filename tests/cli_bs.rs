//! The published mixit-mss folder layout through the real binary: `separate --checkpoint
//! <folder>/` writes bass/drums/vocals/other equal to the reference pipeline's stems, and
//! `model-check` accepts the band-split fixtures.

use std::path::{Path, PathBuf};

use locosep::model::state_dict::read_safetensors;

mod common;
use common::{bin, run};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bslocoformer")
}

#[test]
fn separate_with_a_published_folder_matches_the_reference_stems() {
    let dir = fixtures().join("mixit-small");
    let tmp = tempfile::tempdir().unwrap();
    let out = run(bin()
        .arg("separate")
        .arg(dir.join("mixture.wav"))
        .arg("--checkpoint")
        .arg(&dir)
        .args(["--format", "f32", "--device", "cpu", "--out"])
        .arg(tmp.path()));
    assert!(out.status.success());
    let reference = &read_safetensors(dir.join("tensors.safetensors")).unwrap()["stems"];
    let (m, n) = (reference.shape[1], reference.shape[2]);
    let tol = 1e-4
        * reference
            .data
            .iter()
            .fold(0f32, |a, v| a.max(v.abs()))
            .max(1.0);
    for (si, stem) in ["bass", "drums", "vocals", "other"].iter().enumerate() {
        // `mixture.wav` files are named after their folder (the MUSDB layout).
        let path = tmp.path().join("mixit-small").join(format!("{stem}.wav"));
        let mut r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.spec().channels as usize, m);
        let got: Vec<f32> = r.samples::<f32>().map(|s| s.unwrap()).collect();
        assert_eq!(got.len(), m * n, "{stem}: length");
        let want = &reference.data[si * m * n..(si + 1) * m * n];
        let diff = (0..n)
            .flat_map(|i| (0..m).map(move |c| (i, c)))
            .map(|(i, c)| (got[i * m + c] - want[c * n + i]).abs())
            .fold(0f32, f32::max);
        assert!(diff <= tol, "{stem}: max|diff| {diff:e} > {tol:e}");
    }
}

#[test]
fn model_check_accepts_band_split_fixtures_and_the_mixit_layout() {
    let tmp = tempfile::tempdir().unwrap();
    for (folder, weights) in [
        ("bs-mono-mask", "checkpoint.pth"),
        ("bs-stereo-map", "weights.safetensors"),
    ] {
        let dir = fixtures().join(folder);
        let out = run(bin()
            .args(["model-check", "--device", "cpu", "--config"])
            .arg(dir.join("config.json"))
            .arg("--checkpoint")
            .arg(dir.join(weights))
            .arg("--input")
            .arg(dir.join("tensors.safetensors"))
            .arg("--output")
            .arg(tmp.path().join(format!("{folder}.safetensors")))
            .arg("--reference")
            .arg(dir.join("tensors.safetensors")));
        assert!(out.status.success(), "{folder}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        for name in [
            "band_split.out",
            "block.0.out",
            "bandwise_decoding.out",
            "output.real",
        ] {
            assert!(
                stdout
                    .lines()
                    .any(|l| l.starts_with(name) && l.ends_with("ok")),
                "{folder}: {name} not compared ok:\n{stdout}"
            );
        }
    }
    // mixit-mss: the folder alone is the model; the pipeline tensors are compared.
    let dir = fixtures().join("mixit-small");
    let out = run(bin()
        .args(["model-check", "--device", "cpu", "--checkpoint"])
        .arg(&dir)
        .arg("--input")
        .arg(dir.join("tensors.safetensors"))
        .arg("--output")
        .arg(tmp.path().join("mixit.safetensors"))
        .arg("--reference")
        .arg(dir.join("tensors.safetensors")));
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for name in ["stems", "segment.output"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(name) && l.ends_with("ok")),
            "{name} not compared ok:\n{stdout}"
        );
    }
}

#[test]
fn a_damaged_or_mismatched_band_split_checkpoint_is_one_clear_error() {
    let dir = fixtures().join("bs-mono-mask");
    let tmp = tempfile::tempdir().unwrap();
    // Truncated: half of the file.
    let bytes = std::fs::read(dir.join("checkpoint.pth")).unwrap();
    let cut = tmp.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    // Mismatched: the stereo model's weights for the mono config.
    let other = fixtures().join("bs-stereo-map/weights.safetensors");
    for ckpt in [cut, other] {
        let out = run(bin()
            .args(["separate", "--device", "cpu", "--config"])
            .arg(dir.join("config.json"))
            .arg("--checkpoint")
            .arg(&ckpt)
            .arg("--out")
            .arg(tmp.path().join("out"))
            .arg(fixtures().join("mixit-small/mixture.wav")));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}", ckpt.display());
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.contains("error"), "{stderr}");
        assert!(
            !tmp.path().join("out/mixture").exists(),
            "no stems for a bad model"
        );
    }
}
