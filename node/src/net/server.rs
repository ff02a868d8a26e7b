//! The server loop: accept connections from manifest members, serve their
//! request streams with a [`Handler`], shut down gracefully.
//!
//! ```text
//!  run ──accept──▶ connection task (one per peer connection)
//!   │               handshake → Peer::of → accept_bi ──▶ stream task (one per stream)
//!   │               PeerSlot (limits::Peers: per member /   read_len → request slot
//!   │               client IP; over the limit: closed)      → read_body_metered
//!   │                                                    → Handler::handle → write reply
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

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use quinn::{ConnectionError, Endpoint, Incoming, RecvStream, SendStream};
use tokio::{
    sync::broadcast,
    task::{JoinError, JoinSet},
    time::timeout,
};
use tracing::{debug, error, info, warn, warn_span, Instrument};

use kobling_protocol::{
    manifest::Manifest,
    messages::{Message, MAX_FRAME},
};

use super::{
    frame::{self, FrameError},
    limits::{PeerKey, PeerLimits, PeerSlot, Peers},
    peer::Peer,
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
    /// Connections served at once; more are refused.
    pub(crate) max_connections: usize,
    /// What one member may hold at once: connections (more are closed),
    /// requests in hand (more wait), bytes of request bodies (at least
    /// `MAX_FRAME`; when spent, its readers wait and flow control pushes
    /// back on it alone).
    pub(crate) per_member: PeerLimits,
    /// The same for the clients without a certificate at one IP address
    /// (command-line clients open a connection per command, and several
    /// people may share an address).
    pub(crate) per_client_ip: PeerLimits,
    /// Bytes of request bodies all clients without a certificate may hold
    /// together (at least `MAX_FRAME`).
    pub(crate) clients_frame_budget: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            drain_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(60),
            max_connections: 256,
            per_member: PeerLimits {
                connections: 4,
                requests: 16,
                frame_budget: MAX_FRAME,
            },
            per_client_ip: PeerLimits {
                connections: 32,
                requests: 32,
                frame_budget: MAX_FRAME,
            },
            clients_frame_budget: 2 * MAX_FRAME,
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
    let at_least_a_frame = |l: PeerLimits| PeerLimits {
        frame_budget: l.frame_budget.max(MAX_FRAME),
        ..l
    };
    let shared = Arc::new(Shared {
        manifest,
        handler,
        peers: Peers::new(
            at_least_a_frame(settings.per_member),
            at_least_a_frame(settings.per_client_ip),
            settings.clients_frame_budget.max(MAX_FRAME),
        ),
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

/// What every connection and stream task shares.
struct Shared {
    manifest: Arc<Manifest>,
    handler: Arc<dyn Handler>,
    peers: Arc<Peers>,
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
        if connections.len() >= shared.settings.max_connections {
            warn!(remote = %incoming.remote_address(), "too many connections; refusing");
            incoming.refuse();
            continue;
        }
        let shutdown = Shutdown::new(notify_shutdown.subscribe());
        connections.spawn(serve_connection(incoming, shared.clone(), shutdown));
    }
}

/// One connection: handshake (the verifier refuses unknown peers), map the
/// certificate to a member, then one task per request stream.
async fn serve_connection(incoming: Incoming, shared: Arc<Shared>, mut shutdown: Shutdown) {
    let remote = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(e) => {
            debug!(%remote, error = %ErrorChain(&e), "connection not accepted");
            return;
        }
    };
    let conn = tokio::select! {
        r = connecting => match r {
            Ok(conn) => conn,
            Err(e) => {
                warn!(%remote, error = %ErrorChain(&e), "handshake refused or failed");
                return;
            }
        },
        () = shutdown.recv() => return,
    };
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
    let key = peer.as_ref().map_or(PeerKey::Client(remote.ip()), |p| {
        PeerKey::Member(p.name.clone())
    });
    let Some(slot) = shared.peers.admit(key) else {
        let _enter = span.enter();
        warn!("too many connections from this peer; closing");
        CloseCode::TooManyConnections.close(&conn);
        return;
    };
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
    info!("connected");
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            accepted = conn.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    let stream = serve_stream(
                        conn.clone(), peer.clone(), slot.clone(), shared.clone(), shutdown.child(),
                        send, recv,
                    );
                    streams.spawn(stream.in_current_span());
                }
                Err(e) => {
                    log_connection_end(&e);
                    break;
                }
            },
            Some(done) = streams.join_next(), if !streams.is_empty() => report(done),
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
    let who = peer.as_ref().as_ref().map_or("client", |p| p.name.as_str());
    super::log_stats(&conn, "server", who);
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
            Err(e) => return frame_failed(&conn, stream, &e),
        };
        // One of the peer's request slots, then the body within its
        // budget, both held until the replies are sent: a peer that stalls
        // or does not read holds only its own.
        let read = async {
            let Some(in_hand) = slot.request().await else {
                return Err(None);
            };
            match slot.read_body(&mut recv, len).await {
                Ok((bytes, request)) => Ok((in_hand, bytes, request)),
                Err(e) => Err(Some(e)),
            }
        };
        let (_in_hand, _bytes, request) = match timeout(frame_timeout, read).await {
            Ok(Ok(read)) => read,
            Ok(Err(Some(e))) => return frame_failed(&conn, stream, &e),
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
/// framing, otherwise just let the stream go.
fn frame_failed(conn: &quinn::Connection, stream: quinn::StreamId, e: &FrameError) {
    match e.violation() {
        Some(code) => {
            warn!(%stream, reason = %ErrorChain(e), "bad frame; closing connection");
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
