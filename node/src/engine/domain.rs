//! Register domains' lifecycle at a node (PROTOCOL.md §10, decision 1 of
//! issue 15): the holder sequences the domain transcript, key holders
//! commit their share of `Domain::Register(R)`, every copy is verified
//! whole before it is stored, and two of the holder's operators retire it.
//!
//! ```text
//!  tick, holder:      no transcript of a manifest domain it holds ─▶ append Created ─▶ replicate
//!  tick, key holder:  a verified copy, not committed ─▶ accept_domain, sign KeyCommitment at the
//!                     copy's head ──DomainCommitment──▶ holder (signed again when the head moves)
//!  holder:            decide_commitment (at its head, once, verifies) ─▶ append ─▶ replicate
//!  key holder:        DomainEntries ─▶ decide_entries (verified whole) ─▶ store;
//!                     a copy ending in Retired ─▶ Keystore::retire_domain (the seed is shredded)
//!  operator ──DomainRequest(Retire)──▶ holder: two distinct operators' signatures on the same
//!                     next entry ─▶ append Retired with both ─▶ replicate
//!  operator ──DomainRequest(Transcript)──▶ any node with a copy ─▶ DomainEntries
//!  (operators' requests: `domain_request`; a re-share: `reshare`)
//! ```
//!
//! For the other engine modules: [`Engine::domain_state`] (the verified
//! state at any node that holds a copy) and, at the holder,
//! [`Engine::append_domain_entry`] (e.g. a `DomainBody::Delivery`), which
//! verifies, stores and replicates in one transaction.
//!
//! A domain's seed is long-lived: a project's closure never touches it
//! (`Keystore::shred` refuses a register domain); only a verified
//! retirement shreds it.

use kobling_keys::DomainStatus;
use kobling_protocol::{
    bounded::BoundedVec,
    domain::{
        transcript::{
            verify_domain_transcript, DomainBody, DomainEntry, DomainLog, DomainState, OperatorSig,
        },
        wire::{authorise_domain, decide_commitment, decide_entries, CommitmentDecision},
        DomainSpec,
    },
    messages::{Message, MAX_ENTRIES_PER_MESSAGE},
    refusal::{Refusal, RefusalCode},
    types::{Name, UnixTime},
};

use super::{
    error::{ack, not_ready, refuse, Outcome, Refused},
    Engine, EngineError, Peer, Replies,
};
use crate::store::Tx;

impl Engine {
    /// The verified state of `domain` as this node's copy of its
    /// transcript gives it; `None` if this node holds no copy.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`], or [`EngineError::Domain`] for a copy that
    /// does not verify against this node's manifest.
    pub fn domain_state(&self, domain: &Name) -> Result<Option<DomainState>, EngineError> {
        let entries = self.store.domain_entries(domain)?;
        if entries.is_empty() {
            return Ok(None);
        }
        Ok(Some(verify_domain_transcript(
            &self.manifest,
            domain,
            &entries,
        )?))
    }

