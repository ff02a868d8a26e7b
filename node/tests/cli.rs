//! Issue 17: the command line behaves in pipes. A command whose reader
//! closes the pipe (`kobling … | head`) ends cleanly (exit 0, no panic);
//! (That a command logs only when asked is checked in `metrics.rs` and
//! `readme.rs`, where commands talk to nodes.)

mod common;

use std::process::{Command, Stdio};

use common::{path, BIN};

#[test]
fn a_closed_stdout_ends_a_command_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("k.key");
    let mut child = Command::new(BIN)
        .args(["keys", "operator", "--out", path(&key)])
        .env_remove("KOBLING_LOG")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kobling");
    // Close the read end before the command writes its result.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(key.exists(), "the command did its work");
}

#[test]
fn operators_are_added_and_removed_without_editing_the_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(d)
            .output()
            .expect("run kobling")
    };
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for (name, role) in [("NPR", "register"), ("LINKER", "linker")] {
        let entry = ok(&[
            "keys",
            "init",
            "--dir",
            name,
            "--name",
            name,
            "--address",
            "127.0.0.1:9",
            "--role",
            role,
        ]);
        std::fs::write(d.join(format!("{name}.toml")), entry).expect("write");
    }
    ok(&["manifest", "init", "--federation", "test"]);
    assert!(
        !run(&["manifest", "init", "--federation", "test"])
            .status
            .success(),
        "init does not overwrite"
    );
    ok(&["manifest", "add", "federation.toml", "--entry", "NPR.toml"]);
    ok(&[
        "manifest",
        "add",
        "federation.toml",
        "--entry",
        "LINKER.toml",
    ]);
    for k in ["a", "b", "c"] {
        let public = ok(&["keys", "operator", "--out", &format!("{k}.key")]);
        std::fs::write(d.join(format!("{k}.pub")), public).expect("write");
        ok(&[
            "manifest",
            "add",
            "federation.toml",
            "--register",
            "NPR",
            "--operator",
            k,
            "--key",
            &format!("{k}.pub"),
        ]);
    }
    ok(&[
        "manifest",
        "remove",
        "federation.toml",
        "--register",
        "NPR",
        "--key",
        "b.pub",
    ]);
    assert!(
        !run(&[
            "manifest",
            "remove",
            "federation.toml",
            "--register",
            "NPR",
            "--key",
            "b.pub"
        ])
        .status
        .success(),
        "b is gone"
    );
    let check = ok(&["manifest", "check", "federation.toml"]);
    assert!(check.contains("operators: a, c"), "{check}");
}

/// Issue 16 item 3: the operators declare the disclosure log with a flag,
/// not by editing the manifest; a second log, or one held by the linker,
/// is refused with the reason.
#[test]
fn the_disclosure_log_is_declared_with_manifest_add() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(d)
            .output()
            .expect("run kobling")
    };
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["manifest", "init", "--federation", "test"]);
    for (name, role) in [
        ("NPR", "register"),
        ("KPR", "register"),
        ("SSB", "register"),
        ("LINKER", "linker"),
    ] {
        let entry = ok(&[
            "keys",
            "init",
            "--dir",
            name,
            "--name",
            name,
            "--address",
            "127.0.0.1:9",
            "--role",
            role,
        ]);
        std::fs::write(d.join(format!("{name}.toml")), entry).expect("write");
        ok(&[
            "manifest",
            "add",
            "federation.toml",
            "--entry",
            &format!("{name}.toml"),
        ]);
    }
    let log = |domain: &str, holder: &str| {
        run(&[
            "manifest",
            "add",
            "federation.toml",
            "--domain",
            domain,
            "--holder",
            holder,
            "--disclosure-log",
        ])
    };
    let refused = log("DLOG", "LINKER");
    assert!(!refused.status.success(), "a log held by the linker");
    let said = ok(&[
        "manifest",
        "add",
        "federation.toml",
        "--domain",
        "DLOG",
        "--holder",
        "SSB",
        "--disclosure-log",
    ]);
    assert!(
        said.contains("the disclosure log DLOG held by SSB"),
        "{said}"
    );
    let second = log("DLOG2", "KPR");
    assert!(!second.status.success(), "a second log");
    let why = String::from_utf8_lossy(&second.stderr);
    assert!(why.contains("DLOG"), "{why}");
    // An ordinary domain beside it is still declared as one.
    ok(&[
        "manifest",
        "add",
        "federation.toml",
        "--domain",
        "RESEPT",
        "--holder",
        "KPR",
    ]);
    let text = std::fs::read_to_string(d.join("federation.toml")).expect("read");
    assert_eq!(
        text.matches("kind = \"disclosure-log\"").count(),
        1,
        "{text}"
    );
    // Two operators per register, so that the manifest checks whole.
    for register in ["NPR", "KPR", "SSB"] {
        for k in ["a", "b"] {
            let key = format!("{register}-{k}.key");
            let public = ok(&["keys", "operator", "--out", &key]);
            let file = format!("{register}-{k}.pub");
            std::fs::write(d.join(&file), public).expect("write");
            ok(&[
                "manifest",
                "add",
                "federation.toml",
                "--register",
                register,
                "--operator",
                k,
                "--key",
                &file,
            ]);
        }
    }
    let check = ok(&["manifest", "check", "federation.toml"]);
    assert!(check.contains("(the disclosure log)"), "{check}");
    assert_eq!(check.matches("(the disclosure log)").count(), 1, "{check}");
    assert!(check.contains("RESEPT"), "{check}");
}
