//! 2-D convolution by im2col + GEMM, a group of images per GEMM.
//!
//! The batch is cut into groups of `G` images (`G` depends on the shapes only, see
//! [`group_size`]); the column matrices of a group sit side by side, so each product is
//! one large GEMM instead of `G` small ones. With `P = OH·OW`, `R = C·K·K`:
//! - forward:  `cols = [im2col(x[n]) for n in group]`   `[R, G·P]`
//!   `Y' = W · cols`                                   `[Cout, R]·[R, G·P] → [Cout, G·P]`
//!   `y[n][co] = Y'[co][j·P..(j+1)·P] + b[co]`          (scatter back to NCHW, bias fused)
//! - backward: `dY'` gathered from `dy` like `Y'`        `[Cout, G·P]`
//!   `dW_g = dY' · colsᵀ`                               `[Cout, G·P]·[G·P, R]`
//!   `dW = dW_0 + dW_1 + …`                             (group order)
//!   `db = Σ_n Σ_p dy[n][·][p]`                         (image order)
//!   `dcols = Wᵀ · dY'`; `dx[n] = col2im(dcols[n])`     `[R, Cout]·[Cout, G·P]`
//!
//! Groups are independent, so they run in parallel; every group's `dW_g` goes to its own
//! slot and the slots are added in group order. Since the grouping depends on the shapes
//! only, results are the same bit for bit whatever the thread count.
//!
//! When all column matrices fit [`KEEP_COLS_MAX`] floats (see [`Conv2d::keep_cols_max`]), forward keeps them for backward;
//! otherwise forward keeps a copy of its input and backward recomputes each group's
//! columns in a per-thread scratch buffer (bounded by [`GROUP_COLS_MAX`]).
//!
//! 3×3 stride-1 layers may run by Winograd instead, and stride-1 layers with few output
//! channels by the direct path, which reads the column matrix from the input in place
//! (see [`Conv2d::algorithm`], `conv2d_algo.rs` and `conv2d_direct.rs`); im2col + GEMM
//! stays the reference.
//!
//! Kernels may be rectangular (`KH×KW`, see [`Conv2d::rect`]) and the padding may differ
//! per axis ([`Conv2d::padding2`]). im2col pads both axes alike, so a layer with uneven
//! padding copies its input into a zero-padded buffer `[N, C, H+2PH, W+2PW]` first and
//! convolves that without padding; backward crops the input gradient back to `[N, C, H, W]`
//! (see `pad_input` and `crop_grad`).

use super::conv2d_algo::{ConvAlgo, ConvDims, Winograd, choose_direct, choose_for};
use super::conv2d_direct::Direct;
use super::{
    Layer, Mode, ParamKind, ParamVisitor, Role, Spec, ValueVisitor, Weights, checked_product,
    emit_value, emit_weight_bias, init_uniform, try_zeros,
};
use crate::backend as k;
use crate::cpu::im2col::ConvGeometry;
use crate::tensor::Tensor;
use rand::Rng;
use rayon::iter::Either;
use rayon::prelude::*;
use std::cell::RefCell;

/// Most column-matrix floats in one group (512 KiB, about one core's L2): im2col writes
/// them and the GEMM reads them back while they are still in cache.
const GROUP_COLS_MAX: usize = 128 << 10;
/// Most column-matrix floats of the whole batch kept from forward to backward (1 MiB,
/// one core's L2); above it backward recomputes them. Kept columns that fit come back
/// from cache; larger ones come back from memory, which costs more than making them
/// again, group by group, from the input (a `KH·KW`-th of their size) into a scratch
/// buffer that stays in cache: the article's network at batch 64 trains 1.16–1.40×
/// faster so (was 64 MiB; docs/benchmarks.md, session 12).
const KEEP_COLS_MAX: usize = 1 << 18;
/// Multiply-adds of a layer's forward above which backward's groups are spread over
/// [`TASKS`] tasks (each with its own share of `dW`) so that every thread gets work.
const TASK_MIN_WORK: usize = 4 << 20;
/// Backward tasks for large layers: a few per thread on small machines. A constant, not
/// the thread count: it fixes how `dW` is summed.
const TASKS: usize = 4;

/// Columns (`G·P`) a group should reach: the depth of `dW`'s GEMM per call. Below one
/// packed block (`KC` = 256) each call would reload and store all of `dW` for little work.
const GROUP_MIN_COLS: usize = 256;

/// Images per group for a batch of `n`: enough for [`GROUP_MIN_COLS`] columns, as few as
/// that (small groups keep the columns in cache), at most [`GROUP_COLS_MAX`] column
/// floats (at least one image). Depends on the shapes only.
fn group_size(n: usize, g: &ConvGeometry) -> usize {
    let p = g.col_cols().max(1);
    let by_cache = GROUP_COLS_MAX / (g.col_rows() * p).max(1);
    GROUP_MIN_COLS.div_ceil(p).min(by_cache).clamp(1, n.max(1))
}

