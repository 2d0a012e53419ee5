//! Picking the model weights out of an unpickled PyTorch checkpoint: training-checkpoint
//! wrappers, shared key prefixes and buffers that are not weights.

use super::CheckpointError;
use super::pickle::Value;
use super::tensor::{StateDict, TensorRef};

/// AveragedModel (`module.`), ESPnet (`separator.`), mixit-mss's task and wrapper
/// (`model.model.`, stripped one `model.` at a time).
const STRIP_PREFIXES: [&str; 3] = ["module.", "separator.", "model."];

/// Entries of a training checkpoint that are not weights: mixit-mss's STFT window buffers
/// (`model.stft.0.window`, `model.istft.window`, `stft.0.window`) and AveragedModel's counter.
fn is_buffer_to_ignore(key: &str) -> bool {
    key.ends_with("stft.0.window")
        || key.ends_with("istft.window")
        || key == "n_averaged"
        || key.ends_with(".n_averaged")
}

/// Entries of a training checkpoint that hold the model weights, in order of preference.
const MODEL_KEYS: [&str; 3] = ["model_state_dict", "state_dict", "model"];

fn dict_get<'a>(items: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    items.iter().find_map(|(k, v)| match k {
        Value::Str(s) if s == key => Some(v),
        _ => None,
    })
}

