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
mod files;
mod messages;
mod net;
mod pseudo;
pub mod quic;
mod researcher_list;
mod run;

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use ed25519_dalek::SigningKey;
use kobling_keys::{KdfParams, Keystore, KeystoreError};
use kobling_protocol::{
    bounded::BoundedString,
    link::Lnr,
    manifest::{Ed25519Key, Manifest, Member, Operator, Portal, Role},
    messages::Message,
    seal::HpkeSecretKey,
    transcript::{Entry, Trailer, VerifiedTranscript},
    types::{Name, UnixTime},
};
use kobling_sim::population::Extract;
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

pub use self::files::{files_contain, refusal, walk};
pub use self::messages::order_message;
pub use self::net::{Faults, Net, NetStats, Observer, Tamper, RETRY_TIMEOUT_MS, TICK_MS};
pub use self::pseudo::INVALID_PSEUDONYM;
use crate::{
    engine::{EngineConfig, EngineError},
    store::StoreError,
};

/// One CSV line as `kobling innsyn open` writes it (fields with a comma,
/// quote or line break quoted), for tests comparing its output.
pub fn csv_line(fields: &[String]) -> String {
    crate::cmd::innsyn::csv_line(fields)
}

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

    /// This federation with innsyn portal `portal`, whose key is `key`,
    /// in its manifest.
    ///
    /// # Errors
    ///
    /// [`TestingError::Unexpected`] if the manifest does not validate.
    pub fn with_portal(mut self, portal: &str, key: &SigningKey) -> Result<Self, TestingError> {
        self.manifest.portals.push(Portal {
            name: name(portal)?,
            key: Ed25519Key(key.verifying_key().to_bytes()),
        });
        self.manifest
            .validate()
            .map_err(|e| TestingError::Unexpected(e.to_string()))?;
        Ok(self)
    }

    /// The keystore of `member`, opened from its directory.
    ///
    /// # Errors
    ///
    /// [`TestingError::Keystore`].
    pub fn keystore(&self, member: &str) -> Result<Keystore, TestingError> {
        Ok(Keystore::open(self.dir.join(member).join("keys"), None)?)
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
