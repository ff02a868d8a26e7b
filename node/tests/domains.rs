//! Register domains' lifecycle on real engines (in memory, virtual clock;
//! PROTOCOL.md §10, issue 15 item 1): creation by the holder, every key
//! holder's commitment, replication verified at every copy, the attacks
//! of members outside their part, two-operator retirement that shreds
//! every key holder's seed, and a project's closure that leaves a domain's
//! seed alone.

use ed25519_dalek::SigningKey;
use kobling_keys::DomainStatus;
use kobling_node::{
    engine::Peer,
    testing::{Faults, Federation, Net, ProjectConfig},
};
use kobling_protocol::{
    bounded::BoundedVec,
    domain::{
        transcript::{DomainBody, DomainLog},
        wire::{DomainAction, DomainRequest},
        DomainSpec,
    },
    messages::{Action, Message, NONCE_LEN},
    refusal::RefusalCode,
    share::Domain,
    transcript::Sig,
    types::{Digest, Name},
};
use kobling_sim::population::{generate, PopulationConfig};

const REGISTERS: [&str; 3] = ["NPR", "KPR", "RESEPT"];

fn n(s: &str) -> Name {
    Name::new(s).expect("valid")
}

/// A federation whose manifest declares domain RESEPT, held by RESEPT,
/// with NPR and the linker as its key holders (KPR holds no share).
fn federation(dir: &std::path::Path) -> Federation {
    let mut fed = Federation::create(dir, &REGISTERS, 5).expect("federation");
    fed.manifest.domains.push(DomainSpec {
        name: n("RESEPT"),
        holder: n("RESEPT"),
        key_holders: Some(vec![n("NPR"), n("LINKER")]),
    });
    fed.manifest.validate().expect("a valid manifest");
    fed
}

fn start(fed: &Federation) -> Net {
    let mut net = fed.start(64, Faults::default(), 3).expect("start");
    net.settle(60_000).expect("settles");
    net
}

fn status(fed: &Federation, member: &str) -> DomainStatus {
    fed.keystore(member)
        .expect("keystore")
        .domain_status(&Domain::Register(n("RESEPT")))
        .expect("status")
}

fn code(replies: &[Message]) -> Option<RefusalCode> {
    replies.first().and_then(Message::refusal_code)
}

static NONCE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);

fn request(fed: &Federation, net: &Net, node: &str, action: DomainAction) -> DomainRequest {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[0] = NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    DomainRequest {
        domain: n("RESEPT"),
        action,
        time: net.now(),
        node: n(node),
        manifest: fed.manifest.digest(),
        nonce,
    }
}

/// An operator's signature on the retirement, as `kobling domain retire`
/// makes it: over the next entry's statement digest at the holder.
fn retire(fed: &Federation, net: &mut Net, operator: &SigningKey) -> Vec<Message> {
    let entries = net
        .engine(&n("RESEPT"))
        .expect("up")
        .domain_transcript(&n("RESEPT"))
        .expect("transcript");
    let statement =
        DomainLog::from_entries(entries).next_digest(&n("RESEPT"), &DomainBody::Retired);
    let signature = {
        use ed25519_dalek::Signer as _;
        Sig(operator.sign(statement.as_bytes()).to_bytes())
    };
    let req = request(
        fed,
        net,
        "RESEPT",
        DomainAction::Retire {
            statement,
            signature,
        },
    )
    .sign(operator);
    net.client(&n("RESEPT"), Message::DomainRequest(req))
        .expect("answered")
}

