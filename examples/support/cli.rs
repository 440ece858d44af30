//! What the training examples share: the recipe and run flags (clap), and the terminal
//! output of a run (summary, live progress line, per-epoch lines, per-class accuracy,
//! plot). The training itself is the library's `driver::run`.

use clap::Args;
use ferroconv::data::Dataset;
use ferroconv::driver::{Device, Event, RunConfig, RunReport};
use ferroconv::recipe::Recipe;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[path = "plot.rs"]
mod plot;

/// The flags of a training run; a preset's recipe is the base the others override.
#[derive(Args, Debug)]
pub struct TrainFlags {
    /// seed (the article's network and recipe), keras (the TensorFlow tutorial CNN,
    /// Adam), fast (an airbench-style conv-pool-BN net, no residuals), airbench94
    /// (airbench94's recipe: whitening, lookahead, alternating flip, TTA; its --lr is the
    /// rate at batch 1024, scaled with --batch-size), airbench90 (the same recipe on a
    /// narrower network, batch 512, 5 epochs: the quick preset), or a torchvision architecture
    /// (--arch resnet18, resnet34, resnet50, vgg11[_bn], vgg16[_bn], alexnet, googlenet,
    /// inception_v3) with the fine-tuning recipe. A model brings its recipe; the flags
    /// below override it.
    #[arg(long, alias = "arch", default_value = "seed")]
    pub model: String,
    /// Start from these weights: a torchvision state_dict in safetensors
    /// (tools/pth_to_safetensors.py converts a .pth) or a model saved here, of the
    /// --arch/--model architecture. A head of another class count is replaced.
    #[arg(long, value_name = "FILE")]
    pub pretrained: Option<PathBuf>,
    /// Freeze: backbone (all but the classifier head), name prefixes (layer1.,layer2),
    /// or a range of top-level layers (0..5). Frozen batch norms use their running
    /// statistics.
    #[arg(long, value_name = "WHAT")]
    pub freeze: Option<String>,
    /// Learning rate of the classifier head (the rest trains at --lr).
    #[arg(long, value_name = "LR")]
    pub head_lr: Option<f32>,
    /// Replace the pretrained head even when its class count matches the data's.
    #[arg(long)]
    pub fresh_head: bool,
    /// Epochs.
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Mini-batch size (at most the number of training images).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// (Peak) learning rate.
    #[arg(long)]
    pub lr: Option<f32>,
    /// SGD momentum.
    #[arg(long)]
    pub momentum: Option<f32>,
    /// sgd, nesterov, adam, adamw.
    #[arg(long, value_parser = ["sgd", "nesterov", "adam", "adamw"])]
    pub optimizer: Option<String>,
    /// constant, step (×0.1 at 50% and 75%), cosine, onecycle, triangle (airbench94's).
    #[arg(long, value_parser = ["constant", "step", "cosine", "onecycle", "triangle"])]
    pub schedule: Option<String>,
    /// Weight decay (L2; decoupled for adamw).
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Also decay biases and batch-norm parameters.
    #[arg(long)]
    pub decay_all: bool,
    /// Label smoothing of the loss.
    #[arg(long)]
    pub label_smoothing: Option<f32>,
    /// Augment the training images (crops and flips).
    #[arg(long, conflicts_with = "no_augment")]
    pub augment: bool,
    /// Do not augment.
    #[arg(long)]
    pub no_augment: bool,
    /// Also average predictions over the mirror image at test time.
    #[arg(long)]
    pub tta: bool,
    /// Seed for initialisation, shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (default: all cores); results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write one JSON object per epoch to PATH, one per line (appended on --resume).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write DIR/checkpoint.safetensors after every epoch (model, optimizer state,
    /// epoch), atomically. Refuses a folder holding another run's checkpoint.
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
    /// Continue the run saved in DIR (same model, seed and batch size); with --save
    /// elsewhere, the continued run is saved there.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Let --save replace another run's checkpoint.
    #[arg(long)]
    pub overwrite: bool,
    /// At the end, draw loss and accuracy per epoch and the confusion matrix (SVG).
    #[arg(long, value_name = "PATH.svg")]
    pub plot: Option<PathBuf>,
    /// cpu, or wgpu: train on the GPU with the compute shaders of kernels/ (build with
    /// --features wgpu; Conv2d, Dense, ReLU, MaxPool2d and Flatten layers, i.e. --model
    /// seed or keras).
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "wgpu"])]
    pub device: String,
    /// Train as N data-parallel ranks would, in this one process: each batch cut into N
    /// shards whose gradients are added in order. Without batch norm, the weights equal an
    /// `mpirun -np N` run's bit for bit (built with --features mpi, the examples train
    /// across the ranks mpirun starts; see docs/scaling.md).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub shards: u64,
    /// Under mpirun: synchronised batch norm, each batch norm's statistics over the whole
    /// global batch (PyTorch's SyncBatchNorm; two small sums over the ranks per batch norm
    /// and step). Without it each rank normalises its own shard (DDP's default).
    #[arg(long)]
    pub sync_bn: bool,
}

