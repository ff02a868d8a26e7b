//! Issue 7 (reliability): the five-process federation of `federation.rs`
//! with every node behind a fault-injecting UDP relay
//! ([`kobling_sim::relay`]): 5% loss, 50 ms delay with jitter, reordering
//! and duplication on every datagram in both directions, and one cut of
//! every link for a few seconds while the chain is running. The project
//! must complete and deliver exactly the ground truth, as a fault-free run
//! does.
//!
//! ```text
//!  peers, CLI ──▶ relay(NPR) ──▶ NPR --listen     (manifest: the relay's address)
//!             ──▶ relay(KPR) ──▶ KPR --listen
//!             …                                    every datagram: loss, delay, reorder, dup
//!             ──▶ relay(LINKER) ──▶ LINKER --listen
//! ```
//!
//! `KOBLING_RELAY_SEED` and `KOBLING_RELAY_CUT_SECS` override the seed
//! (default 1) and the cut (default 5 s) for experiments, and
//! `KOBLING_RELAY_CLEAN=1` runs the same federation behind fault-free
//! relays (a baseline: no faults, no cut, nothing asserted about them);
//! the figures of a run (relay counters, QUIC packets sent and lost, wall
//! time) are printed.

mod common;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use kobling_sim::relay::{Faults, Relay, RelayConfig, RelayStats};

use common::{
    approve, approve_all, fetch_and_check, fetch_and_check_with, kobling, ok, path, setup,
    setup_with, submit, submit_with, NodeAddr, Nodes, Setup, MEMBERS,
};

const PERSONS: usize = 300;
/// Small chunks, so that the chain is a stream of many messages and a cut
/// lands in the middle of it.
const CHUNK_SIZE: &str = "16";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn faults() -> Faults {
    Faults {
        drop: 0.05,
        delay: Duration::from_millis(50),
        jitter: Duration::from_millis(10),
        reorder: 0.05,
        reorder_delay: Duration::from_millis(30),
        duplicate: 0.02,
    }
}

/// Where the chain is, from `kobling project status` at the linker.
#[derive(Debug, Default, PartialEq, Eq)]
struct Progress {
    announced: usize,
    hops_done: usize,
    hops_total: usize,
    linked: bool,
}

fn progress(s: &Setup, researcher: &std::path::Path, project: &str) -> Option<Progress> {
    let out = kobling(&[
        "project",
        "status",
        "--manifest",
        path(&s.manifest),
        "--key",
        path(researcher),
        "--project",
        project,
    ]);
    if !out.status.success() {
        return None; // e.g. the request was lost: ask again
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut p = Progress::default();
    for line in text.lines() {
        if let Some((_, hops)) = line.split_once("; hops ") {
            p.announced += 1;
            let (done, total) = hops.trim_end_matches(" done").split_once('/')?;
            p.hops_done += done.parse::<usize>().ok()?;
            p.hops_total += total.parse::<usize>().ok()?;
        }
        if line.contains("phase: linked") || line.contains("phase: delivered") {
            p.linked = true;
        }
    }
    Some(p)
}

/// Totals of the nodes' `connection stats` log lines (one per connection
/// and side, at its end).
#[derive(Debug, Default)]
struct QuicTotals {
    connections: u64,
    sent_packets: u64,
    lost_packets: u64,
    congestion_events: u64,
}

fn quic_totals(nodes: &Nodes) -> QuicTotals {
    let mut t = QuicTotals::default();
    for m in MEMBERS {
        let log = std::fs::read_to_string(nodes.log_path(m)).unwrap_or_default();
        for line in log.lines().filter(|l| l.contains("connection stats")) {
            let line = strip_ansi(line);
            t.connections += 1;
            for token in line.split_whitespace() {
                let Some((k, v)) = token.split_once('=') else {
                    continue;
                };
                let v: u64 = v.parse().unwrap_or(0);
                match k {
                    "sent_packets" => t.sent_packets += v,
                    "lost_packets" => t.lost_packets += v,
                    "congestion_events" => t.congestion_events += v,
                    _ => {}
                }
            }
        }
    }
    t
}

/// `line` without ANSI colour sequences (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn total(relays: &[Relay]) -> RelayStats {
    relays
        .iter()
        .map(Relay::stats)
        .fold(RelayStats::default(), |a, s| RelayStats {
            received: a.received + s.received,
            forwarded: a.forwarded + s.forwarded,
            dropped: a.dropped + s.dropped,
            cut: a.cut + s.cut,
            reordered: a.reordered + s.reordered,
            duplicated: a.duplicated + s.duplicated,
            flows: a.flows + s.flows,
        })
}

