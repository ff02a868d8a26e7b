//! The researcher's list on the wire (docs/protocol.md §18): what the
//! researcher's client sends the linker ([`Message::ResearcherList`]), and
//! the linker's checks of each part before it records or relays it.
//!
//! ```text
//!  client ─ResearcherList(Announce)─▶ linker: check_announcement, β₁ opened and checked (D₁)
//!                                       └─ records the announcement, keeps β₁ ─SecondBlinding(β₂)─▶ hop 1
//!  client ─ResearcherList(Items)────▶ linker: kept, as any list's sealed items
//!  client ─ResearcherList(Chunk)────▶ linker: check_chunk (hop 0, the researcher's signature) ─ChunkV2─▶ hop 1
//!  client ─ResearcherList(End)──────▶ linker: check_end, records it
//!  client ─ResearcherList(Pass)─────▶ linker: check_pass (A_0, no step) ─PassV2─▶ hop 1
//! ```
//!
//! [`Message::ResearcherList`]: crate::messages::Message::ResearcherList

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::{header, list_name, ResearcherListError};
use crate::{
    bounded::BoundedVec,
    messages::MAX_ITEMS_PER_MESSAGE,
    refusal::RefusalCode,
    seal::{SealedItem, WrappedKey},
    transcript::{ProjectOrder, SignedStatement},
    types::{Attempt, Position, ProjectId},
    v2::{chunk_digest, ChunkMsg, ListAnnouncementV2, Mode, Pass},
};

/// Points per chunk a researcher's client may send: a chunk message stays
/// under the client frame cap ([`crate::messages::MAX_CLIENT_FRAME`]).
pub const MAX_RESEARCHER_CHUNK: u32 = 16_384;

/// One part of the researcher's list, client → linker
/// (`Message::ResearcherList`, postcard: the variant index, then the
/// fields in order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ResearcherListPart {
    /// The signed announcement (`ListAnnouncedV2`), with `β₁` sealed to
    /// the linker and `β₂` sealed to hop 1 (relayed).
    Announce {
        /// The researcher's signed announcement.
        announcement: SignedStatement,
        /// `β₁` (`BlindingPart::First`), sealed to the linker.
        first: WrappedKey,
        /// `β₂` (`BlindingPart::Second`), sealed to hop 1.
        second: WrappedKey,
    },
    /// Sealed items from position `first` on.
    Items {
        /// The project.
        project: ProjectId,
        /// The first item's position.
        first: Position,
        /// The items.
        items: BoundedVec<SealedItem, MAX_ITEMS_PER_MESSAGE>,
    },
    /// A hop-0 chunk with the researcher's signed chunk statement.
    Chunk {
        /// The project.
        project: ProjectId,
        /// The chunk.
        chunk: ChunkMsg,
    },
    /// The signed end-of-list statement (`OwnerListV2`).
    End(SignedStatement),
    /// The researcher's signed `A_0`: a pass with no step yet.
    Pass {
        /// The project.
        project: ProjectId,
        /// The pass.
        pass: Pass,
    },
}

impl ResearcherListPart {
    /// The project the part is about.
    pub fn project(&self) -> &ProjectId {
        match self {
            ResearcherListPart::Announce { announcement, .. } => &announcement.statement.project,
            ResearcherListPart::End(s) => &s.statement.project,
            ResearcherListPart::Items { project, .. }
            | ResearcherListPart::Chunk { project, .. }
            | ResearcherListPart::Pass { project, .. } => project,
        }
    }
}

impl ResearcherListError {
    /// The refusal code the linker answers with.
    pub fn code(&self) -> RefusalCode {
        match self {
            ResearcherListError::NotTheResearcher => RefusalCode::NotTheResearcher,
            ResearcherListError::NotIdentified => RefusalCode::UnknownList,
            ResearcherListError::Blinding => RefusalCode::Blinding,
            ResearcherListError::BadChunk(_) => RefusalCode::BadChunk,
            ResearcherListError::NotYet => RefusalCode::NotReady,
            _ => RefusalCode::ResearcherList,
        }
    }
}

/// The linker's check of a hop-0 chunk of the researcher list before it
/// relays it to hop 1: attempt 0 (the researcher list has no strict
/// attempt), step 0, a chunk inside the announced list, the researcher's
/// signature over its statement, and points that are the bytes the
/// statement digests. Hop 1 checks all of it again (the relay is not
/// trusted); this keeps the linker from relaying what the researcher did
/// not send.
///
/// # Errors
///
/// [`ResearcherListError::BadChunk`], [`ResearcherListError::NotTheResearcher`].
pub fn check_chunk(
    order: &ProjectOrder,
    announcement: &ListAnnouncementV2,
    chunk: &ChunkMsg,
) -> Result<(), ResearcherListError> {
    let st = &chunk.statement.statement;
    let header = header(
        &order.project,
        announcement.persons,
        announcement.chunk_size,
        Attempt::FIRST,
        Mode::Optimistic,
    )?;
    if chunk.list != list_name()?
        || chunk.attempt != Attempt::FIRST
        || st.hop.0 != 0
        || st.chunk.0 >= header.chunks()
        || !chunk.earlier.is_empty()
        || !chunk.input.is_empty()
        || chunk.proof.is_some()
    {
        return Err(ResearcherListError::BadChunk(format!(
            "not a hop-0 chunk of the researcher list's attempt 0 inside its {} chunks",
            header.chunks()
        )));
    }
    let key = VerifyingKey::from_bytes(&order.researcher_signing_key.0)
        .map_err(|_| ResearcherListError::NotTheResearcher)?;
    st.verify(&header, &key, &chunk.statement.signature)
        .map_err(|()| ResearcherListError::NotTheResearcher)?;
    if chunk_digest(&chunk.points) != st.output {
        return Err(ResearcherListError::BadChunk(
            "the points are not the ones the researcher's statement digests".into(),
        ));
    }
    Ok(())
}

/// The linker's check of the researcher's `A_0` before it relays it to
/// hop 1: a pass of the researcher list's attempt 0 with no step yet
/// (hop 1 verifies the researcher's signature under σ).
///
/// # Errors
///
/// [`ResearcherListError::BadPass`].
pub fn check_pass(pass: &Pass) -> Result<(), ResearcherListError> {
    if pass.list != list_name()? || pass.attempt != Attempt::FIRST || !pass.steps.is_empty() {
        return Err(ResearcherListError::BadPass);
    }
    Ok(())
}
