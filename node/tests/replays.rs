//! Issue 18 item 7 against node processes, over QUIC on 127.0.0.1: a
//! client request is taken once, by the node it names; an approval's
//! envelope signs the extract file's name.
//!
//! - a captured status request, and a captured fetch, sent again:
//!   `replayed`;
//! - a status request made for the linker, sent to NPR (by a key NPR
//!   answers): `replayed`;
//! - an operator's approval whose extract name a man in the middle swapped
//!   for another file in the extract directory: `bad-request`, and the
//!   genuine one is then taken.

mod common;
#[path = "common/raw.rs"]
mod raw;

use kobling_protocol::{
    bounded::{BoundedString, BoundedVec},
    messages::{Action, Message},
    refusal::RefusalCode,
    transcript::{self, Approval, Body, Signer, Statement},
    types::{Digest, Name, UnixTime},
};
use sha3::Digest as _;

use common::{approve, fetch_and_check, ok, path, submit};

const PROJECT: &str = "REPLAY-1";

fn code(replies: &[Message]) -> Option<RefusalCode> {
    replies.first().and_then(Message::refusal_code)
}

#[test]
fn captured_requests_redirected_requests_and_swapped_extract_names_are_refused() {
    let f = raw::Fixture::start(200);
    let (s, d) = (&f.s, f.dir());
    let researcher_file = submit(s, PROJECT);
    let researcher = f.key(&researcher_file);
    let operator = f.key("NPR-operator-1.key");

    // A captured status request: answered once, refused the second time.
    let status = f
        .request("LINKER", PROJECT, Action::Status)
        .sign(&researcher);
    let first = f.send("LINKER", &Message::Status(status.clone()));
    let Some(Message::TranscriptFile { bytes }) = first.first() else {
        panic!("the researcher's status: {first:?}")
    };
    assert_eq!(
        code(&f.send("LINKER", &Message::Status(status))),
        Some(RefusalCode::Replayed)
    );
    let (entries, _) = transcript::decode_file(bytes).expect("a transcript file");
    let order = entries
        .iter()
        .find_map(|e| match &e.signed.statement.body {
            Body::Order(o) => Some(o.clone()),
            _ => None,
        })
        .expect("the order");
    // The order's entry, which an approval carries to its register.
    let order_entry = Box::new(entries[0].clone());

    // A request for the linker, sent to NPR by an operator of NPR (whom
    // NPR answers about this project): refused.
    let for_linker = f.request("LINKER", PROJECT, Action::Status).sign(&operator);
    assert_eq!(
        code(&f.send("NPR", &Message::Status(for_linker))),
        Some(RefusalCode::Replayed)
    );

    // NPR's first operator approves NPR.csv; a man in the middle swaps the
    // name for KPR.csv (also in the extract directory).
    let extract = std::fs::read(d.join("NPR.csv")).expect("extract");
    let columns: Vec<String> = order
        .registers
        .iter()
        .find(|r| r.register.as_str() == "NPR")
        .expect("NPR")
        .variables
        .iter()
        .map(|v| v.to_string())
        .collect();
    let approval = Approval {
        register: Name::new("NPR").expect("valid"),
        order: order.digest(),
        extract: Digest(sha3::Sha3_256::digest(&extract).into()),
        rows: s.pop.extract("NPR").expect("extract").rows.len() as u64,
        columns: BoundedVec::new(
            columns
                .iter()
                .map(|c| BoundedString::new(c.as_str()).expect("fits"))
                .collect(),
        )
        .expect("fits"),
    };
    let statement = Statement {
        project: order.project.clone(),
        time: UnixTime(raw::now()),
        signer: Signer::Operator {
            register: Name::new("NPR").expect("valid"),
            key: kobling_protocol::manifest::Ed25519Key(operator.verifying_key().to_bytes()),
        },
        body: Body::Approval(approval),
    }
    .sign(&operator);
    let envelope = |name: &str| {
        f.request(
            "NPR",
            PROJECT,
            Action::Approve {
                statement: statement.statement.digest(),
                extract: BoundedString::new(name).expect("fits"),
            },
        )
        .sign(&operator)
    };
    let mut swapped = envelope("NPR.csv");
    swapped.request.action = Action::Approve {
        statement: statement.statement.digest(),
        extract: BoundedString::new("KPR.csv").expect("fits"),
    };
    let mitm = Message::Approve {
        statement: statement.clone(),
        request: Box::new(swapped),
        order: order_entry.clone(),
    };
    // Each attempt in a fresh envelope, as the command makes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        assert_eq!(
            code(&f.send("NPR", &mitm)),
            Some(RefusalCode::BadRequest),
            "the swapped name"
        );
        let genuine = Message::Approve {
            statement: statement.clone(),
            request: Box::new(envelope("NPR.csv")),
            order: order_entry.clone(),
        };
        let replies = f.send("NPR", &genuine);
        match replies.first() {
            Some(Message::Ack { .. }) => {
                // The very same message again: a duplicate approval,
                // acknowledged (not read again).
                assert!(matches!(
                    f.send("NPR", &genuine).first(),
                    Some(Message::Ack { .. })
                ));
                break;
            }
            _ if code(&replies) == Some(RefusalCode::NotReady) => {}
            other => panic!("the genuine approval: {other:?}"),
        }
        assert!(std::time::Instant::now() < deadline, "NPR never took it");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }

    // The rest approve through the command; the project runs.
    approve(s, PROJECT, &["KPR", "SSB", "RESEPT"]);
    ok(&[
        "project",
        "approve",
        "--manifest",
        path(&s.manifest),
        "--key",
        path(&d.join("NPR-operator-2.key")),
        "--project",
        PROJECT,
        "--extract",
        path(&d.join("NPR.csv")),
    ]);
    fetch_and_check(s, &researcher_file, PROJECT);

    // A captured fetch: the delivery once, then `replayed`.
    let fetch = f
        .request("LINKER", PROJECT, Action::Fetch)
        .sign(&researcher);
    let delivered = f.send("LINKER", &Message::Fetch(fetch.clone()));
    assert!(
        matches!(delivered.first(), Some(Message::TranscriptFile { .. })),
        "{:?}",
        delivered.first()
    );
    assert!(delivered
        .iter()
        .any(|m| matches!(m, Message::DeliveryItems { .. })));
    assert_eq!(
        code(&f.send("LINKER", &Message::Fetch(fetch))),
        Some(RefusalCode::Replayed)
    );
}
