//! Live cross-checks with Python's `safetensors`: a step of `.ci/run` (which installs a
//! Python with `safetensors` and `numpy`), not of the README's `cargo test`, where byte
//! compatibility rests on the committed fixture that `tests/checkpoint.rs` reads.
//!
//! `.ci/run` runs `cargo test --release --test python_interop -- --ignored`; there a
//! missing Python is a failure, never a skip.

mod common;
use common::temp_dir;

use ferroconv::checkpoint::{SafeTensors, model_tensors};
use std::path::PathBuf;

/// A Python that has `safetensors` and `numpy`: `$FERROCONV_PYTHON`, else the venv that
/// `.ci/run` makes (`~/.cache/ferroconv-ci-venv`), else `python3`, the first that imports both.
fn python_with_safetensors() -> Option<std::ffi::OsString> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    let candidates = [
        std::env::var_os("FERROCONV_PYTHON"),
        cache.map(|c| c.join("ferroconv-ci-venv/bin/python").into_os_string()),
        Some("python3".into()),
    ];
    candidates.into_iter().flatten().find(|py| {
        std::process::Command::new(py)
            .args(["-c", "import safetensors, numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Python's `safetensors` (numpy API) reads what we write and we read what it writes.
/// Fails when no Python with `safetensors` and `numpy` is found (see
/// [`python_with_safetensors`]).
#[test]
#[ignore = "needs Python with safetensors and numpy; .ci/run runs it with --ignored"]
fn python_safetensors_round_trip() {
    let Some(python) = python_with_safetensors() else {
        panic!(
            "no Python with the safetensors and numpy packages: run .ci/run once (it makes \
             ~/.cache/ferroconv-ci-venv), or set FERROCONV_PYTHON to one \
             (python3 -m venv V && V/bin/pip install safetensors numpy)"
        );
    };
    let dir = temp_dir("py");
    let ours = dir.join("ours.safetensors");
    let theirs = dir.join("theirs.safetensors");
    let model = ferroconv::models::seed_net(5).unwrap();
    let st = SafeTensors {
        tensors: model_tensors(&model),
        metadata: [("k".to_string(), "v".to_string())].into(),
        ..Default::default()
    };
    st.write(&ours).unwrap();
    let script = r#"
import sys, numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file
ours, theirs = sys.argv[1], sys.argv[2]
t = load_file(ours)
with safe_open(ours, "np") as f:
    assert f.metadata() == {"k": "v"}, f.metadata()
assert t["conv1.weight"].shape == (6, 3, 5, 5) and t["conv1.weight"].dtype == np.float32
print("sum", float(sum(np.float64(v.sum()) for v in t.values())))
out = {k + ".py": (v * 2).astype(np.float32) for k, v in t.items()}
save_file(out, theirs, metadata={"from": "python"})
"#;
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(&ours)
        .arg(&theirs)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let py_sum: f64 = stdout.trim().strip_prefix("sum ").unwrap().parse().unwrap();
    let our_sum: f64 = st
        .tensors
        .values()
        .flat_map(|t| t.data.iter())
        .map(|&v| v as f64)
        .sum();
    assert!(
        (py_sum - our_sum).abs() < 1e-3,
        "python read {py_sum}, we wrote {our_sum}"
    );
    let back = SafeTensors::read(&theirs).unwrap();
    assert_eq!(back.metadata["from"], "python");
    for (name, t) in &st.tensors {
        let b = &back.tensors[&format!("{name}.py")];
        assert_eq!(b.shape, t.shape);
        assert!(
            b.data.iter().zip(&t.data).all(|(x, y)| *x == 2.0 * y),
            "{name}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