/// Fewest column-matrix floats (`R·G·P`) for which an evaluation pass makes the columns
/// as the GEMM packs them instead of storing them (512 KiB, so groups of one image only:
/// [`GROUP_COLS_MAX`] caps the others; below, the stored matrix stays
/// in L2 and the plain row copies of im2col cost less than making short runs panel by panel).
const MADE_MIN_COLS: usize = 1 << 17;

thread_local! {
    /// Per-thread scratch vectors for [`with_scratch`]: a stack, so a nested call on the
    /// same thread (rayon work-stealing inside a parallel GEMM) takes another vector.
    static SCRATCH: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a scratch slice of `len` floats from this thread's stack of vectors. The
/// vectors only grow, so a steady stream of steps allocates nothing. Contents are stale.
pub(super) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut v = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    if v.len() < len {
        v.resize(len, 0.0);
    }
    let r = f(&mut v[..len]);
    SCRATCH.with(|s| s.borrow_mut().push(v));
    r
}

/// One backward task's slices: `(((index, (dy, dW share)), dx), kept columns)`.
type TaskItem<'a> = (
    ((usize, (&'a [f32], &'a mut [f32])), Option<&'a mut [f32]>),
    Option<&'a mut [f32]>,
);

/// Shapes of one forward/backward: geometry, batch, output channels and grouping.
#[derive(Clone, Copy, Debug)]
struct Plan {
    geom: ConvGeometry,
    /// Batch size `N`.
    n: usize,
    /// Output channels.
    cout: usize,
    /// Images per group `G` (the last group may have fewer).
    group: usize,
    /// Groups per backward task (the last task may have fewer).
    task_groups: usize,
    /// Whether forward's column matrices are kept for backward.
    keep_cols: bool,
}

impl Plan {
    /// Groups the batch by the shapes only (determinism: it fixes how `dW` is summed).
    fn new(geom: ConvGeometry, n: usize, cout: usize, keep_cols_max: usize) -> Self {
        let group = group_size(n, &geom);
        let groups = n.div_ceil(group);
        let per_image = geom.col_rows() * geom.col_cols();
        let tasks = if n * cout * per_image >= TASK_MIN_WORK {
            TASKS.min(groups)
        } else {
            1
        };
        Plan {
            geom,
            n,
            cout,
            group,
            task_groups: groups.div_ceil(tasks.max(1)).max(1),
            // A pointwise group of one image is its own column matrix: keep the input.
            keep_cols: n * per_image <= keep_cols_max && !(group == 1 && geom.is_pointwise()),
        }
    }
    /// Whether a group of `gs` images is its own column matrix (one image, a 1×1 window
    /// at stride 1) and no columns are kept: the GEMM then reads `x` and writes `dx` as
    /// they are, with no im2col or col2im.
    fn direct(&self, gs: usize) -> bool {
        gs == 1 && !self.keep_cols && self.geom.is_pointwise()
    }
    fn p(&self) -> usize {
        self.geom.col_cols()
    }
    fn groups(&self) -> usize {
        self.n.div_ceil(self.group)
    }
    /// Images per backward task (the last task may have fewer).
    fn task_images(&self) -> usize {
        self.task_groups * self.group
    }
    fn tasks(&self) -> usize {
        self.n.div_ceil(self.task_images())
    }

    /// `cols[R, G·P] = [im2col(x[j]) for j in group]` for a group's input `xs[G, C, H, W]`.
    fn im2col_group(&self, xs: &[f32], gs: usize, cols: &mut [f32]) {
        let (p, len) = (self.p(), self.geom.input_len());
        for j in 0..gs {
            k::im2col(&self.geom, &xs[j * len..], &mut cols[j * p..], gs * p);
        }
    }
}

