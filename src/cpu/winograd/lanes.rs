//! The tile transforms, 8 images at a time (one per SIMD lane).
//!
//! Each function handles one *chunk* of up to [`LANES`] images and a range of tile rows
//! `th0..th1`, and reads or writes the chunk's stretch of tile columns of `V`/`M`/`dM`:
//! column `col0 + q·8 + l` holds tile `q` (counted from tile row `th0`, row-major) of image
//! `l` of the chunk. `V[t]` for point `t` starts at `t·plane`, channel `c` at `+ c·ld`.
//!
//! Images go into lanes through a small zero-padded staging plane `pk[row][col][lane]`
//! (one channel, the tile rows' input rows): the transforms then read whole 8-float
//! vectors with no edge tests, and unused lanes (a chunk of fewer than 8 images) are zeros.
//!
//! The arithmetic is plain `+ − ×` on `[f32; 8]` (no fused multiply-add), so the AVX2 build
//! ([`#[target_feature]`](https://doc.rust-lang.org/reference/attributes/codegen.html), chosen at
//! run time) and the portable build round identically: results do not depend on the CPU.
//! The 1-D transforms are the rows of `Bᵀ`, `Aᵀ` and `A` of [`super`], written out.

use super::Tile;
use super::conv::Shape;
use std::ops::{Add, Mul, Sub};

/// Images per chunk: one per lane of an 8-float vector.
pub const LANES: usize = 8;

/// 8 floats, one per image; the compiler keeps it in one AVX2 register (two SSE ones).
#[derive(Clone, Copy)]
struct L8([f32; LANES]);

impl L8 {
    const ZERO: L8 = L8([0.0; LANES]);
    #[inline(always)]
    fn load(s: &[f32]) -> L8 {
        L8(s[..LANES].try_into().expect("8 floats"))
    }
    #[inline(always)]
    fn store(self, d: &mut [f32]) {
        d[..LANES].copy_from_slice(&self.0);
    }
}

impl Add for L8 {
    type Output = L8;
    #[inline(always)]
    fn add(self, o: L8) -> L8 {
        let mut r = self.0;
        for (a, b) in r.iter_mut().zip(o.0) {
            *a += b;
        }
        L8(r)
    }
}

impl Sub for L8 {
    type Output = L8;
    #[inline(always)]
    fn sub(self, o: L8) -> L8 {
        let mut r = self.0;
        for (a, b) in r.iter_mut().zip(o.0) {
            *a -= b;
        }
        L8(r)
    }
}

impl Mul<f32> for L8 {
    type Output = L8;
    #[inline(always)]
    fn mul(self, k: f32) -> L8 {
        let mut r = self.0;
        for a in r.iter_mut() {
            *a *= k;
        }
        L8(r)
    }
}

/// The 1-D transforms of one tile size (only the first `A` or `M` entries are used).
trait Xf {
    /// Outputs per tile side.
    const M: usize;
    /// Input tile side `M + 2`.
    const A: usize;
    /// `Bᵀ d`: `A` → `A`.
    fn bt(d: [L8; 6]) -> [L8; 6];
    /// `Aᵀ m`: `A` → `M`.
    fn at(m: [L8; 6]) -> [L8; 4];
    /// `A o` (the adjoint of `Aᵀ`): `M` → `A`.
    fn a(o: [L8; 4]) -> [L8; 6];
}

/// `F(2×2, 3×3)`.
struct F2;
/// `F(4×4, 3×3)`.
struct F4;

impl Xf for F2 {
    const M: usize = 2;
    const A: usize = 4;
    #[inline(always)]
    fn bt(d: [L8; 6]) -> [L8; 6] {
        let z = L8::ZERO;
        [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3], z, z]
    }
    #[inline(always)]
    fn at(m: [L8; 6]) -> [L8; 4] {
        let z = L8::ZERO;
        [m[0] + m[1] + m[2], m[1] - m[2] - m[3], z, z]
    }
    #[inline(always)]
    fn a(o: [L8; 4]) -> [L8; 6] {
        let z = L8::ZERO;
        [o[0], o[0] + o[1], o[0] - o[1], z - o[1], z, z]
    }
}

