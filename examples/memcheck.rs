//! Planner prediction vs the wgpu allocator's reserved high-water mark for one inference
//! forward (fresh device per shape, after a warm-up on another device): the sum over pools of
//! `pages_peak × page size`. Page sizes follow the largest allocation, so the reading is
//! quantised in steps of tens of MiB at these shapes. `cargo run --example memcheck`.
use burn::tensor::{Distribution, Tensor};
use locosep::kernels::attention::bench::fresh_wgpu_device;
use locosep::memory::planner::{PlanRequest, plan};
use locosep::model::config::preset;
use locosep::model::loader::{from_state_dict, init_state_dict};
use locosep::model::network::ForwardOptions;

fn main() {
    for (name, secs, layers) in [
        ("demo", 1.0, 2),
        ("demo", 2.0, 2),
        ("demo", 1.0, 1),
        ("small", 0.5, 3),
    ] {
        let mut cfg = preset(name).unwrap().config;
        cfg.n_layers = layers;
        cfg.segment_seconds = secs;
        let dev = fresh_wgpu_device().unwrap();
        let net = from_state_dict(&cfg, &init_state_dict(&cfg, 1), &dev).unwrap();
        let n = (secs * 44100.0) as usize;
        let t = n / cfg.hop_length + 1;
        let f = cfg.n_fft / 2 + 1;
        let x = Tensor::<4>::random([1, 2, t, f], Distribution::Normal(0.0, 1.0), &dev);
        let opts = ForwardOptions {
            fused_attention: true,
            ..Default::default()
        };
        let _ = net.forward(x.clone(), opts).into_data(); // warm-up
        dev.sync().unwrap();
        let dev2 = fresh_wgpu_device().unwrap();
        let net2 = from_state_dict(&cfg, &init_state_dict(&cfg, 1), &dev2).unwrap();
        let x2 = Tensor::<4>::random([1, 2, t, f], Distribution::Normal(0.0, 1.0), &dev2);
        dev2.sync().unwrap();
        let _ = net2.forward(x2, opts).into_data();
        dev2.sync().unwrap();
        let report = locosep::kernels::attention::bench::memory_report(&dev2).unwrap();
        let mut reserved_peak = 0u64;
        for s in &report.streams {
            for p in s
                .pools
                .dynamic
                .iter()
                .chain([&s.pools.persistent, &s.pools.dedicated])
            {
                let size = match p.kind {
                    burn::cubecl::MemoryPoolKind::Sliced { page_size, .. } => {
                        page_size * p.pages_peak
                    }
                    burn::cubecl::MemoryPoolKind::Adaptive { page_size, .. } => {
                        page_size * p.pages_peak
                    }
                    _ => p.largest_alloc * p.pages_peak,
                };
                eprintln!(
                    "   pool {:?} pages_peak {} largest {}",
                    p.kind, p.pages_peak, p.largest_alloc
                );
                reserved_peak += size;
            }
        }
        let mut m = cfg.plan_model();
        m.segment_samples = n;
        let req = PlanRequest::new(&m);
        let p = plan(&m, &req);
        println!(
            "{name} {secs}s L{layers}: predicted {:.1} MiB, reserved-peak {:.1} MiB",
            p.peak_bytes as f64 / 1048576.0,
            reserved_peak as f64 / 1048576.0
        );
    }
}
