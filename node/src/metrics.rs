//! The node's monitoring: Prometheus metrics on `GET /metrics` and a
//! health check on `GET /healthz` (`kobling node run --metrics ADDR`).
//!
//! ```text
//!  daemon handler ──request/replies──▶ Metrics (points, chunks, refusals sent)
//!  sender ──per destination──────────▶ Metrics (peer up, refusals received)
//!  ticker ──each good tick───────────▶ Metrics (last tick)
//!  GET /metrics ──▶ refresh from state.db (projects by phase, outbox depth,
//!                   hops done, database size) ──▶ text exposition format
//!  GET /healthz ──▶ 200 while the engine ticked in the last HEALTHY_TICK, else 503
//! ```
//!
//! The HTTP side is a deliberately small HTTP/1.1 responder (one request
//! per connection, a bounded request head read under a deadline, two
//! paths), so the node needs no web framework. Bind it to a loopback or
//! monitoring-network address: it has no authentication, and what it
//! shows is counts only (no identifier, no project data).

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context;
use kobling_protocol::{
    manifest::Manifest,
    project::{Phase, ProjectView},
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinSet,
};
use tracing::{debug, info, warn};

use crate::{
    daemon::{unix_now, DaemonError},
    store::Store,
};
use kobling_protocol::types::UnixTime;

/// The longest time since the last good tick for `/healthz` to answer 200
/// (a tick waits for the engine, which a long chunk step holds).
pub(crate) const HEALTHY_TICK: Duration = Duration::from_secs(60);
/// The largest request head read.
const MAX_REQUEST: usize = 4096;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Monitoring connections served at once; more wait in the backlog.
const MAX_CONNECTIONS: usize = 16;

/// The phases a project is counted in.
const PHASES: [Phase; 5] = [
    Phase::Ordered,
    Phase::Chaining,
    Phase::Linked,
    Phase::Delivered,
    Phase::Closed,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    /// `sent`: this node refused a request; `received`: a peer refused
    /// one of this node's messages.
    direction: String,
    code: String,
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

/// The node's metrics. Cheap to update from any task.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    points: Counter,
    chunks: Counter,
    requests: Counter,
    refusals: Family<RefusalLabels, Counter>,
    peer_up: Family<PeerLabels, Gauge>,
    outbox: Family<PeerLabels, Gauge>,
    projects: Family<PhaseLabels, Gauge>,
    hops_done: Gauge,
    db_bytes: Gauge,
    last_tick: Gauge,
    last_tick_secs: AtomicU64,
    dir: PathBuf,
    manifest: Arc<Manifest>,
}

impl Metrics {
    /// The metrics of the node in `dir` (its `state.db` is read at each
    /// scrape), with a series per member of `manifest`.
    pub(crate) fn new(dir: PathBuf, manifest: Arc<Manifest>) -> Self {
        let mut m = Self {
            points: Counter::default(),
            chunks: Counter::default(),
            requests: Counter::default(),
            refusals: Family::default(),
            peer_up: Family::default(),
            outbox: Family::default(),
            projects: Family::default(),
            hops_done: Gauge::default(),
            db_bytes: Gauge::default(),
            last_tick: Gauge::default(),
            last_tick_secs: AtomicU64::new(0),
            registry: Registry::default(),
            dir,
            manifest,
        };
        let registry = &mut m.registry;
        registry.register(
            "kobling_points",
            "Points received in chunks from the previous hop (rate: points per second)",
            m.points.clone(),
        );
        registry.register(
            "kobling_chunks",
            "Point chunks received from the previous hop",
            m.chunks.clone(),
        );
        registry.register(
            "kobling_requests",
            "Requests handled (from members and clients)",
            m.requests.clone(),
        );
        registry.register(
            "kobling_refusals",
            "Refusals by direction, code and peer",
            m.refusals.clone(),
        );
        registry.register(
            "kobling_peer_up",
            "1 if the last delivery attempt to the peer got an answer, 0 if not",
            m.peer_up.clone(),
        );
        registry.register(
            "kobling_outbox_messages",
            "Messages queued for the destination",
            m.outbox.clone(),
        );
        registry.register(
            "kobling_projects",
            "Projects this node holds, by phase (ordered, chaining, linked, delivered, closed)",
            m.projects.clone(),
        );
        registry.register(
            "kobling_hops_done",
            "Lists whose hop at this node is finished (over the projects with working data)",
            m.hops_done.clone(),
        );
        registry.register(
            "kobling_state_db_bytes",
            "Size of state.db with its write-ahead log",
            m.db_bytes.clone(),
        );
        registry.register(
            "kobling_last_tick_timestamp_seconds",
            "Unix time of the engine's last successful tick",
            m.last_tick.clone(),
        );
        for member in &m.manifest.members {
            let peer = PeerLabels {
                peer: member.name.to_string(),
            };
            m.outbox.get_or_create(&peer).set(0);
        }
        m
    }

