//! A frame body's kind, read alone from its first bytes
//! (`messages::Kind::peek`, what a node reads before the rest of a frame):
//! arbitrary bytes never panic; the kind read is the kind of whatever the
//! whole body decodes to; a refused prefix can never start a message; a
//! prefix that needs more bytes is at most `MAX_KIND_PREFIX - 1` long.
#![no_main]

use kobling_protocol::messages::{decode, Kind, MAX_KIND_PREFIX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let peeked = Kind::peek(data);
    // `peek` reads at most MAX_KIND_PREFIX bytes, one at a time as the node
    // does: every shorter prefix either needs more or agrees.
    for cut in 0..data.len().min(MAX_KIND_PREFIX) {
        match Kind::peek(&data[..cut]) {
            Ok(None) => {}
            other => assert_eq!(other, peeked, "a prefix of {cut} bytes disagrees"),
        }
    }
    match (&peeked, decode(data)) {
        (Ok(Some(kind)), Ok(m)) => {
            assert_eq!(*kind, m.kind_of(), "peek and decode disagree");
            assert_eq!(kind.name(), m.kind());
        }
        (Ok(None), Ok(_)) => panic!("a message decoded from bytes that end inside its kind"),
        (Err(_), Ok(_)) => panic!("a message decoded from a refused kind"),
        (Ok(None), Err(_)) => assert!(data.len() < MAX_KIND_PREFIX),
        _ => {}
    }
});
