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
//!  researcher ──SubmitOrder──▶ linker (kept there alone until the first approval)
//!  operator   ──Status──▶ linker (the order entry); ──Approve(+ order entry)──▶ own node ──Statement──▶ linker
//!  node       ──Statement────▶ linker (commitments, announcements, hop records, shredding)
//!  owner      ──Blinding, SealedItems──▶ linker
//!  hop h      ──Points(PointChunk)─────▶ hop h+1
//!  v2 step h  ──ChunkV2(ChunkMsg)──────▶ step h+1;  PassV2(Pass): owner ▶ hop 1 ▶ … ▶ linker
//!  researcher ──Fetch──▶ linker ──DeliveryHeader, DeliveryItems──▶ researcher
//!  researcher ──Close──▶ linker ──Notice(closed)──▶ registers ──Statement(shredded)──▶ linker
//!  linker     ──Entries (the register prefix), Notice(linked / delivered)──▶ registers
//!  any        ◀──Ack / Refused──
//! ```

use serde::{Deserialize, Serialize};

use crate::{
    bounded::{BoundedBytes, BoundedString, BoundedVec},
    delivery::{BatchProof, DeliveredItem},
    hash::framed_sha3,
    hop::PointChunk,
    manifest::Ed25519Key,
    seal::{SealedItem, WrappedKey},
    transcript::{encode_value, Sig},
    transcript::{Columns, Entry, SignedStatement},
    types::{Digest, ListName, Name, Position, ProjectId, UnixTime},
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

/// Bytes of a client request's nonce.
pub const NONCE_LEN: usize = 16;
/// The longest extract file name an approval's envelope names (a file
/// name, as file systems allow).
pub const MAX_EXTRACT_NAME: usize = 255;

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Fetch the delivery.
    Fetch,
    /// Close the project.
    Close,
    /// Read the transcript.
    Status,
    /// Take an operator's approval and read the extract it names: the
    /// envelope of [`Message::Approve`].
    Approve {
        /// The approval's statement digest ([`crate::transcript::Statement::digest`]).
        statement: Digest,
        /// The extract's file name in the node's extract directory.
        extract: BoundedString<MAX_EXTRACT_NAME>,
    },
}

/// A client's request: a researcher's or operator's, authenticated by a
/// signature with a key the order or the manifest names.
///
/// It names the node it is for, the manifest the client holds and a fresh
/// random nonce, so that a node refuses it when it was made for another
/// node or another federation, and refuses it when it sees it a second
/// time (its replay cache holds every request for as long as its time is
/// within [`MAX_CLOCK_SKEW`]; an older one is refused by its time).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The project.
    pub project: ProjectId,
    /// What is asked.
    pub action: Action,
    /// Seconds since the Unix epoch on the client's clock.
    pub time: UnixTime,
    /// The node the request is for.
    pub node: Name,
    /// The digest of the manifest the client holds ([`crate::manifest::Manifest::digest`]).
    pub manifest: Digest,
    /// Random, fresh for every request.
    pub nonce: [u8; NONCE_LEN],
}

/// A signed [`Request`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignedRequest {
    /// The request.
    pub request: Request,
    /// The signer's Ed25519 key.
    pub key: Ed25519Key,
    /// `Ed25519(key, framed_sha3("KOBLING-V1-CLIENT-REQUEST", [postcard(request)]))`.
    pub signature: Sig,
}

/// Why a node refuses a client request before it looks at its project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request's time is more than [`MAX_CLOCK_SKEW`] from the node's clock.
    #[error("the request's time is too far from the node's clock")]
    Stale,
    /// The request names another node.
    #[error("the request is for another node")]
    WrongNode,
    /// The request was made under another manifest.
    #[error("the request was made under another federation manifest")]
    WrongManifest,
    /// The signature does not verify.
    #[error("the request's signature does not verify")]
    BadSignature,
}

impl Request {
    /// The digest the signature covers; also the request's identity in a
    /// node's replay cache.
    pub fn digest(&self) -> Digest {
        Digest(framed_sha3(
            b"KOBLING-V1-CLIENT-REQUEST",
            &[&encode_value(self)],
        ))
    }

    /// Signs the request.
    pub fn sign(self, key: &ed25519_dalek::SigningKey) -> SignedRequest {
        let (key, signature) = sign_digest(key, &self.digest());
        SignedRequest {
            key,
            request: self,
            signature,
        }
    }
}

