//! What a node refuses from members and clients: chunks it has not
//! approved, impersonation, test-mode orders in production, extract files
//! (replayed requests, sealed items past the cap and order entries not as
//! the linker recorded them: `requests.rs`).

use super::*;

#[test]
fn a_chunk_for_a_project_this_node_has_not_approved_is_refused() {
    let mut fed = Fed::new(200);
    fed.submit("P-3");
    fed.pump();
    // Only NPR's operators approve; KPR's have not.
    fed.approve("P-3", "NPR", 0);
    fed.approve("P-3", "NPR", 1);
    fed.pump();
    let kpr = fed.engines.get_mut(&name("KPR")).expect("engine");
    let chunk = kobling_protocol::hop::PointChunk {
        project: ProjectId::new("P-3").expect("valid"),
        list: list_name("NPR"),
        hop: HopIndex(0),
        chunk: ChunkIndex(0),
        input: BoundedVec::default(),
        output: BoundedVec::default(),
        proof: None,
    };
    match &kpr
        .handle(
            &Peer::Member(name("NPR")),
            Message::Points(chunk.clone()),
            NOW,
        )
        .expect("handled")[0]
    {
        m @ Message::Refused { .. } => assert_eq!(m.refusal_code(), Some(RefusalCode::NotReady)),
        other => panic!("KPR processed a foreign list without its own approvals: {other:?}"),
    }
    // And a chunk from a member that is not the list's previous hop is refused for good.
    match &kpr
        .handle(&Peer::Member(name("SSB")), Message::Points(chunk), NOW)
        .expect("handled")[0]
    {
        m @ Message::Refused { .. } => {
            assert_eq!(m.refusal_code(), Some(RefusalCode::UnexpectedSender))
        }
        other => panic!("accepted a chunk from the wrong sender: {other:?}"),
    }
}

#[test]
fn a_member_cannot_speak_for_another() {
    let mut fed = Fed::new(100);
    fed.submit("P-4");
    fed.pump();
    // KPR forwards a statement signed by NPR's node key.
    let npr_key = SigningKey::from_bytes(
        &Keystore::open(fed.dir.path().join("NPR").join("keys"), None)
            .expect("ks")
            .signing_key()
            .to_bytes(),
    );
    let p = ProjectId::new("P-4").expect("valid");
    let body = Body::Commitment(kobling_protocol::transcript::KeyCommitment {
        member: name("NPR"),
        domain: Domain::Project(p.clone()),
        key: kobling_protocol::group::WirePoint([1; 32]),
    });
    let signed = Statement {
        project: p,
        time: NOW,
        signer: Signer::Node(name("NPR")),
        body,
    }
    .sign(&npr_key);
    let reply = fed
        .engines
        .get_mut(&name("LINKER"))
        .expect("linker")
        .handle(&Peer::Member(name("KPR")), Message::Statement(signed), NOW)
        .expect("handled");
    match &reply[0] {
        m @ Message::Refused { .. } => {
            assert_eq!(m.refusal_code(), Some(RefusalCode::Impersonation))
        }
        other => panic!("accepted: {other:?}"),
    }
}

#[test]
fn a_production_node_refuses_a_test_mode_order() {
    // A production linker takes no test-mode order: nothing is recorded.
    let mut fed = Fed::new(60);
    fed.test_orders = true;
    fed.production.insert(name("LINKER"));
    fed.start("LINKER");
    assert_eq!(refused_with(&fed.submit("T-1")), Some(RefusalCode::Order));
    assert!(fed.engines[&name("LINKER")]
        .transcript(&ProjectId::new("T-1").expect("valid"))
        .expect("entries")
        .is_empty());

    // A production register refuses its operators' approval of one (its
    // list would accept synthetic numbers); a test-mode register takes it.
    let mut fed = Fed::new(60);
    fed.test_orders = true;
    fed.production.insert(name("NPR"));
    fed.start("NPR");
    assert!(matches!(fed.submit("T-2"), Message::Ack { .. }));
    fed.pump();
    assert_eq!(
        refused_with(&fed.approve("T-2", "NPR", 0)),
        Some(RefusalCode::Order)
    );
    assert!(matches!(fed.approve("T-2", "KPR", 0), Message::Ack { .. }));
    fed.pump();
    assert_eq!(
        fed.duties("T-2", "NPR"),
        vec![Duty::AwaitApprovals { approvals: 0 }],
        "nothing starts at the production register"
    );

    // An ordinary order runs at production nodes.
    let mut fed = Fed::new(60);
    for m in REGISTERS.iter().chain(std::iter::once(&"LINKER")) {
        fed.production.insert(name(m));
        fed.start(m);
    }
    assert!(matches!(fed.submit("T-3"), Message::Ack { .. }));
    fed.pump();
    approve_all(&mut fed, "T-3");
    fed.pump();
    fed.check_delivery("T-3");
}

