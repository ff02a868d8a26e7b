//! Hostile peers against real nodes: four node daemons (NPR, SSB, RESEPT
//! and the linker, [`crate::daemon::run`]) serving QUIC on 127.0.0.1, and
//! KPR played by the test — an honest engine, served over QUIC like a
//! daemon, whose outgoing messages the test can hold, tamper with and
//! replay, sent with KPR's own pinned certificate (so every forgery comes
//! from a genuine member, and the previous hop of the list it attacks).
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

mod delivery;
mod harness;

use std::time::Duration;

use ed25519_dalek::SigningKey;
use kobling_keys::{KdfParams, Keystore};
use kobling_protocol::{
    bounded::{BoundedBytes, BoundedVec},
    group::WirePoint,
    hop::PointChunk,
    manifest::Key32,
    messages::{self, Message, MAX_FRAME},
    seal::{SealedItem, WrappedKey},
    share::Domain,
    transcript::{Body, KeyCommitment, Signer, Statement},
    types::{Name, Position},
    v2::ChunkMsg,
};
use tokio::time::{sleep, Instant};

use crate::{
    daemon::unix_now,
    net::{
        client::{Client, ClientError},
        endpoint::{client_endpoint, TransportLimits},
        tls::TlsIdentity,
        CloseCode,
    },
};

use harness::{lock, name, pid, runtime, settings, Fed, Logs, LIVENESS, REGISTERS};

