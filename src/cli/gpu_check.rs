//! `locosep bench gpu-check` (`make gpu-check`): the real-GPU check kit. One Markdown report of
//! the adapter and its limits; separation parity GPU vs CPU for every preset; one training
//! step's gradients GPU vs CPU for every parameter; the planner's predicted peak against the
//! allocator's measured in-use peak; separation and training throughput; the fused-attention
//! benchmark.
//!
//! On a hardware GPU every check runs at full size: each preset at its own segment, `balanced`
//! 10 s and `xlarge` 15 s inference for the memory table, the attention bench at 432 frames. On
//! a software adapter (lavapipe), or with `--small`, the shapes shrink (one block per preset,
//! quarter-second segments, a few frames of attention) so that the whole report takes minutes
//! on a CPU; the checks are the same. Weights are random (`init_state_dict`): parity, speed and
//! memory do not depend on them.
//!
//! The memory section runs in a child process (`bench gpu-check --part memory`): the allocator
//! probe must be installed before a process's first GPU use, and it slows every allocation,
//! so it stays out of the timed sections.
//!
//! Exit status: 0 when every parity and gradient check passes; an error (status 1) after the
//! full report when one fails, and before any work when wgpu finds no adapter.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use burn::optim::AdamWConfig;
use burn::tensor::Device;

use super::bench_common::{network_items, synthetic_stereo, training_example};
use super::bench_memory::{MemoryCase, MemoryRow, format_rows, measure, measure_max};
use crate::engine::Separator;
use crate::engine::device::{DeviceChoice, ResolvedDevice, resolve, wgpu_adapters};
use crate::kernels::attention::bench::{
    bench_attention, format_table, fresh_wgpu_device, preset_shapes,
};
use crate::memory::planner::{Calibration, MIB, Mode, format_bytes};
use crate::model::TfLocoformer;
use crate::model::config::{ModelConfig, builtin_presets, preset};
use crate::model::loader::{from_state_dict, init_state_dict};
use crate::train::loss::LossConfig;
use crate::train::step::{GradientComparison, StepKit, compare_gradients, named_gradients};

/// Relative tolerance of the gradient comparison (the lavapipe test's).
const GRADIENT_TOLERANCE: f32 = 1e-4;

/// The path cap of the memory table's inference cases (the separator's default).
const PATH_CAP: u64 = 256 * MIB;

/// Where the memory section starts in the child's report.
const MEMORY_HEADING: &str = "## Planner vs measured";

/// One part of the report (`--part`; the device section is always there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Separation parity GPU vs CPU per preset (and separation throughput).
    Parity,
    /// One training step's gradients GPU vs CPU (and training throughput).
    Gradients,
    /// The planner's predicted peak against the allocator's in-use peak.
    Memory,
    /// The fused-attention benchmark.
    Attention,
}

/// Every part, in report order.
pub const ALL_PARTS: [Part; 4] = [Part::Parity, Part::Gradients, Part::Memory, Part::Attention];

/// The shapes of one report: full (each preset as it is) or small (for software adapters).
#[derive(Debug, Clone)]
struct Sizes {
    small: bool,
    /// Why these sizes, for the report's header.
    why: String,
}

impl Sizes {
    /// `cfg` as the parity check runs it. Small: the preset's STFT, band split, channels and
    /// pipeline on one STFT window of audio, with one block of 16 channels, 2 heads and FFN
    /// hidden 32 (a full-width block takes minutes per preset on lavapipe).
    fn parity_config(&self, cfg: &ModelConfig) -> ModelConfig {
        let mut cfg = cfg.clone();
        if self.small {
            cfg.n_layers = 1;
            cfg.n_heads = 2;
            cfg.emb_dim = 16;
            cfg.attention_dim = 16;
            cfg.ffn_hidden_dim = vec![32; cfg.ffn_hidden_dim.len()];
            cfg.segment_seconds = cfg.n_fft as f64 / cfg.sample_rate as f64;
        }
        cfg
    }

