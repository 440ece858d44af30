//! How a [`Conv2d`](super::Conv2d) computes: im2col + GEMM, Winograd or the direct path,
//! chosen per layer.
//!
//! Winograd (`crate::cpu::winograd`) covers 3×3, stride-1 convolutions with padding ≤ 2.
//! [`ConvAlgo::Auto`] picks by the cost model in [`choose`], a function of the shapes only,
//! so a run is reproducible bit for bit (no timing enters the choice). The environment
//! variable `FERROCONV_CONV_ALGO` (`im2col`, `winograd2`, `winograd4`, `auto`) sets the
//! algorithm of every layer left at `Auto`, for benchmarks and tests.

use super::conv2d_direct as direct;
use crate::backend as k;
use crate::backend::{WINO_LANES as LANES, WinoShape, WinoTile};
use crate::cpu::im2col::ConvGeometry;
use crate::layers::Mode;
use crate::tensor::Tensor;
use std::sync::OnceLock;

/// The algorithm of a convolution layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvAlgo {
    /// Chosen by shape (the default): see the module docs.
    #[default]
    Auto,
    /// im2col + GEMM, the reference (any kernel, stride, padding).
    Im2col,
    /// Winograd `F(2×2, 3×3)` where it applies, im2col elsewhere.
    Winograd2,
    /// Winograd `F(4×4, 3×3)` where it applies, im2col elsewhere.
    Winograd4,
    /// Direct convolution (an implicit GEMM over shifted views of the input, no column
    /// matrix: `crate::cpu::direct`) for stride-1 layers, im2col elsewhere.
    Direct,
}

impl ConvAlgo {
    /// Parses `auto`, `im2col`, `winograd2`, `winograd4` or `direct` (as in
    /// `FERROCONV_CONV_ALGO`).
    pub fn parse(s: &str) -> Option<ConvAlgo> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(ConvAlgo::Auto),
            "im2col" => Some(ConvAlgo::Im2col),
            "winograd2" | "f2" => Some(ConvAlgo::Winograd2),
            "winograd4" | "f4" => Some(ConvAlgo::Winograd4),
            "direct" => Some(ConvAlgo::Direct),
            _ => None,
        }
    }
}

/// `FERROCONV_CONV_ALGO`, read once; an unknown value is reported on stderr and ignored.
fn from_env() -> ConvAlgo {
    static ENV: OnceLock<ConvAlgo> = OnceLock::new();
    *ENV.get_or_init(|| match std::env::var("FERROCONV_CONV_ALGO") {
        Ok(v) => ConvAlgo::parse(&v).unwrap_or_else(|| {
            eprintln!(
                "FERROCONV_CONV_ALGO={v:?} is not auto, im2col, winograd2, winograd4 or direct: ignored"
            );
            ConvAlgo::Auto
        }),
        Err(_) => ConvAlgo::Auto,
    })
}

/// The layer's hyper-parameters and input size, as [`choose`] sees them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvDims {
    pub cin: usize,
    pub cout: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub height: usize,
    pub width: usize,
}

/// Cost-model weights, in wall-clock nanoseconds per image of a training step (forward +
/// backward), fitted (relative least squares) to `CONV_BENCH_QUICK=1 cargo bench --bench
/// conv` on the 2-core test machine (Intel Xeon model 167, AVX-512F; `docs/winograd.md`):
/// per GEMM multiply-add of im2col, `F(2,3)`, `F(4,3)` (the Winograd GEMMs are thinner:
/// `C×Cout` per point)…
const NS_PER_MAC: [f64; 3] = [0.030, 0.033, 0.047];
/// … per element of im2col's column matrix (written by im2col, read back by col2im) …
const NS_IM2COL: f64 = 0.8;
/// … per (image, tile, channel) of the `F(2,3)` and `F(4,3)` transforms (the stores to the
/// `α²` planes dominate) …
const NS_TRANSFORM: [f64; 2] = [17.5, 64.0];
/// … and per (image, channel) whatever the map's size (loops, staging, the scatters of
/// small maps): im2col, `F(2,3)`, `F(4,3)`.
const NS_CHANNEL: [f64; 3] = [80.0, 55.0, 100.0];

