//! The node's core: what a register or linker node does with each message
//! and on each tick, independent of the transport.
//!
//! ```text
//!   transport (QUIC, or the in-memory harness in tests)
//!        │ handle(from, message, now) → replies          ▲ outbox(): (id, dest, message)
//!        ▼                                               │ acked(id)
//!   Engine ── ProjectView::duties(me) ──▶ commit, announce, step chunks, link, deliver, shred
//!        │
//!        └── Store (SQLite): transcript copy, hop records, outbox, linker data
//! ```
//!
//! The step order comes from [`ProjectView::duties`] over the project's
//! transcript; the linker verifies every statement (whole transcript,
//! [`transcript::verify`]) before it appends it, and registers verify the
//! entries they receive. Every state change commits in one transaction
//! with the messages it produces, so a node killed at any point continues
//! from its last commit: verified chunks are not redone, and a chunk sent
//! twice is acknowledged without being processed again.
//!
//! Refusals are answered with [`Message::Refused`]: code `not-ready` means
//! "send it again later" (e.g. a chunk that arrives before the list's
//! announcement reached this node); any other code is final.

use std::{collections::BTreeMap, sync::Arc};

use ed25519_dalek::SigningKey;
use kobling_keys::{Keystore, KeystoreError};
use kobling_protocol::rng::ErasingRng;
use kobling_protocol::{
    bounded::{BoundedBytes, BoundedString, BoundedVec},
    delivery::{deliver_item, selection_digest, DeliveredItem, ListDeliverySource},
    group::WirePoint,
    hop::{points_root, Hop, LinkerKeys, ListContext, DEFAULT_CHUNK_SIZE},
    ident::ParseOptions,
    link::{link, Cohort, Linkage},
    manifest::{Manifest, Role},
    merkle::{leaf_hash, MerkleTree},
    messages::{Action, Message, SignedRequest, MAX_ITEMS_PER_MESSAGE},
    project::{Duty, ProjectView},
    seal::{open_blinding, HpkePublicKey, HpkeSecretKey, SealedItem, WrappedKey},
    share::Domain,
    transcript::{
        self, Body, ChunkRecord, Closure, DeliveredList, DeliveryRecord, Entry, KeyCommitment,
        LinkSummary, LinkedList, Shredded, SignedStatement, Signer, Statement, Trailer,
    },
    types::{Digest, Name, Position, ProjectId},
};
use rand_core::Rng;
use zeroize::Zeroizing;

use crate::{
    prepare::{JobError, JobState, ListJob, PreparedList, RETRY_AFTER_SECONDS},
    staging::Staging,
    store::{LinkerTable, Store, StoreError, Tx},
};

/// A handler's replies: some in hand, then perhaps many more read back one
/// at a time from a spool file (a large delivery), which is removed when
/// the replies are dropped.
pub(crate) struct Replies {
    now: std::collections::VecDeque<Message>,
    /// The spool and the id of the last message read from it.
    spool: Option<(Staging, i64)>,
}

impl From<Vec<Message>> for Replies {
    fn from(v: Vec<Message>) -> Self {
        Self {
            now: v.into(),
            spool: None,
        }
    }
}

impl Iterator for Replies {
    type Item = Message;

    fn next(&mut self) -> Option<Message> {
        if let Some(m) = self.now.pop_front() {
            return Some(m);
        }
        let (spool, last) = self.spool.as_mut()?;
        let read = spool.queued_after(*last).and_then(|next| {
            next.map(|(id, bytes)| {
                *last = id;
                kobling_protocol::messages::decode(&bytes)
                    .map_err(|_| StoreError::Corrupt("spooled reply"))
            })
            .transpose()
        });
        match read {
            Ok(Some(m)) => Some(m),
            Ok(None) => {
                self.spool = None;
                None
            }
            Err(e) => {
                // The recipient sees a delivery shorter than its headers
                // announce, and asks again.
                tracing::error!(error = %e, "a spooled reply could not be read; the rest is not sent");
                self.spool = None;
                None
            }
        }
    }
}

/// Who sent a message: a manifest member (authenticated by its pinned TLS
/// certificate), or a client (researcher, operator) whose messages carry
/// their own signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Peer {
    /// A federation member.
    Member(Name),
    /// A client.
    Client,
}

impl Peer {
    /// The member's name, or `client`, for log lines.
    pub(crate) fn label(&self) -> &str {
        match self {
            Peer::Member(n) => n.as_str(),
            Peer::Client => "client",
        }
    }
}

/// An internal failure (not a refusal of the peer's message).
#[derive(Debug, thiserror::Error)]
pub(crate) enum EngineError {
    /// The state database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The keystore.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// Something the node cannot continue from.
    #[error("{0}")]
    Internal(String),
}

/// A refusal: a stable code and a detail (never an identifier).
#[derive(Debug)]
struct Refusal {
    code: &'static str,
    detail: String,
}

fn refuse(code: &'static str, detail: impl Into<String>) -> Refusal {
    Refusal {
        code,
        detail: detail.into(),
    }
}

const NOT_READY: &str = "not-ready";

/// A node's core.
pub(crate) struct Engine {
    me: Name,
    role: Role,
    manifest: Manifest,
    keystore: Keystore,
    signing: SigningKey,
    store: Store,
    rng: ErasingRng,
    chunk_size: u32,
    /// Prepare lists on threads of their own (the daemon), or within the
    /// tick (the in-memory harness).
    background: bool,
    /// Lists being prepared, or whose preparation failed, by project.
    jobs: BTreeMap<ProjectId, JobState>,
    /// Tests: the next list job waits for this.
    #[cfg(test)]
    hold_next_job: Option<std::sync::mpsc::Receiver<()>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A node `me` of `manifest` with its keystore and state store.
    /// `seed` seeds the node's RNG (from the OS in production).
    ///
    /// # Errors
    ///
    /// [`EngineError::Internal`] if `me` is not in the manifest.
    pub(crate) fn new(
        me: Name,
        manifest: Manifest,
        keystore: Keystore,
        store: Store,
        seed: [u8; 32],
    ) -> Result<Self, EngineError> {
        let role = manifest.member(&me).map(|m| m.role).ok_or_else(|| {
            EngineError::Internal(format!("{me} is not a member of the manifest"))
        })?;
        let signing = SigningKey::from_bytes(&keystore.signing_key().to_bytes());
        if let Some(dir) = store.dir() {
            crate::staging::remove_leftovers(&dir);
        }
        Ok(Self {
            me,
            role,
            manifest,
            keystore,
            signing,
            store,
            rng: ErasingRng::from_seed(Zeroizing::new(seed)),
            chunk_size: DEFAULT_CHUNK_SIZE,
            background: false,
            jobs: BTreeMap::new(),
            #[cfg(test)]
            hold_next_job: None,
        })
    }

