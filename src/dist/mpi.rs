//! [`Comm`] on MPI (feature `mpi`): the `mpi` crate (rsmpi) over the system's MPI library.
//!
//! The gradient sum is a reduce-scatter then an all-gather, the two halves of a ring
//! all-reduce, written with `MPI_Alltoallv` and `MPI_Allgatherv` so that the adding is
//! ours: rank `r` receives every rank's slice `r` of the buffer, adds the slices in rank
//! order, and the summed slices are gathered back. Each rank sends and receives
//! 2·(N−1)/N of the buffer, as in a ring, and the order of the additions is fixed, which
//! `MPI_Allreduce` does not promise.
//!
//! A watchdog thread stops the process when a collective has waited longer than
//! `FERROCONV_MPI_TIMEOUT` seconds (default 120): a rank that died or hangs makes the
//! others exit with a message naming the call, never wait for ever.

use super::Comm;
use crate::error::{Error, Result};
use mpi::Threading;
use mpi::datatype::{Partition, PartitionMut};
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The world communicator of an MPI job; dropping it finalises MPI.
pub struct Mpi {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    watchdog: Arc<Watchdog>,
    scratch: RefCell<Vec<f32>>,
    // Last: dropped after the communicator.
    _universe: Universe,
}

/// Names of the collectives, for the watchdog's message.
const CALLS: [&str; 4] = [
    "the gradient sum",
    "a gather of the step's loss or the settings",
    "a gather of the settings",
    "a synchronised batch norm's sum",
];

/// A deadline shared with the watchdog thread: milliseconds since `start`, 0 for none.
struct Watchdog {
    start: Instant,
    deadline_ms: AtomicU64,
    call: AtomicUsize,
    timeout: Duration,
}

impl Watchdog {
    fn arm(&self, call: usize) {
        let now = self.start.elapsed() + self.timeout;
        self.call.store(call, Ordering::Relaxed);
        self.deadline_ms
            .store(now.as_millis() as u64 + 1, Ordering::Release);
    }

    fn disarm(&self) {
        self.deadline_ms.store(0, Ordering::Release);
    }
}

impl Mpi {
    /// Initialises MPI (once per process) and starts the watchdog. An error when MPI was
    /// initialised already or `FERROCONV_MPI_TIMEOUT` is not a positive number.
    pub fn init() -> Result<Mpi> {
        let timeout = match std::env::var("FERROCONV_MPI_TIMEOUT") {
            Ok(s) => match s.trim().parse::<f64>() {
                Ok(t) if t > 0.0 && t.is_finite() => Duration::from_secs_f64(t),
                _ => {
                    return Err(Error::Invalid(format!(
                        "FERROCONV_MPI_TIMEOUT={s:?}: give the seconds a collective may \
                         wait, e.g. 120"
                    )));
                }
            },
            Err(_) => Duration::from_secs(120),
        };
        // Only the main thread calls MPI (the loader and evaluation threads never do).
        let (universe, _) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or_else(|| Error::Invalid("MPI was initialised already".into()))?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let watchdog = Arc::new(Watchdog {
            start: Instant::now(),
            deadline_ms: AtomicU64::new(0),
            call: AtomicUsize::new(0),
            timeout,
        });
        let dog = Arc::clone(&watchdog);
        std::thread::Builder::new()
            .name("ferroconv-mpi-watchdog".into())
            .spawn(move || watch(&dog, rank, size))
            .map_err(|e| Error::Invalid(format!("cannot start the MPI watchdog: {e}")))?;
        Ok(Mpi {
            world,
            rank,
            size,
            watchdog,
            scratch: RefCell::new(Vec::new()),
            _universe: universe,
        })
    }

    /// Runs one collective under the watchdog.
    fn guarded<T>(&self, call: usize, f: impl FnOnce() -> T) -> T {
        self.watchdog.arm(call);
        let out = f();
        self.watchdog.disarm();
        out
    }

    fn gather<T: Equivalence + Copy + Default>(&self, values: &[T], call: usize) -> Vec<T> {
        let mut out = vec![T::default(); values.len() * self.size];
        self.guarded(call, || self.world.all_gather_into(values, &mut out[..]));
        out
    }
}

