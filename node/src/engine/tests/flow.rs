//! A project's run between engines: the chain, restarts, background
//! preparation, a list that repeats a pseudonym.

use super::*;

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
    assert!(view.announcement(&list_name("SSB")).is_none());
    for list in ["NPR", "KPR"] {
        assert!(
            view.announcement(&list_name(list)).is_some(),
            "{list} announced"
        );
        let ssb_hop = entries.iter().any(|e| match &e.signed.statement.body {
            Body::HopV2(h) => h.list == list_name(list) && h.member == name("SSB"),
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
        |e| !matches!(&e.signed.statement.body, Body::ListAnnounced(a) if a.list == list_name("SSB"))
    ));
}

#[test]
fn a_list_that_repeats_a_pseudonym_closes_the_project_once_naming_the_list() {
    use crate::store::{LinkerRow, LinkerTable};
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
                let blobs = tx.blobs(LinkerTable::Final, &project, &list_name("KPR"))?;
                let mut points: Vec<WirePoint> =
                    postcard::from_bytes(&blobs[0]).expect("final points");
                points[1] = points[0];
                tx.put_blob(
                    LinkerRow::Final(kobling_protocol::types::ChunkIndex(0)),
                    &project,
                    &list_name("KPR"),
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
