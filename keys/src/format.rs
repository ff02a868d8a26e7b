//! The keystore file `keystore.kob`, format version 1.
//!
//! All integers are little-endian. The file starts with a header; what
//! follows depends on the KDF identifier.
//!
//! # Without a passphrase (KDF 0)
//!
//! ```text
//! offset  len  field
//!      0   16  magic  b"KOBLING-KEYSTORE"
//!     16    2  version (u16) = 1
//!     18    1  KDF = 0 (none)
//!     19    n  payload (postcard, below)
//!   19+n   32  checksum = framed_sha3("KOBLING-V1-KEYSTORE-CHECKSUM", [bytes 0 .. 19+n])
//! ```
//!
//! The checksum is not a security measure (whoever can change the file can
//! recompute it); it turns a damaged file into an error instead of a
//! silently different master secret.
//!
//! # With a passphrase (KDF 1, Argon2id v1.3)
//!
//! ```text
//! offset  len  field
//!      0   16  magic  b"KOBLING-KEYSTORE"
//!     16    2  version (u16) = 1
//!     18    1  KDF = 1 (Argon2id, version 0x13)
//!     19    4  m_cost in KiB (u32)
//!     23    4  t_cost (u32)
//!     27    4  p_cost (u32)
//!     31   16  salt
//!     47   32  passphrase check value (see `kdf`)
//!     79   24  XChaCha20-Poly1305 nonce
//!    103  n+16 ciphertext of the payload ‖ 16-byte tag, AAD = bytes 0 .. 79
//! ```
//!
//! The key and check value are derived from the passphrase as described in
//! the `kdf` module. `open` refuses costs outside [`KdfParams`]'s bounds
//! before running Argon2id, so a crafted header cannot make it allocate
//! more than 4 GiB.
//!
//! # Payload (postcard)
//!
//! ```text
//! len     field
//!  32     master secret m
//!  32     Ed25519 secret key (RFC 8032 seed)
//!  32     X25519 secret key (unclamped bytes; clamped when used)
//!  v+k    TLS private key, PKCS#8 DER: varint length v, then k bytes
//!  v+c    TLS certificate, DER: varint length v, then c bytes
//! ```
//!
//! (postcard writes a `[u8; 32]` as its 32 bytes and a byte slice as an
//! unsigned LEB128 varint length followed by the bytes.) No bytes may
//! follow the payload.
//!
//! # Evolution
//!
//! A reader refuses a version it does not know with
//! [`FormatError::UnsupportedVersion`]. A later version may add KDF
//! identifiers or payload fields; version 1 files stay readable.

use std::path::Path;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use kobling_protocol::hash::framed_sha3;

use crate::{
    cipher::{self, NONCE_LEN, TAG_LEN},
    error::KeystoreError,
    kdf::{KdfParams, PassphraseKeys, CHECK_LEN, SALT_LEN},
};

/// The keystore file's magic bytes.
pub const MAGIC: &[u8; 16] = b"KOBLING-KEYSTORE";
/// The format version this crate writes.
pub const VERSION: u16 = 1;
/// The largest keystore file `open` reads.
pub const MAX_FILE_LEN: usize = 64 * 1024;

/// Tag of the plaintext keystore checksum.
const CHECKSUM_TAG: &[u8] = b"KOBLING-V1-KEYSTORE-CHECKSUM";
/// KDF identifier: no passphrase.
const KDF_NONE: u8 = 0;
/// KDF identifier: Argon2id v1.3.
const KDF_ARGON2ID: u8 = 1;
/// Length of magic, version and KDF identifier.
const PREFIX_LEN: usize = 16 + 2 + 1;
/// Length of the Argon2id header fields after the prefix.
const ARGON2_FIELDS_LEN: usize = 3 * 4 + SALT_LEN + CHECK_LEN;
/// Length of the authenticated header of an encrypted file.
const ENCRYPTED_HEADER_LEN: usize = PREFIX_LEN + ARGON2_FIELDS_LEN;
/// Length of the plaintext checksum.
const CHECKSUM_LEN: usize = 32;
/// Upper bound on postcard's length prefixes of the two byte strings.
const MAX_VARINT_LEN: usize = 10;

