//! Checkpoints: the safetensors round trip, every kind of bad file, model mismatches,
//! atomic writes, resume, and (in `python_safetensors_round_trip`) the Python package.

mod common;
use common::*;

use ferroconv::checkpoint::{SafeTensors, StoredTensor, load_model, model_tensors};
use ferroconv::optim::{Optimizer, Sgd};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn sample() -> SafeTensors {
    let mut st = SafeTensors::default();
    st.tensors.insert(
        "a.weight".into(),
        StoredTensor {
            shape: vec![2, 3],
            data: vec![1.0, -2.0, 3.5, 0.0, f32::MIN_POSITIVE, 7.0],
        },
    );
    st.tensors.insert(
        "b".into(),
        StoredTensor {
            shape: vec![1],
            data: vec![-0.25],
        },
    );
    st.tensors.insert(
        "empty".into(),
        StoredTensor {
            shape: vec![0, 4],
            data: vec![],
        },
    );
    st.metadata.insert("epoch".into(), "3".into());
    st.metadata
        .insert("note".into(), "quote \" backslash \\ newline \n é".into());
    st
}

#[test]
fn round_trip_bytes_and_file() {
    let st = sample();
    let bytes = st.to_bytes();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!((8 + header_len) % 8, 0, "data section 8-byte aligned");
    assert_eq!(SafeTensors::from_bytes(&bytes, Path::new("x")).unwrap(), st);
    let dir = temp_dir("rt");
    let path = dir.join("m.safetensors");
    st.write(&path).unwrap();
    st.write(&path).unwrap(); // overwrite in place
    assert_eq!(SafeTensors::read(&path).unwrap(), st);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left: {leftovers:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = sample().to_bytes();
    for len in 0..bytes.len() {
        let err = SafeTensors::from_bytes(&bytes[..len], Path::new("cut.safetensors"));
        let msg = err
            .expect_err(&format!("prefix of {len} bytes must fail"))
            .to_string();
        assert!(msg.contains("cut.safetensors"), "{msg}");
    }
}

#[test]
fn corrupt_headers_are_clear_errors() {
    let st = sample();
    let good = st.to_bytes();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("huge header length", {
            let mut b = good.clone();
            b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
            b
        }),
        ("not JSON", {
            let mut b = good.clone();
            b[8] = b'x';
            b
        }),
        (
            "dtype",
            String::from_utf8(good.clone())
                .unwrap_or_default()
                .replace("F32", "F16")
                .into_bytes(),
        ),
    ];
    for (what, bytes) in cases {
        if bytes.is_empty() {
            continue;
        }
        assert!(
            SafeTensors::from_bytes(&bytes, Path::new("bad")).is_err(),
            "{what}"
        );
    }
    // Raw control characters inside a JSON string are not JSON (found by fuzzing).
    let header = "{\"__metadata__\":{\"a\u{0}b\":\"\"}}";
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    let msg = SafeTensors::from_bytes(&b, Path::new("ctl"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("control character"), "{msg}");
    // A header whose offsets overlap or leave holes.
    let header = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(&[0; 8]);
    let msg = SafeTensors::from_bytes(&b, Path::new("overlap"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("starts at"), "{msg}");
    // Shape and byte count disagree.
    let header = r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,4]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(&[0; 4]);
    let msg = SafeTensors::from_bytes(&b, Path::new("count"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("needs 3×4 bytes"), "{msg}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn random_damage_never_panics(pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut bytes = sample().to_bytes();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        let n = cut.index(bytes.len() + 1);
        let _ = SafeTensors::from_bytes(&bytes[..n], Path::new("fuzz"));
    }
}

#[test]
fn model_mismatch_names_the_tensors() {
    let mut model = ferroconv::models::seed_net(0).unwrap();
    let mut st = SafeTensors {
        tensors: model_tensors(&mut model),
        metadata: BTreeMap::new(),
        ..Default::default()
    };
    let mut other = ferroconv::models::seed_net(1).unwrap();
    load_model(&mut other, &st, Path::new("ok")).unwrap();
    assert_eq!(model_tensors(&mut other), st.tensors);

    st.tensors.remove("0.bias");
    st.tensors.get_mut("3.weight").unwrap().shape = vec![16, 6, 25];
    st.tensors.insert(
        "99.weight".into(),
        StoredTensor {
            shape: vec![1],
            data: vec![0.0],
        },
    );
    let before = model_tensors(&mut other);
    let msg = load_model(&mut other, &st, Path::new("bad.safetensors"))
        .unwrap_err()
        .to_string();
    for needle in [
        "bad.safetensors",
        "missing tensor \"0.bias\"",
        "\"3.weight\" has shape [16, 6, 25]",
        "unexpected tensor \"99.weight\"",
    ] {
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
    }
    assert_eq!(
        model_tensors(&mut other),
        before,
        "a failed load changes nothing"
    );
}

#[test]
fn training_state_round_trip_restores_optimizer() {
    let dir = temp_dir("state");
    let path = dir.join("c.safetensors");
    let mut model = ferroconv::models::seed_net(3).unwrap();
    let mut opt = Sgd::new(0.01, 0.9);
    // Give the optimizer a momentum state by hand.
    for (i, (_, buf)) in opt.state(&mut model).into_iter().enumerate() {
        buf.iter_mut()
            .enumerate()
            .for_each(|(j, v)| *v = (i * 7 + j) as f32 * 1e-3);
    }
    opt.set_steps(42);
    let meta: BTreeMap<String, String> = [("epoch".to_string(), "5".to_string())].into();
    ferroconv::checkpoint::save_training(&path, &mut model, &mut opt, meta).unwrap();

    let mut model2 = ferroconv::models::seed_net(4).unwrap();
    let mut opt2 = Sgd::new(0.01, 0.9);
    let meta = ferroconv::checkpoint::load_training(&path, &mut model2, &mut opt2).unwrap();
    assert_eq!(meta["epoch"], "5");
    assert_eq!(opt2.steps(), 42);
    assert_eq!(model_tensors(&mut model2), model_tensors(&mut model));
    let a: Vec<Vec<f32>> = opt
        .state(&mut model)
        .into_iter()
        .map(|(_, b)| b.clone())
        .collect();
    let b: Vec<Vec<f32>> = opt2
        .state(&mut model2)
        .into_iter()
        .map(|(_, b)| b.clone())
        .collect();
    assert_eq!(a, b);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn write_into_missing_folder_fails_cleanly() {
    let err = sample()
        .write(Path::new("/nonexistent-ferroconv-dir/x.safetensors"))
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent-ferroconv-dir"),
        "{err}"
    );
}

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
/// [`python_with_safetensors`]), unless `FERROCONV_SKIP_PYTHON_TESTS=1`.
#[test]
fn python_safetensors_round_trip() {
    let Some(python) = python_with_safetensors() else {
        if std::env::var_os("FERROCONV_SKIP_PYTHON_TESTS").is_some() {
            eprintln!("SKIPPED: FERROCONV_SKIP_PYTHON_TESTS is set");
            return;
        }
        panic!(
            "no Python with the safetensors and numpy packages: run .ci/run once (it makes \
             ~/.cache/ferroconv-ci-venv), or set FERROCONV_PYTHON to one \
             (python3 -m venv V && V/bin/pip install safetensors numpy), \
             or set FERROCONV_SKIP_PYTHON_TESTS=1 to skip explicitly"
        );
    };
    let dir = temp_dir("py");
    let ours = dir.join("ours.safetensors");
    let theirs = dir.join("theirs.safetensors");
    let mut model = ferroconv::models::seed_net(5).unwrap();
    let st = SafeTensors {
        tensors: model_tensors(&mut model),
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
assert t["0.weight"].shape == (6, 3, 5, 5) and t["0.weight"].dtype == np.float32
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

/// Inputs the fuzzer once flagged (`fuzz/regressions/`): each parses or errors, never
/// panics, and what parses round-trips byte for byte.
#[test]
fn fuzz_regressions_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        if let Ok(st) = SafeTensors::from_bytes(&bytes, &path) {
            let again = st.to_bytes();
            assert_eq!(
                SafeTensors::from_bytes(&again, &path).unwrap().to_bytes(),
                again
            );
        }
        seen += 1;
    }
    assert!(seen > 0, "no regression inputs in {}", dir.display());
}
