//! Duties derived from a real transcript, replayed prefix by prefix: every
//! member is told the right next step at every stage of the lifecycle.

use kobling_protocol::{
    project::{Duty, ProjectView},
    transcript::{Body, Entry},
    types::Name,
};
use kobling_sim::{
    inmem::{Federation, ProjectConfig},
    population::{generate, PopulationConfig},
};

fn name(s: &str) -> Name {
    Name::new(s).expect("valid")
}

fn first(entries: &[Entry], pred: impl Fn(&Body) -> bool) -> usize {
    entries
        .iter()
        .position(|e| pred(&e.signed.statement.body))
        .expect("entry present")
}

#[test]
fn duties_follow_the_lifecycle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registers = ["NPR", "KPR", "SSB"];
    let mut fed = Federation::create(dir.path(), &registers, 5).expect("federation");
    let pop = generate(&PopulationConfig {
        persons: 400,
        seed: 9,
        ..Default::default()
    });
    let extracts: Vec<_> = registers
        .iter()
        .map(|r| pop.extract(r).expect("extract"))
        .collect();
    let config = ProjectConfig {
        project: "DUTY-1".into(),
        cohort: "NPR".into(),
        chunk_size: 64,
        seed: 1,
    };
    let out = fed
        .run_project(&extracts, &config, None, None)
        .expect("run");
    let entries = &out.transcript.0;
    let m = &fed.manifest;
    let duties = |n: usize, who: &str| ProjectView::new(m, &entries[..n]).duties(&name(who));

    // Nothing before the order; then registers wait for their operators.
    assert!(duties(0, "NPR").is_empty());
    assert_eq!(
        duties(1, "NPR"),
        vec![Duty::AwaitApprovals { approvals: 0 }]
    );
    assert_eq!(duties(1, "LINKER"), vec![Duty::Commit]);
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
        |b| matches!(b, Body::ListAnnounced(a) if a.list == name("NPR")),
    );
    let kpr = duties(npr_announced + 1, "KPR");
    assert!(
        kpr.contains(&Duty::Step {
            list: name("NPR"),
            hop: 1,
            previous: name("NPR"),
            previous_key: None,
            next: Some(name("SSB"))
        }),
        "{kpr:?}"
    );
    let linker = duties(npr_announced + 1, "LINKER");
    assert!(
        linker.iter().any(
            |d| matches!(d, Duty::Step { list, hop: 3, next: None, .. } if *list == name("NPR"))
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
