//! The linker's data per list: the owner's sealed blinding and sealed
//! items as they arrive, the final points its own hop writes, and the
//! linkage over every list once every list passed every hop.

use std::collections::BTreeMap;

use kobling_protocol::{
    bounded::BoundedString,
    group::WirePoint,
    link::{link, Cohort, Linkage},
    messages::Message,
    project::{ProjectView, Step},
    refusal::RefusalCode,
    seal::{open_blinding, HpkeSecretKey, SealedItem, WrappedKey},
    transcript::{self, Body, Closure},
    types::{ListName, Position, ProjectId, UnixTime},
};

use super::{
    error::{ack, not_ready, refuse, Outcome, Refused},
    Engine,
};
use crate::store::{LinkerRow, LinkerTable, StoreError};

impl Engine {
    /// The owner's blinding `β_j`, sealed to the linker: opened and checked
    /// against the owner's signed announcement (`β_j⁻¹·G = D_j`) before it
    /// is kept. One that does not open or does not match can only come
    /// from the list's owner (the sender is authorised as the list's
    /// register) and the list can never be linked: the linker records that
    /// once, naming the list, as the project's closure (every node then
    /// shreds), instead of stalling at the linker's hop.
    pub(super) fn store_blinding(
        &mut self,
        project: &ProjectId,
        list: &ListName,
        sealed: &WrappedKey,
        now: UnixTime,
    ) -> Outcome<Vec<Message>> {
        let entries = self.store.entries(project)?;
        let view = ProjectView::new(&self.manifest, &entries);
        let Some(announcement) = view.announcement(list) else {
            return Err(not_ready(format!(
                "list {list} of project {project} has not been announced yet"
            )));
        };
        let hpke = HpkeSecretKey::from_bytes(*self.keystore.x25519_secret_bytes());
        let problem = match open_blinding(&hpke, project, list, sealed) {
            Err(_) => Some("does not open"),
            Ok(beta) if beta.invert().commitment() != announcement.blinding_commitment => {
                Some("is not the one its announcement commits to")
            }
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            let detail = format!("list {list}: its owner's blinding {problem}");
            tracing::error!(node = %self.me, %project, %list, problem, "an owner's list blinding is refused; the project is closed");
            let reason = BoundedString::new(format!("{detail}; the list cannot be linked"))
                .unwrap_or_default();
            self.publish_once(project, Step::Close, Body::Closure(Closure { reason }), now)?;
            return Err(refuse(RefusalCode::Blinding, detail));
        }
        self.keep_blinding(project, list, sealed)?;
        Ok(vec![ack()])
    }

    /// Keeps a list's sealed blinding (β at the linker or a delivery's
    /// holder, β₂ at hop 1 of a split source), checked by the caller.
    pub(super) fn keep_blinding(
        &mut self,
        project: &ProjectId,
        list: &ListName,
        sealed: &WrappedKey,
    ) -> Outcome<()> {
        Ok(self.store.transaction(|tx| {
            tx.put_blob(
                LinkerRow::Blinding,
                project,
                list,
                &transcript::encode_value(sealed),
            )
        })?)
    }

    /// The sealed blinding of `list` kept here (`not-ready` until it
    /// arrived).
    pub(super) fn kept_blinding(
        &mut self,
        project: &ProjectId,
        list: &ListName,
    ) -> Outcome<WrappedKey> {
        let sealed = self
            .store
            .transaction(|tx| tx.blobs(LinkerTable::Blinding, project, list))?;
        let Some(bytes) = sealed.first() else {
            return Err(not_ready(format!(
                "the blinding of list {list} has not arrived"
            )));
        };
        Ok(postcard::from_bytes(bytes).map_err(|_| StoreError::Corrupt("blinding"))?)
    }

