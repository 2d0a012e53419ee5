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
//! | `blocks.{i}.{p}.*_norm*.weight` / `.bias` | `Norm::gamma` / `beta` | `[C]` | `norm_type = "layernorm"` (in place of `gamma`) |
//! | `band_split_module.band_split_module.{b}.0.weight` / `.bias` | `BandIn::norm_w` / `norm_b` | `[w·2M]` | BS encoder GroupNorm(1) |
//! | `band_split_module.band_split_module.{b}.1.weight` / `.bias` | `BandIn::proj_w` / `proj_b` | `[C, w·2M, 1]` / `[C]` | stored `[w·2M, C]` |
//! | `band_split_module.bandwise_decoding_module.{b}.0.weight` / `.bias` | `BandOut::norm_w` / `norm_b` | `[C]` | BS decoder GroupNorm(1) |
//! | `….bandwise_decoding_module.{b}.1.weight` / `.bias` | `BandOut::fc1_w` / `fc1_b` | `[4C, C, 1]` / `[4C]` | stored `[C, 4C]` |
//! | `….bandwise_decoding_module.{b}.3.*` (MERL) / `.2.*` (mixit-mss) | `BandOut::fc2_w` / `fc2_b` | `[4C, 4C, 1]` / `[4C]` | stored transposed |
//! | `….bandwise_decoding_module.{b}.4.weight` / `.bias` | `BandOut::out_w` / `out_b` | `[w·S·M·4, 4C, 1]` | stored transposed |
//!
//! `{p}` ∈ {`freq_path`, `frame_path`}; `w` = the band's width in bins, `M` = audio channels;
//! a BS model has no `conv.*`/`deconv.*` keys. Checkpoint containers (`separator.` prefix,
//! `model_state_dict`) are unwrapped by `state_dict.rs`; this file sees plain names.

use std::collections::BTreeSet;

use burn::tensor::{Device, Tensor};

use super::bandsplit::{BandDecoder, BandIn, BandOut, BandSplitEncoder};
use super::config::{Arch, BsFlavour, ModelConfig, NormType, PosEnc};
use super::layers::{ConvSwiGlu, Mhsa, Norm, named_param, tensor_from};
use super::network::{
    ConvDecoder, ConvEncoder, Decoder, Encoder, LocoBlock, LocoPath, TfLocoformer,
};
use super::state_dict::{StateDict, TensorF32};
use burn::module::Param;

/// A checkpoint that does not fit the configuration.
#[derive(Debug, thiserror::Error)]
#[error("{}", headline(.config, .missing, .unexpected, .mismatched, .non_finite))]
pub struct KeyMismatch {
    /// Config name.
    pub config: String,
    /// Keys the model needs that the checkpoint lacks.
    pub missing: Vec<String>,
    /// Keys in the checkpoint the model does not use.
    pub unexpected: Vec<String>,
    /// `(key, expected shape, found shape)`.
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Keys whose tensors hold NaN or infinite values.
    pub non_finite: Vec<String>,
}