impl SignedRequest {
    /// Checks that the request is fresh at `now` (within
    /// [`MAX_CLOCK_SKEW`]), made for node `me` under the manifest with
    /// digest `manifest`, and signed. Whether the key may ask, and whether
    /// the request was seen before, are the caller's checks.
    ///
    /// # Errors
    ///
    /// A [`RequestError`].
    pub fn check(&self, now: UnixTime, me: &Name, manifest: &Digest) -> Result<(), RequestError> {
        let r = &self.request;
        RequestHead(r.time, &r.node, &r.manifest).check(now, me, manifest)?;
        check_signature(&self.key, &r.digest(), &self.signature)
    }
}

/// What every signed request names of itself (client, domain and innsyn
/// requests alike): its time, the node it is for and the digest of the
/// manifest it was made under.
pub(crate) struct RequestHead<'a>(
    pub(crate) UnixTime,
    pub(crate) &'a Name,
    pub(crate) &'a Digest,
);

impl RequestHead<'_> {
    /// Checks that the request is fresh at `now` (within
    /// [`MAX_CLOCK_SKEW`]) and made for node `me` under the manifest with
    /// digest `manifest`.
    pub(crate) fn check(
        &self,
        now: UnixTime,
        me: &Name,
        manifest: &Digest,
    ) -> Result<(), RequestError> {
        let Self(time, node, made_under) = *self;
        if time.abs_diff(now) > MAX_CLOCK_SKEW {
            return Err(RequestError::Stale);
        }
        if node != me {
            return Err(RequestError::WrongNode);
        }
        if made_under != manifest {
            return Err(RequestError::WrongManifest);
        }
        Ok(())
    }
}

/// A request's signature `signature` by `key` over its digest `digest`.
pub(crate) fn check_signature(
    key: &Ed25519Key,
    digest: &Digest,
    signature: &Sig,
) -> Result<(), RequestError> {
    crate::transcript::verify_signature(key, digest.as_bytes(), signature)
        .map_err(|()| RequestError::BadSignature)
}

