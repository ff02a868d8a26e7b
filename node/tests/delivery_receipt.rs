//! A domain holder's receipt of deliveries (issue 15 item 2, PROTOCOL.md
//! §10) on the real engine, and its operator's export through the
//! `kobling` binary.
//!
//! The chain's output is computed here from the key holders' keystores
//! (`β·Ψ_R(x)`, or `β₁·Ψ_R(x)` after hop 1 removed β₂ of a pharmacy that
//! holds no share), as the linker would hand it to the holder; the chain
//! itself is tested in `kobling_protocol`'s `v2::tests::delivery`. What is
//! tested here is the holder: it opens β with its own HPKE key, stores the
//! rows under `Ψ_R`, records the delivery, exports `pseudonym` + columns,
//! and nothing with an fnr reaches its node directory, its log or its
//! export.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use kobling_keys::Keystore;
use kobling_node::{
    engine::{DeliveredChunk, DeliveredList, ReceiptError},
    testing::{Faults, Federation, Net},
};
use kobling_protocol::{
    bounded::{BoundedString, BoundedVec},
    chain::multiply_decoded,
    domain::{pseudonym_hex, transcript::DomainBody, DomainSpec},
    group::WirePoint,
    ident::Identifier,
    manifest::Ed25519Key,
    receipt::{DeliveryError, DeliveryInto, DeliveryPlan},
    seal::{
        encode_rows, seal_blinding, seal_blinding_part, BlindingPart, ContentKey, HpkePublicKey,
    },
    share::{Domain, Share},
    transcript::{ProjectOrder, RegisterRequest},
    types::{Name, Position, ProjectId, UnixTime},
};
use kobling_sim::population::{generate, PopulationConfig};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

fn n(s: &str) -> Name {
    Name::new(s).expect("valid")
}

/// NPR, KPR, SSB (the holder of domains SSB and SSB2), APOTEK (a pharmacy
/// with no share) and the linker; each domain's key holders are NPR, KPR
/// and the linker.
fn federation(dir: &Path) -> Federation {
    let mut fed = Federation::create(dir, &["NPR", "KPR", "SSB", "APOTEK"], 21).expect("keys");
    for d in ["SSB", "SSB2"] {
        fed.manifest.domains.push(DomainSpec {
            name: n(d),
            holder: n("SSB"),
            key_holders: Some(vec![n("NPR"), n("KPR"), n("LINKER")]),
            kind: Default::default(),
        });
    }
    fed.manifest.validate().expect("a valid manifest");
    fed
}

/// `Π k_{i,R}` over the domain's key holders, from their keystores.
fn domain_key(fed: &Federation, domain: &str) -> Share {
    let d = Domain::Register(n(domain));
    let share = |m: &str| {
        let mut ks: Keystore = fed.keystore(m).expect("keystore");
        ks.accept_domain(&d).expect("accept");
        ks.share(&d).expect("share")
    };
    share("NPR")
        .product(&share("KPR"))
        .product(&share("LINKER"))
}

/// Persons with synthetic fnr, and two rows of values each.
fn persons(count: usize, seed: u64) -> Vec<(Identifier, Vec<Vec<String>>)> {
    let pop = generate(&PopulationConfig {
        persons: count,
        seed,
        cohort_share: 0.5,
        messy_share: 0.0,
    });
    pop.persons
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let rows = vec![
                vec![format!("F2{}", i % 10), "2025".to_string()],
                vec![format!("Z7{}", i % 10), "2026".to_string()],
            ];
            (p.id, rows)
        })
        .collect()
}

fn order(fed: &Federation, id: &str, domain: &str, source: &str) -> ProjectOrder {
    let holder = fed.manifest.member(&n("SSB")).expect("holder");
    ProjectOrder {
        project: ProjectId::new(id).expect("valid"),
        title: BoundedString::new("NPR til SSB").expect("fits"),
        legal_basis: BoundedString::new("statistikkloven § 10").expect("fits"),
        manifest_digest: fed.manifest.digest(),
        linker: n("LINKER"),
        registers: BoundedVec::new(vec![RegisterRequest {
            register: n(source),
            variables: BoundedVec::new(vec![
                BoundedString::new("diagnose").expect("fits"),
                BoundedString::new("aar").expect("fits"),
            ])
            .expect("fits"),
        }])
        .expect("fits"),
        cohort: BoundedString::new(source).expect("fits"),
        expires: UnixTime(2_000_000_000),
        researcher_signing_key: Ed25519Key(fed.operators[&n(source)][0].verifying_key().to_bytes()),
        researcher_hpke_key: holder.hpke_key,
        test_mode: true,
        grant: None,
        delivery: Some(DeliveryInto { domain: n(domain) }),
        pseudonymous: Default::default(),
        identified: None,
    }
}

