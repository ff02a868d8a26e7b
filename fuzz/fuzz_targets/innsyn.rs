//! An innsyn request and a sealed reply as a portal or a device receives
//! them (`innsyn::InnsynRequest`, `innsyn::SealedReply`, postcard), and the
//! device's `open_reply` on them.
//!
//! Checked: decoding and opening never panic; a decoded value survives an
//! encode/decode round trip; a reply that was not sealed to this device's
//! key for this request never opens.
#![no_main]

use kobling_protocol::{
    innsyn::{open_reply, InnsynRequest, SealedReply},
    seal::HpkeSecretKey,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((request, rest)) = postcard::take_from_bytes::<InnsynRequest>(data) {
        let again = postcard::to_allocvec(&request).expect("encode");
        assert!(postcard::from_bytes::<InnsynRequest>(&again).as_ref() == Ok(&request));
        let device = HpkeSecretKey::derive(b"fuzz device");
        if let Ok(reply) = postcard::from_bytes::<SealedReply>(rest) {
            assert!(open_reply(&device, &request, &reply).is_err());
        }
    }
    if let Ok((reply, _)) = postcard::take_from_bytes::<SealedReply>(data) {
        let again = postcard::to_allocvec(&reply).expect("encode");
        assert!(postcard::from_bytes::<SealedReply>(&again).as_ref() == Ok(&reply));
    }
});
