//! The only file that knows the PyTorch reference's parameter names.
//!
//! # Key mapping (reference name → locosep field, shape)
//!
//! | reference key | locosep | shape (PyTorch) | note |
//! |---|---|---|---|
//! | `conv.0.weight` / `.bias` | `TfLocoformer::enc_w` / `enc_b` | `[C, 2·ac, 3, 3]` / `[C]` | |
//! | `conv.1.weight` / `.bias` | `gn_w` / `gn_b` | `[C]` | GroupNorm(1) affine |
//! | `blocks.{i}.{p}.ffn_norm.1.gamma` | `LocoPath::ffn_pre.0.gamma` | `[C]` | FFN **before** attention |
//! | `blocks.{i}.{p}.ffn.1.conv1d.weight` / `.bias` | `ffn_pre.1.conv_w` / `conv_b` | `[2H, C, K]` / `[2H]` | |
//! | `blocks.{i}.{p}.ffn.1.deconv1d.weight` / `.bias` | `ffn_pre.1.deconv_w` / `deconv_b` | `[H, C, K]` / `[C]` | |
//! | `blocks.{i}.{p}.attn_norm.gamma` | `attn_norm.gamma` | `[C]` | |
//! | `blocks.{i}.{p}.attn.qkv.weight` | `attn.qkv` | `[3A, C]` | stored transposed `[C, 3A]` |
//! | `blocks.{i}.{p}.attn.aggregate_heads.0.weight` | `attn.out` | `[C, A]` | stored transposed `[A, C]` |
//! | `blocks.{i}.{p}.attn.rope.freqs` | `attn.rope` | `[d/2]` | checked, not trained |
//! | `blocks.{i}.{p}.ffn_norm.0.gamma`, `ffn.0.*` | `ffn_post_norm`, `ffn_post` | as above | FFN **after** attention |
//! | `deconv.weight` / `.bias` | `dec_w` / `dec_b` | `[C, 2·S·ac, 3, 3]` / `[2·S·ac]` | |
//!
//! `{p}` ∈ {`freq_path`, `frame_path`}. Checkpoint containers (`separator.` prefix,
//! `model_state_dict`) are unwrapped by `state_dict.rs`; this file sees plain names.

use std::collections::BTreeSet;

use burn::tensor::{Device, Tensor};

use super::config::{ModelConfig, PosEnc};
use super::layers::{ConvSwiGlu, Mhsa, RmsGroupNorm, named_param, tensor_from};
use super::network::{LocoBlock, LocoPath, TfLocoformer};
use super::state_dict::{StateDict, TensorF32};
use burn::module::Param;

/// A checkpoint that does not fit the configuration.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint does not match the model config `{config}`:{}", describe(.missing, .unexpected, .mismatched))]
pub struct KeyMismatch {
    /// Config name.
    pub config: String,
    /// Keys the model needs that the checkpoint lacks.
    pub missing: Vec<String>,
    /// Keys in the checkpoint the model does not use.
    pub unexpected: Vec<String>,
    /// `(key, expected shape, found shape)`.
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
}

fn describe(
    missing: &[String],
    unexpected: &[String],
    mismatched: &[(String, Vec<usize>, Vec<usize>)],
) -> String {
    let mut s = String::new();
    let list = |v: &[String]| {
        let mut t = v.iter().take(12).cloned().collect::<Vec<_>>().join(", ");
        if v.len() > 12 {
            t.push_str(&format!(", … ({} in all)", v.len()));
        }
        t
    };
    if !missing.is_empty() {
        s.push_str(&format!("\n  missing keys: {}", list(missing)));
    }
    if !unexpected.is_empty() {
        s.push_str(&format!("\n  unexpected keys: {}", list(unexpected)));
    }
    for (k, want, got) in mismatched.iter().take(12) {
        s.push_str(&format!(
            "\n  wrong shape for {k}: expected {want:?}, found {got:?}"
        ));
    }
    if mismatched.len() > 12 {
        s.push_str(&format!(
            "\n  … {} shape mismatches in all",
            mismatched.len()
        ));
    }
    s
}

const PATHS: [&str; 2] = ["freq_path", "frame_path"];

