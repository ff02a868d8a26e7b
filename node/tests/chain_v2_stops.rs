//! Chain v2 stops as registers see them (issue 13), on real engines in
//! memory (`kobling_node::testing`): a register holds neither the list
//! checks nor the closure, so the linker's signed phase notice names the
//! list that ended the project (`PhaseNotice::failed_list`), and a notice
//! whose list was changed on the way is refused. A list's owner that
//! signs a short middle chunk is named by hop 1, and the project stops
//! naming the list instead of hanging on `bad-chunk` for ever.

use std::{
    cell::Cell,
    collections::{BTreeMap, BTreeSet},
    rc::Rc,
};

use ed25519_dalek::SigningKey;
use kobling_node::testing::{attacks, Faults, Federation, Net, ProjectConfig, LINKER};
use kobling_protocol::{
    bounded::BoundedVec,
    messages::{Action, Message},
    notice::Notified,
    project::{Phase, ProjectView},
    share::Domain,
    transcript::{self, Body, Entry, Signer},
    types::{Attempt, ChunkIndex, HopIndex, ListName, Name, ProjectId},
    v2::{chunk_digest, ChunkMsg, ListHeader, Mode},
};
use kobling_sim::population::{generate, Extract, Population, PopulationConfig};

const REGISTERS: [&str; 3] = ["NPR", "KPR", "SSB"];
const CHUNK: u32 = 64;
/// Virtual time the project gets to reach a final phase.
const LIMIT_MS: u64 = 300_000;

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
        let extract = self.pop.extract(list).expect("extract");
        extract
            .owners
            .iter()
            .flatten()
            .collect::<BTreeSet<_>>()
            .len() as u64
    }

    /// Orders and approves `project`, then runs until the linker's
    /// transcript is deliverable or closed, within [`LIMIT_MS`] of virtual
    /// time; returns the linker's transcript.
    fn drive(&self, net: &mut Net, project: &str) -> Vec<Entry> {
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
        let manifest = net.manifest().clone();
        let id = pid(project);
        let linker = name(LINKER);
        net.run_until(LIMIT_MS, |net| {
            let entries = net.transcript(&linker, &id)?;
            let phase = ProjectView::new(&manifest, &entries).phase();
            Ok(phase == Phase::Closed || phase.is_deliverable())
        })
        .expect("the project reaches a final phase in bounded virtual time");
        // The closed notices and their acknowledgements.
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

/// Hop `by` of `header`'s list swaps the first two persons of chunk 0
/// (each point stepped honestly, forwarded in the wrong places) and signs
/// statements and a hop record consistent with what it sent: only the
/// list check can catch it. `also` sees every message first.
fn deviate(
    net: &mut Net,
    by: Name,
    header: ListHeader,
    key: SigningKey,
    also: impl FnMut(&Name, &Name, &mut Message) + 'static,
) {
    let swap = |chunk: &mut ChunkMsg| {
        if chunk.statement.statement.chunk != ChunkIndex(0) {
            return false;
        }
        let mut points = chunk.points.to_vec();
        points.swap(0, 1);
        chunk.points = BoundedVec::new(points).expect("within bounds");
        true
    };
    net.tamper(attacks::consistent_hop(by, header, key, swap, also));
}

/// The list each register's stored notice names, by register.
fn stored_notices(
    net: &mut Net,
    project: &str,
) -> BTreeMap<&'static str, (Notified, Option<ListName>)> {
    REGISTERS
        .iter()
        .filter_map(|r| {
            let notice = net
                .engine(&name(r))
                .expect("engine")
                .phase_notice(&pid(project))
                .expect("store")?;
            Some((*r, (notice.notice.phase, notice.notice.failed_list)))
        })
        .collect()
}

