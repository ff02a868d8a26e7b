//! Issue 15 item 2: attacks on, and faults in, a delivery into a register
//! domain, on real engines in memory (`kobling_node::testing`). NPR
//! delivers its extract into domain SSB (holder SSB; key holders NPR, KPR
//! and the linker).
//!
//! - nothing on the network is a value a coalition of key holders without
//!   β could compute from an fnr (`I(x)`, or `I(x)` times any product of
//!   their shares of SSB), and the holder's `Ψ_SSB` never travels;
//! - the delivery completes exactly once through message loss, and through
//!   the holder's crash in the middle of the push;
//! - a member acting outside its part is refused: a chunk from a member
//!   that is no hop, approvals by the holder's operators with an extract
//!   and by a key holder's, a fetch, a close signed by a stranger;
//! - a key holder's commitment to a key of SSB other than the one SSB's
//!   domain transcript records is refused by the linker.

use std::{
    cell::{Cell, RefCell},
    collections::BTreeSet,
    path::Path,
    rc::Rc,
};

use aho_corasick::AhoCorasick;
use ed25519_dalek::SigningKey;
use kobling_node::{
    engine::Peer,
    testing::{Faults, Federation, Net, LINKER},
};
use kobling_protocol::{
    chain::apply_share,
    domain::transcript::DomainBody,
    group::WirePoint,
    ident::{Identifier, ParseOptions},
    messages::{Action, Message},
    project::{Phase, ProjectView},
    refusal::RefusalCode,
    share::{Domain, Share},
    transcript::{self, Body, KeyCommitment, ProjectOrder, Signer, Statement},
    types::{Digest, Name},
};
use kobling_sim::population::{generate, Extract, PopulationConfig};

/// R's key holders: NPR (the source), KPR, the linker.
const KEY_HOLDERS: [&str; 3] = ["NPR", "KPR", LINKER];

fn name(s: &str) -> Name {
    Name::new(s).expect("valid name")
}

fn federation(dir: &Path) -> Federation {
    Federation::create(dir, &["NPR", "KPR", "SSB"], 17)
        .expect("federation")
        .with_domain("SSB", "SSB")
        .expect("domain")
}

fn npr_extract() -> Extract {
    // About a hundred persons in NPR's cohort.
    let pop = generate(&PopulationConfig {
        persons: 200,
        cohort_share: 0.5,
        seed: 5,
        ..Default::default()
    });
    pop.extract("NPR").expect("NPR").clone()
}

fn options() -> ParseOptions {
    ParseOptions {
        allow_synthetic: true,
    }
}

/// `(Ψ_SSB, values)` of every valid row of `extract`, from the key
/// holders' keystores (the harness only: no party can compute it).
fn expected(fed: &Federation, extract: &Extract) -> BTreeSet<([u8; 32], Vec<String>)> {
    let rows: Vec<(Identifier, Vec<String>)> = extract
        .rows
        .iter()
        .zip(&extract.owners)
        .filter_map(|((raw, values), owner)| {
            owner.and(
                Identifier::parse(raw, options())
                    .ok()
                    .map(|id| (id, values.clone())),
            )
        })
        .collect();
    let ids: Vec<Identifier> = rows.iter().map(|(id, _)| *id).collect();
    let psi = fed.register_pseudonyms("SSB", &ids, 1).expect("pseudonyms");
    psi.iter()
        .zip(rows)
        .map(|(p, (_, values))| (p.0, values))
        .collect()
}

/// Every row SSB holds of `delivery`, as stored (a row stored twice is
/// here twice).
fn held_rows(net: &mut Net, delivery: &Digest) -> Vec<([u8; 32], Vec<String>)> {
    let mut out = Vec::new();
    net.engine(&name("SSB"))
        .expect("holder")
        .for_each_domain_row(&name("SSB"), delivery, |r| {
            out.push((r.pseudonym.0, r.values));
            Ok(())
        })
        .expect("rows");
    out
}

/// SSB's table of `order` is exactly the expected `(Ψ, values)` set: no
/// row missing, none stored twice; its record counts them.
fn assert_received_exactly(
    net: &mut Net,
    fed: &Federation,
    order: &ProjectOrder,
    extract: &Extract,
) {
    let record = fed
        .await_delivery(net, order, &name("SSB"))
        .expect("received");
    let want = expected(fed, extract);
    let rows = held_rows(net, &order.delivery_id().expect("id"));
    assert_eq!(rows.len(), want.len(), "one stored row per valid row");
    let set: BTreeSet<_> = rows.into_iter().collect();
    assert_eq!(set, want, "rows keyed by Ψ_SSB(x)");
    let DomainBody::Delivery { rows, .. } = record.record else {
        panic!("not a delivery record")
    };
    assert_eq!(rows as usize, want.len());
}

