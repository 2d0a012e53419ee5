//! `locosep train --budget`: the planner's plan for the budget is printed and applied.

use locosep::memory::planner::{Mode, PlanRequest, plan, with_items};

mod common;

/// With a budget under the plain step's predicted peak, `train` prints the plan, applies it
/// (the segment, checkpointing and path sub-batches it chose, announced) and trains.
#[test]
fn train_budget_applies_the_plan_it_prints() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::two_songs(&data);
    let audio =
        "sample_rate = 44100\nsegment_seconds = 0.5\naudio_channels = 1\ninput_norm = \"none\"";
    let toml = common::tiny_model_toml(256, 128, audio);
    let config = tmp.path().join("tiny.toml");
    std::fs::write(&config, &toml).unwrap();
    let model = locosep::model::config::ModelConfig::from_toml_str(&toml, "tiny").unwrap();
    let pm = locosep::engine::plan::plan_model(&model);
    let step = PlanRequest {
        segment_samples: 22_050,
        mode: Mode::Training,
        ..PlanRequest::new(&pm)
    };
    // Half the plain step's peak (one item): the plan must change something.
    let plain = plan(&pm, &with_items(&pm, &step, 2));
    let budget = plain.peak_bytes / 2;
    let out = common::run(
        common::bin()
            .args([
                "train",
                "--device",
                "cpu",
                "--steps",
                "1",
                "--segment",
                "0.5",
            ])
            .args(["--valid-every", "0", "--save-every", "1"])
            .arg("--data")
            .arg(&data)
            .arg("--valid")
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(tmp.path().join("run"))
            .arg("--budget")
            .arg(format!("{budget}B")),
    );
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("plan: budget"), "{err}");
    assert!(err.contains("plan applied: segment"), "{err}");
    assert!(
        err.contains("activation checkpointing")
            || err.contains("paths run in sub-batches")
            || err.contains("pieces of at most"),
        "the plan changed nothing: {err}"
    );
    assert!(tmp.path().join("run/last/model.safetensors").is_file());
}
