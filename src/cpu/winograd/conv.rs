//! Whole-batch Winograd convolution: forward, input gradient, weight gradient.
//!
//! The batch is cut into *blocks* by the shapes alone (`Plan`): a block is `cb` chunks of
//! 8 images ([`LANES`]) and a range of `rb` tile rows, so that its GEMMs are about
//! `COLS_TARGET` columns wide. Per block, with `cols` its tile columns:
//!
//! ```text
//! V  = input transform of the block's tiles          [α²][C, cols]
//! M[t] = U[t] · V[t]                    t < α²        [Cout, C]·[C, cols]
//! y  = output transform of M (+ bias)                 scattered back to NCHW
//! ```
//!
//! Blocks of different images run in parallel. The weight gradient sums over blocks: the
//! blocks are dealt to `TASKS` tasks (a constant, not the thread count), each task adds
//! its blocks' `dM[t] · V[t]ᵀ` in block order, applies the adjoint filter transform, and the
//! tasks' shares of `dW` are added in task order. So every result is the same bit for bit
//! whatever the thread count.

use super::Tile;
use super::lanes::{self, Cols, LANES};
use crate::cpu::gemm::{PackedA, gemm, gemm_packed_a};
use rayon::prelude::*;
use std::cell::RefCell;

/// Columns (tiles × lanes) a block's GEMMs aim for: wide enough to amortise packing `U[t]`,
/// narrow enough that a block's `V` stays near the cache.
const COLS_TARGET: usize = 256;
/// Most floats of a block's `V` (or `M`), 4 Mi floats = 16 MiB, above which blocks are
/// narrower than [`COLS_TARGET`].
const BLOCK_FLOATS: usize = 4 << 20;
/// Floats added between the points' planes of `V`, `M` and the weight gradient's `dU`: with
/// 2ᵏ channels and columns the planes would be 2ᵏ floats apart (`dU` at 128×128 channels:
/// 64 KiB), and the transforms, which touch all `α²` planes per tile (per filter, for the
/// adjoint filter transform of `dU`), would hit one cache set over and over: `α² = 36`
/// streams in one set of a 12-way L1 and a 16-way L2 evict each other before a line's
/// other floats are read. One cache line (16 floats) of offset per plane puts plane `t` `t`
/// sets further on, and the planes stay 64-byte aligned. The offset changes no arithmetic.
const PLANE_PAD: usize = 16;
/// Weight-gradient tasks (each with its own share of `dW`): fixed, so that the summation
/// order does not depend on the thread count.
const TASKS: usize = 4;

/// A 3×3, stride-1 convolution layer's shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Input channels `C`.
    pub channels: usize,
    /// Input height `H`.
    pub height: usize,
    /// Input width `W`.
    pub width: usize,
    /// Zero padding `p` on every side (0, 1 or 2).
    pub padding: usize,
    /// Output channels `Cout`.
    pub out_channels: usize,
    /// The tile size.
    pub tile: Tile,
}

impl Shape {
    /// Whether Winograd handles this shape: padding at most 2 (the input gradient runs with
    /// padding `2 − p`) and at least one output.
    pub fn supported(&self) -> bool {
        self.padding <= 2
            && self.height + 2 * self.padding >= 3
            && self.width + 2 * self.padding >= 3
    }
    /// Output height `H + 2p − 2`.
    pub fn out_h(&self) -> usize {
        self.height + 2 * self.padding - 2
    }
    /// Output width `W + 2p − 2`.
    pub fn out_w(&self) -> usize {
        self.width + 2 * self.padding - 2
    }
    /// Tile rows `⌈OH/m⌉`.
    pub fn tiles_h(&self) -> usize {
        self.out_h().div_ceil(self.tile.m())
    }
    /// Tiles per row `⌈OW/m⌉`.
    pub fn tiles_w(&self) -> usize {
        self.out_w().div_ceil(self.tile.m())
    }
    /// Floats of one input image, `C·H·W`.
    pub fn input_len(&self) -> usize {
        self.channels * self.height * self.width
    }
    /// Floats of one output image, `Cout·OH·OW`.
    pub fn output_len(&self) -> usize {
        self.out_channels * self.out_h() * self.out_w()
    }
    /// Floats of the transformed filter `U[α²][Cout][C]`.
    pub fn filter_len(&self) -> usize {
        self.tile.points() * self.out_channels * self.channels
    }
    /// The convolution that computes the input gradient: `dy[Cout, OH, OW]` → `dx[C, H, W]`
    /// with the flipped filter and padding `2 − p`.
    pub fn transposed(&self) -> Shape {
        Shape {
            channels: self.out_channels,
            height: self.out_h(),
            width: self.out_w(),
            padding: 2 - self.padding,
            out_channels: self.channels,
            tile: self.tile,
        }
    }
}

