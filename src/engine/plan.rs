//! The bridge from a model's config to the memory planner's plain dimensions. It lives in the
//! engine, above both: the planner knows no model type and the model knows no planner.

use crate::memory::planner::PlanModel;
use crate::model::config::{ModelConfig, NormType};

/// The dimensions the memory planner needs for `cfg`.
pub fn plan_model(cfg: &ModelConfig) -> PlanModel {
    let h0 = cfg.ffn_hidden_dim.first().copied().unwrap_or(0);
    let h1 = cfg.ffn_hidden_dim.get(1).copied().unwrap_or(0);
    PlanModel {
        n_fft: cfg.n_fft,
        hop: cfg.hop_length,
        n_layers: cfg.n_layers,
        emb_dim: cfg.emb_dim,
        attention_dim: cfg.attention_dim,
        n_heads: cfg.n_heads,
        num_groups: cfg.num_groups,
        ffn_hidden: [h0, h1],
        kernel: cfg.conv1d_kernel,
        n_sources: cfg.n_sources(),
        audio_channels: cfg.audio_channels,
        sample_rate: cfg.sample_rate,
        segment_samples: cfg.segment_samples(),
        bands: cfg
            .band_split()
            .map(|bs| bs.bands.clone())
            .unwrap_or_default(),
        layer_norm: cfg.norm_type == NormType::LayerNorm,
    }
}
