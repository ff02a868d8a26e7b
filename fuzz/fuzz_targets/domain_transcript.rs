//! A register domain's transcript file
//! (`domain::transcript::decode_domain_transcript`) and its verifier
//! against a fixed manifest with one domain.
//!
//! Checked: decoding never panics and what decodes re-encodes to the same
//! bytes; verification never panics; a transcript that verifies has a
//! head equal to its last entry's hash.
#![no_main]

use kobling_protocol::{
    domain::{
        transcript::{
            decode_domain_transcript, encode_domain_transcript, verify_domain_transcript,
        },
        DomainSpec,
    },
    manifest::{Ed25519Key, Manifest, Member, Operator, Role},
    types::Name,
};
use libfuzzer_sys::fuzz_target;

/// The Ed25519 public key of the secret `[i; 32]` (so a seed can be a
/// transcript that verifies).
fn key(i: u8) -> Ed25519Key {
    Ed25519Key(
        ed25519_dalek::SigningKey::from_bytes(&[i; 32])
            .verifying_key()
            .to_bytes(),
    )
}

fn manifest() -> Manifest {
    let member = |name: &str, role: Role, i: u8| Member {
        name: Name::new(name).expect("valid"),
        role,
        address: format!("127.0.0.1:{}", 7400 + u16::from(i)),
        tls_spki_sha256: kobling_protocol::manifest::TlsFingerprint([i; 32]),
        signing_key: key(i + 10),
        hpke_key: kobling_protocol::manifest::X25519Key([i + 20; 32]),
        operators: if role == Role::Register {
            (0..2)
                .map(|j| Operator {
                    name: format!("op{j}"),
                    key: key(i + 30 + 10 * j),
                })
                .collect()
        } else {
            Vec::new()
        },
    };
    Manifest {
        federation: "fuzz".into(),
        portals: Vec::new(),
        members: vec![
            member("NPR", Role::Register, 1),
            member("RESEPT", Role::Register, 2),
            member("LINKER", Role::Linker, 3),
        ],
        authorities: Vec::new(),
        domains: vec![DomainSpec {
            name: Name::new("RESEPT").expect("valid"),
            holder: Name::new("RESEPT").expect("valid"),
            key_holders: None,
            kind: Default::default(),
        }],
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = decode_domain_transcript(data) else {
        return;
    };
    assert_eq!(encode_domain_transcript(&entries), data);
    let m = manifest();
    if let Ok(state) = verify_domain_transcript(&m, &Name::new("RESEPT").expect("valid"), &entries)
    {
        assert_eq!(Some(state.head), entries.last().map(|e| e.hash()));
    }
});
