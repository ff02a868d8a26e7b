//! The log's holder: every step of a page checked against the log's
//! committed keys, the values stored as `DisclosureRecord`s, innsyn
//! answered from them, and the purge after five years.

use kobling_protocol::{
    disclosure::log::{LogMessage, LogPage},
    domain::transcript::DomainBody,
    group::WirePoint,
    innsyn::{seal_reply, InnsynRequest, SealedReply},
    messages::Message,
    refusal::{Refusal, RefusalCode},
    seal::HpkeSecretKey,
    share::Domain,
    types::{Name, UnixTime},
};

use super::DAY;
use crate::engine::{
    domain::append_in,
    error::{refuse, Outcome},
    Engine,
};

impl Engine {
    pub(in crate::engine) fn log_last_step(&mut self, page: &LogPage) -> Outcome<()> {
        let h = &page.header.header;
        let log = h.log.clone();
        let state = self.complete_domain(&log)?;
        let linker = self.manifest.linker().map(|l| l.name.clone());
        let log_keys: Vec<(Name, WirePoint)> = state
            .keys
            .iter()
            .filter(|(m, _)| Some(m) != linker.as_ref())
            .filter_map(|(m, k)| k.map(|k| (m.clone(), k)))
            .collect();
        let own = match h.holder_project_key {
            Some(_) => Some(self.keystore.share(&Domain::Project(h.project.clone()))?),
            None => None,
        };
        let sk = HpkeSecretKey::from_bytes(*self.keystore.x25519_secret_bytes());
        let values = page.finish(&log_keys, own.as_ref(), &sk).map_err(|e| {
            tracing::warn!(node = %self.me, project = %h.project, error = %e, "refused a disclosure log page");
            refuse(RefusalCode::Invalid, format!("disclosure log: {e}"))
        })?;
        let (me, manifest, signing) = (&self.me, &self.manifest, &self.signing);
        let linker = linker.ok_or_else(|| refuse(RefusalCode::Unexpected, "no linker"))?;
        let done = self.store.transaction(|tx| {
            let stored = tx.put_disclosure_page(&log, &h.project, page.page, h.day, &values)?;
            if stored != h.pages() {
                return Ok::<_, crate::engine::error::Refused>(false);
            }
            let held = tx.domain_entries(&log)?;
            let recorded = held.iter().any(|e| {
                matches!(&e.body, DomainBody::Disclosures { project, .. } if *project == h.project)
            });
            if !recorded {
                append_in(
                    tx,
                    manifest,
                    me,
                    signing,
                    &log,
                    held,
                    DomainBody::Disclosures {
                        project: h.project.clone(),
                        day: h.day,
                        size: h.size,
                    },
                    Vec::new(),
                )?;
            }
            let msg = Message::DisclosureLog(Box::new(LogMessage::Stored {
                project: h.project.clone(),
                log: log.clone(),
            }));
            tx.send_domain(&log, &linker, &msg)?;
            Ok(true)
        })?;
        if done {
            tracing::info!(node = %self.me, project = %h.project, %log, size = h.size, "an identified project's disclosures are in the log");
        }
        Ok(())
    }

    /// The records stored under `psi` in the log `domain`, sealed to the
    /// device key of `request`: the header `project,date`, then one line
    /// per identified project (none: an empty reply of the same size).
    pub(in crate::engine) fn seal_disclosure_records(
        &mut self,
        domain: &Name,
        request: &InnsynRequest,
        psi: &WirePoint,
    ) -> Outcome<Result<SealedReply, Refusal>> {
        let records = self.store.disclosure_records(domain, psi)?;
        let mut reply: Vec<Vec<String>> = Vec::with_capacity(records.len() + 1);
        if !records.is_empty() {
            reply.push(vec!["project".to_owned(), "date".to_owned()]);
        }
        for r in records {
            reply.push(vec![r.project.as_str().to_owned(), r.date()]);
        }
        Ok(seal_reply(request, &reply, &mut self.rng)
            .map_err(|e| Refusal::new(RefusalCode::TooLarge, e.to_string())))
    }

    /// The disclosure records this node (the log's holder) keeps under
    /// `pseudonym` in `domain`.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`](crate::engine::EngineError::Store).
    pub fn disclosure_records(
        &self,
        domain: &Name,
        pseudonym: &WirePoint,
    ) -> Result<Vec<kobling_protocol::disclosure::DisclosureRecord>, crate::engine::EngineError>
    {
        Ok(self.store.disclosure_records(domain, pseudonym)?)
    }

    /// Every value this node (the log's holder) keeps in `domain`, one per
    /// record: padding included.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`](crate::engine::EngineError::Store).
    pub fn disclosure_values(
        &self,
        domain: &Name,
    ) -> Result<Vec<WirePoint>, crate::engine::EngineError> {
        Ok(self.store.disclosure_values(domain)?)
    }

    /// Whether `domain` is the federation's disclosure log.
    pub(in crate::engine) fn is_disclosure_log(&self, domain: &Name) -> bool {
        self.manifest
            .disclosure_log()
            .is_some_and(|d| d.name == *domain)
    }

    /// The log's holder purges records past their retention (never one
    /// younger than five years).
    pub(in crate::engine) fn purge_disclosure_log(&mut self, now: UnixTime) -> Outcome<()> {
        let Some(spec) = self.manifest.disclosure_log() else {
            return Ok(());
        };
        if spec.holder != self.me {
            return Ok(());
        }
        let today = u32::try_from(now.0 / DAY).unwrap_or(u32::MAX);
        let n = self
            .store
            .transaction(|tx| tx.purge_disclosure_records(today))?;
        if n > 0 {
            tracing::info!(node = %self.me, purged = n, "disclosure records past their five years purged");
        }
        Ok(())
    }
}
