//! Fast kernels against their naive references, on random shapes.

mod common;
use common::values;

use ferroconv::cpu::gemm::PanelSource;
use ferroconv::cpu::im2col::{
    ConvGeometry, Im2colPanels, col2im, col2im_naive, col2im_portable, im2col, im2col_naive,
    im2col_portable,
};
use ferroconv::cpu::pool::{
    maxpool_eval, maxpool_forward, maxpool_forward_naive, maxpool_forward_padded, pooled,
    pooled_padded,
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Both builds (AVX-512F where the CPU has it, and the portable one) against the
    /// references, bit for bit; widths up to 44 so rows hold several 16-float vectors.
    #[test]
    fn im2col_and_col2im_match_reference(
        c in 1usize..4, k in 1usize..6, stride in 1usize..4, pad in 0usize..4,
        extra_h in 0usize..9, extra_w in 0usize..40, seed in any::<u64>(), gap in 0usize..40,
    ) {
        let g = ConvGeometry {
            channels: c, height: k + extra_h, width: k + extra_w,
            kernel_h: k, kernel_w: k, stride, padding: pad,
        };
        let x = values(seed, g.input_len());
        // Row stride ld = P + gap: the image's block inside a wider group matrix.
        let ld = g.col_cols() + gap;
        let n = g.col_rows() * ld;
        let mut slow = vec![f32::NAN; n];
        im2col_naive(&g, &x, &mut slow, ld);
        // Bit patterns, so that the untouched NaN gaps compare equal.
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        let dcol = values(seed ^ 1, n);
        let mut dx_slow = vec![f32::NAN; x.len()];
        col2im_naive(&g, &dcol, ld, &mut dx_slow);
        type Im2col = fn(&ConvGeometry, &[f32], &mut [f32], usize);
        type Col2im = fn(&ConvGeometry, &[f32], usize, &mut [f32]);
        let builds: [(Im2col, Col2im); 2] = [(im2col, col2im), (im2col_portable, col2im_portable)];
        for (i2c, c2i) in builds {
            let mut fast = vec![f32::NAN; n];
            i2c(&g, &x, &mut fast, ld);
            prop_assert_eq!(bits(&fast), bits(&slow));
            let mut dx_fast = vec![f32::NAN; x.len()];
            c2i(&g, &dcol, ld, &mut dx_fast);
            prop_assert_eq!(&dx_fast, &dx_slow);
        }
    }

    /// The micropanels im2col makes for the GEMM are windows of the reference column
    /// matrix of the whole group, zero-padded to the panel width.
    #[test]
    fn im2col_panels_match_reference(
        c in 1usize..4, k in 1usize..6, stride in 1usize..4, pad in 0usize..4,
        extra_h in 0usize..9, extra_w in 0usize..9, images in 1usize..4, seed in any::<u64>(),
        (r0, c0, nr) in (0usize..1000, 0usize..1000, prop_oneof![Just(8usize), Just(16), Just(48)]),
    ) {
        let g = ConvGeometry {
            channels: c, height: k + extra_h, width: k + extra_w,
            kernel_h: k, kernel_w: k, stride, padding: pad,
        };
        let x = values(seed, images * g.input_len());
        let (rows, p) = (g.col_rows(), g.col_cols());
        let ld = images * p;
        let mut full = vec![f32::NAN; rows * ld];
        for j in 0..images {
            im2col_naive(&g, &x[j * g.input_len()..], &mut full[j * p..], ld);
        }
        let (p0, col0) = (r0 % rows, c0 % ld);
        let (kc, cols) = ((rows - p0).min(1 + r0 % 7), (ld - col0).min(nr).min(1 + c0 % nr));
        let mut out = vec![f32::NAN; kc * nr];
        Im2colPanels { geom: g, x: &x }.fill(p0, kc, col0, cols, nr, &mut out);
        for q in 0..kc {
            for j in 0..nr {
                let want = if j < cols { full[(p0 + q) * ld + col0 + j] } else { 0.0 };
                prop_assert_eq!(out[q * nr + j].to_bits(), want.to_bits(), "row {} col {}", q, j);
            }
        }
    }

    #[test]
    fn maxpool_matches_reference(
        planes in 1usize..5, k in 1usize..4, stride in 1usize..4,
        extra_h in 0usize..9, extra_w in 0usize..9, seed in any::<u64>(), nan_at in any::<Option<u16>>(),
    ) {
        let (h, w) = (k + extra_h, k + extra_w);
        let mut x = values(seed, planes * h * w);
        if let Some(i) = nan_at {
            let len = x.len();
            x[i as usize % len] = f32::NAN;
        }
        let out = planes * pooled(h, k, stride) * pooled(w, k, stride);
        let (mut y1, mut y2) = (vec![0.0; out], vec![0.0; out]);
        let (mut a1, mut a2) = (vec![0u32; out], vec![0u32; out]);
        maxpool_forward(&x, planes, (h, w), k, stride, &mut y1, &mut a1);
        maxpool_forward_naive(&x, planes, (h, w), k, stride, &mut y2, &mut a2);
        prop_assert_eq!(a1, a2);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&y1), bits(&y2));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The inference max-pool gives the training kernel's values (padding, `ceil_mode`,
    /// ties, NaNs), compared by value so that a `0.0`/`-0.0` tie may differ in sign.
    #[test]
    fn maxpool_eval_matches_training_kernel(
        planes in 1usize..4, k in 1usize..5, stride in 1usize..4, pad_frac in 0usize..3,
        ceil in any::<bool>(), extra_h in 0usize..10, extra_w in 0usize..10,
        seed in any::<u64>(), nans in proptest::collection::vec(any::<u16>(), 0..3),
    ) {
        let pad = (k / 2).min(pad_frac);
        let (h, w) = (k + extra_h, k + extra_w);
        // Few distinct values, so ties are common.
        let mut x: Vec<f32> =
            values(seed, planes * h * w).iter().map(|v| (v * 3.0).round()).collect();
        let len = x.len();
        for i in nans {
            x[i as usize % len] = f32::NAN;
        }
        let (oh, ow) = (pooled_padded(h, k, stride, pad, ceil), pooled_padded(w, k, stride, pad, ceil));
        let out = planes * oh * ow;
        let (mut y1, mut y2, mut arg) = (vec![0.0; out], vec![1.0; out], vec![0u32; out]);
        maxpool_forward_padded(&x, planes, (h, w), k, stride, pad, (oh, ow), &mut y1, &mut arg);
        maxpool_eval(&x, planes, (h, w), k, stride, pad, (oh, ow), &mut y2);
        for (i, (a, b)) in y1.iter().zip(&y2).enumerate() {
            prop_assert!(a == b || (a.is_nan() && b.is_nan()), "output {}: {} vs {}", i, a, b);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn maxpool_2x2_matches_reference(
        planes in 1usize..4, h in 2usize..12, w in 2usize..12, seed in any::<u64>(),
        nans in proptest::collection::vec(any::<u16>(), 0..3),
    ) {
        // Few distinct values, so ties are common.
        let mut x: Vec<f32> = values(seed, planes * h * w).iter().map(|v| (v * 3.0).round()).collect();
        let len = x.len();
        for i in nans {
            x[i as usize % len] = f32::NAN;
        }
        let out = planes * (h / 2) * (w / 2);
        let (mut y1, mut y2) = (vec![0.0; out], vec![0.0; out]);
        let (mut a1, mut a2) = (vec![0u32; out], vec![0u32; out]);
        maxpool_forward(&x, planes, (h, w), 2, 2, &mut y1, &mut a1);
        maxpool_forward_naive(&x, planes, (h, w), 2, 2, &mut y2, &mut a2);
        prop_assert_eq!(a1, a2);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&y1), bits(&y2));
    }
}

