//! A delivery order (`ProjectOrder` with `delivery` set, postcard, as it
//! arrives in a `SubmitOrder`), the linker's `receipt::admit_delivery_order`
//! and `receipt::DeliveryPlan` against a manifest with two domains, and the
//! holder's `Unblinder` over the bytes that follow as delivered values.
//!
//! Checked: nothing panics; what decodes re-encodes to a value that
//! decodes to the same order; a plan's hops are the domain's key holders
//! without the source, the linker last, and it splits exactly when the
//! source holds no share; the linker never admits a delivery (the node
//! does not sequence one yet) and always admits a project's order; the
//! unblinder refuses a value that is not a point and, unblinding what it
//! blinded, gives the input back.
#![no_main]

use kobling_protocol::{
    chain,
    domain::DomainSpec,
    group::WirePoint,
    manifest::{Ed25519Key, Manifest, Member, Operator, Role, TlsFingerprint, X25519Key},
    receipt::{admit_delivery_order, DeliveryPlan, Unblinder},
    share::Share,
    transcript::{Body, ProjectOrder, SignedStatement, Signer, Statement},
    types::Name,
};
use libfuzzer_sys::fuzz_target;

fn n(s: &str) -> Name {
    Name::new(s).expect("valid")
}

fn manifest() -> Manifest {
    let member = |name: &str, role: Role, seed: u8| Member {
        name: n(name),
        role,
        address: format!("127.0.0.1:{}", 4000 + u16::from(seed)),
        tls_spki_sha256: TlsFingerprint([seed; 32]),
        signing_key: Ed25519Key([seed + 100; 32]),
        hpke_key: X25519Key([seed + 200; 32]),
        operators: if role == Role::Register {
            vec![Operator {
                name: "op".into(),
                key: Ed25519Key([seed + 50; 32]),
            }]
        } else {
            Vec::new()
        },
    };
    Manifest {
        federation: "fuzz".into(),
        portals: Vec::new(),
        members: vec![
            member("NPR", Role::Register, 1),
            member("KPR", Role::Register, 2),
            member("SSB", Role::Register, 3),
            member("APOTEK", Role::Register, 4),
            member("LINKER", Role::Linker, 5),
        ],
        authorities: Vec::new(),
        domains: vec![
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
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok((order, rest)) = postcard::take_from_bytes::<ProjectOrder>(data) else {
        return;
    };
    let again: ProjectOrder =
        postcard::from_bytes(&postcard::to_allocvec(&order).expect("encodes")).expect("decodes");
    assert_eq!(again, order);

    let m = manifest();
    let signed = SignedStatement {
        statement: Statement {
            project: order.project.clone(),
            time: kobling_protocol::types::UnixTime::EPOCH,
            signer: Signer::Researcher(order.researcher_signing_key),
            body: Body::Order(order.clone()),
        },
        signature: kobling_protocol::transcript::Sig([0; 64]),
    };
    let admitted = admit_delivery_order(&m, &signed);
    assert_eq!(admitted.is_ok(), order.delivery.is_none());

    if let Ok(plan) = DeliveryPlan::new(&m, &order) {
        let holders = plan.spec.key_holders(&m);
        assert_eq!(plan.hops.last(), m.linker().map(|l| &l.name));
        assert!(!plan.hops.contains(&plan.source));
        assert!(plan.hops.iter().all(|h| holders.contains(h)));
        assert_eq!(plan.split, !holders.contains(&plan.source));
        assert_ne!(plan.source, plan.spec.holder);
        for (i, h) in plan.hops.iter().enumerate() {
            assert_eq!(plan.hop_of(h), Ok(i as u32 + 1));
        }
    }

    // The bytes after the order as delivered values.
    let values: Vec<WirePoint> = rest
        .chunks_exact(32)
        .map(|c| WirePoint(c.try_into().expect("32 bytes")))
        .collect();
    let mut seed = [7u8; 32];
    seed[..rest.len().min(32)].copy_from_slice(&rest[..rest.len().min(32)]);
    let Ok(beta) = Share::from_secret_bytes(&seed) else {
        return;
    };
    let unblinder = Unblinder::new(&beta, &beta.invert().commitment()).expect("its own commitment");
    if let Ok(psi) = unblinder.unblind(&values, 0) {
        let back = chain::apply_share(&beta, &psi, 0).expect("valid points");
        assert_eq!(back, values.iter().map(|v| v.decode().expect("valid").encode()).collect::<Vec<_>>());
    }
});
