//! Pieces shared by the integration tests (each test file includes this with `mod common;`).

/// A TF-Locoformer config small enough for a test — one layer, 8 channels, 2 heads, hidden
/// 16 — with the given STFT and `[audio]` section (TOML lines).
pub fn tiny_model_toml(n_fft: usize, hop: usize, audio: &str) -> String {
    format!(
        r#"
description = "tiny test model"

[model]
n_fft = {n_fft}
hop_length = {hop}
n_sources = 4
n_layers = 1
emb_dim = 8
n_heads = 2
attention_dim = 8
ffn_type = ["swiglu_conv1d", "swiglu_conv1d"]
ffn_hidden_dim = [16, 16]
num_groups = 2
conv1d_kernel = 4
conv1d_shift = 1
norm_type = "rmsgroupnorm"
tf_order = "ft"
pos_enc = "rope"
eps = 1.0e-5
dropout = 0.0

[audio]
{audio}
"#
    )
}
