//! Which message a node admits, from whom, and when.
//!
//! A node decides in two steps, before it verifies a proof or stores a
//! byte:
//!
//! ```text
//!  message ─▶ authorise(kind, sender's role, my role) ─▶ ProjectView::admit(project state)
//!               (no state read: a stranger learns          (unknown project, closed, list,
//!                nothing about what exists here)            hop, chunk and position ranges)
//! ```
//!
//! Both return a [`Refusal`] with a stable [`RefusalCode`]. Refusal details
//! name projects, lists and positions, never an identifier or a point.
//!
//! Without the state checks, a chunk for a closed project was answered
//! `not-ready` forever (its sender retried it forever), sealed items for a
//! closed project were stored again after the shredding, and a chunk with
//! hop `u32::MAX` or items at position `u64::MAX` overflowed arithmetic.

use super::ProjectView;
use crate::{
    manifest::{Manifest, Role},
    messages::Message,
    refusal::{Refusal, RefusalCode},
    transcript::Body,
    types::{ChunkIndex, HopIndex, ListName, Name, ProjectId},
};

/// Who sent a message: a manifest member (authenticated by its pinned TLS
/// certificate), or a client (researcher, operator) whose messages carry
/// their own signatures.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A federation member.
    Member(Name),
    /// A client.
    Client,
}

impl Origin {
    /// The member's name, or `client`, for log lines.
    pub fn label(&self) -> &str {
        match self {
            Origin::Member(n) => n.as_str(),
            Origin::Client => "client",
        }
    }
}

/// The one refusal for a message whose kind this node does not take from
/// this peer: the same text whatever the node holds.
pub fn unexpected(msg: &Message) -> Refusal {
    Refusal::new(
        RefusalCode::Unexpected,
        format!("this node does not accept {} from this peer", msg.kind()),
    )
}

