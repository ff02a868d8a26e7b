//! The owner's streamed list (docs/protocol.md §19): the first chunk
//! leaves before the list is wholly made, and an owner restarted
//! mid-stream resumes its list consistently.

use super::*;

fn entries_of(fed: &Fed, project: &str) -> Vec<kobling_protocol::transcript::Entry> {
    fed.engines[&name("LINKER")]
        .transcript(&ProjectId::new(project).expect("valid"))
        .expect("entries")
}

/// Whether `owner` keeps a streaming seed in `project` (mid-stream).
fn mid_stream(fed: &mut Fed, project: &str, owner: &str) -> bool {
    let project = ProjectId::new(project).expect("valid");
    let engine = fed.engines.get_mut(&name(owner)).expect("engine");
    engine
        .store
        .transaction(|tx| tx.get_v2(&project, &ListName::of(&name(owner)), "seed", 0))
        .expect("store")
        .is_some()
}

/// Chunks of `owner`'s list it kept (queued) in `project`.
fn kept_chunks(fed: &mut Fed, project: &str, owner: &str) -> usize {
    let project = ProjectId::new(project).expect("valid");
    let engine = fed.engines.get_mut(&name(owner)).expect("engine");
    let mut n = 0;
    engine
        .store
        .transaction(|tx| {
            tx.for_each_v2(&project, &ListName::of(&name(owner)), "y", |_, _| {
                n += 1;
                Ok(())
            })
        })
        .expect("store");
    n
}

#[test]
fn the_first_chunk_leaves_before_the_owner_made_its_whole_list() {
    let mut fed = Fed::new(600);
    fed.per_tick = 1;
    for m in REGISTERS.iter().chain(std::iter::once(&"LINKER")) {
        fed.start(m);
    }
    fed.submit("S-1");
    fed.pump_with(|_, _| {});
    approve_all(&mut fed, "S-1");
    // Until every commitment is in and SSB announces: deliver messages
    // round by round, and stop at SSB's first tick that made chunks.
    let owner = name("SSB");
    let project = ProjectId::new("S-1").expect("valid");
    let mut seen = false;
    fed.pump_with(|fed, _| {
        if seen {
            return;
        }
        let engine = &fed.engines[&owner];
        let hop1 = ProjectView::new(&fed.manifest, &entries_of(fed, "S-1"))
            .hops_of(&ListName::of(&owner))
            .first()
            .cloned();
        let Some(hop1) = hop1 else { return };
        let chunks = engine
            .outbox_to(&hop1, 1000)
            .expect("outbox")
            .into_iter()
            .filter(|(_, m)| matches!(m, Message::ChunkV2 { project: p, .. } if *p == project))
            .count();
        if chunks > 0 && chunks < 4 {
            seen = true;
            // The announcement is out, a chunk follows it, and the owner's
            // end-of-list statement is not made yet.
            assert!(mid_stream(fed, "S-1", "SSB"), "SSB is mid-stream");
            let statements: Vec<Body> = fed.engines[&owner]
                .outbox_to(&name("LINKER"), 10_000)
                .expect("outbox")
                .into_iter()
                .filter_map(|(_, m)| match m {
                    Message::Statement(s) => Some(s.statement.body),
                    _ => None,
                })
                .collect();
            assert!(
                !statements
                    .iter()
                    .any(|b| matches!(b, Body::OwnerListV2(o) if o.list.is_owned_by(&owner))),
                "the end-of-list statement waits for the last chunk"
            );
        }
    });
    assert!(seen, "SSB's chunks left one tick at a time");
    assert!(!mid_stream(&mut fed, "S-1", "SSB"), "the seed is forgotten");
    assert_eq!(fed.duties("S-1", "LINKER"), vec![Duty::Deliver]);
    fed.check_delivery("S-1");
}

#[test]
fn an_owner_restarted_mid_stream_resumes_its_list_and_the_project_links() {
    let mut fed = Fed::new(600);
    fed.per_tick = 1;
    for m in REGISTERS.iter().chain(std::iter::once(&"LINKER")) {
        fed.start(m);
    }
    fed.submit("S-2");
    fed.pump();
    approve_all(&mut fed, "S-2");
    // Restart SSB (an owner, also a hop) each time it queued a new chunk
    // of its list while mid-stream: each life resumes from its seed,
    // checks the chunks kept before and sends only the new ones.
    let (mut restarts, mut kept_at_restart) = (0, 0);
    fed.pump_with(|fed, _| {
        let kept = kept_chunks(fed, "S-2", "SSB");
        if restarts < 3 && mid_stream(fed, "S-2", "SSB") && kept > kept_at_restart {
            fed.engines.remove(&name("SSB"));
            fed.start("SSB");
            restarts += 1;
            kept_at_restart = kept;
        }
    });
    assert_eq!(restarts, 3, "SSB was restarted mid-stream");
    let entries = entries_of(&fed, "S-2");
    for list in REGISTERS {
        let announced = entries
            .iter()
            .filter(|e| matches!(&e.signed.statement.body, Body::ListAnnouncedV2(a) if a.list.is_owned_by(&name(list))))
            .count();
        let finals = entries
            .iter()
            .filter(|e| matches!(&e.signed.statement.body, Body::OwnerListV2(o) if o.list.is_owned_by(&name(list))))
            .count();
        assert_eq!((announced, finals), (1, 1), "{list}");
    }
    assert_eq!(fed.duties("S-2", "LINKER"), vec![Duty::Deliver]);
    fed.check_delivery("S-2");
}

#[test]
fn an_owner_whose_extract_changed_mid_stream_sends_nothing_more() {
    let mut fed = Fed::new(600);
    fed.per_tick = 1;
    for m in REGISTERS.iter().chain(std::iter::once(&"LINKER")) {
        fed.start(m);
    }
    fed.submit("S-3");
    fed.pump();
    approve_all(&mut fed, "S-3");
    let mut changed = false;
    fed.pump_with(|fed, _| {
        if !changed && mid_stream(fed, "S-3", "SSB") {
            // The extract file is changed under the node, which restarts.
            let path = fed.dir.path().join("extracts").join("SSB.csv");
            let mut text = std::fs::read_to_string(&path).expect("extract");
            let row = String::from(text.lines().nth(1).expect("a row"));
            text.push_str(&row);
            text.push('\n');
            std::fs::write(&path, text).expect("write");
            fed.engines.remove(&name("SSB"));
            fed.start("SSB");
            changed = true;
        }
    });
    assert!(changed);
    assert!(
        mid_stream(&mut fed, "S-3", "SSB"),
        "SSB's list stays unfinished"
    );
    let entries = entries_of(&fed, "S-3");
    assert!(!entries.iter().any(
        |e| matches!(&e.signed.statement.body, Body::OwnerListV2(o) if o.list.is_owned_by(&name("SSB")))
    ));
    assert!(!entries
        .iter()
        .any(|e| matches!(&e.signed.statement.body, Body::LinkSummary(_))));
}
