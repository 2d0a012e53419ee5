//! Attention benchmark: time and allocator growth of the fused kernel vs the plain-ops
//! reference vs burn's built-in `module::attention`, forward and forward + backward.
//!
//! Memory is read from the cubecl allocator: one call runs on a fresh wgpu device with every
//! allocation exact-size and dedicated, and [`measure_peak`] reports the high-water mark of
//! live allocations times the largest one — an upper bound on the call's peak beyond its
//! inputs that scales like the true peak. Non-wgpu devices report no memory (`-`).
//!
//! Not a test: `locosep bench attention` prints [`print_table`] of [`bench_attention`].

use std::fmt::Write as _;
use std::time::Instant;

use burn::tensor::module::attention as burn_attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Distribution, Tensor};

use super::{attention_reference, fused_attention, fused_available};

/// One attention problem size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchShape {
    /// Label printed in the table, e.g. the preset name.
    pub name: String,
    /// Attention batch (frames B·T on the frequency path).
    pub batch: usize,
    /// Heads.
    pub heads: usize,
    /// Sequence length L (F = n_fft/2 + 1 bins on the frequency path).
    pub seq: usize,
    /// Head dim d = attention dim / heads.
    pub head_dim: usize,
}

impl BenchShape {
    /// Bytes of one materialised f32 score tensor `batch · heads · L² · 4 B`.
    pub fn score_bytes(&self) -> usize {
        self.batch * self.heads * self.seq * self.seq * 4
    }
}

/// Frequency-path shapes of every preset (L = n_fft/2 + 1, d = A / heads) with the attention
/// batch set to `batch` frames (the real B·T is hundreds; scale it down to what the device
/// holds).
pub fn preset_shapes(batch: usize) -> Vec<BenchShape> {
    // (preset, n_fft, heads, attention dim A) from configs/*.toml.
    [
        ("small", 1024, 4, 48),
        ("ultra-safe", 2048, 4, 96),
        ("memory-optimized", 2048, 8, 128),
        ("balanced", 4096, 12, 192),
        ("xlarge", 4096, 16, 256),
    ]
    .into_iter()
    .map(|(name, n_fft, heads, dim)| BenchShape {
        name: name.to_string(),
        batch,
        heads,
        seq: crate::dsp::stft::num_bins(n_fft),
        head_dim: dim / heads,
    })
    .collect()
}

/// Which implementation a row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// [`fused_attention`] (WGSL kernels).
    Fused,
    /// [`attention_reference`] (plain tensor ops, scores materialised).
    Reference,
    /// `burn::tensor::module::attention` (flash-style forward on cubecl where its kernel applies;
    /// naive O(L²) under autodiff).
    BurnBuiltin,
}

/// Forward only (plain device) or forward + backward (autodiff device, gradients of
/// `sum(out)` w.r.t. Q, K, V).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Inference.
    Forward,
    /// Training step of the op.
    ForwardBackward,
}

/// One measurement.
#[derive(Debug, Clone)]
pub struct BenchRow {
    /// The problem.
    pub shape: BenchShape,
    /// Forward or forward + backward.
    pub mode: Mode,
    /// Implementation.
    pub method: Method,
    /// Mean wall time per call in milliseconds (device synchronised), `None` if skipped.
    pub ms: Option<f64>,
    /// Peak-memory bound of one call in bytes (see the module docs), `None` if skipped or
    /// not reported by the backend.
    pub peak_bytes: Option<u64>,
    /// Why the row was skipped, if it was.
    pub skipped: Option<String>,
}

/// Methods that materialise scores are skipped when their score tensors would exceed this
/// (the reference keeps about three L² tensors alive under autodiff).
pub const MAX_MATERIALISED_BYTES: usize = 3 << 30;

/// Benchmarks every shape × mode × method: `iters` timed calls after one warm-up call.
///
/// The fused method is skipped where [`fused_available`] is false.
///
/// # Shapes
///
/// Each [`BenchShape`] gives Q, K, V `[batch, heads, seq, head_dim]`.
pub fn bench_attention(device: &Device, shapes: &[BenchShape], iters: usize) -> Vec<BenchRow> {
    let plain = device.clone().without_autodiff();
    let mut rows = Vec::new();
    for shape in shapes {
        for mode in [Mode::Forward, Mode::ForwardBackward] {
            for method in [Method::Fused, Method::Reference, Method::BurnBuiltin] {
                let skip = skip_reason(&plain, shape, mode, method);
                let (ms, peak_bytes) = match skip {
                    Some(_) => (None, None),
                    None => {
                        let (ms, peak) = run_one(&plain, shape, mode, method, iters.max(1));
                        (Some(ms), peak)
                    }
                };
                rows.push(BenchRow {
                    shape: shape.clone(),
                    mode,
                    method,
                    ms,
                    peak_bytes,
                    skipped: skip,
                });
            }
        }
    }
    rows
}

