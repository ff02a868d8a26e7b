//! Duties derived from a real transcript, replayed prefix by prefix: every
//! member is told the right next step at every stage of the lifecycle.

use kobling_node::testing::{Faults, Federation, ProjectConfig};
use kobling_protocol::{
    project::{Duty, ProjectView},
    transcript::{Body, Entry},
    types::{HopIndex, ListName, Name},
};
use kobling_sim::population::{generate, PopulationConfig};

fn name(s: &str) -> Name {
    Name::new(s).expect("valid")
}

fn list_name(s: &str) -> ListName {
    ListName::new(s).expect("valid")
}

fn first(entries: &[Entry], pred: impl Fn(&Body) -> bool) -> usize {
    entries
        .iter()
        .position(|e| pred(&e.signed.statement.body))
        .expect("entry present")
}

/// A project of NPR, KPR and SSB (cohort NPR) run to its delivery: the
/// federation and the transcript.
fn run(project: &str, persons: usize, seed: u64) -> (Federation, Vec<Entry>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let registers = ["NPR", "KPR", "SSB"];
    let fed = Federation::create(dir.path(), &registers, 5).expect("federation");
    let pop = generate(&PopulationConfig {
        persons,
        seed,
        ..Default::default()
    });
    let extracts: Vec<_> = registers
        .iter()
        .map(|r| pop.extract(r).expect("extract"))
        .collect();
    let config = ProjectConfig {
        project: project.into(),
        cohort: "NPR".into(),
        chunk_size: 64,
        seed: 1,
        faults: Faults::default(),
    };
    // Chain v1's records (chain v2's duties: `chain_v2.rs`).
    let (out, _net) = fed.run_v1(&extracts, &config).expect("run");
    (fed, out.transcript.0)
}

#[test]
fn duties_follow_the_lifecycle() {
    let (fed, entries) = run("DUTY-1", 400, 9);
    let entries = &entries;
    let m = &fed.manifest;
    let duties = |n: usize, who: &str| ProjectView::new(m, &entries[..n]).duties(&name(who));

    // Nothing before the order; then registers wait for their operators.
    assert!(duties(0, "NPR").is_empty());
    assert_eq!(
        duties(1, "NPR"),
        vec![Duty::AwaitApprovals { approvals: 0 }]
    );
    // The linker holds the order alone and commits no key share until an
    // operator approves it (issue 18 item 2).
    assert!(duties(1, "LINKER").is_empty());
    let first_approval = entries
        .iter()
        .position(|e| matches!(e.signed.statement.body, Body::Approval(_)))
        .expect("an approval");
    assert_eq!(duties(first_approval + 1, "LINKER"), vec![Duty::Commit]);
    assert!(
        duties(1, "RESEPT").is_empty(),
        "a register outside the project has no duties"
    );

    // One approval is not enough; two distinct operators are.
    let npr_approvals: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(&e.signed.statement.body, Body::Approval(a) if a.register == name("NPR")))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        duties(npr_approvals[0] + 1, "NPR"),
        vec![Duty::AwaitApprovals { approvals: 1 }]
    );
    assert_eq!(duties(npr_approvals[1] + 1, "NPR"), vec![Duty::Commit]);

    // Once everyone committed, each register announces its approved extract.
    let announced = first(entries, |b| matches!(b, Body::ListAnnounced(_)));
    let extract = match &entries[npr_approvals[0]].signed.statement.body {
        Body::Approval(a) => a.extract,
        _ => unreachable!("an approval"),
    };
    assert_eq!(
        duties(announced, "NPR"),
        vec![Duty::AnnounceList { extract }]
    );

    // After NPR's announcement, KPR is hop 1 of NPR's list: NPR → KPR → SSB → LINKER.
    let npr_announced = first(
        entries,
        |b| matches!(b, Body::ListAnnounced(a) if a.list == list_name("NPR")),
    );
    let kpr = duties(npr_announced + 1, "KPR");
    assert!(
        kpr.contains(&Duty::Step {
            list: list_name("NPR"),
            hop: HopIndex(1),
            previous: name("NPR"),
            previous_key: None,
            next: Some(name("SSB"))
        }),
        "{kpr:?}"
    );
    let linker = duties(npr_announced + 1, "LINKER");
    assert!(
        linker.iter().any(
            |d| matches!(d, Duty::Step { list, hop: HopIndex(3), next: None, .. } if *list == list_name("NPR"))
        ),
        "{linker:?}"
    );

    // The linker links when every list passed every hop, then delivers.
    let summary = first(entries, |b| matches!(b, Body::LinkSummary(_)));
    assert_eq!(duties(summary, "LINKER"), vec![Duty::Link]);
    assert_eq!(duties(summary + 1, "LINKER"), vec![Duty::Deliver]);
    assert!(duties(entries.len(), "LINKER").is_empty());
    assert!(duties(entries.len(), "SSB").is_empty());
}

