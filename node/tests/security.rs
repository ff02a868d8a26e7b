//! Issue 12 attack tests at the process level: five `kobling node run`
//! processes on 127.0.0.1, driven through the `kobling` commands.
//!
//! - item 2, data minimisation: KPR's extract carries a column the order
//!   does not request, with a unique marker in every row. The delivery
//!   holds exactly `lnr` and the requested variables, and no sealed item
//!   the linker stores, opened with the researcher's key, holds a byte of
//!   the extra column.
//! - item 6 (and issue 18 item 8), shredding: the final pseudonyms and
//!   sealed blindings are read from the linker's database before the
//!   project closes; after it closes, no file of any node directory
//!   (`state.db`, `-wal`, `-shm`, keystores, scratch files) holds any of
//!   their bytes; the node's files are private.
//! - item 4, the mapping file: a person with an old number in NPR and the
//!   new one in KPR gets one lnr when NPR's node runs with `--mapping`, and
//!   `extract check --mapping` counts what the node announces.

mod common;

use std::{
    collections::BTreeSet,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aho_corasick::AhoCorasick;
use kobling_protocol::{
    bounded::BoundedBytes,
    group::WirePoint,
    ident::{IdKind, Identifier},
    seal::{decode_rows, HpkeSecretKey, SealedItem, WrappedKey},
    transcript::{decode_file, Body},
    types::{ListName, Position, ProjectId},
};
use kobling_sim::population::render_csv;

use common::{
    approve_all, check_fetched, eventually, kobling, ok, path, run_expecting_exit, setup, submit,
    Setup, MEMBERS, REGISTERS,
};

const MARKER: &str = "XMINIMISATIONMARKERX";

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Every file of every node directory, with the needles found in it.
fn scan_nodes(d: &Path, search: &AhoCorasick) -> (usize, Vec<String>) {
    let mut files = Vec::new();
    for m in MEMBERS {
        files_under(&d.join(m), &mut files);
    }
    let mut hits = Vec::new();
    for f in &files {
        let Ok(data) = std::fs::read(f) else {
            continue; // removed while scanning (a scratch file)
        };
        if let Some(m) = search.find(&data) {
            hits.push(format!(
                "{} at byte {} (needle {})",
                f.strip_prefix(d).unwrap_or(f).display(),
                m.start(),
                m.pattern().as_usize()
            ));
        }
    }
    (files.len(), hits)
}

fn researcher_hpke(key_file: &Path) -> HpkeSecretKey {
    let text = std::fs::read_to_string(key_file).expect("key file");
    let value: toml::Value = toml::from_str(&text).expect("toml");
    let hex_key = value
        .get("hpke_key")
        .and_then(|v| v.as_str())
        .expect("a researcher key");
    let bytes: [u8; 32] = hex::decode(hex_key)
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    HpkeSecretKey::from_bytes(bytes)
}

fn linker_db(d: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        d.join("LINKER").join("state.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("the linker's database")
}

#[test]
fn extra_columns_never_leave_the_register_and_closing_shreds_everything() {
    let (s, mut nodes) = setup(400);
    let d = s.dir.path().to_path_buf();
    let project = "SEC-1";
    let pid = ProjectId::new(project).expect("valid");

    // KPR's extract gets a column the order does not request.
    let mut kpr = s.pop.extract("KPR").expect("extract").clone();
    kpr.columns.push("notat");
    for (i, (_, values)) in kpr.rows.iter_mut().enumerate() {
        values.push(format!("{MARKER}{i}"));
    }
    std::fs::write(d.join("KPR.csv"), render_csv(&kpr)).expect("write");
    let requested = s.pop.extract("KPR").expect("extract").columns.len() - 1;

    let researcher = submit(&s, project);
    approve_all(&s, project);
    let out = d.join(project);
    eventually(
        &[
            "project",
            "fetch",
            "--manifest",
            path(&s.manifest),
            "--key",
            path(&researcher),
            "--project",
            project,
            "--out",
            path(&out),
        ],
        "fetch",
    );
    // Exactly lnr and the requested variables, with the ground truth's
    // values (check_fetched compares every row).
    check_fetched(&s, &out, project, &REGISTERS);
    let header = std::fs::read_to_string(out.join("KPR.csv")).expect("table");
    let header = header.lines().next().expect("header");
    let mut want = vec!["lnr"];
    want.extend(&s.pop.extract("KPR").expect("extract").columns[1..]);
    assert_eq!(header.split(',').collect::<Vec<_>>(), want);
    let mut outputs = Vec::new();
    files_under(&out, &mut outputs);
    for f in &outputs {
        let data = std::fs::read(f).expect("read");
        assert!(
            !data.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
            "{} holds the unrequested column",
            f.display()
        );
    }

    // Every sealed item of KPR the linker stores, cohort or not, opened
    // with the researcher's key: only the requested columns.
    let transcript = std::fs::read(out.join("transcript.kob")).expect("transcript");
    let (entries, _) = decode_file(&transcript).expect("decodes");
    let announcement = entries
        .iter()
        .find_map(|e| match &e.signed.statement.body {
            Body::ListAnnouncedV2(a) if a.list.as_str() == "KPR" => Some(a.clone()),
            _ => None,
        })
        .expect("KPR's announcement");
    let kpr_name = ListName::new("KPR").expect("valid");
    let content = announcement
        .content_key
        .unwrap(&researcher_hpke(&researcher), &pid, &kpr_name)
        .expect("the researcher opens the content key");
    let db = linker_db(&d);
    let mut opened = 0u64;
    {
        // One row per message of items: `le32(length) ‖ item`, in
        // position order from `first`.
        let mut stmt = db
            .prepare(
                "SELECT first, count, bytes FROM sealed_batches WHERE project = ?1 AND list = 'KPR'",
            )
            .expect("sql");
        let mut rows = stmt.query([project]).expect("query");
        while let Some(row) = rows.next().expect("row") {
            let first: i64 = row.get(0).expect("first");
            let count: i64 = row.get(1).expect("count");
            let bytes: Vec<u8> = row.get(2).expect("bytes");
            let mut rest = &bytes[..];
            for position in first..first + count {
                let (len, tail) = rest.split_first_chunk::<4>().expect("length");
                let (item, tail) = tail.split_at(u32::from_le_bytes(*len) as usize);
                rest = tail;
                let item = SealedItem(BoundedBytes::new(item.to_vec()).expect("bounded"));
                let plain = content
                    .open_item(&pid, &kpr_name, Position(position as u64), &item)
                    .expect("opens");
                assert!(!plain.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()));
                for r in decode_rows(&plain).expect("rows") {
                    assert_eq!(r.len(), requested, "only the requested columns are sealed");
                }
                opened += 1;
            }
            assert!(rest.is_empty(), "a message's row holds its items only");
        }
    }
    assert_eq!(opened, announcement.persons, "every stored item was opened");

    // Item 6: what must not survive the closure, read from the linker
    // before it.
    let mut needles: Vec<Vec<u8>> = Vec::new();
    {
        let mut stmt = db
            .prepare("SELECT bytes FROM finals WHERE project = ?1")
            .expect("sql");
        let mut rows = stmt.query([project]).expect("query");
        while let Some(row) = rows.next().expect("row") {
            let bytes: Vec<u8> = row.get(0).expect("bytes");
            let points: Vec<WirePoint> = postcard::from_bytes(&bytes).expect("points");
            needles.extend(points.iter().map(|p| p.as_bytes().to_vec()));
        }
        let mut stmt = db
            .prepare("SELECT bytes FROM blindings WHERE project = ?1")
            .expect("sql");
        let mut rows = stmt.query([project]).expect("query");
        while let Some(row) = rows.next().expect("row") {
            let bytes: Vec<u8> = row.get(0).expect("bytes");
            let wrapped: WrappedKey = postcard::from_bytes(&bytes).expect("wrapped key");
            needles.push(wrapped.enc.to_vec());
            needles.push(wrapped.ciphertext.to_vec());
        }
    }
    drop(db);
    let finals: usize = s.pop.persons.len(); // an upper bound, for the sanity check below
    assert!(
        needles.len() > REGISTERS.len() * 2 && needles.len() <= finals * 4 + 8,
        "{} needles",
        needles.len()
    );
    let search = AhoCorasick::new(&needles).expect("automaton");
    let (_, before) = scan_nodes(&d, &search);
    assert!(
        !before.is_empty(),
        "the scan finds the bytes while the project is open"
    );

    ok(&[
        "project",
        "close",
        "--manifest",
        path(&s.manifest),
        "--key",
        path(&researcher),
        "--project",
        project,
    ]);
    // The closure reaches every node; each shreds and truncates its WAL.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (files, hits) = loop {
        let (files, hits) = scan_nodes(&d, &search);
        if hits.is_empty() || Instant::now() > deadline {
            break (files, hits);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    println!("shred scan: {} needles, {files} files", needles.len());
    assert!(
        hits.is_empty(),
        "bytes of final pseudonyms or sealed blindings survive the closure (nodes running):\n{}",
        hits.join("\n")
    );
    // And after the nodes stopped (SQLite's last checkpoint on close).
    nodes.stop();
    let (_, hits) = scan_nodes(&d, &search);
    assert!(hits.is_empty(), "after stopping:\n{}", hits.join("\n"));

    // Issue 18 item 8: every node directory 0700, every file in it 0600.
    for m in MEMBERS {
        let dir = d.join(m);
        let mode = std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{m}'s directory");
        let mut files = Vec::new();
        files_under(&dir, &mut files);
        for f in files {
            let mode = std::fs::metadata(&f).expect("file").permissions().mode() & 0o077;
            assert_eq!(mode, 0, "{} is readable by others", f.display());
        }
    }
}

#[test]
fn a_node_refuses_a_directory_others_can_enter_and_an_extract_without_a_requested_variable() {
    let (s, mut nodes) = setup(50);
    nodes.kill(0);
    let npr = s.dir.path().join("NPR");
    std::fs::set_permissions(&npr, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (code, stderr) = run_expecting_exit(&nodes.start_args(0));
    assert_eq!(code, Some(2), "a clear failure: {stderr}");
    assert!(stderr.contains("chmod 700"), "{stderr}");
    std::fs::set_permissions(&npr, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    nodes.restart(0);
    std::thread::sleep(Duration::from_millis(500));
    assert!(nodes.running(0), "a private directory is accepted");

    // Issue 12 item 2: an order requesting a variable KPR's extract lacks
    // cannot be approved there (nothing is signed, nothing is sent).
    let d = s.dir.path();
    let researcher = common::researcher_key(&s, "SEC-MISSING");
    let spec = d.join("missing.toml");
    std::fs::write(
        &spec,
        "project = \"SEC-MISSING\"\ntitle = \"t\"\nlegal_basis = \"REK test\"\ncohort = \"NPR\"\n\
         expires = \"2031-12-31\"\n\n[[registers]]\nname = \"NPR\"\nvariables = []\n\n\
         [[registers]]\nname = \"KPR\"\nvariables = [\"inntekt\"]\n",
    )
    .expect("spec");
    common::authorize(&s, &spec, &researcher);
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
    let (operator, extract) = (d.join("KPR-operator-1.key"), d.join("KPR.csv"));
    let approve = [
        "project",
        "approve",
        "--manifest",
        path(&s.manifest),
        "--key",
        path(&operator),
        "--project",
        "SEC-MISSING",
        "--extract",
        path(&extract),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    let stderr = loop {
        let out = kobling(&approve);
        assert!(
            !out.status.success(),
            "an extract without a requested variable was approved"
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if stderr.contains("no column") || Instant::now() > deadline {
            break stderr;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        stderr.contains("the extract has no column inntekt"),
        "{stderr}"
    );
}

/// A valid D-number no person of the population has.
fn fresh_old_number(s: &Setup) -> Identifier {
    let taken: BTreeSet<String> = s
        .pop
        .persons
        .iter()
        .map(|p| p.id.expose().to_string())
        .collect();
    for individual in 100..500u16 {
        if let Ok(id) = Identifier::from_parts(1961, 3, 7, individual, IdKind::DNummer) {
            if !taken.contains(id.expose()) {
                return id;
            }
        }
    }
    panic!("no free D-number");
}

#[test]
fn a_person_whose_number_changed_gets_one_lnr_through_the_node_s_mapping() {
    let (s, mut nodes) = setup(400);
    let d = s.dir.path().to_path_buf();
    let project = "SEC-MAP";

    // A cohort member with rows in NPR and KPR; NPR still has their old
    // number on one row (on every row if they have one), KPR the new one.
    let npr_rows = s.pop.rows_by_person("NPR");
    let kpr_members = s.pop.members("KPR");
    let person = npr_rows
        .iter()
        .filter(|(p, _)| kpr_members.contains(p))
        .max_by_key(|(_, rows)| rows.len())
        .map(|(p, _)| *p)
        .expect("a person in NPR and KPR");
    let current = s.pop.persons[person].id;
    let old = fresh_old_number(&s);
    let mut npr = s.pop.extract("NPR").expect("extract").clone();
    let rows_of_person = npr.owners.iter().filter(|o| **o == Some(person)).count();
    let mut changed = 0;
    for (row, owner) in npr.rows.iter_mut().zip(&npr.owners) {
        if *owner == Some(person) && (changed == 0 || rows_of_person == 1) {
            row.0 = old.expose().to_string();
            changed += 1;
        }
    }
    let npr_csv = d.join("NPR.csv");
    std::fs::write(&npr_csv, render_csv(&npr)).expect("write");
    let mapping = d.join("npr-mapping.csv");
    std::fs::write(
        &mapping,
        format!("old,current\n{},{}\n", old.expose(), current.expose()),
    )
    .expect("write");
    std::fs::set_permissions(&mapping, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    // What the operator checks.
    let check = |extra: &[&str]| -> u64 {
        let mut args = vec!["extract", "check", "--json"];
        args.extend(extra);
        args.push(path(&npr_csv));
        let out = kobling(&args);
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("extract check --json");
        v["extract"]["persons"].as_u64().expect("persons")
    };
    let with_mapping = check(&["--mapping", path(&mapping)]);
    if rows_of_person > 1 {
        assert_eq!(
            check(&[]),
            with_mapping + 1,
            "the mapping merges the two numbers"
        );
    }

    // NPR's node applies the same file.
    nodes.kill(0);
    nodes.restart_with(0, &["--mapping", path(&mapping)]);

    let researcher = submit(&s, project);
    approve_all(&s, project);
    // The ground truth knows the person by their current number only: the
    // delivery matches it only if NPR's node mapped the old one.
    common::fetch_and_check(&s, &researcher, project);
    let status = ok(&[
        "project",
        "status",
        "--manifest",
        path(&s.manifest),
        "--key",
        path(&researcher),
        "--project",
        project,
    ]);
    let npr_line = status
        .lines()
        .find(|l| l.trim_start().starts_with("NPR"))
        .expect("NPR's line");
    assert!(
        npr_line.contains(&format!("{with_mapping} persons")),
        "the node announces what `extract check --mapping` counted ({with_mapping}): {npr_line}"
    );
}
