//! How chain v2 stops a project naming a list or a hop: a hop record
//! that does not chain, a list of no person, a malformed chunk its sender
//! (the list's owner or a register hop) signed (`ChainStopped`), and the
//! closure itself (`stop_project`).

use kobling_protocol::{
    bounded::BoundedString,
    messages::Message,
    project::Step,
    refusal::RefusalCode,
    transcript::{Body, Closure},
    types::{Attempt, HopIndex, ListName, Name, ProjectId, UnixTime},
    v2::{chunk_digest, ChainStopped, ChunkMsg, ListHeader},
};

use super::{HopOf, STOP_SENT};
use crate::engine::{
    error::{ack, Outcome, Refused},
    Engine,
};

impl Engine {
    /// The linker: a hop record admitted in order (its predecessor is
    /// recorded) whose verification failed, typically one that does not
    /// chain with the previous step's (a hop that recorded another output
    /// than the one it signed in its chunk statements: the next step's
    /// record is refused). Refusing it on every resend would stall the
    /// list for good; a record sent by the list's expected hop stops the
    /// project naming the list (either of the two hops may be the one that
    /// deviated: the closure blames neither). Any other refusal stays a
    /// refusal.
    pub(in crate::engine) fn refused_hop_record(
        &mut self,
        project: &ProjectId,
        hops: &[Name],
        from: &Name,
        hop: &HopOf,
        refusal: &kobling_protocol::refusal::Refusal,
        now: UnixTime,
    ) -> Outcome<Vec<Message>> {
        let expected = hops
            .get(hop.hop.as_usize().wrapping_sub(1))
            .is_some_and(|m| m == from);
        if refusal.code != RefusalCode::Invalid || !expected || hop.member != *from {
            return Err(refusal.clone().into());
        }
        let detail = format!(
            "list {} could not be verified (attempt {}): the record of hop {} ({from}) was refused: {}; the project is stopped",
            hop.list, hop.attempt, hop.hop, refusal.detail
        );
        tracing::error!(node = %self.me, %project, list = %hop.list, hop = hop.hop.0, "{detail}");
        self.stop_list(project, &hop.list, hop.attempt, now)?;
        self.stop_project(project, &detail, now)?;
        Ok(vec![ack()])
    }

    /// The linker: a list announced with no valid person has no chunk to
    /// step, so its hops would never finish. Its announcement is recorded
    /// (the transcript shows the empty list), then the project stops with
    /// a closure naming the list, which every operator and the researcher
    /// read in `project status`.
    pub(in crate::engine) fn stop_empty_list(
        &mut self,
        project: &ProjectId,
        list: &ListName,
        now: UnixTime,
    ) -> Outcome<()> {
        let detail = format!(
            "list {list} has no valid person (every row of its extract was refused); a project cannot link an empty list, so it is stopped: order it again without that register, or approve another extract"
        );
        tracing::error!(node = %self.me, %project, %list, "{detail}");
        self.stop_list(project, list, Attempt::FIRST, now)?;
        self.stop_project(project, &detail, now)
    }

    /// A register hop: a chunk its sender signed (statement signature and
    /// digest of the bytes hold) that is malformed for the header (a wrong
    /// number of points, e.g. a short chunk that is not the last, an
    /// invalid point or the identity) is the sender's deviation, and a
    /// resend will not mend it: this hop records a [`ChainStopped`] naming
    /// the sender (the list's owner as hop 0, or a register hop; once per
    /// list attempt), and the linker then closes the project naming the
    /// list (`stop_named_hop`). Anything the sender did not sign (a broken
    /// signature, other bytes) stays a plain `bad-chunk` refusal: it may
    /// not come from the sender at all.
    pub(super) fn name_signed_bad_chunk(
        &mut self,
        project: &ProjectId,
        header: &ListHeader,
        hops: &[Name],
        msg: &ChunkMsg,
        error: &kobling_protocol::v2::HopError,
        now: UnixTime,
    ) -> Outcome<()> {
        use kobling_protocol::v2::HopError;
        if !matches!(
            error,
            HopError::WrongCount { .. }
                | HopError::Point(_)
                | HopError::StrictProof { .. }
                | HopError::OwnerContradiction { .. }
        ) {
            return Ok(());
        }
        let st = &msg.statement.statement;
        let list = &header.list;
        // The sender: the list's owner (hop 0, whose name the list bears)
        // or a register hop.
        let sender = match st.hop.as_usize().checked_sub(1) {
            None => list.owner(),
            Some(i) => match hops.get(i) {
                Some(member) => member,
                None => return Ok(()),
            },
        };
        let key = if st.hop.as_usize() == 0 {
            // The owner: the researcher for the researcher list.
            let entries = self.store.entries(project)?;
            let view = kobling_protocol::project::ProjectView::new(&self.manifest, &entries);
            self.owner_key(&view, list)?
        } else {
            self.node_key(sender)?
        };
        let signed = st.verify(header, &key, &msg.statement.signature).is_ok()
            && chunk_digest(&msg.points) == st.output;
        if !signed {
            return Ok(());
        }
        let mut already = false;
        self.store.transaction(|tx| {
            tx.for_each_v2(project, list, STOP_SENT, |attempt, _| {
                already |= attempt == u64::from(header.attempt);
                Ok(())
            })
        })?;
        if already {
            return Ok(());
        }
        let stop = ChainStopped {
            list: list.clone(),
            attempt: header.attempt,
            chunk: st.chunk,
            named: Some((st.hop, sender.clone())),
        };
        tracing::error!(node = %self.me, %project, %list, hop = st.hop.0, member = %sender, chunk = st.chunk.0, error = %error, "a hop signed a malformed chunk: it is named and the project stops");
        let signed = self.sign(project, Body::ChainStopped(stop.clone()), now);
        let linker = self.linker();
        if self.me == linker {
            // The linker found it (hop m named): into its transcript at
            // once, then the closure.
            let (manifest, signing) = (&self.manifest, &self.signing);
            self.store.transaction(|tx| {
                tx.put_v2(project, list, STOP_SENT, u64::from(header.attempt), &[])?;
                crate::engine::sequencer::append(tx, manifest, signing, signed).map(drop)
            })?;
            return self.stop_named_hop(project, &stop, now);
        }
        self.store.transaction(|tx| {
            tx.put_v2(project, list, STOP_SENT, u64::from(header.attempt), &[])?;
            tx.send(project, &linker, &Message::Statement(signed))
        })?;
        Ok(())
    }

