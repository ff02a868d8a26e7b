//! `kobling node run`: the long-lived node daemon — a thin driver around
//! the [`Engine`].
//!
//! ```text
//!  QUIC server ──request──▶ handler ──spawn_blocking──▶ Engine::handle ──▶ replies
//!                              └─ state changed ──▶ ticker (event)
//!  sender: a task per destination ◀── Engine::outbox_to (in order) ──▶ Client::request ──▶ acked / retry
//!  ticker ──every 500 ms, or on an event──▶ Engine::tick (duties: commit, announce, link, shred)
//!  metrics (--metrics ADDR) ◀── counts from the handler, sender and ticker; GET /metrics, /healthz
//!  SIGINT / SIGTERM ──▶ broadcast shutdown: server drains, loops stop
//! ```
//!
//! No request ticks the engine itself: the tick runs on its own task, so a
//! refused or hostile request costs one handler call, not a pass over
//! every project the node holds.
//!
//! The engine is behind one mutex; its CPU work (chunk steps, proofs) runs
//! on the blocking pool and uses every core through rayon.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use kobling_keys::{Keystore, Passphrase};
use kobling_protocol::{
    manifest::Manifest,
    messages::{Message, SignedRequest},
    transcript::SignedStatement,
};
use tokio::sync::watch;
use tracing::{error, info};

mod error;

pub use self::error::DaemonError;
use crate::{
    engine::{ApprovalDesk, Engine, EngineConfig, Peer, Taken},
    metrics::{self, Metrics},
    net::{
        client::{Client, ClientSettings},
        endpoint::{server_endpoint, server_endpoint_on, TransportLimits},
        peer::Peer as NetPeer,
        server::{run as serve, Handler, HandlerFuture, Replies, ServerSettings},
        tls::TlsIdentity,
    },
    sender,
    store::Store,
};
use kobling_protocol::types::UnixTime;

/// Seconds since the Unix epoch, from the OS clock (0 before 1970).
pub fn unix_now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(UnixTime::EPOCH, |d| UnixTime(d.as_secs()))
}

struct NodeHandler {
    engine: Arc<Mutex<Engine>>,
    /// Checks approvals and reads their extracts outside the engine's lock.
    desk: ApprovalDesk,
    wake: watch::Sender<()>,
    metrics: Option<Arc<Metrics>>,
    /// Asks the ticker for a tick now (a message changed a project).
    tick_now: Arc<tokio::sync::Notify>,
}

/// Whether an accepted message of this kind may have changed a project,
/// so that the node's duties are worth recomputing at once.
fn changes_state(kind: &str) -> bool {
    matches!(
        kind,
        "SubmitOrder"
            | "Approve"
            | "Statement"
            | "Entries"
            | "Blinding"
            | "SealedItems"
            | "Points"
            | "Close"
            | "DomainEntries"
            | "DomainCommitment"
            | "DomainRequest"
    )
}

impl Handler for NodeHandler {
    fn handle<'a>(&'a self, peer: Option<&'a NetPeer>, request: Message) -> HandlerFuture<'a> {
        let from = peer.map_or(Peer::Client, |p| Peer::Member(p.name.clone()));
        let engine = self.engine.clone();
        let metrics = self.metrics.clone();
        if let Some(m) = &metrics {
            m.request(&request);
        }
        let peer_label = peer.map_or_else(|| "client".to_string(), |p| p.name.to_string());
        Box::pin(async move {
            let kind = request.kind();
            let desk = self.desk.clone();
            let done = tokio::task::spawn_blocking(move || match request {
                Message::Approve {
                    statement,
                    request,
                    order,
                } => approve(&engine, &desk, &from, statement, *request, *order),
                Message::Innsyn(signed) => innsyn(&engine, &from, &signed),
                request => lock(&engine).handle_streamed(&from, request, unix_now()),
            })
            .await;
            // The peer hears a fixed text; what went wrong (file paths, OS
            // errors) stays in the node's log.
            let replies = match done {
                Ok(Ok(replies)) => {
                    if changes_state(kind) {
                        self.tick_now.notify_one();
                        let _ = self.wake.send(());
                    }
                    Box::new(replies) as Replies
                }
                Ok(Err(e)) => {
                    error!(kind, error = %e, "internal error handling a message");
                    Box::new(std::iter::once(internal()))
                }
                Err(e) => {
                    error!(kind, error = %e, "the handler task failed");
                    Box::new(std::iter::once(internal()))
                }
            };
            match metrics {
                Some(m) => Box::new(replies.inspect(move |reply| {
                    if let Message::Refused { code, .. } = reply {
                        m.refused(&peer_label, code.as_str());
                    }
                })) as Replies,
                None => replies,
            }
        })
    }
}

