//! The researcher's own list in an identified project (docs/protocol.md
//! §18): the linker admits its parts from the researcher's client and
//! relays them to hop 1; hop 1 keeps `β₂` and steps the list with
//! `k_1·β₂⁻¹`. From hop 1 on the list goes as any list's (`chain_v2.rs`),
//! with the researcher's key where a list's owner's node key is used.
//!
//! ```text
//!  client ─ResearcherList─▶ linker: researcher_list (one pure check per part)
//!     Announce: checked, recorded, β₁ kept ─SecondBlinding─▶ hop 1: second_blinding (β₂ kept)
//!     Items: kept        Chunk: checked ─ChunkV2─▶ hop 1 (chain_v2: RegisterHop, owner key = the researcher's)
//!     End: checked, recorded                Pass: checked ─PassV2─▶ hop 1 (pass_v2)
//! ```
//!
//! The linker relays, it does not vouch: hop 1 refuses a chunk the relay
//! changed, dropped or reordered (the researcher signed every chunk's
//! digest), and the researcher's signature on `A_0` fails for a
//! substituted one.

use ed25519_dalek::VerifyingKey;
use kobling_protocol::{
    messages::Message,
    project::ProjectView,
    refusal::RefusalCode,
    researcher_list::{
        self as rlist,
        wire::{check_chunk, check_pass, ResearcherListPart},
        ResearcherListError,
    },
    seal::{open_blinding_part, BlindingPart, HpkeSecretKey, WrappedKey},
    sequencer::Admitted,
    share::Share,
    types::{ListName, Name, ProjectId},
    v2::{ListAnnouncementV2, StepKey},
};

use super::{
    error::{ack, not_ready, refuse, Outcome, Refused},
    sequencer::append,
    Engine,
};

/// A refused part, with its typed code.
fn refused(e: ResearcherListError) -> Refused {
    refuse(e.code(), e.to_string())
}

