//! The keystore's error type.
//!
//! Every variant that concerns a file names its path, and every message is
//! written for the operator who has to act on it.

use std::{io, path::PathBuf};

use kobling_protocol::share::{Domain, ShareError};

use crate::format::FormatError;

/// Everything that can go wrong with a keystore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// A file system operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `"read"`, `"create directory"`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// `create` found a keystore already in place.
    #[error(
        "a keystore already exists at {}; refusing to overwrite it (move it away first if you really mean to replace this node's keys)",
        path.display()
    )]
    AlreadyExists {
        /// The existing keystore file.
        path: PathBuf,
    },

    /// `open` found no keystore file.
    #[error("no keystore at {} (create one first)", path.display())]
    NotFound {
        /// The missing keystore file.
        path: PathBuf,
    },

    /// A secret file or the keystore directory is open to group or others.
    #[error(
        "{} has mode {mode:04o}, so group or others may read or change it; the keystore refuses to use it. Fix with: chmod {fix:o} {}",
        path.display(),
        path.display()
    )]
    InsecurePermissions {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits (`mode & 0o7777`).
        mode: u32,
        /// The mode it should have (`0o600` for files, `0o700` for
        /// directories).
        fix: u32,
    },

    /// The passphrase does not unlock the keystore.
    #[error(
        "wrong passphrase for keystore {} (if you are certain it is right, the file's header is damaged: restore it from backup)",
        path.display()
    )]
    WrongPassphrase {
        /// The keystore file.
        path: PathBuf,
    },

    /// The keystore is encrypted but no passphrase was given.
    #[error("keystore {} is protected by a passphrase, but none was given", path.display())]
    PassphraseRequired {
        /// The keystore file.
        path: PathBuf,
    },

    /// A passphrase was given for a keystore that has none.
    #[error(
        "keystore {} is not protected by a passphrase, but one was given; open it without a passphrase",
        path.display()
    )]
    UnexpectedPassphrase {
        /// The keystore file.
        path: PathBuf,
    },

    /// A passphrase file that cannot be used.
    #[error("the passphrase file {} is {problem}", path.display())]
    BadPassphraseFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },

    /// `create` was given `Some("")` as the passphrase.
    #[error("the passphrase is empty; give a real passphrase or none at all")]
    EmptyPassphrase,

    /// Argon2id cost parameters out of the accepted range.
    #[error(
        "Argon2id parameters out of range: m_cost = {m_cost_kib} KiB (8·p_cost to {max_m} KiB), t_cost = {t_cost} (1 to {max_t}), p_cost = {p_cost} (1 to {max_p})",
        max_m = crate::KdfParams::MAX_M_COST_KIB,
        max_t = crate::KdfParams::MAX_T_COST,
        max_p = crate::KdfParams::MAX_P_COST
    )]
    InvalidKdfParams {
        /// Memory cost in KiB.
        m_cost_kib: u32,
        /// Number of passes.
        t_cost: u32,
        /// Degree of parallelism.
        p_cost: u32,
    },

    /// Argon2id itself failed (e.g. it could not allocate its memory).
    #[error("Argon2id key derivation failed: {0}")]
    Kdf(#[source] argon2::Error),

    /// The keystore file is not a valid keystore (damaged, truncated, or
    /// not a keystore at all).
    #[error("keystore {} is damaged or not a keystore: {source}; restore it from backup", path.display())]
    Corrupt {
        /// The keystore file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: FormatError,
    },

    /// A domain seed file is not valid.
    #[error(
        "domain seed file {} is damaged, or belongs to another keystore or domain: {source}",
        path.display()
    )]
    CorruptSeed {
        /// The seed file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: FormatError,
    },

    /// The domain was never accepted by this node.
    #[error("{domain} has not been accepted by this node (no domain seed)")]
    UnknownDomain {
        /// The domain.
        domain: Domain,
    },

    /// The domain was closed and its seed destroyed.
    #[error(
        "{domain} was closed and its seed shredded: its key share can never be derived or re-created on this node"
    )]
    Shredded {
        /// The domain.
        domain: Domain,
    },

    /// The OS random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Randomness(#[source] getrandom::Error),

    /// rcgen could not make the TLS key pair or certificate.
    #[error("could not generate the TLS key and certificate: {0}")]
    Tls(#[source] rcgen::Error),

    /// A register domain's seed is long-lived: only a recorded, verified
    /// two-operator retirement shreds it (never a project's closure).
    #[error(
        "{domain} is a register domain: its seed is long-lived and is shredded only by a retirement that two operators signed (kobling_protocol::domain::transcript::Retirement)"
    )]
    LongLivedDomain {
        /// The domain.
        domain: Domain,
    },

    /// A domain backup cannot be made or opened.
    #[error("domain backup: {0}")]
    Backup(#[source] FormatError),

    /// Only register domains are backed up: a project's seed must die with
    /// the project.
    #[error("{domain} is not a register domain; only register domains are backed up (a project's key must be shreddable)")]
    NotARegisterDomain {
        /// The domain.
        domain: Domain,
    },

    /// The two passphrases of a domain backup are the same.
    #[error("the two operators' passphrases of a domain backup must differ (the two-person rule)")]
    SamePassphrase,

    /// Share derivation hit the (2⁻²⁵²) zero scalar.
    #[error("share derivation failed: {0}")]
    Share(#[from] ShareError),
}

impl KeystoreError {
    /// Wraps an I/O error with what was being done and to which path.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