    /// The linker: a recorded [`ChainStopped`] stops the project, with a
    /// closure naming the list (and the hop, where it is named).
    pub(in crate::engine) fn stop_named_hop(
        &mut self,
        project: &ProjectId,
        stop: &ChainStopped,
        now: UnixTime,
    ) -> Outcome<()> {
        let detail = match &stop.named {
            Some((hop, member)) if *hop == HopIndex::OWNER => format!(
                "list {} was stopped (attempt {}): its owner {member} sent chunk {} that does not verify; the project is stopped",
                stop.list, stop.attempt, stop.chunk
            ),
            Some((hop, member)) => format!(
                "list {} was stopped (attempt {}): hop {hop} ({member}) sent chunk {} that does not verify; the project is stopped",
                stop.list, stop.attempt, stop.chunk
            ),
            None => format!(
                "list {} failed its strict list check (attempt {}); the project is stopped",
                stop.list, stop.attempt
            ),
        };
        tracing::error!(node = %self.me, %project, list = %stop.list, "{detail}");
        self.stop_project(project, &detail, now)
    }

    /// The linker: stops `list`'s chain (attempt `attempt`) naming nobody,
    /// in its transcript at once, before the closure: for a stop without
    /// a failed check (a hop record that does not chain, a pass that does
    /// not verify, a list of no person, a chain v1 announcement), so the
    /// transcript, and the closed notice every register gets
    /// (`ProjectView::failed_list`), name the list. The entry is visible
    /// to registers. One the sequencer refuses is logged and left (the
    /// closure's reason still names the list).
    pub(in crate::engine) fn stop_list(
        &mut self,
        project: &ProjectId,
        list: &ListName,
        attempt: Attempt,
        now: UnixTime,
    ) -> Outcome<()> {
        let stop = ChainStopped {
            list: list.clone(),
            attempt,
            chunk: kobling_protocol::types::ChunkIndex(0),
            named: None,
        };
        let signed = self.sign(project, Body::ChainStopped(stop), now);
        let (manifest, signing, me) = (&self.manifest, &self.signing, &self.me);
        self.store.transaction(|tx| {
            match crate::engine::sequencer::append(tx, manifest, signing, signed) {
                Ok(_) => Ok(()),
                Err(Refused::Refusal(r)) => {
                    tracing::warn!(node = %me, %project, %list, refusal = %r, "the list's stop was not recorded");
                    Ok(())
                }
                Err(e) => Err(e),
            }
        })
    }

    /// Records the project's closure with `detail` (once), so every node
    /// shreds and nothing is linked or delivered.
    pub(in crate::engine) fn stop_project(
        &mut self,
        project: &ProjectId,
        detail: &str,
        now: UnixTime,
    ) -> Outcome<()> {
        let reason = BoundedString::new(detail.to_string()).unwrap_or_default();
        self.publish_once(project, Step::Close, Body::Closure(Closure { reason }), now)
    }
}

impl Engine {
    /// The linker, before it records an owner's end-of-list statement
    /// (docs/protocol.md §19): why it contradicts the owner's list, if it
    /// does: its chunk count or whole-list digest (against its own chunk
    /// digests and the announcement), or its sealed root (against the
    /// sealed items the owner sent, all of which precede it in the
    /// owner's queue; `not-ready` until they are here).
    pub(in crate::engine) fn owner_list_fault(
        &mut self,
        project: &ProjectId,
        view: &kobling_protocol::project::ProjectView<'_>,
        o: &kobling_protocol::v2::OwnerList,
    ) -> Outcome<Option<String>> {
        let Some(l) = view.v2_list(&o.list) else {
            return Ok(None);
        };
        let header = l.announcement.header(
            crate::engine::delivery_run::key_domain(view, project),
            o.attempt,
            if o.attempt == Attempt::FIRST {
                kobling_protocol::v2::Mode::Optimistic
            } else {
                kobling_protocol::v2::Mode::Strict
            },
        );
        if let Some(reason) = o.contradiction(&header) {
            return Ok(Some(reason));
        }
        let mut leaves = Vec::new();
        self.store.transaction(|tx| {
            tx.for_each_sealed(project, &o.list, |b| {
                leaves.push(kobling_protocol::merkle::leaf_hash(b));
                Ok(())
            })
        })?;
        if (leaves.len() as u64) < header.persons {
            return Err(crate::engine::error::not_ready(format!(
                "list {}: {} of {} sealed items are here",
                o.list,
                leaves.len(),
                header.persons
            )));
        }
        let root = kobling_protocol::merkle::MerkleTree::from_leaf_hashes(leaves).root();
        Ok((root != o.sealed_root)
            .then(|| "its sealed root is not the root of the sealed items it sent".to_string()))
    }
}
