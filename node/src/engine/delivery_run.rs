//! A delivery into a register domain, run by the nodes (PROTOCOL.md §10,
//! issue 15 item 2): the project machinery with the domain's long-lived
//! shares, and the linker pushing the values to the holder.
//!
//! ```text
//!  approvals  source: two operators, with the extract (fnr, no pseudonym)
//!             holder: two operators, without an extract
//!  Commit     key holders: K_{i,R} of their long-lived Domain::Register(R) share
//!  announce   source: β (or β₁·β₂) as for any list; the header names the
//!             delivery; β (β₁) sealed to the holder and sent to it
//!  chain      key holders step with k_{i,R}; the linker checks (§6a) and
//!             steps with k_{L,R} only: it never removes β
//!  Link       one list, its counts
//!  Deliver    linker ─TranscriptFile, DeliveryHeader, DeliveryItems…─▶ holder
//!             (through the outbox: in order, resent until acknowledged)
//!  receipt    holder: per message, items checked against the signed roots,
//!             β removed, rows stored under Ψ_R (position and row kept in
//!             `domain_receipts`, so a restart resumes); at the last item the
//!             table's digest, the domain transcript's `Delivery` entry, and
//!             a `Close` to the linker
//!  Shred      key holders delete the delivery's working data; R's shares stay
//! ```
//!
//! The holder verifies the whole transcript it is pushed (with the
//! linker's trailer) before it stores a row, and every item against the
//! sealed and final roots signed in it (`delivery_holder`): what it keeps is what the audited
//! transcript says the chain produced.

use kobling_protocol::{
    bounded::BoundedBytes,
    messages::Message,
    project::ProjectView,
    receipt::{check_extract_columns, DeliveryError, DeliveryPlan},
    refusal::RefusalCode,
    seal::{open_blinding, open_blinding_part, BlindingPart, HpkeSecretKey, WrappedKey},
    share::Domain,
    transcript::{self, Approval, Body, DeliveryRecord, ProjectOrder, Trailer},
    types::{ListName, ProjectId, UnixTime},
};
use rand_chacha::rand_core::Rng;

use super::{
    approval::ExtractFile,
    error::{ack, bounded, not_ready, refuse, Outcome, Refused},
    pseudo::ApprovalKind,
    sequencer::append,
    Engine,
};
use crate::staging::Staging;

/// The key domain of `project`'s shares: `Domain::Register(R)` for a
/// delivery into R, else `Domain::Project(project)`.
pub(super) fn key_domain(view: &ProjectView<'_>, project: &ProjectId) -> Domain {
    view.order().map_or_else(
        || Domain::Project(project.clone()),
        ProjectOrder::key_domain,
    )
}

pub(super) fn delivery_refusal(e: DeliveryError) -> Refused {
    refuse(RefusalCode::Delivery, e.to_string())
}

impl Engine {
    /// What an approval of delivery `order` stands for at this node: the
    /// source's operators approve its extract (an `fnr` column, no
    /// `pseudonym` column), the holder's approve without one; nobody else
    /// approves a delivery (key holders take part without operators).
    pub(super) fn delivery_approval_kind(
        &self,
        order: &ProjectOrder,
        a: &Approval,
        file: &Result<ExtractFile, kobling_protocol::refusal::Refusal>,
    ) -> Outcome<ApprovalKind> {
        let plan = DeliveryPlan::new(&self.manifest, order).map_err(delivery_refusal)?;
        let no_extract = a.extract == kobling_protocol::types::Digest::default()
            && a.rows == 0
            && a.columns.is_empty();
        let id = &order.project;
        if self.me == plan.spec.holder {
            if !no_extract {
                return Err(refuse(
                    RefusalCode::Extract,
                    format!(
                        "{} holds domain {}: its operators approve delivery {id} without an extract",
                        self.me, plan.spec.name
                    ),
                ));
            }
            return Ok(ApprovalKind::KeyHolderOnly);
        }
        if self.me != plan.source {
            return Err(refuse(
                RefusalCode::WrongRegister,
                format!(
                    "delivery {id} into {}: {} is neither its source nor the domain's holder (a key holder takes part without its operators)",
                    plan.spec.name, self.me
                ),
            ));
        }
        if no_extract {
            return Err(refuse(
                RefusalCode::Extract,
                format!(
                    "{} is the source of delivery {id}: approve its extract",
                    self.me
                ),
            ));
        }
        if let Ok(f) = file {
            let fnr = crate::extract_file::pseudonymous::check_key_column(&f.path, false);
            let pseudonym = crate::extract_file::pseudonymous::check_key_column(&f.path, true);
            let columns = match (fnr.is_ok(), pseudonym.is_ok()) {
                (_, true) => check_extract_columns(&["fnr", "pseudonym"]),
                (false, false) => check_extract_columns::<&str>(&[]),
                (true, false) => Ok(()),
            };
            columns.map_err(|e| {
                tracing::warn!(node = %self.me, delivery = %id, error = %e, "a delivery's extract has the wrong key column: refused");
                refuse(RefusalCode::Extract, format!("the extract cannot be delivered: {e}"))
            })?;
        }
        Ok(ApprovalKind::List)
    }

