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
//!  operator   ──Approve──────▶ own node ──Statement──▶ linker
//!  node       ──Statement────▶ linker (commitments, announcements, hop records, shredding)
//!  owner      ──Blinding, SealedItems──▶ linker
//!  hop h      ──Points(PointChunk)─────▶ hop h+1
//!  v2 step h  ──ChunkV2(ChunkMsg)──────▶ step h+1;  PassV2(Pass): owner ▶ hop 1 ▶ … ▶ linker
//!  researcher ──Fetch──▶ linker ──DeliveryHeader, DeliveryItems──▶ researcher
//!  researcher ──Close──▶ linker ──Statement(closure)──▶ nodes ──Statement(shredded)──▶ linker
//!  any        ◀──Ack / Refused──
//! ```

use serde::{Deserialize, Serialize};

use crate::{
    bounded::{BoundedBytes, BoundedString, BoundedVec},
    delivery::DeliveredItem,
    hash::framed_sha3,
    hop::PointChunk,
    manifest::Key32,
    seal::{SealedItem, WrappedKey},
    transcript::{encode_value, Sig},
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

/// The largest transcript file sent in one message.
pub const MAX_TRANSCRIPT_FILE: usize = 24 << 20;
/// How far a client request's time may be from the node's clock.
pub const MAX_CLOCK_SKEW: u64 = 600;

/// What a client asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Fetch the delivery.
    Fetch,
    /// Close the project.
    Close,
    /// Read the transcript.
    Status,
}

/// A client's request: a researcher's or operator's, authenticated by a
/// signature with a key the order or the manifest names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The project.
    pub project: ProjectId,
    /// What is asked.
    pub action: Action,
    /// Seconds since the Unix epoch on the client's clock.
    pub time: u64,
}

/// A signed [`Request`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignedRequest {
    /// The request.
    pub request: Request,
    /// The signer's Ed25519 key.
    pub key: Key32,
    /// `Ed25519(key, framed_sha3("KOBLING-V1-CLIENT-REQUEST", [postcard(request)]))`.
    pub signature: Sig,
}

impl Request {
    fn digest(&self) -> [u8; 32] {
        framed_sha3(b"KOBLING-V1-CLIENT-REQUEST", &[&encode_value(self)])
    }

    /// Signs the request.
    pub fn sign(self, key: &ed25519_dalek::SigningKey) -> SignedRequest {
        use ed25519_dalek::Signer as _;
        let signature = Sig(key.sign(&self.digest()).to_bytes());
        SignedRequest {
            key: Key32(key.verifying_key().to_bytes()),
            request: self,
            signature,
        }
    }
}

impl SignedRequest {
    /// Checks the signature and that the request is fresh at `now`
    /// (within [`MAX_CLOCK_SKEW`]). Whether the key may ask is the
    /// caller's check.
    ///
    /// # Errors
    ///
    /// A short reason.
    pub fn check(&self, now: u64) -> Result<(), &'static str> {
        if self.request.time.abs_diff(now) > MAX_CLOCK_SKEW {
            return Err("the request's time is too far from the node's clock");
        }
        crate::transcript::verify_signature(&self.key, &self.request.digest(), &self.signature)
            .map_err(|()| "the request's signature does not verify")
    }
}

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
    /// Operator → own node: a signed approval, and where the approved
    /// extract file is on the node's machine (local, not signed: the node
    /// checks the file's digest against the signed one).
    Approve {
        /// The operator's signed approval.
        statement: SignedStatement,
        /// Path of the extract file on the register's machine.
        extract_path: BoundedString<4096>,
    },
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
    /// Researcher → linker: fetch the delivery.
    Fetch(SignedRequest),
    /// Researcher → linker: close the project.
    Close(SignedRequest),
    /// Client → node: the project's transcript, for status (answered with
    /// `TranscriptFile`).
    Status(SignedRequest),
    /// Linker → client: the project's transcript as a signed file
    /// (`transcript::encode_file`).
    TranscriptFile {
        /// The file's bytes.
        bytes: BoundedBytes<MAX_TRANSCRIPT_FILE>,
    },
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
    /// Chain v2, step h → step h+1: a chunk with its signed statement.
    ChunkV2(crate::v2::ChunkMsg),
    /// Chain v2, backward pass: owner → hop 1 → … → hop m → linker.
    PassV2(crate::v2::Pass),
}

