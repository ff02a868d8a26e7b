//! Issue 7 (reliability): no identifier leaks. A whole federation (five
//! node processes, a small population with messy rows) runs a project with
//! `KOBLING_LOG=trace` on every node and every command; then every file
//! under the federation's directory except the registers' extracts — node
//! state (SQLite database, WAL), keystores, node logs, every command's
//! stdout and stderr, the researcher's output, transcript, manifest, specs
//! and keys — is searched for
//!
//! - every identifier in the extracts: the raw CSV value (with its spaces,
//!   also the invalid ones) and the canonical 11 digits;
//! - every person's identity point `I(x)`: its 32-byte encoding, raw and as
//!   hexadecimal (lower and upper case).
//!
//! A hit names the file and line (never the identifier itself). NPR and
//! the linker log as JSON (`--log-format json`), the other nodes as text,
//! so both formats are searched.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use aho_corasick::AhoCorasick;
use kobling_protocol::ident::{Identifier, ParseOptions};
use kobling_sim::population::{generate, PopulationConfig};

use common::{
    check_fetched, path, replace_population, setup_with_each, write_spec, NodeAddr, Setup, BIN,
    REGISTERS,
};

/// The members that log as JSON.
const JSON_LOGS: [&str; 2] = ["NPR", "LINKER"];

const PERSONS: usize = 300;

/// Runs every command at `trace` and keeps its stdout and stderr in a file
/// per attempt under `dir`.
struct Recorder {
    dir: PathBuf,
    runs: usize,
}

impl Recorder {
    fn run(&mut self, args: &[&str]) -> Output {
        let out = Command::new(BIN)
            .args(args)
            .env("KOBLING_LOG", "trace")
            .output()
            .expect("run kobling");
        self.runs += 1;
        let base = self
            .dir
            .join(format!("{:04}-{}-{}", self.runs, args[0], args[1]));
        std::fs::write(base.with_extension("stdout"), &out.stdout).expect("write");
        std::fs::write(base.with_extension("stderr"), &out.stderr).expect("write");
        out
    }

