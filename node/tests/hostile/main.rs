//! Hostile peers against real nodes: four node daemons (NPR, SSB, RESEPT
//! and the linker, `kobling_node::daemon::run`) serving QUIC on
//! 127.0.0.1, and KPR played by the test — an honest engine, served over
//! QUIC like a daemon, whose outgoing messages the test can hold, tamper
//! with and replay, sent with KPR's own pinned certificate (so every
//! forgery comes from a genuine member, and the previous hop of the list it
//! attacks).
//!
//! ```text
//!   researcher / operators (no certificate) ──▶ daemons, KPR
//!   KPR engine ── outbox ──▶ hold? ──▶ honest send ──▶ daemons
//!                              └──▶ test: tampered copies, replays, forgeries ──▶ SSB, LINKER, NPR
//!   stranger (certificate outside the manifest) ──▶ daemons
//! ```
//!
//! Every refusal must be an answer with a stable code (or, for broken
//! framing, a closed connection) and a log line naming the reason — never
//! an identifier — and the nodes must go on to deliver exactly the ground
//! truth. The daemons' log lines are captured from the test's runtime.
//!
//! One test per attack, all on one federation (started by the first test
//! to run): the attacks on a chunk use KPR's first chunk of NPR's list in
//! project `HOSTILE-1`, held back for good. The test that finishes last
//! checks the whole log and stops the nodes (see [`attack`]).

mod chunks;
mod delivery;
mod harness;
mod lifecycle;
mod members;
mod transport;

use std::{
    future::Future,
    sync::{
        atomic::{AtomicUsize, Ordering},
        OnceLock,
    },
};

use kobling_node::net::client::ClientError;
use kobling_protocol::{
    messages::Message,
    share::Domain,
    types::{ChunkIndex, HopIndex, Name},
    v2::{ChunkMsg, ListHeader},
};
use tokio::runtime::Runtime;

use harness::{list_name, lock, name, pid, Fed, Logs, REGISTERS};

/// The project whose chunk KPR holds.
pub(crate) const P1: &str = "HOSTILE-1";

/// What every test attacks.
pub(crate) struct Shared {
    rt: Runtime,
    dispatch: tracing::Dispatch,
    logs: Logs,
    pub(crate) fed: Fed,
    /// KPR's honest first chunk of NPR's list in [`P1`], held: SSB never
    /// received it.
    pub(crate) honest: ChunkMsg,
    /// NPR's list's header in [`P1`], that KPR signs its chunk statements
    /// over.
    pub(crate) header: ListHeader,
}

static SHARED: OnceLock<Shared> = OnceLock::new();
/// Tests finished, passed or failed.
static FINISHED: AtomicUsize = AtomicUsize::new(0);

fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        let logs = Logs::default();
        let (rt, dispatch) = harness::runtime(&logs);
        let _default = tracing::dispatcher::set_default(&dispatch);
        let (fed, honest, header) = rt.block_on(async {
            let fed = Fed::start().await;
            // Hold KPR's first chunk of NPR's list (KPR is its hop 1; SSB
            // hop 2).
            fed.kpr.hold(|_, m| first_chunk(m, P1));
            fed.run_project(P1, &REGISTERS).await;
            let (dest, held) = fed.kpr.caught(true, |m| first_chunk(m, P1)).await;
            assert_eq!(dest, name("SSB"));
            let Message::ChunkV2 { chunk: honest, .. } = held else {
                panic!("held {held:?}")
            };
            assert!(honest.points.len() >= 3, "a chunk to tamper with");
            let header = {
                let entries = lock(&fed.kpr.engine).transcript(&pid(P1)).expect("entries");
                let view = kobling_protocol::project::ProjectView::new(&fed.manifest, &entries);
                view.v2_list(&list_name("NPR"))
                    .expect("NPR's list is announced at KPR")
                    .header(Domain::Project(pid(P1)))
            };
            (fed, honest, header)
        });
        Shared {
            rt,
            dispatch,
            logs,
            fed,
            honest,
            header,
        }
    })
}