/// Authorises `msg` from `from` at node `me` by the message's kind and the
/// two roles alone, before any project state is read.
///
/// | kind | from | to |
/// |---|---|---|
/// | `Hello`, `Status` | anyone | any node |
/// | `SubmitOrder`, `Fetch` | a client | the linker |
/// | `Close` | a client, or a member (a delivery's holder) | the linker |
/// | `Approve` | a client | a register |
/// | `Statement` | a member | the linker |
/// | `Entries`, `Notice` | the linker | a register |
/// | `TranscriptFile`, `DeliveryHeader`, `DeliveryItems` | the linker | a register (a delivery's holder) |
/// | `SealedItems` | the list's owner | the linker |
/// | `Blinding` | the list's owner | the linker, or a register (a delivery's holder) |
/// | `Points`, `ChunkV2`, `PassV2` | a member | any node |
/// | `ResearcherList` | a client (the researcher) | the linker |
/// | `SecondBlinding` | the linker | a register (hop 1 of the researcher list) |
///
/// Replies (`Ack`, `Refused`, transcripts, deliveries) are never requests.
///
/// # Errors
///
/// [`RefusalCode::Unexpected`], with a text that depends on the kind only.
pub fn authorise(
    manifest: &Manifest,
    me: &Name,
    from: &Origin,
    msg: &Message,
) -> Result<(), Refusal> {
    let my_role = manifest.member(me).map(|m| m.role);
    let linker = manifest.linker().map(|l| &l.name);
    let to_linker = my_role == Some(Role::Linker);
    let to_register = my_role == Some(Role::Register);
    let member = match from {
        Origin::Member(m) => Some(m),
        Origin::Client => None,
    };
    let ok = match msg {
        Message::Hello { .. } | Message::Status(_) => true,
        Message::SubmitOrder(_) | Message::Fetch(_) => member.is_none() && to_linker,
        // A delivery's holder closes it once received (the engine checks
        // the request's key).
        Message::Close(_) => to_linker,
        Message::Approve { .. } => member.is_none() && to_register,
        Message::Statement(_) => member.is_some() && to_linker,
        Message::Entries { .. } | Message::Notice(_) => {
            member.is_some() && member == linker && to_register
        }
        Message::SealedItems { list, .. } => member == Some(list.owner()) && to_linker,
        // To a register: a delivery's source seals β to the holder.
        Message::Blinding { list, .. } => {
            member == Some(list.owner()) && (to_linker || to_register)
        }
        // A delivery pushed to its holder, in order, through the outbox.
        Message::TranscriptFile { .. }
        | Message::DeliveryHeader { .. }
        | Message::DeliveryItems { .. } => member.is_some() && member == linker && to_register,
        Message::Points(_) | Message::ChunkV2 { .. } | Message::PassV2 { .. } => member.is_some(),
        // The researcher's own list (docs/protocol.md §18): its client
        // sends it to the linker, which relays β₂ to hop 1.
        Message::ResearcherList(_) => member.is_none() && to_linker,
        Message::SecondBlinding { list, .. } => {
            member.is_some()
                && member == linker
                && to_register
                && list.as_str() == crate::researcher_list::LIST_NAME
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(unexpected(msg))
    }
}

/// The project a message is about, for the kinds admitted against a
/// project's state (statements, approvals, entries, blindings, sealed
/// items, chunks); `None` for the others.
pub fn subject(msg: &Message) -> Option<&ProjectId> {
    match msg {
        Message::Statement(s) | Message::Approve { statement: s, .. } => Some(&s.statement.project),
        Message::Entries { project, .. }
        | Message::Blinding { project, .. }
        | Message::SealedItems { project, .. }
        | Message::SecondBlinding { project, .. }
        | Message::ChunkV2 { project, .. }
        | Message::PassV2 { project, .. } => Some(project),
        Message::Points(chunk) => Some(&chunk.project),
        Message::Notice(n) => Some(&n.notice.project),
        Message::ResearcherList(part) => Some(part.project()),
        _ => None,
    }
}

impl ProjectView<'_> {
    /// Admits an (authorised) message about this project against the
    /// project's state: the project exists here (or the message is one
    /// that may come first), it is not closed, and the lists, hops,
    /// chunks and positions it names are inside the project.
    ///
    /// The engine's own checks (signatures, proofs, order) follow.
    ///
    /// # Errors
    ///
    /// A [`Refusal`]: `unknown-project`, `closed`, `unknown-list`,
    /// `bad-chunk`, `bad-items` (final), or `unexpected-sender`.
    pub fn admit(&self, msg: &Message, from: &Origin) -> Result<(), Refusal> {
        let Some(project) = subject(msg) else {
            return Ok(());
        };
        // Transcript entries from the linker are how a register learns of a
        // project, and of its closure; an approval may come before the
        // project reached this node (the engine answers `not-ready`).
        let bootstraps = matches!(msg, Message::Entries { .. } | Message::Approve { .. });
        if self.order.is_none() {
            return if bootstraps {
                Ok(())
            } else {
                Err(Refusal::new(
                    RefusalCode::UnknownProject,
                    format!("no project {project}"),
                ))
            };
        }
        let shredding =
            matches!(msg, Message::Statement(s) if matches!(s.statement.body, Body::Shredded(_)));
        let from_linker = matches!(msg, Message::Entries { .. } | Message::Notice(_));
        if self.closed && !shredding && !from_linker {
            return Err(Refusal::new(
                RefusalCode::Closed,
                format!("project {project} is closed; its data is deleted"),
            ));
        }
        let list = match msg {
            Message::Points(chunk) => &chunk.list,
            Message::ChunkV2 { chunk, .. } => &chunk.list,
            Message::PassV2 { pass, .. } => &pass.list,
            Message::Blinding { list, .. }
            | Message::SealedItems { list, .. }
            | Message::SecondBlinding { list, .. } => list,
            _ => return Ok(()),
        };
        if !self.lists().contains(list) {
            return Err(Refusal::new(
                RefusalCode::UnknownList,
                format!("project {project} has no list {list}"),
            ));
        }
        let announced = self.announcement(list);
        match msg {
            Message::Points(chunk) => {
                let chunks = announced.map(|a| (a.persons, a.chunk_size));
                self.admit_chunk(project, list, from, chunk.hop, chunk.chunk, chunks)?;
            }
            Message::ChunkV2 { chunk, .. } => {
                // Chain v2: the engine's hop checks the rest (attempt,
                // count, signature).
                let st = &chunk.statement.statement;
                let chunks = self
                    .v2_list(list)
                    .map(|l| (l.announcement.persons, l.announcement.chunk_size));
                self.admit_chunk(project, list, from, st.hop, st.chunk, chunks)?;
            }
            Message::PassV2 { pass, .. } => {
                // The pass comes from the owner (no step yet) or from the
                // register hop that made its last step.
                // (or from the next step's member, handing the linker a pass
                // that does not verify).
                let hops = self.hops_of(list);
                let h = pass.steps.len();
                let owner = self.owner_sender(list);
                let sender = if h == 0 {
                    Some(&owner)
                } else {
                    hops.get(h - 1)
                };
                let next = hops
                    .get(h)
                    .filter(|n| self.manifest.linker().is_none_or(|l| l.name != **n));
                let ok = [sender, next]
                    .into_iter()
                    .flatten()
                    .any(|s| *from == Origin::Member(s.clone()));
                if !ok {
                    return Err(Refusal::new(
                        RefusalCode::UnexpectedSender,
                        format!(
                            "the sender did not make step {} of list {list}'s pass in project {project}",
                            pass.steps.len()
                        ),
                    ));
                }
            }
            Message::SealedItems { first, items, .. } => {
                // Before the announcement the list's size is unknown: the
                // items wait (an owner queues its announcement first), and
                // nothing is stored for positions nobody has announced.
                let Some(persons) = announced.map(|a| a.persons) else {
                    return Err(Refusal::not_ready(format!(
                        "list {list} of project {project} is not announced here yet"
                    )));
                };
                items_inside(list, *first, items.len(), persons)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether `list` is this project's researcher list.
    pub fn is_researcher_list(&self, list: &ListName) -> bool {
        self.order.is_some_and(|o| o.is_researcher_list(list))
    }

    /// The member a list's hop-0 chunks and `A_0` come from: its owner, or
    /// for the researcher list the linker, which relays them from the
    /// researcher's client (docs/protocol.md §18).
    pub fn owner_sender(&self, list: &ListName) -> Name {
        match self.manifest.linker() {
            Some(l) if self.is_researcher_list(list) => l.name.clone(),
            _ => list.owner().clone(),
        }
    }

    /// The member a chunk produced by hop `hop` of `list` is for (the
    /// linker after the last register hop).
    pub fn chunk_recipient(&self, list: &ListName, hop: HopIndex) -> Option<Name> {
        self.hops_of(list).get(hop.as_usize()).cloned()
    }
}

impl ProjectView<'_> {
    /// A chunk of `list` from step `hop` (either chain): the step exists,
    /// the chunk index is within the announced list (`persons`,
    /// `chunk_size`, once announced), and it comes from the member just
    /// before the one it is for (the owner for hop 1).
    fn admit_chunk(
        &self,
        project: &ProjectId,
        list: &ListName,
        from: &Origin,
        hop: HopIndex,
        chunk: ChunkIndex,
        announced: Option<(u64, u32)>,
    ) -> Result<(), Refusal> {
        let hops = self.hops_of(list);
        let Some(step) = Some(hop.as_usize()).filter(|h| *h < hops.len()) else {
            return Err(Refusal::new(
                RefusalCode::BadChunk,
                format!(
                    "list {list} has {} hops after its owner; no chunk comes from hop {hop}",
                    hops.len()
                ),
            ));
        };
        if let Some((persons, chunk_size)) = announced {
            let chunks = persons.div_ceil(u64::from(chunk_size.max(1)));
            if chunk.0 >= chunks {
                return Err(Refusal::new(
                    RefusalCode::BadChunk,
                    format!("list {list} has {chunks} chunks; there is no chunk {chunk}"),
                ));
            }
        }
        let sender = if step == 0 {
            self.owner_sender(list)
        } else {
            hops[step - 1].clone()
        };
        if *from != Origin::Member(sender) {
            return Err(Refusal::new(
                RefusalCode::UnexpectedSender,
                format!("the sender is not hop {hop} of list {list} in project {project}"),
            ));
        }
        Ok(())
    }
}

/// Sealed items at positions `first..first + count` fit in `list` of
/// `persons` persons (a register's `SealedItems`, the researcher's items).
///
/// # Errors
///
/// A [`Refusal`] `bad-items` naming the list.
pub fn items_inside(
    list: &crate::types::ListName,
    first: crate::types::Position,
    count: usize,
    persons: u64,
) -> Result<(), Refusal> {
    let end = first.0.checked_add(count as u64);
    if end.is_none_or(|end| end > persons) {
        return Err(Refusal::new(
            RefusalCode::BadItems,
            format!(
                "{count} items from position {} are outside list {list}",
                first.0
            ),
        ));
    }
    Ok(())
}
