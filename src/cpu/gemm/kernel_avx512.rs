//! The AVX-512F microkernel: an `MR × 16·NV` tile in `MR·NV` `zmm` accumulators.
//!
//! AVX-512 doubles both the vector width (16 floats) and the register file (32 `zmm`),
//! so the tile can hold four to five times the AVX2 kernel's 96 floats:
//!
//! ```text
//!   MR·NV  accumulators  c[i][16h..16h+16]   for i < MR, h < NV    (24 for 8×48)
//!   NV     B row          b[p][16h..16h+16]                         (3)
//!   1      broadcast      a[p][i] splatted to 16 lanes (vbroadcastss from memory)
//!   ≤ 32                                                            (28: no spills)
//! ```
//!
//! The shape is generic ([`Avx512Tile`]`<MR, NV, KC>`) so other tiles can be benchmarked
//! (`GEMM_BENCH_TILES=1 cargo bench --bench gemm`); the library uses [`Avx512F`], and
//! [`Avx512FLow`] for products with at most 6 rows, [`Avx512FLow4`] for at most 4.
//!
//! Edge tiles are computed in place with masked loads and stores
//! (`_mm512_maskz_loadu_ps` / `_mm512_mask_storeu_ps`): only the valid `rows × cols`
//! of `C` are touched, with exactly the arithmetic of a full tile; a panel of at most 16 or
//! 32 valid columns runs with 1 or 2 B vectors instead of all `NV`.
//!
//! Like the AVX2 kernel, this is compiled for its instruction set with
//! `#[target_feature]` and only reachable through a capability token made by
//! [`Avx512F::detect`].

use super::kernel::{MicroKernel, check_tile};
use super::kernel_avx2::pack_b_transposed_n;
use std::arch::x86_64::{
    __m512, _MM_HINT_T0, _mm_prefetch, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps,
    _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
};

/// Capability token for the AVX-512F `MR × 16·NV` microkernel with packed depth `KC`:
/// only [`Avx512Tile::detect`] makes one, and only on a CPU with AVX-512F (and AVX2 +
/// FMA, used for packing).
#[derive(Clone, Copy, Debug)]
pub struct Avx512Tile<const MR: usize, const NV: usize, const KC: usize> {
    _proof: (),
}

/// The AVX-512F kernel the library uses: 8 × 48 (24 accumulators, 3 B vectors), `KC` =
/// 192. Per k-step 3 loads of B and 8 broadcast-loads of A feed 24 FMAs (12 cycles on two
/// 512-bit FMA pipes, 24 chains ≫ the 8 that cover a 4-cycle latency). `MR` = 8 divides
/// the channel counts of the CNNs here (16…256), so convolution GEMMs (`m` = output
/// channels) waste no rows, where 12 or 14 rows would. The `KC × 48` B micropanel
/// (192·48·4 = 36 KiB) plus the `8 × KC` A micropanel (6 KiB) fit the 48 KiB L1d of the
/// Xeon it was tuned on. `docs/avx512.md` has the shapes and depths compared.
pub type Avx512F = Avx512Tile<8, 3, 192>;

/// The tile the library uses instead of [`Avx512F`] for products with at most 6 rows
/// (`m ≤ 6`: the 6 output channels of the first convolution of the article's net, where
/// 8 rows would waste a quarter of the FMAs): 6 × 64, also 24 accumulators.
pub type Avx512FLow = Avx512Tile<6, 4, 192>;

/// The tile for products with at most 4 rows (a dense layer's input gradient at batch 4,
/// `dx[4×400] = dy·W`): 4 × 80, 20 accumulators. Per k-step 5 loads of B and 4
/// broadcasts feed 20 FMAs, where the 6-row tile would spend a third of its FMAs on
/// missing rows; 80 columns divide the article's 400-wide layer into whole tiles. At
/// `4×120·120×400` on Zen 5: 1.9 µs against 2.9 µs with the 6 × 64 tile.
pub type Avx512FLow4 = Avx512Tile<4, 5, 192>;

