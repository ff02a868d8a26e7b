//! The whole protocol on real engines in memory (`kobling_node::testing`):
//! four registers and a linker, each with its own keystore and state, over
//! a synthetic population, checked against the ground truth, with every
//! point a register receives or sends observed on the network.

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet, HashSet},
    rc::Rc,
};

use curve25519_dalek::{ristretto::CompressedRistretto, Scalar};
use kobling_node::testing::{Faults, Federation, Net, ProjectConfig, RunOutcome, LINKER};
use kobling_protocol::{
    bounded::BoundedVec,
    group::WirePoint,
    link::Lnr,
    messages::{Action, Message},
    project::{Phase, ProjectView},
    refusal::RefusalCode,
    seal::{seal_blinding, HpkePublicKey},
    share::{Domain, Share},
    transcript::{self, Body},
    types::{ListName, Name, ProjectId},
};
use kobling_sim::{
    population::{generate, Population, PopulationConfig},
    truth,
};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

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
        faults: Faults::default(),
    }
}

fn extracts(pop: &Population) -> Vec<&kobling_sim::population::Extract> {
    REGISTERS
        .iter()
        .map(|r| pop.extract(r).expect("extract"))
        .collect()
}

/// The lnr each person must get: the product of every key holder's share
/// (known to no party, computable by a test holding every keystore).
fn expected_lnr(fed: &Federation, project: &str, pop: &Population) -> Vec<Lnr> {
    truth::lnr_from_keystores(
        &fed.keystores(),
        &ProjectId::new(project).expect("valid"),
        pop,
    )
    .expect("shares")
}

/// Every point a register received or sent in a chunk, per list.
type Views = Rc<RefCell<Vec<(ListName, Name, Vec<WirePoint>)>>>;

fn observe_registers(net: &mut Net) -> Views {
    let views: Views = Rc::default();
    let seen = views.clone();
    let linker = name(LINKER);
    net.observe(Box::new(move |from, to, msg| {
        if let Message::ChunkV2 { chunk, .. } = msg {
            // Chain v2: a chunk carries the sender's output (the receiver's
            // input); strict mode adds the sender's input.
            let points: Vec<WirePoint> = chunk
                .input
                .iter()
                .chain(chunk.points.iter())
                .copied()
                .collect();
            for who in [from, to] {
                if *who != linker {
                    seen.borrow_mut()
                        .push((chunk.list.clone(), who.clone(), points.clone()));
                }
            }
        }
    }));
    views
}

#[test]
fn in_memory_federation_delivers_exactly_the_cohort_with_consistent_lnr() {
    let (_dir, fed, pop) = setup(3_000);
    let config = config("DEMO-1");
    let mut net = fed
        .start(config.chunk_size, config.faults, config.seed)
        .expect("nodes");
    let views = observe_registers(&mut net);
    let out: RunOutcome = fed
        .run_project(&mut net, &extracts(&pop), &config)
        .expect("run");
    let lnr_of = expected_lnr(&fed, "DEMO-1", &pop);
    let cohort = pop.members("NPR");
    assert!(cohort.len() >= 30, "cohort of {}", cohort.len());

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
        // The signed counts: persons in the list, and matched.
        let members = pop.members(r);
        let list = out
            .verified
            .lists
            .iter()
            .find(|l| l.list.is_owned_by(&name(r)))
            .expect("list");
        assert_eq!(list.persons as usize, members.len(), "{r}: persons");
        assert_eq!(
            list.matched,
            Some(members.intersection(&cohort).count() as u64),
            "{r}: matched"
        );
        // Invalid identifiers were counted, not delivered and not dropped
        // silently.
        let extract = pop.extract(r).expect("extract");
        let invalid = extract.owners.iter().filter(|o| o.is_none()).count() as u64;
        assert_eq!(list.invalid, invalid, "{r}: invalid");
        assert_eq!(list.rows, extract.rows.len() as u64, "{r}: rows");
    }

    // One person, one lnr across tables; the delivered persons are the cohort.
    let expected_cohort_lnr: BTreeSet<Lnr> = cohort.iter().map(|p| lnr_of[*p]).collect();
    let delivered_lnr: BTreeSet<Lnr> = out.tables.values().flatten().map(|(l, _)| *l).collect();
    assert_eq!(delivered_lnr, expected_cohort_lnr);
    assert_eq!(out.verified.cohort_persons, Some(cohort.len() as u64));

    // What the registers saw: never an identity point, never a final
    // pseudonym, and nothing in common between two lists.
    let identity: HashSet<WirePoint> = pop
        .persons
        .iter()
        .map(|p| WirePoint(p.id.identity_point().compress().to_bytes()))
        .collect();
    let finals: HashSet<WirePoint> = truth::final_points_from_keystores(
        &fed.keystores(),
        &ProjectId::new("DEMO-1").expect("valid"),
        &pop,
    )
    .expect("shares")
    .into_iter()
    .collect();
    let mut per_list: BTreeMap<ListName, HashSet<WirePoint>> = BTreeMap::new();
    for (list, _viewer, seen) in views.borrow().iter() {
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
    assert_eq!(per_list.len(), 4, "every list was observed");
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

    // The auditor's view agrees.
    let (entries, trailer) = &out.transcript;
    let verified =
        transcript::verify(entries, Some(trailer), &fed.manifest).expect("transcript verifies");
    assert_eq!(verified.cohort_persons, Some(cohort.len() as u64));
    assert!(verified.delivered);
    assert!(verified.lists.iter().all(|l| l.complete && l.hops == 4));
}