/// How a batch is cut into blocks (shapes only).
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Tile rows per block.
    rb: usize,
    /// Chunks of 8 images per block.
    cb: usize,
}

impl Plan {
    fn new(s: &Shape, n: usize) -> Plan {
        let row_cols = s.tiles_w() * LANES;
        let widest = s.channels.max(s.out_channels) * s.tile.points();
        let target = COLS_TARGET.min((BLOCK_FLOATS / widest.max(1)).max(row_cols));
        let rb = (target / row_cols).clamp(1, s.tiles_h());
        // At least `TASKS` blocks where the batch has the chunks (small maps would otherwise
        // put a whole batch in one block: one thread's work).
        let chunks = n.div_ceil(LANES).max(1);
        let cb = if rb < s.tiles_h() {
            1
        } else {
            (target / (rb * row_cols)).clamp(1, chunks.div_ceil(TASKS))
        };
        Plan { rb, cb }
    }
    /// Images per block.
    fn images(&self) -> usize {
        self.cb * LANES
    }
}

thread_local! {
    /// Per-thread scratch vectors for [`with_scratch`]: a stack, so nested calls (rayon
    /// work-stealing inside a parallel GEMM) take other vectors.
    static SCRATCH: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a scratch slice of `len` floats from this thread's stack (contents stale).
pub(super) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut v = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    if v.len() < len {
        v.resize(len, 0.0);
    }
    let r = f(&mut v[..len]);
    SCRATCH.with(|s| s.borrow_mut().push(v));
    r
}

/// One block's tile-row range and tile columns: `(rows, columns per chunk)`.
fn row_blocks(s: &Shape, p: &Plan) -> impl Iterator<Item = ((usize, usize), usize)> {
    let (th, tw) = (s.tiles_h(), s.tiles_w());
    (0..th).step_by(p.rb).map(move |t0| {
        (
            (t0, (t0 + p.rb).min(th)),
            ((t0 + p.rb).min(th) - t0) * tw * LANES,
        )
    })
}

/// Floats between the points' planes of a `[α²][rows, cols]` buffer: `rows·cols` plus
/// [`PLANE_PAD`].
fn plane(rows: usize, cols: usize) -> usize {
    rows * cols + PLANE_PAD
}

/// Input transform of a block's images `xb[imgs][C][H][W]` into `v[α²][C][cols]` (planes
/// [`plane`] apart).
fn transform_inputs(s: &Shape, xb: &[f32], rows: (usize, usize), chunk_cols: usize, v: &mut [f32]) {
    let imgs = xb.len() / s.input_len();
    let cols = imgs.div_ceil(LANES) * chunk_cols;
    with_scratch(lanes::staging_len(s, rows.1 - rows.0), |pk| {
        for (k, xs) in xb.chunks(LANES * s.input_len()).enumerate() {
            let at = Cols {
                plane: plane(s.channels, cols),
                ld: cols,
                col0: k * chunk_cols,
            };
            let gs = xs.len() / s.input_len();
            lanes::input_chunk(s.tile, s, xs, gs, rows, pk, v, at);
        }
    });
}

/// Forward: `y[N][Cout][OH][OW] = conv(x[N][C][H][W]) + bias` from the transformed filter
/// `u[α²][Cout][C]` ([`super::filter_transform`]); `bias` is `[Cout]` or empty.
pub fn forward(s: &Shape, n: usize, x: &[f32], u: &[f32], bias: &[f32], y: &mut [f32]) {
    forward_act(s, n, x, (u, None), bias, false, y)
}

