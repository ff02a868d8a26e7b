//! The researcher's delivery, at the linker. Per list, one pass over the
//! stored sealed items builds the Merkle tree of their hashes, and a second
//! one spools the selected items with their proofs, a batch at a time, to a
//! scratch file the transport reads back message by message: the linker's
//! memory holds the trees and one batch, not the delivery.

use kobling_protocol::{
    bounded::{BoundedBytes, BoundedVec},
    delivery::{
        deliver_batch, salted_final_tree, selection_digest, FinalSaltKey, ListDeliverySource,
    },
    link::ListSelection,
    merkle::{leaf_hash, MerkleTree},
    messages::{Action, Message, SignedRequest},
    project::ProjectView,
    refusal::RefusalCode,
    seal::SealedItem,
    transcript::{self, Body, DeliveredList, DeliveryRecord, Trailer},
    types::{Digest, ProjectId, UnixTime},
};
use rand_chacha::rand_core::Rng;

use super::{
    error::{bounded, not_ready, refuse, Outcome, Refused},
    sequencer::append,
    Engine, Replies,
};
use crate::{staging::Staging, store::StoreError};

impl Engine {
    /// The researcher's fetch: the transcript, then per list a header and
    /// the delivered items, spooled.
    pub(super) fn fetch(&mut self, req: &SignedRequest, now: UnixTime) -> Outcome<Replies> {
        let project = req.request.project.clone();
        let entries = self.researcher_request(req, Action::Fetch, now)?;
        let manifest = self.manifest.clone();
        let view = ProjectView::new(&manifest, &entries);
        let phase = view.phase();
        if view.order().is_some_and(|o| now >= o.expires) {
            return Err(refuse(
                RefusalCode::Expired,
                format!("project {project} has expired; its data is deleted"),
            ));
        }
        if phase == kobling_protocol::project::Phase::Closed {
            return Err(refuse(
                RefusalCode::Closed,
                format!("project {project} is closed; its data is deleted"),
            ));
        }
        if !phase.is_deliverable() {
            return Err(not_ready(format!("project {project} is not linked yet")));
        }
        let (_, linkage, finals) = self.linkage(&project, &view)?;
        let spool_name = format!("{project}.fetch{}", self.rng.next_u64());
        let mut spool = Staging::create(self.store.dir().as_deref(), &spool_name)?;
        spool.seal_off()?;
        let mut records = Vec::new();
        for sel in &linkage.lists {
            let points = finals.get(&sel.list).map(Vec::as_slice).unwrap_or_default();
            records.push(self.spool_list(&mut spool, &project, &view, sel, points)?);
        }
        spool.queued_all()?;
        if phase != kobling_protocol::project::Phase::Delivered {
            // Recorded at once, so the transcript sent first includes it.
            let body = Body::Delivery(DeliveryRecord {
                recipient: req.key,
                lists: bounded(records)?,
            });
            let signed = self.sign(&project, body, now);
            let (manifest, signing) = (&self.manifest, &self.signing);
            self.store
                .transaction(|tx| append(tx, manifest, signing, signed).map(drop))?;
        }
        Ok(Replies::spooled(
            vec![self.transcript_file(&project)?],
            spool,
        ))
    }

