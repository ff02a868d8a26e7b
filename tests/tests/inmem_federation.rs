//! The whole protocol in memory (issue 2's proof that it works): four
//! registers and a linker, each with its own keystore, over a synthetic
//! population of 5,000 persons, checked against the ground truth.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use kobling_protocol::{
    group::WirePoint,
    hop::HopError,
    link::Lnr,
    share::Domain,
    transcript,
    types::{Name, ProjectId},
};
use kobling_sim::{
    inmem::{Fault, Federation, Observer, ProjectConfig, RunError, RunOutcome, LINKER},
    population::{generate, Population, PopulationConfig},
};

const REGISTERS: [&str; 4] = ["NPR", "KPR", "SSB", "RESEPT"];

fn name(s: &str) -> Name {
    Name::new(s).expect("valid name")
}

fn setup(persons: usize) -> (tempfile::TempDir, Federation, Population) {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = Federation::create(dir.path(), &REGISTERS, 42).expect("federation");
    let pop = generate(&PopulationConfig {
        persons,
        seed: 7,
        ..Default::default()
    });
    (dir, fed, pop)
}

fn config(project: &str) -> ProjectConfig {
    ProjectConfig {
        project: project.into(),
        cohort: "NPR".into(),
        chunk_size: 256,
        seed: 3,
    }
}

fn run(
    fed: &mut Federation,
    pop: &Population,
    project: &str,
    fault: Option<&Fault>,
    obs: Option<&mut Observer>,
) -> Result<RunOutcome, RunError> {
    let extracts: Vec<_> = REGISTERS
        .iter()
        .map(|r| pop.extract(r).expect("extract"))
        .collect();
    fed.run_project(&extracts, &config(project), fault, obs)
}

/// The lnr each person must get: the product of every key holder's share
/// (known to no party, computable by a test holding every keystore).
fn expected_lnr(fed: &Federation, project: &str, pop: &Population) -> Vec<Lnr> {
    let keystores: Vec<_> = REGISTERS
        .iter()
        .chain(std::iter::once(&LINKER))
        .map(|m| fed.dir.join(m))
        .collect();
    kobling_sim::truth::lnr_from_keystores(
        &keystores,
        &ProjectId::new(project).expect("valid"),
        pop,
    )
    .expect("shares")
}

#[test]
fn in_memory_federation_delivers_exactly_the_cohort_with_consistent_lnr() {
    let (_dir, mut fed, pop) = setup(5_000);
    let mut obs = Observer::default();
    let out = run(&mut fed, &pop, "DEMO-1", None, Some(&mut obs)).expect("run");
    let lnr_of = expected_lnr(&fed, "DEMO-1", &pop);
    let cohort = pop.members("NPR");
    assert!(cohort.len() >= 50, "cohort of {}", cohort.len());

    // Exactly the cohort's rows from every register, keyed by the person's lnr.
    for r in REGISTERS {
        let mut want: BTreeMap<Lnr, Vec<Vec<String>>> = BTreeMap::new();
        for (person, rows) in pop.rows_by_person(r) {
            if cohort.contains(&person) {
                want.insert(lnr_of[person], rows);
            }
        }
        let mut got: BTreeMap<Lnr, Vec<Vec<String>>> = BTreeMap::new();
        for (lnr, row) in &out.tables[&name(r)] {
            got.entry(*lnr).or_default().push(row.clone());
        }
        assert_eq!(got.len(), want.len(), "{r}: persons delivered");
        assert_eq!(
            got, want,
            "{r}: delivered rows differ from the ground truth"
        );
        let members = pop.members(r);
        let selected = out
            .linkage
            .lists
            .iter()
            .find(|l| l.list == name(r))
            .expect("list");
        assert_eq!(
            selected.total as usize,
            members.len(),
            "{r}: persons in the list"
        );
        assert_eq!(
            selected.selected.len(),
            members.intersection(&cohort).count(),
            "{r}: matched"
        );
    }

    // One person, one lnr across tables; the persons table is the cohort.
    assert_eq!(out.linkage.persons.len(), cohort.len());
    let expected_cohort_lnr: BTreeSet<Lnr> = cohort.iter().map(|p| lnr_of[*p]).collect();
    let delivered_lnr: BTreeSet<Lnr> = out.linkage.persons.iter().map(|p| p.lnr).collect();
    assert_eq!(delivered_lnr, expected_cohort_lnr);
    for r in REGISTERS {
        let lnrs: BTreeSet<&Lnr> = out.tables[&name(r)].iter().map(|(l, _)| l).collect();
        assert!(
            lnrs.iter().all(|l| expected_cohort_lnr.contains(*l)),
            "{r} delivered a non-cohort lnr"
        );
    }

    // Invalid identifiers were counted, not delivered and not dropped silently.
    for r in REGISTERS {
        let invalid = pop
            .extract(r)
            .expect("extract")
            .owners
            .iter()
            .filter(|o| o.is_none())
            .count() as u64;
        assert_eq!(out.stats[&name(r)].invalid_rows(), invalid, "{r}");
        assert_eq!(
            out.stats[&name(r)].rows,
            pop.extract(r).expect("extract").rows.len() as u64
        );
    }

    // What the registers saw: never an identity point, never a final
    // pseudonym, and nothing in common between two lists.
    let identity: HashSet<WirePoint> = pop
        .persons
        .iter()
        .map(|p| WirePoint(p.id.identity_point().compress().to_bytes()))
        .collect();
    let finals: HashSet<WirePoint> = obs.final_points.values().flatten().copied().collect();
    let mut per_list: BTreeMap<Name, HashSet<WirePoint>> = BTreeMap::new();
    for (list, _viewer, seen) in &obs.register_views {
        for p in seen {
            assert!(
                !identity.contains(p),
                "a register saw an identity point in list {list}"
            );
            assert!(
                !finals.contains(p),
                "a register saw a final pseudonym in list {list}"
            );
        }
        per_list
            .entry(list.clone())
            .or_default()
            .extend(seen.iter().copied());
    }
    assert_eq!(per_list.len(), 4);
    let lists: Vec<_> = per_list.iter().collect();
    for i in 0..lists.len() {
        for j in i + 1..lists.len() {
            assert_eq!(
                lists[i].1.intersection(lists[j].1).count(),
                0,
                "registers saw the same point in {} and {}",
                lists[i].0,
                lists[j].0
            );
        }
    }
    // Only the linker's final values coincide across lists: one per person in both.
    let npr: HashSet<_> = obs.final_points[&name("NPR")].iter().collect();
    let ssb: HashSet<_> = obs.final_points[&name("SSB")].iter().collect();
    assert_eq!(
        npr.intersection(&ssb).count(),
        pop.members("NPR").intersection(&pop.members("SSB")).count()
    );

    // The auditor's view agrees.
    let (entries, trailer) = &out.transcript;
    let verified =
        transcript::verify(entries, Some(trailer), &fed.manifest).expect("transcript verifies");
    assert_eq!(verified.cohort_persons, Some(cohort.len() as u64));
    assert!(verified.delivered);
    assert!(verified.lists.iter().all(|l| l.complete && l.hops == 4));
}