/// Direct convolution in f64: `(y, dW, db, dx)` for input `x[N,C,H,W]`, weights
/// `w[Co,C,K,K]`, bias `b`, upstream gradient `dy[N,Co,OH,OW]`, stride 1, padding `pad`.
#[allow(clippy::too_many_arguments)]
fn conv_reference(
    (n, c, h, wd): (usize, usize, usize, usize),
    co: usize,
    k: usize,
    pad: usize,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    dy: &[f32],
) -> [Vec<f64>; 4] {
    let (oh, ow) = (h + 2 * pad - k + 1, wd + 2 * pad - k + 1);
    let mut y = vec![0.0f64; n * co * oh * ow];
    let mut dw = vec![0.0f64; w.len()];
    let mut db = vec![0.0f64; co];
    let mut dx = vec![0.0f64; x.len()];
    for i in 0..n {
        for o in 0..co {
            for r in 0..oh {
                for s in 0..ow {
                    let yi = ((i * co + o) * oh + r) * ow + s;
                    let g = dy[yi] as f64;
                    let mut acc = b[o] as f64;
                    db[o] += g;
                    for ci in 0..c {
                        for kh in 0..k {
                            for kw in 0..k {
                                let (ih, iw) = (
                                    (r + kh) as isize - pad as isize,
                                    (s + kw) as isize - pad as isize,
                                );
                                if ih < 0 || iw < 0 || ih as usize >= h || iw as usize >= wd {
                                    continue;
                                }
                                let xi = ((i * c + ci) * h + ih as usize) * wd + iw as usize;
                                let wi = ((o * c + ci) * k + kh) * k + kw;
                                acc += w[wi] as f64 * x[xi] as f64;
                                dw[wi] += g * x[xi] as f64;
                                dx[xi] += g * w[wi] as f64;
                            }
                        }
                    }
                    y[yi] = acc;
                }
            }
        }
    }
    [y, dw, db, dx]
}

