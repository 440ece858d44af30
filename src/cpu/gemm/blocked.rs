//! Cache-blocked GEMM without packing: the step between the naive triple loop and the
//! packed BLIS-style variants.

/// Rows of `C` (and `A`) per block.
const MB: usize = 64;
/// Depth (`k`) per block: `MB × KB` of A plus `KB × NB` of B is the working set.
const KB: usize = 256;
/// Columns of `C` (and `B`) per block: one block row of `C` (`NB` floats) stays in L1.
const NB: usize = 512;

/// `C[m×n] (=|+=) A[m×k] · B[k×n]`, cache-blocked scalar loops, no packing.
///
/// Loop order `jj, pp, ii, i, p, j`: the innermost loop runs along a row of `C` and a
/// row of `B`, so with a unit column stride for B it vectorises; the blocks keep a
/// `KB × NB` slab of B hot in L2 while all rows of A stream past it.
#[allow(clippy::too_many_arguments)]
pub fn gemm_blocked(
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
    if m == 0 || n == 0 {
        return;
    }
    if !accumulate {
        for i in 0..m {
            c[i * rsc..i * rsc + n].fill(0.0);
        }
    }
    for jj in (0..n).step_by(NB) {
        let nb = NB.min(n - jj);
        for pp in (0..k).step_by(KB) {
            let kb = KB.min(k - pp);
            for ii in (0..m).step_by(MB) {
                let mb = MB.min(m - ii);
                for i in ii..ii + mb {
                    let c_row = &mut c[i * rsc + jj..i * rsc + jj + nb];
                    for p in pp..pp + kb {
                        let a_ip = a[i * rsa + p * csa];
                        let b0 = p * rsb + jj * csb;
                        if csb == 1 {
                            let b_row = &b[b0..b0 + nb];
                            for (cv, &bv) in c_row.iter_mut().zip(b_row) {
                                *cv += a_ip * bv;
                            }
                        } else {
                            for (j, cv) in c_row.iter_mut().enumerate() {
                                *cv += a_ip * b[b0 + j * csb];
                            }
                        }
                    }
                }
            }
        }
    }
}
