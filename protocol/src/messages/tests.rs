use super::*;
use crate::{
    group::WirePoint,
    hop::MAX_CHUNK_POINTS,
    types::{ChunkIndex, HopIndex, ListName},
};
use proptest::prelude::*;

fn samples() -> Vec<Message> {
    let project = ProjectId::new("P-1").expect("valid");
    let list = ListName::new("NPR").expect("valid");
    let points: Vec<WirePoint> = (0..5u8).map(|i| WirePoint([i; 32])).collect();
    vec![
        Message::Hello {
            version: PROTOCOL_VERSION,
        },
        Message::Points(PointChunk {
            project: project.clone(),
            list: list.clone(),
            hop: HopIndex(2),
            chunk: ChunkIndex(7),
            input: BoundedVec::new(points.clone()).expect("fits"),
            output: BoundedVec::new(points).expect("fits"),
            proof: None,
        }),
        Message::SealedItems {
            project: project.clone(),
            list,
            first: Position(4096),
            items: BoundedVec::new(vec![SealedItem(
                crate::bounded::BoundedBytes::new(vec![9; 300]).expect("fits"),
            )])
            .expect("fits"),
        },
        Message::Ack {
            of: Digest([3; 32]),
        },
        Message::Refused {
            code: BoundedString::new("unknown-project").expect("fits"),
            detail: BoundedString::new("no project P-2 here").expect("fits"),
        },
        Message::Notice(
            crate::notice::PhaseNotice {
                project: project.clone(),
                phase: crate::notice::Notified::Closed,
                failed_list: None,
            }
            .sign(&ed25519_dalek::SigningKey::from_bytes(&[6; 32])),
        ),
        Message::Entries {
            project,
            first: 0,
            entries: BoundedVec::default(),
        },
        Message::DomainEntries {
            domain: Name::new("RESEPT").expect("valid"),
            first: 3,
            entries: BoundedVec::default(),
        },
        Message::DomainCommitment {
            domain: Name::new("RESEPT").expect("valid"),
            entry: Box::new(crate::domain::transcript::DomainEntry {
                seq: 1,
                prev: Digest([1; 32]),
                signer: Name::new("NPR").expect("valid"),
                body: crate::domain::transcript::DomainBody::KeyCommitment {
                    member: Name::new("NPR").expect("valid"),
                    key: WirePoint([2; 32]),
                },
                signature: Sig([3; 64]),
                operators: BoundedVec::default(),
            }),
        },
        Message::DomainRequest(
            crate::domain::wire::DomainRequest {
                domain: Name::new("RESEPT").expect("valid"),
                action: crate::domain::wire::DomainAction::Retire {
                    statement: Digest([4; 32]),
                    signature: Sig([5; 64]),
                },
                time: crate::types::UnixTime(u64::MAX),
                node: Name::new("N".repeat(Name::MAX_LEN)).expect("valid"),
                manifest: Digest([6; 32]),
                nonce: [7; NONCE_LEN],
            }
            .sign(&ed25519_dalek::SigningKey::from_bytes(&[6; 32])),
        ),
    ]
}

#[test]
fn messages_round_trip_and_trailing_bytes_are_refused() {
    for m in samples() {
        let bytes = encode(&m);
        assert_eq!(decode(&bytes).expect("decodes"), m);
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(DecodeError::Trailing));
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut]).is_err(),
                "a prefix of {} bytes decoded",
                cut
            );
        }
    }
}

#[test]
fn oversized_and_overlong_fields_are_refused() {
    assert!(matches!(
        decode(&vec![0u8; MAX_FRAME + 1]),
        Err(DecodeError::TooLarge(_))
    ));
    // A chunk with one point more than allowed, all bytes present: the
    // bound, not a lack of data, refuses it.
    let at_limit = vec![WirePoint([1; 32]); MAX_CHUNK_POINTS];
    let over = vec![WirePoint([1; 32]); MAX_CHUNK_POINTS + 1];
    let ok = postcard::to_allocvec(&at_limit).expect("encode");
    let too_many = postcard::to_allocvec(&over).expect("encode");
    assert!(postcard::from_bytes::<BoundedVec<WirePoint, MAX_CHUNK_POINTS>>(&ok).is_ok());
    assert!(postcard::from_bytes::<BoundedVec<WirePoint, MAX_CHUNK_POINTS>>(&too_many).is_err());
}

#[test]
fn kinds_are_the_variant_indices() {
    for m in samples() {
        let bytes = encode(&m);
        assert_eq!(Kind::peek(&bytes), Ok(Some(m.kind_of())), "{}", m.kind());
        assert_eq!(m.kind_of().name(), m.kind());
    }
    for (i, k) in Kind::ALL.iter().enumerate() {
        let bytes = postcard::to_allocvec(&(i as u32)).expect("encode");
        assert_eq!(Kind::peek(&bytes), Ok(Some(*k)));
    }
    // The index is read as postcard reads it: an over-long varint is
    // the same kind, and so `decode` agrees with `peek`.
    assert_eq!(Kind::peek(&[0x87, 0x00]), Ok(Some(Kind::Points)));
    assert_eq!(Kind::peek(&[0x80]), Ok(None));
    assert_eq!(Kind::peek(&[]), Ok(None));
    assert!(Kind::peek(&[Kind::ALL.len() as u8]).is_err());
    assert!(Kind::peek(&[0xff, 0xff, 0xff, 0xff, 0x7f]).is_err());
    assert!(Kind::peek(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]).is_err());
}