impl Engine {
    /// The linker: one part of the researcher's list from its client
    /// (authorised: a client, to the linker; admitted: the project exists
    /// here and is not closed).
    pub(super) fn researcher_list(&mut self, part: ResearcherListPart) -> Outcome<Vec<Message>> {
        let project = part.project().clone();
        let entries = self.store.entries(&project)?;
        let manifest = self.manifest.clone();
        let view = ProjectView::new(&manifest, &entries);
        let order = view
            .order()
            .filter(|o| o.is_identified())
            .ok_or_else(|| refused(ResearcherListError::NotIdentified))?;
        let list = rlist::list_name().map_err(|e| refuse(RefusalCode::Internal, e.to_string()))?;
        let hop1 = self.researcher_hop1(&view, &list)?;
        let announced = view.v2_list(&list).map(|l| l.announcement);
        let over = view
            .v2_list(&list)
            .is_some_and(|l| l.stopped.is_some() || l.passed.is_some());
        let announced = |what: &str| {
            announced.ok_or_else(|| {
                not_ready(format!(
                    "the researcher list's {what} before its announcement is recorded"
                ))
            })
        };
        match part {
            ResearcherListPart::Announce {
                announcement,
                first,
                second,
            } => {
                let a = rlist::admit_announcement(&view, &announcement).map_err(refused)?;
                // β₁ opens and is the one D₁ commits to, before anything
                // is recorded or relayed.
                self.open_first_blinding(&project, a, &first)?;
                let (manifest, signing) = (&self.manifest, &self.signing);
                let new =
                    kobling_protocol::sequencer::admit_researcher(&view, &entries, &announcement)?
                        == Admitted::New;
                self.store.transaction(|tx| {
                    if new {
                        append(tx, manifest, signing, announcement)?;
                    }
                    tx.put_blob(
                        crate::store::LinkerRow::Blinding,
                        &project,
                        &list,
                        &kobling_protocol::transcript::encode_value(&first),
                    )?;
                    tx.send(
                        &project,
                        &hop1,
                        &Message::SecondBlinding {
                            project: project.clone(),
                            list: list.clone(),
                            sealed: second,
                        },
                    )?;
                    Ok::<_, Refused>(())
                })?;
                tracing::info!(node = %self.me, %project, persons = order.identified.map(|i| i.persons).unwrap_or(0), "researcher list announced");
                Ok(vec![ack()])
            }
            ResearcherListPart::Items {
                project: _,
                first,
                items,
            } => {
                let a = announced("sealed items")?;
                // Items are not signed one by one: none is taken once the
                // researcher's end-of-list statement (its sealed root) is
                // recorded.
                if view.v2_list(&list).is_some_and(|l| l.owner_list.is_some()) {
                    return Err(refused(ResearcherListError::BadEnd(
                        "sealed items after the end-of-list statement".into(),
                    )));
                }
                kobling_protocol::project::items_inside(&list, first, items.len(), a.persons)?;
                self.store_sealed(&project, &list, first, items.into_inner())
            }
            ResearcherListPart::Chunk { project: _, chunk } => {
                let a = announced("chunk")?;
                if over {
                    return Ok(vec![ack()]);
                }
                check_chunk(order, a, &chunk).map_err(refused)?;
                self.store.transaction(|tx| {
                    tx.send(
                        &project,
                        &hop1,
                        &Message::ChunkV2 {
                            project: project.clone(),
                            chunk,
                        },
                    )
                })?;
                Ok(vec![ack()])
            }
            ResearcherListPart::End(signed) => {
                let a = announced("end-of-list statement")?;
                rlist::check_end(order, a, &signed).map_err(refused)?;
                if kobling_protocol::sequencer::admit_researcher(&view, &entries, &signed)?
                    == Admitted::New
                {
                    let (manifest, signing) = (&self.manifest, &self.signing);
                    self.store
                        .transaction(|tx| append(tx, manifest, signing, signed).map(drop))?;
                }
                Ok(vec![ack()])
            }
            ResearcherListPart::Pass { project: _, pass } => {
                announced("A_0")?;
                if over {
                    return Ok(vec![ack()]);
                }
                check_pass(&pass).map_err(refused)?;
                // The researcher's signature on A_0 under σ, before it is
                // relayed: a pass that does not verify would close the
                // project at the linker.
                let Some((_, _, ctx)) = rlist::pass_context(&view).map_err(refused)? else {
                    return Err(not_ready(
                        "the researcher list's hop records are not all recorded yet",
                    ));
                };
                ctx.verify_owner(&pass)
                    .map_err(|_| refused(ResearcherListError::BadPass))?;
                self.store.transaction(|tx| {
                    tx.send(
                        &project,
                        &hop1,
                        &Message::PassV2 {
                            project: project.clone(),
                            pass,
                        },
                    )
                })?;
                Ok(vec![ack()])
            }
        }
    }

    /// Hop 1 of the researcher list: the first register in chain order.
    fn researcher_hop1(&self, view: &ProjectView<'_>, list: &ListName) -> Outcome<Name> {
        view.hops_of(list)
            .first()
            .filter(|h| **h != self.linker())
            .cloned()
            .ok_or_else(|| {
                refuse(
                    RefusalCode::Order,
                    "the researcher list has no register hop",
                )
            })
    }

    /// The linker: `β₁` sealed to it, opened and checked against `D₁`.
    fn open_first_blinding(
        &self,
        project: &ProjectId,
        a: &ListAnnouncementV2,
        sealed: &WrappedKey,
    ) -> Outcome<Share> {
        self.open_part(project, a, BlindingPart::First, sealed)
    }

