//! Per-peer limits: what one peer may hold of a node's connections,
//! request slots and frame memory, so that a slow or hostile peer delays
//! only itself.
//!
//! ```text
//!  connection ──handshake──▶ PeerKey (member name, or a client's IP address)
//!       │                        │
//!       └── Peers::admit ────────┴─▶ PeerSlot (≤ `connections` at once, else refused)
//!                                      ├─ requests: ≤ `requests` read, handled or replied at once
//!                                      └─ frames:   ≤ `frame_budget` bytes of request bodies held;
//!                                                   clients also share `clients_frame_budget`
//!
//!  read_body_metered: the body is read in pieces of ≤ 64 KiB, each taken
//!  from the budgets *before* it is read, so an announced length costs
//!  nothing and a stalled sender holds only the bytes it actually sent.
//! ```
//!
//! Members are authenticated by their pinned certificates, so each has its
//! own limits; clients without a certificate are told apart only by their
//! IP address, and all of them together share one frame budget, so that
//! no number of clients can take the memory members need. Memory for
//! request frames is bounded by `members × frame_budget +
//! clients_frame_budget`, whatever the peers do.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
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
    /// A client without a certificate, by IP address.
    Client(IpAddr),
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

/// The table of peers with connections.
pub(crate) struct Peers {
    member: PeerLimits,
    client_ip: PeerLimits,
    clients_frames: Arc<Semaphore>,
    table: Mutex<HashMap<PeerKey, Entry>>,
}

struct Entry {
    connections: usize,
    requests: Arc<Semaphore>,
    frames: Arc<Semaphore>,
}

impl Peers {
    /// A table with `member` limits per member, `client_ip` limits per
    /// client IP address, and `clients_frame_budget` bytes of request
    /// bodies for all clients together.
    pub(crate) fn new(
        member: PeerLimits,
        client_ip: PeerLimits,
        clients_frame_budget: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            member,
            client_ip,
            clients_frames: Arc::new(Semaphore::new(clients_frame_budget)),
            table: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a new connection of `key`, or `None` if the peer holds
    /// as many connections as it may.
    pub(crate) fn admit(self: &Arc<Self>, key: PeerKey) -> Option<PeerSlot> {
        let limits = match key {
            PeerKey::Member(_) => self.member,
            PeerKey::Client(_) => self.client_ip,
        };
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = table.entry(key.clone()).or_insert_with(|| Entry {
            connections: 0,
            requests: Arc::new(Semaphore::new(limits.requests.max(1))),
            frames: Arc::new(Semaphore::new(limits.frame_budget)),
        });
        if entry.connections >= limits.connections {
            return None;
        }
        entry.connections += 1;
        let clients = matches!(key, PeerKey::Client(_)).then(|| self.clients_frames.clone());
        Some(PeerSlot {
            requests: entry.requests.clone(),
            frames: entry.frames.clone(),
            clients,
            key,
            peers: self.clone(),
        })
    }
}

/// One connection's share of its peer's limits; released when dropped.
pub(crate) struct PeerSlot {
    key: PeerKey,
    requests: Arc<Semaphore>,
    frames: Arc<Semaphore>,
    clients: Option<Arc<Semaphore>>,
    peers: Arc<Peers>,
}

impl PeerSlot {
    /// Waits for one of the peer's request slots.
    pub(crate) async fn request(&self) -> Option<OwnedSemaphorePermit> {
        self.requests.clone().acquire_owned().await.ok()
    }

    /// Reads a frame body of `len` bytes (as returned by
    /// [`super::frame::read_len`]) within the budgets and decodes it. The
    /// returned permits hold the body's bytes until dropped (after the
    /// reply is sent).
    ///
    /// # Errors
    ///
    /// As [`super::frame::read_body`].
    pub(crate) async fn read_body(
        &self,
        recv: &mut RecvStream,
        len: usize,
    ) -> Result<(Vec<OwnedSemaphorePermit>, Message), FrameError> {
        let mut held = Vec::new();
        let mut body = Vec::with_capacity(len.min(PIECE));
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
        let mut table = self
            .peers
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = table.get_mut(&self.key) {
            entry.connections = entry.connections.saturating_sub(1);
            if entry.connections == 0 {
                table.remove(&self.key);
            }
        }
    }
}

fn closed() -> FrameError {
    FrameError::Io(std::io::Error::other("the server is shutting down"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PeerLimits {
        PeerLimits {
            connections: 2,
            requests: 3,
            frame_budget: 1 << 20,
        }
    }

    #[test]
    fn connections_are_counted_per_peer_and_released() {
        let peers = Peers::new(limits(), limits(), 1 << 20);
        let kpr = PeerKey::Member(Name::new("KPR").expect("valid"));
        let npr = PeerKey::Member(Name::new("NPR").expect("valid"));
        let a = peers.admit(kpr.clone()).expect("first");
        let b = peers.admit(kpr.clone()).expect("second");
        assert!(peers.admit(kpr.clone()).is_none(), "a third is refused");
        assert!(peers.admit(npr).is_some(), "another peer is not affected");
        drop(a);
        let c = peers.admit(kpr.clone()).expect("room again");
        drop((b, c));
        assert!(peers.table.lock().expect("lock").get(&kpr).is_none());
    }

    #[tokio::test]
    async fn a_peer_that_holds_its_request_slots_holds_only_its_own() {
        let peers = Peers::new(limits(), limits(), 1 << 20);
        let kpr = peers
            .admit(PeerKey::Member(Name::new("KPR").expect("valid")))
            .expect("slot");
        let kpr2 = peers
            .admit(PeerKey::Member(Name::new("KPR").expect("valid")))
            .expect("slot");
        let held: Vec<_> = take_requests(&kpr, 3).await;
        assert_eq!(held.len(), 3);
        // KPR's next request waits (on any of its connections)…
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), kpr2.request())
                .await
                .is_err()
        );
        // …NPR's does not.
        let npr = peers
            .admit(PeerKey::Member(Name::new("NPR").expect("valid")))
            .expect("slot");
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
