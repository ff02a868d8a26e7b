//! The engine's two kinds of failure: a refusal of the peer's message (a
//! reply, with a stable [`RefusalCode`]), and an internal failure of this
//! node (its store, its keystore), which the transport answers with
//! `internal` so that the peer retries.

use kobling_keys::KeystoreError;
use kobling_protocol::{
    bounded::BoundedVec,
    messages::Message,
    refusal::{Refusal, RefusalCode},
    types::{Digest, Name},
};

use crate::{prepare::JobError, store::StoreError};

/// An internal failure (not a refusal of the peer's message).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The state database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The keystore.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The node's name is not in the manifest.
    #[error("{0} is not a member of the manifest")]
    NotAMember(Name),
    /// A list-preparation thread could not be started.
    #[error("cannot start preparing a list: {0}")]
    Spawn(#[source] std::io::Error),
    /// A register domain's transcript held here does not verify against
    /// the manifest.
    #[error("domain transcript: {0}")]
    Domain(#[from] kobling_protocol::domain::transcript::DomainTranscriptError),
}

/// Why a message was not processed: refused, or this node failed.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Refused, with a code; answered to the peer.
    Refusal(Refusal),
    /// This node failed.
    Engine(EngineError),
}

/// A handler's result.
pub(crate) type Outcome<T> = Result<T, Refused>;

/// A refusal with `code` and `detail`.
pub(crate) fn refuse(code: RefusalCode, detail: impl Into<String>) -> Refused {
    Refused::Refusal(Refusal::new(code, detail))
}

/// "Send it again later".
pub(crate) fn not_ready(detail: impl Into<String>) -> Refused {
    refuse(RefusalCode::NotReady, detail)
}

impl From<Refusal> for Refused {
    fn from(r: Refusal) -> Self {
        Refused::Refusal(r)
    }
}

impl From<EngineError> for Refused {
    fn from(e: EngineError) -> Self {
        Refused::Engine(e)
    }
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Refused::Engine(e.into())
    }
}

impl From<KeystoreError> for Refused {
    fn from(e: KeystoreError) -> Self {
        match e {
            KeystoreError::Shredded { .. } => refuse(
                RefusalCode::Closed,
                "the project is closed: its key was shredded",
            ),
            e => Refused::Engine(e.into()),
        }
    }
}

impl From<JobError> for Refused {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Refused(r) => Refused::Refusal(r),
            JobError::Store(e) => e.into(),
            JobError::Cancelled => not_ready("the list's preparation stopped"),
        }
    }
}

/// The positive reply.
pub(crate) fn ack() -> Message {
    Message::Ack {
        of: Digest::default(),
    }
}

/// A bounded vector, or `too-large`.
pub(crate) fn bounded<T, const N: usize>(v: Vec<T>) -> Outcome<BoundedVec<T, N>> {
    BoundedVec::new(v).map_err(|e| refuse(RefusalCode::TooLarge, e.to_string()))
}
