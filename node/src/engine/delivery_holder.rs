//! A delivery's receipt at the domain's holder (PROTOCOL.md §10, issue 15
//! item 2; the run up to the push is `delivery_run`).
//!
//! ```text
//!  linker ─TranscriptFile─▶ holder_transcript: verified whole, the entries past the held copy stored
//!         ─DeliveryHeader─▶ holder_header:     β (β₁) opened and checked against D
//!         ─DeliveryItems…─▶ holder_items:      each item against the signed roots, β removed,
//!                                              rows stored under Ψ_R (progress in `domain_receipts`)
//!  last item ─▶ finish_receipt: the table's digest, the domain transcript's `Delivery`
//!               entry, a `Close` to the linker
//!  tick ─▶ holder_tick: the entry and the `Close` again until the closure arrives
//! ```

use kobling_protocol::{
    delivery::{open_item, verify_batch, BatchProof, DeliveredItem},
    messages::{Action, Message, Request, NONCE_LEN},
    project::ProjectView,
    receipt::{DeliveryPlan, Unblinder},
    refusal::RefusalCode,
    seal::HpkeSecretKey,
    transcript,
    types::{ListName, Name, ProjectId, UnixTime},
};
use rand_chacha::rand_core::Rng;

use super::{
    delivery_run::delivery_refusal,
    error::{ack, refuse, Outcome},
    Engine,
};
use crate::store::{DomainRow, StoreError};

impl Engine {
    /// Holder: the delivery's transcript as the linker signed it, verified
    /// whole; the entries past the copy held here are stored.
    pub(super) fn holder_transcript(&mut self, bytes: &[u8]) -> Outcome<Vec<Message>> {
        let invalid = |detail: String| refuse(RefusalCode::Invalid, detail);
        let (entries, trailer) =
            transcript::decode_file(bytes).map_err(|e| invalid(e.to_string()))?;
        transcript::verify(&entries, Some(&trailer), &self.manifest)
            .map_err(|e| invalid(format!("the pushed transcript does not verify: {e}")))?;
        let project = trailer.project.clone();
        let view = ProjectView::new(&self.manifest, &entries);
        if view
            .delivery_plan()
            .is_none_or(|p| p.spec.holder != self.me)
        {
            return Err(refuse(
                RefusalCode::Unexpected,
                format!(
                    "{project} is not a delivery into a domain {} holds",
                    self.me
                ),
            ));
        }
        let held = self.store.entries(&project)?;
        if held.len() > entries.len() || entries[..held.len()] != held[..] {
            return Err(invalid(format!(
                "the pushed transcript of {project} does not extend the copy held here"
            )));
        }
        self.store
            .transaction(|tx| tx.append_entries(&project, &entries[held.len()..]))?;
        Ok(vec![ack()])
    }

    /// Holder: the linker starts pushing the values of `list`.
    pub(super) fn holder_header(
        &mut self,
        project: &ProjectId,
        list: &ListName,
    ) -> Outcome<Vec<Message>> {
        let (entries, plan) = self.held_delivery(project)?;
        let view = ProjectView::new(&self.manifest, &entries);
        if !list.is_owned_by(&plan.source) || view.final_root(list).is_none() {
            return Err(refuse(
                RefusalCode::Delivery,
                format!(
                    "delivery {project}: list {list} is not checked in the transcript held here"
                ),
            ));
        }
        let (domain, delivery) = (plan.spec.name.clone(), plan.delivery);
        self.store.transaction(|tx| {
            if tx.has_domain_delivery(&domain, &delivery)?
                || tx.receipt(&domain, &delivery)?.is_some()
            {
                return Ok(());
            }
            tx.start_receipt(&domain, &delivery)
        })?;
        Ok(vec![ack()])
    }

