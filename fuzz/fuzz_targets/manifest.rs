//! The federation manifest file (TOML, `manifest_file::parse`, which every
//! command uses), the hex keys in it (`Ed25519Key::from_hex`) and the manifest's
//! postcard form (which its digest is taken over).
//!
//! Checked: a parsed manifest is valid, renders to TOML that parses back
//! to the same manifest with the same digest, and round-trips through
//! postcard; a key parses only from 64 hex digits and prints back as the
//! same digits (lower case); postcard input never panics and what decodes
//! re-encodes to the same value.
#![no_main]

use kobling_node::fuzzing::{parse_manifest, render_manifest};
use kobling_protocol::manifest::{Ed25519Key, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = postcard::from_bytes::<Manifest>(data) {
        let bytes = postcard::to_allocvec(&m).expect("encode");
        assert_eq!(
            postcard::from_bytes::<Manifest>(&bytes).ok().as_ref(),
            Some(&m)
        );
        let _ = (m.validate(), m.digest(), m.linker());
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(k) = Ed25519Key::from_hex(text) {
        assert_eq!(
            k.to_hex(),
            text.trim().to_ascii_lowercase(),
            "a key parsed from something other than its hex digits"
        );
    }
    let Ok(m) = parse_manifest(text) else {
        return;
    };
    m.validate().expect("a parsed manifest is valid");
    let rendered = render_manifest(&m).expect("a parsed manifest renders");
    let again = parse_manifest(&rendered).expect("a rendered manifest parses");
    assert_eq!(again, m);
    assert_eq!(again.digest(), m.digest());
    let bytes = postcard::to_allocvec(&m).expect("encode");
    assert_eq!(
        postcard::from_bytes::<Manifest>(&bytes).ok().as_ref(),
        Some(&m)
    );
});
