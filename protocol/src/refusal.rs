//! Refusals: why a node did not accept a message.
//!
//! A refusal travels as [`Message::Refused`] with a stable kebab-case code
//! (the wire keeps the code as text, so an older peer's unknown code is
//! still read) and a human-readable detail that never holds an identifier,
//! a point or a file-system path. [`RefusalCode`] is the one list of codes:
//! the rules in this crate produce them, and the node's engine, sender and
//! tests match on them instead of on strings.
//!
//! Only [`RefusalCode::NotReady`] and [`RefusalCode::Internal`] mean "send it
//! again later"; every other code is final for that message.

use core::fmt;

use crate::{bounded::BoundedString, messages::Message};

/// The most characters of a refusal's detail that travel.
pub const MAX_DETAIL_CHARS: usize = 1000;

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $text:literal, )*) => {
        /// A refusal's stable code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum RefusalCode {
            $( $(#[$doc])* $variant, )*
            /// A code this build does not know (from a newer peer).
            Other,
        }

        impl RefusalCode {
            /// Every code this build knows, in declaration order.
            pub const ALL: &'static [RefusalCode] = &[$(RefusalCode::$variant,)*];

            /// The code as it travels.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( RefusalCode::$variant => $text, )*
                    RefusalCode::Other => "other",
                }
            }

            /// The code of a received refusal (`Other` if unknown).
            pub fn from_wire(code: &str) -> RefusalCode {
                match code {
                    $( $text => RefusalCode::$variant, )*
                    _ => RefusalCode::Other,
                }
            }
        }
    };
}

codes! {
    /// Send it again later: something it depends on has not arrived here
    /// yet (an announcement, an earlier chunk, the previous hop's record).
    NotReady = "not-ready",
    /// The receiving node failed (e.g. its disk is full); send it again later.
    Internal = "internal",
    /// The peer speaks a protocol version this node does not.
    Version = "version",
    /// This node does not take this kind of message from this peer.
    Unexpected = "unexpected",
    /// This node knows no such project, or the asker may not know of it.
    UnknownProject = "unknown-project",
    /// The project is closed: its data is deleted.
    Closed = "closed",
    /// The project's order has expired.
    Expired = "expired",
    /// The project has no such list.
    UnknownList = "unknown-list",
    /// A chunk from a hop or with an index outside the list, or a chunk
    /// whose points or proof are wrong.
    BadChunk = "bad-chunk",
    /// Sealed items at positions outside the announced list.
    BadItems = "bad-items",
    /// `SubmitOrder` without an order.
    NotAnOrder = "not-an-order",
    /// A project with this id exists.
    ProjectExists = "project-exists",
    /// The statement does not verify against the transcript.
    Invalid = "invalid",
    /// A member sent a statement signed for someone else.
    Impersonation = "impersonation",
    /// Transcript entries from someone other than the linker.
    NotTheLinker = "not-the-linker",
    /// Transcript entries that differ from this node's copy.
    Diverged = "diverged",
    /// `Approve` without an operator's approval.
    NotAnApproval = "not-an-approval",
    /// An approval for another register.
    WrongRegister = "wrong-register",
    /// The key is not an operator of this register.
    NotAnOperator = "not-an-operator",
    /// A signature does not verify.
    BadSignature = "bad-signature",
    /// An approval of another project order.
    WrongOrder = "wrong-order",
    /// The approved extract cannot be read.
    Extract = "extract",
    /// The extract's digest is not the approved one.
    ExtractDigest = "extract-digest",
    /// A chunk from a member that is not the hop before this one.
    UnexpectedSender = "unexpected-sender",
    /// This node's hop over a list cannot be set up.
    Hop = "hop",
    /// The list blinding does not open, or does not match its commitment.
    Blinding = "blinding",
    /// The list could not be prepared from the extract.
    Prepare = "prepare",
    /// The project order is unusable.
    Order = "order",
    /// The manifest lacks something the step needs.
    Manifest = "manifest",
    /// Linking failed.
    Link = "link",
    /// A client request that is malformed, stale or badly signed.
    BadRequest = "bad-request",
    /// Only the project's researcher may do this.
    NotTheResearcher = "not-the-researcher",
    /// Building the delivery failed.
    Delivery = "delivery",
    /// Too large for one message.
    TooLarge = "too-large",
    /// The asker may not read or do this.
    NotAllowed = "not-allowed",
    /// A client request (or an approval's envelope) this node has seen
    /// before, or one made for another node or another manifest.
    Replayed = "replayed",
    /// Sealed items past the bytes a list may occupy at the linker.
    ListTooLarge = "list-too-large",
    /// A project order no access authority of the manifest signed, or
    /// signed for another order.
    NoAuthority = "no-authority",
    /// The researcher has as many orders waiting for a first approval as
    /// the linker keeps.
    TooManyPending = "too-many-pending",
    /// Chain v2: a backward pass whose owner signature or step proof does
    /// not verify, or that is not for the σ the records give.
    Check = "check",
    /// An innsyn request over a quota (per portal or per person).
    Quota = "quota",
    /// A part of the researcher's list the linker refuses: a count or
    /// file digest unlike the order's, not a split blinding, a chunk or
    /// pass it will not relay (docs/protocol.md §18).
    ResearcherList = "researcher-list",
}

impl RefusalCode {
    /// Whether the sender should offer the message again later.
    pub fn is_transient(self) -> bool {
        matches!(self, RefusalCode::NotReady | RefusalCode::Internal)
    }
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: a code and a detail (never an identifier, a point or a path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The code.
    pub code: RefusalCode,
    /// What a person reads.
    pub detail: String,
}

impl Refusal {
    /// A refusal with `code` and `detail`.
    pub fn new(code: RefusalCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }

    /// "Send it again later".
    pub fn not_ready(detail: impl Into<String>) -> Self {
        Self::new(RefusalCode::NotReady, detail)
    }

    /// The refusal as a message (the detail cut to [`MAX_DETAIL_CHARS`]).
    pub fn into_message(self) -> Message {
        let detail: String = self.detail.chars().take(MAX_DETAIL_CHARS).collect();
        Message::Refused {
            code: BoundedString::new(self.code.as_str()).unwrap_or_default(),
            detail: BoundedString::new(detail).unwrap_or_default(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl Message {
    /// The code of a refusal (`None` for any other message).
    pub fn refusal_code(&self) -> Option<RefusalCode> {
        match self {
            Message::Refused { code, .. } => Some(RefusalCode::from_wire(code.as_str())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_and_codes_are_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for &c in RefusalCode::ALL {
            assert_eq!(RefusalCode::from_wire(c.as_str()), c);
            assert!(seen.insert(c.as_str()), "duplicate code {c}");
            assert!(c.as_str().len() <= 64);
        }
        assert_eq!(RefusalCode::from_wire("no-such-code"), RefusalCode::Other);
    }

    #[test]
    fn a_refusal_message_keeps_its_code_and_cuts_its_detail() {
        let long = "x".repeat(5000);
        let m = Refusal::new(RefusalCode::Closed, long).into_message();
        assert_eq!(m.refusal_code(), Some(RefusalCode::Closed));
        let Message::Refused { detail, .. } = m else {
            panic!("not a refusal")
        };
        assert_eq!(detail.as_str().chars().count(), MAX_DETAIL_CHARS);
    }
}
