//! The delivery order's checks, the chain it fixes, and the holder's
//! receipt (the chain itself runs in `v2::tests::delivery`).

use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

use super::*;
use crate::{
    bounded::{BoundedString, BoundedVec},
    fixtures::manifest_of,
    hash::{hash_to_group, tags as v1tags},
    manifest::{tests::member, Ed25519Key, Role, X25519Key},
    transcript::RegisterRequest,
    types::{ProjectId, UnixTime},
    v2::SplitBlinding,
};

fn n(s: &str) -> Name {
    Name::new(s).expect("valid")
}

/// NPR, KPR, SSB, APOTEK (a pharmacy) and the linker; domain SSB held by
/// SSB with key holders NPR, KPR and the linker; domain IPLOS held by KPR
/// with the default key holders.
fn manifest() -> Manifest {
    manifest_of(
        vec![
            member("NPR", Role::Register, 1, 2),
            member("KPR", Role::Register, 2, 2),
            member("SSB", Role::Register, 3, 2),
            member("APOTEK", Role::Register, 4, 2),
            member("LINKER", Role::Linker, 5, 0),
        ],
        vec![
            DomainSpec {
                name: n("SSB"),
                holder: n("SSB"),
                key_holders: Some(vec![n("NPR"), n("KPR"), n("LINKER")]),
                kind: Default::default(),
            },
            DomainSpec {
                name: n("IPLOS"),
                holder: n("KPR"),
                key_holders: None,
                kind: Default::default(),
            },
        ],
    )
}

fn order(m: &Manifest, id: &str, domain: &str, sources: &[&str]) -> ProjectOrder {
    let holder = m
        .domain(&n(domain))
        .and_then(|d| m.member(&d.holder))
        .map_or(X25519Key([0; 32]), |h| h.hpke_key);
    ProjectOrder {
        project: ProjectId::new(id).expect("valid"),
        title: BoundedString::new("NPR til SSB 2026").expect("fits"),
        legal_basis: BoundedString::new("statistikkloven § 10").expect("fits"),
        manifest_digest: m.digest(),
        linker: n("LINKER"),
        registers: BoundedVec::new(
            sources
                .iter()
                .map(|s| RegisterRequest {
                    register: n(s),
                    variables: BoundedVec::new(vec![BoundedString::new("diagnose").expect("fits")])
                        .expect("fits"),
                })
                .collect(),
        )
        .expect("fits"),
        cohort: BoundedString::new(sources.first().copied().unwrap_or("NPR")).expect("fits"),
        expires: UnixTime(2_000_000_000),
        researcher_signing_key: Ed25519Key([9; 32]),
        researcher_hpke_key: holder,
        test_mode: false,
        grant: None,
        delivery: Some(DeliveryInto { domain: n(domain) }),
        pseudonymous: Default::default(),
        identified: None,
    }
}

#[test]
fn a_key_holder_source_is_left_out_of_its_own_chain_and_the_linker_is_last() {
    let m = manifest();
    let plan = DeliveryPlan::new(&m, &order(&m, "NPR-SSB-2026", "SSB", &["NPR"])).expect("plan");
    assert_eq!(plan.hops, vec![n("KPR"), n("LINKER")]);
    assert_eq!(plan.key_holders, vec![n("NPR"), n("KPR"), n("LINKER")]);
    assert!(!plan.split);
    assert_eq!(plan.domain(), Domain::Register(n("SSB")));
    assert!(plan.commits(&n("NPR")) && !plan.commits(&n("SSB")));
}

#[test]
fn a_source_without_a_share_splits_and_every_key_holder_steps() {
    let m = manifest();
    let plan = DeliveryPlan::new(&m, &order(&m, "APOTEK-SSB-1", "SSB", &["APOTEK"])).expect("plan");
    assert_eq!(plan.hops, vec![n("NPR"), n("KPR"), n("LINKER")]);
    assert!(plan.split);
    assert_eq!(plan.hop_of(&n("NPR")), Ok(1));
    assert_eq!(plan.hop_of(&n("LINKER")), Ok(3));
}

#[test]
fn the_delivery_id_and_key_domain_are_the_domain_s() {
    let m = manifest();
    let a = order(&m, "D-1", "SSB", &["NPR"]);
    let b = order(&m, "D-1", "IPLOS", &["NPR"]);
    assert_eq!(a.key_domain(), Domain::Register(n("SSB")));
    assert_ne!(a.delivery_id(), b.delivery_id());
    let mut project = a.clone();
    project.delivery = None;
    assert_eq!(project.key_domain(), Domain::Project(a.project.clone()));
    assert_eq!(project.delivery_id(), None);
    assert_ne!(
        project.digest(),
        a.digest(),
        "the order digest binds the domain"
    );
}

