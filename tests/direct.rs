//! The direct convolution path (`ConvAlgo::Direct`: an implicit GEMM over shifted views of
//! the input, no column matrix) against im2col + GEMM, on the article's layers and on
//! padded, rectangular and unevenly padded ones: the same values up to rounding, the same
//! bits on 1, 2 and 3 threads, and evaluation equal to training bit for bit. The f64
//! gradient checks are in `gradients.rs` (`conv2d_direct_gradients`).

mod common;
use common::values;

use ferroconv::Tensor;
use ferroconv::layers::{Conv2d, ConvAlgo, Layer, Mode, ParamKind};

/// A layer's shape: input `[N, C, H, W]`, output channels, kernel `(KH, KW)`, padding
/// `(PH, PW)`.
type Case = (
    (usize, usize, usize, usize),
    usize,
    (usize, usize),
    (usize, usize),
);

fn layer(case: &Case, algo: ConvAlgo, bias: bool) -> Conv2d {
    let (dims, co, (kh, kw), (ph, pw)) = *case;
    let mut layer = Conv2d::rect(dims.1, co, (kh, kw))
        .padding2((ph, pw))
        .bias(bias)
        .algorithm(algo);
    layer
        .init(&mut <rand::rngs::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(0))
        .unwrap();
    layer.visit_params(&mut String::new(), &mut |_, p| {
        let v = values(11 + p.value.len() as u64, p.value.len());
        p.value.copy_from_slice(&v);
    });
    layer
}

/// `[y, dW, db, dx]` of one training step on `threads` threads.
fn run(case: &Case, algo: ConvAlgo, threads: usize, bias: bool) -> [Vec<f32>; 4] {
    common::on_threads(threads, || {
        let (dims, ..) = *case;
        let (n, c, h, w) = dims;
        let mut layer = layer(case, algo, bias);
        let shape = layer.output_shape(&[c, h, w]).unwrap();
        let x = Tensor::from_vec(&[n, c, h, w], values(5, n * c * h * w)).unwrap();
        let y = layer.forward(&x, Mode::Train).data().to_vec();
        let out: Vec<usize> = [n].into_iter().chain(shape).collect();
        let dy = Tensor::from_vec(&out, values(6, out.iter().product())).unwrap();
        let dx = layer.backward(&dy, true).data().to_vec();
        let (mut dw, mut db) = (Vec::new(), Vec::new());
        layer.visit_params(&mut String::new(), &mut |_, p| match p.kind {
            ParamKind::Bias => db = p.grad.to_vec(),
            _ => dw = p.grad.to_vec(),
        });
        [y, dw, db, dx]
    })
}

/// `max |got − want| / max |want|`.
fn distance(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
    let err = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (g, w)| m.max((*g as f64 - *w as f64).abs()));
    err / scale.max(1e-30)
}

fn bits(r: &[Vec<f32>; 4]) -> Vec<Vec<u32>> {
    r.iter()
        .map(|v| v.iter().map(|f| f.to_bits()).collect())
        .collect()
}

const CASES: [Case; 7] = [
    // The article's conv1 at batch 64 (enough work for the images to run in parallel)
    // and conv2 at batch 4.
    ((64, 3, 32, 32), 6, (5, 5), (0, 0)),
    ((4, 6, 14, 14), 16, (5, 5), (0, 0)),
    // Padded, more rows than one register block, one image.
    ((1, 5, 9, 11), 19, (3, 3), (2, 2)),
    // Rectangular kernel, uneven padding (the layer pads a copy first).
    ((3, 4, 7, 10), 5, (3, 5), (1, 2)),
    // A 1-wide output and a 2×2 window.
    ((2, 2, 6, 5), 3, (2, 5), (0, 0)),
    ((5, 7, 4, 4), 1, (2, 2), (1, 1)),
    // Images smaller than the zero tail after the last one: evaluation reads the first
    // four in place and copies the last two.
    ((6, 1, 3, 4), 2, (2, 2), (0, 0)),
];

#[test]
fn direct_matches_im2col_and_is_thread_independent() {
    for case in &CASES {
        for bias in [true, false] {
            let want = run(case, ConvAlgo::Im2col, 1, bias);
            let got = run(case, ConvAlgo::Direct, 1, bias);
            for (what, (g, w)) in ["y", "dW", "db", "dx"].iter().zip(got.iter().zip(&want)) {
                let e = distance(g, w);
                assert!(e <= 1e-5, "{case:?} bias {bias}: {what} off by {e:e}");
            }
            for threads in [2, 3] {
                assert_eq!(
                    bits(&run(case, ConvAlgo::Direct, threads, bias)),
                    bits(&got),
                    "{case:?}, {threads} threads"
                );
            }
        }
    }
}

/// Auto takes the direct path for the article's layers: the same bits as forcing it.
#[test]
fn auto_takes_the_direct_path_for_few_output_channels() {
    for case in &CASES[..2] {
        assert_eq!(
            bits(&run(case, ConvAlgo::Auto, 1, true)),
            bits(&run(case, ConvAlgo::Direct, 1, true))
        );
    }
}

/// An evaluation pass gives the training pass's output bit for bit, with the ReLU folded
/// in too.
#[test]
fn direct_evaluation_equals_training() {
    for case in &CASES {
        let (dims, ..) = *case;
        let (n, c, h, w) = dims;
        let x = Tensor::from_vec(&[n, c, h, w], values(9, n * c * h * w)).unwrap();
        for relu in [false, true] {
            let mut l = layer(case, ConvAlgo::Direct, true);
            if relu {
                assert!(l.absorb_relu());
            }
            let train = l.forward(&x, Mode::Train).data().to_vec();
            let eval = l.forward(&x, Mode::Eval).data().to_vec();
            assert_eq!(
                train.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                eval.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{case:?} relu {relu}"
            );
            if relu {
                assert!(train.iter().all(|&v| v >= 0.0));
            }
        }
    }
}

/// Backward after an evaluation pass is refused, as on the other paths.
#[test]
#[should_panic(expected = "evaluation-mode forward")]
fn direct_backward_after_evaluation_panics() {
    let case = &CASES[1];
    let mut l = layer(case, ConvAlgo::Direct, true);
    let x = Tensor::from_vec(&[4, 6, 14, 14], values(1, 4 * 6 * 196)).unwrap();
    l.forward(&x, Mode::Eval);
    let dy = Tensor::from_vec(&[4, 16, 10, 10], values(2, 6400)).unwrap();
    l.backward(&dy, true);
}