    /// Linker: the delivery is linked; its values, with the transcript
    /// that proves them, are queued to the holder in one transaction, and
    /// the delivery record is appended.
    pub(super) fn push_delivery(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        now: UnixTime,
    ) -> Outcome<()> {
        let plan = view
            .delivery_plan()
            .ok_or_else(|| not_ready("not a delivery"))?;
        let holder = plan.spec.holder.clone();
        let recipient = self
            .manifest
            .member(&holder)
            .map(|m| m.signing_key)
            .ok_or_else(|| refuse(RefusalCode::Manifest, format!("no member {holder}")))?;
        let (_, linkage, finals) = self.linkage(project, view)?;
        let spool_name = format!("{project}.push{}", self.rng.next_u64());
        let mut spool = Staging::create(self.store.dir().as_deref(), &spool_name)?;
        spool.seal_off()?;
        let mut records = Vec::new();
        for sel in &linkage.lists {
            let points = finals.get(&sel.list).map(Vec::as_slice).unwrap_or_default();
            records.push(self.spool_list(&mut spool, project, view, sel, points)?);
        }
        spool.queued_all()?;
        let body = Body::Delivery(DeliveryRecord {
            recipient,
            lists: bounded(records)?,
        });
        let signed = self.sign(project, body, now);
        let (manifest, signing) = (&self.manifest, &self.signing);
        self.store.transaction(|tx| {
            append(tx, manifest, signing, signed)?;
            let entries = tx.entries(project)?;
            let trailer = Trailer::sign(project, &entries, signing);
            let bytes =
                BoundedBytes::new(transcript::encode_file(&entries, &trailer)).map_err(|_| {
                    refuse(
                        RefusalCode::TooLarge,
                        "the transcript is too large for one message",
                    )
                })?;
            tx.send(project, &holder, &Message::TranscriptFile { bytes })?;
            let mut last = 0;
            while let Some((id, bytes)) = spool.queued_after(last)? {
                last = id;
                tx.send_encoded(project, holder.as_str(), &bytes)?;
            }
            Ok::<_, Refused>(())
        })?;
        tracing::info!(node = %self.me, delivery = %project, %holder, "delivery pushed to the domain's holder");
        Ok(())
    }

    /// The delivery `project` held here, with its plan, at its holder.
    pub(super) fn held_delivery(
        &self,
        project: &ProjectId,
    ) -> Outcome<(Vec<transcript::Entry>, DeliveryPlan)> {
        let (entries, plan) = self.delivery_here(project)?;
        if plan.spec.holder != self.me {
            return Err(refuse(
                RefusalCode::Unexpected,
                format!("{} does not hold the domain of delivery {project}", self.me),
            ));
        }
        Ok((entries, plan))
    }

    /// The delivery `project` held here, with its plan.
    fn delivery_here(
        &self,
        project: &ProjectId,
    ) -> Outcome<(Vec<transcript::Entry>, DeliveryPlan)> {
        let entries = self.store.entries(project)?;
        let plan = ProjectView::new(&self.manifest, &entries)
            .delivery_plan()
            .ok_or_else(|| {
                refuse(
                    RefusalCode::Unexpected,
                    format!("{project} is not a delivery held here"),
                )
            })?;
        Ok((entries, plan))
    }

