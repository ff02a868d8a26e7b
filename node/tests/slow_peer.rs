//! Issue 7: a slow, hostile member against a node process. KPR's
//! certificate (a genuine member's, taken from its keystore) opens many
//! connections to the linker, and on each as many request streams as it
//! may; every stream announces a frame of the maximum size, sends part of
//! it and stalls, and nothing is ever read back. Meanwhile a project
//! without KPR must run through the commands to the exact ground truth,
//! and the linker's resident memory (`VmRSS` of its process) must stay
//! within the bound its per-member limits give.
//!
//! ```text
//!   attacker (KPR's certificate) ══ N connections × 32 streams: [len = 32 MiB][SealedItems, part of the body]… stall ══▶ linker
//!   NPR, SSB, researcher, operators ── project SLOW-2 (no KPR) ─────────────────────────────────────────▶ linker
//! ```

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::{
    net::SocketAddr,
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use kobling_protocol::messages::MAX_FRAME;
use quinn::crypto::rustls::QuicClientConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::watch;

use common::{
    approve, approve_all, fetch_and_check, fetch_and_check_with, setup, submit, submit_with,
    MEMBERS,
};

/// Connections the attacker opens (more than a member may hold).
const CONNECTIONS: usize = 12;
/// Request streams per connection (the node's limit).
const STREAMS: usize = 32;
/// Of which this many send complete requests (`Hello`) without pause and
/// never read the replies; the others announce a full frame and stall.
const FLOOD_STREAMS: usize = 4;

/// A QUIC client configuration presenting the certificate of the keystore
/// in `keys`.
fn member_config(keys: &Path) -> quinn::ClientConfig {
    let ks = kobling_keys::Keystore::open(keys, None).expect("keystore");
    let cert = CertificateDer::from(ks.tls_cert_der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ks.tls_key_der().to_vec()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(raw::any_server())
        .with_client_auth_cert(vec![cert], key)
        .expect("client certificate");
    tls.alpn_protocols = vec![b"kobling/1".to_vec()];
    quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(tls).expect("QUIC TLS config"),
    ))
}

/// What the attack achieved.
#[derive(Debug, Default)]
struct Attack {
    /// Connections the node accepted (completed the handshake and kept).
    connected: AtomicU64,
    /// Streams opened.
    streams: AtomicU64,
    /// Body bytes the node took (written before flow control stopped us).
    bytes: AtomicU64,
    /// Complete requests the node took (their replies never read).
    requests: AtomicU64,
}