/// SSB's domain transcript records exactly one delivery, `order`'s, as
/// SSB stored it.
fn assert_one_delivery_recorded(net: &mut Net, order: &ProjectOrder) {
    let engine = net.engine(&name("SSB")).expect("holder");
    let state = engine
        .domain_state(&name("SSB"))
        .expect("state")
        .expect("domain");
    assert_eq!(state.deliveries, 1);
    let stored: Vec<DomainBody> = engine
        .received_deliveries(&name("SSB"))
        .expect("deliveries")
        .into_iter()
        .filter(|d| Some(d.delivery) == order.delivery_id())
        .map(|d| d.record)
        .collect();
    assert_eq!(stored.len(), 1);
    let entries = engine.domain_transcript(&name("SSB")).expect("transcript");
    let recorded: Vec<DomainBody> = entries
        .into_iter()
        .filter(|e| matches!(e.body, DomainBody::Delivery { .. }))
        .map(|e| e.body)
        .collect();
    assert_eq!(recorded, stored);
    assert!(matches!(
        &recorded[0],
        DomainBody::Delivery { source, .. } if *source == name("NPR")
    ));
}

/// Runs until SSB's domain exists and every key holder's commitment to it
/// has reached the holder and the linker.
fn domain_ready(net: &mut Net) {
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
}

/// The linker's phase of `order`.
fn phase(net: &mut Net, fed: &Federation, order: &ProjectOrder) -> Phase {
    let entries = net
        .transcript(&name(LINKER), &order.project)
        .expect("transcript");
    ProjectView::new(&fed.manifest, &entries).phase()
}

/// Runs until the linker closed `order` and its key holders shredded it.
fn await_closed(net: &mut Net, fed: &Federation, order: &ProjectOrder) {
    net.run_until(120_000, |net| {
        let entries = net.transcript(&name(LINKER), &order.project)?;
        let view = ProjectView::new(&fed.manifest, &entries);
        Ok(view.phase() == Phase::Closed && KEY_HOLDERS.iter().all(|m| view.shredded(&name(m))))
    })
    .expect("closed and shredded");
}

/// The code and detail of a refusal.
fn refusal(replies: &[Message]) -> (RefusalCode, String) {
    match replies.first() {
        Some(Message::Refused { code, detail }) => (
            RefusalCode::from_wire(code.as_str()),
            detail.as_str().to_string(),
        ),
        Some(other) => panic!("not refused: {}", other.kind()),
        None => panic!("no reply"),
    }
}

/// Every value a coalition of R's key holders could compute from the fnr
/// of `extract` without β: `S·I(x)` for the product `S` of every subset of
/// their shares of SSB (the empty one gives `I(x)`, all of them `Ψ_SSB`).
fn dictionary(fed: &Federation, extract: &Extract) -> (BTreeSet<[u8; 32]>, BTreeSet<[u8; 32]>) {
    let identities: Vec<WirePoint> = extract
        .rows
        .iter()
        .filter_map(|(raw, _)| Identifier::parse(raw, options()).ok())
        .map(|id| WirePoint(id.identity_point().compress().to_bytes()))
        .collect();
    assert!(identities.len() > 50, "{}", identities.len());
    let shares: Vec<Share> = KEY_HOLDERS
        .iter()
        .map(|m| {
            fed.keystore(m)
                .expect("keystore")
                .share(&Domain::Register(name("SSB")))
                .expect("a share of SSB")
        })
        .collect();
    let mut all = BTreeSet::new();
    let mut full = BTreeSet::new();
    for subset in 0u32..(1 << shares.len()) {
        let mut points = identities.clone();
        for (i, share) in shares.iter().enumerate() {
            if subset & (1 << i) != 0 {
                points = apply_share(share, &points, 0).expect("valid points");
            }
        }
        if subset == (1 << shares.len()) - 1 {
            full.extend(points.iter().map(|p| p.0));
        }
        all.extend(points.into_iter().map(|p| p.0));
    }
    (all, full)
}