    /// A register: a part of a delivery's blinding from its source, sealed
    /// to this node: β (β₁ of a source without a share) at the holder, β₂
    /// at hop 1 of a split source. Kept once it opens; refused anywhere
    /// else.
    pub(super) fn delivery_blinding(
        &mut self,
        project: &ProjectId,
        list: &ListName,
        sealed: &WrappedKey,
    ) -> Outcome<Vec<Message>> {
        let (_, plan) = self.delivery_here(project)?;
        if !list.is_owned_by(&plan.source) {
            return Err(refuse(
                RefusalCode::UnknownList,
                format!("delivery {project} has no list {list}"),
            ));
        }
        if plan.spec.holder == self.me {
            self.open_delivery_blinding(project, &plan, sealed)?;
        } else if plan.split && plan.hops.first() == Some(&self.me) {
            self.open_second_blinding(project, &plan, sealed)?;
        } else {
            tracing::warn!(node = %self.me, delivery = %project, "a blinding for a delivery this node does not unblind: refused");
            return Err(refuse(
                RefusalCode::Unexpected,
                format!("{} removes no blinding of delivery {project}", self.me),
            ));
        }
        self.keep_blinding(project, list, sealed)?;
        Ok(vec![ack()])
    }

    /// The holder: β (β₁) opened with this node's key.
    pub(super) fn open_delivery_blinding(
        &self,
        project: &ProjectId,
        plan: &DeliveryPlan,
        sealed: &WrappedKey,
    ) -> Outcome<kobling_protocol::share::Share> {
        let part = plan.split.then_some(BlindingPart::First);
        self.open_blinding_as(project, plan, sealed, part, "the source's blinding")
    }

    /// Hop 1 of a split source: β₂ opened with this node's key.
    fn open_second_blinding(
        &self,
        project: &ProjectId,
        plan: &DeliveryPlan,
        sealed: &WrappedKey,
    ) -> Outcome<kobling_protocol::share::Share> {
        self.open_blinding_as(project, plan, sealed, Some(BlindingPart::Second), "β₂")
    }

    /// A delivery's blinding (`part` of a split one) opened with this
    /// node's key; refused naming `what` if it does not open.
    fn open_blinding_as(
        &self,
        project: &ProjectId,
        plan: &DeliveryPlan,
        sealed: &WrappedKey,
        part: Option<BlindingPart>,
        what: &str,
    ) -> Outcome<kobling_protocol::share::Share> {
        let sk = HpkeSecretKey::from_bytes(*self.keystore.x25519_secret_bytes());
        let list = plan.list();
        match part {
            Some(part) => open_blinding_part(&sk, project, &list, part, sealed),
            None => open_blinding(&sk, project, &list, sealed),
        }
        .map_err(|_| {
            refuse(
                RefusalCode::Blinding,
                format!("delivery {project}: {what} does not open with this node's key"),
            )
        })
    }

    /// The step of this register over `list`: `k` (`share`) as a plain
    /// step, or, at hop 1 after a delivery's source without a share,
    /// `k·β₂⁻¹` proven against `D₂`.
    pub(super) fn register_step_key(
        &mut self,
        view: &ProjectView<'_>,
        project: &ProjectId,
        list: &ListName,
        share: kobling_protocol::share::Share,
    ) -> Outcome<kobling_protocol::v2::StepKey> {
        if let Some(step) = self.researcher_step_key(view, project, list, &share)? {
            return Ok(step);
        }
        let Some(plan) = view
            .delivery_plan()
            .filter(|p| p.split && p.hops.first() == Some(&self.me))
        else {
            return Ok(kobling_protocol::v2::StepKey::plain(share));
        };
        let sealed = self.kept_blinding(project, list)?;
        let beta2 = self.open_second_blinding(project, &plan, &sealed)?;
        let blinding: Vec<_> = view
            .v2_list(list)
            .map(|l| l.announcement.blinding.to_vec())
            .unwrap_or_default();
        plan.step_key(&self.me, share, &blinding, Some(&beta2), &mut self.rng)
            .map_err(|e| refuse(RefusalCode::Blinding, e.to_string()))
    }
}