/// The tile Winograd uses for this layer, or `None` for im2col + GEMM.
///
/// Forced choices apply only where Winograd can run (3×3, stride 1, padding ≤ 2). `Auto`
/// compares estimated times per image of a training step (GEMM multiply-adds, data
/// movement per transformed element, a cost per channel; partial edge tiles count whole):
/// ```text
/// im2col:  9·C·Cout·P·mac[0] + 9·C·P·im2col + (C + Cout)·channel[0]          P = OH·OW
/// F(m,3):  α²·C·Cout·T·mac[m] + (C + Cout)·T·transform[m] + (C + Cout)·channel[m]
///          T = (2·T_fwd + T_dx)/3
/// ```
/// `T_fwd = ⌈OH/m⌉·⌈OW/m⌉` are the tiles of the forward pass and of the weight gradient,
/// `T_dx` those of the input gradient (a convolution of `dy` with padding `2 − p`: more
/// tiles than forward when `p = 0`). It takes the cheapest, requiring at least 8 input and
/// output channels (below that the per-point GEMMs are too thin to run at speed). With
/// these weights `Auto` takes `F(4,3)` for the 3×3 pad-1 layers of `resnet9` and
/// `fast_net` from 7×7 up, `F(2,3)` at 3×3, and im2col for the 3-channel first layers and
/// the TensorFlow tutorial net's unpadded 15×15 layer (as a unit test checks).
pub(crate) fn choose(algo: ConvAlgo, d: ConvDims) -> Option<WinoTile> {
    if !applies(d) {
        return None;
    }
    let algo = if algo == ConvAlgo::Auto {
        from_env()
    } else {
        algo
    };
    match algo {
        ConvAlgo::Im2col | ConvAlgo::Direct => None,
        ConvAlgo::Winograd2 => Some(WinoTile::F2),
        ConvAlgo::Winograd4 => Some(WinoTile::F4),
        ConvAlgo::Auto => cost_model(d),
    }
}

/// Whether layer `g` with `cout` output channels runs by the direct path
/// (`conv2d_direct.rs`): where it applies when asked for (by the layer or, under `Auto`,
/// the environment), and under `Auto` for stride-1 layers with at most 16 output channels.
/// A function of the shapes only, like [`choose`], and asked before it.
pub(crate) fn choose_direct(algo: ConvAlgo, g: &ConvGeometry, cout: usize) -> bool {
    let algo = if algo == ConvAlgo::Auto {
        from_env()
    } else {
        algo
    };
    match algo {
        ConvAlgo::Direct => direct::applies(g),
        ConvAlgo::Auto => direct::prefers_direct(g, cout),
        _ => false,
    }
}

/// [`choose`] for one forward pass of `batch` images in `mode`. Winograd puts one image
/// per SIMD lane, 8 at a time, so an evaluation pass of fewer than 8 images under `Auto`
/// (no forced choice, none in the environment) cuts each image into horizontal strips,
/// one per lane ([`k::wino_strip_plan`]), and the cost model weighs each tile by the
/// share of lanes its strips fill; where they fill fewer than half (small maps), im2col.
/// Training keeps the shape-only choice.
pub(crate) fn choose_for(
    algo: ConvAlgo,
    d: ConvDims,
    batch: usize,
    mode: Mode,
) -> Option<WinoTile> {
    let auto = algo == ConvAlgo::Auto && from_env() == ConvAlgo::Auto;
    if auto && mode == Mode::Eval && batch < LANES {
        if !applies(d) {
            return None;
        }
        return cost_model_filled(d, &|tile| {
            let (_, strips) = k::wino_strip_plan(&shape_of(d, tile), batch)?;
            let lanes = batch * strips;
            Some(lanes as f64 / lanes.next_multiple_of(LANES) as f64)
        });
    }
    choose(algo, d)
}

/// Whether Winograd can run layer `d` at all: a 3×3, stride-1 convolution of a shape it
/// supports.
fn applies(d: ConvDims) -> bool {
    d.kernel == 3 && d.stride == 1 && shape_of(d, WinoTile::F2).supported()
}

/// The Winograd shape of layer `d` with `tile`.
fn shape_of(d: ConvDims, tile: WinoTile) -> WinoShape {
    WinoShape {
        channels: d.cin,
        height: d.height,
        width: d.width,
        padding: d.padding,
        out_channels: d.cout,
        tile,
    }
}

/// `Auto`'s choice for a layer Winograd can run (see [`choose`]).
fn cost_model(d: ConvDims) -> Option<WinoTile> {
    cost_model_filled(d, &|_| Some(1.0))
}

