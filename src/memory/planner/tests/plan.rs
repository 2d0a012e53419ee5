//! Tests of `plan` / `plan_checked`: shapes, known figures, monotonicity, breakdown sums.

use super::*;

#[test]
fn huge_requests_are_refused_not_overflowed() {
    let m = preset("xlarge");
    for (segment_samples, batch) in [
        (usize::MAX, 1),
        (1_000_000_000_000 * 44_100, 1),
        (m.segment_samples, usize::MAX),
        (usize::MAX, usize::MAX),
    ] {
        for mode in [Mode::Inference, Mode::Training, Mode::TrainingCheckpointed] {
            let r = PlanRequest {
                segment_samples,
                batch,
                song_channels: 2,
                mode,
                ..PlanRequest::new(&m)
            };
            let err = plan_checked(&m, &r).expect_err("must be refused");
            assert!(err.to_string().contains("too large to plan"), "{err}");
        }
    }
    // A large but plannable request goes through without an overflow panic.
    let r = PlanRequest {
        segment_samples: 10 * 44_100,
        batch: 16,
        song_channels: 2,
        mode: Mode::Training,
        attention: AttentionStrategy::Materialized,
        ..PlanRequest::new(&m)
    };
    let p = plan_checked(&m, &r).expect("plannable");
    assert!(p.peak_bytes > 0);
}

#[test]
fn balanced_materialised_reproduces_the_seed_oom() {
    let model = preset("balanced");
    let r = PlanRequest {
        segment_samples: 441_000,
        ..req(&model, Mode::Inference, AttentionStrategy::Materialized)
    };
    let p = plan(&model, &r);
    assert_eq!(p.frames, 431);
    assert_eq!(p.bins, 2049);
    assert_eq!(p.largest_allocation_bytes, 86_856_519_888);
    assert_eq!(p.largest_allocation_bytes, 431 * 12 * 2049 * 2049 * 4);
    assert_eq!(format_bytes(p.largest_allocation_bytes), "80.89 GiB");
    assert!(
        p.largest_allocation.contains("frequency-path"),
        "{}",
        p.largest_allocation
    );
    assert!(
        p.largest_allocation.contains("431 frames"),
        "{}",
        p.largest_allocation
    );
    assert_eq!(
        p.largest_allocation,
        "frequency-path attention scores [431·12, 2049, 2049] (batch = 431 frames × 1 item)"
    );
    // Softmax input and output alive together.
    assert!(p.peak_bytes > 2 * 86_856_519_888);
    println!("{}", p.table());
}

#[test]
fn frequency_path_score_tensors_of_the_other_presets() {
    for (name, gib) in [
        ("ultra-safe", 4.05),
        ("memory-optimized", 13.5),
        ("xlarge", 161.6),
    ] {
        let model = preset(name);
        let p = plan(
            &model,
            &req(&model, Mode::Inference, AttentionStrategy::Materialized),
        );
        let got = p.largest_allocation_bytes as f64 / GIB as f64;
        assert!(
            (got - gib).abs() < 0.01 * gib,
            "{name}: {got:.3} GiB vs {gib}"
        );
        assert!(
            p.largest_allocation
                .starts_with("frequency-path attention scores"),
            "{name}: {}",
            p.largest_allocation
        );
    }
}

#[test]
fn fused_inference_with_path_chunks_stays_under_4_gib_for_every_preset() {
    for (name, model, _) in presets() {
        let r = PlanRequest {
            path_chunk_bytes: Some(256 * MIB),
            ..req(&model, Mode::Inference, AttentionStrategy::Fused)
        };
        let p = plan(&model, &r);
        assert!(
            p.peak_bytes <= 4 * GIB,
            "{name}: {}\n{}",
            format_bytes(p.peak_bytes),
            p.table()
        );
        assert_eq!(p.bytes_of(|c| *c == Category::AttentionScores), 0);
    }
}

#[test]
fn breakdown_sums_to_peak_and_largest_fits_in_peak() {
    for (_, model, _) in presets() {
        for mode in [Mode::Inference, Mode::Training, Mode::TrainingCheckpointed] {
            for attention in [
                AttentionStrategy::Materialized,
                AttentionStrategy::Chunked {
                    max_score_bytes: 256 * MIB,
                },
                AttentionStrategy::Fused,
            ] {
                for cap in [None, Some(128 * MIB)] {
                    let r = PlanRequest {
                        path_chunk_bytes: cap,
                        ..req(&model, mode, attention)
                    };
                    let p = plan(&model, &r);
                    assert_eq!(
                        p.peak_bytes,
                        p.breakdown.iter().map(|(_, b)| b).sum::<u64>()
                    );
                    assert!(p.largest_allocation_bytes <= p.peak_bytes);
                }
            }
        }
    }
}

