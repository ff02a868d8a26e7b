//! Innsyn at an fnr register (PROTOCOL.md §10a, issue 16 item 2): two
//! operators admit a portal; the register answers an admitted portal's
//! request with one person's rows, sealed to the citizen's device.
//!
//! ```text
//!  operator ──Innsyn(Admit{portal})──▶ check ─▶ decide_admit ─▶ remember ─▶ decide_second_admission
//!                                       ─▶ store the admission ─▶ Ack
//!  portal ──Innsyn(Lookup{request, fnr})──▶ check ─▶ decide_lookup (listed portal, two operators)
//!           ─▶ remember ─▶ parse + map the fnr ─▶ Quotas (portal, keyed hash of the person)
//!           ─▶ stream the innsyn extract for the person's rows ─▶ seal_reply ─▶ count ─▶ InnsynReply
//! ```
//!
//! The fnr stays in this node: the log shows it masked (`01*********`),
//! the store keeps only a count of requests per portal and day, and the
//! quota book keys a person by a hash under a secret drawn when the node
//! starts (kept in memory only, like the book: a restart empties both).
//! The extract is read in one streaming pass per request, keeping only the
//! asked person's rows; over the network the daemon reads it outside the
//! engine's lock ([`Engine::take_innsyn`] → [`InnsynLookup::read`] →
//! [`Engine::finish_innsyn`]), as it reads an approval's extract.

use std::path::PathBuf;

use kobling_protocol::{
    hash::framed_sha3,
    ident::{IdMapping, Identifier, ParseOptions},
    innsyn::{
        seal_reply,
        wire::{decide_admit, decide_lookup, decide_second_admission, InnsynAction, SignedInnsyn},
        InnsynRequest, QuotaLimits, Quotas,
    },
    manifest::Role,
    messages::Message,
    refusal::RefusalCode,
    types::{Name, UnixTime},
};
use rand_chacha::rand_core::Rng as _;
use zeroize::Zeroizing;

use super::{
    approval::request_refusal,
    error::{ack, refuse, Outcome},
    Engine, Peer, Replies,
};
use crate::extract_file::{load_mapping, lookup::lookup_person, ExtractError};

/// Tag of the quota book's key of a person.
const SUBJECT_TAG: &[u8] = b"KOBLING-INNSYN-SUBJECT";

/// A register's innsyn settings and quota book (memory only).
#[derive(Default)]
pub(super) struct Desk {
    /// The extract innsyn reads (`kobling node run --innsyn-extract`).
    extract: Option<PathBuf>,
    /// Requests per portal and per person in the window.
    pub(super) quotas: Quotas,
    /// The limits `quotas` enforces (the per-portal one also against the
    /// stored count of the day, which a restart keeps).
    pub(super) limits: QuotaLimits,
    /// Keys the quota book's persons; drawn at the first request.
    secret: Option<Zeroizing<[u8; 32]>>,
    /// A pseudonymous holder's one-person lists in flight.
    pub(super) pending: super::innsyn_blinded::PendingBook,
}

/// What [`Engine::take_innsyn`] leaves to do.
#[derive(Debug)]
pub enum InnsynStep {
    /// Answered (an admission, or a refusal).
    Done(Replies),
    /// A lookup admitted: read the extract outside the engine's lock, then
    /// [`Engine::finish_innsyn`].
    Read(InnsynLookup),
}

/// A portal's lookup, admitted and counted against the quotas, that reads
/// the register's innsyn extract for one person.
pub struct InnsynLookup {
    extract: PathBuf,
    options: ParseOptions,
    mapping: Option<IdMapping>,
    id: Identifier,
    portal: Name,
    request: InnsynRequest,
}

impl std::fmt::Debug for InnsynLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the identifier.
        f.debug_struct("InnsynLookup")
            .field("portal", &self.portal)
            .finish_non_exhaustive()
    }
}

impl InnsynLookup {
    /// The variables and the person's rows, in one streaming pass over
    /// the extract (no engine state: run it outside the engine's lock).
    ///
    /// # Errors
    ///
    /// The extract cannot be read or is not a valid extract.
    pub fn read(&self) -> InnsynFound {
        InnsynFound(lookup_person(
            &self.extract,
            self.options,
            self.mapping.as_ref(),
            &self.id,
        ))
    }
}

/// What [`InnsynLookup::read`] found: the variables and the person's rows,
/// or why the extract could not be read (for the node's log only).
#[derive(Debug)]
pub struct InnsynFound(Result<(Vec<String>, Vec<Vec<String>>), ExtractError>);

impl Engine {
    /// Serves innsyn from the fnr extract at `path` (none: this register
    /// answers no innsyn request).
    pub fn set_innsyn_extract(&mut self, path: Option<PathBuf>) {
        self.innsyn.extract = path;
    }

