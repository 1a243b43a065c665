//! Fuzz target: `pith_runtime::gguf::parse` over arbitrary bytes must return `Ok` or
//! `Err`, never panic, abort or allocate without bound; whatever it accepts must be
//! usable: every tensor view lies inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pith_runtime::gguf::{parse, GgufFile};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(header) => {
            let len = data.len() as u64;
            for t in &header.tensors {
                let end = t.offset.checked_add(t.size).expect("accepted tensor end overflows");
                assert!(end <= len, "accepted tensor '{}' ends at {end}, past {len}", t.name);
                assert_eq!(t.ty.bytes_for(t.n_elements()), Some(t.size));
            }
            // The same bytes through the file API: every view can be taken.
            let file = GgufFile::from_bytes("fuzz.gguf", data.to_vec()).expect("parse accepted it");
            for t in file.tensor_infos() {
                assert_eq!(file.view(t).data.len() as u64, t.size);
            }
        }
        Err(e) => {
            // Display must not panic either.
            let _ = e.to_string();
        }
    }
});
