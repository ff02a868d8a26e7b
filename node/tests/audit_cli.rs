//! `kobling audit verify` and `kobling audit show` as an auditor runs them:
//! exit codes, the verdict line, the named check, the JSON report, and
//! what is never printed. The verifier's tamper suite is in
//! `tests/tests/audit.rs`.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use ed25519_dalek::SigningKey;
use kobling_node::testing::{Faults, Federation, ProjectConfig, LINKER};
use kobling_protocol::{
    manifest::Manifest,
    transcript::{encode_file, Body, Entry, SignedStatement, Trailer, Transcript},
};
use kobling_sim::population::{generate, PopulationConfig};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

const REGISTERS: [&str; 4] = ["NPR", "KPR", "SSB", "RESEPT"];

/// A real run, its files in a directory, and the keys to tamper with it.
struct Fixture {
    dir: tempfile::TempDir,
    linker: SigningKey,
    entries: Vec<Entry>,
    trailer: Trailer,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let fed = Federation::create(&dir.path().join("keys"), &REGISTERS, 42).expect("federation");
        let pop = generate(&PopulationConfig {
            persons: 600,
            seed: 7,
            cohort_share: 0.2,
            ..Default::default()
        });
        let extracts: Vec<_> = REGISTERS
            .iter()
            .map(|r| pop.extract(r).expect("extract"))
            .collect();
        let config = ProjectConfig {
            project: "AUDIT-CLI".into(),
            cohort: "NPR & KPR".into(),
            chunk_size: 64,
            seed: 11,
            faults: Faults::default(),
        };
        let (out, _net) = fed.run_v1(&extracts, &config).expect("clean run");
        let (entries, trailer) = out.transcript;
        let other = Federation::create(&dir.path().join("other-keys"), &REGISTERS, 43)
            .expect("another federation");
        write(dir.path(), "manifest.toml", toml(&fed.manifest).as_bytes());
        write(dir.path(), "other.toml", toml(&other.manifest).as_bytes());
        write(
            dir.path(),
            "transcript.kob",
            &encode_file(&entries, &trailer),
        );
        let linker = fed
            .keystore(LINKER)
            .expect("linker keystore")
            .signing_key()
            .to_bytes();
        Fixture {
            linker: SigningKey::from_bytes(&linker),
            dir,
            entries,
            trailer,
        }
    })
}