/// A 2-D convolution with a `KH×KW` kernel (square unless built by [`Conv2d::rect`]),
/// stride, zero padding (per axis) and bias.
pub struct Conv2d {
    in_channels: usize,
    out_channels: usize,
    /// Kernel height `KH`.
    kernel: usize,
    /// Kernel width `KW`.
    kernel_w: usize,
    stride: usize,
    /// Zero padding above and below.
    padding: usize,
    /// Zero padding left and right.
    pad_w: usize,
    /// `[N, C, H+2PH, W+2PW]`: the padded input when the padding is uneven (module docs).
    padded: Tensor,
    /// `[N, C, H, W]`: the cropped input gradient when the padding is uneven.
    grad_cropped: Tensor,
    has_bias: bool,
    /// Whether the layer applies a ReLU to its output (a ReLU layer folded in for
    /// inference: [`Layer::absorb_relu`]); the bias and the ReLU then go in one pass.
    relu: bool,
    /// Whether the layer also applies the ReLU layer that follows it in a
    /// [`crate::Sequential`], which then skips that layer ([`Layer::fuse_next_relu`]):
    /// the same as `relu` at run time, but not part of the spec or the kind.
    fused_relu: bool,
    /// `[N, Cout, OH, OW]`: `dy · [y > 0]` when `relu` or `fused_relu`.
    grad_masked: Tensor,
    /// Whether the last im2col forward was an evaluation pass (which keeps nothing).
    last_eval: bool,
    /// The weight packed for the GEMM by an evaluation pass, reused by the next ones
    /// while the weights stay unchanged (cleared with Winograd's cache).
    packed: Option<k::PackedA>,
    /// `[Cout, C, K, K]`, allocated by `init`.
    weight: Vec<f32>,
    /// `[Cout]`
    bias: Vec<f32>,
    grad_weight: Vec<f32>,
    grad_bias: Vec<f32>,
    /// Shapes of the last forward.
    plan: Option<Plan>,
    /// Most column floats kept from forward to backward.
    keep_cols_max: usize,
    /// `[groups][R, G·P]`: forward's column matrices when kept (see the module docs),
    /// reused by backward for `dcols`.
    cols: Vec<f32>,
    /// `[N, C, H, W]`: a copy of forward's input when the columns are not kept.
    input: Vec<f32>,
    /// `[groups][Cout, R]`: each group's share of `dW`, added in group order.
    partials: Vec<f32>,
    output: Tensor,
    grad_input: Tensor,
    /// The algorithm asked for (default [`ConvAlgo::Auto`]).
    algo: ConvAlgo,
    /// Winograd's buffers, and whether the last forward used it.
    wino: Winograd,
    /// The direct path's buffers, and whether the last forward used it.
    direct: Direct,
}

