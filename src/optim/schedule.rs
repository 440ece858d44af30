//! Learning-rate schedules: the rate for step `t` of `total` steps, from a peak rate.

/// How the learning rate moves over a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The same rate throughout.
    Constant,
    /// Multiply by `gamma` at each of two milestones (steps `first` and `second`).
    Step {
        /// Step of the first drop.
        first: u64,
        /// Step of the second drop.
        second: u64,
        /// Factor per drop.
        gamma: f32,
    },
    /// Linear warm-up over `warmup` steps, then cosine decay to 0 at the end.
    Cosine {
        /// Warm-up steps.
        warmup: u64,
    },
    /// One-cycle, linear: up from `peak/div` to `peak` over `warmup` steps, then down to
    /// `final_frac·peak` at the end (the "fast CIFAR-10" trainers' triangle).
    OneCycle {
        /// Steps of the rising side.
        warmup: u64,
        /// Start rate is `peak / div`.
        div: f32,
        /// End rate is `final_frac · peak`.
        final_frac: f32,
    },
    /// airbench's triangle: linear from `start·peak` at step 0 up to `peak` at step
    /// `⌊peak_at·total⌋`, then linear down to `end·peak` at step `total` (held after it).
    Triangle {
        /// Rate at step 0, as a fraction of the peak.
        start: f32,
        /// Where the peak is, as a fraction of the run.
        peak_at: f32,
        /// Rate at the last step, as a fraction of the peak.
        end: f32,
    },
}

impl Schedule {
    /// The learning rate at step `t` (0-based) of `total`, for peak rate `peak`.
    pub fn lr(&self, peak: f32, t: u64, total: u64) -> f32 {
        let total = total.max(1);
        match *self {
            Schedule::Constant => peak,
            Schedule::Step {
                first,
                second,
                gamma,
            } => peak * gamma.powi(i32::from(t >= first) + i32::from(t >= second)),
            Schedule::Cosine { warmup } => {
                if t < warmup {
                    peak * (t + 1) as f32 / warmup as f32
                } else {
                    let span = (total - warmup.min(total)).max(1) as f32;
                    let x = (t - warmup) as f32 / span;
                    peak * 0.5 * (1.0 + (std::f32::consts::PI * x.min(1.0)).cos())
                }
            }
            Schedule::OneCycle {
                warmup,
                div,
                final_frac,
            } => {
                let start = peak / div;
                if t < warmup {
                    start + (peak - start) * t as f32 / warmup as f32
                } else {
                    let span = (total - warmup.min(total)).max(1) as f32;
                    let x = ((t - warmup) as f32 / span).min(1.0);
                    peak + (final_frac * peak - peak) * x
                }
            }
            Schedule::Triangle {
                start,
                peak_at,
                end,
            } => {
                let top = ((peak_at as f64 * total as f64) as u64).min(total);
                let t = t.min(total);
                let frac = if t < top {
                    start as f64 + (1.0 - start as f64) * t as f64 / top as f64
                } else {
                    let span = (total - top).max(1) as f64;
                    1.0 + (end as f64 - 1.0) * (t - top) as f64 / span
                };
                peak * frac as f32
            }
        }
    }

    /// A short name for logs: `constant`, `step`, `cosine`, `onecycle`, `triangle`.
    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Constant => "constant",
            Schedule::Step { .. } => "step",
            Schedule::Cosine { .. } => "cosine",
            Schedule::OneCycle { .. } => "onecycle",
            Schedule::Triangle { .. } => "triangle",
        }
    }
}
