//! The disclosure log (PROTOCOL.md §10a, issue 16 item 3): before an
//! identified project that delivered is closed, its delivered persons'
//! pseudonyms go into the federation's log domain, padded to the number of
//! linked persons; the log's holder keeps one `DisclosureRecord` per value
//! for at least five years and answers innsyn with them.
//!
//! ```text
//!  linker   close / expiry of an identified, delivered project ─▶ LogBeforeClose (no closure yet)
//!           tick: padded_list(delivered P_p, linked) ─▶ ·β·k_{L,log}·k_{L,p}⁻¹ ─▶ pages ─▶ hop 1 (LogSent)
//!  hop i    ◀─ page: the linker's header signature, every earlier step ─▶ its step ─▶ hop i+1 / holder
//!  holder   ◀─ page: every step against the log's committed keys, ·k_{H,p}⁻¹·β⁻¹ ─▶ records;
//!           the last page: `Disclosures` in the log's transcript ─▶ Stored ─▶ linker
//!  linker   ◀─ Stored (from the holder) ─▶ the closure; then every node shreds
//! ```
//!
//! No value the linker or a hop sends, receives or keeps is `Ψ_log`: each
//! carries `β`, which only the holder opens. The padded size is fixed by
//! the linkage (every list's distinct final points), not by the cohort.

use std::collections::BTreeSet;

use kobling_protocol::{
    bounded::BoundedString,
    disclosure::{
        log::{linker_pages, log_hops, seal_log_blinding, LogHeader, LogHop, LogMessage, LogPage},
        padded_list,
    },
    domain::{key_registers, DomainKind},
    group::WirePoint,
    manifest::Role,
    messages::Message,
    project::{Phase, ProjectView, Step},
    refusal::RefusalCode,
    seal::HpkePublicKey,
    share::{Domain, Share},
    transcript::{Body, Closure},
    types::{Name, ProjectId, UnixTime},
};

use super::{
    error::{ack, bounded, not_ready, refuse, Outcome},
    Engine, Peer, Replies,
};

/// Seconds per day.
const DAY: u64 = 86_400;

/// Whether a project's closure goes through the disclosure log: an
/// identified project that delivered.
pub(super) fn logs_before_closure(view: &ProjectView<'_>) -> bool {
    view.order().is_some_and(|o| o.identified.is_some()) && view.phase() == Phase::Delivered
}

mod holder;

impl Engine {
    /// The linker, asked to close `project` (`logs`: [`logs_before_closure`]
    /// of its view): whether the closure must wait for the disclosure log
    /// (an identified project that delivered, in a federation with a log).
    /// If so the wait is recorded and the tick sends the list; the closure
    /// follows when the holder stored it.
    pub(super) fn closure_waits_for_log(
        &mut self,
        project: &ProjectId,
        logs: bool,
    ) -> Outcome<bool> {
        if !logs {
            return Ok(false);
        }
        if self.manifest.disclosure_log().is_none() {
            tracing::error!(node = %self.me, %project, "an identified project is closed without a disclosure log: the manifest declares none");
            return Ok(false);
        }
        self.store
            .transaction(|tx| tx.mark(project, Step::LogBeforeClose))?;
        Ok(true)
    }

    /// The linker's tick for a project whose closure waits for the log:
    /// sends the padded list once.
    pub(super) fn log_tick(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        now: UnixTime,
    ) -> Outcome<()> {
        if self.role != Role::Linker || view.phase() == Phase::Closed {
            return Ok(());
        }
        let (waits, sent) = self.store.transaction(|tx| {
            Ok::<_, super::error::Refused>((
                tx.marked(project, Step::LogBeforeClose)?,
                tx.marked(project, Step::LogSent)?,
            ))
        })?;
        if !waits || sent {
            return Ok(());
        }
        self.send_log(project, view, now)
    }

