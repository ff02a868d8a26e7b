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
    types::{ChunkIndex, Digest, HopIndex, ListName, Name, Position},
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
        kind: Default::default(),
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

/// `Ψ_R(x)` of `persons` (synthetic identity points) under the key
/// holders' current shares, from their keystores: what a delivery of
/// these persons would store (decision 6 of issue 15: computed in the
/// harness only).
fn psi(fed: &Federation, persons: &[u32]) -> Vec<kobling_protocol::group::WirePoint> {
    use kobling_protocol::{chain::apply_share, group::WirePoint, hash};
    let mut points: Vec<WirePoint> = persons
        .iter()
        .map(|p| {
            WirePoint(
                hash::hash_to_group(hash::tags::IDENTITY, format!("person-{p}").as_bytes())
                    .compress()
                    .to_bytes(),
            )
        })
        .collect();
    for m in ["NPR", "LINKER"] {
        let share = fed
            .keystore(m)
            .expect("keystore")
            .share(&Domain::Register(n("RESEPT")))
            .expect("share");
        points = apply_share(&share, &points, 0).expect("valid points");
    }
    points
}

/// Every regular file under `dir`.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}

fn holder_table(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let db = rusqlite::Connection::open(dir.join("RESEPT").join("state.db")).expect("db");
    let mut stmt = db
        .prepare("SELECT pseudonym FROM domain_rows WHERE domain = 'RESEPT' ORDER BY row")
        .expect("select");
    let rows = stmt
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .expect("rows");
    rows.map(|r| r.expect("row")).collect()
}