#[test]
fn a_second_project_gets_disjoint_lnr_and_a_closed_project_cannot_run() {
    let (_dir, mut fed, pop) = setup(1_500);
    let a = run(&mut fed, &pop, "PROJ-A", None, None).expect("first project");
    let b = run(&mut fed, &pop, "PROJ-B", None, None).expect("second project");
    let la: BTreeSet<Lnr> = a.linkage.persons.iter().map(|p| p.lnr).collect();
    let lb: BTreeSet<Lnr> = b.linkage.persons.iter().map(|p| p.lnr).collect();
    assert_eq!(la.len(), lb.len(), "same cohort size");
    assert!(la.is_disjoint(&lb), "lnr values shared between projects");

    // Re-running the same project reproduces its lnr (same seeds, new blinding).
    let again = run(&mut fed, &pop, "PROJ-A", None, None).expect("re-run");
    let lc: BTreeSet<Lnr> = again.linkage.persons.iter().map(|p| p.lnr).collect();
    assert_eq!(la, lc);

    // Closing shreds the seeds: the project can no longer be derived or run.
    fed.close("PROJ-A").expect("close");
    let domain = Domain::Project(ProjectId::new("PROJ-A").expect("valid"));
    assert!(fed
        .keystore(&name("NPR"))
        .expect("keystore")
        .share(&domain)
        .is_err());
    assert!(matches!(
        run(&mut fed, &pop, "PROJ-A", None, None),
        Err(RunError::Keystore(_))
    ));
}

#[test]
fn a_hop_using_a_wrong_share_is_caught_by_the_next_hop() {
    let (_dir, mut fed, pop) = setup(800);
    // NPR's list travels NPR → KPR → SSB → RESEPT → LINKER.
    for (cheat, catcher) in [("KPR", "SSB"), ("SSB", "RESEPT"), ("RESEPT", LINKER)] {
        let fault = Fault::WrongShare {
            list: "NPR".into(),
            member: cheat.into(),
        };
        match run(&mut fed, &pop, "FAULTY", Some(&fault), None) {
            Err(RunError::Hop {
                list,
                member,
                source: HopError::BadProof { chunk: 0 },
                ..
            }) => {
                assert_eq!(list, name("NPR"));
                assert_eq!(
                    member,
                    name(catcher),
                    "{cheat}'s wrong share must be caught by {catcher}"
                );
            }
            other => panic!("{cheat} cheating was not caught: {other:?}"),
        }
    }
}
