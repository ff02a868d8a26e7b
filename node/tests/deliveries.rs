//! Issue 15 item 2: deliveries into a register domain, run by real engines
//! in memory (`kobling_node::testing`). NPR delivers its extract into
//! domain SSB (holder SSB; key holders NPR, KPR and the linker) in two
//! years; the linker steps with `k_{L,SSB}` only and pushes the values to
//! SSB, which removes β and keeps the rows under `Ψ_SSB`.

use std::{collections::BTreeSet, path::Path};

use kobling_node::testing::{walk, Faults, Federation, Net, LINKER};
use kobling_protocol::{
    domain::transcript::DomainBody,
    ident::{Identifier, ParseOptions},
    project::{Phase, ProjectView},
    share::Domain,
    transcript::{self, ProjectOrder},
    types::Name,
};
use kobling_sim::population::{generate, Extract, PopulationConfig};

fn name(s: &str) -> Name {
    Name::new(s).expect("valid name")
}

fn federation(dir: &Path) -> Federation {
    Federation::create(dir, &["NPR", "KPR", "SSB"], 17)
        .expect("federation")
        .with_domain("SSB", "SSB")
        .expect("domain")
}

/// `(Ψ_SSB, values)` of every valid row of `extract`, from the key
/// holders' keystores (the harness only: no party can compute it).
fn expected(fed: &Federation, extract: &Extract) -> BTreeSet<([u8; 32], Vec<String>)> {
    let options = ParseOptions {
        allow_synthetic: true,
    };
    let rows: Vec<(Identifier, Vec<String>)> = extract
        .rows
        .iter()
        .zip(&extract.owners)
        .filter_map(|((raw, values), owner)| {
            owner.and(
                Identifier::parse(raw, options)
                    .ok()
                    .map(|id| (id, values.clone())),
            )
        })
        .collect();
    let ids: Vec<Identifier> = rows.iter().map(|(id, _)| *id).collect();
    let psi = fed.register_pseudonyms("SSB", &ids, 1).expect("pseudonyms");
    psi.iter()
        .zip(rows)
        .map(|(p, (_, values))| (p.0, values))
        .collect()
}

fn held(
    net: &mut Net,
    delivery: &kobling_protocol::types::Digest,
) -> BTreeSet<([u8; 32], Vec<String>)> {
    let mut out = BTreeSet::new();
    net.engine(&name("SSB"))
        .expect("holder")
        .for_each_domain_row(&name("SSB"), delivery, |r| {
            out.insert((r.pseudonym.0, r.values));
            Ok(())
        })
        .expect("rows");
    out
}

/// A population whose NPR, KPR and RESEPT extracts all have rows.
fn population() -> kobling_sim::population::Population {
    generate(&PopulationConfig {
        persons: 120,
        seed: 5,
        ..Default::default()
    })
}

/// Orders delivery `id` of `extract` into SSB and runs it until SSB
/// holds it.
fn deliver(fed: &Federation, net: &mut Net, id: &str, extract: &Extract) -> ProjectOrder {
    let order = fed
        .order_delivery(net, id, extract, "SSB")
        .expect("ordered and approved");
    fed.await_delivery(net, &order, &name("SSB"))
        .expect("received");
    order
}

fn domain_ready(net: &mut Net) {
    net.run_until(120_000, |net| {
        Ok(net
            .engine(&name("SSB"))?
            .domain_state(&name("SSB"))?
            .is_some_and(|s| s.is_complete()))
    })
    .expect("the domain is created and committed");
}