    /// A request arrived from `peer` (a member's name, or `client`).
    pub(crate) fn request(&self, message: &kobling_protocol::messages::Message) {
        self.requests.inc();
        match message {
            kobling_protocol::messages::Message::Points(chunk) => {
                self.chunks.inc();
                self.points.inc_by(chunk.output.len() as u64);
            }
            kobling_protocol::messages::Message::ChunkV2 { chunk, .. } => {
                self.chunks.inc();
                self.points.inc_by(chunk.points.len() as u64);
            }
            _ => {}
        }
    }

    /// This node refused a request of `peer` with `code`.
    pub(crate) fn refused(&self, peer: &str, code: &str) {
        self.count_refusal("sent", peer, code);
    }

    /// `peer` refused a message of this node with `code`.
    pub(crate) fn refused_by(&self, peer: &str, code: &str) {
        self.count_refusal("received", peer, code);
    }

    fn count_refusal(&self, direction: &str, peer: &str, code: &str) {
        self.refusals
            .get_or_create(&RefusalLabels {
                direction: direction.into(),
                code: code.into(),
                peer: peer.into(),
            })
            .inc();
    }

    /// Whether `peer` answered the last delivery attempt.
    pub(crate) fn peer_up(&self, peer: &str, up: bool) {
        self.peer_up
            .get_or_create(&PeerLabels { peer: peer.into() })
            .set(i64::from(up));
    }

    /// The engine ticked successfully now.
    pub(crate) fn ticked(&self) {
        let now = unix_now();
        self.last_tick_secs.store(now.0, Ordering::Relaxed);
        self.last_tick.set(i64::try_from(now.0).unwrap_or(i64::MAX));
    }

    /// Whether the engine ticked within [`HEALTHY_TICK`].
    pub(crate) fn healthy(&self) -> bool {
        let last = self.last_tick_secs.load(Ordering::Relaxed);
        last > 0 && unix_now().since(UnixTime(last)) <= HEALTHY_TICK.as_secs()
    }

