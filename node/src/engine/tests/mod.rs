//! A federation of engines in one process, with messages passed in memory:
//! the deterministic harness for the node's behaviour (the QUIC transport
//! is tested on its own).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use kobling_keys::Keystore;
use kobling_protocol::{
    bounded::{BoundedString, BoundedVec},
    link::Lnr,
    messages::{Action, Message, Request, MAX_CLOCK_SKEW},
    project::{Duty, Phase, ProjectView},
    refusal::RefusalCode,
    share::Domain,
    transcript::{Body, ProjectOrder, SignedStatement, Signer, Statement},
    types::{ChunkIndex, Digest, HopIndex, ListName, Name, ProjectId, UnixTime},
};
use kobling_sim::population::{generate, Extract, Population, PopulationConfig};

use super::{Engine, EngineConfig, Peer};
use crate::{
    researcher::open_delivery,
    store::Store,
    testing::{authority, Federation, OrderTerms},
};

const REGISTERS: [&str; 3] = ["NPR", "KPR", "SSB"];
const NOW: UnixTime = UnixTime(crate::testing::EPOCH);

fn name(s: &str) -> Name {
    Name::new(s).expect("valid")
}

fn list_name(s: &str) -> ListName {
    ListName::new(s).expect("valid")
}

/// Engines over `kobling_node::testing`'s keys, operators, researcher and
/// builders, driven directly (`pump`) so that tests can reach into them.
struct Fed {
    dir: tempfile::TempDir,
    keys: Federation,
    engines: BTreeMap<Name, Engine>,
    pop: Population,
    /// The expiry date put in orders.
    expires: UnixTime,
    /// Prepare lists on threads (as the daemon does).
    background: bool,
    /// A node whose list jobs `pump` does not wait for.
    held: Option<Name>,
    /// Nodes (re)started without test mode, as in production.
    production: BTreeSet<Name>,
    /// Orders ask for test mode.
    test_orders: bool,
    /// Chunks of a node's streamed list made per tick.
    per_tick: usize,
}

/// The manifest, operators and researcher are the fixture's.
impl std::ops::Deref for Fed {
    type Target = Federation;

    fn deref(&self) -> &Federation {
        &self.keys
    }
}

impl std::ops::DerefMut for Fed {
    fn deref_mut(&mut self) -> &mut Federation {
        &mut self.keys
    }
}

impl Fed {
    fn new(persons: usize) -> Fed {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = Federation::create(dir.path(), &REGISTERS, 11).expect("keys");
        let pop = generate(&PopulationConfig {
            persons,
            seed: 4,
            ..Default::default()
        });
        for r in REGISTERS {
            let extract = pop.extract(r).expect("extract");
            keys.write_extract(extract, &format!("{r}.csv"))
                .expect("write");
        }
        let mut fed = Fed {
            dir,
            keys,
            engines: BTreeMap::new(),
            pop,
            expires: OrderTerms::default().expires,
            background: false,
            held: None,
            production: BTreeSet::new(),
            test_orders: false,
            per_tick: usize::MAX,
        };
        for m in REGISTERS.iter().chain(std::iter::once(&"LINKER")) {
            fed.start(m);
        }
        fed
    }

    /// (Re)starts a node from its directory, as after a crash.
    fn start(&mut self, m: &str) {
        let base = self.dir.path().join(m);
        let ks = Keystore::open(base.join("keys"), None).expect("keystore");
        let store = Store::open(&base).expect("store");
        let mut seed = [0u8; 32];
        seed[..m.len()].copy_from_slice(m.as_bytes());
        let config = EngineConfig {
            chunk_size: 64,
            background_preparation: self.background,
            // Small batches, so that every delivery crosses batches.
            delivery_batch: 7,
            test_mode: !self.production.contains(&name(m)),
            extracts: Some(self.dir.path().join("extracts")),
            stream_chunks_per_tick: self.per_tick,
            ..EngineConfig::default()
        };
        let engine =
            Engine::new(name(m), self.manifest.clone(), ks, store, seed, config).expect("engine");
        self.engines.insert(name(m), engine);
    }

    fn extract(&self, register: &str) -> &Extract {
        self.pop.extract(register).expect("extract")
    }

    fn order(&self, project: &str) -> ProjectOrder {
        let extracts: Vec<&Extract> = REGISTERS.iter().map(|r| self.extract(r)).collect();
        let terms = OrderTerms {
            expires: self.expires,
            test_mode: self.test_orders,
        };
        self.keys
            .order_with(project, "NPR", &extracts, terms)
            .expect("order")
    }

