//! The node's core: what a register or linker node does with each message
//! and on each tick, independent of the transport.
//!
//! ```text
//!   transport (QUIC, or the in-memory harness in tests)
//!        │ handle(from, message, now) → replies          ▲ outbox_to(dest): (id, message)
//!        ▼                                               │ acked(id)
//!   Engine::handle
//!     1. project::authorise(kind, sender's role)    ── no state read
//!     2. load the project's entries once → ProjectView::admit(message)
//!     3. dispatch on this node's role, once:
//!          linker:   sequencer (orders, statements) · linking (blindings, sealed items)
//!                    · chain (last hop) · delivery (fetch) · lifecycle (close, status)
//!          register: replica (entries, phase notices) · approval · chain (hops) · lifecycle (status)
//!     4. commit the step's outputs and its messages in one transaction
//!   Engine::tick(now) ── ProjectView::duties(me) ──▶ commit, announce (list), link, shred, expire
//!        │
//!        └── Store (SQLite): transcript copy, hop records, outbox, linker data
//! ```
//!
//! The rules (who may send what, when; the step order; the linker's
//! append-and-verify) live in `kobling_protocol` ([`project`](kobling_protocol::project),
//! [`sequencer`](kobling_protocol::sequencer)); this module loads state,
//! calls them, and commits. Every state change commits in one transaction
//! with the messages it produces, so a node killed at any point continues
//! from its last commit: verified chunks are not redone, and a chunk sent
//! twice is acknowledged without being processed again.
//!
//! Refusals are answered with [`Message::Refused`] and a
//! [`RefusalCode`]: `not-ready`
//! means "send it again later" (e.g. a chunk that arrives before the
//! list's announcement reached this node); any other code is final.
//!
//! | file | concern |
//! |---|---|
//! | `dispatch.rs` | one message in, its replies out: authorise, admit, dispatch on the role |
//! | `sequencer.rs` | the linker's transcript: orders, statements, replication of the register prefix, phase notices; registers' replicas and notices |
//! | `approval.rs` | operators' approvals at a register |
//! | `list.rs` | preparing and announcing a register's own list |
//! | `chain.rs` | stepping the chunks of other lists (every hop, the linker last) |
//! | `linking.rs` | the linker's blindings, sealed items, final points and linkage |
//! | `delivery.rs` | the researcher's fetch, spooled |
//! | `receipt.rs` | a domain holder's receipt of a delivery (rows under `Ψ_R`) |
//! | `delivery_run.rs`, `delivery_holder.rs` | a delivery into a register domain run by the nodes, and its receipt at the holder |
//! | `domain_request.rs` | operators' requests about a domain: transcript, retirement, re-share steps |
//! | `lifecycle.rs` | commitments, status, close, expiry, shredding, ticks |
//! | `domain.rs` | register domains: creation, key commitments, replication, retirement |
//! | `reshare.rs` | a register domain's re-share at its holder |
//! | `requests.rs` | the replay cache of clients' signed requests |
//! | `innsyn.rs` | innsyn at an fnr register: portals admitted by two operators, one person's rows sealed to the citizen's device |
//! | `innsyn_blinded.rs` | innsyn at a pseudonymous holder: the portal's one-person list through the domain's key holders; the holder finds the rows under `Ψ_R(x)` |
//! | `error.rs` | refusals and internal failures |

mod approval;
mod chain;
mod chain_v2;
mod delivery;
mod delivery_holder;
mod delivery_keys;
mod delivery_run;
mod disclosure_log;
mod dispatch;
mod domain;
mod domain_request;
mod error;
mod innsyn;
mod innsyn_blinded;
mod lifecycle;
mod linking;
mod list;
mod list_stream;
mod pseudo;
mod receipt;
mod replies;
mod requests;
mod researcher_list;
mod reshare;
mod sequencer;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use ed25519_dalek::SigningKey;
use kobling_keys::Keystore;
use kobling_protocol::rng::ErasingRng;
use kobling_protocol::{
    hop::DEFAULT_CHUNK_SIZE,
    manifest::{Manifest, Role},
    messages::{Message, MAX_ITEMS_PER_MESSAGE},
    notice::Notified,
    refusal::RefusalCode,
    sequencer::MAX_LIST_SEALED_BYTES,
    transcript::Entry,
    types::{Digest, Name, ProjectId, UnixTime},
};
use zeroize::Zeroizing;

