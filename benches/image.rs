//! Image-folder measurements (feature `image`): `cargo bench --features image --bench image
//! -- MODE ...`. The figures in docs/data.md come from these modes.
//!
//! - `decode [N]`: one thread decodes N (default 200) synthetic 500×375 JPEGs and prepares
//!   each for evaluation at 224 (`Resize(256)` then `CenterCrop(224)`) and at 64
//!   (`Resize(64)` then `CenterCrop(64)`); then the training view (random-resized crop and
//!   flip) of the same images from cached bases. Prints images/s on one core. The JPEGs are CIFAR-10 images
//!   (`CIFAR10_DIR`) upscaled with a bilinear filter, with ±8 of noise for texture,
//!   encoded at quality 90 by the `image` crate; their mean size is printed.
//! - `make-folder DIR FORMAT N [SPLIT]`: writes the first N CIFAR-10 records of SPLIT
//!   (`train`, the default, or `test`) as `DIR/<class>/<record>.png` (FORMAT `png32`: 32×32,
//!   lossless) or `.jpg` (`jpegS`, e.g. `jpeg64` or `jpeg96`: each pixel repeated to S×S,
//!   quality 90).
//! - `epoch DIR SIZE CACHE_MIB [EPOCHS]`: opens DIR at SIZE (normalisation given, so no
//!   statistics pass) and runs EPOCHS (default 2) epochs of batches of 64 through
//!   `train::for_each_batch` with `Augment::photos`, doing nothing with them; prints
//!   images/s per epoch and the cache's bytes. Run it under `/usr/bin/time -v` for the
//!   peak RSS.
//! - `train DIR [EPOCHS]`: the article's network (`models::seed_net`), batch 64, SGD,
//!   pad-and-crop and flip, EPOCHS (default 2) epochs on the first N CIFAR-10 training
//!   records as the binary `Cifar10` and as the 32×32 PNG folder DIR of the same N images
//!   (made by `make-folder`), alternating; prints training images/s per epoch, and images
//!   per CPU second of the whole process (the loader's cost, which wall rates on a shared
//!   machine hide in noise).
//! - `fill DIR`: the CPU cost of assembling augmented batches (pad-and-crop and flip, batch
//!   64, one thread) from the 32×32 PNG folder DIR with every base cached, against the
//!   binary `Cifar10` on as many images, and with no cache (decoding every PNG):
//!   microseconds of CPU per image, median of 5 passes.
//!   Against a training step's cost per image this is the loader's share of the CPU.

use ferroconv::data::{
    Augment, Batch, CLASSES, Cifar10, Dataset, DecodeLimits, ImageFolder, ImageFolderOptions,
    Normalize, Split, View, augment_key, load_eval_image,
};
use ferroconv::optim::Sgd;
use ferroconv::train::{Plan, for_each_batch, train_epoch};
use image::ExtendedColorType;
use std::path::Path;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    let num = |i: usize, default: usize| arg(i).map_or(default, |s| s.parse().expect("a number"));
    match arg(0) {
        Some("decode") | None => decode(num(1, 200)),
        Some("make-folder") => make_folder(
            Path::new(arg(1).expect("DIR")),
            arg(2).expect("FORMAT"),
            num(3, 50_000),
            match arg(4) {
                None | Some("train") => Split::Train,
                Some("test") => Split::Test,
                Some(other) => panic!("unknown split {other}: train or test"),
            },
        ),
        Some("epoch") => epoch(
            Path::new(arg(1).expect("DIR")),
            num(2, 32),
            num(3, 1024),
            num(4, 2) as u64,
        ),
        Some("train") => train(Path::new(arg(1).expect("DIR")), num(2, 2) as u64),
        Some("fill") => fill(Path::new(arg(1).expect("DIR"))),
        Some(other) => panic!("unknown mode {other}: decode, make-folder, epoch or train"),
    }
}

fn cifar(split: Split) -> Cifar10 {
    let dir = std::env::var_os("CIFAR10_DIR").expect("set CIFAR10_DIR to the CIFAR-10 folder");
    Cifar10::load(Path::new(&dir), split).unwrap()
}

/// Record `r` as interleaved RGB, `side × side` (nearest-neighbour upscaling).
fn interleaved(data: &Cifar10, r: usize, side: usize) -> Vec<u8> {
    let planes = data.image(r).unwrap();
    let mut out = Vec::with_capacity(side * side * 3);
    for y in 0..side {
        for x in 0..side {
            let p = (y * 32 / side) * 32 + x * 32 / side;
            out.extend([planes[p], planes[1024 + p], planes[2048 + p]]);
        }
    }
    out
}

/// CPU seconds this thread has run (user + system, from `/proc/thread-self/stat`, in
/// clock ticks of 1/100 s): on a shared machine, a per-core rate is images per CPU second.
fn thread_cpu_seconds() -> f64 {
    cpu_seconds("/proc/thread-self/stat")
}

