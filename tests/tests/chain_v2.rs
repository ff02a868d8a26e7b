//! Chain v2 driven by real engines in memory (`kobling_node::testing`,
//! `Federation::start`): an honest run delivers the ground truth and
//! its transcript audits; each attack of issue 13, performed by a hop on
//! the wire (its own node key signs what it sends), is caught before
//! linking: nothing is delivered, and the linker's transcript records the
//! failed list check or the project's closure naming the list.

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet},
    rc::Rc,
};

use curve25519_dalek::{ristretto::CompressedRistretto, Scalar};
use ed25519_dalek::SigningKey;
use kobling_node::testing::{attacks, Faults, Federation, Net, ProjectConfig, LINKER};
use kobling_protocol::{
    bounded::BoundedVec,
    group::WirePoint,
    link::Lnr,
    messages::Message,
    project::{Phase, ProjectView},
    share::Domain,
    transcript::{self, Body},
    types::{Attempt, ChunkIndex, HopIndex, ListName, Name, ProjectId},
    v2::{ChunkMsg, ListHeader, Mode},
};
use kobling_sim::{
    population::{generate, Population, PopulationConfig},
    truth,
};

fn name(s: &str) -> Name {
    Name::new(s).expect("valid name")
}

fn list_name(s: &str) -> ListName {
    ListName::new(s).expect("valid name")
}

struct Setup {
    _dir: tempfile::TempDir,
    fed: Federation,
    pop: Population,
    registers: Vec<&'static str>,
}

