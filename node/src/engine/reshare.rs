//! A re-share at the holder (PROTOCOL.md §10, "Continuity"): a key holder
//! whose share of a register domain was lost (its seed, not its node keys)
//! takes a new share, and the holder's table is converted by
//! `k_new·k_old⁻¹` with the binding proof, without the key holder seeing a
//! pseudonym and without the holder seeing a share.
//!
//! ```text
//!  operator of i (its CLI holds k_old from the two-operator backup, k_new from i's keystore)
//!    ReshareTable { first }      ─▶ holder: β fresh (memory only), the page of its table
//!                                   ◀─ DomainPoints β·Ψ_R
//!    ReshareConverted { first, (k_new·k_old⁻¹)·β·Ψ_R, batch proof, binding proof }
//!                                ─▶ holder: verify_reshare_page against K_old (committed),
//!                                   remove β, keep Ψ'_R beside Ψ_R
//!    ReshareFinish { Reshare entry signed by i }
//!                                ─▶ holder: every person converted, table unchanged since the
//!                                   start ─▶ decide_reshare ─▶ table replaced, entry appended
//!                                   and replicated (one transaction); β dropped
//! ```
//!
//! A retired key holder is replaced the same way by another member: the
//! manifest names the new member in its place (the domain is then not
//! complete, `DomainState::replacing`), the new member's operator runs the
//! re-share with the old share from the old member's backup and its own
//! new share, and the `Reshare` entry from old to new completes it.
//!
//! β lives in the engine's memory only: after a restart of the holder the
//! re-share starts again from position 0.

use std::collections::BTreeMap;

use kobling_protocol::{
    bounded::BoundedVec,
    chain,
    domain::{
        transcript::{verify_domain_transcript, DomainBody, DomainEntry},
        wire::{
            decide_reshare, verify_reshare_page, DomainAction, SignedDomainRequest, RESHARE_PAGE,
        },
        DomainSpec,
    },
    group::WirePoint,
    messages::Message,
    refusal::RefusalCode,
    share::Share,
    types::{Name, UnixTime},
};

use super::{
    error::{ack, not_ready, refuse, Outcome, Refused},
    Engine,
};
use crate::store::{ReshareSession, Store};

/// The holder's re-share blindings β, by (domain, key holder): in memory
/// only.
#[derive(Default)]
pub(super) struct Blindings(BTreeMap<(Name, Name), Share>);

impl Blindings {
    /// The re-share `key` (domain, key holder) has in progress: its
    /// session, β, the page of the holder's pseudonyms from `first`, and
    /// that page under β.
    fn page(
        &self,
        store: &mut Store,
        key: &(Name, Name),
        first: u64,
    ) -> Outcome<(ReshareSession, &Share, Vec<WirePoint>, Vec<WirePoint>)> {
        let (domain, member) = key;
        let session = store
            .transaction(|tx| tx.reshare(domain, member))?
            .ok_or_else(|| not_ready("no re-share in progress: start from position 0"))?;
        let beta = self
            .0
            .get(key)
            .ok_or_else(|| not_ready("the re-share was interrupted: start from position 0"))?;
        let page = store.transaction(|tx| tx.holder_pseudonyms(domain, first, RESHARE_PAGE))?;
        let under_beta = chain::apply_share(beta, &page, first)
            .map_err(|e| refuse(RefusalCode::Invalid, e.to_string()))?;
        Ok((session, beta, page, under_beta))
    }
}