#[test]
fn a_delivery_reaches_the_holder_under_the_domain_pseudonym_and_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let npr = population().extract("NPR").expect("NPR").clone();
    let mut net = fed.start(16, Faults::default(), 9).expect("net");
    domain_ready(&mut net);

    let order = fed
        .order_delivery(&mut net, "NPR-SSB-2025", &npr, "SSB")
        .expect("ordered and approved");
    let record = fed
        .await_delivery(&mut net, &order, &name("SSB"))
        .expect("received");
    let want = expected(&fed, &npr);
    let DomainBody::Delivery { persons, rows, .. } = record.record else {
        panic!("not a delivery record")
    };
    assert_eq!(rows as usize, want.len(), "every valid row is stored");
    assert!(persons > 0 && persons <= rows);
    let delivery = order.delivery_id().expect("id");
    assert_eq!(held(&mut net, &delivery), want, "rows keyed by Ψ_SSB(x)");

    // The holder's domain transcript records it; the linker closes the
    // delivery and its transcript verifies; the key holders keep R's share.
    net.run_until(120_000, |net| {
        let entries = net.transcript(&name(LINKER), &order.project)?;
        let view = ProjectView::new(&fed.manifest, &entries);
        Ok(view.phase() == Phase::Closed
            && ["NPR", "KPR", LINKER]
                .iter()
                .all(|m| view.shredded(&name(m))))
    })
    .expect("closed and shredded");
    let entries = net
        .transcript(&name(LINKER), &order.project)
        .expect("transcript");
    transcript::verify(&entries, None, &fed.manifest).expect("the delivery's transcript verifies");
    let state = net
        .engine(&name("SSB"))
        .expect("holder")
        .domain_state(&name("SSB"))
        .expect("state")
        .expect("domain");
    assert_eq!(state.deliveries, 1);
    for m in ["NPR", "KPR", LINKER] {
        let ks = fed.keystore(m).expect("keystore");
        ks.share(&Domain::Register(name("SSB")))
            .expect("a delivery's closure keeps the domain's share");
    }
    drop(net);
    // No fnr of the extract anywhere in the holder's node directory.
    let fnrs: Vec<&str> = npr.rows.iter().map(|(f, _)| f.as_str()).collect();
    for entry in walk(&dir.path().join("SSB")) {
        let bytes = std::fs::read(&entry).expect("read");
        for f in &fnrs {
            assert!(
                !bytes.windows(f.len()).any(|w| w == f.as_bytes()),
                "an fnr in {}",
                entry.display()
            );
        }
    }
}

/// The next year's extract at `source`: every other row of `extract`
/// (so persons recur), with other values.
fn next_year(extract: &Extract, source: &'static str) -> Extract {
    let mut out = extract.clone();
    out.name = source;
    let keep: Vec<usize> = (0..extract.rows.len()).step_by(2).collect();
    out.rows = keep
        .iter()
        .map(|&i| {
            let (fnr, values) = &extract.rows[i];
            (
                fnr.clone(),
                values.iter().map(|v| format!("{v}+1")).collect(),
            )
        })
        .collect();
    out.owners = keep.iter().map(|&i| extract.owners[i]).collect();
    out
}

#[test]
fn the_same_person_gets_the_same_pseudonym_across_years_and_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let npr = population().extract("NPR").expect("NPR").clone();
    let kpr = next_year(&npr, "KPR");
    let mut net = fed.start(16, Faults::default(), 4).expect("net");
    domain_ready(&mut net);
    let first = deliver(&fed, &mut net, "NPR-SSB-2025", &npr);
    let second = deliver(&fed, &mut net, "KPR-SSB-2026", &kpr);
    let a = held(&mut net, &first.delivery_id().expect("id"));
    let b = held(&mut net, &second.delivery_id().expect("id"));
    // Each table is exactly Ψ_SSB(fnr) with the row's values: the same
    // person has the same pseudonym in both years and from both sources.
    assert_eq!(a, expected(&fed, &npr));
    assert_eq!(b, expected(&fed, &kpr));
    let pa: BTreeSet<[u8; 32]> = a.iter().map(|(p, _)| *p).collect();
    let pb: BTreeSet<[u8; 32]> = b.iter().map(|(p, _)| *p).collect();
    assert!(
        !pb.is_empty() && pb.is_subset(&pa),
        "every person of year two is in year one, under the same pseudonym"
    );
    let state = net
        .engine(&name("SSB"))
        .expect("holder")
        .domain_state(&name("SSB"))
        .expect("state")
        .expect("domain");
    assert_eq!(state.deliveries, 2);
}

