//! Strict mode on real engines in memory (`kobling_node::testing`;
//! PROTOCOL.md §6a step 6, issue 13 item 5): a list whose check failed
//! goes again, unchanged, with per-chunk proofs.
//!
//! - a hop that deviates in attempt 0 only: attempt 1 passes, the project
//!   links the ground truth, and the transcript, which shows the failed
//!   attempt, audits (a tampered one does not);
//! - a hop that deviates in both attempts: its strict proof fails, the
//!   next step names it, the project stops, every register is told the
//!   list;
//! - a colluding pair whose deviation no per-chunk proof shows (hop 1
//!   substitutes, hop 2 steps and proves over the substitute): the strict
//!   check fails too, and the project stops naming the list;
//! - no register, the owner included, receives a list check entry;
//! - a pseudonymous list (a conversion hop) in strict mode links.

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet},
    rc::Rc,
};

use ed25519_dalek::SigningKey;
use kobling_node::testing::{attacks, Faults, Federation, Net, ProjectConfig, LINKER};
use kobling_protocol::{
    bounded::BoundedVec,
    chain,
    link::Lnr,
    messages::Message,
    notice::Notified,
    project::{Phase, ProjectView},
    share::{Domain, Share},
    transcript::{self, Body, Entry, Signer},
    types::{Attempt, ChunkIndex, Digest, HopIndex, ListName, Name, ProjectId},
    v2::{self, chunk_digest, ChunkMsg, ListHeader, Mode},
};
use kobling_sim::{
    population::{generate, Extract, Population, PopulationConfig},
    truth,
};
use rand_chacha::rand_core::SeedableRng as _;

const REGISTERS: [&str; 3] = ["NPR", "KPR", "SSB"];
const CHUNK: u32 = 64;
/// Virtual time a project gets to reach a final phase.
const LIMIT_MS: u64 = 400_000;

fn name(s: &str) -> Name {
    Name::new(s).expect("valid name")
}

fn list_name(s: &str) -> ListName {
    ListName::new(s).expect("valid name")
}

fn pid(s: &str) -> ProjectId {
    ProjectId::new(s).expect("valid project id")
}

struct World {
    _dir: tempfile::TempDir,
    fed: Federation,
    pop: Population,
}

fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = Federation::create(dir.path(), &REGISTERS, 42).expect("federation");
    let pop = generate(&PopulationConfig {
        persons: 200,
        seed: 7,
        ..Default::default()
    });
    World {
        _dir: dir,
        fed,
        pop,
    }
}

fn config(project: &str) -> ProjectConfig {
    ProjectConfig {
        project: project.into(),
        cohort: "NPR".into(),
        chunk_size: CHUNK,
        seed: 3,
        faults: Faults::default(),
    }
}

impl World {
    fn start(&self) -> Net {
        self.fed.start(CHUNK, Faults::default(), 3).expect("nodes")
    }

    fn extracts(&self) -> Vec<&Extract> {
        REGISTERS
            .iter()
            .map(|r| self.pop.extract(r).expect("extract"))
            .collect()
    }

    /// A member's node signing key (a malicious member signs with its own).
    fn node_key(&self, member: &str) -> SigningKey {
        let ks = self.fed.keystore(member).expect("keystore");
        SigningKey::from_bytes(&ks.signing_key().to_bytes())
    }

    /// The persons of `list` (what its owner announces).
    fn persons(&self, list: &str) -> u64 {
        self.pop
            .extract(list)
            .expect("extract")
            .owners
            .iter()
            .flatten()
            .collect::<BTreeSet<_>>()
            .len() as u64
    }

    /// Orders and approves `project`, runs it until the linker's
    /// transcript is deliverable or closed, then lets the notices
    /// arrive; returns the linker's transcript.
    fn drive(&self, net: &mut Net, project: &str) -> Vec<Entry> {
        self.fed
            .order_and_approve(net, &self.extracts(), &config(project))
            .expect("order and approvals");
        let manifest = net.manifest().clone();
        let id = pid(project);
        let linker = name(LINKER);
        net.run_until(LIMIT_MS, |net| {
            let entries = net.transcript(&linker, &id)?;
            let phase = ProjectView::new(&manifest, &entries).phase();
            Ok(phase == Phase::Closed || phase.is_deliverable())
        })
        .expect("the project reaches a final phase in bounded virtual time");
        net.run_for(10_000).expect("run");
        net.transcript(&linker, &id).expect("transcript")
    }
}

