//! `kobling-sim demo` end to end: node processes over QUIC, checked against
//! the ground truth; a second project on the same federation gets disjoint
//! lnr; an operator's own extracts work too.

use std::{
    collections::BTreeSet,
    path::Path,
    process::{Command, Output},
};

const BIN: &str = env!("CARGO_BIN_EXE_kobling-sim");

fn run_demo(out: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args([
            "demo",
            "--persons",
            "800",
            "--out",
            out.to_str().expect("utf-8"),
        ])
        .args(extra)
        .env("KOBLING_LOG", "warn")
        .output()
        .expect("run the demo")
}

fn demo(out: &Path, extra: &[&str]) -> String {
    let output = run_demo(out, extra);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn lnr_set(persons_csv: &Path) -> BTreeSet<String> {
    csv::Reader::from_path(persons_csv)
        .expect("persons.csv")
        .records()
        .map(|r| r.expect("record")[0].to_string())
        .collect()
}

#[test]
fn the_demo_runs_a_federation_and_matches_the_ground_truth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("demo");
    let first = demo(&out, &[]);
    assert!(first.contains("Ground truth: MATCH"), "{first}");
    assert!(first.contains("transcript OK"), "{first}");
    for f in [
        "federation.toml",
        "registers/NPR/extract.csv",
        "researcher/DEMO-1/NPR.csv",
        "researcher/DEMO-1/NPR.parquet",
        "researcher/DEMO-1/transcript.kob",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }

    // Again on the same federation, another project: disjoint lnr.
    let second = demo(&out, &["--project-id", "DEMO-2"]);
    assert!(
        second.contains("Reusing the federation") && second.contains("Ground truth: MATCH"),
        "{second}"
    );
    let a = lnr_set(&out.join("researcher/DEMO-1/persons.csv"));
    let b = lnr_set(&out.join("researcher/DEMO-2/persons.csv"));
    assert_eq!(a.len(), b.len());
    assert!(a.is_disjoint(&b), "two projects share lnr values");

    // A member's address taken by another program: the demo names the
    // node and its address instead of waiting for it.
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(out.join("federation.toml")).expect("manifest"))
            .expect("toml");
    let npr = manifest["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["name"].as_str() == Some("NPR"))
        .and_then(|m| m["address"].as_str())
        .expect("NPR's address")
        .to_string();
    let squatter = std::net::UdpSocket::bind(&npr).expect("take NPR's address");
    let taken = run_demo(&out, &["--project-id", "DEMO-3"]);
    drop(squatter);
    let stderr = String::from_utf8_lossy(&taken.stderr);
    assert!(!taken.status.success(), "{stderr}");
    assert!(
        stderr.contains("node NPR stopped")
            && stderr.contains(&format!("its address {npr} is taken")),
        "{stderr}"
    );

    // An operator's own extracts (here: the generated ones, copied, NPR and SSB only).
    let src = dir.path().join("own");
    for r in ["NPR", "SSB"] {
        std::fs::create_dir_all(src.join(r)).expect("dir");
        std::fs::copy(
            out.join("registers").join(r).join("extract.csv"),
            src.join(r).join("extract.csv"),
        )
        .expect("copy");
    }
    let own = demo(
        &dir.path().join("own-run"),
        &[
            "--registers",
            src.to_str().expect("utf-8"),
            "--project-id",
            "OWN-1",
        ],
    );
    assert!(
        own.contains("Using your extracts: NPR, SSB") && own.contains("transcript OK"),
        "{own}"
    );
}

#[test]
fn the_identified_demo_checks_the_citizens_rights_against_the_ground_truth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("identified");
    let said = demo(&out, &["--identified", "--project-id", "IDENT-1"]);
    for line in [
        "left out by reservation\": MATCH",
        "rows at KPR: MATCH; the portal saw none of them",
        "rows at RESEPT: MATCH; the portal saw none of them",
        "each under its registers' lnr: MATCH",
        "researcher list check signed",
        "every node shredded its key share of IDENT-1: MATCH",
        "the log lists IDENT-1: MATCH",
        "the log does not list IDENT-1: MATCH",
        "Ground truth: MATCH",
        "transcript OK",
    ] {
        assert!(said.contains(line), "missing {line:?}:\n{said}");
    }
    // The demo's ground truth for KPR leaves the reserved persons out:
    // a reserved person's row in KPR's table would have made it a
    // MISMATCH ("persons not in the cohort").
}

/// Issue 13's comparison job, written by `kobling-sim extracts` and run by
/// `bench --extracts`: two lists of N, half of them in both, linked.
#[test]
fn the_comparison_job_is_written_and_benched_on_its_extracts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = dir.path().join("job");
    let write = || {
        Command::new(BIN)
            .args(["extracts", "--persons", "400", "--out"])
            .arg(&job)
            .output()
            .expect("run extracts")
    };
    let made = write();
    assert!(made.status.success(), "{made:?}");
    for r in ["NPR", "KPR"] {
        let rows = std::fs::read_to_string(job.join(r).join("extract.csv")).expect("extract");
        let mut lines = rows.lines();
        assert_eq!(lines.next(), Some("fnr,birth_year"));
        assert_eq!(lines.count(), 400, "{r}");
    }
    let again = write();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && stderr.contains("not overwritten"),
        "{stderr}"
    );

    let bench = Command::new(BIN)
        .args([
            "bench",
            "--persons",
            "400",
            "--registers",
            "2",
            "--extracts",
            job.to_str().expect("utf-8"),
            "--out",
            dir.path().join("run").to_str().expect("utf-8"),
        ])
        .env("KOBLING_LOG", "warn")
        .output()
        .expect("run the bench");
    let stdout = String::from_utf8_lossy(&bench.stdout);
    assert!(
        bench.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&bench.stderr)
    );
    assert!(stdout.contains("\ne2e_points=800\n"), "{stdout}");
    // register, extract rows, invalid, persons, matched persons, delivered rows
    let kpr: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with("KPR "))
        .expect("KPR's line of the report")
        .split_whitespace()
        .collect();
    assert_eq!(kpr, ["KPR", "400", "<5", "400", "200", "200"], "{stdout}");
    assert!(stdout.contains("e2e_cpu_us_per_record="), "{stdout}");
}
