//! Byte units: the constants, and byte counts written ([`format_bytes`]) and read
//! ([`parse_bytes`]). A leaf: it imports nothing of the planner.

/// One kibibyte (1024 bytes).
pub const KIB: u64 = 1 << 10;
/// One mebibyte (1024² bytes).
pub const MIB: u64 = 1 << 20;
/// One gibibyte (1024³ bytes).
pub const GIB: u64 = 1 << 30;

/// Bytes of one f32 element (weights, gradients, optimizer moments, STFT buffers, log-sum-exp).
pub(super) const F32: u64 = 4;

/// `86856519888` → `"80.89 GiB"`: GiB / MiB / KiB with two decimals, plain bytes below 1 KiB.
pub fn format_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes >= GIB {
        format!("{:.2} GiB", b / GIB as f64)
    } else if bytes >= MIB {
        format!("{:.2} MiB", b / MIB as f64)
    } else if bytes >= KIB {
        format!("{:.2} KiB", b / KIB as f64)
    } else {
        format!("{bytes} B")
    }
}

/// Why a byte count could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing was given.
    #[error("empty size: expected something like 8GiB, 512MiB, 8GB or 123456")]
    Empty,
    /// The number part is not a number.
    #[error("invalid number {0:?} in size: expected something like 8GiB, 1.5GiB or 123456")]
    InvalidNumber(String),
    /// The unit is not one of B, KB/MB/GB/TB (powers of 1000), KiB/MiB/GiB/TiB or K/M/G/T
    /// (powers of 1024).
    #[error(
        "unknown unit {0:?}: use B, KiB, MiB, GiB, TiB (1024-based) or KB, MB, GB, TB (1000-based)"
    )]
    UnknownUnit(String),
    /// A negative size.
    #[error("negative size {0:?}")]
    Negative(String),
    /// A fractional number of bytes without a unit.
    #[error("fractional byte count {0:?}: give whole bytes or a unit (1.5GiB)")]
    FractionalBytes(String),
    /// More than `u64::MAX` bytes.
    #[error("size {0:?} is too large")]
    Overflow(String),
}

/// Parse a memory size: `"8GiB"`, `"512MiB"`, `"8GB"` (10⁹), `"1.5GiB"`, `"123456"`, `"8 G"`.
///
/// Units are case-insensitive; `KiB/MiB/GiB/TiB` and the bare `K/M/G/T` are powers of 1024,
/// `KB/MB/GB/TB` powers of 1000, `B` or nothing is bytes.
pub fn parse_bytes(text: &str) -> Result<u64, ParseError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(ParseError::Empty);
    }
    let split = s
        .find(|ch: char| !(ch.is_ascii_digit() || ch == '.' || ch == '-' || ch == '+'))
        .unwrap_or(s.len());
    let (number, unit) = (s[..split].trim(), s[split..].trim());
    if number.starts_with('-') {
        return Err(ParseError::Negative(text.to_string()));
    }
    if number.is_empty() {
        return Err(ParseError::InvalidNumber(text.to_string()));
    }
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => MIB,
        "g" | "gib" => GIB,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(ParseError::UnknownUnit(unit.to_string())),
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_mul(multiplier)
            .ok_or_else(|| ParseError::Overflow(text.to_string()));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| ParseError::InvalidNumber(number.to_string()))?;
    if !value.is_finite() {
        return Err(ParseError::InvalidNumber(number.to_string()));
    }
    if multiplier == 1 {
        return Err(ParseError::FractionalBytes(text.to_string()));
    }
    let bytes = value * multiplier as f64;
    if bytes >= u64::MAX as f64 {
        return Err(ParseError::Overflow(text.to_string()));
    }
    Ok(bytes.round() as u64)
}
