//! Entry points for the fuzz targets in `fuzz/` (compiled only with
//! `--cfg fuzzing`, which `cargo fuzz` sets), as quinn-proto's `fuzzing`
//! module: the crate-private decoders of `keystore.kob` and of seed files,
//! and their encoders, so a target can check round trips. Nothing here is
//! part of the API.

use std::path::Path;

use zeroize::Zeroizing;

use kobling_protocol::share::Domain;

use crate::{
    error::KeystoreError,
    format::{self, FormatError, Protection, Secrets},
    kdf::{KdfParams, SALT_LEN},
    seeds, tls,
};

/// The fields of a keystore file's payload, in the clear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeystoreFields {
    /// The master secret m.
    pub master: [u8; 32],
    /// The Ed25519 secret key.
    pub ed25519: [u8; 32],
    /// The X25519 secret key.
    pub x25519: [u8; 32],
    /// The TLS private key (PKCS#8 DER).
    pub tls_key: Vec<u8>,
    /// The TLS certificate (DER).
    pub tls_cert: Vec<u8>,
}

impl KeystoreFields {
    fn from_secrets(s: &Secrets) -> Self {
        Self {
            master: *s.master,
            ed25519: *s.ed25519,
            x25519: *s.x25519,
            tls_key: s.tls_key.to_vec(),
            tls_cert: s.tls_cert.clone(),
        }
    }

    fn to_secrets(&self) -> Secrets {
        Secrets {
            master: Zeroizing::new(self.master),
            ed25519: Zeroizing::new(self.ed25519),
            x25519: Zeroizing::new(self.x25519),
            tls_key: Zeroizing::new(self.tls_key.clone()),
            tls_cert: self.tls_cert.clone(),
        }
    }
}

/// Decodes `keystore.kob` bytes as [`Keystore::open`](crate::Keystore::open)
/// does after reading the file.
///
/// # Errors
///
/// As `format::decode`.
pub fn decode_keystore(
    bytes: &[u8],
    passphrase: Option<&str>,
) -> Result<KeystoreFields, KeystoreError> {
    format::decode(Path::new("fuzz"), bytes, passphrase).map(|s| KeystoreFields::from_secrets(&s))
}

/// Encodes a keystore file without a passphrase (KDF 0).
///
/// # Errors
///
/// As `format::encode`.
pub fn encode_plaintext_keystore(fields: &KeystoreFields) -> Result<Vec<u8>, KeystoreError> {
    format::encode(Path::new("fuzz"), &fields.to_secrets(), Protection::None)
}

/// Encodes a keystore file under `passphrase` with Argon2id costs
/// `(m_cost_kib, t_cost, p_cost)`, a fixed salt and a fixed nonce.
///
/// # Errors
///
/// [`KeystoreError::InvalidKdfParams`], or as `format::encode`.
pub fn encode_encrypted_keystore(
    fields: &KeystoreFields,
    passphrase: &str,
    costs: (u32, u32, u32),
) -> Result<Vec<u8>, KeystoreError> {
    let protection = Protection::Passphrase {
        passphrase,
        params: KdfParams::new(costs.0, costs.1, costs.2)?,
        salt: [0x5a; SALT_LEN],
        nonce: [0xa5; crate::cipher::NONCE_LEN],
    };
    format::encode(Path::new("fuzz"), &fields.to_secrets(), protection)
}

/// The TLS check `open` runs on a decoded keystore: the SHA-256 of the
/// certificate's SubjectPublicKeyInfo, if it carries the key's public key.
///
/// # Errors
///
/// [`FormatError::TlsKey`] or [`FormatError::TlsMismatch`].
pub fn tls_spki_sha256(tls_key: &[u8], tls_cert: &[u8]) -> Result<[u8; 32], FormatError> {
    tls::spki_sha256(tls_key, tls_cert)
}

/// Unwraps a seed file's bytes for `domain` in the keystore with master
/// secret `master`.
///
/// # Errors
///
/// As the seed store's reader.
pub fn unwrap_seed(
    master: &[u8; 32],
    domain: &Domain,
    bytes: &[u8],
) -> Result<[u8; 32], FormatError> {
    seeds::unwrap_seed(&seeds::wrap_key(master), domain, bytes).map(|s| *s)
}

/// Wraps `seed` for `domain` under master secret `master` with `nonce`.
///
/// # Errors
///
/// [`FormatError::Authentication`] if sealing fails.
pub fn wrap_seed(
    master: &[u8; 32],
    domain: &Domain,
    seed: &[u8; 32],
    nonce: &[u8; 24],
) -> Result<Vec<u8>, FormatError> {
    seeds::wrap_seed(&seeds::wrap_key(master), domain, seed, nonce)
}
