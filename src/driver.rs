//! The training driver every example shares: epochs under a recipe, evaluation after each,
//! a checkpoint after each (atomic, never a non-finite one), `--resume`, JSON lines, and
//! events for a progress display.
//!
//! ```no_run
//! use ferroconv::data::{Cifar10, Split};
//! use ferroconv::driver::{Event, RunConfig, run};
//! use ferroconv::recipe::Recipe;
//! # fn main() -> ferroconv::Result<()> {
//! let dir = Cifar10::default_dir();
//! let (train, test) = (Cifar10::load(&dir, Split::Train)?, Cifar10::load(&dir, Split::Test)?);
//! let config = RunConfig::new(Recipe::preset("seed")?, 0);
//! let report = run(&config, &train, &test, &mut |event| {
//!     if let Event::Epoch(e) = event {
//!         println!("epoch {}: {:.2}%", e.epoch, 100.0 * e.eval.accuracy);
//!     }
//! })?;
//! report.model.save("seed.safetensors")?;
//! # Ok(()) }
//! ```

use crate::checkpoint;
use crate::data::{Batch, Dataset, View};
use crate::dist::{Comm, Single};
use crate::error::{Error, Result};
use crate::finetune::FineTune;
use crate::model::Sequential;
use crate::optim::Optimizer;
use crate::recipe::Recipe;
use crate::train::{
    DataParallel, EpochStats, Evaluation, Plan, StepReport, Tta, evaluate_tta, train_epoch,
    train_epoch_parallel,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// File name of the checkpoint inside a save folder.
pub const CHECKPOINT: &str = "checkpoint.safetensors";

/// Where the training steps run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    /// The CPU kernels.
    #[default]
    Cpu,
    /// The wgpu compute shaders (feature `wgpu`).
    Wgpu,
}

/// A training run: the recipe and everything around it.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Network and training settings.
    pub recipe: Recipe,
    /// Seed of the initial weights, shuffles and augmentations.
    pub seed: u64,
    /// Write `DIR/checkpoint.safetensors` after every epoch.
    pub save: Option<PathBuf>,
    /// Continue the run saved in this folder.
    pub resume: Option<PathBuf>,
    /// Replace another run's checkpoint in the save folder (refused otherwise).
    pub overwrite: bool,
    /// Append one JSON object per epoch to this file (truncated first unless resuming).
    pub json: Option<PathBuf>,
    /// Where to train.
    pub device: Device,
    /// Images per evaluation batch.
    pub eval_batch: usize,
    /// Start from these weights (a file of [`Sequential::save`] or any safetensors file
    /// with the model's names) instead of the seed's initial ones.
    pub init_weights: Option<PathBuf>,
    /// Extra `key = value` pairs recorded in the checkpoint and compared on resume
    /// (e.g. which data the run trains on).
    pub tags: BTreeMap<String, String>,
    /// Fine-tuning: pretrained weights, a replaced head, frozen parameters, the head's
    /// rate. Recorded in the checkpoint; a resumed run must fine-tune the same way.
    pub fine_tune: FineTune,
    /// In one process, train as this many data-parallel ranks would: each global
    /// mini-batch cut into `shards` shards whose gradients are added in order (see
    /// [`DataParallel`]). 1 (the default) is plain training. Under MPI ([`run_on`] with
    /// several ranks) it must be 1 or the number of ranks: one shard per rank.
    pub shards: usize,
    /// Synchronised batch norm across MPI ranks: each batch norm's statistics over the
    /// whole global batch, as in one process (PyTorch's `SyncBatchNorm`); off, each rank
    /// normalises its own shard (DDP's default). Only with several MPI ranks; a no-op in
    /// one process without shards, an error with `shards > 1` in one process.
    pub sync_batch_norm: bool,
}

impl RunConfig {
    /// A run of `recipe` from `seed`: no checkpoints, no JSON, on the CPU.
    pub fn new(recipe: Recipe, seed: u64) -> Self {
        RunConfig {
            recipe,
            seed,
            save: None,
            resume: None,
            overwrite: false,
            json: None,
            device: Device::Cpu,
            eval_batch: 500,
            init_weights: None,
            tags: BTreeMap::new(),
            fine_tune: FineTune::default(),
            shards: 1,
            sync_batch_norm: false,
        }
    }
}

/// One finished epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochReport {
    /// The epoch (from 1).
    pub epoch: u64,
    /// What training measured.
    pub stats: EpochStats,
    /// The evaluation on the test set after it.
    pub eval: Evaluation,
    /// Seconds since the run started.
    pub wall_seconds: f64,
}

