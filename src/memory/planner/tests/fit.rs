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
                            } = &e
                            else {
                                panic!("no device limit was given: {e}");
                            };
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

/// With the device's largest buffer given, `fit_with` passes over settings whose largest
/// allocation exceeds it (and says so); when every setting within the budget does, the error
/// names the buffer, its size, the limit and the longest segment that fits.
#[test]
fn fit_passes_over_settings_with_a_buffer_above_the_device_limit() {
    let model = preset("small");
    let free = fit(&model, 24 * GIB, 1, Mode::Training, BackendKind::Fused).expect("fits");
    assert_eq!(free.request.path_chunk_bytes, None);
    let limit = free.plan.largest_allocation_bytes / 2;
    let options = FitOptions {
        max_allocation_bytes: Some(limit),
        ..FitOptions::default()
    };
    let r = fit_with(
        &model,
        24 * GIB,
        1,
        Mode::Training,
        BackendKind::Fused,
        &options,
    )
    .expect("fits with path sub-batches");
    assert!(
        r.plan.largest_allocation_bytes <= limit,
        "{} > {limit}",
        r.plan.largest_allocation_bytes
    );
    assert_eq!(r.plan, plan(&model, &r.request));
    let line = r
        .explanation
        .iter()
        .find(|l| l.contains("device's largest buffer"))
        .expect("a device-limit line");
    assert!(line.contains(&format_bytes(limit)), "{line}");
    assert!(line.contains("passed over"), "{line}");
    assert!(line.contains(&free.plan.largest_allocation), "{line}");

    // 16 MiB: the residual stream of one second (the shortest segment fit tries) is larger.
    let options = FitOptions {
        max_allocation_bytes: Some(16 * MIB),
        ..FitOptions::default()
    };
    let e = fit_with(
        &model,
        24 * GIB,
        1,
        Mode::Training,
        BackendKind::Fused,
        &options,
    )
    .expect_err("no setting has every buffer under 16 MiB");
    let FitError::BufferTooLarge {
        what,
        bytes,
        limit_bytes,
        longest_segment_seconds,
    } = &e
    else {
        panic!("{e}");
    };
    assert_eq!(*limit_bytes, 16 * MIB);
    assert!(*bytes > 16 * MIB);
    assert!(what.contains("residual stream"), "{what}");
    let longest = longest_segment_seconds.unwrap_or_else(|| panic!("{e}"));
    assert!(longest > 0.5 && longest < 1.0, "{longest}");
    let msg = e.to_string();
    for needle in [
        what.as_str(),
        &format_bytes(*bytes),
        "16.00 MiB",
        "longest segment that fits is",
    ] {
        assert!(msg.contains(needle), "`{needle}` missing from: {msg}");
    }
}

/// `fit_step` keeps a micro-batch that fits as it is; under a smaller device limit it first
/// sub-batches the paths, then runs the micro-batch in pieces, and refuses only when one item
/// with the finest sub-batches still needs a larger buffer. Every layout it returns has all
/// buffers under the limit, and its longest-segment hint is exact.
#[test]
fn fit_step_sub_batches_paths_then_splits_the_batch() {
    let model = demo();
    let step = PlanRequest {
        segment_samples: 2 * 44_100,
        batch: 4,
        song_channels: 2,
        mode: Mode::Training,
        ..PlanRequest::new(&model)
    };
    let free = fit_step(&model, &step, None, None).expect("no limit");
    assert!(!free.is_split());
    assert_eq!((free.items, free.items_per_piece, free.pieces()), (8, 8, 1));
    let unsplit = &free.unsplit;
    assert!(
        unsplit.largest_allocation.contains("FFN hidden"),
        "{}",
        unsplit.largest_allocation
    );

    // Just under the FFN hidden: path sub-batches are enough.
    let limit = unsplit.largest_allocation_bytes - 1;
    let paths = fit_step(&model, &step, Some(limit), None).expect("paths sub-batched");
    assert_eq!(paths.items_per_piece, 8);
    assert!(paths.plan.largest_allocation_bytes <= limit);
    let cap = paths.request.path_chunk_bytes.expect("path chunking");
    assert!(cap <= limit);
    let rows = paths.frequency_rows.expect("frequency rows");
    assert!(rows < paths.plan.paths[0].sequences, "{rows}");
    assert!(paths.time_rows.is_some());
    assert!(
        paths.explanation[0].contains("exceeds the device's largest buffer"),
        "{:?}",
        paths.explanation
    );

    // Just under the whole batch's residual stream: pieces.
    let finest = |items: usize| {
        let r = PlanRequest {
            path_chunk_bytes: Some(4 * MIB),
            ..with_items(&model, &step, items)
        };
        plan(&model, &r)
    };
    let whole = finest(8);
    assert!(whole.largest_allocation.contains("residual stream"));
    let limit = whole.largest_allocation_bytes - 1;
    let pieces = fit_step(&model, &step, Some(limit), None).expect("pieces");
    assert!(pieces.items_per_piece < 8 && pieces.pieces() > 1);
    assert!(pieces.plan.largest_allocation_bytes <= limit);
    assert!(
        pieces
            .explanation
            .iter()
            .any(|l| l.contains("pieces of at most")),
        "{:?}",
        pieces.explanation
    );

    // A peak budget is kept by the same means.
    let target = unsplit.peak_bytes / 3;
    let budget = fit_step(&model, &step, None, Some(target)).expect("budget");
    assert!(budget.plan.peak_bytes <= target);
    assert!(budget.is_split());

    // One item alone is too large: refused, with the longest segment that fits.
    let one = finest(1);
    let limit = one.largest_allocation_bytes - 1;
    let e = fit_step(&model, &step, Some(limit), None).expect_err("one item is too large");
    let FitError::BufferTooLarge {
        what,
        bytes,
        longest_segment_seconds,
        ..
    } = &e
    else {
        panic!("{e}");
    };
    assert_eq!(
        (what, *bytes),
        (&one.largest_allocation, one.largest_allocation_bytes)
    );
    let longest = longest_segment_seconds.expect("a shorter segment fits");
    let samples = (longest * 44_100.0).round() as usize;
    let at = |n: usize| {
        let r = PlanRequest {
            segment_samples: n,
            path_chunk_bytes: Some(4 * MIB),
            ..with_items(&model, &step, 1)
        };
        plan(&model, &r).largest_allocation_bytes
    };
    assert!(at(samples) <= limit, "the hinted segment fits");
    assert!(at(samples + model.hop) > limit, "a hop longer does not");
}
