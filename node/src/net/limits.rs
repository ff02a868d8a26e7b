//! Per-peer limits: what one peer may hold of a node's handshakes,
//! connections, request slots and frame memory, so that a slow or hostile
//! peer delays only itself, and no number of strangers can take what the
//! members need.
//!
//! ```text
//!  datagram ─▶ Handshakes::begin (≤ `general` in progress, ≤ `per_prefix` from one
//!              │                 address or /64; members' manifest addresses may also
//!              │                 use `reserved` slots no stranger can take)
//!              ▼
//!  connection ──handshake──▶ PeerKey (member name, or a client's IPv4 address / IPv6 /64)
//!       │                        │
//!       └── Peers::admit ────────┴─▶ pool: members ≤ `max_members`, clients ≤ `max_clients`
//!                                     (full of clients: the one idle longest is closed)
//!                                  ─▶ PeerSlot (≤ `connections` per peer, else refused)
//!                                      ├─ requests: ≤ `requests` read, handled or replied at once
//!                                      └─ frames:   ≤ `frame_budget` bytes of request bodies held;
//!                                                   clients also share `clients_frame_budget`
//!
//!  read_body: the body is read in pieces of ≤ 64 KiB, each taken from the
//!  budgets *before* it is read, so an announced length costs nothing and
//!  a stalled sender holds only the bytes it actually sent.
//! ```
//!
//! Members are authenticated by their pinned certificates, so each has its
//! own limits; clients without a certificate are told apart only by their
//! address (IPv6 by its /64, which one host usually holds whole), and all
//! of them together share one frame budget and one pool of connections
//! apart from the members', so that no number of clients can take the
//! memory or the connections members need. Memory for request frames is
//! bounded by `members × frame_budget + clients_frame_budget`, whatever
//! the peers do.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv6Addr},
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use quinn::RecvStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use kobling_protocol::{
    messages::{self, Message},
    types::Name,
};

use super::frame::{FrameError, LEN_PREFIX};

/// Bytes of a frame body read (and taken from the budgets) at a time.
const PIECE: usize = 64 * 1024;

/// Who a connection's resources are counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PeerKey {
    /// A manifest member (its pinned certificate).
    Member(Name),
    /// A client without a certificate, by [`client_prefix`].
    Client(IpAddr),
}

impl PeerKey {
    /// The key of a client at `ip`.
    pub(crate) fn client(ip: IpAddr) -> Self {
        PeerKey::Client(client_prefix(ip))
    }
}

/// What a client is counted as: an IPv4 address as it is, an IPv6
/// address by its /64 (the rest of it zero), since one host is commonly
/// given a whole /64 and can pick any address in it. An IPv4-mapped IPv6
/// address counts as its IPv4 address.
pub(crate) fn client_prefix(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Handshakes in progress: a bounded number, a bounded number from one
/// client prefix, and a reserve for the addresses the manifest gives the
/// members (an address is no proof of who dials; it only decides which
/// slots a handshake may wait in, and the certificate decides the rest).
pub(crate) struct Handshakes {
    general: usize,
    reserved: usize,
    per_prefix: usize,
    member_ips: HashSet<IpAddr>,
    state: Mutex<HandshakeCount>,
}

#[derive(Default)]
struct HandshakeCount {
    general: usize,
    reserved: usize,
    by_prefix: HashMap<IpAddr, usize>,
}

/// Why a handshake was not begun.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandshakeRefusal {
    /// Every slot is taken.
    Full,
    /// The address (or /64) has as many handshakes in progress as it may.
    PerPrefix,
}

impl Handshakes {
    /// `general` slots for anyone, at most `per_prefix` of them for one
    /// client prefix, and `reserved` more for `member_ips` only.
    pub(crate) fn new(
        general: usize,
        reserved: usize,
        per_prefix: usize,
        member_ips: HashSet<IpAddr>,
    ) -> Arc<Self> {
        Arc::new(Self {
            general,
            reserved,
            per_prefix,
            member_ips: member_ips.into_iter().map(client_prefix).collect(),
            state: Mutex::new(HandshakeCount::default()),
        })
    }

