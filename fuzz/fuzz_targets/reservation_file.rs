//! A register's reservation table file (`kobling node run
//! --reservations`), read as the node reads it, in test mode and in
//! production.
//!
//! Checked: never panics; a file read is hashed as the SHA3-256 of its
//! bytes; every data row is a person's reservation or counted under a
//! reason; nothing the operator is shown contains a run of 11 digits
//! (an identifier is never printed).
#![no_main]

use kobling_protocol::ident::ParseOptions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for allow_synthetic in [false, true] {
        let Ok(read) =
            kobling_node::fuzzing::read_reservations(data, ParseOptions { allow_synthetic })
        else {
            continue;
        };
        assert_eq!(read.digest, kobling_protocol::hash::sha3_256(data));
        assert!(read.persons + read.invalid <= read.rows);
        assert!(read.rows == 0 || read.persons > 0 || read.invalid > 0);
        let mut run = 0;
        for c in read.described.chars() {
            run = if c.is_ascii_digit() { run + 1 } else { 0 };
            assert!(run < 11, "an identifier in {:?}", read.described);
        }
    }
});
