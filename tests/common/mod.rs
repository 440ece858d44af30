//! Helpers shared by the integration tests: the data folder, the example binaries,
//! scratch folders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The CIFAR-10 folder from `CIFAR10_DIR`, or `None` when the tests are explicitly skipped
/// with `FERROCONV_SKIP_DATA_TESTS=1` (CI never sets it). Without either, the test fails
/// and says how to point to the data.
pub fn data_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CIFAR10_DIR") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("test_batch.bin").is_file(),
            "CIFAR10_DIR={} has no test_batch.bin: point it to the CIFAR-10 binary folder",
            dir.display()
        );
        return Some(dir);
    }
    if std::env::var_os("FERROCONV_SKIP_DATA_TESTS").is_some() {
        eprintln!("SKIPPED: FERROCONV_SKIP_DATA_TESTS is set, CIFAR-10 tests not run");
        return None;
    }
    panic!(
        "CIFAR-10 not found: set CIFAR10_DIR to the folder holding data_batch_1..5.bin and \
         test_batch.bin (e.g. CIFAR10_DIR=../shared/cifar10), or set \
         FERROCONV_SKIP_DATA_TESTS=1 to skip these tests explicitly"
    );
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
