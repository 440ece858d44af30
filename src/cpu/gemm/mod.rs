//! Single-precision matrix multiply: `C = A·B` or `C += A·B`.
//!
//! Operands are strided views, so the transposed forms the backward passes need
//! (`Aᵀ·B`, `A·Bᵀ`) are the same call with the strides swapped: nothing is transposed
//! in memory. Element `(i, j)` of a matrix with row stride `rs` and column stride `cs`
//! lives at `data[i * rs + j * cs]`; `C` always has column stride 1.
//!
//! # Variants (same signature, all tested against [`gemm_naive`])
//!
//! | function                 | what it is                                               |
//! |--------------------------|----------------------------------------------------------|
//! | [`gemm_naive`]           | the reference triple loop                                |
//! | [`gemm_blocked`]         | cache-blocked scalar loops, no packing                   |
//! | [`gemm_packed`]          | BLIS design, best microkernel for this CPU, one thread   |
//! | [`gemm_packed_portable`] | BLIS design, `wide::f32x8` microkernel forced            |
//! | [`gemm_parallel`]        | BLIS design, best microkernel, rayon over row blocks     |
//! | [`gemm_dot`]             | dot products, no packing, for `A·Bᵀ` with few rows       |
//! | [`gemm_dot_portable`]    | the same on `wide::f32x8`                                |
//! | [`gemm`]                 | the entry point: picks serial or parallel by size        |
//!
//! # Microkernels, chosen at run time
//!
//! | kernel        | tile | needs                    | file                   |
//! |---------------|------|--------------------------|------------------------|
//! | [`Avx512F`]   | 8×48 (6×64 when `m ≤ 6`: [`Avx512FLow`]; 4×80 when `m ≤ 4`: [`Avx512FLow4`]) | AVX-512F (+ AVX2, FMA) | `kernel_avx512.rs` |
//! | [`Avx2Fma`]   | 6×16 | AVX2, FMA                | `kernel_avx2.rs`       |
//! | [`Portable`]  | 4×8 (6×16 with AVX at compile time) | any CPU | `kernel_portable.rs` |
//!
//! The fast variants use the first one the CPU supports (detected once, cached). The
//! environment variable `FERROCONV_GEMM_KERNEL=avx512|avx2|portable` (read once, at the
//! first GEMM) forces a kernel, for benchmarking and testing; a kernel the CPU lacks, or
//! an unknown value, is reported on stderr and the detected one used. Tests and benches
//! reach every supported kernel directly through `gemm_forced` and [`Kernel`].
//! Each kernel has its own blocking (`MicroKernel::KC`/`MC`/`NC`; the defaults are the
//! module constants [`KC`], [`MC`], [`NC`]).
//!
//! # The BLIS design in five loops
//!
//! ```text
//! for jc in 0..n step NC                 // 5th loop: NC columns of B and C
//!   for pc in 0..k step KC               // 4th loop: a KC-deep slice of the product
//!     pack B[pc.., jc..] (KC×NC)  →  B~   // NR-column micropanels, lives in L3
//!     for ic in 0..m step MC             // 3rd loop: MC rows of A and C (parallel)
//!       pack A[ic.., pc..] (MC×KC) →  A~  // MR-row micropanels, lives in L2
//!       for jr in 0..NC step NR          // 2nd loop: one B~ micropanel, lives in L1
//!         for ir in 0..MC step MR        // 1st loop: one A~ micropanel
//!           C[ic+ir.., jc+jr..] (MR×NR) (=|+=) A~[ir] · B~[jr]    // the microkernel
//! ```
//!
//! In parallel, when all of B's `k` rows of the `NC` block fit `WHOLE_B_MAX` (12 MiB), the 4th
//! loop moves inside the 3rd: every KC block of B is packed first, then each row task runs
//! all the blocks, so a call forks and joins twice instead of twice per KC block (what
//! dominates a deep product with few columns, such as a 3×3 convolution of one 7×7 image).
//! A B that is never stored ([`PanelSource`]: im2col for inference) is packed from its
//! source, micropanel by micropanel.
//!
//! # Determinism
//!
//! Every element `C[i][j]` is computed as: for each KC block in increasing order,
//! `acc = Σ_p a·b` by fused multiply-adds in increasing `p` inside the microkernel, then
//! `C = C + acc` (or `C = acc` for the first block when not accumulating). The k range is
//! never split across threads and `KC` is a constant of the kernel, so which thread
//! computes a tile, how the m range is cut into tasks, whether a tile is a full one or a
//! (masked or scratch) edge tile, and whether the call ran serially or in parallel change
//! nothing: results are bit-for-bit identical for any rayon thread count. (Different
//! *microkernels* — AVX-512 vs AVX2 vs portable — round differently, having different
//! `KC`s and dot-product lane counts; the choice depends only on the CPU and
//! `FERROCONV_GEMM_KERNEL`.)

