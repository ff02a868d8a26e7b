//! `kobling node run`: the long-lived node daemon — a thin driver around
//! the [`Engine`].
//!
//! ```text
//!  QUIC server ──request──▶ handler ──spawn_blocking──▶ Engine::handle + tick ──▶ replies
//!  sender loop ◀── Engine::outbox (in order, per destination) ──▶ Client::request ──▶ acked / retry
//!  ticker ──every 500 ms──▶ Engine::tick (duties: commit, announce, link, shred)
//!  SIGINT / SIGTERM ──▶ broadcast shutdown: server drains, loops stop
//! ```
//!
//! The engine is behind one mutex; its CPU work (chunk steps, proofs) runs
//! on the blocking pool and uses every core through rayon.

use std::{
    collections::{BTreeMap, HashSet},
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{anyhow, Context};
use kobling_keys::Keystore;
use kobling_protocol::{manifest::Manifest, messages::Message, types::Name};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::{
    engine::{Engine, Peer},
    net::{
        client::{Client, ClientSettings},
        endpoint::{server_endpoint, TransportLimits},
        peer::Peer as NetPeer,
        server::{run as serve, Handler, HandlerFuture, ServerSettings},
        tls::TlsIdentity,
    },
    store::Store,
};

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct NodeHandler {
    engine: Arc<Mutex<Engine>>,
    wake: watch::Sender<()>,
}

impl Handler for NodeHandler {
    fn handle<'a>(&'a self, peer: Option<&'a NetPeer>, request: Message) -> HandlerFuture<'a> {
        let from = peer.map_or(Peer::Client, |p| Peer::Member(p.name.clone()));
        let engine = self.engine.clone();
        Box::pin(async move {
            let kind = request.kind();
            let done = tokio::task::spawn_blocking(move || {
                let mut engine = engine.lock().unwrap_or_else(PoisonError::into_inner);
                let now = unix_now();
                let replies = engine.handle(&from, request, now)?;
                engine.tick(now)?;
                Ok::<_, crate::engine::EngineError>(replies)
            })
            .await;
            let _ = self.wake.send(());
            match done {
                Ok(Ok(replies)) => replies,
                Ok(Err(e)) => {
                    error!(kind, error = %e, "internal error handling a message");
                    vec![internal(&e.to_string())]
                }
                Err(e) => {
                    error!(kind, error = %e, "the handler task failed");
                    vec![internal("the node failed while handling the message")]
                }
            }
        })
    }
}

fn internal(detail: &str) -> Message {
    Message::Refused {
        code: kobling_protocol::bounded::BoundedString::new("internal").unwrap_or_default(),
        detail: kobling_protocol::bounded::BoundedString::new(
            detail.chars().take(1000).collect::<String>(),
        )
        .unwrap_or_default(),
    }
}

/// How a node runs, beyond its directory and manifest.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    /// The address to listen on (default: the node's manifest address; a
    /// host name resolves to its first address).
    pub(crate) listen: Option<String>,
    /// Points per chunk in the lists this node announces.
    pub(crate) chunk_size: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: None,
            chunk_size: kobling_protocol::hop::DEFAULT_CHUNK_SIZE,
        }
    }
}

/// Runs the node in `dir` until `shutdown` resolves.
pub(crate) async fn run(
    dir: &Path,
    manifest: Manifest,
    passphrase: Option<&str>,
    options: &Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let keystore =
        Keystore::open(dir.join("keys"), passphrase).context("cannot open the node's keystore")?;
    let me = manifest
        .member_by_tls(&kobling_protocol::manifest::Key32(keystore.tls_spki_sha256()))
        .map(|m| m.name.clone())
        .ok_or_else(|| anyhow!("this keystore's TLS key is in no member's manifest entry: add the entry `kobling keys init` printed"))?;
    let member = manifest.member(&me).context("member")?.clone();
    let identity = TlsIdentity::from_keystore(&keystore).context("the keystore's TLS identity")?;
    let store = Store::open(dir).context("cannot open the node's state database")?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow!("no OS randomness: {e}"))?;
    let engine = Arc::new(Mutex::new(
        Engine::new(me.clone(), manifest.clone(), keystore, store, seed)?
            .with_chunk_size(options.chunk_size),
    ));
    let manifest = Arc::new(manifest);

    let bind = listen_address(&member.address, options.listen.as_deref()).await?;
    let limits = TransportLimits::default();
    let endpoint = server_endpoint(bind, &identity, manifest.clone(), &limits)
        .with_context(|| format!("cannot listen on {bind}"))?;
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
    .context("client configuration")?;
    info!(node = %me, role = ?member.role, %bind, advertised = %member.address, "node running");

    let (wake, woken) = watch::channel(());
    let (stop, stopped) = watch::channel(false);
    let handler = Arc::new(NodeHandler {
        engine: engine.clone(),
        wake: wake.clone(),
    });
    let sender = tokio::spawn(send_loop(
        engine.clone(),
        client,
        me.clone(),
        woken,
        stopped.clone(),
    ));
    let ticker = tokio::spawn(tick_loop(engine.clone(), wake, stopped));
    let mut stop_rx = stop.subscribe();
    // A request cut off by the drain deadline is harmless: every step
    // commits atomically, and its sender retries it.
    let settings = ServerSettings {
        drain_timeout: Duration::from_secs(2),
        ..ServerSettings::default()
    };
    let server = tokio::spawn(serve(endpoint, manifest, handler, settings, async move {
        let _ = stop_rx.changed().await;
    }));
    shutdown.await;
    info!(node = %me, "shutting down");
    let _ = stop.send(true);
    let _ = server.await;
    let _ = sender.await;
    let _ = ticker.await;
    info!(node = %me, "stopped");
    Ok(())
}

