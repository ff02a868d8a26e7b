//! The server loop: accept connections from manifest members and clients,
//! serve their request streams with a [`Handler`], shut down gracefully.
//!
//! ```text
//!  run ──accept──▶ address not validated? ──▶ Retry (stateless; a spoofed source never returns)
//!   │              handshake slot (limits::Handshakes)? no ──▶ refused
//!   │            ──▶ connection task (one per peer connection)
//!   │               handshake within `handshake_timeout` → Peer::of
//!   │               PeerSlot (limits::Peers: members' and clients' pools, per member /
//!   │               client address or /64; over a limit: closed)
//!   │               per-role stream limit and receive window set
//!   │               accept_bi ──▶ stream task (one per stream)
//!   │               (a client idle for `client_idle_timeout`: closed)
//!   │                                                       read_len → read_kind → check_kind
//!   │                                                       (a member's kind from a client, or
//!   │                                                       over the kind's cap: closed, body unread)
//!   │                                                    → request slot → read_body (metered)
//!   │                                                    → Handler::handle → write reply
//!   └─ shutdown future fires:
//!        refuse new connections, drop the broadcast sender (every task's
//!        Shutdown sees it), connection tasks stop accepting streams,
//!        stream tasks finish the request in hand and stop at the next
//!        frame boundary; after `drain_timeout` the rest is aborted;
//!        endpoint.close + wait_idle.
//! ```
//!
//! Shutdown follows mini-redis (`server::run(listener, shutdown)`,
//! `shutdown.rs`): a broadcast channel that is never sent on, only
//! dropped. Completion is tracked with a `JoinSet` of connection tasks
//! (each joins its own stream tasks) rather than an mpsc channel, so that
//! the drain deadline can abort what is left.

use std::{
    collections::HashSet,
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use quinn::{ConnectionError, Endpoint, Incoming, RecvStream, SendStream, VarInt};
use tokio::{
    sync::broadcast,
    task::{JoinError, JoinSet},
    time::{sleep_until, timeout, Instant},
};
use tracing::{debug, error, info, warn, warn_span, Instrument};

use kobling_protocol::{
    manifest::Manifest,
    messages::{Message, MAX_CLIENT_FRAME, MAX_FRAME},
};

use super::{
    endpoint::TransportLimits,
    frame::{self, FrameError},
    limits::{
        AdmitRefusal, HandshakeSlot, Handshakes, PeerKey, PeerLimits, PeerSlot, Peers, Pools,
    },
    peer::Peer,
    quiet::{Category, Quiet},
    CloseCode, ErrorChain,
};

/// A handler's replies, sent in order, each its own frame. An iterator, so
/// that a large reply (a delivery) is produced as the peer takes it.
pub(crate) type Replies = Box<dyn Iterator<Item = Message> + Send>;

/// The future a [`Handler`] returns.
pub(crate) type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Replies> + Send + 'a>>;

/// The node's protocol logic, as the server sees it: one reply per request,
/// from an authenticated peer.
///
/// The server calls `handle` concurrently for requests on different
/// streams, and in order for requests on one stream. Errors a peer should
/// hear about are replies (`Message::Refused`); the handler never sees a
/// frame that failed to decode, nor a peer outside the manifest.
///
/// A request in hand when the node shuts down runs to completion unless
/// the drain deadline passes, in which case its future is dropped: the
/// handler must be cancel-safe at its await points (commit state before
/// replying).
pub(crate) trait Handler: Send + Sync + 'static {
    /// Handles `request` from `peer` (`None`: a client without a member
    /// certificate) and returns the reply.
    fn handle<'a>(&'a self, peer: Option<&'a Peer>, request: Message) -> HandlerFuture<'a>;
}

