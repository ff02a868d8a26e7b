//! Issue 12 items 1 and 8 at the engine: registers hold only the
//! transcript's register prefix and learn later phases from the linker's
//! notices; the researcher's delivery carries no hash of a non-cohort
//! person's pseudonym.

use std::collections::{BTreeMap, HashSet};

use kobling_protocol::{
    bounded::BoundedVec,
    delivery::{BatchProof, DeliveredItem},
    group::WirePoint,
    merkle::MerkleTree,
    messages::{Action, Message},
    notice::Notified,
    transcript::{self, register_prefix, Body, Entry},
    types::{Digest, ListName, ProjectId},
};

use super::{name, Fed, NOW};
use crate::{researcher::open_delivery, store::LinkerTable};

fn linked_and_fetched(persons: usize) -> (Fed, Vec<Message>) {
    let mut fed = Fed::new(persons);
    assert!(matches!(fed.submit("P-1"), Message::Ack { .. }));
    fed.pump();
    super::approve_all(&mut fed, "P-1");
    fed.pump();
    let replies = fed.request("P-1", Action::Fetch);
    fed.pump();
    (fed, replies)
}

fn pid() -> ProjectId {
    ProjectId::new("P-1").expect("valid")
}

fn kinds(entries: &[Entry]) -> Vec<&'static str> {
    entries
        .iter()
        .map(|e| e.signed.statement.body.kind())
        .collect()
}

/// What an operator's key is answered by `node` for a status request.
fn operator_status(fed: &mut Fed, register: &str, node: &str) -> Vec<Message> {
    let req = fed
        .request_for(node, pid().as_str(), Action::Status, NOW)
        .sign(&fed.operators[&name(register)][0]);
    fed.client(node, Message::Status(req))
}

/// Attack (issue 12 item 1): a register, or its operators, look for the
/// link summary or the delivery record (their counts tell whether a
/// chosen person is in the cohort). Registers hold exactly the prefix of
/// the linker's transcript written before linkage, know the phase only
/// from a notice, and an operator's status, at the linker or at its own
/// node, is that prefix and the notice. The researcher gets everything.
#[test]
fn registers_and_their_operators_get_no_entry_written_after_the_chain() {
    let (mut fed, _) = linked_and_fetched(200);
    let linker = fed.engines[&name("LINKER")]
        .transcript(&pid())
        .expect("entries");
    let held = register_prefix(&linker);
    // Chain v2: the list checks (one per list, kept from registers) come
    // first, then the link summary and the delivery.
    let after = kinds(&linker[held..]);
    let checks = after.iter().take_while(|k| **k == "list-check").count();
    assert_eq!(checks, super::REGISTERS.len(), "{after:?}");
    assert!(after[checks..].starts_with(&["link-summary", "delivery"]));
    for r in super::REGISTERS {
        let copy = fed.engines[&name(r)].transcript(&pid()).expect("entries");
        assert_eq!(copy, linker[..held], "{r} holds the register prefix");
        transcript::verify(&copy, None, &fed.manifest).expect("a prefix verifies");
        let notice = fed.engines[&name(r)].store.notice(&pid()).expect("notice");
        assert_eq!(notice.map(|n| n.notice.phase), Some(Notified::Delivered));

        for node in [r, "LINKER"] {
            let replies = operator_status(&mut fed, r, node);
            let [Message::Entries { entries, .. }, Message::Notice(n)] = replies.as_slice() else {
                panic!("{r}'s operator at {node}: {replies:?}");
            };
            assert_eq!(entries.to_vec(), linker[..held]);
            assert_eq!(n.notice.phase, Notified::Delivered);
        }
    }
    // The researcher's status is the whole signed transcript.
    let replies = fed.request("P-1", Action::Status);
    let [Message::TranscriptFile { bytes }] = replies.as_slice() else {
        panic!("{replies:?}");
    };
    let (entries, _) = transcript::decode_file(bytes).expect("file");
    assert!(entries
        .iter()
        .any(|e| matches!(e.signed.statement.body, Body::LinkSummary(_))));

    // Closing reaches the registers as a notice: they shred, and still
    // hold no closure or shredding entry.
    assert!(matches!(
        fed.request("P-1", Action::Close)[0],
        Message::Ack { .. }
    ));
    fed.pump();
    let linker = fed.engines[&name("LINKER")]
        .transcript(&pid())
        .expect("entries");
    let shredded = linker
        .iter()
        .filter(|e| matches!(e.signed.statement.body, Body::Shredded(_)))
        .count();
    assert_eq!(shredded, 4, "every key holder shredded");
    for r in super::REGISTERS {
        let copy = fed.engines[&name(r)].transcript(&pid()).expect("entries");
        assert_eq!(copy.len(), held);
        let notice = fed.engines[&name(r)].store.notice(&pid()).expect("notice");
        assert_eq!(notice.map(|n| n.notice.phase), Some(Notified::Closed));
    }
}

/// A notice signed by anyone but the linker, or sent by a member other
/// than the linker, is refused.
#[test]
fn a_forged_phase_notice_is_refused() {
    let (mut fed, _) = linked_and_fetched(60);
    let forged = kobling_protocol::notice::PhaseNotice {
        project: pid(),
        phase: Notified::Closed,
        failed_list: None,
    }
    .sign(&fed.researcher);
    let reply = fed.engines.get_mut(&name("NPR")).expect("engine").handle(
        &super::Peer::Member(name("LINKER")),
        Message::Notice(forged.clone()),
        NOW,
    );
    assert!(matches!(
        reply.expect("no internal error").as_slice(),
        [Message::Refused { .. }]
    ));
    let honest = kobling_protocol::notice::PhaseNotice {
        project: pid(),
        phase: Notified::Closed,
        failed_list: None,
    }
    .sign(&fed.engines[&name("LINKER")].signing);
    let reply = fed.engines.get_mut(&name("NPR")).expect("engine").handle(
        &super::Peer::Member(name("KPR")),
        Message::Notice(honest),
        NOW,
    );
    assert!(matches!(
        reply.expect("no internal error").as_slice(),
        [Message::Refused { .. }]
    ));
    let notice = fed.engines[&name("NPR")]
        .store
        .notice(&pid())
        .expect("notice");
    assert_eq!(notice.map(|n| n.notice.phase), Some(Notified::Delivered));
}

