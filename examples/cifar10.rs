//! Trains a CNN on CIFAR-10: by default the article's network with the article's recipe.
//!
//! `cargo run --release --example cifar10 -- --help`

use ferroconv::Sequential;
use ferroconv::data::{Augment, CLASSES, Cifar10, Split};
use ferroconv::optim::{Adam, DecayFilter, Optimizer, Schedule, Sgd};
use ferroconv::train::{Plan, evaluate, train_epoch};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[path = "support/download.rs"]
mod download;
#[path = "support/plot.rs"]
mod plot;

const HELP: &str = "\
Train a CNN on CIFAR-10. The default is the article's network and recipe
(conv 3→6 5×5, pool, conv 6→16 5×5, pool, dense 400→120→84→10; SGD lr 0.001, momentum 0.9,
batch 4, 10 epochs).

Usage: cargo run --release --example cifar10 -- [options]

Options:
  --model NAME         seed (default: the article's), keras (the TensorFlow tutorial CNN, Adam),
                       resnet (an airbench-style fast CIFAR-10 net). A model brings its recipe;
                       the flags below override it.
  --data DIR           CIFAR-10 binary folder (default: $CIFAR10_DIR, else
                       ./data/cifar-10-batches-bin; downloaded there when missing)
  --epochs N           epochs
  --batch-size N       mini-batch size
  --lr X               (peak) learning rate
  --momentum X         SGD momentum
  --optimizer NAME     sgd, nesterov, adam, adamw
  --schedule NAME      constant, step (×0.1 at 50% and 75%), cosine, onecycle
  --weight-decay X     weight decay (L2; decoupled for adamw)
  --decay-all          also decay biases and batch-norm parameters
  --label-smoothing X  label smoothing of the loss
  --augment            random crop (4-pixel pad) + horizontal flip
  --no-augment         no augmentation
  --tta                also average predictions over the mirror image at test time
  --seed N             seed for initialisation, shuffling and augmentation (default 0)
  --threads N          worker threads (default: all cores); results do not depend on it
  --limit-train N      train on the first N training images only
  --limit-test N       evaluate on the first N test images only
  --json PATH          write one JSON object per epoch, one per line (appended on --resume)
  --save DIR           write DIR/checkpoint.safetensors after every epoch (weights, optimizer
                       state, epoch), atomically
  --resume DIR         continue the run saved in DIR (same model, seed and batch size)
  --plot PATH.svg      at the end, draw loss and accuracy per epoch and the confusion matrix
  --device NAME        cpu (default) or wgpu: train on the GPU with the compute shaders of
                       kernels/ (build with --features wgpu; Conv2d, Dense, ReLU, MaxPool2d and
                       Flatten layers, i.e. --model seed or keras)
  --help               this text";

/// A model and everything its recipe sets.
#[derive(Clone, Debug)]
struct Recipe {
    model: String,
    epochs: u64,
    batch_size: usize,
    lr: f32,
    momentum: f32,
    optimizer: String,
    schedule: String,
    weight_decay: f32,
    decay_all: bool,
    label_smoothing: f32,
    augment: bool,
    tta: bool,
}

impl Recipe {
    fn preset(model: &str) -> Result<Recipe, String> {
        let base = Recipe {
            model: model.into(),
            epochs: 10,
            batch_size: 4,
            lr: 0.001,
            momentum: 0.9,
            optimizer: "sgd".into(),
            schedule: "constant".into(),
            weight_decay: 0.0,
            decay_all: true,
            label_smoothing: 0.0,
            augment: false,
            tta: false,
        };
        match model {
            "seed" => Ok(base),
            "keras" => Ok(Recipe {
                batch_size: 32,
                optimizer: "adam".into(),
                ..base
            }),
            "resnet" => Ok(Recipe {
                epochs: 12,
                batch_size: 512,
                lr: 0.4,
                optimizer: "nesterov".into(),
                schedule: "onecycle".into(),
                weight_decay: 5e-4,
                decay_all: false,
                label_smoothing: 0.2,
                augment: true,
                tta: true,
                ..base
            }),
            _ => Err(format!(
                "unknown --model {model:?}: expected seed, keras or resnet"
            )),
        }
    }

    fn build(&self, seed: u64) -> ferroconv::Result<Sequential> {
        match self.model.as_str() {
            "keras" => ferroconv::models::keras_net(seed),
            "resnet" => ferroconv::models::fast_net(seed),
            _ => ferroconv::models::seed_net(seed),
        }
    }

    fn optimizer(&self) -> Box<dyn Optimizer> {
        let filter = if self.decay_all {
            DecayFilter::All
        } else {
            DecayFilter::WeightsOnly
        };
        let wd = self.weight_decay;
        match self.optimizer.as_str() {
            "adam" => Box::new(Adam::new(self.lr).weight_decay(wd).decay_filter(filter)),
            "adamw" => Box::new(Adam::adamw(self.lr, wd).decay_filter(filter)),
            name => Box::new(
                Sgd::new(self.lr, self.momentum)
                    .weight_decay(wd)
                    .nesterov(name == "nesterov")
                    .decay_filter(filter),
            ),
        }
    }

    fn schedule(&self, total_steps: u64) -> Schedule {
        match self.schedule.as_str() {
            "step" => Schedule::Step {
                first: total_steps / 2,
                second: total_steps * 3 / 4,
                gamma: 0.1,
            },
            "cosine" => Schedule::Cosine {
                warmup: total_steps / 20,
            },
            "onecycle" => Schedule::OneCycle {
                warmup: total_steps / 5,
                div: 10.0,
                final_frac: 0.0,
            },
            _ => Schedule::Constant,
        }
    }
}

struct Args {
    recipe: Recipe,
    data: PathBuf,
    seed: u64,
    threads: Option<usize>,
    limit_train: Option<usize>,
    limit_test: Option<usize>,
    json: Option<PathBuf>,
    save: Option<PathBuf>,
    resume: Option<PathBuf>,
    plot: Option<PathBuf>,
    device: String,
}

fn parse_args() -> Result<Option<Args>, String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(None);
    }
    // The model comes first: its recipe is the base the other flags override.
    let model = argv
        .iter()
        .position(|a| a == "--model")
        .map(|i| argv.get(i + 1).cloned().ok_or("--model needs a value"))
        .transpose()?
        .unwrap_or_else(|| "seed".into());
    let mut r = Recipe::preset(&model)?;
    let env_dir = std::env::var_os("CIFAR10_DIR").map(PathBuf::from);
    let mut a = Args {
        recipe: r.clone(),
        data: env_dir.unwrap_or_else(|| PathBuf::from("data/cifar-10-batches-bin")),
        seed: 0,
        threads: None,
        limit_train: None,
        limit_test: None,
        json: None,
        save: None,
        resume: None,
        plot: None,
        device: "cpu".into(),
    };
    let mut it = argv.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => {
                value()?;
            }
            "--data" => a.data = PathBuf::from(value()?),
            "--epochs" => r.epochs = positive(&flag, &value()?)? as u64,
            "--batch-size" => r.batch_size = positive(&flag, &value()?)?,
            "--lr" => r.lr = num(&flag, &value()?)?,
            "--momentum" => r.momentum = num(&flag, &value()?)?,
            "--optimizer" => {
                r.optimizer = one_of(&flag, value()?, &["sgd", "nesterov", "adam", "adamw"])?
            }
            "--schedule" => {
                r.schedule = one_of(&flag, value()?, &["constant", "step", "cosine", "onecycle"])?
            }
            "--weight-decay" => r.weight_decay = num(&flag, &value()?)?,
            "--decay-all" => r.decay_all = true,
            "--label-smoothing" => r.label_smoothing = num(&flag, &value()?)?,
            "--augment" => r.augment = true,
            "--no-augment" => r.augment = false,
            "--tta" => r.tta = true,
            "--seed" => a.seed = num(&flag, &value()?)?,
            "--threads" => a.threads = Some(positive(&flag, &value()?)?),
            "--limit-train" => a.limit_train = Some(positive(&flag, &value()?)?),
            "--limit-test" => a.limit_test = Some(positive(&flag, &value()?)?),
            "--json" => a.json = Some(PathBuf::from(value()?)),
            "--save" => a.save = Some(PathBuf::from(value()?)),
            "--resume" => a.resume = Some(PathBuf::from(value()?)),
            "--plot" => a.plot = Some(PathBuf::from(value()?)),
            "--device" => a.device = one_of(&flag, value()?, &["cpu", "wgpu"])?,
            _ => return Err(format!("unknown option {flag:?} (see --help)")),
        }
    }
    if !(r.lr.is_finite() && r.lr > 0.0) {
        return Err(format!("--lr must be a positive number, got {}", r.lr));
    }
    if !(0.0..1.0).contains(&r.momentum) {
        return Err(format!("--momentum must be in [0, 1), got {}", r.momentum));
    }
    if !(0.0..1.0).contains(&r.label_smoothing) {
        return Err(format!(
            "--label-smoothing must be in [0, 1), got {}",
            r.label_smoothing
        ));
    }
    if !(r.weight_decay.is_finite() && r.weight_decay >= 0.0) {
        return Err(format!(
            "--weight-decay must be ≥ 0, got {}",
            r.weight_decay
        ));
    }
    if a.device == "wgpu" && !cfg!(feature = "wgpu") {
        return Err("--device wgpu needs the wgpu feature: \
                    cargo run --release --features wgpu --example cifar10 -- --device wgpu"
            .into());
    }
    a.recipe = r;
    Ok(Some(a))
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag}: {v:?} is not a valid number"))
}