#[test]
fn admission_follows_the_transcript() {
    use kobling_protocol::{
        bounded::{BoundedBytes, BoundedVec},
        hop::PointChunk,
        messages::Message,
        project::{authorise, Origin, Phase},
        refusal::RefusalCode,
        seal::SealedItem,
        types::{ChunkIndex, HopIndex, Position, ProjectId},
    };

    let (fed, entries) = run("ADMIT-1", 200, 3);
    let entries = &entries;
    let m = &fed.manifest;
    let project = ProjectId::new("ADMIT-1").expect("valid");
    let view = |n: usize| ProjectView::new(m, &entries[..n]);
    let code = |r: Result<(), kobling_protocol::refusal::Refusal>| r.err().map(|r| r.code);
    let items = |first: u64, n: usize| Message::SealedItems {
        project: project.clone(),
        list: list_name("NPR"),
        first: Position(first),
        items: BoundedVec::new(vec![
            SealedItem(
                BoundedBytes::new(vec![0; 32]).expect("fits")
            );
            n
        ])
        .expect("fits"),
    };
    let npr = Origin::Member(name("NPR"));
    let announced = first(
        entries,
        |b| matches!(b, Body::ListAnnounced(a) if a.list == list_name("NPR")),
    );
    let persons = match &entries[announced].signed.statement.body {
        Body::ListAnnounced(a) => a.persons,
        _ => unreachable!("an announcement"),
    };

    // Nothing is stored for a list before its announcement: the items wait.
    assert_eq!(
        code(view(announced).admit(&items(0, 1), &npr)),
        Some(RefusalCode::NotReady)
    );
    // After it, only positions inside the list.
    assert_eq!(code(view(announced + 1).admit(&items(0, 1), &npr)), None);
    assert_eq!(
        code(view(announced + 1).admit(&items(persons - 1, 2), &npr)),
        Some(RefusalCode::BadItems)
    );
    assert_eq!(
        code(view(announced + 1).admit(&items(u64::MAX, 1), &npr)),
        Some(RefusalCode::BadItems)
    );
    // A project nobody ordered.
    assert_eq!(
        code(view(0).admit(&items(0, 1), &npr)),
        Some(RefusalCode::UnknownProject)
    );

    // A chunk must come from the hop before its recipient (NPR → KPR → SSB → LINKER).
    let chunk = |hop: u32| {
        Message::Points(PointChunk {
            project: project.clone(),
            list: list_name("NPR"),
            hop: HopIndex(hop),
            chunk: ChunkIndex(0),
            input: BoundedVec::default(),
            output: BoundedVec::default(),
            proof: None,
        })
    };
    let v = view(announced + 1);
    assert_eq!(code(v.admit(&chunk(0), &npr)), None);
    assert_eq!(code(v.admit(&chunk(1), &Origin::Member(name("KPR")))), None);
    assert_eq!(
        code(v.admit(&chunk(1), &npr)),
        Some(RefusalCode::UnexpectedSender),
        "the owner posing as hop 1"
    );
    assert_eq!(
        code(v.admit(&chunk(3), &Origin::Member(name("LINKER")))),
        Some(RefusalCode::BadChunk),
        "a hop past the end of the chain"
    );
    assert_eq!(
        code(v.admit(&chunk(u32::MAX), &npr)),
        Some(RefusalCode::BadChunk)
    );
    assert_eq!(
        v.chunk_recipient(&list_name("NPR"), HopIndex(0)),
        Some(name("KPR"))
    );
    assert_eq!(
        v.chunk_recipient(&list_name("NPR"), HopIndex(2)),
        Some(name("LINKER"))
    );

    // Kind and role first: a client gets no member message through, and a
    // member cannot submit an order or pose as another list's owner.
    let linker = name("LINKER");
    let refused =
        |from: &Origin, to: &Name, msg: &Message| authorise(m, to, from, msg).err().map(|r| r.code);
    assert_eq!(
        refused(&Origin::Client, &name("SSB"), &chunk(0)),
        Some(RefusalCode::Unexpected)
    );
    assert_eq!(
        refused(&Origin::Member(name("KPR")), &linker, &items(0, 1)),
        Some(RefusalCode::Unexpected),
        "another owner's sealed items"
    );
    assert_eq!(refused(&npr, &linker, &items(0, 1)), None);
    assert_eq!(
        refused(&npr, &name("KPR"), &items(0, 1)),
        Some(RefusalCode::Unexpected),
        "sealed items go to the linker only"
    );
    let entries_msg = Message::Entries {
        project: project.clone(),
        first: 0,
        entries: BoundedVec::default(),
    };
    assert_eq!(
        refused(&Origin::Member(name("KPR")), &name("SSB"), &entries_msg),
        Some(RefusalCode::Unexpected),
        "transcript entries from a register"
    );
    assert_eq!(
        refused(&Origin::Member(linker.clone()), &name("SSB"), &entries_msg),
        None
    );

    // The phases, in order.
    assert_eq!(view(1).phase(), Phase::Ordered);
    assert_eq!(view(announced + 1).phase(), Phase::Chaining);
    let summary = first(entries, |b| matches!(b, Body::LinkSummary(_)));
    assert_eq!(view(summary + 1).phase(), Phase::Linked);
    assert!(
        view(entries.len()).finished_for(&name("RESEPT")),
        "a register outside the project is never ticked for it"
    );
    assert!(
        !view(entries.len()).finished_for(&name("NPR")),
        "open until closed and shredded"
    );
}