impl Conv2d {
    /// `in_channels → out_channels` with a `kernel×kernel` window, stride 1, no padding.
    /// The parameters are allocated when the model is built.
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        Conv2d {
            in_channels,
            out_channels,
            kernel,
            kernel_w: kernel,
            stride: 1,
            padding: 0,
            pad_w: 0,
            padded: Tensor::default(),
            grad_cropped: Tensor::default(),
            has_bias: true,
            relu: false,
            fused_relu: false,
            grad_masked: Tensor::default(),
            last_eval: false,
            packed: None,
            weight: Vec::new(),
            bias: Vec::new(),
            grad_weight: Vec::new(),
            grad_bias: Vec::new(),
            plan: None,
            keep_cols_max: KEEP_COLS_MAX,
            cols: Vec::new(),
            input: Vec::new(),
            partials: Vec::new(),
            output: Tensor::default(),
            grad_input: Tensor::default(),
            algo: ConvAlgo::Auto,
            wino: Winograd::default(),
            direct: Direct::default(),
        }
    }

    /// Sets the algorithm: [`ConvAlgo::Auto`] (default, by shape), im2col + GEMM, or a
    /// Winograd tile size (which applies to 3×3 stride-1 layers with padding ≤ 2; others
    /// keep im2col).
    pub fn algorithm(mut self, algo: ConvAlgo) -> Self {
        self.algo = algo;
        self
    }

    fn dims(&self, h: usize, w: usize) -> ConvDims {
        ConvDims {
            cin: self.in_channels,
            cout: self.out_channels,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            height: h,
            width: w,
        }
    }

    /// `in_channels → out_channels` with a `kh×kw` window (PyTorch's
    /// `Conv2d(cin, cout, (kh, kw))`), stride 1, no padding.
    pub fn rect(in_channels: usize, out_channels: usize, (kh, kw): (usize, usize)) -> Self {
        let mut conv = Conv2d::new(in_channels, out_channels, kh);
        conv.kernel_w = kw;
        conv
    }

    /// Sets the zero padding per axis: `ph` rows above and below, `pw` columns left and
    /// right (PyTorch's `padding=(ph, pw)`).
    pub fn padding2(mut self, (ph, pw): (usize, usize)) -> Self {
        self.padding = ph;
        self.pad_w = pw;
        self
    }

    /// Whether the padding differs per axis (then forward pads the input itself).
    fn uneven(&self) -> bool {
        self.padding != self.pad_w
    }

    /// Whether the kernel or the padding differ per axis (a layer the GPU path and
    /// old model files do not know).
    fn rectangular(&self) -> bool {
        self.kernel != self.kernel_w || self.uneven()
    }

    /// `x[N, C, H, W]` copied into `padded[N, C, H+2PH, W+2PW]` (zeros around), taken out
    /// of `self.padded` (forward puts it back).
    fn pad_input(&mut self, x: &Tensor) -> Tensor {
        let &[n, c, h, w] = x.shape() else {
            unreachable!("shape checked when the model was built")
        };
        let (ph, pw) = (self.padding, self.pad_w);
        let (hp, wp) = (h + 2 * ph, w + 2 * pw);
        let mut padded = std::mem::take(&mut self.padded);
        padded.reshape_to(&[n, c, hp, wp]);
        padded.data_mut().fill(0.0);
        let planes = padded.data_mut().chunks_exact_mut(hp * wp);
        for (dst, src) in planes.zip(x.data().chunks_exact(h * w)) {
            for (r, row) in src.chunks_exact(w).enumerate() {
                dst[(r + ph) * wp + pw..][..w].copy_from_slice(row);
            }
        }
        padded
    }

    /// The input gradient to return: `grad_input` itself, or with uneven padding, cropped
    /// from `[N, C, H+2PH, W+2PW]` to `[N, C, H, W]`.
    fn crop_grad(&mut self, need_input_grad: bool) -> &Tensor {
        if !self.uneven() || !need_input_grad {
            return &self.grad_input;
        }
        let &[n, c, hp, wp] = self.grad_input.shape() else {
            unreachable!("set by backward")
        };
        let (ph, pw) = (self.padding, self.pad_w);
        let (h, w) = (hp - 2 * ph, wp - 2 * pw);
        self.grad_cropped.reshape_to(&[n, c, h, w]);
        let planes = self.grad_cropped.data_mut().chunks_exact_mut(h * w);
        for (dst, src) in planes.zip(self.grad_input.data().chunks_exact(hp * wp)) {
            for (r, row) in dst.chunks_exact_mut(w).enumerate() {
                row.copy_from_slice(&src[(r + ph) * wp + pw..][..w]);
            }
        }
        &self.grad_cropped
    }

    /// Sets the stride (both directions).
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    /// With `false`, the layer has no bias (as before a batch norm, which has its own shift).
    pub fn bias(mut self, on: bool) -> Self {
        self.has_bias = on;
        self
    }

    /// Caps the column-matrix floats kept from forward for backward (default
    /// 256 Ki floats, 1 MiB); above it forward keeps a copy of its input instead and
    /// backward recomputes the columns. Results are the same bit for bit either way.
    pub fn keep_cols_max(mut self, floats: usize) -> Self {
        self.keep_cols_max = floats;
        self
    }

    /// Sets the zero padding on every side.
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self.pad_w = padding;
        self
    }

    /// Rebuilds a layer from [`Layer::spec`]'s description.
    /// A square layer has `kernel` and `padding`; a rectangular or unevenly padded one
    /// `kernel_h`, `kernel_w`, `pad_h` and `pad_w` instead.
    pub(crate) fn from_spec(s: &Spec) -> Result<Self, String> {
        let (cin, cout) = (s.get_int("in_channels")?, s.get_int("out_channels")?);
        let conv = if s.get_int("kernel_h").is_ok() {
            Conv2d::rect(cin, cout, (s.get_int("kernel_h")?, s.get_int("kernel_w")?))
                .padding2((s.get_int("pad_h")?, s.get_int("pad_w")?))
        } else {
            Conv2d::new(cin, cout, s.get_int("kernel")?).padding(s.get_int("padding")?)
        };
        let mut conv = conv.stride(s.get_int("stride")?).bias(s.get_flag("bias")?);
        // Absent in files from before the ReLU could be folded in.
        conv.relu = match s.setting("relu") {
            Ok(_) => s.get_flag("relu")?,
            Err(_) => false,
        };
        Ok(conv)
    }

    /// `[Cout, C, K, K]` and its element count, checked.
    fn weight_shape(&self) -> Result<([usize; 4], usize), String> {
        let (cout, cin) = (self.out_channels, self.in_channels);
        let shape = [cout, cin, self.kernel, self.kernel_w];
        Ok((shape, checked_product(&shape, "Conv2d weight")?))
    }

    /// The im2col geometry for an `h×w` input (already padded when the padding is uneven).
    fn geometry(&self, h: usize, w: usize) -> ConvGeometry {
        ConvGeometry {
            channels: self.in_channels,
            height: h,
            width: w,
            kernel_h: self.kernel,
            kernel_w: self.kernel_w,
            stride: self.stride,
            padding: if self.uneven() { 0 } else { self.padding },
        }
    }
}