/// [`forward`], then with `relu` `y = max(y, 0)`, applied to each block of output rows
/// right after its output transform wrote it (while it is in cache). With `packed`, the
/// `α²` matrices `U[t]` packed ahead ([`PackedA`], the same values as `u`), so that the
/// GEMMs do not pack them again for every block (inference).
pub fn forward_act(
    s: &Shape,
    n: usize,
    x: &[f32],
    (u, packed): (&[f32], Option<&[PackedA]>),
    bias: &[f32],
    relu: bool,
    y: &mut [f32],
) {
    let p = Plan::new(s, n);
    let (cin, cout, pts) = (s.channels, s.out_channels, s.tile.points());
    let (il, ol) = (s.input_len(), s.output_len());
    assert!(x.len() >= n * il && y.len() >= n * ol && u.len() >= s.filter_len());
    let per = p.images();
    // Fewer blocks than threads (a small batch, or the strips of one image at
    // evaluation): spread each block's products over the threads instead.
    let spread_points = n.div_ceil(per) < rayon::current_num_threads();
    let block = |(xb, yb): (&[f32], &mut [f32])| {
        let imgs = xb.len() / il;
        let chunks = imgs.div_ceil(LANES);
        for (rows, chunk_cols) in row_blocks(s, &p) {
            let cols = chunks * chunk_cols;
            with_scratch(pts * plane(cin, cols), |v| {
                transform_inputs(s, xb, rows, chunk_cols, v);
                with_scratch(pts * plane(cout, cols), |mm| {
                    // M[t] = U[t] · V[t]      [Cout, C]·[C, cols]
                    let v = &*v;
                    let product = |(t, mt): (usize, &mut [f32])| {
                        let vt = &v[t * plane(cin, cols)..];
                        match packed {
                            Some(pa) => gemm_packed_a(&pa[t], cols, vt, cols, 1, mt, cols, false),
                            None => gemm(
                                cout,
                                cin,
                                cols,
                                &u[t * cout * cin..],
                                cin,
                                1,
                                vt,
                                cols,
                                1,
                                mt,
                                cols,
                                false,
                            ),
                        }
                    };
                    if spread_points {
                        // One block for all threads: the α² products in parallel (each
                        // the same product, so the same bits, whichever thread runs it).
                        mm.par_chunks_mut(plane(cout, cols))
                            .take(pts)
                            .enumerate()
                            .for_each(product);
                    } else {
                        mm.chunks_mut(plane(cout, cols))
                            .take(pts)
                            .enumerate()
                            .for_each(product);
                    }
                    with_scratch(lanes::staging_len(s, rows.1 - rows.0), |ot| {
                        for (k, ys) in yb.chunks_mut(LANES * ol).enumerate() {
                            let at = Cols {
                                plane: plane(cout, cols),
                                ld: cols,
                                col0: k * chunk_cols,
                            };
                            let gs = ys.len() / ol;
                            lanes::output_chunk(s.tile, s, mm, at, rows, gs, bias, ot, ys);
                            if relu {
                                relu_rows(s, rows, ys);
                            }
                        }
                    });
                });
            });
        }
    };
    x[..n * il]
        .par_chunks(per * il)
        .zip(y[..n * ol].par_chunks_mut(per * ol))
        .for_each(block);
}

/// How [`forward_strips`] cuts each of `n < 8` images into horizontal strips, so that
/// the strips fill the 8 SIMD lanes that whole images would leave mostly empty, and, on
/// several threads, a chunk of 8 lanes per thread (blocks of different chunks run in
/// parallel): `(output rows per strip, strips per image)`. The rows are a multiple of the
/// tile's `m`, so the strips' tiles are the whole image's (the results do not depend on
/// the plan). `None` when the strips would not fill half the lanes of their chunks (small
/// maps: im2col is the better choice there).
pub fn strip_plan(s: &Shape, n: usize) -> Option<(usize, usize)> {
    if n == 0 || n >= LANES {
        return None;
    }
    let threads = rayon::current_num_threads().clamp(1, 4);
    let (m, oh) = (s.tile.m(), s.out_h());
    let want = (LANES * threads / n).max(1);
    let rows = oh.div_ceil(want).next_multiple_of(m);
    let strips = oh.div_ceil(rows);
    let lanes = n * strips;
    (lanes * 2 >= lanes.next_multiple_of(LANES)).then_some((rows, strips))
}

