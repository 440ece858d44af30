//! Winograd convolution (`F(2,3)`, `F(4,3)`) against a direct f64 convolution and against
//! im2col + GEMM, on random shapes; bit-identical whatever the thread count.
//!
//! Errors are normwise: `max |got − want| / max |want|` over a tensor (a Winograd output
//! is a sum of many rounded terms, so element-wise relative error is meaningless near 0).
//! `winograd_error_figures` prints the figures quoted in `docs/winograd.md`
//! (`cargo test --release --test winograd -- --nocapture winograd_error_figures`).

mod common;
use common::values;

use ferroconv::Tensor;
use ferroconv::cpu::winograd::conv::{
    Shape, forward, forward_act, forward_strips, input_grad, strip_plan, weight_grad,
};
use ferroconv::cpu::winograd::{Tile, filter_transform};
use ferroconv::layers::{Conv2d, ConvAlgo, Layer, Mode, ParamKind};
use proptest::prelude::*;

/// Direct 3×3 stride-1 convolution in f64: `(y, dW, dx)` for `x[N,C,H,W]`, `w[Co,C,3,3]`,
/// upstream `dy[N,Co,OH,OW]`, padding `pad`, no bias.
fn direct(s: &Shape, n: usize, x: &[f32], w: &[f32], dy: &[f32]) -> [Vec<f64>; 3] {
    let (c, h, wd, co, pad) = (s.channels, s.height, s.width, s.out_channels, s.padding);
    let (oh, ow) = (s.out_h(), s.out_w());
    let mut y = vec![0.0f64; n * co * oh * ow];
    let mut dw = vec![0.0f64; w.len()];
    let mut dx = vec![0.0f64; x.len()];
    for i in 0..n {
        for o in 0..co {
            for r in 0..oh {
                for q in 0..ow {
                    let yi = ((i * co + o) * oh + r) * ow + q;
                    let g = dy[yi] as f64;
                    let mut acc = 0.0;
                    for ci in 0..c {
                        for kh in 0..3 {
                            for kw in 0..3 {
                                let ih = (r + kh) as isize - pad as isize;
                                let iw = (q + kw) as isize - pad as isize;
                                if ih < 0 || iw < 0 || ih as usize >= h || iw as usize >= wd {
                                    continue;
                                }
                                let xi = ((i * c + ci) * h + ih as usize) * wd + iw as usize;
                                let wi = ((o * c + ci) * 3 + kh) * 3 + kw;
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
    [y, dw, dx]
}

/// `max |got − want| / max |want|`.
fn normwise(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    let err = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (g, w)| m.max((*g as f64 - w).abs()));
    err / scale
}

/// The kernel-level Winograd `(y, dW, dx)`.
fn winograd(s: &Shape, n: usize, x: &[f32], w: &[f32], dy: &[f32]) -> [Vec<f32>; 3] {
    let (c, co) = (s.channels, s.out_channels);
    let mut u = vec![0.0; s.filter_len()];
    filter_transform(s.tile, w, co, c, false, &mut u);
    let mut y = vec![f32::NAN; n * s.output_len()];
    forward(s, n, x, &u, &[], &mut y);
    let mut uf = vec![0.0; s.filter_len()];
    filter_transform(s.tile, w, co, c, true, &mut uf);
    let mut dx = vec![f32::NAN; n * s.input_len()];
    input_grad(s, n, dy, &uf, &mut dx);
    let mut dw = vec![f32::NAN; co * c * 9];
    weight_grad(s, n, x, dy, &mut dw, &mut Vec::new());
    [y, dw, dx]
}

/// `max |got − want|`.
fn max_abs(got: &[f32], want: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .fold(0.0f64, |m, (g, w)| m.max((*g as f64 - w).abs()))
}

/// Normwise errors `[y, dW, dx]` of Winograd against the f64 direct convolution, and the
/// largest absolute errors.
fn errors_and_abs(s: &Shape, n: usize, seed: u64) -> ([f64; 3], [f64; 3]) {
    let x = values(seed, n * s.input_len());
    let w = values(seed ^ 0x9e37, s.out_channels * s.channels * 9);
    let dy = values(seed ^ 0x51ed, n * s.output_len());
    let got = winograd(s, n, &x, &w, &dy);
    let want = direct(s, n, &x, &w, &dy);
    (
        std::array::from_fn(|i| normwise(&got[i], &want[i])),
        std::array::from_fn(|i| max_abs(&got[i], &want[i])),
    )
}

/// Normwise errors `[y, dW, dx]` of Winograd against the f64 direct convolution.
fn errors(s: &Shape, n: usize, seed: u64) -> [f64; 3] {
    errors_and_abs(s, n, seed).0
}

/// Worst normwise error allowed: `F(4,3)`'s transforms have entries up to 8 (×1/24 in `G`),
/// which amplify rounding about 30× over `F(2,3)`'s.
fn bound(tile: Tile) -> f64 {
    match tile {
        Tile::F2 => 2e-6,
        Tile::F4 => 3e-5,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    /// Forward, input and weight gradient on random shapes (partial edge tiles, chunks of
    /// fewer than 8 images, padding 0–2), against the f64 direct convolution.
    #[test]
    fn winograd_matches_direct_convolution(
        n in 1usize..12, c in 1usize..10, co in 1usize..10, h in 1usize..15, w in 1usize..15,
        pad in 0usize..3, f4 in any::<bool>(), seed in any::<u64>(),
    ) {
        let tile = if f4 { Tile::F4 } else { Tile::F2 };
        let s = Shape { channels: c, height: h, width: w, padding: pad, out_channels: co, tile };
        prop_assume!(s.supported());
        let err = errors(&s, n, seed);
        for (what, e) in ["y", "dW", "dx"].iter().zip(err) {
            prop_assert!(e <= bound(tile), "{tile:?} {what}: normwise error {e:e} on {s:?}, n = {n}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]

    /// Fewer than 8 images cut into strips (batch-1 inference) give the whole-image
    /// forward's bits, with bias and ReLU, whenever there is a strip plan.
    #[test]
    fn strips_equal_the_whole_image_forward_bit_for_bit(
        n in 1usize..8, c in 1usize..9, co in 1usize..9, h in 3usize..40, w in 1usize..20,
        pad in 0usize..3, f4 in any::<bool>(), relu in any::<bool>(), seed in any::<u64>(),
    ) {
        let tile = if f4 { Tile::F4 } else { Tile::F2 };
        let s = Shape { channels: c, height: h, width: w, padding: pad, out_channels: co, tile };
        prop_assume!(s.supported() && strip_plan(&s, n).is_some());
        let x = values(seed, n * s.input_len());
        let wt = values(seed ^ 1, co * c * 9);
        let bias = values(seed ^ 2, co);
        let mut u = vec![0.0; s.filter_len()];
        filter_transform(tile, &wt, co, c, false, &mut u);
        let mut whole = vec![0.0; n * s.output_len()];
        forward_act(&s, n, &x, (&u, None), &bias, relu, &mut whole);
        let mut strips = vec![f32::NAN; n * s.output_len()];
        prop_assert!(forward_strips(&s, n, &x, (&u, None), &bias, relu, &mut strips).is_some());
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&strips), bits(&whole), "{:?}, n = {}", s, n);
    }
}

/// The strip plan fills at least half the lanes of its chunks, keeps whole tiles, covers
/// every output row, and declines batches of 8 or more (under the test's thread pool).
#[test]
fn strip_plans_fill_the_lanes() {
    for (h, tile, n) in [
        (224, Tile::F4, 1),
        (56, Tile::F2, 1),
        (14, Tile::F4, 1),
        (28, Tile::F4, 3),
    ] {
        let s = Shape {
            channels: 8,
            height: h,
            width: h,
            padding: 1,
            out_channels: 8,
            tile,
        };
        let (rows, strips) = strip_plan(&s, n).unwrap();
        assert_eq!(rows % tile.m(), 0, "{h} {tile:?}");
        assert!(rows * strips >= s.out_h() && rows * (strips - 1) < s.out_h());
        let lanes = n * strips;
        assert!(
            lanes * 2 >= lanes.next_multiple_of(8),
            "{h} {tile:?} n {n}: {strips}"
        );
    }
    let s = Shape {
        channels: 8,
        height: 7,
        width: 7,
        padding: 1,
        out_channels: 8,
        tile: Tile::F4,
    };
    assert_eq!(
        strip_plan(&s, 1),
        None,
        "7×7 by F(4,3): two strips, a quarter of the lanes"
    );
    assert_eq!(
        strip_plan(
            &Shape {
                height: 64,
                width: 64,
                ..s
            },
            8
        ),
        None
    );
}

/// Runs a `Conv2d` with `algo` on `pool` threads: `(y, dW, db, dx)`.
#[allow(clippy::too_many_arguments)]
fn run_layer(
    algo: ConvAlgo,
    threads: usize,
    (n, c, h, w): (usize, usize, usize, usize),
    co: usize,
    pad: usize,
    bias: bool,
    seed: u64,
) -> [Vec<f32>; 4] {
    common::on_threads(threads, || {
        let mut layer = Conv2d::new(c, co, 3)
            .padding(pad)
            .bias(bias)
            .algorithm(algo);
        layer
            .init(&mut <rand::rngs::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(0))
            .unwrap();
        let shape = layer.output_shape(&[c, h, w]).unwrap();
        layer.visit_params(&mut String::new(), &mut |_, p| {
            let v = values(seed + p.value.len() as u64, p.value.len());
            p.value.copy_from_slice(&v);
        });
        let x = Tensor::from_vec(&[n, c, h, w], values(seed ^ 1, n * c * h * w)).unwrap();
        let y = layer.forward(&x, Mode::Train).data().to_vec();
        let out: Vec<usize> = [n].into_iter().chain(shape).collect();
        let dy = Tensor::from_vec(&out, values(seed ^ 2, out.iter().product())).unwrap();
        let dx = layer.backward(&dy, true).data().to_vec();
        let (mut dw, mut db) = (Vec::new(), Vec::new());
        layer.visit_params(&mut String::new(), &mut |_, p| match p.kind {
            ParamKind::Bias => db = p.grad.to_vec(),
            _ => dw = p.grad.to_vec(),
        });
        [y, dw, db, dx]
    })
}

fn bits(r: &[Vec<f32>; 4]) -> Vec<Vec<u32>> {
    r.iter()
        .map(|v| v.iter().map(|f| f.to_bits()).collect())
        .collect()
}

/// Normwise distance of `got` to `want` (both f32), against `max |want|`.
fn distance(got: &[f32], want: &[f32]) -> f64 {
    let w: Vec<f64> = want.iter().map(|&v| v as f64).collect();
    normwise(got, &w)
}

/// The layer with Winograd forced agrees with the layer on im2col + GEMM (bias included),
/// and gives the same bits on 1, 2 and 3 threads, on a batch large enough for several
/// blocks and weight-gradient tasks.
#[test]
fn conv2d_winograd_matches_im2col_and_is_thread_independent() {
    for (dims, co, pad) in [
        ((40, 16, 12, 12), 24, 1),
        ((19, 8, 7, 9), 16, 0),
        ((9, 12, 5, 6), 8, 2),
    ] {
        let reference = run_layer(ConvAlgo::Im2col, 2, dims, co, pad, true, 7);
        for (algo, tile) in [
            (ConvAlgo::Winograd2, Tile::F2),
            (ConvAlgo::Winograd4, Tile::F4),
        ] {
            let first = run_layer(algo, 1, dims, co, pad, true, 7);
            for (what, (g, w)) in ["y", "dW", "db", "dx"]
                .iter()
                .zip(first.iter().zip(&reference))
            {
                let e = distance(g, w);
                assert!(e <= bound(tile), "{algo:?} {what} vs im2col: {e:e}");
            }
            for threads in [2, 3] {
                assert_eq!(
                    bits(&run_layer(algo, threads, dims, co, pad, true, 7)),
                    bits(&first),
                    "{algo:?}, {threads} threads, {dims:?}"
                );
            }
        }
    }
}

/// `Auto` never picks Winograd where it cannot run, and a forced tile on a layer Winograd
/// does not cover (5×5, stride 2) falls back to im2col: same bits as `Im2col`.
#[test]
fn forced_winograd_falls_back_where_it_does_not_apply() {
    for (k, stride) in [(5, 1), (3, 2)] {
        let run = |algo| {
            let mut layer = Conv2d::new(4, 6, k)
                .stride(stride)
                .padding(1)
                .algorithm(algo);
            layer
                .init(&mut <rand::rngs::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(0))
                .unwrap();
            layer.visit_params(&mut String::new(), &mut |_, p| {
                let v = values(3, p.value.len());
                p.value.copy_from_slice(&v);
            });
            let x = Tensor::from_vec(&[3, 4, 9, 9], values(4, 3 * 4 * 81)).unwrap();
            layer.forward(&x, Mode::Train).data().to_vec()
        };
        let want = run(ConvAlgo::Im2col);
        assert_eq!(run(ConvAlgo::Winograd4), want);
        assert_eq!(run(ConvAlgo::Auto), want);
    }
}

/// im2col + GEMM's normwise errors `[y, dW, dx]` against the f64 direct convolution, on the
/// inputs of [`errors`]: the baseline Winograd's figures are compared with.
fn im2col_errors(s: &Shape, n: usize, seed: u64) -> ([f64; 3], [f64; 3]) {
    let x = values(seed, n * s.input_len());
    let w = values(seed ^ 0x9e37, s.out_channels * s.channels * 9);
    let dy = values(seed ^ 0x51ed, n * s.output_len());
    let mut layer = Conv2d::new(s.channels, s.out_channels, 3)
        .padding(s.padding)
        .bias(false)
        .algorithm(ConvAlgo::Im2col);
    layer
        .init(&mut <rand::rngs::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(0))
        .unwrap();
    layer.visit_params(&mut String::new(), &mut |_, p| p.value.copy_from_slice(&w));
    let xt = Tensor::from_vec(&[n, s.channels, s.height, s.width], x.clone()).unwrap();
    let y = layer.forward(&xt, Mode::Train).data().to_vec();
    let dyt = Tensor::from_vec(&[n, s.out_channels, s.out_h(), s.out_w()], dy.clone()).unwrap();
    let dx = layer.backward(&dyt, true).data().to_vec();
    let mut dw = Vec::new();
    layer.visit_params(&mut String::new(), &mut |_, p| dw = p.grad.to_vec());
    let want = direct(s, n, &x, &w, &dy);
    let got = [y, dw, dx];
    (
        std::array::from_fn(|i| normwise(&got[i], &want[i])),
        std::array::from_fn(|i| max_abs(&got[i], &want[i])),
    )
}

/// The measured errors on the target networks' shapes (64–256 channels, 32×32 to 8×8,
/// padding 1), beside im2col's, printed for `docs/winograd.md` and held to the bounds.
#[test]
fn winograd_error_figures() {
    for (c, co, hw, n) in [(64, 64, 32, 2), (128, 128, 16, 4), (256, 256, 8, 8)] {
        let s = Shape {
            channels: c,
            height: hw,
            width: hw,
            padding: 1,
            out_channels: co,
            tile: Tile::F2,
        };
        let ([y, dw, dx], [ay, adw, adx]) = im2col_errors(&s, n, 11);
        println!(
            "im2col C={c} Cout={co} {hw}×{hw} N={n}: normwise error y {y:.2e}, dW {dw:.2e}, dx {dx:.2e}; \
             max abs y {ay:.2e}, dW {adw:.2e}, dx {adx:.2e}"
        );
        assert!(y.max(dw).max(dx) <= bound(Tile::F2));
    }
    for tile in [Tile::F2, Tile::F4] {
        for (c, co, hw, n) in [(64, 64, 32, 2), (128, 128, 16, 4), (256, 256, 8, 8)] {
            let s = Shape {
                channels: c,
                height: hw,
                width: hw,
                padding: 1,
                out_channels: co,
                tile,
            };
            let ([y, dw, dx], [ay, adw, adx]) = errors_and_abs(&s, n, 11);
            println!(
                "{tile:?} C={c} Cout={co} {hw}×{hw} N={n}: normwise error y {y:.2e}, dW {dw:.2e}, dx {dx:.2e}; \
                 max abs y {ay:.2e}, dW {adw:.2e}, dx {adx:.2e}"
            );
            for e in [y, dw, dx] {
                assert!(e <= bound(tile), "{tile:?}: {e:e}");
            }
        }
    }
}

/// `fast_net` (whose 3×3 layers `Auto` runs by `F(4,3)`) trained for two SGD steps on 1, 2
/// and 3 threads ends with the same weights bit for bit.
#[test]
fn fast_net_training_is_bit_identical_for_any_thread_count() {
    use ferroconv::optim::{Optimizer, Sgd};
    use ferroconv::{Sequential, SoftmaxCrossEntropy};
    let n = 16;
    let x = Tensor::from_vec(&[n, 3, 32, 32], values(5, n * 3 * 32 * 32)).unwrap();
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 10).collect();
    let run = |threads: usize| -> Vec<u32> {
        common::on_threads(threads, || {
            let mut model: Sequential = ferroconv::models::fast_net(3).unwrap();
            let mut loss = SoftmaxCrossEntropy::new();
            let mut opt = Sgd::new(0.05, 0.9);
            for _ in 0..2 {
                let logits = model.forward(&x, Mode::Train).unwrap();
                loss.forward(logits, &labels).unwrap();
                model.backward(loss.grad()).unwrap();
                opt.step(&mut model);
            }
            let mut w = Vec::new();
            model.visit_params(&mut |_, p| w.extend(p.value.iter().map(|v| v.to_bits())));
            w
        })
    };
    let first = run(1);
    assert_eq!(run(2), first, "2 threads");
    assert_eq!(run(3), first, "3 threads");
}

/// Batch-1 evaluation (one block of strips, its `α²` products spread over the threads)
/// gives the same bits on 1, 2 and 3 threads, whole-image and by strips.
#[test]
fn small_batch_forward_is_thread_independent() {
    for (c, h, co, tile, n) in [
        (16, 14, 24, Tile::F2, 1),
        (8, 28, 16, Tile::F4, 1),
        (5, 9, 7, Tile::F2, 3),
    ] {
        let s = Shape {
            channels: c,
            height: h,
            width: h,
            padding: 1,
            out_channels: co,
            tile,
        };
        let x = values(7, n * s.input_len());
        let wt = values(8, co * c * 9);
        let bias = values(9, co);
        let mut u = vec![0.0; s.filter_len()];
        filter_transform(tile, &wt, co, c, false, &mut u);
        let run = |threads: usize| {
            common::on_threads(threads, || {
                let mut whole = vec![f32::NAN; n * s.output_len()];
                forward_act(&s, n, &x, (&u, None), &bias, true, &mut whole);
                let mut strips = vec![f32::NAN; n * s.output_len()];
                let cut = forward_strips(&s, n, &x, (&u, None), &bias, true, &mut strips);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                (bits(&whole), cut.map(|_| bits(&strips)))
            })
        };
        let one = run(1);
        for threads in [2, 3] {
            assert_eq!(run(threads), one, "{s:?}, n = {n}, {threads} threads");
        }
    }
}