/// The header every party derives for attempt 0 of `list`.
fn header(project: &str, list: &str, persons: u64) -> ListHeader {
    ListHeader {
        domain: Domain::Project(pid(project)),
        delivery: None,
        list: list_name(list),
        attempt: Attempt::FIRST,
        mode: Mode::Optimistic,
        persons,
        chunk_size: CHUNK,
    }
}

/// The chain order of `list` after its owner, the linker last.
fn hops_of(net: &Net, list: &str) -> Vec<Name> {
    let participants: Vec<Name> = REGISTERS.iter().map(|r| name(r)).collect();
    let mut hops = net.manifest().chain_order(&name(list), &participants);
    hops.remove(0);
    hops.push(name(LINKER));
    hops
}

/// Swaps the first two persons of chunk 0 (each point stepped honestly,
/// forwarded in the wrong places) in the attempts `when` accepts.
fn swap_first(when: impl Fn(Attempt) -> bool) -> impl FnMut(&mut ChunkMsg) -> bool {
    move |chunk| {
        if chunk.statement.statement.chunk != ChunkIndex(0) || !when(chunk.attempt) {
            return false;
        }
        let mut points = chunk.points.to_vec();
        points.swap(0, 1);
        chunk.points = BoundedVec::new(points).expect("within bounds");
        true
    }
}

/// Every message a register receives that carries a list check entry,
/// and every `ListRetry` entry a register receives (by register).
#[derive(Default)]
struct Seen {
    check_entries_to: Vec<Name>,
    retries_to: BTreeSet<Name>,
}

fn watch(net: &mut Net) -> Rc<RefCell<Seen>> {
    let seen: Rc<RefCell<Seen>> = Rc::default();
    let log = seen.clone();
    net.observe(Box::new(move |_from, to, msg| {
        let Message::Entries { entries, .. } = msg else {
            return;
        };
        let mut s = log.borrow_mut();
        for e in entries.iter() {
            match &e.signed.statement.body {
                Body::ListCheck(_) => s.check_entries_to.push(to.clone()),
                Body::ListRetry(_) => {
                    s.retries_to.insert(to.clone());
                }
                _ => {}
            }
        }
    }));
    seen
}

fn bodies(entries: &[Entry]) -> Vec<&Body> {
    entries.iter().map(|e| &e.signed.statement.body).collect()
}

fn linked(entries: &[Entry]) -> bool {
    bodies(entries)
        .iter()
        .any(|b| matches!(b, Body::LinkSummary(_) | Body::Delivery(_)))
}

fn closure_reason(entries: &[Entry]) -> String {
    entries
        .iter()
        .find_map(|e| match &e.signed.statement.body {
            Body::Closure(c) => Some(c.reason.as_str().to_string()),
            _ => None,
        })
        .expect("the project is closed")
}

/// `list`'s list checks in the transcript: (attempt, passed), in order.
fn checks_of(entries: &[Entry], list: &str) -> Vec<(u32, bool)> {
    bodies(entries)
        .iter()
        .filter_map(|b| match b {
            Body::ListCheck(c) if c.list.as_str() == list => Some((c.attempt.0, c.passed)),
            _ => None,
        })
        .collect()
}

/// Every register's stored closed notice names `list`.
fn assert_notices_name(net: &mut Net, project: &str, list: &str) {
    for r in REGISTERS {
        let notice = net
            .engine(&name(r))
            .expect("engine")
            .phase_notice(&pid(project))
            .expect("store")
            .unwrap_or_else(|| panic!("{r} holds no notice"));
        assert_eq!(notice.notice.phase, Notified::Closed, "{r}");
        assert_eq!(notice.notice.failed_list, Some(list_name(list)), "{r}");
    }
}

