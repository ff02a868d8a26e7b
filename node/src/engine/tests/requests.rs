//! Requests beyond a sender's part: replayed or redirected client
//! requests and approval envelopes, sealed items past the list cap, and
//! order entries not as the linker recorded them.

use super::*;

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
/// not add; a message over part of a stored one's positions is refused.
#[test]
fn a_member_cannot_fill_the_linker_with_sealed_items_past_the_list_cap() {
    use kobling_protocol::{bounded::BoundedBytes, seal::SealedItem, types::Position};

    let mut fed = Fed::new(200);
    assert!(matches!(fed.submit("B-1"), Message::Ack { .. }));
    fed.pump();
    approve_all(&mut fed, "B-1");
    fed.pump();
    let project = ProjectId::new("B-1").expect("valid");
    let npr = list_name("NPR");
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

    // NPR, a member, resends its first message of items (positions 0..n,
    // as the linker stores it) with the first `big` items 512 KiB each.
    let n = fed
        .engines
        .get_mut(&name("LINKER"))
        .expect("linker")
        .store
        .transaction(|tx| tx.sealed_batch_before(&project, &npr, 1))
        .expect("stored")
        .expect("a message at position 0")
        .count;
    assert!(n >= 4 && n <= persons, "{n} items in the first message");
    let small =
        |position: u64| SealedItem(BoundedBytes::new(vec![position as u8; 64]).expect("fits"));
    let message = |first: u64, count: u64, big: u64| Message::SealedItems {
        project: project.clone(),
        list: npr.clone(),
        first: Position(first),
        items: BoundedVec::new(
            (first..first + count)
                .map(|p| {
                    if p - first < big {
                        SealedItem(BoundedBytes::new(vec![p as u8; 512 << 10]).expect("fits"))
                    } else {
                        small(p)
                    }
                })
                .collect(),
        )
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
    let bytes = |fed: &mut Fed| {
        fed.engines
            .get_mut(&name("LINKER"))
            .expect("linker")
            .store
            .transaction(|tx| tx.sealed_bytes(&project, &npr))
            .expect("bytes")
    };
    // Sent again, a message replaces itself: the bytes do not add up.
    assert!(matches!(
        send(&mut fed, message(0, n, 0)),
        Message::Ack { .. }
    ));
    let once = bytes(&mut fed);
    assert!(matches!(
        send(&mut fed, message(0, n, 0)),
        Message::Ack { .. }
    ));
    assert_eq!(bytes(&mut fed), once, "a resent message added bytes");
    // Two big items fit (in place of two small ones).
    assert!(matches!(
        send(&mut fed, message(0, n, 2)),
        Message::Ack { .. }
    ));
    let before = disk();
    for big in 3..n {
        let reply = send(&mut fed, message(0, n, big));
        assert_eq!(
            reply.refusal_code(),
            Some(RefusalCode::ListTooLarge),
            "{big} big items"
        );
    }
    // A message over part of a stored message's positions is refused:
    // no position is held twice.
    for (first, count) in [(0, 1), (1, n - 1), (n - 1, 1)] {
        let reply = send(&mut fed, message(first, count, 0));
        assert_eq!(
            reply.refusal_code(),
            Some(RefusalCode::BadItems),
            "{count} items from {first}"
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
