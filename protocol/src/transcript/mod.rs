//! The project transcript (PROTOCOL.md §8): an append-only, hash-chained,
//! signed log of everything that happened in a project.
//!
//! ## Shape
//!
//! ```text
//!  author (researcher / operator / node)        recorder (the linker)
//!  ─────────────────────────────────────        ─────────────────────
//!  Statement { project, time, signer, body }
//!  signature = Ed25519(author, statement_digest)
//!           └──── SignedStatement ─────────▶  Entry { seq, prev, signed,
//!                                                      recorder_signature =
//!                                                      Ed25519(linker, link_digest) }
//! ```
//!
//! Authors sign statements without knowing where they will land in the
//! log (an operator signs an approval offline); the linker, which keeps
//! the transcript, chains them: `prev` is the hash of the previous entry,
//! and its own signature over `(seq, prev, statement digest, signature)`
//! fixes the order. See `docs/protocol.md` for the exact bytes.

mod body;
mod file;
mod grant;
mod verify;

pub use body::*;
pub use file::{
    decode_file, encode_file, FileError, Trailer, FILE_MAGIC, FILE_VERSION, MAX_ENTRIES, MAX_RECORD,
};
pub use grant::{Grant, GrantError, GRANT_TAG};
pub use verify::{verify, verify_appended, Check, VerifiedTranscript, VerifyError};

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{
    hash::framed_sha3,
    manifest::Ed25519Key,
    types::{Digest, Name, ProjectId, UnixTime},
};

/// Domain-separation tags of the transcript.
pub mod tags {
    /// Statement digest (what an author signs).
    pub const STATEMENT: &[u8] = b"KOBLING-V1-STATEMENT";
    /// Chain link digest (what the recorder signs).
    pub const ENTRY_LINK: &[u8] = b"KOBLING-V1-ENTRY-LINK";
    /// Entry hash (what the next entry's `prev` holds).
    pub const ENTRY: &[u8] = b"KOBLING-V1-ENTRY";
    /// Project order digest.
    pub const ORDER: &[u8] = b"KOBLING-V1-ORDER";
    /// The signed trailer of a transcript file.
    pub const TRAILER: &[u8] = b"KOBLING-V1-TRANSCRIPT-TRAILER";
}

/// A 64-byte Ed25519 signature (fixed 64 bytes in postcard).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sig(pub [u8; 64]);

/// Who signed a statement, resolved against the manifest (or the order for
/// the researcher).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Signer {
    /// A node, by member name: signs with its node key.
    Node(Name),
    /// An authorised operator of a register.
    Operator {
        /// The register the operator acts for.
        register: Name,
        /// The operator's Ed25519 key (must be listed for `register`).
        key: Ed25519Key,
    },
    /// The researcher named in the project order.
    Researcher(Ed25519Key),
}

/// What an author asserts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// The project.
    pub project: ProjectId,
    /// Seconds since the Unix epoch, as given by the author's clock.
    pub time: UnixTime,
    /// The author.
    pub signer: Signer,
    /// The typed content.
    pub body: Body,
}

/// A statement with its author's signature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignedStatement {
    /// The statement.
    pub statement: Statement,
    /// `Ed25519(author, statement_digest)`.
    pub signature: Sig,
}

/// One transcript entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// 0, 1, 2, … without gaps.
    pub seq: u64,
    /// The hash of the previous entry (all zero for entry 0).
    pub prev: Digest,
    /// The author's signed statement.
    pub signed: SignedStatement,
    /// `Ed25519(linker, link_digest)`.
    pub recorder_signature: Sig,
}

impl Statement {
    /// `framed_sha3(STATEMENT, [postcard(statement)])`.
    pub fn digest(&self) -> Digest {
        Digest(framed_sha3(tags::STATEMENT, &[&encode(self)]))
    }

