//! Domain seeds and crypto-shredding (PROTOCOL.md §4).
//!
//! For every domain d it accepts, a node draws a random 32-byte seed
//! s_{i,d}; its share is `k_{i,d} = Share::derive(m_i, s_{i,d}, d)`. The seed
//! is stored in its own file, so closing a project destroys exactly one
//! small file and leaves the master secret untouched.
//!
//! # Files
//!
//! ```text
//! DIR/domains/<id>.seed       the wrapped seed (below)
//! DIR/domains/<id>.shredded   tombstone of a closed domain
//!
//! id = lower-case hex of framed_sha3("KOBLING-V1-DOMAIN-FILE", [domain.to_bytes()])
//! ```
//!
//! # Seed file, version 1 (86 bytes)
//!
//! ```text
//! offset  len  field
//!      0   12  magic  b"KOBLING-SEED"
//!     12    2  version (u16, little-endian) = 1
//!     14   24  XChaCha20-Poly1305 nonce (random)
//!     38   48  ciphertext of the 32-byte seed ‖ 16-byte tag
//!
//! key = framed_sha3("KOBLING-V1-SEED-WRAP", [m])
//! AAD = frame([bytes 0 .. 14, domain.to_bytes()])
//! ```
//!
//! The AAD binds a seed to its domain (a seed file renamed to another
//! domain's name does not open) and to the header; the key binds it to the
//! keystore's master secret (a seed file copied into another keystore does
//! not open).
//!
//! # Shredding
//!
//! [`Keystore::shred`](crate::Keystore::shred) first writes the tombstone (atomically, fsynced),
//! then overwrites the seed file with zeros, fsyncs, deletes it and fsyncs
//! the directory. Tombstone first: a crash between the steps leaves a
//! domain that reads as shredded (and a later `shred` finishes the job),
//! never one that could be accepted afresh.
//!
//! Overwriting is best effort: on SSDs and on copy-on-write or journalling
//! file systems the old blocks may survive. The real guarantee is that the
//! seed never existed anywhere else: it is drawn on this node, never leaves
//! it, and is not in any backup of `keystore.kob`. Keep `domains/` out of
//! backups, or accept that a backup keeps a closed project's seed alive.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use kobling_protocol::{
    hash::{frame, framed_sha3},
    share::Domain,
};

use crate::{
    cipher::{self, NONCE_LEN, TAG_LEN},
    entropy::Entropy,
    error::KeystoreError,
    files,
    format::{FormatError, Reader},
};

/// The subdirectory of the keystore directory that holds seed files.
pub const DOMAINS_DIR: &str = "domains";

/// The seed file's magic bytes.
const SEED_MAGIC: &[u8; 12] = b"KOBLING-SEED";
/// The seed file format version.
const SEED_VERSION: u16 = 1;
/// Length of magic and version.
const SEED_HEADER_LEN: usize = 12 + 2;
/// Length of a seed file.
const SEED_FILE_LEN: usize = SEED_HEADER_LEN + NONCE_LEN + 32 + TAG_LEN;
/// Tag of the seed wrapping key.
const WRAP_TAG: &[u8] = b"KOBLING-V1-SEED-WRAP";
/// Tag of a domain's file name.
const FILE_ID_TAG: &[u8] = b"KOBLING-V1-DOMAIN-FILE";
/// First line of a tombstone.
const TOMBSTONE_MAGIC: &str = "KOBLING-SHREDDED";

/// Where a domain stands on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DomainStatus {
    /// Never accepted: no seed, no tombstone.
    Unknown,
    /// Accepted: a seed is stored and the share can be derived.
    Accepted,
    /// Closed: the seed was destroyed and the domain can never be
    /// accepted again.
    Shredded,
}

/// The seed files of one keystore.
pub(crate) struct SeedStore {
    /// `DIR/domains`.
    dir: PathBuf,
    /// `framed_sha3("KOBLING-V1-SEED-WRAP", [m])`.
    wrap_key: Zeroizing<[u8; 32]>,
}

