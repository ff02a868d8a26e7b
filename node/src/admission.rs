//! Admission: checks of a message against its project's state, made before
//! the engine works on it, so that a message for a project that does not
//! exist here or is closed, or naming a list, hop, chunk or position
//! outside the project, is refused for good with a stable code.
//!
//! ```text
//!  Engine::handle(from, msg) ── screen ──▶ Refused { code, detail } (logged; final)
//!                                  │
//!                                  └─ admitted ──▶ the engine's own checks (signatures, proofs, order)
//! ```
//!
//! | code | when |
//! |---|---|
//! | `unknown-project` | a statement, chunk, blinding or sealed items for a project this node has no transcript of |
//! | `closed` | anything but a shredding confirmation (and the linker's transcript entries) for a closed project: its data is deleted, and nothing may be stored for it again |
//! | `unknown-list` | a chunk, blinding or sealed items for a list that is not a participant of the project |
//! | `bad-chunk` | a chunk from a hop past the end of the list's chain, or with an index past the list's last chunk |
//! | `bad-items` | sealed items at positions outside the announced list |
//!
//! Without these, a chunk for a closed project was answered `not-ready`
//! forever (its sender retried it forever), sealed items for a closed
//! project were stored again after the shredding, and a chunk with hop
//! `u32::MAX` or items at position `u64::MAX` overflowed the engine's
//! arithmetic. Refusal details name projects, lists and positions, never
//! an identifier or a point.

use kobling_protocol::{
    bounded::BoundedString,
    manifest::Manifest,
    messages::Message,
    project::ProjectView,
    transcript::{Body, Entry},
    types::{Name, ProjectId},
};

use crate::{
    engine::Peer,
    store::{Store, StoreError},
};

/// Screens `msg` from `from` at node `me`; `Some(reply)` is a refusal to
/// send back (already logged).
///
/// # Errors
///
/// [`StoreError`] if the project's transcript cannot be read.
pub(crate) fn screen(
    me: &Name,
    manifest: &Manifest,
    store: &Store,
    from: &Peer,
    msg: &Message,
) -> Result<Option<Message>, StoreError> {
    let Some(project) = project_of(msg) else {
        return Ok(None);
    };
    let entries = store.entries(project)?;
    Ok(check(manifest, project, &entries, msg).err().map(|(code, detail)| {
        tracing::info!(node = %me, from = from.label(), kind = msg.kind(), code, %detail, "refused a message");
        Message::Refused {
            code: BoundedString::new(code).unwrap_or_default(),
            detail: BoundedString::new(detail).unwrap_or_default(),
        }
    }))
}

/// The project a message is about, for the kinds screened here.
fn project_of(msg: &Message) -> Option<&ProjectId> {
    match msg {
        Message::Statement(s) | Message::Approve { statement: s, .. } => Some(&s.statement.project),
        Message::Entries { project, .. }
        | Message::Blinding { project, .. }
        | Message::SealedItems { project, .. } => Some(project),
        Message::Points(chunk) => Some(&chunk.project),
        _ => None,
    }
}

fn check(
    manifest: &Manifest,
    project: &ProjectId,
    entries: &[Entry],
    msg: &Message,
) -> Result<(), (&'static str, String)> {
    // Transcript entries from the linker are how a register learns of a
    // project, and of its closure; an approval may come before the
    // project reached this node (the engine answers `not-ready`).
    let bootstraps = matches!(msg, Message::Entries { .. } | Message::Approve { .. });
    if entries.is_empty() {
        return if bootstraps {
            Ok(())
        } else {
            Err(("unknown-project", format!("no project {project}")))
        };
    }
    let view = ProjectView::new(manifest, entries);
    let (_, _, closed) = view.status();
    let shredding =
        matches!(msg, Message::Statement(s) if matches!(s.statement.body, Body::Shredded(_)));
    if closed && !shredding && !matches!(msg, Message::Entries { .. }) {
        return Err((
            "closed",
            format!("project {project} is closed; its data is deleted"),
        ));
    }
    let list = match msg {
        Message::Points(chunk) => &chunk.list,
        Message::Blinding { list, .. } | Message::SealedItems { list, .. } => list,
        _ => return Ok(()),
    };
    if !view.participants().contains(list) {
        return Err((
            "unknown-list",
            format!("project {project} has no list {list}"),
        ));
    }
    let announced = view.announcement(list);
    match msg {
        Message::Points(chunk) => {
            let hops = view.hops_of(list).len() as u64;
            if u64::from(chunk.hop) >= hops {
                return Err((
                    "bad-chunk",
                    format!(
                        "list {list} has {hops} hops after its owner; no chunk comes from hop {}",
                        chunk.hop
                    ),
                ));
            }
            if let Some(a) = announced {
                let chunks = a.persons.div_ceil(u64::from(a.chunk_size.max(1)));
                if chunk.chunk >= chunks {
                    return Err((
                        "bad-chunk",
                        format!(
                            "list {list} has {chunks} chunks; there is no chunk {}",
                            chunk.chunk
                        ),
                    ));
                }
            }
        }
        Message::SealedItems { first, items, .. } => {
            let end = first.0.checked_add(items.len() as u64);
            let persons = announced.map_or(u64::MAX, |a| a.persons);
            if end.is_none_or(|end| end > persons) {
                return Err((
                    "bad-items",
                    format!(
                        "{} items from position {} are outside list {list}",
                        items.len(),
                        first.0
                    ),
                ));
            }
        }
        _ => {}
    }
    Ok(())
}