/// No register ever received a list check entry, and none holds one.
fn assert_no_check_reached_a_register(net: &mut Net, seen: &Seen, project: &str) {
    assert!(
        seen.check_entries_to.is_empty(),
        "list check entries replicated to {:?}",
        seen.check_entries_to
    );
    for r in REGISTERS {
        let held = net.transcript(&name(r), &pid(project)).expect("transcript");
        assert!(
            !held
                .iter()
                .any(|e| matches!(e.signed.statement.body, Body::ListCheck(_))),
            "{r} holds a list check entry"
        );
    }
}

/// The delivered tables are the ground truth: exactly the cohort's rows,
/// one lnr per person.
fn assert_ground_truth(w: &World, project: &str, tables: &BTreeMap<Name, Vec<(Lnr, Vec<String>)>>) {
    let lnr_of =
        truth::lnr_from_keystores(&w.fed.keystores(), &pid(project), &w.pop).expect("shares");
    let cohort = w.pop.members("NPR");
    assert!(cohort.len() >= 5, "cohort of {}", cohort.len());
    for r in REGISTERS {
        let mut want: BTreeMap<Lnr, Vec<Vec<String>>> = BTreeMap::new();
        for (person, rows) in w.pop.rows_by_person(r) {
            if cohort.contains(&person) {
                want.insert(lnr_of[person], rows);
            }
        }
        let mut got: BTreeMap<Lnr, Vec<Vec<String>>> = BTreeMap::new();
        for (lnr, row) in &tables[&name(r)] {
            got.entry(*lnr).or_default().push(row.clone());
        }
        assert_eq!(
            got, want,
            "{r}: delivered rows differ from the ground truth"
        );
    }
}