    fn send_log(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        now: UnixTime,
    ) -> Outcome<()> {
        let manifest = self.manifest.clone();
        let Some(spec) = manifest.disclosure_log() else {
            return Ok(());
        };
        let order = view.order().ok_or_else(|| not_ready("no order"))?;
        let log = spec.name.clone();
        let state = self.complete_domain(&log)?;
        let (_, linkage, finals) = self.linkage(project, view)?;
        let mut delivered = BTreeSet::new();
        for sel in &linkage.lists {
            let points = finals.get(&sel.list).map_or(&[][..], Vec::as_slice);
            for (pos, _) in &sel.selected {
                if let Some(p) = usize::try_from(pos.0).ok().and_then(|i| points.get(i)) {
                    delivered.insert(p.0);
                }
            }
        }
        let linked: BTreeSet<[u8; 32]> = finals.values().flatten().map(|p| p.0).collect();
        let delivered: Vec<WirePoint> = delivered.into_iter().map(WirePoint).collect();
        let size = linked.len() as u64;
        let padded = padded_list(&delivered, size, &mut self.rng)
            .map_err(|e| refuse(RefusalCode::Link, e.to_string()))?;
        let registers = key_registers(&manifest, order);
        let log_keys: Vec<(Name, WirePoint)> = state
            .keys
            .iter()
            .filter_map(|(m, k)| k.map(|k| (m.clone(), k)))
            .collect();
        let hops: Vec<LogHop> = log_hops(&manifest, &registers, &log)
            .into_iter()
            .map(|m| LogHop {
                project_key: registers
                    .contains(&m)
                    .then(|| view.commitment(&m))
                    .flatten(),
                log_key: log_keys.iter().find(|(n, _)| *n == m).map(|(_, k)| *k),
                member: m,
            })
            .collect();
        let holder = spec.holder.clone();
        let holder_key = manifest
            .member(&holder)
            .and_then(|m| HpkePublicKey::from_bytes(m.hpke_key.0).ok())
            .ok_or_else(|| refuse(RefusalCode::Unexpected, "the log's holder has no HPKE key"))?;
        let beta = Share::random(&mut self.rng);
        let blinding = seal_log_blinding(&holder_key, project, &log, &beta, &mut self.rng);
        let header = LogHeader {
            project: project.clone(),
            log: log.clone(),
            day: u32::try_from(now.0 / DAY).unwrap_or(u32::MAX),
            size,
            hops: bounded(hops)?,
            holder_project_key: registers
                .contains(&holder)
                .then(|| view.commitment(&holder))
                .flatten(),
            blinding,
        }
        .sign(&self.signing);
        let project_share = self.keystore.share(&Domain::Project(project.clone()))?;
        let log_share = self.keystore.share(&Domain::Register(log.clone()))?;
        let pages = linker_pages(&padded, &project_share, &log_share, &beta)
            .map_err(|e| refuse(RefusalCode::Invalid, e.to_string()))?;
        let mut messages = Vec::with_capacity(pages.len());
        for (i, start) in pages.into_iter().enumerate() {
            let page = LogPage {
                header: header.clone(),
                page: i as u64,
                start: bounded(start)?,
                steps: Default::default(),
            };
            let next = page.next(&holder).clone();
            messages.push((
                next,
                Message::DisclosureLog(Box::new(LogMessage::Page(Box::new(page)))),
            ));
        }
        self.store.transaction(|tx| {
            for (next, msg) in &messages {
                tx.send_domain(&log, next, msg)?;
            }
            tx.mark(project, Step::LogSent).map(drop)
        })?;
        tracing::info!(node = %self.me, %project, %log, size, "the identified project's padded list goes into the disclosure log");
        Ok(())
    }

