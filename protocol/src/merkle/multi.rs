//! Batched inclusion proofs: one proof for a batch of leaves of one tree.
//!
//! A delivery sends items in batches of consecutive selected positions
//! (ascending). One [`InclusionProof`](super::InclusionProof) per item
//! repeats the upper part of the path in every item: at 100,000 leaves
//! seventeen digests per proof, two proofs per item. A [`MultiProof`]
//! carries each needed subtree hash once, for the whole batch.
//!
//! The walk is the RFC 6962 recursion itself: for the range `[lo, hi)`
//! (the whole tree first), split at `lo + k`, `k` the largest power of two
//! below `hi − lo`; a range without a batch leaf contributes one proof
//! hash (the subtree's root); a one-leaf range is the batch's leaf; any
//! other range is the node hash of its two halves. The proof's hashes are
//! the leafless ranges' roots **in the order the walk meets them** (left
//! before right, depth first). The verifier walks the same ranges with the
//! batch's leaf hashes, takes the proof's hashes in turn, and accepts only
//! if it used every hash exactly and arrived at the signed root:
//!
//! ```text
//!  prover:   MerkleTree + ascending indices ──▶ MultiProof { size, hashes }
//!  verifier: MultiProof + [(index, leaf hash)] ascending ──▶ root ─▶ == signed root?
//! ```
//!
//! Every hash in a multiproof is the root of a subtree that holds no batch
//! leaf and whose parent holds one: the sibling of some batch leaf's audit
//! path. So a multiproof shows a subset of what the batch's single proofs
//! together show, never more (the salted final leaves' property, issue 12
//! item 8, carries over).
//!
//! Like a single RFC 6962 path, the proof binds the leaves, their indices
//! and the root, and the size only as far as it shapes the walk; verifiers
//! compare `size` with the signed count.

use serde::{Deserialize, Serialize};

use super::{MerkleError, MerkleTree, Sha3, TreeHash};
use crate::{bounded::BoundedVec, types::Digest};

/// The most hashes a multiproof may carry: 4,096 leaves (a message's
/// items) times the deepest path (64).
pub const MAX_MULTIPROOF_HASHES: usize = 4096 * 64;

/// One proof for a batch of leaves of a tree of `size` leaves.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MultiProof {
    /// The number of leaves in the tree.
    pub size: u64,
    /// The roots of the leafless subtrees the walk meets, in walk order.
    pub hashes: BoundedVec<Digest, MAX_MULTIPROOF_HASHES>,
}

impl MerkleTree {
    /// The multiproof of the leaves at `indices` (strictly ascending, not
    /// empty, each below [`len`](Self::len)).
    ///
    /// # Errors
    ///
    /// [`MerkleError::IndexOutOfRange`] for an index past the tree;
    /// [`MerkleError::InvalidProof`] for an empty or unordered batch.
    pub fn multi_proof(&self, indices: &[u64]) -> Result<MultiProof, MerkleError> {
        let size = self.len();
        if let Some(&index) = indices.iter().find(|&&i| i >= size) {
            return Err(MerkleError::IndexOutOfRange { index, size });
        }
        if indices.is_empty() || !ascending(indices) {
            return Err(MerkleError::InvalidProof);
        }
        let mut hashes = Vec::new();
        let root = walk::<Sha3, _, _>(
            0,
            size,
            indices,
            &mut |i| self.leaf_hash(i).ok_or(MerkleError::InvalidProof),
            &mut |lo, hi| {
                let h = self.subtree(lo, hi);
                hashes.push(h);
                Ok(h)
            },
        )?;
        debug_assert_eq!(root, self.root());
        Ok(MultiProof {
            size,
            hashes: BoundedVec::new(hashes).map_err(|_| MerkleError::InvalidProof)?,
        })
    }

    /// The RFC 6962 root of leaves `[lo, hi)`, a range the recursion
    /// meets: `lo` is a multiple of `2^j` with `j = ⌈log₂(hi − lo)⌉`, and
    /// the range is complete (`2^j` leaves) or runs to the tree's end, so
    /// it is the node at level `j`, index `lo >> j`.
    fn subtree(&self, lo: u64, hi: u64) -> Digest {
        let j = (hi - lo).next_power_of_two().trailing_zeros() as usize;
        self.levels[j][(lo >> j) as usize]
    }
}

impl MultiProof {
    /// The root the batch leads to: `leaves` are `(index, leaf hash)`,
    /// indices strictly ascending and below `size`.
    ///
    /// # Errors
    ///
    /// [`MerkleError::InvalidProof`] for an empty or unordered batch, an
    /// index past the tree, too few hashes or hashes left over.
    pub fn root(&self, leaves: &[(u64, Digest)]) -> Result<Digest, MerkleError> {
        let indices: Vec<u64> = leaves.iter().map(|(i, _)| *i).collect();
        if indices.is_empty()
            || !ascending(&indices)
            || indices.last().is_some_and(|&i| i >= self.size)
        {
            return Err(MerkleError::InvalidProof);
        }
        let mut next = self.hashes.iter();
        let mut leaf_at = leaves.iter();
        let root = walk::<Sha3, _, _>(
            0,
            self.size,
            &indices,
            &mut |i| match leaf_at.next() {
                Some((at, h)) if *at == i => Ok(*h),
                _ => Err(MerkleError::InvalidProof),
            },
            &mut |_, _| next.next().copied().ok_or(MerkleError::InvalidProof),
        )?;
        if next.next().is_some() {
            return Err(MerkleError::InvalidProof);
        }
        Ok(root)
    }

    /// Verifies that `leaves` (`(index, leaf hash)`, indices strictly
    /// ascending) are leaves of the tree of `size` leaves with root `root`.
    ///
    /// # Errors
    ///
    /// [`MerkleError::InvalidProof`] if they are not.
    pub fn verify(&self, root: &Digest, leaves: &[(u64, Digest)]) -> Result<(), MerkleError> {
        if self.root(leaves)? == *root {
            Ok(())
        } else {
            Err(MerkleError::InvalidProof)
        }
    }
}

fn ascending(indices: &[u64]) -> bool {
    indices.windows(2).all(|w| w[0] < w[1])
}

/// The RFC 6962 recursion over `[lo, hi)` with the batch's `indices` in
/// it: `leaf(i)` gives a batch leaf's hash, `absent(lo, hi)` a leafless
/// range's root. Depth at most 64 (the size is a u64); work proportional
/// to the batch times the depth.
fn walk<H: TreeHash, L, A>(
    lo: u64,
    hi: u64,
    indices: &[u64],
    leaf: &mut L,
    absent: &mut A,
) -> Result<Digest, MerkleError>
where
    L: FnMut(u64) -> Result<Digest, MerkleError>,
    A: FnMut(u64, u64) -> Result<Digest, MerkleError>,
{
    if indices.is_empty() {
        return absent(lo, hi);
    }
    let n = hi - lo;
    if n == 1 {
        // `indices` is ascending and inside [lo, hi): exactly `lo`.
        return leaf(lo);
    }
    let k = 1u64 << (u64::BITS - 1 - (n - 1).leading_zeros());
    let mid = lo + k;
    let (left, right) = indices.split_at(indices.partition_point(|&i| i < mid));
    let l = walk::<H, L, A>(lo, mid, left, leaf, absent)?;
    let r = walk::<H, L, A>(mid, hi, right, leaf, absent)?;
    Ok(H::node(&l, &r))
}

#[cfg(test)]
mod tests;
