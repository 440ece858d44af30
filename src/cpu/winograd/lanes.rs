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

#[inline(always)]
fn input_body<X: Xf>(
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
    // The positions the loop below writes are the same for every channel: zero the rest once.
    pk.fill(0.0);
    for c in 0..s.channels {
        // pk[r][pad + iw][l] = x[l][c][th0·m + r − pad][iw], zeros elsewhere.
        for l in 0..gs {
            let xc = &xs[l * img + c * h * w..][..h * w];
            for r in 0..rows {
                let ih = (th0 * m + r) as isize - pad as isize;
                if ih < 0 || ih >= h as isize {
                    continue;
                }
                let src = &xc[ih as usize * w..][..w];
                let dst = &mut pk[(r * wp + pad) * LANES..];
                for (iw, &x) in src.iter().enumerate() {
                    dst[iw * LANES + l] = x;
                }
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
fn output_body<X: Xf>(
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
        for l in 0..gs {
            let yc = &mut ys[l * out_img + co * oh_n * ow_n..][..oh_n * ow_n];
            for r in 0..rows.min(oh_n.saturating_sub(th0 * m)) {
                let dst = &mut yc[(th0 * m + r) * ow_n..][..ow_n];
                let src = &ot[r * owp * LANES..];
                for (ow, d) in dst.iter_mut().enumerate() {
                    *d = src[ow * LANES + l] + b;
                }
            }
        }
    }
}

#[inline(always)]
fn grad_body<X: Xf>(
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
    // The positions the loop below writes are the same for every channel: zero the rest once.
    pk.fill(0.0);
    for co in 0..s.out_channels {
        // pk[r][ow][l] = dy[l][co][th0·m + r][ow], zeros past the output's edge.
        for l in 0..gs {
            let dyc = &dys[l * out_img + co * oh_n * ow_n..][..oh_n * ow_n];
            for r in 0..rows.min(oh_n.saturating_sub(th0 * m)) {
                let src = &dyc[(th0 * m + r) * ow_n..][..ow_n];
                let dst = &mut pk[r * owp * LANES..];
                for (ow, &g) in src.iter().enumerate() {
                    dst[ow * LANES + l] = g;
                }
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

/// True when the AVX2 builds of the transforms can run here (checked once).
#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX2.get_or_init(|| std::arch::is_x86_feature_detected!("avx2"))
}

/// Defines a public entry point that runs `$body` for the tile size, compiled for AVX2 when
/// the CPU has it and portably otherwise (the same code either way).
macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident => $body:ident ($($arg:ident : $ty:ty),*)) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name(tile: Tile, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            #[allow(clippy::too_many_arguments)]
            fn fast<X: Xf>($($arg: $ty),*) {
                $body::<X>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if avx2() {
                // SAFETY: `fast` only needs AVX2, which `avx2()` found on this CPU.
                unsafe {
                    return match tile {
                        Tile::F2 => fast::<F2>($($arg),*),
                        Tile::F4 => fast::<F4>($($arg),*),
                    };
                }
            }
            match tile {
                Tile::F2 => $body::<F2>($($arg),*),
                Tile::F4 => $body::<F4>($($arg),*),
            }
        }
    };
}

dispatch!(
    /// Input transform of one chunk: `V[t][c][q·8 + l] = (Bᵀ d B)[t]` for the tiles `d` of
    /// image `l` (of `gs` in `xs[gs][C][H][W]`), channel `c`, tile rows `rows.0..rows.1`.
    /// `pk` needs [`staging_len`] floats.
    input_chunk => input_body(
        s: &Shape, xs: &[f32], gs: usize, rows: (usize, usize), pk: &mut [f32], v: &mut [f32],
        at: Cols
    )
);

dispatch!(
    /// Output transform of one chunk: `y[l][co][tile] = Aᵀ M[·][co][q·8 + l] A + bias[co]`
    /// (cropped at the output's edge) for tile rows `rows.0..rows.1`, into
    /// `ys[gs][Cout][OH][OW]`. `bias` may be empty; `ot` needs [`staging_len`] floats.
    output_chunk => output_body(
        s: &Shape, mm: &[f32], at: Cols, rows: (usize, usize), gs: usize, bias: &[f32],
        ot: &mut [f32], ys: &mut [f32]
    )
);

dispatch!(
    /// Adjoint output transform of one chunk: `dM[t][co][q·8 + l] = (A dY Aᵀ)[t]` for the
    /// `m×m` tiles `dY` (zeros past the edge) of `dys[gs][Cout][OH][OW]`, tile rows
    /// `rows.0..rows.1`. `pk` needs [`staging_len`] floats.
    grad_chunk => grad_body(
        s: &Shape, dys: &[f32], gs: usize, rows: (usize, usize), pk: &mut [f32], dm: &mut [f32],
        at: Cols
    )
);