    /// A slot for a handshake from `ip`, held until the handshake ends.
    pub(crate) fn begin(self: &Arc<Self>, ip: IpAddr) -> Result<HandshakeSlot, HandshakeRefusal> {
        let prefix = client_prefix(ip);
        let member_ip = self.member_ips.contains(&prefix);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let from_prefix = state.by_prefix.get(&prefix).copied().unwrap_or(0);
        if !member_ip && from_prefix >= self.per_prefix {
            return Err(HandshakeRefusal::PerPrefix);
        }
        let reserved = if state.general < self.general {
            state.general += 1;
            false
        } else if member_ip && state.reserved < self.reserved {
            state.reserved += 1;
            true
        } else {
            return Err(HandshakeRefusal::Full);
        };
        *state.by_prefix.entry(prefix).or_insert(0) += 1;
        Ok(HandshakeSlot {
            prefix,
            reserved,
            handshakes: self.clone(),
        })
    }
}

/// A handshake's slot; released when dropped.
pub(crate) struct HandshakeSlot {
    prefix: IpAddr,
    reserved: bool,
    handshakes: Arc<Handshakes>,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut state = self
            .handshakes
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.reserved {
            state.reserved = state.reserved.saturating_sub(1);
        } else {
            state.general = state.general.saturating_sub(1);
        }
        if let Some(n) = state.by_prefix.get_mut(&self.prefix) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.by_prefix.remove(&self.prefix);
            }
        }
    }
}

/// The limits of one peer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerLimits {
    /// Connections a peer may hold at once.
    pub(crate) connections: usize,
    /// Requests of a peer being read, handled or replied to at once.
    pub(crate) requests: usize,
    /// Bytes of a peer's request bodies held at once (at least
    /// `MAX_FRAME`, so that one largest frame fits).
    pub(crate) frame_budget: usize,
}

/// How many connections the members together, and the clients together,
/// may hold.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pools {
    /// Connections of all members together.
    pub(crate) members: usize,
    /// Connections of all clients together.
    pub(crate) clients: usize,
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AdmitRefusal {
    /// The peer holds as many connections as it may.
    PerPeer,
    /// The pool of its kind (members or clients) is full, and no client
    /// connection is idle to make room.
    Pool,
}

/// Closes a connection (to evict an idle client).
pub(crate) type Closer = Box<dyn Fn() + Send + Sync>;

/// The table of peers with connections.
pub(crate) struct Peers {
    member: PeerLimits,
    client: PeerLimits,
    pools: Pools,
    clients_frames: Arc<Semaphore>,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    peers: HashMap<PeerKey, Entry>,
    members: usize,
    clients: usize,
    next_id: u64,
    /// Every client connection, for evicting the one idle longest.
    client_conns: HashMap<u64, ClientConn>,
}

struct Entry {
    connections: usize,
    requests: Arc<Semaphore>,
    frames: Arc<Semaphore>,
}

struct ClientConn {
    activity: Arc<Activity>,
    close: Closer,
}

/// Whether a connection has requests in hand, and since when it has none.
#[derive(Debug)]
pub(crate) struct Activity(Mutex<ActivityState>);

#[derive(Debug)]
struct ActivityState {
    in_hand: usize,
    idle_since: Instant,
}