/// Signs a request's digest: the signer's public key and the signature.
pub(crate) fn sign_digest(key: &ed25519_dalek::SigningKey, digest: &Digest) -> (Ed25519Key, Sig) {
    use ed25519_dalek::Signer as _;
    (
        Ed25519Key(key.verifying_key().to_bytes()),
        Sig(key.sign(digest.as_bytes()).to_bytes()),
    )
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
    /// Operator → own node: a signed approval, in a fresh envelope signed
    /// by the same operator that names the node, the manifest, the
    /// approval and the extract file the node is to read
    /// ([`Action::Approve`]).
    Approve {
        /// The operator's signed approval.
        statement: SignedStatement,
        /// The envelope: what the node is asked to read, for this node, now
        /// (boxed: it would double the size of every message).
        request: Box<SignedRequest>,
        /// The project's first transcript entry, the order as the linker
        /// recorded it (the operator's command reads it from the linker):
        /// a register holds nothing of a project before an operator of its
        /// own approves it, and learns the order from this entry, checked
        /// against the linker's key ([`crate::sequencer::admit_order_copy`]).
        order: Box<Entry>,
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
        list: ListName,
        /// `β_j` under HPKE.
        sealed: WrappedKey,
    },
    /// Owner → linker: sealed items from position `first` on.
    SealedItems {
        /// The project.
        project: ProjectId,
        /// The list.
        list: ListName,
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
        list: ListName,
        /// The variables, in extract order.
        columns: Columns,
        /// The list's content key, sealed to the researcher.
        content_key: WrappedKey,
        /// Items that follow.
        items: u64,
    },
    /// Linker → researcher: delivered items, positions ascending, with
    /// one proof for the batch.
    DeliveryItems {
        /// The project.
        project: ProjectId,
        /// The list.
        list: ListName,
        /// The items.
        items: BoundedVec<DeliveredItem, MAX_ITEMS_PER_MESSAGE>,
        /// The items' inclusion under the list's two signed roots.
        proof: BatchProof,
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
    /// Chain v2, step h → step h+1: a chunk of a project's list with its
    /// signed statement.
    ChunkV2 {
        /// The project.
        project: ProjectId,
        /// The chunk.
        chunk: crate::v2::ChunkMsg,
    },
    /// Chain v2, backward pass: owner → hop 1 → … → hop m → linker.
    PassV2 {
        /// The project.
        project: ProjectId,
        /// The pass so far.
        pass: crate::v2::Pass,
    },
    /// Linker → registers (and, with a status answer, → an operator): the
    /// project is linked, delivered or closed (issue 12 item 1: all a
    /// register learns after its lists were verified).
    Notice(crate::notice::SignedPhaseNotice),
    /// A register domain's holder → its key holders: domain transcript
    /// entries from `first` (replication); also a node's answer to an
    /// operator's [`DomainAction::Transcript`](crate::domain::wire::DomainAction)
    /// request.
    DomainEntries {
        /// The domain.
        domain: Name,
        /// The sequence number of the first entry.
        first: u64,
        /// The entries.
        entries: BoundedVec<crate::domain::transcript::DomainEntry, MAX_ENTRIES_PER_MESSAGE>,
    },
    /// A key holder → the domain's holder: its signed key commitment, at
    /// the holder's next sequence number.
    DomainCommitment {
        /// The domain.
        domain: Name,
        /// The `KeyCommitment` entry.
        entry: Box<crate::domain::transcript::DomainEntry>,
    },
    /// An operator → a node: a domain request (the transcript, or a
    /// signature on the retirement).
    DomainRequest(crate::domain::wire::SignedDomainRequest),
    /// The holder → an operator re-sharing a key holder's share: a page of
    /// its table, blinded by the re-share's β.
    DomainPoints {
        /// The domain.
        domain: Name,
        /// The page's first position.
        first: u64,
        /// Persons in the whole table.
        total: u64,
        /// The blinded points.
        points: BoundedVec<crate::group::WirePoint, { crate::domain::wire::RESHARE_PAGE }>,
    },
    /// An operator → its register: admit an innsyn portal; a portal → a
    /// register: one person's rows, sealed to the citizen's device
    /// (`innsyn::wire`).
    Innsyn(Box<crate::innsyn::wire::SignedInnsyn>),
    /// A register → a portal: the rows sealed to the device's one-time key.
    InnsynReply(Box<crate::innsyn::SealedReply>),
    /// A pseudonymous holder → hop 1 → … → last key holder → the holder:
    /// a portal's one-person list with the key holders' steps so far
    /// (`innsyn::blinded`).
    InnsynSteps(Box<crate::innsyn::blinded::InnsynSteps>),
    /// The linker → each hop → the disclosure log's holder: a page of an
    /// identified project's padded list on its way into the log; the
    /// holder → the linker: every page stored (`disclosure::log`).
    DisclosureLog(Box<crate::disclosure::log::LogMessage>),
    /// The researcher's client → the linker: a part of the researcher's
    /// own list in an identified project (docs/protocol.md §18).
    ResearcherList(Box<crate::researcher_list::wire::ResearcherListPart>),
    /// The linker → hop 1 of the researcher list: the researcher's `β₂`,
    /// sealed to hop 1 (`BlindingPart::Second`), relayed as it came.
    SecondBlinding {
        /// The project.
        project: ProjectId,
        /// The list (`RESEARCHER`).
        list: ListName,
        /// `β₂` under HPKE.
        sealed: WrappedKey,
    },
}

impl Message {
    /// The message's kind, for log lines and refusals (never its contents).
    pub fn kind(&self) -> &'static str {
        self.kind_of().name()
    }

    /// The message's [`Kind`].
    pub fn kind_of(&self) -> Kind {
        match self {
            Message::Hello { .. } => Kind::Hello,
            Message::SubmitOrder(_) => Kind::SubmitOrder,
            Message::Approve { .. } => Kind::Approve,
            Message::Statement(_) => Kind::Statement,
            Message::Entries { .. } => Kind::Entries,
            Message::Blinding { .. } => Kind::Blinding,
            Message::SealedItems { .. } => Kind::SealedItems,
            Message::Points(_) => Kind::Points,
            Message::Fetch(_) => Kind::Fetch,
            Message::Close(_) => Kind::Close,
            Message::Status(_) => Kind::Status,
            Message::TranscriptFile { .. } => Kind::TranscriptFile,
            Message::DeliveryHeader { .. } => Kind::DeliveryHeader,
            Message::DeliveryItems { .. } => Kind::DeliveryItems,
            Message::Ack { .. } => Kind::Ack,
            Message::Refused { .. } => Kind::Refused,
            Message::ChunkV2 { .. } => Kind::ChunkV2,
            Message::PassV2 { .. } => Kind::PassV2,
            Message::Notice(_) => Kind::Notice,
            Message::DomainEntries { .. } => Kind::DomainEntries,
            Message::DomainCommitment { .. } => Kind::DomainCommitment,
            Message::DomainRequest(_) => Kind::DomainRequest,
            Message::DomainPoints { .. } => Kind::DomainPoints,
            Message::Innsyn(_) => Kind::Innsyn,
            Message::InnsynReply(_) => Kind::InnsynReply,
            Message::InnsynSteps(_) => Kind::InnsynSteps,
            Message::DisclosureLog(_) => Kind::DisclosureLog,
            Message::ResearcherList(_) => Kind::ResearcherList,
            Message::SecondBlinding { .. } => Kind::SecondBlinding,
        }
    }
}