    /// What the parity table's shapes are, for its introduction.
    fn parity_note(&self) -> &'static str {
        if self.small {
            "Small shapes: each preset's STFT, band split, channels and pipeline, with one block \
             of 16 channels, 2 heads and FFN hidden 32, on one STFT window of audio."
        } else {
            "Each preset as it is, on one segment of its own length."
        }
    }

    /// The model and segment of the gradient check: `small` at its 2 s segment (B·T·F =
    /// 2·345·513 past burn-wgpu's 2¹⁸-value reduction limit), or `demo` shrunk as for parity
    /// on a tenth of a second.
    fn gradient_config(&self) -> Result<ModelConfig> {
        if self.small {
            let mut cfg = self.parity_config(&preset("demo")?.config);
            cfg.segment_seconds = 0.1;
            Ok(cfg)
        } else {
            Ok(preset("small")?.config)
        }
    }

    /// The memory table's cases: `balanced` 10 s and `xlarge` 15 s inference (path sub-batches
    /// under the separator's cap: 256 MiB, or the device's largest allocation `limit` when
    /// smaller) and a checkpointed, offloaded training step; small: one block of each on half
    /// a second, and one block of `demo` on a tenth of a second.
    fn memory_cases(&self, limit: Option<u64>) -> Vec<MemoryCase> {
        let cap = PATH_CAP.min(limit.unwrap_or(PATH_CAP));
        let infer = |preset: &'static str, seconds: f64, layers: usize| MemoryCase {
            preset,
            seconds,
            layers,
            heads: None,
            n_fft: None,
            batch: 1,
            mode: Mode::Inference,
            chunk_bytes: Some(cap),
            offload: false,
        };
        let train = |preset: &'static str, seconds: f64, layers: usize| MemoryCase {
            mode: Mode::TrainingCheckpointed,
            chunk_bytes: None,
            offload: true,
            ..infer(preset, seconds, layers)
        };
        if self.small {
            vec![
                infer("balanced", 0.5, 1),
                infer("xlarge", 0.5, 1),
                train("demo", 0.1, 1),
            ]
        } else {
            vec![
                infer("balanced", 10.0, 8),
                infer("xlarge", 15.0, 12),
                train("balanced", 2.0, 8),
            ]
        }
    }

    /// Frames per attention call in the benchmark, and how many of the preset shapes it runs.
    fn attention(&self) -> (usize, usize) {
        if self.small {
            (4, 1)
        } else {
            (432, usize::MAX)
        }
    }
}

/// One preset's separation on both devices.
#[derive(Debug, Clone)]
struct ParityRow {
    preset: String,
    layers: usize,
    seconds: f64,
    outcome: Result<ParityNumbers, String>,
}

#[derive(Debug, Clone, Copy)]
struct ParityNumbers {
    max_diff: f32,
    max_ref: f32,
    /// First GPU forward (kernel compilation included), seconds.
    gpu_first: f64,
    /// Second GPU forward, seconds.
    gpu: f64,
    cpu: f64,
}

impl ParityNumbers {
    /// The fixture tolerance `1e-4 · max(1, max|ref|)`.
    fn tolerance(&self) -> f32 {
        1e-4 * self.max_ref.max(1.0)
    }

    fn passes(&self) -> bool {
        self.max_diff.is_finite() && self.max_diff <= self.tolerance()
    }
}