/// Points the network carried, by kind, and every message's bytes.
#[derive(Default)]
struct Wire {
    chunk_inputs: Vec<WirePoint>,
    chunk_outputs: Vec<WirePoint>,
    pass: Vec<WirePoint>,
    delivered: Vec<WirePoint>,
    bytes: Vec<Vec<u8>>,
}

fn observe_wire(net: &mut Net) -> Rc<RefCell<Wire>> {
    let wire: Rc<RefCell<Wire>> = Rc::default();
    let w = wire.clone();
    net.observe(Box::new(move |_, _, msg| {
        let mut w = w.borrow_mut();
        match msg {
            Message::ChunkV2 { chunk, .. } => {
                w.chunk_inputs.extend(chunk.input.iter().copied());
                w.chunk_outputs.extend(chunk.points.iter().copied());
            }
            Message::PassV2 { pass, .. } => {
                w.pass.push(pass.owner.a0);
                w.pass.extend(pass.steps.iter().map(|s| s.a));
            }
            Message::DeliveryItems { items, .. } => {
                w.delivered.extend(items.iter().map(|i| i.point));
            }
            _ => {}
        }
        w.bytes.push(transcript::encode_value(msg));
    }));
    wire
}

#[test]
fn no_point_on_the_network_is_computable_from_an_fnr_without_the_source_s_blinding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let npr = npr_extract();
    let mut net = fed.start(16, Faults::default(), 9).expect("net");
    let wire = observe_wire(&mut net);
    domain_ready(&mut net);
    let order = fed
        .order_delivery(&mut net, "NPR-SSB-DICT", &npr, "SSB")
        .expect("ordered and approved");
    assert_received_exactly(&mut net, &fed, &order, &npr);
    await_closed(&mut net, &fed, &order);

    let (dictionary, full) = dictionary(&fed, &npr);
    // The harness's dictionary is right: its full product is Ψ_SSB, what
    // the holder stored.
    let stored: BTreeSet<[u8; 32]> = held_rows(&mut net, &order.delivery_id().expect("id"))
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert!(!stored.is_empty() && stored.is_subset(&full));
    assert!(dictionary.len() > 7 * stored.len());

    let wire = wire.borrow();
    assert!(wire.chunk_outputs.len() >= 2 * stored.len(), "two steps");
    assert!(!wire.pass.is_empty() && !wire.delivered.is_empty());
    for (kind, points) in [
        ("a chunk's input", &wire.chunk_inputs),
        ("a chunk's output", &wire.chunk_outputs),
        ("a pass", &wire.pass),
        ("a delivered item", &wire.delivered),
    ] {
        for p in points.iter() {
            assert!(
                !dictionary.contains(&p.0),
                "{kind} carries a point computable from an fnr without β"
            );
        }
    }
    // Not anywhere in any message either (the transcript the linker
    // pushes, statements, sealed blindings, …), nor Ψ_SSB in any form.
    let mut needles: Vec<Vec<u8>> = dictionary.iter().map(|p| p.to_vec()).collect();
    for p in &stored {
        let hex: String = p.iter().map(|b| format!("{b:02x}")).collect();
        needles.push(hex.to_uppercase().into_bytes());
        needles.push(hex.into_bytes());
    }
    let finder = AhoCorasick::new(&needles).expect("patterns");
    assert!(wire.bytes.len() > 20);
    for bytes in &wire.bytes {
        assert!(
            finder.find(bytes).is_none(),
            "a message carries a value computable from an fnr without β, or Ψ_SSB"
        );
    }
}

#[test]
fn a_delivery_completes_exactly_once_through_message_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let npr = npr_extract();
    let faults = Faults {
        loss: 0.15,
        min_latency_ms: 1,
        max_latency_ms: 40,
        ..Faults::default()
    };
    let mut net = fed.start(16, faults, 21).expect("net");
    net.configure(&name(LINKER), |c| c.delivery_batch = 16)
        .expect("linker");
    domain_ready(&mut net);
    let order = fed
        .order_delivery(&mut net, "NPR-SSB-LOSS", &npr, "SSB")
        .expect("ordered and approved");
    assert_received_exactly(&mut net, &fed, &order, &npr);
    await_closed(&mut net, &fed, &order);
    assert!(net.stats().lost > 10, "{:?}", net.stats());
    assert!(net.stats().retried > 10, "{:?}", net.stats());
    assert_one_delivery_recorded(&mut net, &order);
    assert_eq!(fed.receipt_progress("SSB", &order).expect("store"), None);
}