/// What the linker hands the holder for `order`: the values `β·Ψ_R(x_t)`
/// (β₁ for a split source) in chunks of 4, the sealed items, β sealed to
/// the holder.
fn delivered(
    fed: &Federation,
    order: &ProjectOrder,
    people: &[(Identifier, Vec<Vec<String>>)],
    seed: u64,
) -> (DeliveredList, Vec<DeliveredChunk>) {
    let plan = DeliveryPlan::new(&fed.manifest, order).expect("plan");
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let holder =
        HpkePublicKey::from_bytes(fed.manifest.member(&n("SSB")).expect("holder").hpke_key.0)
            .expect("key");
    let (project, list) = (&order.project, &plan.list());
    let beta = Share::random(&mut rng);
    let blinding = if plan.split {
        seal_blinding_part(&holder, project, list, BlindingPart::First, &beta, &mut rng)
    } else {
        seal_blinding(&holder, project, list, &beta, &mut rng)
    };
    let content = ContentKey::generate(&mut rng);
    let k = domain_key(fed, &plan.spec.name.to_string()).product(&beta);
    let ids: Vec<_> = people.iter().map(|(id, _)| id.identity_point()).collect();
    let values = multiply_decoded(&k, &ids);
    let items: Vec<_> = people
        .iter()
        .enumerate()
        .map(|(t, (_, rows))| {
            content
                .seal_item(
                    project,
                    list,
                    Position(t as u64),
                    &encode_rows(rows).expect("rows"),
                )
                .expect("seal")
        })
        .collect();
    let chunks = values
        .chunks(4)
        .zip(items.chunks(4))
        .map(|(v, i)| DeliveredChunk {
            values: v.to_vec(),
            items: i.to_vec(),
        })
        .collect();
    let list = DeliveredList {
        blinding,
        commitment: beta.invert().commitment(),
        content_key: content.wrap(&holder, project, list, &mut rng),
        columns: vec!["diagnose".into(), "aar".into()],
    };
    (list, chunks)
}

/// `Ψ_R(x)` in hex per person, computed from the key holders' keystores.
fn expected(
    fed: &Federation,
    domain: &str,
    people: &[(Identifier, Vec<Vec<String>>)],
) -> Vec<String> {
    let ids: Vec<_> = people.iter().map(|(id, _)| id.identity_point()).collect();
    multiply_decoded(&domain_key(fed, domain), &ids)
        .iter()
        .map(pseudonym_hex)
        .collect()
}

fn start(fed: &Federation) -> Net {
    fed.start(64, Faults::default(), 3).expect("network")
}

fn receive(
    net: &mut Net,
    at: &str,
    order: &ProjectOrder,
    (list, chunks): (DeliveredList, Vec<DeliveredChunk>),
) -> Result<DomainBody, ReceiptError> {
    net.engine(&n(at))
        .expect("engine")
        .receive_delivery(order, &list, chunks)
}

fn kobling(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kobling"))
        .args(args)
        .output()
        .expect("kobling runs")
}

fn export(fed: &Federation, domain: &str, delivery: Option<&str>, out: &Path) -> String {
    let dir = fed.dir.join("SSB");
    let mut args = vec![
        "delivery",
        "export",
        "--dir",
        dir.to_str().expect("utf-8"),
        "--domain",
        domain,
        "--out",
        out.to_str().expect("utf-8"),
    ];
    if let Some(d) = delivery {
        args.extend(["--delivery", d]);
    }
    let o = kobling(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).expect("utf-8")
}

