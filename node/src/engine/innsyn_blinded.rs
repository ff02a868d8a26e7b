//! Innsyn at a pseudonymous holder (PROTOCOL.md §10a, issue 16 item 2):
//! the portal's one-person list runs through the domain's key holders,
//! the holder obtains `Ψ_R(x)` (never the fnr) and seals the rows it
//! stores under it to the citizen's device.
//!
//! ```text
//!  portal ──Innsyn(Blinded{request, person})──▶ holder: check, decide_blinded (two operators),
//!           quota per portal ─▶ InnsynSteps{call, []} queued to hop 1 ─▶ Ack
//!  hop h  ◀─InnsynSteps─ the holder (h = 1) or hop h−1: the portal's signature, verify_steps
//!           against the committed keys, quota per portal, once per call ─▶ its step ─▶ hop h+1
//!           (the last key holder, the linker: ─▶ the holder)
//!  holder ◀─InnsynSteps (every step)─ verify_steps, β₁ ─▶ Ψ_R(x), quota per pseudonym,
//!           the rows under Ψ_R(x) sealed to the device; a counted `Innsyn` entry in the
//!           domain's transcript
//!  portal ──Innsyn(Collect{request})──▶ holder: InnsynReply, or `not-ready` until then
//! ```
//!
//! The holder keeps a request it has taken in memory only, for
//! [`PENDING_SECS`]: a restart forgets it, and the portal asks again. The
//! pseudonym is never stored, logged or sent: the quota book keys it by a
//! hash under a secret drawn when the node starts.

use std::collections::HashMap;

use kobling_protocol::{
    hash::framed_sha3,
    innsyn::{
        blinded::{verify_steps, BlindedPerson, InnsynSteps},
        wire::{decide_blinded, InnsynAction, SignedInnsyn},
        InnsynRequest, SealedReply,
    },
    messages::Message,
    refusal::{Refusal, RefusalCode},
    seal::HpkeSecretKey,
    share::Domain,
    types::{Digest, HopIndex, Name, UnixTime},
};

use super::{
    approval::request_refusal,
    error::{ack, not_ready, refuse, Outcome, Refused},
    Engine, Peer, Replies,
};

/// How long the holder keeps a request it took (and its reply).
pub(crate) const PENDING_SECS: u64 = 600;

/// Tag of a key holder's replay key of a one-person list it stepped.
const STEPPED_TAG: &[u8] = b"KOBLING-INNSYN-STEPPED";

/// A one-person list the holder sent to the key holders.
pub(super) struct Pending {
    /// The asking portal.
    portal: Name,
    /// The portal's call's digest.
    call: Digest,
    /// When the holder took it.
    taken: UnixTime,
    /// The sealed reply, or why there is none; `None` while the key
    /// holders work.
    outcome: Option<Result<SealedReply, Refusal>>,
}

/// The holder's requests in flight, by the device request's digest.
#[derive(Default)]
pub(super) struct PendingBook(HashMap<Digest, Pending>);

impl PendingBook {
    fn expire(&mut self, now: UnixTime) {
        self.0.retain(|_, p| p.taken.abs_diff(now) <= PENDING_SECS);
    }
}

fn blinded_parts(steps: &InnsynSteps) -> Outcome<(&InnsynRequest, &BlindedPerson)> {
    match &steps.call.call.action {
        InnsynAction::Blinded { request, person } => Ok((request, person)),
        _ => Err(refuse(
            RefusalCode::BadRequest,
            "a one-person list carries the portal's Blinded call",
        )),
    }
}

mod holder;

impl Engine {
    /// The holder takes a portal's one-person list: the portal admitted
    /// here by two operators, the domain held here and complete, the
    /// portal's quota; then the list goes to hop 1.
    pub(super) fn innsyn_blinded(
        &mut self,
        signed: &SignedInnsyn,
        request: &InnsynRequest,
        person: &BlindedPerson,
        now: UnixTime,
    ) -> Outcome<Message> {
        let admitted = match self.manifest.portal_by_key(&signed.key) {
            Some(p) => {
                let p = p.name.clone();
                self.store.transaction(|tx| tx.innsyn_admissions(&p))?
            }
            None => Vec::new(),
        };
        let domain = &person.domain;
        let portal = decide_blinded(
            &self.manifest,
            &self.me,
            &signed.key,
            request,
            domain,
            &admitted,
        )?;
        self.remember_request_digest(&signed.call.digest(), signed.call.time, now)?;
        let state = self.complete_domain(domain)?;
        self.portal_quota_today(&portal, now, "taken")?;
        self.innsyn.pending.expire(now);
        let key = request.digest();
        if self.innsyn.pending.0.contains_key(&key) {
            return Err(refuse(
                RefusalCode::NotAllowed,
                "this device request is already being answered; collect its reply",
            ));
        }
        let hop1 = state.keys[0].0.clone();
        let msg = Message::InnsynSteps(Box::new(InnsynSteps {
            call: signed.clone(),
            steps: Default::default(),
        }));
        self.store.transaction(|tx| {
            tx.count_innsyn(&portal, now.0 / 86_400)?;
            tx.send_domain(domain, &hop1, &msg)
        })?;
        tracing::info!(node = %self.me, %portal, %domain, "took an innsyn request; its one-person list goes through the key holders");
        self.innsyn.pending.0.insert(
            key,
            Pending {
                portal,
                call: signed.call.digest(),
                taken: now,
                outcome: None,
            },
        );
        Ok(ack())
    }