impl Activity {
    fn new() -> Self {
        Self(Mutex::new(ActivityState {
            in_hand: 0,
            idle_since: Instant::now(),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request stream began.
    pub(crate) fn busy(&self) {
        self.state().in_hand += 1;
    }

    /// A request stream ended.
    pub(crate) fn done(&self) {
        let mut s = self.state();
        s.in_hand = s.in_hand.saturating_sub(1);
        if s.in_hand == 0 {
            s.idle_since = Instant::now();
        }
    }

    /// Since when the connection has had no stream in hand, if it has
    /// none.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        let s = self.state();
        (s.in_hand == 0).then_some(s.idle_since)
    }
}

impl Peers {
    /// A table with `member` limits per member, `client` limits per client
    /// prefix ([`client_prefix`]), connections limited by `pools`, and
    /// `clients_frame_budget` bytes of request bodies for all clients
    /// together.
    pub(crate) fn new(
        member: PeerLimits,
        client: PeerLimits,
        pools: Pools,
        clients_frame_budget: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            member,
            client,
            pools,
            clients_frames: Arc::new(Semaphore::new(clients_frame_budget)),
            table: Mutex::new(Table::default()),
        })
    }

    /// A slot for a new connection of `key` (`close` closes it, should it
    /// be evicted while idle).
    ///
    /// A member is refused if it holds as many connections as it may, or
    /// the members' pool is full. So is a client, except that when the
    /// clients' pool is full the client connection idle longest (no
    /// request in hand) is closed to make room: idle connections cannot
    /// keep anyone out.
    ///
    /// # Errors
    ///
    /// [`AdmitRefusal`].
    pub(crate) fn admit(
        self: &Arc<Self>,
        key: PeerKey,
        close: Closer,
    ) -> Result<PeerSlot, AdmitRefusal> {
        let (limits, client) = match key {
            PeerKey::Member(_) => (self.member, false),
            PeerKey::Client(_) => (self.client, true),
        };
        let mut guard = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let table = &mut *guard;
        if table.peers.get(&key).map_or(0, |e| e.connections) >= limits.connections {
            return Err(AdmitRefusal::PerPeer);
        }
        if client {
            if table.clients >= self.pools.clients {
                table.evict_idlest_client()?;
            }
        } else if table.members >= self.pools.members {
            return Err(AdmitRefusal::Pool);
        }
        let entry = table.peers.entry(key.clone()).or_insert_with(|| Entry {
            connections: 0,
            requests: Arc::new(Semaphore::new(limits.requests.max(1))),
            frames: Arc::new(Semaphore::new(limits.frame_budget)),
        });
        entry.connections += 1;
        let (requests, frames) = (entry.requests.clone(), entry.frames.clone());
        let activity = Arc::new(Activity::new());
        let id = table.next_id;
        table.next_id += 1;
        if client {
            table.clients += 1;
            table.client_conns.insert(
                id,
                ClientConn {
                    activity: activity.clone(),
                    close,
                },
            );
        } else {
            table.members += 1;
        }
        Ok(PeerSlot {
            requests,
            frames,
            clients: client.then(|| self.clients_frames.clone()),
            key,
            id,
            activity,
            peers: self.clone(),
        })
    }

    /// Connections held: members', clients'.
    #[cfg(test)]
    pub(crate) fn held(&self) -> (usize, usize) {
        let t = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        (t.members, t.clients)
    }
}

impl Table {
    /// Closes the client connection idle longest and frees its place at
    /// once (its task, ending, finds it gone).
    fn evict_idlest_client(&mut self) -> Result<(), AdmitRefusal> {
        let (&id, _) = self
            .client_conns
            .iter()
            .filter_map(|(id, c)| c.activity.idle_since().map(|t| (id, t)))
            .min_by_key(|(_, t)| *t)
            .ok_or(AdmitRefusal::Pool)?;
        if let Some(c) = self.client_conns.remove(&id) {
            (c.close)();
        }
        self.clients = self.clients.saturating_sub(1);
        Ok(())
    }
}

/// One connection's share of its peer's limits; released when dropped.
pub(crate) struct PeerSlot {
    key: PeerKey,
    id: u64,
    activity: Arc<Activity>,
    requests: Arc<Semaphore>,
    frames: Arc<Semaphore>,
    clients: Option<Arc<Semaphore>>,
    peers: Arc<Peers>,
}

impl PeerSlot {
    /// The connection's activity (streams in hand), which decides which
    /// idle client is evicted first.
    pub(crate) fn activity(&self) -> &Activity {
        &self.activity
    }

    /// Waits for one of the peer's request slots.
    pub(crate) async fn request(&self) -> Option<OwnedSemaphorePermit> {
        self.requests.clone().acquire_owned().await.ok()
    }