fn lock(engine: &Mutex<Engine>) -> std::sync::MutexGuard<'_, Engine> {
    engine.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An operator's approval: authenticated with its envelope, checked for
/// a duplicate (acknowledged without reading a file) and a replayed
/// envelope (refused without reading a file), and its extract read and
/// hashed without holding the engine, so that a large or hostile file
/// never stalls the node's other projects.
fn approve(
    engine: &Mutex<Engine>,
    desk: &ApprovalDesk,
    from: &Peer,
    statement: SignedStatement,
    request: SignedRequest,
    order: kobling_protocol::transcript::Entry,
) -> Result<crate::engine::Replies, crate::engine::EngineError> {
    let now = unix_now();
    let file = match desk.authenticate(&statement, &request, now) {
        Err(refusal) => Err(refusal),
        Ok(name) => match lock(engine).take_approval(&statement, &request, now)? {
            Taken::Seen => {
                return Ok(vec![Message::Ack {
                    of: kobling_protocol::types::Digest::default(),
                }]
                .into());
            }
            Taken::Refused(refusal) => Err(refusal),
            Taken::New => desk.read(&name),
        },
    };
    lock(engine).handle_approval(from, statement, request, order, file, now)
}

/// An innsyn request: checked and admitted (quotas) under the engine's
/// lock, the register's extract read for the one person without it, the
/// reply sealed and counted under it again.
fn innsyn(
    engine: &Mutex<Engine>,
    from: &Peer,
    signed: &kobling_protocol::innsyn::wire::SignedInnsyn,
) -> Result<crate::engine::Replies, crate::engine::EngineError> {
    let lookup = match lock(engine).take_innsyn(from, signed, unix_now())? {
        crate::engine::InnsynStep::Done(replies) => return Ok(replies),
        crate::engine::InnsynStep::Read(lookup) => lookup,
    };
    let found = lookup.read();
    lock(engine).finish_innsyn(from, lookup, found, unix_now())
}

/// The refusal a peer gets when the node itself failed: the same text
/// whatever the failure.
pub(crate) fn internal() -> Message {
    Message::Refused {
        code: kobling_protocol::bounded::BoundedString::new("internal").unwrap_or_default(),
        detail: kobling_protocol::bounded::BoundedString::new(INTERNAL_DETAIL).unwrap_or_default(),
    }
}

/// The detail of [`internal`].
pub(crate) const INTERNAL_DETAIL: &str =
    "the node could not handle the message; its operator can see why in its log";

/// How a node runs, beyond its directory and manifest.
#[derive(Clone, Debug)]
pub struct Options {
    /// The address to listen on (default: the node's manifest address; a
    /// host name resolves to its first address).
    pub listen: Option<String>,
    /// Points per chunk in the lists this node announces.
    pub chunk_size: u32,
    /// A register's mapping file of changed identifiers (PROTOCOL.md §9),
    /// applied to every extract this node prepares.
    pub mapping: Option<PathBuf>,
    /// Where to serve `/metrics` and `/healthz` (none: not served).
    pub metrics: Option<String>,
    /// Accept synthetic test numbers and test-mode orders (tests, demos).
    pub test_mode: bool,
    /// The directory operators' approvals name extracts in (default:
    /// `extracts/` in the node's directory).
    pub extracts: Option<std::path::PathBuf>,
    /// A UDP socket the caller bound, to serve on (`listen` is not used):
    /// bind port 0, write the socket's address into the manifest, then
    /// start the node, with no window in which another program could
    /// take the port.
    pub socket: Option<Arc<std::net::UdpSocket>>,
    /// A register's fnr extract that innsyn requests read (none: the
    /// node answers no innsyn request; `docs/innsyn.md`). Its header is
    /// checked at the start.
    pub innsyn_extract: Option<PathBuf>,
    /// Innsyn quotas per portal and per person in a window.
    pub innsyn_quotas: kobling_protocol::innsyn::QuotaLimits,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: None,
            chunk_size: kobling_protocol::hop::DEFAULT_CHUNK_SIZE,
            mapping: None,
            metrics: None,
            test_mode: false,
            extracts: None,
            socket: None,
            innsyn_extract: None,
            innsyn_quotas: kobling_protocol::innsyn::QuotaLimits::default(),
        }
    }
}