#[test]
fn a_hop_that_deviates_in_attempt_0_only_is_checked_again_in_strict_mode_and_the_project_links() {
    let w = world();
    let mut net = w.start();
    let project = "STRICT-ONCE";
    let by = hops_of(&net, "KPR")[0].clone();
    let key = w.node_key(by.as_str());
    let seen = watch(&mut net);
    // Strict chunks on the wire: each carries the earlier statements and a
    // proof.
    let strict_chunks: Rc<RefCell<usize>> = Rc::default();
    let counter = strict_chunks.clone();
    net.tamper(attacks::consistent_hop(
        by,
        header(project, "KPR", w.persons("KPR")),
        key,
        swap_first(|attempt| attempt == Attempt::FIRST),
        move |_, _, msg| {
            if let Message::ChunkV2 { chunk, .. } = msg {
                if chunk.attempt == Attempt(1)
                    && (chunk.proof.is_some() || !chunk.earlier.is_empty())
                {
                    *counter.borrow_mut() += 1;
                }
            }
        },
    ));
    let out = w
        .fed
        .run_project(&mut net, &w.extracts(), &config(project))
        .expect("the project links after the strict attempt");
    assert!(*strict_chunks.borrow() > 0, "no strict chunk was sent");
    assert_ground_truth(&w, project, &out.tables);

    let entries = &out.transcript.0;
    let b = bodies(entries);
    // The failed attempt, the retry, the strict attempt's records, and
    // its passed check; the other lists passed at once.
    assert_eq!(checks_of(entries, "KPR"), vec![(0, false), (1, true)]);
    assert_eq!(checks_of(entries, "NPR"), vec![(0, true)]);
    let retry = b
        .iter()
        .position(|b| matches!(b, Body::ListRetry(r) if r.list.as_str() == "KPR" && r.attempt == Attempt(1)))
        .expect("a retry of KPR");
    assert!(b[retry + 1..].iter().any(
        |b| matches!(b, Body::HopV2(h) if h.list.as_str() == "KPR" && h.attempt == Attempt(1))
    ));
    // No list check precedes a hop record: a register's prefix holds the
    // retry and every record of the strict attempt.
    let first_check = b
        .iter()
        .position(|b| matches!(b, Body::ListCheck(_)))
        .expect("checks");
    assert!(b[first_check..].iter().all(|b| !matches!(
        b,
        Body::HopV2(_) | Body::OwnerListV2(_) | Body::ListRetry(_)
    )));
    // The owner's duty to send its list again follows the retry, not
    // before, and ends with its strict list statement.
    let manifest = net.manifest().clone();
    let duties = |n: usize| ProjectView::new(&manifest, &entries[..n]).duties(&name("KPR"));
    let resend = kobling_protocol::project::Duty::Resend {
        list: list_name("KPR"),
        attempt: Attempt(1),
    };
    assert!(!duties(retry).contains(&resend));
    assert!(duties(retry + 1).contains(&resend));
    let view = ProjectView::new(&manifest, &entries[..retry + 1]);
    let l = view.v2_list(&list_name("KPR")).expect("KPR");
    assert_eq!(
        (l.attempt, l.mode(), l.hops.len()),
        (Attempt(1), Mode::Strict, 0)
    );
    let strict_owner_list = b
        .iter()
        .position(
            |b| matches!(b, Body::OwnerListV2(o) if o.list.as_str() == "KPR" && o.attempt == Attempt(1)),
        )
        .expect("the owner's strict list statement");
    assert!(!duties(strict_owner_list + 1).contains(&resend));
    let seen = seen.borrow();
    for r in REGISTERS {
        assert!(
            seen.retries_to.contains(&name(r)),
            "{r} was not sent the retry"
        );
    }
    assert_no_check_reached_a_register(&mut net, &seen, project);

    // The transcript audits, and a tampered one does not: the failed
    // check's B changed, a retry for a later attempt, or the failed
    // check removed (the chain is re-linked: only the order's rules can
    // catch it).
    transcript::verify(entries, None, net.manifest()).expect("the transcript verifies");
    let failed = entries
        .iter()
        .position(|e| matches!(&e.signed.statement.body, Body::ListCheck(c) if !c.passed))
        .expect("the failed check");
    let mut forged = entries.clone();
    if let Body::ListCheck(c) = &mut forged[failed].signed.statement.body {
        c.b = c.a[0];
    }
    assert!(transcript::verify(&forged, None, net.manifest()).is_err());
    let mut forged = entries.clone();
    if let Body::ListRetry(r) = &mut forged[retry].signed.statement.body {
        r.attempt = Attempt(2);
    }
    assert!(transcript::verify(&forged, None, net.manifest()).is_err());

    // The linker itself forging (re-signed with its key, chained anew, so
    // only the strict-mode rules can catch it): each is rejected by the
    // hop-chain check.
    let linker = w.node_key(LINKER);
    let forge = |f: &dyn Fn(&mut Vec<transcript::SignedStatement>)| {
        let mut statements: Vec<_> = entries.iter().map(|e| e.signed.clone()).collect();
        f(&mut statements);
        let mut t = transcript::Transcript::new();
        for s in statements {
            t.append(s, &linker);
        }
        transcript::verify(&t.into_entries(), None, net.manifest())
    };
    let resign = |s: &mut transcript::SignedStatement, change: &dyn Fn(&mut Body)| {
        let mut st = s.statement.clone();
        change(&mut st.body);
        *s = st.sign(&linker);
    };
    assert!(forge(&|_| {}).is_ok(), "re-chaining alone changes nothing");
    let last_hop_0 = b[..retry]
        .iter()
        .rposition(|b| matches!(b, Body::HopV2(h) if h.list.as_str() == "KPR" && h.attempt == Attempt::FIRST))
        .expect("KPR's attempt 0 records");
    type Forgery<'f> = &'f dyn Fn(&mut Vec<transcript::SignedStatement>);
    let cases: [(&str, Forgery); 5] = [
        ("the failed attempt's check left out", &|s| {
            s.remove(failed);
        }),
        ("the retry left out", &|s| {
            s.remove(retry);
        }),
        ("the retry for another attempt", &|s| {
            resign(&mut s[retry], &|b| {
                if let Body::ListRetry(r) = b {
                    r.attempt = Attempt(2);
                }
            });
        }),
        ("the retried attempt's check said to pass", &|s| {
            resign(&mut s[failed], &|b| {
                if let Body::ListCheck(c) = b {
                    c.passed = true;
                }
            });
        }),
        ("the retry before the attempt's last hop record", &|s| {
            let r = s.remove(retry);
            s.insert(last_hop_0, r);
        }),
    ];
    for (what, f) in cases {
        let e = forge(f).expect_err(what);
        assert_eq!(e.check, transcript::Check::HopChain, "{what}: {e}");
    }
}

