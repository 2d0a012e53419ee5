//! The Fine-tune tab: start, stop and resume a run, the model it offers, and the planner's
//! predicted training peak for the tab's settings.

use super::*;

#[test]
fn fine_tune_tab_starts_stops_and_offers_the_model_without_switching() {
    use crate::train::trainer::{StepLog, TrainEvent, ValidLog};
    use crate::train::worker::{ModelSpec, TrainCommand, TrainUpdate};
    let FineTuneRig {
        mut h,
        train_rx,
        up_tx,
        _keep,
    } = fine_tune_rig();
    {
        let form = h.state_mut().finetune_form_mut();
        form.data = "/data/my-stems".into();
        form.out = "/runs/mine".into();
        form.steps = 3;
    }
    h.run_ok();
    h.get_by_label("Start training").click();
    h.run_ok();
    match train_rx
        .recv_timeout(Duration::from_secs(2))
        .expect("a command")
    {
        TrainCommand::Start {
            model,
            config,
            resume,
        } => {
            assert_eq!(model, ModelSpec::Preset("demo".into()));
            assert_eq!(config.data, PathBuf::from("/data/my-stems"));
            assert_eq!(config.out, PathBuf::from("/runs/mine"));
            assert_eq!(config.steps, 3);
            // The SDR loss is on by default in the tab: the output level is trained.
            assert_eq!(
                (config.loss.sdr_weight, config.loss.si_sdr_weight),
                (1.0, 0.0)
            );
            assert!(!resume);
        }
        other => panic!("expected Start, got {other:?}"),
    }
    let send = |u: TrainUpdate| up_tx.send(u).expect("app alive");
    send(TrainUpdate::Started {
        out: "/runs/mine".into(),
        steps: 3,
    });
    for (step, loss) in [(1, 14.0), (2, 9.5)] {
        send(TrainUpdate::Event(TrainEvent::Step(StepLog {
            step,
            loss,
            si_sdr: vec![0.0; 4],
            lr: 1e-3,
        })));
        send(TrainUpdate::Memory(MemorySample {
            t: step as f64,
            in_use: None,
            reserved: None,
            rss: Some((300 + 40 * step as u64) << 20),
        }));
    }
    send(TrainUpdate::Event(TrainEvent::Valid(ValidLog {
        step: 2,
        sdr: vec![1.0, 2.0, 3.0, 0.5],
        mean_sdr: 1.625,
    })));
    h.run_ok();
    assert_eq!(h.state().finetune_steps(), 2);
    h.get_by_label_contains("step 2 / 3");
    h.get_by_label_contains("last 1.62 dB");
    h.get_by_label("Stop").click();
    h.run_ok();
    assert!(matches!(
        train_rx.recv_timeout(Duration::from_secs(2)),
        Ok(TrainCommand::Stop)
    ));
    let (config, checkpoint) = (
        PathBuf::from("/runs/mine/best/config.json"),
        PathBuf::from("/runs/mine/best/model.safetensors"),
    );
    send(TrainUpdate::Finished {
        steps: 2,
        config: config.clone(),
        checkpoint: checkpoint.clone(),
        stopped: true,
    });
    h.run_ok();
    h.get_by_label_contains("Run stopped after 2 steps");
    let before = h.state().settings().model.clone();
    assert_ne!(
        before,
        ModelChoice::Config {
            config: config.clone(),
            checkpoint: checkpoint.clone()
        }
    );
    let s = h.state().settings();
    assert!(s.custom.contains(&(config.clone(), checkpoint.clone())));
    // Finishing offers the run; the Separate model is unchanged until the user accepts.
    h.get_by_label_contains("Use mine/best for separating?");
    h.snapshot("finetune_tab");
    h.get_by_label("Use it").click();
    h.run_ok();
    assert_eq!(
        h.state().settings().model,
        ModelChoice::Config { config, checkpoint }
    );
    assert!(
        h.query_by_label_contains("for separating?").is_none(),
        "offer gone once taken"
    );
}