    /// Sealed items of a list from position `first` on (admitted: inside
    /// the announced list).
    pub(super) fn store_sealed(
        &mut self,
        project: &ProjectId,
        list: &ListName,
        first: Position,
        items: Vec<SealedItem>,
    ) -> Outcome<Vec<Message>> {
        let cap = self.list_bytes_cap;
        let count = items.len() as u64;
        let end = first.0.saturating_add(count);
        self.store.transaction(|tx| {
            // A resent message replaces the one at its positions; a
            // message that overlaps another one's positions otherwise is
            // refused, so no position is ever held twice.
            let old = match tx.sealed_batch_before(project, list, end)? {
                Some(b) if b.first == first.0 && b.count == count => b.item_bytes,
                Some(b) if b.first.saturating_add(b.count) > first.0 => {
                    return Err(refuse(
                        RefusalCode::BadItems,
                        format!(
                            "{count} items from position {} of list {list} overlap the {} stored from position {}",
                            first.0, b.count, b.first
                        ),
                    ));
                }
                _ => 0,
            };
            // The list's bytes with these items in place of what their
            // positions hold (a resent message replaces, it does not add).
            let new = items
                .iter()
                .fold(0u64, |n, i| n.saturating_add(i.as_bytes().len() as u64));
            let total = tx
                .sealed_bytes(project, list)?
                .saturating_sub(old)
                .saturating_add(new);
            if total > cap {
                return Err(refuse(
                    RefusalCode::ListTooLarge,
                    format!(
                        "list {list} of project {project} would hold {total} bytes of sealed items; a list holds at most {cap}"
                    ),
                ));
            }
            tx.set_sealed_bytes(project, list, total)?;
            tx.put_sealed_batch(project, list, first, &items)?;
            Ok::<_, Refused>(())
        })?;
        Ok(vec![ack()])
    }

    /// A list's final points, in position order.
    fn final_points(&mut self, project: &ProjectId, list: &ListName) -> Outcome<Vec<WirePoint>> {
        let mut points = Vec::new();
        for bytes in self
            .store
            .transaction(|tx| tx.blobs(LinkerTable::Final, project, list))?
        {
            let chunk: Vec<WirePoint> =
                postcard::from_bytes(&bytes).map_err(|_| StoreError::Corrupt("final points"))?;
            points.extend(chunk);
        }
        Ok(points)
    }

    /// The project's cohort and linkage, and every list's final points.
    pub(super) fn linkage(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
    ) -> Outcome<(Cohort, Linkage, BTreeMap<ListName, Vec<WirePoint>>)> {
        let order = view.order().ok_or_else(|| not_ready("no order"))?;
        // Of an identified project: the order's cohort ∩ RESEARCHER.
        let cohort = order
            .linked_cohort()
            .map_err(|e| refuse(RefusalCode::Order, e.to_string()))?;
        let mut finals = BTreeMap::new();
        for list in order.lists() {
            let points = self.final_points(project, &list)?;
            finals.insert(list, points);
        }
        let lists: Vec<(ListName, &[WirePoint])> = finals
            .iter()
            .map(|(n, p)| (n.clone(), p.as_slice()))
            .collect();
        let linkage =
            link(project, &lists, &cohort).map_err(|e| refuse(RefusalCode::Link, e.to_string()))?;
        Ok((cohort, linkage, finals))
    }

    /// The duty to link: every list passed every hop.
    pub(super) fn link(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        now: UnixTime,
    ) -> Outcome<()> {
        if self
            .store
            .transaction(|tx| tx.marked(project, Step::Link))?
        {
            return Ok(()); // linked; the summary is on its way to the transcript
        }
        let (cohort, linkage, _) = self.linkage(project, view)?;
        // The final roots are the linker hop records' output roots, over
        // salted leaves (issue 12 item 8).
        let summary = linkage
            .summary(&cohort, |list| view.final_root(list).unwrap_or_default())
            .map_err(|e| refuse(RefusalCode::TooLarge, e.to_string()))?;
        tracing::info!(node = %self.me, %project, cohort = linkage.persons.len(), "linked");
        self.publish_once(project, Step::Link, Body::LinkSummary(summary), now)
    }
}