/// A message's kind: its postcard variant index, the first field of its
/// encoding. Read from a frame's first bytes with [`Kind::peek`] before the
/// rest of the frame is read or decoded, so that a node can refuse a kind
/// the peer may not send, or a frame longer than the kind can be, without
/// holding or decoding its body.
///
/// The order is [`Message`]'s declaration order (postcard numbers variants
/// from 0); `kinds_are_the_variant_indices` checks the two agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// [`Message::Hello`].
    Hello,
    /// [`Message::SubmitOrder`].
    SubmitOrder,
    /// [`Message::Approve`].
    Approve,
    /// [`Message::Statement`].
    Statement,
    /// [`Message::Entries`].
    Entries,
    /// [`Message::Blinding`].
    Blinding,
    /// [`Message::SealedItems`].
    SealedItems,
    /// [`Message::Points`].
    Points,
    /// [`Message::Fetch`].
    Fetch,
    /// [`Message::Close`].
    Close,
    /// [`Message::Status`].
    Status,
    /// [`Message::TranscriptFile`].
    TranscriptFile,
    /// [`Message::DeliveryHeader`].
    DeliveryHeader,
    /// [`Message::DeliveryItems`].
    DeliveryItems,
    /// [`Message::Ack`].
    Ack,
    /// [`Message::Refused`].
    Refused,
    /// [`Message::ChunkV2`].
    ChunkV2,
    /// [`Message::PassV2`].
    PassV2,
    /// [`Message::Notice`].
    Notice,
    /// [`Message::DomainEntries`].
    DomainEntries,
    /// [`Message::DomainCommitment`].
    DomainCommitment,
    /// [`Message::DomainRequest`].
    DomainRequest,
    /// [`Message::DomainPoints`].
    DomainPoints,
    /// [`Message::Innsyn`].
    Innsyn,
    /// [`Message::InnsynReply`].
    InnsynReply,
    /// [`Message::InnsynSteps`].
    InnsynSteps,
    /// [`Message::DisclosureLog`].
    DisclosureLog,
    /// [`Message::ResearcherList`].
    ResearcherList,
    /// [`Message::SecondBlinding`].
    SecondBlinding,
}

/// The largest frame of a kind a client (a peer without a member
/// certificate) may send: [`Kind::max_frame`] of every client kind is at
/// most this.
pub const MAX_CLIENT_FRAME: usize = 1 << 20;

/// Bytes of a frame [`Kind::peek`] may need: a varint `u32` takes at most
/// five.
pub const MAX_KIND_PREFIX: usize = 5;

impl Kind {
    /// Every kind, in variant-index order.
    pub const ALL: [Kind; 29] = [
        Kind::Hello,
        Kind::SubmitOrder,
        Kind::Approve,
        Kind::Statement,
        Kind::Entries,
        Kind::Blinding,
        Kind::SealedItems,
        Kind::Points,
        Kind::Fetch,
        Kind::Close,
        Kind::Status,
        Kind::TranscriptFile,
        Kind::DeliveryHeader,
        Kind::DeliveryItems,
        Kind::Ack,
        Kind::Refused,
        Kind::ChunkV2,
        Kind::PassV2,
        Kind::Notice,
        Kind::DomainEntries,
        Kind::DomainCommitment,
        Kind::DomainRequest,
        Kind::DomainPoints,
        Kind::Innsyn,
        Kind::InnsynReply,
        Kind::InnsynSteps,
        Kind::DisclosureLog,
        Kind::ResearcherList,
        Kind::SecondBlinding,
    ];

    /// The kind of the message a frame body starts with, from its first
    /// bytes (at most [`MAX_KIND_PREFIX`]; more are ignored).
    ///
    /// Returns `Ok(None)` if `prefix` ends inside the variant index (read
    /// one more byte and ask again), exactly as [`decode`] would read it:
    /// postcard's varint, over-long encodings included.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Malformed`] if the index is no kind (or overflows a
    /// `u32`): no decoding of the rest can succeed.
    pub fn peek(prefix: &[u8]) -> Result<Option<Kind>, DecodeError> {
        let prefix = &prefix[..prefix.len().min(MAX_KIND_PREFIX)];
        match postcard::take_from_bytes::<u32>(prefix) {
            Ok((index, _)) => usize::try_from(index)
                .ok()
                .and_then(|i| Self::ALL.get(i).copied())
                .map(Some)
                .ok_or_else(|| DecodeError::Malformed(format!("no message kind {index}"))),
            Err(postcard::Error::DeserializeUnexpectedEnd) if prefix.len() < MAX_KIND_PREFIX => {
                Ok(None)
            }
            Err(e) => Err(DecodeError::Malformed(e.to_string())),
        }
    }

