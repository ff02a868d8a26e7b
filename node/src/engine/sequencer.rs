//! The transcript at the linker (orders, statements, replication to the
//! registers) and at a register (the replicas it receives). The rules are
//! [`kobling_protocol::sequencer`]'s; this file loads and commits.

use ed25519_dalek::SigningKey;
use kobling_protocol::{
    bounded::BoundedVec,
    manifest::Manifest,
    messages::{Message, MAX_ENTRIES_PER_MESSAGE},
    notice::SignedPhaseNotice,
    project::{ProjectView, Step},
    refusal::{Refusal, RefusalCode},
    sequencer::{self, Admitted},
    transcript::{self, Body, Entry, SignedStatement, Signer, Statement},
    types::{Attempt, Name, ProjectId, UnixTime},
};

use super::{
    error::{ack, refuse, Outcome, Refused},
    Engine,
};
use crate::store::Tx;

impl Engine {
    /// Linker: a researcher's order opens a project.
    pub(super) fn submit_order(
        &mut self,
        signed: SignedStatement,
        now: UnixTime,
    ) -> Outcome<Vec<Message>> {
        // No authority's grant: refused before anything is read or written.
        sequencer::admit_grant(&self.manifest, &signed)?;
        kobling_protocol::receipt::admit_delivery_order(&self.manifest, &signed)?;
        let project = signed.statement.project.clone();
        let existing = self.store.entries(&project)?;
        sequencer::admit_order(&existing, &signed, now)?;
        if let Body::Order(order) = &signed.statement.body {
            self.check_mode(order)?;
            sequencer::admit_pending(self.unapproved_orders(&order.researcher_signing_key)?)?;
        }
        let (manifest, signing) = (&self.manifest, &self.signing);
        self.store
            .transaction(|tx| append(tx, manifest, signing, signed).map(drop))?;
        tracing::info!(node = %self.me, %project, "project order recorded");
        Ok(vec![ack()])
    }

    /// Orders of the researcher with `key` that no operator approved yet
    /// (and that are not closed).
    fn unapproved_orders(&self, key: &kobling_protocol::manifest::Ed25519Key) -> Outcome<usize> {
        let mut count = 0;
        for first in self.store.first_entries()? {
            let mine = matches!(&first.signed.statement.body, Body::Order(o) if o.researcher_signing_key == *key);
            if mine {
                let entries = self.store.entries(&first.signed.statement.project)?;
                if ProjectView::new(&self.manifest, &entries).unapproved() {
                    count += 1;
                }
            }
        }
        Ok(count)
    }

    /// Linker: a member's statement for the transcript.
    pub(super) fn record(&mut self, from: &Name, signed: SignedStatement) -> Outcome<Vec<Message>> {
        let project = signed.statement.project.clone();
        let entries = self.store.entries(&project)?;
        let manifest = self.manifest.clone();
        let view = ProjectView::new(&manifest, &entries);
        if sequencer::admit_statement(&view, &entries, from, &signed)? == Admitted::New {
            // A linker on chain v2 takes no chain v1 list (a downgrade): its
            // record would publish v1's per-chunk proofs over the final
            // pseudonyms, and v1 lets a hop substitute its input unnoticed.
            let v1_list = match &signed.statement.body {
                Body::ListAnnounced(a) => Some(a.list.clone()),
                Body::Hop(h) => Some(h.list.clone()),
                _ => None,
            };
            if let (true, Some(list)) = (self.config.chain_v2, v1_list) {
                let detail = format!(
                    "list {list} was announced for chain v1, which this linker does not run (chain v2 only); the project is stopped: upgrade {from}'s node and order again"
                );
                tracing::error!(node = %self.me, %project, %list, %from, "{detail}");
                self.stop_list(&project, &list, Attempt::FIRST, super::now_of(&entries))?;
                self.stop_project(&project, &detail, super::now_of(&entries))?;
                return Err(refuse(
                    RefusalCode::Invalid,
                    "chain v1 lists are not accepted: this linker runs chain v2",
                ));
            }
            let hop = super::chain_v2::HopOf::of(&signed.statement.body);
            let empty = super::chain_v2::empty_list(&signed.statement.body);
            let stop = match &signed.statement.body {
                Body::ChainStopped(s) => Some(s.clone()),
                _ => None,
            };
            if let Body::OwnerListV2(o) = &signed.statement.body {
                // A streamed list's owner signs its end-of-list statement
                // last: one that contradicts its list stops the project,
                // naming the owner (docs/protocol.md §19).
                if o.list.is_owned_by(from) {
                    if let Some(reason) = self.owner_list_fault(&project, &view, o)? {
                        let detail = format!(
                            "list {}: its owner {from} signed an end-of-list statement that contradicts its list ({reason}); the owner is at fault and the project is stopped",
                            o.list
                        );
                        tracing::error!(node = %self.me, %project, list = %o.list, "{detail}");
                        self.stop_list(&project, &o.list, o.attempt, super::now_of(&entries))?;
                        self.stop_project(&project, &detail, super::now_of(&entries))?;
                        return Err(refuse(RefusalCode::Invalid, detail));
                    }
                }
            }
            self.check_domain_commitment(from, &signed)?;
            let (manifest, signing) = (&self.manifest, &self.signing);
            let appended = self
                .store
                .transaction(|tx| append(tx, manifest, signing, signed).map(drop));
            if let (Err(Refused::Refusal(r)), Some(hop)) = (&appended, hop) {
                let hops = view.hops_of(&hop.list);
                return self.refused_hop_record(
                    &project,
                    &hops,
                    from,
                    &hop,
                    r,
                    super::now_of(&entries),
                );
            }
            appended?;
            if let Some(stop) = stop {
                self.stop_named_hop(&project, &stop, super::now_of(&entries))?;
            }
            if let Some(list) = empty {
                self.stop_empty_list(&project, &list, super::now_of(&entries))?;
            }
        }
        Ok(vec![ack()])
    }

