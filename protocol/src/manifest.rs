//! The federation manifest: who is in the federation, with which keys
//! (PROTOCOL.md §2).
//!
//! This module holds the checked, in-memory form and its canonical digest.
//! Reading it from a TOML file is the node's business; the types
//! deserialize from TOML (keys as hex strings) and from postcard (keys as
//! raw bytes) alike.

use serde::{Deserialize, Serialize};

use crate::{
    hash::framed_sha3,
    types::{Digest, Name},
};

mod key;

pub use self::key::{Ed25519Key, TlsFingerprint, X25519Key};

/// A member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A register: owns lists, holds a key share, is a hop in every other
    /// register's chain.
    Register,
    /// The linker: last hop of every chain, matches pseudonyms, keeps the
    /// transcript.
    Linker,
}

/// An authorised operator of a register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// The operator's name (for reports).
    pub name: String,
    /// The operator's Ed25519 public key.
    pub key: Ed25519Key,
}

/// A federation member: a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's name, e.g. `NPR`.
    pub name: Name,
    /// Register or linker.
    pub role: Role,
    /// QUIC address, `host:port`.
    pub address: String,
    /// SHA-256 of the TLS certificate's SubjectPublicKeyInfo.
    pub tls_spki_sha256: TlsFingerprint,
    /// The node's Ed25519 signing key.
    pub signing_key: Ed25519Key,
    /// The node's X25519 (HPKE) public key.
    pub hpke_key: X25519Key,
    /// The register's authorised operators (empty for the linker).
    #[serde(default)]
    pub operators: Vec<Operator>,
}

/// The federation manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The federation's name.
    pub federation: String,
    /// The members, in manifest order (which fixes the order of hops).
    pub members: Vec<Member>,
    /// The access authorities (issue 18 item 2): bodies such as
    /// Helsedataservice or a register owner's access office, whose
    /// signature on a project order the linker requires.
    #[serde(default)]
    pub authorities: Vec<Authority>,
    /// The register domains (PROTOCOL.md §10), `[[domains]]` in TOML.
    #[serde(default)]
    pub domains: Vec<crate::domain::DomainSpec>,
    /// The innsyn portals (PROTOCOL.md §10a, issue 16), `[[portals]]` in
    /// TOML: members that ask registers for a citizen's rows on the
    /// citizen's behalf. A register serves one only after two of its
    /// operators admitted it.
    #[serde(default)]
    pub portals: Vec<Portal>,
}

/// An innsyn portal (e.g. Helsenorge): it signs its requests with its
/// Ed25519 key and connects as a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Portal {
    /// The portal's name (as operators admit it), e.g. `HELSENORGE`.
    pub name: Name,
    /// Its Ed25519 key.
    pub key: Ed25519Key,
}

/// An access authority: grants projects access by signing their orders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authority {
    /// Who it is (for people: e.g. "Helsedataservice").
    pub name: String,
    /// Its Ed25519 key.
    pub key: Ed25519Key,
}

/// A manifest that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Two members share a name.
    #[error("member {0} is listed twice")]
    DuplicateMember(Name),
    /// Not exactly one linker.
    #[error("the manifest must name exactly one linker, found {0}")]
    LinkerCount(usize),
    /// No register.
    #[error("the manifest names no register")]
    NoRegister,
    /// An access authority without a name, or with a key listed before.
    #[error("access authority {0:?} has no name or a key listed before")]
    BadAuthority(String),
    /// A key appears twice where keys must be distinct.
    #[error("a key of member {0} is also used elsewhere in the manifest")]
    DuplicateKey(Name),
    /// A register with fewer than two operators cannot meet the two-person
    /// rule.
    #[error("register {0} lists fewer than two operators (the two-person rule needs two)")]
    TooFewOperators(Name),
    /// The linker lists operators.
    #[error("the linker {0} must not list operators")]
    LinkerOperators(Name),
    /// A portal named before, or whose key is listed elsewhere in the
    /// manifest, or whose name is a member's.
    #[error("portal {0} is listed twice, has a member's name, or a key listed before")]
    BadPortal(Name),
    /// A `[[domains]]` entry is broken.
    #[error(transparent)]
    Domain(#[from] crate::domain::DomainSpecError),
}

