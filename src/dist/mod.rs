//! Data-parallel training across processes: the [`Comm`] trait the training driver talks
//! to, its trivial single-process implementation [`Single`], and, with the `mpi` feature,
//! `Mpi` on an MPI library (Open MPI, MPICH) through the `mpi` crate.
//!
//! The driver needs five things of a communicator: who am I ([`Comm::rank`]), how many
//! are we ([`Comm::size`]), the sum of every rank's gradient buffer *in rank order*
//! ([`Comm::sum_in_rank_order`]: fixed order, so a run is bit-identical run to run and to
//! a single process that adds the same shards' gradients in the same order), small
//! gathers (the step's loss, the settings' fingerprints) and a way to stop every rank on
//! a local error ([`Comm::abort`]).
//!
//! [`from_env`] picks the communicator for a process: MPI when the process was started by
//! `mpirun`/`srun` and the crate was built with `--features mpi`, else [`Single`]; see
//! docs/scaling.md for how to launch.

use crate::error::{Error, Result};

#[cfg(feature = "mpi")]
mod mpi;
#[cfg(feature = "mpi")]
pub use self::mpi::Mpi;

/// What the data-parallel driver needs of the processes training together.
///
/// Every collective call must be made by every rank, in the same order, with buffers of
/// the same length; the implementations stop the job (never hang) when a rank is gone.
pub trait Comm {
    /// This process's rank, from 0.
    fn rank(&self) -> usize;

    /// Number of processes training together (at least 1).
    fn size(&self) -> usize;

    /// A short description for the logs, e.g. `single process` or `mpi: 4 ranks`.
    fn describe(&self) -> String;

    /// Replaces `buf` on every rank by `buf₀ + buf₁ + … + buf_{N−1}`, added element by
    /// element in rank order, starting from a copy of `buf₀` (so the result does not depend
    /// on how the sum is split between machines).
    fn sum_in_rank_order(&self, buf: &mut [f32]) -> Result<()>;

    /// Every rank's `values` (the same length on every rank), concatenated in rank order.
    fn all_gather_f64(&self, values: &[f64]) -> Result<Vec<f64>>;

    /// Every rank's `values` (the same length on every rank), concatenated in rank order.
    fn all_gather_u64(&self, values: &[u64]) -> Result<Vec<u64>>;

    /// Stops every rank after printing `message`: for an error this rank alone has met,
    /// which the others, waiting in a collective, would never learn. [`Single`] does
    /// nothing (its caller returns the error).
    fn abort(&self, message: &str);

    /// A sum over the ranks for synchronised batch norm, owning what it needs so that it
    /// can live beside the model for a whole run ([`SyncedBatchNorm`]): it
    /// replaces a buffer (the same length on every rank) by the sum of every rank's, added
    /// in rank order. A failed or timed-out call stops the job, as the gradient sum does.
    fn batch_norm_reducer(&self) -> Result<Reducer>;
}

/// A sum over the ranks of an `f64` buffer, in rank order ([`Comm::batch_norm_reducer`]).
pub type Reducer = Box<dyn Fn(&mut [f64])>;

thread_local! {
    /// The reducer that training-mode batch norms on this thread add their sums with.
    static BATCH_NORM_SUM: std::cell::RefCell<Option<Reducer>> =
        const { std::cell::RefCell::new(None) };
}

/// Synchronised batch norm on this thread while the value lives: every training-mode
/// [`crate::layers::BatchNorm2d`] computes its mean, variance and input gradient over the
/// whole global batch, every rank's shard, by adding its per-channel sums with the
/// reducer (PyTorch's `SyncBatchNorm`): two sums of `C + 1` and `C` values per forward, one
/// of `2C` per backward. Dropping it restores the previous setting.
pub struct SyncedBatchNorm {
    previous: Option<Reducer>,
    // Tied to the thread whose batch norms it synchronises.
    _here: std::marker::PhantomData<*const ()>,
}

impl SyncedBatchNorm {
    /// Turns synchronised batch norm on for this thread, adding with `sum`.
    pub fn on(sum: Reducer) -> Self {
        SyncedBatchNorm {
            previous: BATCH_NORM_SUM.with(|s| s.borrow_mut().replace(sum)),
            _here: std::marker::PhantomData,
        }
    }
}

impl Drop for SyncedBatchNorm {
    fn drop(&mut self) {
        let old = self.previous.take();
        BATCH_NORM_SUM.with(|s| *s.borrow_mut() = old);
    }
}

/// Adds `buf` over the ranks when synchronised batch norm is on for this thread
/// ([`SyncedBatchNorm`]); otherwise leaves it (this shard's statistics).
pub(crate) fn batch_norm_sum(buf: &mut [f64]) {
    BATCH_NORM_SUM.with(|s| {
        if let Some(sum) = s.borrow().as_ref() {
            sum(buf);
        }
    });
}

/// One process training alone: every collective is the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

impl Comm for Single {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn describe(&self) -> String {
        "single process".into()
    }