/// Server limits and deadlines.
#[derive(Clone, Debug)]
pub(crate) struct ServerSettings {
    /// How long in-flight requests may run after shutdown is requested.
    pub(crate) drain_timeout: Duration,
    /// How long a frame body may take to arrive once its length is known,
    /// and a reply to be taken by the peer.
    pub(crate) frame_timeout: Duration,
    /// Whether a connection attempt from an address not yet validated is
    /// answered with a Retry (a token the client must echo, proving it
    /// receives at its source address) before any state is kept for it.
    pub(crate) validate_addresses: bool,
    /// How long a handshake may take; a peer that stalls it loses it.
    pub(crate) handshake_timeout: Duration,
    /// Handshakes in progress at once (beyond the members' reserve).
    pub(crate) max_handshakes: usize,
    /// More handshakes in progress, only from addresses the manifest gives
    /// the members.
    pub(crate) member_handshakes: usize,
    /// Handshakes in progress from one client address (or IPv6 /64).
    pub(crate) handshakes_per_client: usize,
    /// Connections all members together may hold (apart from the
    /// clients'); never fewer than `per_member.connections` for every
    /// member of the manifest.
    pub(crate) max_member_connections: usize,
    /// Connections all clients together may hold; when full, the client
    /// connection idle longest makes room for a new one.
    pub(crate) max_client_connections: usize,
    /// A client connection with no request in hand for this long is
    /// closed (clients get no keep-alives either).
    pub(crate) client_idle_timeout: Duration,
    /// Streams and receive windows per connection, set after the
    /// handshake for members and for clients (the endpoint's initial
    /// values, for an unknown peer, are the clients').
    pub(crate) transport: TransportLimits,
    /// What one member may hold at once: connections (more are closed),
    /// requests in hand (more wait), bytes of request bodies (at least
    /// `MAX_FRAME`; when spent, its readers wait and flow control pushes
    /// back on it alone).
    pub(crate) per_member: PeerLimits,
    /// The same for the clients without a certificate at one IPv4
    /// address or IPv6 /64 (command-line clients open a connection per
    /// command, and several people may share an address); the frame
    /// budget is at least `MAX_CLIENT_FRAME`.
    pub(crate) per_client: PeerLimits,
    /// Bytes of request bodies all clients without a certificate may hold
    /// together (at least `MAX_CLIENT_FRAME`).
    pub(crate) clients_frame_budget: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            drain_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(60),
            validate_addresses: true,
            handshake_timeout: Duration::from_secs(5),
            max_handshakes: 64,
            member_handshakes: 16,
            handshakes_per_client: 8,
            max_member_connections: 64,
            max_client_connections: 128,
            client_idle_timeout: Duration::from_secs(10),
            transport: TransportLimits::default(),
            per_member: PeerLimits {
                connections: 4,
                requests: 16,
                frame_budget: MAX_FRAME,
            },
            per_client: PeerLimits {
                connections: 16,
                requests: 16,
                frame_budget: 4 * MAX_CLIENT_FRAME,
            },
            clients_frame_budget: 16 * MAX_CLIENT_FRAME,
        }
    }
}

/// Serves `endpoint` with `handler` until `shutdown` completes (or the
/// endpoint is closed), then shuts down gracefully: see the module docs.
///
/// Peers are authenticated by the endpoint's TLS configuration (see
/// [`super::endpoint::server_endpoint`]); `manifest` must be the one it was
/// built with, and maps each connection's certificate to its member.
pub(crate) async fn run(
    endpoint: Endpoint,
    manifest: Arc<Manifest>,
    handler: Arc<dyn Handler>,
    settings: ServerSettings,
    shutdown: impl Future,
) {
    let (notify_shutdown, _) = broadcast::channel::<()>(1);
    let at_least = |l: PeerLimits, frame: usize| PeerLimits {
        frame_budget: l.frame_budget.max(frame),
        ..l
    };
    let member_ips = member_ips(&manifest).await;
    let members = manifest.members.len();
    let shared = Arc::new(Shared {
        manifest,
        handler,
        handshakes: Handshakes::new(
            settings.max_handshakes,
            settings.member_handshakes,
            settings.handshakes_per_client,
            member_ips,
        ),
        peers: Peers::new(
            at_least(settings.per_member, MAX_FRAME),
            at_least(settings.per_client, MAX_CLIENT_FRAME),
            Pools {
                // Never fewer than every member's own limit allows.
                members: settings
                    .max_member_connections
                    .max(members * settings.per_member.connections),
                clients: settings.max_client_connections,
            },
            settings.clients_frame_budget.max(MAX_CLIENT_FRAME),
        ),
        quiet: Quiet::default(),
        settings,
    });
    let mut connections = JoinSet::new();
    if let Ok(addr) = endpoint.local_addr() {
        info!(%addr, "serving");
    }
    tokio::select! {
        () = accept_loop(&endpoint, &shared, &notify_shutdown, &mut connections) => {
            warn!("endpoint closed; server stops");
        }
        _ = shutdown => info!("shutdown requested"),
    }

    // Refuse new connections, then tell every task.
    endpoint.set_server_config(None);
    drop(notify_shutdown);
    let drain = async {
        while let Some(done) = connections.join_next().await {
            report(done);
        }
    };
    if timeout(shared.settings.drain_timeout, drain).await.is_err() {
        warn!(
            connections = connections.len(),
            "drain deadline passed; aborting what is left"
        );
        connections.shutdown().await;
    }
    CloseCode::Shutdown.close_endpoint(&endpoint);
    if timeout(shared.settings.drain_timeout, endpoint.wait_idle())
        .await
        .is_err()
    {
        warn!("connections did not close in time");
    }
    info!("stopped");
}