mod blocked;
mod dot;
mod kernel;
#[cfg(target_arch = "x86_64")]
mod kernel_avx2;
#[cfg(target_arch = "x86_64")]
mod kernel_avx512;
mod kernel_portable;
mod pack;
mod select;

pub use blocked::gemm_blocked;
pub use dot::{DOT_MAX_M, DOT_MAX_SIDE};
pub use kernel::MicroKernel;
#[cfg(target_arch = "x86_64")]
pub use kernel_avx2::Avx2Fma;
#[cfg(target_arch = "x86_64")]
pub use kernel_avx512::{Avx512F, Avx512FLow, Avx512FLow4, Avx512Tile};
pub use kernel_portable::Portable;
pub use select::{Kernel, best_kernel_name};

use pack::{A_BUF, B_BUF, for_each_panel, pack_a, pack_b, pack_b_panel, with_buffer};
use rayon::prelude::*;
use select::{Best, best};

// Blocking constants, the defaults of `MicroKernel::KC`/`MC`/`NC` (the AVX2 and portable
// kernels use them; the AVX-512 kernel sets its own). Tuned (noisily: a shared 2-vCPU VM)
// on an AMD EPYC with AVX2+FMA, 32 KiB L1d and 512 KiB L2 per core, shared L3:
// KC ∈ {192, 256, 384} and MC ∈ {48, 72, 96, 144} were tried at 1024³; KC = 256,
// MC = 72 was best or tied.

/// Depth of one packed block (4th loop). A `KC × NR` B micropanel (256·16·4 = 16 KiB)
/// plus an `MR × KC` A micropanel (6 KiB) sit in the 32 KiB L1d while the microkernel
/// runs. Fixed, whatever the thread count: it sets the summation order (determinism).
pub const KC: usize = 256;
/// Rows of A packed at once (3rd loop): `MC × KC` floats (72·256·4 = 72 KiB) stay in the
/// 512 KiB L2 while every B micropanel of the block streams past them. A multiple of
/// every kernel's `MR` (6 and 4).
pub const MC: usize = 72;
/// Columns of B packed at once (5th loop): `KC × NC` floats (256·4080·4 ≈ 4 MiB) fit in
/// the shared L3. A multiple of every kernel's `NR` (16 and 8).
pub const NC: usize = 4080;
/// Largest `m` for which a unit-column-stride B is read in place instead of packed:
/// with few row tiles, each B micropanel is used only `⌈m/MR⌉` times and copying it
/// would cost about as much as using it.
const DIRECT_B_MAX_M: usize = 24;
/// Below this many multiply-adds (`m·n·k`), [`gemm`] stays on the calling thread: rayon
/// task overhead (a few µs) would eat the gain.
const PAR_MIN_WORK: usize = 1 << 21;
/// Packs the `kc × nc` block of a made B at `(pc, jc)` into `nr`-column micropanels, on
/// the rayon pool when `parallel` and there are enough panels (as [`pack_b`]).
#[allow(clippy::too_many_arguments)]
fn pack_made(
    src: &dyn PanelSource,
    nr: usize,
    kc: usize,
    nc: usize,
    pc: usize,
    jc: usize,
    out: &mut [f32],
    parallel: bool,
) {
    for_each_panel(nr, kc, nc, out, parallel, |q, cols, dst| {
        src.fill(pc, kc, jc + q * nr, cols, nr, dst)
    });
}

/// Operands the caller prepared: A packed ahead ([`PackedA`]), B made panel by panel.
#[derive(Clone, Copy, Default)]
struct Ready<'a> {
    a: Option<&'a [f32]>,
    b: Option<&'a dyn PanelSource>,
}

/// Most floats of B (all of `k`, one `NC` column block, panel-padded) the parallel driver
/// packs at once to run every KC block in one parallel region (12 MiB: the shared L3
/// holds it; the row tasks stream it as they would stream each block).
const WHOLE_B_MAX: usize = 3 << 20;
/// Largest microkernel tile (`MR·NR`) the edge-tile scratch can hold.
const MAX_TILE: usize = 512;