#[test]
fn a_federation_behind_lossy_relays_and_a_cut_delivers_exactly_the_ground_truth() {
    let seed = env_u64("KOBLING_RELAY_SEED", 1);
    let clean = env_u64("KOBLING_RELAY_CLEAN", 0) == 1;
    let cut = Duration::from_secs(if clean {
        0
    } else {
        env_u64("KOBLING_RELAY_CUT_SECS", 5)
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // One relay per member, in front of the port the node listens on.
    let mut relays = Vec::new();
    let mut listen = Vec::new();
    for i in 0..MEMBERS.len() {
        // The node's own socket, bound here and handed to it.
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let upstream: SocketAddr = socket.local_addr().expect("addr");
        let config = RelayConfig {
            seed: seed * 100 + i as u64,
            faults: if clean { Faults::none() } else { faults() },
            cuts: Vec::new(),
        };
        let relay = rt
            .block_on(Relay::start(
                "127.0.0.1:0".parse().expect("addr"),
                upstream,
                config,
            ))
            .expect("relay");
        relays.push(relay);
        listen.push(std::sync::Arc::new(socket));
    }
    let started = Instant::now();
    let (s, mut nodes) = setup_with(PERSONS, "info", &["--chunk-size", CHUNK_SIZE], |name| {
        let i = MEMBERS.iter().position(|m| *m == name).expect("a member");
        NodeAddr {
            advertised: relays[i].local_addr().to_string(),
            listen: None,
            socket: Some(listen[i].clone()),
        }
    });
    let researcher = submit(&s, "FAULTS-1");
    approve_all(&s, "FAULTS-1");

    // Wait until the chain is running (some list has a hop recorded, the
    // project is not linked), then cut every link.
    let deadline = Instant::now() + Duration::from_secs(180);
    let at_cut = loop {
        assert!(Instant::now() < deadline, "the chain never started");
        match progress(&s, &researcher, "FAULTS-1") {
            Some(p) if p.linked => panic!("the chain finished before the cut: {p:?}"),
            Some(p) if p.hops_done > 0 => break p,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    for r in &relays {
        r.cut(cut);
    }
    let cut_at = started.elapsed();
    std::thread::sleep(cut);
    let after_cut = progress(&s, &researcher, "FAULTS-1");

    fetch_and_check(&s, &researcher, "FAULTS-1");
    let wall = started.elapsed();
    nodes.stop();
    let stats = total(&relays);
    let quic = quic_totals(&nodes);
    eprintln!(
        "FIGURES seed={seed} persons={PERSONS} chunk={CHUNK_SIZE} wall={:.1}s cut={}s at {:.1}s \
         (progress at the cut {at_cut:?}, right after it {after_cut:?}) relays={stats:?} quic={quic:?}",
        wall.as_secs_f64(),
        cut.as_secs(),
        cut_at.as_secs_f64(),
    );
    for m in MEMBERS {
        let log = std::fs::read_to_string(nodes.log_path(m)).unwrap_or_default();
        assert!(!log.contains("panicked"), "{m} panicked");
    }
    if clean {
        return;
    }
    assert!(
        at_cut.hops_done < at_cut.hops_total || at_cut.announced < 4,
        "the cut came mid-chain: {at_cut:?}"
    );
    assert!(
        stats.dropped > 0 && stats.reordered > 0 && stats.duplicated > 0 && stats.cut > 0,
        "every kind of fault happened: {stats:?}"
    );
    assert!(quic.lost_packets > 0, "QUIC retransmitted: {quic:?}");
}

/// A member that is down delays only what is queued for it: every node
/// sends to each peer on its own (`sender.rs`), so a project without the
/// member completes, exactly, while another project's messages to it wait.
#[test]
fn a_member_that_is_down_does_not_stall_projects_it_is_not_in() {
    let (s, mut nodes) = setup(200);
    nodes.kill(MEMBERS.iter().position(|m| *m == "SSB").expect("SSB"));
    // Project A needs SSB: the linker queues its transcript entries for
    // SSB, which nobody answers.
    submit(&s, "WITH-SSB");
    approve(&s, "WITH-SSB", &["NPR", "KPR", "RESEPT"]);
    // Project B does not.
    let started = Instant::now();
    let researcher = submit_with(&s, "WITHOUT-SSB", &["NPR", "KPR"]);
    approve(&s, "WITHOUT-SSB", &["NPR", "KPR"]);
    fetch_and_check_with(&s, &researcher, "WITHOUT-SSB", &["NPR", "KPR"]);
    let took = started.elapsed();
    eprintln!(
        "FIGURES project without the down member: {:.1}s",
        took.as_secs_f64()
    );
    // A liveness bound, far above a fault-free run (about 10 s here): a
    // sender that waited on SSB (10 s connect timeout per attempt) before
    // each round of other messages needs several minutes.
    assert!(took < Duration::from_secs(90), "took {took:?}");
    let status = ok(&[
        "project",
        "status",
        "--manifest",
        path(&s.manifest),
        "--key",
        path(&s.dir.path().join("WITH-SSB-researcher.key")),
        "--project",
        "WITH-SSB",
    ]);
    assert!(
        status.contains("phase: ordered") || status.contains("phase: chaining"),
        "{status}"
    );
}