    fn submit(&mut self, project: &str) -> Message {
        let msg = self.keys.submit_message(&self.order(project), NOW);
        self.client("LINKER", msg).remove(0)
    }

    fn approve(&mut self, project: &str, register: &str, operator: usize) -> Message {
        self.approve_at(project, register, operator, NOW)
    }

    fn approve_at(
        &mut self,
        project: &str,
        register: &str,
        operator: usize,
        now: UnixTime,
    ) -> Message {
        let msg = self.approval_message_at(project, register, operator, now);
        self.client_at(register, msg, now).remove(0)
    }

    fn approval_message(&self, project: &str, register: &str, operator: usize) -> Message {
        self.approval_message_at(project, register, operator, NOW)
    }

    fn approval_message_at(
        &self,
        project: &str,
        register: &str,
        operator: usize,
        now: UnixTime,
    ) -> Message {
        let order = self.order(project);
        let entry = self.order_entry(&order.project);
        let file = format!("{register}.csv");
        self.keys
            .approval_message(&order, &entry, self.extract(register), &file, operator, now)
            .expect("approval")
    }

    /// The order's entry an approval carries: the linker's, or else the
    /// one a register keeps.
    fn order_entry(&self, project: &ProjectId) -> kobling_protocol::transcript::Entry {
        self.engines[&name("LINKER")]
            .transcript(project)
            .expect("entries")
            .into_iter()
            .next()
            .unwrap_or_else(|| self.order_entry_kept(project))
    }

    /// `signed`, an approval by `operator` of its register, sent in a
    /// fresh envelope naming `extract`.
    fn approval_named(
        &self,
        signed: SignedStatement,
        operator: usize,
        extract: &str,
        now: UnixTime,
    ) -> Message {
        let order = self.order_entry(&signed.statement.project);
        self.keys
            .approval_envelope(signed, &order, operator, extract, now)
            .expect("an operator's approval")
    }

    /// The order entry an approval carries when the linker holds none:
    /// the one a register holds (tests that approve after the linker
    /// forgot, or with the linker away).
    fn order_entry_kept(&self, project: &ProjectId) -> kobling_protocol::transcript::Entry {
        REGISTERS
            .iter()
            .find_map(|r| {
                self.engines[&name(r)]
                    .transcript(project)
                    .expect("entries")
                    .into_iter()
                    .next()
            })
            .expect("some node holds the order")
    }

    /// A request for node `to`, with a fresh nonce.
    fn request_for(&self, to: &str, project: &str, action: Action, now: UnixTime) -> Request {
        let project = ProjectId::new(project).expect("valid");
        self.keys.request_for(&name(to), &project, action, now)
    }

    fn request(&mut self, project: &str, action: Action) -> Vec<Message> {
        let msg = self.keys.request(project, action, NOW).expect("request");
        self.client("LINKER", msg)
    }

    fn client(&mut self, to: &str, msg: Message) -> Vec<Message> {
        self.client_at(to, msg, NOW)
    }

    fn client_at(&mut self, to: &str, msg: Message, now: UnixTime) -> Vec<Message> {
        self.engines
            .get_mut(&name(to))
            .expect("engine")
            .handle(&Peer::Client, msg, now)
            .expect("no internal error")
    }