#[cfg(any(test, feature = "testing"))]
pub use self::approval::file_digest;
pub use self::{
    approval::{ApprovalDesk, ExtractFile, Taken, MAX_EXTRACT_BYTES},
    error::EngineError,
    innsyn::{InnsynFound, InnsynLookup, InnsynStep},
    receipt::{DeliveredChunk, DeliveredList, ReceiptError},
    replies::Replies,
    requests::MAX_REMEMBERED_REQUESTS,
};
pub use kobling_protocol::project::Origin as Peer;

use self::{
    dispatch::unexpected,
    error::{refuse, Outcome},
};
use crate::{prepare::JobState, store::Store};

/// How an engine runs (defaults are the daemon's).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Points per chunk in the lists this node announces.
    pub chunk_size: u32,
    /// Prepare lists on threads of their own, so that the node keeps
    /// answering while it reads, blinds and seals a large extract (the
    /// daemon); `false` prepares them within the tick (deterministic
    /// harnesses).
    pub background_preparation: bool,
    /// Delivered items per message in a fetch.
    pub delivery_batch: usize,
    /// Accept synthetic test numbers (month + 80) in this node's extracts.
    /// Only a node started in test mode does; an order cannot ask for it.
    pub test_mode: bool,
    /// The directory operators' approvals name extract files in (default:
    /// `extracts/` inside the node's directory).
    pub extracts: Option<PathBuf>,
    /// Announce this node's lists for chain v2 (PROTOCOL.md §6a: signed
    /// digests per chunk, one check per list; the default) rather than
    /// chain v1 (kept to make v1 transcripts for the verifier's tests).
    /// Every node steps a list in the chain its owner announced it for.
    pub chain_v2: bool,
    /// A register's reservation table (`kobling node run --reservations`,
    /// PROTOCOL.md §10a): persons in it are removed from this node's list
    /// of an identified project before the chain. Ordinary projects
    /// ignore it.
    pub reservations: Option<PathBuf>,
    /// Without background preparation: chunks of this node's streamed
    /// list made per tick (a harness can stop a node mid-stream).
    pub stream_chunks_per_tick: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            background_preparation: true,
            delivery_batch: MAX_ITEMS_PER_MESSAGE.min(1024),
            test_mode: false,
            extracts: None,
            chain_v2: true,
            reservations: None,
            stream_chunks_per_tick: usize::MAX,
        }
    }
}

/// A node's core.
pub struct Engine {
    me: Name,
    role: Role,
    manifest: Manifest,
    /// The manifest's digest, which clients' requests must name.
    manifest_digest: Digest,
    keystore: Keystore,
    signing: SigningKey,
    store: Store,
    rng: ErasingRng,
    config: EngineConfig,
    /// Lists being prepared, or whose preparation failed, by project.
    jobs: BTreeMap<ProjectId, JobState>,
    /// The next list job waits at this gate.
    gate: Option<std::sync::mpsc::Receiver<()>>,
    /// Projects in which this node has nothing left to do: not ticked.
    finished: BTreeSet<ProjectId>,
    /// The most bytes of sealed items a list may occupy here (linker).
    list_bytes_cap: u64,
    /// Chain v2 hops in progress (a cache: rebuilt from the store after a
    /// restart).
    v2_hops: chain_v2::Hops,
    /// Re-share blindings at a domain's holder (memory only).
    reshare_blindings: reshare::Blindings,
    /// Innsyn: the extract served and the quota book (memory only).
    innsyn: innsyn::Desk,
    /// A domain holder: when it last sent the linker a `Close` of a
    /// delivery received in full whose closure has not reached it.
    delivery_closes: BTreeMap<ProjectId, UnixTime>,
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
    /// [`EngineError::NotAMember`] if `me` is not in the manifest.
    pub fn new(
        me: Name,
        manifest: Manifest,
        keystore: Keystore,
        store: Store,
        seed: [u8; 32],
        config: EngineConfig,
    ) -> Result<Self, EngineError> {
        let role = manifest
            .member(&me)
            .map(|m| m.role)
            .ok_or_else(|| EngineError::NotAMember(me.clone()))?;
        if manifest.linker().is_none() {
            return Err(EngineError::NotAMember(me));
        }
        let signing = SigningKey::from_bytes(&keystore.signing_key().to_bytes());
        if let Some(dir) = store.dir() {
            crate::staging::remove_leftovers(&dir);
        }
        Ok(Self {
            me,
            role,
            manifest_digest: manifest.digest(),
            manifest,
            keystore,
            signing,
            store,
            rng: ErasingRng::from_seed(Zeroizing::new(seed)),
            config,
            jobs: BTreeMap::new(),
            gate: None,
            finished: BTreeSet::new(),
            list_bytes_cap: MAX_LIST_SEALED_BYTES,
            v2_hops: chain_v2::Hops::default(),
            reshare_blindings: reshare::Blindings::default(),
            innsyn: innsyn::Desk::default(),
            delivery_closes: BTreeMap::new(),
        })
    }

