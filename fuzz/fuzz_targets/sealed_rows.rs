//! A delivered item's plaintext (`seal::decode_rows`: one person's rows,
//! padded), which the researcher decodes after opening an item a register
//! sealed.
//!
//! Checked: no panic; the encoding is canonical, so whatever decodes
//! encodes (`seal::encode_rows`) to exactly the input.
#![no_main]

use kobling_protocol::seal::{decode_rows, encode_rows};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rows) = decode_rows(data) {
        let bytes = encode_rows(&rows).expect("decoded rows encode");
        assert_eq!(bytes, data, "the item plaintext is not canonical");
    }
});
