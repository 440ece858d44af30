//! Data-parallel training on MPI: the `cifar10` example under `mpirun -np 2` on a few
//! hundred real images. Needs `mpirun` (Open MPI: `apt-get install openmpi-bin
//! libopenmpi-dev libclang-dev`); run with `cargo test --release --features mpi --test mpi`.
//!
//! What it checks: the loss falls; two ranks are bit-identical run to run and whatever
//! their thread count; two ranks equal one process training the same two shards
//! (`--shards 2`) bit for bit (a net without batch norm); a killed rank and a stopped
//! (hung) rank stop the job within seconds; a checkpoint resumes on another number of
//! ranks; ranks with different settings refuse to train; synchronised batch norm on two
//! ranks matches one process training the whole batch.
#![cfg(feature = "mpi")]

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Flags of every run here: the article's net (no batch norm) on 512 images, batch 64,
/// a learning rate at which the loss visibly falls in a few epochs, augmented (so the
/// loader thread and the per-image keys are in play).
fn base(data: &Path) -> Vec<String> {
    [
        "--data",
        data.to_str().unwrap(),
        "--limit-train",
        "512",
        "--limit-test",
        "100",
        "--batch-size",
        "64",
        "--lr",
        "0.1",
        "--augment",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn mpirun(np: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "-np",
        &np.to_string(),
    ]);
    c
}

fn check(out: &Output, what: &str) -> String {
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{what} failed:\n{o}\n{e}");
    o.to_string()
}

/// `mpirun -np np cifar10 <base> <extra>` (np = 0: the example alone, no mpirun).
fn train(np: usize, data: &Path, extra: &[&str]) -> String {
    let bin = example_binary("cifar10");
    let mut c = if np == 0 {
        Command::new(&bin)
    } else {
        let mut c = mpirun(np);
        c.arg(&bin);
        c
    };
    let out = c.args(base(data)).args(extra).output().unwrap();
    check(&out, &format!("{np} ranks {extra:?}"))
}

fn ckpt(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("checkpoint.safetensors")).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Training losses per epoch from a --json file.
fn losses(json: &Path) -> Vec<f64> {
    std::fs::read_to_string(json)
        .unwrap()
        .lines()
        .map(|l| {
            let v = l.split("\"train_loss\":").nth(1).unwrap();
            v.split(',').next().unwrap().parse().unwrap()
        })
        .collect()
}