/// Runs the node in `dir` until `shutdown` resolves, serving on
/// `options.socket`, or else listening on `options.listen` or the port of
/// its manifest address.
///
/// `dir` holds the node's keystore (`keys/`, opened with `passphrase`) and
/// its state; the keystore's TLS key names the node's manifest entry.
///
/// # Errors
///
/// If the directory is not private, the keystore, the mapping file or the
/// state cannot be opened, the keystore is in no manifest entry, or the
/// address cannot be bound. Once the node runs it only stops on
/// `shutdown` (failed requests and ticks are logged, not returned).
///
/// # Example
///
/// A node on a socket bound before its manifest entry was written (the
/// entry's address must be the socket's), until Ctrl-C:
///
/// ```no_run
/// use std::{net::UdpSocket, path::Path, sync::Arc};
///
/// use kobling_node::daemon::{self, Options};
/// use kobling_protocol::manifest::Manifest;
///
/// async fn serve(dir: &Path, manifest: Manifest, socket: UdpSocket) -> anyhow::Result<()> {
///     let options = Options {
///         socket: Some(Arc::new(socket)),
///         ..Options::default()
///     };
///     daemon::run(dir, manifest, None, &options, async {
///         let _ = tokio::signal::ctrl_c().await;
///     })
///     .await?;
///     Ok(())
/// }
/// ```
pub async fn run(
    dir: &Path,
    manifest: Manifest,
    passphrase: Option<Passphrase>,
    options: &Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    // The node's directory holds its keys, state and scratch files: only
    // its owner may enter it (issue 18 item 8).
    crate::private_fs::check_node_dir(dir).map_err(DaemonError::PrivateDir)?;
    let mut keystore = Keystore::open(dir.join("keys"), passphrase.as_ref().map(|p| p.as_str()))
        .map_err(DaemonError::Keystore)?;
    // Not needed again while the node runs: zeroized now.
    drop(passphrase);
    let me = manifest
        .member_by_tls(&kobling_protocol::manifest::TlsFingerprint(
            keystore.tls_spki_sha256(),
        ))
        .map(|m| m.name.clone())
        .ok_or(DaemonError::NotInManifest)?;
    let member = manifest
        .member(&me)
        .ok_or(DaemonError::NotInManifest)?
        .clone();
    let identity = TlsIdentity::from_keystore(&keystore).map_err(DaemonError::Tls)?;
    // The identity holds the key (inside rustls' signer); the keystore's
    // copy of its bytes goes.
    keystore.drop_tls_key();
    if let Some(mapping) = &options.mapping {
        // Refused at start rather than at the first project: a bad file
        // is found while the operator is watching. Each list reads it
        // again, with its identifier rules.
        crate::extract_file::load_mapping(
            mapping,
            kobling_protocol::ident::ParseOptions {
                allow_synthetic: true,
            },
        )
        .map_err(|e| DaemonError::Mapping {
            path: mapping.clone(),
            source: Box::new(e),
        })?;
    }
    if let Some(path) = &options.innsyn_extract {
        crate::extract_file::pseudonymous::check_key_column(path, false).map_err(|e| {
            DaemonError::InnsynExtract {
                path: path.clone(),
                source: Box::new(e),
            }
        })?;
    }
    let store = Store::open(dir)
        .map_err(DaemonError::Store)?
        .with_mapping(options.mapping.clone());
    // Seeds the engine's key-erasing generator; wiped once handed over.
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(DaemonError::Randomness)?;
    let config = EngineConfig {
        chunk_size: options.chunk_size,
        test_mode: options.test_mode,
        extracts: Some(
            options
                .extracts
                .clone()
                .unwrap_or_else(|| dir.join("extracts")),
        ),
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(me.clone(), manifest.clone(), keystore, store, *seed, config)?;
    engine.set_innsyn_extract(options.innsyn_extract.clone());
    engine.set_innsyn_quotas(options.innsyn_quotas);
    let engine = Arc::new(Mutex::new(engine));
    let manifest = Arc::new(manifest);
    let metrics_listener = match &options.metrics {
        Some(address) => Some(metrics::bind(address).await?),
        None => None,
    };
    let metrics = metrics_listener
        .as_ref()
        .map(|_| Arc::new(Metrics::new(dir.to_path_buf(), manifest.clone())));

    let limits = TransportLimits::default();
    let (bind, endpoint) = match &options.socket {
        Some(socket) => {
            let socket = socket.try_clone().map_err(|source| DaemonError::Socket {
                what: "the given socket",
                source,
            })?;
            let bind = socket.local_addr().map_err(|source| DaemonError::Socket {
                what: "the socket's address",
                source,
            })?;
            let endpoint = server_endpoint_on(socket, &identity, manifest.clone(), &limits)
                .map_err(|source| DaemonError::Listen { bind, source })?;
            (bind, endpoint)
        }
        None => {
            let bind = listen_address(&member.address, options.listen.as_deref()).await?;
            let endpoint = server_endpoint(bind, &identity, manifest.clone(), &limits)
                .map_err(|source| DaemonError::Listen { bind, source })?;
            (bind, endpoint)
        }
    };
    let client = Client::new(
        endpoint.clone(),
        Some(&identity),
        manifest.clone(),
        &limits,
        ClientSettings {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(300),
        },
    )
    .map_err(DaemonError::Client)?;
    info!(node = %me, role = ?member.role, %bind, advertised = %member.address, test_mode = options.test_mode, "node running");
    if options.test_mode {
        tracing::warn!(node = %me, "TEST MODE: synthetic identifiers and test-mode orders are accepted; never run a production node like this");
    }

    let (wake, woken) = watch::channel(());
    let (stop, stopped) = watch::channel(false);
    let tick_now = Arc::new(tokio::sync::Notify::new());
    let desk = lock(&engine).approval_desk();
    let handler = Arc::new(NodeHandler {
        engine: engine.clone(),
        desk,
        wake: wake.clone(),
        metrics: metrics.clone(),
        tick_now: tick_now.clone(),
    });
    let monitor = match (metrics_listener, &metrics) {
        (Some(listener), Some(m)) => Some(tokio::spawn(metrics::serve(
            listener,
            m.clone(),
            stopped.clone(),
        ))),
        _ => None,
    };
    let client = Arc::new(client);
    let sender = tokio::spawn({
        let client = client.clone();
        let members = manifest.members.iter().map(|m| m.name.clone()).collect();
        sender::run(
            engine.clone(),
            client,
            me.clone(),
            members,
            woken,
            stopped.clone(),
            metrics.clone(),
        )
    });
    let ticker = tokio::spawn(tick_loop(engine.clone(), wake, tick_now, stopped, metrics));
    let mut stop_rx = stop.subscribe();
    // A request cut off by the drain deadline is harmless: every step
    // commits atomically, and its sender retries it.
    let settings = ServerSettings {
        drain_timeout: Duration::from_secs(2),
        transport: limits.clone(),
        ..ServerSettings::default()
    };
    let server = tokio::spawn(serve(endpoint, manifest, handler, settings, async move {
        let _ = stop_rx.changed().await;
    }));
    shutdown.await;
    info!(node = %me, "shutting down");
    let _ = stop.send(true);
    let _ = sender.await;
    // Our connections to the other nodes keep the shared endpoint busy:
    // close them so the server's drain ends promptly.
    client.close();
    let _ = server.await;
    let _ = ticker.await;
    if let Some(monitor) = monitor {
        let _ = monitor.await;
    }
    info!(node = %me, "stopped");
    Ok(())
}

/// The socket address to bind: `listen` as given, or else the manifest
/// `address`'s port on the unspecified address (on loopback if the
/// manifest address is a loopback one).
async fn listen_address(address: &str, listen: Option<&str>) -> Result<SocketAddr, DaemonError> {
    if let Some(listen) = listen {
        return resolve(listen).await;
    }
    let advertised = resolve(address).await?;
    Ok(SocketAddr::new(
        if advertised.ip().is_loopback() {
            advertised.ip()
        } else {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        },
        advertised.port(),
    ))
}

/// The first address `address` resolves to.
pub(crate) async fn resolve(address: &str) -> Result<SocketAddr, DaemonError> {
    tokio::net::lookup_host(address)
        .await
        .map_err(|source| DaemonError::Resolve {
            address: address.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| DaemonError::NoAddress {
            address: address.to_owned(),
        })
}

/// Ticks the engine every 500 ms, and at once when a message changed a
/// project (events coalesce: at most one tick waits).
async fn tick_loop(
    engine: Arc<Mutex<Engine>>,
    wake: watch::Sender<()>,
    tick_now: Arc<tokio::sync::Notify>,
    mut stopped: watch::Receiver<bool>,
    metrics: Option<Arc<Metrics>>,
) {
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = tick_now.notified() => {}
        }
        let engine = engine.clone();
        let result = tokio::task::spawn_blocking(move || {
            engine
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .tick(unix_now())
        })
        .await;
        match result {
            Ok(Ok(())) => {
                if let Some(m) = &metrics {
                    m.ticked();
                }
            }
            Ok(Err(e)) => error!(error = %e, "tick failed"),
            Err(e) => error!(error = %e, "tick task failed"),
        }
        let _ = wake.send(());
    }
}