impl<const MR: usize, const NV: usize, const KC: usize> Avx512Tile<MR, NV, KC> {
    /// The same capability for another tile shape (the CPU check is the same).
    pub fn retile<const MR2: usize, const NV2: usize, const KC2: usize>(
        self,
    ) -> Avx512Tile<MR2, NV2, KC2> {
        Avx512Tile { _proof: () }
    }

    /// Returns the kernel if the running CPU supports AVX-512F, AVX2 and FMA.
    pub fn detect() -> Option<Self> {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            Some(Self { _proof: () })
        } else {
            None
        }
    }
}

impl<const MR: usize, const NV: usize, const KC: usize> MicroKernel for Avx512Tile<MR, NV, KC> {
    const MR: usize = MR;
    const NR: usize = 16 * NV;
    const KC: usize = KC;
    /// About 192 rows: `MC × KC` (192·192·4 = 144 KiB for 8×48) is well inside the 2 MiB
    /// L2 of the AVX-512 Xeon this was measured on.
    const MC: usize = 192 / MR * MR;
    const NC: usize = 4080 / (16 * NV) * (16 * NV);

    fn name(&self) -> &'static str {
        match (MR, NV) {
            (8, 3) => "avx512f 8x48",
            (12, 2) => "avx512f 12x32",
            (14, 2) => "avx512f 14x32",
            (6, 4) => "avx512f 6x64",
            _ => "avx512f",
        }
    }

    #[inline]
    fn run(
        &self,
        k: usize,
        a: &[f32],
        b: &[f32],
        rsb: usize,
        c: &mut [f32],
        rsc: usize,
        load_c: bool,
    ) {
        self.run_edge(k, a, b, rsb, c, rsc, load_c, MR, 16 * NV);
    }

    #[inline]
    fn run_edge(
        &self,
        k: usize,
        a: &[f32],
        b: &[f32],
        rsb: usize,
        c: &mut [f32],
        rsc: usize,
        load_c: bool,
        rows: usize,
        cols: usize,
    ) -> bool {
        let nr = 16 * NV;
        assert!(
            (1..=MR).contains(&rows) && (1..=nr).contains(&cols),
            "microkernel: edge tile {rows}x{cols} outside {MR}x{nr}"
        );
        // A and B as for a full tile; C only for the `rows × cols` that exist.
        check_tile(MR, nr, k, a.len(), b.len(), rsb, usize::MAX, 0);
        assert!(
            c.len() >= (rows - 1) * rsc + cols,
            "microkernel: C tile out of bounds"
        );
        // SAFETY: `self` exists only if `detect` saw AVX-512F on this CPU. The asserts
        // cover a[..k*MR], b[..(k-1)*rsb + nr] and c[i*rsc + j] for i < rows, j < cols;
        // the kernel reads or writes C only under masks limited to those elements.
        unsafe {
            // A ragged last panel of at most 16 or 32 columns runs on a kernel of 1 or 2
            // B vectors (the same B rows at the same stride, the same arithmetic per
            // element), so it costs its own width rather than a whole tile's: at a 7×7
            // map (n = 49) that saves a third of the FMAs.
            let (a, b, c) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
            match cols.div_ceil(16) {
                1 if NV > 1 => kernel::<MR, 1, false>(k, a, b, rsb, c, rsc, load_c, rows, cols),
                2 if NV > 2 => kernel::<MR, 2, false>(k, a, b, rsb, c, rsc, load_c, rows, cols),
                _ if rsb == nr => kernel::<MR, NV, true>(k, a, b, rsb, c, rsc, load_c, rows, cols),
                _ => kernel::<MR, NV, false>(k, a, b, rsb, c, rsc, load_c, rows, cols),
            }
        }
        true
    }

    fn pack_b_transposed(
        &self,
        kc: usize,
        cols: usize,
        b: &[f32],
        off: usize,
        csb: usize,
        out: &mut [f32],
    ) -> bool {
        // SAFETY: `self` exists only if `detect` saw AVX2 on this CPU.
        unsafe {
            match NV {
                2 => pack_b_transposed_n::<32>(kc, cols, b, off, csb, out),
                3 => pack_b_transposed_n::<48>(kc, cols, b, off, csb, out),
                4 => pack_b_transposed_n::<64>(kc, cols, b, off, csb, out),
                _ => return false,
            }
        }
        true
    }
}