fn setup(registers: &[&'static str], persons: usize) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = Federation::create(dir.path(), registers, 42).expect("federation");
    let pop = generate(&PopulationConfig {
        persons,
        seed: 7,
        ..Default::default()
    });
    Setup {
        _dir: dir,
        fed,
        pop,
        registers: registers.to_vec(),
    }
}

fn config(project: &str) -> ProjectConfig {
    ProjectConfig {
        project: project.into(),
        cohort: "NPR".into(),
        chunk_size: 64,
        seed: 3,
        faults: Faults::default(),
    }
}

impl Setup {
    fn extracts(&self) -> Vec<&kobling_sim::population::Extract> {
        self.registers
            .iter()
            .map(|r| self.pop.extract(r).expect("extract"))
            .collect()
    }

    fn start(&self) -> Net {
        let c = config("V2");
        self.fed
            .start(c.chunk_size, c.faults, c.seed)
            .expect("nodes")
    }

    /// A member's node signing key (a malicious hop signs with its own).
    fn node_key(&self, member: &str) -> SigningKey {
        let ks = self.fed.keystore(member).expect("keystore");
        SigningKey::from_bytes(&ks.signing_key().to_bytes())
    }
}

/// The chain order of `list` after its owner (as the nodes compute it).
fn hops_of(net: &Net, list: &str, registers: &[&str]) -> Vec<Name> {
    let participants: Vec<Name> = registers.iter().map(|r| name(r)).collect();
    let mut hops = net.manifest().chain_order(&name(list), &participants);
    hops.remove(0);
    hops.push(name(LINKER));
    hops
}

/// The header every party derives for attempt 0 of `list`.
fn header(project: &str, list: &str, persons: u64, chunk_size: u32) -> ListHeader {
    ListHeader {
        domain: Domain::Project(ProjectId::new(project).expect("valid")),
        delivery: None,
        list: list_name(list),
        attempt: Attempt::FIRST,
        mode: Mode::Optimistic,
        persons,
        chunk_size,
    }
}

/// Rewrites a chunk's points.
fn edit(chunk: &mut ChunkMsg, f: impl FnOnce(&mut Vec<WirePoint>)) {
    let mut points = chunk.points.to_vec();
    f(&mut points);
    chunk.points = BoundedVec::new(points).expect("within bounds");
}

fn times(point: &WirePoint, k: u64) -> WirePoint {
    let p = CompressedRistretto(point.0)
        .decompress()
        .expect("valid point");
    WirePoint((p * Scalar::from(k)).compress().to_bytes())
}

/// Runs the project until it is deliverable or closed (or a virtual
/// limit); returns the linker's transcript.
fn drive(s: &Setup, net: &mut Net, project: &str) -> Vec<transcript::Entry> {
    let mut c = config(project);
    c.chunk_size = 64;
    s.fed
        .order_and_approve(net, &s.extracts(), &c)
        .expect("order and approvals");
    let manifest = net.manifest().clone();
    let id = ProjectId::new(project).expect("valid");
    let linker = name(LINKER);
    net.run_until(300_000, |net| {
        let entries = net.transcript(&linker, &id)?;
        let view = ProjectView::new(&manifest, &entries);
        Ok(view.phase() == Phase::Closed || view.phase().is_deliverable())
    })
    .ok();
    let entries = net.transcript(&linker, &id).expect("transcript");
    eprintln!("refusals: {:?}", net.refusals());
    entries
}

/// The attack was caught before linking: no link summary and no delivery,
/// and either a failed list check of `list` or a closure naming it.
fn assert_caught(entries: &[transcript::Entry], list: &str) {
    let bodies: Vec<&Body> = entries.iter().map(|e| &e.signed.statement.body).collect();
    assert!(
        !bodies
            .iter()
            .any(|b| matches!(b, Body::LinkSummary(_) | Body::Delivery(_))),
        "linked or delivered despite the attack"
    );
    let failed_check = bodies
        .iter()
        .any(|b| matches!(b, Body::ListCheck(c) if c.list.as_str() == list && !c.passed));
    let closure = bodies.iter().find_map(|b| match b {
        Body::Closure(c) => Some(c.reason.as_str().to_string()),
        _ => None,
    });
    assert!(
        closure.as_deref().is_some_and(|r| r.contains(&format!("list {list}"))),
        "the project is not stopped naming list {list}: closure {closure:?}, failed check {failed_check}"
    );
}

/// The linker's transcript names `list` as the one that ended the
/// project (`ProjectView::failed_list`), and every register of
/// `registers`, once the closed notices arrived, holds a notice naming it
/// (what `kobling project status` prints at a register).
fn assert_told(
    net: &mut Net,
    entries: &[transcript::Entry],
    project: &str,
    registers: &[&str],
    list: &str,
) {
    let manifest = net.manifest().clone();
    assert_eq!(
        ProjectView::new(&manifest, entries).failed_list(),
        Some(list_name(list)),
        "the linker's view"
    );
    net.run_for(10_000).expect("run");
    let id = ProjectId::new(project).expect("valid");
    for r in registers {
        let notice = net
            .engine(&name(r))
            .expect("engine")
            .phase_notice(&id)
            .expect("store")
            .unwrap_or_else(|| panic!("{r} holds no notice"));
        assert_eq!(
            (notice.notice.phase, notice.notice.failed_list),
            (
                kobling_protocol::notice::Notified::Closed,
                Some(list_name(list))
            ),
            "{r}'s notice"
        );
    }
    transcript::verify(entries, None, &manifest).expect("the stopped transcript verifies");
}

#[test]
fn an_honest_v2_run_delivers_the_ground_truth_and_its_transcript_audits() {
    let s = setup(&["NPR", "KPR", "SSB"], 400);
    let mut net = s.start();
    // Every chunk and every pass on the wire, and every entry a register
    // receives.
    let seen: Rc<RefCell<Vec<(Name, &'static str)>>> = Rc::default();
    let log = seen.clone();
    net.observe(Box::new(move |_from, to, msg| {
        let kind = match msg {
            Message::ChunkV2 { .. } => "chunk",
            Message::PassV2 { .. } => "pass",
            Message::Points(_) => "v1-points",
            Message::Entries { entries, .. }
                if entries
                    .iter()
                    .any(|e| matches!(e.signed.statement.body, Body::ListCheck(_))) =>
            {
                "list-check-entry"
            }
            _ => return,
        };
        log.borrow_mut().push((to.clone(), kind));
    }));
    let mut c = config("V2-HONEST");
    c.chunk_size = 64;
    let out = s.fed.run_project(&mut net, &s.extracts(), &c).expect("run");
    let kinds: BTreeSet<&str> = seen.borrow().iter().map(|(_, k)| *k).collect();
    assert!(
        kinds.contains("chunk") && kinds.contains("pass"),
        "{kinds:?}"
    );
    assert!(!kinds.contains("v1-points"), "a v1 chunk was sent");
    assert!(
        !kinds.contains("list-check-entry"),
        "a list check entry was replicated to a register"
    );

    // The ground truth: exactly the cohort's rows, one lnr per person.
    let lnr_of = truth::lnr_from_keystores(
        &s.fed.keystores(),
        &ProjectId::new("V2-HONEST").expect("valid"),
        &s.pop,
    )
    .expect("shares");
    let cohort = s.pop.members("NPR");
    assert!(cohort.len() >= 5, "cohort of {}", cohort.len());
    for r in &s.registers {
        let mut want: BTreeMap<Lnr, Vec<Vec<String>>> = BTreeMap::new();
        for (person, rows) in s.pop.rows_by_person(r) {
            if cohort.contains(&person) {
                want.insert(lnr_of[person], rows);
            }
        }
        let mut got: BTreeMap<Lnr, Vec<Vec<String>>> = BTreeMap::new();
        for (lnr, row) in &out.tables[&name(r)] {
            got.entry(*lnr).or_default().push(row.clone());
        }
        assert_eq!(
            got, want,
            "{r}: delivered rows differ from the ground truth"
        );
    }

    // The transcript is chain v2 only, with one passed check per list,
    // and it verifies as the auditor verifies it.
    let (entries, _) = &out.transcript;
    let bodies: Vec<&Body> = entries.iter().map(|e| &e.signed.statement.body).collect();
    assert!(!bodies
        .iter()
        .any(|b| matches!(b, Body::ListAnnounced(_) | Body::Hop(_))));
    for r in &s.registers {
        assert_eq!(
            bodies
                .iter()
                .filter(|b| matches!(b, Body::ListCheck(c) if c.list.as_str() == *r && c.passed))
                .count(),
            1,
            "{r}: one passed list check"
        );
    }
    transcript::verify(entries, None, net.manifest()).expect("the transcript verifies");

    // Tampering with the list check entry is refused by the verifier.
    let at = entries
        .iter()
        .position(|e| matches!(e.signed.statement.body, Body::ListCheck(_)))
        .expect("a list check");
    let mut forged = entries.clone();
    if let Body::ListCheck(c) = &mut forged[at].signed.statement.body {
        c.b = c.a[0];
    }
    assert!(transcript::verify(&forged, None, net.manifest()).is_err());

    // No register holds a list check entry.
    for r in &s.registers {
        let held = net
            .transcript(&name(r), &ProjectId::new("V2-HONEST").expect("valid"))
            .expect("register transcript");
        assert!(!held
            .iter()
            .any(|e| matches!(e.signed.statement.body, Body::ListCheck(_))));
    }
}

/// Installs a tamper hook that rewrites the chunks `by` sends of
/// `header`'s list with `f` (re-signed with `by`'s node key), and `by`'s hop
/// record so that it records the outputs it sent: a hop that deviates and
/// signs statements consistent with its own output
/// (`kobling_node::testing::attacks::consistent_hop`).
fn tamper_chunks(
    net: &mut Net,
    by: Name,
    header: ListHeader,
    key: SigningKey,
    f: impl FnMut(&mut ChunkMsg) -> bool + 'static,
) {
    net.tamper(attacks::consistent_hop(by, header, key, f, |_, _, _| {}));
}

fn run_chunk_attack(
    registers: &[&'static str],
    list: &'static str,
    deviating_hop: usize,
    project: &str,
    f: impl FnMut(&mut ChunkMsg) -> bool + 'static,
) {
    let s = setup(registers, 200);
    let mut net = s.start();
    let hops = hops_of(&net, list, registers);
    let by = hops[deviating_hop - 1].clone();
    let persons = s
        .pop
        .extract(list)
        .expect("extract")
        .owners
        .iter()
        .flatten()
        .collect::<BTreeSet<_>>()
        .len() as u64;
    let key = s.node_key(by.as_str());
    tamper_chunks(&mut net, by, header(project, list, persons, 64), key, f);
    let entries = drive(&s, &mut net, project);
    assert_caught(&entries, list);
}

#[test]
fn a_hop_that_multiplies_one_point_by_a_wrong_scalar_is_caught() {
    run_chunk_attack(&["NPR", "KPR", "SSB"], "NPR", 1, "V2-SCALAR", |c| {
        if c.statement.statement.chunk == ChunkIndex(0) {
            edit(c, |p| p[0] = times(&p[0], 2));
            true
        } else {
            false
        }
    });
}

#[test]
fn a_hop_that_forwards_a_substituted_chunk_is_caught() {
    // Hop 2 forwards, for its first chunk, points other than its step of
    // what hop 1 sent (here: its step times 3), with a valid statement.
    run_chunk_attack(&["NPR", "KPR", "SSB"], "KPR", 2, "V2-SUBST", |c| {
        if c.statement.statement.chunk == ChunkIndex(0) {
            edit(c, |points| {
                for p in points.iter_mut() {
                    *p = times(p, 3);
                }
            });
            true
        } else {
            false
        }
    });
}

#[test]
fn a_hop_that_drops_one_person_or_duplicates_one_is_caught() {
    // Drop: one point is replaced by a copy of its neighbour (the count is
    // fixed by the header, so a dropped person shows as a duplicate or as
    // a missing one; both change Z).
    run_chunk_attack(&["NPR", "KPR", "SSB"], "NPR", 2, "V2-DUP", |c| {
        if c.statement.statement.chunk == ChunkIndex(0) {
            edit(c, |p| p[1] = p[0]);
            true
        } else {
            false
        }
    });
}

#[test]
fn hop_1_deviating_with_statements_consistent_with_its_own_output_is_caught() {
    // Hop 1 replaces its whole first chunk with points of its own making
    // and signs the statements and its hop record over them.
    run_chunk_attack(&["NPR", "KPR", "SSB"], "SSB", 1, "V2-HOP1", |c| {
        if c.statement.statement.chunk == ChunkIndex(0) {
            edit(c, |points| {
                for (i, p) in points.iter_mut().enumerate() {
                    *p = times(p, 5 + i as u64);
                }
            });
            true
        } else {
            false
        }
    });
}

#[test]
fn two_colluding_hops_one_deviating_one_silent_are_caught_at_the_front_and_at_the_back() {
    // Four registers: a list has m = 3 register hops. Hops 1–2 collude
    // (hop 1 deviates, hop 2 steps what it gets and says nothing), and
    // hops m−1, m (hop m deviates, hop m−1 is silent).
    let registers = ["NPR", "KPR", "SSB", "RESEPT"];
    for (hop, project) in [(1, "V2-PAIR-FRONT"), (3, "V2-PAIR-BACK")] {
        run_chunk_attack(&registers, "NPR", hop, project, |c| {
            if c.statement.statement.chunk == ChunkIndex(0) {
                edit(c, |p| {
                    let last = p.len() - 1;
                    p.swap(0, last);
                    p[0] = times(&p[0], 7);
                });
                true
            } else {
                false
            }
        });
    }
}

#[test]
fn a_hop_that_sends_a_wrong_a_h_with_a_proof_for_another_point_is_caught() {
    // Hop h of the backward pass sends 2·A_h with the proof of the true
    // A_h: at hop 1 (the next hop refuses to step on it and hands it to
    // the linker) and at hop m (the linker's own verification).
    let registers = ["NPR", "KPR", "SSB"];
    for (hop, project) in [(1usize, "V2-PASS-FRONT"), (2, "V2-PASS-BACK")] {
        let s = setup(&registers, 200);
        let mut net = s.start();
        let by = hops_of(&net, "KPR", &registers)[hop - 1].clone();
        net.tamper(Box::new(move |from, _to, msg| {
            if let Message::PassV2 { pass, .. } = msg {
                if *from == by && pass.list.as_str() == "KPR" && pass.steps.len() == hop {
                    let mut steps = pass.steps.to_vec();
                    steps[hop - 1].a = times(&steps[hop - 1].a, 2);
                    pass.steps = BoundedVec::new(steps).expect("within bounds");
                }
            }
        }));
        let entries = drive(&s, &mut net, project);
        assert_caught(&entries, "KPR");
        assert_told(&mut net, &entries, project, &registers, "KPR");
    }
}

#[test]
fn v2_duties_and_admission_follow_the_transcript() {
    use kobling_protocol::project::{Duty, Origin};

    let s = setup(&["NPR", "KPR", "SSB"], 200);
    let mut net = s.start();
    let mut c = config("V2-DUTY");
    c.chunk_size = 64;
    let out = s.fed.run_project(&mut net, &s.extracts(), &c).expect("run");
    let entries = &out.transcript.0;
    let m = net.manifest().clone();
    let first = |pred: &dyn Fn(&Body) -> bool| {
        entries
            .iter()
            .position(|e| pred(&e.signed.statement.body))
            .expect("entry present")
    };
    let duties = |n: usize, who: &str| ProjectView::new(&m, &entries[..n]).duties(&name(who));
    // NPR → KPR → SSB → LINKER.
    let announced = first(&|b| matches!(b, Body::ListAnnouncedV2(a) if a.list.as_str() == "NPR"));
    assert!(duties(announced + 1, "KPR")
        .iter()
        .any(|d| matches!(d, Duty::Step { list, hop: HopIndex(1), .. } if list.as_str() == "NPR")));
    // The owner starts the pass once every hop of its list is recorded
    // (the linker's last), and not before.
    let last_hop = entries
        .iter()
        .rposition(
            |e| matches!(&e.signed.statement.body, Body::HopV2(h) if h.list.as_str() == "NPR"),
        )
        .expect("hop records");
    let pass = Duty::Pass {
        list: list_name("NPR"),
        attempt: Attempt::FIRST,
    };
    assert!(!duties(last_hop, "NPR").contains(&pass));
    assert!(duties(last_hop + 1, "NPR").contains(&pass));
    // The linker links once every list check is recorded, not before.
    let summary = first(&|b| matches!(b, Body::LinkSummary(_)));
    let last_check = entries
        .iter()
        .rposition(|e| matches!(e.signed.statement.body, Body::ListCheck(_)))
        .expect("checks");
    assert!(!duties(last_check, "LINKER").contains(&Duty::Link));
    assert_eq!(duties(summary, "LINKER"), vec![Duty::Link]);
    // Every list check follows every hop record: a register's prefix holds
    // all of them.
    let first_check = first(&|b| matches!(b, Body::ListCheck(_)));
    assert!(entries[first_check..].iter().all(|e| !matches!(
        e.signed.statement.body,
        Body::HopV2(_) | Body::OwnerListV2(_)
    )));

    // A chunk of NPR's list comes from the member of its statement's hop.
    let view = ProjectView::new(&m, &entries[..announced + 1]);
    let header = header("V2-DUTY", "NPR", 1, 64);
    let key = s.node_key("NPR");
    let chunk = |hop: u32| {
        let mut c = ChunkMsg {
            list: list_name("NPR"),
            attempt: Attempt::FIRST,
            statement: kobling_protocol::v2::SignedChunkStatement {
                statement: kobling_protocol::v2::ChunkStatement {
                    hop: HopIndex(hop),
                    chunk: ChunkIndex(0),
                    count: 0,
                    input: Default::default(),
                    output: Default::default(),
                },
                signature: kobling_protocol::transcript::Sig([0; 64]),
            },
            points: BoundedVec::default(),
            earlier: BoundedVec::default(),
            input: BoundedVec::default(),
            proof: None,
        };
        attacks::resign(&mut c, &header, &key);
        Message::ChunkV2 {
            project: ProjectId::new("V2-DUTY").expect("valid"),
            chunk: c,
        }
    };
    let code = |r: Result<(), kobling_protocol::refusal::Refusal>| r.err().map(|r| r.code);
    assert_eq!(
        code(view.admit(&chunk(0), &Origin::Member(name("NPR")))),
        None
    );
    assert_eq!(
        code(view.admit(&chunk(1), &Origin::Member(name("KPR")))),
        None
    );
    use kobling_protocol::refusal::RefusalCode;
    for (hop, from, want) in [
        (1, "NPR", RefusalCode::UnexpectedSender),
        (0, "KPR", RefusalCode::UnexpectedSender),
        (3, "LINKER", RefusalCode::BadChunk),
        (u32::MAX, "NPR", RefusalCode::BadChunk),
    ] {
        assert_eq!(
            code(view.admit(&chunk(hop), &Origin::Member(name(from)))),
            Some(want),
            "hop {hop} from {from}"
        );
    }
}

#[test]
fn a_hop_record_that_does_not_chain_with_its_chunks_stops_the_project_naming_the_list() {
    // Hop 2 of KPR's list forwards honest chunks but records, in its
    // `HopV2`, another output digest for chunk 0 than the one it signed:
    // the linker's verification refuses the next record (its own, hop 3,
    // whose input digests are what hop 2 signed). Before, the hop sent
    // it again for ever and the list stalled; now the project stops,
    // naming the list.
    let registers = ["NPR", "KPR", "SSB"];
    let s = setup(&registers, 200);
    let mut net = s.start();
    let by = hops_of(&net, "KPR", &registers)[1].clone();
    let key = s.node_key(by.as_str());
    let sender = by.clone();
    net.tamper(Box::new(move |from, _to, msg| {
        let Message::Statement(signed) = msg else {
            return;
        };
        let mut st = signed.statement.clone();
        let Body::HopV2(h) = &mut st.body else { return };
        if *from != sender || h.list.as_str() != "KPR" {
            return;
        }
        let mut chunks = h.chunks.to_vec();
        chunks[0].output.0[0] ^= 1;
        h.chunks = BoundedVec::new(chunks).expect("within bounds");
        *signed = st.sign(&key);
    }));
    let entries = drive(&s, &mut net, "V2-UNCHAINED");
    assert_caught(&entries, "KPR");
    let reason = entries
        .iter()
        .find_map(|e| match &e.signed.statement.body {
            Body::Closure(c) => Some(c.reason.as_str().to_string()),
            _ => None,
        })
        .expect("closure");
    // The linker's own record (hop 3) is the one that does not chain.
    assert!(
        reason.contains("is not the previous step's output digest"),
        "{reason}"
    );
    assert!(!entries.iter().any(
        |e| matches!(&e.signed.statement.body, Body::HopV2(h) if h.list.as_str() == "KPR" && h.hop >= HopIndex(3))
    ));
    assert_told(&mut net, &entries, "V2-UNCHAINED", &registers, "KPR");
}

#[test]
fn a_list_without_a_valid_person_ends_the_project_with_a_clear_reason() {
    // KPR's extract holds rows, none with a valid identifier: its list
    // has 0 persons. Before, its hops never finished (no chunk to step)
    // and the project stalled.
    let registers = ["NPR", "KPR", "SSB"];
    let mut s = setup(&registers, 200);
    let kpr = s
        .pop
        .extracts
        .iter_mut()
        .find(|e| e.name == "KPR")
        .expect("KPR");
    for (row, owner) in kpr.rows.iter_mut().zip(kpr.owners.iter_mut()) {
        row.0 = "00000000000".into();
        *owner = None;
    }
    let mut net = s.start();
    let entries = drive(&s, &mut net, "V2-EMPTY");
    assert!(entries.iter().any(
        |e| matches!(&e.signed.statement.body, Body::ListAnnouncedV2(a) if a.list.as_str() == "KPR" && a.persons == 0)
    ));
    let reason = entries
        .iter()
        .find_map(|e| match &e.signed.statement.body {
            Body::Closure(c) => Some(c.reason.as_str().to_string()),
            _ => None,
        })
        .expect("the project is closed");
    assert!(
        reason.contains("list KPR") && reason.contains("no valid person"),
        "{reason}"
    );
    assert!(!entries.iter().any(|e| matches!(
        e.signed.statement.body,
        Body::LinkSummary(_) | Body::Delivery(_)
    )));
    assert_told(&mut net, &entries, "V2-EMPTY", &registers, "KPR");
}

#[test]
fn a_hop_that_signs_a_short_chunk_is_named_and_the_project_stops() {
    // Hop 1 of NPR's list sends its chunk 0 one point short, signed (its
    // statement digests what it sends). Before, hop 2 refused it
    // `bad-chunk` on every resend and the list stalled; now hop 2 records
    // a chain stop naming hop 1, and the linker closes the project naming
    // the list and the hop.
    let registers = ["NPR", "KPR", "SSB"];
    let s = setup(&registers, 200);
    let mut net = s.start();
    let hops = hops_of(&net, "NPR", &registers);
    let by = hops[0].clone();
    let persons = s
        .pop
        .extract("NPR")
        .expect("extract")
        .owners
        .iter()
        .flatten()
        .collect::<BTreeSet<_>>()
        .len() as u64;
    let key = s.node_key(by.as_str());
    tamper_chunks(
        &mut net,
        by.clone(),
        header("V2-SHORT", "NPR", persons, 64),
        key,
        |c| {
            if c.statement.statement.chunk == ChunkIndex(0) {
                edit(c, |p| {
                    p.pop();
                });
                true
            } else {
                false
            }
        },
    );
    let entries = drive(&s, &mut net, "V2-SHORT");
    assert_caught(&entries, "NPR");
    let stop = entries
        .iter()
        .find_map(|e| match &e.signed.statement.body {
            Body::ChainStopped(s) => Some((e.signed.statement.signer.clone(), s.clone())),
            _ => None,
        })
        .expect("a chain stop");
    assert_eq!(stop.1.named, Some((HopIndex(1), by.clone())));
    assert_eq!(stop.0, transcript::Signer::Node(hops[1].clone()));
    let reason = entries
        .iter()
        .find_map(|e| match &e.signed.statement.body {
            Body::Closure(c) => Some(c.reason.as_str().to_string()),
            _ => None,
        })
        .expect("closure");
    assert!(reason.contains(&format!("hop 1 ({by})")), "{reason}");
    transcript::verify(&entries, None, net.manifest()).expect("the stopped transcript verifies");
}

#[test]
fn a_register_announcing_chain_v1_to_a_chain_v2_linker_is_refused() {
    // The downgrade: NPR's node announces its list for chain v1, whose
    // linker record publishes per-chunk proofs over the final pseudonyms
    // and whose hops can forward a substituted input unnoticed. The
    // linker runs chain v2: it records no v1 list entry and stops the
    // project naming the list.
    let registers = ["NPR", "KPR"];
    let s = setup(&registers, 200);
    let mut net = s.start();
    net.configure(&name("NPR"), |c| c.chain_v2 = false)
        .expect("NPR restarts on chain v1");
    let entries = drive(&s, &mut net, "V2-DOWNGRADE");
    // The linker records its closure as it refuses the announcement; let
    // the refusal's reply reach NPR.
    net.run_for(10_000).expect("run");
    let bodies: Vec<&Body> = entries.iter().map(|e| &e.signed.statement.body).collect();
    assert!(
        !bodies
            .iter()
            .any(|b| matches!(b, Body::ListAnnounced(_) | Body::Hop(_))),
        "the linker recorded a chain v1 list entry"
    );
    assert!(
        bodies
            .iter()
            .any(|b| matches!(b, Body::ListAnnouncedV2(a) if a.list.as_str() == "KPR")),
        "KPR's v2 list goes on"
    );
    assert!(!bodies
        .iter()
        .any(|b| matches!(b, Body::LinkSummary(_) | Body::Delivery(_))));
    let reason = bodies
        .iter()
        .find_map(|b| match b {
            Body::Closure(c) => Some(c.reason.as_str().to_string()),
            _ => None,
        })
        .expect("the project is stopped, not left waiting");
    assert!(
        reason.contains("list NPR") && reason.contains("chain v1"),
        "{reason}"
    );
    assert!(
        net.refusals().iter().any(|(a, b, code, text)| {
            let pair = [a.as_str(), b.as_str()];
            pair.contains(&"NPR")
                && pair.contains(&LINKER)
                && code == "invalid"
                && text.contains("chain v1")
        }),
        "the linker refuses NPR's v1 announcement: {:?}",
        net.refusals()
    );
    assert_told(&mut net, &entries, "V2-DOWNGRADE", &registers, "NPR");
}