    /// Holder: one batch of pushed items, checked against the signed roots,
    /// unblinded and stored; the last one completes the receipt.
    pub(super) fn holder_items(
        &mut self,
        project: &ProjectId,
        list: &ListName,
        items: &[DeliveredItem],
        proof: &BatchProof,
        now: UnixTime,
    ) -> Outcome<Vec<Message>> {
        let (entries, plan) = self.held_delivery(project)?;
        let (domain, delivery) = (plan.spec.name.clone(), plan.delivery);
        let Some((position, row)) = self
            .store
            .transaction(|tx| tx.receipt(&domain, &delivery))?
        else {
            if self
                .store
                .transaction(|tx| tx.has_domain_delivery(&domain, &delivery))?
            {
                return Ok(vec![ack()]);
            }
            return Err(refuse(
                RefusalCode::Delivery,
                format!("delivery {project}: items without a header"),
            ));
        };
        let manifest = self.manifest.clone();
        let view = ProjectView::new(&manifest, &entries);
        let (Some(l), Some(sealed_root), Some(final_root)) = (
            view.v2_list(list),
            view.announcement(list).map(|a| a.sealed_root),
            view.final_root(list),
        ) else {
            return Err(refuse(
                RefusalCode::Delivery,
                format!(
                    "delivery {project}: list {list} is not checked in the transcript held here"
                ),
            ));
        };
        let announcement = l.announcement;
        let first = items.first().map_or(position, |i| i.position.0);
        if first < position && items.last().is_some_and(|i| i.position.0 < position) {
            // A batch stored before whose acknowledgement was lost.
            return Ok(vec![ack()]);
        }
        if first != position {
            return Err(refuse(
                RefusalCode::Delivery,
                format!("delivery {project}: items from position {first} where {position} is next"),
            ));
        }
        let sealed_beta = self.kept_blinding(project, list)?;
        let beta = self.open_delivery_blinding(project, &plan, &sealed_beta)?;
        let commitment = announcement
            .blinding
            .first()
            .copied()
            .ok_or_else(|| refuse(RefusalCode::Blinding, "no blinding commitment"))?;
        let unblinder = Unblinder::new(&beta, &commitment).map_err(delivery_refusal)?;
        drop(beta);
        let sk = HpkeSecretKey::from_bytes(*self.keystore.x25519_secret_bytes());
        let content = announcement
            .content_key
            .unwrap(&sk, project, list)
            .map_err(|_| {
                refuse(
                    RefusalCode::Delivery,
                    "the content key does not open with this node's key",
                )
            })?;
        let persons = announcement.persons;
        if items
            .iter()
            .enumerate()
            .any(|(i, item)| item.position.0 != position + i as u64)
        {
            return Err(refuse(
                RefusalCode::Delivery,
                format!("delivery {project}: positions do not ascend one by one"),
            ));
        }
        verify_batch(
            project,
            list,
            items,
            proof,
            &sealed_root,
            &final_root,
            persons,
        )
        .map_err(|e| refuse(RefusalCode::Delivery, e.to_string()))?;
        let mut opened = Vec::with_capacity(items.len());
        for item in items {
            let rows = open_item(project, list, item, &content)
                .map_err(|e| refuse(RefusalCode::Delivery, e.to_string()))?;
            opened.push((item.point, rows));
        }
        let points: Vec<_> = opened.iter().map(|(p, _)| *p).collect();
        let psi = unblinder
            .unblind(&points, position)
            .map_err(delivery_refusal)?;
        let (mut next_row, next_position) = (row, position + items.len() as u64);
        self.store.transaction(|tx| {
            for (p, (_, rows)) in psi.iter().zip(&opened) {
                next_row = tx.put_person_rows(&domain, &delivery, next_row, p, rows)?;
            }
            tx.set_receipt(&domain, &delivery, Some((next_position, next_row)))
        })?;
        if next_position == persons {
            self.finish_receipt(project, &plan, &announcement.columns, now)?;
        }
        Ok(vec![ack()])
    }

