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