    /// `part` of the list's split blinding, sealed to this node, opened and
    /// checked against its commitment in the announcement (`D₁`, `D₂`).
    fn open_part(
        &self,
        project: &ProjectId,
        a: &ListAnnouncementV2,
        part: BlindingPart,
        sealed: &WrappedKey,
    ) -> Outcome<Share> {
        let hpke = HpkeSecretKey::from_bytes(*self.keystore.x25519_secret_bytes());
        let beta = open_blinding_part(&hpke, project, &a.list, part, sealed)
            .map_err(|_| refused(ResearcherListError::Blinding))?;
        let at = match part {
            BlindingPart::First => 0,
            BlindingPart::Second => 1,
        };
        if a.blinding.get(at) != Some(&beta.invert().commitment()) {
            return Err(refused(ResearcherListError::Blinding));
        }
        Ok(beta)
    }

    /// Whether this node is hop 1 of the researcher list `list`.
    fn is_researcher_hop1(&self, view: &ProjectView<'_>, list: &ListName) -> bool {
        view.is_researcher_list(list) && view.hops_of(list).first() == Some(&self.me)
    }

    /// The linker's opened `β₁` of the researcher list (kept when it was
    /// announced), for its combined step `k_L·β₁⁻¹`.
    pub(super) fn researcher_first_blinding(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        list: &ListName,
    ) -> Outcome<Share> {
        let a = view
            .v2_list(list)
            .map(|l| l.announcement)
            .ok_or_else(|| not_ready("the researcher list is not announced here"))?;
        let sealed = self.kept_blinding(project, list)?;
        self.open_first_blinding(project, a, &sealed)
    }

    /// Hop 1 of the researcher list: `β₂` relayed by the linker, opened and
    /// checked against `D₂`, kept for the combined step.
    pub(super) fn second_blinding(
        &mut self,
        project: &ProjectId,
        list: &ListName,
        sealed: &WrappedKey,
    ) -> Outcome<Vec<Message>> {
        let entries = self.store.entries(project)?;
        let view = ProjectView::new(&self.manifest, &entries);
        if !self.is_researcher_hop1(&view, list) {
            return Err(refuse(
                RefusalCode::UnexpectedSender,
                format!("this node is not hop 1 of list {list}"),
            ));
        }
        let Some(l) = view.v2_list(list) else {
            return Err(not_ready("the researcher list is not announced here yet"));
        };
        self.open_part(project, l.announcement, BlindingPart::Second, sealed)?;
        self.keep_blinding(project, list, sealed)?;
        Ok(vec![ack()])
    }

    /// Hop 1's step key over the researcher list, `k_1·β₂⁻¹` proven against
    /// `D₂` (`None` for any other list or hop: the caller's own).
    pub(super) fn researcher_step_key(
        &mut self,
        view: &ProjectView<'_>,
        project: &ProjectId,
        list: &ListName,
        share: &Share,
    ) -> Outcome<Option<StepKey>> {
        if !self.is_researcher_hop1(view, list) {
            return Ok(None);
        }
        let a = view
            .v2_list(list)
            .map(|l| l.announcement)
            .ok_or_else(|| not_ready("the researcher list is not announced here"))?;
        let sealed = self.kept_blinding(project, list)?;
        let hpke = HpkeSecretKey::from_bytes(*self.keystore.x25519_secret_bytes());
        rlist::hop1_step(project, &self.me, share, &hpke, &sealed, a, &mut self.rng)
            .map(Some)
            .map_err(refused)
    }

    /// The key a list's owner signs with: the researcher's (the order's)
    /// for the researcher list, else the node key of the member of its
    /// name.
    pub(super) fn owner_key(
        &self,
        view: &ProjectView<'_>,
        list: &ListName,
    ) -> Outcome<VerifyingKey> {
        match view.order() {
            Some(o) if o.is_researcher_list(list) => {
                VerifyingKey::from_bytes(&o.researcher_signing_key.0).map_err(|_| {
                    refuse(
                        RefusalCode::Order,
                        "the order's researcher key is not valid",
                    )
                })
            }
            _ => self.node_key(list.owner()),
        }
    }
}