impl Engine {
    /// An operator's re-share request at the holder (checked for
    /// freshness, node, manifest and signature already).
    pub(super) fn reshare_request(
        &mut self,
        req: &SignedDomainRequest,
        spec: &DomainSpec,
        now: UnixTime,
    ) -> Outcome<Vec<Message>> {
        let domain = &req.request.domain;
        // `member` is the key holder whose share is replaced; `by` the
        // member whose operator runs it and whose share replaces it: the
        // same member after a lost seed, or the member the manifest now
        // names in its place (`DomainState::replacing`).
        let member = match &req.request.action {
            DomainAction::ReshareTable { member, .. }
            | DomainAction::ReshareConverted { member, .. } => member.clone(),
            DomainAction::ReshareFinish { entry } => match &entry.body {
                DomainBody::Reshare { old_member, .. } => old_member.clone(),
                _ => entry.signer.clone(),
            },
            _ => return Err(refuse(RefusalCode::BadRequest, "not a re-share request")),
        };
        if spec.holder != self.me {
            return Err(refuse(
                RefusalCode::WrongRegister,
                format!(
                    "a re-share of domain {domain} runs at its holder {}",
                    spec.holder
                ),
            ));
        }
        let held = self.store.domain_entries(domain)?;
        let state = verify_domain_transcript(&self.manifest, domain, &held).map_err(|e| {
            refuse(
                RefusalCode::NotReady,
                format!("domain {domain} has no verified transcript here: {e}"),
            )
        })?;
        let by = match &state.replacing {
            Some(r) if r.leaving == member => r.joining.clone(),
            _ => member.clone(),
        };
        let operator = self
            .manifest
            .member(&by)
            .is_some_and(|m| m.operators.iter().any(|o| o.key == req.key));
        if !operator {
            return Err(refuse(
                RefusalCode::NotAnOperator,
                format!("only an operator of {by} re-shares {member}'s share"),
            ));
        }
        self.remember_domain_request(req, now)?;
        if state.retirement().is_some() {
            return Err(refuse(
                RefusalCode::Closed,
                format!("domain {domain} is retired"),
            ));
        }
        let committed = state.key_of(&member).ok_or_else(|| {
            refuse(
                RefusalCode::Invalid,
                format!("{member} is not a key holder of {domain} with a committed key"),
            )
        })?;
        let key = (domain.clone(), member.clone());
        match &req.request.action {
            DomainAction::ReshareTable { first, .. } => {
                let first = *first;
                if first == 0 {
                    let total = self.store.transaction(|tx| tx.holder_persons(domain))?;
                    self.store
                        .transaction(|tx| tx.start_reshare(domain, &member, total))?;
                    let beta = Share::random(&mut self.rng);
                    self.reshare_blindings.0.insert(key.clone(), beta);
                    tracing::info!(node = %self.me, %domain, %member, persons = total, "a re-share started");
                }
                let (session, _, _, points) =
                    self.reshare_blindings.page(&mut self.store, &key, first)?;
                Ok(vec![Message::DomainPoints {
                    domain: domain.clone(),
                    first,
                    total: session.total,
                    points: BoundedVec::new(points).unwrap_or_default(),
                }])
            }
            DomainAction::ReshareConverted {
                first,
                points,
                proof,
                binding,
                ..
            } => {
                let (session, beta, page, input) =
                    self.reshare_blindings.page(&mut self.store, &key, *first)?;
                let to_key = verify_reshare_page(
                    domain,
                    &member,
                    &committed,
                    session.to_key.as_ref(),
                    *first,
                    &input,
                    points,
                    proof,
                    binding,
                )?;
                let new: Vec<WirePoint> = chain::apply_share(&beta.invert(), points, *first)
                    .map_err(|e| refuse(RefusalCode::Invalid, e.to_string()))?;
                self.store
                    .transaction(|tx| tx.put_reshare_page(domain, &member, &to_key, &page, &new))?;
                Ok(vec![ack()])
            }
            DomainAction::ReshareFinish { entry } => {
                self.finish_reshare(domain, (&member, &by), entry)?;
                self.reshare_blindings.0.remove(&key);
                Ok(vec![ack()])
            }
            _ => Err(refuse(RefusalCode::BadRequest, "not a re-share request")),
        }
    }

    /// Appends the re-share's entry and replaces the table, in one
    /// transaction, once every person of an unchanged table is converted.
    fn finish_reshare(
        &mut self,
        domain: &Name,
        (member, by): (&Name, &Name),
        entry: &DomainEntry,
    ) -> Outcome<()> {
        let manifest = &self.manifest;
        let state = self.store.transaction(|tx| {
            let session = tx
                .reshare(domain, member)?
                .ok_or_else(|| not_ready("no re-share in progress: start from position 0"))?;
            let persons = tx.holder_persons(domain)?;
            let converted = tx.reshare_converted(domain)?;
            if persons != session.total || converted != session.total {
                tx.clear_reshare(domain)?;
                return Err(refuse(
                    RefusalCode::Diverged,
                    format!("domain {domain}: {converted} of {persons} persons converted (the table had {} at the start); start the re-share again", session.total),
                ));
            }
            let to_key = match (&session.to_key, &entry.body) {
                (Some(k), _) => *k,
                // An empty table: the entry's own binding (the transcript
                // verifies it against the committed key).
                (None, DomainBody::Reshare { binding, .. }) => {
                    binding.to_key
                }
                (None, _) => {
                    return Err(refuse(RefusalCode::Invalid, "not a re-share entry"));
                }
            };
            let held = tx.domain_entries(domain)?;
            let state = decide_reshare(
                manifest,
                domain,
                &held,
                entry,
                (member, by),
                &to_key,
                persons,
            )?;
            tx.append_domain_entries(domain, std::slice::from_ref(entry))?;
            tx.apply_reshare(domain)?;
            tx.refresh_delivery_digests(domain)?;
            tx.clear_reshare(domain)?;
            if member == by {
                super::domain::replicate(tx, domain, &state, std::slice::from_ref(entry))?;
            } else {
                // The member taking the retired key holder's place holds
                // no copy yet: it gets the whole transcript, the others
                // the new entry.
                let mut others = state.clone();
                others.keys.retain(|(m, _)| m != by);
                super::domain::replicate(tx, domain, &others, std::slice::from_ref(entry))?;
                let mut all = held;
                all.push(entry.clone());
                super::domain::send_entries(tx, domain, by, 0, &all)?;
            }
            Ok::<_, Refused>(state)
        })?;
        tracing::warn!(node = %self.me, %domain, %member, new = %by, reshares = state.reshares, "re-share recorded: the holder's table is converted to the new share");
        Ok(())
    }
}
