//! Fuzzes the safetensors checkpoint reader and the model loader: any bytes give a
//! checkpoint or an error, never a panic; what parses round-trips.
#![no_main]

use ferroconv::checkpoint::{SafeTensors, load_model};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(st) = SafeTensors::from_bytes(data, Path::new("fuzz")) {
        // Round trip, compared as bytes: NaN payloads must survive too.
        let bytes = st.to_bytes();
        let again = SafeTensors::from_bytes(&bytes, Path::new("fuzz")).unwrap();
        assert_eq!(again.to_bytes(), bytes);
        let mut model = ferroconv::models::seed_net(0).unwrap();
        let _ = load_model(&mut model, &st, Path::new("fuzz"));
        let _ = ferroconv::checkpoint::model_from_file(&st, Path::new("fuzz"));
    }
});
