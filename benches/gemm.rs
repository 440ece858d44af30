//! GEMM throughput: `cargo bench --bench gemm` (set `GEMM_BENCH_QUICK=1` for a short run).
//!
//! Prints `gemm/<variant>/t<threads>/<shape>: <x> GFLOP/s (<y>% of peak)`, where the
//! peak is measured in the same run by a pure FMA loop (`peak/fma/t1`, `peak/fma/t2`).
//! Every number is the median of several timed repetitions. `GEMM_BENCH_FILTER=<text>`
//! runs only the lines whose name contains `<text>`.

mod common;
use common::*;

use ferroconv::cpu::gemm::{
    best_kernel_name, gemm, gemm_blocked, gemm_dot, gemm_naive, gemm_packed, gemm_packed_portable,
    gemm_parallel,
};
use std::hint::black_box;
use std::time::Duration;

type GemmFn =
    fn(usize, usize, usize, &[f32], usize, usize, &[f32], usize, usize, &mut [f32], usize, bool);

/// Pure FMA throughput loop: 12 independent `ymm` accumulator chains (more than the
/// 2 pipes × 4–5 cycles latency), distinct start values so nothing folds.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let x = _mm256_set1_ps(0.999_999);
    let y = _mm256_set1_ps(1e-7);
    let mut acc: [__m256; 12] = std::array::from_fn(|i| _mm256_set1_ps(i as f32 * 0.1 + 0.5));
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, x, y);
        }
    }
    let mut s = _mm256_setzero_ps();
    for v in acc {
        s = _mm256_add_ps(s, v);
    }
    let mut out = [0.0f32; 8];
    // SAFETY: `out` holds 8 floats.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
    out.iter().sum()
}

