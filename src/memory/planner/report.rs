//! Text for people: [`MemoryPlan::table`].

use super::plan::MemoryPlan;
use super::units::format_bytes;

impl MemoryPlan {
    /// Aligned text table of the breakdown, the peak and the largest allocation.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let r = &self.request;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} · segment {:.2} s ({} samples) · T = {} frames · F = {} bins · B = {} item(s) · attention {} · {:?}",
            r.mode,
            self.segment_seconds,
            r.segment_samples,
            self.frames,
            self.bins,
            self.items,
            r.attention,
            r.precision
        );
        for p in &self.paths {
            let _ = writeln!(
                out,
                "  {} path: {} sequences of length {}, {} at once, {} per attention call",
                p.name, p.sequences, p.length, p.sub_batch, p.attention_sub_batch
            );
        }
        if self.offloaded_bytes > 0 {
            let _ = writeln!(
                out,
                "  block inputs in host memory: {} of RAM (not counted below)",
                format_bytes(self.offloaded_bytes)
            );
        }
        let rows: Vec<(String, u64)> = self
            .breakdown
            .iter()
            .map(|(c, b)| (c.label(), *b))
            .collect();
        let width = rows
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0)
            .max(20);
        let peak = self.peak_bytes.max(1);
        let _ = writeln!(
            out,
            "  {:<width$}  {:>18}  {:>12}  {:>6}",
            "category", "bytes", "", "share"
        );
        for (label, bytes) in &rows {
            let _ = writeln!(
                out,
                "  {:<width$}  {:>18}  {:>12}  {:>5.1}%",
                label,
                bytes,
                format_bytes(*bytes),
                *bytes as f64 * 100.0 / peak as f64
            );
        }
        let _ = writeln!(
            out,
            "  {:<width$}  {:>18}  {:>12}",
            "peak",
            self.peak_bytes,
            format_bytes(self.peak_bytes)
        );
        let _ = writeln!(out, "  peak during: {}", self.peak_phase);
        let _ = writeln!(
            out,
            "  largest allocation: {} ({} B) — {}",
            format_bytes(self.largest_allocation_bytes),
            self.largest_allocation_bytes,
            self.largest_allocation
        );
        out
    }
}