fn toml(m: &Manifest) -> String {
    toml::to_string_pretty(m).expect("manifest renders")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

impl Fixture {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Writes a tampered transcript and returns its path.
    fn tampered(&self, name: &str, entries: &[Entry], trailer: &Trailer) -> String {
        write(self.dir.path(), name, &encode_file(entries, trailer))
            .display()
            .to_string()
    }

    /// Re-chains statements as the linker would, with a new trailer.
    fn rechain(&self, statements: Vec<SignedStatement>) -> (Vec<Entry>, Trailer) {
        let mut t = Transcript::new();
        for s in statements {
            t.append(s, &self.linker);
        }
        let entries = t.into_entries();
        let trailer = Trailer::sign(&self.trailer.project, &entries, &self.linker);
        (entries, trailer)
    }

    fn find(&self, f: impl Fn(&Body) -> bool) -> usize {
        self.entries
            .iter()
            .position(|e| f(&e.signed.statement.body))
            .expect("entry")
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn kobling(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_kobling"))
        .args(args)
        .env("KOBLING_LOG", "warn")
        .output()
        .expect("run kobling");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("utf-8"),
        stderr: String::from_utf8(out.stderr).expect("utf-8"),
    }
}

fn verify(transcript: &str, manifest: &str) -> Run {
    kobling(&[
        "audit",
        "verify",
        "--transcript",
        transcript,
        "--manifest",
        manifest,
    ])
}

/// No key, digest or signature is printed whole: no run of more than 16
/// hex digits.
fn assert_no_whole_keys(text: &str) {
    let mut run = 0;
    for (i, c) in text.char_indices() {
        run = if c.is_ascii_hexdigit() { run + 1 } else { 0 };
        assert!(
            run <= 16,
            "a long hex string at byte {i}: {}",
            &text[i.saturating_sub(40)..=i]
        );
    }
}

fn last_line(s: &str) -> &str {
    s.trim_end().lines().last().unwrap_or("")
}

#[test]
fn a_clean_transcript_verifies_with_its_story_and_counts() {
    let f = fixture();
    let r = verify(&f.path("transcript.kob"), &f.path("manifest.toml"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let verdict = last_line(&r.stdout);
    assert!(
        verdict.starts_with(&format!(
            "transcript OK: project AUDIT-CLI, {} entries, 4 lists, cohort ",
            f.entries.len()
        )),
        "{verdict}"
    );
    assert!(verdict.ends_with("persons, delivered, open"), "{verdict}");
    for expected in [
        "Timeline",
        "2027-01-15T08:00:00Z",
        "researcher ordered project AUDIT-CLI",
        "NPR-operator-1 (operator of NPR) approved NPR's run order",
        "NPR announced list: ",
        "invalid identifier",
        "KPR stepped list NPR (hop 1 of 4)",
        "LINKER stepped list NPR (hop 4 of 4, the linker's final step)",
        "LINKER linked cohort NPR & KPR",
        "LINKER delivered ",
        "Lists",
        "Checks",
    ] {
        assert!(
            r.stdout.contains(expected),
            "missing {expected:?} in\n{}",
            r.stdout
        );
    }
    for check in [
        "format",
        "manifest",
        "hash-chain",
        "signatures",
        "order",
        "two-person-rule",
        "commitments",
        "hop-chain",
        "proofs",
        "link-summary",
        "delivery",
        "closure",
    ] {
        assert!(
            r.stdout
                .lines()
                .any(|l| l.split_whitespace().take(2).eq([check, "passed"])),
            "{check} not reported passed:\n{}",
            r.stdout
        );
    }
    // Counts per list: four rows with all hops done.
    assert_eq!(r.stdout.matches(" 4/4 ").count(), 4, "{}", r.stdout);
    assert_no_whole_keys(&r.stdout);
}

#[test]
fn the_json_report_lists_every_check_for_both_outcomes() {
    let f = fixture();
    let r = kobling(&[
        "audit",
        "verify",
        "--json",
        "--transcript",
        &f.path("transcript.kob"),
        "--manifest",
        &f.path("manifest.toml"),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(v["result"], "ok");
    let checks = v["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 12);
    assert!(checks.iter().all(|c| c["status"] == "passed"), "{checks:?}");
    assert_eq!(checks[0]["name"], "format");
    assert_eq!(v["summary"]["verified"], true);
    assert_eq!(v["summary"]["entries"], f.entries.len());
    assert_eq!(v["summary"]["lists"].as_array().expect("lists").len(), 4);
    assert_eq!(
        v["timeline"].as_array().expect("timeline").len(),
        f.entries.len()
    );
    assert!(v["failure"].is_null());
    assert_no_whole_keys(&r.stdout);

    // The same operator approving twice: the checks before the two-person
    // rule passed, the rule failed at the announcement, the rest not reached.
    let approvals: Vec<usize> = (0..f.entries.len())
        .filter(|&i| {
            matches!(&f.entries[i].signed.statement.body,
                Body::Approval(a) if a.register.as_str() == "KPR")
        })
        .collect();
    let announce = f.find(|b| matches!(b, Body::ListAnnounced(a) if a.list.as_str() == "KPR"));
    let mut statements: Vec<SignedStatement> = f.entries.iter().map(|e| e.signed.clone()).collect();
    statements[approvals[1]] = statements[approvals[0]].clone();
    let (entries, trailer) = f.rechain(statements);
    let path = f.tampered("json-same-operator.kob", &entries, &trailer);
    let r = kobling(&[
        "audit",
        "verify",
        "--json",
        "--transcript",
        &path,
        "--manifest",
        &f.path("manifest.toml"),
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(v["result"], "rejected");
    assert_eq!(v["failure"]["check"], "two-person-rule");
    assert_eq!(v["failure"]["entry"], announce);
    let status: Vec<(&str, &str)> = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name"),
                c["status"].as_str().expect("status"),
            )
        })
        .collect();
    assert!(
        status[..5].iter().all(|(_, s)| *s == "passed"),
        "{status:?}"
    );
    assert_eq!(status[5], ("two-person-rule", "failed"));
    assert!(
        status[6..].iter().all(|(_, s)| *s == "not-reached"),
        "{status:?}"
    );
    assert_eq!(v["checks"][5]["entry"], announce);
    assert!(v["checks"][5]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("two are required")));
    assert_eq!(v["summary"]["verified"], false);
}

#[test]
fn tampered_transcripts_exit_1_naming_the_failed_check() {
    let f = fixture();
    let manifest = f.path("manifest.toml");
    let statements: Vec<SignedStatement> = f.entries.iter().map(|e| e.signed.clone()).collect();

    // A flipped bit in the middle of an entry.
    let mut bytes = std::fs::read(f.path("transcript.kob")).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    let flipped = write(f.dir.path(), "flipped.kob", &bytes);
    let r = verify(&flipped.display().to_string(), &manifest);
    assert_eq!(r.code, 1);
    assert!(
        last_line(&r.stdout).starts_with("transcript REJECTED: hash-chain check failed at entry ")
            || last_line(&r.stdout).starts_with("transcript REJECTED: format check failed"),
        "{}",
        r.stdout
    );

    // Cut short inside an entry.
    let cut = write(f.dir.path(), "cut.kob", &bytes[..mid]);
    let r = verify(&cut.display().to_string(), &manifest);
    assert_eq!(r.code, 1);
    assert!(
        last_line(&r.stdout).starts_with("transcript REJECTED: format check failed at entry "),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("truncated"), "{}", r.stdout);

    // An entry re-signed by a key not in the manifest.
    let stranger = SigningKey::generate(&mut ChaCha20Rng::seed_from_u64(99));
    let c = f.find(|b| matches!(b, Body::Commitment(_)));
    let mut s = statements.clone();
    s[c] = s[c].statement.clone().sign(&stranger);
    let (entries, trailer) = f.rechain(s);
    let r = verify(&f.tampered("stranger.kob", &entries, &trailer), &manifest);
    assert_eq!(r.code, 1);
    assert!(
        last_line(&r.stdout).starts_with(&format!(
            "transcript REJECTED: signatures check failed at entry {c}: "
        )),
        "{}",
        r.stdout
    );

    // The second approval replaced by the first operator's.
    let approvals: Vec<usize> = (0..f.entries.len())
        .filter(|&i| matches!(&f.entries[i].signed.statement.body, Body::Approval(a) if a.register.as_str() == "SSB"))
        .collect();
    let mut s = statements.clone();
    s[approvals[1]] = s[approvals[0]].clone();
    let (entries, trailer) = f.rechain(s);
    let r = verify(
        &f.tampered("same-operator.kob", &entries, &trailer),
        &manifest,
    );
    assert_eq!(r.code, 1);
    assert!(
        last_line(&r.stdout)
            .starts_with("transcript REJECTED: two-person-rule check failed at entry "),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("two are required"), "{}", r.stdout);

    // Checked against another federation's manifest.
    let r = verify(&f.path("transcript.kob"), &f.path("other.toml"));
    assert_eq!(r.code, 1);
    assert!(
        last_line(&r.stdout).starts_with("transcript REJECTED: manifest check failed at entry 0: "),
        "{}",
        r.stdout
    );
    assert_no_whole_keys(&r.stdout);
}

#[test]
fn show_prints_every_entry_even_of_a_transcript_that_does_not_verify() {
    let f = fixture();
    let n = f.entries.len();
    let r = kobling(&["audit", "show", "--transcript", &f.path("transcript.kob")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.matches("── entry ").count(), n);
    assert!(
        r.stdout.contains("Not verified: pass --manifest"),
        "{}",
        r.stdout
    );
    for field in [
        "legal basis",
        "extract digest",
        "blinding commitment D",
        "chunk 0",
        "cohort persons",
        "selection digest",
    ] {
        assert!(r.stdout.contains(field), "missing {field}");
    }
    assert_no_whole_keys(&r.stdout);

    let r = kobling(&[
        "audit",
        "show",
        "--transcript",
        &f.path("transcript.kob"),
        "--manifest",
        &f.path("manifest.toml"),
    ]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("transcript OK"), "{}", r.stdout);
    assert!(
        r.stdout.contains("NPR-operator-2 (operator of NPR)"),
        "{}",
        r.stdout
    );

    // Against the wrong manifest: shown, and said not to verify.
    let r = kobling(&[
        "audit",
        "show",
        "--transcript",
        &f.path("transcript.kob"),
        "--manifest",
        &f.path("other.toml"),
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("DOES NOT VERIFY against manifest"),
        "{}",
        r.stdout
    );
    assert_eq!(r.stdout.matches("── entry ").count(), n);

    // A damaged file: the entries before the damage.
    let bytes = std::fs::read(f.path("transcript.kob")).expect("read");
    let cut = write(f.dir.path(), "show-cut.kob", &bytes[..bytes.len() - 200]);
    let r = kobling(&["audit", "show", "--transcript", &cut.display().to_string()]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("DAMAGED: "), "{}", r.stdout);
    let shown = r.stdout.matches("── entry ").count();
    assert!(shown > 0 && shown < n, "{shown} of {n} shown");
}

#[test]
fn unreadable_files_are_explained() {
    let f = fixture();
    let manifest = f.path("manifest.toml");

    let r = verify(&f.path("no-such-file.kob"), &manifest);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("cannot read the transcript"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());

    let r = verify(&f.path("transcript.kob"), &f.path("no-such-manifest.toml"));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("cannot read the manifest"),
        "{}",
        r.stderr
    );

    // A manifest given as the transcript.
    let r = verify(&manifest, &manifest);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("not a Kobling transcript"),
        "{}",
        r.stdout
    );
    assert!(
        last_line(&r.stdout).starts_with("transcript REJECTED: format check failed"),
        "{}",
        r.stdout
    );

    // A transcript from a future version.
    let mut bytes = std::fs::read(f.path("transcript.kob")).expect("read");
    bytes[18] = 2;
    let v2 = write(f.dir.path(), "v2.kob", &bytes);
    let r = verify(&v2.display().to_string(), &manifest);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains("unsupported transcript format version 2 (this build reads version 1)"),
        "{}",
        r.stdout
    );

    // A transcript given as the manifest.
    let r = verify(&f.path("transcript.kob"), &f.path("transcript.kob"));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("manifest"), "{}", r.stderr);
}

/// A chain v2 run (the node's default), for the auditor's words about it.
fn fixture_v2() -> &'static (tempfile::TempDir, usize) {
    static FIXTURE: OnceLock<(tempfile::TempDir, usize)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let fed = Federation::create(&dir.path().join("keys"), &REGISTERS, 44).expect("federation");
        let pop = generate(&PopulationConfig {
            persons: 400,
            seed: 9,
            cohort_share: 0.2,
            ..Default::default()
        });
        let extracts: Vec<_> = REGISTERS
            .iter()
            .map(|r| pop.extract(r).expect("extract"))
            .collect();
        let config = ProjectConfig {
            project: "AUDIT-V2".into(),
            cohort: "NPR".into(),
            chunk_size: 64,
            seed: 12,
            faults: Faults::default(),
        };
        let (out, _net) = fed.run(&extracts, &config).expect("clean run");
        let (entries, trailer) = out.transcript;
        write(dir.path(), "manifest.toml", toml(&fed.manifest).as_bytes());
        write(
            dir.path(),
            "transcript.kob",
            &encode_file(&entries, &trailer),
        );
        (dir, entries.len())
    })
}

#[test]
fn a_chain_v2_transcript_is_told_in_chain_v2_words() {
    let (dir, entries) = fixture_v2();
    let path = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let r = verify(&path("transcript.kob"), &path("manifest.toml"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let verdict = last_line(&r.stdout);
    assert!(
        verdict.starts_with(&format!(
            "transcript OK: project AUDIT-V2, {entries} entries, 4 lists, cohort "
        )),
        "{verdict}"
    );
    for expected in [
        "NPR announced list (chain v2): ",
        "NPR signed its list's output: ",
        "KPR stepped list NPR (hop 1 of 4)",
        "LINKER stepped list NPR (hop 4 of 4, the linker's final step)",
        "LINKER checked list NPR end to end: passed",
        "4 list checks (chain v2) with 12 backward-pass proofs",
    ] {
        assert!(
            r.stdout.contains(expected),
            "missing {expected:?} in\n{}",
            r.stdout
        );
    }
    assert!(!r.stdout.contains("recorded a "), "{}", r.stdout);
    // Counts per list: four rows with all hops done.
    assert_eq!(r.stdout.matches(" 4/4 ").count(), 4, "{}", r.stdout);
    assert_no_whole_keys(&r.stdout);
}
