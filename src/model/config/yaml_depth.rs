//! A bound on YAML flow nesting, checked before the text reaches serde_yaml.
//!
//! libyaml (under serde_yaml) spends time proportional to the open flow collections on every
//! token, so `[[[[…]]]]` 40 000 deep (80 KB) takes 15 s to parse before serde_yaml's own
//! recursion limit is reached. Block nesting (`- - - x`, indentation) does not have that cost
//! and is left to serde_yaml. A model config nests three or four levels.

/// Deepest flow nesting (`[`/`{`) accepted in a YAML config.
pub const MAX_YAML_FLOW_DEPTH: usize = 64;

/// Checks that no point of `text` lies inside more than [`MAX_YAML_FLOW_DEPTH`] open `[`/`{`,
/// ignoring quoted scalars and comments; the error names the line.
pub fn check_flow_depth(text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut prev: Option<char> = None;
    let mut chars = text.chars().peekable();
    // A quote opens a quoted scalar only where a scalar may begin.
    let starts_scalar = |p: Option<char>| p.is_none_or(|c| c.is_whitespace() || "[{,".contains(c));
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '#' if prev.is_none_or(char::is_whitespace) => {
                // A comment runs to the end of the line.
                for d in chars.by_ref() {
                    if d == '\n' {
                        line += 1;
                        break;
                    }
                }
                prev = Some('\n');
                continue;
            }
            '"' if starts_scalar(prev) => {
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            if chars.next() == Some('\n') {
                                line += 1;
                            }
                        }
                        '\n' => line += 1,
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' if starts_scalar(prev) => {
                while let Some(d) = chars.next() {
                    match d {
                        '\n' => line += 1,
                        // `''` is an escaped quote inside the scalar.
                        '\'' if chars.peek() == Some(&'\'') => {
                            chars.next();
                        }
                        '\'' => break,
                        _ => {}
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_YAML_FLOW_DEPTH {
                    return Err(format!(
                        "the YAML nests more than {MAX_YAML_FLOW_DEPTH} levels of [ ] / {{ }} \
                         (line {line}); a model config nests a few"
                    ));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = Some(c);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_refused_at_once_and_names_the_line() {
        let deep = format!(
            "a: 1\nmodel: {}{}\n",
            "[".repeat(40_000),
            "]".repeat(40_000)
        );
        let t0 = std::time::Instant::now();
        let e = check_flow_depth(&deep).unwrap_err();
        assert!(t0.elapsed().as_secs_f64() < 0.5);
        assert!(e.contains("64 levels") && e.contains("line 2"), "{e}");
        let mixed = format!("model: {}1{}", "[{a: ".repeat(40), "}]".repeat(40));
        assert!(check_flow_depth(&mixed).unwrap_err().contains("64"));
    }

    #[test]
    fn brackets_in_quotes_and_comments_and_shallow_flows_are_fine() {
        let ok = format!(
            "# {open}\nmodel:\n  ffn_type: [swiglu_conv1d, swiglu_conv1d]\n  note: \"{open}\"\n  \
             other: '{open} it''s'\n  plain: don't [x] # {open}\n  deep: {}{}\n",
            "[".repeat(64),
            "]".repeat(64),
            open = "[".repeat(100)
        );
        assert_eq!(check_flow_depth(&ok), Ok(()));
        assert!(check_flow_depth(&format!("a: {}", "[".repeat(65))).is_err());
    }

    #[test]
    fn a_deep_yaml_config_is_refused_at_once_by_name() {
        let deep = format!("model: {}{}\n", "[".repeat(40_000), "]".repeat(40_000));
        let t0 = std::time::Instant::now();
        let e = crate::model::config::ModelConfig::from_yaml_str(&deep, "d.yaml")
            .unwrap_err()
            .to_string();
        assert!(t0.elapsed().as_secs_f64() < 1.0, "{:?}", t0.elapsed());
        assert!(e.contains("d.yaml") && e.contains("64 levels"), "{e}");
    }
}