    /// Tests: the next list job waits until `hold` gets a message.
    #[cfg(test)]
    pub(crate) fn hold_next_job(&mut self, hold: std::sync::mpsc::Receiver<()>) {
        self.hold_next_job = Some(hold);
    }

    /// Tests: whether a list is being prepared on a thread.
    #[cfg(test)]
    pub(crate) fn preparing(&self) -> bool {
        self.jobs
            .values()
            .any(|j| matches!(j, JobState::Running { .. }))
    }

    /// Prepares lists on threads of their own, so that the node keeps
    /// answering while it reads, blinds and seals a large extract.
    pub(crate) fn with_background_preparation(mut self) -> Self {
        self.background = true;
        self
    }

    /// Sets the chunk size of lists this node announces.
    pub(crate) fn with_chunk_size(mut self, chunk_size: u32) -> Self {
        self.chunk_size = chunk_size;
        self
    }

    /// The queued outgoing messages (oldest first).
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`].
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the daemon reads per destination")
    )]
    pub(crate) fn outbox(&self, limit: usize) -> Result<Vec<(i64, Name, Message)>, EngineError> {
        Ok(self.store.outbox(limit)?)
    }

    /// The queued messages to `dest` (oldest first).
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`].
    pub(crate) fn outbox_to(
        &self,
        dest: &Name,
        limit: usize,
    ) -> Result<Vec<(i64, Message)>, EngineError> {
        Ok(self.store.outbox_to(dest, limit)?)
    }

    /// A queued message was delivered and acknowledged.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`].
    pub(crate) fn acked(&mut self, id: i64) -> Result<(), EngineError> {
        Ok(self.store.acked(id)?)
    }

    /// A project's transcript as this node holds it.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`].
    #[cfg(test)]
    pub(crate) fn transcript(&self, project: &ProjectId) -> Result<Vec<Entry>, EngineError> {
        Ok(self.store.entries(project)?)
    }

    fn linker(&self) -> Result<Name, EngineError> {
        self.manifest
            .linker()
            .map(|l| l.name.clone())
            .ok_or_else(|| EngineError::Internal("no linker".into()))
    }

    /// Handles one message from `from`; returns the replies, all in hand.
    ///
    /// # Errors
    ///
    /// An [`EngineError`] for internal failures; refusals of the message
    /// are replies.
    pub(crate) fn handle(
        &mut self,
        from: &Peer,
        msg: Message,
        now: u64,
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
    pub(crate) fn handle_streamed(
        &mut self,
        from: &Peer,
        msg: Message,
        now: u64,
    ) -> Result<Replies, EngineError> {
        if let Some(refused) =
            crate::admission::screen(&self.me, &self.manifest, &self.store, from, &msg)?
        {
            return Ok(Replies::from(vec![refused]));
        }
        let linker = self.role == Role::Linker;
        let kind = msg.kind();
        if let (Message::Fetch(req), Peer::Client, true) = (&msg, from, linker) {
            let result = self.fetch(req, now);
            return self.answer(from, kind, result);
        }
        let result = match (msg, from) {
            (Message::Hello { version }, _)
                if version == kobling_protocol::messages::PROTOCOL_VERSION =>
            {
                Ok(vec![ack()])
            }
            (Message::Hello { version }, _) => Err(refuse(
                "version",
                format!("protocol version {version} is not supported"),
            )
            .into()),
            (Message::SubmitOrder(signed), Peer::Client) if linker => {
                self.submit_order(signed, now)
            }
            (Message::Statement(signed), Peer::Member(m)) if linker => self.record(m, signed),
            (
                Message::Entries {
                    project,
                    first,
                    entries,
                },
                Peer::Member(m),
            ) if !linker => self.receive_entries(m, &project, first, entries.into_inner()),
            (
                Message::Approve {
                    statement,
                    extract_path,
                },
                Peer::Client,
            ) if !linker => self.approve(statement, extract_path.as_str(), now),
            (
                Message::Blinding {
                    project,
                    list,
                    sealed,
                },
                Peer::Member(m),
            ) if linker && *m == list => self.store_blinding(&project, &list, &sealed),
            (
                Message::SealedItems {
                    project,
                    list,
                    first,
                    items,
                },
                Peer::Member(m),
            ) if linker && *m == list => {
                self.store_sealed(&project, &list, first, items.into_inner())
            }
            (Message::Points(chunk), Peer::Member(m)) => self.points(m, chunk),
            (Message::Close(req), Peer::Client) if linker => self.close(&req, now),
            (Message::Status(req), Peer::Client) => self.status(&req, now),
            (other, _) => Err(refuse(
                "unexpected",
                format!(
                    "{} does not accept {} from this peer",
                    self.me,
                    other.kind()
                ),
            )
            .into()),
        };
        self.answer(from, kind, result.map(Replies::from))
    }

    /// The replies to a message, or its refusal as a reply.
    fn answer(
        &self,
        from: &Peer,
        kind: &str,
        result: Result<Replies, Refused>,
    ) -> Result<Replies, EngineError> {
        match result {
            Ok(replies) => Ok(replies),
            Err(Refused::Refusal(r)) => {
                tracing::info!(node = %self.me, from = from.label(), kind, code = r.code, detail = %r.detail, "refused a message");
                Ok(Replies::from(vec![Message::Refused {
                    code: BoundedString::new(r.code).unwrap_or_default(),
                    detail: BoundedString::new(truncate(&r.detail, 1000)).unwrap_or_default(),
                }]))
            }
            Err(Refused::Engine(e)) => Err(e),
        }
    }

    /// Performs this node's duties in every project.
    ///
    /// # Errors
    ///
    /// An [`EngineError`].
    pub(crate) fn tick(&mut self, now: u64) -> Result<(), EngineError> {
        let manifest = self.manifest.clone();
        for project in self.store.projects()? {
            let entries = self.store.entries(&project)?;
            let view = ProjectView::new(&manifest, &entries);
            if self.role == Role::Linker {
                if let Err(e) = self.expire(&project, &view, now) {
                    match e {
                        Refused::Engine(e) => return Err(e),
                        Refused::Refusal(r) => {
                            tracing::warn!(node = %self.me, %project, code = r.code, detail = %r.detail, "could not close an expired project")
                        }
                    }
                }
            }
            let duties = view.duties(&self.me);
            for duty in duties {
                let done = match duty {
                    Duty::Commit => self.commit(&project, now),
                    Duty::AnnounceList { extract } => self.announce(&project, &view, extract, now),
                    Duty::Link => self.link(&project, &view, now),
                    Duty::Shred => self.shred(&project, now),
                    _ => Ok(()),
                };
                if let Err(e) = done {
                    match e {
                        Refused::Engine(e) => return Err(e),
                        Refused::Refusal(r) => {
                            tracing::warn!(node = %self.me, %project, code = r.code, detail = %r.detail, "a duty could not be done yet")
                        }
                    }
                }
            }
        }
        Ok(())
    }

    // ---- the linker's transcript ----

    fn submit_order(&mut self, signed: SignedStatement, now: u64) -> Result<Vec<Message>, Refused> {
        let Body::Order(order) = &signed.statement.body else {
            return Err(refuse("not-an-order", "SubmitOrder must carry a project order").into());
        };
        if !self.store.entries(&order.project)?.is_empty() {
            return Err(refuse(
                "project-exists",
                format!("project {} already exists", order.project),
            )
            .into());
        }
        if order.expires <= now {
            return Err(refuse("expired", "the order's expiry date has passed").into());
        }
        let project = order.project.clone();
        let outcome = self
            .store
            .transaction(|tx| append(tx, &self.manifest, &self.signing, signed))?;
        outcome.map_err(|e| refuse("invalid", e))?;
        tracing::info!(node = %self.me, %project, "project order recorded");
        Ok(vec![ack()])
    }

    fn record(&mut self, from: &Name, signed: SignedStatement) -> Result<Vec<Message>, Refused> {
        // A member speaks only for itself (operators' approvals come
        // through their own register's node).
        let allowed = match &signed.statement.signer {
            Signer::Node(n) => n == from,
            Signer::Operator { register, .. } => register == from,
            Signer::Researcher(_) => false,
        };
        if !allowed {
            return Err(refuse(
                "impersonation",
                format!("{from} sent a statement signed for someone else"),
            )
            .into());
        }
        let project = signed.statement.project.clone();
        if self.store.entries(&project)?.is_empty() {
            return Err(refuse("unknown-project", format!("no project {project}")).into());
        }
        // A statement that is already in the transcript (a resend after a
        // lost acknowledgement) is acknowledged again.
        let digest = signed.statement.digest();
        if self
            .store
            .entries(&project)?
            .iter()
            .any(|e| e.signed.statement.digest() == digest)
        {
            return Ok(vec![ack()]);
        }
        // A hop record can only follow the previous hop's: wait for it.
        if let Body::Hop(h) = &signed.statement.body {
            let entries = self.store.entries(&project)?;
            let view = ProjectView::new(&self.manifest, &entries);
            if view.announcement(&h.list).is_none()
                || (h.hop > 1 && view.hop_record(&h.list, h.hop - 1).is_none())
            {
                return Err(refuse(
                    NOT_READY,
                    format!(
                        "list {} hop {}: the previous hop is not recorded yet",
                        h.list, h.hop
                    ),
                )
                .into());
            }
        }
        let outcome = self
            .store
            .transaction(|tx| append(tx, &self.manifest, &self.signing, signed))?;
        outcome.map_err(|e| refuse("invalid", e))?;
        Ok(vec![ack()])
    }

    fn receive_entries(
        &mut self,
        from: &Name,
        project: &ProjectId,
        first: u64,
        new: Vec<Entry>,
    ) -> Result<Vec<Message>, Refused> {
        if *from != self.linker()? {
            return Err(
                refuse("not-the-linker", "only the linker sends transcript entries").into(),
            );
        }
        let mut entries = self.store.entries(project)?;
        let have = entries.len() as u64;
        if first > have {
            return Err(refuse(
                NOT_READY,
                format!("entries from {first}, but this node has {have}"),
            )
            .into());
        }
        let mut fresh = Vec::new();
        for (i, e) in new.into_iter().enumerate() {
            let seq = first + i as u64;
            match entries.get(seq as usize) {
                Some(old) if *old == e => {}
                Some(_) => {
                    return Err(refuse(
                        "diverged",
                        format!("entry {seq} differs from this node's copy"),
                    )
                    .into())
                }
                None => fresh.push(e),
            }
        }
        if fresh.is_empty() {
            return Ok(vec![ack()]);
        }
        entries.extend(fresh.iter().cloned());
        transcript::verify(&entries, None, &self.manifest)
            .map_err(|e| refuse("invalid", e.to_string()))?;
        self.store
            .transaction(|tx| tx.append_entries(project, &fresh))?;
        Ok(vec![ack()])
    }

    // ---- registers: approvals and their lists ----

    fn approve(
        &mut self,
        signed: SignedStatement,
        path: &str,
        now: u64,
    ) -> Result<Vec<Message>, Refused> {
        let st = &signed.statement;
        let (Body::Approval(a), Signer::Operator { register, key }) = (&st.body, &st.signer) else {
            return Err(refuse(
                "not-an-approval",
                "Approve must carry an operator's approval",
            )
            .into());
        };
        if *register != self.me || a.register != self.me {
            return Err(refuse(
                "wrong-register",
                format!("this is {}, not {register}", self.me),
            )
            .into());
        }
        if !self.manifest.is_operator_of(&self.me, key) {
            return Err(refuse(
                "not-an-operator",
                format!("the key is not an operator of {} in the manifest", self.me),
            )
            .into());
        }
        if signed.verify_with(key).is_err() {
            return Err(refuse("bad-signature", "the approval's signature does not verify").into());
        }
        let entries = self.store.entries(&st.project)?;
        let order = ProjectView::new(&self.manifest, &entries)
            .order()
            .cloned()
            .ok_or_else(|| {
                refuse(
                    NOT_READY,
                    format!("project {} is not known here yet", st.project),
                )
            })?;
        if a.order != order.digest() {
            return Err(refuse("wrong-order", "the approval binds another project order").into());
        }
        if now >= order.expires || st.time >= order.expires {
            return Err(refuse(
                "expired",
                format!(
                    "project {} has expired; it can no longer be approved",
                    st.project
                ),
            )
            .into());
        }
        let digest = file_digest(path).map_err(|e| refuse("extract", e))?;
        if digest != a.extract {
            return Err(refuse(
                "extract-digest",
                "the extract file's SHA3-256 is not the approved digest",
            )
            .into());
        }
        let linker = self.linker()?;
        let project = st.project.clone();
        self.store.transaction(|tx| {
            tx.put_extract(&project, &digest.0, path)?;
            tx.send(&project, &linker, &Message::Statement(signed.clone()))
        })?;
        Ok(vec![ack()])
    }

    fn commit(&mut self, project: &ProjectId, now: u64) -> Result<(), Refused> {
        let domain = Domain::Project(project.clone());
        self.keystore.accept_domain(&domain)?;
        let key = self.keystore.commitment(&domain)?;
        let body = Body::Commitment(KeyCommitment {
            member: self.me.clone(),
            domain,
            key,
        });
        self.publish_once(project, "commit", body, now)
    }

    /// Signs a statement of this node and queues it, once, to the linker
    /// (for the linker itself too: its own statements go through the same
    /// checks and retries as everyone else's).
    fn publish_once(
        &mut self,
        project: &ProjectId,
        step: &str,
        body: Body,
        now: u64,
    ) -> Result<(), Refused> {
        let signed = Statement {
            project: project.clone(),
            time: now,
            signer: Signer::Node(self.me.clone()),
            body,
        }
        .sign(&self.signing);
        let linker = self.linker()?;
        self.store.transaction(|tx| {
            if tx.mark(project, step)? {
                tx.send(project, &linker, &Message::Statement(signed))?;
            }
            Ok(())
        })?;
        Ok(())
    }

    fn announce(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        extract: Digest,
        now: u64,
    ) -> Result<(), Refused> {
        if self
            .store
            .transaction(|tx| tx.marked(project, "announce"))?
        {
            self.jobs.remove(project);
            return Ok(());
        }
        let result = match self.jobs.remove(project) {
            Some(JobState::Failed { retry_at }) if now < retry_at => {
                self.jobs
                    .insert(project.clone(), JobState::Failed { retry_at });
                return Ok(());
            }
            Some(JobState::Running { handle, cancel }) => {
                if !handle.is_finished() {
                    self.jobs
                        .insert(project.clone(), JobState::Running { handle, cancel });
                    return Ok(());
                }
                handle.join().unwrap_or_else(|_| {
                    Err(JobError::Refused {
                        code: "prepare",
                        detail: "preparing the list failed (a bug: see the log)".into(),
                    })
                })
            }
            Some(JobState::Failed { .. }) | None => {
                let job = self.list_job(project, view, extract)?;
                if self.background {
                    let state = JobState::spawn(job).map_err(|e| {
                        EngineError::Internal(format!("cannot start preparing a list: {e}"))
                    })?;
                    self.jobs.insert(project.clone(), state);
                    tracing::info!(node = %self.me, %project, "preparing the list");
                    return Ok(());
                }
                job.run()
            }
        };
        let prepared = match result {
            Ok(prepared) => prepared,
            Err(e) => {
                self.jobs.insert(
                    project.clone(),
                    JobState::Failed {
                        retry_at: now.saturating_add(RETRY_AFTER_SECONDS),
                    },
                );
                return Err(match e {
                    JobError::Refused { code, detail } => refuse(code, detail).into(),
                    JobError::Store(e) => EngineError::Store(e).into(),
                    JobError::Cancelled => {
                        refuse(NOT_READY, "the list's preparation stopped").into()
                    }
                });
            }
        };
        self.queue_list(project, prepared, now)
    }

    /// What preparing this node's list in `project` needs.
    fn list_job(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        extract: Digest,
    ) -> Result<ListJob, Refused> {
        let order = view.order().ok_or_else(|| refuse(NOT_READY, "no order"))?;
        let path = self
            .store
            .transaction(|tx| tx.extract_path(project, &extract.0))?
            .ok_or_else(|| refuse(NOT_READY, "the approved extract's path is not known"))?;
        let share = self.keystore.share(&Domain::Project(project.clone()))?;
        let researcher = HpkePublicKey::from_bytes(order.researcher_hpke_key.0)
            .map_err(|e| refuse("order", e.to_string()))?;
        let linker = self
            .manifest
            .linker()
            .ok_or_else(|| refuse("manifest", "no linker"))?;
        let linker_key = HpkePublicKey::from_bytes(linker.hpke_key.0)
            .map_err(|e| refuse("manifest", e.to_string()))?;
        let first_hop = view
            .hops_of(&self.me)
            .first()
            .cloned()
            .unwrap_or_else(|| linker.name.clone());
        let mut seed = Zeroizing::new([0u8; 32]);
        self.rng.fill_bytes(seed.as_mut());
        Ok(ListJob {
            project: project.clone(),
            me: self.me.clone(),
            extract,
            path: path.into(),
            options: ParseOptions {
                allow_synthetic: order.test_mode,
            },
            share,
            researcher,
            linker_key,
            linker: linker.name.clone(),
            first_hop,
            chunk_size: self.chunk_size,
            seed,
            variables: crate::prepare::variables_of(order, &self.me),
            mapping: self.store.mapping(),
            dir: self.store.dir(),
            cancel: Arc::default(),
            #[cfg(test)]
            hold: self.hold_next_job.take(),
        })
    }

    /// Queues a prepared list in one transaction: the announcement first in
    /// the linker's queue, then the points and sealed items in the order
    /// they were made, then β for the linker.
    fn queue_list(
        &mut self,
        project: &ProjectId,
        prepared: PreparedList,
        now: u64,
    ) -> Result<(), Refused> {
        let linker = self
            .manifest
            .linker()
            .ok_or_else(|| refuse("manifest", "no linker"))?
            .name
            .clone();
        let started = std::time::Instant::now();
        let (me, signing) = (&self.me, &self.signing);
        let PreparedList {
            staging,
            announcement,
            blinding,
            invalid_rows,
            seconds,
        } = prepared;
        let (persons, rows) = (announcement.persons, announcement.rows);
        let queued = self.store.transaction(|tx| {
            if !tx.mark(project, "announce")? {
                return Ok(false);
            }
            let slot = tx.reserve(project, &linker)?;
            staging.for_each_queued(|dest, bytes| tx.send_encoded(project, dest, bytes))?;
            let signed = Statement {
                project: project.clone(),
                time: now,
                signer: Signer::Node(me.clone()),
                body: Body::ListAnnounced(announcement),
            }
            .sign(signing);
            tx.fill(slot, &Message::Statement(signed))?;
            tx.send(
                project,
                &linker,
                &Message::Blinding {
                    project: project.clone(),
                    list: me.clone(),
                    sealed: blinding,
                },
            )?;
            Ok(true)
        })?;
        drop(staging);
        if queued {
            tracing::info!(node = %self.me, %project, persons, rows, invalid = invalid_rows, seconds, queue_seconds = started.elapsed().as_secs_f64(), "list announced");
        }
        Ok(())
    }

    // ---- the chain ----

    fn points(
        &mut self,
        from: &Name,
        chunk: kobling_protocol::hop::PointChunk,
    ) -> Result<Vec<Message>, Refused> {
        let project = chunk.project.clone();
        let entries = self.store.entries(&project)?;
        if entries.is_empty() {
            return Err(refuse("unknown-project", format!("no project {project}")).into());
        }
        let manifest = self.manifest.clone();
        let view = ProjectView::new(&manifest, &entries);
        let hop = chunk.hop + 1;
        let hops = view.hops_of(&chunk.list);
        let expected_from = if hop == 1 {
            Some(chunk.list.clone())
        } else {
            hops.get(hop as usize - 2).cloned()
        };
        if hops.get(hop as usize - 1) != Some(&self.me) || expected_from.as_ref() != Some(from) {
            return Err(refuse(
                "unexpected-sender",
                format!(
                    "{from} is not hop {} of list {} before this node",
                    chunk.hop, chunk.list
                ),
            )
            .into());
        }
        if let Some((_, true)) = self
            .store
            .transaction(|tx| tx.hop(&project, &chunk.list, hop))?
        {
            return Ok(vec![ack()]); // the whole list is done: a resend
        }
        let duty = view.duties(&self.me).into_iter().find_map(|d| match d {
            Duty::Step {
                list,
                hop: h,
                previous_key,
                next,
                ..
            } if list == chunk.list && h == hop => Some((previous_key, next)),
            _ => None,
        });
        let Some((previous_key, next)) = duty else {
            return Err(refuse(
                NOT_READY,
                format!(
                    "list {} is not ready for hop {hop} here (announcement or approvals pending)",
                    chunk.list
                ),
            )
            .into());
        };
        let announcement = view
            .announcement(&chunk.list)
            .ok_or_else(|| refuse(NOT_READY, "not announced"))?;
        let records: Vec<ChunkRecord> = match self
            .store
            .transaction(|tx| tx.hop(&project, &chunk.list, hop))?
        {
            Some((bytes, _)) => postcard::from_bytes(&bytes)
                .map_err(|_| EngineError::Store(StoreError::Corrupt("hop records")))?,
            None => Vec::new(),
        };
        let done = records.len() as u64;
        if chunk.chunk < done {
            tracing::debug!(node = %self.me, %project, list = %chunk.list, hop, chunk = chunk.chunk, "chunk already stepped: acknowledged, not redone");
            return Ok(vec![ack()]); // already verified and stepped: not redone
        }
        if chunk.chunk > done {
            return Err(refuse(
                NOT_READY,
                format!("chunk {} before chunk {done}", chunk.chunk),
            )
            .into());
        }
        let ctx = ListContext {
            project: project.clone(),
            list: chunk.list.clone(),
            persons: announcement.persons,
            chunk_size: announcement.chunk_size,
        };
        let share = self.keystore.share(&Domain::Project(project.clone()))?;
        let hop_state = if self.role == Role::Linker {
            let sealed = self
                .store
                .transaction(|tx| tx.blobs(LinkerTable::Blinding, &project, &chunk.list))?;
            let Some(bytes) = sealed.first() else {
                return Err(refuse(
                    NOT_READY,
                    format!("the blinding of list {} has not arrived", chunk.list),
                )
                .into());
            };
            let wrapped: WrappedKey = postcard::from_bytes(bytes)
                .map_err(|_| EngineError::Store(StoreError::Corrupt("blinding")))?;
            let hpke = HpkeSecretKey::from_bytes(*self.keystore.x25519_secret_bytes());
            let blinding = open_blinding(&hpke, &project, &chunk.list, &wrapped)
                .map_err(|_| refuse("blinding", "the list blinding does not open"))?;
            let keys = LinkerKeys {
                share: &share,
                blinding: &blinding,
                blinding_commitment: &announcement.blinding_commitment,
            };
            Hop::linker(ctx, hop, self.me.clone(), keys, previous_key, &mut self.rng)
        } else {
            Hop::register(ctx, hop, self.me.clone(), share, previous_key)
        };
        let mut hop_state = hop_state
            .and_then(|h| h.resume(records))
            .map_err(|e| refuse("hop", e.to_string()))?;
        let out = hop_state
            .handle_chunk(&chunk, &mut self.rng)
            .map_err(|e| refuse("bad-chunk", e.to_string()))?;
        let complete = hop_state.is_complete();
        let records = transcript::encode_value(&hop_state.records().to_vec());
        let record = if complete {
            Some(
                hop_state
                    .finish()
                    .map_err(|e| refuse("hop", e.to_string()))?,
            )
        } else {
            None
        };
        let is_linker = self.role == Role::Linker;
        let list = chunk.list.clone();
        let statement = record.map(|r| {
            Statement {
                project: project.clone(),
                time: now_of(&entries),
                signer: Signer::Node(self.me.clone()),
                body: Body::Hop(r),
            }
            .sign(&self.signing)
        });
        let linker = self.linker()?;
        self.store.transaction(|tx| {
            tx.put_hop(&project, &list, hop, &records, complete)?;
            if is_linker {
                tx.put_blob(
                    LinkerTable::Final,
                    &project,
                    &list,
                    chunk.chunk,
                    &transcript::encode_value(&out.output),
                )?;
            } else if let Some(next) = &next {
                tx.send(&project, next, &Message::Points(out))?;
            }
            if let Some(s) = statement {
                tx.send(&project, &linker, &Message::Statement(s))?;
            }
            Ok(())
        })?;
        // Counted by the restart tests: one line per chunk verified, stepped
        // and committed, so a chunk stepped twice shows up.
        tracing::debug!(node = %self.me, %project, %list, hop, chunk = chunk.chunk, "chunk stepped");
        Ok(vec![ack()])
    }

    // ---- the linker: items, linking, delivery, closure ----

    fn store_blinding(
        &mut self,
        project: &ProjectId,
        list: &Name,
        sealed: &WrappedKey,
    ) -> Result<Vec<Message>, Refused> {
        self.known_project(project)?;
        self.store.transaction(|tx| {
            tx.put_blob(
                LinkerTable::Blinding,
                project,
                list,
                0,
                &transcript::encode_value(sealed),
            )
        })?;
        Ok(vec![ack()])
    }

    fn store_sealed(
        &mut self,
        project: &ProjectId,
        list: &Name,
        first: Position,
        items: Vec<SealedItem>,
    ) -> Result<Vec<Message>, Refused> {
        self.known_project(project)?;
        self.store.transaction(|tx| {
            for (i, item) in items.iter().enumerate() {
                tx.put_blob(
                    LinkerTable::Sealed,
                    project,
                    list,
                    first.0 + i as u64,
                    item.as_bytes(),
                )?;
            }
            Ok(())
        })?;
        Ok(vec![ack()])
    }

    fn known_project(&self, project: &ProjectId) -> Result<(), Refused> {
        if self.store.entries(project)?.is_empty() {
            return Err(refuse("unknown-project", format!("no project {project}")).into());
        }
        Ok(())
    }

    fn final_points(
        &mut self,
        project: &ProjectId,
        list: &Name,
    ) -> Result<Vec<WirePoint>, Refused> {
        let mut points = Vec::new();
        for bytes in self
            .store
            .transaction(|tx| tx.blobs(LinkerTable::Final, project, list))?
        {
            let chunk: Vec<WirePoint> = postcard::from_bytes(&bytes)
                .map_err(|_| EngineError::Store(StoreError::Corrupt("final points")))?;
            points.extend(chunk);
        }
        Ok(points)
    }

    fn linkage(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
    ) -> Result<(Linkage, BTreeMap<Name, Vec<WirePoint>>), Refused> {
        let order = view.order().ok_or_else(|| refuse(NOT_READY, "no order"))?;
        let cohort = Cohort::parse(&order.cohort).map_err(|e| refuse("order", e.to_string()))?;
        let mut finals = BTreeMap::new();
        for list in order.register_names() {
            let points = self.final_points(project, &list)?;
            finals.insert(list, points);
        }
        let lists: Vec<(Name, &[WirePoint])> = finals
            .iter()
            .map(|(n, p)| (n.clone(), p.as_slice()))
            .collect();
        let linkage = link(project, &lists, &cohort).map_err(|e| refuse("link", e.to_string()))?;
        Ok((linkage, finals))
    }

    fn link(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        now: u64,
    ) -> Result<(), Refused> {
        let (linkage, finals) = self.linkage(project, view)?;
        let order = view.order().ok_or_else(|| refuse(NOT_READY, "no order"))?;
        let cohort = Cohort::parse(&order.cohort).map_err(|e| refuse("order", e.to_string()))?;
        let summary = LinkSummary {
            cohort: BoundedString::new(cohort.to_string())
                .map_err(|e| refuse("order", e.to_string()))?,
            cohort_persons: linkage.persons.len() as u64,
            lists: bounded(
                linkage
                    .lists
                    .iter()
                    .map(|l| LinkedList {
                        list: l.list.clone(),
                        final_root: points_root(&finals[&l.list]),
                        persons: l.total,
                        matched: l.selected.len() as u64,
                    })
                    .collect(),
            )?,
        };
        tracing::info!(node = %self.me, %project, cohort = linkage.persons.len(), "linked");
        self.publish_once(project, "link", Body::LinkSummary(summary), now)
    }

    fn researcher_request(
        &self,
        req: &SignedRequest,
        action: Action,
        now: u64,
    ) -> Result<Vec<Entry>, Refused> {
        req.check(now).map_err(|e| refuse("bad-request", e))?;
        if req.request.action != action {
            return Err(refuse("bad-request", "the request is for another action").into());
        }
        let entries = self.store.entries(&req.request.project)?;
        let view = ProjectView::new(&self.manifest, &entries);
        let order = view.order().ok_or_else(|| {
            refuse(
                "unknown-project",
                format!("no project {}", req.request.project),
            )
        })?;
        if req.key != order.researcher_signing_key {
            return Err(refuse(
                "not-the-researcher",
                "only the researcher named in the order may do this",
            )
            .into());
        }
        Ok(entries)
    }

    /// The researcher's delivery. Per list, one pass over the stored sealed
    /// items builds the Merkle tree of their hashes, and a second one
    /// spools the selected items with their proofs, a batch at a time, to
    /// a scratch file the transport reads back message by message: the
    /// linker's memory holds the trees and one batch, not the delivery.
    fn fetch(&mut self, req: &SignedRequest, now: u64) -> Result<Replies, Refused> {
        let project = req.request.project.clone();
        let entries = self.researcher_request(req, Action::Fetch, now)?;
        let manifest = self.manifest.clone();
        let view = ProjectView::new(&manifest, &entries);
        let (linked, delivered, closed) = view.status();
        if view.order().is_some_and(|o| now >= o.expires) {
            return Err(refuse(
                "expired",
                format!("project {project} has expired; its data is deleted"),
            )
            .into());
        }
        if closed {
            return Err(refuse(
                "closed",
                format!("project {project} is closed; its data is deleted"),
            )
            .into());
        }
        if !linked {
            return Err(refuse(NOT_READY, format!("project {project} is not linked yet")).into());
        }
        let (linkage, finals) = self.linkage(&project, &view)?;
        let spool_name = format!("{project}.fetch{}", self.rng.next_u64());
        let mut spool = Staging::create(self.store.dir().as_deref(), &spool_name)?;
        spool.seal_off()?;
        // Small batches in tests, so that every delivery crosses batches.
        let batch_size = if cfg!(test) {
            7
        } else {
            MAX_ITEMS_PER_MESSAGE.min(1024)
        };
        let mut records = Vec::new();
        for sel in &linkage.lists {
            let announcement = view
                .announcement(&sel.list)
                .ok_or_else(|| refuse(NOT_READY, "not announced"))?;
            let mut leaves: Vec<Digest> = Vec::with_capacity(announcement.persons as usize);
            self.store.transaction(|tx| {
                tx.for_each_blob(LinkerTable::Sealed, &project, &sel.list, |b| {
                    leaves.push(leaf_hash(b));
                    Ok(())
                })
            })?;
            if leaves.len() as u64 != announcement.persons {
                return Err(refuse(
                    NOT_READY,
                    format!("the sealed items of {} have not all arrived", sel.list),
                )
                .into());
            }
            let sealed_tree = MerkleTree::from_leaf_hashes(leaves);
            let points_tree = MerkleTree::from_leaf_hashes(
                finals[&sel.list]
                    .iter()
                    .map(|p| leaf_hash(p.as_bytes()))
                    .collect(),
            );
            let source = ListDeliverySource {
                sealed: &sealed_tree,
                points: &points_tree,
            };
            spool.queue(
                &self.me,
                &Message::DeliveryHeader {
                    project: project.clone(),
                    list: announcement.list.clone(),
                    columns: announcement.columns.clone(),
                    content_key: announcement.content_key.clone(),
                    items: sel.selected.len() as u64,
                },
            )?;
            // The selected positions ascend, as the stored items do.
            let mut wanted = sel.selected.iter().peekable();
            let mut batch: Vec<DeliveredItem> = Vec::with_capacity(batch_size);
            let mut position = 0u64;
            let list_finals = &finals[&sel.list];
            let spool = &mut spool;
            let flush = |spool: &mut Staging, batch: &mut Vec<DeliveredItem>| {
                let items = BoundedVec::new(std::mem::take(batch))
                    .map_err(|_| StoreError::Corrupt("delivery batch"))?;
                spool.queue(
                    &self.me,
                    &Message::DeliveryItems {
                        project: project.clone(),
                        list: sel.list.clone(),
                        items,
                    },
                )
            };
            let mut failed: Option<String> = None;
            self.store
                .transaction(|tx| {
                    tx.for_each_blob(LinkerTable::Sealed, &project, &sel.list, |b| {
                        let here = position;
                        position += 1;
                        let Some(&&(at, lnr)) = wanted.peek() else {
                            return Ok(());
                        };
                        if at.0 != here {
                            return Ok(());
                        }
                        wanted.next();
                        let item = SealedItem(
                            BoundedBytes::new(b.to_vec())
                                .map_err(|_| StoreError::Corrupt("sealed item"))?,
                        );
                        let point = *list_finals
                            .get(here as usize)
                            .ok_or(StoreError::Corrupt("final points"))?;
                        match deliver_item(lnr, at, item, point, &source) {
                            Ok(d) => batch.push(d),
                            Err(e) => {
                                failed = Some(e.to_string());
                                return Err(StoreError::Corrupt("delivery"));
                            }
                        }
                        if batch.len() == batch_size {
                            flush(spool, &mut batch)?;
                        }
                        Ok(())
                    })
                })
                .map_err(|e| match failed.take() {
                    Some(detail) => Refused::from(refuse("delivery", detail)),
                    None => Refused::from(e),
                })?;
            if wanted.next().is_some() {
                return Err(EngineError::Store(StoreError::Corrupt("sealed item")).into());
            }
            if !batch.is_empty() {
                flush(spool, &mut batch)?;
            }
            records.push(DeliveredList {
                list: sel.list.clone(),
                items: sel.selected.len() as u64,
                selection: selection_digest(&sel.selected),
            });
        }
        spool.queued_all()?;
        if !delivered {
            // Recorded at once, so the transcript sent first includes it.
            let body = Body::Delivery(DeliveryRecord {
                recipient: req.key,
                lists: bounded(records)?,
            });
            let signed = Statement {
                project: project.clone(),
                time: now,
                signer: Signer::Node(self.me.clone()),
                body,
            }
            .sign(&self.signing);
            let (manifest, signing) = (&self.manifest, &self.signing);
            let recorded =
                self.store
                    .transaction(|tx| match append(tx, manifest, signing, signed)? {
                        Ok(_) => Ok(()),
                        Err(e) => Err(StoreError::Rejected(e)),
                    });
            match recorded {
                Ok(()) => {}
                Err(StoreError::Rejected(e)) => return Err(refuse("invalid", e).into()),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Replies {
            now: vec![self.transcript_file(&project)?].into(),
            spool: Some((spool, 0)),
        })
    }

    fn transcript_file(&self, project: &ProjectId) -> Result<Message, Refused> {
        let entries = self.store.entries(project)?;
        let trailer = Trailer::sign(project, &entries, &self.signing);
        let bytes = transcript::encode_file(&entries, &trailer);
        Ok(Message::TranscriptFile {
            bytes: BoundedBytes::new(bytes)
                .map_err(|_| refuse("too-large", "the transcript is too large for one message"))?,
        })
    }

    fn status(&mut self, req: &SignedRequest, now: u64) -> Result<Vec<Message>, Refused> {
        req.check(now).map_err(|e| refuse("bad-request", e))?;
        let entries = self.store.entries(&req.request.project)?;
        let view = ProjectView::new(&self.manifest, &entries);
        let order = view.order().ok_or_else(|| {
            refuse(
                "unknown-project",
                format!("no project {}", req.request.project),
            )
        })?;
        let allowed = req.key == order.researcher_signing_key
            || order
                .register_names()
                .iter()
                .any(|r| self.manifest.is_operator_of(r, &req.key));
        if !allowed {
            return Err(refuse(
                "not-allowed",
                "only the project's researcher and the registers' operators may read its status",
            )
            .into());
        }
        if self.role == Role::Linker {
            Ok(vec![self.transcript_file(&req.request.project)?])
        } else {
            Ok(vec![Message::Entries {
                project: req.request.project.clone(),
                first: 0,
                entries: bounded(entries)?,
            }])
        }
    }

    fn close(&mut self, req: &SignedRequest, now: u64) -> Result<Vec<Message>, Refused> {
        let project = req.request.project.clone();
        let entries = self.researcher_request(req, Action::Close, now)?;
        if ProjectView::new(&self.manifest, &entries).status().2 {
            return Ok(vec![ack()]);
        }
        let reason = BoundedString::new("closed at the researcher's request").unwrap_or_default();
        self.publish_once(&project, "close", Body::Closure(Closure { reason }), now)?;
        tracing::info!(node = %self.me, %project, "project closed");
        Ok(vec![ack()])
    }

    /// The linker closes a project whose order has expired: the closure
    /// is recorded like a researcher's, and every node shreds its key and
    /// deletes the project's working data (the transcript stays).
    fn expire(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        now: u64,
    ) -> Result<(), Refused> {
        let Some(order) = view.order() else {
            return Ok(());
        };
        if now < order.expires || view.status().2 {
            return Ok(());
        }
        let reason = BoundedString::new("the project expired").unwrap_or_default();
        self.publish_once(project, "close", Body::Closure(Closure { reason }), now)?;
        tracing::info!(node = %self.me, %project, "project expired and closed");
        Ok(())
    }

    fn shred(&mut self, project: &ProjectId, now: u64) -> Result<(), Refused> {
        // A list still being prepared is dropped (the job stops).
        self.jobs.remove(project);
        let domain = Domain::Project(project.clone());
        if !self.store.transaction(|tx| tx.marked(project, "shred"))? {
            self.keystore.shred(&domain)?;
            self.store
                .transaction(|tx| tx.delete_working_data(project))?;
            tracing::info!(node = %self.me, %project, "project key shredded, working data deleted");
        }
        self.publish_once(
            project,
            "shred",
            Body::Shredded(Shredded {
                member: self.me.clone(),
                domain,
            }),
            now,
        )
    }
}

/// Appends a signed statement to the transcript in `tx`, as the linker,
/// after verifying the whole transcript with it; queues the new entry to
/// every participating register. Returns the verification failure as text.
fn append(
    tx: &Tx<'_>,
    manifest: &Manifest,
    linker: &SigningKey,
    signed: SignedStatement,
) -> Result<Result<Entry, String>, StoreError> {
    let project = signed.statement.project.clone();
    let mut entries = tx.entries(&project)?;
    let prev = entries.last().map(Entry::hash).unwrap_or_default();
    let entry = Entry::record(entries.len() as u64, prev, signed, linker);
    entries.push(entry.clone());
    if let Err(e) = transcript::verify(&entries, None, manifest) {
        return Ok(Err(e.to_string()));
    }
    tx.append_entries(&project, std::slice::from_ref(&entry))?;
    let view = ProjectView::new(manifest, &entries);
    for register in view.participants() {
        let msg = Message::Entries {
            project: project.clone(),
            first: entry.seq,
            entries: BoundedVec::new(vec![entry.clone()]).unwrap_or_default(),
        };
        tx.send(&project, &register, &msg)?;
    }
    Ok(Ok(entry))
}

enum Refused {
    Refusal(Refusal),
    Engine(EngineError),
}

impl From<Refusal> for Refused {
    fn from(r: Refusal) -> Self {
        Refused::Refusal(r)
    }
}

impl From<EngineError> for Refused {
    fn from(e: EngineError) -> Self {
        Refused::Engine(e)
    }
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Refused::Engine(e.into())
    }
}

impl From<KeystoreError> for Refused {
    fn from(e: KeystoreError) -> Self {
        match e {
            KeystoreError::Shredded { .. } => Refused::Refusal(refuse(
                "closed",
                "the project is closed: its key was shredded",
            )),
            e => Refused::Engine(e.into()),
        }
    }
}

fn ack() -> Message {
    Message::Ack {
        of: Digest::default(),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn bounded<T, const N: usize>(v: Vec<T>) -> Result<BoundedVec<T, N>, Refused> {
    BoundedVec::new(v).map_err(|e| refuse("too-large", e.to_string()).into())
}

/// A time for statements made while handling a message: the latest time in
/// the transcript (the engine's clock is only read on ticks).
fn now_of(entries: &[Entry]) -> u64 {
    entries
        .iter()
        .map(|e| e.signed.statement.time)
        .max()
        .unwrap_or_default()
}

/// SHA3-256 of a file, streamed.
pub(crate) fn file_digest(path: &str) -> Result<Digest, String> {
    use sha3::Digest as _;
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| format!("cannot open the extract: {e}"))?;
    let mut h = sha3::Sha3_256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("cannot read the extract: {e}"))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Digest(h.finalize().into()))
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