/// Every register in `registers` stored the closed notice naming `list`.
fn assert_notices_name(net: &mut Net, project: &str, registers: &[&str], list: &str) {
    let notices = stored_notices(net, project);
    for r in registers {
        assert_eq!(
            notices.get(r),
            Some(&(Notified::Closed, Some(list_name(list)))),
            "{r}'s stored notice"
        );
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

#[test]
fn every_register_is_told_which_list_failed_its_check() {
    let w = world();
    let mut net = w.start();
    let project = "STOP-NOTICE";
    let by = hops_of(&net, "KPR")[0].clone();
    let key = w.node_key(by.as_str());
    let header = header(project, "KPR", w.persons("KPR"));
    deviate(&mut net, by, header, key, |_, _, _| {});
    let entries = w.drive(&mut net, project);
    assert!(!linked(&entries), "linked despite the deviation");
    let reason = closure_reason(&entries);
    assert!(reason.contains("list KPR"), "{reason}");
    // The failed check is in the transcript before the closure, so the
    // closed notice names the list.
    let check = entries.iter().position(|e| {
        matches!(&e.signed.statement.body, Body::ListCheck(c) if c.list.as_str() == "KPR" && !c.passed)
    });
    let closure = entries
        .iter()
        .position(|e| matches!(e.signed.statement.body, Body::Closure(_)));
    assert!(
        matches!((check, closure), (Some(c), Some(k)) if c < k),
        "the failed check of KPR precedes the closure: check at {check:?}, closure at {closure:?}"
    );
    transcript::verify(&entries, None, net.manifest()).expect("the stopped transcript verifies");
    assert_notices_name(&mut net, project, &REGISTERS, "KPR");
    // An operator's status at a register is its prefix and that notice,
    // as the linker signed it (what `kobling project status` prints from).
    for r in REGISTERS {
        let notice = operator_status_notice(&w, &mut net, r, project)
            .unwrap_or_else(|| panic!("{r}'s status carries the notice"));
        let linker_key = net.manifest().linker().expect("linker").signing_key;
        assert_eq!(
            notice.check(&pid(project), &linker_key),
            Ok(Notified::Closed)
        );
        assert_eq!(notice.notice.failed_list, Some(list_name("KPR")), "{r}");
    }
}

/// The phase notice in the answer of `register`'s node to its operator's
/// status request.
fn operator_status_notice(
    w: &World,
    net: &mut Net,
    register: &str,
    project: &str,
) -> Option<kobling_protocol::notice::SignedPhaseNotice> {
    let operator = &w.fed.operators[&name(register)][0];
    let request = w
        .fed
        .request_for(&name(register), &pid(project), Action::Status, net.now())
        .sign(operator);
    let replies = net
        .client(&name(register), Message::Status(request))
        .expect("status");
    replies.into_iter().find_map(|m| match m {
        Message::Notice(n) => Some(n),
        _ => None,
    })
}

#[test]
fn a_notice_whose_failed_list_was_changed_is_refused_by_the_register() {
    let w = world();
    let mut net = w.start();
    let project = "STOP-FORGED";
    let by = hops_of(&net, "KPR")[0].clone();
    let key = w.node_key(by.as_str());
    let header = header(project, "KPR", w.persons("KPR"));
    // On the way to NPR, every notice is made to blame NPR's own list,
    // the linker's signature kept.
    let changed = Rc::new(Cell::new(0u32));
    let count = changed.clone();
    deviate(&mut net, by, header, key, move |from, to, msg| {
        if let Message::Notice(n) = msg {
            if from.as_str() == LINKER && to.as_str() == "NPR" {
                n.notice.failed_list = Some(list_name("NPR"));
                count.set(count.get() + 1);
            }
        }
    });
    let entries = w.drive(&mut net, project);
    assert!(!linked(&entries), "linked despite the deviation");
    assert!(changed.get() > 0, "no notice reached NPR to be changed");
    let notices = stored_notices(&mut net, project);
    assert_eq!(notices.get("NPR"), None, "NPR stored a changed notice");
    assert_notices_name(&mut net, project, &["KPR", "SSB"], "KPR");
    assert!(
        net.refusals().iter().any(|(a, b, code, text)| {
            let pair = [a.as_str(), b.as_str()];
            pair.contains(&"NPR")
                && pair.contains(&LINKER)
                && code == "invalid"
                && text.contains("signature")
        }),
        "NPR refuses the changed notice: {:?}",
        net.refusals()
    );
    assert_eq!(operator_status_notice(&w, &mut net, "NPR", project), None);
}

#[test]
fn an_owner_that_signs_a_short_middle_chunk_is_named_and_the_project_stops() {
    // SSB's node, the owner of list SSB (hop 0), sends its chunk 1 one
    // point short, though more chunks follow, and signs it (its statement
    // counts and digests what it sends). Before, hop 1 refused it
    // `bad-chunk` on every resend and the project hung; now hop 1 records
    // a chain stop naming the owner, and the linker closes the project
    // naming the list.
    let w = world();
    let mut net = w.start();
    let project = "STOP-OWNER";
    let persons = w.persons("SSB");
    assert!(
        persons > 2 * u64::from(CHUNK),
        "chunk 1 is in the middle of SSB's list ({persons} persons)"
    );
    let header = header(project, "SSB", persons);
    let key = w.node_key("SSB");
    let shortened = Rc::new(Cell::new(0u32));
    let count = shortened.clone();
    net.tamper(Box::new(move |from, _to, msg| {
        let Message::ChunkV2 { chunk, .. } = msg else {
            return;
        };
        let st = &mut chunk.statement.statement;
        if from.as_str() != "SSB"
            || chunk.list.as_str() != "SSB"
            || st.hop != HopIndex::OWNER
            || st.chunk != ChunkIndex(1)
        {
            return;
        }
        let mut points = chunk.points.to_vec();
        points.pop();
        st.count = points.len() as u32;
        chunk.points = BoundedVec::new(points).expect("within bounds");
        st.output = chunk_digest(&chunk.points);
        chunk.statement.signature = st.sign(&header, &key);
        count.set(count.get() + 1);
    }));
    let entries = w.drive(&mut net, project);
    assert!(shortened.get() > 0, "the owner's chunk 1 was never sent");
    assert!(!linked(&entries), "linked despite the short chunk");
    let hop1 = hops_of(&net, "SSB")[0].clone();
    let (signer, stop) = entries
        .iter()
        .find_map(|e| match &e.signed.statement.body {
            Body::ChainStopped(s) => Some((e.signed.statement.signer.clone(), s.clone())),
            _ => None,
        })
        .expect("a chain stop");
    assert_eq!(stop.list, list_name("SSB"));
    assert_eq!(stop.named, Some((HopIndex::OWNER, name("SSB"))));
    assert_eq!(stop.chunk, ChunkIndex(1));
    assert_eq!(signer, Signer::Node(hop1));
    let reason = closure_reason(&entries);
    assert!(
        reason.contains("list SSB") && reason.contains("owner"),
        "{reason}"
    );
    transcript::verify(&entries, None, net.manifest()).expect("the stopped transcript verifies");
    assert_notices_name(&mut net, project, &REGISTERS, "SSB");
    // The owner's chunk is no longer sent and refused.
    let bad_chunks = |net: &Net| {
        net.refusals()
            .iter()
            .filter(|(_, _, code, _)| code == "bad-chunk")
            .count()
    };
    let before = bad_chunks(&net);
    net.run_for(60_000).expect("run");
    assert_eq!(
        bad_chunks(&net),
        before,
        "the short chunk is still being refused"
    );
}