fn skip_reason(device: &Device, shape: &BenchShape, mode: Mode, method: Method) -> Option<String> {
    let materialises = match (method, mode) {
        (Method::Fused, _) => false,
        (Method::Reference, _) => true,
        // The built-in forward is flash-style on cubecl; under autodiff it is the naive graph.
        (Method::BurnBuiltin, Mode::Forward) => !is_cube(device),
        (Method::BurnBuiltin, Mode::ForwardBackward) => true,
    };
    if method == Method::Fused && !fused_available(device) {
        return Some("no wgpu device".into());
    }
    let factor = if mode == Mode::ForwardBackward { 3 } else { 2 };
    // One score tensor must also fit in one device buffer binding (128 MiB on lavapipe).
    let max_buffer = crate::kernels::device::cube_device(device)
        .map(|d| d.client().properties().memory.max_page_size as usize)
        .unwrap_or(usize::MAX);
    // The built-in may materialise scores even in forward (no autotune, no flash path for this
    // shape), so it is held to the buffer limit too.
    let may_materialise = materialises || method == Method::BurnBuiltin;
    (materialises && shape.score_bytes() * factor > MAX_MATERIALISED_BYTES
        || may_materialise && shape.score_bytes() > max_buffer)
        .then(|| format!("scores {} MiB", shape.score_bytes() >> 20))
}

fn is_cube(device: &Device) -> bool {
    crate::kernels::device::cube_device(device).is_some()
}

fn call(method: Method, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    match method {
        Method::Fused => fused_attention(q, k, v).0,
        Method::Reference => attention_reference(q, k, v),
        Method::BurnBuiltin => {
            burn_attention(q, k, v, None, None, AttentionModuleOptions::default())
        }
    }
}

/// One call of `method`, synchronised; returns nothing but leaves the work done.
fn step(device: &Device, mode: Mode, method: Method, q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>) {
    match mode {
        Mode::Forward => {
            let out = call(method, q.clone(), k.clone(), v.clone());
            // Keep the output alive until the device has finished.
            device.sync().expect("device sync");
            drop(out);
        }
        Mode::ForwardBackward => {
            let out = call(method, q.clone(), k.clone(), v.clone());
            let grads = out.sum().backward();
            let gq = q.grad(&grads);
            let gk = k.grad(&grads);
            let gv = v.grad(&grads);
            device.sync().expect("device sync");
            drop((gq, gk, gv, grads));
        }
    }
}

/// Mean milliseconds per call and the peak-memory bound of one call.
///
/// On wgpu the memory is measured on a [`fresh_wgpu_device`] (see [`measure_peak`]); timing
/// runs on `plain` after one warm-up call.
fn run_one(
    plain: &Device,
    shape: &BenchShape,
    mode: Mode,
    method: Method,
    iters: usize,
) -> (f64, Option<u64>) {
    let dims = [shape.batch, shape.heads, shape.seq, shape.head_dim];
    let with_mode = |device: &Device| match mode {
        Mode::Forward => device.clone(),
        Mode::ForwardBackward => device.clone().autodiff(),
    };
    let inputs = |device: &Device| {
        let make = || {
            let t = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), device);
            match mode {
                Mode::Forward => t,
                Mode::ForwardBackward => t.require_grad(),
            }
        };
        (make(), make(), make())
    };

    let peak = if fused_available(plain) {
        fresh_wgpu_device().and_then(|fresh| {
            let device = with_mode(&fresh);
            let (q, k, v) = inputs(&device);
            let peak = measure_peak(&device, || step(&device, mode, method, &q, &k, &v));
            drop((q, k, v));
            device.memory_cleanup();
            peak
        })
    } else {
        None
    };

    let device = with_mode(plain);
    let (q, k, v) = inputs(&device);
    // Warm-up: compiles kernels and fills the allocator's pools.
    step(&device, mode, method, &q, &k, &v);
    let start = Instant::now();
    for _ in 0..iters {
        step(&device, mode, method, &q, &k, &v);
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / iters as f64;
    drop((q, k, v));
    device.memory_cleanup();
    (ms, peak)
}

