//! Fast kernels against their naive references, on random shapes.

use ferroconv::cpu::im2col::{ConvGeometry, col2im, col2im_naive, im2col, im2col_naive};
use ferroconv::cpu::pool::{maxpool_forward, maxpool_forward_naive, pooled};
use proptest::prelude::*;

fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

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