#[test]
fn the_holder_crashed_in_the_middle_of_the_push_resumes_and_stores_every_row_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let npr = npr_extract();
    let mut net = fed.start(16, Faults::default(), 23).expect("net");
    // Many messages of items, so that the crash falls between two.
    net.configure(&name(LINKER), |c| c.delivery_batch = 16)
        .expect("linker");
    let items_seen = Rc::new(Cell::new(0u32));
    let seen = items_seen.clone();
    net.observe(Box::new(move |_, to, msg| {
        if matches!(msg, Message::DeliveryItems { .. }) && to.as_str() == "SSB" {
            seen.set(seen.get() + 1);
        }
    }));
    domain_ready(&mut net);
    let order = fed
        .order_delivery(&mut net, "NPR-SSB-CRASH", &npr, "SSB")
        .expect("ordered and approved");
    // Positions are persons (a person's rows travel in one item).
    let persons = expected(&fed, &npr)
        .iter()
        .map(|(p, _)| *p)
        .collect::<BTreeSet<_>>()
        .len() as u64;
    let mut partial = None;
    net.run_until(600_000, |_| {
        if items_seen.get() == 0 {
            return Ok(false);
        }
        partial = fed.receipt_progress("SSB", &order)?;
        Ok(partial.is_some_and(|(position, _)| position > 0))
    })
    .expect("the push began");
    let (position, _) = partial.expect("a partial receipt");
    assert!(
        position < persons,
        "{position} of {persons}: not yet complete"
    );
    net.crash(&name("SSB"));
    net.run_for(5_000).expect("run");
    // The linker kept offering the next message to a holder that is down.
    assert_eq!(
        fed.receipt_progress("SSB", &order).expect("store"),
        partial,
        "nothing stored while down"
    );
    net.restart(&name("SSB")).expect("restart");
    assert_received_exactly(&mut net, &fed, &order, &npr);
    assert!(
        items_seen.get() as u64 > persons.div_ceil(16),
        "items resent"
    );
    await_closed(&mut net, &fed, &order);
    assert_one_delivery_recorded(&mut net, &order);
    assert_eq!(fed.receipt_progress("SSB", &order).expect("store"), None);
}

#[test]
fn a_late_copy_of_the_header_does_not_restart_a_receipt_in_progress() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let npr = npr_extract();
    let mut net = fed.start(16, Faults::default(), 33).expect("net");
    net.configure(&name(LINKER), |c| c.delivery_batch = 16)
        .expect("linker");
    let header: Rc<RefCell<Option<Message>>> = Rc::default();
    let h = header.clone();
    net.observe(Box::new(move |_, to, msg| {
        if matches!(msg, Message::DeliveryHeader { .. }) && to.as_str() == "SSB" {
            *h.borrow_mut() = Some(msg.clone());
        }
    }));
    domain_ready(&mut net);
    let order = fed
        .order_delivery(&mut net, "NPR-SSB-COPY", &npr, "SSB")
        .expect("ordered and approved");
    let mut partial = None;
    net.run_until(600_000, |_| {
        if header.borrow().is_none() {
            return Ok(false);
        }
        partial = fed.receipt_progress("SSB", &order)?;
        Ok(partial.is_some_and(|(position, _)| position > 0))
    })
    .expect("the push began");
    // The network delivers the header a second time, late (a request
    // that arrives twice): the receipt goes on where it is.
    let copy = header.borrow().clone().expect("the header");
    let now = net.now();
    let replies = net
        .engine(&name("SSB"))
        .expect("holder")
        .handle(&Peer::Member(name(LINKER)), copy, now)
        .expect("handled");
    assert!(matches!(replies.first(), Some(Message::Ack { .. })));
    assert_eq!(
        fed.receipt_progress("SSB", &order).expect("store"),
        partial,
        "the receipt is not restarted"
    );
    assert_received_exactly(&mut net, &fed, &order, &npr);
    assert_one_delivery_recorded(&mut net, &order);
}

