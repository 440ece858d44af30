//! Helpers shared by the benchmarks: timing medians and deterministic inputs.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Median of `reps` timings of `f`, each running `f` enough times to last about `target`
/// (calibrated on one warm-up call). Returns seconds per call.
pub fn median_secs(reps: usize, target: Duration, mut f: impl FnMut()) -> f64 {
    let t0 = Instant::now();
    f();
    let once = t0.elapsed().as_secs_f64().max(1e-9);
    let inner = ((target.as_secs_f64() / once).ceil() as usize).max(1);
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..inner {
                f();
            }
            t.elapsed().as_secs_f64() / inner as f64
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[reps / 2]
}

#[path = "../../tests/common/values.rs"]
mod values;
#[allow(unused_imports)] // not every test binary uses it
pub use values::values;