#[test]
fn a_second_project_gets_disjoint_lnr_and_a_closed_project_cannot_run_again() {
    let (_dir, fed, pop) = setup(1_500);
    let (a, mut net) = fed.run(&extracts(&pop), &config("PROJ-A")).expect("first");
    let (b, _) = fed.run(&extracts(&pop), &config("PROJ-B")).expect("second");
    let lnr = |o: &RunOutcome| -> BTreeSet<Lnr> {
        o.tables.values().flatten().map(|(l, _)| *l).collect()
    };
    let (la, lb) = (lnr(&a), lnr(&b));
    assert_eq!(la.len(), lb.len(), "same cohort size");
    assert!(la.is_disjoint(&lb), "lnr values shared between projects");

    // The researcher closes PROJ-A: every node shreds its seed, and the
    // project can never be ordered again.
    let linker = name(LINKER);
    let close = fed
        .request("PROJ-A", Action::Close, net.now())
        .expect("request");
    assert!(matches!(
        net.client(&linker, close).expect("close")[0],
        Message::Ack { .. }
    ));
    let project = ProjectId::new("PROJ-A").expect("valid");
    let manifest = fed.manifest.clone();
    // The shreddings are in the linker's transcript (registers hold only
    // the entries before the linkage, issue 12 item 1).
    net.run_until(120_000, |net| {
        let entries = net.transcript(&linker, &project)?;
        let view = ProjectView::new(&manifest, &entries);
        Ok(REGISTERS
            .iter()
            .copied()
            .chain([LINKER])
            .all(|r| view.shredded(&name(r))))
    })
    .expect("every node shreds");
    let domain = Domain::Project(project.clone());
    for r in REGISTERS.iter().copied().chain([LINKER]) {
        assert!(
            fed.keystore(r).expect("keystore").share(&domain).is_err(),
            "{r} can still derive PROJ-A's key"
        );
    }
    let entries = net.transcript(&linker, &project).expect("transcript");
    assert_eq!(ProjectView::new(&manifest, &entries).phase(), Phase::Closed);
    let order = fed.order("PROJ-A", "NPR", &extracts(&pop)).expect("order");
    let again = fed.submit_message(&order, net.now());
    assert!(
        matches!(
            net.client(&linker, again).expect("reply")[0],
            Message::Refused { .. }
        ),
        "a closed project was ordered again"
    );
}

