//! Issue 16 item 1 (PROTOCOL.md §10a, `docs/identified.md`): identified
//! projects and reservation tables, on real engines in memory
//! (`kobling_node::testing`). KPR keeps a reservation table; an
//! identified project leaves its persons out of KPR's list before the
//! chain and shows their number (`<5` under 5), an ordinary project over
//! the same extract is not affected. Checked against the generator's
//! ground truth; the exclusion count is signed, and `kobling audit
//! verify` refuses a transcript whose count was changed.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use ed25519_dalek::SigningKey;
use kobling_node::testing::{
    authority, Faults, Federation, Net, ProjectConfig, RunOutcome, LINKER,
};
use kobling_protocol::{
    identified::ResearcherList,
    link::Lnr,
    reservation::ShownCount,
    transcript::{encode_file, Body, Entry, SignedStatement, Trailer, Transcript},
    types::{Digest, Name},
};
use kobling_sim::{
    population::{generate, Extract, Population, PopulationConfig},
    truth,
};

const REGISTERS: [&str; 2] = ["NPR", "KPR"];

fn name(s: &str) -> Name {
    Name::new(s).expect("valid name")
}

fn config(project: &str) -> ProjectConfig {
    ProjectConfig {
        project: project.into(),
        cohort: "NPR & KPR".into(),
        chunk_size: 64,
        seed: 5,
        faults: Faults::default(),
    }
}

struct World {
    dir: tempfile::TempDir,
    fed: Federation,
    pop: Population,
}

fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = Federation::create(&dir.path().join("fed"), &REGISTERS, 42).expect("federation");
    let pop = generate(&PopulationConfig {
        persons: 600,
        seed: 7,
        cohort_share: 0.2,
        ..Default::default()
    });
    World { dir, fed, pop }
}

impl World {
    fn extracts(&self) -> Vec<&Extract> {
        REGISTERS
            .iter()
            .map(|r| self.pop.extract(r).expect("extract"))
            .collect()
    }

    /// Persons in both NPR and KPR (the cohort `NPR & KPR`).
    fn both(&self) -> BTreeSet<usize> {
        self.pop
            .members("NPR")
            .intersection(&self.pop.members("KPR"))
            .copied()
            .collect()
    }

    /// Writes a reservation table of `persons` (by index) and `invalid`
    /// malformed rows; returns its path.
    fn reservations(&self, file: &str, persons: &[usize], invalid: &[&str]) -> PathBuf {
        let mut text = String::from("fnr,reserved_on\n");
        for p in persons {
            text.push_str(&format!(
                "{},2026-03-01\n",
                self.pop.persons[*p].id.expose()
            ));
        }
        for raw in invalid {
            text.push_str(&format!("{raw},2026-03-02\n"));
        }
        let path = self.dir.path().join(file);
        std::fs::write(&path, text).expect("write reservations");
        path
    }

    /// Runs `project` as an identified project (an ordinary one if
    /// `identified` is false) on `net`. The researcher's list is the
    /// persons in both NPR and KPR, with its own column `arm`; it goes
    /// through the chain (docs/protocol.md §18).
    fn run(&self, net: &mut Net, project: &str, identified: bool) -> RunOutcome {
        let config = config(project);
        let order = self
            .fed
            .order(&config.project, &config.cohort, &self.extracts())
            .expect("order");
        if identified {
            let rows: Vec<Vec<String>> = self
                .both()
                .iter()
                .map(|p| {
                    vec![
                        self.pop.persons[*p].id.expose().to_string(),
                        format!("arm-{}", p % 2),
                    ]
                })
                .collect();
            return self
                .fed
                .run_identified(net, order, &self.extracts(), &config, &["arm"], &rows)
                .expect("delivered");
        }
        let start = net.clock_ms();
        let order = self
            .fed
            .submit_and_approve(net, order, &self.extracts(), &config)
            .expect("approved");
        self.fed
            .run_to_delivery(net, &order, &config, start)
            .expect("delivered")
    }

    fn lnr_of(&self, project: &str) -> Vec<Lnr> {
        let project = kobling_protocol::types::ProjectId::new(project).expect("id");
        truth::lnr_from_keystores(&self.fed.keystores(), &project, &self.pop).expect("shares")
    }
}

/// The exclusion count of `list`'s announcement in `entries`.
fn excluded(entries: &[Entry], list: &str) -> Option<ShownCount> {
    entries
        .iter()
        .find_map(|e| match &e.signed.statement.body {
            Body::ListAnnouncedV2(a) if a.list.as_str() == list => Some(a.excluded),
            Body::ListAnnounced(a) if a.list.as_str() == list => Some(a.excluded),
            _ => None,
        })
        .expect("the list's announcement")
}

fn delivered(out: &RunOutcome) -> BTreeSet<Lnr> {
    out.tables.values().flatten().map(|(l, _)| *l).collect()
}

