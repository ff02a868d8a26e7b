//! An innsyn request as a register takes it (`messages::decode`, then
//! `innsyn::wire`): the signed call's `check`, `decide_admit`,
//! `decide_second_admission` and `decide_lookup` against a fixed manifest
//! with one portal.
//!
//! Input: one flag byte, then a frame body. Flag bits 0–1: which of KPR's
//! two operators admitted the portal so far (none, the first, the second,
//! both). A body that does not decode is XORed into the encoding of an
//! honest signed lookup, so the target needs no committed seeds.
//!
//! Checked besides "never panics": a decoded message survives an
//! encode/decode round trip; a lookup is admitted only from the manifest's
//! portal key, for a device request naming KPR, after both distinct
//! operators of KPR admitted it; an admission only from an operator of KPR
//! for the manifest's portal; the same operator never admits twice.
#![no_main]

use ed25519_dalek::SigningKey;
use kobling_protocol::{
    bounded::BoundedString,
    innsyn::{
        wire::{
            decide_admit, decide_lookup, decide_second_admission, InnsynAction, InnsynCall,
            Subject,
        },
        InnsynRequest,
    },
    manifest::{Ed25519Key, Manifest, Member, Operator, Portal, Role},
    messages::{decode, encode, Message},
    seal::HpkeSecretKey,
    types::{Digest, Name, UnixTime},
};
use libfuzzer_sys::fuzz_target;

fn n(s: &str) -> Name {
    Name::new(s).expect("valid")
}

fn key(i: u8) -> Ed25519Key {
    Ed25519Key(SigningKey::from_bytes(&[i; 32]).verifying_key().to_bytes())
}

fn manifest() -> Manifest {
    let member = |name: &str, role: Role, i: u8| Member {
        name: n(name),
        role,
        address: format!("127.0.0.1:{}", 7400 + u16::from(i)),
        tls_spki_sha256: kobling_protocol::manifest::TlsFingerprint([i; 32]),
        signing_key: key(i + 10),
        hpke_key: kobling_protocol::manifest::X25519Key([i + 20; 32]),
        operators: if role == Role::Register {
            (0..2)
                .map(|j| Operator {
                    name: format!("op{j}"),
                    key: key(i + 30 + 10 * j),
                })
                .collect()
        } else {
            Vec::new()
        },
    };
    Manifest {
        federation: "fuzz".into(),
        portals: vec![Portal {
            name: n("HELSENORGE"),
            key: key(99),
        }],
        members: vec![
            member("NPR", Role::Register, 1),
            member("KPR", Role::Register, 2),
            member("LINKER", Role::Linker, 3),
        ],
        authorities: Vec::new(),
        domains: Vec::new(),
    }
}

fn honest(m: &Manifest) -> Message {
    let call = InnsynCall {
        action: InnsynAction::Lookup {
            request: InnsynRequest {
                register: n("KPR"),
                device_key: HpkeSecretKey::derive(b"fuzz device").public_key(),
                session: Digest([3; 32]),
                nonce: [4; 16],
            },
            subject: Subject(BoundedString::new("01018012345").expect("short")),
        },
        time: UnixTime(1_000_000),
        node: n("KPR"),
        manifest: m.digest(),
        nonce: [5; 16],
    };
    Message::Innsyn(Box::new(call.sign(&SigningKey::from_bytes(&[99; 32]))))
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let m = manifest();
    let msg = match decode(body) {
        Ok(msg) => {
            assert_eq!(decode(&encode(&msg)).as_ref(), Ok(&msg));
            msg
        }
        Err(_) => {
            let mut bytes = encode(&honest(&m));
            for (b, x) in bytes.iter_mut().zip(body) {
                *b ^= x;
            }
            match decode(&bytes) {
                Ok(msg) => msg,
                Err(_) => return,
            }
        }
    };
    let Message::Innsyn(signed) = msg else {
        return;
    };
    let kpr = n("KPR");
    let ops: Vec<Ed25519Key> = m.member(&kpr).expect("KPR").operators.iter().map(|o| o.key).collect();
    let admitted: Vec<Ed25519Key> = ops
        .iter()
        .enumerate()
        .filter(|(i, _)| flags & (1 << i) != 0)
        .map(|(_, k)| *k)
        .collect();
    let _ = signed.check(UnixTime(1_000_000), &kpr, &m.digest());
    match &signed.call.action {
        InnsynAction::Admit { portal } => {
            if decide_admit(&m, &kpr, &signed.key, portal).is_ok() {
                assert!(ops.contains(&signed.key) && m.portal(portal).is_some());
                let again = decide_second_admission(&admitted, &signed.key, portal);
                assert_eq!(again.is_err(), admitted.contains(&signed.key));
            }
        }
        InnsynAction::Lookup { request, .. } => {
            if decide_lookup(&m, &kpr, &signed.key, request, &admitted).is_ok() {
                assert_eq!(signed.key, key(99));
                assert_eq!(request.register, kpr);
                assert_eq!(admitted.len(), 2);
            }
        }
        // The pseudonymous holder's calls: decoded and checked above; their
        // one-person list is fuzzed by `innsyn_steps`.
        InnsynAction::Blinded { .. } | InnsynAction::Collect { .. } => {}
    }
});