/// Attack (issue 12 item 8): the researcher compares the Merkle paths of
/// two lists' deliveries, looking for a sibling hash that repeats (a
/// non-cohort person in both lists). With salted final leaves none does,
/// and none is the plain leaf hash of any final pseudonym; unsalted, the
/// same paths carry the leaf hash of a non-cohort person's pseudonym that
/// is in another list too.
#[test]
fn no_sibling_hash_of_a_delivery_repeats_in_another_lists() {
    let (mut fed, replies) = linked_and_fetched(500);
    let cohort = fed.pop.members("NPR");
    let (kpr, ssb) = (fed.pop.members("KPR"), fed.pop.members("SSB"));
    assert!(
        kpr.intersection(&ssb).any(|p| !cohort.contains(p)),
        "the test needs non-cohort persons in two lists"
    );

    let mut siblings: BTreeMap<ListName, HashSet<Digest>> = BTreeMap::new();
    let mut positions: BTreeMap<ListName, Vec<u64>> = BTreeMap::new();
    for m in &replies {
        if let Message::DeliveryItems {
            list, items, proof, ..
        } = m
        {
            siblings
                .entry(list.clone())
                .or_default()
                .extend(proof.points.hashes.iter().copied());
            for it in items.iter() {
                positions
                    .entry(list.clone())
                    .or_default()
                    .push(it.position.0);
            }
        }
    }
    assert_eq!(siblings.len(), 3);
    let lists: Vec<&ListName> = siblings.keys().collect();
    for (i, a) in lists.iter().enumerate() {
        for b in &lists[i + 1..] {
            assert!(
                siblings[*a].is_disjoint(&siblings[*b]),
                "a sibling hash of {a}'s delivery repeats in {b}'s"
            );
        }
    }

    // The final pseudonyms, from the linker's store: no sibling is the
    // plain leaf hash of any of them, and plain trees would repeat.
    let linker = fed.engines.get_mut(&name("LINKER")).expect("engine");
    let mut finals: BTreeMap<ListName, Vec<WirePoint>> = BTreeMap::new();
    for list in &lists {
        let blobs = linker
            .store
            .transaction(|tx| tx.blobs(LinkerTable::Final, &pid(), list))
            .map_err(|e: crate::store::StoreError| e)
            .expect("finals");
        let points = finals.entry((*list).clone()).or_default();
        for b in blobs {
            let chunk: Vec<WirePoint> = postcard::from_bytes(&b).expect("points");
            points.extend(chunk);
        }
    }
    let plain_leaves: HashSet<Digest> = finals
        .values()
        .flatten()
        .map(|p| kobling_protocol::merkle::leaf_hash(p.as_bytes()))
        .collect();
    for (list, s) in &siblings {
        assert!(s.is_disjoint(&plain_leaves), "{list}: a plain leaf hash");
    }
    // Unsalted, the same paths would carry the leaf hash of a non-cohort
    // person's pseudonym that is in another list too.
    let delivered: HashSet<WirePoint> = replies
        .iter()
        .filter_map(|m| match m {
            Message::DeliveryItems { items, .. } => Some(items.iter().map(|i| i.point)),
            _ => None,
        })
        .flatten()
        .collect();
    let outside = |l: &ListName| -> HashSet<Digest> {
        finals[l]
            .iter()
            .filter(|p| !delivered.contains(*p))
            .map(|p| kobling_protocol::merkle::leaf_hash(p.as_bytes()))
            .collect()
    };
    let plain_paths = |l: &ListName| -> HashSet<Digest> {
        let tree = MerkleTree::from_leaves(finals[l].iter().map(|p| p.0));
        positions[l]
            .iter()
            .flat_map(|&t| tree.inclusion_proof(t).expect("in").path.to_vec())
            .collect()
    };
    assert!(
        lists.iter().any(|a| lists
            .iter()
            .any(|b| a != b && !plain_paths(a).is_disjoint(&outside(b)))),
        "unsalted paths would show a non-cohort person of another list"
    );

    // The researcher verifies the honest delivery, and refuses a tampered
    // salt, pseudonym or sibling.
    open_delivery(&fed.manifest, &fed.researcher_hpke, replies.clone()).expect("verifies");
    let tamper = |f: &dyn Fn(&mut DeliveredItem, &mut BatchProof)| {
        let mut r = replies.clone();
        let at = r
            .iter()
            .position(|m| matches!(m, Message::DeliveryItems { .. }))
            .expect("items");
        if let Message::DeliveryItems { items, proof, .. } = &mut r[at] {
            let mut v = items.to_vec();
            f(&mut v[0], proof);
            *items = BoundedVec::new(v).expect("fits");
        }
        open_delivery(&fed.manifest, &fed.researcher_hpke, r).is_err()
    };
    assert!(tamper(&|it, _| it.salt[0] ^= 1), "a tampered salt");
    assert!(tamper(&|it, _| it.point.0[0] ^= 1), "a tampered pseudonym");
    assert!(
        tamper(&|_, proof| {
            let mut hashes = proof.points.hashes.to_vec();
            hashes[0].0[0] ^= 1;
            proof.points.hashes = BoundedVec::new(hashes).expect("fits");
        }),
        "a tampered sibling"
    );
}
