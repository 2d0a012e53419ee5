//! Tests of the model's parameter counts.

use super::*;

#[test]
fn param_counts_match_the_preset_table() {
    for (name, model, expected) in presets() {
        let got = param_count(&model) as f64;
        let rel = (got - expected).abs() / expected;
        assert!(
            rel < 0.005,
            "{name}: {got} parameters vs {expected} ({:.3} %)",
            rel * 100.0
        );
    }
    // Exact for `small` (hand-derived): 3 · 2 · 231 414 + 1 008 + 3 464.
    assert_eq!(param_count(&preset("small")), 1_392_956);
}
