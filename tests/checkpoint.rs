//! Checkpoints: the safetensors round trip, every kind of bad file, model mismatches,
//! atomic writes, resume, and (in `python_safetensors_round_trip`) the Python package.

mod common;
use common::*;

use ferroconv::checkpoint::{SafeTensors, StoredTensor, load_model, model_tensors};
use ferroconv::optim::{Optimizer, Sgd};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

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
    let model = ferroconv::models::seed_net(0).unwrap();
    let mut st = SafeTensors {
        tensors: model_tensors(&model),
        metadata: BTreeMap::new(),
        ..Default::default()
    };
    let mut other = ferroconv::models::seed_net(1).unwrap();
    load_model(&mut other, &st, Path::new("ok")).unwrap();
    assert_eq!(model_tensors(&other), st.tensors);

    st.tensors.remove("conv1.bias");
    st.tensors.get_mut("conv2.weight").unwrap().shape = vec![16, 6, 25];
    st.tensors.insert(
        "99.weight".into(),
        StoredTensor {
            shape: vec![1],
            data: vec![0.0],
        },
    );
    let before = model_tensors(&other);
    let msg = load_model(&mut other, &st, Path::new("bad.safetensors"))
        .unwrap_err()
        .to_string();
    for needle in [
        "bad.safetensors does not match the model: tensors 1 missing, 1 unexpected, 1 of another shape",
        "missing: conv1.bias [6]",
        "conv2.weight is [16, 6, 25] in the file, the model needs [16, 6, 5, 5]",
        "unexpected: 99.weight",
    ] {
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
    }
    assert_eq!(
        model_tensors(&other),
        before,
        "a failed load changes nothing"
    );
}

#[test]
fn training_state_round_trip_restores_optimizer() {
    let dir = temp_dir("state");
    let path = dir.join("c.safetensors");
    let model = ferroconv::models::seed_net(3).unwrap();
    let mut opt = Sgd::new(0.01, 0.9);
    // Give the optimizer a momentum state by hand.
    for (i, (_, buf)) in opt.state(&model).into_iter().enumerate() {
        buf.iter_mut()
            .enumerate()
            .for_each(|(j, v)| *v = (i * 7 + j) as f32 * 1e-3);
    }
    opt.set_steps(42);
    let meta: BTreeMap<String, String> = [("epoch".to_string(), "5".to_string())].into();
    ferroconv::checkpoint::save_training(&path, &model, &mut opt, meta).unwrap();

    let mut model2 = ferroconv::models::seed_net(4).unwrap();
    let mut opt2 = Sgd::new(0.01, 0.9);
    let meta = ferroconv::checkpoint::load_training(&path, &mut model2, &mut opt2).unwrap();
    assert_eq!(meta["epoch"], "5");
    assert_eq!(opt2.steps(), 42);
    assert_eq!(model_tensors(&model2), model_tensors(&model));
    let a: Vec<Vec<f32>> = opt
        .state(&model)
        .into_iter()
        .map(|(_, b)| b.clone())
        .collect();
    let b: Vec<Vec<f32>> = opt2
        .state(&model2)
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

/// A file written by Python's `safetensors` (numpy API, see
/// `tests/fixtures/safetensors/make.py`) reads here with the values the script wrote, and
/// what we write from it reads back the same.
#[test]
fn reads_a_file_written_by_python_safetensors() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/safetensors/python_written.safetensors");
    let st = SafeTensors::read(&path).unwrap();
    assert_eq!(st.metadata["note"], "written by safetensors.numpy");
    let w = &st.tensors["conv1.weight"];
    assert_eq!(w.shape, vec![2, 3, 2, 2]);
    let expect: Vec<f32> = (0..24).map(|i| i as f32 / 64.0 - 1.0).collect();
    assert_eq!(w.data, expect);
    assert_eq!(st.tensors["conv1.bias"].data, vec![0.5, -0.25]);
    let bias: Vec<f32> = (0..5).map(|j| (-1f32).powi(j) * 2f32.powi(-j)).collect();
    assert_eq!(st.tensors["fc.bias"].data, bias);
    assert_eq!(st.tensors["fc.weight"].data, vec![3.0; 40]);
    let again = SafeTensors::from_bytes(&st.to_bytes(), &path).unwrap();
    assert_eq!(again, st);
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