/// The socket address to bind: `listen` as given, or else the manifest
/// `address`'s port on the unspecified address (on loopback if the
/// manifest address is a loopback one).
async fn listen_address(address: &str, listen: Option<&str>) -> anyhow::Result<SocketAddr> {
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
async fn resolve(address: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(address)
        .await
        .with_context(|| format!("cannot resolve {address}"))?
        .next()
        .ok_or_else(|| anyhow!("no address for {address}"))
}

async fn tick_loop(
    engine: Arc<Mutex<Engine>>,
    wake: watch::Sender<()>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
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
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(error = %e, "tick failed"),
            Err(e) => error!(error = %e, "tick task failed"),
        }
        let _ = wake.send(());
    }
}

/// Drains the outbox: per destination in order; a `not-ready` refusal or a
/// connection failure stops that destination until the next round.
async fn send_loop(
    engine: Arc<Mutex<Engine>>,
    client: Client,
    me: Name,
    mut woken: watch::Receiver<()>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff: BTreeMap<Name, Duration> = BTreeMap::new();
    loop {
        let batch = {
            let engine = engine.clone();
            tokio::task::spawn_blocking(move || {
                engine
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .outbox(256)
            })
            .await
        };
        let batch = match batch {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                error!(error = %e, "cannot read the outbox");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        let mut blocked: HashSet<Name> = HashSet::new();
        let mut progress = false;
        for (id, dest, msg) in batch {
            if blocked.contains(&dest) || *stopped.borrow() {
                continue;
            }
            let kind = msg.kind();
            let reply = if dest == me {
                let engine = engine.clone();
                let me = me.clone();
                tokio::task::spawn_blocking(move || {
                    engine
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .handle(&Peer::Member(me), msg, unix_now())
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
                .map(|mut r| r.remove(0))
            } else {
                client.request(&dest, &msg).await.map_err(|e| e.to_string())
            };
            match reply {
                Ok(Message::Ack { .. }) => {
                    progress = true;
                    backoff.remove(&dest);
                    let engine = engine.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        engine
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .acked(id)
                    })
                    .await;
                }
                Ok(Message::Refused { code, detail }) if code.as_str() == "not-ready" => {
                    debug!(%dest, kind, %detail, "not ready; retrying later");
                    blocked.insert(dest);
                }
                Ok(Message::Refused { code, detail }) => {
                    error!(%dest, kind, %code, %detail, "message refused; dropped");
                    let engine = engine.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        engine
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .acked(id)
                    })
                    .await;
                }
                Ok(other) => {
                    warn!(%dest, kind, reply = other.kind(), "unexpected reply; retrying later");
                    blocked.insert(dest);
                }
                Err(e) => {
                    let wait = backoff
                        .entry(dest.clone())
                        .or_insert(Duration::from_millis(200));
                    warn!(%dest, kind, error = %e, retry_in = ?*wait, "cannot deliver; retrying later");
                    *wait = (*wait * 2).min(Duration::from_secs(10));
                    blocked.insert(dest);
                }
            }
        }
        if progress {
            continue;
        }
        let wait = backoff
            .values()
            .min()
            .copied()
            .unwrap_or(Duration::from_millis(500))
            .min(Duration::from_millis(500));
        tokio::select! {
            _ = stopped.changed() => break,
            _ = woken.changed() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
    // Our connections to the other nodes keep the shared endpoint busy:
    // close them so the server's drain ends promptly.
    client.close();
}
