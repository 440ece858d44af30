//! Keeping the rayon pool's other workers awake through a loop of tiny steps.
//!
//! rayon parks an idle worker a few microseconds after its last job, and waking it costs
//! tens of microseconds on a virtual machine: more than a whole convolution of 4 images
//! takes. So kernels split only large work ([`super::PARALLEL_MIN_WORK`]). Inside
//! [`with_hot_pool`], the loop runs on one worker while the others poll for jobs
//! (`rayon::yield_now`) instead of sleeping, and [`hot`] tells kernels that splitting
//! small work pays. Which kernel splits how never changes a result (every split in this
//! crate gives the same bits), so this changes timings only.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Loops inside [`with_hot_pool`] now.
static HOT: AtomicUsize = AtomicUsize::new(0);

/// Set while a hot loop runs its steps on its own thread ([`SplitTuner`]).
static SERIAL: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set on a thread while it runs work that already has a core to itself ([`alone`]).
    static ALONE: Cell<bool> = const { Cell::new(false) };
}

/// Whether a [`with_hot_pool`] loop is running (in any thread) and splitting its steps:
/// the pool's workers are polling for jobs, so even small work is worth splitting.
/// Always false inside [`alone`].
pub fn hot() -> bool {
    HOT.load(Ordering::Relaxed) > 0 && !SERIAL.load(Ordering::Relaxed) && !ALONE.with(Cell::get)
}

/// Runs `f` on this thread with [`hot`] false, so the kernels it calls do not split small
/// work: for one of several pieces of a step that run side by side, one per core (the
/// shards of `crate::model`'s sharded layers). Returns what `f` returns.
pub fn alone<R>(f: impl FnOnce() -> R) -> R {
    /// Puts the flag back when dropped, also on a panic.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ALONE.with(|a| a.set(self.0));
        }
    }
    let _restore = Restore(ALONE.with(|a| a.replace(true)));
    f()
}

/// Chooses, period by period, whether the steps of a [`with_hot_pool`] loop split their
/// work between the cores or run on the loop's thread (the pollers then nap instead of
/// spinning). Splitting pays only while the two cores hand data to each other quickly; on
/// a shared host that changes from minute to minute (the article's network at batch 4:
/// 1.1 s an epoch split in some periods, 1.6 s split against 1.4 s on one core in others).
/// Each period starts with [`TRIAL`] steps each way, timed, and runs the rest the faster
/// way. Every split gives the same bits, so this changes timings only.
#[derive(Debug, Default)]
pub struct SplitTuner {
    step: usize,
    split: bool,
    /// Seconds of this period's trial steps: split, then on one thread.
    trials: [f64; 2],
}

/// Steps per period of [`SplitTuner`].
pub const PERIOD: usize = 2000;
/// Trial steps each way at the start of a period.
pub const TRIAL: usize = 100;

impl SplitTuner {
    /// Runs one step `f`, split or not as the tuner decides, and times it.
    pub fn step<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let phase = self.step % PERIOD;
        let split = match phase {
            p if p < TRIAL => true,
            p if p < 2 * TRIAL => false,
            _ => self.split,
        };
        SERIAL.store(!split, Ordering::Relaxed);
        let start = std::time::Instant::now();
        let out = f();
        if phase < 2 * TRIAL {
            self.trials[phase / TRIAL] += start.elapsed().as_secs_f64();
            if phase + 1 == 2 * TRIAL {
                self.split = self.trials[0] <= self.trials[1];
                self.trials = [0.0; 2];
            }
        }
        self.step += 1;
        out
    }
}

/// Ends a hot section when dropped (also on a panic, which would otherwise leave the
/// pollers spinning and the scope waiting for them forever).
struct Section<'a> {
    done: &'a AtomicBool,
}

impl Drop for Section<'_> {
    fn drop(&mut self) {
        HOT.fetch_sub(1, Ordering::Relaxed);
        SERIAL.store(false, Ordering::Relaxed);
        self.done.store(true, Ordering::Release);
    }
}

/// Runs `f` on a worker of the rayon pool while every other worker polls for jobs
/// instead of sleeping; returns what `f` returns. On one thread, just `f()`.
///
/// The pollers take whole cores: use it for loops of steps too short to wake a
/// sleeping worker for (training at batch 4), not beside other busy threads.
pub fn with_hot_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let threads = rayon::current_num_threads();
    if threads < 2 {
        return f();
    }
    let done = AtomicBool::new(false);
    rayon::scope(|s| {
        let owner = rayon::current_thread_index();
        let done = &done;
        for _ in 1..threads {
            s.spawn(move |_| {
                // A poller taken by the loop's own worker (while it waits inside a join)
                // would keep that worker from ever returning to the loop: leave at once.
                if rayon::current_thread_index() == owner {
                    return;
                }
                while !done.load(Ordering::Acquire) {
                    if SERIAL.load(Ordering::Relaxed) {
                        // The loop runs on its own thread for now: nap, leave the core.
                        std::thread::sleep(std::time::Duration::from_micros(50));
                        continue;
                    }
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        SERIAL.store(false, Ordering::Relaxed);
        HOT.fetch_add(1, Ordering::Relaxed);
        let _section = Section { done };
        f()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hot state is process-wide: these tests take turns.
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn runs_the_loop_and_returns_its_value_and_ends_after_a_panic() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let sum = pool.install(|| {
            with_hot_pool(|| {
                assert!(hot());
                (0..100)
                    .map(|i| rayon::join(|| i, || i + 1))
                    .map(|(a, b)| a + b)
                    .sum::<i32>()
            })
        });
        assert_eq!(sum, (0..100).map(|i| 2 * i + 1).sum::<i32>());
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| with_hot_pool(|| panic!("inside the loop")))
        }));
        assert!(caught.is_err());
        assert!(!hot(), "a panic left the section open");
    }

    #[test]
    fn alone_turns_hot_off_on_its_thread_only_and_restores_it() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let seen = pool.install(|| {
            with_hot_pool(|| {
                let inside = alone(|| (hot(), alone(hot), hot()));
                let after = hot();
                let caught = std::panic::catch_unwind(|| alone(|| panic!("inside alone")));
                (inside, after, caught.is_err(), hot())
            })
        });
        assert_eq!(seen, ((false, false, false), true, true, true));
    }

    #[test]
    fn the_tuner_tries_both_ways_then_keeps_the_faster() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let seen = pool.install(|| {
            with_hot_pool(|| {
                let mut tuner = SplitTuner::default();
                (0..PERIOD + 2 * TRIAL)
                    .map(|i| {
                        tuner.step(|| {
                            // Split steps are made slower, so the tuner must go serial.
                            if hot() {
                                std::thread::sleep(std::time::Duration::from_micros(200));
                            }
                            let (a, b) = rayon::join(|| i, || i + 1);
                            assert_eq!(a + 1, b);
                            hot()
                        })
                    })
                    .collect::<Vec<bool>>()
            })
        });
        assert!(seen[..TRIAL].iter().all(|&h| h), "the first trial splits");
        assert!(
            seen[TRIAL..2 * TRIAL].iter().all(|&h| !h),
            "the second does not"
        );
        assert!(
            seen[2 * TRIAL..PERIOD].iter().all(|&h| !h),
            "then the faster way"
        );
        assert!(
            seen[PERIOD..PERIOD + TRIAL].iter().all(|&h| h),
            "a new period tries again"
        );
        assert!(!hot(), "the section ended");
    }
}
