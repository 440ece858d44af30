//! Every GEMM variant goes through one harness and is compared with `gemm_naive`, on
//! every microkernel this CPU supports (portable always; AVX2+FMA and AVX-512F when
//! detected): the public variants use the selected kernel, the `…/<isa>` variants force
//! each kernel through `gemm_forced`. `kernels_tested` writes the list to stderr (outside
//! the test harness's capture) and checks it against the CPU's features.
//!
//! Tolerance: for each element, `|got − want| ≤ 2·(k+2)·ε·(Σ_p |a_ip·b_pj| + |c0_ij|) + 1e-30`
//! with `ε = f32::EPSILON`: the classic floating-point summation bound `γ_k·(|A|·|B|)`
//! (with slack 2 for the two differently-ordered computations being compared), scaled
//! by the magnitude of the terms, so it holds for any `k` and any cancellation.

use ferroconv::cpu::gemm::{
    Kernel, Variant, gemm, gemm_blocked, gemm_dot, gemm_dot_portable, gemm_forced, gemm_naive,
    gemm_packed, gemm_packed_portable, gemm_parallel,
};
use proptest::prelude::*;
use std::io::Write;

type GemmFn =
    fn(usize, usize, usize, &[f32], usize, usize, &[f32], usize, usize, &mut [f32], usize, bool);
type DynGemm = dyn Fn(usize, usize, usize, &[f32], usize, usize, &[f32], usize, usize, &mut [f32], usize, bool)
    + Sync;

const PUBLIC_VARIANTS: &[(&str, GemmFn)] = &[
    ("gemm", gemm),
    ("blocked", gemm_blocked),
    ("packed", gemm_packed),
    ("packed_portable", gemm_packed_portable),
    ("parallel", gemm_parallel),
    ("dot", gemm_dot),
    ("dot_portable", gemm_dot_portable),
];

/// `variant` forced onto `kernel` (which this CPU supports).
fn forced(kernel: Kernel, variant: Variant) -> Box<DynGemm> {
    Box::new(move |m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, acc| {
        gemm_forced(
            kernel, variant, m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, acc,
        )
        .expect("kernel listed as supported")
    })
}

/// The public variants, then every driver on every kernel this CPU supports.
fn variants() -> Vec<(String, Box<DynGemm>)> {
    let mut v: Vec<(String, Box<DynGemm>)> = PUBLIC_VARIANTS
        .iter()
        .map(|&(name, f)| (name.to_string(), Box::new(f) as Box<DynGemm>))
        .collect();
    for kernel in Kernel::supported() {
        for variant in [
            Variant::Gemm,
            Variant::Packed,
            Variant::Parallel,
            Variant::Dot,
        ] {
            let name = format!("{variant:?}/{}", kernel.isa()).to_lowercase();
            v.push((name, forced(kernel, variant)));
        }
    }
    v
}