#[test]
fn bad_delivery_orders_are_refused_with_a_reason() {
    let m = manifest();
    let refuse = |o: ProjectOrder| DeliveryPlan::new(&m, &o).expect_err("refused");
    assert_eq!(
        refuse(order(&m, "D", "NOSUCH", &["NPR"])),
        DeliveryError::UnknownDomain(n("NOSUCH"))
    );
    assert_eq!(
        refuse(order(&m, "D", "SSB", &["SSB"])),
        DeliveryError::SourceIsHolder {
            domain: n("SSB"),
            source_member: n("SSB")
        }
    );
    assert_eq!(
        refuse(order(&m, "D", "SSB", &["NPR", "KPR"])),
        DeliveryError::SourceCount(2)
    );
    assert_eq!(
        refuse(order(&m, "D", "SSB", &["LINKER"])),
        DeliveryError::UnknownSource(n("LINKER"))
    );
    let mut elsewhere = order(&m, "D", "SSB", &["NPR"]);
    elsewhere.researcher_hpke_key = X25519Key([1; 32]);
    assert!(matches!(refuse(elsewhere), DeliveryError::HolderKey { .. }));
    let mut project = order(&m, "D", "SSB", &["NPR"]);
    project.delivery = None;
    assert_eq!(refuse(project), DeliveryError::NotADelivery);
    let shown = DeliveryError::UnknownDomain(n("NOSUCH")).to_string();
    assert!(shown.contains("NOSUCH"), "{shown}");
}

/// Issue 16 item 3: the disclosure log's holder never receives data: a
/// delivery into the log's domain is refused, and so is a project list
/// keyed by it (it would put disclosure records beside data).
#[test]
fn nothing_is_delivered_into_the_disclosure_log_nor_listed_from_it() {
    let mut m = manifest();
    for d in &mut m.domains {
        if d.name == n("IPLOS") {
            d.kind = crate::domain::DomainKind::DisclosureLog;
        }
    }
    let o = order(&m, "D", "IPLOS", &["NPR"]);
    assert_eq!(
        DeliveryPlan::new(&m, &o).expect_err("refused"),
        DeliveryError::IntoDisclosureLog(n("IPLOS"))
    );
    // The same order into an ordinary domain is a delivery.
    assert!(DeliveryPlan::new(&m, &order(&m, "D", "SSB", &["NPR"])).is_ok());
    // A project keying KPR's list (the log's holder) by the log's domain.
    let mut project = order(&m, "P", "SSB", &["NPR", "KPR"]);
    project.delivery = None;
    let mut listed = project.clone();
    listed.pseudonymous = crate::bounded::BoundedVec::new(vec![crate::domain::PseudonymousList {
        register: n("KPR"),
        domain: n("IPLOS"),
    }])
    .expect("fits");
    assert_eq!(
        crate::domain::validate_order_domains(&m, &listed),
        Err(crate::domain::DomainUseError::DisclosureLog {
            register: n("KPR"),
            domain: n("IPLOS")
        })
    );
    assert_eq!(crate::domain::validate_order_domains(&m, &project), Ok(()));
}

#[test]
fn a_member_that_is_not_a_key_holder_cannot_step() {
    let m = manifest();
    let plan = DeliveryPlan::new(&m, &order(&m, "D", "SSB", &["APOTEK"])).expect("plan");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for outsider in ["SSB", "APOTEK"] {
        let share = Share::random(&mut rng);
        let err = plan
            .step_key(&n(outsider), share, &[], None, &mut rng)
            .expect_err("not a key holder");
        assert!(matches!(err, DeliveryError::NotAKeyHolder { .. }), "{err}");
    }
    // Hop 1 after a split source needs β₂ and proves against D₂.
    let split = SplitBlinding::random(&mut rng);
    let d = split.commitments();
    let k = Share::random(&mut rng);
    assert_eq!(
        plan.step_key(&n("NPR"), k, &d, None, &mut rng).map(|_| ()),
        Err(DeliveryError::BlindingMismatch)
    );
    let k = Share::random(&mut rng);
    let wrong = plan.step_key(&n("NPR"), k, &d, Some(split.first()), &mut rng);
    assert!(matches!(wrong, Err(DeliveryError::Step(_))));
    let k = Share::random(&mut rng);
    let plain = k.commitment();
    let combined = k.product(&split.second().invert()).commitment();
    let key = plan
        .step_key(&n("NPR"), k, &d, Some(split.second()), &mut rng)
        .expect("combined");
    assert_eq!(key.key(), combined, "hop 1 steps by k_1·β₂⁻¹");
    assert_ne!(key.key(), plain);
    let k = Share::random(&mut rng);
    let plain = k.commitment();
    let linker = plan
        .step_key(&n("LINKER"), k, &d, None, &mut rng)
        .expect("plain");
    assert_eq!(linker.key(), plain, "the linker does not remove β");
}