impl SeedStore {
    /// The seed store of the keystore at `keystore_dir` with master secret
    /// `master`.
    pub(crate) fn new(keystore_dir: &Path, master: &[u8; 32]) -> Self {
        Self {
            dir: keystore_dir.join(DOMAINS_DIR),
            wrap_key: wrap_key(master),
        }
    }

    /// The `domains` directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The domain's status.
    pub(crate) fn status(&self, domain: &Domain) -> Result<DomainStatus, KeystoreError> {
        let stem = file_stem(domain);
        if files::exists(&self.dir.join(tombstone_name(&stem)))? {
            Ok(DomainStatus::Shredded)
        } else if files::exists(&self.dir.join(seed_name(&stem)))? {
            Ok(DomainStatus::Accepted)
        } else {
            Ok(DomainStatus::Unknown)
        }
    }

    /// Reads and unwraps the domain's seed.
    ///
    /// # Errors
    ///
    /// [`KeystoreError::Shredded`], [`KeystoreError::UnknownDomain`],
    /// [`KeystoreError::CorruptSeed`], [`KeystoreError::InsecurePermissions`]
    /// or an I/O error.
    pub(crate) fn load(&self, domain: &Domain) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
        let stem = file_stem(domain);
        if files::exists(&self.dir.join(tombstone_name(&stem)))? {
            return Err(KeystoreError::Shredded {
                domain: domain.clone(),
            });
        }
        let path = self.dir.join(seed_name(&stem));
        let Some(bytes) = files::read_private(&path, SEED_FILE_LEN)? else {
            return Err(KeystoreError::UnknownDomain {
                domain: domain.clone(),
            });
        };
        unwrap_seed(&self.wrap_key, domain, &bytes)
            .map_err(|source| KeystoreError::CorruptSeed { path, source })
    }

    /// Creates the domain's seed unless it exists; an existing seed is kept
    /// (and checked).
    ///
    /// # Errors
    ///
    /// [`KeystoreError::Shredded`] for a closed domain, or any error of
    /// [`SeedStore::load`] for an existing seed that is not valid.
    pub(crate) fn accept(
        &self,
        domain: &Domain,
        entropy: &mut dyn Entropy,
    ) -> Result<(), KeystoreError> {
        match self.load(domain) {
            Ok(_) => return Ok(()),
            Err(KeystoreError::UnknownDomain { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        entropy.fill(seed.as_mut())?;
        let mut nonce = [0u8; NONCE_LEN];
        entropy.fill(&mut nonce)?;
        let path = self.dir.join(seed_name(&file_stem(domain)));
        let bytes = wrap_seed(&self.wrap_key, domain, &seed, &nonce).map_err(|source| {
            KeystoreError::CorruptSeed {
                path: path.clone(),
                source,
            }
        })?;
        files::create_private_dir(&self.dir)?;
        if !files::write_new(&self.dir, &seed_name(&file_stem(domain)), &bytes)? {
            // Another writer won the race: its seed is the domain's seed.
            self.load(domain)?;
        }
        // A shred that ran concurrently must win: re-check the tombstone.
        if files::exists(&self.dir.join(tombstone_name(&file_stem(domain))))? {
            files::overwrite_and_remove(&path)?;
            return Err(KeystoreError::Shredded {
                domain: domain.clone(),
            });
        }
        Ok(())
    }

    /// Closes the domain: tombstone, then overwrite and delete the seed.
    /// Idempotent; a domain never accepted is closed too, so it can never
    /// be accepted later.
    pub(crate) fn shred(&self, domain: &Domain) -> Result<(), KeystoreError> {
        files::create_private_dir(&self.dir)?;
        let stem = file_stem(domain);
        let tombstone = format!("{TOMBSTONE_MAGIC}\n{domain}\n");
        files::write_new(&self.dir, &tombstone_name(&stem), tombstone.as_bytes())?;
        files::overwrite_and_remove(&self.dir.join(seed_name(&stem)))?;
        Ok(())
    }
}

/// The key seed files are wrapped under: `framed_sha3("KOBLING-V1-SEED-WRAP", [m])`.
pub(crate) fn wrap_key(master: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(framed_sha3(WRAP_TAG, &[master]))
}

/// The hex file name stem of a domain.
pub(crate) fn file_stem(domain: &Domain) -> String {
    hex::encode(framed_sha3(FILE_ID_TAG, &[&domain.to_bytes()]))
}

fn seed_name(stem: &str) -> String {
    format!("{stem}.seed")
}

fn tombstone_name(stem: &str) -> String {
    format!("{stem}.shredded")
}

fn header() -> [u8; SEED_HEADER_LEN] {
    let mut h = [0u8; SEED_HEADER_LEN];
    h[..12].copy_from_slice(SEED_MAGIC);
    h[12..].copy_from_slice(&SEED_VERSION.to_le_bytes());
    h
}

fn aad(domain: &Domain) -> Vec<u8> {
    frame(&[&header(), &domain.to_bytes()])
}

pub(crate) fn wrap_seed(
    key: &[u8; 32],
    domain: &Domain,
    seed: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
) -> Result<Vec<u8>, FormatError> {
    let sealed =
        cipher::seal(key, nonce, &aad(domain), seed).map_err(|_| FormatError::Authentication)?;
    let mut out = Vec::with_capacity(SEED_FILE_LEN);
    out.extend_from_slice(&header());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

pub(crate) fn unwrap_seed(
    key: &[u8; 32],
    domain: &Domain,
    bytes: &[u8],
) -> Result<Zeroizing<[u8; 32]>, FormatError> {
    if bytes.len() > SEED_FILE_LEN {
        return Err(FormatError::TooLarge { max: SEED_FILE_LEN });
    }
    let mut r = Reader(bytes);
    if r.take::<12>()? != *SEED_MAGIC {
        return Err(FormatError::BadMagic);
    }
    let version = u16::from_le_bytes(r.take()?);
    if version != SEED_VERSION {
        return Err(FormatError::UnsupportedVersion(version));
    }
    let nonce: [u8; NONCE_LEN] = r.take()?;
    if r.0.len() != 32 + TAG_LEN {
        return Err(FormatError::Truncated);
    }
    let plain =
        cipher::open(key, &nonce, &aad(domain), r.0).map_err(|_| FormatError::Authentication)?;
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&plain);
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use kobling_protocol::types::{Name, ProjectId};

    use super::*;

    fn project(s: &str) -> Domain {
        Domain::Project(ProjectId::new(s).expect("valid"))
    }

    #[test]
    fn seed_file_layout_and_binding() {
        let d = project("P1");
        let bytes = wrap_seed(&[1; 32], &d, &[2; 32], &[3; 24]).expect("wrap");
        assert_eq!(bytes.len(), 86);
        assert_eq!(&bytes[..12], b"KOBLING-SEED");
        assert_eq!(&bytes[12..14], &[1, 0]);
        assert_eq!(&bytes[14..38], &[3; 24]);
        assert_eq!(*unwrap_seed(&[1; 32], &d, &bytes).expect("unwrap"), [2; 32]);
        // Another keystore's key, another domain: refused.
        assert_eq!(
            unwrap_seed(&[9; 32], &d, &bytes).err(),
            Some(FormatError::Authentication)
        );
        let r = Domain::Register(Name::new("P1").expect("valid"));
        assert_eq!(
            unwrap_seed(&[1; 32], &r, &bytes).err(),
            Some(FormatError::Authentication)
        );
        for len in 0..bytes.len() {
            assert!(unwrap_seed(&[1; 32], &d, &bytes[..len]).is_err());
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(unwrap_seed(&[1; 32], &d, &bad).is_err());
        }
    }

    #[test]
    fn file_names_separate_domain_kinds() {
        let p = file_stem(&project("NPR"));
        let r = file_stem(&Domain::Register(Name::new("NPR").expect("valid")));
        assert_ne!(p, r);
        assert_eq!(p.len(), 64);
        assert!(p
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
}