/// Whether `m` is KPR's first chunk of NPR's list in `project` (KPR is
/// its hop 1; SSB hop 2).
pub(crate) fn first_chunk(m: &Message, project: &str) -> bool {
    matches!(m, Message::ChunkV2 { project: p, chunk: c } if p.as_str() == project
        && c.list.as_str() == "NPR"
        && c.statement.statement.hop == HopIndex(1)
        && c.statement.statement.chunk == ChunkIndex(0))
}

/// `c` as a message of `project`.
pub(crate) fn chunk_to(project: &str, c: ChunkMsg) -> Message {
    Message::ChunkV2 {
        project: pid(project),
        chunk: c,
    }
}

/// Counts a test that panicked.
struct Finished;

impl Drop for Finished {
    fn drop(&mut self) {
        if std::thread::panicking() {
            FINISHED.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The number of tests in this binary: its sources' test attributes.
fn tests() -> usize {
    [
        include_str!("chunks.rs"),
        include_str!("delivery.rs"),
        include_str!("lifecycle.rs"),
        include_str!("members.rs"),
        include_str!("transport.rs"),
    ]
    .iter()
    .map(|s| s.matches(concat!("#[", "test]")).count())
    .sum()
}

/// Runs one attack on the shared federation. The last test to finish
/// (when the whole binary runs) then checks that every refusal was logged
/// with its reason and no log line holds an identifier, and stops the
/// nodes, each of which must stop cleanly.
pub(crate) fn attack<F, Fut>(test: F)
where
    F: FnOnce(&'static Shared) -> Fut,
    Fut: Future<Output = ()>,
{
    let _counted = Finished;
    let s = shared();
    let _default = tracing::dispatcher::set_default(&s.dispatch);
    s.rt.block_on(test(s));
    if FINISHED.fetch_add(1, Ordering::SeqCst) + 1 == tests() {
        s.rt.block_on(finish(s));
    }
}

async fn finish(s: &Shared) {
    // KPR's honest messages were never refused.
    assert_eq!(*harness::lock(&s.fed.kpr.refused), Vec::<String>::new());
    let identifiers = s.fed.identifiers();
    s.fed.stop().await;

    // Every refusal was logged with its reason, and no log line holds an
    // identifier.
    let text = s.logs.text();
    for reason in [
        "code=\"bad-chunk\"",
        "code=\"unknown-project\"",
        "code=\"unknown-list\"",
        "code=\"unexpected-sender\"",
        "code=\"impersonation\"",
        "code=\"unexpected\"",
        "code=\"closed\"",
        "bad frame; closing connection",
        "handshake refused or failed",
    ] {
        assert!(text.contains(reason), "no log line with {reason}");
    }
    assert!(!text.contains("panicked"));
    assert!(identifiers.len() > 100);
    eprintln!(
        "FIGURES {} log lines, none holds any of {} identifiers",
        text.lines().count(),
        identifiers.len()
    );
    for id in &identifiers {
        assert!(!text.contains(id.as_str()), "an identifier in the logs");
    }
}

/// The code of a refusal (panics on anything else).
pub(crate) fn code(reply: Result<Message, ClientError>) -> String {
    match reply {
        Ok(Message::Refused { code, .. }) => code.into_inner(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// KPR's request to `dest`: the code of its refusal.
pub(crate) async fn from_kpr(s: &Shared, dest: &Name, m: Message) -> String {
    code(s.fed.kpr.client.request(dest, &m).await)
}

/// KPR's chunk message `m` to SSB: the code of its refusal. SSB may not
/// have the list's announcement yet: `not-ready` is the honest answer
/// then, so ask again until it has.
pub(crate) async fn to_ssb(s: &Shared, m: Message) -> String {
    for _ in 0..300 {
        let answer = from_kpr(s, &name("SSB"), m.clone()).await;
        if answer != "not-ready" {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    "still not-ready after 30 s".to_string()
}