/// Runs `bench gpu-check`: the report on stdout (and atomically in `report` when given);
/// `small` forces the small shapes, which a software adapter gets anyway.
///
/// # Errors
/// No wgpu adapter; a failed parity or gradient check (after the report); the report file
/// cannot be written.
pub fn run(small: bool, parts: &[Part], report: Option<&Path>) -> Result<()> {
    let parts: Vec<Part> = if parts.is_empty() {
        ALL_PARTS.to_vec()
    } else {
        ALL_PARTS
            .into_iter()
            .filter(|p| parts.contains(p))
            .collect()
    };
    // Alone, the memory part runs here, so the probe goes in before any GPU use.
    let probe = if parts == [Part::Memory] {
        Some(crate::memory::probe::install()?)
    } else {
        None
    };
    // Not DeviceError's own text: its advice to run with `--device cpu` makes no sense here.
    let gpu = resolve(DeviceChoice::Gpu).map_err(|_| {
        anyhow!(
            "`bench gpu-check` compares the GPU with the CPU and needs a wgpu adapter, but wgpu \
             sees no Vulkan, Metal or DX12 device. Install your GPU's Vulkan driver (on Debian: \
             mesa-vulkan-drivers for AMD/Intel, the NVIDIA driver for NVIDIA)"
        )
    })?;
    let hardware = wgpu_adapters()
        .iter()
        .any(|(_, a)| a.hardware && gpu.description.contains(&a.name));
    let sizes = match (small, hardware) {
        (true, _) => Sizes {
            small: true,
            why: "small shapes (--small)".into(),
        },
        (false, false) => Sizes {
            small: true,
            why: "small shapes (a software adapter: full sizes need a hardware GPU)".into(),
        },
        (false, true) => Sizes {
            small: false,
            why: "full sizes (a hardware GPU)".into(),
        },
    };
    let mut text = String::new();
    let mut failures: Vec<String> = Vec::new();
    let _ = writeln!(text, "# locosep GPU check\n");
    let _ = writeln!(
        text,
        "locosep {} · {} · random weights\n",
        env!("CARGO_PKG_VERSION"),
        sizes.why
    );
    text += &device_section(&gpu);
    let mut throughput = Throughput::default();
    for part in &parts {
        match part {
            Part::Parity => {
                let rows = parity(&gpu, &sizes);
                for r in &rows {
                    match &r.outcome {
                        Ok(n) if n.passes() => {}
                        Ok(n) => failures.push(format!(
                            "parity {}: max |gpu−cpu| {:.3e} over the tolerance {:.3e}",
                            r.preset,
                            n.max_diff,
                            n.tolerance()
                        )),
                        Err(e) => failures.push(format!("parity {}: {e}", r.preset)),
                    }
                }
                text += &parity_section(&rows, &sizes);
                throughput.separation = rows;
            }
            Part::Gradients => match gradients(&gpu, &sizes) {
                Ok(g) => {
                    for (what, cmp) in &g.comparisons {
                        if !gradients_pass(cmp) {
                            failures.push(format!(
                                "gradients ({what}): {} differs by {:.3e} relative, {} tensor(s) \
                                 with a gradient on one device only",
                                cmp.worst, cmp.max_relative, cmp.missing
                            ));
                        }
                    }
                    text += &gradient_section(&g);
                    throughput.training = Some(g);
                }
                Err(e) => {
                    failures.push(format!("gradients: {e:#}"));
                    let _ = writeln!(
                        text,
                        "## Training gradients (GPU vs CPU)\n\nfailed: {e:#}\n"
                    );
                }
            },
            Part::Memory => {
                text += &match probe {
                    Some(probe) => memory_section(&sizes, probe),
                    None => memory_in_child(sizes.small),
                };
            }
            Part::Attention => {
                if !throughput.is_empty() {
                    text += &throughput.section();
                    throughput = Throughput::default();
                }
                text += &attention_section(&gpu, &sizes);
            }
        }
    }
    if !throughput.is_empty() {
        text += &throughput.section();
    }
    if parts.contains(&Part::Parity) || parts.contains(&Part::Gradients) {
        let _ = writeln!(text, "## Result\n");
        if failures.is_empty() {
            let _ = writeln!(
                text,
                "PASS: every parity and gradient check is within tolerance."
            );
        } else {
            let _ = writeln!(
                text,
                "FAIL: {} check(s) out of tolerance:\n",
                failures.len()
            );
            for f in &failures {
                let _ = writeln!(text, "- {f}");
            }
        }
    }
    print!("{text}");
    if let Some(path) = report {
        crate::audio::write_atomic(path, true, |f| {
            std::io::Write::write_all(f, text.as_bytes())
        })
        .with_context(|| format!("writing the report to {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    if !failures.is_empty() {
        bail!(
            "{} GPU check(s) failed: {}",
            failures.len(),
            failures.join("; ")
        );
    }
    Ok(())
}

/// The adapter, its limits and the CPU the comparisons run against.
fn device_section(gpu: &ResolvedDevice) -> String {
    use burn::backend::wgpu::wgpu;
    use burn::cubecl::future::block_on;
    let mut s = String::from("## Device\n\n| | |\n|---|---|\n");
    let _ = writeln!(s, "| GPU | {} |", gpu.description);
    let adapters = block_on(wgpu::Instance::default().enumerate_adapters(wgpu::Backends::all()));
    if let Some(a) = adapters
        .iter()
        .find(|a| gpu.description.contains(&a.get_info().name))
    {
        let (info, limits) = (a.get_info(), a.limits());
        let _ = writeln!(
            s,
            "| backend · type | {:?} · {:?} |",
            info.backend, info.device_type
        );
        let _ = writeln!(s, "| driver | {} {} |", info.driver, info.driver_info);
        let _ = writeln!(
            s,
            "| max buffer size | {} |",
            format_bytes(limits.max_buffer_size)
        );
        let _ = writeln!(
            s,
            "| max storage binding | {} |",
            format_bytes(limits.max_storage_buffer_binding_size as u64)
        );
    }
    if let Some(b) = crate::kernels::device::max_allocation_bytes(&gpu.device) {
        let _ = writeln!(
            s,
            "| largest allocation (cubecl page) | {} |",
            format_bytes(b)
        );
    }
    for w in &gpu.warnings {
        let _ = writeln!(s, "| warning | {w} |");
    }
    let cpu = resolve(DeviceChoice::Cpu).map(|c| c.description);
    let _ = writeln!(s, "| CPU reference | {} |\n", cpu.unwrap_or_default());
    s
}

/// Separates one synthetic segment with every preset on the GPU and on the CPU.
fn parity(gpu: &ResolvedDevice, sizes: &Sizes) -> Vec<ParityRow> {
    builtin_presets()
        .into_iter()
        .map(|p| {
            let cfg = sizes.parity_config(&p.config);
            eprintln!(
                "gpu-check: parity {} ({} block(s), {:.3} s)",
                p.name, cfg.n_layers, cfg.segment_seconds
            );
            let outcome = parity_one(&cfg, gpu).map_err(|e| format!("{e:#}"));
            if let Ok(n) = &outcome {
                eprintln!(
                    "gpu-check:   GPU {:.1} s first, {:.2} s then; CPU {:.2} s; max diff {:.2e}",
                    n.gpu_first, n.gpu, n.cpu, n.max_diff
                );
            }
            ParityRow {
                preset: p.name,
                layers: cfg.n_layers,
                seconds: cfg.segment_seconds,
                outcome,
            }
        })
        .collect()
}

fn parity_one(cfg: &ModelConfig, gpu: &ResolvedDevice) -> Result<ParityNumbers> {
    let n = cfg.segment_samples().max(cfg.n_fft);
    let items = network_items(cfg, &synthetic_stereo(n, cfg.sample_rate));
    let sd = init_state_dict(cfg, 0);
    let flat = |out: Vec<Vec<Vec<Vec<f32>>>>| -> Vec<f32> {
        out.into_iter().flatten().flatten().flatten().collect()
    };
    let sep = Separator::new(cfg.clone(), &sd, gpu.clone())?;
    let t0 = Instant::now();
    drop(sep.forward_waveforms(&items)?);
    let gpu_first = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let on_gpu = flat(sep.forward_waveforms(&items)?);
    let gpu_time = t0.elapsed().as_secs_f64();
    drop(sep);
    let sep = Separator::new(cfg.clone(), &sd, resolve(DeviceChoice::Cpu)?)?;
    let t0 = Instant::now();
    let on_cpu = flat(sep.forward_waveforms(&items)?);
    let cpu = t0.elapsed().as_secs_f64();
    if on_gpu.len() != on_cpu.len() {
        bail!(
            "the GPU gave {} output values, the CPU {}",
            on_gpu.len(),
            on_cpu.len()
        );
    }
    let max_ref = on_cpu.iter().fold(0f32, |m, v| m.max(v.abs()));
    // A non-finite value on either side is an infinite difference (f32::max drops NaN).
    let max_diff = on_gpu.iter().zip(&on_cpu).fold(0f32, |m, (a, b)| {
        let d = (a - b).abs();
        if d.is_finite() {
            m.max(d)
        } else {
            f32::INFINITY
        }
    });
    Ok(ParityNumbers {
        max_diff,
        max_ref,
        gpu_first,
        gpu: gpu_time,
        cpu,
    })
}

fn parity_section(rows: &[ParityRow], sizes: &Sizes) -> String {
    let mut s = format!(
        "## Separation parity (GPU vs CPU)\n\n\
         A synthetic stereo song per preset, STFT → network → iSTFT on each device (random \
         weights); tolerance 1e-4 · max(1, max |cpu|). {}\n\n\
         | preset | blocks | segment | max \\|gpu−cpu\\| | max \\|cpu\\| | tolerance | result |\n\
         |---|---:|---:|---:|---:|---:|---|\n",
        sizes.parity_note()
    );
    for r in rows {
        match &r.outcome {
            Ok(n) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.3} s | {:.3e} | {:.3e} | {:.3e} | {} |",
                    r.preset,
                    r.layers,
                    r.seconds,
                    n.max_diff,
                    n.max_ref,
                    n.tolerance(),
                    if n.passes() { "pass" } else { "FAIL" }
                );
            }
            Err(e) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.3} s | - | - | - | FAIL: {} |",
                    r.preset,
                    r.layers,
                    r.seconds,
                    e.replace('|', "/")
                );
            }
        }
    }
    s.push('\n');
    s
}