impl Xf for F4 {
    const M: usize = 4;
    const A: usize = 6;
    #[inline(always)]
    fn bt(d: [L8; 6]) -> [L8; 6] {
        let (s12, d12) = (d[1] + d[2], d[1] - d[2]);
        let (s34, d34) = (d[3] + d[4], d[4] - d[3]);
        let d31 = d[3] - d[1];
        let d42 = d[4] - d[2];
        [
            d[0] * 4.0 - d[2] * 5.0 + d[4],
            s34 - s12 * 4.0,
            d12 * 4.0 + d34,
            d31 * 2.0 + d42,
            d42 - d31 * 2.0,
            d[1] * 4.0 - d[3] * 5.0 + d[5],
        ]
    }
    #[inline(always)]
    fn at(m: [L8; 6]) -> [L8; 4] {
        let (s12, d12) = (m[1] + m[2], m[1] - m[2]);
        let (s34, d34) = (m[3] + m[4], m[3] - m[4]);
        [
            m[0] + s12 + s34,
            d12 + d34 * 2.0,
            s12 + s34 * 4.0,
            d12 + d34 * 8.0 + m[5],
        ]
    }
    #[inline(always)]
    fn a(o: [L8; 4]) -> [L8; 6] {
        let (s02, s13) = (o[0] + o[2], o[1] + o[3]);
        let (q02, q13) = (o[0] + o[2] * 4.0, o[1] * 2.0 + o[3] * 8.0);
        [o[0], s02 + s13, s02 - s13, q02 + q13, q02 - q13, o[3]]
    }
}

/// Where one chunk's tile columns go: `V[t][c][col0 + q·8 + l]` at
/// `t·plane + c·ld + col0 + q·8 + l`.
#[derive(Clone, Copy, Debug)]
pub struct Cols {
    /// Floats between consecutive points `t`.
    pub plane: usize,
    /// Floats between consecutive channels (the block's column count).
    pub ld: usize,
    /// The chunk's first column.
    pub col0: usize,
}

/// Staging floats [`input_chunk`] and [`grad_chunk`] need for tile rows `th0..th1`.
pub fn staging_len(s: &Shape, rows: usize) -> usize {
    (rows * s.tile.m() + 2) * (s.tiles_w() * s.tile.m() + 2) * LANES
}

/// Moves images into lanes, up to 8×8 at a time: `dst[k·8 + l] = src[l·stride + k]` for
/// `k < cols`, `l < n` (a row of `cols ≤ 8` floats from each of `n ≤ 8` images), and zeros
/// for `l ≥ n`.
#[inline(always)]
fn interleave8<const AVX2: bool>(
    src: &[f32],
    stride: usize,
    n: usize,
    cols: usize,
    dst: &mut [f32],
) {
    assert!((1..=LANES).contains(&n) && (1..=LANES).contains(&cols));
    assert!(src.len() >= (n - 1) * stride + cols && dst.len() >= cols * LANES);
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: the `AVX2` builds run only where `avx2()` found AVX2; the bounds are
        // asserted above.
        unsafe { avx2::interleave8(src, stride, n, cols, dst) };
        return;
    }
    for k in 0..cols {
        for l in 0..LANES {
            dst[k * LANES + l] = if l < n { src[l * stride + k] } else { 0.0 };
        }
    }
}

/// Moves lanes back into images, up to 8×8 at a time, adding `b`: `dst[l·stride + k] =
/// src[k·8 + l] + b` for `k < cols`, `l < n`.
#[inline(always)]
fn deinterleave8<const AVX2: bool>(
    src: &[f32],
    b: f32,
    (n, cols): (usize, usize),
    dst: &mut [f32],
    stride: usize,
) {
    assert!((1..=LANES).contains(&n) && (1..=LANES).contains(&cols));
    assert!(src.len() >= cols * LANES && dst.len() >= (n - 1) * stride + cols);
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: as in `interleave8`.
        unsafe { avx2::deinterleave8(src, b, (n, cols), dst, stride) };
        return;
    }
    for l in 0..n {
        for k in 0..cols {
            dst[l * stride + k] = src[k * LANES + l] + b;
        }
    }
}