#[test]
fn a_member_that_is_no_hop_of_the_delivery_cannot_send_its_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let npr = npr_extract();
    let mut net = fed.start(16, Faults::default(), 25).expect("net");
    // Every chunk as it travels: (from, to, message).
    let chunks: Rc<RefCell<Vec<(Name, Name, Message)>>> = Rc::default();
    let c = chunks.clone();
    net.observe(Box::new(move |from, to, msg| {
        if matches!(msg, Message::ChunkV2 { .. }) {
            c.borrow_mut().push((from.clone(), to.clone(), msg.clone()));
        }
    }));
    domain_ready(&mut net);
    let order = fed
        .order_delivery(&mut net, "NPR-SSB-HOP", &npr, "SSB")
        .expect("ordered and approved");
    // The list's chunks go NPR → KPR → the linker; SSB (the holder, no key
    // holder of SSB) sends each as if it were the step before.
    let mut injected = BTreeSet::new();
    net.run_until(600_000, |net| {
        let pending: Vec<(Name, Name, Message)> = chunks
            .borrow()
            .iter()
            .filter(|(from, _, _)| !injected.contains(from))
            .cloned()
            .collect();
        for (from, to, msg) in pending {
            let now = net.now();
            let replies = net
                .engine(&to)?
                .handle(&Peer::Member(name("SSB")), msg, now)?;
            let (code, detail) = refusal(&replies);
            assert_eq!(code, RefusalCode::UnexpectedSender, "{detail}");
            injected.insert(from);
        }
        Ok(injected.len() == 2)
    })
    .expect("chunks of both steps seen");
    assert_eq!(
        injected,
        BTreeSet::from([name("NPR"), name("KPR")]),
        "a chunk of each step before the linker"
    );
    assert_received_exactly(&mut net, &fed, &order, &npr);
    let entries = net
        .transcript(&name(LINKER), &order.project)
        .expect("transcript");
    assert!(!entries.iter().any(|e| matches!(
        &e.signed.statement.body,
        Body::HopV2(h) if h.member == name("SSB")
    )));
}

#[test]
fn approvals_by_the_holder_with_an_extract_and_by_a_key_holder_are_refused_and_nothing_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let npr = npr_extract();
    let mut net = fed.start(16, Faults::default(), 27).expect("net");
    domain_ready(&mut net);
    let order = fed
        .delivery_order("NPR-SSB-APPROVE", &npr, "SSB")
        .expect("order");
    let ack = fed.submit_delivery(&mut net, &order).expect("submitted");
    assert!(matches!(ack.first(), Some(Message::Ack { .. })));
    let entry = net
        .transcript(&name(LINKER), &order.project)
        .expect("transcript")
        .into_iter()
        .next()
        .expect("the order");

    // The holder's operators approve with an extract of their own.
    let mut at_holder = npr.clone();
    at_holder.name = "SSB";
    fed.write_extract(&at_holder, "NPR-SSB-APPROVE-SSB.csv")
        .expect("file");
    let msg = fed
        .approval_message(
            &order,
            &entry,
            &at_holder,
            "NPR-SSB-APPROVE-SSB.csv",
            0,
            net.now(),
        )
        .expect("approval");
    let (code, detail) = refusal(&net.client(&name("SSB"), msg).expect("handled"));
    assert_eq!(code, RefusalCode::Extract, "{detail}");
    assert!(
        detail.contains("SSB holds domain SSB") && detail.contains("without an extract"),
        "{detail}"
    );

    // A key holder's operators approve, with an extract or without.
    let mut at_kpr = npr.clone();
    at_kpr.name = "KPR";
    fed.write_extract(&at_kpr, "NPR-SSB-APPROVE-KPR.csv")
        .expect("file");
    let with = fed
        .approval_message(
            &order,
            &entry,
            &at_kpr,
            "NPR-SSB-APPROVE-KPR.csv",
            0,
            net.now(),
        )
        .expect("approval");
    let without = fed
        .key_holder_approval(&order, &entry, "KPR", 1, net.now())
        .expect("approval");
    for msg in [with, without] {
        let (code, detail) = refusal(&net.client(&name("KPR"), msg).expect("handled"));
        assert_eq!(code, RefusalCode::WrongRegister, "{detail}");
        assert!(
            detail.contains("KPR is neither its source nor the domain's holder"),
            "{detail}"
        );
    }

    // Nothing kept: neither node holds the order or queued a statement;
    // the linker holds the order alone.
    for m in ["SSB", "KPR"] {
        assert!(net
            .transcript(&name(m), &order.project)
            .expect("copy")
            .is_empty());
        let queued = net
            .engine(&name(m))
            .expect("engine")
            .outbox_to(&name(LINKER), 1024)
            .expect("outbox");
        assert!(!queued.iter().any(|(_, msg)| matches!(
            msg,
            Message::Statement(s) if s.statement.project == order.project
        )));
    }
    net.run_for(5_000).expect("run");
    let entries = net
        .transcript(&name(LINKER), &order.project)
        .expect("transcript");
    assert_eq!(entries.len(), 1, "the order alone");

    // The proper approvals still run the delivery.
    fed.approve_delivery(&mut net, &order, &npr)
        .expect("approved");
    assert_received_exactly(&mut net, &fed, &order, &npr);
    let entries = net
        .transcript(&name(LINKER), &order.project)
        .expect("transcript");
    assert!(!entries.iter().any(|e| matches!(
        &e.signed.statement.body,
        Body::Approval(a) if a.register == name("KPR")
    )));
}

