//! The direct path of [`Conv2d`](super::Conv2d): stride-1 convolutions with few output
//! channels, by the implicit GEMM of `crate::cpu::direct` (no column matrix).
//!
//! With the input padded to `Hp×Wp` (`Hp = H + 2P`), `OH = Hp − KH + 1`, the wide rows
//! `Q = OH·Wp` and `R = C·KH·KW`:
//! - forward:  `xp[n] = pad(x[n])` kept for backward              `[N][C][Hp·Wp]` + slack
//!   `Yw = W · B(xp[n])`, `B[r][q] = xp[n][off(r) + q]`          `[Cout, R]·[R, Q]`
//!   `y[n][co][oy][ox] = Yw[co][oy·Wp + ox] + b[co]`             (junk columns dropped)
//! - backward: `dyw[n][co] = dy[n][co]` widened, junk columns 0      `[N][Cout][Q]`
//!   `dW = Σ_n dyw[n] · B(xp[n])ᵀ`                               `[Cout, Q]·[Q, R]`
//!   `dxp[n][off(r) + q] += (Wᵀ · dyw[n])[r][q]` for every tap `r`  `[R, Cout]·[Cout, Q]`
//!   `dx[n] = crop(dxp[n])`
//!
//! The input gradient is the forward's product transposed: each tap's row of `Wᵀ·dyw` is
//! added into the padded input gradient where that tap read the input (col2im's sum, done
//! as the rows are made, with no column matrix). Images are independent in forward and in
//! the input gradient (they run in parallel when worth it); `dW` sums over all images
//! inside one kernel call per block of rows, so the result does not depend on the thread
//! count.

use super::Mode;
use super::conv2d::with_scratch;
use crate::backend as k;
use crate::cpu::im2col::ConvGeometry;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Whether a layer of this geometry and output channel count should run directly (the
/// `Auto` choice): stride 1, a window larger than one pixel, and at most
/// [`DIRECT_MAX_COUT`] output channels. There the GEMM of im2col has too few rows to run
/// at speed while building its column matrix costs as much as the product (the article's
/// network: `docs/benchmarks.md`).
pub(crate) fn prefers_direct(g: &ConvGeometry, cout: usize) -> bool {
    applies(g) && cout <= DIRECT_MAX_COUT && g.kernel_h * g.kernel_w > 1
}

/// Whether the direct path can run this geometry at all (stride 1).
pub(crate) fn applies(g: &ConvGeometry) -> bool {
    g.stride == 1 && g.out_h() > 0 && g.out_w() > 0
}

/// Most output channels for which `Auto` picks the direct path.
const DIRECT_MAX_COUT: usize = 16;

/// Fewest output channels for which the weight gradient puts the channels in the lanes
/// (`shifted_gemm_bt_lanes`: no junk columns, no lane sums, but lanes beyond the
/// channel count idle) instead of the positions. A shape rule, so the same bits on any
/// thread count. At 16 channels (the article's conv2, batch 4): 13 µs against 21 µs.
const LANES_MIN_COUT: usize = 12;

/// Shapes of one direct forward.
#[derive(Clone, Copy, Debug)]
struct Shape {
    g: ConvGeometry,
    n: usize,
    cout: usize,
}

impl Shape {
    fn hp(&self) -> usize {
        self.g.height + 2 * self.g.padding
    }
    fn wp(&self) -> usize {
        self.g.width + 2 * self.g.padding
    }
    /// Floats of one padded image, `C·Hp·Wp`.
    fn frame(&self) -> usize {
        self.g.channels * self.hp() * self.wp()
    }
    /// Wide output positions `Q = OH·Wp`.
    fn q(&self) -> usize {
        self.g.out_h() * self.wp()
    }
    /// Padded input positions per channel, rounded up to whole vectors.
    fn plane(&self) -> usize {
        (self.hp() * self.wp()).next_multiple_of(k::DIRECT_Q_ALIGN)
    }
    /// Offsets of the taps `(c, ky, kx)` in a padded image.
    fn taps(&self) -> impl Iterator<Item = usize> + '_ {
        let (hp, wp) = (self.hp(), self.wp());
        (0..self.g.channels).flat_map(move |c| {
            (0..self.g.kernel_h)
                .flat_map(move |ky| (0..self.g.kernel_w).map(move |kx| c * hp * wp + ky * wp + kx))
        })
    }
}