/// `pseudonym` → rows, from an export.
fn table(csv: &Path) -> BTreeMap<String, Vec<Vec<String>>> {
    let text = std::fs::read_to_string(csv).expect("export");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("pseudonym,diagnose,aar"));
    let mut out: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for l in lines {
        let mut f = l.split(',').map(str::to_string);
        let p = f.next().expect("pseudonym");
        assert_eq!(p.len(), 64);
        assert!(p
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        out.entry(p).or_default().push(f.collect());
    }
    out
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_holder_stores_rows_under_psi_the_same_across_years_and_sources_and_no_fnr() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fed = federation(tmp.path());
    let mut net = start(&fed);
    let people = persons(10, 1);
    // Year one: NPR (a key holder) delivers everyone; year two: the
    // pharmacy (no share, split blinding) delivers the first six.
    let npr = order(&fed, "NPR-SSB-2025", "SSB", "NPR");
    let apotek = order(&fed, "APOTEK-SSB-2026", "SSB", "APOTEK");
    assert!(!DeliveryPlan::new(&fed.manifest, &npr).expect("plan").split);
    assert!(
        DeliveryPlan::new(&fed.manifest, &apotek)
            .expect("plan")
            .split
    );
    let r1 = receive(&mut net, "SSB", &npr, delivered(&fed, &npr, &people, 1)).expect("year one");
    let r2 = receive(
        &mut net,
        "SSB",
        &apotek,
        delivered(&fed, &apotek, &people[..6], 2),
    )
    .expect("year two");
    let DomainBody::Delivery {
        persons,
        rows,
        source,
        ..
    } = &r1
    else {
        panic!("a delivery record")
    };
    assert_eq!((*persons, *rows, source.as_str()), (10, 20, "NPR"));
    let DomainBody::Delivery { persons, rows, .. } = &r2 else {
        panic!("a delivery record")
    };
    assert_eq!((*persons, *rows), (6, 12));

    let csv = tmp.path().join("ssb.csv");
    let printed = export(&fed, "SSB", None, &csv);
    assert_eq!(printed.lines().count(), 2, "{printed}");
    let got = table(&csv);
    let psi = expected(&fed, "SSB", &people);
    assert_eq!(got.len(), 10, "one pseudonym per person");
    for (i, p) in psi.iter().enumerate() {
        let rows = got.get(p).expect("every person under Ψ_R");
        // The first six persons came twice (both years, both sources),
        // under one pseudonym.
        assert_eq!(rows.len(), if i < 6 { 4 } else { 2 });
        assert!(rows.contains(&people[i].1[0]));
    }

    // One delivery alone.
    let id = printed
        .lines()
        .find(|l| l.contains("from APOTEK"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("an id");
    let one = tmp.path().join("apotek.csv");
    export(&fed, "SSB", Some(id), &one);
    assert_eq!(table(&one).len(), 6);

    // No fnr in the holder's node directory (SQLite files as bytes), its
    // exports, or the exporter's output.
    drop(net);
    let mut scanned = files(&fed.dir.join("SSB"));
    scanned.extend([csv, one]);
    for f in &scanned {
        let bytes = std::fs::read(f).expect("read");
        for (id, _) in &people {
            assert!(
                !contains(&bytes, id.expose().as_bytes()),
                "an fnr in {}",
                f.display()
            );
        }
    }
    for (id, _) in &people {
        assert!(!printed.contains(id.expose()));
    }
}

#[test]
fn two_domains_give_unrelated_pseudonyms_at_the_holder() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fed = federation(tmp.path());
    let mut net = start(&fed);
    let people = persons(5, 2);
    for domain in ["SSB", "SSB2"] {
        let o = order(&fed, "NPR-2025", domain, "NPR");
        receive(&mut net, "SSB", &o, delivered(&fed, &o, &people, 4)).expect("received");
    }
    let (a, b) = (tmp.path().join("a.csv"), tmp.path().join("b.csv"));
    export(&fed, "SSB", None, &a);
    export(&fed, "SSB2", None, &b);
    let (a, b) = (table(&a), table(&b));
    assert_eq!(a.len(), 5);
    assert_eq!(b.len(), 5);
    assert!(a.keys().all(|p| !b.contains_key(p)));
    assert_eq!(a.keys().cloned().collect::<Vec<_>>().len(), 5);
    let mut expect_a = expected(&fed, "SSB", &people);
    expect_a.sort();
    assert_eq!(a.keys().cloned().collect::<Vec<_>>(), expect_a);
}

#[test]
fn bad_deliveries_are_refused_and_lose_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fed = federation(tmp.path());
    let mut net = start(&fed);
    let people = persons(5, 3);
    let good = order(&fed, "NPR-2025", "SSB", "NPR");
    let csv = |name: &str| tmp.path().join(name);

    // An unknown domain.
    let mut unknown = good.clone();
    unknown.delivery = Some(DeliveryInto { domain: n("IPLOS") });
    let err = receive(
        &mut net,
        "SSB",
        &unknown,
        delivered(&fed, &good, &people, 1),
    )
    .expect_err("refused");
    assert!(
        matches!(err, ReceiptError::Delivery(DeliveryError::UnknownDomain(_))),
        "{err}"
    );
    assert!(err.to_string().contains("IPLOS"), "{err}");

    // A source that is the holder.
    let own = order(&fed, "SSB-2025", "SSB", "SSB");
    let err =
        receive(&mut net, "SSB", &own, delivered(&fed, &good, &people, 1)).expect_err("refused");
    assert!(matches!(
        err,
        ReceiptError::Delivery(DeliveryError::SourceIsHolder { .. })
    ));

    // A node that is not the holder (a key holder) cannot receive.
    let err =
        receive(&mut net, "KPR", &good, delivered(&fed, &good, &people, 1)).expect_err("refused");
    assert!(matches!(err, ReceiptError::NotHolder(_)), "{err}");

    // A blinding that is not the announced one: refused before any row.
    let (mut list, chunks) = delivered(&fed, &good, &people, 1);
    list.commitment = delivered(&fed, &good, &people, 9).0.commitment;
    let err = receive(&mut net, "SSB", &good, (list, chunks)).expect_err("refused");
    assert!(
        matches!(err, ReceiptError::Delivery(DeliveryError::BlindingMismatch)),
        "{err}"
    );

    // A damaged item in the second chunk: nothing recorded; the same
    // delivery then arrives intact and is kept whole, once.
    let (list, mut chunks) = delivered(&fed, &good, &people, 1);
    let mut item = chunks[1].items[0].0.to_vec();
    item[0] ^= 1;
    chunks[1].items[0] = kobling_protocol::seal::SealedItem(
        kobling_protocol::bounded::BoundedBytes::new(item).expect("fits"),
    );
    let err = receive(&mut net, "SSB", &good, (list, chunks)).expect_err("refused");
    assert!(matches!(err, ReceiptError::Item(4)), "{err}");
    let o = kobling(&[
        "delivery",
        "export",
        "--dir",
        fed.dir.join("SSB").to_str().expect("utf-8"),
        "--domain",
        "SSB",
        "--out",
        csv("none.csv").to_str().expect("utf-8"),
    ]);
    assert!(!o.status.success(), "nothing was received in full");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no delivery into domain SSB"));

    receive(&mut net, "SSB", &good, delivered(&fed, &good, &people, 1)).expect("intact");
    let err =
        receive(&mut net, "SSB", &good, delivered(&fed, &good, &people, 1)).expect_err("twice");
    assert!(matches!(err, ReceiptError::AlreadyReceived), "{err}");
    export(&fed, "SSB", None, &csv("all.csv"));
    let t = table(&csv("all.csv"));
    assert_eq!(
        t.values().map(Vec::len).sum::<usize>(),
        10,
        "every row once"
    );
}