    fn sum_in_rank_order(&self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn all_gather_f64(&self, values: &[f64]) -> Result<Vec<f64>> {
        Ok(values.to_vec())
    }

    fn all_gather_u64(&self, values: &[u64]) -> Result<Vec<u64>> {
        Ok(values.to_vec())
    }

    fn abort(&self, _message: &str) {}

    fn batch_norm_reducer(&self) -> Result<Reducer> {
        Ok(Box::new(|_| {}))
    }
}

/// Whether an MPI launcher started this process (`mpirun` sets `OMPI_COMM_WORLD_SIZE` or
/// `PMIX_RANK`; MPICH and Slurm's `srun --mpi=pmi2` set `PMI_RANK`), and as one of how
/// many processes (`OMPI_COMM_WORLD_SIZE`, `PMI_SIZE`, `SLURM_NTASKS`; 2 when none says):
/// `None` when no launcher started it.
pub fn launcher_size() -> Option<usize> {
    let var = |k: &str| std::env::var(k).ok();
    let launched = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"]
        .iter()
        .any(|k| var(k).is_some());
    if !launched {
        return None;
    }
    let size = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"]
        .iter()
        .find_map(|k| var(k)?.parse().ok());
    Some(size.unwrap_or(2))
}

/// Processes of this job on this machine, when the launcher says
/// (`OMPI_COMM_WORLD_LOCAL_SIZE`, `MPI_LOCALNRANKS`, `SLURM_NTASKS_PER_NODE`).
pub fn local_size() -> Option<usize> {
    [
        "OMPI_COMM_WORLD_LOCAL_SIZE",
        "MPI_LOCALNRANKS",
        "SLURM_NTASKS_PER_NODE",
    ]
    .iter()
    .find_map(|k| std::env::var(k).ok()?.parse().ok())
}

/// The communicator of this process: with the `mpi` feature and a launcher's environment
/// (`mpirun -np N …`, `srun …`), MPI, initialised here (keep the returned value alive for
/// the whole run: dropping it finalises MPI); otherwise [`Single`].
///
/// Started by a launcher with N > 1 processes but built without the feature, it is an
/// error: the N processes would each train alone and write the same files.
///
/// Under a launcher, when the kernels' thread count has not been set yet, each rank takes
/// its share of the machine's cores (cores ÷ ranks on this machine, at least 1), so that
/// `mpirun -np 2` on a 2-core machine runs 2 × 1 threads, not 2 × 2.
pub fn from_env() -> Result<Box<dyn Comm>> {
    let Some(n) = launcher_size() else {
        return Ok(Box::new(Single));
    };
    share_cores();
    #[cfg(feature = "mpi")]
    {
        let _ = n;
        Ok(Box::new(Mpi::init()?))
    }
    #[cfg(not(feature = "mpi"))]
    {
        if n > 1 {
            return Err(Error::Invalid(format!(
                "started by an MPI launcher as one of {n} processes, but built without the \
                 mpi feature: each would train alone and write the same files; build with \
                 cargo build --release --features mpi (see docs/scaling.md)"
            )));
        }
        Ok(Box::new(Single))
    }
}

/// Sets the kernels' threads ([`crate::set_threads`], the calling thread among them) to
/// this process's share of the cores: under a launcher with several ranks on this machine,
/// cores ÷ local ranks (at least 1); otherwise every core. A count set already stands
/// (the count changes the speed only, never the results).
pub fn share_cores() {
    let ranks = launcher_size().and(local_size()).unwrap_or(1).max(1);
    let _ = crate::set_threads((crate::cores() / ranks).max(1));
}

/// How a global mini-batch of `n` images is cut into `shards` contiguous shards: shard `s`
/// holds positions `bounds[s]..bounds[s + 1]` (sizes differ by at most one, the larger ones
/// last).
pub fn shard_bounds(n: usize, shards: usize) -> Vec<usize> {
    (0..=shards.max(1))
        .map(|s| shard_start(n, shards, s))
        .collect()
}

/// Where shard `s` of [`shard_bounds`] starts (`s = shards`: the end), without building
/// the list: `⌊s·n / shards⌋`.
pub fn shard_start(n: usize, shards: usize, s: usize) -> usize {
    s * n / shards.max(1)
}

/// A 64-bit FNV-1a hash of some bytes (fingerprints of the settings and data, compared
/// across ranks; not cryptographic).
pub fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    if h == 0 {
        h = 0xcbf2_9ce4_8422_2325;
    }
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// An error naming the first rank whose `fingerprints` (`per_rank` values per rank, as
/// [`Comm::all_gather_u64`] returns them) differ from rank 0's, and what differs
/// (`names[i]` for value `i`).
pub fn check_fingerprints(all: &[u64], names: &[&str]) -> Result<()> {
    let per = names.len().max(1);
    let ranks = all.len() / per;
    for r in 1..ranks {
        for (i, name) in names.iter().enumerate() {
            if all[r * per + i] != all[i] {
                return Err(Error::Invalid(format!(
                    "rank {r} has a different {name} from rank 0 ({:016x} against {:016x}): \
                     every rank must run the same command on the same data",
                    all[r * per + i],
                    all[i]
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_in_order() {
        assert_eq!(shard_bounds(10, 3), vec![0, 3, 6, 10]);
        assert_eq!(shard_bounds(64, 2), vec![0, 32, 64]);
        assert_eq!(shard_bounds(5, 1), vec![0, 5]);
    }

    #[test]
    fn a_different_rank_is_named() {
        let names = ["seed", "data"];
        assert!(check_fingerprints(&[1, 2, 1, 2], &names).is_ok());
        let e = check_fingerprints(&[1, 2, 1, 3], &names).unwrap_err();
        assert!(e.to_string().contains("rank 1 has a different data"), "{e}");
    }
}