/// `C[m×n] (=|+=) A[m×k] · B[k×n]`; `C` is row-major with row stride `rsc`.
///
/// Naive triple loop in the reference order; every fast variant is tested against it.
#[allow(clippy::too_many_arguments)]
pub fn gemm_naive(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for p in 0..k {
                acc += a[i * rsa + p * csa] * b[p * rsb + j * csb];
            }
            let dst = &mut c[i * rsc + j];
            *dst = if accumulate { *dst + acc } else { acc };
        }
    }
}

/// Serial or rayon-parallel driver.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Threads {
    Serial,
    Parallel,
}

macro_rules! gemm_variant {
    ($(#[$doc:meta])* $name:ident, |$($arg:ident),*| $body:expr) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name(
            m: usize,
            k: usize,
            n: usize,
            a: &[f32],
            rsa: usize,
            csa: usize,
            b: &[f32],
            rsb: usize,
            csb: usize,
            c: &mut [f32],
            rsc: usize,
            accumulate: bool,
        ) {
            let ($($arg),*) = (m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, accumulate);
            $body
        }
    };
}

/// Runs the packed driver with the kernel `kern`.
#[allow(clippy::too_many_arguments)]
fn packed_with(
    kern: Best,
    threads: Threads,
    ready: Ready<'_>,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
) {
    match kern {
        // A 4-row tile for at most 4 rows, a 6-row tile for at most 6 (choices by shape
        // only, never by threads).
        #[cfg(target_arch = "x86_64")]
        Best::Avx512(kern) if m <= 4 => {
            debug_assert!(ready.a.is_none(), "PackedA never packs for the 4-row tile");
            let low: Avx512FLow4 = kern.retile();
            packed_driver(
                low, threads, ready, m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, accumulate,
            )
        }
        #[cfg(target_arch = "x86_64")]
        Best::Avx512(kern) if m <= 6 => {
            debug_assert!(ready.a.is_none(), "PackedA never packs for the 6-row tile");
            let low: Avx512FLow = kern.retile();
            packed_driver(
                low, threads, ready, m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, accumulate,
            )
        }
        #[cfg(target_arch = "x86_64")]
        Best::Avx512(kern) => packed_driver(
            kern, threads, ready, m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, accumulate,
        ),
        #[cfg(target_arch = "x86_64")]
        Best::Avx2(kern) => packed_driver(
            kern, threads, ready, m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, accumulate,
        ),
        Best::Portable(kern) => packed_driver(
            kern, threads, ready, m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, accumulate,
        ),
    }
}

/// Which driver a GEMM call takes (the public variants below, and [`gemm_forced`]).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// [`gemm`]: dot products for few-row `A·Bᵀ`, else packed, parallel when large.
    Gemm,
    /// [`gemm_packed`]: packed, calling thread only.
    Packed,
    /// [`gemm_parallel`]: packed, rayon over row blocks whatever the size.
    Parallel,
    /// [`gemm_dot`]: dot products when `csa = rsb = 1`, else packed.
    Dot,
}

/// Runs `variant` with the microkernel `kern` (and the dot kernel of the same family).
#[allow(clippy::too_many_arguments)]
fn run_variant(
    kern: Best,
    variant: Variant,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
) {
    let dot_layout = csa == 1 && rsb == 1;
    let threads = match variant {
        Variant::Gemm => {
            if dot_layout && dot::pays(m, k, n) {
                // A small C, A's rows and B's columns contiguous: dot products beat packing.
                return dot_with(kern, m, k, n, a, rsa, b, csb, c, rsc, accumulate);
            }
            let big = m.saturating_mul(n).saturating_mul(k) >= PAR_MIN_WORK && m >= 2 * kern.mr();
            if big && rayon::current_num_threads() > 1 {
                Threads::Parallel
            } else {
                Threads::Serial
            }
        }
        Variant::Dot if dot_layout => {
            return dot_with(kern, m, k, n, a, rsa, b, csb, c, rsc, accumulate);
        }
        Variant::Packed | Variant::Dot => Threads::Serial,
        Variant::Parallel => Threads::Parallel,
    };
    packed_with(
        kern,
        threads,
        Ready::default(),
        m,
        k,
        n,
        a,
        rsa,
        csa,
        b,
        rsb,
        csb,
        c,
        rsc,
        accumulate,
    )
}

