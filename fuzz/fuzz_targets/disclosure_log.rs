//! A disclosure log message as a hop, the log's holder or the linker
//! receives it (`disclosure::log::LogMessage`, postcard), then a page's
//! header check, `verify_steps` and the holder's `finish` against fixed
//! keys.
//!
//! Checked: decoding, verifying and finishing never panic; a decoded value
//! survives an encode/decode round trip; no page passes the linker's
//! signature check (the fuzzer does not hold the linker's signing key).
#![no_main]

use kobling_protocol::{
    disclosure::log::LogMessage, group::WirePoint, manifest::Ed25519Key, seal::HpkeSecretKey, types::Name,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = postcard::from_bytes::<LogMessage>(data) else {
        return;
    };
    let again = postcard::to_allocvec(&msg).expect("encode");
    assert!(postcard::from_bytes::<LogMessage>(&again).as_ref() == Ok(&msg));
    let LogMessage::Page(page) = &msg else {
        return;
    };
    let linker = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    assert!(page
        .header
        .check(&Ed25519Key(linker.verifying_key().to_bytes()))
        .is_err());
    let _ = page.verify_steps();
    let holder = HpkeSecretKey::derive(b"fuzz log holder");
    let key = page.current().first().copied().unwrap_or(WirePoint([0; 32]));
    let _ = page.finish(&[(Name::new("NPR").expect("name"), key)], None, &holder);
});