/// The IP addresses the manifest gives the members (host names resolved
/// once, briefly; one that does not resolve is left out, and its member
/// shares the general handshake slots).
async fn member_ips(manifest: &Manifest) -> HashSet<IpAddr> {
    let mut ips = HashSet::new();
    for m in &manifest.members {
        if let Ok(addr) = m.address.parse::<SocketAddr>() {
            ips.insert(addr.ip());
            continue;
        }
        let lookup = tokio::net::lookup_host(m.address.as_str());
        if let Ok(Ok(addrs)) = timeout(Duration::from_secs(2), lookup).await {
            ips.extend(addrs.map(|a| a.ip()));
        }
    }
    ips
}

/// What every connection and stream task shares.
struct Shared {
    manifest: Arc<Manifest>,
    handler: Arc<dyn Handler>,
    handshakes: Arc<Handshakes>,
    peers: Arc<Peers>,
    quiet: Quiet,
    settings: ServerSettings,
}

/// Listens for the shutdown signal: the drop of the server's broadcast
/// sender (mini-redis `Shutdown`).
#[derive(Debug)]
struct Shutdown {
    is_shutdown: bool,
    notify: broadcast::Receiver<()>,
}

impl Shutdown {
    fn new(notify: broadcast::Receiver<()>) -> Self {
        Self {
            is_shutdown: false,
            notify,
        }
    }

    /// Waits for the signal (at once if it was already seen).
    async fn recv(&mut self) {
        if self.is_shutdown {
            return;
        }
        // Nothing is ever sent: this returns `Closed` when the sender is
        // dropped.
        let _ = self.notify.recv().await;
        self.is_shutdown = true;
    }

    /// A listener for a sub-task: already shut down if this one is, and
    /// otherwise signalled by the same drop.
    fn child(&self) -> Self {
        Self {
            is_shutdown: self.is_shutdown,
            notify: self.notify.resubscribe(),
        }
    }
}

async fn accept_loop(
    endpoint: &Endpoint,
    shared: &Arc<Shared>,
    notify_shutdown: &broadcast::Sender<()>,
    connections: &mut JoinSet<()>,
) {
    while let Some(incoming) = endpoint.accept().await {
        while let Some(done) = connections.try_join_next() {
            report(done);
        }
        let remote = incoming.remote_address();
        // Nothing is kept for an address until it has shown it receives
        // there: the Retry carries all the state, in its token.
        if shared.settings.validate_addresses
            && !incoming.remote_address_validated()
            && incoming.may_retry()
        {
            if let Err(e) = incoming.retry() {
                e.into_incoming().ignore();
            }
            continue;
        }
        let slot = match shared.handshakes.begin(remote.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                if let Some(suppressed) = shared.quiet.allow(Category::Handshake) {
                    warn!(%remote, ?why, suppressed, "no handshake slot; refusing");
                }
                incoming.refuse();
                continue;
            }
        };
        let shutdown = Shutdown::new(notify_shutdown.subscribe());
        connections.spawn(serve_connection(incoming, slot, shared.clone(), shutdown));
    }
}

