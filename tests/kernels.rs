//! Fast kernels against their naive references, on random shapes.

mod common;
use common::values;

use ferroconv::cpu::im2col::{ConvGeometry, col2im, col2im_naive, im2col, im2col_naive};
use ferroconv::cpu::pool::{maxpool_forward, maxpool_forward_naive, pooled};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn im2col_and_col2im_match_reference(
        c in 1usize..4, k in 1usize..6, stride in 1usize..4, pad in 0usize..4,
        extra_h in 0usize..9, extra_w in 0usize..9, seed in any::<u64>(), gap in 0usize..40,
    ) {
        let g = ConvGeometry {
            channels: c, height: k + extra_h, width: k + extra_w,
            kernel_h: k, kernel_w: k, stride, padding: pad,
        };
        let x = values(seed, g.input_len());
        // Row stride ld = P + gap: the image's block inside a wider group matrix.
        let ld = g.col_cols() + gap;
        let n = g.col_rows() * ld;
        let (mut fast, mut slow) = (vec![f32::NAN; n], vec![f32::NAN; n]);
        im2col(&g, &x, &mut fast, ld);
        im2col_naive(&g, &x, &mut slow, ld);
        // Bit patterns, so that the untouched NaN gaps compare equal.
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&fast), bits(&slow));
        let dcol = values(seed ^ 1, n);
        let (mut dx_fast, mut dx_slow) = (vec![f32::NAN; x.len()], vec![f32::NAN; x.len()]);
        col2im(&g, &dcol, ld, &mut dx_fast);
        col2im_naive(&g, &dcol, ld, &mut dx_slow);
        prop_assert_eq!(dx_fast, dx_slow);
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
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
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