    /// The kind's name, as [`Message::kind`] gives it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hello => "Hello",
            Kind::SubmitOrder => "SubmitOrder",
            Kind::Approve => "Approve",
            Kind::Statement => "Statement",
            Kind::Entries => "Entries",
            Kind::Blinding => "Blinding",
            Kind::SealedItems => "SealedItems",
            Kind::Points => "Points",
            Kind::Fetch => "Fetch",
            Kind::Close => "Close",
            Kind::Status => "Status",
            Kind::TranscriptFile => "TranscriptFile",
            Kind::DeliveryHeader => "DeliveryHeader",
            Kind::DeliveryItems => "DeliveryItems",
            Kind::Ack => "Ack",
            Kind::Refused => "Refused",
            Kind::ChunkV2 => "ChunkV2",
            Kind::PassV2 => "PassV2",
            Kind::Notice => "Notice",
            Kind::DomainEntries => "DomainEntries",
            Kind::DomainCommitment => "DomainCommitment",
            Kind::DomainRequest => "DomainRequest",
            Kind::DomainPoints => "DomainPoints",
            Kind::Innsyn => "Innsyn",
            Kind::InnsynReply => "InnsynReply",
            Kind::InnsynSteps => "InnsynSteps",
            Kind::DisclosureLog => "DisclosureLog",
            Kind::ResearcherList => "ResearcherList",
            Kind::SecondBlinding => "SecondBlinding",
        }
    }

    /// Whether a client (a researcher or operator, without a member
    /// certificate) may send this kind as a request. Every other kind is
    /// a member's (or a reply) and is refused to a client before its body
    /// is read.
    pub fn from_client(self) -> bool {
        matches!(
            self,
            Kind::Hello
                | Kind::SubmitOrder
                | Kind::Approve
                | Kind::Fetch
                | Kind::Close
                | Kind::Status
                | Kind::DomainRequest
                | Kind::Innsyn
                | Kind::ResearcherList
        )
    }

    /// The largest frame body of this kind a node reads (never more than
    /// [`MAX_FRAME`]; for the kinds a client may send, never more than
    /// [`MAX_CLIENT_FRAME`]).
    ///
    /// A fixed-size kind's cap is its largest encoding with room to spare;
    /// a kind bounded only by its fields' bounds gets a cap below what
    /// those bounds allow only where no honest message comes near it (a
    /// project order of 1 MiB would name hundreds of registers' worth of
    /// columns).
    pub fn max_frame(self) -> usize {
        match self {
            Kind::Hello | Kind::Ack => 64,
            // A project id, an action, a time, a key and a signature.
            Kind::Fetch | Kind::Close | Kind::Status | Kind::Notice => 4 << 10,
            // A re-share's converted page: 4,096 points and two proofs.
            Kind::DomainRequest => MAX_CLIENT_FRAME,
            Kind::DomainPoints => 1 << 20,
            // One entry: a creation names at most 256 key holders.
            Kind::DomainCommitment => 64 << 10,
            Kind::Blinding | Kind::SecondBlinding => 64 << 10,
            // A chunk of at most `MAX_RESEARCHER_CHUNK` points, or a page
            // of sealed items the client keeps under the cap.
            Kind::ResearcherList => MAX_CLIENT_FRAME,
            Kind::Refused => 4 << 10,
            // A device request, an identifier, a key and a signature.
            Kind::Innsyn => 4 << 10,
            // The padded rows of one person, at most a sealed item.
            Kind::InnsynReply => MAX_FRAME,
            // A portal's call and at most 64 steps of ~200 bytes.
            Kind::InnsynSteps => 64 << 10,
            // A page of 256 points after each of at most 64 hops, with
            // their proofs.
            Kind::DisclosureLog => 2 << 20,
            Kind::SubmitOrder | Kind::Approve => MAX_CLIENT_FRAME,
            // Two lists of at most 65,536 points of 32 bytes, and a proof.
            Kind::Points => 5 << 20,
            Kind::DeliveryHeader => 1 << 20,
            Kind::Statement
            | Kind::Entries
            | Kind::SealedItems
            | Kind::TranscriptFile
            | Kind::DeliveryItems
            | Kind::ChunkV2
            | Kind::PassV2
            | Kind::DomainEntries => MAX_FRAME,
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
mod tests;