#[test]
fn a_hop_that_deviates_in_both_attempts_is_named_by_its_strict_proof_and_the_project_stops() {
    // KPR's hop 1 (a register hop: hop 2 names it) and hop m (the last
    // register hop: the linker names it).
    let w = world();
    let hops = {
        let net = w.start();
        hops_of(&net, "KPR")
    };
    let m = hops.len() - 1;
    for (hop, project) in [(1usize, "STRICT-TWICE-1"), (m, "STRICT-TWICE-M")] {
        let mut net = w.start();
        let by = hops[hop - 1].clone();
        let key = w.node_key(by.as_str());
        let seen = watch(&mut net);
        net.tamper(attacks::consistent_hop(
            by.clone(),
            header(project, "KPR", w.persons("KPR")),
            key,
            swap_first(|_| true),
            |_, _, _| {},
        ));
        let entries = w.drive(&mut net, project);
        assert!(!linked(&entries), "linked despite the deviation");
        assert_eq!(checks_of(&entries, "KPR"), vec![(0, false)]);
        let (signer, stop) = entries
            .iter()
            .find_map(|e| match &e.signed.statement.body {
                Body::ChainStopped(s) => Some((e.signed.statement.signer.clone(), s.clone())),
                _ => None,
            })
            .expect("a chain stop");
        assert_eq!(stop.attempt, Attempt(1), "{project}");
        assert_eq!(
            stop.named,
            Some((HopIndex(hop as u32), by.clone())),
            "{project}"
        );
        assert_eq!(signer, Signer::Node(hops[hop].clone()), "{project}");
        let reason = closure_reason(&entries);
        assert!(
            reason.contains("list KPR") && reason.contains(&format!("hop {hop} ({by})")),
            "{reason}"
        );
        // The failed check of attempt 0 and the stop precede the closure.
        let at = |pred: &dyn Fn(&Body) -> bool| {
            entries
                .iter()
                .position(|e| pred(&e.signed.statement.body))
                .expect("present")
        };
        let closure = at(&|b| matches!(b, Body::Closure(_)));
        assert!(at(&|b| matches!(b, Body::ListCheck(_))) < closure);
        assert!(at(&|b| matches!(b, Body::ChainStopped(_))) < closure);
        transcript::verify(&entries, None, net.manifest())
            .expect("the stopped transcript verifies");
        assert_notices_name(&mut net, project, "KPR");
        assert_no_check_reached_a_register(&mut net, &seen.borrow(), project);
    }
}

/// The colluding pair of hops 1 and 2 of a list (m = 2, so the linker is
/// the only step that checks hop 2's strict proof): in the strict attempt
/// hop 1 forwards `X`, its output with the first two persons swapped,
/// and hop 2 steps `X` and proves it; both sign statements and hop records
/// over what they sent. Every per-chunk proof and every signature holds.
struct Pair {
    header: ListHeader,
    hop1: (Name, SigningKey),
    hop2: (Name, SigningKey, Share),
    /// Chunk 0's digests once made: d(X), d(Y = k_2·X).
    made: Option<(Digest, Digest)>,
    /// Hop 1's honest output of chunk 0, as it went to hop 2.
    out1: Option<Vec<kobling_protocol::group::WirePoint>>,
}

impl Pair {
    fn on_message(&mut self, from: &Name, msg: &mut Message) {
        match msg {
            Message::ChunkV2 { chunk, .. }
                if chunk.list == self.header.list && chunk.attempt == Attempt(1) =>
            {
                if chunk.statement.statement.chunk != ChunkIndex(0) {
                    return;
                }
                if *from == self.hop1.0 {
                    self.out1 = Some(chunk.points.to_vec());
                } else if *from == self.hop2.0 {
                    self.collude(chunk);
                }
            }
            Message::Statement(signed) => {
                let mut st = signed.statement.clone();
                let Body::HopV2(h) = &mut st.body else { return };
                if h.list != self.header.list || h.attempt != Attempt(1) {
                    return;
                }
                let key = if *from == self.hop1.0 {
                    &self.hop1.1
                } else if *from == self.hop2.0 {
                    &self.hop2.1
                } else {
                    return;
                };
                let Some((dx, dy)) = self.made else {
                    // The record overtook the chunk: not admissible yet,
                    // sent again later.
                    h.hop = HopIndex(99);
                    *signed = st.sign(key);
                    return;
                };
                let mut chunks = h.chunks.to_vec();
                if *from == self.hop1.0 {
                    chunks[0].output = dx;
                } else {
                    chunks[0].input = dx;
                    chunks[0].output = dy;
                }
                h.chunks = BoundedVec::new(chunks).expect("within bounds");
                *signed = st.sign(key);
            }
            _ => {}
        }
    }