#[test]
fn a_pharmacy_without_a_share_delivers_through_a_split_blinding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut fed =
        Federation::create(dir.path(), &["NPR", "KPR", "SSB", "APOTEK"], 23).expect("federation");
    fed.manifest
        .domains
        .push(kobling_protocol::domain::DomainSpec {
            name: name("SSB"),
            holder: name("SSB"),
            key_holders: Some(vec![name("NPR"), name("KPR"), name(LINKER)]),
            kind: Default::default(),
        });
    fed.manifest.validate().expect("manifest");
    let pop = population();
    let mut apotek = pop.extract("RESEPT").expect("RESEPT").clone();
    apotek.name = "APOTEK";
    assert!(!apotek.rows.is_empty());
    let npr = pop.extract("NPR").expect("NPR").clone();
    let mut net = fed.start(16, Faults::default(), 8).expect("net");
    domain_ready(&mut net);
    let order = deliver(&fed, &mut net, "APOTEK-SSB-2025", &apotek);
    let a = held(&mut net, &order.delivery_id().expect("id"));
    assert_eq!(a, expected(&fed, &apotek), "rows keyed by Ψ_SSB(x)");
    // NPR (a key holder) delivers too: the same persons, the same Ψ_SSB.
    let second = deliver(&fed, &mut net, "NPR-SSB-2025", &npr);
    let b = held(&mut net, &second.delivery_id().expect("id"));
    assert_eq!(b, expected(&fed, &npr));
    net.run_until(120_000, |net| {
        let entries = net.transcript(&name(LINKER), &order.project)?;
        let view = ProjectView::new(&fed.manifest, &entries);
        Ok(view.phase() == Phase::Closed
            && ["NPR", "KPR", LINKER]
                .iter()
                .all(|m| view.shredded(&name(m))))
    })
    .expect("closed and shredded");
    let entries = net
        .transcript(&name(LINKER), &order.project)
        .expect("transcript");
    transcript::verify(&entries, None, &fed.manifest).expect("the delivery's transcript verifies");
}

#[test]
fn a_chain_v1_linker_refuses_a_delivery_upfront() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let npr = population().extract("NPR").expect("NPR").clone();
    let mut net = fed.start_v1(16, Faults::default(), 3).expect("net");
    let order = fed
        .delivery_order("NPR-SSB-2025", &npr, "SSB")
        .expect("order");
    let replies = fed.submit_delivery(&mut net, &order).expect("answered");
    let refused = format!("{replies:?}");
    assert!(refused.contains("chain v2 only"), "{refused}");
    assert!(net
        .transcript(&name(LINKER), &order.project)
        .expect("store")
        .is_empty());
}

