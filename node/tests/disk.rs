//! Issue 7 (reliability): a node whose state cannot be written.
//!
//! - **Disk full.** The linker runs with a file-size limit (`ulimit -f`
//!   in a `sh -c` wrapper, `SIGXFSZ` ignored, so a write past the limit
//!   fails with `EFBIG` as on a full disk) while a project runs through it.
//!   It must log a clear error and refuse work, not crash or damage its
//!   database (`PRAGMA integrity_check`); started again without the limit
//!   it continues, and the delivery is exactly the ground truth.
//! - **Unusable state.** A register's `state.db` that cannot be opened (it
//!   is a directory; when not running as root, also a read-only state
//!   directory, `chmod 0500`) stops the node at once with a clear error and
//!   a non-zero exit; once repaired the node continues with no loss.

mod common;

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use common::{
    approve_all, fetch_and_check, run_expecting_exit, setup_with, submit, NodeAddr, Nodes,
};

const PERSONS: usize = 300;
const LINKER: usize = 4;
const NPR: usize = 0;
/// The linker's file-size limit in 512-byte blocks (`sh`'s `ulimit -f`):
/// 512 KiB, enough to start and record the order, not the whole project.
const LIMIT_BLOCKS: u32 = 1024;

fn wait_for_log(nodes: &Nodes, name: &str, what: &[&str], secs: u64) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let log = std::fs::read_to_string(nodes.log_path(name)).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| what.iter().any(|w| l.contains(w))) {
            return Some(line.to_string());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn integrity(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).expect("open state.db");
    conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .expect("integrity_check")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(true)
}

#[test]
fn a_full_disk_or_unusable_state_is_refused_cleanly_and_the_project_continues() {
    let (s, mut nodes) = setup_with(PERSONS, "warn", &["--chunk-size", "32"], |_| {
        NodeAddr::direct()
    });
    let d = s.dir.path();
    // The linker writes every transcript entry, sealed item and final
    // pseudonym: it runs out of space in the middle of the project.
    nodes.kill_and_restart_under(LINKER, &format!("trap '' XFSZ; ulimit -f {LIMIT_BLOCKS}"));
    let researcher = submit(&s, "DISK-1");
    approve_all(&s, "DISK-1");
    let line = wait_for_log(&nodes, "LINKER", &["is the disk full"], 180)
        .expect("the linker logs that it cannot write its state database");
    println!("disk full, the linker logged: {}", line.trim());
    // It refuses work but keeps running (and keeps retrying its duties).
    std::thread::sleep(Duration::from_secs(2));
    assert!(nodes.running(LINKER), "the linker crashed on a full disk");
    let linker_db = d.join("LINKER").join("state.db");
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    println!(
        "linker state at the limit: state.db {} B, state.db-wal {} B",
        size(&linker_db),
        size(&d.join("LINKER").join("state.db-wal"))
    );
    let errors = std::fs::read_to_string(nodes.log_path("LINKER"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("ERROR"))
        .count();
    nodes.kill(LINKER);
    assert_eq!(integrity(&linker_db), "ok", "the linker's database");
    println!("{errors} error lines while full; integrity_check: ok");
    nodes.restart(LINKER);

    // A register whose state cannot be opened stops at once.
    nodes.kill(NPR);
    let npr = d.join("NPR");
    let db = npr.join("state.db");
    let aside = npr.join("state.db.aside");
    std::fs::rename(&db, &aside).expect("move aside");
    std::fs::create_dir(&db).expect("a directory in its place");
    let (code, stderr) = run_expecting_exit(&nodes.start_args(NPR));
    println!("state.db a directory: exit {code:?}, {}", stderr.trim());
    assert_eq!(code, Some(2), "a clear failure: {stderr}");
    assert!(
        stderr.contains("cannot open the node's state database"),
        "{stderr}"
    );
    std::fs::remove_dir(&db).expect("rmdir");
    std::fs::rename(&aside, &db).expect("move back");
    if !is_root() {
        use std::os::unix::fs::PermissionsExt;
        let set = |mode| {
            for e in std::fs::read_dir(&npr).expect("dir") {
                let p = e.expect("entry").path();
                let state = p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("state.db"));
                if p.is_file() && state {
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & 0o600))
                        .expect("chmod");
                }
            }
            std::fs::set_permissions(&npr, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        set(0o500);
        let (code, stderr) = run_expecting_exit(&nodes.start_args(NPR));
        set(0o700);
        println!(
            "read-only state directory: exit {code:?}, {}",
            stderr.trim()
        );
        assert_ne!(code, Some(0), "{stderr}");
        assert!(
            stderr.contains("state database") || stderr.contains("keystore"),
            "{stderr}"
        );
    }
    nodes.restart(NPR);

    // Repaired: the project continues, with nothing lost.
    fetch_and_check(&s, &researcher, "DISK-1");
}