impl Conv2d {
    /// Backward of the convolution itself (bias included, no ReLU).
    fn backward_linear(&mut self, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        if self.wino.active() {
            let (gw, gb, gi) = (
                &mut self.grad_weight,
                &mut self.grad_bias,
                &mut self.grad_input,
            );
            self.wino
                .backward(grad_out, &self.weight, gw, gb, need_input_grad, gi);
            return &self.grad_input;
        }
        if self.direct.active() {
            let grads = (&mut self.grad_weight[..], &mut self.grad_bias[..]);
            let gi = &mut self.grad_input;
            self.direct
                .backward(grad_out, &self.weight, grads, need_input_grad, gi);
            return self.crop_grad(need_input_grad);
        }
        let plan = self.plan.expect("Conv2d::backward called before forward");
        assert!(
            !self.last_eval,
            "Conv2d::backward after an evaluation-mode forward (which keeps nothing)"
        );
        let g = plan.geom;
        let (n, cout, tasks) = (plan.n, plan.cout, plan.tasks());
        let (rows, p, len) = (g.col_rows(), g.col_cols(), g.input_len());
        let dy = grad_out.data();
        // db = Σ_n rowsums(dy[n]), in image order.
        if !self.grad_bias.is_empty() {
            for (i, dyi) in dy.chunks(cout * p).enumerate() {
                k::sum_rows(dyi, p, &mut self.grad_bias, i > 0);
            }
        }
        if need_input_grad {
            self.grad_input
                .reshape_to(&[n, g.channels, g.height, g.width]);
        }
        // With one task its share of dW is dW itself.
        let dw_all: &mut [f32] = if tasks == 1 {
            &mut self.grad_weight
        } else {
            self.partials.resize(tasks * cout * rows, 0.0);
            &mut self.partials
        };
        let (weight, input) = (&self.weight, &self.input);
        // One group of `gs` images, given dy[gs, Cout, P] and, unless `fresh`, its columns:
        // dY' = gather(dy); dW (=|+=) dY'·colsᵀ; dcols = Wᵀ·dY'; dx = col2im(dcols).
        let group = |xs: &[f32],
                     dys: &[f32],
                     dw: &mut [f32],
                     acc: bool,
                     dx: Option<&mut [f32]>,
                     cols: &mut [f32],
                     fresh: bool| {
            let gs = dys.len() / (cout * p);
            let direct = plan.direct(gs);
            if fresh && !direct {
                plan.im2col_group(xs, gs, cols);
            }
            let np = gs * p;
            let body = |dyg: &[f32], cols: &mut [f32]| {
                let x_cols: &[f32] = if direct { xs } else { cols };
                k::gemm(cout, np, rows, dyg, np, 1, x_cols, 1, np, dw, rows, acc);
                match dx {
                    Some(dx) if direct => {
                        k::gemm(rows, cout, np, weight, 1, rows, dyg, np, 1, dx, np, false)
                    }
                    Some(dx) => {
                        k::gemm(rows, cout, np, weight, 1, rows, dyg, np, 1, cols, np, false);
                        for (j, dxj) in dx.chunks_exact_mut(len).enumerate() {
                            k::col2im(&g, &cols[j * p..], np, dxj);
                        }
                    }
                    None => {}
                }
            };
            if gs == 1 {
                return body(dys, cols);
            }
            with_scratch(cout * np, |dyg| {
                for (j, d) in dys.chunks_exact(cout * p).enumerate() {
                    for (co, row) in d.chunks_exact(p).enumerate() {
                        dyg[co * np + j * p..][..p].copy_from_slice(row);
                    }
                }
                body(dyg, cols)
            });
        };
        // One task: its groups in order, accumulating into its share of dW.
        let ti = plan.task_images();
        let gsz = plan.group;
        let task = |(((t, (dys, dw)), dx), cols): TaskItem<'_>| {
            let mut dxs = dx.map(|d| d.chunks_mut(gsz * len));
            let mut colss = cols.map(|c| c.chunks_mut(gsz * rows * p));
            for (i, dyg) in dys.chunks(gsz * cout * p).enumerate() {
                let gs = dyg.len() / (cout * p);
                let dx = dxs.as_mut().and_then(|it| it.next());
                let x0 = (t * ti + i * gsz) * len;
                let xs = input.get(x0..x0 + gs * len).unwrap_or(&[]);
                match colss.as_mut().and_then(|it| it.next()) {
                    Some(c) => group(xs, dyg, dw, i > 0, dx, c, false),
                    None => {
                        let scratch = if plan.direct(gs) { 0 } else { rows * gs * p };
                        with_scratch(scratch, |c| group(xs, dyg, dw, i > 0, dx, c, true))
                    }
                }
            }
        };
        let min_len = if tasks > 1 && rayon::current_num_threads() > 1 {
            1
        } else {
            usize::MAX
        };
        let it = dy
            .par_chunks(ti * cout * p)
            .zip(dw_all.par_chunks_mut(cout * rows))
            .enumerate();
        let dxs = if need_input_grad {
            Either::Left(
                self.grad_input
                    .data_mut()
                    .par_chunks_mut(ti * len)
                    .map(Some),
            )
        } else {
            Either::Right((0..tasks).into_par_iter().map(|_| None))
        };
        let cols = if plan.keep_cols {
            Either::Left(self.cols.par_chunks_mut(ti * rows * p).map(Some))
        } else {
            Either::Right((0..tasks).into_par_iter().map(|_| None))
        };
        // `with_min_len(usize::MAX)` keeps the loop on the calling thread.
        it.zip(dxs).zip(cols).with_min_len(min_len).for_each(task);
        if tasks > 1 {
            // dW = dW_0 + dW_1 + …, in task order.
            let (first, rest) = self.partials.split_at(cout * rows);
            self.grad_weight.copy_from_slice(first);
            for part in rest.chunks_exact(cout * rows) {
                self.grad_weight
                    .iter_mut()
                    .zip(part)
                    .for_each(|(d, s)| *d += s);
            }
        }
        self.crop_grad(need_input_grad)
    }
}

