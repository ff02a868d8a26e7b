//! A federation of real engines in one process, for tests (feature
//! `testing`).
//!
//! ```text
//!  Federation::create ── keystores, operators, researcher, manifest (on disk)
//!  Federation::start ──▶ Net: one Engine per member, a virtual clock,
//!                        seeded loss, duplication, latency, crashes
//!  Federation::run_project:
//!    order (researcher) → 2 approvals per register (operators)
//!    → the engines run the protocol over Net → fetch and status
//!    → the researcher's client verifies and opens the delivery
//! ```
//!
//! Nothing of the protocol is re-implemented here: every step is the
//! engine's, every message goes through `Engine::handle`, and the
//! researcher's tables come from the same code as `kobling project fetch`.
//! Two runs with the same keys and the same seed produce byte-identical
//! transcripts.

pub mod attacks;
mod delivery;
mod net;
mod pseudo;
pub mod quic;

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use ed25519_dalek::SigningKey;
use kobling_keys::{KdfParams, Keystore, KeystoreError};
use kobling_protocol::{
    bounded::{BoundedString, BoundedVec},
    link::Lnr,
    manifest::{Ed25519Key, Manifest, Member, Operator, Role, X25519Key},
    messages::{Action, Message, Request},
    project::Phase,
    project::ProjectView,
    refusal::RefusalCode,
    seal::HpkeSecretKey,
    transcript::{
        self, Approval, Body, Entry, ProjectOrder, RegisterRequest, SignedStatement, Signer,
        Statement, Trailer, VerifiedTranscript,
    },
    types::{Name, ProjectId, UnixTime},
};
use kobling_sim::population::Extract;
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

pub use self::net::{Faults, Net, NetStats, Observer, Tamper, RETRY_TIMEOUT_MS, TICK_MS};
pub use self::pseudo::INVALID_PSEUDONYM;
use crate::{
    engine::{file_digest, EngineConfig, EngineError},
    store::StoreError,
};

/// The linker's member name in a test federation.
pub const LINKER: &str = "LINKER";
/// Unix time at the start of every test federation's clock.
pub const EPOCH: u64 = 1_800_000_000;

