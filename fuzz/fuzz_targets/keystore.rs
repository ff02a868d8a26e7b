//! The keystore file `keystore.kob` (`format::decode`, what
//! `Keystore::open` runs on the file's bytes), and the TLS check `open`
//! runs after it.
//!
//! Flag byte, then:
//! - bit 0 clear: the rest is a whole file. It is decoded without a
//!   passphrase and, if its header asks for Argon2id with small costs
//!   (m ≤ 64 KiB, t ≤ 2, p ≤ 2, so one run stays fast), with one.
//! - bit 0 set: the rest is a payload, framed as a plaintext keystore with
//!   a correct checksum (which mutations could not forge), so the payload
//!   decoder and the TLS check see the bytes.
//!
//! Checked: no panic; a decoded keystore re-encodes (plaintext) to a file
//! that decodes to the same fields, and to the same bytes if it has the
//! input's length (postcard accepts over-long length prefixes); encrypted
//! under a passphrase it opens with that passphrase only; the TLS check
//! never panics on whatever key and certificate bytes it is given.
#![no_main]

use kobling_fuzz::Cursor;
use kobling_keys::{
    format::{MAGIC, VERSION},
    fuzzing::{
        decode_keystore, encode_encrypted_keystore, encode_plaintext_keystore, tls_spki_sha256,
        KeystoreFields,
    },
    KeystoreError,
};
use kobling_protocol::hash::framed_sha3;
use libfuzzer_sys::fuzz_target;

/// The plaintext checksum's tag (keys/src/format.rs).
const CHECKSUM_TAG: &[u8] = b"KOBLING-V1-KEYSTORE-CHECKSUM";

fn plaintext_file(payload: &[u8]) -> Vec<u8> {
    let mut file = MAGIC.to_vec();
    file.extend_from_slice(&VERSION.to_le_bytes());
    file.push(0);
    file.extend_from_slice(payload);
    let checksum = framed_sha3(CHECKSUM_TAG, &[&file]);
    file.extend_from_slice(&checksum);
    file
}

/// Argon2id costs small enough to run per input, read from a file header.
fn small_costs(file: &[u8]) -> bool {
    let word = |at: usize| {
        file.get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    file.get(18) == Some(&1)
        && matches!((word(19), word(23), word(27)), (Some(m), Some(t), Some(p)) if m <= 64 && t <= 2 && p <= 2)
}

fn check(fields: &KeystoreFields, file: &[u8], plaintext: bool) {
    let again = encode_plaintext_keystore(fields).expect("a decoded keystore encodes");
    assert_eq!(
        decode_keystore(&again, None).expect("re-encoded decodes"),
        *fields
    );
    if plaintext {
        assert!(again.len() <= file.len());
        if again.len() == file.len() {
            assert_eq!(again, file);
        }
    }
    let sealed = encode_encrypted_keystore(fields, "fuzz", (8, 1, 1)).expect("encrypts");
    assert_eq!(
        decode_keystore(&sealed, Some("fuzz")).expect("opens"),
        *fields
    );
    assert!(matches!(
        decode_keystore(&sealed, None),
        Err(KeystoreError::PassphraseRequired { .. })
    ));
    assert!(matches!(
        decode_keystore(&sealed, Some("wrong")),
        Err(KeystoreError::WrongPassphrase { .. })
    ));
    let _ = tls_spki_sha256(&fields.tls_key, &fields.tls_cert);
}

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor(data);
    let flags = input.u8();
    let rest = input.rest();
    if flags & 1 == 0 {
        if let Ok(fields) = decode_keystore(rest, None) {
            check(&fields, rest, true);
        }
        if small_costs(rest) {
            if let Ok(fields) = decode_keystore(rest, Some("fuzz")) {
                check(&fields, rest, false);
            }
        }
    } else {
        let file = plaintext_file(rest);
        if let Ok(fields) = decode_keystore(&file, None) {
            check(&fields, &file, true);
        }
    }
});