impl TrainFlags {
    /// The recipe: the preset's, overridden by every flag given.
    pub fn recipe(&self) -> Result<Recipe, String> {
        let mut r = Recipe::preset(&self.model).map_err(|e| e.to_string())?;
        r.epochs = self.epochs.unwrap_or(r.epochs);
        r.batch_size = self.batch_size.unwrap_or(r.batch_size);
        r.lr = self.lr.unwrap_or(r.lr);
        r.momentum = self.momentum.unwrap_or(r.momentum);
        if let Some(o) = &self.optimizer {
            r.optimizer = o.clone();
        }
        if let Some(s) = &self.schedule {
            r.schedule = s.clone();
        }
        r.weight_decay = self.weight_decay.unwrap_or(r.weight_decay);
        r.decay_all |= self.decay_all;
        r.label_smoothing = self.label_smoothing.unwrap_or(r.label_smoothing);
        r.augment = (r.augment || self.augment) && !self.no_augment;
        r.tta |= self.tta;
        r.check().map_err(|e| e.to_string())?;
        Ok(r)
    }

    /// The run's configuration, after checking what it will write (the plot path) and
    /// setting the thread count.
    pub fn config(&self) -> Result<RunConfig, String> {
        if self.device == "wgpu" && !cfg!(feature = "wgpu") {
            return Err("--device wgpu needs the wgpu feature: \
                        cargo run --release --features wgpu --example … -- --device wgpu"
                .into());
        }
        match self.threads {
            Some(t) => ferroconv::set_threads(t).map_err(|e| format!("--threads: {e}"))?,
            // Every core, or under mpirun this rank's share of them.
            None => ferroconv::dist::share_cores(),
        }
        if let Some(p) = &self.plot {
            check_writable(p).map_err(|e| format!("--plot: {e}"))?;
        }
        let mut c = RunConfig::new(self.recipe()?, self.seed);
        c.save = self.save.clone().or_else(|| self.resume.clone());
        c.resume = self.resume.clone();
        c.overwrite = self.overwrite;
        c.json = self.json.clone();
        c.fine_tune = ferroconv::finetune::FineTune {
            pretrained: self.pretrained.clone(),
            fresh_head: self.fresh_head,
            freeze: match &self.freeze {
                Some(f) => ferroconv::finetune::Freeze::parse(f).map_err(|e| e.to_string())?,
                None => Default::default(),
            },
            head_lr: self.head_lr,
        };
        c.shards = self.shards as usize;
        c.sync_batch_norm = self.sync_bn;
        c.device = if self.device == "wgpu" {
            Device::Wgpu
        } else {
            Device::Cpu
        };
        Ok(c)
    }
}