/// What is wrong with a keystore or seed file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The file ends before its fixed-size fields do.
    #[error("the file is truncated")]
    Truncated,
    /// The file is larger than any valid file.
    #[error("the file is larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// The magic bytes are wrong.
    #[error("wrong magic bytes (not a Kobling keystore or seed file)")]
    BadMagic,
    /// A version this build does not know.
    #[error("format version {0} is not supported by this build (it reads version 1)")]
    UnsupportedVersion(u16),
    /// An unknown KDF identifier.
    #[error("unknown key derivation function {0}")]
    UnknownKdf(u8),
    /// Argon2id costs outside the accepted bounds.
    #[error("Argon2id parameters out of range (m = {m_cost_kib} KiB, t = {t_cost}, p = {p_cost})")]
    KdfParamsOutOfRange {
        /// Memory cost in KiB.
        m_cost_kib: u32,
        /// Number of passes.
        t_cost: u32,
        /// Degree of parallelism.
        p_cost: u32,
    },
    /// The plaintext keystore's checksum does not match.
    #[error("checksum mismatch")]
    ChecksumMismatch,
    /// Authenticated decryption failed.
    #[error("authenticated decryption failed (the ciphertext or header was altered)")]
    Authentication,
    /// The payload does not decode.
    #[error("the payload does not decode: {0}")]
    Payload(postcard::Error),
    /// Bytes follow the payload.
    #[error("unexpected bytes after the payload")]
    TrailingBytes,
    /// The TLS private key does not parse.
    #[error("the TLS private key does not parse as PKCS#8")]
    TlsKey,
    /// The TLS certificate is not for the stored TLS key.
    #[error("the TLS certificate does not carry the TLS private key's public key")]
    TlsMismatch,
}

/// The long-term secrets held in `keystore.kob`.
pub(crate) struct Secrets {
    /// The master secret m.
    pub(crate) master: Zeroizing<[u8; 32]>,
    /// The Ed25519 secret key.
    pub(crate) ed25519: Zeroizing<[u8; 32]>,
    /// The X25519 secret key.
    pub(crate) x25519: Zeroizing<[u8; 32]>,
    /// The TLS private key (PKCS#8 DER).
    pub(crate) tls_key: Zeroizing<Vec<u8>>,
    /// The TLS certificate (DER).
    pub(crate) tls_cert: Vec<u8>,
}

/// How the payload is protected on disk.
pub(crate) enum Protection<'a> {
    /// Plaintext with a checksum.
    None,
    /// Encrypted under an Argon2id-derived key.
    Passphrase {
        /// The passphrase.
        passphrase: &'a str,
        /// Argon2id costs.
        params: KdfParams,
        /// Fresh random salt.
        salt: [u8; SALT_LEN],
        /// Fresh random nonce.
        nonce: [u8; NONCE_LEN],
    },
}

/// The payload as postcard sees it.
#[derive(Serialize, Deserialize)]
struct Record<'a> {
    master: [u8; 32],
    ed25519: [u8; 32],
    x25519: [u8; 32],
    tls_key: &'a [u8],
    tls_cert: &'a [u8],
}

impl Drop for Record<'_> {
    fn drop(&mut self) {
        self.master.zeroize();
        self.ed25519.zeroize();
        self.x25519.zeroize();
    }
}