    fn eventually(&mut self, args: &[&str]) -> Output {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let out = self.run(args);
            if out.status.success() {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "kobling {:?} never succeeded: {}",
                &args[..2],
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// What is searched for, and what a hit means (without the identifier).
struct Needles {
    patterns: Vec<Vec<u8>>,
    meaning: Vec<String>,
}

fn needles(s: &Setup) -> Needles {
    let mut n = Needles {
        patterns: Vec::new(),
        meaning: Vec::new(),
    };
    let mut push = |p: Vec<u8>, m: String| {
        n.patterns.push(p);
        n.meaning.push(m);
    };
    let synthetic = ParseOptions {
        allow_synthetic: true,
    };
    let mut ids = std::collections::BTreeSet::new();
    for r in REGISTERS {
        let extract = s.pop.extract(r).expect("extract");
        for (row, (raw, _)) in extract.rows.iter().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            push(
                raw.as_bytes().to_vec(),
                format!("the raw identifier of {r} row {}", row + 1),
            );
            if trimmed != raw {
                push(
                    trimmed.as_bytes().to_vec(),
                    format!("the identifier of {r} row {}", row + 1),
                );
            }
            if let Ok(id) = Identifier::parse(trimmed, synthetic) {
                ids.insert(id);
            }
        }
    }
    for p in &s.pop.persons {
        ids.insert(p.id);
    }
    for id in ids {
        let masked = id.masked();
        push(
            id.expose().as_bytes().to_vec(),
            format!("the identifier {masked}"),
        );
        let point = id.identity_point().compress().to_bytes();
        push(point.to_vec(), format!("the identity point of {masked}"));
        push(
            hex::encode(point).into_bytes(),
            format!("the identity point of {masked} in hex"),
        );
        push(
            hex::encode_upper(point).into_bytes(),
            format!("the identity point of {masked} in upper-case hex"),
        );
    }
    n
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn no_identifier_or_identity_point_in_any_log_or_file_outside_the_extracts() {
    let (mut s, mut nodes) = setup_with_each(
        PERSONS,
        "trace",
        &["--chunk-size", "32"],
        |_| NodeAddr::direct(),
        |name, _| {
            if JSON_LOGS.contains(&name) {
                vec!["--log-format".into(), "json".into()]
            } else {
                Vec::new()
            }
        },
    );
    // Messier than usual, so the invalid-row paths run too.
    replace_population(
        &mut s,
        generate(&PopulationConfig {
            persons: PERSONS,
            seed: 22,
            messy_share: 0.05,
            ..Default::default()
        }),
    );
    let d = s.dir.path().to_path_buf();
    let cli_dir = d.join("cli");
    std::fs::create_dir(&cli_dir).expect("mkdir");
    let mut cli = Recorder {
        dir: cli_dir,
        runs: 0,
    };
    let m = path(&s.manifest).to_string();
    let project = "LEAK-1";

    for r in REGISTERS {
        let extract = d.join(format!("{r}.csv"));
        let out = cli.run(&["extract", "check", path(&extract)]);
        assert_ne!(out.status.code(), Some(2), "extract check could not run");
        cli.run(&["extract", "check", "--json", path(&extract)]);
    }
    let researcher = common::researcher_key(&s, project);
    let spec = write_spec(&s, project, &REGISTERS);
    common::authorize(&s, &spec, &researcher);
    let r = path(&researcher).to_string();
    cli.eventually(&[
        "project",
        "submit",
        "--manifest",
        &m,
        "--key",
        &r,
        "--spec",
        path(&spec),
    ]);
    for reg in REGISTERS {
        for k in 1..=2 {
            let key = d.join(format!("{reg}-operator-{k}.key"));
            let extract = d.join(format!("{reg}.csv"));
            cli.eventually(&[
                "project",
                "approve",
                "--manifest",
                &m,
                "--key",
                path(&key),
                "--project",
                project,
                "--extract",
                path(&extract),
            ]);
        }
    }
    let status = [
        "project",
        "status",
        "--manifest",
        &m,
        "--key",
        &r,
        "--project",
        project,
    ];
    cli.run(&status);
    let out = d.join(project);
    cli.eventually(&[
        "project",
        "fetch",
        "--manifest",
        &m,
        "--key",
        &r,
        "--project",
        project,
        "--out",
        path(&out),
    ]);
    check_fetched(&s, &out, project, &REGISTERS);
    cli.run(&status);
    let transcript = out.join("transcript.kob");
    let verified = cli.run(&[
        "audit",
        "verify",
        "--transcript",
        path(&transcript),
        "--manifest",
        &m,
    ]);
    assert!(verified.status.success(), "the transcript verifies");
    cli.run(&["audit", "show", "--transcript", path(&transcript)]);
    cli.eventually(&[
        "project",
        "close",
        "--manifest",
        &m,
        "--key",
        &r,
        "--project",
        project,
    ]);
    // Let the closure reach every node, then stop them (SIGTERM), so their
    // last log lines and database pages are on disk.
    std::thread::sleep(Duration::from_secs(2));
    nodes.stop();

    let needles = needles(&s);
    let search = AhoCorasick::new(&needles.patterns).expect("automaton");
    let extracts: Vec<PathBuf> = REGISTERS
        .iter()
        .map(|r| d.join(format!("{r}.csv")))
        .collect();
    // The search finds what it looks for: every person of an extract.
    let npr = std::fs::read(&extracts[0]).expect("read");
    assert!(
        search.find_overlapping_iter(&npr).count() >= 2 * s.pop.members("NPR").len(),
        "the search finds the identifiers in NPR's own extract"
    );
    let mut files = Vec::new();
    files_under(&d, &mut files);
    let (mut scanned, mut bytes, mut lines, mut log_lines) = (0usize, 0usize, 0usize, 0usize);
    let mut hits = Vec::new();
    for f in &files {
        if extracts.contains(f) {
            continue;
        }
        let data = std::fs::read(f).expect("read");
        scanned += 1;
        bytes += data.len();
        let n = data.iter().filter(|&&b| b == b'\n').count();
        lines += n;
        let name = f.to_string_lossy();
        if name.ends_with(".log") || name.ends_with(".stderr") || name.ends_with(".stdout") {
            log_lines += n;
        }
        for m in search.find_overlapping_iter(&data) {
            let line = 1 + data[..m.start()].iter().filter(|&&b| b == b'\n').count();
            hits.push(format!(
                "{}:{line}: {}",
                f.strip_prefix(&d).unwrap_or(f).display(),
                needles.meaning[m.pattern().as_usize()]
            ));
        }
    }
    println!(
        "leak scan: {} patterns ({} persons), {scanned} files, {bytes} bytes, {lines} lines \
         ({log_lines} log lines), {} commands",
        needles.patterns.len(),
        s.pop.persons.len(),
        cli.runs
    );
    // The scan covered the node state, the logs and the researcher output.
    for must in [
        d.join("NPR").join("state.db"),
        d.join("LINKER").join("state.db"),
        d.join("NPR.log"),
        out.join("persons.csv"),
        out.join("transcript.kob"),
    ] {
        assert!(files.contains(&must), "{} was not scanned", must.display());
    }
    assert!(log_lines > 1000, "trace logs were captured ({log_lines})");
    // Both log formats were searched: JSON for some nodes, text for others.
    for name in ["NPR", "LINKER", "KPR"] {
        let log = std::fs::read_to_string(d.join(format!("{name}.log"))).expect("log");
        let json = log
            .lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
            .count();
        let lines = log.lines().count();
        if JSON_LOGS.contains(&name) {
            assert!(lines > 100 && json == lines, "{name} logs JSON lines");
        } else {
            assert!(lines > 100 && json == 0, "{name} logs text");
        }
    }
    hits.truncate(50);
    assert!(hits.is_empty(), "identifiers leaked:\n{}", hits.join("\n"));
}