/// The 8×8 transposes on AVX2 registers (`cpu::avx2::transpose8`); rows of fewer than 8
/// floats are read and written through a mask.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::LANES;
    use crate::cpu::avx2::{first_lanes as first, transpose8 as transpose};
    use std::arch::x86_64::*;

    /// [`super::interleave8`] on AVX2.
    ///
    /// # Safety
    /// The CPU has AVX2; `1 ≤ n, cols ≤ 8`, `src` holds `(n − 1)·stride + cols` floats and
    /// `dst` `cols·8`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn interleave8(src: &[f32], stride: usize, n: usize, cols: usize, dst: &mut [f32]) {
        let mask = first(cols);
        let mut r = [_mm256_setzero_ps(); 8];
        for (l, v) in r.iter_mut().enumerate().take(n) {
            // SAFETY: the mask reads floats l·stride + k, k < cols, within `src` (the
            // caller's bound); masked-off lanes are not read.
            *v = unsafe { _mm256_maskload_ps(src.as_ptr().add(l * stride), mask) };
        }
        for (k, v) in transpose(r).into_iter().enumerate().take(cols) {
            // SAFETY: k·8 + 8 ≤ cols·8 ≤ dst.len().
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(k * LANES), v) };
        }
    }

    /// [`super::deinterleave8`] on AVX2.
    ///
    /// # Safety
    /// The CPU has AVX2; `1 ≤ n, cols ≤ 8`, `src` holds `cols·8` floats and `dst`
    /// `(n − 1)·stride + cols`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn deinterleave8(
        src: &[f32],
        b: f32,
        (n, cols): (usize, usize),
        dst: &mut [f32],
        stride: usize,
    ) {
        let mut r = [_mm256_setzero_ps(); 8];
        for (k, v) in r.iter_mut().enumerate().take(cols) {
            // SAFETY: k·8 + 8 ≤ cols·8 ≤ src.len().
            *v = unsafe { _mm256_loadu_ps(src.as_ptr().add(k * LANES)) };
        }
        let (bv, mask) = (_mm256_set1_ps(b), first(cols));
        for (l, v) in transpose(r).into_iter().enumerate().take(n) {
            // SAFETY: the mask writes floats l·stride + k, k < cols, within `dst` (the
            // caller's bound); masked-off lanes are not written.
            unsafe {
                _mm256_maskstore_ps(dst.as_mut_ptr().add(l * stride), mask, _mm256_add_ps(v, bv))
            };
        }
    }
}

