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
    types::{ChunkIndex, Digest, HopIndex, Name, ProjectId, UnixTime},
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
            for (lnr, row) in &delivered.tables[&name(r)].rows {
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

#[test]
fn a_project_runs_between_engines_and_the_researcher_gets_exactly_the_cohort() {
    let mut fed = Fed::new(500);
    assert!(matches!(fed.submit("P-1"), Message::Ack { .. }));
    fed.pump();
    approve_all(&mut fed, "P-1");
    fed.pump();
    assert_eq!(fed.duties("P-1", "LINKER"), vec![Duty::Deliver]);
    fed.check_delivery("P-1");

    // Close: every node shreds, after which nothing can be fetched.
    assert!(matches!(
        fed.request("P-1", Action::Close)[0],
        Message::Ack { .. }
    ));
    fed.pump();
    let entries = fed.engines[&name("LINKER")]
        .transcript(&ProjectId::new("P-1").expect("valid"))
        .expect("entries");
    let shredded: BTreeSet<_> = entries
        .iter()
        .filter_map(|e| match &e.signed.statement.body {
            Body::Shredded(s) => Some(s.member.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(shredded.len(), 4, "every key holder shredded");
    match &fed.request("P-1", Action::Fetch)[0] {
        m @ Message::Refused { .. } => assert_eq!(m.refusal_code(), Some(RefusalCode::Closed)),
        other => panic!("a fetch after close was served: {other:?}"),
    }
}

#[test]
fn one_approval_or_the_same_operator_twice_does_not_start_a_list() {
    let mut fed = Fed::new(200);
    fed.submit("P-2");
    fed.pump();
    fed.approve("P-2", "NPR", 0);
    fed.pump();
    assert_eq!(
        fed.duties("P-2", "NPR"),
        vec![Duty::AwaitApprovals { approvals: 1 }]
    );
    fed.approve("P-2", "NPR", 0);
    fed.pump();
    assert_eq!(
        fed.duties("P-2", "NPR"),
        vec![Duty::AwaitApprovals { approvals: 1 }],
        "the same operator twice is one approval"
    );
    let entries = fed.engines[&name("LINKER")]
        .transcript(&ProjectId::new("P-2").expect("valid"))
        .expect("entries");
    assert!(!entries.iter().any(|e| matches!(e.signed.statement.body, Body::ListAnnounced(_) | Body::Commitment(_) if matches!(&e.signed.statement.signer, Signer::Node(n) if *n == name("NPR")))));
}

#[test]
fn a_chunk_for_a_project_this_node_has_not_approved_is_refused() {
    let mut fed = Fed::new(200);
    fed.submit("P-3");
    fed.pump();
    // Only NPR's operators approve; KPR's have not.
    fed.approve("P-3", "NPR", 0);
    fed.approve("P-3", "NPR", 1);
    fed.pump();
    let kpr = fed.engines.get_mut(&name("KPR")).expect("engine");
    let chunk = kobling_protocol::hop::PointChunk {
        project: ProjectId::new("P-3").expect("valid"),
        list: name("NPR"),
        hop: HopIndex(0),
        chunk: ChunkIndex(0),
        input: BoundedVec::default(),
        output: BoundedVec::default(),
        proof: None,
    };
    match &kpr
        .handle(
            &Peer::Member(name("NPR")),
            Message::Points(chunk.clone()),
            NOW,
        )
        .expect("handled")[0]
    {
        m @ Message::Refused { .. } => assert_eq!(m.refusal_code(), Some(RefusalCode::NotReady)),
        other => panic!("KPR processed a foreign list without its own approvals: {other:?}"),
    }
    // And a chunk from a member that is not the list's previous hop is refused for good.
    match &kpr
        .handle(&Peer::Member(name("SSB")), Message::Points(chunk), NOW)
        .expect("handled")[0]
    {
        m @ Message::Refused { .. } => {
            assert_eq!(m.refusal_code(), Some(RefusalCode::UnexpectedSender))
        }
        other => panic!("accepted a chunk from the wrong sender: {other:?}"),
    }
}

#[test]
fn a_member_cannot_speak_for_another() {
    let mut fed = Fed::new(100);
    fed.submit("P-4");
    fed.pump();
    // KPR forwards a statement signed by NPR's node key.
    let npr_key = SigningKey::from_bytes(
        &Keystore::open(fed.dir.path().join("NPR").join("keys"), None)
            .expect("ks")
            .signing_key()
            .to_bytes(),
    );
    let p = ProjectId::new("P-4").expect("valid");
    let body = Body::Commitment(kobling_protocol::transcript::KeyCommitment {
        member: name("NPR"),
        domain: Domain::Project(p.clone()),
        key: kobling_protocol::group::WirePoint([1; 32]),
    });
    let signed = Statement {
        project: p,
        time: NOW,
        signer: Signer::Node(name("NPR")),
        body,
    }
    .sign(&npr_key);
    let reply = fed
        .engines
        .get_mut(&name("LINKER"))
        .expect("linker")
        .handle(&Peer::Member(name("KPR")), Message::Statement(signed), NOW)
        .expect("handled");
    match &reply[0] {
        m @ Message::Refused { .. } => {
            assert_eq!(m.refusal_code(), Some(RefusalCode::Impersonation))
        }
        other => panic!("accepted: {other:?}"),
    }
}

#[test]
fn nodes_killed_during_the_chain_finish_with_the_same_delivery() {
    let mut fed = Fed::new(500);
    fed.submit("P-5");
    fed.pump();
    approve_all(&mut fed, "P-5");
    // Restart a different node every few rounds, from its disk state only.
    fed.pump_with(|fed, round| {
        if round % 3 == 1 {
            let victim = ["KPR", "SSB", "LINKER", "NPR"][round / 3 % 4];
            fed.engines.remove(&name(victim));
            fed.start(victim);
        }
    });
    assert_eq!(fed.duties("P-5", "LINKER"), vec![Duty::Deliver]);
    fed.check_delivery("P-5");
}

fn refused_with(reply: &Message) -> Option<RefusalCode> {
    reply.refusal_code()
}

#[test]
fn an_expired_project_is_closed_shredded_and_refuses_approvals_and_fetches() {
    let mut fed = Fed::new(200);
    fed.expires = NOW;
    assert_eq!(
        refused_with(&fed.submit("P-0")),
        Some(RefusalCode::Expired),
        "an order already expired"
    );

    fed.expires = NOW.plus(600);
    assert!(matches!(fed.submit("P-9"), Message::Ack { .. }));
    fed.pump();
    let late = NOW.plus(600);
    assert_eq!(
        refused_with(&fed.approve_at("P-9", "NPR", 0, late)),
        Some(RefusalCode::Expired),
        "an approval at the expiry"
    );
    approve_all(&mut fed, "P-9");
    fed.pump();
    fed.check_delivery("P-9");

    // The linker's first tick after the expiry closes the project; every
    // node then shreds its key and deletes the working data.
    fed.engines
        .get_mut(&name("LINKER"))
        .expect("linker")
        .tick(late)
        .expect("tick");
    fed.pump();
    let project = ProjectId::new("P-9").expect("valid");
    let entries = fed.engines[&name("LINKER")]
        .transcript(&project)
        .expect("entries");
    let view = ProjectView::new(&fed.manifest, &entries);
    assert_eq!(view.phase(), Phase::Closed);
    let shredded: BTreeSet<Name> = entries
        .iter()
        .filter_map(|e| match &e.signed.statement.body {
            Body::Shredded(s) => Some(s.member.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(shredded.len(), REGISTERS.len() + 1, "every member shredded");
    assert_eq!(
        refused_with(&fed.request("P-9", Action::Fetch)[0]),
        Some(RefusalCode::Closed)
    );
    let req = fed
        .request_for("LINKER", project.as_str(), Action::Fetch, late)
        .sign(&fed.researcher);
    assert_eq!(
        refused_with(&fed.client_at("LINKER", Message::Fetch(req), late)[0]),
        Some(RefusalCode::Expired)
    );
}

#[test]
fn a_node_keeps_stepping_other_lists_while_it_prepares_its_own_in_the_background() {
    let mut fed = Fed::new(300);
    fed.background = true;
    for m in REGISTERS.iter().chain(std::iter::once(&"LINKER")) {
        fed.start(m);
    }
    let (release, hold) = std::sync::mpsc::channel();
    fed.engines
        .get_mut(&name("SSB"))
        .expect("SSB")
        .hold_next_list(hold);
    fed.held = Some(name("SSB"));
    fed.submit("P-BG");
    fed.pump();
    approve_all(&mut fed, "P-BG");
    fed.pump();

    // SSB's own list is still being prepared, yet SSB has done its hop on
    // both other lists: they reached the linker.
    assert!(fed.engines[&name("SSB")].preparing());
    let entries = fed.engines[&name("LINKER")]
        .transcript(&ProjectId::new("P-BG").expect("valid"))
        .expect("entries");
    let view = ProjectView::new(&fed.manifest, &entries);
    assert!(view.announcement(&name("SSB")).is_none());
    for list in ["NPR", "KPR"] {
        assert!(view.announcement(&name(list)).is_some(), "{list} announced");
        let ssb_hop = entries.iter().any(|e| match &e.signed.statement.body {
            Body::HopV2(h) => h.list == name(list) && h.member == name("SSB"),
            _ => false,
        });
        assert!(ssb_hop, "SSB stepped {list} while preparing its own list");
    }

    release.send(()).expect("the job waits");
    fed.held = None;
    fed.pump();
    assert_eq!(fed.duties("P-BG", "LINKER"), vec![Duty::Deliver]);
    fed.check_delivery("P-BG");
}

#[test]
fn a_list_being_prepared_is_dropped_when_its_project_closes() {
    let mut fed = Fed::new(200);
    fed.background = true;
    for m in REGISTERS.iter().chain(std::iter::once(&"LINKER")) {
        fed.start(m);
    }
    let (release, hold) = std::sync::mpsc::channel::<()>();
    fed.engines
        .get_mut(&name("SSB"))
        .expect("SSB")
        .hold_next_list(hold);
    fed.held = Some(name("SSB"));
    fed.submit("P-CL");
    fed.pump();
    approve_all(&mut fed, "P-CL");
    fed.pump();
    assert!(fed.engines[&name("SSB")].preparing());
    assert!(matches!(
        fed.request("P-CL", Action::Close)[0],
        Message::Ack { .. }
    ));
    fed.pump();
    assert!(
        !fed.engines[&name("SSB")].preparing(),
        "the job is dropped at shredding"
    );
    drop(release);
    // The stopped job removes its scratch file.
    let scratch = fed.dir.path().join("SSB").join("staging-P-CL.db");
    for _ in 0..400 {
        if !scratch.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(!scratch.exists(), "the scratch file is gone");
    let entries = fed.engines[&name("LINKER")]
        .transcript(&ProjectId::new("P-CL").expect("valid"))
        .expect("entries");
    assert!(entries.iter().all(
        |e| !matches!(&e.signed.statement.body, Body::ListAnnounced(a) if a.list == name("SSB"))
    ));
}

#[test]
fn a_production_node_refuses_a_test_mode_order() {
    // A production linker takes no test-mode order: nothing is recorded.
    let mut fed = Fed::new(60);
    fed.test_orders = true;
    fed.production.insert(name("LINKER"));
    fed.start("LINKER");
    assert_eq!(refused_with(&fed.submit("T-1")), Some(RefusalCode::Order));
    assert!(fed.engines[&name("LINKER")]
        .transcript(&ProjectId::new("T-1").expect("valid"))
        .expect("entries")
        .is_empty());

    // A production register refuses its operators' approval of one (its
    // list would accept synthetic numbers); a test-mode register takes it.
    let mut fed = Fed::new(60);
    fed.test_orders = true;
    fed.production.insert(name("NPR"));
    fed.start("NPR");
    assert!(matches!(fed.submit("T-2"), Message::Ack { .. }));
    fed.pump();
    assert_eq!(
        refused_with(&fed.approve("T-2", "NPR", 0)),
        Some(RefusalCode::Order)
    );
    assert!(matches!(fed.approve("T-2", "KPR", 0), Message::Ack { .. }));
    fed.pump();
    assert_eq!(
        fed.duties("T-2", "NPR"),
        vec![Duty::AwaitApprovals { approvals: 0 }],
        "nothing starts at the production register"
    );

    // An ordinary order runs at production nodes.
    let mut fed = Fed::new(60);
    for m in REGISTERS.iter().chain(std::iter::once(&"LINKER")) {
        fed.production.insert(name(m));
        fed.start(m);
    }
    assert!(matches!(fed.submit("T-3"), Message::Ack { .. }));
    fed.pump();
    approve_all(&mut fed, "T-3");
    fed.pump();
    fed.check_delivery("T-3");
}

#[test]
fn approvals_read_only_regular_files_in_the_extract_directory_and_replays_are_not_hashed_again() {
    use std::sync::mpsc;

    let mut fed = Fed::new(120);
    assert!(matches!(fed.submit("A-1"), Message::Ack { .. }));
    fed.pump();

    // A genuine approval by NPR's first operator, sent again by that
    // operator in envelopes that name other files.
    let genuine = fed.approval_message("A-1", "NPR", 0);
    let Message::Approve { statement, .. } = genuine.clone() else {
        panic!("an approval")
    };
    let extracts = fed.dir.path().join("extracts");
    let fifo = extracts.join("fifo.csv");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let huge = extracts.join("huge.csv");
    std::fs::File::create(&huge)
        .expect("create")
        .set_len(crate::engine::MAX_EXTRACT_BYTES + 1)
        .expect("sparse file");
    std::os::unix::fs::symlink("/etc/passwd", extracts.join("link.csv")).expect("symlink");
    let outside = fed.dir.path().join("NPR").join("outside.csv");
    std::fs::write(&outside, "fnr\n").expect("write");

    let names = [
        "/dev/zero",
        "fifo.csv",
        "huge.csv",
        "link.csv",
        "../NPR/outside.csv",
        "/etc/passwd",
        "no-such-file.csv",
        "",
        ".",
    ];
    let mut texts = BTreeSet::new();
    for bad in names {
        let msg = fed.approval_named(statement.clone(), 0, bad, NOW);
        // Each answer comes at once: a FIFO or /dev/zero would block a
        // reader or never end.
        let mut engine = fed.engines.remove(&name("NPR")).expect("engine");
        let (tx, rx) = mpsc::channel();
        let worker = std::thread::spawn(move || {
            let reply = engine
                .handle(&Peer::Client, msg, NOW)
                .expect("no internal error");
            let _ = tx.send(reply);
            engine
        });
        let reply = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the approval naming {bad:?} did not return"));
        fed.engines
            .insert(name("NPR"), worker.join().expect("worker"));
        assert_eq!(
            reply[0].refusal_code(),
            Some(RefusalCode::Extract),
            "{bad:?}"
        );
        let Message::Refused { detail, .. } = &reply[0] else {
            unreachable!("a refusal")
        };
        texts.insert(detail.as_str().to_string());
    }
    assert_eq!(
        texts.len(),
        1,
        "one text, whatever the file system holds: {texts:?}"
    );

    // The genuine approval is taken; a replay of it is acknowledged
    // without reading the file again (it changed since: a re-hash would
    // refuse it for its digest).
    assert!(matches!(fed.client("NPR", genuine.clone()), v if matches!(v[0], Message::Ack { .. })));
    let path = extracts.join("NPR.csv");
    let original = std::fs::read(&path).expect("read");
    std::fs::write(&path, b"fnr\nchanged\n").expect("write");
    assert!(matches!(fed.client("NPR", genuine)[0], Message::Ack { .. }));
    std::fs::write(&path, original).expect("restore");

    // Another project runs to its delivery meanwhile.
    approve_all(&mut fed, "A-1");
    fed.pump();
    fed.check_delivery("A-1");
}

#[test]
fn a_list_that_repeats_a_pseudonym_closes_the_project_once_naming_the_list() {
    use crate::store::LinkerTable;
    use kobling_protocol::group::WirePoint;

    let mut fed = Fed::new(150);
    assert!(matches!(fed.submit("L-1"), Message::Ack { .. }));
    fed.pump();
    approve_all(&mut fed, "L-1");
    let project = ProjectId::new("L-1").expect("valid");
    let mut tampered = false;
    // When every list passed every hop, and before the linker links: KPR
    // (say) had sent one person twice, so the linker's final points of
    // KPR's list repeat one point.
    fed.pump_with(|fed, _| {
        if tampered || !fed.duties("L-1", "LINKER").contains(&Duty::Link) {
            return;
        }
        let linker = fed.engines.get_mut(&name("LINKER")).expect("linker");
        linker
            .store
            .transaction(|tx| {
                let blobs = tx.blobs(LinkerTable::Final, &project, &name("KPR"))?;
                let mut points: Vec<WirePoint> =
                    postcard::from_bytes(&blobs[0]).expect("final points");
                points[1] = points[0];
                tx.put_blob(
                    LinkerTable::Final,
                    &project,
                    &name("KPR"),
                    0,
                    &postcard::to_allocvec(&points).expect("encode"),
                )
            })
            .expect("tamper");
        tampered = true;
    });
    assert!(tampered, "the chain finished");

    let entries = fed.engines[&name("LINKER")]
        .transcript(&project)
        .expect("entries");
    let reasons: Vec<String> = entries
        .iter()
        .filter_map(|e| match &e.signed.statement.body {
            Body::Closure(c) => Some(c.reason.as_str().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 1, "recorded once: {reasons:?}");
    assert!(
        reasons[0].contains("linkage failed") && reasons[0].contains("KPR"),
        "{reasons:?}"
    );
    assert!(
        !entries
            .iter()
            .any(|e| matches!(e.signed.statement.body, Body::LinkSummary(_))),
        "nothing was linked"
    );
    let view = ProjectView::new(&fed.manifest, &entries);
    assert_eq!(view.phase(), Phase::Closed);
    for m in REGISTERS.iter().chain(std::iter::once(&"LINKER")) {
        assert!(view.shredded(&name(m)), "{m} shredded");
    }
    assert!(
        fed.duties("L-1", "LINKER").is_empty(),
        "no duty left to retry"
    );
}

mod cohort;
mod fetch;

/// Issue 18 item 7: a client request is taken once, by the node it names,
/// under the manifest it names; an approval's envelope signs the extract
/// name, and a replayed envelope is refused before any file is read.
#[test]
fn requests_and_approval_envelopes_cannot_be_replayed_redirected_or_rewritten() {
    let mut fed = Fed::new(120);
    assert!(matches!(fed.submit("R-1"), Message::Ack { .. }));
    fed.pump();

    // A status request taken once; the very same bytes again are refused.
    let status = fed
        .request_for("LINKER", "R-1", Action::Status, NOW)
        .sign(&fed.researcher);
    assert!(matches!(
        fed.client("LINKER", Message::Status(status.clone()))[0],
        Message::TranscriptFile { .. }
    ));
    assert_eq!(
        refused_with(&fed.client("LINKER", Message::Status(status.clone()))[0]),
        Some(RefusalCode::Replayed)
    );
    // ... also after the node restarts (the cache is in its store).
    fed.start("LINKER");
    assert_eq!(
        refused_with(&fed.client("LINKER", Message::Status(status))[0]),
        Some(RefusalCode::Replayed)
    );
    // A request made for the linker is refused by NPR, even from a key
    // NPR would answer (an operator of NPR).
    let operator = fed.operators[&name("NPR")][0].clone();
    let for_linker = fed
        .request_for("LINKER", "R-1", Action::Status, NOW)
        .sign(&operator);
    assert_eq!(
        refused_with(&fed.client("NPR", Message::Status(for_linker))[0]),
        Some(RefusalCode::Replayed)
    );
    // The same request made for NPR is not refused as replayed: NPR
    // answers it, as for a project it does not hold (no operator approved
    // R-1 yet, so only the linker holds it).
    let for_npr = fed
        .request_for("NPR", "R-1", Action::Status, NOW)
        .sign(&operator);
    assert_eq!(
        refused_with(&fed.client("NPR", Message::Status(for_npr))[0]),
        Some(RefusalCode::NotAllowed)
    );
    // A request made under another manifest is refused.
    let mut other = fed.request_for("LINKER", "R-1", Action::Status, NOW);
    other.manifest = Digest([0xee; 32]);
    assert_eq!(
        refused_with(&fed.client("LINKER", Message::Status(other.sign(&fed.researcher)))[0]),
        Some(RefusalCode::Replayed)
    );
    // A fetch replayed (before the project is linked: the first answer is
    // `not-ready`, the replay `replayed`).
    let fetch = fed
        .request_for("LINKER", "R-1", Action::Fetch, NOW)
        .sign(&fed.researcher);
    assert_eq!(
        refused_with(&fed.client("LINKER", Message::Fetch(fetch.clone()))[0]),
        Some(RefusalCode::NotReady)
    );
    assert_eq!(
        refused_with(&fed.client("LINKER", Message::Fetch(fetch))[0]),
        Some(RefusalCode::Replayed)
    );

    // An approval whose extract name a man in the middle swapped: the
    // envelope's signature fails.
    let Message::Approve {
        statement,
        mut request,
        order,
    } = fed.approval_message("R-1", "NPR", 0)
    else {
        panic!("an approval")
    };
    let genuine = request.clone();
    request.request.action = Action::Approve {
        statement: statement.statement.digest(),
        extract: BoundedString::new("KPR.csv").expect("fits"),
    };
    let swapped = Message::Approve {
        statement: statement.clone(),
        request,
        order: order.clone(),
    };
    assert_eq!(
        refused_with(&fed.client("NPR", swapped)[0]),
        Some(RefusalCode::BadRequest)
    );
    // An envelope for another approval (the second operator's statement
    // under the first's envelope) is refused.
    let Message::Approve {
        statement: second, ..
    } = fed.approval_message("R-1", "NPR", 1)
    else {
        panic!("an approval")
    };
    let mixed = Message::Approve {
        statement: second,
        request: genuine.clone(),
        order: order.clone(),
    };
    assert_eq!(
        refused_with(&fed.client("NPR", mixed)[0]),
        Some(RefusalCode::BadRequest)
    );
    // An envelope made for KPR, sent to NPR.
    let Message::Approve {
        statement: kpr_statement,
        request: kpr_envelope,
        ..
    } = fed.approval_message("R-1", "KPR", 0)
    else {
        panic!("an approval")
    };
    assert_eq!(
        refused_with(
            &fed.client(
                "NPR",
                Message::Approve {
                    statement: kpr_statement,
                    request: kpr_envelope,
                    order: order.clone(),
                }
            )[0]
        ),
        Some(RefusalCode::WrongRegister)
    );
    // The genuine approval is taken; the same message again is
    // acknowledged (a duplicate approval, no file read).
    let message = Message::Approve {
        statement,
        request: genuine,
        order,
    };
    assert!(matches!(
        fed.client("NPR", message.clone())[0],
        Message::Ack { .. }
    ));
    assert!(matches!(fed.client("NPR", message)[0], Message::Ack { .. }));

    // A stale request is refused by its time; the cache forgets it then.
    let stale = fed
        .request_for(
            "LINKER",
            "R-1",
            Action::Status,
            NOW.minus(MAX_CLOCK_SKEW + 1),
        )
        .sign(&fed.researcher);
    assert_eq!(
        refused_with(&fed.client("LINKER", Message::Status(stale))[0]),
        Some(RefusalCode::BadRequest)
    );
}

/// Issue 18 item 6: a list's sealed items may occupy at most a capped
/// number of bytes at the linker. A member that sends sealed items past
/// the cap is refused `list-too-large`, nothing of the message is stored,
/// and the linker's files stop growing; a resent message replaces, it does
/// not add.
#[test]
fn a_member_cannot_fill_the_linker_with_sealed_items_past_the_list_cap() {
    use kobling_protocol::{bounded::BoundedBytes, seal::SealedItem, types::Position};

    let mut fed = Fed::new(200);
    assert!(matches!(fed.submit("B-1"), Message::Ack { .. }));
    fed.pump();
    approve_all(&mut fed, "B-1");
    fed.pump();
    let project = ProjectId::new("B-1").expect("valid");
    let npr = name("NPR");
    let linker = fed.engines.get_mut(&name("LINKER")).expect("linker");
    let honest = linker
        .store
        .transaction(|tx| tx.sealed_bytes(&project, &npr))
        .expect("bytes");
    assert!(honest > 0, "the honest list's items are counted");
    let cap = honest + (1 << 20);
    linker.cap_list_bytes(cap);
    let dir = fed.dir.path().join("LINKER");
    let disk = || -> u64 {
        ["state.db", "state.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
            .map(|m| m.len())
            .sum()
    };

    let persons = {
        let entries = fed.engines[&name("LINKER")]
            .transcript(&project)
            .expect("entries");
        ProjectView::new(&fed.manifest, &entries)
            .announcement(&npr)
            .expect("announced")
            .persons
    };
    assert!(persons >= 8, "{persons} persons");

    // NPR, a member, sends 512 KiB items, one to a message, over its own
    // positions.
    let item = |position: u64| Message::SealedItems {
        project: project.clone(),
        list: npr.clone(),
        first: Position(position),
        items: BoundedVec::new(vec![SealedItem(
            BoundedBytes::new(vec![position as u8; 512 << 10]).expect("fits"),
        )])
        .expect("fits"),
    };
    let send = |fed: &mut Fed, msg: Message| {
        fed.engines
            .get_mut(&name("LINKER"))
            .expect("linker")
            .handle(&Peer::Member(name("NPR")), msg, NOW)
            .expect("no internal error")
            .remove(0)
    };
    // The first two fit (in place of two small items), and sent again an
    // item replaces itself.
    assert!(matches!(send(&mut fed, item(0)), Message::Ack { .. }));
    assert!(matches!(send(&mut fed, item(0)), Message::Ack { .. }));
    assert!(matches!(send(&mut fed, item(1)), Message::Ack { .. }));
    let before = disk();
    for position in 2..persons {
        let reply = send(&mut fed, item(position));
        assert_eq!(
            reply.refusal_code(),
            Some(RefusalCode::ListTooLarge),
            "position {position}"
        );
    }
    let linker = fed.engines.get_mut(&name("LINKER")).expect("linker");
    let stored = linker
        .store
        .transaction(|tx| tx.sealed_bytes(&project, &npr))
        .expect("bytes");
    assert!(stored <= cap, "{stored} bytes stored, cap {cap}");
    // Megabytes more were offered; the linker's files did not grow by one.
    let after = disk();
    assert!(
        after < before + (1 << 20),
        "the linker's files grew from {before} to {after} bytes"
    );
    // The position cap's arithmetic (2^25 × 16 MiB) would bound nothing;
    // the constant is the extract cap plus a little per position.
    const {
        assert!(
            kobling_protocol::sequencer::MAX_LIST_SEALED_BYTES
                >= crate::engine::MAX_EXTRACT_BYTES
                    + kobling_protocol::sequencer::MAX_LIST_PERSONS * 256
        )
    };
}

/// Issue 18 item 2: a researcher cannot make the federation keep state
/// without bound. At most `MAX_UNAPPROVED_ORDERS` orders wait for a first
/// approval (one more is refused and nothing of it is stored); an order
/// that expires years from now is refused; an order no operator approves
/// within a week is closed, and every node shreds what it held.
#[test]
fn unapproved_orders_are_capped_per_researcher_bounded_in_time_and_dropped() {
    use kobling_protocol::sequencer::{
        MAX_ORDER_LIFETIME, MAX_UNAPPROVED_ORDERS, UNAPPROVED_LIFETIME,
    };

    let mut fed = Fed::new(120);
    let projects: Vec<String> = (0..MAX_UNAPPROVED_ORDERS)
        .map(|i| format!("F-{i}"))
        .collect();
    for p in &projects {
        assert!(matches!(fed.submit(p), Message::Ack { .. }), "{p}");
    }
    fed.pump();
    let linker_holds = |fed: &Fed, p: &str| {
        !fed.engines[&name("LINKER")]
            .transcript(&ProjectId::new(p).expect("valid"))
            .expect("entries")
            .is_empty()
    };
    // One more from the same researcher: refused, and not stored.
    assert_eq!(
        refused_with(&fed.submit("F-FLOOD")),
        Some(RefusalCode::TooManyPending)
    );
    assert!(!linker_holds(&fed, "F-FLOOD"));
    // An approval of one of them frees a place.
    assert!(matches!(
        fed.approve(&projects[0], "NPR", 0),
        Message::Ack { .. }
    ));
    fed.pump();
    assert!(matches!(fed.submit("F-FLOOD"), Message::Ack { .. }));
    fed.pump();

    // An order that expires years after the bound: refused, not stored.
    fed.expires = NOW.plus(MAX_ORDER_LIFETIME + 86_400);
    fed.researcher = SigningKey::from_bytes(&[0x42; 32]);
    assert_eq!(refused_with(&fed.submit("F-FAR")), Some(RefusalCode::Order));
    assert!(!linker_holds(&fed, "F-FAR"));

    // Nothing of the waiting orders reached a register; the approved one
    // is at every register since its first approval.
    for p in projects[1..].iter().map(String::as_str).chain(["F-FLOOD"]) {
        for r in REGISTERS {
            assert_eq!(rows_about(&fed.dir.path().join(r), p), 0, "{r} holds {p}");
        }
    }
    for r in REGISTERS {
        assert!(
            rows_about(&fed.dir.path().join(r), &projects[0]) > 0,
            "{r} never learned of the approved order"
        );
    }

    // A week later, the orders nobody approved are forgotten: no row
    // about them is left at any node, and their ids can be ordered again;
    // the approved one goes on.
    let later = NOW.plus(UNAPPROVED_LIFETIME);
    fed.engines
        .get_mut(&name("LINKER"))
        .expect("linker")
        .tick(later)
        .expect("tick");
    fed.pump();
    let entries = fed.engines[&name("LINKER")]
        .transcript(&ProjectId::new(&projects[0]).expect("valid"))
        .expect("entries");
    assert_eq!(
        ProjectView::new(&fed.manifest, &entries).phase(),
        Phase::Ordered
    );
    for p in projects[1..].iter().map(String::as_str).chain(["F-FLOOD"]) {
        for m in REGISTERS.iter().chain(std::iter::once(&"LINKER")) {
            assert_eq!(rows_about(&fed.dir.path().join(m), p), 0, "{m} kept {p}");
        }
    }
    fed.expires = NOW.plus(365 * 86_400);
    assert!(matches!(fed.submit(&projects[1]), Message::Ack { .. }));
    assert!(linker_holds(&fed, &projects[1]));
}

/// Issue 18 item 2: a register holds an order only once an operator of
/// its own approved it, and forgets it, with every row about it, if the
/// linker never recorded that approval (it forgot the order first) a
/// day after the order's wait for a first approval ended. The linker
/// forgets an order its researcher closes before any approval at once.
#[test]
fn a_register_forgets_an_order_whose_approval_the_linker_never_recorded() {
    use kobling_protocol::sequencer::{REGISTER_GRACE, UNAPPROVED_LIFETIME};

    let mut fed = Fed::new(60);
    let npr = fed.dir.path().join("NPR");
    let before = files_of(&npr);
    assert!(matches!(fed.submit("G-1"), Message::Ack { .. }));
    fed.pump();
    assert_eq!(rows_about(&npr, "G-1"), 0);
    assert_eq!(
        files_of(&npr),
        before,
        "a file for an order nobody approved"
    );
    // NPR's operator approves; the approval does not reach the linker
    // (no pump) before the linker's wait ends.
    assert!(matches!(fed.approve("G-1", "NPR", 0), Message::Ack { .. }));
    assert!(rows_about(&npr, "G-1") > 0, "the register took the order");
    let later = NOW.plus(UNAPPROVED_LIFETIME);
    fed.engines
        .get_mut(&name("LINKER"))
        .expect("linker")
        .tick(later)
        .expect("tick");
    assert_eq!(rows_about(&fed.dir.path().join("LINKER"), "G-1"), 0);
    // Within its grace the register keeps it; after, it forgets it (and
    // the approval it had queued for the linker).
    let register = fed.engines.get_mut(&name("NPR")).expect("npr");
    register.tick(later).expect("tick");
    assert!(rows_about(&npr, "G-1") > 0);
    register.tick(later.plus(REGISTER_GRACE)).expect("tick");
    assert_eq!(rows_about(&npr, "G-1"), 0);
    assert_eq!(files_of(&npr), before);

    // An order closed by its researcher before any approval is forgotten
    // at once, and its id can be ordered again.
    assert!(matches!(fed.submit("G-2"), Message::Ack { .. }));
    assert!(matches!(
        fed.request("G-2", Action::Close)[0],
        Message::Ack { .. }
    ));
    fed.pump();
    assert_eq!(rows_about(&fed.dir.path().join("LINKER"), "G-2"), 0);
    assert!(matches!(fed.submit("G-2"), Message::Ack { .. }));
}

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

/// Attack (issue 18 item 2): a register learns an order only from the
/// entry an operator's approval carries, so the entry must be the
/// linker's. An approval carrying an order entry recorded with another
/// key (a self-made "linker"), the entry of another project, a
/// rewritten order under the linker's signature, or an order that does
/// not name the register is refused, and the register stores nothing;
/// the genuine entry is taken.
#[test]
fn a_register_takes_an_order_only_as_the_linker_recorded_it() {
    use kobling_protocol::transcript::Entry;

    let mut fed = Fed::new(60);
    assert!(matches!(fed.submit("H-1"), Message::Ack { .. }));
    assert!(matches!(fed.submit("H-2"), Message::Ack { .. }));
    let npr = fed.dir.path().join("NPR");
    let other = fed.engines[&name("LINKER")]
        .transcript(&ProjectId::new("H-2").expect("valid"))
        .expect("entries")
        .remove(0);
    let carrying = |fed: &Fed, order: Entry| {
        let Message::Approve {
            statement, request, ..
        } = fed.approval_message("H-1", "NPR", 0)
        else {
            panic!("an approval")
        };
        Message::Approve {
            statement,
            request,
            order: Box::new(order),
        }
    };
    let Message::Approve { order: genuine, .. } = fed.approval_message("H-1", "NPR", 0) else {
        panic!("an approval")
    };
    let self_made = SigningKey::from_bytes(&[0x66; 32]);
    let recorded_by_another =
        Entry::record(0, Digest::default(), genuine.signed.clone(), &self_made);
    let mut rewritten = (*genuine).clone();
    if let Body::Order(o) = &mut rewritten.signed.statement.body {
        o.title = BoundedString::new("a wider project").expect("fits");
    }
    for (what, order, code) in [
        (
            "recorded by another key",
            recorded_by_another,
            RefusalCode::Invalid,
        ),
        ("another project's order", other, RefusalCode::WrongOrder),
        ("a rewritten order", rewritten, RefusalCode::Invalid),
    ] {
        let msg = carrying(&fed, order);
        assert_eq!(
            refused_with(&fed.client("NPR", msg)[0]),
            Some(code),
            "{what}"
        );
        assert_eq!(rows_about(&npr, "H-1"), 0, "{what}: NPR stored something");
    }
    // An order that does not name NPR, approved by NPR's operator (with
    // its digest): refused, nothing kept.
    let mut without = fed.order("H-3");
    without.registers = BoundedVec::new(
        without
            .registers
            .iter()
            .filter(|r| r.register.as_str() != "NPR")
            .cloned()
            .collect(),
    )
    .expect("fits");
    without.cohort = BoundedString::new("KPR").expect("fits");
    let without = without.granted_by(&authority());
    let signed = Statement {
        project: without.project.clone(),
        time: NOW,
        signer: Signer::Researcher(without.researcher_signing_key),
        body: Body::Order(without.clone()),
    }
    .sign(&fed.researcher);
    let submitted = fed.client("LINKER", Message::SubmitOrder(signed));
    assert!(matches!(submitted[0], Message::Ack { .. }), "{submitted:?}");
    let Message::Approve {
        statement, order, ..
    } = fed.approval_message("H-3", "NPR", 0)
    else {
        panic!("an approval")
    };
    let mut approval = statement.statement.clone();
    if let Body::Approval(a) = &mut approval.body {
        a.order = without.digest();
    }
    let approval = approval.sign(&fed.operators[&name("NPR")][0]);
    let msg = fed.approval_named(approval, 0, "NPR.csv", NOW);
    let Message::Approve {
        statement, request, ..
    } = msg
    else {
        panic!("an approval")
    };
    let msg = Message::Approve {
        statement,
        request,
        order,
    };
    assert_eq!(
        refused_with(&fed.client("NPR", msg)[0]),
        Some(RefusalCode::WrongRegister)
    );
    assert_eq!(
        rows_about(&npr, "H-3"),
        0,
        "NPR kept an order not naming it"
    );

    let msg = carrying(&fed, *genuine);
    assert!(matches!(fed.client("NPR", msg)[0], Message::Ack { .. }));
    fed.pump();
    let held = fed.engines[&name("NPR")]
        .transcript(&ProjectId::new("H-1").expect("valid"))
        .expect("entries");
    // The linker's copy from its start: the order, the approval, then the
    // linker's commitment (made only once an operator approved).
    let kinds: Vec<&str> = held
        .iter()
        .map(|e| e.signed.statement.body.kind())
        .collect();
    assert_eq!(kinds[..2], ["order", "approval"], "{kinds:?}");
    assert!(kinds.contains(&"commitment"), "{kinds:?}");
}
