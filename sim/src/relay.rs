//! A fault-injecting UDP relay: put it between QUIC peers to test them on
//! a bad network.
//!
//! ```text
//!  peer A ──datagram──▶ relay.local_addr() ─┐            ┌─▶ upstream (the node's --listen address)
//!  peer B ──datagram──▶        (one flow per source: its own upstream socket)
//!                                            │  faults   │
//!  peer A ◀──────────── relay ◀──────────────┴───────────┴── replies on the flow's socket
//! ```
//!
//! A node advertises the relay's address in the manifest and listens
//! (`kobling node run --listen`) on the upstream address; everything sent
//! to it, and everything it answers, then passes the relay. Each source
//! address gets its own flow (an upstream socket), so the node sees one
//! peer per source, as without the relay.
//!
//! Every datagram, in both directions, meets the same [`Faults`]: it is
//! dropped with probability `drop`, otherwise held for `delay` plus a
//! uniform `jitter`; with probability `reorder` it is held `reorder_delay`
//! longer (so later datagrams overtake it), and with probability
//! `duplicate` it is sent twice. During a cut (scheduled in
//! [`RelayConfig::cuts`] or started with [`Relay::cut`]) the link is down:
//! datagrams that arrive, and datagrams whose delay ends, in the window are
//! dropped.
//!
//! The decisions come from a ChaCha20 generator seeded with
//! [`RelayConfig::seed`], drawn in arrival order: the same sequence of
//! datagrams meets the same faults. (Real peers' timing varies from run to
//! run, so a federation behind relays is not bit-for-bit reproducible;
//! its *outcome* must not depend on that.)
//!
//! A relay runs on the tokio runtime it was started in until it is
//! dropped. Flows are kept for the relay's lifetime (at most
//! [`MAX_FLOWS`]; datagrams from further sources are dropped).

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    io,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use rand_chacha::{
    rand_core::{Rng, SeedableRng},
    ChaCha20Rng,
};
use tokio::{
    net::UdpSocket,
    sync::mpsc,
    task::JoinSet,
    time::{sleep_until, Instant},
};

/// Flows (distinct source addresses) a relay serves.
pub const MAX_FLOWS: usize = 1024;

/// The largest datagram relayed (larger ones are cut by the socket).
const MAX_DATAGRAM: usize = 65_535;

/// What happens to each datagram.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Probability that a datagram is lost.
    pub drop: f64,
    /// Time every datagram takes through the relay.
    pub delay: Duration,
    /// Extra delay, uniform in `0..=jitter`, per datagram.
    pub jitter: Duration,
    /// Probability that a datagram is held `reorder_delay` longer, so that
    /// datagrams behind it overtake it.
    pub reorder: f64,
    /// How much longer a reordered datagram is held.
    pub reorder_delay: Duration,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
}

impl Faults {
    /// No faults: every datagram passes at once, once, in order.
    pub fn none() -> Self {
        Self::default()
    }
}

/// A window in which the link is down, counted from the relay's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    /// When the cut begins, after the relay started.
    pub after: Duration,
    /// How long it lasts.
    pub length: Duration,
}

/// A relay's configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RelayConfig {
    /// Seed of the fault decisions.
    pub seed: u64,
    /// The faults every datagram meets.
    pub faults: Faults,
    /// Scheduled cuts.
    pub cuts: Vec<Cut>,
}

/// What a relay did so far (both directions together).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Datagrams received (from either side).
    pub received: u64,
    /// Datagrams sent on (duplicates included).
    pub forwarded: u64,
    /// Datagrams lost to `drop`.
    pub dropped: u64,
    /// Datagrams lost to a cut.
    pub cut: u64,
    /// Datagrams held back by `reorder`.
    pub reordered: u64,
    /// Extra copies sent by `duplicate`.
    pub duplicated: u64,
    /// Flows (source addresses) seen.
    pub flows: u64,
}

/// A running relay; stops when dropped.
#[derive(Debug)]
pub struct Relay {
    local: SocketAddr,
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
}

