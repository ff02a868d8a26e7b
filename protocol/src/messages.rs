//! Wire messages between nodes and clients, one per lifecycle step
//! (PROTOCOL.md §5–§7), encoded with postcard.
//!
//! Every variable-length field is a bounded type, and the transport frames
//! each message with its length and refuses frames over [`MAX_FRAME`]
//! before reading them, so a hostile peer can make a node allocate at most
//! one frame. Decoding is [`decode`]: it never panics, and rejects trailing
//! bytes.
//!
//! ```text
//!  researcher ──SubmitOrder──▶ linker ──Statement(order)──▶ registers
//!  operator   ──Approve──────▶ own node
//!  node       ──Statement────▶ linker (commitments, announcements, hop records, shredding)
//!  owner      ──Blinding, SealedItems──▶ linker
//!  hop h      ──Points(PointChunk)─────▶ hop h+1
//!  researcher ──Fetch──▶ linker ──DeliveryHeader, DeliveryItems──▶ researcher
//!  any        ◀──Ack / Refused──
//! ```

use serde::{Deserialize, Serialize};

use crate::{
    bounded::{BoundedString, BoundedVec},
    delivery::DeliveredItem,
    hop::PointChunk,
    seal::{SealedItem, WrappedKey},
    transcript::{Columns, Entry, SignedStatement},
    types::{Digest, Name, Position, ProjectId},
};

/// The wire protocol version.
pub const PROTOCOL_VERSION: u16 = 1;
/// The largest frame a node reads.
pub const MAX_FRAME: usize = 32 << 20;
/// Sealed items per message.
pub const MAX_ITEMS_PER_MESSAGE: usize = 4096;
/// Transcript entries per message.
pub const MAX_ENTRIES_PER_MESSAGE: usize = 1024;

/// A message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Message {
    /// First message on a connection.
    Hello {
        /// [`PROTOCOL_VERSION`].
        version: u16,
    },
    /// Researcher → linker: a signed project order.
    SubmitOrder(SignedStatement),
    /// Operator → own node: a signed approval.
    Approve(SignedStatement),
    /// Node → linker (and linker → registers): a statement for the
    /// transcript.
    Statement(SignedStatement),
    /// Linker → nodes: recorded transcript entries from `first` on.
    Entries {
        /// The project.
        project: ProjectId,
        /// Sequence number of the first entry.
        first: u64,
        /// The entries.
        entries: BoundedVec<Entry, MAX_ENTRIES_PER_MESSAGE>,
    },
    /// Owner → linker: the list blinding sealed to the linker.
    Blinding {
        /// The project.
        project: ProjectId,
        /// The list.
        list: Name,
        /// `β_j` under HPKE.
        sealed: WrappedKey,
    },
    /// Owner → linker: sealed items from position `first` on.
    SealedItems {
        /// The project.
        project: ProjectId,
        /// The list.
        list: Name,
        /// Position of the first item.
        first: Position,
        /// The items.
        items: BoundedVec<SealedItem, MAX_ITEMS_PER_MESSAGE>,
    },
    /// Hop → next hop: a chunk of points.
    Points(PointChunk),
    /// Researcher → linker: fetch the delivery (signed by the researcher).
    Fetch(SignedStatement),
    /// Linker → researcher: one list's header.
    DeliveryHeader {
        /// The project.
        project: ProjectId,
        /// The list.
        list: Name,
        /// The variables, in extract order.
        columns: Columns,
        /// The list's content key, sealed to the researcher.
        content_key: WrappedKey,
        /// Items that follow.
        items: u64,
    },
    /// Linker → researcher: delivered items.
    DeliveryItems {
        /// The project.
        project: ProjectId,
        /// The list.
        list: Name,
        /// The items.
        items: BoundedVec<DeliveredItem, MAX_ITEMS_PER_MESSAGE>,
    },
    /// Positive acknowledgement, with what was acknowledged.
    Ack {
        /// Digest of the acknowledged message or state.
        of: Digest,
    },
    /// Refusal with a reason (never containing an identifier).
    Refused {
        /// Stable reason code.
        code: BoundedString<64>,
        /// Human-readable detail.
        detail: BoundedString<1024>,
    },
}

/// A message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Larger than [`MAX_FRAME`].
    #[error("message of {0} bytes exceeds the frame limit")]
    TooLarge(usize),
    /// Malformed.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Bytes after the message.
    #[error("trailing bytes after the message")]
    Trailing,
}

/// Encodes a message.
pub fn encode(m: &Message) -> Vec<u8> {
    crate::transcript::encode_value(m)
}

/// Decodes a message from one frame.
///
/// # Errors
///
/// [`DecodeError`]; never panics, whatever the bytes.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    if bytes.len() > MAX_FRAME {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    let (m, rest) = postcard::take_from_bytes::<Message>(bytes)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing);
    }
    Ok(m)
}
