//! Unit tests of the planner, one file per part of it; the shared fixtures live here.

use super::*;

mod fit;
mod model;
mod plan;
mod report;

/// The presets of `configs/*.toml` as planner input (segment seconds, n_fft, hop, layers,
/// C, heads, A, H, groups), with the parameter counts of ARCHITECTURE.md.
fn presets() -> Vec<(&'static str, PlanModel, f64)> {
    let m = |seconds: f64, n_fft, hop, layers, c, heads, a, h, groups| PlanModel {
        n_fft,
        hop,
        n_layers: layers,
        emb_dim: c,
        attention_dim: a,
        n_heads: heads,
        num_groups: groups,
        ffn_hidden: [h, h],
        kernel: 4,
        n_sources: 4,
        audio_channels: 1,
        sample_rate: 44_100,
        segment_samples: (seconds * 44_100.0) as usize,
        bands: vec![],
        layer_norm: false,
    };
    vec![
        ("small", m(2.0, 1024, 256, 3, 48, 4, 48, 192, 4), 1.39e6),
        (
            "ultra-safe",
            m(3.0, 2048, 512, 4, 96, 4, 96, 384, 4),
            7.40e6,
        ),
        (
            "memory-optimized",
            m(5.0, 2048, 512, 6, 128, 8, 128, 512, 8),
            19.7e6,
        ),
        (
            "balanced",
            m(10.0, 4096, 1024, 8, 192, 12, 192, 768, 4),
            59.1e6,
        ),
        (
            "xlarge",
            m(15.0, 4096, 1024, 12, 256, 16, 256, 1024, 8),
            157e6,
        ),
    ]
}

fn preset(name: &str) -> PlanModel {
    presets()
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, m, _)| m)
        .expect("known preset")
}

fn demo() -> PlanModel {
    PlanModel {
        n_fft: 512,
        hop: 128,
        n_layers: 2,
        emb_dim: 32,
        attention_dim: 32,
        n_heads: 4,
        num_groups: 4,
        ffn_hidden: [64, 64],
        kernel: 4,
        n_sources: 4,
        audio_channels: 1,
        sample_rate: 44_100,
        segment_samples: 3 * 44_100,
        bands: vec![],
        layer_norm: false,
    }
}

fn req(model: &PlanModel, mode: Mode, attention: AttentionStrategy) -> PlanRequest {
    PlanRequest {
        mode,
        attention,
        ..PlanRequest::new(model)
    }
}
