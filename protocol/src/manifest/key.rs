//! The 32-byte public values of a manifest and of orders, one type per
//! kind: hex in human-readable formats (TOML), raw bytes in postcard. Every
//! kind encodes exactly as the others (and as the one `Key32` type of
//! before did), so manifests, orders and transcripts keep their bytes.

use core::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Defines a 32-byte value type with hex and postcard encodings.
macro_rules! key32 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), &self.to_hex()[..16])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl $name {
            /// Lower-case hex.
            pub fn to_hex(&self) -> String {
                to_hex(&self.0)
            }

            /// Parses 64 hex digits.
            ///
            /// # Errors
            ///
            /// A message saying what is wrong.
            pub fn from_hex(s: &str) -> Result<Self, &'static str> {
                from_hex(s).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = crate::bounded::BoundedString::<128>::deserialize(d)?;
                    Self::from_hex(&s).map_err(de::Error::custom)
                } else {
                    Ok(Self(<[u8; 32]>::deserialize(d)?))
                }
            }
        }
    };
}

key32! {
    /// An Ed25519 public key (a member's, an operator's, an authority's, a
    /// researcher's signing key): what signatures are checked against.
    Ed25519Key
}

key32! {
    /// A node's X25519 public key, that sealed data for it is encrypted
    /// to (HPKE).
    X25519Key
}

key32! {
    /// The SHA-256 of a TLS certificate's SubjectPublicKeyInfo: the pin
    /// that names a node on a connection.
    TlsFingerprint
}

fn to_hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Result<[u8; 32], &'static str> {
    let s = s.trim();
    // `from_str_radix` alone would also take a sign ("+7").
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("expected 64 hex digits");
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2).ok_or("expected hex digits")?, 16)
            .map_err(|_| "expected hex digits")?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_encodes_as_32_raw_bytes_and_as_hex() {
        let bytes = [0x5a; 32];
        let key = postcard::to_allocvec(&Ed25519Key(bytes)).expect("encodes");
        let pin = postcard::to_allocvec(&TlsFingerprint(bytes)).expect("encodes");
        assert_eq!(key, bytes.to_vec());
        assert_eq!(pin, key);
        let hpke = postcard::to_allocvec(&X25519Key(bytes)).expect("encodes");
        assert_eq!(hpke, key);
        let back: TlsFingerprint = postcard::from_bytes(&key).expect("decodes");
        assert_eq!(back, TlsFingerprint(bytes));
        assert_eq!(TlsFingerprint(bytes).to_hex(), Ed25519Key(bytes).to_hex());
        assert_eq!(
            TlsFingerprint::from_hex(&"5a".repeat(32)),
            Ok(TlsFingerprint(bytes))
        );
        assert!(TlsFingerprint::from_hex("+a").is_err());
    }
}
