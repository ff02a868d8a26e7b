//! Issue 3's acceptance: five `kobling node run` processes (NPR, KPR, SSB,
//! RESEPT and a linker) on 127.0.0.1, fresh keystores and a manifest, a
//! project with cohort NPR driven only through the `kobling` commands, and
//! the fetched tables checked against the ground truth.

mod common;

use std::time::Duration;

use common::{approve_all, fetch_and_check, kobling, ok, path, setup, submit};

#[test]
fn five_node_processes_run_a_project_through_the_commands() {
    let (s, _nodes) = setup(1_200);
    let m = path(&s.manifest);
    let researcher = submit(&s, "E2E-1");
    approve_all(&s, "E2E-1");
    fetch_and_check(&s, &researcher, "E2E-1");
    let status = ok(&[
        "project",
        "status",
        "--manifest",
        m,
        "--key",
        path(&researcher),
        "--project",
        "E2E-1",
        "--watch",
    ]);
    assert!(status.contains("phase: delivered"), "{status}");

    // A researcher key nobody knows learns nothing over QUIC: asking about
    // the real project and about a made-up one, at the linker and at a
    // register, gets the very same answer.
    let stranger = s.dir.path().join("stranger.key");
    ok(&["keys", "researcher", "--out", path(&stranger)]);
    let probe = |project: &str, node: &str| {
        let out = kobling(&[
            "project",
            "status",
            "--manifest",
            m,
            "--key",
            path(&stranger),
            "--project",
            project,
            "--node",
            node,
        ]);
        assert!(!out.status.success(), "a stranger read {project} at {node}");
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("error"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace(project, "PROJECT")
            .replace(node, "NODE")
    };
    for node in ["LINKER", "NPR"] {
        let real = probe("E2E-1", node);
        assert!(real.contains("not-allowed"), "{real}");
        assert_eq!(real, probe("NO-SUCH-PROJECT", node), "at {node}");
    }

    // Close: afterwards a fetch fails with a clear message.
    ok(&[
        "project",
        "close",
        "--manifest",
        m,
        "--key",
        path(&researcher),
        "--project",
        "E2E-1",
    ]);
    let again = kobling(&[
        "project",
        "fetch",
        "--manifest",
        m,
        "--key",
        path(&researcher),
        "--project",
        "E2E-1",
        "--out",
        path(&s.dir.path().join("again")),
    ]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("closed"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn nodes_killed_during_the_chain_restart_and_finish_with_the_same_output() {
    let (s, mut nodes) = setup(3_000);
    let researcher = submit(&s, "KILL-1");
    approve_all(&s, "KILL-1");
    // The chain is running: kill a register and the linker without warning,
    // start them again from their directories, twice.
    for round in 0..2 {
        std::thread::sleep(Duration::from_millis(150 + 200 * round));
        nodes.kill_and_restart(1); // KPR
        nodes.kill_and_restart(4); // LINKER
    }
    // The delivery is exactly the ground truth, as in an uninterrupted run.
    fetch_and_check(&s, &researcher, "KILL-1");
}
