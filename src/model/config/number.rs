//! Numbers in messages: what the user typed, readable whatever its size.

/// `v` for a message: as Rust prints it when that is short (`0.25`, `1000000000000`), in
/// scientific notation when it would run to more than 16 characters (`1e308` rather than 309
/// digits, `1e-300`), and `NaN`, `inf`, `-inf` for the non-finite values.
pub fn fmt_number(v: f64) -> String {
    let plain = v.to_string();
    if !v.is_finite() || plain.len() <= 16 {
        plain
    } else {
        format!("{v:e}")
    }
}

/// [`fmt_number`] for an `f32` (printed as `f32`, so that `0.3` stays `0.3`).
pub fn fmt_number_f32(v: f32) -> String {
    let plain = v.to_string();
    if !v.is_finite() || plain.len() <= 16 {
        plain
    } else {
        format!("{v:e}")
    }
}

/// `text` with every number of more than 24 digits (how serde prints `1e308`: 309 digits and
/// `.0`) rewritten in scientific notation. Shorter numbers, such as 2⁶⁴−1, stay as they are.
pub fn compact_long_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let int_len = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        let mut len = int_len;
        // A fraction belongs to the number.
        if tail[len..].starts_with('.') {
            let frac = tail[len + 1..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(tail.len() - len - 1);
            if frac > 0 {
                len += 1 + frac;
            }
        }
        let number = &tail[..len];
        match number.parse::<f64>() {
            Ok(v) if int_len > 24 => out.push_str(&format!("{v:e}")),
            _ => out.push_str(number),
        }
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_and_tiny_values_are_short() {
        assert_eq!(fmt_number(1e308), "1e308");
        assert_eq!(fmt_number(-1e300), "-1e300");
        assert_eq!(fmt_number(1e-300), "1e-300");
        assert_eq!(fmt_number(1.5e20), "1.5e20");
        assert_eq!(fmt_number(1e12), "1000000000000");
        assert_eq!(fmt_number(0.25), "0.25");
        assert_eq!(fmt_number(-1.0), "-1");
        assert_eq!(fmt_number(f64::NAN), "NaN");
        assert_eq!(fmt_number(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn long_numbers_in_text_are_compacted() {
        let long = format!("got `{}.0`, expected u32", 1e308);
        assert_eq!(compact_long_numbers(&long), "got `1e308`, expected u32");
        let kept = "2⁶⁴−1 = 18446744073709551615, 0.25 s, line 3";
        assert_eq!(compact_long_numbers(kept), kept);
        assert_eq!(compact_long_numbers(&format!("-{}", 1e300)), "-1e300");
    }
}
