//! The portable microkernel on `wide::f32x8`: safe code, any CPU.
//!
//! `wide` chooses its implementation when the crate is compiled: with a default x86-64
//! build an `f32x8` is two SSE2 `f32x4` and `mul_add` is a multiply then an add (no
//! FMA). The tile shape follows that choice so the accumulators stay in registers:
//!
//! * 256-bit vectors available at compile time (`-C target-cpu=...` with AVX):
//!   6×16, twelve `f32x8` accumulators, the same shape as the AVX2 kernel;
//! * otherwise (SSE2, 16 `xmm` registers): 4×8, four `f32x8` = eight `xmm`
//!   accumulators plus two for the B row and one broadcast.

use super::kernel::{MicroKernel, check_tile};
use wide::f32x8;

/// Rows of the portable tile.
#[cfg(target_feature = "avx")]
const PMR: usize = 6;
/// `f32x8` vectors per tile row.
#[cfg(target_feature = "avx")]
const PNV: usize = 2;
/// Rows of the portable tile.
#[cfg(not(target_feature = "avx"))]
const PMR: usize = 4;
/// `f32x8` vectors per tile row.
#[cfg(not(target_feature = "avx"))]
const PNV: usize = 1;

/// The `wide::f32x8` microkernel (tile `PMR × 8·PNV`, see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Portable;

impl MicroKernel for Portable {
    const MR: usize = PMR;
    const NR: usize = 8 * PNV;

    fn name(&self) -> &'static str {
        if PNV == 2 {
            "wide::f32x8 6x16"
        } else {
            "wide::f32x8 4x8"
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
        const MR: usize = PMR;
        const NR: usize = 8 * PNV;
        check_tile(MR, NR, k, a.len(), b.len(), rsb, c.len(), rsc);
        let mut acc = [[f32x8::splat(0.0); PNV]; PMR];
        // Step p: acc[i][h] += a[p][i] * b[p][8h..8h+8].
        for (p, a_col) in a[..k * MR].chunks_exact(MR).enumerate() {
            let b_row = &b[p * rsb..p * rsb + NR];
            let mut bv = [f32x8::splat(0.0); PNV];
            for (h, v) in bv.iter_mut().enumerate() {
                *v = f32x8::new(b_row[8 * h..8 * h + 8].try_into().unwrap());
            }
            for (acc_row, &ai) in acc.iter_mut().zip(a_col) {
                let av = f32x8::splat(ai);
                for (acc_v, &b_v) in acc_row.iter_mut().zip(&bv) {
                    *acc_v = av.mul_add(b_v, *acc_v);
                }
            }
        }
        // Write back: c = c + acc (or c = acc).
        for (i, acc_row) in acc.iter().enumerate() {
            let c_row = &mut c[i * rsc..i * rsc + NR];
            for (h, v) in acc_row.iter().enumerate() {
                let dst = &mut c_row[8 * h..8 * h + 8];
                let out = if load_c {
                    f32x8::new((&*dst).try_into().unwrap()) + *v
                } else {
                    *v
                };
                dst.copy_from_slice(&out.to_array());
            }
        }
    }
}