    /// Holder: every item is stored: the table's digest, the record in
    /// `domain_deliveries` and the domain transcript's `Delivery` entry,
    /// then the linker is asked to close the delivery.
    fn finish_receipt(
        &mut self,
        project: &ProjectId,
        plan: &DeliveryPlan,
        columns: &kobling_protocol::transcript::Columns,
        now: UnixTime,
    ) -> Outcome<()> {
        let (domain, delivery) = (plan.spec.name.clone(), plan.delivery);
        let table = self
            .store
            .transaction(|tx| tx.table_digest(&domain, &delivery))?;
        let record = table.finish(plan);
        let columns: Vec<String> = columns.iter().map(|c| c.as_str().to_string()).collect();
        self.store.transaction(|tx| {
            tx.set_receipt(&domain, &delivery, None)?;
            tx.put_domain_delivery(&domain, &delivery, &columns, &record)
        })?;
        if let Err(r) = self.append_domain_entry(&domain, record)? {
            tracing::error!(node = %self.me, %domain, delivery = %project, refusal = %r, "the delivery was stored but its domain transcript entry was refused");
        }
        self.send_close(project, now)?;
        tracing::info!(node = %self.me, %domain, delivery = %project, "delivery received in full");
        Ok(())
    }
}

/// How long a holder waits for a delivery's closure before it asks the
/// linker again (a fresh request: one queued while the linker was down
/// longer than the request window would be refused as stale).
const CLOSE_RESEND_SECONDS: u64 = 60;

impl Engine {
    /// Holder, on a tick: a delivery received in full whose closure has
    /// not reached this node gets what a stop after the receipt may have
    /// cut off: its domain transcript entry, and a fresh `Close` to the
    /// linker every [`CLOSE_RESEND_SECONDS`].
    pub(super) fn holder_tick(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        now: UnixTime,
    ) -> Outcome<()> {
        let Some(plan) = view.delivery_plan().filter(|p| p.spec.holder == self.me) else {
            return Ok(());
        };
        if view.phase() == kobling_protocol::project::Phase::Closed {
            self.delivery_closes.remove(project);
            return Ok(());
        }
        let (domain, delivery) = (plan.spec.name.clone(), plan.delivery);
        let Some(kept) = self
            .store
            .domain_deliveries(&domain)?
            .into_iter()
            .find(|d| d.delivery == delivery)
        else {
            return Ok(());
        };
        let recorded = self
            .store
            .transaction(|tx| tx.domain_entries(&domain))?
            .iter()
            .any(|e| {
                matches!(&e.body, kobling_protocol::domain::transcript::DomainBody::Delivery { delivery: d, .. }
                    if d[..] == delivery.0[..d.len()])
            });
        if !recorded {
            if let Err(r) = self.append_domain_entry(&domain, kept.record)? {
                tracing::warn!(node = %self.me, %domain, delivery = %project, refusal = %r, "the domain transcript entry of a received delivery is not made yet");
            }
        }
        let due = self
            .delivery_closes
            .get(project)
            .is_none_or(|sent| now >= sent.plus(CLOSE_RESEND_SECONDS));
        if due {
            self.send_close(project, now)?;
        }
        Ok(())
    }

    /// Holder: asks the linker to close delivery `project` (received in
    /// full), with a fresh request signed by this node.
    fn send_close(&mut self, project: &ProjectId, now: UnixTime) -> Outcome<()> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill_bytes(&mut nonce);
        let linker = self.linker();
        let close = Request {
            project: project.clone(),
            action: Action::Close,
            time: now,
            node: linker.clone(),
            manifest: self.manifest_digest,
            nonce,
        }
        .sign(&self.signing);
        self.store
            .transaction(|tx| tx.send(project, &linker, &Message::Close(close)))?;
        self.delivery_closes.insert(project.clone(), now);
        Ok(())
    }

    /// The deliveries into `domain` this node received in full, as held.
    ///
    /// # Errors
    ///
    /// [`super::EngineError::Store`].
    pub fn received_deliveries(
        &self,
        domain: &Name,
    ) -> Result<Vec<crate::store::StoredDelivery>, super::EngineError> {
        Ok(self.store.domain_deliveries(domain)?)
    }

    /// Streams the rows of `delivery` into `domain` held here to `each`.
    ///
    /// # Errors
    ///
    /// [`super::EngineError::Store`].
    pub fn for_each_domain_row(
        &self,
        domain: &Name,
        delivery: &kobling_protocol::types::Digest,
        each: impl FnMut(DomainRow) -> Result<(), StoreError>,
    ) -> Result<(), super::EngineError> {
        Ok(self.store.for_each_domain_row(domain, delivery, each)?)
    }
}