/// Small deterministic generator (xorshift64*), values in [-1, 1).
fn fill(seed: u64, len: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let r = s.wrapping_mul(0x2545_F491_4F6C_DD1D);
            ((r >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// One test case: shapes, memory layouts (transposed or not, padded strides), flag.
#[derive(Clone, Debug)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    a_trans: bool,
    b_trans: bool,
    /// Extra elements added to the leading dimension of A, B and C.
    pad: (usize, usize, usize),
    accumulate: bool,
    seed: u64,
}

/// An operand in memory: data and (row stride, column stride) of the logical matrix.
struct Operand {
    data: Vec<f32>,
    rs: usize,
    cs: usize,
}

/// Lays out a `rows × cols` logical matrix row-major (or column-major when `trans`,
/// i.e. the matrix is the transpose of a stored row-major one), padded leading dimension.
fn operand(rows: usize, cols: usize, trans: bool, pad: usize, seed: u64) -> Operand {
    let (rs, cs, len) = if trans {
        let ld = rows + pad;
        (1, ld, cols * ld)
    } else {
        let ld = cols + pad;
        (ld, 1, rows * ld)
    };
    Operand {
        data: fill(seed, len),
        rs,
        cs,
    }
}

fn check(case: &Case, name: &str, f: &DynGemm) {
    let Case {
        m,
        k,
        n,
        a_trans,
        b_trans,
        pad,
        accumulate,
        seed,
    } = *case;
    let a = operand(m, k, a_trans, pad.0, seed);
    let b = operand(k, n, b_trans, pad.1, seed + 1);
    let rsc = n + pad.2;
    let c0 = fill(seed + 2, m * rsc);

    let mut want = c0.clone();
    gemm_naive(
        m, k, n, &a.data, a.rs, a.cs, &b.data, b.rs, b.cs, &mut want, rsc, accumulate,
    );
    // |A|·|B| for the error bound.
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    let mut mag = vec![0.0; m * rsc];
    gemm_naive(
        m,
        k,
        n,
        &abs(&a.data),
        a.rs,
        a.cs,
        &abs(&b.data),
        b.rs,
        b.cs,
        &mut mag,
        rsc,
        false,
    );

    let mut got = c0.clone();
    f(
        m, k, n, &a.data, a.rs, a.cs, &b.data, b.rs, b.cs, &mut got, rsc, accumulate,
    );
    for i in 0..m {
        for j in 0..rsc {
            let idx = i * rsc + j;
            if j >= n {
                // Padding columns of C must be untouched.
                assert_eq!(
                    got[idx].to_bits(),
                    c0[idx].to_bits(),
                    "{name}: wrote padding at ({i},{j}) {case:?}"
                );
                continue;
            }
            let scale = mag[idx] + if accumulate { c0[idx].abs() } else { 0.0 };
            let tol = 2.0 * (k as f32 + 2.0) * f32::EPSILON * scale + 1e-30;
            assert!(
                approx::abs_diff_eq!(got[idx], want[idx], epsilon = tol),
                "{name}: C[{i}][{j}] = {} want {} (tol {tol}) {case:?}",
                got[idx],
                want[idx]
            );
        }
    }
}

fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => Just(0usize),
        2 => Just(1usize),
        4 => 2usize..24,
        3 => 24usize..300,
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        dim(),
        dim(),
        dim(),
        any::<bool>(),
        any::<bool>(),
        (0usize..3, 0usize..3, 0usize..3),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_filter("keep each case under ~4M multiply-adds", |t| {
            t.0 * t.1 * t.2 <= 4_000_000
        })
        .prop_map(|(m, k, n, a_trans, b_trans, pad, accumulate, seed)| Case {
            m,
            k,
            n,
            a_trans,
            b_trans,
            pad,
            accumulate,
            seed,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn all_variants_match_naive(c in case()) {
        for (name, f) in &variants() {
            check(&c, name, f);
        }
    }
}

/// Hand-picked shapes: the CNN's GEMMs (forward and the transposed backward forms),
/// sizes straddling the block constants, degenerate dimensions.
#[test]
fn fixed_shapes() {
    let shapes: &[(usize, usize, usize, bool, bool)] = &[
        (6, 75, 784, false, false),
        (16, 150, 100, false, false),
        (4, 400, 120, false, false),
        (4, 120, 84, false, false),
        (4, 84, 10, false, false),
        (6, 784, 75, false, true),
        (75, 6, 784, true, false),
        (120, 4, 400, true, false),
        (16, 100, 150, false, true),
        (150, 16, 100, true, false),
        (0, 5, 7, false, false),
        (5, 0, 7, false, false),
        (5, 7, 0, false, false),
        (1, 1, 1, false, false),
        (73, 257, 33, true, true),
        (145, 513, 17, false, false),
        (7, 300, 4081, false, false),
        // resnet50 at batch 1: a 7×7 map (n = 49, a 1-column edge panel) and a short,
        // wide product split into two tall row blocks on two threads.
        (512, 300, 49, false, false),
        (64, 147, 1201, false, false),
        // Small outputs with a deep k in the A·Bᵀ layout (dot products up to 64×64):
        // first-layer weight gradients, a dense layer at batch 64, and row counts that
        // leave 1, 2 and 3 rows after the 4-row blocks.
        (32, 900, 27, false, true),
        (64, 1024, 64, false, true),
        (24, 961, 12, false, true),
        (37, 70, 50, false, true),
        (39, 65, 9, false, true),
        (65, 64, 64, false, true),
    ];
    for (s, &(m, k, n, a_trans, b_trans)) in shapes.iter().enumerate() {
        for accumulate in [false, true] {
            let case = Case {
                m,
                k,
                n,
                a_trans,
                b_trans,
                pad: (1, 0, 2),
                accumulate,
                seed: s as u64,
            };
            for (name, f) in &variants() {
                check(&case, name, f);
            }
        }
    }
}

/// `k = 0` without accumulate must write zeros; with accumulate leave C alone.
#[test]
fn k_zero() {
    for (name, f) in &variants() {
        let mut c = vec![3.0f32; 12];
        f(3, 0, 4, &[], 0, 0, &[], 0, 0, &mut c, 4, true);
        assert!(c.iter().all(|&x| x == 3.0), "{name}");
        f(3, 0, 4, &[], 0, 0, &[], 0, 0, &mut c, 4, false);
        assert!(c.iter().all(|&x| x == 0.0), "{name}");
    }
}

/// Runs `f` in a rayon pool of `threads` threads and returns C's bits.
fn bits_with_threads(threads: usize, f: &DynGemm, case: &Case) -> Vec<u32> {
    let Case {
        m,
        k,
        n,
        a_trans,
        b_trans,
        accumulate,
        seed,
        ..
    } = *case;
    let a = operand(m, k, a_trans, 0, seed);
    let b = operand(k, n, b_trans, 0, seed + 1);
    let mut c = fill(seed + 2, m * n);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        f(
            m, k, n, &a.data, a.rs, a.cs, &b.data, b.rs, b.cs, &mut c, n, accumulate,
        )
    });
    c.iter().map(|x| x.to_bits()).collect()
}

/// Determinism, per kernel: `gemm` (which switches serial/parallel by size) and
/// `gemm_parallel` give the same bits with 1, 2 and 3 threads, and the same bits as the
/// serial `gemm_packed` on the same kernel.
#[test]
fn deterministic_across_thread_counts() {
    for kernel in Kernel::supported() {
        deterministic_on(kernel);
    }
    // The public entry points on the selected kernel as well.
    let (packed, gemm_f, parallel): (&DynGemm, &DynGemm, &DynGemm) =
        (&gemm_packed, &gemm, &gemm_parallel);
    let case = Case {
        m: 150,
        k: 300,
        n: 200,
        a_trans: false,
        b_trans: false,
        pad: (0, 0, 0),
        accumulate: true,
        seed: 3,
    };
    let reference = bits_with_threads(1, packed, &case);
    for f in [gemm_f, parallel] {
        for threads in [1, 2, 3] {
            assert_eq!(
                bits_with_threads(threads, f, &case),
                reference,
                "t{threads}"
            );
        }
    }
}

fn deterministic_on(kernel: Kernel) {
    let isa = kernel.isa();
    let shapes = [
        (300, 520, 333),
        (13, 700, 290),
        (200, 40, 5000),
        (6, 75, 784),
        (97, 1, 64),
        // B too large to pack whole (`k · n` > 3·2²⁰): the parallel driver's per-block path.
        (40, 1200, 2700),
    ];
    for (s, &(m, k, n)) in shapes.iter().enumerate() {
        for (a_trans, b_trans) in [(false, false), (true, true)] {
            let case = Case {
                m,
                k,
                n,
                a_trans,
                b_trans,
                pad: (0, 0, 0),
                accumulate: s % 2 == 0,
                seed: 7 + s as u64,
            };
            let reference = bits_with_threads(1, &*forced(kernel, Variant::Packed), &case);
            for variant in [Variant::Gemm, Variant::Parallel] {
                let f = forced(kernel, variant);
                for threads in [1, 2, 3] {
                    assert_eq!(
                        bits_with_threads(threads, &*f, &case),
                        reference,
                        "{isa} {variant:?} {m}x{k}x{n} t{threads}"
                    );
                }
            }
        }
    }
}

/// The dot-product path (`A·Bᵀ` with a small C) splits large products by rows over the
/// pool: the same bits with 1, 2 and 3 threads as `gemm_dot` on one thread.
#[test]
fn dot_products_deterministic_across_thread_counts() {
    for kernel in Kernel::supported() {
        for (s, &(m, k, n)) in [(32, 5000, 27), (61, 1500, 64), (9, 40000, 13)]
            .iter()
            .enumerate()
        {
            let case = Case {
                m,
                k,
                n,
                a_trans: false,
                b_trans: true,
                pad: (0, 0, 0),
                accumulate: s % 2 == 1,
                seed: 40 + s as u64,
            };
            let reference = bits_with_threads(1, &*forced(kernel, Variant::Dot), &case);
            for threads in [1, 2, 3] {
                let got = bits_with_threads(threads, &*forced(kernel, Variant::Gemm), &case);
                assert_eq!(got, reference, "{} {m}x{k}x{n} t{threads}", kernel.isa());
            }
        }
    }
}

/// `gemm` called from inside a rayon parallel loop (as the engine does per sample) works
/// and gives the same bits as a plain call.
#[test]
fn nested_in_rayon() {
    use rayon::prelude::*;
    let (m, k, n) = (150, 300, 200);
    let a = fill(1, m * k);
    let b = fill(2, k * n);
    let mut expect = vec![0.0; m * n];
    gemm_packed(m, k, n, &a, k, 1, &b, n, 1, &mut expect, n, false);
    let outs: Vec<Vec<f32>> = (0..8)
        .into_par_iter()
        .map(|_| {
            let mut c = vec![0.0; m * n];
            gemm(m, k, n, &a, k, 1, &b, n, 1, &mut c, n, false);
            c
        })
        .collect();
    for c in outs {
        assert!(
            c.iter()
                .zip(&expect)
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
    }
}

/// The kernels the harness runs are exactly those the CPU reports: portable always,
/// AVX2+FMA and AVX-512F when detected. Writes the list straight to stderr (not through
/// `eprintln!`, which the harness captures) so every `cargo test` run shows it.
#[test]
fn kernels_tested() {
    let supported = Kernel::supported();
    let names: Vec<String> = supported
        .iter()
        .map(|k| {
            format!(
                "{} ({})",
                k.isa(),
                k.name().expect("supported kernel has a name")
            )
        })
        .collect();
    let line = format!("gemm kernels tested: {}\n", names.join(", "));
    std::io::stderr().write_all(line.as_bytes()).unwrap();
    assert!(supported.contains(&Kernel::Portable), "{line}");
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        let avx512 = avx2 && is_x86_feature_detected!("avx512f");
        assert_eq!(supported.contains(&Kernel::Avx2), avx2, "{line}");
        assert_eq!(supported.contains(&Kernel::Avx512), avx512, "{line}");
    }
    for k in Kernel::ALL {
        let mut c = [0.0f32; 1];
        let r = gemm_forced(
            k,
            Variant::Packed,
            1,
            1,
            1,
            &[2.0],
            1,
            1,
            &[3.0],
            1,
            1,
            &mut c,
            1,
            false,
        );
        if supported.contains(&k) {
            assert_eq!((r, c[0]), (Ok(()), 6.0), "{}", k.isa());
        } else {
            assert!(r.is_err(), "{} ran on a CPU without it", k.isa());
        }
    }
}

/// `FERROCONV_GEMM_KERNEL` values: the ISA names and short forms parse, others are errors.
#[test]
fn kernel_names_parse() {
    for k in Kernel::ALL {
        assert_eq!(Kernel::parse(k.isa()), Ok(k));
    }
    assert_eq!(Kernel::parse("AVX512"), Ok(Kernel::Avx512));
    assert_eq!(Kernel::parse("avx2"), Ok(Kernel::Avx2));
    assert!(Kernel::parse("sse9").is_err());
}

/// Child half of `env_override_selects_kernel`: with `GEMM_TEST_EXPECT` set, the selected
/// kernel must be that one; without it, the fastest supported one.
#[test]
fn selected_kernel() {
    let want = match std::env::var("GEMM_TEST_EXPECT") {
        Ok(isa) => Kernel::parse(&isa).unwrap(),
        Err(_) => match std::env::var("FERROCONV_GEMM_KERNEL") {
            // A user override of a supported kernel is honoured.
            Ok(v) if Kernel::parse(&v).is_ok_and(|k| Kernel::supported().contains(&k)) => {
                Kernel::parse(&v).unwrap()
            }
            _ => Kernel::supported()[0],
        },
    };
    assert_eq!(Kernel::selected(), want);
}

/// Runs `selected_kernel` in a child process per supported kernel with
/// `FERROCONV_GEMM_KERNEL` set, and once with a bogus value (falls back to the fastest).
#[test]
fn env_override_selects_kernel() {
    let exe = std::env::current_exe().unwrap();
    let mut cases: Vec<(String, Kernel)> = Kernel::supported()
        .into_iter()
        .map(|k| (k.isa().to_string(), k))
        .collect();
    cases.push(("no-such-isa".into(), Kernel::supported()[0]));
    for (value, want) in cases {
        let out = std::process::Command::new(&exe)
            .args(["--exact", "selected_kernel", "--test-threads=1"])
            .env("FERROCONV_GEMM_KERNEL", &value)
            .env("GEMM_TEST_EXPECT", want.isa())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "FERROCONV_GEMM_KERNEL={value}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
