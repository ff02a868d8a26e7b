//! Issue 16 item 1 through the processes (`docs/identified.md`, verbatim
//! commands): a researcher orders an identified project from a spec with
//! `identified = true` and a researcher list; KPR runs with
//! `--reservations FILE` (with two malformed rows, counted by reason);
//! its operators read "identified project" before approving; the
//! researcher's fetch reports KPR's exclusion count, and the persons who
//! reserved are absent from KPR's table (ground truth) but still in NPR's.
//! The researcher sends its own list with `kobling project send-list`
//! (a file unlike the order's is refused before anything is sent); its
//! table `RESEARCHER` has the same lnr as NPR's for the same persons.

mod common;

use std::collections::BTreeSet;

use common::{
    authorize, eventually, path, researcher_key, setup_with_each, write_spec, NodeAddr, REGISTERS,
};
use kobling_protocol::types::{Name, ProjectId};
use kobling_sim::{
    population::{generate, PopulationConfig},
    truth,
};

const PERSONS: usize = 3000;
const PROJECT: &str = "IDENT-CLI";

#[test]
fn an_identified_project_through_the_commands() {
    // The population the setup generates (seed 21), to pick the reserved
    // persons before the nodes start.
    let pop = generate(&PopulationConfig {
        persons: PERSONS,
        seed: 21,
        ..Default::default()
    });
    let both: Vec<usize> = pop
        .members("NPR")
        .intersection(&pop.members("KPR"))
        .copied()
        .collect();
    assert!(both.len() >= 6, "persons in NPR and KPR: {}", both.len());
    let reserved = &both[..6];
    let tables_dir = tempfile::tempdir().expect("tempdir");
    let table = tables_dir.path().join("reservasjoner.csv");
    let mut text = String::from("fnr,reserved_on\n");
    for p in reserved {
        text.push_str(&format!("{},2026-03-01\n", pop.persons[*p].id.expose()));
    }
    text.push_str("12345,2026-03-02\n01018012300,2026-03-02\n");
    std::fs::write(&table, &text).expect("write the table");
    // The operator checks the table before the node uses it.
    let checked = common::kobling(&["extract", "reservations", path(&table)]);
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{said}");
    assert!(said.contains("8 rows, 6 persons reserved"), "{said}");
    assert!(said.contains("invalid (wrong-length), lines 8"), "{said}");
    assert!(said.contains("usable: yes"), "{said}");
    for p in reserved {
        assert!(!said.contains(pop.persons[*p].id.expose()), "{said}");
    }
    let wrong = tables_dir.path().join("wrong.csv");
    std::fs::write(&wrong, "old,current\n1,2\n").expect("write");
    let refused = common::kobling(&["extract", "reservations", path(&wrong)]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("`fnr`"));
    let table_arg = path(&table).to_string();
    let (s, nodes) = setup_with_each(
        PERSONS,
        "info",
        &[],
        |_| NodeAddr::direct(),
        move |name, _| {
            if name == "KPR" {
                vec!["--reservations".into(), table_arg.clone()]
            } else {
                Vec::new()
            }
        },
    );
    let d = s.dir.path();

    // The researcher's list: fnr of NPR's persons, and its own column.
    let mut list = String::from("fnr,arm\n");
    for p in pop.members("NPR") {
        list.push_str(&format!("{},A\n", pop.persons[p].id.expose()));
    }
    std::fs::write(d.join("cohort.csv"), &list).expect("write the list");
    let spec = write_spec(&s, PROJECT, &REGISTERS);
    let plain = std::fs::read_to_string(&spec).expect("spec");
    std::fs::write(
        &spec,
        format!("identified = true\nresearcher_list = \"cohort.csv\"\n{plain}"),
    )
    .expect("write spec");
    let researcher = researcher_key(&s, PROJECT);
    authorize(&s, &spec, &researcher);
    eventually(
        &[
            "project",
            "submit",
            "--manifest",
            path(&s.manifest),
            "--key",
            path(&researcher),
            "--spec",
            path(&spec),
        ],
        "submit",
    );
    let persons = pop.members("NPR").len();
    let digest = hex(&kobling_protocol::hash::sha3_256(list.as_bytes()));

    // KPR's operator reads the order before approving.
    let status = eventually(
        &[
            "project",
            "status",
            "--manifest",
            path(&s.manifest),
            "--key",
            path(&d.join("KPR-operator-1.key")),
            "--project",
            PROJECT,
        ],
        "status",
    );
    assert!(
        status.contains(&format!(
            "identified project: the researcher holds fnr of its own list ({persons} persons"
        )),
        "{status}"
    );
    // Both operators of every register approve; each approval states
    // the identified part, with the whole digest, before it is sent.
    for r in REGISTERS {
        for k in 1..=2 {
            let said = eventually(
                &[
                    "project",
                    "approve",
                    "--manifest",
                    path(&s.manifest),
                    "--key",
                    path(&d.join(format!("{r}-operator-{k}.key"))),
                    "--project",
                    PROJECT,
                    "--extract",
                    path(&d.join(format!("{r}.csv"))),
                ],
                "approve",
            );
            assert!(said.contains("identified project"), "{said}");
            assert!(said.contains(&digest), "the whole digest: {said}");
        }
    }

    // The researcher's own list into the chain: a wrong file is refused
    // before anything is sent; the right one is sent, stepped, checked.
    let state = d.join("rlist-state");
    std::fs::create_dir(&state).expect("state dir");
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("0700");
    let wrong_list = d.join("other.csv");
    std::fs::write(
        &wrong_list,
        list.lines().take(3).collect::<Vec<_>>().join("\n") + "\n",
    )
    .expect("write");
    let send = |file: &std::path::Path| {
        common::kobling(&[
            "project",
            "send-list",
            "--manifest",
            path(&s.manifest),
            "--key",
            path(&researcher),
            "--project",
            PROJECT,
            "--list",
            path(file),
            "--state",
            path(&state),
            "--chunk-size",
            "64",
            "--wait",
            "600",
        ])
    };
    let refused = send(&wrong_list);
    let said = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("nothing was sent") && said.contains("persons"),
        "{said}"
    );
    assert!(
        std::fs::read_dir(&state).expect("state").next().is_none(),
        "kept output of a refused file"
    );
    let sent = send(&d.join("cohort.csv"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&sent.stdout),
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(sent.status.success(), "{said}");
    assert!(said.contains("researcher list check signed"), "{said}");
    for p in pop.members("NPR") {
        assert!(!said.contains(pop.persons[p].id.expose()), "an fnr printed");
    }

    let out = d.join(PROJECT);
    let fetched = eventually(
        &[
            "project",
            "fetch",
            "--manifest",
            path(&s.manifest),
            "--key",
            path(&researcher),
            "--project",
            PROJECT,
            "--out",
            path(&out),
        ],
        "fetch",
    );
    assert!(fetched.contains("identified project"), "{fetched}");
    assert!(
        fetched.contains("KPR: 6 left out by reservation"),
        "{fetched}"
    );
    let status = eventually(
        &[
            "project",
            "status",
            "--manifest",
            path(&s.manifest),
            "--key",
            path(&researcher),
            "--project",
            PROJECT,
        ],
        "status",
    );
    assert!(status.contains("6 left out by reservation"), "{status}");
    assert!(status.contains("<5 left out by reservation"), "{status}");
    let report = std::fs::read_to_string(out.join("report.txt")).expect("report");
    assert!(
        report.contains("KPR: 6 left out by reservation"),
        "{report}"
    );
    assert!(
        report.contains("NPR: <5 left out by reservation"),
        "{report}"
    );

    // Ground truth: the reserved persons are not in KPR's table, and are
    // in NPR's (NPR keeps no table; the cohort is NPR).
    let keystores: Vec<_> = REGISTERS
        .iter()
        .chain(std::iter::once(&"LINKER"))
        .map(|m| d.join(m).join("keys"))
        .collect();
    let lnr_of =
        truth::lnr_from_keystores(&keystores, &ProjectId::new(PROJECT).expect("valid"), &s.pop)
            .expect("shares");
    let tables = truth::read_tables(&out, &REGISTERS).expect("tables");
    let lnrs = |r: &str| -> BTreeSet<_> {
        tables[&Name::new(r).expect("name")]
            .iter()
            .map(|(l, _)| *l)
            .collect()
    };
    let (kpr, npr) = (lnrs("KPR"), lnrs("NPR"));
    for p in reserved {
        assert!(
            !kpr.contains(&lnr_of[*p]),
            "a reserved person in KPR's table"
        );
        assert!(npr.contains(&lnr_of[*p]));
    }
    assert!(!kpr.is_empty());
    // The researcher's own table: the cohort (NPR ∩ its list = NPR), under
    // the same lnr as NPR's table.
    let own = truth::read_tables(&out, &["RESEARCHER"]).expect("the researcher's table");
    let own: BTreeSet<_> = own[&Name::new("RESEARCHER").expect("name")]
        .iter()
        .map(|(l, _)| *l)
        .collect();
    assert_eq!(own, npr, "the researcher's table and NPR's");
    let want: BTreeSet<_> = pop.members("NPR").iter().map(|p| lnr_of[*p]).collect();
    assert_eq!(own, want, "ground truth");

    // KPR's log counts its table by reason and names no identifier.
    let log_path = nodes.log_path("KPR");
    drop(nodes);
    let log = std::fs::read_to_string(log_path).expect("KPR's log");
    assert!(log.contains("reservation table"), "{log}");
    assert!(log.contains("6 persons reserved"), "{log}");
    assert!(log.contains("invalid (wrong-length), lines 8"), "{log}");
    for p in reserved {
        assert!(!log.contains(pop.persons[*p].id.expose()));
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
