//! Operators' requests about a register domain at a node (PROTOCOL.md
//! §10): the transcript for `domain status`/`export`, the two-operator
//! retirement at the holder, and the re-share's steps (`reshare`), each
//! checked for freshness, node, manifest, signature, who may ask, and
//! replays.

use kobling_protocol::{
    bounded::BoundedVec,
    domain::{
        transcript::{verify_domain_transcript, DomainBody, DomainEntry, DomainLog, OperatorSig},
        wire::{DomainAction, SignedDomainRequest},
    },
    messages::{Message, MAX_ENTRIES_PER_MESSAGE},
    refusal::RefusalCode,
    transcript::verify_signature,
    types::{Digest, Name, UnixTime},
};

use super::{
    domain::append_in,
    error::{ack, refuse, Outcome},
    Engine,
};

impl Engine {
    /// An operator's domain request: checked (freshness, node, manifest,
    /// signature; then whether the key may ask; then the replay cache).
    pub(super) fn domain_request(
        &mut self,
        req: &SignedDomainRequest,
        now: UnixTime,
    ) -> Outcome<Vec<Message>> {
        req.check(now, &self.me, &self.manifest_digest)
            .map_err(super::approval::request_refusal)?;
        let domain = &req.request.domain;
        let spec = self
            .manifest
            .domain(domain)
            .ok_or_else(|| {
                refuse(
                    RefusalCode::UnknownProject,
                    format!("the manifest declares no domain {domain}"),
                )
            })?
            .clone();
        match &req.request.action {
            DomainAction::Transcript { first } => {
                let operator = self
                    .manifest
                    .registers()
                    .any(|m| m.operators.iter().any(|o| o.key == req.key));
                if !operator && !self.manifest.is_authority(&req.key) {
                    return Err(refuse(
                        RefusalCode::NotAnOperator,
                        "only the federation's operators and authorities read a domain transcript",
                    ));
                }
                self.remember_domain_request(req, now)?;
                let entries = self.store.domain_entries(domain)?;
                if entries.is_empty() {
                    return Err(refuse(
                        RefusalCode::UnknownProject,
                        format!("this node holds no transcript of domain {domain}"),
                    ));
                }
                let start = usize::try_from(*first)
                    .unwrap_or(usize::MAX)
                    .min(entries.len());
                let page: Vec<DomainEntry> = entries
                    .into_iter()
                    .skip(start)
                    .take(MAX_ENTRIES_PER_MESSAGE)
                    .collect();
                Ok(vec![Message::DomainEntries {
                    domain: domain.clone(),
                    first: start as u64,
                    entries: BoundedVec::new(page).unwrap_or_default(),
                }])
            }
            DomainAction::Retire {
                statement,
                signature,
            } => {
                if spec.holder != self.me {
                    return Err(refuse(
                        RefusalCode::WrongRegister,
                        format!("domain {domain} is retired at its holder {}", spec.holder),
                    ));
                }
                let operator = self
                    .manifest
                    .member(&self.me)
                    .is_some_and(|m| m.operators.iter().any(|o| o.key == req.key));
                if !operator {
                    return Err(refuse(
                        RefusalCode::NotAnOperator,
                        format!("only an operator of {} retires domain {domain}", self.me),
                    ));
                }
                self.remember_domain_request(req, now)?;
                verify_signature(&req.key, statement.as_bytes(), signature).map_err(|()| {
                    refuse(
                        RefusalCode::BadSignature,
                        "the operator's signature on the retirement does not verify",
                    )
                })?;
                let sig = OperatorSig {
                    key: req.key,
                    signature: *signature,
                };
                self.collect_retirement(domain, statement, &sig, now)
            }
            _ => self.reshare_request(req, &spec, now),
        }
    }

    pub(super) fn remember_domain_request(
        &mut self,
        req: &SignedDomainRequest,
        now: UnixTime,
    ) -> Outcome<()> {
        self.remember_request_digest(&req.request.digest(), req.request.time, now)
    }

    /// The holder keeps an operator's signature on the next `Retired`
    /// entry; with two distinct operators' signatures on the same entry it
    /// appends the retirement and replicates it.
    fn collect_retirement(
        &mut self,
        domain: &Name,
        statement: &Digest,
        sig: &OperatorSig,
        now: UnixTime,
    ) -> Outcome<Vec<Message>> {
        let (me, manifest, signing) = (&self.me, &self.manifest, &self.signing);
        let retired = self.store.transaction(|tx| {
            let held = tx.domain_entries(domain)?;
            let state = verify_domain_transcript(manifest, domain, &held).map_err(|e| {
                refuse(
                    RefusalCode::NotReady,
                    format!("domain {domain} has no verified transcript here: {e}"),
                )
            })?;
            if state.retirement().is_some() {
                return Err(refuse(
                    RefusalCode::Closed,
                    format!("domain {domain} is already retired"),
                ));
            }
            let next = DomainLog::from_entries(held.clone()).next_digest(me, &DomainBody::Retired);
            if next != *statement {
                return Err(refuse(
                    RefusalCode::Diverged,
                    format!("the domain transcript of {domain} moved since the retirement was signed; sign again"),
                ));
            }
            tx.put_retire_sig(domain, statement, sig, now)?;
            let sigs = tx.retire_sigs(domain, statement)?;
            let mut two: Vec<OperatorSig> = Vec::new();
            for s in sigs {
                if two.iter().all(|t| t.key != s.key) && two.len() < 2 {
                    two.push(s);
                }
            }
            if two.len() < 2 {
                return Ok(false);
            }
            append_in(tx, manifest, me, signing, domain, held, DomainBody::Retired, two)?;
            tx.clear_retire_sigs(domain)?;
            Ok(true)
        })?;
        if retired {
            tracing::warn!(node = %self.me, %domain, "domain retired by two operators; every key holder shreds its seed");
        } else {
            tracing::info!(node = %self.me, %domain, "an operator signed the domain's retirement; a second operator must sign");
        }
        Ok(vec![ack()])
    }
}
