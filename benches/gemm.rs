//! GEMM throughput: `cargo bench --bench gemm` (set `GEMM_BENCH_QUICK=1` for a short run).
//!
//! Prints `gemm/<variant>/<isa>/t<threads>/<shape>: <x> GFLOP/s (<y>% of <isa'> peak)`,
//! one line per microkernel this CPU supports (`avx512f`, `avx2+fma`, `portable`; the
//! library's own choice is marked in the `# microkernel` line), where the peak is measured
//! in the same run by pure FMA loops on 256-bit and (when the CPU has AVX-512F) 512-bit
//! vectors (`peak/fma256/t1`, `peak/fma512/t2`, …); percentages are of the highest peak
//! measured, whose instruction set the line names. Every number is the median of several
//! timed repetitions. `GEMM_BENCH_FILTER=<text>` runs only the lines whose name contains
//! `<text>`; `GEMM_BENCH_TILES=1` adds a comparison of candidate AVX-512 tile shapes.

mod common;
use common::*;

use ferroconv::cpu::gemm::{
    Kernel, Variant, best_kernel_name, gemm_blocked, gemm_forced, gemm_naive,
};
use std::hint::black_box;
use std::time::Duration;

/// A GEMM with the library's signature, borrowing what it captures for `'a`.
type GemmDyn<'a> = dyn Fn(usize, usize, usize, &[f32], usize, usize, &[f32], usize, usize, &mut [f32], usize, bool)
    + 'a;

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

/// The same on 512-bit vectors: 16 independent `zmm` chains.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma512_loop(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let x = _mm512_set1_ps(0.999_999);
    let y = _mm512_set1_ps(1e-7);
    let mut acc: [__m512; 16] = std::array::from_fn(|i| _mm512_set1_ps(i as f32 * 0.1 + 0.5));
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, x, y);
        }
    }
    let mut s = _mm512_setzero_ps();
    for v in acc {
        s = _mm512_add_ps(s, v);
    }
    _mm512_reduce_add_ps(s)
}

/// Measured FMA peak in GFLOP/s of `width`-bit FMAs (256 or 512) with `threads` threads
/// running the loop concurrently; `None` if the CPU lacks the instructions.
#[cfg(target_arch = "x86_64")]
fn fma_peak(width: usize, threads: usize) -> Option<f64> {
    const ITERS: usize = 20_000_000;
    let (chains, lanes) = match width {
        256 if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") => (12, 8),
        512 if is_x86_feature_detected!("avx512f") => (16, 16),
        _ => return None,
    };
    let flops = (ITERS * chains * lanes * 2 * threads) as f64;
    let secs = median_secs(5, Duration::from_millis(1), || {
        std::thread::scope(|s| {
            for _ in 0..threads {
                // SAFETY: the instruction set of the loop was checked above.
                s.spawn(move || {
                    black_box(unsafe {
                        if width == 512 {
                            fma512_loop(black_box(ITERS))
                        } else {
                            fma_loop(black_box(ITERS))
                        }
                    })
                });
            }
        });
    });
    Some(flops / secs / 1e9)
}