    /// This node's copy of `domain`'s transcript (empty if none).
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`].
    pub fn domain_transcript(&self, domain: &Name) -> Result<Vec<DomainEntry>, EngineError> {
        Ok(self.store.domain_entries(domain)?)
    }

    /// At the holder: appends `body` (signed by this node) to `domain`'s
    /// transcript, verifies the whole, stores it and queues it to every
    /// key holder, in one transaction; the new state.
    ///
    /// The inner result is the refusal: this node is not the holder, the
    /// domain has no transcript yet, or the entry does not verify (a
    /// delivery before every key holder committed, a repeated delivery id,
    /// anything after the retirement); nothing is written then.
    ///
    /// # Errors
    ///
    /// An internal failure ([`EngineError::Store`]).
    pub fn append_domain_entry(
        &mut self,
        domain: &Name,
        body: DomainBody,
    ) -> Result<Result<DomainState, Refusal>, EngineError> {
        let (me, manifest, signing) = (&self.me, &self.manifest, &self.signing);
        let holder = manifest.domain(domain).map(|d| &d.holder);
        if holder != Some(me) {
            return Ok(Err(Refusal::new(
                RefusalCode::Unexpected,
                format!("{me} is not the holder of domain {domain}"),
            )));
        }
        let done = self.store.transaction(|tx| {
            let held = tx.domain_entries(domain)?;
            if held.is_empty() {
                return Err(not_ready(format!("domain {domain} is not created yet")));
            }
            append_in(tx, manifest, me, signing, domain, held, body, Vec::new())
        });
        match done {
            Ok(state) => Ok(Ok(state)),
            Err(Refused::Refusal(r)) => Ok(Err(r)),
            Err(Refused::Engine(e)) => Err(e),
        }
    }

    /// A domain's duties on a tick: the holder creates the transcript of
    /// each domain it holds; a key holder commits its key, or shreds its
    /// seed once the domain is retired. Refusals are logged and retried.
    pub(super) fn tick_domains(&mut self) -> Result<(), EngineError> {
        for spec in self.manifest.domains.clone() {
            match self.tick_domain(&spec) {
                Ok(()) => {}
                Err(Refused::Engine(e)) => return Err(e),
                Err(Refused::Refusal(r)) => {
                    tracing::warn!(node = %self.me, domain = %spec.name, code = r.code.as_str(), detail = %r.detail, "a domain duty could not be done yet");
                }
            }
        }
        Ok(())
    }

    fn tick_domain(&mut self, spec: &DomainSpec) -> Outcome<()> {
        let domain = &spec.name;
        let entries = self.store.domain_entries(domain)?;
        if spec.holder == self.me {
            if entries.is_empty() {
                self.create_domain(spec)?;
            }
            return Ok(());
        }
        if entries.is_empty() || !spec.is_key_holder(&self.manifest, &self.me) {
            return Ok(());
        }
        let state = verify_domain_transcript(&self.manifest, domain, &entries)
            .map_err(|e| refuse(RefusalCode::Invalid, e.to_string()))?;
        if state.retirement().is_some() {
            return self.shred_retired(&state);
        }
        if state.key_of(&self.me).is_some() {
            return Ok(());
        }
        if state
            .replacing
            .as_ref()
            .is_some_and(|r| r.joining == self.me)
        {
            // This member takes a retired key holder's place: its key
            // comes with the re-share (`kobling domain reshare
            // --replaces`), not with a commitment of its own.
            return Ok(());
        }
        let len = entries.len() as u64;
        if self.store.transaction(|tx| tx.domain_commit_sent(domain))? == Some(len) {
            return Ok(());
        }
        let key_domain = spec.domain();
        self.keystore
            .accept_domain_with_rng(&key_domain, &mut self.rng)?;
        let key = self.keystore.commitment(&key_domain)?;
        let mut log = DomainLog::from_entries(entries);
        let entry = log
            .append(
                self.me.clone(),
                &self.signing,
                DomainBody::KeyCommitment {
                    member: self.me.clone(),
                    key,
                },
                Vec::new(),
            )
            .clone();
        let msg = Message::DomainCommitment {
            domain: domain.clone(),
            entry: Box::new(entry),
        };
        self.store.transaction(|tx| {
            tx.set_domain_commit_sent(domain, len)?;
            tx.send_domain(domain, &spec.holder, &msg)
        })?;
        tracing::info!(node = %self.me, %domain, "domain key accepted; commitment sent to the holder");
        Ok(())
    }

    /// The holder opens a domain's transcript with its creation.
    fn create_domain(&mut self, spec: &DomainSpec) -> Outcome<()> {
        let domain = &spec.name;
        let key_holders = BoundedVec::new(spec.key_holders(&self.manifest))
            .map_err(|e| refuse(RefusalCode::TooLarge, e.to_string()))?;
        let body = DomainBody::Created {
            domain: domain.clone(),
            holder: self.me.clone(),
            key_holders,
            manifest: self.manifest_digest,
        };
        let (me, manifest, signing) = (&self.me, &self.manifest, &self.signing);
        self.store.transaction(|tx| {
            if !tx.domain_entries(domain)?.is_empty() {
                return Ok(());
            }
            append_in(
                tx,
                manifest,
                me,
                signing,
                domain,
                Vec::new(),
                body,
                Vec::new(),
            )?;
            Ok::<_, Refused>(())
        })?;
        tracing::info!(node = %self.me, %domain, "domain created");
        Ok(())
    }

    /// A key holder shreds its seed of a retired domain (once).
    fn shred_retired(&mut self, state: &DomainState) -> Outcome<()> {
        let Some(retirement) = state.retirement() else {
            return Ok(());
        };
        let key_domain = kobling_protocol::share::Domain::Register(state.domain.clone());
        if self.keystore.domain_status(&key_domain)? != DomainStatus::Shredded {
            self.keystore.retire_domain(&retirement)?;
            tracing::info!(node = %self.me, domain = %state.domain, "domain retired: its seed is shredded");
        }
        Ok(())
    }

    /// A domain message (authorised here by kind, sender and manifest).
    pub(super) fn domain_handles(
        &mut self,
        from: &Peer,
        msg: Message,
        now: UnixTime,
    ) -> Outcome<Replies> {
        if let Err(r) = authorise_domain(&self.manifest, &self.me, from, &msg) {
            if let Peer::Member(m) = from {
                tracing::warn!(node = %self.me, from = %m, kind = msg.kind(), code = r.code.as_str(), "a member acting outside its part in a register domain is refused");
            }
            return Err(r.into());
        }
        let replies = match msg {
            Message::DomainEntries {
                domain,
                first,
                entries,
            } => self.receive_domain_entries(&domain, first, &entries.into_inner())?,
            Message::DomainCommitment { domain, entry } => {
                self.receive_commitment(&domain, &entry)?
            }
            Message::DomainRequest(req) => self.domain_request(&req, now)?,
            other => return Err(super::unexpected(&other)),
        };
        Ok(replies.into())
    }

    /// A key holder takes replicated entries: verified whole, then stored.
    fn receive_domain_entries(
        &mut self,
        domain: &Name,
        first: u64,
        entries: &[DomainEntry],
    ) -> Outcome<Vec<Message>> {
        let manifest = &self.manifest;
        let state = self.store.transaction(|tx| {
            let held = tx.domain_entries(domain)?;
            let (new, state) = decide_entries(manifest, domain, &held, first, entries)?;
            tx.append_domain_entries(domain, &new)?;
            Ok::<_, Refused>(state)
        })?;
        if state.retirement().is_some() {
            self.shred_retired(&state)?;
        }
        Ok(vec![ack()])
    }

    /// The holder takes a key holder's commitment.
    fn receive_commitment(&mut self, domain: &Name, entry: &DomainEntry) -> Outcome<Vec<Message>> {
        let manifest = &self.manifest;
        self.store.transaction(|tx| {
            let held = tx.domain_entries(domain)?;
            match decide_commitment(manifest, domain, &held, entry)? {
                CommitmentDecision::AlreadyCommitted => {}
                CommitmentDecision::Append(state) => {
                    tx.append_domain_entries(domain, std::slice::from_ref(entry))?;
                    replicate(tx, domain, &state, std::slice::from_ref(entry))?;
                }
            }
            Ok::<_, Refused>(())
        })?;
        tracing::info!(node = %self.me, %domain, member = %entry.signer, "domain key commitment recorded");
        Ok(vec![ack()])
    }
}

