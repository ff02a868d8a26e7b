//! The streamed owner (docs/protocol.md §19, issue 13 item 6), attacked
//! over real engines in memory (`kobling_node::testing`): an owner whose
//! end-of-list statement contradicts its list is named and the project
//! stops; a list whose end-of-list statement never arrives does not
//! link; an owner's chunk past the list's end is refused.

use std::{cell::RefCell, collections::BTreeSet, rc::Rc};

use ed25519_dalek::SigningKey;
use kobling_node::testing::{Faults, Federation, Net, ProjectConfig, LINKER};
use kobling_protocol::{
    bounded::BoundedVec,
    messages::Message,
    project::{Phase, ProjectView},
    share::Domain,
    transcript::{self, Body, Entry},
    types::{Attempt, ChunkIndex, Digest, HopIndex, Name, ProjectId},
    v2::{list_digest, ListHeader, Mode, OwnerList},
};
use kobling_sim::population::{generate, Extract, Population, PopulationConfig};

const REGISTERS: [&str; 3] = ["NPR", "KPR", "SSB"];
const CHUNK: u32 = 64;
const LIMIT_MS: u64 = 300_000;

fn name(s: &str) -> Name {
    Name::new(s).expect("valid name")
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

impl World {
    fn extracts(&self) -> Vec<&Extract> {
        REGISTERS
            .iter()
            .map(|r| self.pop.extract(r).expect("extract"))
            .collect()
    }

    fn node_key(&self, member: &str) -> SigningKey {
        let ks = self.fed.keystore(member).expect("keystore");
        SigningKey::from_bytes(&ks.signing_key().to_bytes())
    }

    fn persons(&self, list: &str) -> u64 {
        let extract = self.pop.extract(list).expect("extract");
        extract
            .owners
            .iter()
            .flatten()
            .collect::<BTreeSet<_>>()
            .len() as u64
    }

    fn order(&self, net: &mut Net, project: &str) {
        let config = ProjectConfig {
            project: project.into(),
            cohort: "NPR".into(),
            chunk_size: CHUNK,
            seed: 3,
            faults: Faults::default(),
        };
        self.fed
            .order_and_approve(net, &self.extracts(), &config)
            .expect("order and approvals");
    }

    /// Orders `project` and runs it to a final phase.
    fn drive(&self, net: &mut Net, project: &str) -> Vec<Entry> {
        self.order(net, project);
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

fn header(project: &str, list: &str, persons: u64) -> ListHeader {
    ListHeader {
        domain: Domain::Project(pid(project)),
        delivery: None,
        list: kobling_protocol::types::ListName::of(&name(list)),
        attempt: Attempt::FIRST,
        mode: Mode::Optimistic,
        persons,
        chunk_size: CHUNK,
    }
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

fn linked(entries: &[Entry]) -> bool {
    entries.iter().any(|e| {
        matches!(
            e.signed.statement.body,
            Body::LinkSummary(_) | Body::Delivery(_)
        )
    })
}

fn has(entries: &[Entry], f: impl Fn(&Body) -> bool) -> bool {
    entries.iter().any(|e| f(&e.signed.statement.body))
}

/// SSB's node rewrites its own end-of-list statement with `change` and
/// signs it again with its own key.
fn lying_owner(w: &World, net: &mut Net, change: fn(&mut OwnerList)) -> Rc<RefCell<u32>> {
    let key = w.node_key("SSB");
    let seen = Rc::new(RefCell::new(0u32));
    let count = seen.clone();
    net.tamper(Box::new(move |from, _to, msg| {
        let Message::Statement(signed) = msg else {
            return;
        };
        let Body::OwnerListV2(o) = &mut signed.statement.body else {
            return;
        };
        if from.as_str() != "SSB" || o.list.as_str() != "SSB" || o.attempt != Attempt::FIRST {
            return;
        }
        change(o);
        *signed = signed.statement.clone().sign(&key);
        *count.borrow_mut() += 1;
    }));
    seen
}

#[test]
fn an_owner_whose_end_of_list_statement_contradicts_its_list_is_named_and_the_project_stops() {
    type Case = (&'static str, fn(&mut OwnerList));
    let cases: [Case; 3] = [
        // Another whole-list digest than that of its chunk digests.
        ("whole-list digest", |o| o.list_digest.0[0] ^= 1),
        // A sealed root that is not the root of the items it sent.
        ("sealed root", |o| o.sealed_root = Digest([5; 32])),
        // One chunk digest fewer than its announcement makes (the whole
        // digest made to fit).
        ("chunk digests where its announcement makes", |o| {
            let mut c = o.chunks.to_vec();
            c.pop();
            o.chunks = BoundedVec::new(c).expect("fits");
            o.list_digest = list_digest(&o.chunks);
        }),
    ];
    for (i, (why, change)) in cases.into_iter().enumerate() {
        let w = world();
        let mut net = w.fed.start(CHUNK, Faults::default(), 3).expect("nodes");
        let seen = lying_owner(&w, &mut net, change);
        let project = format!("LIE-{i}");
        let entries = w.drive(&mut net, &project);
        assert!(*seen.borrow() > 0, "{why}: the statement was never sent");
        assert!(!linked(&entries), "{why}: linked despite the lie");
        assert!(
            !has(
                &entries,
                |b| matches!(b, Body::OwnerListV2(o) if o.list.is_owned_by(&name("SSB")))
            ),
            "{why}: the lying statement was recorded"
        );
        assert!(
            !has(
                &entries,
                |b| matches!(b, Body::ListCheck(c) if c.list.is_owned_by(&name("SSB")))
            ),
            "{why}: a list check without the owner's statement"
        );
        let reason = closure_reason(&entries);
        assert!(
            reason.contains("list SSB") && reason.contains("owner SSB") && reason.contains(why),
            "{why}: {reason}"
        );
        transcript::verify(&entries, None, net.manifest())
            .expect("the stopped transcript verifies");
    }
}

#[test]
fn an_end_of_list_statement_whose_chunk_digests_differ_from_the_signed_chunks_stops_the_project() {
    // Self-consistent, but chunk 0's digest is not the one the owner
    // signed with chunk 0: hop 1's record cannot chain with it.
    let w = world();
    let mut net = w.fed.start(CHUNK, Faults::default(), 3).expect("nodes");
    let seen = lying_owner(&w, &mut net, |o| {
        let mut c = o.chunks.to_vec();
        c[0].0[0] ^= 1;
        o.chunks = BoundedVec::new(c).expect("fits");
        o.list_digest = list_digest(&o.chunks);
    });
    let entries = w.drive(&mut net, "LIE-CHUNK");
    assert!(*seen.borrow() > 0);
    assert!(!linked(&entries), "linked despite the lie");
    assert!(!has(
        &entries,
        |b| matches!(b, Body::ListCheck(c) if c.list.is_owned_by(&name("SSB")))
    ));
    let reason = closure_reason(&entries);
    assert!(reason.contains("list SSB"), "{reason}");
    transcript::verify(&entries, None, net.manifest()).expect("the stopped transcript verifies");
}

#[test]
fn a_list_whose_end_of_list_statement_never_arrives_does_not_link() {
    // SSB's end-of-list statement is replaced on the way by a copy of its
    // announcement (already recorded: acknowledged, nothing new).
    let w = world();
    let mut net = w.fed.start(CHUNK, Faults::default(), 3).expect("nodes");
    let announcement: Rc<RefCell<Option<Message>>> = Rc::default();
    let held = announcement.clone();
    let dropped = Rc::new(RefCell::new(0u32));
    let count = dropped.clone();
    net.tamper(Box::new(move |from, _to, msg| {
        let Message::Statement(signed) = msg else {
            return;
        };
        if from.as_str() != "SSB" {
            return;
        }
        match &signed.statement.body {
            Body::ListAnnouncedV2(a) if a.list.as_str() == "SSB" => {
                *held.borrow_mut() = Some(msg.clone());
            }
            Body::OwnerListV2(o) if o.list.as_str() == "SSB" => {
                if let Some(a) = held.borrow().clone() {
                    *msg = a;
                    *count.borrow_mut() += 1;
                }
            }
            _ => {}
        }
    }));
    w.order(&mut net, "MISSING");
    net.run_for(60_000).expect("run");
    let entries = net
        .transcript(&name(LINKER), &pid("MISSING"))
        .expect("transcript");
    assert!(*dropped.borrow() > 0, "the statement was never sent");
    assert!(
        !linked(&entries),
        "linked without SSB's end-of-list statement"
    );
    // The other lists went through every hop (their checks wait to be
    // published with SSB's); SSB's hops wait for the statement.
    for list in ["NPR", "KPR"] {
        let records = entries
            .iter()
            .filter(|e| matches!(&e.signed.statement.body, Body::HopV2(h) if h.list.is_owned_by(&name(list))))
            .count();
        assert_eq!(records, REGISTERS.len(), "{list}'s hop records");
    }
    assert!(!has(
        &entries,
        |b| matches!(b, Body::OwnerListV2(o) if o.list.is_owned_by(&name("SSB")))
    ));
    assert!(!has(
        &entries,
        |b| matches!(b, Body::HopV2(h) if h.list.is_owned_by(&name("SSB")))
    ));
    assert!(!has(
        &entries,
        |b| matches!(b, Body::ListCheck(c) if c.list.is_owned_by(&name("SSB")))
    ));
    transcript::verify(&entries, None, net.manifest()).expect("the transcript verifies");
}

#[test]
fn an_owner_chunk_past_the_list_s_end_is_refused_and_the_list_does_not_link() {
    // SSB signs its last chunk as the chunk after its list's last one:
    // hop 1 refuses it at admission (the announcement fixed the count),
    // steps nothing of it, and the list never links.
    let w = world();
    let mut net = w.fed.start(CHUNK, Faults::default(), 3).expect("nodes");
    let persons = w.persons("SSB");
    let header = header("PAST-END", "SSB", persons);
    let last = header.chunks() - 1;
    let key = w.node_key("SSB");
    net.tamper(Box::new(move |from, _to, msg| {
        let Message::ChunkV2 { chunk, .. } = msg else {
            return;
        };
        let st = &mut chunk.statement.statement;
        if from.as_str() != "SSB" || st.hop != HopIndex::OWNER || st.chunk != ChunkIndex(last) {
            return;
        }
        st.chunk = ChunkIndex(last + 1);
        chunk.statement.signature = st.sign(&header, &key);
    }));
    w.order(&mut net, "PAST-END");
    net.run_for(60_000).expect("run");
    let entries = net
        .transcript(&name(LINKER), &pid("PAST-END"))
        .expect("transcript");
    let refused = net
        .refusals()
        .iter()
        .any(|(_, _, code, detail)| code == "bad-chunk" && detail.contains("there is no chunk"));
    assert!(refused, "the chunk past the end was refused");
    assert!(!linked(&entries));
    assert!(!has(
        &entries,
        |b| matches!(b, Body::HopV2(h) if h.list.is_owned_by(&name("SSB")))
    ));
    assert!(!has(
        &entries,
        |b| matches!(b, Body::ListCheck(c) if c.list.is_owned_by(&name("SSB")))
    ));
    transcript::verify(&entries, None, net.manifest()).expect("the transcript verifies");
}
