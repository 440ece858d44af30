//! Winograd minimal filtering for 3×3, stride-1 convolutions (Lavin & Gray, arXiv 1509.09308).
//!
//! `F(m×m, 3×3)` computes an `m×m` block of outputs from an `α×α` input tile (`α = m + 2`)
//! with `α²` multiplies per channel pair instead of `9·m²`:
//!
//! ```text
//! Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A          g: 3×3 filter, d: α×α tile, Y: m×m
//! ```
//!
//! Summed over input channels, the element-wise product becomes one GEMM per transform point
//! `t = (i, j)`, `α²` of them (16 for `F(2,3)`, 36 for `F(4,3)`):
//!
//! ```text
//! U[t] = (G g Gᵀ)[t]     per (co, ci)      [α²][Cout, Cin]     filter transform
//! V[t] = (Bᵀ d B)[t]     per (ci, tile)    [α²][Cin, tiles]    input transform
//! M[t] = U[t] · V[t]                       [α²][Cout, tiles]   α² GEMMs
//! y    = Aᵀ M A          per (co, tile)                        output transform (cropped)
//! ```
//!
//! The backward passes reuse the same pieces (see [`conv`]):
//! - input gradient: a 3×3 convolution of `dy` with the filter rotated by 180° and its
//!   channels swapped, padding `2 − p`: the forward algorithm with the flipped filter;
//! - weight gradient: the adjoint of the forward in `U`: `dM[t] = A dY Aᵀ` per tile,
//!   `dU[t] = Σ_tiles dM[t] · V[t]ᵀ` (a GEMM per point whose depth is the tiles, summed in
//!   a fixed order), then `dW = Gᵀ dU G`.
//!
//! # Points
//!
//! `F(2,3)` uses the points 0, ±1, ∞ and `F(4,3)` the points 0, ±1, ±2, ∞, with the
//! matrices printed in Lavin & Gray (section 4.1 and 4.2): entries are small integers in `Bᵀ`
//! and `Aᵀ`, so the input and output transforms are adds and a few multiplies by 2, 4, 5, 8;
//! `G` carries the fractions (1/4, 1/6, 1/12, 1/24).
//!
//! # Layout: images in SIMD lanes
//!
//! The transforms work on 8 images at a time, one image per SIMD lane ([`lanes`]): each tile
//! element is an 8-float vector, so every transform is straight-line vector arithmetic with
//! no shuffles, whatever the image size (an 8×8 image has only four 4×4 tiles). The tile
//! columns of `V` and `M` are ordered `(chunk, tile, lane)`; the GEMM does not care.
//!
//! Every fast transform is tested against the plain matrix form in this file ([`input_tile_ref`]
//! and friends, f64).

pub mod conv;
pub mod lanes;

/// The two tile sizes: `F(2×2, 3×3)` and `F(4×4, 3×3)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tile {
    /// `F(2×2, 3×3)`: 4×4 input tiles, 16 points, 2.25× fewer multiplies than direct.
    F2,
    /// `F(4×4, 3×3)`: 6×6 input tiles, 36 points, 4× fewer multiplies than direct.
    F4,
}

/// `Bᵀ` of `F(2,3)`, 4×4.
const BT2: [[f64; 4]; 4] = [
    [1.0, 0.0, -1.0, 0.0],
    [0.0, 1.0, 1.0, 0.0],
    [0.0, -1.0, 1.0, 0.0],
    [0.0, 1.0, 0.0, -1.0],
];
/// `G` of `F(2,3)`, 4×3.
const G2: [[f64; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];
/// `Aᵀ` of `F(2,3)`, 2×4.
const AT2: [[f64; 4]; 2] = [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]];

