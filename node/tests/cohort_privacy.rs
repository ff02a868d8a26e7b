//! Issue 12 item 1, performed: a register learns nothing about the cohort.
//!
//! KPR submits a one-person list in two projects that differ only in
//! whether that person is in NPR's list (the cohort, `cohort = "NPR"`):
//! `COHORT-I` (in it) and `COHORT-O` (not in it). Whatever a register node
//! stores about either project, and whatever an operator's command prints,
//! must be the same once project ids are masked and bytes that differ
//! between any two projects anyway (keys, points, digests, signatures,
//! times) are reduced to their lengths. The researcher and the auditor do
//! see the link summary, which differs.

mod common;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use common::*;
use kobling_protocol::transcript::Entry;
use rusqlite::{types::ValueRef, Connection, OpenFlags};

const IN: &str = "COHORT-I";
const OUT: &str = "COHORT-O";

/// Replaces both project ids (same length) with one mask.
fn mask(s: &str) -> String {
    s.replace(IN, "<P>")
        .replace(OUT, "<P>")
        .replace("KPR-in.csv", "<KPR extract>")
        .replace("KPR-ou.csv", "<KPR extract>")
}

/// A value with every byte string (an array of at least 16 small numbers,
/// or 64 hex digits) reduced to its length, `time` and `seq` dropped and
/// project ids masked: what may differ between two projects whatever
/// their cohorts.
fn normalise(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Array(a)
            if a.len() >= 16 && a.iter().all(|x| x.as_u64().is_some_and(|n| n < 256)) =>
        {
            Value::String(format!("<{} bytes>", a.len()))
        }
        Value::Array(a) => Value::Array(a.into_iter().map(normalise).collect()),
        // The time, and the place in the log (the lists' hop records
        // arrive in either order).
        Value::Object(o) => Value::Object(
            o.into_iter()
                .filter(|(k, _)| k != "time" && k != "seq")
                .map(|(k, v)| (k, normalise(v)))
                .collect(),
        ),
        // A key in hex (the researcher's keys differ per project).
        Value::String(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Value::String("<32 bytes>".into())
        }
        Value::String(s) => Value::String(mask(&s)),
        other => other,
    }
}