/// The direct path's state: forward's padded input and the buffers of backward.
#[derive(Default)]
pub(crate) struct Direct {
    /// The shapes of the last forward, when it ran directly.
    active: Option<Shape>,
    /// Whether the last forward was a training one (it kept `input`).
    trained: bool,
    /// `[N][C][Hp·Wp]` and a zero tail: the padded input.
    input: Vec<f32>,
    /// `[R][Cout]`: the weights transposed.
    wt: Vec<f32>,
    /// Offsets of the `R` taps in a padded image.
    offs: Vec<usize>,
    /// `[N][Cout][Q rounded up]`: the widened output gradient, junk columns zero.
    dyp: Vec<f32>,
    /// `[KH·KW·C][Cout]`: the weights as the input gradient's matrix, taps `(ky, kx, c)`.
    wt_dx: Vec<f32>,
    /// Offsets of the input gradient's taps `(ky, kx, c)` in one image's padded input.
    offs_dx: Vec<usize>,
    /// `[N][OH·OW][Cout rounded up]`: the output gradient transposed, for the weight
    /// gradient with many channels.
    gt: Vec<f32>,
    /// Places `oy·Wp + ox` of the valid output positions in a wide row.
    pos: Vec<usize>,
    /// The weight gradient's shares of the taps when split over tasks, `[share][Cout][taps]`.
    parts: Vec<f32>,
}

impl Direct {
    /// Whether the last forward ran directly (so backward must too).
    pub fn active(&self) -> bool {
        self.active.is_some()
    }

    /// Marks the last forward as another path's.
    pub fn clear(&mut self) {
        self.active = None;
    }

    /// `out[N, Cout, OH, OW] = conv(x) + bias`, then `max(·, 0)` with `relu`, for `x` of
    /// geometry `g` (its padding applied here).
    pub fn forward(
        &mut self,
        g: ConvGeometry,
        x: &Tensor,
        (weight, bias, relu): (&[f32], &[f32], bool),
        mode: Mode,
        out: &mut Tensor,
    ) {
        let cout = weight.len() / g.col_rows().max(1);
        let s = Shape {
            g,
            n: x.shape()[0],
            cout,
        };
        self.active = Some(s);
        self.trained = mode == Mode::Train;
        let (oh, ow, wp, frame) = (g.out_h(), g.out_w(), s.wp(), s.frame());
        out.reshape_to(&[s.n, cout, oh, ow]);
        // The padded images, then a zero tail for the last image's junk columns and
        // the last vector's overhang.
        let tail = g.kernel_w + k::DIRECT_Q_ALIGN;
        self.input.clear();
        let (h, w, p) = (g.height, g.width, g.padding);
        // Evaluation keeps nothing for backward, so unpadded images are read in place:
        // all but the last few, whose reads would run past the batch (copied below).
        let in_place = if p == 0 && mode == Mode::Eval {
            s.n.saturating_sub(tail.div_ceil(frame.max(1)))
        } else {
            0
        };
        if p == 0 {
            self.input.extend_from_slice(&x.data()[in_place * frame..]);
        } else {
            self.input.resize(s.n * frame, 0.0);
            for (src, dst) in x.data().chunks_exact(w).zip(
                self.input
                    .chunks_exact_mut(s.hp() * wp)
                    .flat_map(|plane| plane.chunks_exact_mut(wp).skip(p).take(h)),
            ) {
                dst[p..p + w].copy_from_slice(src);
            }
        }
        self.input.resize((s.n - in_place) * frame + tail, 0.0);
        let r_len = g.col_rows();
        self.wt.resize(r_len * cout, 0.0);
        for (co, row) in weight.chunks_exact(r_len).enumerate() {
            for (r, &v) in row.iter().enumerate() {
                self.wt[r * cout + co] = v;
            }
        }
        self.offs.clear();
        self.offs.extend(s.taps());
        let (q, ld) = (s.q(), s.q().next_multiple_of(k::DIRECT_Q_ALIGN));
        let (wt, offs, input) = (&self.wt, &self.offs, &self.input);
        let image_at = |i: usize| match i.checked_sub(in_place) {
            Some(j) => &input[j * frame..],
            None => &x.data()[i * frame..],
        };
        // One image: Yw = W·B(xp[n]) in scratch, then its valid columns + bias (+ ReLU).
        let image = |i: usize, y: &mut [f32]| {
            with_scratch(cout * ld, |yw| {
                k::direct_shifted_gemm(wt, offs, image_at(i), q, yw, ld);
                k::crop_bias_act(yw, (ld, wp), (oh, ow), bias, relu, y);
            })
        };
        let per = cout * oh * ow;
        let ys = out.data_mut().par_chunks_mut(per).enumerate();
        if parallel(s.n, s.n * cout * r_len * q) {
            ys.for_each(|(i, y)| image(i, y));
        } else {
            ys.with_min_len(usize::MAX).for_each(|(i, y)| image(i, y));
        }
    }

