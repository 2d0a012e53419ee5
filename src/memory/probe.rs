//! The exact in-use peak of the cubecl (burn-wgpu) device allocator.
//!
//! cubecl reports its pools' current usage ([`Device::memory_pool_usage`]) and page
//! high-water marks, but not the most bytes ever in use: a sampler polling the usage only sees
//! the moments the device's task queue lets it through (a dozen readings over a 25 s forward on
//! lavapipe), and pages are sized after the largest allocation (45 MiB at demo shapes), so the
//! reserved mark moves in steps of that size.
//!
//! In-use bytes only grow when the allocator reserves memory, and cubecl can log its full usage
//! report after every reservation (its memory logger at level `full`). The probe routes that
//! log to the `log` crate, reads the "Bytes in use" and "Total bytes reserved" lines of the
//! main device memory's summary, and keeps their maxima: the exact in-use peak (to cubecl's
//! printed precision, 10 kB at MB scale) and the reserved peak.
//!
//! Both the cubecl configuration and the process's `log` logger are set once per process, so
//! [`install`] must run before the first GPU use and where no other logger is installed; it is
//! meant for measurement runs (`locosep bench memory`, `tests/memory.rs`), not for every
//! separation. Formatting a full report at every reservation costs a few milliseconds per
//! allocation.
//!
//! Diagnostics: with `LOCOSEP_ALLOCATOR_TRACE=FILE` every report's in-use bytes (and, on `#`
//! lines, the reservation that preceded it) are appended to FILE, to see which tensors make up
//! a peak.
//!
//! [`Device::memory_pool_usage`]: burn::tensor::Device::memory_pool_usage

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

/// The allocator's name for device memory in its log lines (staging and uniform memory have
/// other names and are not counted: they are host-visible or tiny).
const MAIN_MEMORY: &str = "[Main GPU Memory]";

/// Why the probe could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// cubecl read its configuration already (some GPU work ran first).
    #[error(
        "the allocator probe must be installed before the first GPU use in this process \
         (cubecl has already read its configuration)"
    )]
    ConfigAlreadyRead,
    /// Another `log` logger is installed in this process.
    #[error("the allocator probe needs the process's `log` logger, and another one is installed")]
    LoggerTaken,
}

/// Peaks seen in the allocator's reports since the last [`AllocatorProbe::reset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ProbeReading {
    /// Most bytes in live allocations after any reservation.
    pub peak_in_use: u64,
    /// Most bytes reserved from the device after any reservation.
    pub peak_reserved: u64,
    /// In-use bytes at the last report.
    pub last_in_use: u64,
    /// Reports read.
    pub reports: u64,
}

/// The installed probe (one per process); see the module docs.
pub struct AllocatorProbe {
    peak_in_use: AtomicU64,
    peak_reserved: AtomicU64,
    last_in_use: AtomicU64,
    reports: AtomicU64,
}

static PROBE: AllocatorProbe = AllocatorProbe {
    peak_in_use: AtomicU64::new(0),
    peak_reserved: AtomicU64::new(0),
    last_in_use: AtomicU64::new(0),
    reports: AtomicU64::new(0),
};

static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// Installs the probe (idempotent: later calls return the same probe or the same error).
///
/// # Errors
/// [`ProbeError`] when cubecl's configuration was read before, or another logger is installed.
pub fn install() -> Result<&'static AllocatorProbe, ProbeError> {
    let outcome = INSTALLED.get_or_init(|| {
        if log::set_logger(&PROBE).is_err() {
            return Err("logger".into());
        }
        log::set_max_level(log::LevelFilter::Info);
        let config: CubeClRuntimeConfig =
            toml::from_str("[memory.logger]\nlevel = \"full\"\nlog = \"info\"\n")
                .expect("a valid cubecl configuration");
        if !CubeClRuntimeConfig::try_set(config) {
            return Err("config".into());
        }
        Ok(())
    });
    match outcome {
        Ok(()) => Ok(&PROBE),
        Err(e) if e == "logger" => Err(ProbeError::LoggerTaken),
        Err(_) => Err(ProbeError::ConfigAlreadyRead),
    }
}

impl AllocatorProbe {
    /// Waits until the allocator's log has been read up to now (cubecl delivers it on a
    /// background task): returns once no new report arrived for 100 ms, or after 10 s.
    pub fn settle(&self) {
        let start = Instant::now();
        let mut seen = self.reports.load(Ordering::SeqCst);
        let mut quiet_since = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
            let now = self.reports.load(Ordering::SeqCst);
            if now != seen {
                seen = now;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= Duration::from_millis(100) {
                return;
            }
        }
    }

    /// Settles, then starts new peaks from the current in-use bytes.
    pub fn reset(&self) {
        self.settle();
        let last = self.last_in_use.load(Ordering::SeqCst);
        self.peak_in_use.store(last, Ordering::SeqCst);
        self.peak_reserved.store(0, Ordering::SeqCst);
    }

