//! A register domain's messages as a node takes them
//! (`messages::decode`, then `domain::wire`): `authorise_domain` for every
//! receiver and sender, a key holder's `decide_entries` and the holder's
//! `decide_commitment` against an honest transcript prefix, and a domain
//! request's `check`.
//!
//! Input: one flag byte, then a frame body. Flags bits 0–1: how many
//! entries of the honest transcript (creation, two commitments, a
//! delivery) the node holds. A body that does not decode is XORed into
//! the encoding of an honest domain message (bits 2–3 choose which), so
//! the target needs no committed seeds.
//!
//! Checked besides "never panics": replicated entries are taken only when
//! they extend the held copy into a transcript that verifies, with its
//! last entry's hash as head; a commitment is appended only at the held
//! transcript's next position, by a key holder now committed.
#![no_main]

use ed25519_dalek::SigningKey;
use kobling_protocol::{
    bounded::BoundedVec,
    domain::{
        transcript::{verify_domain_transcript, DomainBody, DomainEntry, DomainLog},
        wire::{
            authorise_domain, decide_commitment, decide_entries, CommitmentDecision,
            DomainAction, DomainRequest,
        },
        DomainSpec,
    },
    manifest::{Ed25519Key, Manifest, Member, Operator, Role},
    messages::{decode, encode, Message},
    project::Origin,
    share::{Domain, Share},
    types::{Digest, Name},
};
use libfuzzer_sys::fuzz_target;

fn n(s: &str) -> Name {
    Name::new(s).expect("valid")
}

fn sk(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i; 32])
}

fn key(i: u8) -> Ed25519Key {
    Ed25519Key(sk(i).verifying_key().to_bytes())
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
        portals: Vec::new(),
        members: vec![
            member("NPR", Role::Register, 1),
            member("RESEPT", Role::Register, 2),
            member("LINKER", Role::Linker, 3),
        ],
        authorities: Vec::new(),
        domains: vec![DomainSpec {
            name: n("RESEPT"),
            holder: n("RESEPT"),
            key_holders: None,
            kind: Default::default(),
        }],
    }
}

fn commitment(member: &str, i: u8) -> DomainBody {
    DomainBody::KeyCommitment {
        member: n(member),
        key: Share::derive(&[i; 32], &[i; 32], &Domain::Register(n("RESEPT")))
            .expect("share")
            .commitment(),
    }
}

fn honest(m: &Manifest) -> Vec<DomainEntry> {
    let mut log = DomainLog::new();
    log.append(
        n("RESEPT"),
        &sk(12),
        DomainBody::Created {
            domain: n("RESEPT"),
            holder: n("RESEPT"),
            key_holders: BoundedVec::new(vec![n("NPR"), n("LINKER")]).expect("fits"),
            manifest: m.digest(),
        },
        vec![],
    );
    log.append(n("NPR"), &sk(11), commitment("NPR", 1), vec![]);
    log.append(n("LINKER"), &sk(13), commitment("LINKER", 3), vec![]);
    log.append(
        n("RESEPT"),
        &sk(12),
        DomainBody::Delivery {
            delivery: [1; 16],
            source: n("NPR"),
            persons: 3,
            rows: 4,
            table: Digest([5; 32]),
        },
        vec![],
    );
    log.entries().to_vec()
}

fn template(which: u8, log: &[DomainEntry]) -> Message {
    match which {
        0 => Message::DomainEntries {
            domain: n("RESEPT"),
            first: 0,
            entries: BoundedVec::new(log.to_vec()).expect("fits"),
        },
        1 => Message::DomainCommitment {
            domain: n("RESEPT"),
            entry: Box::new(log[2].clone()),
        },
        2 => Message::DomainEntries {
            domain: n("RESEPT"),
            first: 2,
            entries: BoundedVec::new(log[2..].to_vec()).expect("fits"),
        },
        _ => Message::DomainRequest(
            DomainRequest {
                domain: n("RESEPT"),
                action: DomainAction::Transcript { first: 1 },
                time: kobling_protocol::types::UnixTime(1_800_000_000),
                node: n("RESEPT"),
                manifest: Digest([7; 32]),
                nonce: [9; 16],
            }
            .sign(&sk(32)),
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let m = manifest();
    let log = honest(&m);
    let held = &log[..usize::from(flags & 3)];
    let msg = match decode(body) {
        Ok(msg) => msg,
        Err(_) => {
            let mut bytes = encode(&template((flags >> 2) & 3, &log));
            for (b, x) in bytes.iter_mut().zip(body) {
                *b ^= x;
            }
            match decode(&bytes) {
                Ok(msg) => msg,
                Err(_) => return,
            }
        }
    };
    let members = [n("NPR"), n("RESEPT"), n("LINKER")];
    for me in &members {
        for from in members
            .iter()
            .map(|f| Origin::Member(f.clone()))
            .chain([Origin::Client])
        {
            let _ = authorise_domain(&m, me, &from, &msg);
        }
    }
    match &msg {
        Message::DomainEntries {
            domain,
            first,
            entries,
        } => {
            if let Ok((new, state)) = decide_entries(&m, domain, held, *first, entries) {
                let all: Vec<DomainEntry> = held.iter().cloned().chain(new).collect();
                assert!(verify_domain_transcript(&m, domain, &all).is_ok());
                assert_eq!(Some(state.head), all.last().map(DomainEntry::hash));
            }
        }
        Message::DomainCommitment { domain, entry } => {
            if let Ok(CommitmentDecision::Append(state)) =
                decide_commitment(&m, domain, held, entry)
            {
                assert_eq!(entry.seq, held.len() as u64);
                assert_eq!(state.head, entry.hash());
                assert!(state.key_of(&entry.signer).is_some());
            }
        }
        Message::DomainRequest(r) => {
            let _ = r.check(r.request.time, &r.request.node, &r.request.manifest);
            let _ = r.request.digest();
        }
        _ => {}
    }
});