/// A left operand `A[m×k]` packed once into the microkernel's panels, for many products
/// `C = A·B` with the same `A` (a layer's weights during inference): [`gemm_packed_a`]
/// then skips packing `A` on every call. Results are bit for bit those of [`gemm`] with
/// the same `A` (packing is a copy; the summation order is the same).
#[derive(Clone, Debug, Default)]
pub struct PackedA {
    m: usize,
    k: usize,
    /// Panels per `KC` block, `⌈m/MR⌉·MR × kc` each, blocks in `k` order; empty when the
    /// shape takes a path that does not pack `A` ([`gemm`]'s dot products, the 6-row
    /// tile): then `raw` holds `A` row-major.
    panels: Vec<f32>,
    raw: Vec<f32>,
}

impl PackedA {
    /// Packs `A[m×k]` (element `(i, p)` at `a[i·rsa + p·csa]`) for the kernel [`gemm`]
    /// uses on this CPU.
    pub fn new(m: usize, k: usize, a: &[f32], rsa: usize, csa: usize) -> PackedA {
        let kern = best();
        let mut out = PackedA {
            m,
            k,
            ..PackedA::default()
        };
        // The dot path needs B's layout, unknown here: packed A serves only B with
        // rsb ≠ 1 or many rows; `gemm_packed_a` checks and falls back to `raw`.
        let low = matches!(kern, Best::Avx512(_)) && m <= 6;
        if m == 0 || k == 0 || low {
            out.raw = (0..m * k)
                .map(|i| a[(i / k.max(1)) * rsa + (i % k.max(1)) * csa])
                .collect();
            return out;
        }
        fn pack_all<K: MicroKernel>(
            m: usize,
            k: usize,
            a: &[f32],
            rsa: usize,
            csa: usize,
        ) -> Vec<f32> {
            let mp = m.div_ceil(K::MR) * K::MR;
            let mut v = vec![0.0; mp * k];
            for pc in (0..k).step_by(K::KC) {
                let kc = K::KC.min(k - pc);
                pack_a::<K>(kc, m, a, pc * csa, rsa, csa, &mut v[pc * mp..]);
            }
            v
        }
        out.panels = match kern {
            #[cfg(target_arch = "x86_64")]
            Best::Avx512(_) => pack_all::<Avx512F>(m, k, a, rsa, csa),
            #[cfg(target_arch = "x86_64")]
            Best::Avx2(_) => pack_all::<Avx2Fma>(m, k, a, rsa, csa),
            Best::Portable(_) => pack_all::<Portable>(m, k, a, rsa, csa),
        };
        if m <= dot::DOT_MAX_SIDE {
            // Kept for B operands that take the dot-product path.
            out.raw = (0..m * k)
                .map(|i| a[(i / k) * rsa + (i % k) * csa])
                .collect();
        }
        out
    }

    /// Rows and columns of `A`.
    pub fn dims(&self) -> (usize, usize) {
        (self.m, self.k)
    }

    /// Whether [`gemm_packed_a_made`] packs B from its source on this `A`. When not (few
    /// rows: the dot-product path and the 6-row tile read a stored B), it stores the whole
    /// of B first, and a caller with a buffer of its own does better to store it there and
    /// call [`gemm_packed_a`].
    pub fn packs_made_b(&self) -> bool {
        !self.panels.is_empty() && (self.m > dot::DOT_MAX_M || self.k < 8)
    }
}

/// `C[m×n] (=|+=) A·B[k×n]` for a [`PackedA`], the same result as [`gemm`] on that `A`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_packed_a(
    a: &PackedA,
    n: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
) {
    packed_a_with(a, n, b, rsb, csb, None, c, rsc, accumulate)
}

/// A B operand that is never stored whole: it writes the micropanels the GEMM asks for,
/// as it packs them. im2col is one ([`crate::cpu::im2col::Im2colPanels`]): the columns
/// go straight into the packed layout, without the column matrix between.
pub trait PanelSource: Sync {
    /// Writes `B[p0 + p][col0 + j]` to `out[p·nr + j]` for `p < rows`, `j < cols`, and
    /// zeros to `out[p·nr + j]` for `cols ≤ j < nr`.
    fn fill(&self, p0: usize, rows: usize, col0: usize, cols: usize, nr: usize, out: &mut [f32]);
}

