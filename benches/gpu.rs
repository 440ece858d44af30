//! GEMM on the wgpu path: `cargo bench --features wgpu --bench gpu`.
//!
//! Prints `gemm/wgpu/n<size>: <x> GFLOP/s` per square size, the median of 5 calls; each
//! call includes uploading A, B and C and reading C back (the kernel alone is faster).

use ferroconv::gpu::Gpu;
use std::time::Instant;

fn main() {
    let gpu = Gpu::new().expect("no GPU adapter");
    println!("# adapter: {}", gpu.adapter_name());
    let sizes: &[usize] = if std::env::var_os("GEMM_BENCH_QUICK").is_some() {
        &[256, 512]
    } else {
        &[256, 512, 1024, 2048]
    };
    for &n in sizes {
        let a: Vec<f32> = (0..n * n).map(|i| (i % 97) as f32 * 0.01).collect();
        let b: Vec<f32> = (0..n * n).map(|i| (i % 89) as f32 * 0.01).collect();
        let mut c = vec![0.0f32; n * n];
        let mut times = Vec::new();
        for _ in 0..6 {
            let t = Instant::now();
            gpu.gemm(n, n, n, &a, (n, 1), &b, (n, 1), &mut c, n, false)
                .unwrap();
            times.push(t.elapsed().as_secs_f64());
        }
        times.remove(0); // warm-up
        times.sort_by(|x, y| x.total_cmp(y));
        let s = times[times.len() / 2];
        println!(
            "gemm/wgpu/n{n}: {:.2} GFLOP/s",
            2.0 * (n * n * n) as f64 / s / 1e9
        );
    }
}