/// The kernel proper: `c[i][j] (=|+=) Σ_p a[p·MR + i]·b[p·rsb + j]` for `i < rows`,
/// `j < cols`, computed for the whole `MR × 16·NV` tile in registers. `PACKED_B` makes
/// the B row stride the constant `16·NV` so the unrolled loop uses immediate offsets.
///
/// # Safety
/// The CPU must support AVX-512F; `a` must be valid for `k·MR` reads, `b` for reads of
/// `b[p·rsb + j]` (`p < k`, `j < 16·NV`), `c` for reads and writes of `c[i·rsc + j]`
/// (`i < rows ≤ MR`, `j < cols ≤ 16·NV`).
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel<const MR: usize, const NV: usize, const PACKED_B: bool>(
    k: usize,
    a: *const f32,
    b: *const f32,
    rsb: usize,
    c: *mut f32,
    rsc: usize,
    load_c: bool,
    rows: usize,
    cols: usize,
) {
    let rsb = if PACKED_B { 16 * NV } else { rsb };
    let mut acc: [[__m512; NV]; MR] = [[_mm512_setzero_ps(); NV]; MR];

    // Pull the C tile towards L1 while the k loop runs (a prefetch never faults).
    for i in 0..rows {
        let row = c.wrapping_add(i * rsc) as *const i8;
        for line in 0..NV + 1 {
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add((64 * line).min(64 * NV - 4)));
        }
    }

    // One k-step: acc[i][h] += a[p][i] * b[p][16h..16h+16].
    macro_rules! step {
        ($ap:expr, $bp:expr) => {{
            // SAFETY: the caller guarantees B row p (16·NV floats) is readable.
            let bv: [__m512; NV] =
                std::array::from_fn(|h| unsafe { _mm512_loadu_ps($bp.add(16 * h)) });
            for i in 0..MR {
                // SAFETY: i < MR, inside A column p.
                let ai = _mm512_set1_ps(unsafe { *$ap.add(i) });
                for h in 0..NV {
                    acc[i][h] = _mm512_fmadd_ps(ai, bv[h], acc[i][h]);
                }
            }
        }};
    }

    let (mut ap, mut bp) = (a, b);
    // Unrolled by 4; each accumulator still sees p in increasing order.
    let mut left = k;
    while left >= 4 {
        step!(ap, bp);
        step!(ap.wrapping_add(MR), bp.wrapping_add(rsb));
        step!(ap.wrapping_add(2 * MR), bp.wrapping_add(2 * rsb));
        step!(ap.wrapping_add(3 * MR), bp.wrapping_add(3 * rsb));
        ap = ap.wrapping_add(4 * MR);
        bp = bp.wrapping_add(4 * rsb);
        left -= 4;
    }
    while left > 0 {
        step!(ap, bp);
        ap = ap.wrapping_add(MR);
        bp = bp.wrapping_add(rsb);
        left -= 1;
    }

    // Write back the valid part: lanes j < cols of each 16-wide vector, rows i < rows.
    let masks: [u16; NV] = std::array::from_fn(|h| {
        let lanes = cols.saturating_sub(16 * h).min(16);
        ((1u32 << lanes) - 1) as u16
    });
    for (i, row) in acc.iter().enumerate().take(rows) {
        for (h, &v) in row.iter().enumerate() {
            if masks[h] == 0 {
                continue;
            }
            let cp = c.wrapping_add(i * rsc + 16 * h);
            // SAFETY: only lanes under the mask are read or written: j = 16h + lane <
            // cols and i < rows, inside the C tile the caller vouched for. Masked-off
            // lanes are never accessed and cannot fault.
            unsafe {
                let out = if load_c {
                    _mm512_add_ps(_mm512_maskz_loadu_ps(masks[h], cp), v)
                } else {
                    v
                };
                _mm512_mask_storeu_ps(cp, masks[h], out);
            }
        }
    }
}
