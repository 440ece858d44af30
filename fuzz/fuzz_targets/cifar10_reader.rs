//! Fuzzes the CIFAR-10 binary reader: any bytes give records or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("ferroconv-fuzz-cifar-{}.bin", std::process::id()));
    std::fs::write(&path, data).unwrap();
    if let Ok((images, labels)) = ferroconv::data::read_batch_file(&path) {
        assert_eq!(images.len(), labels.len() * ferroconv::data::IMAGE_BYTES);
        assert!(labels.iter().all(|&l| l <= 9));
        use ferroconv::data::{Batch, Dataset, View};
        let n = labels.len();
        let set = ferroconv::data::Cifar10::from_raw(images, labels).unwrap();
        let mut batch = Batch::default();
        assert_eq!(set.fill_batch(&[0], View::Plain, &mut batch).is_ok(), n > 0);

    }
});