    /// Spools one list's header and delivered items; returns its record.
    pub(super) fn spool_list(
        &mut self,
        spool: &mut Staging,
        project: &ProjectId,
        view: &ProjectView<'_>,
        sel: &ListSelection,
        finals: &[kobling_protocol::group::WirePoint],
    ) -> Outcome<DeliveredList> {
        let announcement = view
            .announcement(&sel.list)
            .ok_or_else(|| not_ready("not announced"))?;
        let mut leaves: Vec<Digest> = Vec::with_capacity(finals.len());
        self.store.transaction(|tx| {
            tx.for_each_sealed(project, &sel.list, |b| {
                leaves.push(leaf_hash(b));
                Ok(())
            })
        })?;
        if leaves.len() as u64 != announcement.persons {
            return Err(not_ready(format!(
                "the sealed items of {} have not all arrived",
                sel.list
            )));
        }
        let sealed_tree = MerkleTree::from_leaf_hashes(leaves);
        let domain = super::delivery_run::key_domain(view, project);
        let salt = FinalSaltKey::from_share(&self.keystore.share(&domain)?, &domain);
        let points_tree = salted_final_tree(&salt, &domain, &sel.list, finals);
        if Some(points_tree.root()) != view.final_root(&sel.list) {
            return Err(StoreError::Corrupt("final points").into());
        }
        let source = ListDeliverySource {
            sealed: &sealed_tree,
            points: &points_tree,
            salt: &salt,
            domain: &domain,
            list: &sel.list,
        };
        spool.queue(
            &self.me,
            &Message::DeliveryHeader {
                project: project.clone(),
                list: announcement.list.clone(),
                columns: announcement.columns.clone(),
                content_key: announcement.content_key.clone(),
                items: sel.selected.len() as u64,
            },
        )?;
        let batch_size = self.config.delivery_batch.max(1);
        let me = &self.me;
        // One batch: its items and one proof per tree (`deliver_batch`).
        let flush = |spool: &mut Staging, batch: &mut Vec<Selected>| {
            let (items, proof) = deliver_batch(std::mem::take(batch), &source)
                .map_err(|_| StoreError::Corrupt("delivery batch"))?;
            let items =
                BoundedVec::new(items).map_err(|_| StoreError::Corrupt("delivery batch"))?;
            spool.queue(
                me,
                &Message::DeliveryItems {
                    project: project.clone(),
                    list: sel.list.clone(),
                    items,
                    proof,
                },
            )
        };
        // The selected positions ascend, as the stored items do.
        let mut wanted = sel.selected.iter().peekable();
        let mut batch: Vec<Selected> = Vec::with_capacity(batch_size);
        let mut position = 0u64;
        self.store
            .transaction(|tx| {
                tx.for_each_sealed(project, &sel.list, |b| {
                    let here = position;
                    position += 1;
                    let Some(&&(at, lnr)) = wanted.peek() else {
                        return Ok(());
                    };
                    if at.0 != here {
                        return Ok(());
                    }
                    wanted.next();
                    let item = SealedItem(
                        BoundedBytes::new(b.to_vec())
                            .map_err(|_| StoreError::Corrupt("sealed item"))?,
                    );
                    let point = *usize::try_from(here)
                        .ok()
                        .and_then(|i| finals.get(i))
                        .ok_or(StoreError::Corrupt("final points"))?;
                    batch.push((lnr, at, item, point));
                    if batch.len() == batch_size {
                        flush(spool, &mut batch)?;
                    }
                    Ok(())
                })
            })
            .map_err(Refused::from)?;
        if wanted.next().is_some() {
            return Err(StoreError::Corrupt("sealed item").into());
        }
        if !batch.is_empty() {
            flush(spool, &mut batch)?;
        }
        Ok(DeliveredList {
            list: sel.list.clone(),
            items: sel.selected.len() as u64,
            selection: selection_digest(&sel.selected),
        })
    }
}

/// A selected position's lnr, position, sealed item and final point.
type Selected = (
    kobling_protocol::link::Lnr,
    kobling_protocol::types::Position,
    SealedItem,
    kobling_protocol::group::WirePoint,
);

impl Engine {
    /// The project's transcript as a signed file.
    pub(super) fn transcript_file(&self, project: &ProjectId) -> Outcome<Message> {
        let entries = self.store.entries(project)?;
        let trailer = Trailer::sign(project, &entries, &self.signing);
        let bytes = transcript::encode_file(&entries, &trailer);
        Ok(Message::TranscriptFile {
            bytes: BoundedBytes::new(bytes).map_err(|_| {
                refuse(
                    RefusalCode::TooLarge,
                    "the transcript is too large for one message",
                )
            })?,
        })
    }
}
