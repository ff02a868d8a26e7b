//! # kobling-keys
//!
//! A Kobling node's keystore (PROTOCOL.md §4): its long-term secrets, one
//! random seed per accepted domain, the derivation of its key shares, and
//! crypto-shredding of a closed domain.
//!
//! This crate does file I/O and draws OS randomness; `kobling-protocol`
//! does neither. Every operation that draws randomness has a `_with_rng`
//! twin taking a [`rand_core::CryptoRng`], for tests and simulations.
//!
//! ## Layout
//!
//! ```text
//!  DIR/                               (mode 0700)
//!  ├── keystore.kob                   (mode 0600)  format::  m, Ed25519, X25519, TLS key + cert
//!  │      passphrase ──Argon2id──▶ key ──XChaCha20-Poly1305──▶ payload (or plaintext + checksum)
//!  └── domains/                       (mode 0700)  seeds::
//!      ├── <id>.seed                  (mode 0600)  s_{i,d} wrapped under H(m), AAD = d
//!      └── <id>.shredded                           tombstone of a closed domain
//!
//!  register domains (PROTOCOL.md §10): shred(d) refuses them (long-lived);
//!  retire_domain(verified two-operator retirement) shreds them;
//!  backup_domain(d, pass_1, pass_2) ──▶ backup:: file that opens only with both
//!
//!  accept_domain(d) ──▶ draw s_{i,d} ──▶ <id>.seed
//!  share(d)         ──▶ Share::derive(m, s_{i,d}, d) = k_{i,d}  ──▶ commitment K_{i,d} = k_{i,d}·G
//!  shred(d)         ──▶ <id>.shredded, zero + delete <id>.seed   ──▶ share(d) = Err(Shredded)
//! ```
//!
//! - [`keystore`] has [`Keystore`], the API;
//! - [`format`](mod@format) documents the byte layout of `keystore.kob` (version 1);
//! - [`seeds`] documents seed files, their byte layout, and shredding;
//! - [`backup`] documents the two-operator backup of a register domain's
//!   share;
//! - `kdf` runs Argon2id with [`KdfParams`];
//! - `files` does private permissions, atomic no-clobber writes, overwriting;
//! - `cipher`, `entropy` and `tls` wrap XChaCha20-Poly1305, randomness, rcgen;
//! - [`error`] has [`KeystoreError`].
//! - `fuzzing` (only with `--cfg fuzzing`, as `cargo fuzz` builds) exposes
//!   the keystore and seed file codecs to the targets in `fuzz/`.
//!
//! ## Design notes
//!
//! - Files are created atomically and never overwritten: a temporary file
//!   (0600, fsynced) is hard-linked to its final name, so `create` cannot
//!   clobber an existing keystore and two racing `accept_domain` calls end
//!   with one seed.
//! - `open` refuses any keystore file, seed file or keystore directory that
//!   grants access to group or others, and says how to fix it.
//! - Secrets live in `Zeroizing` buffers or zeroize-on-drop types, nothing
//!   secret is `Clone`, and `Debug` prints only public keys.
//! - The seeds are kept apart from `keystore.kob` so that a backup of the
//!   node's identity does not keep closed projects alive.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used)]

pub mod backup;
mod cipher;
mod entropy;
pub mod error;
mod files;
pub mod format;
#[cfg(fuzzing)]
pub mod fuzzing;
mod kdf;
pub mod keystore;
pub mod passphrase;
pub mod seeds;
mod tls;

pub use error::KeystoreError;
pub use format::FormatError;
pub use kdf::KdfParams;
pub use keystore::{Keystore, KEYSTORE_FILE};
pub use passphrase::Passphrase;
pub use seeds::DomainStatus;