/// The grouped, task-parallel and recomputing paths of `Conv2d` (a batch large enough for
/// several backward tasks, small images so groups hold several images) against a direct
/// f64 convolution, and bit-identical whatever the thread count and column budget.
#[test]
fn conv2d_grouped_paths_match_reference_and_each_other() {
    use ferroconv::Tensor;
    use ferroconv::layers::{Conv2d, Layer, Mode, ParamKind};
    let (n, c, h, w, co, k, pad) = (48, 8, 6, 6, 64, 3, 1);
    let x = values(1, n * c * h * w);
    let dy = values(2, n * co * h * w);
    let run = |threads: usize, keep_max: usize| -> [Vec<f32>; 4] {
        common::on_threads(threads, || {
            let mut layer = Conv2d::new(c, co, k).padding(pad).keep_cols_max(keep_max);
            layer
                .init(&mut <rand::rngs::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(0))
                .unwrap();
            let (mut wv, mut bv) = (Vec::new(), Vec::new());
            let mut prefix = String::new();
            layer.visit_params(&mut prefix, &mut |_, p| {
                let v = values(3 + p.value.len() as u64, p.value.len());
                p.value.copy_from_slice(&v);
                match p.kind {
                    ParamKind::Bias => bv = v,
                    _ => wv = v,
                }
            });
            let xt = Tensor::from_vec(&[n, c, h, w], x.clone()).unwrap();
            let y = layer.forward(&xt, Mode::Train).data().to_vec();
            let dyt = Tensor::from_vec(&[n, co, h, w], dy.clone()).unwrap();
            let dx = layer.backward(&dyt, true).data().to_vec();
            let (mut dw, mut db) = (Vec::new(), Vec::new());
            layer.visit_params(&mut prefix, &mut |_, p| match p.kind {
                ParamKind::Bias => db = p.grad.to_vec(),
                _ => dw = p.grad.to_vec(),
            });
            let want = conv_reference((n, c, h, w), co, k, pad, &x, &wv, &bv, &dy);
            for (what, got, want) in [
                ("y", &y, &want[0]),
                ("dW", &dw, &want[1]),
                ("db", &db, &want[2]),
                ("dx", &dx, &want[3]),
            ] {
                for (g, e) in got.iter().zip(want) {
                    assert!(
                        (*g as f64 - e).abs() <= 1e-3 * (1.0 + e.abs()),
                        "{what}: {g} vs {e}"
                    );
                }
            }
            [y, dw, db, dx]
        })
    };
    let bits = |r: &[Vec<f32>; 4]| {
        r.iter()
            .map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    let first = bits(&run(1, usize::MAX));
    for (threads, keep_max) in [(2, usize::MAX), (3, usize::MAX), (1, 0), (2, 0), (3, 0)] {
        assert_eq!(
            bits(&run(threads, keep_max)),
            first,
            "{threads} threads, keep_cols_max {keep_max}"
        );
    }
}

/// `Conv2d` on im2col in evaluation mode — the weights packed once, the columns stored or
/// (large ones) made by the GEMM's packing, a 1×1 window reading its input as it is — gives training mode's
/// output bit for bit: one image per group and several, 1×1 at stride 1 and 2, the
/// 7×7 stride-2 stem's shape (at 224×224 too), few output channels (the GEMM's dot path) and many, a
/// folded ReLU, one and two threads.
#[test]
fn conv2d_evaluation_matches_training_bit_for_bit() {
    use ferroconv::Tensor;
    use ferroconv::layers::{Conv2d, ConvAlgo, Layer, Mode};
    // (batch, cin, side, cout, kernel, stride, pad)
    let cases = [
        (1, 8, 20, 40, 3, 1, 1),
        (5, 8, 6, 40, 3, 1, 1),
        (1, 16, 20, 40, 1, 1, 0),
        (5, 16, 6, 40, 1, 1, 0),
        (3, 16, 12, 24, 1, 2, 0),
        (2, 3, 30, 16, 7, 2, 3),
        (2, 8, 9, 6, 3, 2, 1),
        // Column matrices of 2¹⁷ floats or more (groups of one image), which evaluation
        // makes panel by panel: one image, three, and the stem's shape.
        (1, 16, 40, 40, 3, 1, 1),
        (3, 16, 40, 40, 3, 1, 1),
        (2, 3, 64, 16, 7, 2, 3),
        // resnet50's stem on one 224×224 image: a made B of 147×12544 floats.
        (1, 3, 224, 64, 7, 2, 3),
    ];
    for (threads, relu) in [(1, false), (2, true)] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for &(n, c, side, co, k, stride, pad) in &cases {
            let what = format!("{n}x{c}x{side}, {co} {k}x{k} s{stride} p{pad}, {threads} threads");
            pool.install(|| {
                let mut layer = Conv2d::new(c, co, k)
                    .stride(stride)
                    .padding(pad)
                    .algorithm(ConvAlgo::Im2col);
                layer
                    .init(
                        &mut <rand::rngs::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(
                            1,
                        ),
                    )
                    .unwrap();
                assert!(!relu || layer.absorb_relu());
                let x =
                    Tensor::from_vec(&[n, c, side, side], values(5, n * c * side * side)).unwrap();
                let train = layer.forward(&x, Mode::Train).data().to_vec();
                let eval = layer.forward(&x, Mode::Eval).data().to_vec();
                let again = layer.forward(&x, Mode::Eval).data().to_vec();
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&eval), bits(&train), "{what}");
                assert_eq!(bits(&again), bits(&train), "{what}, second evaluation");
            });
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The 2×2 stride-2 fast path (AVX2 where the CPU has it) on wide planes with
    /// ties (values from a small set) and NaNs, against the reference, bit for bit.
    #[test]
    fn maxpool_2x2_wide_planes_match_reference(
        planes in 1usize..4, h in 2usize..9, w in 16usize..70, seed in any::<u64>(),
        levels in 2u32..6, nans in 0usize..4,
    ) {
        let n = planes * h * w;
        let mut x: Vec<f32> = values(seed, n).iter().map(|v| ((v + 1.0) * levels as f32).floor()).collect();
        for k in 0..nans {
            let i = (seed as usize).wrapping_mul(k + 7) % n;
            x[i] = f32::NAN;
        }
        let out = planes * (h / 2) * (w / 2);
        let (mut y1, mut y2) = (vec![0.0; out], vec![0.0; out]);
        let (mut a1, mut a2) = (vec![0u32; out], vec![0u32; out]);
        maxpool_forward(&x, planes, (h, w), 2, 2, &mut y1, &mut a1);
        maxpool_forward_naive(&x, planes, (h, w), 2, 2, &mut y2, &mut a2);
        prop_assert_eq!(a1, a2);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&y1), bits(&y2));
    }
}