    /// Replaces the innsyn quotas (default: [`QuotaLimits::default`]),
    /// emptying the book.
    pub fn set_innsyn_quotas(&mut self, limits: QuotaLimits) {
        self.innsyn.quotas = Quotas::new(limits);
        self.innsyn.limits = limits;
    }

    /// Innsyn requests answered for `portal` on the day of `now` (a count;
    /// the store holds nothing else of them).
    ///
    /// # Errors
    ///
    /// [`super::EngineError::Store`].
    pub fn innsyn_served(
        &mut self,
        portal: &kobling_protocol::types::Name,
        now: UnixTime,
    ) -> Result<u64, super::EngineError> {
        Ok(self
            .store
            .transaction(|tx| tx.innsyn_served(portal, now.0 / 86_400))?)
    }

    /// An innsyn request: an operator's admission or a portal's lookup.
    pub(super) fn innsyn(
        &mut self,
        from: &Peer,
        signed: &SignedInnsyn,
        now: UnixTime,
    ) -> Outcome<Replies> {
        self.innsyn_allowed(from, signed, now)?;
        let reply = match &signed.call.action {
            InnsynAction::Admit { portal } => {
                decide_admit(&self.manifest, &self.me, &signed.key, portal)?;
                self.remember_request_digest(&signed.call.digest(), signed.call.time, now)?;
                let key = signed.key;
                self.store.transaction(|tx| {
                    let admitted = tx.innsyn_admissions(portal)?;
                    decide_second_admission(&admitted, &key, portal)?;
                    tx.admit_portal(portal, &key, now)?;
                    Ok::<_, super::error::Refused>(())
                })?;
                tracing::info!(node = %self.me, portal = %portal, "an operator admitted an innsyn portal");
                ack()
            }
            InnsynAction::Lookup { request, subject } => {
                let lookup = self.take_lookup(signed, request, subject.0.as_str(), now)?;
                let found = lookup.read();
                self.answer_lookup(lookup, found, now)?
            }
            InnsynAction::Blinded { request, person } => {
                self.innsyn_blinded(signed, request, person, now)?
            }
            InnsynAction::Collect { request } => self.innsyn_collect(signed, request, now)?,
        };
        Ok(vec![reply].into())
    }

    /// Innsyn at a register over the network: an operator's admission is
    /// handled at once; a portal's lookup is checked and admitted here and
    /// then read by the daemon outside the engine's lock
    /// ([`InnsynLookup::read`], [`Engine::finish_innsyn`]), as an
    /// approval's extract is, so that a large extract never stalls the
    /// node's projects.
    ///
    /// # Errors
    ///
    /// As [`handle`](Self::handle).
    pub fn take_innsyn(
        &mut self,
        from: &Peer,
        signed: &SignedInnsyn,
        now: UnixTime,
    ) -> Result<InnsynStep, super::EngineError> {
        let result = match &signed.call.action {
            InnsynAction::Lookup { request, subject } => self
                .innsyn_allowed(from, signed, now)
                .and_then(|()| self.take_lookup(signed, request, subject.0.as_str(), now))
                .map(InnsynStep::Read),
            InnsynAction::Admit { .. }
            | InnsynAction::Blinded { .. }
            | InnsynAction::Collect { .. } => self.innsyn(from, signed, now).map(InnsynStep::Done),
        };
        match result {
            Ok(step) => Ok(step),
            Err(e) => self.respond(from, "Innsyn", Err(e)).map(InnsynStep::Done),
        }
    }

    /// Answers a lookup taken by [`take_innsyn`](Self::take_innsyn) with
    /// what [`InnsynLookup::read`] found.
    ///
    /// # Errors
    ///
    /// As [`handle`](Self::handle).
    pub fn finish_innsyn(
        &mut self,
        from: &Peer,
        lookup: InnsynLookup,
        found: InnsynFound,
        now: UnixTime,
    ) -> Result<Replies, super::EngineError> {
        let result = self
            .answer_lookup(lookup, found, now)
            .map(|m| Replies::from(vec![m]));
        self.respond(from, "Innsyn", result)
    }

    /// Who may ask for innsyn here at all: clients, at a register.
    fn innsyn_allowed(&self, from: &Peer, signed: &SignedInnsyn, now: UnixTime) -> Outcome<()> {
        if !matches!(from, Peer::Client) || self.role != Role::Register {
            return Err(refuse(
                RefusalCode::Unexpected,
                format!(
                    "{} takes innsyn requests only from clients, as a register",
                    self.me
                ),
            ));
        }
        signed
            .check(now, &self.me, &self.manifest_digest)
            .map_err(request_refusal)?;
        Ok(())
    }