    /// Sets `grad_weight`, `grad_bias` (when not empty) and, with `need_input_grad`,
    /// `grad_input[N, C, H, W]` (of the unpadded input) from `dy[N, Cout, OH, OW]`.
    pub fn backward(
        &mut self,
        dy: &Tensor,
        weight: &[f32],
        (grad_weight, grad_bias): (&mut [f32], &mut [f32]),
        need_input_grad: bool,
        grad_input: &mut Tensor,
    ) {
        let s = self.active.expect("Conv2d::backward called before forward");
        assert!(
            self.trained,
            "Conv2d::backward after an evaluation-mode forward (which keeps nothing)"
        );
        let (g, n, cout) = (s.g, s.n, s.cout);
        let (oh, ow, wp) = (g.out_h(), g.out_w(), s.wp());
        // dyp's rows: the wide rows of dy, rounded up to whole vectors.
        let row = s.q().next_multiple_of(k::DIRECT_Q_ALIGN);
        let dy = dy.data();
        // db = Σ_n rowsums(dy[n]), in image order.
        if !grad_bias.is_empty() {
            for (i, dyi) in dy.chunks(cout * oh * ow).enumerate() {
                k::sum_rows(dyi, oh * ow, grad_bias, i > 0);
            }
        }
        // dyp: each row of dy at width Wp, zeros in the junk columns (for the input
        // gradient, and for the weight gradient with few channels).
        if need_input_grad || cout < LANES_MIN_COUT {
            self.dyp.clear();
            self.dyp.resize(n * cout * row + k::DIRECT_Q_ALIGN, 0.0);
            let dyp = aligned(&mut self.dyp);
            for (src, dst) in dy.chunks_exact(oh * ow).zip(dyp.chunks_exact_mut(row)) {
                for (sr, dr) in src.chunks_exact(ow).zip(dst.chunks_mut(wp)) {
                    dr[..ow].copy_from_slice(sr);
                }
            }
        }
        let lanes = cout >= LANES_MIN_COUT;
        let mp = cout.next_multiple_of(k::DIRECT_Q_ALIGN);
        if lanes {
            // dW with the channels in the lanes: dy transposed to [N][P][Cout rounded up],
            // the valid positions listed (no junk columns).
            let p = oh * ow;
            self.gt.clear();
            self.gt.resize(n * p * mp, 0.0);
            for (dyi, gti) in dy
                .chunks_exact(cout * p)
                .zip(self.gt.chunks_exact_mut(p * mp))
            {
                for (co, row) in dyi.chunks_exact(p).enumerate() {
                    for (t, &v) in row.iter().enumerate() {
                        gti[t * mp + co] = v;
                    }
                }
            }
            self.pos.clear();
            self.pos
                .extend((0..oh).flat_map(|oy| (0..ow).map(move |ox| oy * wp + ox)));
        }
        let (gt, pos, input, frame) = (&self.gt, &self.pos, &self.input, s.frame());
        let dyp: &[f32] = aligned(&mut self.dyp);
        // dW[·][taps] for some of the taps, images CHUNK_FLOATS at a time (each chunk's
        // sums added to the last: the chunks depend on the shapes only). Every element is
        // summed the same way whatever the split of the taps, so the tasks below give the
        // same bits as one call.
        let per_image = frame + if lanes { oh * ow * mp } else { cout * row };
        let chunk_images = (CHUNK_FLOATS / per_image).max(1);
        let dw_of = |offs: &[usize], dw: &mut [f32]| {
            for i0 in (0..n).step_by(chunk_images) {
                let images = chunk_images.min(n - i0);
                let (acc, xs) = (i0 > 0, &input[i0 * frame..]);
                if lanes {
                    let sources = (xs, frame, images, offs, &pos[..]);
                    k::direct_shifted_gemm_bt_lanes(&gt[i0 * oh * ow * mp..], mp, sources, dw, acc);
                } else {
                    // dW += Σ_n dyw[n]·B(xp[n])ᵀ over the valid columns (junk columns are 0).
                    let g = &dyp[i0 * cout * row..];
                    let args = (row, cout * row);
                    k::direct_shifted_gemm_bt(g, args, xs, frame, images, offs, s.q(), dw, acc);
                }
            }
        };
        let r_len = self.offs.len();
        if parallel(r_len, n * cout * r_len * s.q()) {
            // The taps in DW_TASKS shares, one per task, each into its own `[Cout][share]`
            // block of `parts`, then gathered into dW's rows.
            let chunk = r_len.div_ceil(DW_TASKS);
            let parts = &mut self.parts;
            parts.resize(cout * r_len, 0.0);
            self.offs
                .par_chunks(chunk)
                .zip(parts.par_chunks_mut(cout * chunk))
                .for_each(|(offs, part)| dw_of(offs, part));
            for (t, part) in parts.chunks(cout * chunk).enumerate() {
                let len = part.len() / cout;
                for (co, src) in part.chunks_exact(len).enumerate() {
                    grad_weight[co * r_len + t * chunk..][..len].copy_from_slice(src);
                }
            }
        } else {
            dw_of(&self.offs, grad_weight);
        }
        if !need_input_grad {
            return;
        }
        // dxp[n][c][ky·Wp + kx + q] += Σ_co W[co][c][ky][kx] · dyw[n][co][q], the taps
        // (ky, kx, c) with the channels innermost, so that the taps of a block add into
        // different planes.
        let (c_in, kh, kw) = (g.channels, g.kernel_h, g.kernel_w);
        let plane = s.plane();
        self.wt_dx.resize(cout * kh * kw * c_in, 0.0);
        self.offs_dx.clear();
        for ky in 0..kh {
            for kx in 0..kw {
                for c in 0..c_in {
                    let r = self.offs_dx.len();
                    for co in 0..cout {
                        self.wt_dx[r * cout + co] = weight[((co * c_in + c) * kh + ky) * kw + kx];
                    }
                    self.offs_dx.push(c * plane + ky * wp + kx);
                }
            }
        }
        let (h, w, p) = (g.height, g.width, g.padding);
        grad_input.reshape_to(&[n, c_in, h, w]);
        // The last tap's rows reach past the planes by up to a row and a vector.
        let dxp_len = (c_in * plane).max(self.offs_dx.iter().max().map_or(0, |&o| o + row));
        let (wt_dx, offs_dx, dyp) = (&self.wt_dx, &self.offs_dx, aligned(&mut self.dyp));
        let image = |i: usize, dx: &mut [f32]| {
            with_scratch(dxp_len, |dxp| {
                dxp.fill(0.0);
                let dyw = (&dyp[i * cout * row..][..cout * row], row);
                k::direct_shifted_scatter(wt_dx, offs_dx, dyw, s.q(), dxp);
                for (dc, pc) in dx.chunks_exact_mut(h * w).zip(dxp.chunks(plane)) {
                    for (dr, pr) in dc.chunks_exact_mut(w).zip(pc[p * wp..].chunks(wp)) {
                        dr.copy_from_slice(&pr[p..p + w]);
                    }
                }
            })
        };
        let per = c_in * h * w;
        let dxs = grad_input.data_mut().par_chunks_mut(per).enumerate();
        if parallel(n, n * c_in * cout * kh * kw * s.q()) {
            dxs.for_each(|(i, dx)| image(i, dx));
        } else {
            dxs.with_min_len(usize::MAX)
                .for_each(|(i, dx)| image(i, dx));
        }
    }
}

