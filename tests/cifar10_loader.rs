//! The CIFAR-10 reader on small files the tests write: good ones and each kind of corrupt one.

use ferroconv::Error;
use ferroconv::data::{Batch, Cifar10, Dataset, RECORD_BYTES, Split, View, read_batch_file};
use std::path::{Path, PathBuf};

/// A fresh, empty folder under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("ferroconv-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `labels.len()` records; image `r` has every byte equal to `(r * 7 + i) % 256`.
fn records(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (r, &l) in labels.iter().enumerate() {
        out.push(l);
        out.extend((0..RECORD_BYTES - 1).map(|i| ((r * 7 + i) % 256) as u8));
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn reads_good_file_and_normalises() {
    let dir = TempDir::new("good");
    let path = write(&dir.0, "test_batch.bin", &records(&[3, 0, 9]));
    let (images, labels) = read_batch_file(&path).unwrap();
    assert_eq!(labels, vec![3, 0, 9]);
    assert_eq!(images.len(), 3 * 3072);
    assert_eq!(images[3072 + 5], 12);

    let set = Cifar10::load(&dir.0, Split::Test).unwrap();
    assert_eq!(set.len(), 3);
    let mut batch = Batch::default();
    set.fill_batch(&[2, 0], View::Plain, &mut batch).unwrap();
    let (x, l) = (&batch.images, &batch.labels);
    assert_eq!(x.shape(), &[2, 3, 32, 32]);
    assert_eq!(*l, vec![9, 3]);
    // image 2, byte 0 is 14: (14/255 − 0.5)/0.5
    assert_eq!(x.data()[0], (14.0f32 / 255.0 - 0.5) / 0.5);
    // byte 255 → 1, byte 0 → −1 (image 0 has 255 at i = 255 and 0 at i = 256)
    assert_eq!(x.data()[3072 + 255], 1.0);
    assert_eq!(x.data()[3072 + 256], -1.0);
    // Out of range: an error naming the index, and no panic.
    let err = set
        .fill_batch(&[0, 3], View::Plain, &mut batch)
        .unwrap_err();
    assert!(err.to_string().contains("image 3"), "{err}");
    assert!(set.image(3).is_none() && set.image(2).is_some());
}

#[test]
fn train_split_concatenates_five_files_in_order() {
    let dir = TempDir::new("train");
    for (i, label) in (1..=5).zip([1u8, 2, 3, 4, 5]) {
        write(
            &dir.0,
            &format!("data_batch_{i}.bin"),
            &records(&[label, label]),
        );
    }
    let set = Cifar10::load(&dir.0, Split::Train).unwrap();
    assert_eq!(set.labels(), &[1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
}

fn expect_error(result: ferroconv::Result<impl std::fmt::Debug>, needles: &[&str]) -> Error {
    let err = result.expect_err("corrupt input must be an error");
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} should mention {n:?}");
    }
    err
}

#[test]
fn missing_file_names_the_file() {
    let dir = TempDir::new("missing");
    for i in 1..=4 {
        write(&dir.0, &format!("data_batch_{i}.bin"), &records(&[0]));
    }
    let err = expect_error(Cifar10::load(&dir.0, Split::Train), &["data_batch_5.bin"]);
    assert!(matches!(err, Error::Io { .. }));
}

#[test]
fn truncated_file_names_file_and_record() {
    let dir = TempDir::new("truncated");
    let mut bytes = records(&[1, 2, 3]);
    bytes.truncate(2 * RECORD_BYTES + 100);
    let path = write(&dir.0, "test_batch.bin", &bytes);
    let err = expect_error(
        read_batch_file(&path),
        &["test_batch.bin", "record 2", "3073"],
    );
    assert!(matches!(err, Error::Format { .. }));
}

#[test]
fn size_not_multiple_of_record_is_an_error() {
    let dir = TempDir::new("size");
    let mut bytes = records(&[1]);
    bytes.extend_from_slice(&[0; 7]);
    let path = write(&dir.0, "x.bin", &bytes);
    expect_error(read_batch_file(&path), &["x.bin", "not a multiple"]);
}

#[test]
fn empty_file_is_an_error() {
    let dir = TempDir::new("empty");
    let path = write(&dir.0, "x.bin", &[]);
    expect_error(read_batch_file(&path), &["x.bin", "empty"]);
}

#[test]
fn label_above_nine_names_the_record() {
    let dir = TempDir::new("label");
    let path = write(&dir.0, "x.bin", &records(&[4, 10, 2]));
    expect_error(
        read_batch_file(&path),
        &["x.bin", "record 1", "label byte 10"],
    );
}

#[test]
fn from_raw_checks_sizes_and_labels() {
    assert!(Cifar10::from_raw(vec![0; 3072], vec![1]).is_ok());
    assert!(Cifar10::from_raw(vec![0; 3071], vec![1]).is_err());
    assert!(Cifar10::from_raw(vec![0; 3072], vec![11]).is_err());
}