/// Every key the reference `state_dict()` holds for `cfg`, with its PyTorch shape, in a
/// stable order.
pub fn expected_keys(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (c, a, k, ac, s) = (
        cfg.emb_dim,
        cfg.attention_dim,
        cfg.conv1d_kernel,
        cfg.audio_channels,
        cfg.n_sources(),
    );
    let mut keys = vec![
        ("conv.0.weight".to_string(), vec![c, 2 * ac, 3, 3]),
        ("conv.0.bias".into(), vec![c]),
        ("conv.1.weight".into(), vec![c]),
        ("conv.1.bias".into(), vec![c]),
    ];
    for i in 0..cfg.n_layers {
        for p in PATHS {
            let pre = format!("blocks.{i}.{p}");
            for (j, &h) in cfg.ffn_hidden_dim.iter().enumerate() {
                keys.push((format!("{pre}.ffn_norm.{j}.gamma"), vec![c]));
                keys.push((format!("{pre}.ffn.{j}.conv1d.weight"), vec![2 * h, c, k]));
                keys.push((format!("{pre}.ffn.{j}.conv1d.bias"), vec![2 * h]));
                keys.push((format!("{pre}.ffn.{j}.deconv1d.weight"), vec![h, c, k]));
                keys.push((format!("{pre}.ffn.{j}.deconv1d.bias"), vec![c]));
            }
            keys.push((format!("{pre}.attn_norm.gamma"), vec![c]));
            keys.push((format!("{pre}.attn.qkv.weight"), vec![3 * a, c]));
            keys.push((format!("{pre}.attn.aggregate_heads.0.weight"), vec![c, a]));
            if cfg.pos_enc == PosEnc::Rope {
                keys.push((format!("{pre}.attn.rope.freqs"), vec![cfg.head_dim() / 2]));
            }
        }
    }
    keys.push(("deconv.weight".into(), vec![c, 2 * s * ac, 3, 3]));
    keys.push(("deconv.bias".into(), vec![2 * s * ac]));
    keys
}

/// Checks `sd` against [`expected_keys`], collecting every problem into one error.
pub fn check_keys(cfg: &ModelConfig, sd: &StateDict) -> Result<(), KeyMismatch> {
    let expected = expected_keys(cfg);
    let names: BTreeSet<&str> = expected.iter().map(|(k, _)| k.as_str()).collect();
    let mut err = KeyMismatch {
        config: cfg.name.clone(),
        missing: vec![],
        unexpected: vec![],
        mismatched: vec![],
    };
    for (key, shape) in &expected {
        match sd.get(key) {
            None => err.missing.push(key.clone()),
            Some(t) if &t.shape != shape => {
                err.mismatched
                    .push((key.clone(), shape.clone(), t.shape.clone()))
            }
            Some(_) => {}
        }
    }
    err.unexpected = sd
        .keys()
        .filter(|k| !names.contains(k.as_str()))
        .cloned()
        .collect();
    if err.missing.is_empty() && err.unexpected.is_empty() && err.mismatched.is_empty() {
        Ok(())
    } else {
        Err(err)
    }
}

fn transpose2(t: &TensorF32) -> (Vec<f32>, [usize; 2]) {
    let (r, c) = (t.shape[0], t.shape[1]);
    let mut out = vec![0f32; r * c];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = t.data[i * c + j];
        }
    }
    (out, [c, r])
}

/// Builds the network from reference-named weights after checking every key and shape.
pub fn from_state_dict(
    cfg: &ModelConfig,
    sd: &StateDict,
    device: &Device,
) -> Result<TfLocoformer, KeyMismatch> {
    check_keys(cfg, sd)?;
    // Invariant from here on: every expected key exists with its expected shape.
    let get = |k: &str| &sd[k];
    let t1 = |k: &str| -> Param<Tensor<1>> {
        named_param(k, tensor_from(&get(k).data, [get(k).shape[0]], device))
    };
    let t3 = |k: &str| -> Param<Tensor<3>> {
        let s = &get(k).shape;
        named_param(k, tensor_from(&get(k).data, [s[0], s[1], s[2]], device))
    };
    let t4 = |k: &str| -> Param<Tensor<4>> {
        let s = &get(k).shape;
        named_param(
            k,
            tensor_from(&get(k).data, [s[0], s[1], s[2], s[3]], device),
        )
    };
    let t2_transposed = |k: &str| -> Param<Tensor<2>> {
        let (data, shape) = transpose2(get(k));
        named_param(k, tensor_from(&data, shape, device))
    };
    let norm = |k: &str| RmsGroupNorm::new(t1(k), cfg.num_groups, cfg.eps);
    let ffn = |pre: &str| {
        ConvSwiGlu::new(
            t3(&format!("{pre}.conv1d.weight")),
            t1(&format!("{pre}.conv1d.bias")),
            t3(&format!("{pre}.deconv1d.weight")),
            t1(&format!("{pre}.deconv1d.bias")),
            cfg.conv1d_shift,
            cfg.dropout,
        )
    };
    let path = |pre: &str| {
        let ffn_pre = (cfg.ffn_hidden_dim.len() == 2).then(|| {
            (
                norm(&format!("{pre}.ffn_norm.1.gamma")),
                ffn(&format!("{pre}.ffn.1")),
            )
        });
        let attn = Mhsa::new(
            t2_transposed(&format!("{pre}.attn.qkv.weight")),
            t2_transposed(&format!("{pre}.attn.aggregate_heads.0.weight")),
            cfg.n_heads,
            cfg.pos_enc == PosEnc::Rope,
            cfg.dropout,
        );
        LocoPath::new(
            ffn_pre,
            norm(&format!("{pre}.attn_norm.gamma")),
            attn,
            norm(&format!("{pre}.ffn_norm.0.gamma")),
            ffn(&format!("{pre}.ffn.0")),
            cfg,
        )
    };
    let blocks = (0..cfg.n_layers)
        .map(|i| {
            LocoBlock::new(
                path(&format!("blocks.{i}.freq_path")),
                path(&format!("blocks.{i}.frame_path")),
                cfg.tf_order,
            )
        })
        .collect();
    Ok(TfLocoformer::new(
        t4("conv.0.weight"),
        t1("conv.0.bias"),
        t1("conv.1.weight"),
        t1("conv.1.bias"),
        blocks,
        t4("deconv.weight"),
        t1("deconv.bias"),
        cfg.eps,
    ))
}