/// Issue 15 item 1 with real deliveries: NPR's seed of the domain is lost;
/// its operators re-share from the two-passphrase backup; the holder's
/// table is converted. A new delivery of the same persons then gets
/// exactly the pseudonyms the converted table holds.
#[test]
fn after_replacing_a_key_holders_share_a_new_delivery_matches_the_stored_table() {
    use kobling_keys::{backup::open_backup, KdfParams};
    use kobling_node::reshare::{Reshare, ReshareError};
    use kobling_protocol::messages::Message;
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

    let dir = tempfile::tempdir().expect("tempdir");
    let fed = federation(dir.path());
    let npr = population().extract("NPR").expect("NPR").clone();
    let kpr = next_year(&npr, "KPR");
    let mut net = fed.start(16, Faults::default(), 12).expect("net");
    domain_ready(&mut net);
    let first = deliver(&fed, &mut net, "KPR-SSB-2025", &kpr);
    let before = held(&mut net, &first.delivery_id().expect("id"));

    let r = Domain::Register(name("SSB"));
    let kdf = KdfParams::new(64, 1, 1).expect("kdf");
    let backup = fed
        .keystore("NPR")
        .expect("keystore")
        .backup_domain(&r, "first passphrase", "second passphrase", kdf)
        .expect("backup");
    let old = open_backup(&r, &backup, "first passphrase", "second passphrase").expect("opens");
    net.crash(&name("NPR"));
    for e in std::fs::read_dir(dir.path().join("NPR").join("keys").join("domains")).expect("seeds")
    {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "seed") {
            std::fs::remove_file(p).expect("lose the seed");
        }
    }
    net.restart(&name("NPR")).expect("restart");
    let operator = fed.operators[&name("NPR")][0].clone();
    let manifest = fed.manifest.clone();
    let mut ks = fed.keystore("NPR").expect("keystore");
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let now = net.now();
    Reshare {
        manifest: &manifest,
        domain: &name("SSB"),
        member: &name("NPR"),
        replaces: None,
        operator: &operator,
        now,
        send: |m: Message| {
            net.client(&name("SSB"), m)
                .map_err(|e| ReshareError::Transport(Box::new(e)))
        },
    }
    .run(&mut ks, &old, &mut rng)
    .expect("re-shared");
    net.settle(60_000).expect("settles");
    let converted = held(&mut net, &first.delivery_id().expect("id"));
    assert_ne!(converted, before, "the table is converted");
    assert_eq!(converted, expected(&fed, &kpr), "Ψ_SSB under the new share");
    // The kept record's digest is the converted table's (what `kobling
    // delivery status --dir` checks).
    for d in net
        .engine(&name("SSB"))
        .expect("holder")
        .received_deliveries(&name("SSB"))
        .expect("deliveries")
    {
        let mut table = kobling_protocol::receipt::TableDigest::new(&name("SSB"), &d.delivery);
        net.engine(&name("SSB"))
            .expect("holder")
            .for_each_domain_row(&name("SSB"), &d.delivery, |r| {
                let bytes = kobling_protocol::seal::encode_rows(&[r.values]).expect("encode");
                table.push(&r.pseudonym, r.row, &bytes);
                Ok(())
            })
            .expect("rows");
        let DomainBody::Delivery { table: kept, .. } = d.record else {
            panic!("not a delivery record")
        };
        assert_eq!(table.counts().2, kept);
    }

    // The same persons, delivered again with NPR's new share.
    let second = deliver(&fed, &mut net, "KPR-SSB-2026", &kpr);
    let again = held(&mut net, &second.delivery_id().expect("id"));
    assert_eq!(
        again, converted,
        "every stored pseudonym matches the new delivery"
    );
}