/// `C[m×n] (=|+=) A·B` for a [`PackedA`] and a B made by `src` (`k × n`, `k` = A's
/// columns): the same result, bit for bit, as [`gemm_packed_a`] on the stored B.
pub fn gemm_packed_a_made(
    a: &PackedA,
    n: usize,
    src: &dyn PanelSource,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
) {
    let k = a.k;
    if !a.packs_made_b() {
        // The paths that read B in place (dot products, the 6-row tile): store it first.
        let mut b = vec![0.0; k * n];
        if n > 0 {
            src.fill(0, k, 0, n, n, &mut b);
        }
        return gemm_packed_a(a, n, &b, n, 1, c, rsc, accumulate);
    }
    packed_a_with(a, n, &[], n, 1, Some(src), c, rsc, accumulate)
}

/// [`gemm_packed_a`], with B stored (`b`, `rsb`, `csb`) or made (`made`).
#[allow(clippy::too_many_arguments)]
fn packed_a_with(
    a: &PackedA,
    n: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    made: Option<&dyn PanelSource>,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
) {
    let (m, k) = (a.m, a.k);
    let kern = best();
    let dot = made.is_none() && rsb == 1 && dot::pays(m, k, n);
    if a.panels.is_empty() || dot {
        return run_variant(
            kern,
            Variant::Gemm,
            m,
            k,
            n,
            &a.raw,
            k,
            1,
            b,
            rsb,
            csb,
            c,
            rsc,
            accumulate,
        );
    }
    // The same thread choice as `run_variant`'s (it does not change the result).
    let big = m.saturating_mul(n).saturating_mul(k) >= PAR_MIN_WORK && m >= 2 * kern.mr();
    let threads = if big && rayon::current_num_threads() > 1 {
        Threads::Parallel
    } else {
        Threads::Serial
    };
    packed_with(
        kern,
        threads,
        Ready {
            a: Some(&a.panels),
            b: made,
        },
        m,
        k,
        n,
        &a.raw,
        k,
        1,
        b,
        rsb,
        csb,
        c,
        rsc,
        accumulate,
    )
}

/// [`dot::gemm_dot`] with the dot kernel of `kern`'s family.
#[allow(clippy::too_many_arguments)]
fn dot_with(
    kern: Best,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    b: &[f32],
    csb: usize,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
) {
    match kern {
        #[cfg(target_arch = "x86_64")]
        Best::Avx512(_) => {
            if let Some(d) = dot::Avx512Dot::detect() {
                return dot::gemm_dot(d, m, k, n, a, rsa, b, csb, c, rsc, accumulate);
            }
        }
        #[cfg(target_arch = "x86_64")]
        Best::Avx2(_) => {
            if let Some(d) = dot::Avx2Dot::detect() {
                return dot::gemm_dot(d, m, k, n, a, rsa, b, csb, c, rsc, accumulate);
            }
        }
        Best::Portable(_) => {}
    }
    dot::gemm_dot(
        dot::PortableDot,
        m,
        k,
        n,
        a,
        rsa,
        b,
        csb,
        c,
        rsc,
        accumulate,
    )
}

/// Runs `variant` on the microkernel `kernel`, whatever `FERROCONV_GEMM_KERNEL` says:
/// how tests and benches reach every kernel the CPU has. Same arguments as [`gemm`].
///
/// Returns an error (and computes nothing) if this CPU does not support `kernel`.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn gemm_forced(
    kernel: Kernel,
    variant: Variant,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
) -> Result<(), String> {
    let kern = kernel
        .token()
        .ok_or_else(|| format!("gemm: this CPU does not support {}", kernel.isa()))?;
    run_variant(
        kern, variant, m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, accumulate,
    );
    Ok(())
}

gemm_variant!(
    /// `C[m×n] (=|+=) A[m×k] · B[k×n]`: the engine's GEMM entry point.
    ///
    /// Uses the packed BLIS driver with the best microkernel for this CPU (AVX-512F,
    /// else AVX2+FMA, else portable; `FERROCONV_GEMM_KERNEL=avx512|avx2|portable`
    /// overrides); runs it on the rayon pool when the product is large enough
    /// (`m·n·k ≥ 2²¹` and at least two row tiles), otherwise on the calling thread.
    /// Both paths compute every element in the same order, so the result does not depend
    /// on the thread count. Safe to call from inside a rayon parallel loop. `m`, `n` or
    /// `k` may be 0 (`k = 0` without `accumulate` writes zeros).
    gemm,
    |m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, accumulate| run_variant(
        best(), Variant::Gemm, m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, accumulate
    )
);

