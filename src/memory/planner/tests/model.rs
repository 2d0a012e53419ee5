//! Tests of the model's parameter counts.

use super::*;
use crate::memory::planner::model::{rope_buffer_elements, weight_elements};
use crate::model::config::{NormType, builtin_presets};

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
    // Exact for `small` (hand-derived): 3 · 2 · 231 408 + 1 008 + 3 464 parameters; the
    // state_dict adds 3 · 2 `rope.freqs` buffers of d/2 = 6 elements (231 414 per path).
    let small = preset("small");
    assert_eq!(param_count(&small), 1_392_920);
    assert_eq!(rope_buffer_elements(&small), 36);
    assert_eq!(weight_elements(&small), 1_392_956);
}

/// The planner and the model config count the same parameters (no `rope.freqs` buffers) for
/// every built-in preset, band-split ones included, and with LayerNorm instead of
/// RMSGroupNorm.
#[test]
fn param_count_agrees_with_model_config_for_every_preset() {
    let presets = builtin_presets();
    assert!(presets.len() >= 5, "{} presets", presets.len());
    assert!(presets.iter().any(|p| p.config.band_split().is_some()));
    for p in presets {
        for norm_type in [NormType::RmsGroupNorm, NormType::LayerNorm] {
            let cfg = crate::model::config::ModelConfig {
                norm_type,
                ..p.config.clone()
            };
            let m = crate::engine::plan::plan_model(&cfg);
            assert_eq!(
                param_count(&m),
                cfg.param_count(),
                "{} ({norm_type:?})",
                p.name
            );
            // The buffers are counted apart, and only for memory.
            assert_eq!(
                weight_elements(&m),
                cfg.param_count() + cfg.n_layers * 2 * (cfg.head_dim() / 2),
                "{}",
                p.name
            );
        }
    }
}
