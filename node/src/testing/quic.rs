//! Pieces for tests that play a member over real QUIC (the hostile-peer
//! tests in `node/tests/hostile/`): an engine served as the daemon serves
//! its own, raw frames on a member's connection, and the researcher's
//! opening of a delivery.
//!
//! ```text
//!  serve_engine: server::run ──▶ Engine::handle ──▶ Engine::tick ──▶ replies
//!  send_raw: Client::connect ──▶ bidi stream ──▶ bytes as given ──▶ close code
//!  open_delivery: replies to a fetch ──▶ researcher::open_delivery ──▶ Opened
//! ```

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
};

use kobling_protocol::{
    link::Lnr, manifest::Manifest, messages::Message, seal::HpkeSecretKey,
    transcript::VerifiedTranscript, types::Name,
};
use quinn::Endpoint;

use super::TestingError;
use crate::{
    daemon::{internal, unix_now},
    engine::{Engine, Peer},
    net::{
        client::Client,
        frame,
        peer::Peer as NetPeer,
        server::{self, Handler, HandlerFuture, ServerSettings},
        CloseCode,
    },
};

/// Serves one engine, handling each request and then ticking, on the
/// blocking pool as the daemon does.
struct EngineHandler(Arc<Mutex<Engine>>);

impl Handler for EngineHandler {
    fn handle<'a>(&'a self, peer: Option<&'a NetPeer>, request: Message) -> HandlerFuture<'a> {
        let from = peer.map_or(Peer::Client, |p| Peer::Member(p.name.clone()));
        let engine = self.0.clone();
        Box::pin(async move {
            let replies = tokio::task::spawn_blocking(move || {
                let mut engine = engine.lock().unwrap_or_else(PoisonError::into_inner);
                let replies = engine.handle(&from, request, unix_now());
                // A failed tick is the next request's (or the test's) to see.
                let _ = engine.tick(unix_now());
                replies.unwrap_or_else(|_| vec![internal()])
            })
            .await
            .unwrap_or_else(|_| vec![internal()]);
            Box::new(replies.into_iter()) as server::Replies
        })
    }
}

/// Serves `engine` on `endpoint` (a server endpoint with the member's
/// identity) to `manifest`'s members and to clients, with the daemon's
/// server, until `shutdown` resolves.
pub async fn serve_engine(
    endpoint: Endpoint,
    manifest: Arc<Manifest>,
    engine: Arc<Mutex<Engine>>,
    shutdown: impl Future,
) {
    server::run(
        endpoint,
        manifest,
        Arc::new(EngineHandler(engine)),
        ServerSettings::default(),
        shutdown,
    )
    .await;
}

/// Writes `bytes` as they are on a new stream of `client`'s connection to
/// `to`, checks that no reply comes back, and returns the code the node
/// closed the connection with (`None`: another close). Bytes that break
/// the framing close the whole connection: give a client whose
/// connections nothing else uses.
///
/// # Errors
///
/// [`TestingError::Unexpected`] if the connection or stream cannot be
/// opened, or if the node replied.
pub async fn send_raw(
    client: &Client,
    to: &Name,
    bytes: &[u8],
) -> Result<Option<CloseCode>, TestingError> {
    let unexpected = |e: &dyn std::fmt::Display| TestingError::Unexpected(e.to_string());
    let conn = client.connect(to).await.map_err(|e| unexpected(&e))?;
    let (mut send, mut recv) = conn.quinn().open_bi().await.map_err(|e| unexpected(&e))?;
    send.write_all(bytes).await.map_err(|e| unexpected(&e))?;
    let _ = send.finish();
    if let Ok(reply) = frame::read_message(&mut recv).await {
        return Err(TestingError::Unexpected(format!(
            "the node answered raw bytes with {:?}",
            reply.map(|m| m.kind())
        )));
    }
    Ok(match conn.quinn().closed().await {
        quinn::ConnectionError::ApplicationClosed(c) => CloseCode::from_varint(c.error_code),
        _ => None,
    })
}

/// A delivery as the researcher's client opened it.
#[derive(Debug)]
pub struct Opened {
    /// Per register: (lnr, row values) of every delivered row.
    pub tables: BTreeMap<Name, Vec<(Lnr, Vec<String>)>>,
    /// What the researcher's verification established.
    pub verified: VerifiedTranscript,
    /// The transcript file as received.
    pub transcript_file: Vec<u8>,
}

/// Verifies and opens the linker's replies to a fetch, as `kobling
/// project fetch` does.
///
/// # Errors
///
/// [`TestingError::Unexpected`] with the client's reason (all its causes)
/// if the delivery does not verify.
pub fn open_delivery(
    manifest: &Manifest,
    researcher_hpke: &HpkeSecretKey,
    replies: Vec<Message>,
) -> Result<Opened, TestingError> {
    let delivered = crate::researcher::open_delivery(manifest, researcher_hpke, replies)
        .map_err(|e| TestingError::Unexpected(format!("{e:#}")))?;
    Ok(Opened {
        tables: delivered
            .tables
            .into_iter()
            .map(|(list, t)| (list.into_owner(), t.rows))
            .collect(),
        verified: delivered.verified,
        transcript_file: delivered.transcript,
    })
}
