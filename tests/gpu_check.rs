//! `locosep bench gpu-check --small` on lavapipe: the real-GPU check kit's report has every
//! section, every preset passes parity, the gradients agree, the memory table is measured and
//! the report file equals what was printed.

mod common;
use common::{bin, run};

#[test]
fn the_small_gpu_check_report_has_every_section_and_passes_on_lavapipe() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("gpu-check.md");
    let out = run(bin()
        .args(["bench", "gpu-check", "--small", "--report"])
        .arg(&report));
    assert!(
        out.status.success(),
        "gpu-check failed (lavapipe is installed by `make deps`)"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for heading in [
        "# locosep GPU check",
        "## Device",
        "## Separation parity (GPU vs CPU)",
        "## Training gradients (GPU vs CPU)",
        "## Planner vs measured",
        "## Throughput",
        "## Fused attention (`bench attention --frames 4`)",
        "## Result",
    ] {
        assert!(text.contains(heading), "no `{heading}` in the report");
    }
    assert!(
        text.contains("small shapes"),
        "lavapipe gets the small shapes"
    );
    assert!(text.contains("PASS: every parity and gradient check"));
    assert!(!text.contains("FAIL"), "a check failed");
    // Every preset has a parity row that passed and a throughput row.
    for p in locosep::model::config::builtin_presets() {
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("| {} |", p.name)))
            .collect();
        assert!(
            rows.iter().any(|l| l.ends_with("| pass |")),
            "no passing parity row for {}",
            p.name
        );
        assert!(rows.len() >= 2, "no throughput row for {}", p.name);
    }
    // Both backwards were compared, and the memory cases were measured, not skipped.
    assert!(text.contains("| plain |") && text.contains("| checkpointed |"));
    for case in [
        "balanced 0.5 s L1",
        "xlarge 0.5 s L1",
        "demo 0.1 s L1 B1 train-ckpt offload",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("| {case}"))),
            "memory case `{case}` was not measured"
        );
    }
    let saved = std::fs::read_to_string(&report).expect("the report file");
    assert_eq!(saved, text, "the file holds what was printed");
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(
        files.len(),
        1,
        "a temporary file was left beside the report"
    );
}

/// Without any wgpu adapter the check refuses before any work, saying why.
#[test]
fn gpu_check_refuses_without_an_adapter() {
    let out = run(bin()
        .args(["bench", "gpu-check", "--small"])
        // No Vulkan driver (the loader's driver lists) and no OpenGL one (glvnd's EGL vendor
        // list, Mesa's driver folder): wgpu finds no adapter.
        .env("VK_ICD_FILENAMES", "/nonexistent.json")
        .env("VK_DRIVER_FILES", "/nonexistent.json")
        .env("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent.json")
        .env("LIBGL_DRIVERS_PATH", "/nonexistent"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a wgpu adapter"), "{err}");
    assert!(
        !err.contains("--device cpu"),
        "no advice that does not apply here: {err}"
    );
    assert!(out.stdout.is_empty(), "no report without a GPU");
}
