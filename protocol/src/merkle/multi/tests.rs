use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

fn tree(n: u64) -> MerkleTree {
    MerkleTree::from_leaves((0..n).map(|i| i.to_le_bytes()))
}

fn leaves(t: &MerkleTree, indices: &[u64]) -> Vec<(u64, Digest)> {
    indices
        .iter()
        .map(|&i| (i, t.leaf_hash(i).expect("in the tree")))
        .collect()
}

/// A batch from a bit mask over `0..n` (at least one leaf).
fn batch(n: u64, mask: &[bool]) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).filter(|&i| mask[i as usize % mask.len()]).collect();
    if v.is_empty() {
        v.push(n / 2);
    }
    v
}

/// Every batch of every tree up to 9 leaves, and random batches of
/// larger trees: the proof leads to the tree's root, and each of its
/// hashes is a sibling on some batch leaf's single audit path (a
/// multiproof shows no hash the single proofs would not).
#[test]
fn every_batch_of_small_trees_verifies_and_shows_only_path_siblings() {
    for n in 1..=9u64 {
        let t = tree(n);
        for mask in 1u32..(1 << n) {
            let idx: Vec<u64> = (0..n).filter(|i| mask >> i & 1 == 1).collect();
            check_honest(&t, &idx);
        }
    }
}

fn check_honest(t: &MerkleTree, idx: &[u64]) {
    let p = t.multi_proof(idx).expect("proof");
    assert_eq!(p.size, t.len());
    let l = leaves(t, idx);
    assert_eq!(p.root(&l).expect("walks"), t.root());
    p.verify(&t.root(), &l).expect("verifies");
    let siblings: HashSet<Digest> = idx
        .iter()
        .flat_map(|&i| t.inclusion_proof(i).expect("in").path.to_vec())
        .collect();
    assert!(p.hashes.iter().all(|h| siblings.contains(h)));
    let single: usize = idx
        .iter()
        .map(|&i| t.inclusion_proof(i).expect("in").path.len())
        .sum();
    assert!(p.hashes.len() <= single);
}

/// The delivery's case: a batch of 1,024 consecutive positions of a
/// 100,000-leaf tree needs a handful of hashes, not 1,024 paths of 17.
#[test]
fn a_run_of_consecutive_leaves_needs_about_two_paths() {
    let t = MerkleTree::from_leaf_hashes(
        (0..100_000u64)
            .map(|i| super::super::leaf_hash(&i.to_le_bytes()))
            .collect(),
    );
    let idx: Vec<u64> = (40_000..41_024).collect();
    let p = t.multi_proof(&idx).expect("proof");
    assert!(p.hashes.len() <= 2 * 17, "{} hashes", p.hashes.len());
    p.verify(&t.root(), &leaves(&t, &idx)).expect("verifies");
}

