//! im2col / col2im: turn a convolution into one matrix multiply.
//!
//! For one image `x[C][H][W]`, a kernel `KH×KW`, stride `S` and zero padding `P`, the output
//! has `OH = (H + 2P - KH)/S + 1` rows and `OW` columns of positions. `im2col` writes the
//! matrix `col[C·KH·KW][OH·OW]`: row `r = (c·KH + kh)·KW + kw` holds, for every output
//! position `(oh, ow)`, the input pixel that kernel tap `(c, kh, kw)` sees there:
//! `x[c][oh·S − P + kh][ow·S − P + kw]`, or 0 where that falls in the padding.
//! The convolution is then `y[Cout][OH·OW] = W[Cout][C·KH·KW] · col`.
//!
//! `col2im` is its adjoint, used by the backward pass: it scatters `dcol` back onto
//! `dx[C][H][W]`, summing where receptive fields overlap.
//!
//! Both take the column matrix's row stride `ld ≥ OH·OW`: the convolution lays the
//! matrices of a group of `G` images side by side, `cols[C·KH·KW][G·OH·OW]`, so image `j`
//! is the column block starting at `cols[j·OH·OW]` with `ld = G·OH·OW`.
//!
//! For inference, [`Im2colPanels`] hands the same matrix to the GEMM micropanel by
//! micropanel, as the GEMM packs it, without storing it.

use crate::cpu::gemm::PanelSource;

/// Geometry of a 2-D convolution (or pooling) window over one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Input channels `C`.
    pub channels: usize,
    /// Input height `H`.
    pub height: usize,
    /// Input width `W`.
    pub width: usize,
    /// Kernel height `KH`.
    pub kernel_h: usize,
    /// Kernel width `KW`.
    pub kernel_w: usize,
    /// Stride `S` (both directions).
    pub stride: usize,
    /// Zero padding `P` on every side.
    pub padding: usize,
}

impl ConvGeometry {
    /// Output height `OH = (H + 2P − KH)/S + 1`.
    pub fn out_h(&self) -> usize {
        (self.height + 2 * self.padding - self.kernel_h) / self.stride + 1
    }
    /// Output width `OW = (W + 2P − KW)/S + 1`.
    pub fn out_w(&self) -> usize {
        (self.width + 2 * self.padding - self.kernel_w) / self.stride + 1
    }
    /// Rows of the column matrix: `C·KH·KW`.
    pub fn col_rows(&self) -> usize {
        self.channels * self.kernel_h * self.kernel_w
    }
    /// Columns of the column matrix: `OH·OW`.
    pub fn col_cols(&self) -> usize {
        self.out_h() * self.out_w()
    }
    /// Input pixels per image: `C·H·W`.
    pub fn input_len(&self) -> usize {
        self.channels * self.height * self.width
    }
    /// Whether the window is a single pixel (1×1, stride 1, no padding): then one image's
    /// column matrix is the image itself, `col[C][H·W] = x[C][H][W]`, and col2im is a copy.
    pub fn is_pointwise(&self) -> bool {
        self.kernel_h == 1 && self.kernel_w == 1 && self.stride == 1 && self.padding == 0
    }
}