/// Issue 15 item 1, a retired key holder replaced by another member: the
/// manifest names RESEPT in NPR's place among domain SSB's key holders;
/// until RESEPT's operator re-shares from NPR's two-operator backup the
/// domain is not complete, and neither NPR's operators nor RESEPT's
/// before the manifest change can convert the table. After the re-share
/// the holder's table matches a new delivery of the same persons under
/// the new key holders, and every copy of the transcript records it.
#[test]
fn a_key_holder_replaced_by_another_member_keeps_every_stored_pseudonym() {
    use kobling_keys::{backup::open_backup, KdfParams};
    use kobling_node::reshare::{Reshare, ReshareError};
    use kobling_protocol::{
        domain::{
            transcript::Replacement,
            wire::{DomainAction, DomainRequest},
        },
        messages::{Message, NONCE_LEN},
        refusal::RefusalCode,
    };
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

    let dir = tempfile::tempdir().expect("tempdir");
    let mut fed = Federation::create(dir.path(), &["NPR", "KPR", "SSB", "RESEPT"], 17)
        .expect("federation")
        .with_domain("SSB", "SSB")
        .expect("domain");
    fed.manifest.domains[0].key_holders = Some(vec![name("NPR"), name("KPR"), name(LINKER)]);
    fed.manifest.validate().expect("valid manifest");
    let npr = population().extract("NPR").expect("NPR").clone();
    let kpr = next_year(&npr, "KPR");
    let mut net = fed.start(16, Faults::default(), 21).expect("net");
    domain_ready(&mut net);
    let first = deliver(&fed, &mut net, "KPR-SSB-2025", &kpr);
    let before = held(&mut net, &first.delivery_id().expect("id"));
    assert_eq!(before, expected(&fed, &kpr));

    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let mut asked = 0u8;
    let mut ask = |fed: &Federation, net: &mut Net, op: &str, member: &str| {
        asked += 1;
        let mut nonce = [0u8; NONCE_LEN];
        nonce[0] = asked;
        let req = DomainRequest {
            domain: name("SSB"),
            action: DomainAction::ReshareTable {
                member: name(member),
                first: 0,
            },
            time: net.now(),
            node: name("SSB"),
            manifest: fed.manifest.digest(),
            nonce,
        }
        .sign(&fed.operators[&name(op)][0]);
        let replies = net
            .client(&name("SSB"), Message::DomainRequest(req))
            .expect("answered");
        replies.first().and_then(Message::refusal_code)
    };
    // Before the manifest names RESEPT, its operator cannot touch NPR's
    // share.
    assert_eq!(
        ask(&fed, &mut net, "RESEPT", "NPR"),
        Some(RefusalCode::NotAnOperator)
    );

    // NPR's share, backed up under two passphrases while NPR held it.
    let r = Domain::Register(name("SSB"));
    let kdf = KdfParams::new(64, 1, 1).expect("kdf");
    let backup = fed
        .keystore("NPR")
        .expect("keystore")
        .backup_domain(&r, "first passphrase", "second passphrase", kdf)
        .expect("backup");
    let old = open_backup(&r, &backup, "first passphrase", "second passphrase").expect("opens");

    // NPR retires as a key holder: the federation's manifest names RESEPT
    // in its place, and every node restarts with it.
    fed.manifest.domains[0].key_holders = Some(vec![name("RESEPT"), name("KPR"), name(LINKER)]);
    fed.manifest.validate().expect("valid manifest");
    net.set_manifest(fed.manifest.clone()).expect("restarted");
    net.run_for(30_000).expect("runs");
    let pending = net
        .engine(&name("SSB"))
        .expect("holder")
        .domain_state(&name("SSB"))
        .expect("state")
        .expect("a copy");
    assert_eq!(
        pending.replacing,
        Some(Replacement {
            leaving: name("NPR"),
            joining: name("RESEPT"),
        })
    );
    assert!(!pending.is_complete(), "no delivery until the re-share");
    assert!(
        pending.key_of(&name("RESEPT")).is_none(),
        "RESEPT commits no key of its own: it takes NPR's place by the re-share"
    );
    // NPR's operators no longer act for the share.
    assert_eq!(
        ask(&fed, &mut net, "NPR", "NPR"),
        Some(RefusalCode::NotAnOperator)
    );
    assert_eq!(
        held(&mut net, &first.delivery_id().expect("id")),
        before,
        "the table is untouched"
    );

    // RESEPT's operator runs the re-share with NPR's backup.
    let operator = fed.operators[&name("RESEPT")][0].clone();
    let manifest = fed.manifest.clone();
    let mut ks = fed.keystore("RESEPT").expect("keystore");
    let now = net.now();
    let state = Reshare {
        manifest: &manifest,
        domain: &name("SSB"),
        member: &name("RESEPT"),
        replaces: Some(&name("NPR")),
        operator: &operator,
        now,
        send: |m: Message| {
            net.client(&name("SSB"), m)
                .map_err(|e| ReshareError::Transport(Box::new(e)))
        },
    }
    .run(&mut ks, &old, &mut rng)
    .expect("re-shared");
    assert!(state.is_complete(), "complete again");
    assert_eq!(state.replacing, None);
    assert_eq!(
        state
            .keys
            .iter()
            .map(|(m, _)| m.clone())
            .collect::<Vec<_>>(),
        fed.manifest.domains[0].key_holders(&fed.manifest),
        "today's key holders, in the manifest's chain order"
    );
    net.settle(60_000).expect("settles");
    let converted = held(&mut net, &first.delivery_id().expect("id"));
    assert_ne!(converted, before, "the table is converted");
    assert_eq!(
        converted,
        expected(&fed, &kpr),
        "Ψ_SSB under RESEPT's, KPR's and the linker's shares"
    );
    for copy in ["RESEPT", "KPR", LINKER] {
        let at = net
            .engine(&name(copy))
            .expect("up")
            .domain_state(&name("SSB"))
            .expect("verifies")
            .expect("a copy");
        assert_eq!((at.reshares, at.replacing.clone()), (1, None), "{copy}");
        assert_eq!(at.head, state.head, "{copy}");
    }

    // The same persons, delivered again through the new key holders.
    let second = deliver(&fed, &mut net, "KPR-SSB-2026", &kpr);
    let again = held(&mut net, &second.delivery_id().expect("id"));
    assert_eq!(
        again, converted,
        "every stored pseudonym matches the new delivery"
    );
}
