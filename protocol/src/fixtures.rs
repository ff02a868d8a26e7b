//! Deterministic keys, members and manifests for tests (this crate's and,
//! with the feature `test-fixtures`, other crates'). Never in a
//! production build.

use ed25519_dalek::SigningKey;

use crate::{
    domain::DomainSpec,
    manifest::{Ed25519Key, Manifest, Member, Operator, Role, TlsFingerprint, X25519Key},
    types::Name,
};

/// The Ed25519 signing key whose seed is 32 bytes `i`.
pub fn signing_key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i; 32])
}

/// Member `name` with role `role` from seed `i`: address
/// `127.0.0.1:7400+i`, node signing key [`signing_key`]`(i + 10)`, and for
/// a register two operators `op0`, `op1` with signing keys
/// `signing_key(i + 30)` and `signing_key(i + 40)`.
///
/// # Panics
///
/// If `name` is not a valid member name.
#[allow(clippy::expect_used)]
pub fn member(name: &str, role: Role, i: u8) -> Member {
    Member {
        name: Name::new(name).expect("a valid member name"),
        role,
        address: format!("127.0.0.1:{}", 7400 + u16::from(i)),
        tls_spki_sha256: TlsFingerprint([i; 32]),
        signing_key: Ed25519Key(signing_key(i + 10).verifying_key().to_bytes()),
        hpke_key: X25519Key([i + 20; 32]),
        operators: if role == Role::Register {
            (0..2)
                .map(|j| Operator {
                    name: format!("op{j}"),
                    key: Ed25519Key(signing_key(i + 30 + 10 * j).verifying_key().to_bytes()),
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// The federation "test" of `members` and `domains`, without portals or
/// access authorities (not validated).
pub fn manifest_of(members: Vec<Member>, domains: Vec<DomainSpec>) -> Manifest {
    Manifest {
        federation: "test".into(),
        portals: Vec::new(),
        members,
        authorities: Vec::new(),
        domains,
    }
}
