//! Encrypted backups of register-domain shares under the two-person rule
//! (PROTOCOL.md §10, "Continuity").
//!
//! A register domain lives for decades, longer than any keystore. A key
//! holder's share `k_{i,R}` is backed up in a file that opens only with
//! **both** of two operators' passphrases: each goes through Argon2id with
//! its own salt, and the key is a hash of both outputs. One operator alone
//! learns nothing, and cannot guess the other's passphrase offline without
//! paying Argon2id per guess.
//!
//! The backup is used to **re-share**: the lost or retired key holder's
//! share is opened once, on the replacement node, to convert the holder's
//! table by `k'_i·k_i⁻¹` (with the binding proof); it is never stored in a
//! keystore again.
//!
//! # Backup file, version 1 (130 bytes)
//!
//! ```text
//! offset  len  field
//!      0   12  magic  b"KOBLING-DBAK"
//!     12    2  version (u16, little-endian) = 1
//!     14    4  Argon2id m_cost in KiB (u32 LE)
//!     18    4  Argon2id t_cost (u32 LE)
//!     22    4  Argon2id p_cost (u32 LE)
//!     26   16  salt of the first operator's passphrase
//!     42   16  salt of the second operator's passphrase
//!     58   24  XChaCha20-Poly1305 nonce (random)
//!     82   48  ciphertext of the 32-byte share ‖ 16-byte tag
//!
//! a_1 = Argon2id(passphrase_1, salt_1), a_2 = Argon2id(passphrase_2, salt_2)   (32 bytes each)
//! key = framed_sha3("KOBLING-V1-DOMAIN-BACKUP-KEY", [a_1, a_2])
//! AAD = frame([bytes 0 .. 58, domain.to_bytes()])
//! ```
//!
//! The AAD binds the backup to its domain and to its header (cost
//! parameters included). The passphrases are given in the order they were
//! at backup time (first, second).

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use kobling_protocol::{
    hash::{frame, framed_sha3},
    share::{Domain, Share},
};

use crate::{
    cipher::{self, NONCE_LEN, TAG_LEN},
    entropy::Entropy,
    error::KeystoreError,
    format::{FormatError, Reader},
    kdf::{argon2id, KdfParams, SALT_LEN},
};

/// The backup file's magic bytes.
const MAGIC: &[u8; 12] = b"KOBLING-DBAK";
/// The backup format version.
const VERSION: u16 = 1;
/// Length of everything before the nonce.
const HEADER_LEN: usize = 12 + 2 + 12 + 2 * SALT_LEN;
/// Length of a backup file.
pub const BACKUP_LEN: usize = HEADER_LEN + NONCE_LEN + 32 + TAG_LEN;
/// Tag of the backup key.
const KEY_TAG: &[u8] = b"KOBLING-V1-DOMAIN-BACKUP-KEY";

fn backup_key(
    first: &str,
    second: &str,
    salts: (&[u8; SALT_LEN], &[u8; SALT_LEN]),
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    if first.is_empty() || second.is_empty() {
        return Err(KeystoreError::EmptyPassphrase);
    }
    // Constant time over the passphrases' bytes (only their lengths leak).
    if bool::from(first.as_bytes().ct_eq(second.as_bytes())) {
        return Err(KeystoreError::SamePassphrase);
    }
    let a1 = argon2id(first, salts.0, params)?;
    let a2 = argon2id(second, salts.1, params)?;
    Ok(Zeroizing::new(framed_sha3(
        KEY_TAG,
        &[a1.as_ref(), a2.as_ref()],
    )))
}

/// Seals `share` of `domain` under two operators' passphrases.
pub(crate) fn seal(
    domain: &Domain,
    share: &Share,
    first: &str,
    second: &str,
    params: KdfParams,
    entropy: &mut dyn Entropy,
) -> Result<Vec<u8>, KeystoreError> {
    let mut salt_1 = [0u8; SALT_LEN];
    let mut salt_2 = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    entropy.fill(&mut salt_1)?;
    entropy.fill(&mut salt_2)?;
    entropy.fill(&mut nonce)?;
    let key = backup_key(first, second, (&salt_1, &salt_2), params)?;
    let mut out = Vec::with_capacity(BACKUP_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&params.m_cost_kib().to_le_bytes());
    out.extend_from_slice(&params.t_cost().to_le_bytes());
    out.extend_from_slice(&params.p_cost().to_le_bytes());
    out.extend_from_slice(&salt_1);
    out.extend_from_slice(&salt_2);
    let aad = frame(&[&out, &domain.to_bytes()]);
    let secret = share.to_secret_bytes();
    let sealed = cipher::seal(&key, &nonce, &aad, secret.as_ref())
        .map_err(|_| KeystoreError::Backup(FormatError::Authentication))?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a backup of `domain`'s share with both operators' passphrases.
///
/// # Errors
///
/// [`KeystoreError::Backup`] for a file that is not a backup, of another
/// domain, altered, or opened with a wrong passphrase (not told apart);
/// [`KeystoreError::InvalidKdfParams`] for cost parameters out of range;
/// [`KeystoreError::SamePassphrase`] or [`KeystoreError::EmptyPassphrase`].
pub fn open_backup(
    domain: &Domain,
    bytes: &[u8],
    first: &str,
    second: &str,
) -> Result<Share, KeystoreError> {
    let bad = KeystoreError::Backup;
    if bytes.len() > BACKUP_LEN {
        return Err(bad(FormatError::TooLarge { max: BACKUP_LEN }));
    }
    let mut r = Reader(bytes);
    if r.take::<12>().map_err(bad)? != *MAGIC {
        return Err(bad(FormatError::BadMagic));
    }
    let version = u16::from_le_bytes(r.take().map_err(bad)?);
    if version != VERSION {
        return Err(bad(FormatError::UnsupportedVersion(version)));
    }
    let m = u32::from_le_bytes(r.take().map_err(bad)?);
    let t = u32::from_le_bytes(r.take().map_err(bad)?);
    let p = u32::from_le_bytes(r.take().map_err(bad)?);
    let params = KdfParams::new(m, t, p)?;
    let salt_1: [u8; SALT_LEN] = r.take().map_err(bad)?;
    let salt_2: [u8; SALT_LEN] = r.take().map_err(bad)?;
    let nonce: [u8; NONCE_LEN] = r.take().map_err(bad)?;
    if r.0.len() != 32 + TAG_LEN {
        return Err(bad(FormatError::Truncated));
    }
    let key = backup_key(first, second, (&salt_1, &salt_2), params)?;
    let aad = frame(&[&bytes[..HEADER_LEN], &domain.to_bytes()]);
    let plain =
        cipher::open(&key, &nonce, &aad, r.0).map_err(|_| bad(FormatError::Authentication))?;
    let mut secret = Zeroizing::new([0u8; 32]);
    secret.copy_from_slice(&plain);
    Ok(Share::from_secret_bytes(&secret)?)
}
