//! Issue 17: a node runs like a service. A federation of five node
//! processes runs a project; NPR is configured by a file (`--config`:
//! metrics address, JSON logs), the linker by `--metrics`, each on port 0
//! (the node binds a free port and logs it: no port race). During the run
//! `/healthz` answers 200 and `/metrics` is scraped before and after: the
//! counters move (points, chunks, refusals, hops done, projects by phase,
//! the last tick), and NPR's log is one JSON object per line. A command
//! prints only its error by default and its log lines with `-v`.

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::Command,
    time::{Duration, Instant},
};

use common::{
    approve_all, fetch_and_check, kobling, path, setup_with_each, submit, NodeAddr, Nodes, BIN,
};

/// One HTTP GET: the status code and the body.
fn get(addr: &str, target: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    write!(s, "GET {target} HTTP/1.1\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// The sum of the samples of `name` whose labels contain every one of
/// `labels` (`None`: no such sample).
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut found = None;
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        if metric == name && labels.iter().all(|l| rest.contains(l)) {
            *found.get_or_insert(0.0) += value.parse::<f64>().ok()?;
        }
    }
    found
}

fn wait_healthy(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((200, body)) = get(addr, "/healthz") {
            assert_eq!(body, "ok\n");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr}/healthz never answered 200"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The address node `name` serves its metrics on: asked for port 0, it
/// binds a free port itself, keeps it, and logs where (`metrics on
/// http://ADDR/metrics`, in its plain or JSON log). No port is picked by
/// the test and released before the node takes it.
fn metrics_address(nodes: &Nodes, name: &str) -> String {
    const MARK: &str = "metrics on http://";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(nodes.log_path(name)).unwrap_or_default();
        let found = log.lines().find_map(|line| {
            let (_, rest) = line.split_once(MARK)?;
            let (addr, _) = rest.split_once("/metrics")?;
            Some(addr.to_string())
        });
        if let Some(addr) = found {
            return addr;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never said where its metrics are:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn metrics_and_health_move_during_a_run_and_logs_can_be_json() {
    let (s, mut nodes) = setup_with_each(
        300,
        "info",
        &[],
        |_| NodeAddr::direct(),
        |name, dir| match name {
            "NPR" => {
                let config = dir.join("npr-node.toml");
                std::fs::write(
                    &config,
                    "metrics = \"127.0.0.1:0\"\nlog_format = \"json\"\n",
                )
                .expect("write the configuration");
                vec!["--config".into(), path(&config).into()]
            }
            "LINKER" => vec!["--metrics".into(), "127.0.0.1:0".into()],
            _ => Vec::new(),
        },
    );
    let npr_metrics = metrics_address(&nodes, "NPR");
    let linker_metrics = metrics_address(&nodes, "LINKER");
    wait_healthy(&npr_metrics);
    wait_healthy(&linker_metrics);
    let (code, _) = get(&linker_metrics, "/other").expect("an answer");
    assert_eq!(code, 404);
    let (code, before) = get(&linker_metrics, "/metrics").expect("metrics");
    assert_eq!(code, 200);
    let tick_before =
        sample(&before, "kobling_last_tick_timestamp_seconds", &[]).expect("last tick");
    assert!(tick_before > 1.0e9, "a Unix time: {tick_before}");
    assert_eq!(sample(&before, "kobling_points_total", &[]), Some(0.0));
    assert_eq!(
        sample(&before, "kobling_projects", &["phase=\"delivered\""]),
        Some(0.0)
    );

    // A refusal: the status of a project nobody knows, from a client.
    let researcher = s.dir.path().join("nobody.key");
    kobling(&["keys", "researcher", "--out", path(&researcher)]);
    let status = |verbose: bool| {
        let mut c = Command::new(BIN);
        if verbose {
            c.arg("-v");
        }
        c.args([
            "project",
            "status",
            "--manifest",
            path(&s.manifest),
            "--key",
            path(&researcher),
            "--project",
            "NOBODY-1",
        ])
        .env_remove("KOBLING_LOG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run kobling")
    };
    let quiet = status(false);
    assert!(!quiet.status.success(), "an unknown project is refused");
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.lines().count() == 1,
        "by default only the error:\n{stderr}"
    );
    let verbose = status(true);
    let stderr = String::from_utf8_lossy(&verbose.stderr);
    assert!(
        stderr.contains(" INFO ") && !stderr.contains('\u{1b}'),
        "-v shows info lines, without colour off a terminal:\n{stderr}"
    );

    let project = "METRICS-1";
    let key = submit(&s, project);
    approve_all(&s, project);
    fetch_and_check(&s, &key, project);
    std::thread::sleep(Duration::from_secs(1));

    let (_, after) = get(&linker_metrics, "/metrics").expect("metrics");
    let points = sample(&after, "kobling_points_total", &[]).expect("points");
    let chunks = sample(&after, "kobling_chunks_total", &[]).expect("chunks");
    assert!(
        points > 100.0 && chunks >= 4.0,
        "{points} points in {chunks} chunks"
    );
    assert!(
        sample(
            &after,
            "kobling_refusals_total",
            &["direction=\"sent\"", "peer=\"client\""]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "the refusal is counted:\n{after}"
    );
    assert_eq!(
        sample(&after, "kobling_projects", &["phase=\"delivered\""]),
        Some(1.0),
        "{after}"
    );
    assert!(sample(&after, "kobling_hops_done", &[]).expect("hops") >= 4.0);
    assert!(sample(&after, "kobling_state_db_bytes", &[]).expect("size") > 0.0);
    assert!(
        sample(&after, "kobling_last_tick_timestamp_seconds", &[]).expect("tick") > tick_before,
        "the engine ticked since"
    );
    assert!(
        sample(&after, "kobling_outbox_messages", &["peer=\"NPR\""]).is_some(),
        "outbox depth per destination"
    );

    let (_, npr) = get(&npr_metrics, "/metrics").expect("metrics");
    assert_eq!(
        sample(&npr, "kobling_peer_up", &["peer=\"LINKER\""]),
        Some(1.0),
        "NPR reached the linker:\n{npr}"
    );
    assert!(sample(&npr, "kobling_points_total", &[]).expect("points") > 0.0);
    nodes.stop();

    // NPR logged through its configuration file: one JSON object per line.
    let log = std::fs::read_to_string(nodes.log_path("NPR")).expect("NPR's log");
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "NPR logged: {log}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
}