impl Relay {
    /// Starts a relay listening on `listen` (e.g. `127.0.0.1:0`) and
    /// forwarding to `upstream`. Must be called inside a tokio runtime;
    /// the relay's tasks run on it.
    ///
    /// # Errors
    ///
    /// An I/O error if `listen` cannot be bound.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        config: RelayConfig,
    ) -> io::Result<Relay> {
        let front = Arc::new(UdpSocket::bind(listen).await?);
        let local = front.local_addr()?;
        let start = Instant::now();
        let (queue, scheduled) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rng: ChaCha20Rng::seed_from_u64(config.seed),
                faults: config.faults,
                cuts: config
                    .cuts
                    .iter()
                    .map(|c| (start + c.after, start + c.after + c.length))
                    .collect(),
                seq: 0,
            }),
            queue,
            counters: Counters::default(),
        });
        let mut tasks = JoinSet::new();
        tasks.spawn(deliver(scheduled, shared.clone()));
        tasks.spawn(front_loop(front, upstream, shared.clone()));
        Ok(Relay {
            local,
            shared,
            tasks,
        })
    }

    /// The address peers send to (what the manifest advertises).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Cuts the link from now for `length`.
    pub fn cut(&self, length: Duration) {
        let now = Instant::now();
        self.shared.state().cuts.push((now, now + length));
    }

    /// Whether the link is cut at this moment.
    pub fn is_cut(&self) -> bool {
        self.shared.state().is_cut(Instant::now())
    }

    /// Changes the faults from now on (e.g. heals the link).
    pub fn set_faults(&self, faults: Faults) {
        self.shared.state().faults = faults;
    }

    /// What the relay did so far.
    pub fn stats(&self) -> RelayStats {
        self.shared.counters.snapshot()
    }

    /// Stops the relay now (as dropping it does).
    pub fn stop(mut self) {
        self.tasks.abort_all();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    queue: mpsc::UnboundedSender<Scheduled>,
    counters: Counters,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is consistent whatever a panicking holder did.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides the fate of a datagram that just arrived and schedules its
    /// delivery (or not).
    fn admit(&self, bytes: Vec<u8>, socket: &Arc<UdpSocket>, to: SocketAddr) {
        let c = &self.counters;
        c.received.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut state = self.state();
        if state.is_cut(now) {
            c.cut.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let f = state.faults;
        if state.chance(f.drop) {
            c.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut delay = f.delay + state.up_to(f.jitter);
        if state.chance(f.reorder) {
            c.reordered.fetch_add(1, Ordering::Relaxed);
            delay += f.reorder_delay;
        }
        let copies = if state.chance(f.duplicate) {
            c.duplicated.fetch_add(1, Ordering::Relaxed);
            2
        } else {
            1
        };
        for copy in 0..copies {
            state.seq += 1;
            // A duplicate trails its original by up to the jitter.
            let extra = if copy == 0 {
                Duration::ZERO
            } else {
                state.up_to(f.jitter)
            };
            let item = Scheduled {
                at: now + delay + extra,
                seq: state.seq,
                socket: socket.clone(),
                to,
                bytes: bytes.clone(),
            };
            // The receiver lives as long as the relay's tasks.
            let _ = self.queue.send(item);
        }
    }
}

#[derive(Debug)]
struct State {
    rng: ChaCha20Rng,
    faults: Faults,
    /// Cut windows, `[from, to)`.
    cuts: Vec<(Instant, Instant)>,
    seq: u64,
}

impl State {
    fn is_cut(&self, now: Instant) -> bool {
        self.cuts.iter().any(|(from, to)| *from <= now && now < *to)
    }

    /// True with probability `p` (one draw whatever `p` is, so that the
    /// sequence of decisions does not depend on the knobs).
    fn chance(&mut self, p: f64) -> bool {
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        u < p
    }

    /// Uniform in `0..=max` (microsecond resolution).
    fn up_to(&mut self, max: Duration) -> Duration {
        let micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        let draw = self.rng.next_u64();
        match micros.checked_add(1) {
            Some(n) => Duration::from_micros(draw % n),
            None => Duration::from_micros(draw),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    forwarded: AtomicU64,
    dropped: AtomicU64,
    cut: AtomicU64,
    reordered: AtomicU64,
    duplicated: AtomicU64,
    flows: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> RelayStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RelayStats {
            received: get(&self.received),
            forwarded: get(&self.forwarded),
            dropped: get(&self.dropped),
            cut: get(&self.cut),
            reordered: get(&self.reordered),
            duplicated: get(&self.duplicated),
            flows: get(&self.flows),
        }
    }
}

/// A datagram waiting for its delivery time.
#[derive(Debug)]
struct Scheduled {
    at: Instant,
    seq: u64,
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    bytes: Vec<u8>,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Sends every scheduled datagram at its time, in (time, arrival) order,
/// unless the link is cut by then.
async fn deliver(mut scheduled: mpsc::UnboundedReceiver<Scheduled>, shared: Arc<Shared>) {
    let mut heap: BinaryHeap<Reverse<Scheduled>> = BinaryHeap::new();
    loop {
        let next = heap.peek().map(|Reverse(s)| s.at);
        tokio::select! {
            item = scheduled.recv() => match item {
                Some(item) => heap.push(Reverse(item)),
                None => return,
            },
            () = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                let now = Instant::now();
                while heap.peek().is_some_and(|Reverse(s)| s.at <= now) {
                    let Some(Reverse(item)) = heap.pop() else { break };
                    if shared.state().is_cut(now) {
                        shared.counters.cut.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    // A send error (e.g. nobody listening upstream yet) is a
                    // lost datagram, as on a real network.
                    if item.socket.send_to(&item.bytes, item.to).await.is_ok() {
                        shared.counters.forwarded.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// Receives from peers; each new source gets a flow: an upstream socket
/// and a task relaying the upstream's answers back to that source.
async fn front_loop(front: Arc<UdpSocket>, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut flows: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut back = JoinSet::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = match front.recv_from(&mut buf).await {
            Ok(got) => got,
            // E.g. an ICMP "port unreachable" reported on the socket: not
            // fatal for a relay.
            Err(_) => continue,
        };
        let socket = match flows.get(&from) {
            Some(s) => s.clone(),
            None if flows.len() >= MAX_FLOWS => continue,
            None => {
                let Ok(socket) = flow_socket(upstream).await else {
                    continue;
                };
                shared.counters.flows.fetch_add(1, Ordering::Relaxed);
                flows.insert(from, socket.clone());
                back.spawn(back_loop(
                    socket.clone(),
                    front.clone(),
                    from,
                    shared.clone(),
                ));
                socket
            }
        };
        shared.admit(buf[..n].to_vec(), &socket, upstream);
    }
}

/// An upstream socket for one flow, in the upstream's address family.
async fn flow_socket(upstream: SocketAddr) -> io::Result<Arc<UdpSocket>> {
    let any: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let local = if upstream.ip().is_loopback() {
        SocketAddr::new(upstream.ip(), 0)
    } else {
        any
    };
    Ok(Arc::new(UdpSocket::bind(local).await?))
}

/// Relays what the upstream answers on a flow's socket back to its source.
async fn back_loop(
    socket: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    source: SocketAddr,
    shared: Arc<Shared>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, _)) => shared.admit(buf[..n].to_vec(), &front, source),
            Err(_) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo() -> (Arc<UdpSocket>, SocketAddr) {
        let s = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
        let addr = s.local_addr().expect("addr");
        let e = s.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = e.recv_from(&mut buf).await {
                let _ = e.send_to(&buf[..n], from).await;
            }
        });
        (s, addr)
    }

    async fn client() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").await.expect("bind")
    }

    /// A relay on a free port to `upstream`, and a client connected to it.
    async fn relay_and_client(upstream: SocketAddr, config: RelayConfig) -> (Relay, UdpSocket) {
        let relay = Relay::start("127.0.0.1:0".parse().expect("addr"), upstream, config)
            .await
            .expect("relay");
        let c = client().await;
        c.connect(relay.local_addr()).await.expect("connect");
        (relay, c)
    }

    /// Receives until `quiet` passes without a datagram.
    async fn drain(socket: &UdpSocket, quiet: Duration) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 2048];
        while let Ok(Ok(n)) = tokio::time::timeout(quiet, socket.recv(&mut buf)).await {
            got.push(buf[..n].to_vec());
        }
        got
    }

    #[tokio::test]
    async fn without_faults_datagrams_pass_both_ways_in_order() {
        let (_echo, upstream) = echo().await;
        let (relay, c) = relay_and_client(upstream, RelayConfig::default()).await;
        for i in 0..50u8 {
            c.send(&[i]).await.expect("send");
        }
        let got = drain(&c, Duration::from_millis(300)).await;
        assert_eq!(got, (0..50u8).map(|i| vec![i]).collect::<Vec<_>>());
        let s = relay.stats();
        assert_eq!((s.received, s.forwarded, s.flows), (100, 100, 1));
    }

    #[tokio::test]
    async fn faults_lose_delay_reorder_and_duplicate() {
        let (_echo, upstream) = echo().await;
        let config = RelayConfig {
            seed: 7,
            faults: Faults {
                drop: 0.2,
                delay: Duration::from_millis(30),
                jitter: Duration::from_millis(5),
                reorder: 0.2,
                reorder_delay: Duration::from_millis(40),
                duplicate: 0.2,
            },
            cuts: Vec::new(),
        };
        let (relay, c) = relay_and_client(upstream, config).await;
        let mut sent_at = Vec::new();
        for i in 0..200u8 {
            sent_at.push(std::time::Instant::now());
            c.send(&[i]).await.expect("send");
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 8];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(400), c.recv(&mut buf)).await
        {
            got.push((buf[..n].to_vec(), std::time::Instant::now()));
        }
        let s = relay.stats();
        assert!(
            s.dropped > 0 && s.duplicated > 0 && s.reordered > 0,
            "{s:?}"
        );
        assert_eq!(
            s.forwarded + s.dropped,
            s.received + s.duplicated,
            "every datagram is forwarded or lost: {s:?}"
        );
        // A round trip passes the relay twice.
        let fastest = got
            .iter()
            .map(|(d, at)| at.duration_since(sent_at[usize::from(d[0])]))
            .min()
            .expect("some echoes");
        assert!(fastest >= Duration::from_millis(60), "{fastest:?}");
        let got: Vec<Vec<u8>> = got.into_iter().map(|(d, _)| d).collect();
        let seen: Vec<u8> = got.iter().map(|d| d[0]).collect();
        assert!(seen.windows(2).any(|w| w[0] > w[1]), "some reordering");
        let mut distinct = seen.clone();
        distinct.sort_unstable();
        let n = distinct.len();
        distinct.dedup();
        assert!(distinct.len() < n, "some duplicates");
        assert!(distinct.len() < 199, "some losses");
    }

    #[tokio::test]
    async fn a_cut_drops_everything_in_its_window_and_then_heals() {
        let (_echo, upstream) = echo().await;
        let (relay, c) = relay_and_client(upstream, RelayConfig::default()).await;
        relay.cut(Duration::from_millis(300));
        assert!(relay.is_cut());
        for i in 0..10u8 {
            c.send(&[i]).await.expect("send");
        }
        assert!(drain(&c, Duration::from_millis(100)).await.is_empty());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!relay.is_cut());
        c.send(&[99]).await.expect("send");
        assert_eq!(drain(&c, Duration::from_millis(200)).await, vec![vec![99]]);
        assert_eq!(relay.stats().cut, 10);
    }

    #[tokio::test]
    async fn the_same_seed_makes_the_same_decisions() {
        let decisions = |seed| {
            let mut s = State {
                rng: ChaCha20Rng::seed_from_u64(seed),
                faults: Faults::none(),
                cuts: Vec::new(),
                seq: 0,
            };
            (0..64)
                .map(|_| (s.chance(0.3), s.up_to(Duration::from_millis(9))))
                .collect::<Vec<_>>()
        };
        assert_eq!(decisions(1), decisions(1));
        assert_ne!(decisions(1), decisions(2));
    }
}
