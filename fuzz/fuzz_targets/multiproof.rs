//! Batched inclusion proofs (`merkle::MultiProof`, as in
//! `Message::DeliveryItems`'s `BatchProof`) and their verifier.
//!
//! The input is a tree size (two bytes, 1–1,024 leaves), a batch mask
//! (two bytes: every leaf whose index's low four bits select a set bit),
//! then postcard bytes decoded as a `MultiProof` and, from the rest, a
//! list of `(index, leaf hash)`.
//!
//! Checked: the honest proof of the batch verifies and re-encodes to
//! itself; a decoded proof verifies against the tree's root with the
//! batch's true leaves and the tree's size only if it is the honest
//! proof; the verifier never
//! panics on a decoded proof with decoded leaves, whatever the size it
//! claims.
#![no_main]

use kobling_fuzz::Cursor;
use kobling_protocol::{
    merkle::{MerkleTree, MultiProof},
    transcript::encode_value,
    types::Digest,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor(data);
    let n = 1 + (u64::from(input.u8()) | u64::from(input.u8()) << 8) % 1024;
    let mask = u16::from(input.u8()) | u16::from(input.u8()) << 8;
    let tree = MerkleTree::from_leaves((0..n).map(|i| i.to_le_bytes()));
    let mut idx: Vec<u64> = (0..n).filter(|i| mask >> (i % 16) & 1 == 1).collect();
    if idx.is_empty() {
        idx.push(n - 1);
    }
    let leaves: Vec<(u64, Digest)> = idx
        .iter()
        .map(|&i| (i, tree.leaf_hash(i).expect("in the tree")))
        .collect();
    let honest = tree.multi_proof(&idx).expect("an honest batch");
    honest.verify(&tree.root(), &leaves).expect("the honest proof verifies");
    let bytes = encode_value(&honest);
    assert_eq!(postcard::from_bytes::<MultiProof>(&bytes).ok().as_ref(), Some(&honest));

    let rest = input.rest();
    let Ok((proof, after)) = postcard::take_from_bytes::<MultiProof>(rest) else {
        return;
    };
    // RFC 6962 shapes do not bind the size (verifiers compare it with the
    // signed count); for the tree's own size the proof is unique.
    if proof.size == n && proof.verify(&tree.root(), &leaves).is_ok() {
        assert_eq!(proof, honest, "another proof verified the batch");
    }
    if let Ok(claimed) = postcard::from_bytes::<Vec<(u64, Digest)>>(after) {
        let _ = proof.root(&claimed);
        let _ = proof.verify(&tree.root(), &claimed);
    }
});
