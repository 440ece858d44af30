//! Kill-and-resume: a training run killed with SIGKILL mid-epoch and resumed from its
//! last checkpoint ends with the same bits as a run that never stopped (here also on
//! another thread count). Runs the `cifar10` example binary on the real data.

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn args(data: &Path, save: &Path, threads: &str) -> Vec<String> {
    let s = |x: &str| x.to_string();
    vec![
        s("--data"),
        data.display().to_string(),
        s("--limit-train"),
        s("6000"),
        s("--limit-test"),
        s("100"),
        s("--epochs"),
        s("3"),
        s("--seed"),
        s("5"),
        s("--lr"),
        s("0.01"),
        s("--augment"),
        s("--threads"),
        s(threads),
        s("--save"),
        save.display().to_string(),
    ]
}

#[test]
fn sigkill_mid_epoch_then_resume_is_bit_identical() {
    let Some(data) = data_dir() else { return };
    let bin = example_binary("cifar10");
    let (straight, killed) = (temp_dir("straight"), temp_dir("killed"));

    let status = Command::new(&bin)
        .args(args(&data, &straight, "2"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    // Start again, wait for the end-of-epoch-1 checkpoint, then kill during epoch 2.
    let ckpt = killed.join("checkpoint.safetensors");
    let mut child = Command::new(&bin)
        .args(args(&data, &killed, "1"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ckpt.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint after 120 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "run ended before its first checkpoint"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Kill a quarter of the way into epoch 2, judged by how long epoch 1 (with the start-up)
    // took: a fixed wait outlasted the whole epoch on a fast CPU (Zen 5 trains these 6000
    // images in well under 300 ms).
    let to_first_checkpoint = start.elapsed();
    std::thread::sleep(
        (to_first_checkpoint / 4).clamp(Duration::from_millis(5), Duration::from_millis(300)),
    );
    let finished_early = child.try_wait().unwrap().is_some();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !finished_early,
        "the run finished before it could be killed"
    );
    let meta = ferroconv::checkpoint::SafeTensors::read(&ckpt)
        .unwrap()
        .metadata;
    assert_eq!(
        meta["epoch"], "1",
        "killed during epoch 2, so the checkpoint is epoch 1's"
    );

    let mut resume = args(&data, &killed, "1");
    resume.extend(["--resume".to_string(), killed.display().to_string()]);
    let out = Command::new(&bin).args(&resume).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("resumed"));

    let a = std::fs::read(straight.join("checkpoint.safetensors")).unwrap();
    let b = std::fs::read(&ckpt).unwrap();
    assert!(
        a == b,
        "resumed run's final checkpoint differs from the uninterrupted run's"
    );
    std::fs::remove_dir_all(straight).unwrap();
    std::fs::remove_dir_all(killed).unwrap();
}