/// The registers' tables (the researcher's own table left out).
fn registers(out: &RunOutcome) -> BTreeMap<Name, Vec<(Lnr, Vec<String>)>> {
    out.tables
        .iter()
        .filter(|(n, _)| n.as_str() != "RESEARCHER")
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect()
}

#[test]
fn reserved_persons_are_left_out_of_an_identified_project_only() {
    let w = world();
    let both: Vec<usize> = w.both().into_iter().collect();
    assert!(both.len() >= 20, "persons in NPR and KPR: {}", both.len());
    let reserved: Vec<usize> = both.iter().copied().step_by(3).take(7).collect();
    // Two malformed identifiers: counted by reason, the rest applies.
    let table = w.reservations("reservations.csv", &reserved, &["12345", "01018012300"]);
    let mut net = w.fed.start(64, Faults::default(), 3).expect("net");
    net.configure(&name("KPR"), |c| c.reservations = Some(table.clone()))
        .expect("KPR with its reservation table");

    // An ordinary project delivers lnr: the table does not apply.
    let ordinary = w.run(&mut net, "ORD-1", false);
    let lnr_of = w.lnr_of("ORD-1");
    let cohort: BTreeSet<usize> = both.iter().copied().collect();
    let problems = truth::compare_cohort(&w.pop, &lnr_of, &cohort, &ordinary.tables);
    assert!(problems.is_empty(), "{problems:?}");
    for p in &reserved {
        assert!(delivered(&ordinary).contains(&lnr_of[*p]));
    }
    let (entries, _) = &ordinary.transcript;
    assert_eq!(excluded(entries, "KPR"), None);
    assert_eq!(excluded(entries, "NPR"), None);
    assert!(!ordinary.verified.order.is_identified());

    // The identified project over the same extracts: KPR leaves the
    // reserved persons out, so they are not in the cohort `NPR & KPR`.
    let ident = w.run(&mut net, "IDENT-1", true);
    let lnr_of = w.lnr_of("IDENT-1");
    let cohort: BTreeSet<usize> = both
        .iter()
        .copied()
        .filter(|p| !reserved.contains(p))
        .collect();
    let problems = truth::compare_cohort(&w.pop, &lnr_of, &cohort, &registers(&ident));
    assert!(problems.is_empty(), "{problems:?}");
    let got = delivered(&ident);
    for p in &reserved {
        assert!(
            !got.contains(&lnr_of[*p]),
            "a reserved person was delivered"
        );
    }
    assert_eq!(got.len(), cohort.len());
    let (entries, _) = &ident.transcript;
    assert_eq!(excluded(entries, "KPR"), Some(ShownCount::Exactly(7)));
    assert_eq!(excluded(entries, "KPR").expect("count").to_string(), "7");
    // NPR keeps no table: nobody is left out, shown as `<5` like any
    // count under 5.
    assert_eq!(excluded(entries, "NPR"), Some(ShownCount::Under5));
    assert!(ident.verified.order.is_identified());

    // Three reserved persons show as `<5`, never as 3.
    let three: Vec<usize> = reserved[..3].to_vec();
    let table = w.reservations("three.csv", &three, &[]);
    net.configure(&name("KPR"), |c| c.reservations = Some(table.clone()))
        .expect("KPR with a smaller table");
    let small = w.run(&mut net, "IDENT-2", true);
    let lnr_of = w.lnr_of("IDENT-2");
    let (entries, _) = &small.transcript;
    assert_eq!(excluded(entries, "KPR"), Some(ShownCount::Under5));
    assert_eq!(excluded(entries, "KPR").expect("count").to_string(), "<5");
    let got = delivered(&small);
    for p in &three {
        assert!(!got.contains(&lnr_of[*p]));
    }
    assert!(
        got.contains(&lnr_of[reserved[3]]),
        "only the table's persons are left out"
    );
}

fn kobling(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kobling"))
        .args(args)
        .env("KOBLING_LOG", "warn")
        .output()
        .expect("run kobling");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().expect("exit code"), text)
}

fn verify(dir: &Path, entries: &[Entry], trailer: &Trailer, file: &str) -> (i32, String) {
    let path = dir.join(file);
    std::fs::write(&path, encode_file(entries, trailer)).expect("write transcript");
    kobling(&[
        "audit",
        "verify",
        "--transcript",
        &path.display().to_string(),
        "--manifest",
        &dir.join("manifest.toml").display().to_string(),
    ])
}

/// `statements` chained and trailed again by the linker, as a linker
/// that went along with a register would.
fn rechain(
    linker: &SigningKey,
    trailer: &Trailer,
    statements: Vec<SignedStatement>,
) -> (Vec<Entry>, Trailer) {
    let mut t = Transcript::new();
    for s in statements {
        t.append(s, linker);
    }
    let entries = t.into_entries();
    let trailer = Trailer::sign(&trailer.project, &entries, linker);
    (entries, trailer)
}