    /// Signs the statement.
    pub fn sign(self, key: &SigningKey) -> SignedStatement {
        let signature = Sig(key.sign(self.digest().as_bytes()).to_bytes());
        SignedStatement {
            statement: self,
            signature,
        }
    }
}

impl SignedStatement {
    /// Checks the author's signature with `key`.
    ///
    /// # Errors
    ///
    /// `Err(())` if the key is invalid or the signature does not verify
    /// (strict verification: no malleability, no weak keys).
    #[allow(clippy::result_unit_err)]
    pub fn verify_with(&self, key: &Ed25519Key) -> Result<(), ()> {
        verify_sig(key, self.statement.digest().as_bytes(), &self.signature)
    }
}

impl Entry {
    /// Chains a signed statement after `prev` as entry `seq`, signed by the
    /// recorder (the linker).
    pub fn record(seq: u64, prev: Digest, signed: SignedStatement, recorder: &SigningKey) -> Entry {
        let link = link_digest(seq, &prev, &signed);
        let recorder_signature = Sig(recorder.sign(link.as_bytes()).to_bytes());
        Entry {
            seq,
            prev,
            signed,
            recorder_signature,
        }
    }

    /// The entry's hash: `framed_sha3(ENTRY, [postcard(entry)])`.
    pub fn hash(&self) -> Digest {
        Digest(framed_sha3(tags::ENTRY, &[&encode(self)]))
    }

    /// The digest the recorder signs.
    pub fn link_digest(&self) -> Digest {
        link_digest(self.seq, &self.prev, &self.signed)
    }
}

fn link_digest(seq: u64, prev: &Digest, signed: &SignedStatement) -> Digest {
    Digest(framed_sha3(
        tags::ENTRY_LINK,
        &[
            &seq.to_le_bytes(),
            prev.as_bytes(),
            signed.statement.digest().as_bytes(),
            &signed.signature.0,
        ],
    ))
}

/// An append-only transcript under construction, as the linker keeps it.
#[derive(Debug, Default, Clone)]
pub struct Transcript {
    entries: Vec<Entry>,
}

impl Transcript {
    /// An empty transcript.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a signed statement, chaining and countersigning it.
    pub fn append(&mut self, signed: SignedStatement, recorder: &SigningKey) -> &Entry {
        let seq = self.entries.len() as u64;
        let prev = self.entries.last().map(Entry::hash).unwrap_or_default();
        self.entries
            .push(Entry::record(seq, prev, signed, recorder));
        &self.entries[self.entries.len() - 1]
    }

    /// The entries so far.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Takes the entries.
    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }
}

/// Strict Ed25519 verification of `sig` over `msg` with `key` (weak keys
/// refused).
///
/// # Errors
///
/// `Err(())`; deliberately opaque.
#[allow(clippy::result_unit_err)]
pub fn verify_signature(key: &Ed25519Key, msg: &[u8], sig: &Sig) -> Result<(), ()> {
    verify_sig(key, msg, sig)
}

pub(crate) fn verify_sig(key: &Ed25519Key, msg: &[u8], sig: &Sig) -> Result<(), ()> {
    let vk = VerifyingKey::from_bytes(&key.0).map_err(|_| ())?;
    if vk.is_weak() {
        return Err(());
    }
    vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig.0))
        .map_err(|_| ())
}

/// postcard encoding of a value whose encoding cannot fail (no maps with
/// non-string keys, no unsupported types).
pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_allocvec(v).unwrap_or_default()
}

/// The postcard encoding of a wire value (structs, enums, bounded
/// containers: encoding cannot fail).
pub fn encode_value<T: Serialize>(v: &T) -> Vec<u8> {
    encode(v)
}

impl core::fmt::Debug for Sig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Sig({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

impl Serialize for Sig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(64)?;
        for b in &self.0 {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Sig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Sig;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("64 bytes")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Sig, A::Error> {
                let mut out = [0u8; 64];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = seq
                        .next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                Ok(Sig(out))
            }
        }
        d.deserialize_tuple(64, V)
    }
}