#[test]
fn the_holder_creates_every_key_holder_commits_and_every_copy_is_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let mut net = start(&fed);
    let holder = net
        .engine(&n("RESEPT"))
        .expect("up")
        .domain_state(&n("RESEPT"))
        .expect("verifies")
        .expect("created");
    assert!(holder.is_complete(), "{holder:?}");
    assert_eq!(holder.holder, n("RESEPT"));
    assert_eq!(
        holder
            .keys
            .iter()
            .map(|(m, _)| m.clone())
            .collect::<Vec<_>>(),
        vec![n("NPR"), n("LINKER")]
    );
    for m in ["NPR", "LINKER"] {
        let copy = net
            .engine(&n(m))
            .expect("up")
            .domain_state(&n("RESEPT"))
            .expect("verifies")
            .expect("a copy");
        assert_eq!(copy, holder, "{m}'s copy");
        // The committed key is the keystore's share of Domain::Register(R).
        let key = fed
            .keystore(m)
            .expect("keystore")
            .commitment(&Domain::Register(n("RESEPT")))
            .expect("accepted");
        assert_eq!(holder.key_of(&n(m)), Some(key));
    }
    // KPR is not a key holder: no copy, no seed.
    assert_eq!(
        net.engine(&n("KPR"))
            .expect("up")
            .domain_state(&n("RESEPT"))
            .expect("ok"),
        None
    );
    assert_eq!(status(&fed, "KPR"), DomainStatus::Unknown);
    // Two key holders signed at the same head: the later one was refused
    // as stale and signed again. Nothing else was refused.
    assert!(
        net.refusals()
            .iter()
            .all(|(_, to, code, _)| to.as_str() == "RESEPT" && code == "diverged"),
        "{:?}",
        net.refusals()
    );

    // An operator reads the transcript at a key holder; the copy verifies.
    let op = &fed.operators[&n("NPR")][0];
    let req = request(&fed, &net, "NPR", DomainAction::Transcript { first: 0 }).sign(op);
    let replies = net
        .client(&n("NPR"), Message::DomainRequest(req.clone()))
        .expect("answered");
    let [Message::DomainEntries {
        first: 0, entries, ..
    }] = replies.as_slice()
    else {
        panic!("{replies:?}")
    };
    assert_eq!(entries.len(), 3, "created and two commitments");
    // The same request again is a replay.
    let again = net
        .client(&n("NPR"), Message::DomainRequest(req))
        .expect("answered");
    assert_eq!(code(&again), Some(RefusalCode::Replayed));
    // A key that is no operator of the federation reads nothing.
    let stranger = SigningKey::from_bytes(&[0x42; 32]);
    let req = request(&fed, &net, "NPR", DomainAction::Transcript { first: 0 }).sign(&stranger);
    let replies = net
        .client(&n("NPR"), Message::DomainRequest(req))
        .expect("answered");
    assert_eq!(code(&replies), Some(RefusalCode::NotAnOperator));
}

#[test]
fn members_outside_their_part_are_refused_and_a_tampered_copy_is_not_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let mut net = start(&fed);
    let entries = net
        .engine(&n("RESEPT"))
        .expect("up")
        .domain_transcript(&n("RESEPT"))
        .expect("transcript");
    let now = net.now();

    // KPR, no key holder, sends the holder a commitment signed with its
    // own node key: refused before anything is read or stored.
    let kpr_key = SigningKey::from_bytes(
        &fed.keystore("KPR")
            .expect("keystore")
            .signing_key()
            .to_bytes(),
    );
    let mut log = DomainLog::from_entries(entries.clone());
    let forged = log
        .append(
            n("KPR"),
            &kpr_key,
            DomainBody::KeyCommitment {
                member: n("KPR"),
                key: kobling_protocol::group::WirePoint(curve25519_point()),
            },
            Vec::new(),
        )
        .clone();
    let replies = net
        .engine(&n("RESEPT"))
        .expect("up")
        .handle(
            &Peer::Member(n("KPR")),
            Message::DomainCommitment {
                domain: n("RESEPT"),
                entry: Box::new(forged.clone()),
            },
            now,
        )
        .expect("handled");
    assert_eq!(code(&replies), Some(RefusalCode::Unexpected));

    // NPR, a key holder, passes on a commitment that is not its own.
    let replies = net
        .engine(&n("RESEPT"))
        .expect("up")
        .handle(
            &Peer::Member(n("NPR")),
            Message::DomainCommitment {
                domain: n("RESEPT"),
                entry: Box::new(forged),
            },
            now,
        )
        .expect("handled");
    assert_eq!(code(&replies), Some(RefusalCode::Impersonation));

    // NPR, not the holder, sends the linker entries as if it sequenced
    // the domain.
    let replies = net
        .engine(&n("LINKER"))
        .expect("up")
        .handle(
            &Peer::Member(n("NPR")),
            Message::DomainEntries {
                domain: n("RESEPT"),
                first: 0,
                entries: BoundedVec::new(entries.clone()).expect("fits"),
            },
            now,
        )
        .expect("handled");
    assert_eq!(code(&replies), Some(RefusalCode::Unexpected));

    // A delivery entry signed by the holder, its count changed on the
    // way: NPR's copy does not verify with it and is not extended.
    let mut tampered = entries.clone();
    let mut log = DomainLog::from_entries(entries.clone());
    let holder_key = SigningKey::from_bytes(
        &fed.keystore("RESEPT")
            .expect("keystore")
            .signing_key()
            .to_bytes(),
    );
    log.append(
        n("RESEPT"),
        &holder_key,
        DomainBody::Delivery {
            delivery: [1; 16],
            source: n("KPR"),
            persons: 10,
            rows: 12,
            table: Digest([9; 32]),
        },
        Vec::new(),
    );
    let mut delivery = log.entries()[entries.len()].clone();
    if let DomainBody::Delivery { persons, .. } = &mut delivery.body {
        *persons = 11;
    }
    tampered.push(delivery);
    let replies = net
        .engine(&n("NPR"))
        .expect("up")
        .handle(
            &Peer::Member(n("RESEPT")),
            Message::DomainEntries {
                domain: n("RESEPT"),
                first: entries.len() as u64,
                entries: BoundedVec::new(tampered[entries.len()..].to_vec()).expect("fits"),
            },
            now,
        )
        .expect("handled");
    assert_eq!(code(&replies), Some(RefusalCode::Invalid));
    assert_eq!(
        net.engine(&n("NPR"))
            .expect("up")
            .domain_transcript(&n("RESEPT"))
            .expect("copy"),
        entries,
        "nothing stored"
    );
}