    /// Hop 2's chunk 0 to the linker, as the pair makes it.
    fn collude(&mut self, chunk: &mut ChunkMsg) {
        let header = attacks::header_of_attempt(&self.header, Attempt(1));
        let mut x = self.out1.clone().expect("hop 1's chunk went first");
        x.swap(0, 1);
        let decoded = chain::decode_points(&x, 0).expect("valid points");
        let y = chain::multiply_decoded(&self.hop2.2, &decoded);
        // Hop 1's statement (carried) now says it output X.
        let mut earlier = chunk.earlier.to_vec();
        let mine = earlier.last_mut().expect("hop 1's statement");
        mine.statement.output = chunk_digest(&x);
        mine.signature = mine.statement.sign(&header, &self.hop1.1);
        chunk.earlier = BoundedVec::new(earlier).expect("within bounds");
        // Hop 2's statement and proof over X → Y.
        let st = &mut chunk.statement.statement;
        st.input = chunk_digest(&x);
        st.output = chunk_digest(&y);
        chunk.statement.signature = st.sign(&header, &self.hop2.1);
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([9; 32]);
        chunk.proof = Some(v2::strict::prove(
            &header,
            &chunk.statement.statement,
            &self.hop2.2,
            &self.hop2.2.commitment(),
            &decoded,
            &mut rng,
        ));
        self.made = Some((chunk_digest(&x), chunk_digest(&y)));
        chunk.input = BoundedVec::new(x).expect("within bounds");
        chunk.points = BoundedVec::new(y).expect("within bounds");
    }
}

#[test]
fn a_colluding_pair_no_strict_proof_shows_fails_the_strict_check_and_the_project_stops() {
    let w = world();
    let mut net = w.start();
    let project = "STRICT-PAIR";
    let list = "KPR";
    let hops = hops_of(&net, list);
    assert_eq!(hops.len(), 3, "two register hops and the linker");
    let (h1, h2) = (hops[0].clone(), hops[1].clone());
    let seen = watch(&mut net);
    let header = header(project, list, w.persons(list));
    // Attempt 0: hop 1 deviates (the optimistic check fails). Attempt 1:
    // the pair. Hop 2's share exists once the project is ordered: made
    // when the pair needs it.
    let pair: Rc<RefCell<Option<Pair>>> = Rc::default();
    let (k1, k2) = (w.node_key(h1.as_str()), w.node_key(h2.as_str()));
    let keystore2 = w.fed.keystore(h2.as_str()).expect("keystore");
    let state = pair.clone();
    let (hh, n1, n2, kk1) = (header.clone(), h1.clone(), h2.clone(), k1.clone());
    let domain = Domain::Project(pid(project));
    net.tamper(attacks::consistent_hop(
        h1.clone(),
        header.clone(),
        k1,
        swap_first(|attempt| attempt == Attempt::FIRST),
        move |from, _to, msg| {
            let mut p = state.borrow_mut();
            if p.is_none() {
                let Ok(share) = keystore2.share(&domain) else {
                    return;
                };
                *p = Some(Pair {
                    header: hh.clone(),
                    hop1: (n1.clone(), kk1.clone()),
                    hop2: (n2.clone(), k2.clone(), share),
                    made: None,
                    out1: None,
                });
            }
            if let Some(p) = p.as_mut() {
                p.on_message(from, msg);
            }
        },
    ));
    let entries = w.drive(&mut net, project);
    assert!(
        pair.borrow().as_ref().is_some_and(|p| p.made.is_some()),
        "the pair never acted in the strict attempt"
    );
    assert!(!linked(&entries), "linked despite the pair");
    // Both attempts' records are in, both checks failed, nobody is named.
    assert_eq!(checks_of(&entries, list), vec![(0, false), (1, false)]);
    assert!(!bodies(&entries)
        .iter()
        .any(|b| matches!(b, Body::ChainStopped(_))));
    let reason = closure_reason(&entries);
    assert!(
        reason.contains("list KPR") && reason.contains("strict mode too"),
        "{reason}"
    );
    transcript::verify(&entries, None, net.manifest()).expect("the stopped transcript verifies");
    assert_notices_name(&mut net, project, list);
    assert_no_check_reached_a_register(&mut net, &seen.borrow(), project);
}

