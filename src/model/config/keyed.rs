//! Deserializing [`RawConfig`] with messages that name the key at fault.
//!
//! serde_json and serde_yaml say "invalid type: floating point `1e308`, expected usize" (and
//! serde_yaml, reading from a parsed document, not even where). When a mapping does not
//! deserialize, each key is tried alone — every field of [`RawConfig`] is optional, so only
//! the bad one fails — and the first key refused is named. Numbers printed with hundreds of
//! digits are shortened.

use super::RawConfig;
use super::number::compact_long_numbers;

/// `RawConfig` from the YAML mapping at `section` (a dotted path, empty for the top); the
/// error starts with the path of the key refused (`model.n_fft: …`).
pub(super) fn raw_from_yaml(v: &serde_yaml::Value, section: &str) -> Result<RawConfig, String> {
    let at = |key: &str| match (section, key) {
        ("", k) => k.to_string(),
        (s, "") => s.to_string(),
        (s, k) => format!("{s}.{k}"),
    };
    serde_yaml::from_value(v.clone()).map_err(|e| {
        let key = v.as_mapping().and_then(|m| {
            m.iter().find_map(|(k, x)| {
                let mut one = serde_yaml::Mapping::new();
                one.insert(k.clone(), x.clone());
                serde_yaml::from_value::<RawConfig>(serde_yaml::Value::Mapping(one))
                    .err()
                    .map(|e| (k.as_str().unwrap_or("?").to_string(), e))
            })
        });
        let text = match key {
            Some((k, e)) => format!("{}: {e}", at(&k)),
            None if section.is_empty() => e.to_string(),
            None => format!("{}: {e}", at("")),
        };
        compact_long_numbers(&text)
    })
}

/// `RawConfig` from JSON text; the error names the key refused, or quotes the line of a
/// syntax error (JSON has no NaN or Infinity).
pub(super) fn raw_from_json(text: &str) -> Result<RawConfig, String> {
    serde_json::from_str(text).map_err(|e| {
        if e.is_data()
            && let Ok(serde_json::Value::Object(map)) = serde_json::from_str(text)
        {
            for (k, x) in map {
                let one = serde_json::Value::Object([(k.clone(), x)].into_iter().collect());
                if let Err(e) = serde_json::from_value::<RawConfig>(one) {
                    let quoted = format!("\"{k}\"");
                    let at = text
                        .lines()
                        .position(|l| l.contains(&quoted))
                        .map(|i| format!(" (line {})", i + 1))
                        .unwrap_or_default();
                    return compact_long_numbers(&format!("{k}: {e}{at}"));
                }
            }
        }
        let line = text.lines().nth(e.line().saturating_sub(1)).unwrap_or("");
        let line: String = line.trim().chars().take(60).collect();
        if line.is_empty() {
            compact_long_numbers(&e.to_string())
        } else {
            compact_long_numbers(&format!("{e}: `{line}`"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refused_key_is_named() {
        let e = raw_from_json("{\"n_layers\": 2, \"emb_dim\": 1e308}").unwrap_err();
        assert!(e.starts_with("emb_dim: ") && e.contains("1e+308"), "{e}");
        assert!(e.ends_with("(line 1)"), "{e}");
        let e = raw_from_json("{\n  \"eps\": NaN\n}").unwrap_err();
        assert!(e.contains("line 2") && e.contains("\"eps\": NaN"), "{e}");
        let doc: serde_yaml::Value = serde_yaml::from_str("n_layers: 2\nnum_chan: -1\n").unwrap();
        let e = raw_from_yaml(&doc, "model").unwrap_err();
        assert!(e.starts_with("model.num_chan: ") && e.contains("-1"), "{e}");
    }
}
