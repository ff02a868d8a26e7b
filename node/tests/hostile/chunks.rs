//! Chunks that break the chain, from the list's genuine previous hop: each
//! a tampered copy of KPR's held chunk, sent to SSB (hop 2).

use kobling_protocol::{bounded::BoundedVec, group::WirePoint, hop::PointChunk};

use crate::{attack, harness::pid, to_ssb};

/// The held chunk with its output points changed by `f`.
fn with_output(honest: &PointChunk, f: impl FnOnce(&mut Vec<WirePoint>)) -> PointChunk {
    let mut c = honest.clone();
    let mut out = c.output.clone().into_inner();
    f(&mut out);
    c.output = BoundedVec::new(out).expect("fits");
    c
}

#[test]
fn an_invalid_point_encoding_is_a_bad_chunk() {
    attack(|s| async move {
        let c = with_output(&s.honest, |out| out[2] = WirePoint([0xff; 32]));
        assert_eq!(to_ssb(s, c).await, "bad-chunk", "an invalid point encoding");
    });
}

#[test]
fn the_identity_point_is_a_bad_chunk() {
    attack(|s| async move {
        let c = with_output(&s.honest, |out| out[2] = WirePoint([0; 32]));
        assert_eq!(to_ssb(s, c).await, "bad-chunk", "the identity point");
    });
}

#[test]
fn a_count_that_disagrees_with_the_announcement_is_a_bad_chunk() {
    attack(|s| async move {
        let mut c = with_output(&s.honest, |out| {
            out.pop();
        });
        let mut input = c.input.clone().into_inner();
        input.pop();
        c.input = BoundedVec::new(input).expect("fits");
        assert_eq!(
            to_ssb(s, c).await,
            "bad-chunk",
            "a count that disagrees with the announcement"
        );
    });
}

#[test]
fn a_proof_that_does_not_verify_is_a_bad_chunk() {
    attack(|s| async move {
        let mut c = s.honest.clone();
        if let Some(p) = c.proof.as_mut() {
            p.proof.response[0] ^= 1;
        }
        assert_eq!(
            to_ssb(s, c).await,
            "bad-chunk",
            "a proof that does not verify"
        );
    });
}

#[test]
fn valid_points_that_are_not_the_proven_ones_are_a_bad_chunk() {
    attack(|s| async move {
        let c = with_output(&s.honest, |out| out.swap(0, 1));
        assert_eq!(
            to_ssb(s, c).await,
            "bad-chunk",
            "valid points that are not the proven ones"
        );
    });
}

#[test]
fn a_chunk_without_a_proof_is_a_bad_chunk() {
    attack(|s| async move {
        let mut c = s.honest.clone();
        c.proof = None;
        assert_eq!(to_ssb(s, c).await, "bad-chunk", "no proof");
    });
}

#[test]
fn a_hop_past_the_chain_is_a_bad_chunk() {
    attack(|s| async move {
        let mut c = s.honest.clone();
        c.hop = u32::MAX;
        assert_eq!(to_ssb(s, c).await, "bad-chunk", "a hop past the chain");
    });
}

#[test]
fn a_chunk_past_the_list_is_a_bad_chunk() {
    attack(|s| async move {
        let mut c = s.honest.clone();
        c.chunk = 1 << 40;
        assert_eq!(to_ssb(s, c).await, "bad-chunk", "a chunk past the list");
    });
}

#[test]
fn a_chunk_of_an_unknown_project_is_refused() {
    attack(|s| async move {
        let mut c = s.honest.clone();
        c.project = pid("NO-SUCH-PROJECT");
        assert_eq!(to_ssb(s, c).await, "unknown-project");
    });
}

#[test]
fn a_chunk_of_an_unknown_list_is_refused() {
    attack(|s| async move {
        let mut c = s.honest.clone();
        c.list = crate::harness::name("LINKER");
        assert_eq!(to_ssb(s, c).await, "unknown-list");
    });
}

#[test]
fn a_chunk_from_a_member_that_is_not_its_previous_hop_is_refused() {
    attack(|s| async move {
        let mut c = s.honest.clone();
        c.hop = 0; // as if KPR were NPR, the owner
        assert_eq!(to_ssb(s, c).await, "unexpected-sender");
    });
}
