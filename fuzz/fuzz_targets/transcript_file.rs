//! Transcript files (`transcript::decode_file`, the `KOBLING-TRANSCRIPT`
//! format): arbitrary bytes never panic, and the format is canonical, so
//! whatever decodes re-encodes to exactly the input. Hashing the entries
//! and checking the trailer against them never panics either.
#![no_main]

use kobling_protocol::{
    manifest::Ed25519Key,
    transcript::{decode_file, encode_file},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((entries, trailer)) = decode_file(data) else {
        return;
    };
    assert_eq!(
        encode_file(&entries, &trailer),
        data,
        "the file is not canonical"
    );
    for e in &entries {
        let _ = (e.hash(), e.link_digest());
    }
    let _ = trailer.check(&entries, &Ed25519Key([0x42; 32]));
});