/// Measured FMA peak in GFLOP/s with `threads` threads running the loop concurrently.
#[cfg(target_arch = "x86_64")]
fn fma_peak(threads: usize) -> f64 {
    assert!(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"));
    const ITERS: usize = 20_000_000;
    let flops = (ITERS * 12 * 8 * 2 * threads) as f64;
    let secs = median_secs(5, Duration::from_millis(1), || {
        std::thread::scope(|s| {
            for _ in 0..threads {
                // SAFETY: AVX2 and FMA were checked above.
                s.spawn(|| black_box(unsafe { fma_loop(black_box(ITERS)) }));
            }
        });
    });
    flops / secs / 1e9
}

#[cfg(not(target_arch = "x86_64"))]
fn fma_peak(_threads: usize) -> f64 {
    f64::NAN
}

/// Matrices for one shape and layout: A (m×k) and B (k×n), each row-major or stored
/// transposed, and C (m×n) row-major.
struct Problem {
    m: usize,
    k: usize,
    n: usize,
    a: Vec<f32>,
    rsa: usize,
    csa: usize,
    b: Vec<f32>,
    rsb: usize,
    csb: usize,
    c: Vec<f32>,
}

impl Problem {
    fn new(m: usize, k: usize, n: usize, a_trans: bool, b_trans: bool) -> Self {
        let val = |i: usize| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5;
        let (rsa, csa) = if a_trans { (1, m) } else { (k, 1) };
        let (rsb, csb) = if b_trans { (1, k) } else { (n, 1) };
        Problem {
            m,
            k,
            n,
            a: (0..m * k).map(val).collect(),
            rsa,
            csa,
            b: (0..k * n).map(|i| val(i + 3)).collect(),
            rsb,
            csb,
            c: vec![0.0; m * n],
        }
    }

    fn run(&mut self, f: GemmFn) {
        let p = self;
        f(
            p.m, p.k, p.n, &p.a, p.rsa, p.csa, &p.b, p.rsb, p.csb, &mut p.c, p.n, false,
        );
    }

    fn run_matrixmultiply(&mut self) {
        let p = self;
        // SAFETY: the pointers and strides describe the in-bounds m×k, k×n and m×n views
        // of the three vectors.
        unsafe {
            matrixmultiply::sgemm(
                p.m,
                p.k,
                p.n,
                1.0,
                p.a.as_ptr(),
                p.rsa as isize,
                p.csa as isize,
                p.b.as_ptr(),
                p.rsb as isize,
                p.csb as isize,
                0.0,
                p.c.as_mut_ptr(),
                p.n as isize,
                1,
            )
        }
    }
}

struct Bench {
    peak: [f64; 2],
    reps: usize,
    target: Duration,
    pools: [rayon::ThreadPool; 2],
    /// Only lines whose name contains this (env `GEMM_BENCH_FILTER`).
    filter: Option<String>,
}

impl Bench {
    /// Times one variant on `threads` threads and prints its line.
    fn line(
        &self,
        variant: &str,
        threads: usize,
        tag: &str,
        p: &mut Problem,
        f: &(dyn Fn(&mut Problem) + Sync),
    ) {
        let name = format!("gemm/{variant}/t{threads}/{tag}");
        if !self
            .filter
            .as_ref()
            .is_none_or(|f| name.contains(f.as_str()))
        {
            return;
        }
        let flops = 2.0 * (p.m * p.k * p.n) as f64;
        let pool = &self.pools[threads - 1];
        let secs = pool.install(|| median_secs(self.reps, self.target, || f(p)));
        let gflops = flops / secs / 1e9;
        let pct = 100.0 * gflops / self.peak[threads - 1];
        println!("{name}: {gflops:.2} GFLOP/s ({pct:.1}% of peak)");
    }

    fn all(&self, tag: &str, p: &mut Problem, size: usize, small: bool) {
        if size <= 512 {
            self.line("naive", 1, tag, p, &|p| p.run(gemm_naive));
            self.line("blocked", 1, tag, p, &|p| p.run(gemm_blocked));
        }
        self.line("packed", 1, tag, p, &|p| p.run(gemm_packed));
        self.line("packed_portable", 1, tag, p, &|p| {
            p.run(gemm_packed_portable)
        });
        self.line("parallel", 2, tag, p, &|p| p.run(gemm_parallel));
        if small {
            // Dot products without packing (A·Bᵀ layouts; others fall back to packed).
            self.line("dot", 1, tag, p, &|p| p.run(gemm_dot));
            // The entry point (serial for these sizes) with a 2-thread pool available.
            self.line("gemm", 2, tag, p, &|p| p.run(gemm));
        }
        // matrixmultiply's `threading` feature needs the `thread-tree` crate, which is
        // not a dependency here: single-threaded only.
        self.line("matrixmultiply", 1, tag, p, &|p| p.run_matrixmultiply());
    }
}

fn main() {
    let quick = std::env::var("GEMM_BENCH_QUICK").is_ok_and(|v| v == "1");
    let peak = [fma_peak(1), fma_peak(2)];
    println!("# microkernel: {}", best_kernel_name());
    println!("peak/fma/t1: {:.2} GFLOP/s", peak[0]);
    println!("peak/fma/t2: {:.2} GFLOP/s", peak[1]);
    let pool = |t| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
    };
    let bench = Bench {
        peak,
        reps: if quick { 3 } else { 7 },
        target: Duration::from_millis(if quick { 30 } else { 100 }),
        pools: [pool(1), pool(2)],
        filter: std::env::var("GEMM_BENCH_FILTER").ok(),
    };

    // The tiny CNN's GEMMs at batch 4: forward, then the transposed backward forms.
    let cnn: &[(usize, usize, usize, bool, bool)] = &[
        (6, 75, 784, false, false),
        (16, 150, 100, false, false),
        (4, 400, 120, false, true),
        (4, 120, 84, false, true),
        (4, 84, 10, false, true),
        (6, 784, 75, false, true),
        (75, 6, 784, true, false),
        (16, 100, 150, false, true),
        (150, 16, 100, true, false),
        (120, 4, 400, true, false),
        (4, 10, 84, false, true),
    ];
    for &(m, k, n, at, bt) in cnn {
        let tag = format!(
            "m{m}k{k}n{n}{}{}",
            if at { "_At" } else { "" },
            if bt { "_Bt" } else { "" }
        );
        bench.all(&tag, &mut Problem::new(m, k, n, at, bt), 0, true);
    }

    let sizes: &[usize] = if quick {
        &[64, 256, 1024]
    } else {
        &[64, 128, 256, 512, 1024, 2048]
    };
    for &s in sizes {
        bench.all(
            &format!("n{s}"),
            &mut Problem::new(s, s, s, false, false),
            s,
            false,
        );
    }
}
