//! A project's life at a node: the tick that performs this node's duties
//! (commit, announce, link, close at expiry, shred), and the clients'
//! requests about a project (status, close).

use kobling_protocol::{
    bounded::BoundedString,
    manifest::Role,
    messages::{Action, Message, SignedRequest},
    project::{Duty, Phase, ProjectView, Step},
    refusal::RefusalCode,
    sequencer,
    share::Domain,
    transcript::{Body, Closure, Entry, ProjectOrder, Shredded},
    types::{ProjectId, UnixTime},
};

use super::{
    error::{ack, bounded, refuse, EngineError, Outcome, Refused},
    Engine,
};

/// The one answer to a client request about a project that does not exist
/// here, or that the client may not see: the same whatever exists, so a
/// stranger learns nothing from it.
fn no_such_project() -> Refused {
    refuse(
        RefusalCode::NotAllowed,
        "no such project, or this key may not ask about it",
    )
}

impl Engine {
    /// Performs this node's duties in every project that still has any.
    ///
    /// # Errors
    ///
    /// An [`EngineError`]; refusals of a duty are logged and retried.
    pub fn tick(&mut self, now: UnixTime) -> Result<(), EngineError> {
        for project in self.store.projects()? {
            if !self.finished.contains(&project) {
                self.tick_project(&project, now)?;
            }
        }
        self.tick_domains()?;
        if let Err(Refused::Engine(e)) = self.purge_disclosure_log(now) {
            return Err(e);
        }
        Ok(())
    }

    /// Performs this node's duties in `project`.
    ///
    /// # Errors
    ///
    /// As [`tick`](Self::tick).
    pub fn tick_project(&mut self, project: &ProjectId, now: UnixTime) -> Result<(), EngineError> {
        let manifest = self.manifest.clone();
        let entries = self.store.entries(project)?;
        let notice = self.store.notice(project)?.map(|n| n.notice.phase);
        let view = ProjectView::new(&manifest, &entries).with_notice(notice);
        let ordered = entries
            .first()
            .map_or(UnixTime::EPOCH, |e| e.signed.statement.time);
        if sequencer::forgotten(&view, self.role, ordered, now) {
            return self.forget(project);
        }
        // A register never holds the shredding entries (they follow the
        // closure): it is finished once it shredded itself.
        let shredded_here = self.role == Role::Register
            && view.phase() == Phase::Closed
            && self
                .store
                .transaction(|tx| tx.marked(project, Step::Shred))?;
        if view.order().is_some() && (view.finished_for(&self.me) || shredded_here) {
            self.finished.insert(project.clone());
            return Ok(());
        }
        if self.role == Role::Linker {
            let expired = self.expire(project, &view, now);
            self.log_duty(project, expired, "could not close an expired project")?;
            let logged = self.log_tick(project, &view, now);
            self.log_duty(
                project,
                logged,
                "the disclosure log could not be written yet",
            )?;
        } else {
            let held = self.holder_tick(project, &view, now);
            self.log_duty(
                project,
                held,
                "a received delivery's closure could not be asked for",
            )?;
        }
        for duty in view.duties(&self.me) {
            let done = match duty {
                Duty::Commit => self.commit_keys(project, &view, now),
                Duty::AnnounceList { extract } | Duty::StreamList { extract } => {
                    self.announce(project, &view, extract, now)
                }
                Duty::Link => match self.link(project, &view, now) {
                    Err(Refused::Refusal(r)) if r.code == RefusalCode::Link => {
                        self.linkage_failed(project, &r.detail, now)
                    }
                    done => done,
                },
                Duty::Deliver if view.delivery_plan().is_some() => {
                    self.push_delivery(project, &view, now)
                }
                Duty::Shred => self.shred(project, now),
                Duty::Pass { list, attempt } => self.start_pass(project, &view, &list, attempt),
                Duty::Resend { list, attempt } => self.resend_list(project, &view, &list, attempt),
                _ => Ok(()),
            };
            self.log_duty(project, done, "a duty could not be done yet")?;
        }
        Ok(())
    }

    fn log_duty(
        &self,
        project: &ProjectId,
        done: Outcome<()>,
        what: &str,
    ) -> Result<(), EngineError> {
        match done {
            Ok(()) => Ok(()),
            Err(Refused::Engine(e)) => Err(e),
            Err(Refused::Refusal(r)) => {
                tracing::warn!(node = %self.me, %project, code = r.code.as_str(), detail = %r.detail, "{what}");
                Ok(())
            }
        }
    }

