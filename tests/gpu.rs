//! The wgpu path against the CPU kernels (feature `wgpu`; in CI on Mesa's lavapipe).
#![cfg(feature = "wgpu")]

mod common;
use common::values;

use ferroconv::cpu::gemm::gemm_naive;
use ferroconv::gpu::Gpu;
use proptest::prelude::*;
use std::sync::OnceLock;

/// One device for all tests (opening one takes a while on lavapipe).
fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let g = Gpu::new()
            .expect("no GPU adapter: install Mesa's lavapipe (mesa-vulkan-drivers libvulkan1)");
        eprintln!("GPU: {}", g.adapter_name());
        g
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Tolerance: |gpu − cpu| ≤ 1e-5·k·(1 + |cpu|) (f32 sums in another order; values in [−1, 1)).
    #[test]
    fn gemm_matches_cpu(
        m in 1usize..150, k in 1usize..150, n in 1usize..150,
        ta in any::<bool>(), tb in any::<bool>(), accumulate in any::<bool>(), seed in any::<u64>(),
    ) {
        let a = values(seed, m * k);
        let b = values(seed ^ 1, k * n);
        let (rsa, csa) = if ta { (1, m) } else { (k, 1) };
        let (rsb, csb) = if tb { (1, k) } else { (n, 1) };
        let c0 = values(seed ^ 2, m * n);
        let (mut want, mut got) = (c0.clone(), c0);
        gemm_naive(m, k, n, &a, rsa, csa, &b, rsb, csb, &mut want, n, accumulate);
        gpu().gemm(m, k, n, &a, (rsa, csa), &b, (rsb, csb), &mut got, n, accumulate).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let tol = 1e-5 * k as f32 * (1.0 + w.abs());
            prop_assert!((g - w).abs() <= tol, "C[{}]: gpu {} cpu {} (m{} k{} n{})", i, g, w, m, k, n);
        }
    }
}

#[test]
fn gemm_rejects_short_operands() {
    let mut c = vec![0.0; 4];
    let err = gpu()
        .gemm(
            2,
            2,
            2,
            &[1.0; 3],
            (2, 1),
            &[1.0; 4],
            (2, 1),
            &mut c,
            2,
            false,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("A has 3 elements, needs 4"),
        "{err}"
    );
}