#[test]
fn a_pseudonymous_list_converted_by_its_hops_passes_its_strict_attempt() {
    // RESEPT's list (register domain RESEPT, key holders NPR, KPR, SSB
    // and the linker; `node/tests/pseudonymous.rs`): every register hop
    // converts. Hop 1 deviates in attempt 0 only; the strict attempt's
    // conversion steps prove against their conversion keys `K'_i`, pass,
    // and the project links the ground truth.
    let registers = ["NPR", "KPR", "SSB", "RESEPT"];
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = Federation::create(dir.path(), &registers, 42)
        .expect("federation")
        .with_domain("RESEPT", "RESEPT")
        .expect("domain");
    let pop = generate(&PopulationConfig {
        persons: 240,
        seed: 7,
        ..Default::default()
    });
    let resept = fed
        .pseudonymous_extract(pop.extract("RESEPT").expect("extract"), "RESEPT")
        .expect("holder's extract");
    let extracts = vec![
        pop.extract("NPR").expect("NPR"),
        pop.extract("KPR").expect("KPR"),
        &resept,
    ];
    let project = "STRICT-PSEUDO";
    let mut config = config(project);
    config.cohort = "NPR | RESEPT".into();
    let order = fed
        .pseudonymous_order(&config, &extracts, &[("RESEPT", "RESEPT")])
        .expect("order");
    let mut net = fed.start(CHUNK, Faults::default(), 3).expect("nodes");
    let participants: Vec<Name> = ["NPR", "KPR", "RESEPT"].iter().map(|r| name(r)).collect();
    let mut hops = net.manifest().chain_order(&name("RESEPT"), &participants);
    hops.remove(0);
    let by = hops[0].clone();
    let key = SigningKey::from_bytes(
        &fed.keystore(by.as_str())
            .expect("keystore")
            .signing_key()
            .to_bytes(),
    );
    let persons = resept
        .owners
        .iter()
        .flatten()
        .collect::<BTreeSet<_>>()
        .len() as u64;
    let seen = watch(&mut net);
    net.tamper(attacks::consistent_hop(
        by,
        header(project, "RESEPT", persons),
        key,
        swap_first(|attempt| attempt == Attempt::FIRST),
        |_, _, _| {},
    ));
    let start = net.clock_ms();
    fed.approve_pseudonymous(&mut net, &order, &extracts, &["SSB"], &config)
        .expect("approved");
    let out = fed
        .run_to_delivery(&mut net, &order, &config, start)
        .expect("the project links after the strict attempt");
    let entries = &out.transcript.0;
    assert_eq!(checks_of(entries, "RESEPT"), vec![(0, false), (1, true)]);
    assert!(entries.iter().any(|e| matches!(
        &e.signed.statement.body,
        Body::ListRetry(r) if r.list.as_str() == "RESEPT"
    )));
    transcript::verify(entries, None, net.manifest()).expect("the transcript verifies");
    let lnr_of = truth::lnr_from_keystores(&fed.keystores(), &pid(project), &pop).expect("shares");
    let cohort: BTreeSet<usize> = pop
        .members("NPR")
        .union(&pop.members("RESEPT"))
        .copied()
        .collect();
    let problems = truth::compare_cohort(&pop, &lnr_of, &cohort, &out.tables);
    assert!(problems.is_empty(), "{problems:?}");
    assert!(seen.borrow().check_entries_to.is_empty());
}