#[test]
fn peak_grows_with_segment_batch_and_layers() {
    let strategies = [
        AttentionStrategy::Materialized,
        AttentionStrategy::Chunked {
            max_score_bytes: 64 * MIB,
        },
        AttentionStrategy::Fused,
    ];
    for (name, model, _) in presets() {
        for mode in [Mode::Inference, Mode::Training, Mode::TrainingCheckpointed] {
            for attention in strategies {
                let base = req(&model, mode, attention);
                let peak = |r: &PlanRequest, m: &PlanModel| plan(m, r).peak_bytes;
                let mut last = 0;
                for seconds in [1usize, 2, 4, 8, 16] {
                    let p = peak(
                        &PlanRequest {
                            segment_samples: seconds * 44_100,
                            ..base.clone()
                        },
                        &model,
                    );
                    assert!(p > last, "{name} {mode} {attention}: {seconds} s");
                    last = p;
                }
                let mut last = 0;
                for batch in 1..=4 {
                    let p = peak(
                        &PlanRequest {
                            batch,
                            ..base.clone()
                        },
                        &model,
                    );
                    assert!(p > last, "{name} {mode} {attention}: batch {batch}");
                    last = p;
                }
                let mut last = 0;
                for layers in 1..=6 {
                    let m = PlanModel {
                        n_layers: layers,
                        ..model.clone()
                    };
                    let p = peak(&base, &m);
                    assert!(p > last, "{name} {mode} {attention}: {layers} layers");
                    last = p;
                }
            }
        }
    }
}

#[test]
fn chunked_attention_caps_each_score_tensor() {
    let model = preset("balanced");
    let cap = 1200 * MIB;
    let p = plan(
        &model,
        &req(
            &model,
            Mode::Inference,
            AttentionStrategy::Chunked {
                max_score_bytes: cap,
            },
        ),
    );
    let f = &p.paths[0];
    assert_eq!(f.name, "frequency");
    // One frame's scores: 12 · 2049² · 4 B ≈ 192 MiB → 6 frames per call.
    assert_eq!(f.attention_sub_batch, 6);
    assert!(f.score_bytes <= cap);
    assert!(p.bytes_of(|c| *c == Category::AttentionScores) <= 2 * cap);
}

#[test]
fn calibration_only_moves_constants_and_scales_activations() {
    let model = preset("ultra-safe");
    let base = req(&model, Mode::Inference, AttentionStrategy::Fused);
    let p0 = plan(&model, &base);
    let cal = Calibration {
        constant_bytes: 100 * MIB,
        activation_factor: 1.1,
    };
    let p1 = plan(
        &model,
        &PlanRequest {
            calibration: cal,
            ..base
        },
    );
    let weights = p0.bytes_of(|c| *c == Category::Weights);
    let expected = weights + ((p0.peak_bytes - weights) as f64 * 1.1) as u64 + 100 * MIB;
    assert!(
        p1.peak_bytes.abs_diff(expected) < 64,
        "{} vs {expected}",
        p1.peak_bytes
    );
}

#[test]
fn plan_serialises_to_json() {
    let model = preset("small");
    let p = plan(
        &model,
        &req(&model, Mode::TrainingCheckpointed, AttentionStrategy::Fused),
    );
    let json = serde_json::to_value(&p).expect("serialise");
    assert_eq!(json["peak_bytes"].as_u64(), Some(p.peak_bytes));
    assert!(json["breakdown"].as_array().is_some_and(|b| !b.is_empty()));
    let back: PlanRequest = serde_json::from_value(json["request"].clone()).expect("round trip");
    assert_eq!(back, p.request);
}

#[test]
fn checkpointed_fused_training_fits_24_gib() {
    let cap = Some(256 * MIB);
    for (name, model, _) in presets() {
        let base = PlanRequest {
            path_chunk_bytes: cap,
            ..req(&model, Mode::TrainingCheckpointed, AttentionStrategy::Fused)
        };
        let half = plan(
            &model,
            &PlanRequest {
                precision: Precision::BF16,
                ..base.clone()
            },
        );
        assert!(
            half.peak_bytes <= 24 * GIB,
            "{name} bf16: {}",
            format_bytes(half.peak_bytes)
        );
        let full = plan(&model, &base);
        // XLarge f32 at 15 s included: 12 block inputs of 1.26 GiB + one path sub-batch.
        assert!(
            full.peak_bytes <= 24 * GIB,
            "{name} f32: {}",
            format_bytes(full.peak_bytes)
        );
        // Block inputs in host memory: the device holds one of them.
        let offloaded = plan(
            &model,
            &PlanRequest {
                offload_checkpoints: true,
                ..base.clone()
            },
        );
        assert!(offloaded.peak_bytes < full.peak_bytes, "{name}");
        assert_eq!(
            offloaded.offloaded_bytes,
            model.n_layers as u64
                * offloaded.items as u64
                * model.emb_dim as u64
                * offloaded.frames as u64
                * offloaded.bins as u64
                * 4
        );
        let fitted = fit(&model, 24 * GIB, 1, Mode::Training, BackendKind::Fused).expect(name);
        println!(
            "{name}, 24 GiB, training, fused:\n  {}",
            fitted.explanation.join("\n  ")
        );
    }
    let model = preset("xlarge");
    let p = plan(
        &model,
        &PlanRequest {
            path_chunk_bytes: cap,
            ..req(&model, Mode::TrainingCheckpointed, AttentionStrategy::Fused)
        },
    );
    println!("{}", p.table());
}