/// The code of a refusal (panics on anything else).
fn code(reply: Result<Message, ClientError>) -> String {
    match reply {
        Ok(Message::Refused { code, .. }) => code.into_inner(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Writes `bytes` on a new stream of a fresh connection to `to` and
/// returns how the node closed the connection.
async fn send_raw(client: &Client, to: &Name, bytes: &[u8]) -> Option<CloseCode> {
    let conn = client.connect(to).await.expect("connect");
    let (mut send, mut recv) = conn.quinn().open_bi().await.expect("stream");
    send.write_all(bytes).await.expect("write");
    let _ = send.finish();
    assert!(crate::net::frame::read_message(&mut recv).await.is_err());
    match conn.quinn().closed().await {
        quinn::ConnectionError::ApplicationClosed(c) => CloseCode::from_varint(c.error_code),
        _ => None,
    }
}

/// `Message::Points` with `n` output points, as raw postcard bytes: a
/// message no honest encoder can produce when `n` exceeds the limit.
fn points_bytes(chunk: &PointChunk, n: usize) -> Vec<u8> {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let probe = messages::encode(&Message::Points(chunk.clone()));
    let tag = probe[0]; // the variant index of `Points` (< 128)
    let mut out = vec![tag];
    for s in [chunk.project.as_str(), chunk.list.as_str()] {
        varint(s.len() as u64, &mut out);
        out.extend_from_slice(s.as_bytes());
    }
    varint(u64::from(chunk.hop), &mut out);
    varint(chunk.chunk, &mut out);
    varint(0, &mut out); // no input
    varint(n as u64, &mut out);
    let point = chunk.output[0].0;
    for _ in 0..n {
        out.extend_from_slice(&point);
    }
    out.push(0); // no proof
    out
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[test]
fn hostile_peers_are_refused_with_a_reason_and_the_nodes_deliver_exactly() {
    let logs = Logs::default();
    let (rt, dispatch) = runtime(&logs);
    let _default = tracing::dispatcher::set_default(&dispatch);
    rt.block_on(async {
        let fed = Fed::start().await;
        let (kpr, ssb, npr, linker) = (name("KPR"), name("SSB"), name("NPR"), name("LINKER"));
        let p1 = "HOSTILE-1";

        // Hold KPR's first chunk of NPR's list (KPR is its hop 1; SSB hop 2).
        fed.kpr.hold(|_, m| {
            matches!(m, Message::ChunkV2 { chunk: c, .. } if c.list.as_str() == "NPR"
                && c.statement.statement.hop == 1 && c.statement.statement.chunk == 0)
        });
        fed.run_project(p1, &REGISTERS).await;
        let (dest, held) = fed.kpr.held().await;
        assert_eq!(dest, ssb);
        let Message::ChunkV2 { chunk: honest, .. } = held.clone() else {
            panic!("held {held:?}")
        };
        assert!(honest.points.len() >= 3, "a chunk to tamper with");
        let chunk_to = |project: &str, c: ChunkMsg| Message::ChunkV2 {
            project: pid(project),
            chunk: c,
        };
        let to_ssb = |m: Message| {
            let client = fed.kpr.client.clone();
            let ssb = ssb.clone();
            // SSB may not have the list's announcement yet: `not-ready` is
            // the honest answer then, so ask again until it has.
            async move {
                for _ in 0..300 {
                    let answer = code(client.request(&ssb, &m).await);
                    if answer != "not-ready" {
                        return answer;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                "still not-ready after 30 s".to_string()
            }
        };
        // KPR's own key signs a tampered chunk's statement, so that SSB's
        // checks reach the points (chain v2: statements over digests).
        let kpr_key = SigningKey::from_bytes(&fed.keystore("KPR").signing_key().to_bytes());
        let header = {
            let entries = lock(&fed.kpr.engine).transcript(&pid(p1)).expect("entries");
            let view = kobling_protocol::project::ProjectView::new(&fed.manifest, &entries);
            view.v2_list(&npr)
                .expect("NPR's list is announced at KPR")
                .header(Domain::Project(pid(p1)))
        };
        let signed = |mut c: ChunkMsg, points: Vec<WirePoint>| {
            c.statement.statement.count = points.len() as u32;
            c.statement.statement.output = kobling_protocol::v2::chunk_digest(&points);
            c.statement.signature = c.statement.statement.sign(&header, &kpr_key);
            c.points = BoundedVec::new(points).expect("fits");
            chunk_to(p1, c)
        };

        // Chunks that break the chain, from the list's genuine previous hop.
        let mut out = honest.points.to_vec();
        out[2] = WirePoint([0xff; 32]);
        assert_eq!(to_ssb(signed(honest.clone(), out)).await, "bad-chunk", "an invalid point encoding");

        let mut out = honest.points.to_vec();
        out[2] = WirePoint([0; 32]);
        assert_eq!(to_ssb(signed(honest.clone(), out)).await, "bad-chunk", "the identity point");

        let mut out = honest.points.to_vec();
        out.pop();
        assert_eq!(
            to_ssb(signed(honest.clone(), out)).await,
            "bad-chunk",
            "a count that disagrees with the announcement"
        );

        let mut c = honest.clone();
        c.statement.signature.0[0] ^= 1;
        assert_eq!(to_ssb(chunk_to(p1, c)).await, "bad-chunk", "a statement signature that does not verify");

        let mut c = honest.clone();
        let mut out = c.points.to_vec();
        out.swap(0, 1);
        c.points = BoundedVec::new(out).expect("fits");
        assert_eq!(to_ssb(chunk_to(p1, c)).await, "bad-chunk", "valid points that are not the signed ones");

        let mut c = honest.clone();
        c.input = c.points.clone();
        assert_eq!(to_ssb(chunk_to(p1, c)).await, "bad-chunk", "strict-mode fields in an optimistic attempt");

        let mut c = honest.clone();
        c.statement.statement.hop = u32::MAX;
        assert_eq!(to_ssb(chunk_to(p1, c)).await, "bad-chunk", "a hop past the chain");

        let mut c = honest.clone();
        c.statement.statement.chunk = 1 << 40;
        assert_eq!(to_ssb(chunk_to(p1, c)).await, "bad-chunk", "a chunk past the list");

        assert_eq!(to_ssb(chunk_to("NO-SUCH-PROJECT", honest.clone())).await, "unknown-project");

        let mut c = honest.clone();
        c.list = linker.clone();
        assert_eq!(to_ssb(chunk_to(p1, c)).await, "unknown-list");

        let mut c = honest.clone();
        c.statement.statement.hop = 0; // as if KPR were NPR, the owner
        assert_eq!(to_ssb(chunk_to(p1, c)).await, "unexpected-sender");

        // A member speaking for another (to the linker, which records).
        let npr_key = SigningKey::from_bytes(&fed.keystore("NPR").signing_key().to_bytes());
        let commitment = |key: &SigningKey, signer: Signer| {
            Message::Statement(
                Statement {
                    project: pid(p1),
                    time: unix_now(),
                    signer,
                    body: Body::Commitment(KeyCommitment {
                        member: name("NPR"),
                        domain: Domain::Project(pid(p1)),
                        key: WirePoint([1; 32]),
                    }),
                }
                .sign(key),
            )
        };
        let to = |dest: &Name, m: Message| {
            let client = fed.kpr.client.clone();
            let dest = dest.clone();
            async move { code(client.request(&dest, &m).await) }
        };
        assert_eq!(
            to(&linker, commitment(&npr_key, Signer::Node(npr.clone()))).await,
            "impersonation",
            "a statement signed with another member's (stolen) key"
        );
        assert_eq!(
            to(&linker, commitment(&kpr_key, Signer::Node(npr.clone()))).await,
            "impersonation",
            "a statement claiming another member's name"
        );
        let op = &fed.operators[&npr][0];
        assert_eq!(
            to(
                &linker,
                commitment(
                    op,
                    Signer::Operator {
                        register: npr.clone(),
                        key: Key32(op.verifying_key().to_bytes()),
                    }
                )
            )
            .await,
            "impersonation",
            "another register's operator statement"
        );
        let wrapped = WrappedKey {
            enc: [3; 32],
            ciphertext: BoundedBytes::new(vec![4; 48]).expect("fits"),
        };
        assert_eq!(
            to(
                &linker,
                Message::Blinding {
                    project: pid(p1),
                    list: npr.clone(),
                    sealed: wrapped.clone(),
                }
            )
            .await,
            "unexpected",
            "another owner's list blinding"
        );
        assert_eq!(
            to(
                &linker,
                Message::SealedItems {
                    project: pid(p1),
                    list: npr.clone(),
                    first: Position(0),
                    items: BoundedVec::new(vec![SealedItem(
                        BoundedBytes::new(vec![0; 256]).expect("fits")
                    )])
                    .expect("fits"),
                }
            )
            .await,
            "unexpected",
            "another owner's sealed items"
        );
        assert_eq!(
            to(
                &npr,
                Message::Entries {
                    project: pid(p1),
                    first: 0,
                    entries: BoundedVec::default(),
                }
            )
            .await,
            "unexpected",
            "transcript entries from a register (refused by kind and role, before any state is read)"
        );
        // A member's kind from a client without a member certificate: the
        // transport closes the connection on the frame's first byte, before
        // the body is read (issue 18, item 4).
        match fed.client.request(&ssb, &chunk_to(p1, honest.clone())).await {
            Err(ClientError::Connection(quinn::ConnectionError::ApplicationClosed(c))) => {
                assert_eq!(CloseCode::from_varint(c.error_code), Some(CloseCode::NotAllowed));
            }
            other => panic!("a chunk from a client was not refused unread: {other:?}"),
        }

        // Messages larger than the limits, and broken framing: the
        // connection is closed, the node goes on.
        let too_large = ((MAX_FRAME + 1) as u32).to_le_bytes();
        assert_eq!(
            send_raw(&fed.kpr.client, &ssb, &too_large).await,
            Some(CloseCode::FrameTooLarge)
        );
        let v1_chunk = PointChunk {
            project: pid(p1),
            list: npr.clone(),
            hop: 1,
            chunk: 0,
            input: BoundedVec::default(),
            output: honest.points.clone(),
            proof: None,
        };
        let over = points_bytes(&v1_chunk, kobling_protocol::hop::MAX_CHUNK_POINTS + 1);
        assert!(over.len() < MAX_FRAME);
        assert_eq!(
            send_raw(&fed.kpr.client, &ssb, &frame(&over)).await,
            Some(CloseCode::Malformed),
            "a chunk over the point limit"
        );
        assert_eq!(
            send_raw(&fed.kpr.client, &linker, &frame(&[0xff, 0xff, 0xff])).await,
            Some(CloseCode::Malformed)
        );

        // A peer whose certificate is in no manifest entry.
        let stranger_dir = fed.dir.path().join("stranger");
        let stranger = Keystore::create(
            stranger_dir.join("keys"),
            None,
            KdfParams::default(),
            &["localhost".into()],
        )
        .expect("keystore");
        let stranger = Client::new(
            client_endpoint("127.0.0.1:0".parse().expect("addr")).expect("endpoint"),
            Some(&TlsIdentity::from_keystore(&stranger).expect("identity")),
            fed.manifest.clone(),
            &TransportLimits::default(),
            settings(),
        )
        .expect("client");
        assert!(matches!(
            stranger.request(&ssb, &chunk_to(p1, honest.clone())).await,
            Err(ClientError::Connection(_))
        ));

        // The honest chunk goes, and a replay of it is acknowledged without
        // being processed again (the delivery below is still exact).
        fed.kpr.release();
        let deadline = Instant::now() + LIVENESS;
        while lock(&fed.kpr.engine)
            .outbox_to(&ssb, 1024)
            .expect("outbox")
            .iter()
            .any(|(_, m)| *m == held)
        {
            assert!(Instant::now() < deadline, "the honest chunk never went");
            sleep(Duration::from_millis(50)).await;
        }
        for _ in 0..3 {
            let reply = fed
                .kpr
                .client
                .request(&ssb, &chunk_to(p1, honest.clone()))
                .await
                .expect("reply");
            assert!(matches!(reply, Message::Ack { .. }), "{reply:?}");
        }
        fed.fetch_and_check(p1, &REGISTERS).await;

        // Closed: nothing is processed or stored for the project again.
        fed.close(p1).await;
        assert_eq!(to_ssb(chunk_to(p1, honest.clone())).await, "closed", "a chunk for a closed project");
        let kpr_items = Message::SealedItems {
            project: pid(p1),
            list: kpr.clone(),
            first: Position(0),
            items: BoundedVec::new(vec![SealedItem(
                BoundedBytes::new(vec![0; 256]).expect("fits"),
            )])
            .expect("fits"),
        };
        assert_eq!(to(&linker, kpr_items).await, "closed", "items for a closed project");
        let late = Message::Statement(
            Statement {
                project: pid(p1),
                time: unix_now(),
                signer: Signer::Node(kpr.clone()),
                body: Body::Commitment(KeyCommitment {
                    member: kpr.clone(),
                    domain: Domain::Project(pid(p1)),
                    key: WirePoint([1; 32]),
                }),
            }
            .sign(&kpr_key),
        );
        assert_eq!(to(&linker, late).await, "closed", "a statement for a closed project");

        // Everything else is still served: a new project runs and delivers
        // exactly, and KPR's honest messages were never refused.
        fed.run_project("HOSTILE-2", &REGISTERS).await;
        fed.fetch_and_check("HOSTILE-2", &REGISTERS).await;
        assert_eq!(*lock(&fed.kpr.refused), Vec::<String>::new());

        let identifiers = fed.identifiers();
        stranger.close();
        fed.stop().await;

        // Every refusal was logged with its reason, and no log line holds
        // an identifier.
        let text = logs.text();
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
    });
}