/// Everything register `node` stores about `project`: every row of every
/// table keyed by project (blobs by length, transcript entries decoded and
/// normalised), and the files in its directory that name the project.
fn dump(dir: &Path, node: &str, project: &str) -> Vec<String> {
    let conn = Connection::open_with_flags(
        dir.join(node).join("state.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the register's state read-only");
    let mut out = Vec::new();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("tables")
        .query_map([], |r| r.get(0))
        .expect("tables")
        .collect::<Result<_, _>>()
        .expect("tables");
    for table in tables {
        let columns: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .expect("columns")
            .query_map([], |r| r.get(0))
            .expect("columns")
            .collect::<Result<_, _>>()
            .expect("columns");
        if !columns.iter().any(|c| c == "project") {
            continue;
        }
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {table} WHERE project = ?1"))
            .expect("select");
        let mut rows = stmt.query([project]).expect("rows");
        let mut lines = Vec::new();
        while let Some(row) = rows.next().expect("row") {
            let mut cells = Vec::new();
            for (i, c) in columns.iter().enumerate() {
                if c == "id" || c == "seq" {
                    continue; // the outbox's running number, the log's order
                }
                let cell = match row.get_ref(i).expect("cell") {
                    ValueRef::Null => "null".to_string(),
                    ValueRef::Integer(n) => n.to_string(),
                    ValueRef::Real(f) => f.to_string(),
                    ValueRef::Text(t) => mask(&String::from_utf8_lossy(t)),
                    ValueRef::Blob(b) if table == "entries" => {
                        let e: Entry = postcard::from_bytes(b).expect("an entry");
                        format!(
                            "{} ({} bytes) {}",
                            e.signed.statement.body.kind(),
                            b.len(),
                            normalise(serde_json::to_value(&e).expect("json"))
                        )
                    }
                    ValueRef::Blob(b) => format!("<{} bytes>", b.len()),
                };
                cells.push(format!("{c}={cell}"));
            }
            lines.push(format!("{table}: {}", cells.join(" ")));
        }
        lines.sort();
        out.extend(lines);
    }
    let mut files = Vec::new();
    list_files(&dir.join(node), &dir.join(node), project, &mut files);
    files.sort();
    out.extend(files);
    out
}

fn list_files(root: &Path, at: &Path, project: &str, out: &mut Vec<String>) {
    for e in std::fs::read_dir(at).expect("read dir").flatten() {
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .expect("inside")
            .display()
            .to_string();
        if path.is_dir() {
            list_files(root, &path, project, out);
        } else if rel.contains(project) {
            let size = e.metadata().map(|m| m.len()).unwrap_or_default();
            out.push(format!("file {} {size} bytes", mask(&rel)));
        }
    }
}

/// A one-person KPR extract: `fnr` and the first KPR row's variables.
fn one_person(s: &Setup, file: &str, fnr: &str) -> PathBuf {
    let kpr = s.pop.extract("KPR").expect("KPR");
    let mut csv = kpr.columns.join(",");
    csv.push('\n');
    csv.push_str(fnr);
    for v in &kpr.rows[0].1 {
        csv.push(',');
        csv.push_str(v);
    }
    csv.push('\n');
    let path = s.dir.path().join(file);
    std::fs::write(&path, csv).expect("write");
    path
}

fn approve_file(s: &Setup, project: &str, register: &str, extract: &Path) {
    for k in 1..=2 {
        let key = s.dir.path().join(format!("{register}-operator-{k}.key"));
        eventually(
            &[
                "project",
                "approve",
                "--manifest",
                path(&s.manifest),
                "--key",
                path(&key),
                "--project",
                project,
                "--extract",
                path(extract),
            ],
            "approve",
        );
    }
}

fn status(s: &Setup, key: &Path, project: &str, node: Option<&str>) -> String {
    let mut args = vec![
        "project",
        "status",
        "--manifest",
        path(&s.manifest),
        "--key",
        path(key),
        "--project",
        project,
    ];
    if let Some(n) = node {
        args.extend(["--node", n]);
    }
    ok(&args)
}

/// Waits until `register`'s own node says `phase: <phase>` for `project`.
fn await_phase(s: &Setup, register: &str, project: &str, phase: &str) {
    let key = s.dir.path().join(format!("{register}-operator-1.key"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !status(s, &key, project, Some(register)).contains(&format!("phase: {phase}")) {
        assert!(
            Instant::now() < deadline,
            "{register} never saw {project} {phase}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// What every register stores and every operator command prints about
/// `project`, masked.
fn observed(s: &Setup, project: &str) -> Vec<String> {
    let mut out = Vec::new();
    for r in REGISTERS {
        out.push(format!("== {r} stores"));
        out.extend(dump(s.dir.path(), r, project));
    }
    for r in ["NPR", "KPR"] {
        let key = s.dir.path().join(format!("{r}-operator-1.key"));
        for node in [None, Some(r)] {
            out.push(format!("== {r} operator: project status --node {node:?}"));
            out.extend(status(s, &key, project, node).lines().map(mask));
        }
    }
    out
}

fn assert_same(what: &str, a: &[String], b: &[String]) {
    let differ: Vec<String> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| format!("  {IN}: {x}\n  {OUT}: {y}"))
        .collect();
    assert!(
        differ.is_empty() && a.len() == b.len(),
        "{what}: the registers' view depends on the cohort ({} vs {} lines):\n{}",
        a.len(),
        b.len(),
        differ.join("\n")
    );
}

#[test]
fn a_register_cannot_tell_whether_its_one_person_list_is_in_the_cohort() {
    let (s, _nodes) = setup(400);
    let npr = s.pop.extract("NPR").expect("NPR");
    let in_npr: BTreeSet<usize> = s.pop.members("NPR");
    let fnr_in = npr
        .rows
        .iter()
        .zip(&npr.owners)
        .find_map(|(row, o)| o.map(|_| row.0.clone()))
        .expect("an NPR person");
    let fnr_out = (0..s.pop.persons.len())
        .find(|p| !in_npr.contains(p))
        .map(|p| s.pop.persons[p].id.as_str().to_string())
        .expect("someone outside NPR");
    let kpr_in = one_person(&s, "KPR-in.csv", &fnr_in);
    let kpr_out = one_person(&s, "KPR-ou.csv", &fnr_out);

    let mut researchers = Vec::new();
    for (project, kpr) in [(IN, &kpr_in), (OUT, &kpr_out)] {
        researchers.push(submit_with(&s, project, &["NPR", "KPR"]));
        approve_file(&s, project, "NPR", &s.dir.path().join("NPR.csv"));
        approve_file(&s, project, "KPR", kpr);
    }
    let mut fetched = Vec::new();
    for (project, researcher) in [IN, OUT].iter().zip(&researchers) {
        let out = s.dir.path().join(format!("{project}-delivery"));
        fetch(&s, researcher, project, &out);
        fetched.push(out);
    }
    for project in [IN, OUT] {
        for r in ["NPR", "KPR"] {
            await_phase(&s, r, project, "delivered");
        }
    }
    // Let anything still queued to the registers arrive.
    std::thread::sleep(Duration::from_secs(2));
    let seen = observed(&s, IN);
    for what in ["entries: ", "hops: ", "sent: ", "phase: delivered"] {
        assert!(
            seen.iter().any(|l| l.contains(what)),
            "the dump shows no {what:?}: {seen:#?}"
        );
    }
    assert_same("delivered", &seen, &observed(&s, OUT));
    assert!(
        seen.iter().any(|l| l.starts_with("notices: ")),
        "the registers keep the linker's phase notice"
    );

    // The researcher and the auditor see the link summary, and it differs.
    let researcher_view: Vec<String> = [IN, OUT]
        .iter()
        .zip(&researchers)
        .map(|(p, k)| mask(&status(&s, k, p, None)))
        .collect();
    assert!(
        researcher_view[0].contains("KPR: 1 matched of 1")
            && researcher_view[1].contains("KPR: 0 matched of 1"),
        "the researcher sees the link summary: {researcher_view:?}"
    );
    let audited: Vec<String> = fetched
        .iter()
        .map(|out| {
            let t = out.join("transcript.kob");
            ok(&[
                "audit",
                "verify",
                "--transcript",
                path(&t),
                "--manifest",
                path(&s.manifest),
            ]);
            mask(&ok(&[
                "audit",
                "show",
                "--transcript",
                path(&t),
                "--manifest",
                path(&s.manifest),
            ]))
        })
        .collect();
    assert!(
        audited[0].contains("1 matched of 1 persons")
            && audited[1].contains("0 matched of 1 persons"),
        "the auditor sees the link summary"
    );

    // Closing: every register shreds, and still learns nothing more.
    for (project, researcher) in [IN, OUT].iter().zip(&researchers) {
        eventually(
            &[
                "project",
                "close",
                "--manifest",
                path(&s.manifest),
                "--key",
                path(researcher),
                "--project",
                project,
            ],
            "close",
        );
    }
    for project in [IN, OUT] {
        for r in ["NPR", "KPR"] {
            await_phase(&s, r, project, "closed");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for (project, researcher) in [IN, OUT].iter().zip(&researchers) {
        // The linker's transcript records every key holder's shredding.
        while !status(&s, researcher, project, None).lines().any(|l| {
            l.contains("shredded:") && ["NPR", "KPR", "LINKER"].iter().all(|m| l.contains(m))
        }) {
            assert!(
                Instant::now() < deadline,
                "{project}: not every node shredded"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_same("closed", &observed(&s, IN), &observed(&s, OUT));
}