fn read<const D: usize>(t: Tensor<D>) -> TensorF32 {
    let shape = t.dims().to_vec();
    let data = t
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    TensorF32 { shape, data }
}

fn read_transposed(t: Tensor<2>) -> TensorF32 {
    let t = read(t);
    let (data, shape) = transpose2(&t);
    TensorF32 {
        shape: shape.to_vec(),
        data,
    }
}

/// Exports the network's weights under the reference names and layouts, so PyTorch can
/// `load_state_dict(strict=True)` them.
pub fn to_state_dict(cfg: &ModelConfig, model: &TfLocoformer) -> StateDict {
    let mut sd = StateDict::new();
    sd.insert("conv.0.weight".into(), read(model.enc_w.val()));
    sd.insert("conv.0.bias".into(), read(model.enc_b.val()));
    sd.insert("conv.1.weight".into(), read(model.gn_w.val()));
    sd.insert("conv.1.bias".into(), read(model.gn_b.val()));
    let put_ffn =
        |sd: &mut StateDict, pre: String, norm: &RmsGroupNorm, f: &ConvSwiGlu, j: usize| {
            sd.insert(format!("{pre}.ffn_norm.{j}.gamma"), read(norm.gamma.val()));
            sd.insert(format!("{pre}.ffn.{j}.conv1d.weight"), read(f.conv_w.val()));
            sd.insert(format!("{pre}.ffn.{j}.conv1d.bias"), read(f.conv_b.val()));
            sd.insert(
                format!("{pre}.ffn.{j}.deconv1d.weight"),
                read(f.deconv_w.val()),
            );
            sd.insert(
                format!("{pre}.ffn.{j}.deconv1d.bias"),
                read(f.deconv_b.val()),
            );
        };
    for (i, block) in model.blocks.iter().enumerate() {
        for (p, path) in PATHS.iter().zip([&block.freq_path, &block.frame_path]) {
            let pre = format!("blocks.{i}.{p}");
            if let Some((norm, f)) = &path.ffn_pre {
                put_ffn(&mut sd, pre.clone(), norm, f, 1);
            }
            put_ffn(&mut sd, pre.clone(), &path.ffn_post_norm, &path.ffn_post, 0);
            sd.insert(
                format!("{pre}.attn_norm.gamma"),
                read(path.attn_norm.gamma.val()),
            );
            sd.insert(
                format!("{pre}.attn.qkv.weight"),
                read_transposed(path.attn.qkv.val()),
            );
            sd.insert(
                format!("{pre}.attn.aggregate_heads.0.weight"),
                read_transposed(path.attn.out.val()),
            );
            if let Some(rope) = &path.attn.rope {
                sd.insert(
                    format!("{pre}.attn.rope.freqs"),
                    TensorF32 {
                        shape: vec![rope.freqs().len()],
                        data: rope.freqs().to_vec(),
                    },
                );
            }
        }
    }
    sd.insert("deconv.weight".into(), read(model.dec_w.val()));
    sd.insert("deconv.bias".into(), read(model.dec_b.val()));
    debug_assert!(check_keys(cfg, &sd).is_ok());
    sd
}

/// Fresh weights with PyTorch's default initialisation (`U(±1/√fan_in)` for conv/linear
/// weights and biases; norms at identity), from a seed. Used to train from scratch.
pub fn init_state_dict(cfg: &ModelConfig, seed: u64) -> StateDict {
    // SplitMix64: small, portable, deterministic.
    let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut sd = StateDict::new();
    let keys = expected_keys(cfg);
    for (key, shape) in &keys {
        let n: usize = shape.iter().product();
        let data = if key.ends_with("gamma") || key == "conv.1.weight" {
            vec![1.0; n]
        } else if key == "conv.1.bias" {
            vec![0.0; n]
        } else if key.ends_with("rope.freqs") {
            super::layers::Rope::new(cfg.head_dim()).freqs().to_vec()
        } else {
            // fan_in of the layer this tensor belongs to (weights and biases share it).
            let wkey = key.replace(".bias", ".weight");
            let wshape = &keys
                .iter()
                .find(|(k, _)| *k == wkey)
                .map(|(_, s)| s.clone())
                .unwrap_or_else(|| shape.clone());
            let fan_in = if key.contains("deconv") {
                // ConvTranspose: PyTorch's fan_in is computed from weight dim 1 × kernel.
                wshape[1] * wshape[2..].iter().product::<usize>()
            } else {
                wshape[1..].iter().product::<usize>().max(1)
            };
            let bound = 1.0 / (fan_in as f32).sqrt();
            (0..n).map(|_| (2.0 * next() - 1.0) * bound).collect()
        };
        sd.insert(
            key.clone(),
            TensorF32 {
                shape: shape.clone(),
                data,
            },
        );
    }
    sd
}
