//! The løpenummer (PROTOCOL.md §7): the project-specific pseudonym a
//! researcher sees, derived from a person's final pseudonym.

use core::{fmt, str::FromStr};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    group::WirePoint,
    hash::{framed_shake, tags},
    types::ProjectId,
};

/// A løpenummer: the project-specific pseudonym a researcher sees.
///
/// 16 characters of Crockford base32 (`0-9`, `A-Z` without `I L O U`),
/// encoding 80 bits. Lnr order is the order of the encoded bits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lnr([u8; Lnr::LEN]);

/// Why a string is not a løpenummer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LnrError {
    /// Not 16 bytes.
    #[error("a løpenummer has 16 characters, got {len} bytes")]
    WrongLength {
        /// The length in bytes.
        len: usize,
    },
    /// A byte outside the upper-case Crockford base32 alphabet.
    #[error("a løpenummer has only characters 0-9 and A-Z without I, L, O, U; bad character at byte {at}")]
    BadCharacter {
        /// The byte's offset.
        at: usize,
    },
}

/// The Crockford base32 alphabet.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl Lnr {
    /// The length in characters.
    pub const LEN: usize = 16;

    /// A placeholder for slots that are overwritten before use.
    pub(super) const PLACEHOLDER: Lnr = Lnr([b'0'; Lnr::LEN]);

    /// The lnr of a final pseudonym in a project (PROTOCOL.md §7):
    ///
    /// ```text
    /// h   = SHAKE256( le64(14) ‖ "KOBLING-V1-LNR" ‖ le64(|p|) ‖ p ‖ le64(32) ‖ P )[..10]
    /// lnr = Crockford base32 of h, most significant bits first (80 bits = 16 characters)
    /// ```
    ///
    /// with `p` the project id's bytes and `P` the 32-byte pseudonym
    /// encoding.
    pub fn derive(project: &ProjectId, pseudonym: &WirePoint) -> Lnr {
        let mut h = [0u8; 10];
        framed_shake(
            tags::LNR,
            &[project.as_bytes(), pseudonym.as_bytes()],
            &mut h,
        );
        let mut wide = [0u8; 16];
        wide[6..].copy_from_slice(&h);
        let bits = u128::from_be_bytes(wide);
        let mut out = [0u8; Lnr::LEN];
        for (i, c) in out.iter_mut().enumerate() {
            let shift = 75 - 5 * i;
            // Masked to 5 bits, so the cast is lossless.
            *c = ALPHABET[((bits >> shift) & 31) as usize];
        }
        Lnr(out)
    }

    /// The 16 characters.
    pub fn as_str(&self) -> &str {
        // ASCII by construction; the fallback is unreachable.
        core::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Display for Lnr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Lnr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lnr({})", self.as_str())
    }
}

impl FromStr for Lnr {
    type Err = LnrError;

    /// Parses the canonical form only: 16 upper-case characters of the
    /// alphabet (no lower case, no Crockford aliases such as `O` for `0`),
    /// so each lnr has exactly one spelling.
    fn from_str(s: &str) -> Result<Self, LnrError> {
        let bytes: [u8; Lnr::LEN] = s
            .as_bytes()
            .try_into()
            .map_err(|_| LnrError::WrongLength { len: s.len() })?;
        if let Some(at) = bytes.iter().position(|b| !ALPHABET.contains(b)) {
            return Err(LnrError::BadCharacter { at });
        }
        Ok(Lnr(bytes))
    }
}

impl Serialize for Lnr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Lnr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Lnr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 16-character løpenummer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Lnr, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use curve25519_dalek::constants::RISTRETTO_BASEPOINT_COMPRESSED;

    use super::*;
    use crate::link::tests::{project, pt};

    /// Known answer, computed independently with Python:
    ///
    /// ```python
    /// import hashlib, struct
    /// def framed(tag, fields):
    ///     b = struct.pack('<Q', len(tag)) + tag
    ///     for f in fields: b += struct.pack('<Q', len(f)) + f
    ///     return b
    /// A = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    /// G = bytes.fromhex("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76")
    /// d = hashlib.shake_256(framed(b"KOBLING-V1-LNR", [b"DEMO-1", G])).digest(10)
    /// n = int.from_bytes(d, 'big')       # d = 962e92eb9d14ab8d0276
    /// print(''.join(A[(n >> (75 - 5*i)) & 31] for i in range(16)))
    /// ```
    ///
    /// (`G` is the ristretto255 base point's encoding.)
    #[test]
    fn lnr_known_answer() {
        let g = WirePoint(RISTRETTO_BASEPOINT_COMPRESSED.to_bytes());
        assert_eq!(
            hex::encode(g.as_bytes()),
            "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76"
        );
        assert_eq!(
            Lnr::derive(&project("DEMO-1"), &g).as_str(),
            "JRQ95TWX2JNRT0KP"
        );
        assert_eq!(
            Lnr::derive(&project("DEMO-2"), &g).as_str(),
            "QK6BRPW2YFV7WFTA"
        );
    }

    #[test]
    fn lnr_format_and_parsing() {
        let lnr = Lnr::derive(&project("P-1"), &pt(7));
        assert_eq!(lnr.as_str().len(), 16);
        assert!(lnr.as_str().bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(lnr.to_string(), lnr.as_str());
        assert_eq!(format!("{lnr:?}"), format!("Lnr({lnr})"));
        assert_eq!(lnr.as_str().parse::<Lnr>(), Ok(lnr));
        assert_eq!("0000000000000000".parse::<Lnr>().map(|_| ()), Ok(()));
        assert_eq!("ZZZZZZZZZZZZZZZZ".parse::<Lnr>().map(|_| ()), Ok(()));
        assert_eq!(
            "JRQ95TWX2JNRT0K".parse::<Lnr>(),
            Err(LnrError::WrongLength { len: 15 })
        );
        assert_eq!(
            "JRQ95TWX2JNRT0KPX".parse::<Lnr>(),
            Err(LnrError::WrongLength { len: 17 })
        );
        for bad in ["jRQ95TWX2JNRT0KP", "IRQ95TWX2JNRT0KP", "LRQ95TWX2JNRT0KP"] {
            assert_eq!(bad.parse::<Lnr>(), Err(LnrError::BadCharacter { at: 0 }));
        }
        for bad in ["JRQ95TWX2JNRTOKP", "JRQ95TWX2JNRTUKP"] {
            assert_eq!(bad.parse::<Lnr>(), Err(LnrError::BadCharacter { at: 13 }));
        }
        assert!("JRQ95TWX2JNRT0Kø".parse::<Lnr>().is_err());

        let bytes = postcard::to_allocvec(&lnr).expect("encode");
        assert_eq!(postcard::from_bytes::<Lnr>(&bytes).expect("decode"), lnr);
        let bad = postcard::to_allocvec(&"jrq95twx2jnrt0kp").expect("encode");
        assert!(postcard::from_bytes::<Lnr>(&bad).is_err());
    }
}