/// Attack: each single change to an honest batch (a leaf, an index, a
/// proof hash, a hash dropped or added, the batch reordered, a leaf left
/// out) is refused.
#[test]
fn a_tampered_leaf_index_or_hash_in_a_batch_is_refused() {
    let t = tree(37);
    let idx = [0u64, 3, 4, 5, 17, 30, 36];
    let p = t.multi_proof(&idx).expect("proof");
    let root = t.root();
    let honest = leaves(&t, &idx);
    p.verify(&root, &honest).expect("honest");

    for k in 0..honest.len() {
        let mut l = honest.clone();
        l[k].1 .0[0] ^= 1;
        assert!(p.verify(&root, &l).is_err(), "leaf {k} changed");
        // Another leaf of the tree in its place.
        let mut l = honest.clone();
        let other = (l[k].0 + 1) % 37;
        if !idx.contains(&other) {
            l[k].1 = t.leaf_hash(other).expect("in");
            assert!(p.verify(&root, &l).is_err(), "leaf {k} swapped");
            // The same leaf claimed at another index.
            let mut l = honest.clone();
            l[k].0 = other;
            l.sort_by_key(|x| x.0);
            assert!(p.verify(&root, &l).is_err(), "leaf {k} moved");
        }
    }
    for k in 0..p.hashes.len() {
        let mut bad = p.clone();
        let mut h = bad.hashes.to_vec();
        h[k].0[31] ^= 0x80;
        bad.hashes = BoundedVec::new(h).expect("fits");
        assert!(bad.verify(&root, &honest).is_err(), "hash {k} changed");
    }
    let mut short = p.clone();
    short.hashes = BoundedVec::new(p.hashes[1..].to_vec()).expect("fits");
    assert!(short.verify(&root, &honest).is_err(), "a hash dropped");
    let mut long = p.clone();
    let mut h = p.hashes.to_vec();
    h.push(root);
    long.hashes = BoundedVec::new(h).expect("fits");
    assert!(long.verify(&root, &honest).is_err(), "a hash added");
    assert!(p.verify(&root, &honest[1..]).is_err(), "a leaf left out");
    let mut swapped = honest.clone();
    swapped.swap(0, 1);
    assert!(p.verify(&root, &swapped).is_err(), "unordered");
    let mut twice = honest.clone();
    twice.insert(1, honest[1]);
    assert!(p.verify(&root, &twice).is_err(), "a leaf twice");
    assert!(p.verify(&root, &[]).is_err(), "empty");
    let mut past = p.clone();
    past.size = 36;
    assert!(past.verify(&root, &honest).is_err(), "index 36 of 36");
    assert!(p.verify(&tree(38).root(), &honest).is_err(), "another root");
}

#[test]
fn the_prover_refuses_empty_unordered_and_out_of_range_batches() {
    let t = tree(10);
    assert_eq!(t.multi_proof(&[]), Err(MerkleError::InvalidProof));
    assert_eq!(t.multi_proof(&[3, 2]), Err(MerkleError::InvalidProof));
    assert_eq!(t.multi_proof(&[3, 3]), Err(MerkleError::InvalidProof));
    assert_eq!(
        t.multi_proof(&[1, 10]),
        Err(MerkleError::IndexOutOfRange {
            index: 10,
            size: 10
        })
    );
    assert!(MerkleTree::from_leaf_hashes(Vec::new())
        .multi_proof(&[0])
        .is_err());
}

/// A proof claiming the largest size walks at most 64 levels and fails
/// cleanly.
#[test]
fn a_huge_claimed_size_is_refused_without_panicking() {
    let t = tree(5);
    let p = MultiProof {
        size: u64::MAX,
        hashes: BoundedVec::new(vec![t.root(); 70]).expect("fits"),
    };
    let l = leaves(&t, &[0, 1]);
    assert!(p.verify(&t.root(), &l).is_err());
    let l = vec![(u64::MAX - 1, t.root())];
    assert!(p.verify(&t.root(), &l).is_err());
}

proptest! {
    #[test]
    fn random_batches_verify(n in 1u64..600, mask in proptest::collection::vec(any::<bool>(), 1..64)) {
        let t = tree(n);
        check_honest(&t, &batch(n, &mask));
    }

    /// Flipping any bit of any proof hash breaks the proof.
    #[test]
    fn any_flipped_hash_bit_is_refused(
        n in 2u64..300,
        mask in proptest::collection::vec(any::<bool>(), 1..16),
        pick in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let t = tree(n);
        let idx = batch(n, &mask);
        let p = t.multi_proof(&idx).expect("proof");
        prop_assume!(!p.hashes.is_empty());
        let mut h = p.hashes.to_vec();
        let k = pick.index(h.len());
        h[k].0[usize::from(bit) * 3 % 32] ^= 1 << bit;
        let bad = MultiProof { size: p.size, hashes: BoundedVec::new(h).expect("fits") };
        prop_assert!(bad.verify(&t.root(), &leaves(&t, &idx)).is_err());
    }
}