#[test]
fn audit_verify_refuses_a_changed_exclusion_count() {
    let w = world();
    let both: Vec<usize> = w.both().into_iter().collect();
    let table = w.reservations("reservations.csv", &both[..6], &[]);
    let mut net = w.fed.start(64, Faults::default(), 3).expect("net");
    net.configure(&name("KPR"), |c| c.reservations = Some(table.clone()))
        .expect("KPR with its reservation table");
    let out = w.run(&mut net, "IDENT-AUDIT", true);
    let (entries, trailer) = out.transcript;
    std::fs::write(
        w.dir.path().join("manifest.toml"),
        toml::to_string_pretty(&w.fed.manifest).expect("manifest"),
    )
    .expect("write manifest");
    let (code, text) = verify(w.dir.path(), &entries, &trailer, "clean.kob");
    assert_eq!(code, 0, "{text}");
    // The researcher's view names the project identified and KPR's count.
    let (code, shown) = kobling(&[
        "audit",
        "show",
        "--transcript",
        &w.dir.path().join("clean.kob").display().to_string(),
        "--manifest",
        &w.dir.path().join("manifest.toml").display().to_string(),
    ]);
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("identified project"), "{shown}");
    assert!(shown.contains("6 left out by reservation"), "{shown}");

    let at = entries
        .iter()
        .position(|e| matches!(&e.signed.statement.body, Body::ListAnnouncedV2(a) if a.list.as_str() == "KPR"))
        .expect("KPR's announcement");
    let set = |entry: &mut Entry, count: Option<ShownCount>| {
        if let Body::ListAnnouncedV2(a) = &mut entry.signed.statement.body {
            a.excluded = count;
        }
    };

    // Changed in the file: the register's signature no longer holds.
    let mut changed = entries.clone();
    set(&mut changed[at], Some(ShownCount::Under5));
    let (code, text) = verify(w.dir.path(), &changed, &trailer, "changed.kob");
    assert_ne!(code, 0, "a changed count verified:\n{text}");

    // Re-signed by KPR and re-chained by the linker: a count under 5
    // shown as a number, or no count at all, is still refused.
    let kpr = SigningKey::from_bytes(
        &w.fed
            .keystore("KPR")
            .expect("KPR keystore")
            .signing_key()
            .to_bytes(),
    );
    let linker = SigningKey::from_bytes(
        &w.fed
            .keystore(LINKER)
            .expect("linker keystore")
            .signing_key()
            .to_bytes(),
    );
    for (count, file, reason) in [
        (
            Some(ShownCount::Exactly(3)),
            "exact3.kob",
            "under 5 must be `<5`",
        ),
        (None, "none.kob", "carries no reservation count"),
    ] {
        let statements: Vec<SignedStatement> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                if i == at {
                    let mut st = e.signed.statement.clone();
                    if let Body::ListAnnouncedV2(a) = &mut st.body {
                        a.excluded = count;
                    }
                    st.sign(&kpr)
                } else {
                    e.signed.clone()
                }
            })
            .collect();
        let (resigned, retrailer) = rechain(&linker, &trailer, statements);
        let (code, text) = verify(w.dir.path(), &resigned, &retrailer, file);
        assert_ne!(code, 0, "{file} verified:\n{text}");
        assert!(text.contains(reason), "{file}: {text}");
    }
}

#[test]
fn the_linker_refuses_an_identified_order_without_persons_or_with_a_pseudonymous_list() {
    let w = world();
    let mut net = w.fed.start(64, Faults::default(), 3).expect("net");
    let config = config("IDENT-BAD");
    let base = w
        .fed
        .order(&config.project, &config.cohort, &w.extracts())
        .expect("order");
    let empty = {
        let mut o = base.clone();
        o.identified = Some(ResearcherList {
            persons: 0,
            digest: Digest([0x1d; 32]),
        });
        o.granted_by(&authority())
    };
    let pseudonymous = {
        let mut o = base.clone();
        o.identified = Some(ResearcherList {
            persons: 10,
            digest: Digest([0x1d; 32]),
        });
        o.pseudonymous = kobling_protocol::bounded::BoundedVec::new(vec![
            kobling_protocol::domain::PseudonymousList {
                register: name("KPR"),
                domain: name("KPR"),
            },
        ])
        .expect("fits");
        o.granted_by(&authority())
    };
    for (order, reason) in [
        (empty, "researcher list is empty"),
        (pseudonymous, "lists are fnr lists"),
    ] {
        let replies = net
            .client(&name(LINKER), w.fed.submit_message(&order, net.now()))
            .expect("answer");
        match replies.first() {
            Some(kobling_protocol::messages::Message::Refused { detail, .. }) => {
                assert!(
                    detail.as_str().contains(reason),
                    "{reason}: {}",
                    detail.as_str()
                )
            }
            other => panic!("{reason}: {other:?}"),
        }
        assert!(
            net.transcript(&name(LINKER), &order.project)
                .expect("transcript")
                .is_empty(),
            "{reason}: recorded"
        );
    }
}
