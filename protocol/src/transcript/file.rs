//! The transcript file format (`transcript.kob`), versioned for auditors
//! who must read it years later.
//!
//! ```text
//! file    = magic "KOBLING-TRANSCRIPT" (18 bytes) ‖ le16(version = 1) ‖ record* ‖ trailer-record
//! record  = kind (1 byte: 1 = entry) ‖ le32(length) ‖ postcard(Entry)
//! trailer-record = kind 2 ‖ le32(length) ‖ postcard(Trailer)
//! ```
//!
//! The trailer is signed by the linker over the number of entries and the
//! hash of the last one, so a file cut at an entry boundary (which would
//! otherwise look like a shorter, valid log) is detected: the trailer is
//! either missing or no longer matches.

use serde::{Deserialize, Serialize};

use super::{encode, tags, verify_sig, Entry, Sig};
use crate::{
    hash::framed_sha3,
    manifest::Ed25519Key,
    types::{Digest, ProjectId},
};

/// The file's first bytes.
pub const FILE_MAGIC: &[u8; 18] = b"KOBLING-TRANSCRIPT";
/// The format version this code writes and reads.
pub const FILE_VERSION: u16 = 1;
/// The largest record accepted (a hop record of a very large list).
pub const MAX_RECORD: usize = 64 << 20;
/// The most entries accepted.
pub const MAX_ENTRIES: usize = 1 << 20;

const KIND_ENTRY: u8 = 1;
const KIND_TRAILER: u8 = 2;

/// The signed end of a transcript file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trailer {
    /// The project.
    pub project: ProjectId,
    /// Number of entries in the file.
    pub entries: u64,
    /// Hash of the last entry.
    pub head: Digest,
    /// `Ed25519(linker, framed_sha3(TRAILER, [project, le64(entries), head]))`.
    pub signature: Sig,
}

impl Trailer {
    /// Signs the head of `entries` as the linker.
    pub fn sign(
        project: &ProjectId,
        entries: &[Entry],
        linker: &ed25519_dalek::SigningKey,
    ) -> Trailer {
        use ed25519_dalek::Signer as _;
        let head = entries.last().map(Entry::hash).unwrap_or_default();
        let n = entries.len() as u64;
        let signature = Sig(linker
            .sign(Self::digest(project, n, &head).as_bytes())
            .to_bytes());
        Trailer {
            project: project.clone(),
            entries: n,
            head,
            signature,
        }
    }

    fn digest(project: &ProjectId, entries: u64, head: &Digest) -> Digest {
        Digest(framed_sha3(
            tags::TRAILER,
            &[project.as_bytes(), &entries.to_le_bytes(), head.as_bytes()],
        ))
    }

    /// Checks the trailer against the entries and the linker's key.
    ///
    /// # Errors
    ///
    /// `Err(())` if the count, head or signature does not match.
    #[allow(clippy::result_unit_err)]
    pub fn check(&self, entries: &[Entry], linker: &Ed25519Key) -> Result<(), ()> {
        let head = entries.last().map(Entry::hash).unwrap_or_default();
        if self.entries != entries.len() as u64 || self.head != head {
            return Err(());
        }
        verify_sig(
            linker,
            Self::digest(&self.project, self.entries, &self.head).as_bytes(),
            &self.signature,
        )
    }
}

/// A transcript file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// Not a transcript file.
    #[error("not a Kobling transcript (bad magic bytes)")]
    BadMagic,
    /// Written by a newer or unknown version.
    #[error("unsupported transcript format version {0} (this build reads version {FILE_VERSION})")]
    UnsupportedVersion(u16),
    /// The file ends inside a record.
    #[error("file is truncated inside record {record} (at byte {offset})")]
    Truncated {
        /// Record index.
        record: usize,
        /// Byte offset.
        offset: usize,
    },
    /// A record is larger than allowed.
    #[error("record {record} claims {len} bytes, more than the limit")]
    RecordTooLarge {
        /// Record index.
        record: usize,
        /// Claimed length.
        len: usize,
    },
    /// A record does not decode.
    #[error("record {record} does not decode: {reason}")]
    Decode {
        /// Record index.
        record: usize,
        /// The decoder's message.
        reason: String,
    },
    /// An unknown record kind.
    #[error("record {record} has unknown kind {kind}")]
    UnknownKind {
        /// Record index.
        record: usize,
        /// The kind byte.
        kind: u8,
    },
    /// No trailer: the file was cut short.
    #[error("no signed trailer: the transcript is incomplete or was truncated")]
    MissingTrailer,
    /// Bytes after the trailer.
    #[error("data after the trailer")]
    TrailingData,
    /// Too many entries.
    #[error("more than {MAX_ENTRIES} entries")]
    TooManyEntries,
}

/// Writes a transcript file.
pub fn encode_file(entries: &[Entry], trailer: &Trailer) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(FILE_MAGIC);
    out.extend_from_slice(&FILE_VERSION.to_le_bytes());
    for e in entries {
        push_record(&mut out, KIND_ENTRY, &encode(e));
    }
    push_record(&mut out, KIND_TRAILER, &encode(trailer));
    out
}

fn push_record(out: &mut Vec<u8>, kind: u8, bytes: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Reads a transcript file. Checks the framing only; the signatures and
/// everything else are the verifier's.
///
/// # Errors
///
/// A [`FileError`] saying where the file is malformed.
pub fn decode_file(bytes: &[u8]) -> Result<(Vec<Entry>, Trailer), FileError> {
    let rest = bytes
        .strip_prefix(FILE_MAGIC.as_slice())
        .ok_or(FileError::BadMagic)?;
    let (version, mut rest) = rest.split_at_checked(2).ok_or(FileError::BadMagic)?;
    let version = u16::from_le_bytes([version[0], version[1]]);
    if version != FILE_VERSION {
        return Err(FileError::UnsupportedVersion(version));
    }
    let mut entries = Vec::new();
    let mut record = 0usize;
    loop {
        let offset = bytes.len() - rest.len();
        let Some((&kind, after_kind)) = rest.split_first() else {
            return Err(FileError::MissingTrailer);
        };
        let (len, after_len) = after_kind
            .split_at_checked(4)
            .ok_or(FileError::Truncated { record, offset })?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len > MAX_RECORD {
            return Err(FileError::RecordTooLarge { record, len });
        }
        let (body, after) = after_len
            .split_at_checked(len)
            .ok_or(FileError::Truncated { record, offset })?;
        match kind {
            KIND_ENTRY => {
                if entries.len() == MAX_ENTRIES {
                    return Err(FileError::TooManyEntries);
                }
                entries.push(decode_canonical::<Entry>(body, record)?);
            }
            KIND_TRAILER => {
                let trailer = decode_canonical::<Trailer>(body, record)?;
                if !after.is_empty() {
                    return Err(FileError::TrailingData);
                }
                return Ok((entries, trailer));
            }
            kind => return Err(FileError::UnknownKind { record, kind }),
        }
        rest = after;
        record += 1;
    }
}

/// Decodes a record and insists that it is the canonical encoding of what
/// it decodes to (no trailing bytes, no over-long varints), so that every
/// change of a byte changes a value.
fn decode_canonical<T: Serialize + for<'de> Deserialize<'de>>(
    body: &[u8],
    record: usize,
) -> Result<T, FileError> {
    let value = postcard::from_bytes::<T>(body).map_err(|e| FileError::Decode {
        record,
        reason: e.to_string(),
    })?;
    if encode(&value) != body {
        return Err(FileError::Decode {
            record,
            reason: "not the canonical encoding".into(),
        });
    }
    Ok(value)
}