impl Layer for Conv2d {
    fn describe(&self) -> String {
        let pad = if self.uneven() {
            format!("{}×{}", self.padding, self.pad_w)
        } else {
            self.padding.to_string()
        };
        format!(
            "Conv2d({}→{}, {}×{}, stride {}, pad {pad}{}{})",
            self.in_channels,
            self.out_channels,
            self.kernel,
            self.kernel_w,
            self.stride,
            if self.has_bias { "" } else { ", no bias" },
            if self.relu { ", +ReLU" } else { "" },
        )
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let &[c, h, w] = input else {
            return Err(format!("expects [C, H, W] items, got {input:?}"));
        };
        if c != self.in_channels {
            return Err(format!(
                "expects {} input channels, got {c}",
                self.in_channels
            ));
        }
        if self.stride == 0 || self.kernel == 0 || self.kernel_w == 0 || self.out_channels == 0 {
            return Err("kernel, stride and output channels must be at least 1".into());
        }
        self.weight_shape()?;
        let padded = |side: usize, pad: usize| {
            pad.checked_mul(2)
                .and_then(|p| p.checked_add(side))
                .ok_or_else(|| format!("padding {pad} overflows"))
        };
        let (hp, wp) = (padded(h, self.padding)?, padded(w, self.pad_w)?);
        if hp < self.kernel || wp < self.kernel_w {
            return Err(format!(
                "{}×{} kernel does not fit a {h}×{w} input with padding {}×{}",
                self.kernel, self.kernel_w, self.padding, self.pad_w
            ));
        }
        let g = if self.uneven() {
            self.geometry(hp, wp)
        } else {
            self.geometry(h, w)
        };
        Ok(vec![self.out_channels, g.out_h(), g.out_w()])
    }