/// The watchdog thread: exits the process when a collective passes its deadline.
fn watch(dog: &Watchdog, rank: usize, size: usize) {
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let deadline = dog.deadline_ms.load(Ordering::Acquire);
        if deadline != 0 && dog.start.elapsed().as_millis() as u64 > deadline {
            let call = CALLS[dog.call.load(Ordering::Relaxed).min(CALLS.len() - 1)];
            eprintln!(
                "error: rank {rank} of {size}: {call} has waited {:.0} s for the other ranks \
                 (FERROCONV_MPI_TIMEOUT): a rank has died or hangs; stopping. Resume from the \
                 last checkpoint with --resume DIR, on any number of ranks.",
                dog.timeout.as_secs_f64()
            );
            std::process::exit(75);
        }
    }
}

impl Comm for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn describe(&self) -> String {
        format!("mpi: {} ranks", self.size)
    }

    fn sum_in_rank_order(&self, buf: &mut [f32]) -> Result<()> {
        let n = self.size;
        if n == 1 {
            return Ok(());
        }
        if buf.len() > i32::MAX as usize {
            return Err(Error::Invalid(format!(
                "a gradient of {} floats is more than MPI counts in one call",
                buf.len()
            )));
        }
        let bounds = super::shard_bounds(buf.len(), n);
        let counts: Vec<i32> = bounds.windows(2).map(|w| (w[1] - w[0]) as i32).collect();
        let displs: Vec<i32> = bounds[..n].iter().map(|&b| b as i32).collect();
        let mine = counts[self.rank] as usize;
        // Reduce-scatter: slice r of every rank's buffer to rank r, in rank order.
        let mut recv = self.scratch.borrow_mut();
        recv.clear();
        recv.resize(mine * n, 0.0);
        let recv_counts = vec![mine as i32; n];
        let recv_displs: Vec<i32> = (0..n).map(|r| (r * mine) as i32).collect();
        self.guarded(0, || {
            let send = Partition::new(&*buf, &counts[..], &displs[..]);
            let mut into = PartitionMut::new(&mut recv[..], &recv_counts[..], &recv_displs[..]);
            self.world.all_to_all_varcount_into(&send, &mut into);
        });
        let (sum, rest) = recv.split_at_mut(mine);
        for part in rest.chunks_exact(mine.max(1)) {
            for (a, &b) in sum.iter_mut().zip(part) {
                *a += b;
            }
        }
        // All-gather the summed slices back into every rank's buffer.
        let slice = sum.to_vec();
        self.guarded(0, || {
            let mut into = PartitionMut::new(&mut *buf, &counts[..], &displs[..]);
            self.world.all_gather_varcount_into(&slice[..], &mut into);
        });
        Ok(())
    }

    fn all_gather_f64(&self, values: &[f64]) -> Result<Vec<f64>> {
        Ok(self.gather(values, 1))
    }

    fn all_gather_u64(&self, values: &[u64]) -> Result<Vec<u64>> {
        Ok(self.gather(values, 2))
    }

    fn batch_norm_reducer(&self) -> Result<super::Reducer> {
        // Its own communicator, so that it may outlive borrows of this one.
        let world = self.world.duplicate();
        let (dog, size) = (Arc::clone(&self.watchdog), self.size);
        Ok(Box::new(move |buf: &mut [f64]| {
            if size == 1 {
                return;
            }
            let mut all = vec![0.0f64; buf.len() * size];
            dog.arm(3);
            world.all_gather_into(&*buf, &mut all[..]);
            dog.disarm();
            // Rank order: a fixed sum, the same on every rank.
            buf.copy_from_slice(&all[..buf.len()]);
            for part in all[buf.len()..].chunks_exact(buf.len().max(1)) {
                for (a, &b) in buf.iter_mut().zip(part) {
                    *a += b;
                }
            }
        }))
    }

    fn abort(&self, message: &str) {
        eprintln!(
            "error: rank {} of {}: {message}; stopping every rank",
            self.rank, self.size
        );
        self.world.abort(1)
    }
}