gemm_variant!(
    /// Dot-product GEMM (no packing) with the best kernel for this CPU whenever A's rows
    /// and B's columns are contiguous (`csa = 1`, `rsb = 1`), any `m`; other layouts go to
    /// [`gemm_packed`]. [`gemm`] uses it for such products with at most
    /// [`DOT_MAX_M`] rows, or at most [`DOT_MAX_SIDE`] rows and columns and a deep `k`.
    gemm_dot,
    |m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, accumulate| run_variant(
        best(), Variant::Dot, m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, accumulate
    )
);

gemm_variant!(
    /// [`gemm_dot`] forced onto the portable `wide::f32x8` kernel.
    gemm_dot_portable,
    |m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, accumulate| run_variant(
        Best::Portable(Portable), Variant::Dot, m, k, n, a, rsa, csa, b, rsb, csb, c, rsc,
        accumulate
    )
);

gemm_variant!(
    /// Packed BLIS-style GEMM with the best microkernel for this CPU, on the calling
    /// thread only.
    gemm_packed,
    |m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, accumulate| run_variant(
        best(), Variant::Packed, m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, accumulate
    )
);

gemm_variant!(
    /// Packed BLIS-style GEMM forced onto the portable `wide::f32x8` microkernel, one
    /// thread: the fallback for CPUs without AVX2+FMA, callable anywhere so it is tested.
    gemm_packed_portable,
    |m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, accumulate| run_variant(
        Best::Portable(Portable), Variant::Packed, m, k, n, a, rsa, csa, b, rsb, csb, c,
        rsc, accumulate
    )
);

gemm_variant!(
    /// Packed BLIS-style GEMM with the best microkernel, with the row blocks of `C`
    /// (and the packing of B) spread over the current rayon pool whatever the size.
    /// Bit-identical to [`gemm_packed`].
    gemm_parallel,
    |m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, accumulate| run_variant(
        best(), Variant::Parallel, m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, accumulate
    )
);

/// Where the microkernel finds the B micropanels of the current `KC × NC` block.
enum BPanels<'a> {
    /// All panels packed: panel `q` at `packed[q·NR·kc ..]`, row stride `NR`.
    Packed(&'a [f32]),
    /// B has unit column stride and is read in place: full panel `q` starts at
    /// `b[off + q·NR]` with row stride `rsb`; the ragged last panel (if any) is packed
    /// in `edge`.
    Direct {
        b: &'a [f32],
        off: usize,
        rsb: usize,
        full: usize,
        edge: &'a [f32],
    },
}

impl BPanels<'_> {
    /// Panel `q` of an `NR`-wide kernel over depth `kc`: `(slice, row stride)`.
    #[inline]
    fn panel(&self, q: usize, nr: usize, kc: usize) -> (&[f32], usize) {
        match *self {
            BPanels::Packed(p) => (&p[q * nr * kc..(q + 1) * nr * kc], nr),
            BPanels::Direct {
                b,
                off,
                rsb,
                full,
                edge,
            } => {
                if q < full {
                    (&b[off + q * nr..], rsb)
                } else {
                    (edge, nr)
                }
            }
        }
    }
}

