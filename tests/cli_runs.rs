//! The `cifar10` example on a few real images: what it refuses before training, and
//! that a diverging run keeps the last good checkpoint.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

/// Runs `cifar10` on 64 training and 32 test images with `extra` flags; returns
/// (success, stdout, stderr).
fn run(data: &Path, extra: &[&str]) -> (bool, String, String) {
    let out = Command::new(example_binary("cifar10"))
        .args(["--data", data.to_str().unwrap()])
        .args(["--limit-train", "64", "--limit-test", "32", "--epochs", "1"])
        .args(["--batch-size", "16", "--threads", "1"])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn save_never_replaces_another_runs_checkpoint_unasked() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("cli-save");
    let save = dir.to_str().unwrap();
    let (ok, _, err) = run(&data, &["--save", save]);
    assert!(ok, "{err}");
    let ckpt = dir.join("checkpoint.safetensors");
    let first = std::fs::read(&ckpt).unwrap();
    let (ok, out, err) = run(&data, &["--save", save, "--seed", "5"]);
    assert!(!ok && err.contains("already holds a checkpoint"), "{err}");
    assert!(!out.contains("epoch"), "refused before training: {out}");
    assert_eq!(std::fs::read(&ckpt).unwrap(), first);
    let (ok, _, err) = run(&data, &["--save", save, "--seed", "5", "--overwrite"]);
    assert!(ok, "{err}");
    assert_ne!(std::fs::read(&ckpt).unwrap(), first);
    // Resuming a finished run says so instead of printing a header and nothing else.
    let (ok, _, err) = run(&data, &["--resume", save, "--seed", "5"]);
    assert!(
        !ok && err.contains("already finished its 1 epochs"),
        "{err}"
    );
    let (ok, out, err) = run(&data, &["--resume", save, "--seed", "5", "--epochs", "2"]);
    assert!(ok, "{err}");
    assert!(out.contains("resumed at the end of epoch 1"), "{out}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unusable_outputs_and_sizes_are_refused_before_training() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("cli-refuse");
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("sub");
    let cases: [(&[&str], &str); 5] = [
        (&["--plot", "/nonexistent-ferroconv/p.svg"], "--plot"),
        (&["--save", under_file.to_str().unwrap()], "save folder"),
        (
            &["--batch-size", "1000000"],
            "larger than the 64 training images",
        ),
        (&["--threads", "10000"], "10000 threads"),
        (&["--model", "resnet"], "now called \"fast\""),
    ];
    for (flags, needle) in cases {
        let (ok, out, err) = run(&data, flags);
        assert!(!ok, "{flags:?} accepted");
        assert!(err.contains(needle), "{flags:?}: {err}");
        assert!(
            !out.contains("train_loss"),
            "{flags:?} started training: {out}"
        );
    }
    // A limit beyond the data set's size is not an overflow: it takes everything there is.
    let out = Command::new(example_binary("cifar10"))
        .args([
            "--data",
            data.to_str().unwrap(),
            "--limit-train",
            "6004799503160662",
        ])
        .args([
            "--limit-test",
            "16",
            "--epochs",
            "1",
            "--batch-size",
            "1000000",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("larger than the 50000 training images"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_diverging_run_stops_and_keeps_the_last_good_checkpoint() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("cli-nan");
    let save = dir.to_str().unwrap();
    let (ok, _, err) = run(&data, &["--save", save, "--epochs", "1"]);
    assert!(ok, "{err}");
    let good = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    let (ok, _, err) = run(&data, &["--resume", save, "--epochs", "2", "--lr", "1e30"]);
    assert!(!ok, "a NaN run exited 0");
    assert!(
        err.contains("not finite") && err.contains("epoch 2, step"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.join("checkpoint.safetensors")).unwrap(),
        good,
        "the good checkpoint was replaced"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn evaluation_beside_or_after_training_reports_the_same() {
    // With one thread on a machine of several cores, each epoch's evaluation runs beside
    // the next epoch's training; with a thread per core it runs after the epoch.
    let Some(data) = data_dir() else { return };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        eprintln!("one core here: both runs evaluate after each epoch");
    }
    let table = |threads: &str| {
        let out = Command::new(example_binary("cifar10"))
            .args(["--data", data.to_str().unwrap()])
            .args(["--limit-train", "64", "--limit-test", "32", "--epochs", "3"])
            .args(["--batch-size", "16", "--threads", threads])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // epoch, train loss, train accuracy, test accuracy (not the times).
        let rows: Vec<String> = text
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|w| w.parse::<u64>().is_ok())
            })
            .filter(|l| l.contains('%'))
            .map(|l| l.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(rows.len(), 3, "{text}");
        rows
    };
    let threads = cores.clamp(2, 4).to_string();
    assert_eq!(table("1"), table(&threads));
}