#[test]
fn a_source_extract_needs_fnr_and_no_pseudonym() {
    assert_eq!(check_extract_columns(&["fnr", "diagnose"]), Ok(()));
    assert_eq!(
        check_extract_columns(&["pasient", "diagnose"]),
        Err(DeliveryError::MissingFnr)
    );
    assert_eq!(
        check_extract_columns(&["fnr", "pseudonym", "diagnose"]),
        Err(DeliveryError::PseudonymColumn)
    );
    assert_eq!(
        check_extract_columns(&["pseudonym", "diagnose"]),
        Err(DeliveryError::PseudonymColumn)
    );
}

#[test]
fn the_holder_unblinds_only_with_the_announced_blinding() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let beta = Share::random(&mut rng);
    let d = beta.invert().commitment();
    let psi: Vec<WirePoint> = (0..5u64)
        .map(|t| {
            let p = hash_to_group(v1tags::IDENTITY, &t.to_le_bytes());
            WirePoint(p.compress().to_bytes())
        })
        .collect();
    let blinded = chain::apply_share(&beta, &psi, 0).expect("valid");
    let u = Unblinder::new(&beta, &d).expect("matches");
    assert_eq!(u.unblind(&blinded, 0).expect("valid"), psi);
    let other = Share::random(&mut rng);
    assert_eq!(
        Unblinder::new(&other, &d).map(|_| ()),
        Err(DeliveryError::BlindingMismatch)
    );
    let mut bad = blinded.clone();
    bad[3] = WirePoint([0xff; 32]);
    assert!(matches!(u.unblind(&bad, 10), Err(DeliveryError::Point(_))));
}

#[test]
fn the_table_digest_counts_persons_and_rows_and_binds_every_byte() {
    let m = manifest();
    let plan = DeliveryPlan::new(&m, &order(&m, "D", "SSB", &["NPR"])).expect("plan");
    let (a, b) = (WirePoint([1; 32]), WirePoint([2; 32]));
    let table = |last: &[u8]| {
        let mut t = TableDigest::new(&plan.spec.name, &plan.delivery);
        t.push(&a, 0, b"x");
        t.push(&a, 1, b"y");
        t.push(&b, 2, last);
        t.finish(&plan)
    };
    let DomainBody::Delivery {
        delivery,
        source,
        persons,
        rows,
        table: digest,
    } = table(b"z")
    else {
        panic!("a delivery record");
    };
    assert_eq!((persons, rows), (2, 3));
    assert_eq!(source, n("NPR"));
    assert_eq!(&delivery[..], &plan.delivery.as_bytes()[..16]);
    let DomainBody::Delivery { table: other, .. } = table(b"w") else {
        panic!("a delivery record");
    };
    assert_ne!(digest, other);
}