/// `v` from its first 64-byte boundary on (at most 15 floats in): aligned rows of the
/// output gradient spare the weight gradient's loads from straddling cache lines.
fn aligned(v: &mut [f32]) -> &mut [f32] {
    let skip = v.as_ptr().align_offset(64).min(v.len());
    &mut v[skip..]
}

/// Whether `items` images (or shares of taps) of `work` multiply-adds in all are spread
/// over the threads: from [`PARALLEL_MIN_WORK`], or whatever the size while the pool's
/// workers poll for jobs (`crate::cpu::spin`). Handing small steps to a worker that may be
/// asleep cost more than it saved: at batch 4 the article's network ran 1.6× slower.
fn parallel(items: usize, work: usize) -> bool {
    let big = work >= PARALLEL_MIN_WORK || k::hot_pool();
    items > 1 && big && rayon::current_num_threads() > 1
}

/// Floats of output gradient and input per chunk of images of the weight gradient (1 MiB,
/// about one core's L2): each block of taps sweeps a chunk while it is in cache.
const CHUNK_FLOATS: usize = 256 << 10;

/// Shares of the taps the weight gradient is cut into when [`parallel`].
const DW_TASKS: usize = 4;

/// Multiply-adds of a pass from which [`parallel`] spreads its images.
const PARALLEL_MIN_WORK: usize = 4 << 20;