#[test]
fn no_value_the_holder_receives_is_open_to_a_dictionary_without_its_blinding() {
    // What reaches the holder from the linker is β₁·Ψ_R(x): neither I(x)
    // nor Ψ_R(x) nor any key holder's k_{i,R}·I(x).
    let tmp = tempfile::tempdir().expect("tmp");
    let fed = federation(tmp.path());
    let people = persons(1, 4);
    let o = order(&fed, "APOTEK-1", "SSB", "APOTEK");
    let (_, chunks) = delivered(&fed, &o, &people, 5);
    let value: WirePoint = chunks[0].values[0];
    let d = Domain::Register(n("SSB"));
    let id = [people[0].0.identity_point()];
    let mut candidates = vec![multiply_decoded(&domain_key(&fed, "SSB"), &id)[0]];
    for m in ["NPR", "KPR", "LINKER"] {
        let mut ks = fed.keystore(m).expect("keystore");
        ks.accept_domain(&d).expect("accept");
        candidates.push(multiply_decoded(&ks.share(&d).expect("share"), &id)[0]);
    }
    candidates.push(WirePoint(id[0].compress().to_bytes()));
    assert!(!candidates.contains(&value));
}

/// A delivery order submitted to the linker: refused with its reason, and
/// the linker stores nothing under its id.
fn submit(net: &mut Net, fed: &Federation, order: &ProjectOrder, by: &str) -> (String, String) {
    use kobling_protocol::messages::Message;
    let operator = &fed.operators[&n(by)][0];
    let mut order = order.clone();
    order.researcher_signing_key = Ed25519Key(operator.verifying_key().to_bytes());
    let order = order.granted_by(&kobling_node::testing::authority());
    let replies = net
        .client(
            &n("LINKER"),
            kobling_node::testing::order_message(&order, net.now(), operator),
        )
        .expect("answered");
    let [Message::Refused { code, detail }] = replies.as_slice() else {
        panic!("refused: {replies:?}")
    };
    assert!(
        net.transcript(&n("LINKER"), &order.project)
            .expect("store")
            .is_empty(),
        "nothing stored"
    );
    (code.to_string(), detail.to_string())
}