    fn init(&mut self, rng: &mut dyn Rng) -> Result<(), String> {
        let (_, wlen) = self.weight_shape()?;
        let blen = if self.has_bias { self.out_channels } else { 0 };
        if self.weight.len() != wlen {
            self.weight = try_zeros(wlen, "Conv2d weight")?;
            self.grad_weight = try_zeros(wlen, "Conv2d weight gradient")?;
        }
        if self.bias.len() != blen {
            self.bias = try_zeros(blen, "Conv2d bias")?;
            self.grad_bias = try_zeros(blen, "Conv2d bias gradient")?;
        }
        let fan_in = wlen / self.out_channels.max(1);
        self.wino.invalidate();
        self.packed = None;
        init_uniform(&mut self.weight, fan_in, rng);
        init_uniform(&mut self.bias, fan_in, rng);
        Ok(())
    }

    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor {
        // With uneven padding, convolve a padded copy without padding (module docs).
        let padded = self.uneven().then(|| self.pad_input(x));
        let x = padded.as_ref().unwrap_or(x);
        let (n, h, w) = (x.shape()[0], x.shape()[2], x.shape()[3]);
        // Winograd runs square kernels with the same padding both ways.
        let dims = self.dims(h, w);
        let geom = self.geometry(h, w);
        let relu = self.relu || self.fused_relu;
        if choose_direct(self.algo, &geom, self.out_channels) {
            self.plan = None;
            self.wino.clear();
            let (wt, b, out) = (&self.weight, &self.bias, &mut self.output);
            self.direct.forward(geom, x, (wt, b, relu), mode, out);
            if let Some(p) = padded {
                self.padded = p;
            }
            return &self.output;
        }
        self.direct.clear();
        let tile = choose_for(self.algo, dims, n, mode);
        if let Some(tile) = tile.filter(|_| !self.rectangular()) {
            self.plan = None;
            let (wt, b, out) = (&self.weight, &self.bias, &mut self.output);
            self.wino.forward(tile, dims, x, (wt, b, relu), mode, out);
            return &self.output;
        }
        self.wino.clear();
        let cout = self.out_channels;
        let (rows, p, len) = (geom.col_rows(), geom.col_cols(), geom.input_len());
        // An evaluation pass keeps nothing for backward (no columns, no input copy).
        let mut plan = Plan::new(geom, n, cout, self.keep_cols_max);
        let eval = mode == Mode::Eval;
        self.last_eval = eval;
        if eval {
            plan.keep_cols = false;
        }
        self.plan = Some(plan);
        self.output
            .reshape_to(&[n, cout, geom.out_h(), geom.out_w()]);
        if plan.keep_cols {
            self.cols.resize(n * rows * p, 0.0);
        } else if !eval {
            self.input.clear();
            self.input.extend_from_slice(x.data());
        }
        if eval && self.packed.is_none() {
            self.packed = Some(k::PackedA::new(cout, rows, &self.weight, rows, 1));
        }
        let packed = if eval { self.packed.as_ref() } else { None };
        let (weight, bias, gsz) = (&self.weight, &self.bias, plan.group);
        // Whether evaluation makes a group's columns as the GEMM packs them: when the
        // matrix is large enough that storing it costs trips to memory.
        let made = |gs: usize| {
            let pa = packed.filter(|pa| pa.packs_made_b());
            pa.is_some() && !plan.direct(gs) && rows * gs * p >= MADE_MIN_COLS
        };
        // Y'[Cout, G·P] = W · cols[R, G·P] for a group xs[G, C, H, W], cols = im2col(xs):
        // written to `cols` for training (backward reads it), made by the GEMM's packing
        // in evaluation, and xs itself when the group is its own column matrix.
        let product = |xs: &[f32], gs: usize, cols: &mut [f32], y: &mut [f32]| {
            let np = gs * p;
            let direct = plan.direct(gs);
            match packed {
                Some(pa) if direct => k::gemm_packed_a(pa, np, xs, np, 1, y, np, false),
                Some(pa) if made(gs) => {
                    let src = k::Im2colPanels { geom, x: xs };
                    k::gemm_packed_a_made(pa, np, &src, y, np, false)
                }
                Some(pa) => {
                    plan.im2col_group(xs, gs, cols);
                    k::gemm_packed_a(pa, np, cols, np, 1, y, np, false)
                }
                None => {
                    let cols: &[f32] = if direct {
                        xs
                    } else {
                        plan.im2col_group(xs, gs, cols);
                        cols
                    };
                    k::gemm(cout, rows, np, weight, rows, 1, cols, np, 1, y, np, false)
                }
            }
        };
        // One group of `gs` images: Y' = W·im2col(xs); ys = scatter(Y') + b.
        let run = |xs: &[f32], ys: &mut [f32], cols: &mut [f32]| {
            let gs = xs.len() / len;
            if gs == 1 {
                product(xs, 1, cols, ys);
                k::bias_act_rows(ys, bias, p, relu);
                return;
            }
            with_scratch(cout * gs * p, |yb| {
                product(xs, gs, cols, yb);
                for (j, y) in ys.chunks_exact_mut(cout * p).enumerate() {
                    for (co, yrow) in y.chunks_exact_mut(p).enumerate() {
                        let src = &yb[co * gs * p + j * p..][..p];
                        let b = bias.get(co).copied().unwrap_or(0.0);
                        match relu {
                            true => yrow
                                .iter_mut()
                                .zip(src)
                                .for_each(|(d, s)| *d = k::relu(s + b)),
                            false => yrow.iter_mut().zip(src).for_each(|(d, s)| *d = s + b),
                        }
                    }
                }
            });
        };
        let groups = plan.groups();
        let min_len = if groups > 1 && plan.tasks() > 1 && rayon::current_num_threads() > 1 {
            1
        } else {
            usize::MAX
        };
        let it = x
            .data()
            .par_chunks(gsz * len)
            .zip(self.output.data_mut().par_chunks_mut(gsz * cout * p));
        let cols = if plan.keep_cols {
            Either::Left(self.cols.par_chunks_mut(gsz * rows * p).map(Some))
        } else {
            Either::Right((0..groups).into_par_iter().map(|_| None))
        };
        // `with_min_len(usize::MAX)` keeps the loop on the calling thread.
        it.zip(cols)
            .with_min_len(min_len)
            .for_each(|((xs, ys), cols)| match cols {
                Some(cols) => run(xs, ys, cols),
                None => {
                    // Evaluation may make the columns as the GEMM packs them.
                    let gs = xs.len() / len;
                    let stored = !made(gs) && !plan.direct(gs);
                    with_scratch(if stored { rows * gs * p } else { 0 }, |c| run(xs, ys, c))
                }
            });
        if let Some(p) = padded {
            self.padded = p;
        }
        &self.output
    }