#[test]
fn two_ranks_learn_and_equal_one_process_in_two_shards_bit_for_bit() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("mpi-equal");
    let (a, a2, b, c) = (dir.join("a"), dir.join("a2"), dir.join("b"), dir.join("c"));
    let json = dir.join("a.jsonl");
    let out = train(
        2,
        &data,
        &[
            "--epochs",
            "4",
            "--threads",
            "1",
            "--save",
            s(&a),
            "--json",
            s(&json),
        ],
    );
    assert!(out.contains("mpi: 2 ranks"), "{out}");
    // Rank 0 alone prints: one line per epoch.
    assert_eq!(out.matches("\n    4 ").count(), 1, "{out}");
    let l = losses(&json);
    assert_eq!(l.len(), 4, "{l:?}");
    assert!(l[3] < l[0] - 0.04, "the loss should fall: {l:?}");
    // Run to run, and with 2 threads per rank instead of 1.
    train(
        2,
        &data,
        &["--epochs", "4", "--threads", "2", "--save", s(&a2)],
    );
    assert!(ckpt(&a) == ckpt(&a2), "two 2-rank runs differ");
    // One process, the same two shards added in the same order, 2 threads.
    train(
        0,
        &data,
        &[
            "--epochs",
            "4",
            "--threads",
            "2",
            "--shards",
            "2",
            "--save",
            s(&b),
        ],
    );
    assert!(ckpt(&a) == ckpt(&b), "2 ranks and --shards 2 differ");
    // Plain single-process training sums the batch in another order: close, not equal.
    train(0, &data, &["--epochs", "4", "--save", s(&c)]);
    assert!(
        ckpt(&a) != ckpt(&c),
        "expected a different rounding without shards"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn batch_norm_nets_train_on_two_ranks_bit_identically_run_to_run() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("mpi-bn");
    let (a, b) = (dir.join("a"), dir.join("b"));
    let fast = ["--model", "fast", "--limit-train", "128", "--epochs", "1"];
    let out = train(
        2,
        &data,
        &[&fast[..], &["--threads", "1", "--save", s(&a)]].concat(),
    );
    assert!(out.contains("mpi: 2 ranks"), "{out}");
    train(
        2,
        &data,
        &[&fast[..], &["--threads", "2", "--save", s(&b)]].concat(),
    );
    assert!(
        ckpt(&a) == ckpt(&b),
        "two 2-rank runs of the fast net differ"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The largest relative difference, ‖a − b‖ / ‖b‖, over the tensors of two checkpoints
/// whose names pass `which`.
fn max_rel_diff(a: &Path, b: &Path, which: &dyn Fn(&str) -> bool) -> f64 {
    use ferroconv::checkpoint::SafeTensors;
    let (ta, tb) = (
        SafeTensors::read(&a.join("checkpoint.safetensors")).unwrap(),
        SafeTensors::read(&b.join("checkpoint.safetensors")).unwrap(),
    );
    assert_eq!(
        ta.tensors.keys().collect::<Vec<_>>(),
        tb.tensors.keys().collect::<Vec<_>>()
    );
    let mut worst = 0.0f64;
    for (name, x) in ta.tensors.iter().filter(|(n, _)| which(n)) {
        let y = &tb.tensors[name];
        let (mut d, mut n) = (0.0f64, 0.0f64);
        for (&p, &q) in x.data.iter().zip(&y.data) {
            d += (f64::from(p) - f64::from(q)).powi(2);
            n += f64::from(q).powi(2);
        }
        if n > 0.0 {
            worst = worst.max((d / n).sqrt());
        }
    }
    worst
}

#[test]
fn synchronised_batch_norm_on_two_ranks_matches_one_process_on_the_whole_batch() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("mpi-syncbn");
    let (sync, sync2, local, one) = (
        dir.join("sync"),
        dir.join("sync2"),
        dir.join("local"),
        dir.join("one"),
    );
    let fast = ["--model", "fast", "--limit-train", "128", "--epochs", "1"];
    let run = |np: usize, extra: &[&str]| train(np, &data, &[&fast[..], extra].concat());
    run(2, &["--sync-bn", "--threads", "1", "--save", s(&sync)]);
    run(2, &["--sync-bn", "--threads", "2", "--save", s(&sync2)]);
    assert!(
        ckpt(&sync) == ckpt(&sync2),
        "two synchronised 2-rank runs differ"
    );
    run(2, &["--threads", "1", "--save", s(&local)]);
    run(0, &["--threads", "2", "--save", s(&one)]);
    // The batch statistics are the whole batch's: the running statistics agree to
    // rounding (measured ≤ 2e-7), where each rank normalising its own 32 images is off by
    // up to 90%.
    let stats = |n: &str| n.contains(".running_");
    let (synced, alone) = (
        max_rel_diff(&sync, &one, &stats),
        max_rel_diff(&local, &one, &stats),
    );
    assert!(
        synced < 1e-5,
        "synchronised BN statistics vs one process: {synced:e}"
    );
    assert!(
        alone > 1e-2,
        "per-rank BN statistics vs one process: only {alone:e}"
    );
    // Weights and momenta after 2 steps: rounding, amplified where a batch norm's input
    // gradient cancels (dy − mean(dy) − x̂·mean(dy·x̂)), measured ≤ 1.3e-3 relative, against
    // ≈ 100% for per-rank batch norm.
    let all = |_: &str| true;
    let (synced, alone) = (
        max_rel_diff(&sync, &one, &all),
        max_rel_diff(&local, &one, &all),
    );
    assert!(
        synced < 1e-2 && synced * 100.0 < alone,
        "synchronised BN vs one process: {synced:e}, per-rank BN: {alone:e}"
    );
    // In one process, shards train one after another: there is nothing to synchronise.
    let bin = example_binary("cifar10");
    let out = Command::new(&bin)
        .args(base(&data))
        .args(fast)
        .args(["--shards", "2", "--sync-bn"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("MPI ranks"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_checkpoint_resumes_on_another_number_of_ranks() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("mpi-resume");
    let (straight, two, one, back) = (
        dir.join("straight"),
        dir.join("two"),
        dir.join("one"),
        dir.join("back"),
    );
    train(2, &data, &["--epochs", "3", "--save", s(&straight)]);
    // 2 ranks for 1 epoch, then 1 process (as 2 shards) for the 2nd, then 2 ranks again.
    train(2, &data, &["--epochs", "1", "--save", s(&two)]);
    let out = train(
        0,
        &data,
        &[
            "--epochs",
            "2",
            "--shards",
            "2",
            "--resume",
            s(&two),
            "--save",
            s(&one),
        ],
    );
    assert!(out.contains("resumed at the end of epoch 1"), "{out}");
    let out = train(
        2,
        &data,
        &["--epochs", "3", "--resume", s(&one), "--save", s(&back)],
    );
    assert!(out.contains("resumed at the end of epoch 2"), "{out}");
    assert!(ckpt(&straight) == ckpt(&back), "resumed across N differs");
    // And plainly on one process, no shards: it trains on.
    let plain = dir.join("plain");
    let out = train(
        0,
        &data,
        &["--epochs", "3", "--resume", s(&one), "--save", s(&plain)],
    );
    assert!(out.contains("    3 "), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ranks_with_different_settings_refuse_to_train() {
    let Some(data) = data_dir() else { return };
    let bin = example_binary("cifar10");
    for (flag, a, b, what) in [
        ("--seed", "0", "1", "seed"),
        ("--batch-size", "64", "32", "batch size"),
        ("--limit-train", "512", "448", "data set"),
    ] {
        let mut c = mpirun(1);
        c.arg(&bin)
            .args(base(&data))
            .args(["--epochs", "1", flag, a]);
        c.args([":", "-np", "1"]).arg(&bin).args(base(&data));
        let out = c.args(["--epochs", "1", flag, b]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag}: {err}");
        assert!(
            err.contains(&format!("rank 1 has a different {what}")),
            "{flag}: {err}"
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("\n    1 "));
    }
}

/// Starts a long 2-rank run saving to `save`; returns it once rank 0 wrote a checkpoint.
fn start_long_run(data: &Path, save: &Path, timeout: &str) -> Child {
    let mut c = mpirun(2);
    c.env("FERROCONV_MPI_TIMEOUT", timeout);
    let child = c
        .arg(example_binary("cifar10"))
        .args([
            "--data",
            s(data),
            "--limit-train",
            "8192",
            "--limit-test",
            "100",
        ])
        .args(["--batch-size", "64", "--epochs", "1000", "--threads", "1"])
        .args(["--save", s(save)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !save.join("checkpoint.safetensors").exists() {
        assert!(t.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

/// The pid of rank `rank` among the processes running `cifar10` with `save` in their
/// arguments (read from /proc).
fn rank_pid(save: &Path, rank: usize) -> u32 {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    let t = Instant::now();
    loop {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let p = e.path();
            let Ok(cmd) = std::fs::read(p.join("cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd);
            if !cmd.contains("cifar10") || !cmd.contains(s(save)) || cmd.starts_with("mpirun") {
                continue;
            }
            let env = std::fs::read(p.join("environ")).unwrap_or_default();
            if env.split(|&b| b == 0).any(|v| v == want.as_bytes()) {
                return e.file_name().to_str().unwrap().parse().unwrap();
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "rank {rank} not found"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (at most `limit`) for the job to end; its stderr.
fn ends_within(mut child: Child, limit: Duration) -> (std::process::ExitStatus, String) {
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status, err);
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("the job still runs {limit:?} after the rank was stopped");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn a_killed_rank_stops_the_job_and_it_resumes_on_one_process() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("mpi-kill");
    let save = dir.join("run");
    let child = start_long_run(&data, &save, "60");
    signal(rank_pid(&save, 1), "-KILL");
    // Open MPI's mpirun sees the rank die and ends the job at once.
    let (status, err) = ends_within(child, Duration::from_secs(30));
    assert!(!status.success(), "{err}");
    assert!(err.contains("rank 1") && err.contains("signal 9"), "{err}");
    // The checkpoint left behind continues on one process.
    let epoch = checkpoint_epoch(&save);
    let next = (epoch + 1).to_string();
    let out = train(
        0,
        &data,
        &[
            "--limit-train",
            "8192",
            "--epochs",
            &next,
            "--resume",
            s(&save),
        ],
    );
    assert!(
        out.contains(&format!("resumed at the end of epoch {epoch}")),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_hung_rank_stops_the_job_within_the_timeout() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("mpi-hang");
    let save = dir.join("run");
    let child = start_long_run(&data, &save, "3");
    let pid = rank_pid(&save, 1);
    // A stopped rank is alive to mpirun: only rank 0's watchdog can end the job.
    signal(pid, "-STOP");
    let (status, err) = ends_within(child, Duration::from_secs(30));
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("rank 0 of 2") && err.contains("waited 3 s for the other ranks"),
        "{err}"
    );
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The epoch a checkpoint finished (from the example's own resume message).
fn checkpoint_epoch(save: &Path) -> u64 {
    // A resume to --epochs 1 of a run past epoch 1 is refused with the epoch it reached.
    let data: PathBuf = data_dir().unwrap();
    let out = Command::new(example_binary("cifar10"))
        .args(base(&data))
        .args([
            "--limit-train",
            "8192",
            "--epochs",
            "1",
            "--resume",
            s(save),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a checkpoint holds at least epoch 1: {err}"
    );
    let n = err
        .split("already finished its ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok());
    n.unwrap_or_else(|| panic!("cannot read the checkpoint's epoch: {err}"))
}
