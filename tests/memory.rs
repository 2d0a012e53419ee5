//! The planner's predicted peak against the wgpu allocator's measured in-use peak (lavapipe in
//! CI), for inference forwards and training steps whose segment length, STFT size, layers,
//! heads and batch each change against a base (`locosep bench memory` prints the same table).
//!
//! The probe owns this process's cubecl configuration and `log` logger, so everything here runs
//! in one test (one process per integration-test file).

use locosep::cli::bench_memory::{default_cases, format_rows, measure_max};
use locosep::memory::planner::Mode;

#[test]
fn predicted_peaks_match_the_allocator_within_15_percent() {
    let probe = locosep::memory::probe::install().expect("probe installed before any GPU use");
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let cases = default_cases();
    // One discarded run first: the process's first GPU work also creates the allocator's
    // pools and compiles kernels, which once made the first case read 0.82 of its prediction
    // while every later run of it read ≈ 0.95.
    measure_max(&cases[0], probe, 1).expect("warm-up run");
    for case in cases {
        // The largest of 5 dry runs: the measured peak depends on how far the device thread
        // has got when a buffer is freed.
        let row = measure_max(&case, probe, 5).expect("the case runs on the wgpu adapter");
        let ratio = row.ratio();
        // Checkpointed steps are over-predicted (≈ 0.8 measured/predicted): held to "never
        // more than 15 % above the prediction, at most 25 % below".
        let (low, high) = match case.mode {
            Mode::TrainingCheckpointed => (0.75, 1.15),
            _ => (0.85, 1.15),
        };
        if !(low..=high).contains(&ratio) {
            failures.push(format!("{}: {ratio:.3} outside {low}..{high}", row.label));
        }
        assert!(row.in_use > 0, "{}: the probe read nothing", row.label);
        rows.push(row);
    }
    println!("{}", format_rows(&rows));
    assert!(failures.is_empty(), "{failures:#?}\n{}", format_rows(&rows));
    // Growth comes from the formulas: doubling the segment or the batch roughly doubles both.
    let by = |label: &str| {
        rows.iter()
            .find(|r| r.label == label)
            .unwrap_or_else(|| panic!("case {label}"))
    };
    let (one, two) = (by("demo 1 s L2 B1 infer"), by("demo 2 s L2 B1 infer"));
    let measured = two.in_use as f64 / one.in_use as f64;
    let predicted = two.predicted as f64 / one.predicted as f64;
    assert!(
        (measured / predicted - 1.0).abs() < 0.15,
        "segment ×2: measured ×{measured:.2}, predicted ×{predicted:.2}"
    );
}