    /// A client's signed request about a project, checked in the order
    /// that leaks nothing: its freshness, target node, manifest and
    /// signature first (no state read), then whether the project exists
    /// here and the key may ask (`allowed`), with one answer for both;
    /// last, that it was not taken before (it is remembered).
    fn client_request(
        &mut self,
        req: &SignedRequest,
        action: Action,
        now: UnixTime,
        allowed: impl Fn(&ProjectOrder) -> bool,
    ) -> Outcome<Vec<Entry>> {
        req.check(now, &self.me, &self.manifest_digest)
            .map_err(super::approval::request_refusal)?;
        if req.request.action != action {
            return Err(refuse(
                RefusalCode::BadRequest,
                "the request is for another action",
            ));
        }
        let entries = self.store.entries(&req.request.project)?;
        let view = ProjectView::new(&self.manifest, &entries);
        match view.order() {
            Some(order) if allowed(order) => {}
            _ => return Err(no_such_project()),
        }
        self.remember_request(req, now)?;
        Ok(entries)
    }

    /// A request only the project's researcher may make.
    pub(super) fn researcher_request(
        &mut self,
        req: &SignedRequest,
        action: Action,
        now: UnixTime,
    ) -> Outcome<Vec<Entry>> {
        let manifest = self.manifest.clone();
        let closing = action == Action::Close;
        self.client_request(req, action, now, |order| {
            if order.delivery.is_some() {
                // A delivery is closed by its holder's node once received
                // (or withdrawn by the source's operator who ordered it);
                // nobody fetches it.
                let holder = kobling_protocol::receipt::DeliveryPlan::new(&manifest, order)
                    .ok()
                    .and_then(|p| manifest.member(&p.spec.holder).map(|m| m.signing_key));
                return closing
                    && (Some(req.key) == holder || req.key == order.researcher_signing_key);
            }
            req.key == order.researcher_signing_key
        })
    }

    /// The project's transcript, for its researcher and its registers'
    /// operators: the researcher (at the linker) gets the whole signed
    /// transcript; a register's operators get what registers hold, the
    /// transcript's register prefix and the phase notice (issue 12 item 1:
    /// nothing written after the lists were verified, no counts).
    pub(super) fn status(&mut self, req: &SignedRequest, now: UnixTime) -> Outcome<Vec<Message>> {
        let manifest = self.manifest.clone();
        let researcher = std::cell::Cell::new(false);
        let entries = self.client_request(req, Action::Status, now, |order| {
            researcher.set(req.key == order.researcher_signing_key);
            researcher.get()
                || kobling_protocol::domain::member_registers(&manifest, order)
                    .iter()
                    .any(|r| manifest.is_operator_of(r, &req.key))
        })?;
        let project = req.request.project.clone();
        if self.role == Role::Linker && researcher.get() {
            return Ok(vec![self.transcript_file(&project)?]);
        }
        let (held, notice) = if self.role == Role::Linker {
            let view = ProjectView::new(&self.manifest, &entries);
            let (held, notice) = sequencer::redacted_status(&view, &entries, &self.signing);
            (held.to_vec(), notice)
        } else {
            (entries, self.store.notice(&project)?)
        };
        let mut replies = vec![Message::Entries {
            project,
            first: 0,
            entries: bounded(held)?,
        }];
        replies.extend(notice.map(Message::Notice));
        Ok(replies)
    }

    /// The researcher closes the project (linker).
    pub(super) fn close(&mut self, req: &SignedRequest, now: UnixTime) -> Outcome<Vec<Message>> {
        let project = req.request.project.clone();
        let entries = self.researcher_request(req, Action::Close, now)?;
        let view = ProjectView::new(&self.manifest, &entries);
        if view.phase() == Phase::Closed {
            return Ok(vec![ack()]);
        }
        if !view.approved_by_anyone() {
            // Withdrawn before any approval: only the linker holds it, and
            // nothing of it is kept (the id can be ordered again).
            self.forget(&project)?;
            return Ok(vec![ack()]);
        }
        let logs = super::disclosure_log::logs_before_closure(&view);
        if self.closure_waits_for_log(&project, logs)? {
            // Closed once the disclosure log holds its list (PROTOCOL.md §10a).
            return Ok(vec![ack()]);
        }
        let reason = BoundedString::new("closed at the researcher's request").unwrap_or_default();
        self.publish_once(
            &project,
            Step::Close,
            Body::Closure(Closure { reason }),
            now,
        )?;
        tracing::info!(node = %self.me, %project, "project closed");
        Ok(vec![ack()])
    }

