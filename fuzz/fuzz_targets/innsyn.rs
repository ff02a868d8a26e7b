//! An innsyn request and a sealed reply as a portal or a device receives
//! them (`innsyn::InnsynRequest`, `innsyn::SealedReply`, postcard), and the
//! device's `open_reply` on them.
//!
//! Checked: decoding and opening never panic; a decoded value re-encodes
//! to the same bytes; a reply that was not sealed to this device's key for
//! this request never opens.
#![no_main]

use kobling_protocol::{
    innsyn::{open_reply, InnsynRequest, SealedReply},
    seal::HpkeSecretKey,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((request, rest)) = postcard::take_from_bytes::<InnsynRequest>(data) {
        let used = data.len() - rest.len();
        assert_eq!(postcard::to_allocvec(&request).expect("encode"), &data[..used]);
        let device = HpkeSecretKey::derive(b"fuzz device");
        if let Ok(reply) = postcard::from_bytes::<SealedReply>(rest) {
            assert!(open_reply(&device, &request, &reply).is_err());
        }
    }
    if let Ok(reply) = postcard::from_bytes::<SealedReply>(data) {
        assert_eq!(postcard::to_allocvec(&reply).expect("encode"), data);
    }
});