#[test]
fn the_linker_refuses_bad_delivery_orders_with_their_reason_and_stores_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fed = federation(tmp.path());
    let mut net = start(&fed);
    let mut unknown = order(&fed, "NPR-IPLOS-2026", "SSB", "NPR");
    unknown.delivery = Some(DeliveryInto { domain: n("IPLOS") });
    let (code, detail) = submit(&mut net, &fed, &unknown, "NPR");
    assert_eq!(code, "order");
    assert!(detail.contains("no register domain IPLOS"), "{detail}");

    let (_, detail) = submit(
        &mut net,
        &fed,
        &order(&fed, "SSB-SSB-2026", "SSB", "SSB"),
        "SSB",
    );
    assert!(detail.contains("is the domain's holder"), "{detail}");

    // Ordered by another register's operator.
    let (_, detail) = submit(
        &mut net,
        &fed,
        &order(&fed, "NPR-SSB-2026", "SSB", "NPR"),
        "KPR",
    );
    assert!(
        detail.contains("ordered by one of its operators"),
        "{detail}"
    );

    // A valid delivery is recorded (`tests/deliveries.rs` runs it).
    let valid = fed
        .delivery_order(
            "NPR-SSB-2026",
            &kobling_sim::population::Extract {
                name: "NPR",
                columns: vec!["fnr", "diagnose"],
                rows: Vec::new(),
                owners: Vec::new(),
            },
            "SSB",
        )
        .expect("order");
    let replies = fed.submit_delivery(&mut net, &valid).expect("answered");
    assert!(
        matches!(
            replies.as_slice(),
            [kobling_protocol::messages::Message::Ack { .. }]
        ),
        "a valid delivery order is recorded: {replies:?}"
    );
}

#[test]
fn status_lists_received_deliveries_and_catches_a_changed_table() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fed = federation(tmp.path());
    let mut net = start(&fed);
    let people = persons(4, 6);
    let o = order(&fed, "NPR-SSB-2025", "SSB", "NPR");
    receive(&mut net, "SSB", &o, delivered(&fed, &o, &people, 1)).expect("received");
    drop(net);
    let dir = fed.dir.join("SSB");
    let status = || {
        kobling(&[
            "delivery",
            "status",
            "--dir",
            dir.to_str().expect("utf-8"),
            "--domain",
            "SSB",
        ])
    };
    let o = status();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("from NPR: 4 persons, 8 rows: received, table intact"),
        "{out}"
    );
    for (id, _) in &people {
        assert!(!out.contains(id.expose()));
    }

    // Someone edits a stored row: status names it and exits 1.
    let db = rusqlite::Connection::open(dir.join("state.db")).expect("db");
    db.execute(
        "UPDATE domain_rows SET pseudonym = ?1 WHERE row = 3",
        [&[7u8; 32][..]],
    )
    .expect("edit");
    drop(db);
    let o = status();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("TABLE DIFFERS"), "{out}");
}