/// A new wgpu device on the default adapter with an allocator of its own (nothing else ever
/// allocated on it), for memory measurements that must not see other work's pages.
///
/// Returns `None` where no adapter or device can be created.
pub fn fresh_wgpu_device() -> Option<Device> {
    use burn::backend::wgpu::{RuntimeOptions, WgpuSetup, try_init_device, wgpu};
    use burn::cubecl::future::block_on;

    let instance = wgpu::Instance::default();
    let adapter =
        block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default())).ok()?;
    let (device, queue) = block_on(
        adapter.request_device(&wgpu::DeviceDescriptor {
            label: None,
            required_features: adapter
                .features()
                .difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
            required_limits: adapter.limits(),
            ..Default::default()
        }),
    )
    .ok()?;
    let backend = adapter.get_info().backend;
    let setup = WgpuSetup {
        instance,
        adapter,
        device,
        queue,
        backend,
    };
    let device = try_init_device(setup, RuntimeOptions::default()).ok()?;
    Some(Device::new(device))
}

/// Peak memory of `f`, in bytes, as an upper bound: `f` runs with every allocation given its
/// own exact-size device allocation (cubecl's dedicated mode, outside the pools, freed on
/// release), and the bound is the dedicated pool's high-water mark of live allocations times
/// its largest allocation. Scales like the true peak when the number of live buffers does
/// not change with the shape (true for one attention call). `None` for non-cubecl devices.
///
/// The dedicated pool's marks cover the device's whole life: use a [`fresh_wgpu_device`]
/// per measurement.
pub fn measure_peak(device: &Device, f: impl FnOnce() + Send) -> Option<u64> {
    use burn::cubecl::MemoryScope;

    let client = crate::kernels::device::cube_device(device)?.client();
    device.sync().ok()?;
    client.memory_dedicated_allocation((), |()| f());
    device.sync().ok()?;
    let report = client.memory_report(MemoryScope::Device);
    Some(
        report
            .streams
            .iter()
            .map(|s| s.pools.dedicated.pages_peak * s.pools.dedicated.largest_alloc)
            .sum(),
    )
}

fn fmt_bytes(bytes: Option<u64>) -> String {
    match bytes {
        None => "-".into(),
        Some(b) if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        Some(b) => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
    }
}

fn ratio(x: Option<f64>, base: Option<f64>) -> String {
    match (x, base) {
        (Some(x), Some(b)) if b > 0.0 => format!("{:.2}x", x / b),
        _ => "-".into(),
    }
}

/// Formats rows as a Markdown table; ratios are relative to the fused row of the same shape
/// and mode (time: > 1 means slower than fused; memory: > 1 means more than fused).
pub fn format_table(rows: &[BenchRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| shape | B×H×L×d | mode | method | ms | time/fused | peak mem (bound) | mem/fused |"
    );
    let _ = writeln!(s, "|---|---|---|---|---:|---:|---:|---:|");
    for row in rows {
        let fused = rows
            .iter()
            .find(|r| r.method == Method::Fused && r.mode == row.mode && r.shape == row.shape);
        let sh = &row.shape;
        let ms = match (&row.skipped, row.ms) {
            (Some(why), _) => format!("skipped ({why})"),
            (None, Some(ms)) => format!("{ms:.1}"),
            (None, None) => "-".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {}×{}×{}×{} | {} | {:?} | {} | {} | {} | {} |",
            sh.name,
            sh.batch,
            sh.heads,
            sh.seq,
            sh.head_dim,
            match row.mode {
                Mode::Forward => "fwd",
                Mode::ForwardBackward => "fwd+bwd",
            },
            row.method,
            ms,
            ratio(row.ms, fused.and_then(|f| f.ms)),
            fmt_bytes(row.peak_bytes),
            ratio(
                row.peak_bytes.map(|b| b as f64),
                fused.and_then(|f| f.peak_bytes).map(|b| b as f64)
            ),
        );
    }
    s
}

/// Prints `format_table` to stdout.
pub fn print_table(rows: &[BenchRow]) {
    print!("{}", format_table(rows));
}
