//! Dispatch: one message in, its replies out. The message is authorised
//! by kind and sender (`project::authorise`), admitted against its
//! project's state (`ProjectView::admit`), and handled by this node's
//! role, once; refusals become [`Message::Refused`] replies.

use kobling_protocol::{
    manifest::Role,
    messages::{Message, SignedRequest, PROTOCOL_VERSION},
    project::{authorise, subject, ProjectView},
    refusal::{Refusal, RefusalCode},
    transcript::{Entry, SignedStatement},
    types::UnixTime,
};

use super::{
    approval::{ExtractFile, Taken},
    error::{ack, refuse, Outcome, Refused},
    Engine, EngineError, Peer, Replies,
};

impl Engine {
    /// Handles one message from `from`; returns the replies, all in hand.
    ///
    /// # Errors
    ///
    /// An [`EngineError`] for internal failures; refusals of the message
    /// are replies.
    pub fn handle(
        &mut self,
        from: &Peer,
        msg: Message,
        now: UnixTime,
    ) -> Result<Vec<Message>, EngineError> {
        Ok(self.handle_streamed(from, msg, now)?.collect())
    }

    /// Handles one message from `from`; returns the replies, of which a
    /// large delivery is read from a spool file one message at a time as
    /// the transport takes them.
    ///
    /// # Errors
    ///
    /// As [`handle`](Self::handle).
    pub fn handle_streamed(
        &mut self,
        from: &Peer,
        msg: Message,
        now: UnixTime,
    ) -> Result<Replies, EngineError> {
        let kind = msg.kind();
        let result = self.admit_and_handle(from, msg, now);
        self.respond(from, kind, result)
    }

    /// Handles an operator's approval whose extract the daemon already
    /// read outside the engine's lock ([`ApprovalDesk`]).
    ///
    /// # Errors
    ///
    /// As [`handle`](Self::handle).
    pub fn handle_approval(
        &mut self,
        from: &Peer,
        statement: SignedStatement,
        request: SignedRequest,
        order: Entry,
        file: Result<ExtractFile, Refusal>,
        now: UnixTime,
    ) -> Result<Replies, EngineError> {
        let msg = Message::Approve {
            statement,
            request: Box::new(request),
            order: Box::new(order),
        };
        let result = self.admit(from, &msg).and_then(|()| match msg {
            Message::Approve {
                statement,
                request,
                order,
            } => self
                .approve(statement, &request, &order, file, now)
                .map(Replies::from),
            other => Err(unexpected(&other)),
        });
        self.respond(from, "Approve", result)
    }

    pub(super) fn respond(
        &self,
        from: &Peer,
        kind: &str,
        result: Outcome<Replies>,
    ) -> Result<Replies, EngineError> {
        match result {
            Ok(replies) => Ok(replies),
            Err(Refused::Refusal(r)) => {
                tracing::info!(node = %self.me, from = from.label(), kind, code = r.code.as_str(), detail = %r.detail, "refused a message");
                Ok(Replies::from(vec![r.into_message()]))
            }
            Err(Refused::Engine(e)) => Err(e),
        }
    }

    /// Authorises `msg` by kind and sender, then admits it against its
    /// project's state.
    fn admit(&self, from: &Peer, msg: &Message) -> Outcome<()> {
        authorise(&self.manifest, &self.me, from, msg)?;
        if let Some(project) = subject(msg) {
            let entries = self.store.entries(project)?;
            let notice = self.notified(project)?;
            ProjectView::new(&self.manifest, &entries)
                .with_notice(notice)
                .admit(msg, from)?;
        }
        Ok(())
    }

    fn admit_and_handle(&mut self, from: &Peer, msg: Message, now: UnixTime) -> Outcome<Replies> {
        if kobling_protocol::domain::wire::is_domain_message(&msg) {
            return self.domain_handles(from, msg, now);
        }
        if let Message::Innsyn(signed) = &msg {
            return self.innsyn(from, signed, now);
        }
        if let Message::InnsynSteps(steps) = &msg {
            return self.innsyn_steps(from, steps, now);
        }
        if let Message::DisclosureLog(log) = &msg {
            return self.disclosure_log(from, log, now);
        }
        self.admit(from, &msg)?;
        match self.role {
            Role::Linker => self.linker_handles(from, msg, now),
            Role::Register => self.register_handles(from, msg, now),
        }
    }

