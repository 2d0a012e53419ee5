//! Planner prediction vs the wgpu allocator's reserved high-water mark
//! ([`reserved_peak_bytes`]) for inference forwards and training steps of several shapes, each
//! on a fresh device after a warm-up on another (kernels compiled, no pages carried over).
//! `cargo run --example memcheck`; `tests/memory.rs` asserts the same comparison.
use burn::tensor::{Device, Distribution, Tensor};
use locosep::kernels::attention::bench::{fresh_wgpu_device, reserved_peak_bytes};
use locosep::memory::planner::{Mode, PlanRequest, plan};
use locosep::model::config::{ModelConfig, preset};
use locosep::model::loader::{from_state_dict, init_state_dict};
use locosep::model::network::ForwardOptions;

/// `CAP_MIB`: per-path sub-batch cap for both the network and the planner (none by default).
fn cap() -> Option<usize> {
    std::env::var("CAP_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map(|m| m << 20)
}

fn run(cfg: &ModelConfig, n: usize, train: bool, dev: &Device) {
    let dev = if train {
        dev.clone().autodiff()
    } else {
        dev.clone()
    };
    let net = from_state_dict(cfg, &init_state_dict(cfg, 1), &dev).unwrap();
    let t = n / cfg.hop_length + 1;
    let f = cfg.n_fft / 2 + 1;
    let x = Tensor::<4>::random([1, 2, t, f], Distribution::Normal(0.0, 1.0), &dev);
    let opts = ForwardOptions {
        fused_attention: true,
        max_chunk_bytes: cap(),
        ..Default::default()
    };
    if !train {
        let _ = net.forward(x, opts).into_data();
        return;
    }
    use burn::optim::{AdamWConfig, GradientsParams};
    let istft = locosep::train::spectral::DiffIstft::new(cfg.n_fft, cfg.hop_length, &dev);
    let loss_fn = locosep::train::loss::SeparationLoss::new(Default::default(), &dev);
    let y = Tensor::<3>::random([1, 4, n], Distribution::Normal(0.0, 0.1), &dev);
    let est = locosep::train::trainer::decode_output(net.forward(x, opts), &istft, n);
    let loss = loss_fn.forward(est, y).total;
    let grads = GradientsParams::from_grads(loss.backward(), &net);
    let mut optim = AdamWConfig::new().init();
    let net = optim.step(1e-3, net, grads);
    drop(net);
    dev.sync().unwrap();
}

fn main() {
    let only: Option<usize> = std::env::var("ONLY").ok().and_then(|v| v.parse().ok());
    for (i, (name, secs, layers, train)) in [
        ("demo", 2.0, 2, false),
        ("demo", 4.0, 2, false),
        ("small", 0.5, 3, false),
        ("small", 1.0, 3, false),
        ("demo", 0.25, 2, true),
        ("demo", 0.5, 2, true),
    ]
    .into_iter()
    .enumerate()
    {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let mut cfg = preset(name).unwrap().config;
        cfg.n_layers = layers;
        cfg.segment_seconds = secs;
        let n = (secs * 44100.0) as usize;
        run(&cfg, n, train, &fresh_wgpu_device().unwrap()); // warm-up: compiles kernels
        let dev = fresh_wgpu_device().unwrap();
        let t0 = std::time::Instant::now();
        run(&cfg, n, train, &dev);
        let measured = reserved_peak_bytes(&dev).unwrap();
        if std::env::var_os("POOLS").is_some() {
            let report = locosep::kernels::attention::bench::memory_report(&dev).unwrap();
            for st in &report.streams {
                for p in st
                    .pools
                    .dynamic
                    .iter()
                    .chain([&st.pools.persistent, &st.pools.dedicated])
                {
                    if p.pages_peak > 0 {
                        println!(
                            "  {:?} pages_peak {} largest {}",
                            p.kind, p.pages_peak, p.largest_alloc
                        );
                    }
                }
            }
        }
        let mut m = cfg.plan_model();
        m.segment_samples = n;
        let req = PlanRequest {
            mode: if train {
                Mode::Training
            } else {
                Mode::Inference
            },
            path_chunk_bytes: cap().map(|c| c as u64),
            ..PlanRequest::new(&m)
        };
        let p = plan(&m, &req);
        println!(
            "{name} {secs}s L{layers} {}: predicted {:.1} MiB, reserved peak {:.1} MiB, ratio {:.3} ({:.1} s)",
            if train { "train" } else { "infer" },
            p.peak_bytes as f64 / 1048576.0,
            measured as f64 / 1048576.0,
            measured as f64 / p.peak_bytes as f64,
            t0.elapsed().as_secs_f64()
        );
    }
}