    /// A disclosure log message from a member.
    pub(super) fn disclosure_log(
        &mut self,
        from: &Peer,
        msg: &LogMessage,
        now: UnixTime,
    ) -> Outcome<Replies> {
        let Peer::Member(sender) = from else {
            return Err(refuse(
                RefusalCode::Unexpected,
                "disclosure log pages come from members",
            ));
        };
        let log_of = |log: &Name| {
            self.manifest
                .domain(log)
                .filter(|d| d.kind == DomainKind::DisclosureLog)
                .cloned()
                .ok_or_else(|| {
                    refuse(
                        RefusalCode::WrongRegister,
                        format!("the manifest declares no disclosure log domain {log}"),
                    )
                })
        };
        match msg {
            LogMessage::Stored { project, log } => {
                let spec = log_of(log)?;
                if self.role != Role::Linker || *sender != spec.holder {
                    return Err(refuse(
                        RefusalCode::Unexpected,
                        "only the log's holder tells the linker a list is stored",
                    ));
                }
                self.log_stored(project, log, now)?;
            }
            LogMessage::Page(page) => {
                let h = &page.header.header;
                let spec = log_of(&h.log)?;
                let linker = self
                    .manifest
                    .linker()
                    .ok_or_else(|| refuse(RefusalCode::Unexpected, "no linker"))?;
                page.header
                    .check(&linker.signing_key)
                    .map_err(|e| refuse(RefusalCode::Invalid, e.to_string()))?;
                let at = page.steps.len();
                let expected = if at == 0 {
                    &linker.name
                } else {
                    &h.hops[at - 1].member
                };
                if sender != expected {
                    return Err(refuse(
                        RefusalCode::Unexpected,
                        format!("step {} of the disclosure log list comes from {expected}, not {sender}", at + 1),
                    ));
                }
                if spec.holder == self.me {
                    self.log_last_step(page)?;
                } else {
                    self.log_hop_step(page, &spec.holder)?;
                }
            }
        }
        Ok(vec![ack()].into())
    }

    fn log_hop_step(&mut self, page: &LogPage, holder: &Name) -> Outcome<()> {
        let h = &page.header.header;
        let hop = h
            .hops
            .get(page.steps.len())
            .filter(|hop| hop.member == self.me)
            .ok_or_else(|| {
                refuse(
                    RefusalCode::Unexpected,
                    format!("this step of the disclosure log list is not {}'s", self.me),
                )
            })?;
        let project_share = match hop.project_key {
            Some(_) => Some(self.keystore.share(&Domain::Project(h.project.clone()))?),
            None => None,
        };
        let log_share = match hop.log_key {
            Some(_) => Some(self.keystore.share(&Domain::Register(h.log.clone()))?),
            None => None,
        };
        let step = page
            .step(
                &self.me,
                project_share.as_ref(),
                log_share.as_ref(),
                &mut self.rng,
            )
            .map_err(|e| {
                tracing::warn!(node = %self.me, project = %h.project, error = %e, "refused a disclosure log page");
                refuse(RefusalCode::Invalid, format!("disclosure log: {e}"))
            })?;
        let next = page
            .with_step(step)
            .map_err(|e| refuse(RefusalCode::TooLarge, e.to_string()))?;
        let dest = next.next(holder).clone();
        let msg = Message::DisclosureLog(Box::new(LogMessage::Page(Box::new(next))));
        self.store
            .transaction(|tx| tx.send_domain(&h.log, &dest, &msg))?;
        tracing::info!(node = %self.me, project = %h.project, page = page.page, %dest, "stepped a disclosure log page");
        Ok(())
    }

    /// The linker: the holder stored the list; the closure that waited is
    /// recorded now (every node then shreds).
    fn log_stored(&mut self, project: &ProjectId, log: &Name, now: UnixTime) -> Outcome<()> {
        let sent = self
            .store
            .transaction(|tx| tx.marked(project, Step::LogSent))?;
        if !sent {
            return Err(refuse(
                RefusalCode::Unexpected,
                "no disclosure log list of this project was sent",
            ));
        }
        let reason =
            BoundedString::new(format!("closed; its disclosures are recorded in log {log}"))
                .unwrap_or_default();
        self.publish_once(project, Step::Close, Body::Closure(Closure { reason }), now)?;
        tracing::info!(node = %self.me, %project, %log, "the disclosure log holds the project's list; the project is closed");
        Ok(())
    }
}
