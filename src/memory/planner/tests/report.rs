//! Tests of the text output: byte formatting and parsing, the preset peak table.

use super::*;
use crate::memory::planner::model::weight_elements;

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

/// One column of the preset peak table: its label and the request it plans.
struct Column {
    label: &'static str,
    mode: Mode,
    attention: AttentionStrategy,
    path_chunk_bytes: Option<u64>,
    precision: Precision,
}

/// The table's columns: inference and training, each attention strategy, with and without
/// 256 MiB path chunks, and checkpointed bf16.
fn columns() -> Vec<Column> {
    let chunked = AttentionStrategy::Chunked {
        max_score_bytes: 256 * MIB,
    };
    let fused = AttentionStrategy::Fused;
    let cap = Some(256 * MIB);
    let col = |label, mode, attention, path_chunk_bytes, precision| Column {
        label,
        mode,
        attention,
        path_chunk_bytes,
        precision,
    };
    use Mode::{Inference, Training, TrainingCheckpointed as Ckpt};
    use Precision::{BF16, F32};
    vec![
        col(
            "inf mat",
            Inference,
            AttentionStrategy::Materialized,
            None,
            F32,
        ),
        col("inf chk", Inference, chunked, None, F32),
        col("inf fused", Inference, fused, None, F32),
        col("chk+path", Inference, chunked, cap, F32),
        col("fus+path", Inference, fused, cap, F32),
        col("tr fused", Training, fused, None, F32),
        col("tr ck fus", Ckpt, fused, None, F32),
        col("tr ck chk", Ckpt, chunked, None, F32),
        col("ckF+path", Ckpt, fused, cap, F32),
        col("ckC+path", Ckpt, chunked, cap, F32),
        col("ckF+p bf16", Ckpt, fused, cap, BF16),
    ]
}

/// One row: a model at a segment length, its parameters and its peak per column.
struct Row {
    name: &'static str,
    seconds: f64,
    params: usize,
    peaks: Vec<u64>,
}

/// Every preset (and the demo model) at `scale` × its segment, planned for every column.
fn peak_table(scale: f64) -> Vec<Row> {
    presets()
        .into_iter()
        .chain([("demo", demo(), 0.0)])
        .map(|(name, m, _)| {
            let segment_samples = (m.segment_samples as f64 * scale).round() as usize;
            let peaks = columns()
                .iter()
                .map(|c| {
                    let r = PlanRequest {
                        segment_samples,
                        path_chunk_bytes: c.path_chunk_bytes,
                        precision: c.precision,
                        ..req(&m, c.mode, c.attention)
                    };
                    plan(&m, &r).peak_bytes
                })
                .collect();
            Row {
                name,
                seconds: segment_samples as f64 / m.sample_rate as f64,
                params: param_count(&m),
                peaks,
            }
        })
        .collect()
}

/// `cargo test -- --nocapture preset_peak_table` prints the table of the report.
///
/// The table has one row per preset (and the demo model) and one column per request; every
/// cell is at least the run's static memory, grows when the segment doubles, and the columns
/// keep the orderings the strategies promise (training above inference, fused and chunked at
/// most materialised, bf16 below f32).
#[test]
fn preset_peak_table() {
    let cols = columns();
    let table = peak_table(1.0);
    let header: Vec<String> = cols.iter().map(|c| format!("{:>10}", c.label)).collect();
    println!(
        "{:<17} {:>6} {:>8} | {}",
        "preset",
        "seg",
        "params",
        header.join(" ")
    );
    for row in &table {
        let cells: Vec<String> = row
            .peaks
            .iter()
            .map(|&b| format!("{:>10}", format_bytes(b)))
            .collect();
        println!(
            "{:<17} {:>5.1}s {:>7.2}M | {}",
            row.name,
            row.seconds,
            row.params as f64 / 1e6,
            cells.join(" ")
        );
    }

    let names: Vec<&str> = table.iter().map(|r| r.name).collect();
    assert_eq!(
        names,
        [
            "small",
            "ultra-safe",
            "memory-optimized",
            "balanced",
            "xlarge",
            "demo"
        ]
    );
    let doubled = peak_table(2.0);
    let column = |label: &str| {
        cols.iter()
            .position(|c| c.label == label)
            .expect("known column")
    };
    for ((name, model, _), (row, long)) in presets()
        .into_iter()
        .chain([("demo", demo(), 0.0)])
        .zip(table.iter().zip(&doubled))
    {
        assert_eq!(row.params, param_count(&model), "{name}");
        assert_eq!(
            row.seconds,
            model.segment_samples as f64 / 44_100.0,
            "{name}"
        );
        assert_eq!(row.peaks.len(), cols.len(), "{name}");
        let weights = weight_elements(&model) as u64;
        for (c, (&peak, &peak_long)) in cols.iter().zip(row.peaks.iter().zip(&long.peaks)) {
            // Static memory alone: f32 weights; in training also gradients and two moments
            // (and a half-precision copy with bf16 activations).
            let fixed = match (c.mode, c.precision) {
                (Mode::Inference, _) => 4 * weights,
                (_, Precision::F32) => 16 * weights,
                _ => 18 * weights,
            };
            assert!(peak > fixed, "{name} {}: {peak} ≤ {fixed}", c.label);
            assert!(peak_long > peak, "{name} {}: 2× segment", c.label);
        }
        let at = |label: &str| row.peaks[column(label)];
        assert!(at("tr fused") > at("inf fused"), "{name}");
        assert!(at("inf chk") <= at("inf mat"), "{name}");
        assert!(at("inf fused") <= at("inf mat"), "{name}");
        assert!(at("ckF+p bf16") < at("ckF+path"), "{name}");
    }
    // The materialised column at balanced's 10 s holds the seed's 80.89 GiB score tensor twice
    // (softmax input and output); fused inference needs far less.
    let balanced = &table[3];
    assert!(balanced.peaks[column("inf mat")] > 2 * 86_856_519_888);
    assert!(balanced.peaks[column("inf fused")] < 16 * GIB);
}