/// CPU seconds of `/proc/<...>/stat`'s thread or process.
fn cpu_seconds(stat_file: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_file).expect("Linux /proc");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn write_jpeg(path: &Path, rgb: &[u8], w: u32, h: u32) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    image::codecs::jpeg::JpegEncoder::new_with_quality(file, 90)
        .encode(rgb, w, h, ExtendedColorType::Rgb8)
        .unwrap();
}

fn decode(n: usize) {
    let data = cifar(Split::Test);
    let dir = std::env::temp_dir().join("ferroconv-bench-jpeg");
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    let mut files = Vec::new();
    let mut noise = 0x2545_F491_4F6C_DD1Du64;
    for r in 0..n {
        let path = dir.join("photos").join(format!("{r:04}.jpg"));
        if !path.exists() {
            let small = image::RgbImage::from_raw(32, 32, interleaved(&data, r, 32)).unwrap();
            let mut big =
                image::imageops::resize(&small, 500, 375, image::imageops::FilterType::Triangle);
            for v in big.iter_mut() {
                noise ^= noise << 13;
                noise ^= noise >> 7;
                noise ^= noise << 17;
                *v = (i32::from(*v) + (noise % 17) as i32 - 8).clamp(0, 255) as u8;
            }
            write_jpeg(&path, big.as_raw(), 500, 375);
        }
        files.push(path);
    }
    let bytes: u64 = files.iter().map(|f| f.metadata().unwrap().len()).sum();
    println!(
        "{n} JPEGs of 500×375, mean {:.1} KB",
        bytes as f64 / n as f64 / 1e3
    );
    let limits = DecodeLimits::default();
    let time = |what: &str, f: &dyn Fn(&Path)| {
        for f_ in &files {
            f(f_); // warm the page cache
        }
        let (mut rates, mut cpu_rates) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let (start, cpu) = (Instant::now(), thread_cpu_seconds());
            for path in &files {
                f(path);
            }
            rates.push(n as f64 / start.elapsed().as_secs_f64());
            cpu_rates.push(n as f64 / (thread_cpu_seconds() - cpu));
        }
        rates.sort_by(f64::total_cmp);
        cpu_rates.sort_by(f64::total_cmp);
        println!(
            "{what}: {:.0} images per CPU second ({:.0}–{:.0}); wall {:.0} images/s \
             (median of 3, one thread)",
            cpu_rates[1], cpu_rates[0], cpu_rates[2], rates[1]
        );
    };
    time("decode only", &|p| {
        std::hint::black_box(ferroconv::data::decode_image(p, &limits).unwrap());
    });
    time("decode + Resize(256) + CenterCrop(224)", &|p| {
        std::hint::black_box(load_eval_image(p, 224, 0.875, &limits).unwrap());
    });
    time("decode + Resize(64) + CenterCrop(64)", &|p| {
        std::hint::black_box(load_eval_image(p, 64, 1.0, &limits).unwrap());
    });
    // The training view from cached bases: random-resized crop, resize, flip, normalise.
    for size in [224, 64] {
        let opts = ImageFolderOptions {
            size,
            val_fraction: 0.0,
            normalize: Some(Normalize::imagenet()),
            threads: 1,
            ..ImageFolderOptions::default()
        };
        let set = ImageFolder::open(&dir, &opts).unwrap().train;
        let all: Vec<usize> = (0..set.len()).collect();
        let mut batch = Batch::default();
        set.fill_batch(&all, View::Plain, &mut batch).unwrap(); // fills the cache
        let augment = Augment::photos();
        let key = |k: usize| augment_key(1, 1, k as u64);
        let (start, cpu) = (Instant::now(), thread_cpu_seconds());
        for _ in 0..5 {
            let view = View::Augmented {
                augment: &augment,
                key: &key,
            };
            set.fill_batch(&all, view, &mut batch).unwrap();
        }
        println!(
            "training view at {size} from cached bases: {:.0} images per CPU second; \
             wall {:.0} images/s (one thread)",
            5.0 * n as f64 / (thread_cpu_seconds() - cpu),
            5.0 * n as f64 / start.elapsed().as_secs_f64()
        );
    }
}

fn make_folder(dir: &Path, format: &str, n: usize, split: Split) {
    let data = cifar(split);
    let jpeg_side = format.strip_prefix("jpeg").map(|s| {
        s.parse::<usize>()
            .expect("jpegS with a side S, e.g. jpeg64")
    });
    let start = Instant::now();
    for class in CLASSES {
        std::fs::create_dir_all(dir.join(class)).unwrap();
    }
    for r in 0..n.min(data.len()) {
        let class = dir.join(CLASSES[data.labels()[r] as usize]);
        match (format, jpeg_side) {
            ("png32", _) => image::save_buffer(
                class.join(format!("{r:05}.png")),
                &interleaved(&data, r, 32),
                32,
                32,
                ExtendedColorType::Rgb8,
            )
            .unwrap(),
            (_, Some(side)) => write_jpeg(
                &class.join(format!("{r:05}.jpg")),
                &interleaved(&data, r, side),
                side as u32,
                side as u32,
            ),
            (other, None) => panic!("unknown format {other}: png32 or jpegS (e.g. jpeg64)"),
        }
    }
    println!(
        "wrote {} images to {} in {:.1} s",
        n.min(data.len()),
        dir.display(),
        start.elapsed().as_secs_f64()
    );
}