/// The gradient check's outcome and the training step times.
struct GradientCheck {
    /// The preset and its size, as the tables quote it: `` small` (3 block(s), 48 channels ``
    /// (inside a pair of backquotes and parentheses).
    model: String,
    seconds: f64,
    /// `[B, C, T, F]` of the network input.
    input: [usize; 4],
    /// ("plain" or "checkpointed", GPU vs CPU).
    comparisons: Vec<(&'static str, GradientComparison)>,
    /// (device description, one full step in seconds: forward, loss, backward, clip, AdamW).
    steps: Vec<(String, f64)>,
}

fn gradients_pass(c: &GradientComparison) -> bool {
    c.missing == 0 && c.compared > 0 && c.max_relative <= GRADIENT_TOLERANCE
}

/// One training step's gradients on both devices, plain and checkpointed, then one timed
/// step (with AdamW) on each.
fn gradients(gpu: &ResolvedDevice, sizes: &Sizes) -> Result<GradientCheck> {
    let cfg = sizes.gradient_config()?;
    eprintln!(
        "gpu-check: gradients {} ({} block(s), {} s)",
        cfg.name, cfg.n_layers, cfg.segment_seconds
    );
    let n = cfg.segment_samples().max(cfg.n_fft);
    let ex = [training_example(n, cfg.sample_rate)];
    let sd = init_state_dict(&cfg, 7);
    // Without the multi-resolution spectral term: |STFT| at near-silent bins is
    // ill-conditioned, so two correct backends differ there by more than 1e-4 (as in
    // `tests/training_gpu.rs`).
    let loss = LossConfig {
        spectral_weight: 0.0,
        ..Default::default()
    };
    let cpu = resolve(DeviceChoice::Cpu)?;
    let devices = [
        (cpu.description.clone(), Device::flex()),
        (gpu.description.clone(), gpu.device.clone()),
    ];
    let mut input = [0; 4];
    let mut per_mode = Vec::new();
    let mut steps = Vec::new();
    for checkpointing in [false, true] {
        let mut per_device = Vec::new();
        for (_, device) in &devices {
            let device = device.clone().autodiff();
            let model = from_state_dict(&cfg, &sd, &device)?;
            let kit = StepKit::new(
                &cfg,
                loss.clone(),
                checkpointing.then(Default::default),
                &device,
            )?;
            let (x, y, n) = kit.batch(&ex, &cfg, &device)?;
            input = x.dims();
            let step = kit.gradients(&model, x, y, n);
            per_device.push(named_gradients(&model, &step.grads));
        }
        let cmp = compare_gradients(&per_device[1], &per_device[0]);
        per_mode.push((
            if checkpointing {
                "checkpointed"
            } else {
                "plain"
            },
            cmp,
        ));
    }
    for (name, device) in &devices {
        let device = device.clone().autodiff();
        let model = from_state_dict(&cfg, &sd, &device)?;
        let kit = StepKit::new(&cfg, Default::default(), None, &device)?;
        let mut optim = AdamWConfig::new().init();
        let mut step = |model: TfLocoformer| -> Result<TfLocoformer> {
            let (x, y, n) = kit.batch(&ex, &cfg, &device)?;
            let mut micro = kit.gradients(&model, x, y, n);
            crate::train::clip::clip_global_norm(&model, &mut micro.grads, 5.0);
            let model = optim.step(1e-4, model, micro.grads);
            // The loss on the host: the step is complete when it is read.
            let _ = micro.loss.into_data();
            Ok(model)
        };
        // The comparison steps compiled the forward and backward kernels; at full size a
        // warm-up step also fills the allocator's pools before the timed one.
        let model = if sizes.small { model } else { step(model)? };
        let t0 = Instant::now();
        drop(step(model)?);
        steps.push((name.clone(), t0.elapsed().as_secs_f64()));
    }
    Ok(GradientCheck {
        model: format!(
            "{}` ({} block(s), {} channels",
            cfg.name, cfg.n_layers, cfg.emb_dim
        ),
        seconds: cfg.segment_seconds,
        input,
        comparisons: per_mode,
        steps,
    })
}

fn gradient_section(g: &GradientCheck) -> String {
    let [b, c, t, f] = g.input;
    let mut s = format!(
        "## Training gradients (GPU vs CPU)\n\n\
         One training step (forward, loss, backward) of `{}) on one {} s stereo segment, \
         input [{b}, {c}, {t}, {f}] (B·T·F = {}{}); every parameter's gradient compared, \
         relative to the tensor's largest magnitude; tolerance {GRADIENT_TOLERANCE:e}.\n\n\
         | backward | tensors | one side only | worst tensor | max relative | result |\n\
         |---|---:|---:|---|---:|---|\n",
        g.model,
        g.seconds,
        b * t * f,
        if b * t * f > 1 << 18 {
            ", past burn-wgpu's 2¹⁸-value reduction limit"
        } else {
            ""
        }
    );
    for (what, cmp) in &g.comparisons {
        let _ = writeln!(
            s,
            "| {what} | {} | {} | `{}` | {:.3e} | {} |",
            cmp.compared,
            cmp.missing,
            cmp.worst,
            cmp.max_relative,
            if gradients_pass(cmp) { "pass" } else { "FAIL" }
        );
    }
    s.push('\n');
    s
}

/// The memory table, run here (the probe is installed).
fn memory_section(sizes: &Sizes, probe: &crate::memory::probe::AllocatorProbe) -> String {
    let mut s = format!(
        "{MEMORY_HEADING}\n\n\
         The planner's predicted peak against the allocator's in-use peak (exact, from its \
         reports); dry runs allocate without executing kernels, real runs execute them.\n\n"
    );
    let limit = fresh_wgpu_device()
        .as_ref()
        .and_then(crate::kernels::device::max_allocation_bytes);
    let mut rows: Vec<MemoryRow> = Vec::new();
    let mut notes = Vec::new();
    for case in sizes.memory_cases(limit) {
        eprintln!("gpu-check: memory {}", case.label());
        let plan = match case.predict(Calibration::WGPU) {
            Ok(p) => p,
            Err(e) => {
                notes.push(format!("- {}: {e:#}", case.label()));
                continue;
            }
        };
        if let Some(limit) = limit.filter(|&l| plan.largest_allocation_bytes > l) {
            notes.push(format!(
                "- {}: skipped, its largest allocation ({}, {}) is over the device's {} limit",
                case.label(),
                format_bytes(plan.largest_allocation_bytes),
                plan.largest_allocation,
                format_bytes(limit)
            ));
            continue;
        }
        // Offloading reads block inputs back to the host: run it for real. The others:
        // the largest of 3 dry runs (as `bench memory`), and one real run on a hardware GPU.
        let runs: Vec<Result<MemoryRow>> = if case.offload {
            vec![measure(&case, probe, false)]
        } else if sizes.small {
            vec![measure_max(&case, probe, 3)]
        } else {
            vec![measure_max(&case, probe, 3), measure(&case, probe, false)]
        };
        for r in runs {
            match r {
                Ok(row) => rows.push(row),
                Err(e) => notes.push(format!("- {}: failed: {e:#}", case.label())),
            }
        }
    }
    s += &format_rows(&rows);
    if !notes.is_empty() {
        s.push('\n');
        s += &notes.join("\n");
        s.push('\n');
    }
    s.push('\n');
    s
}

/// The memory section from a child `bench gpu-check --part memory`, or a line saying why not.
fn memory_in_child(small: bool) -> String {
    let failed = |why: String| format!("{MEMORY_HEADING}\n\nnot measured: {why}\n\n");
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return failed(format!("cannot find the locosep executable: {e}")),
    };
    eprintln!("gpu-check: memory (in a child process with the allocator probe)");
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["bench", "gpu-check", "--part", "memory"]);
    if small {
        cmd.arg("--small");
    }
    let out = match cmd.stderr(std::process::Stdio::inherit()).output() {
        Ok(o) => o,
        Err(e) => return failed(format!("cannot start it: {e}")),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    match text.find(MEMORY_HEADING) {
        Some(at) if out.status.success() => text[at..].to_string(),
        _ => failed(format!("the child process ended with {}", out.status)),
    }
}