/// [`cost_model`] with Winograd's cost divided by `fill(tile)`, the share of the SIMD lanes
/// doing work (`None`: that tile cannot run).
fn cost_model_filled(d: ConvDims, fill: &dyn Fn(WinoTile) -> Option<f64>) -> Option<WinoTile> {
    if d.cin < 8 || d.cout < 8 {
        return None;
    }
    let (c, co) = (d.cin as f64, d.cout as f64);
    let s2 = shape_of(d, WinoTile::F2);
    let p = (s2.out_h() * s2.out_w()) as f64;
    let im2col =
        9.0 * c * co * p * NS_PER_MAC[0] + 9.0 * c * p * NS_IM2COL + (c + co) * NS_CHANNEL[0];
    let wino = |tile: WinoTile, i: usize| {
        let s = shape_of(d, tile);
        let tiles = |s: &WinoShape| (s.tiles_h() * s.tiles_w()) as f64;
        let t = (2.0 * tiles(&s) + tiles(&s.transposed())) / 3.0;
        let cost = tile.points() as f64 * c * co * t * NS_PER_MAC[i]
            + (c + co) * t * NS_TRANSFORM[i - 1]
            + (c + co) * NS_CHANNEL[i];
        fill(tile).map_or(f64::INFINITY, |f| cost / f)
    };
    let (f2, f4) = (wino(WinoTile::F2, 1), wino(WinoTile::F4, 2));
    if im2col <= f2.min(f4) {
        None
    } else if f4 <= f2 {
        Some(WinoTile::F4)
    } else {
        Some(WinoTile::F2)
    }
}

/// A [`Conv2d`](super::Conv2d)'s Winograd state: the transformed filters and what backward needs.
#[derive(Default)]
pub(crate) struct Winograd {
    /// The shapes of the last forward, when it ran by Winograd.
    active: Option<(WinoShape, usize)>,
    /// `[α²][Cout][C]`: the transformed filter.
    u: Vec<f32>,
    /// The tile `u` was computed for from the current weights; `None` once the weights
    /// may have changed ([`Winograd::invalidate`]). Evaluation passes reuse it.
    u_tile: Option<WinoTile>,
    /// `u`'s `α²` matrices packed for the GEMM, when an evaluation pass made them from
    /// the current `u` (training passes change the weights every step: no packing).
    packed: Option<Vec<k::PackedA>>,
    /// Whether the last forward was a training one (it kept `input` for backward).
    trained: bool,
    /// `[α²][C][Cout]`: the transformed flipped filter (input gradient).
    uf: Vec<f32>,
    /// `[N, C, H, W]`: forward's input, for the weight gradient.
    input: Vec<f32>,
    /// The weight-gradient tasks' shares of `dW`.
    partials: Vec<f32>,
}

impl Winograd {
    /// Whether the last forward ran by Winograd (so backward must too).
    pub fn active(&self) -> bool {
        self.active.is_some()
    }

    /// Marks the last forward as im2col's.
    pub fn clear(&mut self) {
        self.active = None;
    }

    /// Forgets the cached filter transform: the weights are about to change.
    pub fn invalidate(&mut self) {
        self.u_tile = None;
        self.packed = None;
    }

    /// `out[N, Cout, OH, OW] = conv(x) + bias` by Winograd with `tile`, then `max(·, 0)`
    /// with `relu`. A training pass transforms the filter and keeps `x` for backward; an
    /// evaluation pass keeps nothing and reuses the filter transform while the weights
    /// are unchanged.
    pub fn forward(
        &mut self,
        tile: WinoTile,
        d: ConvDims,
        x: &Tensor,
        (weight, bias, relu): (&[f32], &[f32], bool),
        mode: Mode,
        out: &mut Tensor,
    ) {
        let s = WinoShape {
            channels: d.cin,
            height: d.height,
            width: d.width,
            padding: d.padding,
            out_channels: d.cout,
            tile,
        };
        let n = x.shape()[0];
        self.active = Some((s, n));
        out.reshape_to(&[n, d.cout, s.out_h(), s.out_w()]);
        self.trained = mode == Mode::Train;
        if self.trained || self.u_tile != Some(tile) {
            self.u.resize(s.filter_len(), 0.0);
            k::wino_filter_transform(tile, weight, d.cout, d.cin, false, &mut self.u);
            self.u_tile = Some(tile);
            self.packed = None;
        }
        if self.trained {
            self.input.clear();
            self.input.extend_from_slice(x.data());
        } else if self.packed.is_none() {
            let (co, ci) = (d.cout, d.cin);
            let each = self.u.chunks_exact(co * ci).take(tile.points());
            self.packed = Some(each.map(|ut| k::PackedA::new(co, ci, ut, ci, 1)).collect());
        }
        let packed = if self.trained {
            None
        } else {
            self.packed.as_deref()
        };
        let (xs, ys) = (x.data(), out.data_mut());
        // Fewer images than lanes at evaluation: strips of each image fill the lanes.
        if !self.trained
            && k::wino_forward_strips(&s, n, xs, (&self.u, packed), bias, relu, ys).is_some()
        {
            return;
        }
        k::wino_forward(&s, n, xs, (&self.u, packed), bias, relu, ys);
    }