fn positive(flag: &str, v: &str) -> Result<usize, String> {
    match num::<usize>(flag, v)? {
        0 => Err(format!("{flag} must be at least 1")),
        n => Ok(n),
    }
}

fn one_of(flag: &str, v: String, allowed: &[&str]) -> Result<String, String> {
    if allowed.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(format!(
            "{flag}: {v:?} is not one of {}",
            allowed.join(", ")
        ))
    }
}

/// Makes sure the data is there: downloads it into the data folder when it is not.
fn ensure_data(dir: &std::path::Path) -> Result<(), String> {
    if download::has_cifar10(dir) {
        return Ok(());
    }
    eprintln!(
        "CIFAR-10 not found in {}; downloading {} ...",
        dir.display(),
        download::CIFAR10_URL
    );
    let mut last = 0;
    let mut progress = |done: u64, total: Option<u64>| {
        if done >= last + (16 << 20) || Some(done) == total {
            last = done;
            match total {
                Some(t) => eprint!("\r  {} / {} MiB", done >> 20, t >> 20),
                None => eprint!("\r  {} MiB", done >> 20),
            }
        }
    };
    let url = download::CIFAR10_URL;
    match download::download_cifar10(url, download::CIFAR10_MD5, dir, &mut progress) {
        Ok(()) => {
            eprintln!("\n  unpacked into {}", dir.display());
            Ok(())
        }
        Err(e) => Err(format!("{e}\n{}", download::offline_help(dir))),
    }
}