/// The BLIS five-loop driver (see the module docs), generic over the microkernel.
#[allow(clippy::too_many_arguments)]
fn packed_driver<K: MicroKernel>(
    kern: K,
    threads: Threads,
    ready: Ready<'_>,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
) {
    const {
        assert!(
            K::MR * K::NR <= MAX_TILE
                && K::MC.is_multiple_of(K::MR)
                && K::NC.is_multiple_of(K::NR)
                && K::KC > 0
        )
    };
    if m == 0 || n == 0 {
        return;
    }
    // With one row only row 0 is touched, so any row stride is equivalent to n.
    let rsc = if m == 1 { n } else { rsc };
    assert!(rsc >= n, "gemm: C row stride {rsc} < n = {n}");
    let c = &mut c[..(m - 1) * rsc + n];
    if k == 0 {
        if !accumulate {
            c.chunks_mut(rsc).for_each(|row| row[..n].fill(0.0));
        }
        return;
    }
    let (mr, nr) = (K::MR, K::NR);
    let pre = ready.a;
    let direct_b = ready.b.is_none() && csb == 1 && m <= DIRECT_B_MAX_M;
    // Packs B's `kc × nc` block at `(pc, jc)` into NR-column micropanels, from `b` or from
    // the caller's panel source.
    let pack_block =
        |pc: usize, kc: usize, jc: usize, nc: usize, out: &mut [f32], par: bool| match ready.b {
            Some(src) => pack_made(src, nr, kc, nc, pc, jc, out, par),
            None => pack_b(kern, kc, nc, b, pc * rsb + jc * csb, rsb, csb, out, par),
        };
    // Rows of C per task of the 3rd loop: MC serially; in parallel, a multiple of the
    // thread count of equal blocks of at most MC rows (a multiple of MR). Each task
    // streams the whole packed B block past its rows, so the tasks are as few and as tall
    // as the threads allow: with m = 64 on two threads, two tasks of 32 rows read B twice
    // where eight of 8 rows would read it eight times (from L3, as it outgrows L2).
    let rows_per_task = match threads {
        Threads::Serial => K::MC,
        Threads::Parallel => {
            let t = rayon::current_num_threads();
            let tasks = t * m.div_ceil(t * K::MC);
            m.div_ceil(tasks).next_multiple_of(mr).clamp(mr, K::MC)
        }
    };

    // One row task's share of one KC block: pack (or find) its A rows, run the block.
    let row_block =
        |t: usize, c_rows: &mut [f32], jc: usize, nc: usize, pc: usize, bp: &BPanels| {
            let kc = K::KC.min(k - pc);
            // Accumulate into C for every KC block but (maybe) the first.
            let load = accumulate || pc > 0;
            let ic = t * rows_per_task;
            let mc = rows_per_task.min(m - ic);
            let a_len = mc.div_ceil(mr) * mr * kc;
            if let Some(pre) = pre {
                // A packed ahead (PackedA): block pc starts at pc·⌈m/MR⌉·MR.
                let ap = &pre[pc * m.div_ceil(mr) * mr + ic * kc..][..a_len];
                macro_kernel(kern, mc, nc, kc, ap, bp, &mut c_rows[jc..], rsc, load);
                return;
            }
            with_buffer(&A_BUF, a_len, |ap| {
                pack_a::<K>(kc, mc, a, ic * rsa + pc * csa, rsa, csa, ap);
                macro_kernel(kern, mc, nc, kc, ap, bp, &mut c_rows[jc..], rsc, load);
            });
        };
    // The 3rd loop over row blocks of A and C: `f(task, its rows of C)`.
    let for_rows = |c: &mut [f32], f: &(dyn Fn(usize, &mut [f32]) + Sync)| match threads {
        Threads::Serial => c
            .chunks_mut(rows_per_task * rsc)
            .enumerate()
            .for_each(|(t, rows)| f(t, rows)),
        Threads::Parallel => c
            .par_chunks_mut(rows_per_task * rsc)
            .enumerate()
            .for_each(|(t, rows)| f(t, rows)),
    };
    let panels_of = |nc: usize| nc.div_ceil(nr);
    let blocks = k.div_ceil(K::KC);

    for jc in (0..n).step_by(K::NC) {
        let nc = K::NC.min(n - jc);
        let (full, rem) = (nc / nr, nc % nr);
        // In parallel with several KC blocks, and B small enough to pack whole: pack every
        // block of B first, then one parallel region in which each row task runs all the
        // blocks in order. The same work and the same order per element as the loop below
        // (bit-identical), with two fork-joins instead of two per KC block: on two threads
        // a fork-join costs about as much as a 100-row × 48-column tile at batch 1.
        let whole =
            threads == Threads::Parallel && blocks > 1 && k * panels_of(nc) * nr <= WHOLE_B_MAX;
        if whole && direct_b {
            // B read in place; only the ragged last panel of each block is packed.
            let step = if rem > 0 { nr * K::KC } else { 0 };
            with_buffer(&B_BUF, blocks * step, |edges| {
                if rem > 0 {
                    for (i, e) in edges.chunks_mut(step).enumerate() {
                        let (pc, kc) = (i * K::KC, K::KC.min(k - i * K::KC));
                        pack_b_panel(kern, kc, rem, b, pc * rsb + jc + full * nr, rsb, 1, e);
                    }
                }
                let edges = &*edges;
                for_rows(&mut *c, &|t, c_rows| {
                    for (i, pc) in (0..k).step_by(K::KC).enumerate() {
                        let bp = BPanels::Direct {
                            b,
                            off: pc * rsb + jc,
                            rsb,
                            full,
                            edge: &edges[i * step..][..step],
                        };
                        row_block(t, c_rows, jc, nc, pc, &bp);
                    }
                });
            });
            continue;
        }
        if whole {
            let per_block = panels_of(nc) * nr * K::KC;
            with_buffer(&B_BUF, k * panels_of(nc) * nr, |packed| {
                packed
                    .par_chunks_mut(per_block)
                    .enumerate()
                    .for_each(|(i, blk)| {
                        let (pc, kc) = (i * K::KC, K::KC.min(k - i * K::KC));
                        pack_block(pc, kc, jc, nc, blk, true);
                    });
                let packed = &*packed;
                for_rows(&mut *c, &|t, c_rows| {
                    for (i, pc) in (0..k).step_by(K::KC).enumerate() {
                        let bp = BPanels::Packed(&packed[i * per_block..]);
                        row_block(t, c_rows, jc, nc, pc, &bp);
                    }
                });
            });
            continue;
        }
        for pc in (0..k).step_by(K::KC) {
            let kc = K::KC.min(k - pc);
            let b_off = pc * rsb + jc * csb;
            let run_rows = |bp: &BPanels, c: &mut [f32]| {
                for_rows(c, &|t, c_rows| row_block(t, c_rows, jc, nc, pc, bp));
            };
            if direct_b {
                with_buffer(&B_BUF, if rem > 0 { nr * kc } else { 0 }, |edge| {
                    if rem > 0 {
                        pack_b_panel(kern, kc, rem, b, b_off + full * nr, rsb, 1, edge);
                    }
                    let bp = BPanels::Direct {
                        b,
                        off: b_off,
                        rsb,
                        full,
                        edge,
                    };
                    run_rows(&bp, &mut *c);
                });
            } else {
                let len = nc.div_ceil(nr) * nr * kc;
                with_buffer(&B_BUF, len, |packed| {
                    pack_block(pc, kc, jc, nc, packed, threads == Threads::Parallel);
                    run_rows(&BPanels::Packed(packed), &mut *c);
                });
            }
        }
    }
}