/// An error unless a file can be created at `path` (it is created and removed again only
/// when it did not exist).
fn check_writable(path: &Path) -> Result<(), String> {
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// A one-line progress display on stderr, redrawn at most 5 times a second, only on a
/// terminal.
struct ProgressLine {
    on: bool,
    epoch: u64,
    start: Instant,
    last: Instant,
}

impl ProgressLine {
    fn update(&mut self, s: &ferroconv::train::StepReport) {
        if s.epoch != self.epoch {
            (self.epoch, self.start) = (s.epoch, Instant::now());
        }
        let total = s.epoch_images.max(1);
        if !self.on || (self.last.elapsed().as_millis() < 200 && s.images < total) {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64();
        let rate = s.images as f64 / secs.max(1e-9);
        let eta = (total.saturating_sub(s.images)) as f64 / rate.max(1e-9);
        let filled = 30 * s.images.min(total) / total;
        eprint!(
            "\r  epoch {} [{}{}] {}/{total} {rate:.0} img/s ETA {eta:.0}s loss {:.4} lr {:.2e} ",
            s.epoch,
            "#".repeat(filled),
            ".".repeat(30 - filled),
            s.images,
            s.mean_loss,
            s.lr
        );
        if s.images >= total {
            eprint!("\r{}\r", " ".repeat(110));
        }
    }
}

/// Runs the driver and prints what a person at a terminal wants to see; writes the plot.
pub fn train_and_report(
    flags: &TrainFlags,
    config: &RunConfig,
    train: &dyn Dataset,
    test: &dyn Dataset,
    data_line: &str,
) -> Result<RunReport, String> {
    let r = &config.recipe;
    let tty = std::io::stderr().is_terminal();
    let mut bar = ProgressLine {
        on: tty,
        epoch: 0,
        start: Instant::now(),
        last: Instant::now(),
    };
    let mut tag = String::new();
    let line_start = if tty { "\r\x1b[K" } else { "" };
    let mut on = |event: Event<'_>| match event {
        Event::Started {
            first_epoch,
            device,
            model,
        } => {
            print!("{}", model.summary());
            println!(
                "data: {data_line}; model {}, {} epochs, batch {}, {} lr {} ({}), label smoothing \
                 {}, augment {}, tta {}, seed {}, {} threads",
                r.model,
                r.epochs,
                r.batch_size,
                r.optimizer,
                r.lr,
                r.schedule,
                r.label_smoothing,
                r.augment,
                r.tta,
                config.seed,
                rayon::current_num_threads()
            );
            if first_epoch > 1 {
                println!("resumed at the end of epoch {}", first_epoch - 1);
            }
            println!("device: {device}");
            if device != "cpu" {
                tag = format!("  [{device}]");
            }
            println!(
                "{:>5} {:>10} {:>9} {:>8} {:>8} {:>8} {:>9}",
                "epoch", "train_loss", "train_acc", "test_acc", "seconds", "img/s", "lr"
            );
        }
        Event::Step(s) => bar.update(s),
        Event::Epoch(e) => {
            let s = &e.stats;
            println!(
                "{line_start}{:>5} {:>10.4} {:>8.2}% {:>7.2}% {:>8.2} {:>8.0} {:>9.2e}{tag}",
                e.epoch,
                s.train_loss,
                s.train_acc * 100.0,
                e.eval.accuracy * 100.0,
                s.seconds,
                s.images_per_sec,
                s.lr
            );
        }
    };
    // MPI under mpirun/srun with --features mpi, else one process; kept until the end.
    let comm = ferroconv::dist::from_env().map_err(|e| e.to_string())?;
    let report = ferroconv::driver::run_on(config, comm.as_ref(), train, test, &mut on)
        .map_err(|e| e.to_string())?;
    if let Some(eval) = report.last_eval() {
        println!("\nper-class test accuracy:");
        for (c, name) in train.classes().iter().enumerate() {
            println!("  {name:<10} {:>6.2}%", eval.class_accuracy(c) * 100.0);
        }
        println!("total wall time {:.1} s", report.wall_seconds);
        if let Some(path) = &flags.plot {
            let points: Vec<plot::EpochPoint> = report
                .epochs
                .iter()
                .map(|e| plot::EpochPoint {
                    epoch: e.epoch,
                    train_loss: e.stats.train_loss,
                    train_acc: e.stats.train_acc,
                    test_acc: e.eval.accuracy,
                })
                .collect();
            let names: Vec<&str> = train.classes().iter().map(String::as_str).collect();
            let svg = plot::render(&points, &eval.confusion, &names);
            std::fs::write(path, svg)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            println!("plot written to {}", path.display());
        }
    }
    Ok(report)
}