#[test]
fn a_hop_that_forwards_points_other_than_its_committed_step_is_caught_by_the_next_hop() {
    // NPR's list travels NPR → KPR → SSB → RESEPT → LINKER. The cheat's
    // output is multiplied by 2 on the way out, as if it had stepped with
    // another share: the next hop checks the points against the cheat's
    // signed digest and refuses (a cheat that signs what it sends is
    // caught by the list check: `chain_v2.rs`).
    for (cheat, catcher) in [("KPR", "SSB"), ("SSB", "RESEPT"), ("RESEPT", LINKER)] {
        let (_dir, fed, pop) = setup(400);
        let config = config("FAULTY");
        let mut net = fed
            .start(config.chunk_size, config.faults, config.seed)
            .expect("nodes");
        let (cheat_name, npr) = (name(cheat), ListName::new("NPR").expect("valid name"));
        net.tamper(Box::new(move |from, _to, msg| {
            if let Message::ChunkV2 { chunk, .. } = msg {
                if *from == cheat_name && chunk.list == npr {
                    let two = Scalar::from(2u8);
                    let doubled: Vec<WirePoint> = chunk
                        .points
                        .iter()
                        .map(|p| {
                            let point =
                                CompressedRistretto(p.0).decompress().expect("a point") * two;
                            WirePoint(point.compress().to_bytes())
                        })
                        .collect();
                    chunk.points = BoundedVec::new(doubled).expect("same length");
                }
            }
        }));
        fed.order_and_approve(&mut net, &extracts(&pop), &config)
            .expect("ordered");
        let caught = |net: &Net| {
            net.refusals().iter().any(|(from, to, code, _)| {
                from.as_str() == cheat
                    && to.as_str() == catcher
                    && code == RefusalCode::BadChunk.as_str()
            })
        };
        net.run_until(120_000, |net| Ok(caught(net)))
            .unwrap_or_else(|e| {
                panic!(
                    "{cheat}'s forged step was not refused by {catcher} ({e}): {:?}",
                    net.refusals()
                )
            });
        // Nothing the catcher refused was passed on: give the federation
        // time, and the list never reaches the linker.
        net.run_for(10_000).expect("runs");
        let entries = net
            .transcript(&name(LINKER), &ProjectId::new("FAULTY").expect("valid"))
            .expect("transcript");
        let view = ProjectView::new(&fed.manifest, &entries);
        assert!(!view.phase().is_deliverable());
    }
}

#[test]
fn an_owner_whose_blinding_is_not_its_announced_one_closes_the_project_naming_its_list() {
    // NPR's node sends the linker a blinding other than the one its signed
    // announcement commits to (D = β⁻¹·G): the linker refuses it at
    // arrival, never keeps it, and records the closure naming the list;
    // every node shreds. (Before, it was kept and the list stalled at the
    // linker's hop, refused to the innocent last register.)
    let (_dir, fed, pop) = setup(300);
    let config = config("BAD-BLINDING");
    let mut net = fed
        .start(config.chunk_size, config.faults, config.seed)
        .expect("nodes");
    let linker = name(LINKER);
    let linker_hpke =
        HpkePublicKey::from_bytes(fed.manifest.member(&linker).expect("linker").hpke_key.0)
            .expect("hpke key");
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let npr = name("NPR");
    net.tamper(Box::new(move |from, _to, msg| {
        if let Message::Blinding {
            project,
            list,
            sealed,
        } = msg
        {
            if *from == npr {
                *sealed = seal_blinding(
                    &linker_hpke,
                    project,
                    list,
                    &Share::random(&mut rng),
                    &mut rng,
                );
            }
        }
    }));
    fed.order_and_approve(&mut net, &extracts(&pop), &config)
        .expect("ordered");
    let project = ProjectId::new("BAD-BLINDING").expect("valid");
    let manifest = fed.manifest.clone();
    // The shreddings are in the linker's transcript (registers hold only
    // the entries before the linkage, issue 12 item 1).
    net.run_until(120_000, |net| {
        let entries = net.transcript(&linker, &project)?;
        let view = ProjectView::new(&manifest, &entries);
        Ok(REGISTERS
            .iter()
            .copied()
            .chain([LINKER])
            .all(|r| view.shredded(&name(r))))
    })
    .expect("the project closes and every node shreds");
    let entries = net.transcript(&linker, &project).expect("transcript");
    let reasons: Vec<String> = entries
        .iter()
        .filter_map(|e| match &e.signed.statement.body {
            Body::Closure(c) => Some(c.reason.as_str().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("list NPR") && reasons[0].contains("blinding"),
        "{reasons:?}"
    );
    assert!(net
        .refusals()
        .iter()
        .any(|(from, to, code, _)| *from == name("NPR")
            && *to == linker
            && code == RefusalCode::Blinding.as_str()));
    // The transcript with its closure still verifies for the auditor.
    transcript::verify(&entries, None, &fed.manifest).expect("verifies");
}