#[test]
fn approvals_read_only_regular_files_in_the_extract_directory_and_replays_are_not_hashed_again() {
    use std::sync::mpsc;

    let mut fed = Fed::new(120);
    assert!(matches!(fed.submit("A-1"), Message::Ack { .. }));
    fed.pump();

    // A genuine approval by NPR's first operator, sent again by that
    // operator in envelopes that name other files.
    let genuine = fed.approval_message("A-1", "NPR", 0);
    let Message::Approve { statement, .. } = genuine.clone() else {
        panic!("an approval")
    };
    let extracts = fed.dir.path().join("extracts");
    let fifo = extracts.join("fifo.csv");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let huge = extracts.join("huge.csv");
    std::fs::File::create(&huge)
        .expect("create")
        .set_len(crate::engine::MAX_EXTRACT_BYTES + 1)
        .expect("sparse file");
    std::os::unix::fs::symlink("/etc/passwd", extracts.join("link.csv")).expect("symlink");
    let outside = fed.dir.path().join("NPR").join("outside.csv");
    std::fs::write(&outside, "fnr\n").expect("write");

    let names = [
        "/dev/zero",
        "fifo.csv",
        "huge.csv",
        "link.csv",
        "../NPR/outside.csv",
        "/etc/passwd",
        "no-such-file.csv",
        "",
        ".",
    ];
    let mut texts = BTreeSet::new();
    for bad in names {
        let msg = fed.approval_named(statement.clone(), 0, bad, NOW);
        // Each answer comes at once: a FIFO or /dev/zero would block a
        // reader or never end.
        let mut engine = fed.engines.remove(&name("NPR")).expect("engine");
        let (tx, rx) = mpsc::channel();
        let worker = std::thread::spawn(move || {
            let reply = engine
                .handle(&Peer::Client, msg, NOW)
                .expect("no internal error");
            let _ = tx.send(reply);
            engine
        });
        let reply = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the approval naming {bad:?} did not return"));
        fed.engines
            .insert(name("NPR"), worker.join().expect("worker"));
        assert_eq!(
            reply[0].refusal_code(),
            Some(RefusalCode::Extract),
            "{bad:?}"
        );
        let Message::Refused { detail, .. } = &reply[0] else {
            unreachable!("a refusal")
        };
        texts.insert(detail.as_str().to_string());
    }
    assert_eq!(
        texts.len(),
        1,
        "one text, whatever the file system holds: {texts:?}"
    );

    // The genuine approval is taken; a replay of it is acknowledged
    // without reading the file again (it changed since: a re-hash would
    // refuse it for its digest).
    assert!(matches!(fed.client("NPR", genuine.clone()), v if matches!(v[0], Message::Ack { .. })));
    let path = extracts.join("NPR.csv");
    let original = std::fs::read(&path).expect("read");
    std::fs::write(&path, b"fnr\nchanged\n").expect("write");
    assert!(matches!(fed.client("NPR", genuine)[0], Message::Ack { .. }));
    std::fs::write(&path, original).expect("restore");

    // Another project runs to its delivery meanwhile.
    approve_all(&mut fed, "A-1");
    fed.pump();
    fed.check_delivery("A-1");
}