#[test]
fn nobody_fetches_a_delivery_and_a_stranger_cannot_close_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let npr = npr_extract();
    let mut net = fed.start(16, Faults::default(), 29).expect("net");
    domain_ready(&mut net);
    let order = fed
        .order_delivery(&mut net, "NPR-SSB-FETCH", &npr, "SSB")
        .expect("ordered and approved");
    // Once its operators' approvals reached the linker, the holder is
    // down: the delivery is linked and waits at the linker.
    net.run_until(60_000, |net| {
        let entries = net.transcript(&name(LINKER), &order.project)?;
        Ok(entries
            .iter()
            .filter(|e| {
                matches!(
                    &e.signed.statement.body,
                    Body::Approval(a) if a.register == name("SSB")
                )
            })
            .count()
            == 2)
    })
    .expect("the holder's approvals recorded");
    net.crash(&name("SSB"));
    net.run_until(600_000, |net| {
        let entries = net.transcript(&name(LINKER), &order.project)?;
        Ok(ProjectView::new(&fed.manifest, &entries)
            .phase()
            .is_deliverable())
    })
    .expect("linked");

    let linker = name(LINKER);
    let request = |key: &SigningKey, action: Action, net: &Net| {
        let req = fed
            .request_for(&linker, &order.project, action.clone(), net.now())
            .sign(key);
        match action {
            Action::Fetch => Message::Fetch(req),
            _ => Message::Close(req),
        }
    };
    let orderer = fed.operators[&name("NPR")][0].clone();
    let holder_node = fed.keystore("SSB").expect("keystore").signing_key().clone();
    let stranger = SigningKey::from_bytes(&[0x5a; 32]);
    // No fetch: not by the orderer (the order's key), the holder's node,
    // the federation's researcher, or a stranger.
    for key in [&orderer, &holder_node, &fed.researcher, &stranger] {
        let msg = request(key, Action::Fetch, &net);
        let (code, detail) = refusal(&net.client(&linker, msg).expect("handled"));
        assert_eq!(code, RefusalCode::NotAllowed, "{detail}");
    }
    // No close but by the holder's node or the orderer.
    let kpr_operator = fed.operators[&name("KPR")][0].clone();
    for key in [&stranger, &fed.researcher, &kpr_operator] {
        let msg = request(key, Action::Close, &net);
        let (code, detail) = refusal(&net.client(&linker, msg).expect("handled"));
        assert_eq!(code, RefusalCode::NotAllowed, "{detail}");
    }
    assert!(phase(&mut net, &fed, &order).is_deliverable(), "not closed");

    net.restart(&name("SSB")).expect("restart");
    assert_received_exactly(&mut net, &fed, &order, &npr);
    await_closed(&mut net, &fed, &order);
    let entries = net
        .transcript(&name(LINKER), &order.project)
        .expect("transcript");
    // One delivery record, the push to the holder's node key.
    let recipients: Vec<_> = entries
        .iter()
        .filter_map(|e| match &e.signed.statement.body {
            Body::Delivery(d) => Some(d.recipient),
            _ => None,
        })
        .collect();
    let holder_key = fed.manifest.member(&name("SSB")).expect("SSB").signing_key;
    assert_eq!(recipients, vec![holder_key]);
}