    /// Settles, then reads the peaks since the last [`reset`](Self::reset).
    pub fn read(&self) -> ProbeReading {
        self.settle();
        ProbeReading {
            peak_in_use: self.peak_in_use.load(Ordering::SeqCst),
            peak_reserved: self.peak_reserved.load(Ordering::SeqCst),
            last_in_use: self.last_in_use.load(Ordering::SeqCst),
            reports: self.reports.load(Ordering::SeqCst),
        }
    }

    fn observe(&self, report: UsageReport) {
        self.last_in_use.store(report.in_use, Ordering::SeqCst);
        self.peak_in_use.fetch_max(report.in_use, Ordering::SeqCst);
        self.peak_reserved
            .fetch_max(report.reserved, Ordering::SeqCst);
        self.reports.fetch_add(1, Ordering::SeqCst);
    }
}

impl log::Log for AllocatorProbe {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.target() == "cubecl::memory"
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        let report = parse_report(&message);
        if let Some(report) = report {
            self.observe(report);
        }
        if let Some(path) = std::env::var_os("LOCOSEP_ALLOCATOR_TRACE") {
            let line = match report {
                Some(r) => r.in_use.to_string(),
                None if message.starts_with(MAIN_MEMORY) => {
                    format!("# {}", message.lines().next().unwrap_or(""))
                }
                None => return,
            };
            append_line(&path, &line);
        }
    }

    fn flush(&self) {}
}

/// Appends `line` to the trace file (diagnostics only: errors are ignored).
fn append_line(path: &std::ffi::OsStr, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Usage totals of one allocator report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UsageReport {
    in_use: u64,
    reserved: u64,
}

/// Reads the summary of a main-memory usage report: the last "Bytes in use" and "Total bytes
/// reserved" lines (the summary follows the per-pool lines). `None` for any other message.
fn parse_report(message: &str) -> Option<UsageReport> {
    if !message.starts_with(MAIN_MEMORY) {
        return None;
    }
    let summary = &message[message.rfind("## Summary")?..];
    let field = |name: &str| {
        let line = summary.lines().find_map(|l| l.trim().strip_prefix(name))?;
        parse_size(line.trim())
    };
    Some(UsageReport {
        in_use: field("Bytes in use:")?,
        reserved: field("Total bytes reserved:")?,
    })
}

/// Parses cubecl's printed sizes: `"128 B"`, `"65.66 KB"`, `"103.03 MB"` (powers of 1000).
fn parse_size(text: &str) -> Option<u64> {
    let (number, unit) = text.split_once(' ')?;
    let value: f64 = number.parse().ok()?;
    let scale = match unit {
        "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "PB" => 1e15,
        _ => return None,
    };
    Some((value * scale).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One report as cubecl 0.11.3 prints it (trimmed pool lines).
    const REPORT: &str = "[Main GPU Memory], Allocated a new memory page, current usage: \n\
        \n# MemoryManagement\n\n - name: \"Main GPU Memory\"\n\n## Dynamic\n\n\
        Memory Usage Report:\n  Number of allocations: 3\n  Bytes in use: 65.66 KB\n\
        \x20 Total bytes reserved: 8.39 MB\n\n## Summary\n\nMemory Usage Report:\n\
        \x20 Number of allocations: 7\n  Bytes in use: 103.03 MB\n\
        \x20 Bytes used for padding: 0 B\n  Total bytes reserved: 149.95 MB\n\
        \x20 Usage efficiency: 68.71%\n";

    #[test]
    fn reads_the_summary_not_the_pool_lines() {
        assert_eq!(
            parse_report(REPORT),
            Some(UsageReport {
                in_use: 103_030_000,
                reserved: 149_950_000
            })
        );
        let staging = REPORT.replace(MAIN_MEMORY, "[Staging CPU Memory]");
        assert_eq!(parse_report(&staging), None);
        assert_eq!(
            parse_report("[Main GPU Memory] Reserved memory 128 B using dynamic pool"),
            None
        );
    }

    #[test]
    fn sizes_in_every_unit() {
        assert_eq!(parse_size("128 B"), Some(128));
        assert_eq!(parse_size("65.66 KB"), Some(65_660));
        assert_eq!(parse_size("1.26 GB"), Some(1_260_000_000));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size("many B"), None);
    }

    #[test]
    fn peaks_keep_the_maximum_and_reset_to_the_current_use() {
        let probe = AllocatorProbe {
            peak_in_use: AtomicU64::new(0),
            peak_reserved: AtomicU64::new(0),
            last_in_use: AtomicU64::new(0),
            reports: AtomicU64::new(0),
        };
        for (in_use, reserved) in [(10, 20), (50, 60), (30, 60)] {
            probe.observe(UsageReport { in_use, reserved });
        }
        let r = probe.read();
        assert_eq!(
            (r.peak_in_use, r.peak_reserved, r.last_in_use),
            (50, 60, 30)
        );
        probe.reset();
        let r = probe.read();
        assert_eq!((r.peak_in_use, r.peak_reserved, r.reports), (30, 0, 3));
    }
}
