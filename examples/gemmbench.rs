//! Throughput of the `gemm` crate on the FFN's shapes (per sequence of the `small` preset's
//! frequency path, 690 sequences over rayon) at several column-block widths: the figure behind
//! `GEMM_COLS` in `src/model/host.rs`. `cargo run --example gemmbench`.
use rayon::prelude::*;
use std::time::Instant;
fn run(name: &str, m: usize, k: usize, n: usize, nb: usize, a_rs: usize) {
    let seqs = 690usize;
    let a = vec![0.5f32; (m + 8) * k.max(a_rs)];
    let w = vec![0.25f32; k * n];
    let t0 = Instant::now();
    (0..seqs).into_par_iter().for_each_init(
        || vec![0f32; m * n],
        |dst, _| unsafe {
            for j in (0..n).step_by(nb) {
                gemm::gemm(
                    m,
                    nb,
                    k,
                    dst.as_mut_ptr().add(j),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    a_rs as isize,
                    w.as_ptr().add(j),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        },
    );
    let s = t0.elapsed().as_secs_f64();
    let fl = 2.0 * (m * k * n * seqs) as f64;
    println!("{name}: {:.3} s, {:.1} GFLOP/s", s, fl / s / 1e9);
}
fn main() {
    run("conv nb32", 516, 192, 384, 32, 48);
    run("conv nb64", 516, 192, 384, 64, 48);
    run("conv nb24", 516, 192, 384, 24, 48);
    run("conv nb48 m258", 258, 192, 384, 48, 48);
    run("conv nb384 plain", 516, 192, 384, 384, 192);
    run("conv nb96 overlap", 516, 192, 384, 96, 48);
    run("conv nb48 overlap", 516, 192, 384, 48, 48);
    run("conv nb192 overlap", 516, 192, 384, 192, 48);
    run("deconv", 513, 768, 48, 48, 192);
}
