//! Loading PyTorch `state_dict`s: I64 `num_batches_tracked` is accepted and ignored,
//! other dtypes parse, and a mismatch names what differs in its first line.

use ferroconv::checkpoint::{SafeTensors, load_model, model_tensors};
use ferroconv::layers::{BatchNorm2d, Block, Conv2d, Layer};
use ferroconv::{Error, Sequential};
use std::path::Path;

/// A safetensors file from `(name, dtype, shape, bytes)` entries, as PyTorch writes them.
fn file(entries: &[(&str, &str, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let mut header = Vec::new();
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in entries {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        header.push(format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            dims.join(","),
            data.len(),
            data.len() + bytes.len()
        ));
        data.extend_from_slice(bytes);
    }
    let header = format!("{{{}}}", header.join(","));
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    out
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// `features.0` a bias-free 1×1 conv 2→3, `features.1` a batch norm: PyTorch's names.
fn model() -> Sequential {
    let features = Block::indexed(vec![
        Box::new(Conv2d::new(2, 3, 1).bias(false)) as Box<dyn Layer>,
        Box::new(BatchNorm2d::new(3)),
    ]);
    Sequential::named(
        &[2, 4, 4],
        vec![("features", Box::new(features) as Box<dyn Layer>)],
        0,
    )
    .unwrap()
}

/// The model's tensors with distinct values, plus `num_batches_tracked` as I64.
fn torch_file(extra: &[(&str, &str, Vec<usize>, Vec<u8>)], skip: &str) -> Vec<u8> {
    let mut entries: Vec<(String, &str, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, (name, t)) in model_tensors(&model()).into_iter().enumerate() {
        if name == skip {
            continue;
        }
        let values: Vec<f32> = (0..t.data.len())
            .map(|j| (i * 10 + j) as f32 * 0.5 + 1.0)
            .collect();
        entries.push((name, "F32", t.shape, f32s(&values)));
    }
    entries.push((
        "features.1.num_batches_tracked".into(),
        "I64",
        vec![],
        7i64.to_le_bytes().to_vec(),
    ));
    let mut all: Vec<(&str, &str, Vec<usize>, Vec<u8>)> = entries
        .iter()
        .map(|(n, d, s, b)| (n.as_str(), *d, s.clone(), b.clone()))
        .collect();
    all.extend(extra.iter().cloned());
    file(&all)
}

#[test]
fn a_pytorch_state_dict_with_num_batches_tracked_loads() {
    let bytes = torch_file(&[], "");
    let st = SafeTensors::from_bytes(&bytes, Path::new("torch.safetensors")).unwrap();
    let nbt = &st.other["features.1.num_batches_tracked"];
    assert_eq!(
        (nbt.dtype.as_str(), nbt.bytes.as_slice()),
        ("I64", &7i64.to_le_bytes()[..])
    );
    let mut m = model();
    load_model(&mut m, &st, Path::new("torch.safetensors")).unwrap();
    let loaded = model_tensors(&m);
    assert_eq!(
        loaded.len(),
        5,
        "conv weight, bn weight, bias, running mean and var"
    );
    for (name, t) in &loaded {
        assert_eq!(&st.tensors[name].data, &t.data, "{name}");
    }
}

#[test]
fn mismatches_are_named_in_the_first_line() {
    let path = Path::new("torch.safetensors");
    let bad_dtype = ("features.1.running_var", "F64", vec![3], vec![0u8; 24]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (torch_file(&[], "features.1.running_mean"), "1 missing"),
        (
            torch_file(&[("classifier.weight", "F32", vec![1], f32s(&[1.0]))], ""),
            "1 unexpected",
        ),
        (
            torch_file(
                &[("features.1.extra_counter", "I64", vec![], vec![0; 8])],
                "",
            ),
            "1 unexpected",
        ),
        (
            torch_file(&[bad_dtype], "features.1.running_var"),
            "1 of another dtype",
        ),
    ];
    for (bytes, want) in cases {
        let st = SafeTensors::from_bytes(&bytes, path).unwrap();
        let mut m = model();
        let before = model_tensors(&m);
        let err = load_model(&mut m, &st, path).unwrap_err();
        assert!(matches!(err, Error::Mismatch { .. }), "{err}");
        let first = err.to_string().lines().next().unwrap().to_string();
        assert!(first.contains(want), "{first:?} should say {want:?}");
        assert_eq!(model_tensors(&m), before, "the model is unchanged");
    }
    // A shape mismatch: the conv weight as [3, 2] instead of [3, 2, 1, 1].
    let mut entries = vec![("features.0.weight", "F32", vec![3, 2], f32s(&[0.0; 6]))];
    for n in ["weight", "bias", "running_mean", "running_var"] {
        let name: &'static str = Box::leak(format!("features.1.{n}").into_boxed_str());
        entries.push((name, "F32", vec![3], f32s(&[1.0; 3])));
    }
    let st = SafeTensors::from_bytes(&file(&entries), path).unwrap();
    let err = load_model(&mut model(), &st, path).unwrap_err().to_string();
    assert!(
        err.lines().next().unwrap().contains("1 of another shape"),
        "{err}"
    );
    assert!(
        err.contains("features.0.weight is [3, 2] in the file, the model needs [3, 2, 1, 1]"),
        "{err}"
    );
}

#[test]
fn other_dtypes_parse_and_unknown_or_truncated_ones_do_not() {
    let path = Path::new("x");
    let ok = file(&[
        ("a", "F16", vec![2], vec![0; 4]),
        ("b", "BF16", vec![1], vec![0; 2]),
        ("c", "U8", vec![3], vec![1, 2, 3]),
        ("d", "F32", vec![1], f32s(&[2.5])),
    ]);
    let st = SafeTensors::from_bytes(&ok, path).unwrap();
    assert_eq!(st.other.len(), 3);
    assert_eq!(st.tensors["d"].data, [2.5]);
    let unknown = file(&[("a", "Q4", vec![2], vec![0; 4])]);
    let err = SafeTensors::from_bytes(&unknown, path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown dtype \"Q4\""), "{err}");
    let short = file(&[("a", "I64", vec![2], vec![0; 12])]);
    let err = SafeTensors::from_bytes(&short, path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs 2×8 bytes"), "{err}");
}
