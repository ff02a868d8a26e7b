//! The register's decisions on innsyn requests, and the signed request's
//! checks.

use super::*;
use crate::{
    manifest::{tests::member, Portal, Role},
    messages::MAX_CLOCK_SKEW,
    seal::HpkeSecretKey,
};

fn n(s: &str) -> Name {
    Name::new(s).expect("name")
}

fn portal_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7; 32])
}

fn manifest() -> Manifest {
    Manifest {
        federation: "test".into(),
        portals: vec![Portal {
            name: n("HELSENORGE"),
            key: Ed25519Key(portal_key().verifying_key().to_bytes()),
        }],
        members: vec![
            member("NPR", Role::Register, 1, 2),
            member("KPR", Role::Register, 2, 2),
            member("LINKER", Role::Linker, 4, 0),
        ],
        authorities: Vec::new(),
        domains: Vec::new(),
    }
}

fn device_request(register: &str) -> InnsynRequest {
    InnsynRequest {
        register: n(register),
        device_key: HpkeSecretKey::derive(b"device").public_key(),
        session: Digest([3; 32]),
        nonce: [4; 16],
    }
}

fn operators(m: &Manifest, register: &str) -> Vec<Ed25519Key> {
    m.member(&n(register))
        .expect("member")
        .operators
        .iter()
        .map(|o| o.key)
        .collect()
}

#[test]
fn a_portal_is_served_only_after_two_distinct_operators_admitted_it() {
    let m = manifest();
    m.validate().expect("valid manifest");
    let (kpr, key) = (
        n("KPR"),
        Ed25519Key(portal_key().verifying_key().to_bytes()),
    );
    let ops = operators(&m, "KPR");
    let request = device_request("KPR");
    let none = decide_lookup(&m, &kpr, &key, &request, &[]).expect_err("not admitted");
    assert_eq!(none.code, RefusalCode::NotAllowed);
    assert!(none.detail.contains("not admitted"), "{}", none.detail);
    let one = decide_lookup(&m, &kpr, &key, &request, &ops[..1]).expect_err("one operator");
    assert!(one.detail.contains("one operator"), "{}", one.detail);
    // Two admissions by the same operator count once.
    let same = [ops[0], ops[0]];
    assert!(decide_lookup(&m, &kpr, &key, &request, &same).is_err());
    assert_eq!(
        decide_second_admission(&ops[..1], &ops[0], &n("HELSENORGE")).map_err(|r| r.code),
        Err(RefusalCode::NotAllowed)
    );
    decide_second_admission(&ops[..1], &ops[1], &n("HELSENORGE")).expect("another operator");
    // Operators of another register admit nothing here.
    let npr = operators(&m, "NPR");
    assert!(decide_lookup(&m, &kpr, &key, &request, &npr).is_err());
    assert_eq!(
        decide_lookup(&m, &kpr, &key, &request, &ops).expect("admitted"),
        n("HELSENORGE")
    );
}

#[test]
fn unknown_portals_other_registers_and_strangers_are_refused() {
    let m = manifest();
    let kpr = n("KPR");
    let ops = operators(&m, "KPR");
    let stranger = Ed25519Key([9; 32]);
    let r = decide_lookup(&m, &kpr, &stranger, &device_request("KPR"), &ops).expect_err("stranger");
    assert!(r.detail.contains("no innsyn portal"), "{}", r.detail);
    let key = Ed25519Key(portal_key().verifying_key().to_bytes());
    let r =
        decide_lookup(&m, &kpr, &key, &device_request("NPR"), &ops).expect_err("other register");
    assert_eq!(r.code, RefusalCode::WrongRegister);
    // Admissions: only an operator of this register, only a listed portal.
    assert_eq!(
        decide_admit(&m, &kpr, &operators(&m, "NPR")[0], &n("HELSENORGE")).map_err(|r| r.code),
        Err(RefusalCode::NotAnOperator)
    );
    assert_eq!(
        decide_admit(&m, &kpr, &ops[0], &n("ELSEWHERE")).map_err(|r| r.code),
        Err(RefusalCode::NotAllowed)
    );
    assert_eq!(
        decide_admit(&m, &kpr, &ops[1], &n("HELSENORGE")).as_deref(),
        Ok("op1")
    );
}

#[test]
fn a_signed_call_is_checked_and_never_shows_the_identifier() {
    let m = manifest();
    let call = InnsynCall {
        action: InnsynAction::Lookup {
            request: device_request("KPR"),
            subject: Subject(BoundedString::new("01019912345").expect("short")),
        },
        time: UnixTime(1_000_000),
        node: n("KPR"),
        manifest: m.digest(),
        nonce: [1; NONCE_LEN],
    };
    assert!(!format!("{call:?}").contains("01019912345"));
    let signed = call.clone().sign(&portal_key());
    let digest = m.digest();
    signed
        .check(UnixTime(1_000_100), &n("KPR"), &digest)
        .expect("fresh and signed");
    assert_eq!(
        signed.check(UnixTime(1_000_000 + MAX_CLOCK_SKEW + 1), &n("KPR"), &digest),
        Err(RequestError::Stale)
    );
    assert_eq!(
        signed.check(UnixTime(1_000_000), &n("NPR"), &digest),
        Err(RequestError::WrongNode)
    );
    assert_eq!(
        signed.check(UnixTime(1_000_000), &n("KPR"), &Digest([0; 32])),
        Err(RequestError::WrongManifest)
    );
    let mut altered = signed.clone();
    altered.call.nonce = [2; NONCE_LEN];
    assert_eq!(
        altered.check(UnixTime(1_000_000), &n("KPR"), &digest),
        Err(RequestError::BadSignature)
    );
    let msg = crate::messages::Message::Innsyn(Box::new(signed));
    let bytes = crate::messages::encode(&msg);
    assert!(bytes.len() <= crate::messages::Kind::Innsyn.max_frame());
    assert_eq!(crate::messages::decode(&bytes), Ok(msg));
}

#[test]
fn manifest_portals_are_checked() {
    let mut m = manifest();
    let mut twice = m.clone();
    twice.portals.push(twice.portals[0].clone());
    assert!(matches!(
        twice.validate(),
        Err(crate::manifest::ManifestError::BadPortal(_))
    ));
    // A portal key that is an operator's key is refused.
    m.portals[0].key = m.members[0].operators[0].key;
    assert!(matches!(
        m.validate(),
        Err(crate::manifest::ManifestError::BadPortal(_))
    ));
    let mut named = manifest();
    named.portals[0].name = n("KPR");
    assert!(named.validate().is_err());
    assert_ne!(
        manifest().digest(),
        Manifest {
            portals: Vec::new(),
            ..manifest()
        }
        .digest()
    );
}
