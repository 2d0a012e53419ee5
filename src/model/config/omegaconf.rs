//! mixit-mss's `merged_config.yaml` (Hydra/OmegaConf): the model's keyword arguments live in
//! `task.model.model`, the inference settings in `task.model` and `task`, and values may be
//! `${top_level_key}` interpolations. Only those sections are read and resolved; the others
//! (trainer, datamodule, loss, optimizer) hold resolver syntax such as
//! `${oc.decode:${oc.env:LOCAL_WORLD_SIZE}}` and are ignored whatever they contain.

use serde_yaml::Value;

use super::RawConfig;

/// `v` as written in YAML, on one line and shortened, for messages.
fn show(v: &Value) -> String {
    let text = serde_yaml::to_string(v).unwrap_or_default();
    let line = text.trim().replace('\n', " ");
    match line.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

/// Deepest chain of interpolations followed (`a: ${b}`, `b: ${c}`, …).
const MAX_DEPTH: usize = 16;

/// The keyword arguments of a mixit-mss config, or `None` when `doc` is not one (no
/// `task.model.model` mapping).
pub(super) fn mixit_raw_config(doc: &Value) -> Result<Option<RawConfig>, String> {
    let Some(task) = doc.get("task") else {
        return Ok(None);
    };
    let Some(wrapper) = task.get("model") else {
        return Ok(None);
    };
    let Some(model) = wrapper.get("model").filter(|m| m.is_mapping()) else {
        return Ok(None);
    };
    let target = model.get("_target_").and_then(Value::as_str).unwrap_or("");
    if !target.is_empty() && !target.ends_with("BSLocoformer") {
        return Err(format!(
            "task.model.model._target_ is `{target}`; locosep reads mixit-mss `BSLocoformer` models"
        ));
    }
    let model = resolve(model, doc, "task.model.model", 0)?;
    let mut raw: RawConfig = super::keyed::raw_from_yaml(&model, "task.model.model")?;
    let field = |v: &Value, key: &str, path: &str| -> Result<Option<Value>, String> {
        v.get(key)
            .map(|x| resolve(x, doc, &format!("{path}.{key}"), 0))
            .transpose()
    };
    let num = |v: Option<Value>, what: &str| -> Result<Option<f64>, String> {
        v.map(|v| {
            v.as_f64()
                .ok_or_else(|| format!("{what} must be a number, got {}", show(&v)))
        })
        .transpose()
    };
    let int = |v: Option<Value>, what: &str| -> Result<Option<u64>, String> {
        v.map(|v| {
            v.as_u64()
                .ok_or_else(|| format!("{what} must be a non-negative integer, got {}", show(&v)))
        })
        .transpose()
    };
    let boolean = |v: Option<Value>, what: &str| -> Result<Option<bool>, String> {
        v.map(|v| {
            v.as_bool()
                .ok_or_else(|| format!("{what} must be true or false, got {}", show(&v)))
        })
        .transpose()
    };
    raw.architecture = Some("bslocoformer-mixit".into());
    raw.n_fft =
        int(field(wrapper, "n_fft", "task.model")?, "task.model.n_fft")?.map(|v| v as usize);
    raw.hop_length = int(
        field(wrapper, "hop_length", "task.model")?,
        "task.model.hop_length",
    )?
    .map(|v| v as usize);
    raw.sample_rate = int(field(wrapper, "fs", "task.model")?, "task.model.fs")?
        .map(|v| u32::try_from(v).unwrap_or(u32::MAX));
    raw.scaling = boolean(
        field(wrapper, "scaling", "task.model")?,
        "task.model.scaling",
    )?;
    raw.css_segment_size = num(
        field(wrapper, "css_segment_size", "task.model")?,
        "task.model.css_segment_size",
    )?
    // The wrapper's default when the key is absent.
    .or(Some(6.0));
    raw.css_shift_size = num(
        field(wrapper, "css_shift_size", "task.model")?,
        "task.model.css_shift_size",
    )?
    .or(Some(6.0));
    raw.normalize_mixture = boolean(
        field(task, "normalize_mixture", "task")?,
        "task.normalize_mixture",
    )?
    .or(Some(true));
    let css_validation = boolean(
        field(task, "css_validation", "task")?,
        "task.css_validation",
    )?;
    if css_validation == Some(false) {
        // separate_sample.py then runs the whole song as one segment.
        raw.css_segment_size = Some(super::limits::MAX_SEGMENT_SECONDS);
        raw.css_shift_size = Some(super::limits::MAX_SEGMENT_SECONDS);
    }
    Ok(Some(raw))
}

/// `value` with every `${key}` replaced by the top-level value of `key` (dotted paths allowed);
/// a whole-string interpolation keeps the referenced value's type.
fn resolve(value: &Value, root: &Value, path: &str, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "{path}: interpolations nest deeper than {MAX_DEPTH}"
        ));
    }
    match value {
        Value::String(s) if s.contains("${") => {
            let inner = s.trim();
            if let Some(key) = inner
                .strip_prefix("${")
                .and_then(|r| r.strip_suffix('}'))
                .filter(|k| !k.contains("${") && !k.contains('}'))
            {
                return resolve(&lookup(root, key, path)?, root, path, depth + 1);
            }
            // Interpolations inside a longer string: substitute their text.
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let end = rest[start..]
                    .find('}')
                    .ok_or_else(|| format!("{path}: unterminated interpolation in `{s}`"))?;
                let key = &rest[start + 2..start + end];
                let v = resolve(&lookup(root, key, path)?, root, path, depth + 1)?;
                match v {
                    Value::String(t) => out.push_str(&t),
                    Value::Number(n) => out.push_str(&n.to_string()),
                    Value::Bool(b) => out.push_str(&b.to_string()),
                    other => {
                        return Err(format!(
                            "{path}: `${{{key}}}` is `{}`, not text to insert",
                            show(&other)
                        ));
                    }
                }
                rest = &rest[start + end + 1..];
            }
            out.push_str(rest);
            Ok(Value::String(out))
        }
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| resolve(v, root, &format!("{path}[{i}]"), depth))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Sequence),
        Value::Mapping(map) => {
            let mut out = serde_yaml::Mapping::new();
            for (k, v) in map {
                let key = k.as_str().unwrap_or("?");
                out.insert(
                    k.clone(),
                    resolve(v, root, &format!("{path}.{key}"), depth)?,
                );
            }
            Ok(Value::Mapping(out))
        }
        other => Ok(other.clone()),
    }
}