    /// The linker's messages (authorised by kind and sender already).
    fn linker_handles(&mut self, from: &Peer, msg: Message, now: UnixTime) -> Outcome<Replies> {
        let replies = match (msg, from) {
            (Message::Hello { version }, _) => hello(version)?,
            (Message::SubmitOrder(signed), _) => self.submit_order(signed, now)?,
            (Message::Statement(signed), Peer::Member(m)) => self.record(m, signed)?,
            (
                Message::Blinding {
                    project,
                    list,
                    sealed,
                },
                _,
            ) => self.store_blinding(&project, &list, &sealed, now)?,
            (
                Message::SealedItems {
                    project,
                    list,
                    first,
                    items,
                },
                _,
            ) => self.store_sealed(&project, &list, first, items.into_inner())?,
            (Message::Points(chunk), Peer::Member(m)) => self.points(m, chunk)?,
            (Message::ChunkV2 { project, chunk }, Peer::Member(_)) => {
                self.chunk_v2(&project, chunk)?
            }
            (Message::PassV2 { project, pass }, Peer::Member(_)) => self.pass_v2(&project, pass)?,
            (Message::ResearcherList(part), Peer::Client) => self.researcher_list(*part)?,
            (Message::Fetch(req), _) => return self.fetch(&req, now),
            (Message::Close(req), _) => self.close(&req, now)?,
            (Message::Status(req), _) => self.status(&req, now)?,
            (other, _) => return Err(unexpected(&other)),
        };
        Ok(replies.into())
    }

    /// A register's messages (authorised by kind and sender already).
    fn register_handles(&mut self, from: &Peer, msg: Message, now: UnixTime) -> Outcome<Replies> {
        let replies = match (msg, from) {
            (Message::Hello { version }, _) => hello(version)?,
            (
                Message::Entries {
                    project,
                    first,
                    entries,
                },
                _,
            ) => self.receive_entries(&project, first, entries.into_inner())?,
            (
                Message::Approve {
                    statement,
                    request,
                    order,
                },
                _,
            ) => {
                let desk = self.approval_desk();
                let name = desk.authenticate(&statement, &request, now)?;
                let file = match self.take_approval(&statement, &request, now)? {
                    Taken::Seen => return Ok(vec![ack()].into()),
                    Taken::Refused(r) => Err(r),
                    Taken::New => desk.read(&name),
                };
                self.approve(statement, &request, &order, file, now)?
            }
            (Message::Points(chunk), Peer::Member(m)) => self.points(m, chunk)?,
            (Message::ChunkV2 { project, chunk }, Peer::Member(_)) => {
                self.chunk_v2(&project, chunk)?
            }
            (Message::PassV2 { project, pass }, Peer::Member(_)) => self.pass_v2(&project, pass)?,
            (Message::Status(req), _) => self.status(&req, now)?,
            (Message::Notice(notice), _) => self.receive_notice(&notice)?,
            // Hop 1 of an identified project's researcher list: β₂,
            // relayed by the linker.
            (
                Message::SecondBlinding {
                    project,
                    list,
                    sealed,
                },
                Peer::Member(_),
            ) => self.second_blinding(&project, &list, &sealed)?,
            // A delivery into a domain this node holds (`delivery_run`).
            (
                Message::Blinding {
                    project,
                    list,
                    sealed,
                },
                Peer::Member(_),
            ) => self.delivery_blinding(&project, &list, &sealed)?,
            (Message::TranscriptFile { bytes }, Peer::Member(_)) => {
                self.holder_transcript(&bytes)?
            }
            (Message::DeliveryHeader { project, list, .. }, Peer::Member(_)) => {
                self.holder_header(&project, &list)?
            }
            (
                Message::DeliveryItems {
                    project,
                    list,
                    items,
                    proof,
                },
                Peer::Member(_),
            ) => self.holder_items(&project, &list, &items, &proof, now)?,
            (other, _) => return Err(unexpected(&other)),
        };
        Ok(replies.into())
    }
}
fn hello(version: u16) -> Outcome<Vec<Message>> {
    if version == PROTOCOL_VERSION {
        Ok(vec![ack()])
    } else {
        Err(refuse(
            RefusalCode::Version,
            format!("protocol version {version} is not supported"),
        ))
    }
}

pub(super) fn unexpected(msg: &Message) -> Refused {
    kobling_protocol::project::unexpected(msg).into()
}