/// `Bᵀ` of `F(4,3)`, 6×6.
const BT4: [[f64; 6]; 6] = [
    [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
    [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];
/// `G` of `F(4,3)`, 6×3.
const G4: [[f64; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];
/// `Aᵀ` of `F(4,3)`, 4×6.
const AT4: [[f64; 6]; 4] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
    [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
    [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
];

impl Tile {
    /// Outputs per tile side, `m`.
    pub fn m(self) -> usize {
        match self {
            Tile::F2 => 2,
            Tile::F4 => 4,
        }
    }
    /// Input tile side, `α = m + 2`.
    pub fn alpha(self) -> usize {
        self.m() + 2
    }
    /// Transform points, `α²`: the number of GEMMs per block.
    pub fn points(self) -> usize {
        self.alpha() * self.alpha()
    }
    /// `Bᵀ` (`α×α`), row-major.
    fn bt(self) -> Vec<f64> {
        match self {
            Tile::F2 => BT2.concat(),
            Tile::F4 => BT4.concat(),
        }
    }
    /// `G` (`α×3`), row-major.
    fn g(self) -> Vec<f64> {
        match self {
            Tile::F2 => G2.concat(),
            Tile::F4 => G4.concat(),
        }
    }
    /// `Aᵀ` (`m×α`), row-major.
    fn at(self) -> Vec<f64> {
        match self {
            Tile::F2 => AT2.concat(),
            Tile::F4 => AT4.concat(),
        }
    }
}

/// `L · X · Lᵀ` for `L` (`p×q`, row-major) and `X` (`q×q`): the shape of every transform.
fn sandwich(l: &[f64], p: usize, q: usize, x: &[f64]) -> Vec<f64> {
    let mut lx = vec![0.0; p * q];
    for i in 0..p {
        for j in 0..q {
            lx[i * q + j] = (0..q).map(|k| l[i * q + k] * x[k * q + j]).sum();
        }
    }
    let mut out = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..p {
            out[i * p + j] = (0..q).map(|k| lx[i * q + k] * l[j * q + k]).sum();
        }
    }
    out
}

/// `Lᵀ` of `L` (`p×q`).
fn transpose(l: &[f64], p: usize, q: usize) -> Vec<f64> {
    let mut t = vec![0.0; p * q];
    for i in 0..p {
        for j in 0..q {
            t[j * p + i] = l[i * q + j];
        }
    }
    t
}

/// Reference input transform `Bᵀ d B` of one `α×α` tile (row-major), in f64.
pub fn input_tile_ref(tile: Tile, d: &[f64]) -> Vec<f64> {
    let a = tile.alpha();
    sandwich(&tile.bt(), a, a, d)
}

/// Reference filter transform `G g Gᵀ` of one 3×3 filter, in f64: `α×α`.
pub fn filter_tile_ref(tile: Tile, g: &[f64]) -> Vec<f64> {
    sandwich(&tile.g(), tile.alpha(), 3, g)
}

/// Reference output transform `Aᵀ M A` of one `α×α` product tile, in f64: `m×m`.
pub fn output_tile_ref(tile: Tile, m: &[f64]) -> Vec<f64> {
    sandwich(&tile.at(), tile.m(), tile.alpha(), m)
}

/// Reference adjoint of the output transform, `A dY Aᵀ`: `m×m` → `α×α`, in f64.
pub fn output_adjoint_ref(tile: Tile, dy: &[f64]) -> Vec<f64> {
    let a = transpose(&tile.at(), tile.m(), tile.alpha());
    sandwich(&a, tile.alpha(), tile.m(), dy)
}

/// Reference adjoint of the filter transform, `Gᵀ dU G`: `α×α` → 3×3, in f64.
pub fn filter_adjoint_ref(tile: Tile, du: &[f64]) -> Vec<f64> {
    let gt = transpose(&tile.g(), tile.alpha(), 3);
    sandwich(&gt, 3, tile.alpha(), du)
}

/// `coef[t][a·3 + b] = G[i][a] · G[j][b]` for `t = i·α + j`: the filter transform as `α²`
/// weighted sums of the 9 taps (computed in f64, rounded once).
fn filter_coefs(tile: Tile) -> Vec<[f32; 9]> {
    let (g, al) = (tile.g(), tile.alpha());
    (0..al * al)
        .map(|t| {
            let (i, j) = (t / al, t % al);
            std::array::from_fn(|ab| (g[i * 3 + ab / 3] * g[j * 3 + ab % 3]) as f32)
        })
        .collect()
}

/// Filter pairs `(co, ci)` the layer-wide filter transforms handle together, one per lane of
/// an 8-float vector (as the images of [`lanes`]).
const PAIR_LANES: usize = 8;
/// Floats added between the tap planes of [`filter_transform`]'s tap-major scratch (one
/// cache line), for the reason of `conv`'s `PLANE_PAD`: with `2ᵏ` filter pairs the 9 planes
/// would map to one cache set.
const TAP_PAD: usize = 16;

/// Filter transform of a whole layer: `u[t][co][ci] = (G w[co][ci] Gᵀ)[t]` for
/// `w[Cout][Cin][3][3]`, `u[α²][Cout][Cin]`. With `flip`, the filter of the input gradient
/// instead: `u[t][ci][co] = (G rot180(w[co][ci]) Gᵀ)[t]` (`u[α²][Cin][Cout]`).
///
/// Each output is a 9-term sum `Σ_ab coef[t][ab] · tap[ab]` in tap order (multiply, then
/// add: no fused multiply-add, so the AVX2 and portable builds agree bit for bit, and with
/// the one-pair-at-a-time loop this replaced).
///
/// Layout and why: `w` holds a pair's 9 taps together, and with `flip` the destination's
/// consecutive pairs are `Cin·9` floats apart in `w`. So the taps are first copied, once,
/// into a tap-major scratch `wt[9][pairs]` (planes `pairs + TAP_PAD` apart) in the
/// destination's pair order, rotated when flipped. Then 8 consecutive pairs are one vector
/// per tap, and each of their 9 tap vectors, loaded once, serves a whole row of `α` points
/// (`t = i·α + j`, `j < α`): reading all of `wt` once per point instead would stream it
/// from L2 `α²` times. The rows of points are independent, so they are spread over the
/// rayon pool without changing any result.
pub fn filter_transform(tile: Tile, w: &[f32], cout: usize, cin: usize, flip: bool, u: &mut [f32]) {
    filter_transform_on(crate::cpu::avx2::available(), tile, w, cout, cin, flip, u)
}

/// [`filter_transform`] with the build chosen by the caller (`true` needs AVX2).
fn filter_transform_on(
    use_avx2: bool,
    tile: Tile,
    w: &[f32],
    cout: usize,
    cin: usize,
    flip: bool,
    u: &mut [f32],
) {
    let (coefs, al) = (filter_coefs(tile), tile.alpha());
    let pairs = cout * cin;
    assert!(w.len() >= pairs * 9 && u.len() >= coefs.len() * pairs);
    if pairs == 0 {
        return;
    }
    let ld = pairs + TAP_PAD;
    conv::with_scratch(9 * ld, |wt| {
        // wt[ab·ld + idx] = tap ab of the destination's pair idx = row·cols + col, where
        // (row, col) is (co, ci), or (ci, co) when flipped.
        let (rows, cols) = if flip { (cin, cout) } else { (cout, cin) };
        for r in 0..rows {
            for c in 0..cols {
                let (co, ci) = if flip { (c, r) } else { (r, c) };
                let g = &w[(co * cin + ci) * 9..][..9];
                for ab in 0..9 {
                    wt[ab * ld + r * cols + c] = if flip { g[8 - ab] } else { g[ab] };
                }
            }
        }
        let wt = &*wt;
        crate::cpu::for_each_chunk(&mut u[..coefs.len() * pairs], al * pairs, |i, ui| {
            points_from_taps(use_avx2, &coefs[i * al..][..al], wt, ld, ui)
        });
    });
}

/// Defines `fn $name(use_avx2: bool, args…)`, which runs `$body(args…)` compiled for AVX2
/// when `use_avx2` (the CPU must have it) and portably otherwise: the same arithmetic,
/// so the same results either way.
macro_rules! avx2_or_portable {
    ($(#[$doc:meta])* $name:ident => $body:ident($($arg:ident: $ty:ty),*)) => {
        $(#[$doc])*
        fn $name(use_avx2: bool, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            fn fast($($arg: $ty),*) {
                $body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if use_avx2 {
                assert!(
                    crate::cpu::avx2::available(),
                    "AVX2 build asked for on a CPU without it"
                );
                // SAFETY: `fast` only needs AVX2, which this CPU has (asserted above).
                return unsafe { fast($($arg),*) };
            }
            let _ = use_avx2;
            $body($($arg),*)
        }
    };
}

avx2_or_portable!(
    /// `ui[p·n + k] = Σ_ab cs[p][ab] · wt[ab·ld + k]` (in `ab` order) for `n = ui.len() / cs.len()`:
    /// a row of points' planes of [`filter_transform`], AVX2 where `use_avx2`.
    points_from_taps => points_from_taps_body(cs: &[[f32; 9]], wt: &[f32], ld: usize, ui: &mut [f32]));

/// The body of [`points_from_taps`], inlined into each build.
#[inline(always)]
fn points_from_taps_body(cs: &[[f32; 9]], wt: &[f32], ld: usize, ui: &mut [f32]) {
    let n = ui.len() / cs.len();
    let taps: [&[f32]; 9] = std::array::from_fn(|ab| &wt[ab * ld..][..n]);
    let full = n - n % PAIR_LANES;
    for k in (0..full).step_by(PAIR_LANES) {
        let x: [[f32; PAIR_LANES]; 9] =
            std::array::from_fn(|ab| taps[ab][k..k + PAIR_LANES].try_into().expect("8 floats"));
        for (c, plane) in cs.iter().zip(ui.chunks_exact_mut(n)) {
            let mut acc = [0.0f32; PAIR_LANES];
            for (xab, &cab) in x.iter().zip(c) {
                for (a, &v) in acc.iter_mut().zip(xab) {
                    *a += cab * v;
                }
            }
            plane[k..k + PAIR_LANES].copy_from_slice(&acc);
        }
    }
    for k in full..n {
        for (c, plane) in cs.iter().zip(ui.chunks_exact_mut(n)) {
            let mut acc = 0.0f32;
            for (tap, &cab) in taps.iter().zip(c) {
                acc += cab * tap[k];
            }
            plane[k] = acc;
        }
    }
}

/// Adjoint of [`filter_transform`] (not flipped): `dw[co][ci] = Gᵀ du[·][co][ci] G` for
/// `dw[Cout][Cin][3][3]`; each tap a sum over the points in order (multiply, then add).
///
/// `du` holds the `α²` planes `du[t][Cout][Cin]` `plane` floats apart (`plane ≥ Cout·Cin`):
/// the weight gradient pads them by a cache line ([`conv`]'s `PLANE_PAD`), because this
/// function reads all `α²` planes at once, and planes exactly `2ᵏ` floats apart (64 KiB
/// at 128×128 channels) would all map to one cache set of L1 and L2: 36 streams for
/// `F(4,3)` exceed the ways, and every line would be fetched again for each of its floats.
/// Output rows (`co`) are spread over the rayon pool; within a row, 8 input channels per
/// vector.
pub fn filter_adjoint(
    tile: Tile,
    du: &[f32],
    plane: usize,
    cout: usize,
    cin: usize,
    dw: &mut [f32],
) {
    filter_adjoint_on(
        crate::cpu::avx2::available(),
        tile,
        du,
        plane,
        cout,
        cin,
        dw,
    )
}

/// [`filter_adjoint`] with the build chosen by the caller (`true` needs AVX2).
fn filter_adjoint_on(
    use_avx2: bool,
    tile: Tile,
    du: &[f32],
    plane: usize,
    cout: usize,
    cin: usize,
    dw: &mut [f32],
) {
    let coefs = filter_coefs(tile);
    let pairs = cout * cin;
    assert!(plane >= pairs && dw.len() >= pairs * 9);
    assert!(pairs == 0 || du.len() >= (coefs.len() - 1) * plane + pairs);
    crate::cpu::for_each_chunk(&mut dw[..pairs * 9], cin * 9, |co, row| {
        adjoint_row(use_avx2, &coefs, &du[co * cin..], plane, row)
    });
}

avx2_or_portable!(
    /// One output row of [`filter_adjoint`]: `row[ci][ab] = Σ_t coefs[t][ab] · du[t·plane + ci]`
    /// for `ci < row.len() / 9`, AVX2 where `use_avx2`.
    adjoint_row => adjoint_row_body(coefs: &[[f32; 9]], du: &[f32], plane: usize, row: &mut [f32]));

/// The body of [`adjoint_row`], inlined into each build.
#[inline(always)]
fn adjoint_row_body(coefs: &[[f32; 9]], du: &[f32], plane: usize, row: &mut [f32]) {
    let cin = row.len() / 9;
    let full = cin - cin % PAIR_LANES;
    for (k, out) in row[..full * 9].chunks_exact_mut(PAIR_LANES * 9).enumerate() {
        let ci = k * PAIR_LANES;
        // acc[ab][l]: tap ab of channel ci + l.
        let mut acc = [[0.0f32; PAIR_LANES]; 9];
        for (t, c) in coefs.iter().enumerate() {
            let x: &[f32; PAIR_LANES] = du[t * plane + ci..][..PAIR_LANES]
                .try_into()
                .expect("8 floats");
            for (accab, &cab) in acc.iter_mut().zip(c) {
                for (a, &v) in accab.iter_mut().zip(x) {
                    *a += cab * v;
                }
            }
        }
        for (l, g) in out.chunks_exact_mut(9).enumerate() {
            for (ab, d) in g.iter_mut().enumerate() {
                *d = acc[ab][l];
            }
        }
    }
    for (ci, g) in row.chunks_exact_mut(9).enumerate().skip(full) {
        let mut acc = [0.0f32; 9];
        for (t, c) in coefs.iter().enumerate() {
            let v = du[t * plane + ci];
            for (a, &cab) in acc.iter_mut().zip(c) {
                *a += cab * v;
            }
        }
        g.copy_from_slice(&acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2-D correlation of an `α×α` tile with a 3×3 filter: the `m×m` valid outputs.
    fn correlate(tile: Tile, d: &[f64], g: &[f64]) -> Vec<f64> {
        let (m, a) = (tile.m(), tile.alpha());
        let mut y = vec![0.0; m * m];
        for i in 0..m {
            for j in 0..m {
                y[i * m + j] = (0..9).map(|k| g[k] * d[(i + k / 3) * a + j + k % 3]).sum();
            }
        }
        y
    }

    /// The matrices compute the correlation: `Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A = d ⋆ g`.
    #[test]
    fn matrices_compute_the_correlation() {
        for tile in [Tile::F2, Tile::F4] {
            let a = tile.alpha();
            let d: Vec<f64> = (0..a * a)
                .map(|i| ((i * 7 + 3) % 11) as f64 - 5.0)
                .collect();
            let g: Vec<f64> = (0..9).map(|i| ((i * 5 + 1) % 7) as f64 - 3.0).collect();
            let u = filter_tile_ref(tile, &g);
            let v = input_tile_ref(tile, &d);
            let prod: Vec<f64> = u.iter().zip(&v).map(|(a, b)| a * b).collect();
            let y = output_tile_ref(tile, &prod);
            let want = correlate(tile, &d, &g);
            for (got, want) in y.iter().zip(&want) {
                assert!((got - want).abs() < 1e-9, "{tile:?}: {got} vs {want}");
            }
        }
    }

    /// The adjoints are the transposes: `⟨Aᵀ M A, Y⟩ = ⟨M, A Y Aᵀ⟩`, `⟨G g Gᵀ, U⟩ = ⟨g, Gᵀ U G⟩`.
    #[test]
    fn adjoints_are_transposes() {
        for tile in [Tile::F2, Tile::F4] {
            let (m, a) = (tile.m(), tile.alpha());
            let mm: Vec<f64> = (0..a * a).map(|i| (i as f64 * 0.37).sin()).collect();
            let dy: Vec<f64> = (0..m * m).map(|i| (i as f64 * 0.91).cos()).collect();
            let lhs: f64 = output_tile_ref(tile, &mm)
                .iter()
                .zip(&dy)
                .map(|(x, y)| x * y)
                .sum();
            let rhs: f64 = mm
                .iter()
                .zip(&output_adjoint_ref(tile, &dy))
                .map(|(x, y)| x * y)
                .sum();
            assert!((lhs - rhs).abs() < 1e-12);
            let g: Vec<f64> = (0..9).map(|i| (i as f64 * 1.3).sin()).collect();
            let du: Vec<f64> = (0..a * a).map(|i| (i as f64 * 0.5).cos()).collect();
            let lhs: f64 = filter_tile_ref(tile, &g)
                .iter()
                .zip(&du)
                .map(|(x, y)| x * y)
                .sum();
            let rhs: f64 = g
                .iter()
                .zip(&filter_adjoint_ref(tile, &du))
                .map(|(x, y)| x * y)
                .sum();
            assert!((lhs - rhs).abs() < 1e-12);
        }
    }

    /// The plain scalar loops the vectorised [`filter_transform`] and [`filter_adjoint`]
    /// replaced (one pair at a time, taps or points in order): both builds must write the
    /// same bits as these, for channel counts with and without a multiple of 8, flipped or
    /// not, and with padded `dU` planes.
    #[test]
    fn filter_transforms_match_scalar_loops_bit_for_bit() {
        let builds: Vec<bool> = if crate::cpu::avx2::available() {
            vec![false, true]
        } else {
            vec![false]
        };
        for (cout, cin) in [(3, 5), (16, 13), (8, 24), (1, 1), (17, 8)] {
            let pairs = cout * cin;
            let w: Vec<f32> = (0..pairs * 9)
                .map(|i| ((i as f32) * 0.377).sin() * 1.7)
                .collect();
            for tile in [Tile::F2, Tile::F4] {
                let coefs = filter_coefs(tile);
                let pts = coefs.len();
                for flip in [false, true] {
                    let mut want = vec![0.0f32; pts * pairs];
                    for (t, c) in coefs.iter().enumerate() {
                        for idx in 0..pairs {
                            let (co, ci) = if flip {
                                (idx % cout, idx / cout)
                            } else {
                                (idx / cin, idx % cin)
                            };
                            let g = &w[(co * cin + ci) * 9..][..9];
                            let mut acc = 0.0f32;
                            for ab in 0..9 {
                                acc += c[ab] * if flip { g[8 - ab] } else { g[ab] };
                            }
                            want[t * pairs + idx] = acc;
                        }
                    }
                    for &b in &builds {
                        let mut u = vec![f32::NAN; pts * pairs];
                        filter_transform_on(b, tile, &w, cout, cin, flip, &mut u);
                        let same = u.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{tile:?} {cout}x{cin} flip {flip} avx2 {b}");
                    }
                }
                for pad in [0, 16] {
                    let plane = pairs + pad;
                    let du: Vec<f32> = (0..pts * plane)
                        .map(|i| ((i as f32) * 0.619).cos())
                        .collect();
                    let mut want = vec![0.0f32; pairs * 9];
                    for idx in 0..pairs {
                        let mut acc = [0.0f32; 9];
                        for (t, c) in coefs.iter().enumerate() {
                            let v = du[t * plane + idx];
                            for ab in 0..9 {
                                acc[ab] += c[ab] * v;
                            }
                        }
                        want[idx * 9..][..9].copy_from_slice(&acc);
                    }
                    for &b in &builds {
                        let mut dw = vec![f32::NAN; pairs * 9];
                        filter_adjoint_on(b, tile, &du, plane, cout, cin, &mut dw);
                        let same = dw
                            .iter()
                            .zip(&want)
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{tile:?} {cout}x{cin} pad {pad} adjoint avx2 {b}");
                    }
                }
            }
        }
    }

    /// The layer-wide filter transform (plain and flipped) and its adjoint against the
    /// per-tile references.
    #[test]
    fn filter_transforms_match_reference() {
        let (cout, cin) = (3, 5);
        let w: Vec<f32> = (0..cout * cin * 9)
            .map(|i| ((i as f32) * 0.731).sin())
            .collect();
        for tile in [Tile::F2, Tile::F4] {
            let t = tile.points();
            let mut u = vec![0.0; t * cout * cin];
            let mut uf = vec![0.0; t * cout * cin];
            filter_transform(tile, &w, cout, cin, false, &mut u);
            filter_transform(tile, &w, cout, cin, true, &mut uf);
            let mut dw = vec![0.0; cout * cin * 9];
            filter_adjoint(tile, &u, cout * cin, cout, cin, &mut dw);
            for co in 0..cout {
                for ci in 0..cin {
                    let g: Vec<f64> = w[(co * cin + ci) * 9..][..9]
                        .iter()
                        .map(|&v| v as f64)
                        .collect();
                    let flipped: Vec<f64> = g.iter().rev().copied().collect();
                    let want = filter_tile_ref(tile, &g);
                    let want_f = filter_tile_ref(tile, &flipped);
                    for p in 0..t {
                        let got = u[p * cout * cin + co * cin + ci] as f64;
                        assert!((got - want[p]).abs() < 1e-6, "{tile:?} u");
                        let got = uf[p * cout * cin + ci * cout + co] as f64;
                        assert!((got - want_f[p]).abs() < 1e-6, "{tile:?} flipped u");
                    }
                    let uu: Vec<f64> = (0..t)
                        .map(|p| u[p * cout * cin + co * cin + ci] as f64)
                        .collect();
                    let want = filter_adjoint_ref(tile, &uu);
                    for ab in 0..9 {
                        let got = dw[(co * cin + ci) * 9 + ab] as f64;
                        assert!((got - want[ab]).abs() < 1e-5, "{tile:?} adjoint");
                    }
                }
            }
        }
    }
}