/// One connection: handshake within the deadline (the verifier refuses
/// unknown certificates), map the certificate to a member, admit it to its
/// pool, then one task per request stream.
async fn serve_connection(
    incoming: Incoming,
    handshake: HandshakeSlot,
    shared: Arc<Shared>,
    mut shutdown: Shutdown,
) {
    let remote = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(e) => {
            debug!(%remote, error = %ErrorChain(&e), "connection not accepted");
            return;
        }
    };
    let deadline = shared.settings.handshake_timeout;
    let conn = tokio::select! {
        r = timeout(deadline, connecting) => match r {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                if let Some(suppressed) = shared.quiet.allow(Category::Handshake) {
                    warn!(%remote, error = %ErrorChain(&e), suppressed, "handshake refused or failed");
                }
                return;
            }
            Err(_elapsed) => {
                // Dropping `Connecting` abandons the handshake.
                if let Some(suppressed) = shared.quiet.allow(Category::Handshake) {
                    warn!(%remote, suppressed, "handshake did not complete in time");
                }
                return;
            }
        },
        () = shutdown.recv() => return,
    };
    drop(handshake);
    // No certificate: a client (researcher, operator), whose messages the
    // handler authenticates by their signatures. A certificate: a member,
    // pinned by the verifier.
    let peer = if conn.peer_identity().is_none() {
        None
    } else {
        let Some(peer) = Peer::of(&conn, &shared.manifest) else {
            warn!(%remote, "peer certificate maps to no manifest member; closing");
            CloseCode::UnknownPeer.close(&conn);
            return;
        };
        Some(peer)
    };
    // At WARN level so the peer is named on every warning even when INFO is
    // filtered out.
    let who = peer
        .as_ref()
        .map_or_else(|| "client".to_string(), |p| p.name.to_string());
    let span = warn_span!("conn", peer = %who, %remote);
    let key = peer.as_ref().map_or(PeerKey::client(remote.ip()), |p| {
        PeerKey::Member(p.name.clone())
    });
    let evict = conn.clone();
    let close: super::limits::Closer = Box::new(move || CloseCode::Idle.close(&evict));
    let slot = match shared.peers.admit(key, close) {
        Ok(slot) => slot,
        Err(why) => {
            let _enter = span.enter();
            let what = match why {
                AdmitRefusal::PerPeer => "too many connections from this peer; closing",
                AdmitRefusal::Pool => "no connection slot free; closing",
            };
            if peer.is_some() {
                warn!("{what}");
            } else if let Some(suppressed) = shared.quiet.allow(Category::Connection) {
                warn!(suppressed, "{what}");
            }
            CloseCode::TooManyConnections.close(&conn);
            return;
        }
    };
    // An unknown peer got the endpoint's initial limits (the clients');
    // now that the peer is known, set its own.
    let t = &shared.settings.transport;
    let (streams, window) = if peer.is_some() {
        (t.max_request_streams, t.receive_window)
    } else {
        (t.client_request_streams, t.client_receive_window)
    };
    conn.set_max_concurrent_bi_streams(VarInt::from_u32(streams));
    conn.set_receive_window(VarInt::from_u32(window));
    serve_streams(conn, Arc::new(peer), Arc::new(slot), shared, shutdown)
        .instrument(span)
        .await;
}

async fn serve_streams(
    conn: quinn::Connection,
    peer: Arc<Option<Peer>>,
    slot: Arc<PeerSlot>,
    shared: Arc<Shared>,
    mut shutdown: Shutdown,
) {
    if peer.is_some() {
        info!("connected");
    } else {
        debug!("connected");
    }
    let client = peer.is_none();
    let idle_timeout = shared.settings.client_idle_timeout;
    let mut streams = JoinSet::new();
    let mut idle_deadline = Instant::now() + idle_timeout;
    loop {
        tokio::select! {
            accepted = conn.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    slot.activity().busy();
                    let stream = serve_stream(
                        conn.clone(), peer.clone(), slot.clone(), shared.clone(), shutdown.child(),
                        send, recv,
                    );
                    streams.spawn(stream.in_current_span());
                }
                Err(e) => {
                    // A client's end is routine (and a stranger's, cheap to
                    // cause): not logged above DEBUG.
                    if client {
                        debug!(reason = %ErrorChain(&e), "connection ended");
                    } else {
                        log_connection_end(&e);
                    }
                    break;
                }
            },
            Some(done) = streams.join_next(), if !streams.is_empty() => {
                slot.activity().done();
                report(done);
                if streams.is_empty() {
                    idle_deadline = Instant::now() + idle_timeout;
                }
            }
            () = sleep_until(idle_deadline), if client && streams.is_empty() => {
                debug!("client idle; closing");
                CloseCode::Idle.close(&conn);
                break;
            }
            () = shutdown.recv() => {
                debug!("shutdown: no new streams");
                break;
            }
        }
    }
    while let Some(done) = streams.join_next().await {
        report(done);
    }
    if shutdown.is_shutdown {
        CloseCode::Shutdown.close(&conn);
    }
    if let Some(p) = peer.as_ref() {
        super::log_stats(&conn, "server", p.name.as_str());
    }
}