impl Message {
    /// The message's kind, for log lines and refusals (never its contents).
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "Hello",
            Message::SubmitOrder(_) => "SubmitOrder",
            Message::Approve { .. } => "Approve",
            Message::Statement(_) => "Statement",
            Message::Entries { .. } => "Entries",
            Message::Blinding { .. } => "Blinding",
            Message::SealedItems { .. } => "SealedItems",
            Message::Points(_) => "Points",
            Message::Fetch(_) => "Fetch",
            Message::Close(_) => "Close",
            Message::Status(_) => "Status",
            Message::TranscriptFile { .. } => "TranscriptFile",
            Message::DeliveryHeader { .. } => "DeliveryHeader",
            Message::DeliveryItems { .. } => "DeliveryItems",
            Message::Ack { .. } => "Ack",
            Message::Refused { .. } => "Refused",
            Message::ChunkV2(_) => "ChunkV2",
            Message::PassV2(_) => "PassV2",
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{group::WirePoint, hop::MAX_CHUNK_POINTS};
    use proptest::prelude::*;

    fn samples() -> Vec<Message> {
        let project = ProjectId::new("P-1").expect("valid");
        let list = Name::new("NPR").expect("valid");
        let points: Vec<WirePoint> = (0..5u8).map(|i| WirePoint([i; 32])).collect();
        vec![
            Message::Hello {
                version: PROTOCOL_VERSION,
            },
            Message::Points(PointChunk {
                project: project.clone(),
                list: list.clone(),
                hop: 2,
                chunk: 7,
                input: BoundedVec::new(points.clone()).expect("fits"),
                output: BoundedVec::new(points).expect("fits"),
                proof: None,
            }),
            Message::SealedItems {
                project: project.clone(),
                list,
                first: Position(4096),
                items: BoundedVec::new(vec![SealedItem(
                    crate::bounded::BoundedBytes::new(vec![9; 300]).expect("fits"),
                )])
                .expect("fits"),
            },
            Message::Ack {
                of: Digest([3; 32]),
            },
            Message::Refused {
                code: BoundedString::new("unknown-project").expect("fits"),
                detail: BoundedString::new("no project P-2 here").expect("fits"),
            },
            Message::Entries {
                project,
                first: 0,
                entries: BoundedVec::default(),
            },
        ]
    }

    #[test]
    fn messages_round_trip_and_trailing_bytes_are_refused() {
        for m in samples() {
            let bytes = encode(&m);
            assert_eq!(decode(&bytes).expect("decodes"), m);
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(decode(&longer), Err(DecodeError::Trailing));
            for cut in 0..bytes.len() {
                assert!(
                    decode(&bytes[..cut]).is_err(),
                    "a prefix of {} bytes decoded",
                    cut
                );
            }
        }
    }

    #[test]
    fn oversized_and_overlong_fields_are_refused() {
        assert!(matches!(
            decode(&vec![0u8; MAX_FRAME + 1]),
            Err(DecodeError::TooLarge(_))
        ));
        // A chunk with one point more than allowed, all bytes present: the
        // bound, not a lack of data, refuses it.
        let at_limit = vec![WirePoint([1; 32]); MAX_CHUNK_POINTS];
        let over = vec![WirePoint([1; 32]); MAX_CHUNK_POINTS + 1];
        let ok = postcard::to_allocvec(&at_limit).expect("encode");
        let too_many = postcard::to_allocvec(&over).expect("encode");
        assert!(postcard::from_bytes::<BoundedVec<WirePoint, MAX_CHUNK_POINTS>>(&ok).is_ok());
        assert!(
            postcard::from_bytes::<BoundedVec<WirePoint, MAX_CHUNK_POINTS>>(&too_many).is_err()
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn mutated_messages_never_panic(which in 0usize..6, at in any::<usize>(), xor in 1u8..=255) {
            let mut bytes = encode(&samples()[which]);
            let i = at % bytes.len();
            bytes[i] ^= xor;
            if let Ok(m) = decode(&bytes) {
                // Whatever decodes re-encodes to something that decodes again.
                prop_assert_eq!(decode(&encode(&m)).ok(), Some(m));
            }
        }
    }
}