fn headline(
    config: &str,
    missing: &[String],
    unexpected: &[String],
    mismatched: &[(String, Vec<usize>, Vec<usize>)],
    non_finite: &[String],
) -> String {
    if missing.is_empty() && unexpected.is_empty() && mismatched.is_empty() {
        return format!(
            "the checkpoint holds NaN or infinite weights (a diverged or damaged model) in {} \
             tensor(s): {}",
            non_finite.len(),
            non_finite
                .iter()
                .take(6)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    format!(
        "checkpoint does not match the model config `{config}`:{}",
        describe(missing, unexpected, mismatched)
    )
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

/// Key suffixes of a path norm: `gamma` (RMSGroupNorm) or `weight` + `bias` (LayerNorm).
fn norm_suffixes(cfg: &ModelConfig) -> &'static [&'static str] {
    match cfg.norm_type {
        NormType::RmsGroupNorm => &["gamma"],
        NormType::LayerNorm => &["weight", "bias"],
    }
}

/// Key prefix of a band's encoder (`enc = true`) or decoder.
fn band_key(enc: bool, b: usize) -> String {
    if enc {
        format!("band_split_module.band_split_module.{b}")
    } else {
        format!("band_split_module.bandwise_decoding_module.{b}")
    }
}

/// Index of the band decoder's second 4C→4C Conv1d in the reference `nn.Sequential`.
fn fc2_index(flavour: BsFlavour) -> usize {
    match flavour {
        BsFlavour::Merl => 3,
        BsFlavour::Mixit => 2,
    }
}

/// Every key the reference `state_dict()` holds for `cfg`, with its PyTorch shape, in a
/// stable order.
fn expected_keys(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (c, a, k, ac, s) = (
        cfg.emb_dim,
        cfg.attention_dim,
        cfg.conv1d_kernel,
        cfg.audio_channels,
        cfg.n_sources(),
    );
    let mut keys: Vec<(String, Vec<usize>)> = match &cfg.arch {
        Arch::Conv => vec![
            ("conv.0.weight".to_string(), vec![c, 2 * ac, 3, 3]),
            ("conv.0.bias".into(), vec![c]),
            ("conv.1.weight".into(), vec![c]),
            ("conv.1.bias".into(), vec![c]),
        ],
        Arch::BandSplit(bs) => {
            let mut v = Vec::new();
            for (b, &w) in bs.bands.iter().enumerate() {
                let pre = band_key(true, b);
                v.push((format!("{pre}.0.weight"), vec![w * 2 * ac]));
                v.push((format!("{pre}.0.bias"), vec![w * 2 * ac]));
                v.push((format!("{pre}.1.weight"), vec![c, w * 2 * ac, 1]));
                v.push((format!("{pre}.1.bias"), vec![c]));
            }
            v
        }
    };
    let norms = norm_suffixes(cfg);
    for i in 0..cfg.n_layers {
        for p in PATHS {
            let pre = format!("blocks.{i}.{p}");
            for (j, &h) in cfg.ffn_hidden_dim.iter().enumerate() {
                for suffix in norms {
                    keys.push((format!("{pre}.ffn_norm.{j}.{suffix}"), vec![c]));
                }
                keys.push((format!("{pre}.ffn.{j}.conv1d.weight"), vec![2 * h, c, k]));
                keys.push((format!("{pre}.ffn.{j}.conv1d.bias"), vec![2 * h]));
                keys.push((format!("{pre}.ffn.{j}.deconv1d.weight"), vec![h, c, k]));
                keys.push((format!("{pre}.ffn.{j}.deconv1d.bias"), vec![c]));
            }
            for suffix in norms {
                keys.push((format!("{pre}.attn_norm.{suffix}"), vec![c]));
            }
            keys.push((format!("{pre}.attn.qkv.weight"), vec![3 * a, c]));
            keys.push((format!("{pre}.attn.aggregate_heads.0.weight"), vec![c, a]));
            if cfg.pos_enc == PosEnc::Rope {
                keys.push((format!("{pre}.attn.rope.freqs"), vec![cfg.head_dim() / 2]));
            }
        }
    }
    match &cfg.arch {
        Arch::Conv => {
            keys.push(("deconv.weight".into(), vec![c, 2 * s * ac, 3, 3]));
            keys.push(("deconv.bias".into(), vec![2 * s * ac]));
        }
        Arch::BandSplit(bs) => {
            let fc2 = fc2_index(bs.flavour);
            for (b, &w) in bs.bands.iter().enumerate() {
                let pre = band_key(false, b);
                keys.push((format!("{pre}.0.weight"), vec![c]));
                keys.push((format!("{pre}.0.bias"), vec![c]));
                keys.push((format!("{pre}.1.weight"), vec![4 * c, c, 1]));
                keys.push((format!("{pre}.1.bias"), vec![4 * c]));
                keys.push((format!("{pre}.{fc2}.weight"), vec![4 * c, 4 * c, 1]));
                keys.push((format!("{pre}.{fc2}.bias"), vec![4 * c]));
                keys.push((format!("{pre}.4.weight"), vec![w * s * ac * 4, 4 * c, 1]));
                keys.push((format!("{pre}.4.bias"), vec![w * s * ac * 4]));
            }
        }
    }
    keys
}

/// Checks `sd` against `expected_keys`, collecting every problem into one error.
pub fn check_keys(cfg: &ModelConfig, sd: &StateDict) -> Result<(), KeyMismatch> {
    let expected = expected_keys(cfg);
    let names: BTreeSet<&str> = expected.iter().map(|(k, _)| k.as_str()).collect();
    let mut err = KeyMismatch {
        config: cfg.name.clone(),
        missing: vec![],
        unexpected: vec![],
        mismatched: vec![],
        non_finite: vec![],
    };
    for (key, shape) in &expected {
        match sd.get(key) {
            None => err.missing.push(key.clone()),
            Some(t) if &t.shape != shape => {
                err.mismatched
                    .push((key.clone(), shape.clone(), t.shape.clone()))
            }
            Some(t) if !t.data.iter().all(|v| v.is_finite()) => err.non_finite.push(key.clone()),
            Some(_) => {}
        }
    }
    err.unexpected = sd
        .keys()
        .filter(|k| !names.contains(k.as_str()))
        .cloned()
        .collect();
    if err.missing.is_empty()
        && err.unexpected.is_empty()
        && err.mismatched.is_empty()
        && err.non_finite.is_empty()
    {
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
    // `base` is the norm's key without its suffix (`….attn_norm`, `….ffn_norm.0`).
    let norm = |base: &str| match cfg.norm_type {
        NormType::RmsGroupNorm => {
            Norm::rms_group(t1(&format!("{base}.gamma")), cfg.num_groups, cfg.eps)
        }
        NormType::LayerNorm => Norm::layer(
            t1(&format!("{base}.weight")),
            t1(&format!("{base}.bias")),
            cfg.eps,
        ),
    };
    // A kernel-1 Conv1d `[out, in, 1]` as a linear weight `[in, out]`.
    let pointwise = |k: &str| -> Param<Tensor<2>> {
        let t = get(k);
        let flat = TensorF32 {
            shape: vec![t.shape[0], t.shape[1]],
            data: t.data.clone(),
        };
        let (data, shape) = transpose2(&flat);
        named_param(k, tensor_from(&data, shape, device))
    };
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
                norm(&format!("{pre}.ffn_norm.1")),
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
            norm(&format!("{pre}.attn_norm")),
            attn,
            norm(&format!("{pre}.ffn_norm.0")),
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
    let (encoder, decoder) = match &cfg.arch {
        Arch::Conv => (
            Encoder::Conv(ConvEncoder::new(
                t4("conv.0.weight"),
                t1("conv.0.bias"),
                t1("conv.1.weight"),
                t1("conv.1.bias"),
                cfg.eps,
            )),
            Decoder::Conv(ConvDecoder {
                dec_w: t4("deconv.weight"),
                dec_b: t1("deconv.bias"),
            }),
        ),
        Arch::BandSplit(bs) => {
            let fc2 = fc2_index(bs.flavour);
            let ins = (0..bs.bands.len())
                .map(|b| {
                    let pre = band_key(true, b);
                    BandIn {
                        norm_w: t1(&format!("{pre}.0.weight")),
                        norm_b: t1(&format!("{pre}.0.bias")),
                        proj_w: pointwise(&format!("{pre}.1.weight")),
                        proj_b: t1(&format!("{pre}.1.bias")),
                    }
                })
                .collect();
            let outs = (0..bs.bands.len())
                .map(|b| {
                    let pre = band_key(false, b);
                    BandOut {
                        norm_w: t1(&format!("{pre}.0.weight")),
                        norm_b: t1(&format!("{pre}.0.bias")),
                        fc1_w: pointwise(&format!("{pre}.1.weight")),
                        fc1_b: t1(&format!("{pre}.1.bias")),
                        fc2_w: pointwise(&format!("{pre}.{fc2}.weight")),
                        fc2_b: t1(&format!("{pre}.{fc2}.bias")),
                        out_w: pointwise(&format!("{pre}.4.weight")),
                        out_b: t1(&format!("{pre}.4.bias")),
                    }
                })
                .collect();
            (
                Encoder::BandSplit(BandSplitEncoder::new(ins, bs.bands.clone())),
                Decoder::BandWise(BandDecoder::new(
                    outs,
                    bs.bands.clone(),
                    bs.flavour,
                    bs.masking,
                    cfg.n_sources(),
                    cfg.audio_channels,
                )),
            )
        }
    };
    Ok(TfLocoformer::new(encoder, blocks, decoder))
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

/// A linear weight `[in, out]` back as a kernel-1 Conv1d `[out, in, 1]`.
fn read_pointwise(t: Tensor<2>) -> TensorF32 {
    let mut t = read_transposed(t);
    t.shape.push(1);
    t
}

/// Exports the network's weights under the reference names and layouts, so PyTorch can
/// `load_state_dict(strict=True)` them.
pub fn to_state_dict(cfg: &ModelConfig, model: &TfLocoformer) -> StateDict {
    let mut sd = StateDict::new();
    let put_norm = |sd: &mut StateDict, base: String, norm: &Norm| match &norm.beta {
        None => {
            sd.insert(format!("{base}.gamma"), read(norm.gamma.val()));
        }
        Some(beta) => {
            sd.insert(format!("{base}.weight"), read(norm.gamma.val()));
            sd.insert(format!("{base}.bias"), read(beta.val()));
        }
    };
    match &model.encoder {
        Encoder::Conv(e) => {
            sd.insert("conv.0.weight".into(), read(e.enc_w.val()));
            sd.insert("conv.0.bias".into(), read(e.enc_b.val()));
            sd.insert("conv.1.weight".into(), read(e.gn_w.val()));
            sd.insert("conv.1.bias".into(), read(e.gn_b.val()));
        }
        Encoder::BandSplit(e) => {
            for (b, band) in e.bands.iter().enumerate() {
                let pre = band_key(true, b);
                sd.insert(format!("{pre}.0.weight"), read(band.norm_w.val()));
                sd.insert(format!("{pre}.0.bias"), read(band.norm_b.val()));
                sd.insert(format!("{pre}.1.weight"), read_pointwise(band.proj_w.val()));
                sd.insert(format!("{pre}.1.bias"), read(band.proj_b.val()));
            }
        }
    }
    let put_ffn = |sd: &mut StateDict, pre: String, norm: &Norm, f: &ConvSwiGlu, j: usize| {
        put_norm(sd, format!("{pre}.ffn_norm.{j}"), norm);
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
            put_norm(&mut sd, format!("{pre}.attn_norm"), &path.attn_norm);
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
    match &model.decoder {
        Decoder::Conv(d) => {
            sd.insert("deconv.weight".into(), read(d.dec_w.val()));
            sd.insert("deconv.bias".into(), read(d.dec_b.val()));
        }
        Decoder::BandWise(d) => {
            let fc2 = fc2_index(d.flavour());
            for (b, band) in d.bands.iter().enumerate() {
                let pre = band_key(false, b);
                sd.insert(format!("{pre}.0.weight"), read(band.norm_w.val()));
                sd.insert(format!("{pre}.0.bias"), read(band.norm_b.val()));
                sd.insert(format!("{pre}.1.weight"), read_pointwise(band.fc1_w.val()));
                sd.insert(format!("{pre}.1.bias"), read(band.fc1_b.val()));
                sd.insert(
                    format!("{pre}.{fc2}.weight"),
                    read_pointwise(band.fc2_w.val()),
                );
                sd.insert(format!("{pre}.{fc2}.bias"), read(band.fc2_b.val()));
                sd.insert(format!("{pre}.4.weight"), read_pointwise(band.out_w.val()));
                sd.insert(format!("{pre}.4.bias"), read(band.out_b.val()));
            }
        }
    }
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
        // Normalisation layers start at identity: the encoder GroupNorm (`conv.1`), band
        // GroupNorms (`.0` of each band module), path norms (`*_norm*`).
        let is_norm = key.starts_with("conv.1.")
            || key.contains("_norm.")
            || (key.starts_with("band_split_module.") && key.split('.').nth(3) == Some("0"));
        let data = if key.ends_with("gamma") || (is_norm && key.ends_with(".weight")) {
            vec![1.0; n]
        } else if is_norm && key.ends_with(".bias") {
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