fn epoch(dir: &Path, size: usize, cache_mib: usize, epochs: u64) {
    let opts = ImageFolderOptions {
        size,
        val_fraction: 0.0,
        normalize: Some(Normalize::half()),
        cache_bytes: cache_mib << 20,
        ..ImageFolderOptions::default()
    };
    let set = ImageFolder::open(dir, &opts).unwrap().train;
    let plan = Plan {
        augment: Augment::photos(),
        ..Plan::constant(64, 0)
    };
    for e in 1..=epochs {
        let start = Instant::now();
        let mut seen = 0;
        for_each_batch(&set, &plan, e, &mut |b| {
            seen += b.labels.len();
            Ok(())
        })
        .unwrap();
        println!(
            "epoch {e}: {seen} images at {size}, {:.0} images/s, cache {} MiB, {} skipped",
            seen as f64 / start.elapsed().as_secs_f64(),
            set.cached_bytes() >> 20,
            set.skipped().len()
        );
    }
}

fn fill(dir: &Path) {
    let opts = ImageFolderOptions {
        size: 32,
        val_fraction: 0.0,
        normalize: Some(Normalize::half()),
        threads: 1,
        ..ImageFolderOptions::default()
    };
    let folder = ImageFolder::open(dir, &opts).unwrap().train;
    let mut binary = cifar(Split::Train);
    binary.truncate(folder.len());
    let n = folder.len();
    let order: Vec<usize> = (0..n).collect();
    let mut batch = Batch::default();
    for chunk in order.chunks(64) {
        folder.fill_batch(chunk, View::Plain, &mut batch).unwrap(); // fills the cache
    }
    let augment = Augment::standard();
    let key = |k: usize| augment_key(1, 1, k as u64);
    let uncached = ImageFolder::open(
        dir,
        &ImageFolderOptions {
            cache_bytes: 0,
            ..opts
        },
    )
    .unwrap()
    .train;
    let sources: [(&str, &dyn Dataset); 3] = [
        ("binary", &binary),
        ("png folder, cached", &folder),
        ("png folder, decoding every image", &uncached),
    ];
    for (name, data) in sources {
        let mut per_image = Vec::new();
        for _ in 0..5 {
            let cpu = thread_cpu_seconds();
            for chunk in order.chunks(64) {
                let view = View::Augmented {
                    augment: &augment,
                    key: &key,
                };
                data.fill_batch(chunk, view, &mut batch).unwrap();
            }
            per_image.push((thread_cpu_seconds() - cpu) / n as f64 * 1e6);
        }
        per_image.sort_by(f64::total_cmp);
        println!(
            "{name}: {:.2} µs of CPU per augmented image (median of 5; {:.2}–{:.2}), {n} images",
            per_image[2], per_image[0], per_image[4]
        );
    }
}

fn train(dir: &Path, epochs: u64) {
    let opts = ImageFolderOptions {
        size: 32,
        val_fraction: 0.0,
        normalize: Some(Normalize::half()),
        ..ImageFolderOptions::default()
    };
    let folder = ImageFolder::open(dir, &opts).unwrap().train;
    let mut binary = cifar(Split::Train);
    binary.truncate(folder.len());
    let plan = Plan {
        augment: Augment::standard(),
        ..Plan::constant(64, 0)
    };
    let sources: [(&str, &dyn Dataset); 2] = [("binary", &binary), ("png folder", &folder)];
    let mut models: Vec<_> = (0..2)
        .map(|_| {
            (
                ferroconv::models::seed_net(0).unwrap(),
                Sgd::new(0.01, 0.9),
                ferroconv::SoftmaxCrossEntropy::new(),
            )
        })
        .collect();
    for e in 1..=epochs {
        for ((name, data), (model, opt, loss)) in sources.iter().zip(&mut models) {
            let cpu = cpu_seconds("/proc/self/stat");
            let stats = train_epoch(model, loss, opt, *data, &plan, e, &mut |_| {}).unwrap();
            let cpu = cpu_seconds("/proc/self/stat") - cpu;
            println!(
                "epoch {e} {name}: {} images, {:.0} images/s, {:.0} images per CPU second \
                 (all threads), loss {:.4}",
                data.len(),
                stats.images_per_sec,
                data.len() as f64 / cpu,
                stats.train_loss
            );
        }
    }
}