/// Seconds of computing per second of audio, from the parity and gradient runs.
#[derive(Default)]
struct Throughput {
    separation: Vec<ParityRow>,
    training: Option<GradientCheck>,
}

impl Throughput {
    fn is_empty(&self) -> bool {
        self.separation.is_empty() && self.training.is_none()
    }

    fn section(&self) -> String {
        let mut s = String::from(
            "## Throughput\n\nSeconds of computing per second of stereo audio (< 1 is faster \
             than real time).\n\n",
        );
        if !self.separation.is_empty() {
            s += "Separation (one segment; GPU: the second forward, the first compiles the \
                  kernels):\n\n\
                  | preset | segment | GPU first | GPU | GPU s/s | CPU | CPU s/s |\n\
                  |---|---:|---:|---:|---:|---:|---:|\n";
            for r in &self.separation {
                if let Ok(n) = &r.outcome {
                    let _ = writeln!(
                        s,
                        "| {} | {:.3} s | {:.2} s | {:.3} s | {:.3} | {:.3} s | {:.3} |",
                        r.preset,
                        r.seconds,
                        n.gpu_first,
                        n.gpu,
                        n.gpu / r.seconds,
                        n.cpu,
                        n.cpu / r.seconds
                    );
                }
            }
            s.push('\n');
        }
        if let Some(g) = &self.training {
            let _ = writeln!(
                s,
                "Training (`{}), one step of a {} s segment: forward, loss, backward, clip, \
                 AdamW; kernels compiled by the comparison steps):\n\n| device | step | s/s |\n|---|---:|---:|",
                g.model, g.seconds
            );
            for (device, t) in &g.steps {
                let _ = writeln!(s, "| {device} | {t:.3} s | {:.3} |", t / g.seconds);
            }
            s.push('\n');
        }
        s
    }
}

/// The fused-attention benchmark (`bench attention --frames F`) on the GPU.
fn attention_section(gpu: &ResolvedDevice, sizes: &Sizes) -> String {
    let (frames, count) = sizes.attention();
    eprintln!("gpu-check: attention bench ({frames} frames)");
    let shapes: Vec<_> = preset_shapes(frames).into_iter().take(count).collect();
    let rows = bench_attention(&gpu.device, &shapes, if sizes.small { 1 } else { 3 });
    format!(
        "## Fused attention (`bench attention --frames {frames}`)\n\n\
         Frequency-path shapes per preset; ms per call (device synchronised).\n\n{}\n",
        format_table(&rows)
    )
}
