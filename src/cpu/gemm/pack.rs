//! Packing: copying blocks of `A` and `B` into the layout the microkernel streams.
//!
//! ```text
//!  A block (mc × kc), rows i0.., columns p0..       packed A: ⌈mc/MR⌉ micropanels
//!  element (i, p) at a[off + i*rsa + p*csa]         panel r, element (i, p) at
//!                                                   out[r*MR*kc + p*MR + i]
//!
//!  B block (kc × nc)                                packed B: ⌈nc/NR⌉ micropanels
//!  element (p, j) at b[off + p*rsb + j*csb]         panel q, element (p, j) at
//!                                                   out[q*NR*kc + p*NR + j]
//! ```
//!
//! After packing, the microkernel reads both panels strictly sequentially whatever the
//! original strides were (a transposed operand is just a different packing loop), and
//! the ragged last panel is zero-padded to a full `MR`/`NR` so the kernel never needs a
//! special case. Padding rows/columns produce garbage-free zeros in the tile, which the
//! driver simply does not write back.
//!
//! The buffers live in thread-locals and only ever grow, so a steady stream of GEMMs
//! allocates nothing.

use super::kernel::MicroKernel;
use rayon::prelude::*;
use std::cell::Cell;
use std::thread::LocalKey;

/// Packs the `mc × kc` block of `A` starting at `a[off]` into `MR`-row micropanels.
///
/// `out` must hold at least `⌈mc/MR⌉·MR·kc` floats.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_a<K: MicroKernel>(
    kc: usize,
    mc: usize,
    a: &[f32],
    off: usize,
    rsa: usize,
    csa: usize,
    out: &mut [f32],
) {
    let mr = K::MR;
    let panels = mc.div_ceil(mr);
    for (r, dst) in out[..panels * mr * kc]
        .chunks_exact_mut(mr * kc)
        .enumerate()
    {
        let i0 = r * mr;
        let rows = mr.min(mc - i0);
        let base = off + i0 * rsa;
        if rows == mr && csa == 1 {
            // Row-major A: each row is contiguous along p. Transpose in 8-column strips:
            // 8 consecutive values of each of the MR rows go down row i of an 8 × MR strip.
            let strips = kc / 8;
            for (s, strip) in dst[..strips * 8 * mr].chunks_exact_mut(8 * mr).enumerate() {
                let p0 = s * 8;
                for i in 0..mr {
                    let src: &[f32; 8] = a[base + i * rsa + p0..][..8].try_into().unwrap();
                    for (t, &v) in src.iter().enumerate() {
                        strip[t * mr + i] = v;
                    }
                }
            }
            for p in strips * 8..kc {
                for i in 0..mr {
                    dst[p * mr + i] = a[base + i * rsa + p];
                }
            }
        } else if rows == mr && rsa == 1 {
            // Column-major A (an Aᵀ operand): the MR values of column p are adjacent.
            for (p, d) in dst.chunks_exact_mut(mr).enumerate() {
                copy_row(d, &a[base + p * csa..base + p * csa + mr]);
            }
        } else {
            // General strides and the ragged last panel (zero-padded).
            for (p, d) in dst.chunks_exact_mut(mr).enumerate() {
                for (i, v) in d.iter_mut().enumerate() {
                    *v = if i < rows {
                        a[base + i * rsa + p * csa]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// `dst = src` for the short rows of a micropanel (`NR` = 8…64 floats), by 8-float
/// blocks the compiler keeps in registers: `copy_from_slice` calls `memmove` for each
/// row, which costs more than the copy at these lengths.
#[inline(always)]
fn copy_row(dst: &mut [f32], src: &[f32]) {
    let mut d8 = dst.chunks_exact_mut(8);
    let mut s8 = src.chunks_exact(8);
    for (d, s) in (&mut d8).zip(&mut s8) {
        let v: [f32; 8] = s.try_into().unwrap();
        d.copy_from_slice(&v);
    }
    for (d, s) in d8.into_remainder().iter_mut().zip(s8.remainder()) {
        *d = *s;
    }
}

/// Packs one `kc × cols` B micropanel (`cols ≤ NR`) starting at `b[off]`, zero-padding
/// columns `cols..NR`. `out` must hold `NR·kc` floats.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_b_panel<K: MicroKernel>(
    kern: K,
    kc: usize,
    cols: usize,
    b: &[f32],
    off: usize,
    rsb: usize,
    csb: usize,
    out: &mut [f32],
) {
    let nr = K::NR;
    let out = &mut out[..nr * kc];
    if cols == nr && csb == 1 {
        // Row-major B: row p of the panel is a contiguous run of NR floats.
        for (p, d) in out.chunks_exact_mut(nr).enumerate() {
            copy_row(d, &b[off + p * rsb..off + p * rsb + nr]);
        }
    } else if rsb == 1 && kern.pack_b_transposed(kc, cols, b, off, csb, out) {
        // Column-major B (full or ragged panel), packed by the kernel's SIMD transpose.
    } else if cols == nr && rsb == 1 {
        // Column-major B (a Bᵀ operand): each column is contiguous along p. Transpose
        // in 8-row strips: read 8 consecutive values of each of the NR columns, write
        // them down column j of an 8 × NR strip (which stays in L1).
        let strips = kc / 8;
        for (s, strip) in out[..strips * 8 * nr].chunks_exact_mut(8 * nr).enumerate() {
            let p0 = s * 8;
            for j in 0..nr {
                let src: &[f32; 8] = b[off + j * csb + p0..][..8].try_into().unwrap();
                for (t, &v) in src.iter().enumerate() {
                    strip[t * nr + j] = v;
                }
            }
        }
        for p in strips * 8..kc {
            for j in 0..nr {
                out[p * nr + j] = b[off + j * csb + p];
            }
        }
    } else if csb == 1 {
        // Row-major B, ragged panel: `cols` floats of each row, then zeros.
        for (p, d) in out.chunks_exact_mut(nr).enumerate() {
            let (head, pad) = d.split_at_mut(cols);
            head.copy_from_slice(&b[off + p * rsb..][..cols]);
            pad.fill(0.0);
        }
    } else {
        for (p, d) in out.chunks_exact_mut(nr).enumerate() {
            for (j, v) in d.iter_mut().enumerate() {
                *v = if j < cols {
                    b[off + p * rsb + j * csb]
                } else {
                    0.0
                };
            }
        }
    }
}

/// Packs the `kc × nc` block of `B` starting at `b[off]` into `NR`-column micropanels,
/// optionally spreading the panels over the rayon pool (packing order does not affect
/// the packed values, so this is deterministic).
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_b<K: MicroKernel>(
    kern: K,
    kc: usize,
    nc: usize,
    b: &[f32],
    off: usize,
    rsb: usize,
    csb: usize,
    out: &mut [f32],
    parallel: bool,
) {
    let nr = K::NR;
    for_each_panel(nr, kc, nc, out, parallel, |q, cols, dst| {
        pack_b_panel(kern, kc, cols, b, off + q * nr * csb, rsb, csb, dst)
    });
}

/// Runs `f(q, columns, panel)` for each of the `⌈nc/nr⌉` `nr × kc` micropanels of `out`
/// (`columns`: how many of its `nr` columns are B's), on the rayon pool when `parallel`
/// and there are enough panels (8 or more) to share.
pub(crate) fn for_each_panel(
    nr: usize,
    kc: usize,
    nc: usize,
    out: &mut [f32],
    parallel: bool,
    f: impl Fn(usize, usize, &mut [f32]) + Sync + Send,
) {
    let panels = nc.div_ceil(nr);
    let out = &mut out[..panels * nr * kc];
    let one = |(q, dst): (usize, &mut [f32])| f(q, nr.min(nc - q * nr), dst);
    if parallel && panels >= 8 {
        out.par_chunks_mut(nr * kc).enumerate().for_each(one);
    } else {
        out.chunks_mut(nr * kc).enumerate().for_each(one);
    }
}

thread_local! {
    /// Per-thread buffer for packed A blocks (at most `MC × KC` floats).
    pub(crate) static A_BUF: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    /// Per-thread buffer for packed B blocks (at most `KC × NC` floats) or, when B is
    /// read in place, for its ragged last panel.
    pub(crate) static B_BUF: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on a 64-byte-aligned scratch slice of `len` floats taken from the thread-local
/// `key`. The vector is *taken out* of the cell for the duration, so a nested call on the
/// same thread (rayon work-stealing inside a parallel GEMM) finds the cell empty and
/// uses a fresh vector instead of aliasing; on return the larger of the two is kept.
/// The buffer only grows, so the steady state allocates nothing. Contents are stale:
/// callers overwrite what they read.
pub(crate) fn with_buffer<R>(
    key: &'static LocalKey<Cell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    // 16 spare floats = 64 bytes, enough to reach a cache-line boundary.
    const SPARE: usize = 16;
    let mut v = key.take();
    if v.len() < len + SPARE {
        v.resize(len + SPARE, 0.0);
    }
    let start = v.as_ptr().align_offset(64).min(SPARE);
    let r = f(&mut v[start..start + len]);
    key.with(|cell| {
        let other = cell.take();
        cell.set(if other.capacity() > v.capacity() {
            other
        } else {
            v
        });
    });
    r
}