/// Says which builds of the data-movement kernels the tests above ran: im2col and col2im
/// run both theirs wherever the CPU has AVX-512F, the SGD update the CPU's own.
#[test]
fn prints_the_builds_tested() {
    let wide = ferroconv::cpu::avx512::available();
    eprintln!(
        "im2col/col2im builds tested: {}; sgd_update build tested: {}",
        if wide {
            "avx512f, portable"
        } else {
            "portable (no AVX-512F here)"
        },
        if wide { "avx512f" } else { "portable" },
    );
    #[cfg(target_arch = "x86_64")]
    assert_eq!(wide, std::arch::is_x86_feature_detected!("avx512f"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The SGD update the library runs (AVX-512F where the CPU has it) gives the bits of
    /// PyTorch's rule written out one element at a time, for every combination of options.
    #[test]
    fn sgd_update_matches_the_scalar_rule(
        n in 0usize..300, seed in any::<u64>(), momentum in prop_oneof![Just(0.0f32), Just(0.9)],
        wd in prop_oneof![Just(0.0f32), Just(5e-4)], nesterov in any::<bool>(), first in any::<bool>(),
    ) {
        use ferroconv::cpu::elementwise::sgd_update;
        let (w0, g, b0) = (values(seed, n), values(seed ^ 1, n), values(seed ^ 2, n));
        let (mut w1, mut b1, mut w2, mut b2) = (w0.clone(), b0.clone(), w0.clone(), b0);
        sgd_update(&mut w1, &g, &mut b1, 0.01, momentum, wd, nesterov, first);
        for ((w, &gi), b) in w2.iter_mut().zip(&g).zip(b2.iter_mut()) {
            let gi = if wd != 0.0 { gi + wd * *w } else { gi };
            let step = if momentum == 0.0 {
                gi
            } else {
                *b = if first { gi } else { momentum * *b + gi };
                if nesterov { gi + momentum * *b } else { *b }
            };
            *w -= 0.01 * step;
        }
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&w1), bits(&w2));
        prop_assert_eq!(bits(&b1), bits(&b2));
        if n > 0 {
            prop_assert_ne!(bits(&w1), bits(&w0));
        }
    }
}

