//! Tests of `fit`: settings that fit a budget, and the explanation.

use super::*;

#[test]
fn fit_stays_under_90_percent_and_explains() {
    for (name, model, _) in presets().into_iter().chain([("demo", demo(), 0.0)]) {
        for budget in [1, 2, 4, 8, 24].map(|g| g * GIB) {
            for (mode, backend) in [
                (Mode::Inference, BackendKind::Fused),
                (Mode::Inference, BackendKind::NonFused),
                (Mode::Training, BackendKind::Fused),
                (Mode::Training, BackendKind::NonFused),
            ] {
                for channels in [1, 2] {
                    match fit(&model, budget, channels, mode, backend) {
                        Ok(r) => {
                            assert!(
                                r.plan.peak_bytes * 10 <= budget * 9,
                                "{name} {mode}: {}",
                                r.plan.peak_bytes
                            );
                            assert_eq!(r.plan, plan(&model, &r.request));
                            assert!(r.explanation.len() >= 4);
                            assert!(r.explanation.iter().any(|l| l.contains("materialised")));
                            assert!(r.request.segment_samples >= 44_100);
                            assert!(r.request.batch >= 1);
                            if backend == BackendKind::Fused {
                                assert_eq!(r.request.attention, AttentionStrategy::Fused);
                            }
                        }
                        Err(e) => {
                            let FitError::NothingFits {
                                smallest_peak_bytes,
                                target_bytes,
                                ..
                            } = &e;
                            assert!(smallest_peak_bytes > target_bytes);
                            assert!(e.to_string().contains("nothing fits"));
                        }
                    }
                }
            }
        }
    }
    // Inference always fits in 2 GiB for every preset (at some segment).
    for (name, model, _) in presets() {
        let r = fit(&model, 2 * GIB, 2, Mode::Inference, BackendKind::Fused).expect(name);
        println!(
            "{name}, 2 GiB, stereo, fused:\n  {}",
            r.explanation.join("\n  ")
        );
    }
    let model = preset("balanced");
    let r = fit(&model, 8 * GIB, 1, Mode::Inference, BackendKind::NonFused).expect("fits");
    println!(
        "balanced, 8 GiB, non-fused:\n  {}",
        r.explanation.join("\n  ")
    );
    assert!(r.explanation.iter().any(|l| l.contains("80.89 GiB")));
    assert!(
        r.explanation
            .iter()
            .any(|l| l.contains("attention sub-batches of"))
    );
}

#[test]
fn fit_reports_nothing_fits_with_the_smallest_peak() {
    let model = preset("xlarge");
    let err = fit(&model, 256 * MIB, 2, Mode::Training, BackendKind::Fused).expect_err("too small");
    let msg = err.to_string();
    assert!(msg.contains("nothing fits in 256.00 MiB"), "{msg}");
    assert!(msg.contains("still peaks at"), "{msg}");
}
