//! The microkernel contract shared by every instruction set.
//!
//! A microkernel computes one `MR×NR` tile of `C` from a *micropanel* of `A`
//! (`MR` rows × `k` columns, packed so that the `MR` values of one column are adjacent)
//! and a micropanel of `B` (`k` rows × `NR` columns, each row's `NR` values adjacent):
//!
//! ```text
//!   a: [p][i]  a[p*MR + i]          (i < MR, p < k)   "column p of the A panel"
//!   b: [p][j]  b[p*rsb + j]         (j < NR, p < k)   rsb = NR when packed,
//!                                                     or B's own row stride when
//!                                                     B is read in place
//!   c: [i][j]  c[i*rsc + j]         (i < MR, j < NR)
//!
//!   acc[i][j] = Σ_{p=0..k} a[p][i] · b[p][j]   (in increasing p, one fused multiply-add each)
//!   c[i][j]   = load_c ? c[i][j] + acc[i][j] : acc[i][j]
//! ```
//!
//! The kernel keeps the whole `MR×NR` accumulator tile in vector registers for the
//! length of `k`: per step `p` it loads one row of the B panel (`NR` floats), broadcasts
//! each of the `MR` values of the A column and does `MR·NR/8` vector FMAs. That is the
//! one place where the flops happen; everything else in the GEMM is there to feed it
//! from cache.
//!
//! Every kernel must produce, for a given `(a, b, k)`, results that do not depend on
//! which tile of `C` it is asked to compute or on whether `c` is a temporary: that is
//! what makes the blocked and parallel drivers bit-for-bit reproducible.

/// A register-blocked `MR×NR` GEMM microkernel (see the module docs for the contract).
///
/// Values of a type implementing it are *capabilities*: for instruction-set specific
/// kernels the value can only be obtained after the CPU was checked to support it, so
/// [`MicroKernel::run`] is a safe function.
pub trait MicroKernel: Copy + Send + Sync {
    /// Rows of the `C` tile (= rows of an A micropanel).
    const MR: usize;
    /// Columns of the `C` tile (= columns of a B micropanel).
    const NR: usize;
    /// Depth of one packed block for this kernel (see [`super::KC`]). A constant per
    /// kernel, never per thread count: it fixes the summation order.
    const KC: usize = super::KC;
    /// Rows of A packed at once for this kernel: a multiple of `MR` (see [`super::MC`]).
    const MC: usize = super::MC;
    /// Columns of B packed at once for this kernel: a multiple of `NR` (see [`super::NC`]).
    const NC: usize = super::NC;

    /// Short human-readable name ("avx2+fma 6x16"), for benches and logs.
    fn name(&self) -> &'static str;

    /// `c[MR×NR] (=|+=) a_panel[MR×k] · b_panel[k×NR]`, see the module docs.
    ///
    /// Panics if the slices are too short for the tile (`a.len() < k*MR`,
    /// `b.len() < (k-1)*rsb + NR`, `c.len() < (MR-1)*rsc + NR`).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        k: usize,
        a: &[f32],
        b: &[f32],
        rsb: usize,
        c: &mut [f32],
        rsc: usize,
        load_c: bool,
    );

    /// An edge tile: like [`MicroKernel::run`], but only the top-left `rows × cols`
    /// (`1 ≤ rows ≤ MR`, `1 ≤ cols ≤ NR`) of the `C` tile exist and are read or written;
    /// every element written must be bit-identical to what `run` computes for it.
    /// Returns `false` (and touches nothing) if the kernel has no such form, in which
    /// case the driver computes the whole tile into a scratch tile and copies.
    ///
    /// Panics if the slices are too short (`c.len() < (rows-1)*rsc + cols`, A and B as
    /// for `run`).
    #[allow(clippy::too_many_arguments, unused_variables)]
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
        false
    }

    /// Packs one `kc × cols` B micropanel (`1 ≤ cols ≤ NR`) from a column-major B (unit
    /// row stride: element `(p, j)` at `b[off + j·csb + p]`) into `out[p·NR + j]`,
    /// zero-padding columns `cols..NR`, if this kernel has a fast transposing copy;
    /// returns `false` (and writes nothing) otherwise.
    #[allow(unused_variables)]
    fn pack_b_transposed(
        &self,
        kc: usize,
        cols: usize,
        b: &[f32],
        off: usize,
        csb: usize,
        out: &mut [f32],
    ) -> bool {
        false
    }
}

/// Asserts the slice lengths a `mr×nr` microkernel call will touch; called once per tile
/// (a handful of compares next to `k·mr·nr` flops), it is what lets the kernels index
/// without further checks.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_tile(
    mr: usize,
    nr: usize,
    k: usize,
    a_len: usize,
    b_len: usize,
    rsb: usize,
    c_len: usize,
    rsc: usize,
) {
    assert!(a_len >= k * mr, "microkernel: A panel too short");
    assert!(
        k == 0 || b_len >= (k - 1) * rsb + nr,
        "microkernel: B panel too short"
    );
    assert!(
        c_len >= (mr - 1) * rsc + nr,
        "microkernel: C tile out of bounds"
    );
}