#[test]
fn a_delivery_whose_check_fails_once_is_received_exactly_after_its_strict_attempt() {
    // A delivery NPR → register domain SSB (key holders NPR, the source,
    // KPR and the linker; `node/tests/delivery_attacks.rs`): KPR, its only
    // register hop, swaps two persons in attempt 0 only. The strict
    // attempt passes and the holder stores every row once, under Ψ_SSB;
    // the failed attempt's output is never delivered.
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = Federation::create(dir.path(), &REGISTERS, 17)
        .expect("federation")
        .with_domain("SSB", "SSB")
        .expect("domain");
    let npr = generate(&PopulationConfig {
        persons: 200,
        cohort_share: 0.5,
        seed: 5,
        ..Default::default()
    })
    .extract("NPR")
    .expect("NPR")
    .clone();
    let mut net = fed.start(16, Faults::default(), 21).expect("net");
    net.run_until(120_000, |net| {
        for m in ["SSB", LINKER] {
            let complete = net
                .engine(&name(m))?
                .domain_state(&name("SSB"))?
                .is_some_and(|s| s.is_complete());
            if !complete {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .expect("the domain is created and committed");
    let order = fed
        .delivery_order("NPR-SSB-STRICT", &npr, "SSB")
        .expect("order");
    let persons = npr.owners.iter().flatten().collect::<BTreeSet<_>>().len() as u64;
    let header = ListHeader {
        domain: order.key_domain(),
        delivery: order.delivery_id(),
        list: list_name("NPR"),
        attempt: Attempt::FIRST,
        mode: Mode::Optimistic,
        persons,
        chunk_size: 16,
    };
    net.tamper(attacks::consistent_hop(
        name("KPR"),
        header,
        w_key(&fed, "KPR"),
        swap_first(|attempt| attempt == Attempt::FIRST),
        |_, _, _| {},
    ));
    let submitted = fed.submit_delivery(&mut net, &order).expect("submitted");
    assert!(
        submitted
            .first()
            .is_some_and(|m| m.refusal_code().is_none()),
        "the delivery order is accepted"
    );
    fed.approve_delivery(&mut net, &order, &npr)
        .expect("approved");
    let record = fed
        .await_delivery(&mut net, &order, &name("SSB"))
        .expect("received after the strict attempt");
    let entries = net
        .transcript(&name(LINKER), &order.project)
        .expect("transcript");
    assert_eq!(checks_of(&entries, "NPR"), vec![(0, false), (1, true)]);
    transcript::verify(&entries, None, net.manifest()).expect("the transcript verifies");
    // Every valid row once, under its Ψ_SSB(x) (from the key holders'
    // keystores: the harness only), with its own values.
    let options = kobling_protocol::ident::ParseOptions {
        allow_synthetic: true,
    };
    let valid: Vec<(kobling_protocol::ident::Identifier, Vec<String>)> = npr
        .rows
        .iter()
        .zip(&npr.owners)
        .filter_map(|((raw, values), owner)| {
            owner.and(
                kobling_protocol::ident::Identifier::parse(raw, options)
                    .ok()
                    .map(|id| (id, values.clone())),
            )
        })
        .collect();
    let ids: Vec<_> = valid.iter().map(|(id, _)| *id).collect();
    let psi = fed.register_pseudonyms("SSB", &ids, 1).expect("pseudonyms");
    let mut want: Vec<([u8; 32], Vec<String>)> = psi
        .iter()
        .zip(&valid)
        .map(|(p, (_, values))| (p.0, values.clone()))
        .collect();
    let mut got = Vec::new();
    net.engine(&name("SSB"))
        .expect("holder")
        .for_each_domain_row(&name("SSB"), &order.delivery_id().expect("id"), |r| {
            got.push((r.pseudonym.0, r.values));
            Ok(())
        })
        .expect("rows");
    want.sort();
    got.sort();
    assert_eq!(
        got, want,
        "the holder's rows are the ground truth, each once"
    );
    let valid = want.len();
    let kobling_protocol::domain::transcript::DomainBody::Delivery { rows: recorded, .. } =
        record.record
    else {
        panic!("not a delivery record")
    };
    assert_eq!(recorded as usize, valid);
}

/// A member's node signing key.
fn w_key(fed: &Federation, member: &str) -> SigningKey {
    let ks = fed.keystore(member).expect("keystore");
    SigningKey::from_bytes(&ks.signing_key().to_bytes())
}