    /// Reads the rest of a frame body of `len` bytes whose first bytes,
    /// `head`, were read already (to learn its kind, see
    /// [`super::frame::read_kind`]), within the budgets, and decodes it.
    /// The returned permits hold the body's bytes until dropped (after the
    /// reply is sent).
    ///
    /// # Errors
    ///
    /// As [`super::frame::read_body`].
    pub(crate) async fn read_body(
        &self,
        recv: &mut RecvStream,
        len: usize,
        head: &[u8],
    ) -> Result<(Vec<OwnedSemaphorePermit>, Message), FrameError> {
        let mut held = Vec::new();
        let mut body = Vec::with_capacity(len.min(PIECE));
        body.extend_from_slice(&head[..head.len().min(len)]);
        while body.len() < len {
            let piece = (len - body.len()).min(PIECE);
            // `piece` ≤ 64 KiB and every budget holds at least that.
            let n = u32::try_from(piece).unwrap_or(u32::MAX);
            match self.frames.clone().acquire_many_owned(n).await {
                Ok(p) => held.push(p),
                Err(_) => return Err(closed()),
            }
            if let Some(clients) = &self.clients {
                match clients.clone().acquire_many_owned(n).await {
                    Ok(p) => held.push(p),
                    Err(_) => return Err(closed()),
                }
            }
            let start = body.len();
            body.resize(start + piece, 0);
            let mut filled = start;
            while filled < start + piece {
                match recv.read(&mut body[filled..start + piece]).await {
                    Ok(Some(n)) => filled += n,
                    Ok(None) => {
                        return Err(FrameError::Truncated {
                            expected: (LEN_PREFIX + len) as u64,
                            got: (LEN_PREFIX + filled) as u64,
                        })
                    }
                    Err(e) => return Err(FrameError::Io(e.into())),
                }
            }
        }
        Ok((held, messages::decode(&body)?))
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut guard = self
            .peers
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let table = &mut *guard;
        if let Some(entry) = table.peers.get_mut(&self.key) {
            entry.connections = entry.connections.saturating_sub(1);
            if entry.connections == 0 {
                table.peers.remove(&self.key);
            }
        }
        match self.key {
            PeerKey::Member(_) => table.members = table.members.saturating_sub(1),
            // An evicted client's place was freed when it was evicted.
            PeerKey::Client(_) => {
                if table.client_conns.remove(&self.id).is_some() {
                    table.clients = table.clients.saturating_sub(1);
                }
            }
        }
    }
}

fn closed() -> FrameError {
    FrameError::Io(std::io::Error::other("the server is shutting down"))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn limits() -> PeerLimits {
        PeerLimits {
            connections: 2,
            requests: 3,
            frame_budget: 1 << 20,
        }
    }

    fn pools(members: usize, clients: usize) -> Pools {
        Pools { members, clients }
    }

    fn never() -> Closer {
        Box::new(|| {})
    }

    fn member(s: &str) -> PeerKey {
        PeerKey::Member(Name::new(s).expect("valid"))
    }

    fn client(s: &str) -> PeerKey {
        PeerKey::client(s.parse().expect("address"))
    }

    #[test]
    fn connections_are_counted_per_peer_and_released() {
        let peers = Peers::new(limits(), limits(), pools(64, 64), 1 << 20);
        let kpr = member("KPR");
        let a = peers.admit(kpr.clone(), never()).expect("first");
        let b = peers.admit(kpr.clone(), never()).expect("second");
        assert_eq!(
            peers.admit(kpr.clone(), never()).err(),
            Some(AdmitRefusal::PerPeer),
            "a third is refused"
        );
        assert!(
            peers.admit(member("NPR"), never()).is_ok(),
            "another peer is not affected"
        );
        drop(a);
        let c = peers.admit(kpr.clone(), never()).expect("room again");
        drop((b, c));
        let t = peers.table.lock().expect("lock");
        assert!(!t.peers.contains_key(&kpr));
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            client_prefix("2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().expect("ip")),
            "2001:db8:1:2::".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(
            client_prefix("::ffff:192.0.2.7".parse().expect("ip")),
            "192.0.2.7".parse::<IpAddr>().expect("ip")
        );
        let peers = Peers::new(limits(), limits(), pools(64, 64), 1 << 20);
        let _a = peers
            .admit(client("2001:db8:1:2::1"), never())
            .expect("first");
        let _b = peers
            .admit(client("2001:db8:1:2:ffff::9"), never())
            .expect("second");
        assert_eq!(
            peers
                .admit(client("2001:db8:1:2:1234:5678:9abc:def0"), never())
                .err(),
            Some(AdmitRefusal::PerPeer),
            "a third address in the same /64 is the same client"
        );
        assert!(
            peers.admit(client("2001:db8:1:3::1"), never()).is_ok(),
            "the next /64 is another"
        );
    }

    #[test]
    fn clients_cannot_take_the_members_pool_and_idle_clients_make_room() {
        let peers = Peers::new(limits(), limits(), pools(2, 3), 1 << 20);
        let closed = Arc::new(AtomicUsize::new(0));
        let closer = |n: usize| -> Closer {
            let closed = closed.clone();
            Box::new(move || {
                closed.fetch_add(n, Ordering::SeqCst);
            })
        };
        // Three clients, all busy: the pool is full and nobody can be
        // evicted.
        let mut held = Vec::new();
        for (i, ip) in ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().enumerate() {
            let slot = peers
                .admit(client(ip), closer(1 << (8 * i)))
                .expect("client");
            slot.activity().busy();
            held.push(slot);
        }
        assert_eq!(
            peers.admit(client("10.0.0.4"), never()).err(),
            Some(AdmitRefusal::Pool)
        );
        // Members have their own pool.
        let m1 = peers.admit(member("NPR"), never()).expect("member");
        let _m2 = peers.admit(member("KPR"), never()).expect("member");
        assert_eq!(
            peers.admit(member("SSB"), never()).err(),
            Some(AdmitRefusal::Pool)
        );
        drop(m1);
        assert!(peers.admit(member("SSB"), never()).is_ok());
        // Two clients go idle, the second one first: it is evicted first.
        held[1].activity().done();
        std::thread::sleep(std::time::Duration::from_millis(5));
        held[0].activity().done();
        let d = peers.admit(client("10.0.0.4"), never()).expect("room made");
        d.activity().busy();
        assert_eq!(
            closed.load(Ordering::SeqCst),
            1 << 8,
            "the idlest was closed"
        );
        assert_eq!(peers.held().1, 3);
        // Its task ending later does not free a second place.
        drop(held.remove(1));
        assert_eq!(peers.held().1, 3);
        let e = peers.admit(client("10.0.0.5"), never()).expect("room made");
        e.activity().busy();
        assert_eq!(closed.load(Ordering::SeqCst), (1 << 8) + 1);
        assert_eq!(
            peers.admit(client("10.0.0.6"), never()).err(),
            Some(AdmitRefusal::Pool),
            "nobody idle is left"
        );
    }

    #[test]
    fn handshakes_are_bounded_per_prefix_and_members_have_a_reserve() {
        let member_ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let hs = Handshakes::new(3, 2, 2, [member_ip].into_iter().collect());
        let a = hs.begin("10.0.0.1".parse().expect("ip")).expect("first");
        let _b = hs.begin("10.0.0.1".parse().expect("ip")).expect("second");
        assert_eq!(
            hs.begin("10.0.0.1".parse().expect("ip")).err(),
            Some(HandshakeRefusal::PerPrefix)
        );
        let _c = hs.begin("10.0.0.2".parse().expect("ip")).expect("third");
        assert_eq!(
            hs.begin("10.0.0.3".parse().expect("ip")).err(),
            Some(HandshakeRefusal::Full),
            "strangers have taken every general slot"
        );
        let _m1 = hs.begin(member_ip).expect("reserved");
        let _m2 = hs.begin(member_ip).expect("reserved");
        assert_eq!(hs.begin(member_ip).err(), Some(HandshakeRefusal::Full));
        drop(a);
        assert!(
            hs.begin("10.0.0.3".parse().expect("ip")).is_ok(),
            "released"
        );
    }

    #[tokio::test]
    async fn a_peer_that_holds_its_request_slots_holds_only_its_own() {
        let peers = Peers::new(limits(), limits(), pools(64, 64), 1 << 20);
        let kpr = peers.admit(member("KPR"), never()).expect("slot");
        let kpr2 = peers.admit(member("KPR"), never()).expect("slot");
        let held: Vec<_> = take_requests(&kpr, 3).await;
        assert_eq!(held.len(), 3);
        // KPR's next request waits (on any of its connections)…
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), kpr2.request())
                .await
                .is_err()
        );
        // …NPR's does not.
        let npr = peers.admit(member("NPR"), never()).expect("slot");
        assert!(npr.request().await.is_some());
    }

    async fn take_requests(slot: &PeerSlot, n: usize) -> Vec<OwnedSemaphorePermit> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(slot.request().await.expect("permit"));
        }
        out
    }
}
