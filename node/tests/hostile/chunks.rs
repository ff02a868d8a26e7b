//! Chunks that break the chain, from the list's genuine previous hop: each
//! a tampered copy of KPR's held chunk (a chain v2 `ChunkV2`), sent to SSB
//! (hop 2). Where the points change, KPR's own key signs the tampered
//! chunk's statement, so that SSB's checks reach the points.

use ed25519_dalek::SigningKey;
use kobling_protocol::{bounded::BoundedVec, group::WirePoint, v2::ChunkMsg};

use crate::{attack, chunk_to, harness::name, to_ssb, Message, Shared, P1};

/// `c` with `points`, its statement re-signed by KPR over them.
fn signed(s: &Shared, mut c: ChunkMsg, points: Vec<WirePoint>) -> Message {
    let kpr_key = SigningKey::from_bytes(&s.fed.keystore("KPR").signing_key().to_bytes());
    c.statement.statement.count = points.len() as u32;
    c.statement.statement.output = kobling_protocol::v2::chunk_digest(&points);
    c.statement.signature = c.statement.statement.sign(&s.header, &kpr_key);
    c.points = BoundedVec::new(points).expect("fits");
    chunk_to(P1, c)
}

#[test]
fn an_invalid_point_encoding_is_a_bad_chunk() {
    attack(|s| async move {
        let mut out = s.honest.points.to_vec();
        out[2] = WirePoint([0xff; 32]);
        let m = signed(s, s.honest.clone(), out);
        assert_eq!(to_ssb(s, m).await, "bad-chunk", "an invalid point encoding");
    });
}

#[test]
fn the_identity_point_is_a_bad_chunk() {
    attack(|s| async move {
        let mut out = s.honest.points.to_vec();
        out[2] = WirePoint([0; 32]);
        let m = signed(s, s.honest.clone(), out);
        assert_eq!(to_ssb(s, m).await, "bad-chunk", "the identity point");
    });
}

#[test]
fn a_count_that_disagrees_with_the_announcement_is_a_bad_chunk() {
    attack(|s| async move {
        let mut out = s.honest.points.to_vec();
        out.pop();
        let m = signed(s, s.honest.clone(), out);
        assert_eq!(
            to_ssb(s, m).await,
            "bad-chunk",
            "a count that disagrees with the announcement"
        );
    });
}

#[test]
fn a_statement_signature_that_does_not_verify_is_a_bad_chunk() {
    attack(|s| async move {
        let mut c = s.honest.clone();
        c.statement.signature.0[0] ^= 1;
        assert_eq!(
            to_ssb(s, chunk_to(P1, c)).await,
            "bad-chunk",
            "a statement signature that does not verify"
        );
    });
}

#[test]
fn valid_points_that_are_not_the_signed_ones_are_a_bad_chunk() {
    attack(|s| async move {
        let mut c = s.honest.clone();
        let mut out = c.points.to_vec();
        out.swap(0, 1);
        c.points = BoundedVec::new(out).expect("fits");
        assert_eq!(
            to_ssb(s, chunk_to(P1, c)).await,
            "bad-chunk",
            "valid points that are not the signed ones"
        );
    });
}

#[test]
fn strict_mode_fields_in_an_optimistic_attempt_are_a_bad_chunk() {
    attack(|s| async move {
        let mut c = s.honest.clone();
        c.input = c.points.clone();
        assert_eq!(
            to_ssb(s, chunk_to(P1, c)).await,
            "bad-chunk",
            "strict-mode fields in an optimistic attempt"
        );
    });
}

#[test]
fn a_hop_past_the_chain_is_a_bad_chunk() {
    attack(|s| async move {
        let mut c = s.honest.clone();
        c.statement.statement.hop = u32::MAX;
        assert_eq!(
            to_ssb(s, chunk_to(P1, c)).await,
            "bad-chunk",
            "a hop past the chain"
        );
    });
}

#[test]
fn a_chunk_past_the_list_is_a_bad_chunk() {
    attack(|s| async move {
        let mut c = s.honest.clone();
        c.statement.statement.chunk = 1 << 40;
        assert_eq!(
            to_ssb(s, chunk_to(P1, c)).await,
            "bad-chunk",
            "a chunk past the list"
        );
    });
}

#[test]
fn a_chunk_of_an_unknown_project_is_refused() {
    attack(|s| async move {
        let m = chunk_to("NO-SUCH-PROJECT", s.honest.clone());
        assert_eq!(to_ssb(s, m).await, "unknown-project");
    });
}

#[test]
fn a_chunk_of_an_unknown_list_is_refused() {
    attack(|s| async move {
        let mut c = s.honest.clone();
        c.list = name("LINKER");
        assert_eq!(to_ssb(s, chunk_to(P1, c)).await, "unknown-list");
    });
}

#[test]
fn a_chunk_from_a_member_that_is_not_its_previous_hop_is_refused() {
    attack(|s| async move {
        let mut c = s.honest.clone();
        c.statement.statement.hop = 0; // as if KPR were NPR, the owner
        assert_eq!(to_ssb(s, chunk_to(P1, c)).await, "unexpected-sender");
    });
}