/// [`forward_act`] for a batch of fewer than 8 images, at evaluation: each image is cut
/// into [`strip_plan`]'s horizontal strips, copied out with their 2-row halo and the zero
/// padding made explicit, so that one SIMD lane holds a strip instead of a whole image.
/// The strips' tiles are the image's, so the result equals [`forward_act`]'s bit for bit.
/// `None` (nothing written) when [`strip_plan`] has no plan.
pub fn forward_strips(
    s: &Shape,
    n: usize,
    x: &[f32],
    u: (&[f32], Option<&[PackedA]>),
    bias: &[f32],
    relu: bool,
    y: &mut [f32],
) -> Option<()> {
    let (rows, strips) = strip_plan(s, n)?;
    let (c, h, w, pad) = (s.channels, s.height, s.width, s.padding);
    let (oh, ow, cout) = (s.out_h(), s.out_w(), s.out_channels);
    // A strip: rows + 2 input rows of the padded image, no padding of its own.
    let strip = Shape {
        height: rows + 2,
        width: w + 2 * pad,
        padding: 0,
        ..*s
    };
    let (sl, so) = (strip.input_len(), strip.output_len());
    let count = n * strips;
    assert!(x.len() >= n * s.input_len() && y.len() >= n * s.output_len());
    with_scratch(count * sl, |xs| {
        // xs[image·strips + j][C][rows + 2][W + 2p]: padded-image rows j·rows … j·rows + rows + 1.
        xs.par_chunks_mut(sl).enumerate().for_each(|(k, dst)| {
            let (img, j) = (k / strips, k % strips);
            let src = &x[img * s.input_len()..][..s.input_len()];
            dst.fill(0.0);
            for ch in 0..c {
                for r in 0..rows + 2 {
                    // Row of the unpadded image, when inside it.
                    let Some(ir) = (j * rows + r).checked_sub(pad).filter(|&ir| ir < h) else {
                        continue;
                    };
                    let from = &src[(ch * h + ir) * w..][..w];
                    dst[(ch * (rows + 2) + r) * strip.width + pad..][..w].copy_from_slice(from);
                }
            }
        });
        with_scratch(count * so, |ys| {
            forward_act(&strip, count, xs, u, bias, relu, ys);
            // Back into y[N][Cout][OH][OW], the last strip cropped to OH.
            y[..n * s.output_len()]
                .par_chunks_mut(s.output_len())
                .enumerate()
                .for_each(|(img, yi)| {
                    for j in 0..strips {
                        let (r0, r1) = (j * rows, ((j + 1) * rows).min(oh));
                        let from = &ys[(img * strips + j) * so..][..so];
                        for co in 0..cout {
                            let dst = &mut yi[(co * oh + r0) * ow..(co * oh + r1) * ow];
                            dst.copy_from_slice(&from[co * rows * ow..][..(r1 - r0) * ow]);
                        }
                    }
                });
        });
    });
    Some(())
}

/// `ys[gs][Cout][OH][OW] = max(ys, 0)` ([`crate::cpu::elementwise::relu`]) on the output rows of tile rows `rows.0..rows.1`.
fn relu_rows(s: &Shape, rows: (usize, usize), ys: &mut [f32]) {
    let (m, oh, ow) = (s.tile.m(), s.out_h(), s.out_w());
    let (r0, r1) = (rows.0 * m, (rows.1 * m).min(oh));
    for plane in ys.chunks_exact_mut(oh * ow) {
        for v in &mut plane[r0 * ow..r1 * ow] {
            *v = crate::cpu::elementwise::relu(*v);
        }
    }
}