/// A valid point that is nobody's commitment.
fn curve25519_point() -> [u8; 32] {
    kobling_protocol::share::Share::derive(&[7; 32], &[7; 32], &Domain::Register(n("X")))
        .expect("share")
        .commitment()
        .0
}

#[test]
fn a_delivery_is_recorded_only_once_every_key_holder_committed_and_is_replicated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let mut net = fed.start(64, Faults::default(), 3).expect("start");
    let delivery = |id: u8| DomainBody::Delivery {
        delivery: [id; 16],
        source: n("KPR"),
        persons: 100,
        rows: 130,
        table: Digest([id; 32]),
    };
    // One tick: the holder created the domain, nobody committed yet.
    net.run_for(1).expect("runs");
    let holder = net.engine(&n("RESEPT")).expect("up");
    let created = holder
        .domain_state(&n("RESEPT"))
        .expect("ok")
        .expect("created on the first tick");
    assert!(!created.is_complete());
    let refused = holder
        .append_domain_entry(&n("RESEPT"), delivery(1))
        .expect("no internal failure");
    assert!(refused.is_err(), "a delivery before the commitments");
    net.settle(60_000).expect("settles");
    let state = net
        .engine(&n("RESEPT"))
        .expect("up")
        .append_domain_entry(&n("RESEPT"), delivery(1))
        .expect("no internal failure")
        .expect("recorded");
    assert_eq!(state.deliveries, 1);
    // The same delivery id twice is refused.
    assert!(net
        .engine(&n("RESEPT"))
        .expect("up")
        .append_domain_entry(&n("RESEPT"), delivery(1))
        .expect("no internal failure")
        .is_err());
    // Only the holder records deliveries.
    assert!(net
        .engine(&n("NPR"))
        .expect("up")
        .append_domain_entry(&n("RESEPT"), delivery(2))
        .expect("no internal failure")
        .is_err());
    net.settle(60_000).expect("settles");
    for m in ["NPR", "LINKER"] {
        let copy = net
            .engine(&n(m))
            .expect("up")
            .domain_state(&n("RESEPT"))
            .expect("verifies")
            .expect("a copy");
        assert_eq!(copy.deliveries, 1, "{m}");
        assert_eq!(copy, state, "{m}");
    }
}

