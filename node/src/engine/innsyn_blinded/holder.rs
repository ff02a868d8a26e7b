//! The holder's end of a one-person innsyn list: every step verified,
//! `β₁` removed, the rows under `Ψ_R(x)` (or, at the disclosure log, the
//! records) sealed to the device, the request counted.

use kobling_protocol::{
    domain::transcript::{DomainBody, DomainState},
    innsyn::{
        blinded::{verify_steps, InnsynSteps},
        seal_reply, InnsynRequest, SealedReply,
    },
    refusal::{Refusal, RefusalCode},
    seal::HpkeSecretKey,
    types::{Name, UnixTime},
};

use super::blinded_parts;
use crate::engine::{
    domain::append_in,
    error::{not_ready, refuse, Outcome},
    Engine,
};

impl Engine {
    /// The holder: every step verified, `β₁` removed, the rows under
    /// `Ψ_R(x)` sealed to the device, the request counted in the domain's
    /// transcript.
    pub(super) fn innsyn_last_step(
        &mut self,
        sender: &Name,
        steps: &InnsynSteps,
        now: UnixTime,
    ) -> Outcome<()> {
        let (request, person) = blinded_parts(steps)?;
        let domain = person.domain.clone();
        let state = self.complete_domain(&domain)?;
        let last = state.keys.last().map(|(m, _)| m);
        if last != Some(sender) || steps.steps.len() != state.keys.len() {
            return Err(refuse(
                RefusalCode::Unexpected,
                format!("a one-person list returns to the holder from the last key holder, with every step, not from {sender}"),
            ));
        }
        self.innsyn.pending.expire(now);
        let key = request.digest();
        let call = steps.call.call.digest();
        let Some(portal) = self
            .innsyn
            .pending
            .0
            .get(&key)
            .filter(|p| p.call == call && p.outcome.is_none())
            .map(|p| p.portal.clone())
        else {
            return Err(refuse(
                RefusalCode::NotAllowed,
                "no one-person list of this call is pending here",
            ));
        };
        let last = verify_steps(request, person, &state.keys, &steps.steps).map_err(|e| {
            tracing::warn!(node = %self.me, %sender, %domain, error = %e, "refused a one-person list whose steps do not verify");
            refuse(RefusalCode::Invalid, format!("one-person list: {e}"))
        })?;
        let sk = HpkeSecretKey::from_bytes(*self.keystore.x25519_secret_bytes());
        let outcome = match person.pseudonym(request, &sk, &last) {
            Err(e) => Err(Refusal::new(
                RefusalCode::Blinding,
                format!("one-person list: {e}"),
            )),
            Ok(psi) => {
                let subject = self.subject_key_of(psi.as_bytes());
                match self.innsyn.quotas.admit(&portal, &subject, now) {
                    Err(e) => Err(Refusal::new(RefusalCode::Quota, e.to_string())),
                    Ok(()) if self.is_disclosure_log(&domain) => {
                        self.seal_disclosure_records(&domain, request, &psi)?
                    }
                    Ok(()) => self.seal_domain_rows(&domain, request, &psi)?,
                }
            }
        };
        let found = outcome.is_ok();
        let (me, manifest, signing) = (&self.me, &self.manifest, &self.signing);
        self.store.transaction(|tx| {
            let held = tx.domain_entries(&domain)?;
            append_in(
                tx,
                manifest,
                me,
                signing,
                &domain,
                held,
                DomainBody::Innsyn {
                    portal: portal.clone(),
                    request: call,
                },
                Vec::new(),
            )
            .map(|_| ())
        })?;
        tracing::info!(node = %self.me, %portal, %domain, answered = found, "a one-person list came back; the reply is sealed to the citizen's device");
        if let Some(p) = self.innsyn.pending.0.get_mut(&key) {
            p.outcome = Some(outcome);
        }
        Ok(())
    }

    /// The rows stored under `psi`, sealed to the device key of
    /// `request`, as one table: the header `delivery` and the union of the
    /// deliveries' column names (in the order first seen), then each row
    /// with its delivery's id (hex, 16 digits) and its values under their
    /// columns (empty where its delivery has no such column). No rows: an
    /// empty reply, the same size as a few rows.
    fn seal_domain_rows(
        &mut self,
        domain: &Name,
        request: &InnsynRequest,
        psi: &kobling_protocol::group::WirePoint,
    ) -> Outcome<Result<SealedReply, Refusal>> {
        let deliveries = self.store.domain_deliveries(domain)?;
        let rows = self.store.person_domain_rows(domain, psi)?;
        let mut header: Vec<String> = vec!["delivery".to_owned()];
        for d in deliveries
            .iter()
            .filter(|d| rows.iter().any(|r| r.delivery == d.delivery))
        {
            for c in &d.columns {
                if !header[1..].contains(c) {
                    header.push(c.clone());
                }
            }
        }
        let mut reply: Vec<Vec<String>> = Vec::with_capacity(rows.len() + 1);
        if !rows.is_empty() {
            reply.push(header.clone());
        }
        for row in rows {
            let columns = deliveries
                .iter()
                .find(|d| d.delivery == row.delivery)
                .map(|d| &d.columns[..])
                .unwrap_or(&[]);
            let mut line = vec![String::new(); header.len()];
            line[0] = row.delivery.to_hex()[..16].to_owned();
            for (c, v) in columns.iter().zip(row.values) {
                if let Some(i) = header.iter().skip(1).position(|h| h == c) {
                    line[i + 1] = v;
                }
            }
            reply.push(line);
        }
        Ok(seal_reply(request, &reply, &mut self.rng)
            .map_err(|e| Refusal::new(RefusalCode::TooLarge, e.to_string())))
    }

    /// `domain`'s verified state, if it is complete (every key holder
    /// committed, not retired, no replacement pending).
    pub(in crate::engine) fn complete_domain(&self, domain: &Name) -> Outcome<DomainState> {
        match self.domain_state(domain)? {
            Some(s) if s.is_complete() => Ok(s),
            _ => Err(not_ready(format!(
                "domain {domain} is not complete here yet (its key holders' commitments are missing, or it is retired)"
            ))),
        }
    }
}