/// Input gradient: `dx[N][C][H][W]` from `dy[N][Cout][OH][OW]` and the flipped transformed
/// filter `uf[α²][C][Cout]` ([`super::filter_transform`] with `flip`).
pub fn input_grad(s: &Shape, n: usize, dy: &[f32], uf: &[f32], dx: &mut [f32]) {
    forward(&s.transposed(), n, dy, uf, &[], dx)
}

/// Weight gradient: `dw[Cout][C][3][3] = Σ_n x[n] ⋆ dy[n]`, through `dU[t] = Σ dM[t]·V[t]ᵀ`
/// and the adjoint filter transform. `partials` holds each task's share (reused).
///
/// Each task accumulates its `dU[α²][Cout][C]` in a scratch whose planes are
/// `plane(Cout, C)` floats apart, padded by `PLANE_PAD` so that the adjoint filter
/// transform's `α²` simultaneous streams do not share a cache set.
pub fn weight_grad(
    s: &Shape,
    n: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    partials: &mut Vec<f32>,
) {
    let p = Plan::new(s, n);
    let (cin, cout, pts) = (s.channels, s.out_channels, s.tile.points());
    let (il, ol) = (s.input_len(), s.output_len());
    let wlen = cout * cin * 9;
    assert!(x.len() >= n * il && dy.len() >= n * ol && dw.len() >= wlen);
    let per = p.images();
    let blocks = n.div_ceil(per);
    let per_task = blocks.div_ceil(TASKS.min(blocks).max(1)).max(1);
    let tasks = blocks.div_ceil(per_task).max(1);
    partials.resize(tasks * wlen, 0.0);
    partials
        .par_chunks_mut(wlen)
        .enumerate()
        .for_each(|(ti, part)| {
            // du[α²][Cout][C], planes `plane(cout, cin)` apart (see PLANE_PAD).
            with_scratch(pts * plane(cout, cin), |du| {
                let mut first = true;
                for b in ti * per_task..((ti + 1) * per_task).min(blocks) {
                    let (i0, i1) = (b * per, ((b + 1) * per).min(n));
                    let xb = &x[i0 * il..i1 * il];
                    let dyb = &dy[i0 * ol..i1 * ol];
                    let chunks = (i1 - i0).div_ceil(LANES);
                    for (rows, chunk_cols) in row_blocks(s, &p) {
                        let cols = chunks * chunk_cols;
                        with_scratch(pts * plane(cin, cols), |v| {
                            transform_inputs(s, xb, rows, chunk_cols, v);
                            with_scratch(pts * plane(cout, cols), |dm| {
                                with_scratch(lanes::staging_len(s, rows.1 - rows.0), |pk| {
                                    for (k, dys) in dyb.chunks(LANES * ol).enumerate() {
                                        let at = Cols {
                                            plane: plane(cout, cols),
                                            ld: cols,
                                            col0: k * chunk_cols,
                                        };
                                        let gs = dys.len() / ol;
                                        lanes::grad_chunk(s.tile, s, dys, gs, rows, pk, dm, at);
                                    }
                                });
                                // dU[t] (=|+=) dM[t] · V[t]ᵀ      [Cout, cols]·[cols, C]
                                for t in 0..pts {
                                    gemm(
                                        cout,
                                        cols,
                                        cin,
                                        &dm[t * plane(cout, cols)..],
                                        cols,
                                        1,
                                        &v[t * plane(cin, cols)..],
                                        1,
                                        cols,
                                        &mut du[t * plane(cout, cin)..],
                                        cin,
                                        !first,
                                    );
                                }
                            });
                        });
                        first = false;
                    }
                }
                super::filter_adjoint(s.tile, du, plane(cout, cin), cout, cin, part);
            });
        });
    // dW = share_0 + share_1 + …, in task order.
    let (head, rest) = partials.split_at(wlen);
    dw[..wlen].copy_from_slice(head);
    for part in rest.chunks_exact(wlen) {
        dw[..wlen].iter_mut().zip(part).for_each(|(d, s)| *d += s);
    }
}