    /// The linker closes a project whose order has expired: the closure
    /// is recorded like a researcher's, and every node shreds its key and
    /// deletes the project's working data (the transcript stays). (An
    /// order no operator approved is forgotten instead, after
    /// [`sequencer::UNAPPROVED_LIFETIME`] at the latest: [`Engine::forget`].)
    fn expire(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        now: UnixTime,
    ) -> Outcome<()> {
        let Some(order) = view.order() else {
            return Ok(());
        };
        if view.phase() == Phase::Closed || !view.approved_by_anyone() {
            return Ok(());
        }
        if now < order.expires
            || self
                .closure_waits_for_log(project, super::disclosure_log::logs_before_closure(view))?
        {
            return Ok(());
        }
        let reason = BoundedString::new("the project expired").unwrap_or_default();
        self.publish_once(project, Step::Close, Body::Closure(Closure { reason }), now)?;
        tracing::info!(node = %self.me, %project, "project expired and closed");
        Ok(())
    }

    /// Forgets a project whose order no operator approved
    /// ([`sequencer::forgotten`]): its transcript copy, its id and every
    /// row about it (queued messages, steps, approvals taken here, extract
    /// paths, notices) are deleted in one transaction, and the project is
    /// no longer ticked. No key share was accepted for it (the linker
    /// commits only after an approval; a register after two), so nothing
    /// is shredded and no tombstone is left: the id can be ordered again.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`], or the keystore's failure for a share
    /// accepted by an older version of the node (shredded).
    pub(super) fn forget(&mut self, project: &ProjectId) -> Result<(), EngineError> {
        self.jobs.remove(project);
        self.finished.remove(project);
        let domain = Domain::Project(project.clone());
        if self.keystore.domain_status(&domain)? == kobling_keys::DomainStatus::Accepted {
            self.keystore.shred(&domain)?;
        }
        self.store.transaction(|tx| tx.forget_project(project))?;
        tracing::info!(node = %self.me, %project, "an order no operator approved is forgotten: its transcript and rows are deleted");
        Ok(())
    }

    /// A linkage that cannot succeed (a list repeats a pseudonym, two
    /// persons share an lnr): the lists are in the transcript and cannot
    /// be sent again, so the linker records the failure once, naming the
    /// list, as the project's closure, and every node shreds. It is not
    /// retried on every tick.
    fn linkage_failed(&mut self, project: &ProjectId, detail: &str, now: UnixTime) -> Outcome<()> {
        tracing::error!(node = %self.me, %project, %detail, "the linkage failed; the project is closed");
        let reason: String = format!("linkage failed: {detail}")
            .chars()
            .take(kobling_protocol::transcript::MAX_TEXT)
            .collect();
        let reason = BoundedString::new(reason).unwrap_or_default();
        self.publish_once(project, Step::Close, Body::Closure(Closure { reason }), now)
    }

    /// Shreds this node's key share of a closed project and deletes its
    /// working data; records the shredding.
    fn shred(&mut self, project: &ProjectId, now: UnixTime) -> Outcome<()> {
        // A list still being prepared is dropped (the job stops).
        self.jobs.remove(project);
        let entries = self.store.entries(project)?;
        let view = ProjectView::new(&self.manifest, &entries);
        let domain = super::delivery_run::key_domain(&view, project);
        // A delivery's key domain is a register domain's, long-lived: only
        // the delivery's working data goes, and only R's key holders record
        // it (a source without a share has nothing to record).
        let plan = view.delivery_plan();
        if !self
            .store
            .transaction(|tx| tx.marked(project, Step::Shred))?
        {
            if plan.is_none() {
                self.keystore.shred(&domain)?;
            }
            self.store
                .transaction(|tx| tx.delete_working_data(project))?;
            tracing::info!(node = %self.me, %project, "project key shredded, working data deleted");
        }
        if plan.is_some_and(|p| !p.commits(&self.me)) {
            return Ok(self
                .store
                .transaction(|tx| tx.mark(project, Step::Shred).map(drop))?);
        }
        let body = Body::Shredded(Shredded {
            member: self.me.clone(),
            domain,
        });
        self.publish_once(project, Step::Shred, body, now)
    }
}
