//! Command-line errors of the `cifar10` example that need no data.

mod common;
use common::example_binary;

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(example_binary("cifar10"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn unknown_device_is_an_error() {
    let (ok, err) = run(&["--device", "tpu"]);
    assert!(!ok);
    assert!(err.contains("--device") && err.contains("wgpu"), "{err}");
}

/// Without the `wgpu` feature, `--device wgpu` says how to build with it.
#[cfg(not(feature = "wgpu"))]
#[test]
fn wgpu_device_needs_the_feature() {
    let (ok, err) = run(&["--device", "wgpu"]);
    assert!(!ok);
    assert!(err.contains("--features wgpu"), "{err}");
}