/// Appends `body` by `me` to `held` (the domain's transcript, read in this
/// transaction), verifies the whole, stores the entry and queues it to
/// every key holder; the new state.
#[allow(clippy::too_many_arguments)]
pub(super) fn append_in(
    tx: &Tx<'_>,
    manifest: &kobling_protocol::manifest::Manifest,
    me: &Name,
    signing: &ed25519_dalek::SigningKey,
    domain: &Name,
    held: Vec<DomainEntry>,
    body: DomainBody,
    operators: Vec<OperatorSig>,
) -> Outcome<DomainState> {
    let mut log = DomainLog::from_entries(held);
    let entry = log.append(me.clone(), signing, body, operators).clone();
    let state = verify_domain_transcript(manifest, domain, log.entries()).map_err(|e| {
        Refused::Refusal(Refusal::new(
            RefusalCode::Invalid,
            format!("domain {domain}: the entry cannot be appended: {e}"),
        ))
    })?;
    tx.append_domain_entries(domain, std::slice::from_ref(&entry))?;
    replicate(tx, domain, &state, std::slice::from_ref(&entry))?;
    Ok(state)
}

/// Queues `entries` to every key holder of the domain.
pub(super) fn replicate(
    tx: &Tx<'_>,
    domain: &Name,
    state: &DomainState,
    entries: &[DomainEntry],
) -> Outcome<()> {
    let Some(first) = entries.first().map(|e| e.seq) else {
        return Ok(());
    };
    for (member, _) in &state.keys {
        send_entries(tx, domain, member, first, entries)?;
    }
    Ok(())
}

/// Queues `entries` (from position `first`) to `member`, in messages of
/// at most [`MAX_ENTRIES_PER_MESSAGE`] entries (the whole transcript, from
/// 0, for a member that became a key holder by a re-share in a retired key
/// holder's place and holds no copy yet).
pub(super) fn send_entries(
    tx: &Tx<'_>,
    domain: &Name,
    member: &Name,
    first: u64,
    entries: &[DomainEntry],
) -> Outcome<()> {
    for (page, chunk) in entries.chunks(MAX_ENTRIES_PER_MESSAGE).enumerate() {
        let msg = Message::DomainEntries {
            domain: domain.clone(),
            first: first + (page * MAX_ENTRIES_PER_MESSAGE) as u64,
            entries: super::error::bounded(chunk.to_vec())?,
        };
        tx.send_domain(domain, member, &msg)?;
    }
    Ok(())
}
