//! The node's outbox sender: one task per destination, so that a peer
//! that is down, slow or cut off delays only the messages queued for it.
//!
//! ```text
//!  Engine outbox (SQLite) ──outbox_to(dest)──▶ task per member ──▶ Client::request / loopback
//!        ▲                                          │ Ack: acked(id), next
//!        └──────────── acked(id) ◀──────────────────┤ Refused (final): logged, acked(id)
//!                                                   │ Refused "not-ready": wait for a wake-up
//!                                                   └ no answer: back off 200 ms … 10 s, retry
//! ```
//!
//! Messages to one destination go strictly in outbox order, one at a time
//! (a chunk must follow the one before it). Destinations are independent.
//! Every task stops when `stopped` turns true; the caller then closes the
//! client's connections.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use kobling_protocol::{messages::Message, refusal::RefusalCode, types::Name};
use tokio::{sync::watch, task::JoinSet};
use tracing::{debug, error, info, warn};

use crate::{
    daemon::unix_now,
    engine::{Engine, Peer},
    metrics::Metrics,
    net::{client::Client, ErrorChain},
};

/// Messages read from the outbox at a time, per destination.
const BATCH: usize = 64;
/// First wait after a failed delivery; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between attempts to reach a peer.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Longest wait for a wake-up before looking at the outbox again.
const IDLE: Duration = Duration::from_millis(500);
/// Shortest wait before a `not-ready` message is offered again.
const NOT_READY_PAUSE: Duration = Duration::from_millis(20);

/// Runs one sender per member of `members` (this node `me` included: its
/// own statements go through a loopback) until `stopped` turns true.
pub(crate) async fn run(
    engine: Arc<Mutex<Engine>>,
    client: Arc<Client>,
    me: Name,
    members: Vec<Name>,
    woken: watch::Receiver<()>,
    stopped: watch::Receiver<bool>,
    metrics: Option<Arc<Metrics>>,
) {
    let mut tasks = JoinSet::new();
    for dest in members {
        tasks.spawn(send_to(
            engine.clone(),
            client.clone(),
            me.clone(),
            dest,
            woken.clone(),
            stopped.clone(),
            metrics.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}
}

/// What became of one delivery attempt.
enum Outcome {
    /// Delivered (acknowledged, or refused for good and dropped).
    Done,
    /// The destination is not ready for it: offer it again later.
    NotReady,
    /// No answer (why): back off.
    Failed(String),
}

async fn send_to(
    engine: Arc<Mutex<Engine>>,
    client: Arc<Client>,
    me: Name,
    dest: Name,
    mut woken: watch::Receiver<()>,
    mut stopped: watch::Receiver<bool>,
    metrics: Option<Arc<Metrics>>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        if *stopped.borrow() {
            return;
        }
        let batch = {
            let engine = engine.clone();
            let dest = dest.clone();
            tokio::task::spawn_blocking(move || lock(&engine).outbox_to(&dest, BATCH)).await
        };
        let batch = match batch {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                error!(%dest, error = %e, "cannot read the outbox");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        // Mark the wake-ups seen so far as handled: one that arrives while
        // this batch is being sent makes the wait below return at once.
        woken.borrow_and_update();
        let mut wait = if batch.is_empty() {
            IDLE
        } else {
            Duration::ZERO
        };
        for (id, msg) in batch {
            if *stopped.borrow() {
                return;
            }
            // Abandoning a delivery is safe: the message stays queued, and
            // a receiver acknowledges a message it already has.
            let outcome = tokio::select! {
                _ = stopped.changed() => return,
                outcome = deliver(&engine, &client, &me, &dest, msg, metrics.as_deref()) => outcome,
            };
            if let Some(m) = &metrics {
                m.peer_up(dest.as_str(), !matches!(outcome, Outcome::Failed(_)));
            }
            match outcome {
                Outcome::Done => {
                    backoff = FIRST_BACKOFF;
                    let engine = engine.clone();
                    let _ = tokio::task::spawn_blocking(move || lock(&engine).acked(id)).await;
                }
                Outcome::NotReady => {
                    backoff = FIRST_BACKOFF;
                    wait = IDLE;
                    tokio::select! {
                        _ = stopped.changed() => return,
                        () = tokio::time::sleep(NOT_READY_PAUSE) => {}
                    }
                    break;
                }
                Outcome::Failed(why) => {
                    warn!(%dest, error = %why, retry_in = ?backoff, "cannot deliver; retrying later");
                    tokio::select! {
                        _ = stopped.changed() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    break;
                }
            }
        }
        if wait > Duration::ZERO {
            tokio::select! {
                _ = stopped.changed() => return,
                _ = woken.changed() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// One attempt to deliver `msg` to `dest` (to this node's own engine if
/// `dest` is `me`).
async fn deliver(
    engine: &Arc<Mutex<Engine>>,
    client: &Client,
    me: &Name,
    dest: &Name,
    msg: Message,
    metrics: Option<&Metrics>,
) -> Outcome {
    let kind = msg.kind();
    let reply = if dest == me {
        let engine = engine.clone();
        let me = me.clone();
        tokio::task::spawn_blocking(move || {
            lock(&engine).handle(&Peer::Member(me), msg, unix_now())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .and_then(|r| r.into_iter().next().ok_or_else(|| "no reply".to_string()))
    } else {
        client
            .request(dest, &msg)
            .await
            .map_err(|e| format!("{kind}: {}", ErrorChain(&e)))
    };
    if let (Some(m), Ok(Message::Refused { code, .. })) = (metrics, &reply) {
        m.refused_by(dest.as_str(), code.as_str());
    }
    match reply {
        Ok(Message::Ack { .. }) => Outcome::Done,
        Ok(Message::Refused { code, detail }) => match RefusalCode::from_wire(code.as_str()) {
            RefusalCode::NotReady => {
                debug!(%dest, kind, %detail, "not ready; retrying later");
                Outcome::NotReady
            }
            RefusalCode::Closed => {
                info!(%dest, kind, %detail, "the project is closed there; message dropped");
                Outcome::Done
            }
            // The receiver failed internally (e.g. its disk is full): the
            // message was not taken; keep it and try again.
            RefusalCode::Internal => {
                Outcome::Failed(format!("{kind}: {dest} failed internally: {detail}"))
            }
            _ => {
                error!(%dest, kind, %code, %detail, "message refused; dropped");
                Outcome::Done
            }
        },
        Ok(other) => Outcome::Failed(format!("{kind}: unexpected reply {}", other.kind())),
        Err(e) => Outcome::Failed(e),
    }
}

fn lock(engine: &Mutex<Engine>) -> std::sync::MutexGuard<'_, Engine> {
    engine.lock().unwrap_or_else(PoisonError::into_inner)
}