    /// Sets `grad_weight`, `grad_bias` (when not empty) and, with `need_input_grad`,
    /// `grad_input[N, C, H, W]` from `dy[N, Cout, OH, OW]`.
    pub fn backward(
        &mut self,
        dy: &Tensor,
        weight: &[f32],
        grad_weight: &mut [f32],
        grad_bias: &mut [f32],
        need_input_grad: bool,
        grad_input: &mut Tensor,
    ) {
        let (s, n) = self.active.expect("Conv2d::backward called before forward");
        assert!(
            self.trained,
            "Conv2d::backward after an evaluation-mode forward (which keeps nothing)"
        );
        let (cout, p) = (s.out_channels, s.out_h() * s.out_w());
        let dy = dy.data();
        // db = Σ_n rowsums(dy[n]), in image order.
        if !grad_bias.is_empty() {
            for (i, dyi) in dy.chunks(cout * p).enumerate() {
                k::sum_rows(dyi, p, grad_bias, i > 0);
            }
        }
        k::wino_weight_grad(&s, n, &self.input, dy, grad_weight, &mut self.partials);
        if need_input_grad {
            grad_input.reshape_to(&[n, s.channels, s.height, s.width]);
            self.uf.resize(s.filter_len(), 0.0);
            k::wino_filter_transform(s.tile, weight, cout, s.channels, true, &mut self.uf);
            k::wino_input_grad(&s, n, dy, &self.uf, grad_input.data_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(cin: usize, cout: usize, hw: usize) -> ConvDims {
        ConvDims {
            cin,
            cout,
            kernel: 3,
            stride: 1,
            padding: 1,
            height: hw,
            width: hw,
        }
    }

    /// The cost model's picks for the target networks' layers, as documented.
    #[test]
    fn cost_model_picks_for_the_target_layers() {
        // resnet9 at 32×32, 16×16, 8×8; fast_net at 31×31, 15×15, 7×7 (airbench94's
        // widths too).
        for (cin, cout, hw) in [
            (64, 128, 32),
            (128, 128, 16),
            (128, 256, 16),
            (256, 256, 8),
            (24, 32, 31),
            (32, 32, 15),
            (32, 128, 15),
            (128, 128, 7),
            (24, 64, 31),
            (64, 256, 15),
            (256, 256, 7),
        ] {
            assert_eq!(
                cost_model(dims(cin, cout, hw)),
                Some(WinoTile::F4),
                "{cin}→{cout} at {hw}"
            );
        }
        // 3×3 maps: one F(4,3) tile computes 16 outputs for 9.
        assert_eq!(cost_model(dims(128, 128, 3)), Some(WinoTile::F2));
        assert_eq!(cost_model(dims(3, 64, 32)), None);
        // The TensorFlow tutorial net's unpadded 32→64 layer at 15×15: its input gradient
        // has padding 2, and im2col measures faster.
        let tf2 = ConvDims {
            padding: 0,
            ..dims(32, 64, 15)
        };
        assert_eq!(cost_model(tf2), None);
    }

    /// Forced choices apply only where Winograd runs.
    #[test]
    fn forced_choices_respect_the_shape() {
        let d = dims(16, 16, 8);
        assert_eq!(choose(ConvAlgo::Im2col, d), None);
        assert_eq!(choose(ConvAlgo::Winograd2, d), Some(WinoTile::F2));
        assert_eq!(choose(ConvAlgo::Winograd4, d), Some(WinoTile::F4));
        for bad in [
            ConvDims { kernel: 5, ..d },
            ConvDims { stride: 2, ..d },
            ConvDims { padding: 3, ..d },
        ] {
            assert_eq!(choose(ConvAlgo::Winograd4, bad), None);
            assert_eq!(choose(ConvAlgo::Auto, bad), None);
        }
    }
}