/// What the driver tells its caller while it runs.
pub enum Event<'a> {
    /// Training starts at `first_epoch` (after 1 when resuming) on `device` (a name such
    /// as `cpu` or `wgpu: <adapter>`).
    Started {
        /// The first epoch to train.
        first_epoch: u64,
        /// Where the steps run.
        device: &'a str,
        /// The model as built (for a summary).
        model: &'a Sequential,
    },
    /// After each mini-batch (every 256 on the GPU).
    Step(&'a StepReport),
    /// After each epoch's evaluation.
    Epoch(&'a EpochReport),
}

/// What a run leaves.
pub struct RunReport {
    /// The trained model (normalisation and class names set from the training data).
    pub model: Sequential,
    /// The epochs trained in this call, in order.
    pub epochs: Vec<EpochReport>,
    /// The epoch the run resumed after, when it did.
    pub resumed_after: Option<u64>,
    /// Seconds from start to end.
    pub wall_seconds: f64,
}

impl RunReport {
    /// The last evaluation of this call, if an epoch ran.
    pub fn last_eval(&self) -> Option<&Evaluation> {
        self.epochs.last().map(|e| &e.eval)
    }
}

/// Trains a fresh model of `config.recipe` on `train`, evaluating on `test` after each
/// epoch. Everything the run writes is checked before the first step (the save folder,
/// the JSON file); a NaN or infinite loss stops it with [`Error::NonFinite`], leaving
/// the last good checkpoint in place.
pub fn run(
    config: &RunConfig,
    train: &dyn Dataset,
    test: &dyn Dataset,
    on: &mut (dyn FnMut(Event<'_>) + Send),
) -> Result<RunReport> {
    run_on(config, &Single, train, test, on)
}

/// [`run`] as one of the `comm.size()` processes of a data-parallel run (every process
/// calls it with the same config and data; see [`crate::dist`]): each trains its shard of
/// every global mini-batch (`recipe.batch_size` stays the global batch), the gradients are
/// summed in rank order, and all take the same steps. Rank 0 alone evaluates, calls `on`,
/// writes the JSON lines and the checkpoints; every rank resumes from them (a folder all
/// machines see). Before the first step the ranks compare fingerprints of their seed,
/// batch size, data, recipe and weights: any difference is an error.
///
/// With several processes an error on any rank stops all of them ([`Comm::abort`]).
pub fn run_on(
    config: &RunConfig,
    comm: &dyn Comm,
    train: &dyn Dataset,
    test: &dyn Dataset,
    on: &mut (dyn FnMut(Event<'_>) + Send),
) -> Result<RunReport> {
    let result = run_ranked(config, comm, train, test, on);
    if let Err(e) = &result
        && comm.size() > 1
    {
        comm.abort(&e.to_string());
    }
    result
}

fn run_ranked(
    config: &RunConfig,
    comm: &dyn Comm,
    train: &dyn Dataset,
    test: &dyn Dataset,
    on: &mut (dyn FnMut(Event<'_>) + Send),
) -> Result<RunReport> {
    let r = &config.recipe;
    r.check()?;
    check_data(train, test, r)?;
    let root = comm.rank() == 0;
    let shards = if comm.size() > 1 {
        if config.shards > 1 && config.shards != comm.size() {
            return Err(Error::Invalid(format!(
                "{} shards on {} MPI ranks: under MPI each rank trains one shard",
                config.shards,
                comm.size()
            )));
        }
        if config.device != Device::Cpu {
            return Err(Error::Invalid(
                "data-parallel training across MPI ranks runs on the CPU device only".into(),
            ));
        }
        comm.size()
    } else {
        config.shards.max(1)
    };
    if config.sync_batch_norm && comm.size() == 1 && shards > 1 {
        return Err(Error::Invalid(
            "synchronised batch norm synchronises MPI ranks; one process trains its shards \
             one after the other, so each normalises alone (without --shards, one process \
             normalises the whole batch)"
                .into(),
        ));
    }
    if shards > 1 {
        if config.device != Device::Cpu {
            return Err(Error::Invalid(
                "training in shards runs on the CPU device only".into(),
            ));
        }
        let dp = DataParallel { comm, shards };
        dp.check(r.batch_size, train.len())?;
    }
    let mut only_root = |event: Event<'_>| {
        if root {
            on(event)
        }
    };
    let on: &mut (dyn FnMut(Event<'_>) + Send) = &mut only_root;
    let classes = train.classes().len();
    let mut model = config
        .fine_tune
        .build(r, &train.image_shape(), classes, config.seed)?;
    model.set_normalization(train.normalization())?;
    model.set_classes(train.classes().to_vec())?;
    r.prepare(&mut model, train)?;
    if let Some(path) = &config.init_weights {
        model.load_weights(path)?;
    }
    let plan = r.plan(train.len(), config.seed, !train.in_memory());
    let mut opt = r.optimizer_for(&model, &plan, train.len());
    let metadata = |epoch: u64| run_metadata(config, train, epoch);

    let save_path = config.save.as_ref().map(|d| d.join(CHECKPOINT));
    if let Some(dir) = config.save.as_ref().filter(|_| root) {
        prepare_save_dir(dir, config)?;
    }
    let resumed_after = match &config.resume {
        Some(dir) => Some(resume(
            dir,
            &metadata(0),
            &config.tags,
            &mut model,
            opt.as_mut(),
        )?),
        None => None,
    };
    let first_epoch = resumed_after.map_or(1, |e| e + 1);
    if first_epoch > r.epochs {
        return Err(Error::Invalid(format!(
            "the run in {} already finished its {} epochs: pass --epochs N with N > {} \
             to train on",
            config.resume.as_ref().expect("resumed").display(),
            first_epoch - 1,
            first_epoch - 1
        )));
    }
    if comm.size() > 1 {
        let mine = fingerprint(config, train, test, &model, first_epoch)?;
        crate::dist::check_fingerprints(&comm.all_gather_u64(&mine)?, &FINGERPRINTS)?;
    }
    // Every rank makes the reducer here (it duplicates the communicator: a collective).
    let _synced = match config.sync_batch_norm && comm.size() > 1 {
        true => Some(crate::dist::SyncedBatchNorm::on(comm.batch_norm_reducer()?)),
        false => None,
    };
    let start = Instant::now();
    let mut engine = Engine::new(config, &mut model, opt.as_mut())?;
    let dp = DataParallel { comm, shards };
    let device = match (shards, comm.size()) {
        (1, _) => engine.name(),
        (s, 1) => format!("{} ({s} shards)", engine.name()),
        _ => format!("{} ({})", engine.name(), comm.describe()),
    };
    on(Event::Started {
        first_epoch,
        device: &device,
        model: &model,
    });
    let mut epochs = Vec::new();
    // On the CPU, each epoch's evaluation runs on its own thread, on a copy of the weights
    // taken at the end of the epoch, while the next epoch trains: it fills the cores' idle
    // moments of large steps, or a core that training leaves free (fewer threads than
    // cores). Small steps with a thread per core keep every core polling
    // (`train::runs_hot`), and a third busy thread would only slow them down: there the
    // evaluation runs after the epoch, on every thread. Results are the same.
    let spare_core = rayon::current_num_threads() < crate::cores();
    let hot = shards <= 1 && crate::train::runs_hot(&plan, train);
    let mut snapshot = match engine {
        Engine::Cpu(_) if !root || (hot && !spare_core) => None,
        Engine::Cpu(_) => Some(Sequential::from_specs(
            model.input_shape(),
            &model.specs(),
            0,
        )?),
        #[cfg(feature = "wgpu")]
        Engine::Gpu(_) => None,
    };
    let eval_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the evaluation thread: {e}")))?;
    let eval_batch = config.eval_batch.max(1);
    let mut out = Output {
        json: if root { open_json(config)? } else { None },
        device: &device,
        start,
        epochs: &mut epochs,
    };
    std::thread::scope(|scope| -> Result<()> {
        type Pending<'s> = std::thread::ScopedJoinHandle<'s, Result<(Evaluation, Sequential)>>;
        let mut pending: Option<(u64, EpochStats, Pending<'_>)> = None;
        for epoch in first_epoch..=r.epochs {
            let stats = engine.train_epoch(
                &mut model,
                opt.as_mut(),
                (train, &plan, epoch),
                &dp,
                &mut |s| on(Event::Step(s)),
            );
            let stats = match stats {
                Ok(s) => s,
                Err(e) => {
                    // Report the epoch whose evaluation is still running, then stop.
                    if let Some((epoch, s, h)) = pending.take() {
                        out.finish(epoch, s, join(h)?.0, on)?;
                    }
                    return Err(e);
                }
            };
            if !root {
                // Rank 0 alone evaluates and writes; the others train on.
                continue;
            }
            if let Some(path) = &save_path {
                engine.sync(&mut model, opt.as_mut())?;
                checkpoint::save_training(path, &model, opt.as_mut(), metadata(epoch))?;
            }
            if let Some((epoch, s, h)) = pending.take() {
                let (eval, snap) = join(h)?;
                snapshot = Some(snap);
                out.finish(epoch, s, eval, on)?;
            }
            // The last epoch has nothing to overlap with: evaluate it on every thread.
            let overlap = if epoch < r.epochs {
                snapshot.take()
            } else {
                None
            };
            match overlap {
                Some(mut snap) => {
                    snap.copy_state_from(&model)?;
                    let (pool, tta) = (&eval_pool, r.tta_for_epoch(epoch));
                    let h = scope.spawn(move || {
                        pool.install(|| evaluate_tta(&mut snap, test, eval_batch, tta))
                            .map(|eval| (eval, snap))
                    });
                    pending = Some((epoch, stats, h));
                }
                None => {
                    let tta = r.tta_for_epoch(epoch);
                    let eval = engine.evaluate(&mut model, test, eval_batch, tta)?;
                    out.finish(epoch, stats, eval, on)?;
                }
            }
        }
        if let Some((epoch, s, h)) = pending.take() {
            out.finish(epoch, s, join(h)?.0, on)?;
        }
        Ok(())
    })?;
    engine.sync(&mut model, opt.as_mut())?;
    Ok(RunReport {
        model,
        epochs,
        resumed_after,
        wall_seconds: start.elapsed().as_secs_f64(),
    })
}

/// Where finished epochs go: the JSON file, the caller, the report.
struct Output<'a> {
    json: Option<std::fs::File>,
    device: &'a str,
    start: Instant,
    epochs: &'a mut Vec<EpochReport>,
}

impl Output<'_> {
    fn finish(
        &mut self,
        epoch: u64,
        stats: EpochStats,
        eval: Evaluation,
        on: &mut (dyn FnMut(Event<'_>) + Send),
    ) -> Result<()> {
        let report = EpochReport {
            epoch,
            stats,
            eval,
            wall_seconds: self.start.elapsed().as_secs_f64(),
        };
        if let Some(f) = self.json.as_mut() {
            write_json(f, &report, self.device)?;
        }
        on(Event::Epoch(&report));
        self.epochs.push(report);
        Ok(())
    }
}

fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    h.join()
        .map_err(|_| Error::Invalid("the evaluation thread panicked".into()))?
}

/// Refuses data the recipe cannot train on.
fn check_data(train: &dyn Dataset, test: &dyn Dataset, r: &Recipe) -> Result<()> {
    if train.is_empty() || test.is_empty() {
        return Err(Error::Invalid(format!(
            "{} training and {} test images: both sets need images",
            train.len(),
            test.len()
        )));
    }
    if r.batch_size > train.len() {
        return Err(Error::Invalid(format!(
            "batch size {} is larger than the {} training images",
            r.batch_size,
            train.len()
        )));
    }
    if train.image_shape() != test.image_shape() || train.classes() != test.classes() {
        return Err(Error::Invalid(format!(
            "the training images are {:?} in {} classes, the test images {:?} in {}",
            train.image_shape(),
            train.classes().len(),
            test.image_shape(),
            test.classes().len()
        )));
    }
    Ok(())
}

/// Creates the save folder, refuses to replace another run's checkpoint without
/// `overwrite`, and proves the folder writable before any training.
fn prepare_save_dir(dir: &Path, config: &RunConfig) -> Result<()> {
    let io = |what, source| Error::Io {
        path: dir.to_path_buf(),
        what,
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io("cannot create the save folder", e))?;
    let resuming_here = config.resume.as_deref() == Some(dir);
    if dir.join(CHECKPOINT).exists() && !resuming_here && !config.overwrite {
        return Err(Error::Invalid(format!(
            "{} already holds a checkpoint: --resume {0} continues that run, --overwrite \
             replaces it, or choose another --save folder",
            dir.display()
        )));
    }
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| io("cannot write into the save folder", e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// What a checkpoint records about the run: to resume it, and to check it is the same.
fn run_metadata(config: &RunConfig, train: &dyn Dataset, epoch: u64) -> BTreeMap<String, String> {
    let r = &config.recipe;
    let mut m: BTreeMap<String, String> = [
        ("model", r.model.clone()),
        ("seed", config.seed.to_string()),
        ("batch_size", r.batch_size.to_string()),
        ("epoch", epoch.to_string()),
        ("epochs", r.epochs.to_string()),
        ("optimizer", r.optimizer.clone()),
        ("lr", r.lr.to_string()),
        ("schedule", r.schedule.clone()),
        ("train_images", train.len().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    m.extend(config.fine_tune.metadata());
    for (k, v) in &config.tags {
        m.insert(k.clone(), v.clone());
    }
    m
}

/// What the ranks of a data-parallel run compare before the first step, in this order.
const FINGERPRINTS: [&str; 6] = [
    "seed",
    "batch size",
    "data set (sizes, shapes, classes, first images)",
    "recipe (model and training flags) or run tags",
    "initial weights (or resumed checkpoint)",
    "epoch to start at",
];

/// One hash per entry of [`FINGERPRINTS`] for this rank.
fn fingerprint(
    config: &RunConfig,
    train: &dyn Dataset,
    test: &dyn Dataset,
    model: &Sequential,
    first_epoch: u64,
) -> Result<Vec<u64>> {
    use crate::dist::fnv1a;
    let mut data = 0;
    for set in [train, test] {
        let head = format!("{} {:?} {:?}", set.len(), set.image_shape(), set.classes());
        data = fnv1a(head.as_bytes(), data);
        let first: Vec<usize> = (0..set.len().min(64)).collect();
        let mut batch = Batch::default();
        set.fill_batch(&first, View::Plain, &mut batch)?;
        for v in batch.images.data() {
            data = fnv1a(&v.to_le_bytes(), data);
        }
        for l in &batch.labels {
            data = fnv1a(&l.to_le_bytes(), data);
        }
    }
    let recipe = format!(
        "{:?} {:?} {} sync_batch_norm={}",
        config.recipe, config.tags, config.eval_batch, config.sync_batch_norm
    );
    let mut weights = 0;
    model.visit_values(&mut |v| {
        weights = fnv1a(v.name.as_bytes(), weights);
        for x in v.values {
            weights = fnv1a(&x.to_le_bytes(), weights);
        }
    });
    Ok(vec![
        config.seed,
        config.recipe.batch_size as u64,
        data,
        fnv1a(recipe.as_bytes(), 0),
        weights,
        first_epoch,
    ])
}

/// Settings a resumed run must share with the saved one.
/// (The fine-tuning keys are there only for runs that set them.)
const SAME_ON_RESUME: [&str; 8] = [
    "model",
    "seed",
    "batch_size",
    "optimizer",
    "train_images",
    "fresh_head",
    "freeze",
    "head_lr",
];

/// Loads `dir`'s checkpoint into model and optimizer; returns the epoch it finished.
fn resume(
    dir: &Path,
    want: &BTreeMap<String, String>,
    tags: &BTreeMap<String, String>,
    model: &mut Sequential,
    opt: &mut dyn Optimizer,
) -> Result<u64> {
    let path = dir.join(CHECKPOINT);
    let meta = checkpoint::load_training(&path, model, opt)?;
    let keys = SAME_ON_RESUME.iter().map(|k| k.to_string());
    for key in keys.chain(tags.keys().cloned()) {
        if meta.get(&key) != want.get(&key) {
            return Err(Error::Invalid(format!(
                "{}: saved with {key} = {}, this run has {}; resume with the same settings",
                path.display(),
                meta.get(&key).map_or("(none)", |s| s.as_str()),
                want.get(&key).map_or("(none)", |s| s.as_str()),
            )));
        }
    }
    meta.get("epoch")
        .and_then(|e| e.parse().ok())
        .ok_or_else(|| Error::Format {
            path,
            detail: "no epoch in the checkpoint metadata".into(),
        })
}

fn open_json(config: &RunConfig) -> Result<Option<std::fs::File>> {
    let Some(p) = &config.json else {
        return Ok(None);
    };
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(config.resume.is_some())
        .truncate(config.resume.is_none())
        .open(p)
        .map(Some)
        .map_err(|source| Error::Io {
            path: p.clone(),
            what: "cannot open the --json file",
            source,
        })
}

/// One JSON object per epoch: `epoch`, `train_loss`, `train_acc`, `test_acc`, `test_loss`,
/// `seconds`, `images_per_sec`, `lr`, `wall_seconds`, `device`.
fn write_json(f: &mut std::fs::File, e: &EpochReport, device: &str) -> Result<()> {
    let s = &e.stats;
    writeln!(
        f,
        "{{\"epoch\":{},\"train_loss\":{},\"train_acc\":{},\"test_acc\":{},\"test_loss\":{},\"seconds\":{},\"images_per_sec\":{},\"lr\":{},\"wall_seconds\":{},\"device\":{}}}",
        e.epoch,
        s.train_loss,
        s.train_acc,
        e.eval.accuracy,
        e.eval.loss,
        s.seconds,
        s.images_per_sec,
        s.lr,
        e.wall_seconds,
        crate::json::string(device)
    )
    .and_then(|_| f.flush())
    .map_err(|source| Error::Io {
        path: PathBuf::from("--json"),
        what: "cannot write",
        source,
    })
}

/// Where the steps run: the CPU layers, or their mirror on a GPU.
enum Engine {
    Cpu(crate::SoftmaxCrossEntropy),
    #[cfg(feature = "wgpu")]
    Gpu(Box<crate::gpu::GpuNet>),
}

impl Engine {
    fn new(config: &RunConfig, model: &mut Sequential, opt: &mut dyn Optimizer) -> Result<Self> {
        match config.device {
            Device::Cpu => Ok(Engine::Cpu(
                crate::SoftmaxCrossEntropy::with_label_smoothing(config.recipe.label_smoothing),
            )),
            #[cfg(feature = "wgpu")]
            Device::Wgpu if config.recipe.airbench.is_some() => Err(Error::Invalid(
                "the airbench settings (frozen tensors, lookahead, whitening) run on the CPU \
                 only: leave out the wgpu device"
                    .into(),
            )),
            #[cfg(feature = "wgpu")]
            Device::Wgpu => {
                if model.has_param_groups() {
                    return Err(Error::Invalid(
                        "the wgpu device does not fine-tune: frozen parameters and a head \
                         learning rate train on the CPU (--device cpu)"
                            .into(),
                    ));
                }
                let gpu = crate::gpu::Gpu::new()?;
                let smoothing = config.recipe.label_smoothing;
                let net = crate::gpu::GpuNet::new(gpu, model, opt, smoothing)?;
                Ok(Engine::Gpu(Box::new(net)))
            }
            #[cfg(not(feature = "wgpu"))]
            Device::Wgpu => {
                let _ = (model, opt);
                Err(Error::Invalid(
                    "the wgpu device needs the wgpu feature (cargo … --features wgpu)".into(),
                ))
            }
        }
    }

    /// `cpu`, or `wgpu: <adapter>`.
    fn name(&self) -> String {
        match self {
            Engine::Cpu(_) => "cpu".into(),
            #[cfg(feature = "wgpu")]
            Engine::Gpu(net) => format!("wgpu: {}", net.gpu().adapter_name()),
        }
    }

    fn train_epoch(
        &mut self,
        model: &mut Sequential,
        opt: &mut dyn Optimizer,
        (data, plan, epoch): (&dyn Dataset, &Plan, u64),
        dp: &DataParallel<'_>,
        progress: crate::train::Progress<'_>,
    ) -> Result<EpochStats> {
        match self {
            Engine::Cpu(loss) if dp.shards > 1 => {
                train_epoch_parallel(model, loss, opt, (data, plan, epoch), dp, progress)
            }
            Engine::Cpu(loss) => train_epoch(model, loss, opt, data, plan, epoch, progress),
            #[cfg(feature = "wgpu")]
            Engine::Gpu(net) => {
                let _ = dp; // refused with several shards before the engine starts
                crate::gpu::train_epoch(net, opt, data, plan, epoch, progress)
            }
        }
    }

    fn evaluate(
        &mut self,
        model: &mut Sequential,
        data: &dyn Dataset,
        batch: usize,
        tta: Tta,
    ) -> Result<Evaluation> {
        match self {
            Engine::Cpu(_) => evaluate_tta(model, data, batch, tta),
            #[cfg(feature = "wgpu")]
            Engine::Gpu(net) => match tta {
                Tta::None | Tta::Mirror => {
                    crate::gpu::evaluate(net, data, batch, tta == Tta::Mirror)
                }
                Tta::MirrorTranslate => Err(Error::Invalid(
                    "the wgpu device evaluates with mirror images at most".into(),
                )),
            },
        }
    }

    /// Brings the model and optimizer state on the host up to date.
    fn sync(&mut self, model: &mut Sequential, opt: &mut dyn Optimizer) -> Result<()> {
        match self {
            Engine::Cpu(_) => {
                let _ = (model, opt); // the CPU trains the host model itself
                Ok(())
            }
            #[cfg(feature = "wgpu")]
            Engine::Gpu(net) => net.sync_to_host(model, opt),
        }
    }
}