#[cfg(not(target_arch = "x86_64"))]
fn fma_peak(_width: usize, _threads: usize) -> Option<f64> {
    None
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

    fn run(&mut self, f: &GemmDyn<'_>) {
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
    /// Highest measured FMA peak for 1 and 2 threads, and its instruction set.
    peak: [f64; 2],
    peak_isa: [&'static str; 2],
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
        println!(
            "{name}: {gflops:.2} GFLOP/s ({pct:.1}% of {} peak)",
            self.peak_isa[threads - 1]
        );
    }

    fn all(&self, tag: &str, p: &mut Problem, size: usize, small: bool) {
        if size <= 512 {
            self.line("naive/scalar", 1, tag, p, &|p| p.run(&gemm_naive));
            self.line("blocked/scalar", 1, tag, p, &|p| p.run(&gemm_blocked));
        }
        for kernel in Kernel::supported() {
            let isa = kernel.isa();
            let run = |v: Variant| {
                move |p: &mut Problem| {
                    p.run(&|m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, acc| {
                        gemm_forced(kernel, v, m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, acc)
                            .unwrap()
                    })
                }
            };
            self.line(&format!("packed/{isa}"), 1, tag, p, &run(Variant::Packed));
            if kernel != Kernel::Portable {
                self.line(
                    &format!("parallel/{isa}"),
                    2,
                    tag,
                    p,
                    &run(Variant::Parallel),
                );
            }
            if small {
                // Dot products without packing (A·Bᵀ layouts; others fall back to packed).
                self.line(&format!("dot/{isa}"), 1, tag, p, &run(Variant::Dot));
                // The entry point (serial for these sizes) with a 2-thread pool available.
                self.line(&format!("gemm/{isa}"), 2, tag, p, &run(Variant::Gemm));
            }
        }
        // matrixmultiply picks its own kernel at run time: AVX2+FMA here, as its AVX-512F
        // kernel needs its `avx512` feature, which the dev-dependency does not enable.
        // Its `threading` feature needs the `thread-tree` crate, which is not a
        // dependency here: single-threaded only.
        self.line("matrixmultiply/own", 1, tag, p, &|p| p.run_matrixmultiply());
    }
}

/// `GEMM_BENCH_TILES=1`: candidate AVX-512 tile shapes and depths on the packed driver,
/// one thread, at 1024³ and three ResNet-9 convolution GEMMs (forward `Cout × C·9 ×
/// N·H·W` for one 8-image group and the weight gradient's `A·Bᵀ`).
#[cfg(target_arch = "x86_64")]
fn tiles(bench: &Bench) {
    use ferroconv::cpu::gemm::{Avx2Fma, Avx512Tile, MicroKernel, gemm_packed_tile};
    fn one<K: MicroKernel>(bench: &Bench, kern: Option<K>) {
        let Some(kern) = kern else { return };
        let shapes = [
            (1024, 1024, 1024, false),
            (64, 576, 8192, false),
            (128, 1152, 2048, false),
            (128, 2048, 1152, true),
        ];
        for (m, k, n, bt) in shapes {
            let tag = format!("m{m}k{k}n{n}{}", if bt { "_Bt" } else { "" });
            let variant = format!("tile/{}_kc{}", kern.name().replace(' ', "_"), K::KC);
            bench.line(
                &variant,
                1,
                &tag,
                &mut Problem::new(m, k, n, false, bt),
                &|p| {
                    p.run(&|m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, acc| {
                        gemm_packed_tile(
                            kern, false, m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, acc,
                        )
                    })
                },
            );
        }
    }
    one(bench, Avx2Fma::detect());
    one(bench, Avx512Tile::<8, 3, 256>::detect());
    one(bench, Avx512Tile::<8, 3, 192>::detect());
    one(bench, Avx512Tile::<8, 3, 160>::detect());
    one(bench, Avx512Tile::<8, 3, 128>::detect());
    one(bench, Avx512Tile::<12, 2, 256>::detect());
    one(bench, Avx512Tile::<12, 2, 192>::detect());
    one(bench, Avx512Tile::<14, 2, 192>::detect());
    one(bench, Avx512Tile::<6, 4, 192>::detect());
}

#[cfg(not(target_arch = "x86_64"))]
fn tiles(_bench: &Bench) {}

fn main() {
    let quick = std::env::var("GEMM_BENCH_QUICK").is_ok_and(|v| v == "1");
    println!(
        "# microkernel: {} (selected: {}); kernels benched: {}",
        best_kernel_name(),
        Kernel::selected().isa(),
        Kernel::supported()
            .iter()
            .map(|k| k.isa())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut peak = [f64::NAN; 2];
    let mut peak_isa = ["no"; 2];
    for (width, isa) in [(256, "avx2+fma"), (512, "avx512f")] {
        for threads in [1, 2] {
            if let Some(p) = fma_peak(width, threads) {
                println!("peak/fma{width}/t{threads}: {p:.2} GFLOP/s");
                if peak[threads - 1].is_nan() || p > peak[threads - 1] {
                    peak[threads - 1] = p;
                    peak_isa[threads - 1] = isa;
                }
            }
        }
    }
    let pool = |t| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
    };
    let bench = Bench {
        peak,
        peak_isa,
        reps: if quick { 3 } else { 7 },
        target: Duration::from_millis(if quick { 30 } else { 100 }),
        pools: [pool(1), pool(2)],
        filter: std::env::var("GEMM_BENCH_FILTER").ok(),
    };

    if std::env::var("GEMM_BENCH_TILES").is_ok_and(|v| v == "1") {
        tiles(&bench);
        return;
    }

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
        (4, 84, 120, false, false),
        (4, 120, 400, false, false),
        // Small outputs with deep k (`A·Bᵀ`): first-layer weight gradients per image
        // (tfcnn 3→32 3×3 at 30×30, ResNet-9's 3→64 3×3 at 32×32, airbench's 3→24 2×2
        // stem at 31×31), and a dense layer's `x·Wᵀ` at batch 64 (tfcnn's 1024→64).
        (32, 900, 27, false, true),
        (64, 1024, 27, false, true),
        (24, 961, 12, false, true),
        (64, 1024, 64, false, true),
        (64, 64, 10, false, true),
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