/// Attacks `linker` until `stop` turns true.
async fn attack(
    linker: SocketAddr,
    config: quinn::ClientConfig,
    report: Arc<Attack>,
    stop: watch::Receiver<bool>,
) {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("ep");
    endpoint.set_default_client_config(config);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let Ok(connecting) = endpoint.connect(linker, "kobling.invalid") else {
            continue;
        };
        let Ok(conn) = connecting.await else {
            continue;
        };
        for i in 0..STREAMS {
            let (conn, report, mut stop) = (conn.clone(), report.clone(), stop.clone());
            tasks.spawn(async move {
                if i < FLOOD_STREAMS {
                    return flood(conn, report, stop).await;
                }
                let Ok(Ok((mut send, recv))) =
                    tokio::time::timeout(Duration::from_secs(2), conn.open_bi()).await
                else {
                    return;
                };
                report.streams.fetch_add(1, Ordering::Relaxed);
                let _never_read = recv;
                // The body starts with the kind: `SealedItems` (6), a
                // member's kind whose cap is the full MAX_FRAME, so that the
                // node reads on (a kind with a smaller cap is refused on
                // its first byte).
                let mut head = (MAX_FRAME as u32).to_le_bytes().to_vec();
                head.push(6);
                if send.write_all(&head).await.is_err() {
                    return;
                }
                // Most of the body, until flow control stops us; never the
                // last byte.
                let piece = vec![0u8; 64 * 1024];
                let mut sent = 0usize;
                while sent + 1 + piece.len() < MAX_FRAME {
                    match tokio::time::timeout(Duration::from_secs(1), send.write_all(&piece)).await
                    {
                        Ok(Ok(())) => {
                            sent += piece.len();
                            report
                                .bytes
                                .fetch_add(piece.len() as u64, Ordering::Relaxed);
                        }
                        _ => break,
                    }
                }
                let _ = stop.changed().await;
                drop(send);
            });
        }
        let report = report.clone();
        let conn2 = conn.clone();
        tasks.spawn(async move {
            // Counted if the node keeps the connection past the handshake.
            tokio::time::sleep(Duration::from_millis(500)).await;
            if conn2.close_reason().is_none() {
                report.connected.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut stop = stop;
    let _ = stop.changed().await;
    tasks.abort_all();
    endpoint.close(0u32.into(), b"done");
}

/// Sends `Hello` requests on one stream, as fast as the node takes them,
/// and never reads a reply.
async fn flood(conn: quinn::Connection, report: Arc<Attack>, stop: watch::Receiver<bool>) {
    let Ok(Ok((mut send, recv))) =
        tokio::time::timeout(Duration::from_secs(2), conn.open_bi()).await
    else {
        return;
    };
    report.streams.fetch_add(1, Ordering::Relaxed);
    let _never_read = recv;
    let body = kobling_protocol::messages::encode(&kobling_protocol::messages::Message::Hello {
        version: kobling_protocol::messages::PROTOCOL_VERSION,
    });
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&body);
    let batch: Vec<u8> = frame.repeat(256);
    while !*stop.borrow() {
        match tokio::time::timeout(Duration::from_secs(1), send.write_all(&batch)).await {
            Ok(Ok(())) => {
                report.requests.fetch_add(256, Ordering::Relaxed);
            }
            Ok(Err(_)) => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
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

#[test]
fn a_slow_member_neither_stalls_other_projects_nor_grows_the_nodes_memory() {
    let (s, nodes) = setup(300);
    let linker = MEMBERS.iter().position(|m| *m == "LINKER").expect("linker");
    let linker_pid = nodes.pid(linker);
    let manifest: kobling_protocol::manifest::Manifest =
        toml::from_str(&std::fs::read_to_string(&s.manifest).expect("manifest")).expect("toml");
    let linker_addr: SocketAddr = manifest
        .linker()
        .expect("linker")
        .address
        .parse()
        .expect("addr");

    // A first project, undisturbed: the baseline.
    let started = Instant::now();
    let r1 = submit(&s, "SLOW-1");
    approve_all(&s, "SLOW-1");
    fetch_and_check(&s, &r1, "SLOW-1");
    let undisturbed = started.elapsed();
    let before = vm_rss_kib(linker_pid);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let report = Arc::new(Attack::default());
    let (stop, stopped) = watch::channel(false);
    let config = member_config(&s.dir.path().join("KPR").join("keys"));
    let attacker = rt.spawn(attack(linker_addr, config, report.clone(), stopped));
    // Let the attack take hold.
    std::thread::sleep(Duration::from_secs(5));
    let during_attack = vm_rss_kib(linker_pid);

    // A project without KPR runs while the attack holds.
    let started = Instant::now();
    let r2 = submit_with(&s, "SLOW-2", &["NPR", "SSB"]);
    approve(&s, "SLOW-2", &["NPR", "SSB"]);
    fetch_and_check_with(&s, &r2, "SLOW-2", &["NPR", "SSB"]);
    let took = started.elapsed();
    let after = vm_rss_kib(linker_pid);
    let _ = stop.send(true);
    rt.block_on(attacker).expect("attacker");

    eprintln!(
        "FIGURES linker VmRSS: {before} KiB before, {during_attack} KiB under attack, {after} KiB after \
         the second project; {} requests flooded; first project (four registers, undisturbed) {:.1}s, second (two, \
         under attack) {:.1}s; attack: {} connections kept, {} streams, {} MiB of bodies taken",
        report.requests.load(Ordering::Relaxed),
        undisturbed.as_secs_f64(),
        took.as_secs_f64(),
        report.connected.load(Ordering::Relaxed),
        report.streams.load(Ordering::Relaxed),
        report.bytes.load(Ordering::Relaxed) >> 20,
    );
    // Liveness: well within the 60 s a stalled frame may take to time out
    // (a fault-free run of the project takes a few seconds).
    assert!(took < Duration::from_secs(45), "SLOW-2 took {took:?}");
    // Memory: one member's frame budget (32 MiB) and the receive windows
    // of the connections a member may hold (4 × 8 MiB), with room for the
    // allocator. (Before per-peer limits, the same attack grew the linker
    // by 138 MiB and stalled the second project for minutes.)
    let growth_mib = during_attack.max(after).saturating_sub(before) >> 10;
    assert!(growth_mib < 112, "the linker grew by {growth_mib} MiB");
    assert!(
        report.connected.load(Ordering::Relaxed) <= 4,
        "a member holds at most 4 connections"
    );
}