    /// Register: entries the linker replicated.
    pub(super) fn receive_entries(
        &mut self,
        project: &ProjectId,
        first: u64,
        new: Vec<Entry>,
    ) -> Outcome<Vec<Message>> {
        let mut entries = self.store.entries(project)?;
        let fresh = sequencer::accept_replica(&entries, first, new)?;
        if fresh.is_empty() {
            return Ok(vec![ack()]);
        }
        entries.extend(fresh.iter().cloned());
        transcript::verify(&entries, None, &self.manifest)
            .map_err(|e| Refusal::new(RefusalCode::Invalid, e.to_string()))?;
        self.store
            .transaction(|tx| tx.append_entries(project, &fresh))?;
        Ok(vec![ack()])
    }

    /// Register: the linker's notice that the project is linked,
    /// delivered or closed (all a register learns after its lists were
    /// verified). Kept if it tells a later phase than the one held.
    pub(super) fn receive_notice(&mut self, notice: &SignedPhaseNotice) -> Outcome<Vec<Message>> {
        let project = &notice.notice.project;
        let linker = self
            .manifest
            .linker()
            .map(|l| l.signing_key)
            .ok_or_else(|| refuse(RefusalCode::Invalid, "no linker in the manifest"))?;
        notice
            .check(project, &linker)
            .map_err(|e| refuse(RefusalCode::Invalid, e.to_string()))?;
        self.store.transaction(|tx| tx.put_notice(notice))?;
        tracing::info!(node = %self.me, %project, phase = notice.notice.phase.phase().as_str(), "phase notice");
        Ok(vec![ack()])
    }

    /// Signs a statement of this node and queues it, once, to the linker
    /// (for the linker itself too: its own statements go through the same
    /// checks and retries as everyone else's).
    pub(super) fn publish_once(
        &mut self,
        project: &ProjectId,
        step: Step,
        body: Body,
        now: UnixTime,
    ) -> Outcome<()> {
        let signed = self.sign(project, body, now);
        let linker = self.linker();
        // The linker's own closure goes into its transcript at once. Queued
        // to itself it would wait behind its own earlier statements, and
        // one of them may wait for ever (its hop record of a list whose
        // other hop's record was refused), so the project would never
        // close.
        let direct = step == Step::Close && self.me == linker;
        if direct && !self.store.transaction(|tx| tx.marked(project, step))? {
            // Every list check the linker kept goes in before its closure
            // (a failed attempt's included: the closed transcript shows it).
            self.record_kept_checks(project, now)?;
        }
        let (manifest, signing, me) = (&self.manifest, &self.signing, &self.me);
        self.store.transaction(|tx| {
            if tx.mark(project, step)? {
                if !direct {
                    tx.send(project, &linker, &Message::Statement(signed))?;
                    return Ok(());
                }
                match append(tx, manifest, signing, signed) {
                    Ok(_) => {}
                    // Not admissible (e.g. the project is closed already):
                    // as the sequencer would have refused it from the queue.
                    Err(Refused::Refusal(r)) => {
                        tracing::warn!(node = %me, %project, refusal = %r, "the linker's closure was not recorded");
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok::<_, Refused>(())
        })
    }

    /// This node's signed statement.
    pub(super) fn sign(&self, project: &ProjectId, body: Body, now: UnixTime) -> SignedStatement {
        Statement {
            project: project.clone(),
            time: now,
            signer: Signer::Node(self.me.clone()),
            body,
        }
        .sign(&self.signing)
    }
}

/// Appends a signed statement to the transcript in `tx`, as the linker,
/// after verifying the whole transcript with it; queues the new entry to
/// its replicas (the participating registers while the transcript is all
/// register prefix, once an operator approved; with the first approval,
/// the transcript from its start), and the phase notice the entry calls
/// for.
///
/// # Errors
///
/// An `invalid` refusal (nothing written), or the store's failure.
pub(super) fn append(
    tx: &Tx<'_>,
    manifest: &Manifest,
    linker: &SigningKey,
    signed: SignedStatement,
) -> Outcome<Entry> {
    let project = signed.statement.project.clone();
    let mut entries = tx.entries(&project)?;
    let entry = sequencer::append(&mut entries, signed, manifest, linker)?;
    tx.append_entries(&project, std::slice::from_ref(&entry))?;
    let view = ProjectView::new(manifest, &entries);
    if let Some((to, first)) = sequencer::replication(&view, &entries, &entry) {
        let from = usize::try_from(first).unwrap_or(entries.len());
        let batches = entries[from..].chunks(MAX_ENTRIES_PER_MESSAGE);
        for (batch, start) in batches.zip((first..).step_by(MAX_ENTRIES_PER_MESSAGE)) {
            let msg = Message::Entries {
                project: project.clone(),
                first: start,
                entries: BoundedVec::new(batch.to_vec()).unwrap_or_default(),
            };
            for replica in &to {
                tx.send(&project, replica, &msg)?;
            }
        }
    }
    if let Some((to, notice)) = sequencer::notice(&view, &entry, linker) {
        let msg = Message::Notice(notice);
        for register in to {
            tx.send(&project, &register, &msg)?;
        }
    }
    Ok(entry)
}
