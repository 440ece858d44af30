//! The deterministic inputs shared by the tests and the benches (`benches/common`
//! includes this file).

/// `n` pseudo-random values in [−1, 1) from `seed` (xorshift), for kernel tests and benches.
pub fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}