#[test]
fn retirement_needs_two_distinct_operators_and_shreds_every_key_holders_seed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let mut net = start(&fed);
    let ops = &fed.operators[&n("RESEPT")];
    let retired = |net: &mut Net| {
        net.engine(&n("RESEPT"))
            .expect("up")
            .domain_state(&n("RESEPT"))
            .expect("verifies")
            .expect("created")
            .retirement()
            .is_some()
    };

    // An operator of another register is not the holder's.
    let replies = retire(&fed, &mut net, &fed.operators[&n("NPR")][0]);
    assert_eq!(code(&replies), Some(RefusalCode::NotAnOperator));
    // One operator alone: taken, nothing retired.
    let replies = retire(&fed, &mut net, &ops[0]);
    assert!(
        matches!(replies.first(), Some(Message::Ack { .. })),
        "{replies:?}"
    );
    assert!(!retired(&mut net));
    // The same operator again, with a fresh request: still one operator.
    let replies = retire(&fed, &mut net, &ops[0]);
    assert!(
        matches!(replies.first(), Some(Message::Ack { .. })),
        "{replies:?}"
    );
    assert!(!retired(&mut net));
    net.settle(30_000).expect("settles");
    for m in ["NPR", "LINKER"] {
        assert_eq!(status(&fed, m), DomainStatus::Accepted, "{m}");
    }
    // A signature over something else than the next entry is refused.
    let req = request(
        &fed,
        &net,
        "RESEPT",
        DomainAction::Retire {
            statement: Digest([5; 32]),
            signature: {
                use ed25519_dalek::Signer as _;
                Sig(ops[1].sign(&[5; 32]).to_bytes())
            },
        },
    )
    .sign(&ops[1]);
    let replies = net
        .client(&n("RESEPT"), Message::DomainRequest(req))
        .expect("answered");
    assert_eq!(code(&replies), Some(RefusalCode::Diverged));
    assert!(!retired(&mut net));

    // The second operator: retired, replicated, every seed shredded.
    let replies = retire(&fed, &mut net, &ops[1]);
    assert!(
        matches!(replies.first(), Some(Message::Ack { .. })),
        "{replies:?}"
    );
    assert!(retired(&mut net));
    net.settle(30_000).expect("settles");
    for m in ["NPR", "LINKER"] {
        let copy = net
            .engine(&n(m))
            .expect("up")
            .domain_state(&n("RESEPT"))
            .expect("verifies")
            .expect("a copy");
        assert!(copy.retirement().is_some(), "{m}'s copy is retired");
        assert_eq!(status(&fed, m), DomainStatus::Shredded, "{m}");
        assert!(fed
            .keystore(m)
            .expect("keystore")
            .share(&Domain::Register(n("RESEPT")))
            .is_err());
    }
    // Nothing follows a retirement: no delivery, no commitment, no third
    // signature.
    assert!(net
        .engine(&n("RESEPT"))
        .expect("up")
        .append_domain_entry(
            &n("RESEPT"),
            DomainBody::Delivery {
                delivery: [3; 16],
                source: n("KPR"),
                persons: 1,
                rows: 1,
                table: Digest([3; 32]),
            }
        )
        .expect("no internal failure")
        .is_err());
    let entries = net
        .engine(&n("RESEPT"))
        .expect("up")
        .domain_transcript(&n("RESEPT"))
        .expect("transcript");
    let npr_key = SigningKey::from_bytes(
        &fed.keystore("NPR")
            .expect("keystore")
            .signing_key()
            .to_bytes(),
    );
    let late = DomainLog::from_entries(entries)
        .append(
            n("NPR"),
            &npr_key,
            DomainBody::KeyCommitment {
                member: n("NPR"),
                key: kobling_protocol::group::WirePoint(curve25519_point()),
            },
            Vec::new(),
        )
        .clone();
    let now = net.now();
    let replies = net
        .engine(&n("RESEPT"))
        .expect("up")
        .handle(
            &Peer::Member(n("NPR")),
            Message::DomainCommitment {
                domain: n("RESEPT"),
                entry: Box::new(late),
            },
            now,
        )
        .expect("handled");
    assert_eq!(code(&replies), Some(RefusalCode::Closed));
    let replies = retire(&fed, &mut net, &ops[0]);
    assert_eq!(code(&replies), Some(RefusalCode::Closed));
}

#[test]
fn closing_a_project_shreds_its_key_and_leaves_the_domain_seed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let pop = generate(&PopulationConfig {
        persons: 200,
        seed: 9,
        ..Default::default()
    });
    let extracts: Vec<_> = ["NPR", "KPR"]
        .iter()
        .map(|r| pop.extract(r).expect("extract"))
        .collect();
    let config = ProjectConfig {
        project: "DOMAIN-CLOSE".into(),
        cohort: "NPR".into(),
        chunk_size: 64,
        seed: 3,
        faults: Faults::default(),
    };
    let (_, mut net) = fed.run(&extracts, &config).expect("a clean run");
    net.settle(60_000).expect("settles");
    let before = fed
        .keystore("NPR")
        .expect("keystore")
        .commitment(&Domain::Register(n("RESEPT")))
        .expect("NPR holds its domain share");
    let close = fed
        .request("DOMAIN-CLOSE", Action::Close, net.now())
        .expect("request");
    let replies = net.client(&n("LINKER"), close).expect("answered");
    assert!(
        matches!(replies.first(), Some(Message::Ack { .. })),
        "{replies:?}"
    );
    net.settle(120_000).expect("settles");
    let project =
        Domain::Project(kobling_protocol::types::ProjectId::new("DOMAIN-CLOSE").expect("id"));
    for m in ["NPR", "KPR", "LINKER"] {
        let ks = fed.keystore(m).expect("keystore");
        assert_eq!(
            ks.domain_status(&project).expect("status"),
            DomainStatus::Shredded,
            "{m}"
        );
    }
    for m in ["NPR", "LINKER"] {
        assert_eq!(status(&fed, m), DomainStatus::Accepted, "{m}");
    }
    assert_eq!(
        fed.keystore("NPR")
            .expect("keystore")
            .commitment(&Domain::Register(n("RESEPT")))
            .expect("still there"),
        before
    );
}