    /// Reads the gauges that live in the state database.
    fn refresh(&self) -> anyhow::Result<()> {
        let bytes: u64 = ["state.db", "state.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(self.dir.join(f)).ok())
            .map(|m| m.len())
            .sum();
        self.db_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        let store = Store::open(&self.dir).context("cannot open state.db")?;
        for member in &self.manifest.members {
            let peer = PeerLabels {
                peer: member.name.to_string(),
            };
            self.outbox.get_or_create(&peer).set(0);
        }
        for (dest, n) in store.outbox_depths()? {
            self.outbox
                .get_or_create(&PeerLabels { peer: dest })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.hops_done
            .set(i64::try_from(store.hops_done()?).unwrap_or(i64::MAX));
        let mut phases = [0i64; PHASES.len()];
        for project in store.projects()? {
            let entries = store.entries(&project)?;
            // A register learns the phases after the chain from notices.
            let notice = store.notice(&project)?.map(|n| n.notice.phase);
            let view = ProjectView::new(&self.manifest, &entries).with_notice(notice);
            if view.order().is_none() {
                continue;
            }
            if let Some(i) = PHASES.iter().position(|p| *p == view.phase()) {
                phases[i] += 1;
            }
        }
        for (phase, n) in PHASES.iter().zip(phases) {
            self.projects
                .get_or_create(&PhaseLabels {
                    phase: phase.as_str().into(),
                })
                .set(n);
        }
        Ok(())
    }

    /// The text exposition of every metric, refreshed.
    pub(crate) fn render(&self) -> String {
        if let Err(e) = self.refresh() {
            warn!(error = %format!("{e:#}"), "metrics: cannot read the state database");
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until `stopped` turns
/// true.
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut stopped: watch::Receiver<bool>,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "metrics on http://{addr}/metrics, health on /healthz");
    }
    let mut tasks = JoinSet::new();
    loop {
        while tasks.len() >= MAX_CONNECTIONS {
            let _ = tasks.join_next().await;
        }
        let accepted = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => accepted,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        match accepted {
            Ok((stream, peer)) => {
                let metrics = metrics.clone();
                tasks.spawn(async move {
                    if let Err(e) = respond(stream, metrics).await {
                        debug!(%peer, error = %e, "metrics request failed");
                    }
                });
            }
            Err(e) => {
                warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tasks.shutdown().await;
}

/// Binds the metrics listener.
pub(crate) async fn bind(address: &str) -> Result<TcpListener, DaemonError> {
    let addr = crate::daemon::resolve(address).await?;
    TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Metrics {
            address: addr,
            source,
        })
}

/// One request, one response, then the connection is closed.
async fn respond(mut stream: TcpStream, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request too slow"))??;
    let (status, content_type, body) = match route(&head) {
        Route::Metrics => {
            let m = metrics.clone();
            let body = tokio::task::spawn_blocking(move || m.render())
                .await
                .map_err(std::io::Error::other)?;
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
        }
        Route::Health if metrics.healthy() => ("200 OK", "text/plain", "ok\n".into()),
        Route::Health => (
            "503 Service Unavailable",
            "text/plain",
            format!(
                "the engine has not ticked in the last {} s\n",
                HEALTHY_TICK.as_secs()
            ),
        ),
        Route::NotFound => ("404 Not Found", "text/plain", "not found\n".into()),
        Route::BadMethod => ("405 Method Not Allowed", "text/plain", "only GET\n".into()),
        Route::Bad => ("400 Bad Request", "text/plain", "bad request\n".into()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads up to the end of the request head (an empty line), at most
/// [`MAX_REQUEST`] bytes.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(head);
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(head);
        }
        if head.len() > MAX_REQUEST {
            return Ok(Vec::new());
        }
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Metrics,
    Health,
    NotFound,
    BadMethod,
    Bad,
}

/// Routes a request head by its request line.
pub(crate) fn route(head: &[u8]) -> Route {
    let Some(line) = head.split(|&b| b == b'\n').next() else {
        return Route::Bad;
    };
    let Ok(line) = std::str::from_utf8(line) else {
        return Route::Bad;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::Bad;
    };
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return Route::Bad;
    }
    if method != "GET" {
        return Route::BadMethod;
    }
    match target.split('?').next() {
        Some("/metrics") => Route::Metrics,
        Some("/healthz") => Route::Health,
        _ => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_only_after_a_recent_tick_and_the_gauges_read_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Store::open(dir.path()).expect("a state database"));
        let manifest = Arc::new(Manifest {
            federation: "test".into(),
            portals: Vec::new(),
            members: Vec::new(),
            authorities: Vec::new(),
            domains: Vec::new(),
        });
        let m = Metrics::new(dir.path().to_path_buf(), manifest);
        assert!(!m.healthy(), "no tick yet");
        m.last_tick_secs.store(
            unix_now().minus(HEALTHY_TICK.as_secs() + 5).0,
            Ordering::Relaxed,
        );
        assert!(!m.healthy(), "the last tick is too old");
        m.ticked();
        assert!(m.healthy());
        let text = m.render();
        assert!(
            text.contains("kobling_projects{phase=\"ordered\"} 0"),
            "{text}"
        );
        assert!(text.contains("kobling_hops_done 0"), "{text}");
        let size = text
            .lines()
            .find_map(|l| l.strip_prefix("kobling_state_db_bytes "))
            .and_then(|v| v.parse::<u64>().ok())
            .expect("the database size");
        assert!(size > 0);
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn requests_are_routed_by_their_request_line_only() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /healthz?x=1 HTTP/1.0\r\n\r\n"), Route::Health);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::BadMethod);
        assert_eq!(route(b"GET /other HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::Bad);
        assert_eq!(route(b"\xff\xfe /metrics HTTP/1.1\r\n\r\n"), Route::Bad);
        assert_eq!(route(b""), Route::Bad);
    }
}