/// Issue 15 item 1: replace one key holder's share. NPR's seed of R is
/// lost (its node keys are not); its operators open the two-passphrase
/// backup of the old share, NPR takes a new one, and the holder's table,
/// blinded by the holder, is converted by `k_new·k_old⁻¹` with the binding
/// proof. Every stored pseudonym then matches a new delivery of the same
/// persons, the transcript records the re-share at every copy, and NPR
/// never saw a stored pseudonym.
#[test]
fn after_a_reshare_every_stored_pseudonym_matches_a_new_delivery_of_the_same_persons() {
    use kobling_keys::{backup::open_backup, KdfParams};
    use kobling_node::reshare::{Reshare, ReshareError};
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let mut net = start(&fed);
    let r = Domain::Register(n("RESEPT"));
    // The holder's table: 5 persons, one of them with two rows.
    let persons = [11, 12, 13, 14, 15];
    let stored = psi(&fed, &persons);
    {
        let db =
            rusqlite::Connection::open(dir.path().join("RESEPT").join("state.db")).expect("db");
        for (row, p) in stored.iter().chain(std::iter::once(&stored[2])).enumerate() {
            db.execute(
                "INSERT INTO domain_rows (domain, pseudonym, delivery, row, bytes) VALUES ('RESEPT', ?1, ?2, ?3, ?4)",
                rusqlite::params![p.0.as_slice(), [1u8; 16].as_slice(), row as i64, b"rows".as_slice()],
            )
            .expect("insert");
        }
    }
    let before = holder_table(dir.path());

    // The backup, made while the share was there, opens with both
    // passphrases.
    let kdf = KdfParams::new(64, 1, 1).expect("kdf");
    let backup = fed
        .keystore("NPR")
        .expect("keystore")
        .backup_domain(&r, "first passphrase", "second passphrase", kdf)
        .expect("backup");
    let old = open_backup(&r, &backup, "first passphrase", "second passphrase").expect("opens");
    let old_key = old.commitment();

    // NPR's seeds are lost; its node restarts without them.
    net.crash(&n("NPR"));
    let seeds = dir.path().join("NPR").join("keys").join("domains");
    for e in std::fs::read_dir(&seeds).expect("seeds") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "seed") {
            std::fs::remove_file(p).expect("lose the seed");
        }
    }
    net.restart(&n("NPR")).expect("restart");
    assert_eq!(status(&fed, "NPR"), DomainStatus::Unknown);

    let operator = fed.operators[&n("NPR")][0].clone();
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    let manifest = fed.manifest.clone();
    let mut seen_by_npr = Vec::new();

    // A backup of another share is refused before anything is sent.
    let wrong = kobling_protocol::share::Share::random(&mut rng);
    let mut ks = fed.keystore("NPR").expect("keystore");
    let now = net.now();
    let err = Reshare {
        manifest: &manifest,
        domain: &n("RESEPT"),
        member: &n("NPR"),
        replaces: None,
        operator: &operator,
        now,
        send: |m: Message| {
            net.client(&n("RESEPT"), m)
                .map_err(|e| ReshareError::Transport(Box::new(e)))
        },
    }
    .run(&mut ks, &wrong, &mut rng)
    .expect_err("not NPR's share");
    assert!(matches!(err, ReshareError::WrongBackup(_)), "{err}");
    assert_eq!(
        status(&fed, "NPR"),
        DomainStatus::Unknown,
        "nothing accepted"
    );

    // A page converted with a key not bound to NPR's committed share is
    // refused by the holder.
    {
        use kobling_protocol::domain::convert::{ChunkAt, ConversionContext, ConversionKey};
        let ask = |net: &mut Net, action: DomainAction, op: &SigningKey| {
            let req = request(&fed, net, "RESEPT", action).sign(op);
            net.client(&n("RESEPT"), Message::DomainRequest(req))
                .expect("answered")
        };
        let replies = ask(
            &mut net,
            DomainAction::ReshareTable {
                member: n("NPR"),
                first: 0,
            },
            &operator,
        );
        let [Message::DomainPoints { points, total, .. }] = replies.as_slice() else {
            panic!("{replies:?}")
        };
        assert_eq!(*total, 5);
        let target = kobling_protocol::share::Share::random(&mut rng);
        let ctx = ConversionContext {
            from: &r,
            to: &r,
            member: &n("NPR"),
        };
        let step = ConversionKey::new(ctx, &wrong, &target, &mut rng).into_step();
        let at = ChunkAt {
            target: &r,
            list: &ListName::of_domain(&n("RESEPT")),
            step: HopIndex(1),
            chunk: ChunkIndex(0),
            first_position: Position(0),
        };
        let (out, proof) = step.apply_chunk(at, points, &mut rng).expect("converts");
        let replies = ask(
            &mut net,
            DomainAction::ReshareConverted {
                member: n("NPR"),
                first: 0,
                points: BoundedVec::new(out).expect("fits"),
                proof: Box::new(proof),
                binding: Box::new(step.proofs().binding),
            },
            &operator,
        );
        assert_eq!(code(&replies), Some(RefusalCode::Invalid));
        // Another register's operator cannot re-share NPR's share.
        let replies = ask(
            &mut net,
            DomainAction::ReshareTable {
                member: n("NPR"),
                first: 0,
            },
            &fed.operators[&n("KPR")][0],
        );
        assert_eq!(code(&replies), Some(RefusalCode::NotAnOperator));
    }
    assert_eq!(holder_table(dir.path()), before, "the table is untouched");

    // The re-share.
    let now = net.now();
    let state = Reshare {
        manifest: &manifest,
        domain: &n("RESEPT"),
        member: &n("NPR"),
        replaces: None,
        operator: &operator,
        now,
        send: |m: Message| {
            let answers = net
                .client(&n("RESEPT"), m)
                .map_err(|e| ReshareError::Transport(Box::new(e)))?;
            for a in &answers {
                if let Message::DomainPoints { points, .. } = a {
                    seen_by_npr.extend(points.iter().copied());
                }
            }
            Ok(answers)
        },
    }
    .run(&mut ks, &old, &mut rng)
    .expect("re-shared");
    assert_eq!(state.reshares, 1);
    let new_key = fed
        .keystore("NPR")
        .expect("keystore")
        .commitment(&r)
        .expect("a new share");
    assert_ne!(new_key, old_key);
    assert_eq!(state.key_of(&n("NPR")), Some(new_key));

    // Every stored pseudonym is the new delivery's value of its person;
    // NPR saw none of the old or new values.
    let again = psi(&fed, &persons);
    let expected: Vec<Vec<u8>> = again
        .iter()
        .chain(std::iter::once(&again[2]))
        .map(|p| p.0.to_vec())
        .collect();
    assert_eq!(holder_table(dir.path()), expected);
    assert_ne!(before, expected);
    assert_eq!(seen_by_npr.len(), persons.len());
    for p in stored.iter().chain(&again) {
        assert!(!seen_by_npr.contains(p), "NPR saw a pseudonym");
    }
    // Every copy records it.
    net.settle(60_000).expect("settles");
    // No file of a key holder's directory (keystore, state database and
    // its journal) holds a pseudonym of the domain, old or new.
    for m in ["NPR", "LINKER", "KPR"] {
        for file in files(&dir.path().join(m)) {
            let bytes = std::fs::read(&file).expect("read");
            for p in stored.iter().chain(&again) {
                assert!(
                    !bytes.windows(32).any(|w| w == p.0),
                    "{} holds a pseudonym",
                    file.display()
                );
            }
        }
    }
    for m in ["NPR", "LINKER"] {
        let copy = net
            .engine(&n(m))
            .expect("up")
            .domain_state(&n("RESEPT"))
            .expect("verifies")
            .expect("a copy");
        assert_eq!(copy, state, "{m}");
    }
    // The old share no longer converts the table: a second re-share from
    // the same backup is refused (the backup is not the committed share).
    let err = Reshare {
        manifest: &manifest,
        domain: &n("RESEPT"),
        member: &n("NPR"),
        replaces: None,
        operator: &operator,
        now: net.now(),
        send: |m: Message| {
            net.client(&n("RESEPT"), m)
                .map_err(|e| ReshareError::Transport(Box::new(e)))
        },
    }
    .run(&mut ks, &old, &mut rng)
    .expect_err("stale backup");
    assert!(matches!(err, ReshareError::WrongBackup(_)), "{err}");
}
