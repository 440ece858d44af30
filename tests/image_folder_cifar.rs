//! `data::ImageFolder` on CIFAR-10 records written as a class folder: as 32×32 PNG its
//! batches equal the binary loader's bit for bit; as 64×64 JPEG a small network trains on
//! it above chance.
//!
//! Needs the data: `CIFAR10_DIR` (see tests/common); without it these tests fail, unless
//! `FERROCONV_SKIP_DATA_TESTS=1` explicitly skips them.

mod common;

use ferroconv::data::{
    Augment, Batch, CLASSES, Cifar10, Dataset, ImageFolder, ImageFolderOptions, Normalize, Split,
    View, augment_key,
};
use ferroconv::layers::{Conv2d, Dense, Flatten, MaxPool2d, ReLU};
use ferroconv::models::Layers;
use ferroconv::optim::Sgd;
use ferroconv::train::{Plan, evaluate, train_epoch};
use ferroconv::{Sequential, SoftmaxCrossEntropy};
use image::ExtendedColorType;
use std::path::Path;

/// Record `r` of `data` as interleaved RGB, each pixel repeated `scale × scale` times.
fn interleaved(data: &Cifar10, r: usize, scale: usize) -> Vec<u8> {
    let planes = data.image(r).unwrap();
    let side = 32 * scale;
    let mut out = Vec::with_capacity(side * side * 3);
    for y in 0..side {
        for x in 0..side {
            let p = (y / scale) * 32 + x / scale;
            out.extend([planes[p], planes[1024 + p], planes[2048 + p]]);
        }
    }
    out
}

/// Writes the first `n` records as `dir/<class>/<record>.png` (32×32) or `.jpg` (64×64).
/// Returns, for each folder index (classes sorted by name, files by name), its record.
fn write_folder(dir: &Path, data: &Cifar10, n: usize, jpeg: bool) -> Vec<usize> {
    let mut sorted: Vec<&str> = CLASSES.to_vec();
    sorted.sort();
    let mut order = Vec::new();
    for class in &sorted {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for r in 0..n {
            if CLASSES[data.labels()[r] as usize] != *class {
                continue;
            }
            if jpeg {
                let file = std::fs::File::create(dir.join(class).join(format!("{r:05}.jpg")));
                let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(file.unwrap(), 90);
                enc.encode(&interleaved(data, r, 2), 64, 64, ExtendedColorType::Rgb8)
                    .unwrap();
            } else {
                let path = dir.join(class).join(format!("{r:05}.png"));
                image::save_buffer(
                    path,
                    &interleaved(data, r, 1),
                    32,
                    32,
                    ExtendedColorType::Rgb8,
                )
                .unwrap();
            }
            order.push(r);
        }
    }
    order
}

fn bits(batch: &Batch) -> Vec<u32> {
    batch.images.data().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn png_folder_batches_equal_the_binary_loaders_bit_for_bit() {
    let Some(dir) = common::data_dir() else {
        return;
    };
    let mut cifar = Cifar10::load(&dir, Split::Test).unwrap();
    cifar.truncate(300);
    let root = common::temp_dir("cifar-png");
    let order = write_folder(&root, &cifar, 300, false);
    let opts = ImageFolderOptions {
        size: 32,
        val_fraction: 0.0,
        normalize: Some(Normalize::half()),
        ..ImageFolderOptions::default()
    };
    let folder = ImageFolder::open(&root, &opts).unwrap().train;
    assert_eq!(folder.len(), 300);
    // CIFAR-10's names are already in alphabetical order, so labels map to themselves.
    assert_eq!(folder.classes(), cifar.classes());
    assert!(folder.skipped().is_empty(), "{:?}", folder.skipped());

    let standard = Augment::standard();
    let key = |k: usize| augment_key(11, 2, k as u64);
    let views = [
        View::Plain,
        View::Mirrored,
        View::Augmented {
            augment: &standard,
            key: &key,
        },
    ];
    let (mut a, mut b) = (Batch::default(), Batch::default());
    for view in views {
        // A shuffled batch of 64 and the rest, as a training epoch would ask.
        let mut idx: Vec<usize> = (0..300).map(|i| (i * 97) % 300).collect();
        for chunk in idx.chunks_mut(64) {
            folder.fill_batch(chunk, view, &mut a).unwrap();
            let records: Vec<usize> = chunk.iter().map(|&i| order[i]).collect();
            cifar.fill_batch(&records, view, &mut b).unwrap();
            assert_eq!(a.images.shape(), b.images.shape());
            assert_eq!(a.labels, b.labels);
            assert!(
                bits(&a) == bits(&b),
                "the folder's floats differ from the binary's"
            );
        }
        idx.clear();
    }
}

/// conv 3→16 → pool → conv 16→32 → pool → conv 32→32 → pool → dense, on 64×64 inputs.
fn small_net(seed: u64) -> Sequential {
    let layers: Layers = vec![
        Box::new(Conv2d::new(3, 16, 3).padding(1)),
        Box::new(ReLU::new()),
        Box::new(MaxPool2d::new(2, 2)),
        Box::new(Conv2d::new(16, 32, 3).padding(1)),
        Box::new(ReLU::new()),
        Box::new(MaxPool2d::new(2, 2)),
        Box::new(Conv2d::new(32, 32, 3).padding(1)),
        Box::new(ReLU::new()),
        Box::new(MaxPool2d::new(2, 2)),
        Box::new(Flatten::new()),
        Box::new(Dense::new(32 * 8 * 8, 10)),
    ];
    Sequential::new(&[3, 64, 64], layers, seed).unwrap()
}

#[test]
fn jpeg_folder_at_64_trains_above_chance() {
    let Some(dir) = common::data_dir() else {
        return;
    };
    let mut cifar = Cifar10::load(&dir, Split::Test).unwrap();
    cifar.truncate(1000);
    let root = common::temp_dir("cifar-jpeg");
    write_folder(&root, &cifar, 1000, true);
    let opts = ImageFolderOptions {
        size: 64,
        val_fraction: 0.2,
        seed: 5,
        ..ImageFolderOptions::default()
    };
    let splits = ImageFolder::open(&root, &opts).unwrap();
    assert_eq!((splits.train.len(), splits.val.len()), (800, 200));
    // Computed from the training images: CIFAR-10's channel means are near 0.47.
    let norm = splits.train.normalization();
    assert!(
        norm.mean.iter().all(|m| (0.4..0.55).contains(m)),
        "{norm:?}"
    );
    assert!(
        norm.std.iter().all(|s| (0.15..0.35).contains(s)),
        "{norm:?}"
    );

    let mut model = small_net(3);
    let mut loss = SoftmaxCrossEntropy::new();
    let mut opt = Sgd::new(0.02, 0.9);
    let plan = Plan {
        augment: Augment::photos(),
        ..Plan::constant(32, 3)
    };
    let mut last = None;
    for epoch in 1..=EPOCHS {
        let stats = train_epoch(
            &mut model,
            &mut loss,
            &mut opt,
            &splits.train,
            &plan,
            epoch,
            &mut |_| {},
        )
        .unwrap();
        last = Some(stats);
    }
    let eval = evaluate(&mut model, &splits.val, 100, false).unwrap();
    eprintln!(
        "last epoch {last:?}; held-out accuracy {:.3}",
        eval.accuracy
    );
    // Chance is 10 %.
    assert!(
        eval.accuracy > 0.2,
        "held-out accuracy {:.3}",
        eval.accuracy
    );
    assert!(splits.train.skipped().is_empty());
}

const EPOCHS: u64 = 6;
