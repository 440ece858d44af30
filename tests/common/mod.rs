//! Helpers shared by the integration tests: the data folder, the example binaries,
//! scratch folders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The CIFAR-10 folder where the example puts it: `$CIFAR10_DIR`, else
/// `./data/cifar-10-batches-bin` in the crate (where `cargo run --release --example
/// cifar10` downloads it). `None` only when the tests are explicitly skipped with
/// `FERROCONV_SKIP_DATA_TESTS=1` (CI never sets it); otherwise missing data fails the
/// test with a message saying how to get it.
pub fn data_dir() -> Option<PathBuf> {
    if std::env::var_os("FERROCONV_SKIP_DATA_TESTS").is_some() {
        eprintln!("SKIPPED: FERROCONV_SKIP_DATA_TESTS is set, CIFAR-10 tests not run");
        return None;
    }
    let (dir, from) = match std::env::var_os("CIFAR10_DIR") {
        Some(dir) => (PathBuf::from(dir), "CIFAR10_DIR"),
        None => (
            Path::new(env!("CARGO_MANIFEST_DIR")).join("data/cifar-10-batches-bin"),
            "the default folder",
        ),
    };
    assert!(
        dir.join("test_batch.bin").is_file() && dir.join("data_batch_5.bin").is_file(),
        "CIFAR-10 not found in {} ({from}): run `cargo run --release --example cifar10` once \
         to download it there, or set CIFAR10_DIR to the folder holding data_batch_1..5.bin \
         and test_batch.bin (FERROCONV_SKIP_DATA_TESTS=1 skips these tests explicitly)",
        dir.display()
    );
    Some(dir)
}

/// The example binary `name` that `cargo test` builds beside the test executables.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        bin.is_file(),
        "{} not built: run the tests with `cargo test` (it builds examples)",
        bin.display()
    );
    bin
}

/// A fresh, empty scratch folder for this test process and `tag`.
pub fn temp_dir(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("ferroconv-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

mod values;
#[allow(unused_imports)] // not every test binary uses it
pub use values::values;
pub mod gradcheck;

/// Runs `f` on a fresh rayon pool of `threads` threads (for thread-count independence
/// checks).
pub fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
        .install(f)
}