/// Pick the model weights out of an unpickled checkpoint (see [`load_state_dict`]).
///
/// `name` is used in error messages.
pub fn state_dict_from_value(value: &Value, name: &str) -> Result<StateDict, CheckpointError> {
    let mut items = match value {
        Value::Dict(items) => items.as_slice(),
        Value::Tensor(_) => {
            return Err(CheckpointError::NoStateDict {
                path: name.into(),
                detail: "the file holds a single tensor, not a dict of named weights".into(),
            });
        }
        other => {
            return Err(CheckpointError::NoStateDict {
                path: name.into(),
                detail: format!(
                    "the file holds {}, not a dict of named weights",
                    other.kind()
                ),
            });
        }
    };
    // Descend into training-checkpoint wrappers (possibly nested, e.g. {"model": {"state_dict": ...}}).
    for _ in 0..4 {
        match MODEL_KEYS.iter().find_map(|k| match dict_get(items, k) {
            Some(Value::Dict(inner)) => Some(inner.as_slice()),
            _ => None,
        }) {
            Some(inner) => items = inner,
            None => break,
        }
    }
    let mut named: Vec<(String, &TensorRef)> = Vec::new();
    for (k, v) in items {
        if let (Value::Str(key), Value::Tensor(t)) = (k, v) {
            if !is_buffer_to_ignore(key) {
                named.push((key.clone(), t));
            }
        }
    }
    if named.is_empty() {
        let keys: Vec<String> = items
            .iter()
            .take(12)
            .map(|(k, v)| match k {
                Value::Str(s) => format!("`{s}` ({})", v.kind()),
                other => format!("{} ({})", other.kind(), v.kind()),
            })
            .collect();
        let detail = if keys.is_empty() {
            "the checkpoint dict is empty".to_string()
        } else {
            format!(
                "no tensors among the entries {}{}",
                keys.join(", "),
                if items.len() > 12 { ", …" } else { "" }
            )
        };
        return Err(CheckpointError::NoStateDict {
            path: name.into(),
            detail,
        });
    }
    loop {
        let mut stripped = false;
        for prefix in STRIP_PREFIXES {
            if named
                .iter()
                .all(|(k, _)| k.len() > prefix.len() && k.starts_with(prefix))
            {
                for (k, _) in named.iter_mut() {
                    *k = k[prefix.len()..].to_string();
                }
                stripped = true;
            }
        }
        if !stripped {
            break;
        }
    }
    let mut out = StateDict::new();
    for (key, t) in named {
        let tensor = t.to_f32().map_err(|e| match e {
            CheckpointError::UnsupportedDtype { path, dtype, .. } => {
                CheckpointError::UnsupportedDtype {
                    path,
                    tensor: key.clone(),
                    dtype,
                }
            }
            other => other,
        })?;
        out.insert(key, tensor);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::model::checkpoint::{load_state_dict, pth, read_safetensors};

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tflocoformer")
            .join(rel)
    }

    fn assert_same(pth: &StateDict, st: &StateDict) {
        assert_eq!(pth.len(), st.len(), "key count");
        for (k, v) in st {
            let p = pth.get(k).unwrap_or_else(|| panic!("missing key {k}"));
            assert_eq!(p.shape, v.shape, "shape of {k}");
            assert_eq!(p.data.len(), v.data.len());
            for (a, b) in p.data.iter().zip(&v.data) {
                assert_eq!(a.to_bits(), b.to_bits(), "value of {k}");
            }
        }
    }

    #[test]
    fn tiny_separator_pth_matches_safetensors() {
        let pth = load_state_dict(fixture("tiny-separator/espnet_checkpoint.pth")).unwrap();
        let st = load_state_dict(fixture("tiny-separator/weights.safetensors")).unwrap();
        assert_eq!(st.len(), 62);
        assert!(pth.keys().all(|k| !k.starts_with("separator.")));
        assert_same(&pth, &st);
    }

    #[test]
    fn mss_tiny_pth_matches_safetensors() {
        let pth = load_state_dict(fixture("mss-tiny/checkpoint.pth")).unwrap();
        let st = read_safetensors(fixture("mss-tiny/weights.safetensors")).unwrap();
        assert_eq!(st.len(), 62);
        assert_same(&pth, &st);
        let f = &pth["blocks.1.frame_path.attn.rope.freqs"];
        assert_eq!(f.shape, vec![4]);
        assert_eq!(f.data, pth["blocks.0.frame_path.attn.rope.freqs"].data);
    }

    #[test]
    fn prefix_stripping_only_when_all_keys_carry_it() {
        let bytes = fs::read(fixture("tiny-separator/espnet_checkpoint.pth")).unwrap();
        let v = pth::read_pth_bytes(&bytes, "x.pth").unwrap();
        // Add a key without the prefix: nothing must be stripped.
        let Value::Dict(mut items) = v else {
            panic!("not a dict")
        };
        let first_tensor = items[0].1.clone();
        items.push((Value::Str("extra.weight".into()), first_tensor));
        let sd = state_dict_from_value(&Value::Dict(items.clone()), "x.pth").unwrap();
        assert!(sd.contains_key("separator.conv.0.weight"));
        assert!(sd.contains_key("extra.weight"));
        // Wrapped as a DataParallel training checkpoint: both prefixes go.
        let wrapped: Vec<(Value, Value)> = items[..items.len() - 1]
            .iter()
            .map(|(k, v)| match k {
                Value::Str(s) => (Value::Str(format!("module.{s}")), v.clone()),
                other => (other.clone(), v.clone()),
            })
            .collect();
        let top = Value::Dict(vec![
            (Value::Str("epoch".into()), Value::Int(3)),
            (Value::Str("state_dict".into()), Value::Dict(wrapped)),
        ]);
        let sd = state_dict_from_value(&top, "x.pth").unwrap();
        assert_eq!(sd.len(), 62);
        assert!(sd.contains_key("conv.0.weight"));
    }

    #[test]
    fn mixit_task_dicts_lose_their_prefixes_and_window_buffers() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus/checkpoint");
        for name in ["mixit_task.pth", "lightning.ckpt"] {
            let sd = load_state_dict(corpus.join(name)).unwrap();
            let keys: Vec<&String> = sd.keys().collect();
            assert_eq!(
                keys,
                vec!["band_split_module.band_split_module.0.0.weight"],
                "{name}"
            );
        }
        // The published fixture: every key under `model.model.`, three windows dropped.
        let published = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/bslocoformer/mixit-small/checkpoints/model.pth");
        let sd = load_state_dict(published).unwrap();
        assert!(
            sd.keys()
                .all(|k| !k.starts_with("model.") && !k.ends_with("window"))
        );
        assert!(sd.contains_key("blocks.0.freq_path.attn.qkv.weight"));
    }

    #[test]
    fn no_tensors_is_a_clear_error() {
        let top = Value::Dict(vec![(Value::Str("epoch".into()), Value::Int(3))]);
        let e = state_dict_from_value(&top, "ckpt.pth").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("ckpt.pth") && msg.contains("epoch"), "{msg}");
    }
}
