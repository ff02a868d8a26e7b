//! Chunks that break the chain, from the list's genuine previous hop: each
//! a tampered copy of KPR's held chunk (a chain v2 `ChunkV2`), sent to SSB
//! (hop 2). A malformed chunk KPR's own key signs (an invalid point, the
//! identity, a wrong count) names KPR and stops the project, which would end
//! the shared federation's project: that is tested in
//! `tests/tests/chain_v2.rs`
//! (`a_hop_that_signs_a_short_chunk_is_named_and_the_project_stops`).

use ed25519_dalek::SigningKey;
use kobling_protocol::{bounded::BoundedVec, v2::ChunkMsg};

use crate::{attack, chunk_to, harness::list_name, to_ssb, Message, Shared, P1};
use kobling_protocol::types::{ChunkIndex, HopIndex};

/// `c` re-signed by KPR (its statement as edited).
fn signed(s: &Shared, mut c: ChunkMsg) -> Message {
    let kpr_key = SigningKey::from_bytes(&s.fed.keystore("KPR").signing_key().to_bytes());
    c.statement.signature = c.statement.statement.sign(&s.header, &kpr_key);
    chunk_to(P1, c)
}

#[test]
fn a_chunk_kpr_signs_past_the_list_is_a_bad_chunk_that_names_nobody() {
    // Refused before its points are looked at: not a malformed chunk, so
    // SSB names nobody and the shared project goes on.
    attack(|s| async move {
        let mut c = s.honest.clone();
        c.statement.statement.chunk = ChunkIndex(1 << 40);
        let m = signed(s, c);
        assert_eq!(
            to_ssb(s, m).await,
            "bad-chunk",
            "a signed chunk past the list"
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
        c.statement.statement.hop = HopIndex(u32::MAX);
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
        c.statement.statement.chunk = ChunkIndex(1 << 40);
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
        c.list = list_name("LINKER");
        assert_eq!(to_ssb(s, chunk_to(P1, c)).await, "unknown-list");
    });
}

#[test]
fn a_chunk_from_a_member_that_is_not_its_previous_hop_is_refused() {
    attack(|s| async move {
        let mut c = s.honest.clone();
        c.statement.statement.hop = HopIndex(0); // as if KPR were NPR, the owner
        assert_eq!(to_ssb(s, chunk_to(P1, c)).await, "unexpected-sender");
    });
}