#[inline(always)]
fn input_body<X: Xf, const AVX2: bool>(
    s: &Shape,
    xs: &[f32],
    gs: usize,
    (th0, th1): (usize, usize),
    pk: &mut [f32],
    v: &mut [f32],
    at: Cols,
) {
    let (m, a) = (X::M, X::A);
    let (h, w, pad) = (s.height, s.width, s.padding);
    let tw_n = s.tiles_w();
    let wp = tw_n * m + 2;
    let rows = (th1 - th0) * m + 2;
    let img = s.channels * h * w;
    let pk = &mut pk[..rows * wp * LANES];
    // The loop below writes every lane of the rows inside the image, columns pad..pad + w,
    // for every channel: zero the rest (the padding) once.
    for r in 0..rows {
        let ih = (th0 * m + r) as isize - pad as isize;
        let row = &mut pk[r * wp * LANES..][..wp * LANES];
        if ih < 0 || ih >= h as isize {
            row.fill(0.0);
        } else {
            row[..pad * LANES].fill(0.0);
            row[(pad + w) * LANES..].fill(0.0);
        }
    }
    for c in 0..s.channels {
        // pk[r][pad + iw][l] = x[l][c][th0·m + r − pad][iw], zeros elsewhere.
        for r in 0..rows {
            let ih = (th0 * m + r) as isize - pad as isize;
            if ih < 0 || ih >= h as isize {
                continue;
            }
            let row = c * h * w + ih as usize * w;
            let dst = &mut pk[(r * wp + pad) * LANES..];
            // Blocks of 8 columns; the last one ends at the edge (overlapping the one
            // before), so none is partial unless the row is shorter than 8.
            for iw in (0..w)
                .step_by(LANES)
                .map(|iw| iw.min(w.saturating_sub(LANES)))
            {
                let cols = w.min(LANES);
                interleave8::<AVX2>(&xs[row + iw..], img, gs, cols, &mut dst[iw * LANES..]);
            }
        }
        let base = c * at.ld + at.col0;
        for tr in 0..th1 - th0 {
            for tw in 0..tw_n {
                // tmp = Bᵀ d (columns), then V = tmp B (rows).
                let mut tmp = [[L8::ZERO; 6]; 6];
                for j in 0..a {
                    let mut d = [L8::ZERO; 6];
                    for (i, di) in d.iter_mut().enumerate().take(a) {
                        *di = L8::load(&pk[((tr * m + i) * wp + tw * m + j) * LANES..]);
                    }
                    let col = X::bt(d);
                    for i in 0..a {
                        tmp[i][j] = col[i];
                    }
                }
                let q = tr * tw_n + tw;
                for (i, t_row) in tmp.iter().enumerate().take(a) {
                    let row = X::bt(*t_row);
                    for (j, val) in row.iter().enumerate().take(a) {
                        val.store(&mut v[(i * a + j) * at.plane + base + q * LANES..]);
                    }
                }
            }
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output_body<X: Xf, const AVX2: bool>(
    s: &Shape,
    mm: &[f32],
    at: Cols,
    (th0, th1): (usize, usize),
    gs: usize,
    bias: &[f32],
    ot: &mut [f32],
    ys: &mut [f32],
) {
    let (m, a) = (X::M, X::A);
    let (oh_n, ow_n) = (s.out_h(), s.out_w());
    let tw_n = s.tiles_w();
    let owp = tw_n * m;
    let rows = (th1 - th0) * m;
    let out_img = s.out_channels * oh_n * ow_n;
    let ot = &mut ot[..rows * owp * LANES];
    for co in 0..s.out_channels {
        let base = co * at.ld + at.col0;
        for tr in 0..th1 - th0 {
            for tw in 0..tw_n {
                let q = tr * tw_n + tw;
                // tmp = Aᵀ M (columns), then Y = tmp A (rows).
                let mut tmp = [[L8::ZERO; 6]; 4];
                for j in 0..a {
                    let mut d = [L8::ZERO; 6];
                    for (i, di) in d.iter_mut().enumerate().take(a) {
                        *di = L8::load(&mm[(i * a + j) * at.plane + base + q * LANES..]);
                    }
                    let col = X::at(d);
                    for i in 0..m {
                        tmp[i][j] = col[i];
                    }
                }
                for (i, t_row) in tmp.iter().enumerate().take(m) {
                    let row = X::at(*t_row);
                    for (j, val) in row.iter().enumerate().take(m) {
                        val.store(&mut ot[((tr * m + i) * owp + tw * m + j) * LANES..]);
                    }
                }
            }
        }
        // y[l][co][th0·m + r][ow] = ot[r][ow][l] + b, cropped to the output.
        let b = bias.get(co).copied().unwrap_or(0.0);
        for r in 0..rows.min(oh_n.saturating_sub(th0 * m)) {
            let row = co * oh_n * ow_n + (th0 * m + r) * ow_n;
            let src = &ot[r * owp * LANES..];
            for ow in (0..ow_n)
                .step_by(LANES)
                .map(|ow| ow.min(ow_n.saturating_sub(LANES)))
            {
                let at = (gs, ow_n.min(LANES));
                deinterleave8::<AVX2>(&src[ow * LANES..], b, at, &mut ys[row + ow..], out_img);
            }
        }
    }
}

#[inline(always)]
fn grad_body<X: Xf, const AVX2: bool>(
    s: &Shape,
    dys: &[f32],
    gs: usize,
    (th0, th1): (usize, usize),
    pk: &mut [f32],
    dm: &mut [f32],
    at: Cols,
) {
    let (m, a) = (X::M, X::A);
    let (oh_n, ow_n) = (s.out_h(), s.out_w());
    let tw_n = s.tiles_w();
    let owp = tw_n * m;
    let rows = (th1 - th0) * m;
    let out_img = s.out_channels * oh_n * ow_n;
    let pk = &mut pk[..rows * owp * LANES];
    // The loop below writes every lane of the rows inside the output, columns 0..ow_n, for
    // every channel: zero the rest (past the output's edge) once.
    let inside = rows.min(oh_n.saturating_sub(th0 * m));
    for (r, row) in pk.chunks_exact_mut(owp * LANES).enumerate() {
        row[if r < inside { ow_n * LANES } else { 0 }..].fill(0.0);
    }
    for co in 0..s.out_channels {
        // pk[r][ow][l] = dy[l][co][th0·m + r][ow], zeros past the output's edge.
        for r in 0..inside {
            let row = co * oh_n * ow_n + (th0 * m + r) * ow_n;
            let dst = &mut pk[r * owp * LANES..];
            for ow in (0..ow_n)
                .step_by(LANES)
                .map(|ow| ow.min(ow_n.saturating_sub(LANES)))
            {
                let cols = ow_n.min(LANES);
                interleave8::<AVX2>(&dys[row + ow..], out_img, gs, cols, &mut dst[ow * LANES..]);
            }
        }
        let base = co * at.ld + at.col0;
        for tr in 0..th1 - th0 {
            for tw in 0..tw_n {
                // tmp = A dY (columns), then dM = tmp Aᵀ (rows).
                let mut tmp = [[L8::ZERO; 4]; 6];
                for j in 0..m {
                    let mut d = [L8::ZERO; 4];
                    for (i, di) in d.iter_mut().enumerate().take(m) {
                        *di = L8::load(&pk[((tr * m + i) * owp + tw * m + j) * LANES..]);
                    }
                    let col = X::a(d);
                    for i in 0..a {
                        tmp[i][j] = col[i];
                    }
                }
                let q = tr * tw_n + tw;
                for (i, t_row) in tmp.iter().enumerate().take(a) {
                    let row = X::a(*t_row);
                    for (j, val) in row.iter().enumerate().take(a) {
                        val.store(&mut dm[(i * a + j) * at.plane + base + q * LANES..]);
                    }
                }
            }
        }
    }
}

use crate::cpu::avx2::available as avx2;

/// Defines a public entry point `$name` that runs `$body` for the tile size, compiled for
/// AVX2 when the CPU has it and portably otherwise (the same results either way), and
/// `$on`, the same with the build chosen by the caller (`true` needs AVX2), for the tests.
macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident / $on:ident => $body:ident ($($arg:ident : $ty:ty),*)) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name(tile: Tile, $($arg: $ty),*) {
            $on(avx2(), tile, $($arg),*)
        }

        #[allow(clippy::too_many_arguments)]
        fn $on(use_avx2: bool, tile: Tile, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            #[allow(clippy::too_many_arguments)]
            fn fast<X: Xf>($($arg: $ty),*) {
                $body::<X, true>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if use_avx2 {
                assert!(avx2(), "the AVX2 build asked for on a CPU without AVX2");
                // SAFETY: `fast` only needs AVX2, which `avx2()` found on this CPU.
                unsafe {
                    return match tile {
                        Tile::F2 => fast::<F2>($($arg),*),
                        Tile::F4 => fast::<F4>($($arg),*),
                    };
                }
            }
            let _ = use_avx2;
            match tile {
                Tile::F2 => $body::<F2, false>($($arg),*),
                Tile::F4 => $body::<F4, false>($($arg),*),
            }
        }
    };
}

dispatch!(
    /// Input transform of one chunk: `V[t][c][q·8 + l] = (Bᵀ d B)[t]` for the tiles `d` of
    /// image `l` (of `gs` in `xs[gs][C][H][W]`), channel `c`, tile rows `rows.0..rows.1`.
    /// `pk` needs [`staging_len`] floats.
    input_chunk / input_chunk_on => input_body(
        s: &Shape, xs: &[f32], gs: usize, rows: (usize, usize), pk: &mut [f32], v: &mut [f32],
        at: Cols
    )
);

dispatch!(
    /// Output transform of one chunk: `y[l][co][tile] = Aᵀ M[·][co][q·8 + l] A + bias[co]`
    /// (cropped at the output's edge) for tile rows `rows.0..rows.1`, into
    /// `ys[gs][Cout][OH][OW]`. `bias` may be empty; `ot` needs [`staging_len`] floats.
    output_chunk / output_chunk_on => output_body(
        s: &Shape, mm: &[f32], at: Cols, rows: (usize, usize), gs: usize, bias: &[f32],
        ot: &mut [f32], ys: &mut [f32]
    )
);

dispatch!(
    /// Adjoint output transform of one chunk: `dM[t][co][q·8 + l] = (A dY Aᵀ)[t]` for the
    /// `m×m` tiles `dY` (zeros past the edge) of `dys[gs][Cout][OH][OW]`, tile rows
    /// `rows.0..rows.1`. `pk` needs [`staging_len`] floats.
    grad_chunk / grad_chunk_on => grad_body(
        s: &Shape, dys: &[f32], gs: usize, rows: (usize, usize), pk: &mut [f32], dm: &mut [f32],
        at: Cols
    )
);

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2_654_435_761) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 8) as f32 / (1 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// The AVX2 build (where the CPU has it) and the portable build of all three transforms
    /// write the same bits, on widths with and without a multiple of 8 and partial chunks.
    #[test]
    fn avx2_and_portable_builds_agree() {
        let builds: Vec<bool> = if avx2() {
            vec![false, true]
        } else {
            vec![false]
        };
        println!("winograd transform builds tested: {builds:?} (true = AVX2)");
        for (h, w, pad) in [
            (16, 16, 1),
            (11, 13, 1),
            (9, 20, 0),
            (7, 8, 2),
            (7, 7, 1),
            (3, 3, 0),
            (5, 4, 2),
        ] {
            for tile in [Tile::F2, Tile::F4] {
                for gs in [3, 8] {
                    let s = Shape {
                        channels: 3,
                        height: h,
                        width: w,
                        padding: pad,
                        out_channels: 2,
                        tile,
                    };
                    let rows = (0, s.tiles_h());
                    let cols = s.tiles_h() * s.tiles_w() * LANES;
                    let pts = tile.points();
                    let at = |c: usize| Cols {
                        plane: c * cols + 5,
                        ld: cols,
                        col0: 0,
                    };
                    let xs = fill(gs * s.input_len(), 1);
                    let mm = fill(pts * (s.out_channels * cols + 5), 2);
                    let dys = fill(gs * s.output_len(), 3);
                    let bias = [0.25, -0.5];
                    let run = |fast: bool| {
                        let mut pk = vec![f32::NAN; staging_len(&s, rows.1)];
                        let mut v = vec![0.0; pts * (s.channels * cols + 5)];
                        input_chunk_on(
                            fast,
                            tile,
                            &s,
                            &xs,
                            gs,
                            rows,
                            &mut pk,
                            &mut v,
                            at(s.channels),
                        );
                        let mut ys = vec![0.0; gs * s.output_len()];
                        output_chunk_on(
                            fast,
                            tile,
                            &s,
                            &mm,
                            at(s.out_channels),
                            rows,
                            gs,
                            &bias,
                            &mut pk,
                            &mut ys,
                        );
                        let mut dm = vec![0.0; pts * (s.out_channels * cols + 5)];
                        grad_chunk_on(
                            fast,
                            tile,
                            &s,
                            &dys,
                            gs,
                            rows,
                            &mut pk,
                            &mut dm,
                            at(s.out_channels),
                        );
                        // The staging plane starts as NaN: every float read must be written.
                        let finite = |v: &[f32]| v.iter().all(|f| f.is_finite());
                        assert!(finite(&v) && finite(&ys) && finite(&dm), "{s:?} gs={gs}");
                        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                        (bits(&v), bits(&ys), bits(&dm))
                    };
                    let want = run(false);
                    for &fast in &builds {
                        assert!(run(fast) == want, "{s:?} gs={gs} avx2={fast}");
                    }
                }
            }
        }
    }
}