/// A log sink the test reads back.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_key_holder_s_commitment_to_another_key_than_its_domain_key_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let npr = npr_extract();
    let mut net = fed.start(16, Faults::default(), 31).expect("net");
    domain_ready(&mut net);
    // KPR is down, so the commitment below comes before its node's own.
    net.crash(&name("KPR"));
    let order = fed
        .order_delivery(&mut net, "NPR-SSB-KEY", &npr, "SSB")
        .expect("ordered and approved");
    let register = Domain::Register(name("SSB"));
    let committed = |net: &mut Net, member: &str| {
        net.transcript(&name(LINKER), &order.project)
            .expect("transcript")
            .iter()
            .find_map(|e| match &e.signed.statement.body {
                Body::Commitment(c) if c.member == name(member) && c.domain == register => {
                    Some(c.key)
                }
                _ => None,
            })
    };
    net.run_until(120_000, |net| {
        Ok(committed(net, "NPR").is_some() && committed(net, LINKER).is_some())
    })
    .expect("the others committed");

    // KPR's node key signs a commitment to a key of SSB that is not the
    // one SSB's domain transcript records for KPR.
    let ks = fed.keystore("KPR").expect("keystore");
    let other = Share::from_secret_bytes(&[7; 32])
        .expect("share")
        .commitment();
    assert_ne!(Some(other), ks.commitment(&register).ok());
    let signed = Statement {
        project: order.project.clone(),
        time: net.now(),
        signer: Signer::Node(name("KPR")),
        body: Body::Commitment(KeyCommitment {
            member: name("KPR"),
            domain: register.clone(),
            key: other,
        }),
    }
    .sign(ks.signing_key());
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .finish();
    let now = net.now();
    let replies = tracing::subscriber::with_default(subscriber, || {
        net.engine(&name(LINKER))
            .expect("linker")
            .handle(&Peer::Member(name("KPR")), Message::Statement(signed), now)
            .expect("handled")
    });
    let (code, detail) = refusal(&replies);
    assert_eq!(code, RefusalCode::Invalid, "{detail}");
    assert!(
        detail.contains("KPR's commitment") && detail.contains("domain SSB"),
        "{detail}"
    );
    let logs = String::from_utf8(logs.0.lock().expect("logs").clone()).expect("utf-8");
    let line = logs
        .lines()
        .find(|l| l.contains("other than the one in the domain's transcript"))
        .unwrap_or_else(|| panic!("no log line of the refusal: {logs}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains("member=KPR") && line.contains("domain=SSB"),
        "{line}"
    );
    assert_eq!(committed(&mut net, "KPR"), None, "not recorded");

    // KPR's node, back, commits its domain key; the delivery runs with it.
    net.restart(&name("KPR")).expect("restart");
    assert_received_exactly(&mut net, &fed, &order, &npr);
    let domain_key = net
        .engine(&name(LINKER))
        .expect("linker")
        .domain_state(&name("SSB"))
        .expect("state")
        .expect("domain")
        .key_of(&name("KPR"));
    assert_eq!(committed(&mut net, "KPR"), domain_key);
    assert_ne!(domain_key, Some(other));
}

/// The holder's `Close` is a request with a time: one that reaches the
/// linker after the request window (the linker was unreachable) is
/// refused as stale, and one can be lost. The holder asks again, with a
/// fresh request every minute, until the closure reaches it.
#[test]
fn a_holders_lost_close_is_asked_again_until_the_delivery_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let npr = npr_extract();
    let mut net = fed.start(16, Faults::default(), 21).expect("net");
    domain_ready(&mut net);
    // Every Close from the holder is spoiled in flight (its signature no
    // longer verifies: refused, and dropped by the sender) while `cut`.
    let cut = Rc::new(RefCell::new(true));
    let spoiled = Rc::new(RefCell::new(0u32));
    let (c, n) = (cut.clone(), spoiled.clone());
    net.tamper(Box::new(move |from, to, msg| {
        if let Message::Close(req) = msg {
            if *c.borrow() && from.as_str() == "SSB" && to.as_str() == LINKER {
                req.request.nonce[0] ^= 1;
                *n.borrow_mut() += 1;
            }
        }
    }));
    let order = fed
        .order_delivery(&mut net, "NPR-SSB-2025", &npr, "SSB")
        .expect("ordered");
    fed.await_delivery(&mut net, &order, &name("SSB"))
        .expect("received");
    net.run_for(150_000).expect("runs");
    assert_ne!(phase(&mut net, &fed, &order), Phase::Closed);
    assert!(
        *spoiled.borrow() >= 2,
        "the holder asked again while cut off"
    );
    *cut.borrow_mut() = false;
    // The next fresh request (one a minute) goes through.
    net.run_for(60_000).expect("runs");
    await_closed(&mut net, &fed, &order);
    assert_one_delivery_recorded(&mut net, &order);
}