    /// The portal collects the reply to its one-person list.
    pub(super) fn innsyn_collect(
        &mut self,
        signed: &SignedInnsyn,
        request: &InnsynRequest,
        now: UnixTime,
    ) -> Outcome<Message> {
        self.remember_request_digest(&signed.call.digest(), signed.call.time, now)?;
        self.innsyn.pending.expire(now);
        let key = request.digest();
        let portal = self.manifest.portal_by_key(&signed.key).map(|p| &p.name);
        let Some(pending) = self
            .innsyn
            .pending
            .0
            .get(&key)
            .filter(|p| Some(&p.portal) == portal)
        else {
            return Err(refuse(
                RefusalCode::NotAllowed,
                format!(
                    "no innsyn request of this portal for this device request is pending at {} (a reply is kept {PENDING_SECS} seconds; ask again)",
                    self.me
                ),
            ));
        };
        if pending.outcome.is_none() {
            return Err(not_ready("the domain's key holders have not answered yet"));
        }
        match self.innsyn.pending.0.remove(&key).and_then(|p| p.outcome) {
            Some(Ok(sealed)) => Ok(Message::InnsynReply(Box::new(sealed))),
            Some(Err(refusal)) => Err(Refused::Refusal(refusal)),
            None => Err(not_ready("the domain's key holders have not answered yet")),
        }
    }

    /// A one-person list from a member: a key holder's turn, or, at the
    /// holder, the last step.
    pub(super) fn innsyn_steps(
        &mut self,
        from: &Peer,
        steps: &InnsynSteps,
        now: UnixTime,
    ) -> Outcome<Replies> {
        let Peer::Member(sender) = from else {
            return Err(refuse(
                RefusalCode::Unexpected,
                "a one-person list comes from a member",
            ));
        };
        let (_, person) = blinded_parts(steps)?;
        let Some(spec) = self.manifest.domain(&person.domain) else {
            return Err(refuse(
                RefusalCode::WrongRegister,
                format!("the manifest declares no register domain {}", person.domain),
            ));
        };
        let holder = spec.holder.clone();
        if holder == self.me {
            self.innsyn_last_step(sender, steps, now)?;
        } else {
            self.innsyn_key_holder_step(sender, &holder, steps, now)?;
        }
        Ok(vec![ack()].into())
    }

    /// A key holder: checks the portal's call and every step so far, adds
    /// its own and passes the list on.
    fn innsyn_key_holder_step(
        &mut self,
        sender: &Name,
        holder: &Name,
        steps: &InnsynSteps,
        now: UnixTime,
    ) -> Outcome<()> {
        let (request, person) = blinded_parts(steps)?;
        let domain = &person.domain;
        steps
            .call
            .check(now, holder, &self.manifest_digest)
            .map_err(request_refusal)?;
        let Some(portal) = self
            .manifest
            .portal_by_key(&steps.call.key)
            .map(|p| p.name.clone())
        else {
            return Err(refuse(
                RefusalCode::NotAllowed,
                "the one-person list is not signed by a portal of the manifest",
            ));
        };
        if request.register != *domain {
            return Err(refuse(
                RefusalCode::WrongRegister,
                format!(
                    "the device's request is for {}, not domain {domain}",
                    request.register
                ),
            ));
        }
        let state = self.complete_domain(domain)?;
        let hop = steps.steps.len();
        if state.keys.get(hop).map(|(m, _)| m) != Some(&self.me) {
            return Err(refuse(
                RefusalCode::Unexpected,
                format!(
                    "{} is not key holder {} of domain {domain}",
                    self.me,
                    hop + 1
                ),
            ));
        }
        let expected = if hop == 0 {
            holder
        } else {
            &state.keys[hop - 1].0
        };
        if sender != expected {
            return Err(refuse(
                RefusalCode::Unexpected,
                format!(
                    "step {} of a one-person list comes from {expected}, not {sender}",
                    hop + 1
                ),
            ));
        }
        let input = verify_steps(request, person, &state.keys, &steps.steps).map_err(|e| {
            tracing::warn!(node = %self.me, %sender, %domain, error = %e, "refused a one-person list whose steps do not verify");
            refuse(RefusalCode::Invalid, format!("one-person list: {e}"))
        })?;
        let once = Digest(framed_sha3(STEPPED_TAG, &[&steps.call.call.digest().0]));
        self.remember_request_digest(&once, steps.call.call.time, now)?;
        self.innsyn
            .quotas
            .admit(&portal, &once.0, now)
            .map_err(|e| refuse(RefusalCode::Quota, e.to_string()))?;
        let share = self.keystore.share(&Domain::Register(domain.clone()))?;
        let step = if hop == 0 {
            let sk = HpkeSecretKey::from_bytes(*self.keystore.x25519_secret_bytes());
            person.first_step(request, &self.me, &share, &sk, &mut self.rng)
        } else {
            BlindedPerson::later_step(
                request,
                HopIndex::after(hop),
                &self.me,
                &share,
                &input,
                &mut self.rng,
            )
        }
        .map_err(|e| refuse(RefusalCode::Blinding, format!("one-person list: {e}")))?;
        let next = state.keys.get(hop + 1).map_or(holder, |(m, _)| m).clone();
        let mut all = steps.steps.clone().into_inner();
        all.push(step);
        let msg = Message::InnsynSteps(Box::new(InnsynSteps {
            call: steps.call.clone(),
            steps: super::error::bounded(all)?,
        }));
        self.store
            .transaction(|tx| tx.send_domain(domain, &next, &msg))?;
        tracing::info!(node = %self.me, %portal, %domain, hop = hop + 1, %next, "stepped a one-person list for innsyn");
        Ok(())
    }
}