/// `(v/255 − 0.5)/0.5` as the loader computed it before it was vectorised: a table filled
/// by compile-time (IEEE) arithmetic.
const CIFAR_TABLE: [f32; 256] = {
    let mut t = [0.0f32; 256];
    let mut v = 0;
    while v < 256 {
        t[v] = (v as f32 / 255.0 - 0.5) / 0.5;
        v += 1;
    }
    t
};

#[test]
fn bytes_to_floats_gives_the_scalar_formula_bit_for_bit() {
    use ferroconv::cpu::elementwise::bytes_to_floats;
    // Every byte, at lengths that leave vector tails, from unaligned starts.
    let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 37 % 256) as u8).collect();
    for (start, len) in [(0, 1000), (3, 17), (1, 256), (5, 0)] {
        let src = &bytes[start..start + len];
        let mut dst = vec![f32::NAN; len];
        bytes_to_floats(src, &mut dst, 0.5, 0.5);
        for (&b, &d) in src.iter().zip(&dst) {
            assert_eq!(d.to_bits(), CIFAR_TABLE[b as usize].to_bits(), "byte {b}");
        }
    }
    let mut one = [0.0f32];
    bytes_to_floats(&[200], &mut one, 0.4914, 0.247);
    assert_eq!(one[0], (200.0f32 / 255.0 - 0.4914) / 0.247);
}
