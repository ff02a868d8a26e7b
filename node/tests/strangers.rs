//! Issue 18, items 3, 4, 9 and 10: hosts nobody knows against node
//! processes. From many loopback addresses (127.0.0.0/8), strangers
//!
//! - hold idle connections (more than the clients' pool has room for),
//!   reconnecting whenever the node closes one;
//! - start handshakes they never finish (a relay lets the node's Retry
//!   through, then drops everything it sends), so that the node holds
//!   handshake slots until its deadline;
//! - send datagrams of junk;
//!
//! and meanwhile a project must run through the commands to the exact
//! ground truth (the members' chunks), an operator's `project status` at
//! its own node and the researcher's at the linker must answer, and the
//! node's log must stay within its rate limit. Then, with the nodes quiet,
//! a stranger sends 32 MiB frames of nested empty entries: each is refused
//! on its first bytes, with a fixed reason, and the linker's resident
//! memory does not grow by more than a few MiB.
//!
//! ```text
//!   127.0.0.2–41   idle connections ══▶ linker, NPR
//!   127.0.0.42–61  stalled handshakes ══▶ linker, NPR
//!   127.0.0.62–71  junk datagrams ══▶ linker, NPR
//!   127.0.0.1      members, operators, researcher ── project STRANGERS-1 ──▶ linker, NPR
//! ```

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use tokio::{net::UdpSocket, sync::watch, task::JoinSet};

use common::{
    approve_all, eventually, fetch_and_check, path, setup, submit, without_ansi, MEMBERS,
};

/// Addresses holding idle connections, and connections per address.
const IDLE_ADDRESSES: u8 = 40;
const IDLE_PER_ADDRESS: usize = 4;
/// Addresses stalling handshakes, and stalled handshakes per address (the
/// node's limit per client address is 8).
const STALL_ADDRESSES: u8 = 20;
const STALL_PER_ADDRESS: usize = 8;
/// Addresses sending junk.
const JUNK_ADDRESSES: u8 = 10;
/// The attack stops by itself after this long.
const ATTACK_LIMIT: Duration = Duration::from_secs(180);

