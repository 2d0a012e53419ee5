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
}