    /// Ticks every node and delivers queued messages until nothing moves.
    /// `crash` is called after every round and may restart nodes.
    fn pump_with(&mut self, mut crash: impl FnMut(&mut Fed, usize)) {
        for round in 0..10_000 {
            let names: Vec<Name> = self.engines.keys().cloned().collect();
            for n in &names {
                self.engines
                    .get_mut(n)
                    .expect("engine")
                    .tick(NOW)
                    .expect("tick");
            }
            let mut progress = 0;
            for src in &names {
                let mut engine = self.engines.remove(src).expect("engine");
                let mut blocked = HashSet::new();
                let queued: Vec<(i64, Name, Message)> = names
                    .iter()
                    .flat_map(|dest| {
                        engine
                            .outbox_to(dest, 64)
                            .expect("outbox")
                            .into_iter()
                            .map(|(id, m)| (id, dest.clone(), m))
                    })
                    .collect();
                for (id, dest, msg) in queued {
                    if blocked.contains(&dest) {
                        continue;
                    }
                    let target = if dest == *src {
                        &mut engine
                    } else {
                        self.engines.get_mut(&dest).expect("destination")
                    };
                    let reply = target
                        .handle(&Peer::Member(src.clone()), msg, NOW)
                        .expect("no internal error");
                    match &reply[0] {
                        Message::Ack { .. } => {
                            engine.acked(id).expect("ack");
                            progress += 1;
                        }
                        m if m.refusal_code() == Some(RefusalCode::NotReady) => {
                            blocked.insert(dest);
                        }
                        Message::Refused { code, detail } => {
                            panic!("{dest} refused a message from {src}: {code}: {detail}")
                        }
                        other => panic!("unexpected reply {other:?}"),
                    }
                }
                self.engines.insert(src.clone(), engine);
            }
            crash(self, round);
            if progress == 0 {
                let preparing = self
                    .engines
                    .iter()
                    .any(|(n, e)| Some(n) != self.held.as_ref() && e.preparing());
                if !preparing {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        panic!("the federation did not settle");
    }

    fn pump(&mut self) {
        self.pump_with(|_, _| {});
    }

    fn duties(&self, project: &str, who: &str) -> Vec<Duty> {
        let entries = self.engines[&name("LINKER")]
            .transcript(&ProjectId::new(project).expect("valid"))
            .expect("entries");
        ProjectView::new(&self.manifest, &entries).duties(&name(who))
    }

    fn expected_lnr(&self, project: &str) -> Vec<Lnr> {
        let keystores: Vec<PathBuf> = REGISTERS
            .iter()
            .chain(std::iter::once(&"LINKER"))
            .map(|m| self.dir.path().join(m).join("keys"))
            .collect();
        kobling_sim::truth::lnr_from_keystores(
            &keystores,
            &ProjectId::new(project).expect("valid"),
            &self.pop,
        )
        .expect("shares")
    }

    fn check_delivery(&mut self, project: &str) {
        let replies = self.request(project, Action::Fetch);
        let delivered =
            open_delivery(&self.manifest, &self.researcher_hpke, replies).expect("delivery opens");
        let lnr_of = self.expected_lnr(project);
        let cohort = self.pop.members("NPR");
        for r in REGISTERS {
            let mut want: BTreeMap<Lnr, Vec<Vec<String>>> = BTreeMap::new();
            for (person, rows) in self.pop.rows_by_person(r) {
                if cohort.contains(&person) {
                    want.insert(lnr_of[person], rows);
                }
            }
            let mut got: BTreeMap<Lnr, Vec<Vec<String>>> = BTreeMap::new();
            for (lnr, row) in &delivered.tables[&list_name(r)].rows {
                got.entry(*lnr).or_default().push(row.clone());
            }
            assert_eq!(
                got, want,
                "{r}: the delivered rows differ from the ground truth"
            );
        }
        assert!(delivered.verified.delivered);
        // The delivery was spooled to a scratch file, removed once read.
        let leftovers: Vec<_> = std::fs::read_dir(self.dir.path().join("LINKER"))
            .expect("linker dir")
            .filter_map(|e| {
                let name = e.expect("entry").file_name().to_string_lossy().into_owned();
                name.starts_with("staging-").then_some(name)
            })
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

fn approve_all(fed: &mut Fed, project: &str) {
    for r in REGISTERS {
        for op in 0..2 {
            assert!(matches!(fed.approve(project, r, op), Message::Ack { .. }));
        }
    }
}

fn refused_with(reply: &Message) -> Option<RefusalCode> {
    reply.refusal_code()
}

mod admission;
mod cohort;
mod fetch;
mod flow;
mod lifecycle;
mod requests;
mod stream;

/// Rows about `project` in the node's `state.db`, over every table with a
/// `project` column.
fn rows_about(node: &Path, project: &str) -> i64 {
    let db = rusqlite::Connection::open_with_flags(
        node.join("state.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("state.db");
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("tables");
    let mut rows = 0;
    for t in tables {
        let has_project: bool = db
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = 'project'",
                [&t],
                |r| r.get::<_, i64>(0),
            )
            .expect("columns")
            > 0;
        if has_project {
            rows += db
                .query_row(
                    &format!("SELECT COUNT(*) FROM {t} WHERE project = ?1"),
                    [project],
                    |r| r.get::<_, i64>(0),
                )
                .expect("count");
        }
    }
    rows
}

/// The files under a node's directory other than its state database.
fn files_of(node: &Path) -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("dir").flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else if !path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("state.db"))
            {
                out.insert(path);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(node, &mut out);
    out
}