/// A stranger's client configuration: no certificate, no keep-alives.
fn stranger_config() -> quinn::ClientConfig {
    let mut config = raw::client_config();
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(None);
    config.transport_config(Arc::new(transport));
    config
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// What the strangers achieved.
#[derive(Debug, Default)]
struct Report {
    /// Handshakes completed.
    connected: AtomicU64,
    /// Connection attempts refused (or failed) before or in the handshake.
    refused: AtomicU64,
    /// Connections the node closed after the handshake (pool full, idle).
    closed: AtomicU64,
    /// Handshakes started and left stalled.
    stalled: AtomicU64,
    /// Junk datagrams sent.
    junk: AtomicU64,
}

/// From `from`, keeps `IDLE_PER_ADDRESS` idle connections to each target,
/// reconnecting a second after the node closes one.
async fn idle(
    from: IpAddr,
    targets: Vec<SocketAddr>,
    report: Arc<Report>,
    stop: watch::Receiver<bool>,
) {
    let Ok(mut endpoint) = quinn::Endpoint::client(SocketAddr::new(from, 0)) else {
        return;
    };
    endpoint.set_default_client_config(stranger_config());
    let mut tasks = JoinSet::new();
    for target in targets {
        for _ in 0..IDLE_PER_ADDRESS {
            let (endpoint, report, stop) = (endpoint.clone(), report.clone(), stop.clone());
            tasks.spawn(async move {
                while !*stop.borrow() {
                    let attempt = match endpoint.connect(target, "kobling.invalid") {
                        Ok(c) => tokio::time::timeout(Duration::from_secs(10), c).await,
                        Err(_) => return,
                    };
                    match attempt {
                        Ok(Ok(conn)) => {
                            report.connected.fetch_add(1, Ordering::Relaxed);
                            let mut stop = stop.clone();
                            tokio::select! {
                                _ = conn.closed() => {
                                    report.closed.fetch_add(1, Ordering::Relaxed);
                                }
                                _ = stop.changed() => return,
                            }
                        }
                        _ => {
                            report.refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
    }
    let mut stop = stop;
    let _ = stop.changed().await;
    tasks.abort_all();
    endpoint.close(0u32.into(), b"");
}

/// A relay whose back socket is bound to `from`: it forwards everything
/// the client sends to `target`, and only the first datagram `target`
/// sends back (the Retry), so the handshake stalls after the node has
/// validated the address. Lives until dropped.
async fn stalling_relay(
    from: IpAddr,
    target: SocketAddr,
) -> Option<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let front = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    let back = UdpSocket::bind(SocketAddr::new(from, 0)).await.ok()?;
    back.connect(target).await.ok()?;
    let addr = front.local_addr().ok()?;
    let task = tokio::spawn(async move {
        let (mut a, mut b) = ([0u8; 2048], [0u8; 2048]);
        let mut client = None;
        let mut passed = false;
        loop {
            tokio::select! {
                r = front.recv_from(&mut a) => {
                    let Ok((n, c)) = r else { return };
                    client = Some(c);
                    let _ = back.send(&a[..n]).await;
                }
                r = back.recv(&mut b) => {
                    let Ok(n) = r else { return };
                    if let (Some(c), false) = (client, passed) {
                        passed = true;
                        let _ = front.send_to(&b[..n], c).await;
                    }
                }
            }
        }
    });
    Some((addr, task))
}

/// From `from`, keeps `STALL_PER_ADDRESS` stalled handshakes going to
/// each target, each abandoned after 6 s (longer than the node waits).
async fn stall(
    from: IpAddr,
    targets: Vec<SocketAddr>,
    report: Arc<Report>,
    stop: watch::Receiver<bool>,
) {
    let Ok(mut endpoint) = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")) else {
        return;
    };
    endpoint.set_default_client_config(stranger_config());
    let mut tasks = JoinSet::new();
    for target in targets {
        for _ in 0..STALL_PER_ADDRESS {
            let (endpoint, report, stop) = (endpoint.clone(), report.clone(), stop.clone());
            tasks.spawn(async move {
                while !*stop.borrow() {
                    let Some((relay, task)) = stalling_relay(from, target).await else {
                        return;
                    };
                    if let Ok(connecting) = endpoint.connect(relay, "kobling.invalid") {
                        report.stalled.fetch_add(1, Ordering::Relaxed);
                        let _ = tokio::time::timeout(Duration::from_secs(6), connecting).await;
                    }
                    task.abort();
                }
            });
        }
    }
    let mut stop = stop;
    let _ = stop.changed().await;
    tasks.abort_all();
    endpoint.close(0u32.into(), b"");
}

/// From `from`, sends datagrams that look like QUIC Initials (long header,
/// version 1) but are junk, ten a second to each target.
async fn junk(
    from: IpAddr,
    targets: Vec<SocketAddr>,
    report: Arc<Report>,
    stop: watch::Receiver<bool>,
) {
    let Ok(socket) = UdpSocket::bind(SocketAddr::new(from, 0)).await else {
        return;
    };
    let mut datagram = vec![0u8; 1200];
    let mut x = u32::from(match from {
        IpAddr::V4(v4) => v4.octets()[3],
        IpAddr::V6(_) => 1,
    });
    while !*stop.borrow() {
        for b in datagram.iter_mut() {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *b = (x >> 24) as u8;
        }
        datagram[..5].copy_from_slice(&[0xc0, 0, 0, 0, 1]);
        datagram[5] = 8;
        for t in &targets {
            if socket.send_to(&datagram, t).await.is_ok() {
                report.junk.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `VmRSS` of process `pid`, in KiB.
fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The soft and hard core-file limits of process `pid`.
fn core_limit(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("proc limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("core limit");
    let mut fields = line["Max core file size".len()..].split_whitespace();
    (
        fields.next().expect("soft").to_string(),
        fields.next().expect("hard").to_string(),
    )
}

/// A stranger sends a frame announcing 32 MiB of `kind`, followed by
/// nested empty entries (zero bytes: empty lists, all the way down), as
/// fast as the node takes them; returns how the node closed the
/// connection and how many bytes it took.
async fn big_frame(target: SocketAddr, kind: u8) -> (Option<(u64, Vec<u8>)>, usize) {
    let mut endpoint = quinn::Endpoint::client("127.0.0.2:0".parse().expect("addr")).expect("ep");
    endpoint.set_default_client_config(stranger_config());
    let conn = endpoint
        .connect(target, "kobling.invalid")
        .expect("connect")
        .await
        .expect("handshake");
    let (mut send, _recv) = conn.open_bi().await.expect("stream");
    let mut head = (32u32 << 20).to_le_bytes().to_vec();
    head.push(kind);
    let mut sent = 0;
    if send.write_all(&head).await.is_ok() {
        let nested = vec![0u8; 64 << 10];
        while sent < 32 << 20 {
            match tokio::time::timeout(Duration::from_secs(2), send.write_all(&nested)).await {
                Ok(Ok(())) => sent += nested.len(),
                _ => break,
            }
        }
    }
    let reason = match tokio::time::timeout(Duration::from_secs(5), conn.closed()).await {
        Ok(quinn::ConnectionError::ApplicationClosed(c)) => {
            Some((c.error_code.into_inner(), c.reason.to_vec()))
        }
        _ => None,
    };
    endpoint.close(0u32.into(), b"");
    (reason, sent)
}

#[test]
fn strangers_stop_neither_chunks_nor_status_and_big_frames_are_refused_unread() {
    let (s, nodes) = setup(200);
    let index = |name: &str| MEMBERS.iter().position(|m| *m == name).expect("member");
    let linker = index("LINKER");
    let manifest: kobling_protocol::manifest::Manifest =
        toml::from_str(&std::fs::read_to_string(&s.manifest).expect("manifest")).expect("toml");
    let addr = |name: &str| -> SocketAddr {
        manifest
            .members
            .iter()
            .find(|m| m.name.as_str() == name)
            .expect("member")
            .address
            .parse()
            .expect("addr")
    };
    let targets = vec![addr("LINKER"), addr("NPR")];

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let report = Arc::new(Report::default());
    let (stop, stopped) = watch::channel(false);
    let attack_started = Instant::now();
    for i in 0..IDLE_ADDRESSES {
        rt.spawn(idle(
            loopback(2 + i),
            targets.clone(),
            report.clone(),
            stopped.clone(),
        ));
    }
    for i in 0..STALL_ADDRESSES {
        let from = loopback(2 + IDLE_ADDRESSES + i);
        rt.spawn(stall(
            from,
            targets.clone(),
            report.clone(),
            stopped.clone(),
        ));
    }
    for i in 0..JUNK_ADDRESSES {
        let from = loopback(2 + IDLE_ADDRESSES + STALL_ADDRESSES + i);
        rt.spawn(junk(from, targets.clone(), report.clone(), stopped.clone()));
    }
    rt.spawn({
        let stop = stop.clone();
        async move {
            tokio::time::sleep(ATTACK_LIMIT).await;
            let _ = stop.send(true);
        }
    });
    // Let the flood take hold.
    std::thread::sleep(Duration::from_secs(5));

    // A project runs through while the flood holds: every member's chunks.
    let started = Instant::now();
    let researcher = submit(&s, "STRANGERS-1");
    approve_all(&s, "STRANGERS-1");
    let m = path(&s.manifest).to_string();
    let operator = s.dir.path().join("NPR-operator-1.key");
    let asked = Instant::now();
    eventually(
        &[
            "project",
            "status",
            "--manifest",
            &m,
            "--key",
            path(&operator),
            "--project",
            "STRANGERS-1",
            "--node",
            "NPR",
        ],
        "the operator's status at NPR",
    );
    let operator_status = asked.elapsed();
    fetch_and_check(&s, &researcher, "STRANGERS-1");
    let asked = Instant::now();
    eventually(
        &[
            "project",
            "status",
            "--manifest",
            &m,
            "--key",
            path(&researcher),
            "--project",
            "STRANGERS-1",
        ],
        "the researcher's status at the linker",
    );
    let researcher_status = asked.elapsed();
    let took = started.elapsed();
    // The flood goes on for at least 30 s (several of the log limit's
    // windows, and longer than a client may idle); the operator asks again
    // every few seconds, and is answered every time.
    let mut operator_again = Duration::ZERO;
    while attack_started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_secs(3));
        let asked = Instant::now();
        eventually(
            &[
                "project",
                "status",
                "--manifest",
                &m,
                "--key",
                path(&operator),
                "--project",
                "STRANGERS-1",
                "--node",
                "NPR",
            ],
            "the operator's status at NPR, again",
        );
        operator_again = operator_again.max(asked.elapsed());
    }
    let attacked = attack_started.elapsed();
    let _ = stop.send(true);
    assert!(
        attacked < ATTACK_LIMIT,
        "the project outlasted the attack: {attacked:?}"
    );

    // Secret hygiene: no node may dump core (read now that every node has
    // long been running).
    for (i, member) in MEMBERS.iter().enumerate() {
        assert_eq!(
            core_limit(nodes.pid(i)),
            ("0".into(), "0".into()),
            "{member}"
        );
    }
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let log = std::fs::read_to_string(nodes.log_path("LINKER")).expect("linker log");
    let lines = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    let handshake_lines = lines("handshake");
    let connection_lines = lines("no connection slot free") + lines("too many connections");
    eprintln!(
        "FIGURES under attack for {:.0}s: project {:.1}s, operator status {:.1}s (later: at most {:.1}s), researcher status {:.1}s; \
         strangers: {} handshakes completed, {} refused, {} closed by the node, {} handshakes stalled, {} junk datagrams; \
         linker log: {handshake_lines} handshake lines, {connection_lines} connection lines",
        attacked.as_secs_f64(),
        took.as_secs_f64(),
        operator_status.as_secs_f64(),
        operator_again.as_secs_f64(),
        researcher_status.as_secs_f64(),
        get(&report.connected),
        get(&report.refused),
        get(&report.closed),
        get(&report.stalled),
        get(&report.junk),
    );
    // The flood was real: strangers connected, filled what they could and
    // were turned away or closed, stalled handshakes and sent junk.
    assert!(get(&report.connected) >= 100, "{report:?}");
    assert!(
        get(&report.refused) + get(&report.closed) >= 50,
        "{report:?}"
    );
    assert!(get(&report.stalled) >= 200, "{report:?}");
    assert!(get(&report.junk) >= 100, "{report:?}");
    // Liveness under the flood (a quiet run of this project takes seconds).
    assert!(
        operator_status < Duration::from_secs(30),
        "{operator_status:?}"
    );
    assert!(
        researcher_status < Duration::from_secs(30),
        "{researcher_status:?}"
    );
    // The log stays within its limit: ten lines per category per ten
    // seconds (the first of a window counts what was suppressed), whatever
    // the strangers did.
    let windows = (attack_started.elapsed().as_secs() / 10 + 2) as usize;
    assert!(
        handshake_lines <= 10 * windows,
        "{handshake_lines} handshake lines"
    );
    assert!(
        connection_lines <= 10 * windows,
        "{connection_lines} connection lines"
    );
    let suppressed: u64 = log
        .lines()
        .map(without_ansi)
        .filter_map(|l| l.split("suppressed=").nth(1).map(str::to_owned))
        .filter_map(|v| {
            v.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(suppressed > 0, "the limit suppressed nothing");

    // With the nodes quiet: 32 MiB frames of nested empty entries from a
    // stranger, of a member's kind (Entries, Statement) and of a client's
    // (SubmitOrder: over a client's 1 MiB), are refused on their first
    // bytes with a fixed reason, and the linker does not grow.
    std::thread::sleep(Duration::from_secs(3));
    let linker_pid = nodes.pid(linker);
    let before = vm_rss_kib(linker_pid);
    for (kind, reason) in [
        (4u8, &b"not allowed"[..]),
        (3, b"not allowed"),
        (1, b"frame too large"),
    ] {
        let (closed, sent) = rt.block_on(big_frame(addr("LINKER"), kind));
        let (_, said) = closed.expect("the node closed the connection");
        assert_eq!(said, reason, "kind {kind}");
        assert!(sent < 4 << 20, "the node took {sent} bytes of kind {kind}");
    }
    let after = vm_rss_kib(linker_pid);
    let growth_kib = after.saturating_sub(before);
    eprintln!("FIGURES linker VmRSS {before} KiB before the big frames, {after} KiB after");
    assert!(growth_kib < 8 << 10, "the linker grew by {growth_kib} KiB");
    drop(rt);
}