/// Reference im2col, one element at a time: `col[C·KH·KW][OH·OW]` (row stride `ld`) from
/// `x[C][H][W]`.
pub fn im2col_naive(g: &ConvGeometry, x: &[f32], col: &mut [f32], ld: usize) {
    let (oh_n, ow_n) = (g.out_h(), g.out_w());
    for c in 0..g.channels {
        for kh in 0..g.kernel_h {
            for kw in 0..g.kernel_w {
                let r = (c * g.kernel_h + kh) * g.kernel_w + kw;
                for oh in 0..oh_n {
                    for ow in 0..ow_n {
                        let ih = (oh * g.stride + kh) as isize - g.padding as isize;
                        let iw = (ow * g.stride + kw) as isize - g.padding as isize;
                        let inside = ih >= 0
                            && iw >= 0
                            && (ih as usize) < g.height
                            && (iw as usize) < g.width;
                        col[r * ld + oh * ow_n + ow] = if inside {
                            x[(c * g.height + ih as usize) * g.width + iw as usize]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

/// Range of output columns `ow` whose input column `ow·S − P + kw` lies inside `0..W`.
fn valid_ow(g: &ConvGeometry, kw: usize, ow_n: usize) -> (usize, usize) {
    // first ow with ow·S + kw ≥ P, last with ow·S + kw − P ≤ W − 1
    let lo = g.padding.saturating_sub(kw).div_ceil(g.stride);
    let hi = if g.width + g.padding > kw {
        ((g.width + g.padding - kw - 1) / g.stride + 1).min(ow_n)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// Copies `src[..dst.len()]` into `dst` by fixed-size blocks: rows here are short (5 to
/// 32 floats), where a `memcpy` call costs more than the copy. The last block overlaps
/// the one before it instead of finishing element by element (which the compiler would
/// turn back into a `memcpy` call).
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    #[inline(always)]
    fn block<const B: usize>(dst: &mut [f32], src: &[f32], at: usize) {
        let v: [f32; B] = src[at..at + B].try_into().unwrap();
        dst[at..at + B].copy_from_slice(&v);
    }
    let n = dst.len();
    let src = &src[..n];
    if n >= 8 {
        for at in (0..n - 7).step_by(8) {
            block::<8>(dst, src, at);
        }
        block::<8>(dst, src, n - 8);
    } else if n >= 4 {
        block::<4>(dst, src, 0);
        block::<4>(dst, src, n - 4);
    } else {
        // 0 to 3 floats, one by one.
        for (o, v) in dst.iter_mut().zip(src) {
            *o = *v;
        }
    }
}

/// `dst[i] = src[i·stride]`. Stride 2 (every downsampling convolution here) reads pairs,
/// which the compiler turns into vector loads and shuffles instead of one load per value.
#[inline(always)]
fn copy_strided(dst: &mut [f32], src: &[f32], stride: usize) {
    if stride == 2 {
        let pairs = dst.len().min(src.len() / 2);
        let (head, tail) = dst.split_at_mut(pairs);
        for (o, p) in head.iter_mut().zip(src.chunks_exact(2)) {
            *o = p[0];
        }
        // The last value may have no right neighbour in the row.
        for (o, v) in tail.iter_mut().zip(src[2 * pairs..].iter().step_by(2)) {
            *o = *v;
        }
        return;
    }
    for (o, v) in dst.iter_mut().zip(src.iter().step_by(stride)) {
        *o = *v;
    }
}

/// How a build of [`im2col`] / [`col2im`] moves a run of floats along a row.
trait Runs {
    /// `dst[i] = src[i]` for `i < dst.len()`.
    fn copy(dst: &mut [f32], src: &[f32]);
}

/// Runs moved by the compile target's own vectors (SSE2 on x86-64).
struct Portable;

impl Runs for Portable {
    #[inline(always)]
    fn copy(dst: &mut [f32], src: &[f32]) {
        copy_short(dst, src);
    }
}

/// Runs moved 16 floats at a time, the tail by a masked vector. Only named by the
/// AVX-512F build inside [`im2col`], which runs after [`crate::cpu::avx512::available`].
#[cfg(target_arch = "x86_64")]
struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Runs for Avx512 {
    #[inline(always)]
    fn copy(dst: &mut [f32], src: &[f32]) {
        // SAFETY: `Avx512` is only used by builds reached after the AVX-512F check.
        unsafe { crate::cpu::avx512::copy_run(dst, src) }
    }
}

/// im2col, row by row: zero edges, then a straight copy (stride 1) or a strided gather.
/// Writes `col[C·KH·KW][OH·OW]` with row stride `ld ≥ OH·OW`. Uses AVX-512F where the
/// CPU has it (the same values: it only copies).
pub fn im2col(g: &ConvGeometry, x: &[f32], col: &mut [f32], ld: usize) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx512::available() {
        #[target_feature(enable = "avx512f")]
        fn build(g: &ConvGeometry, x: &[f32], col: &mut [f32], ld: usize) {
            im2col_rows::<Avx512>(g, x, col, ld)
        }
        // SAFETY: this CPU has AVX-512F (checked just above).
        return unsafe { build(g, x, col, ld) };
    }
    im2col_rows::<Portable>(g, x, col, ld)
}

/// [`im2col`] without AVX-512, as it runs on other CPUs (public so that the kernel tests
/// check both builds on a CPU that has it).
pub fn im2col_portable(g: &ConvGeometry, x: &[f32], col: &mut [f32], ld: usize) {
    im2col_rows::<Portable>(g, x, col, ld)
}

#[inline(always)]
fn im2col_rows<R: Runs>(g: &ConvGeometry, x: &[f32], col: &mut [f32], ld: usize) {
    let (oh_n, ow_n) = (g.out_h(), g.out_w());
    let p = oh_n * ow_n;
    assert!(x.len() >= g.input_len() && ld >= p);
    assert!(col.len() >= (g.col_rows() - 1) * ld + p);
    if g.stride == 1 && g.padding == 0 {
        // No edges: row (c, kh, kw) is OH runs of OW pixels, run oh starting at input
        // pixel (c, oh + kh, kw).
        let (h, w) = (g.height, g.width);
        for c in 0..g.channels {
            let plane = &x[c * h * w..(c + 1) * h * w];
            for kh in 0..g.kernel_h {
                for kw in 0..g.kernel_w {
                    let r = (c * g.kernel_h + kh) * g.kernel_w + kw;
                    let src = &plane[kh * w + kw..];
                    let row = &mut col[r * ld..r * ld + p];
                    for (oh, out) in row.chunks_exact_mut(ow_n).enumerate() {
                        R::copy(out, &src[oh * w..]);
                    }
                }
            }
        }
        return;
    }
    for c in 0..g.channels {
        let plane = &x[c * g.height * g.width..(c + 1) * g.height * g.width];
        for kh in 0..g.kernel_h {
            for kw in 0..g.kernel_w {
                let r = (c * g.kernel_h + kh) * g.kernel_w + kw;
                let row = &mut col[r * ld..r * ld + p];
                let (lo, hi) = valid_ow(g, kw, ow_n);
                for oh in 0..oh_n {
                    let out = &mut row[oh * ow_n..(oh + 1) * ow_n];
                    let ih = (oh * g.stride + kh) as isize - g.padding as isize;
                    if ih < 0 || ih as usize >= g.height {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[ih as usize * g.width..(ih as usize + 1) * g.width];
                    out[..lo].fill(0.0);
                    out[hi..].fill(0.0);
                    if lo == hi {
                        continue;
                    }
                    let iw0 = lo * g.stride + kw - g.padding;
                    if g.stride == 1 {
                        R::copy(&mut out[lo..hi], &src[iw0..]);
                    } else {
                        copy_strided(&mut out[lo..hi], &src[iw0..], g.stride);
                    }
                }
            }
        }
    }
}

/// Entries `(oh, ow0..ow1)` of row `r = (c·KH + kh)·KW + kw` of one image's column
/// matrix (what [`im2col`] writes at `col[r][oh·OW + ow]`), into `out[..ow1 − ow0]`.
fn im2col_run(
    g: &ConvGeometry,
    x: &[f32],
    r: usize,
    oh: usize,
    (ow0, ow1): (usize, usize),
    out: &mut [f32],
) {
    let (kw, kh, c) = (
        r % g.kernel_w,
        r / g.kernel_w % g.kernel_h,
        r / (g.kernel_w * g.kernel_h),
    );
    let out = &mut out[..ow1 - ow0];
    let ih = (oh * g.stride + kh) as isize - g.padding as isize;
    if ih < 0 || ih as usize >= g.height {
        out.fill(0.0);
        return;
    }
    let row = &x[(c * g.height + ih as usize) * g.width..][..g.width];
    // Valid ow, clipped to the run.
    let (lo, hi) = valid_ow(g, kw, g.out_w());
    let (lo, hi) = (lo.clamp(ow0, ow1), hi.clamp(ow0, ow1));
    let (lo, hi) = (lo, hi.max(lo));
    out[..lo - ow0].fill(0.0);
    out[hi - ow0..].fill(0.0);
    if lo == hi {
        return;
    }
    let iw0 = lo * g.stride + kw - g.padding;
    let dst = &mut out[lo - ow0..hi - ow0];
    if g.stride == 1 {
        copy_short(dst, &row[iw0..]);
    } else {
        copy_strided(dst, &row[iw0..], g.stride);
    }
}

/// The column matrix of a group of `G` images, `cols[C·KH·KW][G·OH·OW]` (image `j` in
/// the column block `j·OH·OW..`), as a [`PanelSource`] for
/// [`gemm_packed_a_made`](crate::cpu::gemm::gemm_packed_a_made): the GEMM's packing asks
/// for its micropanels and they are written from `x` directly, so the matrix itself —
/// `KH·KW` times the input — is never stored and read back.
pub struct Im2colPanels<'a> {
    /// The window over one image.
    pub geom: ConvGeometry,
    /// `x[G][C][H][W]`.
    pub x: &'a [f32],
}

impl PanelSource for Im2colPanels<'_> {
    fn fill(&self, p0: usize, rows: usize, col0: usize, cols: usize, nr: usize, out: &mut [f32]) {
        let g = &self.geom;
        let (p, ow_n, len) = (g.col_cols(), g.out_w(), g.input_len());
        for (i, dst) in out.chunks_exact_mut(nr).take(rows).enumerate() {
            // Runs of one output row of one image at a time.
            let mut n = col0;
            while n < col0 + cols {
                let (j, pos) = (n / p, n % p);
                let (oh, ow) = (pos / ow_n, pos % ow_n);
                let run = (ow_n - ow).min(col0 + cols - n);
                let x = &self.x[j * len..(j + 1) * len];
                im2col_run(g, x, p0 + i, oh, (ow, ow + run), &mut dst[n - col0..]);
                n += run;
            }
            dst[cols..].fill(0.0);
        }
    }
}

/// Reference col2im: `dx[C][H][W] = Σ` of `dcol[C·KH·KW][OH·OW]` (row stride `ld`) over
/// the taps that saw each pixel.
pub fn col2im_naive(g: &ConvGeometry, dcol: &[f32], ld: usize, dx: &mut [f32]) {
    let (oh_n, ow_n) = (g.out_h(), g.out_w());
    dx[..g.input_len()].fill(0.0);
    for c in 0..g.channels {
        for kh in 0..g.kernel_h {
            for kw in 0..g.kernel_w {
                let r = (c * g.kernel_h + kh) * g.kernel_w + kw;
                for oh in 0..oh_n {
                    for ow in 0..ow_n {
                        let ih = (oh * g.stride + kh) as isize - g.padding as isize;
                        let iw = (ow * g.stride + kw) as isize - g.padding as isize;
                        if ih >= 0 && iw >= 0 && (ih as usize) < g.height && (iw as usize) < g.width
                        {
                            dx[(c * g.height + ih as usize) * g.width + iw as usize] +=
                                dcol[r * ld + oh * ow_n + ow];
                        }
                    }
                }
            }
        }
    }
}

/// col2im, row by row, the adjoint of [`im2col`]: `dcol` has row stride `ld`. Overwrites `dx`.
///
/// Sums in the same (c, kh, kw, oh, ow) order as [`col2im_naive`], so the two agree bit for
/// bit. With stride 1 on a CPU with AVX-512F it runs `col2im_stride1_avx512`, which
/// adds each pixel's terms in that order too.
pub fn col2im(g: &ConvGeometry, dcol: &[f32], ld: usize, dx: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if g.stride == 1 && crate::cpu::avx512::available() {
        // SAFETY: this CPU has AVX-512F (checked just above).
        return unsafe { col2im_stride1_avx512(g, dcol, ld, dx) };
    }
    col2im_rows(g, dcol, ld, dx)
}

/// [`col2im`] without AVX-512, as it runs on other CPUs (public for the kernel tests).
pub fn col2im_portable(g: &ConvGeometry, dcol: &[f32], ld: usize, dx: &mut [f32]) {
    col2im_rows(g, dcol, ld, dx)
}

/// col2im for stride 1, by rows of `dx`, 16 pixels at a time. A pixel `(ih, iw)` of
/// channel `c` gets one term per tap `(kh, kw)`, from output position
/// `(ih + P − kh, iw + P − kw)`; for one `kh` that is one output row, so the loop
/// `c, kh, oh, [16 pixels], kw` adds each pixel's terms in the reference's `(kh, kw)`
/// order while the 16 sums stay in a register: one load and one store per 16 pixels
/// and output row, where adding run by run would reload each pixel `KW` times, each
/// load waiting on the store just before it to the neighbouring pixel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn col2im_stride1_avx512(g: &ConvGeometry, dcol: &[f32], ld: usize, dx: &mut [f32]) {
    use std::arch::x86_64::*;
    let (oh_n, ow_n, w, pad) = (g.out_h(), g.out_w(), g.width, g.padding);
    assert!(g.stride == 1 && ld >= oh_n * ow_n);
    assert!(dcol.len() >= (g.col_rows() - 1) * ld + oh_n * ow_n);
    use crate::cpu::avx512::first_lanes as first;
    dx[..g.input_len()].fill(0.0);
    for c in 0..g.channels {
        let plane = &mut dx[c * g.height * w..(c + 1) * g.height * w];
        for kh in 0..g.kernel_h {
            let r0 = (c * g.kernel_h + kh) * g.kernel_w;
            for oh in 0..oh_n {
                let ih = (oh + kh) as isize - pad as isize;
                if ih < 0 || ih as usize >= g.height {
                    continue;
                }
                let dst = &mut plane[ih as usize * w..][..w];
                for i0 in (0..w).step_by(16) {
                    let lanes = (w - i0).min(16);
                    let dm = first(lanes);
                    // SAFETY: lanes < w − i0 of `dst` (a row of `w` floats) from i0.
                    let mut acc = unsafe { _mm512_maskz_loadu_ps(dm, dst.as_ptr().add(i0)) };
                    for kw in 0..g.kernel_w {
                        // Lane l is pixel iw = i0 + l, fed by output column ow = off + l.
                        let off = (i0 + pad) as isize - kw as isize;
                        let lo = (-off).max(0) as usize;
                        let hi = (ow_n as isize - off).clamp(0, lanes as isize) as usize;
                        if lo >= hi {
                            continue;
                        }
                        let m = first(hi) & !first(lo);
                        let row = &dcol[(r0 + kw) * ld + oh * ow_n..][..ow_n];
                        // SAFETY: only lanes lo..hi are read: row[off + lo..off + hi], inside
                        // 0..ow_n by the choice of lo and hi; masked-off lanes never fault.
                        let v =
                            unsafe { _mm512_maskz_loadu_ps(m, row.as_ptr().wrapping_offset(off)) };
                        acc = _mm512_mask_add_ps(acc, m, acc, v);
                    }
                    // SAFETY: as for the load of `acc`.
                    unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr().add(i0), dm, acc) };
                }
            }
        }
    }
}

fn col2im_rows(g: &ConvGeometry, dcol: &[f32], ld: usize, dx: &mut [f32]) {
    let (oh_n, ow_n) = (g.out_h(), g.out_w());
    let p = oh_n * ow_n;
    assert!(ld >= p && dcol.len() >= (g.col_rows() - 1) * ld + p);
    dx[..g.input_len()].fill(0.0);
    for c in 0..g.channels {
        let plane = &mut dx[c * g.height * g.width..(c + 1) * g.height * g.width];
        for kh in 0..g.kernel_h {
            for kw in 0..g.kernel_w {
                let r = (c * g.kernel_h + kh) * g.kernel_w + kw;
                let row = &dcol[r * ld..r * ld + p];
                let (lo, hi) = valid_ow(g, kw, ow_n);
                for oh in 0..oh_n {
                    let ih = (oh * g.stride + kh) as isize - g.padding as isize;
                    if ih < 0 || ih as usize >= g.height {
                        continue;
                    }
                    let dst = &mut plane[ih as usize * g.width..(ih as usize + 1) * g.width];
                    if lo == hi {
                        continue;
                    }
                    let src = &row[oh * ow_n + lo..oh * ow_n + hi];
                    let iw0 = lo * g.stride + kw - g.padding;
                    if g.stride == 1 {
                        for (d, s) in dst[iw0..iw0 + (hi - lo)].iter_mut().zip(src) {
                            *d += *s;
                        }
                    } else {
                        for (d, s) in dst[iw0..].iter_mut().step_by(g.stride).zip(src) {
                            *d += *s;
                        }
                    }
                }
            }
        }
    }
}
