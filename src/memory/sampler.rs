//! Live memory readings: the burn/cubecl allocator's in-use and reserved bytes (wgpu), and the
//! process's resident set (every backend), sampled at a fixed interval on a background thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use burn::tensor::Device;

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MemorySample {
    /// Seconds since sampling started.
    pub t: f64,
    /// Allocator bytes in live allocations (None where the backend does not report them).
    pub in_use: Option<u64>,
    /// Allocator bytes reserved from the device.
    pub reserved: Option<u64>,
    /// Resident set size of this process.
    pub rss: Option<u64>,
}

/// Everything sampled during a run, with peaks.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MemoryTrace {
    /// Samples in time order.
    pub samples: Vec<MemorySample>,
    /// Largest `in_use` seen.
    pub peak_in_use: Option<u64>,
    /// Largest `reserved` seen.
    pub peak_reserved: Option<u64>,
    /// Peak resident set of the process while this sampler ran: the kernel's high-water mark
    /// (`VmHWM`, reset when sampling starts), or where it cannot be reset the largest sampled
    /// resident set — never the peak of an earlier job.
    pub peak_rss: Option<u64>,
}

/// Reads the resident set size and its high-water mark from `/proc/self/status`.
pub fn process_rss() -> (Option<u64>, Option<u64>) {
    let Ok(text) = std::fs::read_to_string("/proc/self/status") else {
        return (None, None);
    };
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the kernel's RSS high-water mark (Linux ≥ 4.0), so a later `VmHWM` is the peak of
/// what follows. Returns whether it was reset (elsewhere, or without the right, nothing
/// happens).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Takes one reading now.
pub fn sample(device: &Device, t: f64) -> MemorySample {
    let usage = device.memory_pool_usage();
    MemorySample {
        t,
        in_use: usage.as_ref().map(|u| u.bytes_in_use),
        reserved: usage.as_ref().map(|u| u.bytes_reserved),
        rss: process_rss().0,
    }
}

/// A running sampler; stop it to get the trace.
pub struct MemorySampler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<MemoryTrace>>,
}

impl MemorySampler {
    /// Starts sampling `device` every `interval`; each sample is also sent on `live` (for a GUI
    /// graph or a CLI line) when given. The peaks of the trace are this run's own: the process's
    /// high-water mark is reset now.
    pub fn start(device: Device, interval: Duration, live: Option<Sender<MemorySample>>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let hwm_reset = reset_peak_rss();
        let handle = std::thread::Builder::new()
            .name("locosep-memory".into())
            .spawn(move || {
                let t0 = Instant::now();
                let mut trace = MemoryTrace::default();
                let mut sampled_rss = None;
                loop {
                    let s = sample(&device, t0.elapsed().as_secs_f64());
                    trace.peak_in_use = trace.peak_in_use.max(s.in_use);
                    trace.peak_reserved = trace.peak_reserved.max(s.reserved);
                    sampled_rss = sampled_rss.max(s.rss);
                    if let Some(tx) = &live {
                        let _ = tx.send(s);
                    }
                    trace.samples.push(s);
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(interval);
                }
                // Another sampler starting meanwhile resets the mark too (lowering it), so the
                // sampled maximum is kept as a floor.
                let (rss, hwm) = process_rss();
                let sampled_rss = sampled_rss.max(rss);
                trace.peak_rss = if hwm_reset {
                    hwm.max(sampled_rss)
                } else {
                    sampled_rss
                };
                trace
            })
            .ok();
        Self { stop, handle }
    }

    /// A channel pair for live samples.
    pub fn channel() -> (Sender<MemorySample>, Receiver<MemorySample>) {
        channel()
    }

    /// Stops sampling and returns the trace.
    pub fn stop(mut self) -> MemoryTrace {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second run reports its own peak, not the larger one of the run before (what showed
    /// 2.04 GiB for every Compare run after a fine-tune).
    #[cfg(target_os = "linux")]
    #[test]
    fn each_run_reports_its_own_peak() {
        const BIG: usize = 1 << 30;
        let device = Device::flex();
        let first = MemorySampler::start(device.clone(), Duration::from_millis(20), None);
        // Written, so every page is resident; freed (unmapped) before the second run.
        let big = std::hint::black_box(vec![1u8; BIG]);
        std::thread::sleep(Duration::from_millis(100));
        drop(big);
        let a = first.stop().peak_rss.expect("resident set on Linux");
        let second = MemorySampler::start(device, Duration::from_millis(20), None);
        std::thread::sleep(Duration::from_millis(100));
        let b = second.stop().peak_rss.expect("resident set on Linux");
        eprintln!("peak of the first run {a} B, of the second {b} B");
        assert!(
            a >= BIG as u64,
            "first peak {a} misses the {BIG}-byte buffer"
        );
        assert!(
            b + (BIG as u64) / 2 < a,
            "second peak {b} is not its own (first {a})"
        );
    }
}