    /// A lookup's checks, in order: the portal listed and admitted by two
    /// operators, the request fresh, this register serving innsyn, the
    /// identifier valid (and mapped), the quotas; what is left is to read
    /// the extract.
    fn take_lookup(
        &mut self,
        signed: &SignedInnsyn,
        request: &InnsynRequest,
        subject: &str,
        now: UnixTime,
    ) -> Outcome<InnsynLookup> {
        let portal_name = self
            .manifest
            .portal_by_key(&signed.key)
            .map(|p| p.name.clone());
        let admitted = match &portal_name {
            Some(p) => self.store.transaction(|tx| tx.innsyn_admissions(p))?,
            None => Vec::new(),
        };
        let portal = decide_lookup(&self.manifest, &self.me, &signed.key, request, &admitted)?;
        self.remember_request_digest(&signed.call.digest(), signed.call.time, now)?;
        let Some(extract) = self.innsyn.extract.clone() else {
            return Err(refuse(
                RefusalCode::Extract,
                format!(
                    "{} serves no innsyn: its node was not started with --innsyn-extract",
                    self.me
                ),
            ));
        };
        let options = ParseOptions {
            allow_synthetic: self.config.test_mode,
        };
        let id = Identifier::parse(subject, options).map_err(|e| {
            refuse(
                RefusalCode::BadRequest,
                format!("the identifier is not a valid one ({})", e.reason_code()),
            )
        })?;
        let mapping = match self.store.mapping() {
            Some(path) => Some(load_mapping(&path, options).map_err(|e| {
                tracing::error!(node = %self.me, error = %e, "the mapping file cannot be read");
                refuse(
                    RefusalCode::Internal,
                    "the register's mapping file cannot be read",
                )
            })?),
            None => None,
        };
        let id = mapping.as_ref().map_or(id, |m| m.apply(&id));
        self.portal_quota_today(&portal, now, "answered")?;
        let key = self.subject_key(&id);
        self.innsyn
            .quotas
            .admit(&portal, &key, now)
            .map_err(|e| refuse(RefusalCode::Quota, e.to_string()))?;
        Ok(InnsynLookup {
            extract,
            options,
            mapping,
            id,
            portal,
            request: request.clone(),
        })
    }

    /// The per-portal quota against the portal's requests of the day as
    /// stored (`what`: "answered" or "taken"), so it holds across a
    /// restart (the book in memory does not).
    pub(super) fn portal_quota_today(
        &mut self,
        portal: &Name,
        now: UnixTime,
        what: &str,
    ) -> Outcome<()> {
        let served = self
            .store
            .transaction(|tx| tx.innsyn_served(portal, now.0 / 86_400))?;
        if served >= u64::from(self.innsyn.limits.per_portal) {
            return Err(refuse(
                RefusalCode::Quota,
                format!("too many requests from this portal today ({served} {what})"),
            ));
        }
        Ok(())
    }

    /// Seals what the lookup found to the citizen's device and counts it.
    fn answer_lookup(
        &mut self,
        lookup: InnsynLookup,
        found: InnsynFound,
        now: UnixTime,
    ) -> Outcome<Message> {
        let (columns, rows) = found.0.map_err(|e| {
            tracing::error!(node = %self.me, error = %e, "the innsyn extract cannot be read");
            refuse(
                RefusalCode::Extract,
                "the register's innsyn extract cannot be read; its operator can see why in its log",
            )
        })?;
        let found = rows.len();
        let mut reply_rows = Vec::with_capacity(rows.len() + 1);
        reply_rows.push(columns);
        reply_rows.extend(rows);
        let sealed = seal_reply(&lookup.request, &reply_rows, &mut self.rng)
            .map_err(|e| refuse(RefusalCode::TooLarge, e.to_string()))?;
        let portal = lookup.portal;
        self.store
            .transaction(|tx| tx.count_innsyn(&portal, now.0 / 86_400))?;
        tracing::info!(node = %self.me, portal = %portal, person = %lookup.id, rows = found, "answered an innsyn request, sealed to the citizen's device");
        Ok(Message::InnsynReply(Box::new(sealed)))
    }

    /// The quota book's key of a person: a hash under this node's secret,
    /// so that the book holds nothing a dictionary over fnr could invert.
    fn subject_key(&mut self, id: &Identifier) -> [u8; 32] {
        self.subject_key_of(id.as_bytes())
    }

    /// The quota book's key of a subject's bytes (an fnr's digits, or a
    /// pseudonymous holder's `Ψ_R`).
    pub(super) fn subject_key_of(&mut self, subject: &[u8]) -> [u8; 32] {
        let rng = &mut self.rng;
        let secret = self.innsyn.secret.get_or_insert_with(|| {
            let mut s = Zeroizing::new([0u8; 32]);
            rng.fill_bytes(s.as_mut());
            s
        });
        framed_sha3(SUBJECT_TAG, &[secret.as_ref(), subject])
    }
}

#[cfg(test)]
mod tests;
