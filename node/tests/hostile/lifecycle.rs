//! Replays and closed projects, each on a project of its own that runs
//! beside the attacks on `HOSTILE-1`: the nodes go on serving and deliver
//! exactly.

use ed25519_dalek::SigningKey;
use kobling_node::daemon::unix_now;
use kobling_protocol::{
    bounded::{BoundedBytes, BoundedVec},
    group::WirePoint,
    messages::Message,
    seal::SealedItem,
    share::Domain,
    transcript::{Body, KeyCommitment, Signer, Statement},
    types::Position,
};
use tokio::sync::OnceCell;

use crate::{
    attack, first_chunk, from_kpr,
    harness::{list_name, name, pid, REGISTERS},
    to_ssb, Shared,
};

/// A project that is delivered (its delivery is the tests' to fetch).
pub(crate) const P2: &str = "HOSTILE-2";
/// A project delivered and then closed.
const P3: &str = "HOSTILE-3";

static RUN: OnceCell<()> = OnceCell::const_new();
static CLOSED: OnceCell<()> = OnceCell::const_new();

/// KPR's first chunk of NPR's list in `project`, as it went to SSB.
async fn sent_chunk(s: &Shared, project: &'static str) -> Message {
    let (dest, m) = s.fed.kpr.caught(false, |m| first_chunk(m, project)).await;
    assert_eq!(dest, name("SSB"));
    m
}

/// [`P2`], ordered and approved (once), KPR's first chunk copied.
pub(crate) async fn run_p2(s: &Shared) {
    RUN.get_or_init(|| async {
        s.fed.kpr.copy(|_, m| first_chunk(m, P2));
        s.fed.run_project(P2, &REGISTERS).await;
    })
    .await;
}

/// [`P3`], delivered exactly and closed (once).
async fn closed(s: &Shared) {
    CLOSED
        .get_or_init(|| async {
            s.fed.kpr.copy(|_, m| first_chunk(m, P3));
            s.fed.run_project(P3, &REGISTERS).await;
            s.fed.fetch_and_check(P3, &REGISTERS).await;
            s.fed.close(P3).await;
        })
        .await;
}

#[test]
fn a_replayed_chunk_is_acknowledged_and_not_processed_again() {
    // The honest chunk went; replays of it are acknowledged without being
    // processed again (the delivery is still exact).
    attack(|s| async move {
        run_p2(s).await;
        let honest = sent_chunk(s, P2).await;
        for _ in 0..3 {
            let reply = s
                .fed
                .kpr
                .client
                .request(&name("SSB"), &honest)
                .await
                .expect("reply");
            assert!(matches!(reply, Message::Ack { .. }), "{reply:?}");
        }
        s.fed.fetch_and_check(P2, &REGISTERS).await;
    });
}

#[test]
fn a_chunk_for_a_closed_project_is_refused() {
    attack(|s| async move {
        closed(s).await;
        let honest = sent_chunk(s, P3).await;
        assert_eq!(
            to_ssb(s, honest).await,
            "closed",
            "a chunk for a closed project"
        );
    });
}

#[test]
fn sealed_items_for_a_closed_project_are_refused() {
    attack(|s| async move {
        closed(s).await;
        let kpr_items = Message::SealedItems {
            project: pid(P3),
            list: list_name("KPR"),
            first: Position(0),
            items: BoundedVec::new(vec![SealedItem(
                BoundedBytes::new(vec![0; 256]).expect("fits"),
            )])
            .expect("fits"),
        };
        assert_eq!(
            from_kpr(s, &name("LINKER"), kpr_items).await,
            "closed",
            "items for a closed project"
        );
    });
}

#[test]
fn a_statement_for_a_closed_project_is_refused() {
    attack(|s| async move {
        closed(s).await;
        let kpr = name("KPR");
        let kpr_key = SigningKey::from_bytes(&s.fed.keystore("KPR").signing_key().to_bytes());
        let late = Message::Statement(
            Statement {
                project: pid(P3),
                time: unix_now(),
                signer: Signer::Node(kpr.clone()),
                body: Body::Commitment(KeyCommitment {
                    member: kpr,
                    domain: Domain::Project(pid(P3)),
                    key: WirePoint([1; 32]),
                }),
            }
            .sign(&kpr_key),
        );
        assert_eq!(
            from_kpr(s, &name("LINKER"), late).await,
            "closed",
            "a statement for a closed project"
        );
    });
}