/// One request stream: frames in, replies out, until the peer finishes its
/// side, a frame is bad, or the node shuts down between frames.
async fn serve_stream(
    conn: quinn::Connection,
    peer: Arc<Option<Peer>>,
    slot: Arc<PeerSlot>,
    shared: Arc<Shared>,
    mut shutdown: Shutdown,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let stream = send.id();
    let frame_timeout = shared.settings.frame_timeout;
    loop {
        let len = tokio::select! {
            biased;
            len = frame::read_len(&mut recv) => len,
            () = shutdown.recv() => {
                let _ = recv.stop(CloseCode::Shutdown.varint());
                let _ = send.finish();
                return;
            }
        };
        let len = match len {
            Ok(Some(len)) => len,
            Ok(None) => {
                // Wait until the peer has everything we sent (or stops
                // the stream): closing the connection on shutdown would
                // discard unacknowledged reply bytes.
                if send.finish().is_ok() {
                    let _ = timeout(frame_timeout, send.stopped()).await;
                }
                return;
            }
            Err(e) => return frame_failed(&conn, stream, &e, &shared, peer.is_none()),
        };
        // The kind first, from the body's first byte: a member's kind from
        // a client, or a frame longer than its kind can be, is refused
        // before the rest is read, held or decoded. Then one of the peer's
        // request slots, then the body within its budget, both held until
        // the replies are sent: a peer that stalls or does not read holds
        // only its own.
        let read = async {
            let (head, kind) = frame::read_kind(&mut recv, len).await.map_err(Some)?;
            frame::check_kind(kind, len, peer.is_none()).map_err(Some)?;
            let Some(in_hand) = slot.request().await else {
                return Err(None);
            };
            match slot.read_body(&mut recv, len, &head).await {
                Ok((bytes, request)) => Ok((in_hand, bytes, request)),
                Err(e) => Err(Some(e)),
            }
        };
        let (_in_hand, _bytes, request) = match timeout(frame_timeout, read).await {
            Ok(Ok(read)) => read,
            Ok(Err(Some(e))) => return frame_failed(&conn, stream, &e, &shared, peer.is_none()),
            Ok(Err(None)) => return,
            Err(_elapsed) => {
                warn!(%stream, "frame did not arrive in time; resetting stream");
                return reset(&mut send, &mut recv, CloseCode::Timeout);
            }
        };
        let kind = request.kind();
        debug!(%stream, kind, bytes = len, "request");
        // One or more replies, each its own frame.
        for reply in shared.handler.handle(peer.as_ref().as_ref(), request).await {
            match timeout(frame_timeout, frame::write_message(&mut send, &reply)).await {
                Ok(Ok(())) => debug!(%stream, kind = reply.kind(), "reply"),
                Ok(Err(e @ FrameError::TooLarge(_))) => {
                    error!(%stream, kind = reply.kind(), error = %ErrorChain(&e), "reply not sent");
                    return reset(&mut send, &mut recv, CloseCode::Cancelled);
                }
                Ok(Err(e)) => {
                    debug!(%stream, error = %ErrorChain(&e), "reply not delivered");
                    return;
                }
                Err(_elapsed) => {
                    warn!(%stream, "peer did not take the reply in time; resetting stream");
                    return reset(&mut send, &mut recv, CloseCode::Timeout);
                }
            }
        }
    }
}

/// A frame could not be read: close the connection if the peer broke the
/// framing or sent what it may not, otherwise just let the stream go. A
/// client's violations are logged within the rate limit.
fn frame_failed(
    conn: &quinn::Connection,
    stream: quinn::StreamId,
    e: &FrameError,
    shared: &Shared,
    client: bool,
) {
    match e.violation() {
        Some(code) => {
            if !client {
                warn!(%stream, reason = %ErrorChain(e), "bad frame; closing connection");
            } else if let Some(suppressed) = shared.quiet.allow(Category::ClientFrame) {
                warn!(%stream, reason = %ErrorChain(e), suppressed, "bad frame; closing connection");
            }
            code.close(conn);
        }
        None => debug!(%stream, error = %ErrorChain(e), "stream ended"),
    }
}

fn reset(send: &mut SendStream, recv: &mut RecvStream, code: CloseCode) {
    let _ = send.reset(code.varint());
    let _ = recv.stop(code.varint());
}

fn log_connection_end(e: &ConnectionError) {
    match e {
        ConnectionError::ApplicationClosed(close)
            if CloseCode::from_varint(close.error_code) == Some(CloseCode::Shutdown) =>
        {
            info!("peer closed the connection");
        }
        ConnectionError::LocallyClosed => debug!("connection closed"),
        _ => info!(reason = %ErrorChain(e), "connection ended"),
    }
}

fn report(done: Result<(), JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            error!("a server task panicked");
        }
    }
}
