//! Keeping the rayon pool's other workers awake through a loop of tiny steps.
//!
//! rayon parks an idle worker a few microseconds after its last job, and waking it costs
//! tens of microseconds on a virtual machine: more than a whole convolution of 4 images
//! takes. So kernels split only large work ([`super::PARALLEL_MIN_WORK`]). Inside
//! [`with_hot_pool`], the loop runs on one worker while the others poll for jobs
//! (`rayon::yield_now`) instead of sleeping, and [`hot`] tells kernels that splitting
//! small work pays. Which kernel splits how never changes a result (every split in this
//! crate gives the same bits), so this changes timings only.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Loops inside [`with_hot_pool`] now.
static HOT: AtomicUsize = AtomicUsize::new(0);

/// Whether a [`with_hot_pool`] loop is running (in any thread): the pool's workers are
/// polling for jobs, so even small work is worth splitting.
pub fn hot() -> bool {
    HOT.load(Ordering::Relaxed) > 0
}

/// Ends a hot section when dropped (also on a panic, which would otherwise leave the
/// pollers spinning and the scope waiting for them forever).
struct Section<'a> {
    done: &'a AtomicBool,
}

impl Drop for Section<'_> {
    fn drop(&mut self) {
        HOT.fetch_sub(1, Ordering::Relaxed);
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
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        HOT.fetch_add(1, Ordering::Relaxed);
        let _section = Section { done };
        f()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_the_loop_and_returns_its_value_and_ends_after_a_panic() {
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
}