/// A test federation failed.
#[derive(Debug, thiserror::Error)]
pub enum TestingError {
    /// A keystore.
    #[error("keystore: {0}")]
    Keystore(#[from] KeystoreError),
    /// A node's state.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// An engine's internal error.
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    /// A file of the fixture.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A node that is down (or not in the federation) was asked.
    #[error("{0} is down")]
    Down(Name),
    /// The virtual time limit passed.
    #[error("nothing finished within {0} ms of virtual time")]
    Timeout(u64),
    /// A reply that makes no sense, or a refused step of the run.
    #[error("{0}")]
    Unexpected(String),
}

/// Keys, operators, a researcher and a manifest, on disk under `dir`:
/// `<dir>/<MEMBER>/keys` for every node, `<dir>/extracts` for extracts.
pub struct Federation {
    /// The federation's directory.
    pub dir: PathBuf,
    /// The manifest.
    pub manifest: Manifest,
    /// Two operator keys per register.
    pub operators: BTreeMap<Name, Vec<SigningKey>>,
    /// The researcher's signing key.
    pub researcher: SigningKey,
    /// The researcher's HPKE key.
    pub researcher_hpke: HpkeSecretKey,
    /// The next client request's nonce (requests are deterministic).
    nonces: std::sync::atomic::AtomicU64,
}

/// The access authority of every testing federation's manifest: a fixed
/// key, as the runs are deterministic.
pub fn authority() -> SigningKey {
    SigningKey::from_bytes(&[0xa5; 32])
}

impl core::fmt::Debug for Federation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Federation")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Settings of one project run.
#[derive(Debug, Clone)]
pub struct ProjectConfig {
    /// Project id.
    pub project: String,
    /// Cohort expression.
    pub cohort: String,
    /// Points per chunk.
    pub chunk_size: u32,
    /// Seed of the network's and the engines' random choices.
    pub seed: u64,
    /// The network's faults.
    pub faults: Faults,
}

/// The terms of an order besides its registers and cohort.
#[derive(Debug, Clone, Copy)]
pub struct OrderTerms {
    /// Unix time the order expires at (default: a year after [`EPOCH`]).
    pub expires: UnixTime,
    /// Whether the order asks for test mode (default: no).
    pub test_mode: bool,
}

impl Default for OrderTerms {
    fn default() -> Self {
        Self {
            expires: UnixTime(EPOCH + 86_400 * 365),
            test_mode: false,
        }
    }
}

/// What a project run produced, as the researcher received it.
#[derive(Debug)]
pub struct RunOutcome {
    /// Per register: (lnr, row values) of every delivered row.
    pub tables: BTreeMap<Name, Vec<(Lnr, Vec<String>)>>,
    /// The transcript entries and trailer, as the linker signed them.
    pub transcript: (Vec<Entry>, Trailer),
    /// The transcript file's bytes.
    pub transcript_file: Vec<u8>,
    /// What the researcher's verification established.
    pub verified: VerifiedTranscript,
    /// Virtual milliseconds the run took.
    pub virtual_ms: u64,
}

fn name(s: &str) -> Result<Name, TestingError> {
    Name::new(s).map_err(|e| TestingError::Unexpected(e.to_string()))
}

fn text<const N: usize>(s: &str) -> Result<BoundedString<N>, TestingError> {
    BoundedString::new(s).map_err(|e| TestingError::Unexpected(e.to_string()))
}

impl Federation {
    /// Creates keystores for `registers` and a linker under `dir`, two
    /// operators per register and a researcher, all drawn from `seed`
    /// (but the TLS keys, which come from the OS).
    ///
    /// # Errors
    ///
    /// [`TestingError`] if a keystore cannot be created.
    pub fn create(dir: &Path, registers: &[&str], seed: u64) -> Result<Self, TestingError> {
        // Operator and researcher keys from `seed`, in the order the
        // old in-process federation drew them (tests re-derive them);
        // keystores from a generator of their own.
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut keys_rng = ChaCha20Rng::seed_from_u64(seed ^ 0x6b65_7973_746f_7265);
        let mut operators = BTreeMap::new();
        let mut members = Vec::new();
        for (i, member) in registers
            .iter()
            .copied()
            .chain(std::iter::once(LINKER))
            .enumerate()
        {
            let n = name(member)?;
            let ks = Keystore::create_with_rng(
                dir.join(member).join("keys"),
                None,
                KdfParams::default(),
                &["localhost".to_string()],
                &mut keys_rng,
            )?;
            let role = if member == LINKER {
                Role::Linker
            } else {
                Role::Register
            };
            let ops: Vec<SigningKey> = if role == Role::Register {
                (0..2).map(|_| SigningKey::generate(&mut rng)).collect()
            } else {
                Vec::new()
            };
            members.push(Member {
                operators: ops
                    .iter()
                    .enumerate()
                    .map(|(k, o)| Operator {
                        name: format!("{member}-operator-{}", k + 1),
                        key: Ed25519Key(o.verifying_key().to_bytes()),
                    })
                    .collect(),
                ..ks.manifest_entry(n.clone(), role, format!("127.0.0.1:{}", 7400 + i))
            });
            operators.insert(n, ops);
        }
        let manifest = Manifest {
            federation: "kobling-testing".into(),
            portals: Vec::new(),
            members,
            authorities: vec![kobling_protocol::manifest::Authority {
                name: "access office (testing)".into(),
                key: Ed25519Key(authority().verifying_key().to_bytes()),
            }],
            domains: Vec::new(),
        };
        manifest
            .validate()
            .map_err(|e| TestingError::Unexpected(e.to_string()))?;
        std::fs::create_dir_all(dir.join("extracts"))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            operators,
            researcher: SigningKey::generate(&mut rng),
            researcher_hpke: HpkeSecretKey::generate(&mut rng),
            nonces: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// A copy of this federation's keys (no node state) under `dir`: the
    /// same members, operators and researcher, for a second, independent
    /// run.
    ///
    /// # Errors
    ///
    /// An I/O error.
    pub fn copy_keys(&self, dir: &Path) -> Result<Self, TestingError> {
        for m in &self.manifest.members {
            let from = self.dir.join(m.name.as_str()).join("keys");
            let to = dir.join(m.name.as_str()).join("keys");
            std::fs::create_dir_all(&to)?;
            for d in [dir.join(m.name.as_str()), to.clone()] {
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
            }
            for e in std::fs::read_dir(&from)? {
                let e = e?;
                if e.file_type()?.is_file() {
                    std::fs::copy(e.path(), to.join(e.file_name()))?;
                }
            }
        }
        std::fs::create_dir_all(dir.join("extracts"))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest: self.manifest.clone(),
            operators: self.operators.clone(),
            researcher: self.researcher.clone(),
            researcher_hpke: HpkeSecretKey::from_bytes(*self.researcher_hpke.to_secret_bytes()),
            nonces: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The keystore of `member`, opened from its directory.
    ///
    /// # Errors
    ///
    /// [`TestingError::Keystore`].
    pub fn keystore(&self, member: &str) -> Result<Keystore, TestingError> {
        Ok(Keystore::open(self.dir.join(member).join("keys"), None)?)
    }

    /// Starts a network with `config`'s chunk size, faults and seed, and
    /// runs the project on it: the outcome, and the network (still
    /// running, for what the test does next).
    ///
    /// # Errors
    ///
    /// As [`run_project`](Self::run_project).
    pub fn run(
        &self,
        extracts: &[&Extract],
        config: &ProjectConfig,
    ) -> Result<(RunOutcome, Net), TestingError> {
        let mut net = self.start(config.chunk_size, config.faults, config.seed)?;
        let out = self.run_project(&mut net, extracts, config)?;
        Ok((out, net))
    }

    /// As [`run`](Self::run) on a chain v1 network
    /// ([`start_v1`](Self::start_v1)): a v1 transcript for the verifier's
    /// tests.
    ///
    /// # Errors
    ///
    /// As [`run_project`](Self::run_project).
    pub fn run_v1(
        &self,
        extracts: &[&Extract],
        config: &ProjectConfig,
    ) -> Result<(RunOutcome, Net), TestingError> {
        let mut net = self.start_v1(config.chunk_size, config.faults, config.seed)?;
        let out = self.run_project(&mut net, extracts, config)?;
        Ok((out, net))
    }

    /// The extract directory every node reads approved files from.
    pub fn extracts(&self) -> PathBuf {
        self.dir.join("extracts")
    }

    /// Writes `extract` as CSV to `file` in the extract directory.
    ///
    /// # Errors
    ///
    /// An I/O error.
    pub fn write_extract(&self, extract: &Extract, file: &str) -> Result<(), TestingError> {
        std::fs::write(
            self.extracts().join(file),
            kobling_sim::population::render_csv(extract),
        )?;
        Ok(())
    }

    /// The keystore directories of every member, for the ground truth.
    pub fn keystores(&self) -> Vec<PathBuf> {
        self.manifest
            .members
            .iter()
            .map(|m| self.dir.join(m.name.as_str()).join("keys"))
            .collect()
    }

    /// Starts every node on an in-memory network (chain v2, PROTOCOL.md
    /// §6a).
    ///
    /// # Errors
    ///
    /// [`TestingError`] if a node cannot start.
    pub fn start(&self, chunk_size: u32, faults: Faults, seed: u64) -> Result<Net, TestingError> {
        self.start_chain(chunk_size, faults, seed, true)
    }

    /// As [`start`](Self::start), with every node announcing its lists for
    /// chain v1 (§6: per-chunk proofs) instead of chain v2, to make v1
    /// transcripts for the verifier's tests (`audit verify` accepts both).
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn start_v1(
        &self,
        chunk_size: u32,
        faults: Faults,
        seed: u64,
    ) -> Result<Net, TestingError> {
        self.start_chain(chunk_size, faults, seed, false)
    }

    fn start_chain(
        &self,
        chunk_size: u32,
        faults: Faults,
        seed: u64,
        chain_v2: bool,
    ) -> Result<Net, TestingError> {
        let dirs = self
            .manifest
            .members
            .iter()
            .map(|m| (m.name.clone(), self.dir.join(m.name.as_str())))
            .collect();
        let config = EngineConfig {
            chunk_size,
            background_preparation: false,
            delivery_batch: 64,
            test_mode: true,
            extracts: Some(self.extracts()),
            chain_v2,
            reservations: None,
            stream_chunks_per_tick: usize::MAX,
        };
        Net::start(self.manifest.clone(), dirs, config, faults, seed, EPOCH)
    }

    /// The order of `project` over `extracts`, each register asked for
    /// every column of its extract.
    ///
    /// # Errors
    ///
    /// [`TestingError::Unexpected`] for a value that does not fit.
    pub fn order(
        &self,
        project: &str,
        cohort: &str,
        extracts: &[&Extract],
    ) -> Result<ProjectOrder, TestingError> {
        self.order_with(project, cohort, extracts, OrderTerms::default())
    }

    /// [`order`](Self::order) with other `terms`.
    ///
    /// # Errors
    ///
    /// As [`order`](Self::order).
    pub fn order_with(
        &self,
        project: &str,
        cohort: &str,
        extracts: &[&Extract],
        terms: OrderTerms,
    ) -> Result<ProjectOrder, TestingError> {
        let linker = self
            .manifest
            .linker()
            .ok_or_else(|| TestingError::Unexpected("no linker".into()))?;
        let registers = extracts
            .iter()
            .map(|e| {
                let variables = e.columns[1..]
                    .iter()
                    .map(|c| text(c))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(RegisterRequest {
                    register: name(e.name)?,
                    variables: BoundedVec::new(variables)
                        .map_err(|e| TestingError::Unexpected(e.to_string()))?,
                })
            })
            .collect::<Result<Vec<_>, TestingError>>()?;
        Ok(ProjectOrder {
            project: ProjectId::new(project)
                .map_err(|e| TestingError::Unexpected(e.to_string()))?,
            title: text("in-memory federation")?,
            legal_basis: text("REK test")?,
            manifest_digest: self.manifest.digest(),
            linker: linker.name.clone(),
            registers: BoundedVec::new(registers)
                .map_err(|e| TestingError::Unexpected(e.to_string()))?,
            cohort: text(cohort)?,
            expires: terms.expires,
            researcher_signing_key: Ed25519Key(self.researcher.verifying_key().to_bytes()),
            researcher_hpke_key: X25519Key(*self.researcher_hpke.public_key().as_bytes()),
            test_mode: terms.test_mode,
            grant: None,
            delivery: None,
            pseudonymous: BoundedVec::default(),
            identified: None,
        }
        .granted_by(&authority()))
    }

    /// A request for node `to`, with the next nonce (unsigned: sign it
    /// with the researcher's or an operator's key).
    pub fn request_for(
        &self,
        to: &Name,
        project: &ProjectId,
        action: Action,
        now: UnixTime,
    ) -> Request {
        let n = self
            .nonces
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let mut nonce = [0u8; kobling_protocol::messages::NONCE_LEN];
        nonce[..8].copy_from_slice(&n.to_le_bytes());
        Request {
            project: project.clone(),
            action,
            time: now,
            node: to.clone(),
            manifest: self.manifest.digest(),
            nonce,
        }
    }

    /// The researcher's signed submission of `order`.
    pub fn submit_message(&self, order: &ProjectOrder, now: UnixTime) -> Message {
        let signed = Statement {
            project: order.project.clone(),
            time: now,
            signer: Signer::Researcher(order.researcher_signing_key),
            body: Body::Order(order.clone()),
        }
        .sign(&self.researcher);
        Message::SubmitOrder(signed)
    }

    /// Operator `operator`'s approval of `order` at `register`, naming
    /// `file` in the extract directory, in a fresh envelope (send a new
    /// one for every attempt: a node takes an envelope once), carrying
    /// `order_entry`, the order's first transcript entry as the linker
    /// recorded it.
    ///
    /// # Errors
    ///
    /// [`TestingError`] if the file cannot be read.
    pub fn approval_message(
        &self,
        order: &ProjectOrder,
        order_entry: &Entry,
        extract: &Extract,
        file: &str,
        operator: usize,
        now: UnixTime,
    ) -> Result<Message, TestingError> {
        let register = name(extract.name)?;
        let path = self.extracts().join(file);
        let digest = file_digest(
            path.to_str()
                .ok_or_else(|| TestingError::Unexpected("path not UTF-8".into()))?,
        )
        .map_err(|e| TestingError::Unexpected(e.to_string()))?;
        let columns = extract
            .columns
            .iter()
            .map(|c| text(c))
            .collect::<Result<Vec<_>, _>>()?;
        let approval = Approval {
            register: register.clone(),
            order: order.digest(),
            extract: digest,
            rows: extract.rows.len() as u64,
            columns: BoundedVec::new(columns)
                .map_err(|e| TestingError::Unexpected(e.to_string()))?,
        };
        let key = self
            .operators
            .get(&register)
            .and_then(|ops| ops.get(operator))
            .ok_or_else(|| TestingError::Unexpected(format!("no operator {operator}")))?;
        let signed = Statement {
            project: order.project.clone(),
            time: now,
            signer: Signer::Operator {
                register,
                key: Ed25519Key(key.verifying_key().to_bytes()),
            },
            body: Body::Approval(approval),
        }
        .sign(key);
        self.approval_envelope(signed, order_entry, operator, file, now)
    }

    /// `signed`, an approval by operator `operator` of its register, in a
    /// fresh envelope naming `file` in the extract directory, carrying the
    /// order's entry `order_entry`.
    ///
    /// # Errors
    ///
    /// [`TestingError::Unexpected`] if `signed` is not an operator's
    /// statement, or its register has no such operator.
    pub fn approval_envelope(
        &self,
        signed: SignedStatement,
        order_entry: &Entry,
        operator: usize,
        file: &str,
        now: UnixTime,
    ) -> Result<Message, TestingError> {
        let Signer::Operator { register, .. } = &signed.statement.signer else {
            return Err(TestingError::Unexpected(
                "not an operator's statement".into(),
            ));
        };
        let key = self
            .operators
            .get(register)
            .and_then(|ops| ops.get(operator))
            .ok_or_else(|| TestingError::Unexpected(format!("no operator {operator}")))?;
        let envelope = self
            .request_for(
                register,
                &signed.statement.project,
                Action::Approve {
                    statement: signed.statement.digest(),
                    extract: text(file)?,
                },
                now,
            )
            .sign(key);
        Ok(Message::Approve {
            statement: signed,
            request: Box::new(envelope),
            order: Box::new(order_entry.clone()),
        })
    }

    /// The researcher's signed request.
    ///
    /// # Errors
    ///
    /// [`TestingError::Unexpected`] for an invalid project id.
    pub fn request(
        &self,
        project: &str,
        action: Action,
        now: UnixTime,
    ) -> Result<Message, TestingError> {
        let linker = self
            .manifest
            .linker()
            .map(|l| l.name.clone())
            .ok_or_else(|| TestingError::Unexpected("no linker".into()))?;
        let project =
            ProjectId::new(project).map_err(|e| TestingError::Unexpected(e.to_string()))?;
        let req = self
            .request_for(&linker, &project, action.clone(), now)
            .sign(&self.researcher);
        Ok(match action {
            Action::Fetch => Message::Fetch(req),
            Action::Close => Message::Close(req),
            _ => Message::Status(req),
        })
    }

    /// Submits the order of `config`'s project over `extracts` and has two
    /// operators of every register approve it (the extract files written
    /// to the extract directory first), retrying while a register has not
    /// received the order yet.
    ///
    /// # Errors
    ///
    /// [`TestingError`] for a refused order or approval.
    pub fn order_and_approve(
        &self,
        net: &mut Net,
        extracts: &[&Extract],
        config: &ProjectConfig,
    ) -> Result<ProjectOrder, TestingError> {
        let order = self.order(&config.project, &config.cohort, extracts)?;
        self.submit_and_approve(net, order, extracts, config)
    }

    /// [`order_and_approve`](Self::order_and_approve) of a given `order`
    /// (e.g. an identified one, see `docs/identified.md`).
    ///
    /// # Errors
    ///
    /// As [`order_and_approve`](Self::order_and_approve).
    pub fn submit_and_approve(
        &self,
        net: &mut Net,
        order: ProjectOrder,
        extracts: &[&Extract],
        config: &ProjectConfig,
    ) -> Result<ProjectOrder, TestingError> {
        let now = net.now();
        expect_ack(
            "the order",
            net.client(&order.linker, self.submit_message(&order, now))?,
        )?;
        // The order lives at the linker alone until the first approval:
        // each approval carries its entry, as `project approve` does.
        let order_entry = net
            .transcript(&order.linker, &order.project)?
            .into_iter()
            .next()
            .ok_or_else(|| TestingError::Unexpected("the linker holds no order".into()))?;
        for e in extracts {
            let file = format!("{}-{}.csv", config.project, e.name);
            self.write_extract(e, &file)?;
            for operator in 0..2 {
                // A fresh envelope for every attempt, until the register
                // has the order.
                let until = net.clock_ms().saturating_add(60_000);
                let replies = loop {
                    let msg =
                        self.approval_message(&order, &order_entry, e, &file, operator, net.now())?;
                    let replies = net.client(&name(e.name)?, msg)?;
                    let not_ready = replies
                        .first()
                        .is_some_and(|m| m.refusal_code() == Some(RefusalCode::NotReady));
                    if !not_ready {
                        break replies;
                    }
                    if net.clock_ms() > until {
                        return Err(TestingError::Timeout(60_000));
                    }
                    net.run_for(100)?;
                };
                expect_ack(&format!("{}'s approval", e.name), replies)?;
            }
        }
        Ok(order)
    }

    /// Orders, approves and runs a project over `net`, then fetches and
    /// verifies the delivery as the researcher's client does.
    ///
    /// # Errors
    ///
    /// [`TestingError`]: a refused order or approval, a run that stalls
    /// (no message delivered for a virtual minute) or does not finish
    /// within ten virtual minutes, or a delivery that does not verify.
    pub fn run_project(
        &self,
        net: &mut Net,
        extracts: &[&Extract],
        config: &ProjectConfig,
    ) -> Result<RunOutcome, TestingError> {
        let start = net.clock_ms();
        let order = self.order_and_approve(net, extracts, config)?;
        self.run_to_delivery(net, &order, config, start)
    }

    /// Runs an ordered and approved project until it is deliverable, then
    /// fetches and verifies the delivery as the researcher's client does
    /// (`start`: the virtual time the run began).
    ///
    /// # Errors
    ///
    /// As [`run_project`](Self::run_project).
    pub fn run_to_delivery(
        &self,
        net: &mut Net,
        order: &ProjectOrder,
        config: &ProjectConfig,
        start: u64,
    ) -> Result<RunOutcome, TestingError> {
        let (project, linker) = (order.project.clone(), order.linker.clone());
        let manifest = self.manifest.clone();
        let mut last = (net.stats().delivered, net.clock_ms());
        let mut next_look = 0;
        net.run_until(600_000, |net| {
            // The linker's transcript is read at most every 50 virtual ms.
            if net.clock_ms() < next_look {
                return Ok(false);
            }
            next_look = net.clock_ms() + 50;
            let entries = net.transcript(&linker, &project)?;
            let view = ProjectView::new(&manifest, &entries);
            if view.phase() == Phase::Closed {
                return Err(TestingError::Unexpected(format!(
                    "{project} closed before delivery: {:?}",
                    net.refusals()
                )));
            }
            let delivered = net.stats().delivered;
            if delivered != last.0 {
                last = (delivered, net.clock_ms());
            } else if net.clock_ms() > last.1 + 60_000 {
                return Err(TestingError::Unexpected(format!(
                    "{project} stalled before delivery; refusals: {:?}",
                    net.refusals()
                )));
            }
            Ok(view.phase().is_deliverable())
        })?;
        let replies = net.client(
            &linker,
            self.request(&config.project, Action::Fetch, net.now())?,
        )?;
        let delivered = quic::open_delivery(&self.manifest, &self.researcher_hpke, replies)?;
        let transcript = transcript::decode_file(&delivered.transcript_file)
            .map_err(|e| TestingError::Unexpected(e.to_string()))?;
        Ok(RunOutcome {
            tables: delivered.tables,
            transcript,
            transcript_file: delivered.transcript_file,
            verified: delivered.verified,
            virtual_ms: net.clock_ms() - start,
        })
    }
}

fn expect_ack(what: &str, replies: Vec<Message>) -> Result<(), TestingError> {
    match replies.first() {
        Some(Message::Ack { .. }) => Ok(()),
        Some(Message::Refused { code, detail }) => Err(TestingError::Unexpected(format!(
            "{what} was refused ({code}): {detail}",
            code = code.as_str(),
            detail = detail.as_str()
        ))),
        Some(other) => Err(TestingError::Unexpected(format!(
            "{what} was answered with {}",
            other.kind()
        ))),
        None => Err(TestingError::Unexpected(format!("{what} got no answer"))),
    }
}