/// The Fine-tune tab shows the planner's predicted peak of a training step for its settings
/// (planned again when the segment or checkpointing changes), draws it on the memory graph
/// of the run, and says when the graph shows the device allocator rather than the process.
#[test]
fn fine_tune_tab_predicts_the_training_peak_for_its_settings() {
    use crate::memory::planner::{AttentionStrategy, Mode, PlanRequest, format_bytes, plan};
    use crate::train::worker::{TrainCommand, TrainUpdate};
    let FineTuneRig {
        mut h,
        train_rx,
        up_tx,
        _keep,
    } = fine_tune_rig();
    {
        let form = h.state_mut().finetune_form_mut();
        form.device = crate::engine::DeviceChoice::Cpu;
        form.data = "/data/my-stems".into();
        form.out = "/runs/mine".into();
        form.segment = 1.0;
    }
    h.run_ok();
    // The planner asked directly: `demo`, one stereo segment (two mono items), the CPU attention kernel (no score tensor).
    let expected = |segment: f64, mode: Mode| {
        let cfg = crate::model::config::preset("demo").unwrap().config;
        let mut m = crate::engine::plan::plan_model(&cfg);
        m.segment_samples = (segment * cfg.sample_rate as f64).round() as usize;
        let req = PlanRequest {
            song_channels: 2,
            mode,
            attention: AttentionStrategy::Fused,
            ..PlanRequest::new(&m)
        };
        plan(&m, &req).peak_bytes
    };
    let line = |peak: u64, mode: &str, segment: &str| {
        format!(
            "Predicted training peak: {} of memory (CPU) ({mode}, batch 1, {segment} s segments)",
            format_bytes(peak)
        )
    };
    let one = expected(1.0, Mode::Training);
    let two = expected(2.0, Mode::Training);
    let ckpt = expected(2.0, Mode::TrainingCheckpointed);
    assert!(one < two && ckpt < two, "{one} {two} {ckpt}");
    h.get_by_label(&line(one, "training", "1.00"));
    h.state_mut().finetune_form_mut().segment = 2.0;
    h.run_ok();
    h.get_by_label(&line(two, "training", "2.00"));
    assert!(
        h.query_by_label(&line(one, "training", "1.00")).is_none(),
        "the old prediction is gone"
    );
    h.state_mut().finetune_form_mut().checkpointing = true;
    h.run_ok();
    h.get_by_label(&line(ckpt, "training (checkpointed)", "2.00"));
    h.get_by_label("Where the predicted peak goes").click();
    h.run_ok();
    h.get_by_label("weights");
    h.get_by_label("optimizer (AdamW moments)");
    // Folded again, so that the buttons below stay inside the test window.
    h.get_by_label("Where the predicted peak goes").click();
    h.run_ok();
    // The run draws the prediction; readings with allocator figures (what a GPU run sends)
    // make the graph say it shows the device.
    h.get_by_label("Start training").click();
    h.run_ok();
    match train_rx.recv_timeout(Duration::from_secs(2)) {
        Ok(TrainCommand::Start { config, .. }) => {
            assert!(config.checkpointing);
            assert_eq!((config.batch, config.segment_seconds), (1, 2.0));
        }
        other => panic!("expected Start, got {other:?}"),
    }
    assert_eq!(h.state().finetune_predicted_peak(), Some(ckpt));
    up_tx
        .send(TrainUpdate::Started {
            out: "/runs/mine".into(),
            steps: 500,
        })
        .unwrap();
    up_tx
        .send(TrainUpdate::Memory(MemorySample {
            t: 0.5,
            in_use: Some(ckpt / 2),
            reserved: Some(ckpt),
            rss: Some(400 << 20),
        }))
        .unwrap();
    h.run_ok();
    h.get_by_label(&format!(
        "Device memory in use (allocator) (peak {})",
        format_bytes(ckpt / 2)
    ));
}