/// A one-line progress display on stderr, redrawn at most 5 times a second, only on a terminal.
struct ProgressLine {
    on: bool,
    total: usize,
    start: Instant,
    last: Instant,
}

impl ProgressLine {
    fn new(total: usize) -> Self {
        let now = Instant::now();
        ProgressLine {
            on: std::io::stderr().is_terminal(),
            total,
            start: now,
            last: now,
        }
    }

    fn update(&mut self, epoch: u64, done: usize, loss: f64, lr: f32) {
        if !self.on || (self.last.elapsed().as_millis() < 200 && done < self.total) {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64();
        let rate = done as f64 / secs.max(1e-9);
        let eta = (self.total - done) as f64 / rate.max(1e-9);
        let filled = 30 * done / self.total.max(1);
        eprint!(
            "\r  epoch {epoch} [{}{}] {done}/{} {rate:.0} img/s ETA {eta:.0}s loss {loss:.4} lr {lr:.2e} ",
            "#".repeat(filled),
            ".".repeat(30 - filled),
            self.total
        );
        if done >= self.total {
            eprint!("\r{}\r", " ".repeat(110));
        }
    }
}

/// File name of the checkpoint inside a `--save` folder.
const CHECKPOINT: &str = "checkpoint.safetensors";

/// What a checkpoint records about the run, to resume it and to check it is the same run.
fn run_metadata(args: &Args, epoch: u64) -> std::collections::BTreeMap<String, String> {
    let r = &args.recipe;
    [
        ("format", "ferroconv-checkpoint-1".to_string()),
        ("model", r.model.clone()),
        ("seed", args.seed.to_string()),
        ("batch_size", r.batch_size.to_string()),
        ("epoch", epoch.to_string()),
        ("epochs", r.epochs.to_string()),
        ("optimizer", r.optimizer.clone()),
        ("lr", r.lr.to_string()),
        ("schedule", r.schedule.clone()),
        (
            "limit_train",
            args.limit_train.map_or("all".into(), |n| n.to_string()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Loads `dir`'s checkpoint into model and optimizer; returns the epoch it finished.
fn resume(
    dir: &std::path::Path,
    args: &Args,
    model: &mut Sequential,
    opt: &mut dyn Optimizer,
) -> Result<u64, String> {
    let path = dir.join(CHECKPOINT);
    let meta =
        ferroconv::checkpoint::load_training(&path, model, opt).map_err(|e| e.to_string())?;
    let want = run_metadata(args, 0);
    for key in ["model", "seed", "batch_size", "optimizer", "limit_train"] {
        if meta.get(key) != want.get(key) {
            return Err(format!(
                "{}: saved with {key} = {}, this run has {}; resume with the same settings",
                path.display(),
                meta.get(key).map_or("(none)", |s| s.as_str()),
                want[key]
            ));
        }
    }
    let epoch = meta
        .get("epoch")
        .and_then(|e| e.parse().ok())
        .ok_or_else(|| format!("{}: no epoch in the checkpoint metadata", path.display()))?;
    println!("resumed {} at the end of epoch {epoch}", path.display());
    Ok(epoch)
}

/// Where the steps run: the CPU layers, or their mirror on a GPU.
enum Engine {
    Cpu(ferroconv::SoftmaxCrossEntropy),
    #[cfg(feature = "wgpu")]
    Gpu(Box<ferroconv::gpu::GpuNet>),
}

impl Engine {
    fn new(args: &Args, model: &mut Sequential, opt: &mut dyn Optimizer) -> Result<Self, String> {
        let smoothing = args.recipe.label_smoothing;
        if args.device == "wgpu" {
            #[cfg(feature = "wgpu")]
            {
                let gpu = ferroconv::gpu::Gpu::new().map_err(|e| e.to_string())?;
                let net = ferroconv::gpu::GpuNet::new(gpu, model, opt, smoothing)
                    .map_err(|e| e.to_string())?;
                return Ok(Engine::Gpu(Box::new(net)));
            }
        }
        let _ = (model, opt);
        Ok(Engine::Cpu(
            ferroconv::SoftmaxCrossEntropy::with_label_smoothing(smoothing),
        ))
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
        (data, plan, epoch): (&Cifar10, &Plan, u64),
        progress: ferroconv::train::Progress<'_>,
    ) -> ferroconv::Result<ferroconv::train::EpochStats> {
        match self {
            Engine::Cpu(loss) => train_epoch(model, loss, opt, data, plan, epoch, progress),
            #[cfg(feature = "wgpu")]
            Engine::Gpu(net) => ferroconv::gpu::train_epoch(net, opt, data, plan, epoch, progress),
        }
    }

    fn evaluate(
        &mut self,
        model: &mut Sequential,
        data: &Cifar10,
        tta: bool,
    ) -> ferroconv::Result<ferroconv::train::Evaluation> {
        match self {
            Engine::Cpu(_) => evaluate(model, data, 500, tta),
            #[cfg(feature = "wgpu")]
            Engine::Gpu(net) => ferroconv::gpu::evaluate(net, data, 500, tta),
        }
    }

    /// Brings the model and optimizer state on the host up to date (for a checkpoint).
    fn sync(&mut self, model: &mut Sequential, opt: &mut dyn Optimizer) -> ferroconv::Result<()> {
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

fn run(args: Args) -> Result<(), String> {
    if let Some(t) = args.threads {
        ferroconv::set_threads(t).map_err(|e| e.to_string())?;
    }
    ensure_data(&args.data)?;
    let mut train = Cifar10::load(&args.data, Split::Train).map_err(|e| e.to_string())?;
    let mut test = Cifar10::load(&args.data, Split::Test).map_err(|e| e.to_string())?;
    if let Some(n) = args.limit_train {
        train.truncate(n);
    }
    if let Some(n) = args.limit_test {
        test.truncate(n);
    }
    let r = &args.recipe;
    let mut model = r.build(args.seed).map_err(|e| e.to_string())?;
    let mut opt = r.optimizer();
    let steps_per_epoch = train.len().div_ceil(r.batch_size) as u64;
    let plan = Plan {
        batch_size: r.batch_size,
        seed: args.seed,
        lr: r.lr,
        schedule: r.schedule(steps_per_epoch * r.epochs),
        total_steps: steps_per_epoch * r.epochs,
        augment: if r.augment {
            Augment::standard()
        } else {
            Augment::default()
        },
    };
    print!("{}", model.summary());
    println!(
        "data: {} ({} train, {} test); model {}, {} epochs, batch {}, {} lr {} ({}), \
         label smoothing {}, augment {}, tta {}, seed {}, {} threads",
        args.data.display(),
        train.len(),
        test.len(),
        r.model,
        r.epochs,
        r.batch_size,
        opt.describe(),
        r.lr,
        plan.schedule.name(),
        r.label_smoothing,
        r.augment,
        r.tta,
        args.seed,
        rayon::current_num_threads()
    );
    let first_epoch = match &args.resume {
        Some(dir) => resume(dir, &args, &mut model, opt.as_mut())? + 1,
        None => 1,
    };
    let mut json = match &args.json {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(args.resume.is_some())
                .truncate(args.resume.is_none())
                .open(p)
                .map_err(|e| format!("cannot open {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let mut engine = Engine::new(&args, &mut model, opt.as_mut())?;
    println!("device: {}", engine.name());
    let device_tag = match &engine {
        Engine::Cpu(_) => String::new(),
        #[cfg(feature = "wgpu")]
        Engine::Gpu(_) => format!("  [{}]", engine.name()),
    };
    println!(
        "{:>5} {:>10} {:>9} {:>8} {:>8} {:>8} {:>9}",
        "epoch", "train_loss", "train_acc", "test_acc", "seconds", "img/s", "lr"
    );
    let run_start = Instant::now();
    let mut last_eval = None;
    let mut points = Vec::new();
    if let Some(dir) = &args.save {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // On the CPU, each epoch's evaluation runs on its own thread, on a copy of the weights
    // taken at the end of the epoch, while the next epoch trains: at small batches training
    // keeps one core busy and the other free. Results and their order are the same.
    let mut snapshot = match engine {
        Engine::Cpu(_) => Some(r.build(args.seed).map_err(|e| e.to_string())?),
        #[cfg(feature = "wgpu")]
        Engine::Gpu(_) => None,
    };
    let eval_pool = match snapshot {
        Some(_) => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .map_err(|e| format!("cannot start the evaluation thread: {e}"))?,
        ),
        None => None,
    };
    let engine_name = engine.name();
    let line_start = if std::io::stderr().is_terminal() {
        "\r\x1b[K" // clear the progress line first
    } else {
        ""
    };
    let report = |epoch: u64,
                  s: &ferroconv::train::EpochStats,
                  eval: &ferroconv::train::Evaluation,
                  json: &mut Option<std::fs::File>|
     -> Result<(), String> {
        println!(
            "{line_start}{epoch:>5} {:>10.4} {:>8.2}% {:>7.2}% {:>8.2} {:>8.0} {:>9.2e}{device_tag}",
            s.train_loss,
            s.train_acc * 100.0,
            eval.accuracy * 100.0,
            s.seconds,
            s.images_per_sec,
            s.lr
        );
        if let Some(f) = json.as_mut() {
            writeln!(
                f,
                "{{\"epoch\":{epoch},\"train_loss\":{},\"train_acc\":{},\"test_acc\":{},\"seconds\":{},\"images_per_sec\":{},\"lr\":{},\"wall_seconds\":{},\"device\":{:?}}}",
                s.train_loss,
                s.train_acc,
                eval.accuracy,
                s.seconds,
                s.images_per_sec,
                s.lr,
                run_start.elapsed().as_secs_f64(),
                engine_name
            )
            .and_then(|_| f.flush())
            .map_err(|e| format!("cannot write --json file: {e}"))?;
        }
        Ok(())
    };
    type Done = (
        u64,
        ferroconv::train::EpochStats,
        ferroconv::train::Evaluation,
    );
    std::thread::scope(|scope| -> Result<(), String> {
        let mut pending: Option<std::thread::ScopedJoinHandle<'_, _>> = None;
        let mut finish = |done: Done| {
            let (epoch, s, eval) = done;
            points.push(plot::EpochPoint {
                epoch,
                train_loss: s.train_loss,
                train_acc: s.train_acc,
                test_acc: eval.accuracy,
            });
            last_eval = Some(eval);
        };
        for epoch in first_epoch..=r.epochs {
            let mut bar = ProgressLine::new(train.len());
            let mut progress = |done, loss, lr| bar.update(epoch, done, loss, lr);
            let s = engine
                .train_epoch(
                    &mut model,
                    opt.as_mut(),
                    (&train, &plan, epoch),
                    &mut progress,
                )
                .map_err(|e| e.to_string())?;
            if let Some(dir) = &args.save {
                let meta = run_metadata(&args, epoch);
                let path = dir.join(CHECKPOINT);
                engine
                    .sync(&mut model, opt.as_mut())
                    .map_err(|e| e.to_string())?;
                ferroconv::checkpoint::save_training(&path, &mut model, opt.as_mut(), meta)
                    .map_err(|e| e.to_string())?;
            }
            if let Some(h) = pending.take() {
                let (done, snap, file) = h.join().expect("evaluation thread panicked")?;
                (snapshot, json) = (Some(snap), file);
                finish(done);
            }
            if let Some(mut snap) = snapshot.take() {
                snap.copy_state_from(&mut model)
                    .map_err(|e| e.to_string())?;
                let (test, tta, report) = (&test, r.tta, &report);
                let mut file = json.take();
                let pool = eval_pool.as_ref().expect("built with the snapshot");
                pending = Some(scope.spawn(move || -> Result<_, String> {
                    // One thread: the other core(s) keep training.
                    let eval = pool
                        .install(|| evaluate(&mut snap, test, 500, tta))
                        .map_err(|e| e.to_string())?;
                    report(epoch, &s, &eval, &mut file)?;
                    Ok(((epoch, s, eval), snap, file))
                }));
            } else {
                let eval = engine
                    .evaluate(&mut model, &test, r.tta)
                    .map_err(|e| e.to_string())?;
                report(epoch, &s, &eval, &mut json)?;
                finish((epoch, s, eval));
            }
        }
        if let Some(h) = pending.take() {
            let (done, _, _) = h.join().expect("evaluation thread panicked")?;
            finish(done);
        }
        Ok(())
    })?;
    if let Some(eval) = last_eval {
        println!("\nper-class test accuracy:");
        for (c, name) in CLASSES.iter().enumerate() {
            println!("  {name:<10} {:>6.2}%", eval.class_accuracy(c) * 100.0);
        }
        println!("total wall time {:.1} s", run_start.elapsed().as_secs_f64());
        if let Some(path) = &args.plot {
            let svg = plot::render(&points, &eval.confusion, &CLASSES);
            std::fs::write(path, svg)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            println!("plot written to {}", path.display());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse_args() {
        Ok(None) => {
            println!("{HELP}");
            ExitCode::SUCCESS
        }
        Ok(Some(args)) => match run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