#[test]
fn caps_hold_the_largest_honest_messages_and_clients_get_a_mebibyte() {
    for k in Kind::ALL {
        assert!(k.max_frame() <= MAX_FRAME);
        if k.from_client() {
            assert!(k.max_frame() <= MAX_CLIENT_FRAME, "{}", k.name());
        }
    }
    for k in [
        Kind::Statement,
        Kind::Entries,
        Kind::Blinding,
        Kind::SealedItems,
        Kind::Points,
        Kind::ChunkV2,
        Kind::PassV2,
    ] {
        assert!(!k.from_client(), "{} is a member's", k.name());
    }
    let full = vec![WirePoint([7; 32]); MAX_CHUNK_POINTS];
    let points = Message::Points(PointChunk {
        project: ProjectId::new("P".repeat(ProjectId::MAX_LEN)).expect("valid"),
        list: ListName::new("N".repeat(Name::MAX_LEN)).expect("valid"),
        hop: HopIndex(u32::MAX),
        chunk: ChunkIndex(u64::MAX),
        input: BoundedVec::new(full.clone()).expect("fits"),
        output: BoundedVec::new(full).expect("fits"),
        proof: Some(crate::dleq::ChunkProof {
            a: WirePoint([1; 32]),
            b: WirePoint([2; 32]),
            proof: crate::dleq::DleqProof {
                challenge: [3; 32],
                response: [4; 32],
            },
        }),
    });
    assert!(encode(&points).len() <= Kind::Points.max_frame());
    let request = Request {
        project: ProjectId::new("P".repeat(ProjectId::MAX_LEN)).expect("valid"),
        action: Action::Status,
        time: UnixTime(u64::MAX),
        node: Name::new("N".repeat(Name::MAX_LEN)).expect("valid"),
        manifest: Digest([0xff; 32]),
        nonce: [0xff; NONCE_LEN],
    };
    let signed = request.sign(&ed25519_dalek::SigningKey::from_bytes(&[5; 32]));
    for m in [
        Message::Status(signed.clone()),
        Message::Fetch(signed.clone()),
        Message::Close(signed),
    ] {
        assert!(encode(&m).len() <= m.kind_of().max_frame());
    }
    let refused = Message::Refused {
        code: BoundedString::new("c".repeat(64)).expect("fits"),
        detail: BoundedString::new("d".repeat(1024)).expect("fits"),
    };
    assert!(encode(&refused).len() <= Kind::Refused.max_frame());
    for m in samples() {
        assert!(encode(&m).len() <= m.kind_of().max_frame(), "{}", m.kind());
    }
    let hello = Message::Hello { version: u16::MAX };
    assert!(encode(&hello).len() <= Kind::Hello.max_frame());
}

fn request(action: Action) -> Request {
    Request {
        project: ProjectId::new("P-1").expect("valid"),
        action,
        time: UnixTime(1_000_000),
        node: Name::new("NPR").expect("valid"),
        manifest: Digest([7; 32]),
        nonce: [1; NONCE_LEN],
    }
}

/// Issue 18 item 7: a request names its node and manifest, and its
/// signature covers them (and the nonce, and an approval's extract).
#[test]
fn a_request_is_refused_for_another_node_manifest_or_time_and_its_fields_are_signed() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let npr = Name::new("NPR").expect("valid");
    let manifest = Digest([7; 32]);
    let signed = request(Action::Status).sign(&key);
    assert_eq!(signed.check(UnixTime(1_000_000), &npr, &manifest), Ok(()));
    assert_eq!(
        signed.check(UnixTime(1_000_000 + MAX_CLOCK_SKEW), &npr, &manifest),
        Ok(())
    );
    assert_eq!(
        signed.check(UnixTime(1_000_000 + MAX_CLOCK_SKEW + 1), &npr, &manifest),
        Err(RequestError::Stale)
    );
    let kpr = Name::new("KPR").expect("valid");
    assert_eq!(
        signed.check(UnixTime(1_000_000), &kpr, &manifest),
        Err(RequestError::WrongNode)
    );
    assert_eq!(
        signed.check(UnixTime(1_000_000), &npr, &Digest([8; 32])),
        Err(RequestError::WrongManifest)
    );
    // A man in the middle who changes a field breaks the signature.
    let mut retargeted = signed.clone();
    retargeted.request.node = kpr.clone();
    assert_eq!(
        retargeted.check(UnixTime(1_000_000), &kpr, &manifest),
        Err(RequestError::BadSignature)
    );
    let mut renonced = signed.clone();
    renonced.request.nonce = [2; NONCE_LEN];
    assert_eq!(
        renonced.check(UnixTime(1_000_000), &npr, &manifest),
        Err(RequestError::BadSignature)
    );
    let approve = |extract: &str| Action::Approve {
        statement: Digest([9; 32]),
        extract: BoundedString::new(extract).expect("fits"),
    };
    let mut swapped = request(approve("NPR.csv")).sign(&key);
    assert_eq!(swapped.check(UnixTime(1_000_000), &npr, &manifest), Ok(()));
    swapped.request.action = approve("other.csv");
    assert_eq!(
        swapped.check(UnixTime(1_000_000), &npr, &manifest),
        Err(RequestError::BadSignature)
    );
    // Two requests differing only in their nonce have distinct identities.
    let mut other = request(Action::Status);
    other.nonce = [2; NONCE_LEN];
    assert_ne!(request(Action::Status).digest(), other.digest());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(which in 0usize..10, at in any::<usize>(), xor in 1u8..=255) {
        let mut bytes = encode(&samples()[which]);
        let i = at % bytes.len();
        bytes[i] ^= xor;
        if let Ok(m) = decode(&bytes) {
            // Whatever decodes re-encodes to something that decodes again.
            prop_assert_eq!(decode(&encode(&m)).ok(), Some(m));
        }
    }
}