#[test]
fn the_verifier_checks_a_delivery_order_like_the_linker() {
    use ed25519_dalek::SigningKey;

    use crate::{
        manifest::Authority,
        transcript::{verify, Body, Check, Signer, Statement, Transcript},
    };

    let linker = SigningKey::from_bytes(&[41; 32]);
    let operator = SigningKey::from_bytes(&[42; 32]);
    let authority = SigningKey::from_bytes(&[43; 32]);
    let mut m = manifest();
    for (i, member) in m.members.iter_mut().enumerate() {
        let node = SigningKey::from_bytes(&[60 + i as u8; 32]);
        member.signing_key = Ed25519Key(node.verifying_key().to_bytes());
        for (j, o) in member.operators.iter_mut().enumerate() {
            let k = SigningKey::from_bytes(&[80 + (i * 4 + j) as u8; 32]);
            o.key = Ed25519Key(k.verifying_key().to_bytes());
        }
        if member.name == n("LINKER") {
            member.signing_key = Ed25519Key(linker.verifying_key().to_bytes());
        }
        if member.name == n("NPR") {
            member.operators[0].key = Ed25519Key(operator.verifying_key().to_bytes());
        }
    }
    m.authorities.push(Authority {
        name: "access office".into(),
        key: Ed25519Key(authority.verifying_key().to_bytes()),
    });
    let transcript = |o: ProjectOrder| {
        let mut o = o;
        o.researcher_signing_key = Ed25519Key(operator.verifying_key().to_bytes());
        let o = o.granted_by(&authority);
        let mut t = Transcript::new();
        t.append(
            Statement {
                project: o.project.clone(),
                time: UnixTime(1),
                signer: Signer::Researcher(o.researcher_signing_key),
                body: Body::Order(o),
            }
            .sign(&operator),
            &linker,
        );
        t.into_entries()
    };
    let good = order(&m, "NPR-SSB-2026", "SSB", &["NPR"]);
    verify(&transcript(good.clone()), None, &m).expect("a delivery's order verifies");
    let mut unknown = good.clone();
    unknown.delivery = Some(DeliveryInto {
        domain: n("NOSUCH"),
    });
    let e = verify(&transcript(unknown), None, &m).expect_err("refused");
    assert_eq!((e.check, e.entry), (Check::Order, Some(0)));
    assert!(e.reason.contains("NOSUCH"), "{}", e.reason);
    // KPR's order signed by NPR's operator.
    let e =
        verify(&transcript(order(&m, "KPR-SSB", "SSB", &["KPR"])), None, &m).expect_err("refused");
    assert!(
        e.reason.contains("ordered by one of its operators"),
        "{}",
        e.reason
    );
    let e =
        verify(&transcript(order(&m, "SSB-SSB", "SSB", &["SSB"])), None, &m).expect_err("refused");
    assert!(e.reason.contains("holder"), "{}", e.reason);
}

#[test]
fn a_delivery_needs_no_grant_but_a_project_does_and_a_carried_grant_must_hold() {
    use ed25519_dalek::SigningKey;

    use crate::{
        manifest::Authority,
        refusal::RefusalCode,
        sequencer::admit_grant,
        transcript::{verify, Body, Signer, Statement, Transcript},
    };

    let linker = SigningKey::from_bytes(&[41; 32]);
    let operator = SigningKey::from_bytes(&[42; 32]);
    let authority = SigningKey::from_bytes(&[43; 32]);
    let stranger = SigningKey::from_bytes(&[44; 32]);
    let mut m = manifest();
    for (i, member) in m.members.iter_mut().enumerate() {
        let node = SigningKey::from_bytes(&[60 + i as u8; 32]);
        member.signing_key = Ed25519Key(node.verifying_key().to_bytes());
        for (j, o) in member.operators.iter_mut().enumerate() {
            let k = SigningKey::from_bytes(&[80 + (i * 4 + j) as u8; 32]);
            o.key = Ed25519Key(k.verifying_key().to_bytes());
        }
        if member.name == n("LINKER") {
            member.signing_key = Ed25519Key(linker.verifying_key().to_bytes());
        }
        if member.name == n("NPR") {
            member.operators[0].key = Ed25519Key(operator.verifying_key().to_bytes());
        }
    }
    m.authorities.push(Authority {
        name: "access office".into(),
        key: Ed25519Key(authority.verifying_key().to_bytes()),
    });
    let signed = |o: &ProjectOrder| {
        Statement {
            project: o.project.clone(),
            time: UnixTime(1),
            signer: Signer::Researcher(o.researcher_signing_key),
            body: Body::Order(o.clone()),
        }
        .sign(&operator)
    };
    let entries = |o: &ProjectOrder| {
        let mut t = Transcript::new();
        t.append(signed(o), &linker);
        t.into_entries()
    };
    let mut delivery = order(&m, "NPR-SSB-2026", "SSB", &["NPR"]);
    delivery.researcher_signing_key = Ed25519Key(operator.verifying_key().to_bytes());
    admit_grant(&m, &signed(&delivery)).expect("a delivery without a grant is admitted");
    verify(&entries(&delivery), None, &m).expect("and verifies");

    // A grant signed by a key that is no authority's: refused, at the
    // linker and by the auditor, though a delivery needs none.
    let forged = delivery.clone().granted_by(&stranger);
    let refusal = admit_grant(&m, &signed(&forged)).expect_err("a false grant");
    assert_eq!(refusal.code, RefusalCode::NoAuthority);
    verify(&entries(&forged), None, &m).expect_err("a false grant");

    // The same order as a project (no delivery) without a grant: refused.
    let mut project = delivery;
    project.delivery = None;
    let refusal = admit_grant(&m, &signed(&project)).expect_err("no grant");
    assert_eq!(refusal.code, RefusalCode::NoAuthority);
    verify(&entries(&project), None, &m).expect_err("no grant");
}