/// The value at a dotted `key` from the document root.
fn lookup(root: &Value, key: &str, path: &str) -> Result<Value, String> {
    if key.contains(':') {
        return Err(format!(
            "{path}: the resolver `${{{key}}}` cannot be evaluated here; replace it by a value"
        ));
    }
    let mut v = root;
    for part in key.split('.') {
        v = v
            .get(part)
            .ok_or_else(|| format!("{path}: `${{{key}}}` names no key of the config"))?;
    }
    Ok(v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolations_resolve_and_other_sections_are_ignored() {
        let text = "sr: 44100\nn_fft: 2048\nhop: ${n_fft}\nn_src: 4\ntrainer:\n  devices: \
                    ${oc.decode:${oc.env:LOCAL_WORLD_SIZE}}\ntask:\n  normalize_mixture: true\n  \
                    model:\n    n_fft: ${n_fft}\n    hop_length: 512\n    fs: ${sr}\n    scaling: \
                    true\n    css_segment_size: 12\n    css_shift_size: 6\n    model:\n      \
                    _target_: x.BSLocoformer\n      num_spk: ${n_src}\n      num_chan: 2\n      \
                    n_layers: 1\n      emb_dim: 8\n      n_heads: 2\n      attention_dim: 8\n      \
                    num_groups: 4\n      ffn_hidden_dim: [16, 16]\n      ffn_type: [swiglu_conv1d, \
                    swiglu_conv1d]\n      conv1d_kernel: 8\n";
        let doc: Value = serde_yaml::from_str(text).unwrap();
        let raw = mixit_raw_config(&doc).unwrap().unwrap();
        let cfg = raw.resolve("m").unwrap();
        assert_eq!(cfg.sources, vec!["bass", "drums", "vocals", "other"]);
        assert_eq!(
            (cfg.n_fft, cfg.hop_length, cfg.sample_rate),
            (2048, 512, 44_100)
        );
        assert_eq!(cfg.audio_channels, 2);
        assert_eq!(cfg.freq_len(), 62);
        assert_eq!(cfg.pos_enc, super::super::PosEnc::Nope);
        let super::super::Pipeline::Css(css) = cfg.pipeline else {
            panic!("mixit configs use CSS")
        };
        assert_eq!((css.segment_seconds, css.shift_seconds), (12.0, 6.0));
        assert!(css.scaling && css.normalize_mixture);
    }

    #[test]
    fn a_resolver_in_a_needed_section_is_named() {
        let text = "task:\n  model:\n    fs: ${oc.env:SR}\n    model:\n      num_spk: 2\n";
        let doc: Value = serde_yaml::from_str(text).unwrap();
        let err = mixit_raw_config(&doc).unwrap_err();
        assert!(
            err.contains("task.model.fs") && err.contains("oc.env"),
            "{err}"
        );
        let cyc = "a: ${b}\nb: ${a}\ntask:\n  model:\n    fs: ${a}\n    model:\n      num_spk: 2\n";
        let doc: Value = serde_yaml::from_str(cyc).unwrap();
        assert!(mixit_raw_config(&doc).unwrap_err().contains("deeper"));
    }
}
