//! Tests of the text output: byte formatting and parsing, the preset peak table.

use super::*;

#[test]
fn format_and_parse_bytes() {
    assert_eq!(format_bytes(86_856_519_888), "80.89 GiB");
    assert_eq!(format_bytes(512 * MIB), "512.00 MiB");
    assert_eq!(format_bytes(1536), "1.50 KiB");
    assert_eq!(format_bytes(12), "12 B");
    assert_eq!(parse_bytes("8GiB"), Ok(8 * GIB));
    assert_eq!(parse_bytes("512MiB"), Ok(512 * MIB));
    assert_eq!(parse_bytes("8GB"), Ok(8_000_000_000));
    assert_eq!(parse_bytes("1.5GiB"), Ok(3 * GIB / 2));
    assert_eq!(parse_bytes("123456"), Ok(123_456));
    assert_eq!(parse_bytes(" 8 gib "), Ok(8 * GIB));
    assert_eq!(parse_bytes("8G"), Ok(8 * GIB));
    assert_eq!(parse_bytes(""), Err(ParseError::Empty));
    assert!(matches!(
        parse_bytes("8 parsecs"),
        Err(ParseError::UnknownUnit(_))
    ));
    assert!(matches!(
        parse_bytes("GiB"),
        Err(ParseError::InvalidNumber(_))
    ));
    assert!(matches!(
        parse_bytes("1.2.3GiB"),
        Err(ParseError::InvalidNumber(_))
    ));
    assert!(matches!(parse_bytes("-1GiB"), Err(ParseError::Negative(_))));
    assert!(matches!(
        parse_bytes("1.5"),
        Err(ParseError::FractionalBytes(_))
    ));
    assert!(matches!(
        parse_bytes("99999999999TiB"),
        Err(ParseError::Overflow(_))
    ));
    assert!(
        parse_bytes("8 parsecs")
            .unwrap_err()
            .to_string()
            .contains("GiB")
    );
}

#[test]
fn preset_peak_table() {
    let row = |m: &PlanModel, mode, attention, cap| {
        let p = plan(
            m,
            &PlanRequest {
                path_chunk_bytes: cap,
                ..req(m, mode, attention)
            },
        );
        format!("{:>10}", format_bytes(p.peak_bytes))
    };
    let chunked = AttentionStrategy::Chunked {
        max_score_bytes: 256 * MIB,
    };
    println!(
        "{:<17} {:>6} {:>8} | {:>10} {:>10} {:>10} {:>10} {:>10} | {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "preset",
        "seg",
        "params",
        "inf mat",
        "inf chk",
        "inf fused",
        "chk+path",
        "fus+path",
        "tr fused",
        "tr ck fus",
        "tr ck chk",
        "ckF+path",
        "ckC+path",
        "ckF+p bf16"
    );
    for (name, m, _) in presets().into_iter().chain([("demo", demo(), 0.0)]) {
        let cap = Some(256 * MIB);
        println!(
            "{:<17} {:>5.1}s {:>7.2}M | {} {} {} {} {} | {} {} {} {} {} {:>10}",
            name,
            m.segment_samples as f64 / 44_100.0,
            param_count(&m) as f64 / 1e6,
            row(&m, Mode::Inference, AttentionStrategy::Materialized, None),
            row(&m, Mode::Inference, chunked, None),
            row(&m, Mode::Inference, AttentionStrategy::Fused, None),
            row(&m, Mode::Inference, chunked, cap),
            row(&m, Mode::Inference, AttentionStrategy::Fused, cap),
            row(&m, Mode::Training, AttentionStrategy::Fused, None),
            row(
                &m,
                Mode::TrainingCheckpointed,
                AttentionStrategy::Fused,
                None
            ),
            row(&m, Mode::TrainingCheckpointed, chunked, None),
            row(
                &m,
                Mode::TrainingCheckpointed,
                AttentionStrategy::Fused,
                cap
            ),
            row(&m, Mode::TrainingCheckpointed, chunked, cap),
            format_bytes(
                plan(
                    &m,
                    &PlanRequest {
                        path_chunk_bytes: cap,
                        precision: Precision::BF16,
                        ..req(&m, Mode::TrainingCheckpointed, AttentionStrategy::Fused)
                    }
                )
                .peak_bytes
            ),
        );
    }
}