/// Loops 2 and 1 around the microkernel for one packed `mc × kc` block of A against the
/// `kc × nc` block of B; `c` starts at the block's top-left element.
///
/// Edge tiles (fewer than `MR` rows or `NR` columns left) are computed whole into a
/// scratch tile (the padding in the packed panels is zeros) and only the valid part is
/// written back, with the same `c + acc` addition the kernel does for full tiles.
#[allow(clippy::too_many_arguments)]
#[inline]
fn macro_kernel<K: MicroKernel>(
    kern: K,
    mc: usize,
    nc: usize,
    kc: usize,
    ap: &[f32],
    bp: &BPanels,
    c: &mut [f32],
    rsc: usize,
    load: bool,
) {
    let (mr, nr) = (K::MR, K::NR);
    for (q, jr) in (0..nc).step_by(nr).enumerate() {
        let ncols = nr.min(nc - jr);
        let (b_panel, rsb) = bp.panel(q, nr, kc);
        for (r, ir) in (0..mc).step_by(mr).enumerate() {
            let nrows = mr.min(mc - ir);
            let a_panel = &ap[r * mr * kc..(r + 1) * mr * kc];
            if nrows == mr && ncols == nr {
                kern.run(
                    kc,
                    a_panel,
                    b_panel,
                    rsb,
                    &mut c[ir * rsc + jr..],
                    rsc,
                    load,
                );
            } else if !kern.run_edge(
                kc,
                a_panel,
                b_panel,
                rsb,
                &mut c[ir * rsc + jr..],
                rsc,
                load,
                nrows,
                ncols,
            ) {
                let mut tmp = [0.0f32; MAX_TILE];
                kern.run(kc, a_panel, b_panel, rsb, &mut tmp, nr, false);
                for i in 0..nrows {
                    let dst = &mut c[(ir + i) * rsc + jr..(ir + i) * rsc + jr + ncols];
                    for (d, &t) in dst.iter_mut().zip(&tmp[i * nr..]) {
                        *d = if load { *d + t } else { t };
                    }
                }
            }
        }
    }
}

/// The packed driver on any microkernel value, e.g. an [`Avx512Tile`] shape other than
/// the one the library uses: for the tile-shape comparison in `benches/gemm.rs`
/// (`GEMM_BENCH_TILES=1`). Serial, or rayon over row blocks when `parallel`.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn gemm_packed_tile<K: MicroKernel>(
    kern: K,
    parallel: bool,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
) {
    let t = if parallel {
        Threads::Parallel
    } else {
        Threads::Serial
    };
    packed_driver(
        kern,
        t,
        Ready::default(),
        m,
        k,
        n,
        a,
        rsa,
        csa,
        b,
        rsb,
        csb,
        c,
        rsc,
        accumulate,
    )
}