impl Manifest {
    /// Checks the manifest's invariants.
    ///
    /// # Errors
    ///
    /// The first [`ManifestError`] found.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let mut names = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for m in &self.members {
            if !names.insert(&m.name) {
                return Err(ManifestError::DuplicateMember(m.name.clone()));
            }
            let member_keys = [m.tls_spki_sha256.0, m.signing_key.0, m.hpke_key.0];
            for k in member_keys
                .iter()
                .chain(m.operators.iter().map(|o| &o.key.0))
            {
                if !keys.insert(*k) {
                    return Err(ManifestError::DuplicateKey(m.name.clone()));
                }
            }
            match m.role {
                Role::Register if m.operators.len() < 2 => {
                    return Err(ManifestError::TooFewOperators(m.name.clone()))
                }
                Role::Linker if !m.operators.is_empty() => {
                    return Err(ManifestError::LinkerOperators(m.name.clone()))
                }
                _ => {}
            }
        }
        for a in &self.authorities {
            if a.name.trim().is_empty() || !keys.insert(a.key.0) {
                return Err(ManifestError::BadAuthority(a.name.clone()));
            }
        }
        let linkers = self
            .members
            .iter()
            .filter(|m| m.role == Role::Linker)
            .count();
        if linkers != 1 {
            return Err(ManifestError::LinkerCount(linkers));
        }
        if self.registers().next().is_none() {
            return Err(ManifestError::NoRegister);
        }
        let mut portals = std::collections::HashSet::new();
        for p in &self.portals {
            if !portals.insert(&p.name) || names.contains(&p.name) || !keys.insert(p.key.0) {
                return Err(ManifestError::BadPortal(p.name.clone()));
            }
        }
        crate::domain::validate_domains(self)?;
        Ok(())
    }

    /// The canonical digest: `framed_sha3("KOBLING-V1-MANIFEST", [postcard(manifest)])`.
    /// Formatting of the TOML file does not change it; any change of
    /// content does.
    pub fn digest(&self) -> Digest {
        // Encoding a Vec/String/array structure to a Vec cannot fail.
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        Digest(framed_sha3(b"KOBLING-V1-MANIFEST", &[&bytes]))
    }

    /// The member called `name`.
    pub fn member(&self, name: &Name) -> Option<&Member> {
        self.members.iter().find(|m| &m.name == name)
    }

    /// The linker (a validated manifest has exactly one).
    pub fn linker(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.role == Role::Linker)
    }

    /// The registers, in manifest order.
    pub fn registers(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.role == Role::Register)
    }

    /// The member whose node signing key is `key`.
    pub fn member_by_signing_key(&self, key: &Ed25519Key) -> Option<&Member> {
        self.members.iter().find(|m| &m.signing_key == key)
    }

    /// The member whose TLS key fingerprint is `fingerprint`.
    pub fn member_by_tls(&self, fingerprint: &TlsFingerprint) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| &m.tls_spki_sha256 == fingerprint)
    }

    /// The innsyn portal whose key is `key`.
    pub fn portal_by_key(&self, key: &Ed25519Key) -> Option<&Portal> {
        self.portals.iter().find(|p| &p.key == key)
    }

    /// The innsyn portal called `name`.
    pub fn portal(&self, name: &Name) -> Option<&Portal> {
        self.portals.iter().find(|p| &p.name == name)
    }

    /// Whether `key` is an access authority's key.
    pub fn is_authority(&self, key: &Ed25519Key) -> bool {
        self.authorities.iter().any(|a| &a.key == key)
    }

    /// Whether `key` is an authorised operator key of register `register`.
    pub fn is_operator_of(&self, register: &Name, key: &Ed25519Key) -> bool {
        self.member(register)
            .is_some_and(|m| m.role == Role::Register && m.operators.iter().any(|o| &o.key == key))
    }

    /// The hop order of `owner`'s list among `participants` (register
    /// names): the owner first, then the other participating registers in
    /// manifest order. The linker follows as the last hop.
    pub fn chain_order(&self, owner: &Name, participants: &[Name]) -> Vec<Name> {
        let mut order = vec![owner.clone()];
        order.extend(
            self.registers()
                .map(|m| &m.name)
                .filter(|n| *n != owner && participants.contains(n))
                .cloned(),
        );
        order
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fixtures::manifest_of;

    pub(crate) fn member(name: &str, role: Role, seed: u8, operators: usize) -> Member {
        Member {
            name: Name::new(name).expect("valid"),
            role,
            address: format!("127.0.0.1:{}", 4000 + seed as u16),
            tls_spki_sha256: TlsFingerprint([seed; 32]),
            signing_key: Ed25519Key([seed.wrapping_add(100); 32]),
            hpke_key: X25519Key([seed.wrapping_add(200); 32]),
            operators: (0..operators)
                .map(|i| Operator {
                    name: format!("op{i}"),
                    key: Ed25519Key([
                        seed ^ 0x55,
                        i as u8,
                        1,
                        2,
                        3,
                        4,
                        5,
                        6,
                        7,
                        8,
                        9,
                        10,
                        11,
                        12,
                        13,
                        14,
                        15,
                        16,
                        17,
                        18,
                        19,
                        20,
                        21,
                        22,
                        23,
                        24,
                        25,
                        26,
                        27,
                        28,
                        29,
                        30,
                    ]),
                })
                .collect(),
        }
    }

    fn manifest() -> Manifest {
        manifest_of(
            vec![
                member("NPR", Role::Register, 1, 2),
                member("KPR", Role::Register, 2, 2),
                member("SSB", Role::Register, 3, 3),
                member("LINKER", Role::Linker, 4, 0),
            ],
            Vec::new(),
        )
    }

    /// The manifest's bytes (and so its digest, which every order and
    /// request signs) are those of the manifests written before the key
    /// kinds had types of their own: every key 32 raw bytes in postcard.
    /// (The value changed once since, with the `portals` field: an empty
    /// list is one more byte, `00`.)
    #[test]
    fn the_manifest_digest_is_unchanged_by_the_key_types() {
        let mut m = manifest();
        m.authorities.push(Authority {
            name: "authority".into(),
            key: Ed25519Key([0x77; 32]),
        });
        let bytes = postcard::to_allocvec(&m).expect("encodes");
        let back: Manifest = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(back, m);
        assert_eq!(
            m.digest().to_hex(),
            "2c44d4adc719bdb341cf3078c59cf1f36d41ace1ffb548ca58eab7a6d3efebbe"
        );
    }

    #[test]
    fn validation_catches_broken_manifests() {
        let m = manifest();
        assert_eq!(m.validate(), Ok(()));
        let mut two_linkers = m.clone();
        two_linkers.members[0].role = Role::Linker;
        two_linkers.members[0].operators.clear();
        assert_eq!(two_linkers.validate(), Err(ManifestError::LinkerCount(2)));
        let mut dup = m.clone();
        dup.members[1].name = Name::new("NPR").expect("valid");
        assert!(matches!(
            dup.validate(),
            Err(ManifestError::DuplicateMember(_))
        ));
        let mut one_op = m.clone();
        one_op.members[0].operators.pop();
        assert!(matches!(
            one_op.validate(),
            Err(ManifestError::TooFewOperators(_))
        ));
        let mut shared_key = m.clone();
        shared_key.members[1].signing_key = shared_key.members[0].signing_key;
        assert!(matches!(
            shared_key.validate(),
            Err(ManifestError::DuplicateKey(_))
        ));
    }

    #[test]
    fn digest_changes_with_content_and_chain_order_follows_the_manifest() {
        let m = manifest();
        let mut other = m.clone();
        other.members[2].address = "10.0.0.1:1".into();
        assert_ne!(m.digest(), other.digest());
        let n = |s: &str| Name::new(s).expect("valid");
        assert_eq!(
            m.chain_order(&n("SSB"), &[n("NPR"), n("SSB"), n("KPR")]),
            vec![n("SSB"), n("NPR"), n("KPR")]
        );
        assert_eq!(
            m.chain_order(&n("KPR"), &[n("KPR"), n("SSB")]),
            vec![n("KPR"), n("SSB")]
        );
        assert!(m.is_operator_of(&n("NPR"), &m.members[0].operators[1].key));
        assert!(!m.is_operator_of(&n("KPR"), &m.members[0].operators[1].key));
    }

    #[test]
    fn keys_are_hex_in_human_readable_formats() {
        let k = Ed25519Key([0xab; 32]);
        assert_eq!(Ed25519Key::from_hex(&k.to_hex()), Ok(k));
        assert!(Ed25519Key::from_hex("ab").is_err());
        assert!(Ed25519Key::from_hex(&"zz".repeat(32)).is_err());
        // Found by the `manifest` fuzz target: a sign inside a digit pair.
        let signed = "44ae8ae5cd5bb7db66c9d4aff1db2512f1df+76f13e14db9407720e4c4d2cf3c";
        assert_eq!(Ed25519Key::from_hex(signed), Err("expected 64 hex digits"));
        let bytes = postcard::to_allocvec(&k).expect("encode");
        assert_eq!(bytes.len(), 32);
    }
}