    fn backward(&mut self, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        if !self.relu && !self.fused_relu {
            return self.backward_linear(grad_out, need_input_grad);
        }
        // A folded or fused ReLU: dy · [y > 0], then the convolution's backward.
        let mut masked = std::mem::take(&mut self.grad_masked);
        masked.reshape_to(grad_out.shape());
        k::relu_backward(self.output.data(), grad_out.data(), masked.data_mut());
        self.backward_linear(&masked, need_input_grad);
        self.grad_masked = masked;
        self.crop_grad(need_input_grad)
    }

    fn visit_params(&mut self, prefix: &mut String, f: &mut ParamVisitor<'_>) {
        // The weights may change: Winograd's cached filter transform is stale.
        self.wino.invalidate();
        self.packed = None;
        let (cout, cin, k) = (self.out_channels, self.in_channels, self.kernel);
        let weight = Weights {
            shape: vec![cout, cin, k, self.kernel_w],
            value: &mut self.weight,
            grad: &mut self.grad_weight,
        };
        let bias = Weights {
            shape: vec![cout],
            value: &mut self.bias,
            grad: &mut self.grad_bias,
        };
        emit_weight_bias(prefix, weight, bias, f);
    }

    fn absorb_affine(&mut self, scale: &[f32], shift: &[f32]) -> bool {
        let cout = self.out_channels;
        if self.relu
            || self.fused_relu
            || scale.len() != cout
            || shift.len() != cout
            || self.weight.is_empty()
        {
            return false;
        }
        if !self.has_bias {
            self.has_bias = true;
            self.bias = vec![0.0; cout];
            self.grad_bias = vec![0.0; cout];
        }
        let per = self.weight.len() / cout;
        for (co, w) in self.weight.chunks_exact_mut(per).enumerate() {
            w.iter_mut().for_each(|v| *v *= scale[co]);
            self.bias[co] = (self.bias[co] as f64 * scale[co] as f64 + shift[co] as f64) as f32;
        }
        self.wino.invalidate();
        self.packed = None;
        true
    }

    fn absorb_relu(&mut self) -> bool {
        self.fused_relu = false;
        !std::mem::replace(&mut self.relu, true)
    }

    fn fuse_next_relu(&mut self, on: bool) -> bool {
        self.fused_relu = on && !self.relu;
        self.fused_relu
    }

    fn replicate(&self) -> Option<Box<dyn Layer>> {
        let mut copy = Conv2d::rect(
            self.in_channels,
            self.out_channels,
            (self.kernel, self.kernel_w),
        )
        .stride(self.stride)
        .padding2((self.padding, self.pad_w))
        .algorithm(self.algo);
        copy.has_bias = self.has_bias;
        copy.relu = self.relu;
        copy.fused_relu = self.fused_relu;
        copy.keep_cols_max = self.keep_cols_max;
        copy.weight = self.weight.clone();
        copy.bias = self.bias.clone();
        copy.grad_weight = vec![0.0; self.grad_weight.len()];
        copy.grad_bias = vec![0.0; self.grad_bias.len()];
        Some(Box::new(copy))
    }

    fn visit_values(&self, prefix: &mut String, f: &mut ValueVisitor<'_>) {
        let (cout, cin, k) = (self.out_channels, self.in_channels, self.kernel);
        emit_value(
            prefix,
            ("weight", Role::Param(ParamKind::Weight)),
            &[cout, cin, k, self.kernel_w],
            &self.weight,
            f,
        );
        if self.has_bias {
            emit_value(
                prefix,
                ("bias", Role::Param(ParamKind::Bias)),
                &[cout],
                &self.bias,
                f,
            );
        }
    }

    fn num_params(&self) -> usize {
        let wlen = self.weight_shape().map_or(usize::MAX, |(_, n)| n);
        wlen.saturating_add(if self.has_bias { self.out_channels } else { 0 })
    }

    fn kind(&self) -> super::LayerKind {
        if self.rectangular() || self.relu {
            return super::LayerKind::Other;
        }
        super::LayerKind::Conv2d {
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            bias: self.has_bias,
        }
    }

    fn spec(&self) -> Spec {
        let spec = Spec::new("Conv2d")
            .int("in_channels", self.in_channels)
            .int("out_channels", self.out_channels);
        // Only a folded model has the setting, so older readers see nothing new.
        let spec = match self.relu {
            true => spec.flag("relu", true),
            false => spec,
        };
        if self.rectangular() {
            return spec
                .int("kernel_h", self.kernel)
                .int("kernel_w", self.kernel_w)
                .int("stride", self.stride)
                .int("pad_h", self.padding)
                .int("pad_w", self.pad_w)
                .flag("bias", self.has_bias);
        }
        spec.int("kernel", self.kernel)
            .int("stride", self.stride)
            .int("padding", self.padding)
            .flag("bias", self.has_bias)
    }
}