    /// The next list preparation waits until `gate` gets a message (or
    /// its sender hangs up).
    pub fn hold_next_list(&mut self, gate: std::sync::mpsc::Receiver<()>) {
        self.gate = Some(gate);
    }

    /// Lowers the bytes of sealed items a list may occupy at this linker
    /// below [`MAX_LIST_SEALED_BYTES`] (tests: a cap that can be reached).
    pub fn cap_list_bytes(&mut self, bytes: u64) {
        self.list_bytes_cap = bytes.min(MAX_LIST_SEALED_BYTES);
    }

    /// Whether a list is being prepared on a thread.
    pub fn preparing(&self) -> bool {
        self.jobs.values().any(|j| match j {
            JobState::Running { .. } => true,
            JobState::Streaming { stream, .. } => stream.running(),
            JobState::Failed { .. } => false,
        })
    }

    /// The queued messages to `dest` (oldest first).
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`].
    pub fn outbox_to(&self, dest: &Name, limit: usize) -> Result<Vec<(i64, Message)>, EngineError> {
        Ok(self.store.outbox_to(dest, limit)?)
    }

    /// A queued message was delivered and acknowledged.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`].
    pub fn acked(&mut self, id: i64) -> Result<(), EngineError> {
        Ok(self.store.acked(id)?)
    }

    /// A project's transcript as this node holds it.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`].
    pub fn transcript(&self, project: &ProjectId) -> Result<Vec<Entry>, EngineError> {
        Ok(self.store.entries(project)?)
    }

    /// The linker's latest phase notice this node holds about a project
    /// (a register's; `None` at the linker, or before any notice).
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`].
    pub fn phase_notice(
        &self,
        project: &ProjectId,
    ) -> Result<Option<kobling_protocol::notice::SignedPhaseNotice>, EngineError> {
        Ok(self.store.notice(project)?)
    }

    /// The phase the linker's latest notice told this node of (a
    /// register's; `None` at the linker, which holds the transcript).
    fn notified(&self, project: &ProjectId) -> Outcome<Option<Notified>> {
        Ok(self.store.notice(project)?.map(|n| n.notice.phase))
    }

    /// Refuses a test-mode order at a node not started in test mode:
    /// synthetic numbers are for tests, and a production node takes no
    /// project that asks for them.
    fn check_mode(&self, order: &kobling_protocol::transcript::ProjectOrder) -> Outcome<()> {
        if order.test_mode && !self.config.test_mode {
            return Err(refuse(
                RefusalCode::Order,
                format!(
                    "project {} is a test-mode order, and {} is not a test-mode node",
                    order.project, self.me
                ),
            ));
        }
        // Deliveries and pseudonymous lists exist on chain v2 only (the
        // linker's plain step, conversions, split blindings).
        let what = if order.delivery.is_some() {
            Some("a delivery into a register domain")
        } else if !order.pseudonymous.is_empty() {
            Some("a project with a pseudonymous list")
        } else {
            None
        };
        if let (Some(what), false) = (what, self.config.chain_v2) {
            return Err(refuse(
                RefusalCode::Order,
                format!(
                    "{} is {what}, which runs on chain v2 only; {} runs chain v1",
                    order.project, self.me
                ),
            ));
        }
        Ok(())
    }

    /// The linker's name (the manifest has one: checked in [`Engine::new`]).
    fn linker(&self) -> Name {
        self.manifest
            .linker()
            .map(|l| l.name.clone())
            .unwrap_or_else(|| self.me.clone())
    }
}

/// A time for statements made while handling a message: the latest time in
/// the transcript (the engine's clock is only read on ticks).
fn now_of(entries: &[Entry]) -> UnixTime {
    entries
        .iter()
        .map(|e| e.signed.statement.time)
        .max()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