/// Encodes a keystore file.
pub(crate) fn encode(
    path: &Path,
    secrets: &Secrets,
    protection: Protection<'_>,
) -> Result<Vec<u8>, KeystoreError> {
    let payload = encode_payload(secrets).map_err(|source| KeystoreError::Corrupt {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::with_capacity(ENCRYPTED_HEADER_LEN + NONCE_LEN + payload.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    match protection {
        Protection::None => {
            out.push(KDF_NONE);
            out.extend_from_slice(&payload);
            let checksum = framed_sha3(CHECKSUM_TAG, &[&out]);
            out.extend_from_slice(&checksum);
        }
        Protection::Passphrase {
            passphrase,
            params,
            salt,
            nonce,
        } => {
            let keys = PassphraseKeys::derive(passphrase, &salt, params)?;
            out.push(KDF_ARGON2ID);
            out.extend_from_slice(&params.m_cost_kib().to_le_bytes());
            out.extend_from_slice(&params.t_cost().to_le_bytes());
            out.extend_from_slice(&params.p_cost().to_le_bytes());
            out.extend_from_slice(&salt);
            out.extend_from_slice(&keys.check);
            let sealed = cipher::seal(&keys.key, &nonce, &out, &payload).map_err(|_| {
                KeystoreError::Corrupt {
                    path: path.to_path_buf(),
                    source: FormatError::Authentication,
                }
            })?;
            out.extend_from_slice(&nonce);
            out.extend_from_slice(&sealed);
        }
    }
    Ok(out)
}

fn encode_payload(secrets: &Secrets) -> Result<Zeroizing<Vec<u8>>, FormatError> {
    let record = Record {
        master: *secrets.master,
        ed25519: *secrets.ed25519,
        x25519: *secrets.x25519,
        tls_key: &secrets.tls_key,
        tls_cert: &secrets.tls_cert,
    };
    let max = 3 * 32 + 2 * MAX_VARINT_LEN + secrets.tls_key.len() + secrets.tls_cert.len();
    // Sized up front: serializing never reallocates secret bytes.
    let mut buf = Zeroizing::new(vec![0u8; max]);
    let used = postcard::to_slice(&record, &mut buf)
        .map_err(FormatError::Payload)?
        .len();
    buf.truncate(used);
    Ok(buf)
}

/// Decodes a keystore file.
///
/// # Errors
///
/// [`KeystoreError::Corrupt`] for a malformed file,
/// [`KeystoreError::WrongPassphrase`], [`KeystoreError::PassphraseRequired`]
/// or [`KeystoreError::UnexpectedPassphrase`] for a passphrase that does not
/// fit the file, [`KeystoreError::Kdf`] if Argon2id fails.
pub(crate) fn decode(
    path: &Path,
    bytes: &[u8],
    passphrase: Option<&str>,
) -> Result<Secrets, KeystoreError> {
    let corrupt = |source| KeystoreError::Corrupt {
        path: path.to_path_buf(),
        source,
    };
    if bytes.len() > MAX_FILE_LEN {
        return Err(corrupt(FormatError::TooLarge { max: MAX_FILE_LEN }));
    }
    let mut r = Reader(bytes);
    if r.take::<16>().map_err(corrupt)? != *MAGIC {
        return Err(corrupt(FormatError::BadMagic));
    }
    let version = u16::from_le_bytes(r.take().map_err(corrupt)?);
    if version != VERSION {
        return Err(corrupt(FormatError::UnsupportedVersion(version)));
    }
    let [kdf] = r.take().map_err(corrupt)?;
    match kdf {
        KDF_NONE => {
            if passphrase.is_some() {
                return Err(KeystoreError::UnexpectedPassphrase {
                    path: path.to_path_buf(),
                });
            }
            let body_len = bytes
                .len()
                .checked_sub(PREFIX_LEN + CHECKSUM_LEN)
                .ok_or(corrupt(FormatError::Truncated))?;
            let (covered, checksum) = bytes.split_at(PREFIX_LEN + body_len);
            if framed_sha3(CHECKSUM_TAG, &[covered]) != checksum {
                return Err(corrupt(FormatError::ChecksumMismatch));
            }
            decode_payload(&covered[PREFIX_LEN..]).map_err(corrupt)
        }
        KDF_ARGON2ID => {
            let m_cost_kib = u32::from_le_bytes(r.take().map_err(corrupt)?);
            let t_cost = u32::from_le_bytes(r.take().map_err(corrupt)?);
            let p_cost = u32::from_le_bytes(r.take().map_err(corrupt)?);
            let salt: [u8; SALT_LEN] = r.take().map_err(corrupt)?;
            let check: [u8; CHECK_LEN] = r.take().map_err(corrupt)?;
            let nonce: [u8; NONCE_LEN] = r.take().map_err(corrupt)?;
            let sealed = r.0;
            if sealed.len() < TAG_LEN {
                return Err(corrupt(FormatError::Truncated));
            }
            let params = KdfParams::new(m_cost_kib, t_cost, p_cost).map_err(|_| {
                corrupt(FormatError::KdfParamsOutOfRange {
                    m_cost_kib,
                    t_cost,
                    p_cost,
                })
            })?;
            let Some(passphrase) = passphrase else {
                return Err(KeystoreError::PassphraseRequired {
                    path: path.to_path_buf(),
                });
            };
            let keys = PassphraseKeys::derive(passphrase, &salt, params)?;
            if !keys.matches(&check) {
                return Err(KeystoreError::WrongPassphrase {
                    path: path.to_path_buf(),
                });
            }
            let aad = &bytes[..ENCRYPTED_HEADER_LEN];
            let payload = cipher::open(&keys.key, &nonce, aad, sealed)
                .map_err(|_| corrupt(FormatError::Authentication))?;
            decode_payload(&payload).map_err(corrupt)
        }
        other => Err(corrupt(FormatError::UnknownKdf(other))),
    }
}

fn decode_payload(payload: &[u8]) -> Result<Secrets, FormatError> {
    let (record, rest) =
        postcard::take_from_bytes::<Record<'_>>(payload).map_err(FormatError::Payload)?;
    if !rest.is_empty() {
        return Err(FormatError::TrailingBytes);
    }
    Ok(Secrets {
        master: Zeroizing::new(record.master),
        ed25519: Zeroizing::new(record.ed25519),
        x25519: Zeroizing::new(record.x25519),
        tls_key: Zeroizing::new(record.tls_key.to_vec()),
        tls_cert: record.tls_cert.to_vec(),
    })
}

/// A cursor over fixed-size fields.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl Reader<'_> {
    /// The next `N` bytes.
    pub(crate) fn take<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        if self.0.len() < N {
            return Err(FormatError::Truncated);
        }
        let (head, tail) = self.0.split_at(N);
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        self.0 = tail;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets {
            master: Zeroizing::new([1; 32]),
            ed25519: Zeroizing::new([2; 32]),
            x25519: Zeroizing::new([3; 32]),
            tls_key: Zeroizing::new(vec![4; 200]),
            tls_cert: vec![5; 300],
        }
    }

    fn same(a: &Secrets, b: &Secrets) -> bool {
        *a.master == *b.master
            && *a.ed25519 == *b.ed25519
            && *a.x25519 == *b.x25519
            && *a.tls_key == *b.tls_key
            && a.tls_cert == b.tls_cert
    }

    #[test]
    fn plaintext_layout_is_as_documented() {
        let p = Path::new("k");
        let bytes = encode(p, &secrets(), Protection::None).expect("encode");
        assert_eq!(&bytes[..16], b"KOBLING-KEYSTORE");
        assert_eq!(&bytes[16..19], &[1, 0, 0]);
        assert_eq!(&bytes[19..51], &[1; 32]);
        assert_eq!(&bytes[51..83], &[2; 32]);
        assert_eq!(&bytes[83..115], &[3; 32]);
        // 200 = 0xc8 → LEB128 [0xc8, 0x01]
        assert_eq!(&bytes[115..117], &[0xc8, 0x01]);
        assert_eq!(&bytes[117..317], &[4; 200][..]);
        // 300 = 0x12c → LEB128 [0xac, 0x02]
        assert_eq!(&bytes[317..319], &[0xac, 0x02]);
        assert_eq!(&bytes[319..619], &[5; 300][..]);
        assert_eq!(bytes.len(), 619 + 32);
        assert_eq!(
            &bytes[619..],
            &framed_sha3(b"KOBLING-V1-KEYSTORE-CHECKSUM", &[&bytes[..619]])
        );
        assert!(same(&decode(p, &bytes, None).expect("decode"), &secrets()));
    }

    /// Cheap Argon2 parameters, passphrase "pass", salt `[6; 16]`, nonce
    /// `[7; 24]`.
    fn passphrase_protection() -> (KdfParams, Protection<'static>) {
        let params = KdfParams::new(64, 1, 1).expect("params");
        let protection = Protection::Passphrase {
            passphrase: "pass",
            params,
            salt: [6; 16],
            nonce: [7; 24],
        };
        (params, protection)
    }

    #[test]
    fn encrypted_layout_is_as_documented() {
        let p = Path::new("k");
        let (params, protection) = passphrase_protection();
        let bytes = encode(p, &secrets(), protection).expect("encode");
        assert_eq!(&bytes[16..19], &[1, 0, 1]);
        assert_eq!(&bytes[19..23], &64u32.to_le_bytes());
        assert_eq!(&bytes[23..27], &1u32.to_le_bytes());
        assert_eq!(&bytes[27..31], &1u32.to_le_bytes());
        assert_eq!(&bytes[31..47], &[6; 16]);
        let keys = PassphraseKeys::derive("pass", &[6; 16], params).expect("kdf");
        assert_eq!(&bytes[47..79], &keys.check);
        assert_eq!(&bytes[79..103], &[7; 24]);
        let payload = cipher::open(&keys.key, &[7; 24], &bytes[..79], &bytes[103..]).expect("open");
        assert_eq!(*payload, *encode_payload(&secrets()).expect("payload"));
        assert!(same(
            &decode(p, &bytes, Some("pass")).expect("decode"),
            &secrets()
        ));
    }

    #[test]
    fn header_fields_are_checked() {
        let p = Path::new("k");
        let good = encode(p, &secrets(), Protection::None).expect("encode");
        let mut v2 = good.clone();
        v2[16] = 2;
        assert!(matches!(
            decode(p, &v2, None),
            Err(KeystoreError::Corrupt {
                source: FormatError::UnsupportedVersion(2),
                ..
            })
        ));
        let mut kdf = good.clone();
        kdf[18] = 9;
        assert!(matches!(
            decode(p, &kdf, None),
            Err(KeystoreError::Corrupt {
                source: FormatError::UnknownKdf(9),
                ..
            })
        ));
        let mut magic = good;
        magic[0] = b'k';
        assert!(matches!(
            decode(p, &magic, None),
            Err(KeystoreError::Corrupt {
                source: FormatError::BadMagic,
                ..
            })
        ));
    }

    #[test]
    fn crafted_kdf_costs_are_refused_before_running_argon2() {
        let p = Path::new("k");
        let (_, protection) = passphrase_protection();
        let mut bytes = encode(p, &secrets(), protection).expect("encode");
        bytes[19..23].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(p, &bytes, Some("pass")),
            Err(KeystoreError::Corrupt {
                source: FormatError::KdfParamsOutOfRange {
                    m_cost_kib: u32::MAX,
                    ..
                },
                ..
            })
        ));
    }

    #[test]
    fn trailing_bytes_in_payload_are_refused() {
        let mut payload = encode_payload(&secrets()).expect("payload").to_vec();
        payload.push(0);
        assert_eq!(
            decode_payload(&payload).err(),
            Some(FormatError::TrailingBytes)
        );
    }
}
