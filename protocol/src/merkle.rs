//! RFC 6962-shaped Merkle trees over SHA3-256 (PROTOCOL.md §3).
//!
//! The shape and the inclusion-proof algorithms are those of Certificate
//! Transparency (RFC 6962 §2.1, restated in RFC 9162 §2.1) with SHA-256
//! replaced by SHA3-256:
//!
//! ```text
//! leaf hash      = SHA3-256(0x00 ‖ data)
//! node hash      = SHA3-256(0x01 ‖ left ‖ right)          (left, right: 32 bytes each)
//! MTH({})        = SHA3-256()                              (the empty string)
//! MTH(D[0..n])   = node hash(MTH(D[0..k]), MTH(D[k..n]))   k = largest power of two < n
//! ```
//!
//! The one-byte prefixes separate leaves from interior nodes, and an interior
//! node's input has a fixed length, so these inputs are unambiguous without
//! the length framing the rest of Kobling uses; keeping the RFC shape lets
//! any RFC 6962 tool check a Kobling tree (the tests run the published
//! Certificate Transparency vectors through the same code with SHA-256).
//!
//! # Pieces
//!
//! ```text
//!  leaves ──▶ MerkleTree ──▶ root(), inclusion_proof(i) ──▶ InclusionProof::verify(root, leaf)
//!  leaves ──▶ MerkleBuilder (O(log n) memory) ──▶ finish() == MerkleTree::root()
//!  chunk roots ──▶ root_of_aligned_chunks() == root over all leaves
//!  leaves ──▶ MerkleTree ──▶ multi_proof(indices) ──▶ MultiProof::verify(root, [(index, leaf hash)])
//! ```
//!
//! [`MerkleTree`] keeps every level (about 2n digests) and answers proofs;
//! [`MerkleBuilder`] streams leaves and keeps one digest per level, for
//! hops that only need a root. [`root_of_aligned_chunks`] combines the roots
//! of power-of-two-sized chunks (what hop records sign) into the root of the
//! whole list, so an auditor can tie chunk records to list roots.

use core::marker::PhantomData;

use serde::{Deserialize, Serialize};
use sha3::{Digest as _, Sha3_256};

use crate::{bounded::BoundedVec, types::Digest};

mod multi;
pub use multi::{MultiProof, MAX_MULTIPROOF_HASHES};

/// The most siblings an inclusion proof can have: a tree of at most 2⁶⁴ − 1
/// leaves has depth at most 64.
pub const MAX_PATH_LEN: usize = 64;

/// Prefix of a leaf hash input.
const LEAF_PREFIX: u8 = 0x00;
/// Prefix of an interior node hash input.
const NODE_PREFIX: u8 = 0x01;

/// The leaf hash `SHA3-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Digest {
    Sha3::leaf(data)
}

/// The interior node hash `SHA3-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    Sha3::node(left, right)
}

/// The root of the empty tree, `SHA3-256()` of the empty string.
pub fn empty_root() -> Digest {
    Sha3::empty()
}

/// The RFC 6962 root over all leaves of a list cut into chunks, from the
/// chunk roots alone.
///
/// Precondition: the list was cut, in order, into chunks of `C` leaves,
/// where `C` is a power of two, and only the last chunk may be shorter
/// (but not empty). Each split of the big tree then falls on a chunk
/// boundary, so the big tree is the RFC 6962 tree whose "leaf hashes" are
/// the chunk roots. (With `m` chunks and `n` leaves, `(m−1)·C < n ≤ m·C`;
/// the largest power of two `k < n` is a multiple of `C`, and `k/C` is the
/// largest power of two `< m`.) For any other cut the result is a
/// different, meaningless digest.
///
/// An empty slice gives [`empty_root`]; one chunk gives its own root.
pub fn root_of_aligned_chunks(chunk_roots: &[Digest]) -> Digest {
    let mut b = Builder::<Sha3>::new();
    for r in chunk_roots {
        b.push_hash(*r);
    }
    b.finish()
}

/// The RFC 6962 root over precomputed leaf hashes, computed on all cores
/// (the two halves of every large split in parallel). Equal to
/// `MerkleTree::from_leaf_hashes(leaves.to_vec()).root()` without keeping
/// the levels.
pub fn root_of_leaf_hashes(leaves: &[Digest]) -> Digest {
    /// Below this many leaves a split is not worth a task.
    const SERIAL: usize = 2048;
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n if n <= SERIAL => {
            let mut b = Builder::<Sha3>::new();
            for l in leaves {
                b.push_hash(*l);
            }
            b.finish()
        }
        n => {
            // RFC 6962: split at the largest power of two below n.
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            let (left, right) = leaves.split_at(k);
            let (l, r) = rayon::join(|| root_of_leaf_hashes(left), || root_of_leaf_hashes(right));
            node_hash(&l, &r)
        }
    }
}

/// Why a Merkle operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// A proof was asked for a leaf the tree does not have.
    #[error("leaf index {index} is out of range for a tree of {size} leaves")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The number of leaves.
        size: u64,
    },
    /// An inclusion proof did not verify. Deliberately says no more.
    #[error("inclusion proof verification failed")]
    InvalidProof,
}

/// A whole Merkle tree kept in memory, level by level, to answer
/// inclusion proofs.
///
/// Level 0 holds the leaf hashes; each level above pairs neighbours, and an
/// unpaired last node is carried up unchanged. This bottom-up construction
/// yields exactly the RFC 6962 tree (split at the largest power of two),
/// with about `2n` digests in total and no allocation besides the level
/// vectors.
#[derive(Clone, Debug)]
pub struct MerkleTree {
    levels: Vec<Vec<Digest>>,
    root: Digest,
}

impl MerkleTree {
    /// Builds the tree over `leaves` (each hashed as a leaf).
    pub fn from_leaves<I, L>(leaves: I) -> Self
    where
        I: IntoIterator<Item = L>,
        L: AsRef<[u8]>,
    {
        Self::from_leaf_hashes(leaves.into_iter().map(|l| leaf_hash(l.as_ref())).collect())
    }

    /// Builds the tree over precomputed leaf hashes (e.g. hashed in
    /// parallel by the caller).
    pub fn from_leaf_hashes(leaf_hashes: Vec<Digest>) -> Self {
        let (levels, root) = build_levels::<Sha3>(leaf_hashes);
        Self { levels, root }
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.leaves().len() as u64
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.leaves().is_empty()
    }

    /// The tree head `MTH(D[0..n])`.
    pub fn root(&self) -> Digest {
        self.root
    }

    /// The leaf hash at `index`, if there is one.
    pub fn leaf_hash(&self, index: u64) -> Option<Digest> {
        let i = usize::try_from(index).ok()?;
        self.leaves().get(i).copied()
    }

    /// The audit path of leaf `index` (RFC 9162 §2.1.3.1), bottom up.
    ///
    /// # Errors
    ///
    /// [`MerkleError::IndexOutOfRange`] if `index >= self.len()`.
    pub fn inclusion_proof(&self, index: u64) -> Result<InclusionProof, MerkleError> {
        let size = self.len();
        let out_of_range = MerkleError::IndexOutOfRange { index, size };
        let i = usize::try_from(index).map_err(|_| out_of_range.clone())?;
        if i >= self.leaves().len() {
            return Err(out_of_range);
        }
        let path = audit_path(&self.levels, i);
        Ok(InclusionProof {
            index,
            size,
            // The depth is at most 64 because the size fits a u64.
            path: BoundedVec::new(path).expect("a tree of < 2^64 leaves has depth <= 64"),
        })
    }

    fn leaves(&self) -> &[Digest] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }
}

/// An inclusion proof: leaf `index` is in the tree of `size` leaves whose
/// root the verifier holds. `path` is the RFC 9162 audit path, bottom up.
///
/// As in RFC 6962, a proof authenticates the leaf, its index and the root;
/// the size only as far as it shapes the path (the path of leaf 0 of three
/// leaves is also a valid path of leaf 0 of four). A verifier must
/// therefore compare `size` with the count signed together with the root
/// before trusting it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InclusionProof {
    /// The leaf's index (0-based).
    pub index: u64,
    /// The number of leaves in the tree.
    pub size: u64,
    /// The sibling hashes from the leaf up to the root.
    pub path: BoundedVec<Digest, MAX_PATH_LEN>,
}

impl InclusionProof {
    /// Verifies that `leaf_data` is leaf `index` of the tree of `size`
    /// leaves with root `root`.
    ///
    /// # Errors
    ///
    /// [`MerkleError::InvalidProof`] if it is not.
    pub fn verify(&self, root: &Digest, leaf_data: &[u8]) -> Result<(), MerkleError> {
        self.verify_leaf_hash(root, &leaf_hash(leaf_data))
    }

    /// As [`verify`](Self::verify), for a precomputed leaf hash.
    ///
    /// # Errors
    ///
    /// [`MerkleError::InvalidProof`] if the proof does not verify.
    pub fn verify_leaf_hash(&self, root: &Digest, leaf_hash: &Digest) -> Result<(), MerkleError> {
        verify_path::<Sha3>(self.index, self.size, leaf_hash, &self.path, root)
    }
}

/// A streaming Merkle root: push leaves in order, then
/// [`finish`](Self::finish). Keeps one digest per level (2 KiB), never
/// allocates, and gives the same root as [`MerkleTree`] for every `n`.
#[derive(Clone, Debug, Default)]
pub struct MerkleBuilder {
    inner: Builder<Sha3>,
}

impl MerkleBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf (hashed as `SHA3-256(0x00 ‖ data)`).
    pub fn push(&mut self, leaf_data: &[u8]) {
        self.inner.push_hash(leaf_hash(leaf_data));
    }

    /// Appends a precomputed leaf hash.
    pub fn push_leaf_hash(&mut self, leaf_hash: Digest) {
        self.inner.push_hash(leaf_hash);
    }

    /// The number of leaves pushed so far.
    pub fn len(&self) -> u64 {
        self.inner.count
    }

    /// Whether no leaf was pushed.
    pub fn is_empty(&self) -> bool {
        self.inner.count == 0
    }

    /// The root over all leaves pushed.
    pub fn finish(self) -> Digest {
        self.inner.finish()
    }
}

// ---------------------------------------------------------------------------
// The algorithms, generic over the hash so the tests can run the RFC 6962
// (SHA-256) known answers through the very same code.

/// The three hashes of an RFC 6962-shaped tree.
pub(crate) trait TreeHash {
    /// `H()`.
    fn empty() -> Digest;
    /// `H(0x00 ‖ data)`.
    fn leaf(data: &[u8]) -> Digest;
    /// `H(0x01 ‖ left ‖ right)`.
    fn node(left: &Digest, right: &Digest) -> Digest;
}

/// The Kobling instantiation: SHA3-256.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sha3;

impl TreeHash for Sha3 {
    fn empty() -> Digest {
        Digest(Sha3_256::new().finalize().into())
    }

    fn leaf(data: &[u8]) -> Digest {
        let mut h = Sha3_256::new();
        h.update([LEAF_PREFIX]);
        h.update(data);
        Digest(h.finalize().into())
    }

    fn node(left: &Digest, right: &Digest) -> Digest {
        let mut h = Sha3_256::new();
        h.update([NODE_PREFIX]);
        h.update(left.0);
        h.update(right.0);
        Digest(h.finalize().into())
    }
}

/// All levels of the tree over `leaves`, and its root.
fn build_levels<H: TreeHash>(leaves: Vec<Digest>) -> (Vec<Vec<Digest>>, Digest) {
    let depth = leaves.len().next_power_of_two().trailing_zeros() as usize;
    let mut levels = Vec::with_capacity(depth + 1);
    levels.push(leaves);
    while let Some(top) = levels.last().filter(|top| top.len() > 1) {
        let next: Vec<Digest> = top
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => H::node(l, r),
                // An unpaired last node moves up unchanged.
                [last] => *last,
                _ => unreachable!("chunks(2) yields one or two items"),
            })
            .collect();
        levels.push(next);
    }
    let root = match levels.last().and_then(|top| top.first()) {
        Some(r) => *r,
        None => H::empty(),
    };
    (levels, root)
}

/// The audit path of leaf `index`: at each level, the sibling if there is
/// one (a carried-up last node has none at that level).
fn audit_path(levels: &[Vec<Digest>], index: usize) -> Vec<Digest> {
    let mut path = Vec::with_capacity(levels.len().saturating_sub(1));
    let mut i = index;
    for level in levels.iter().take(levels.len().saturating_sub(1)) {
        if let Some(sibling) = level.get(i ^ 1) {
            path.push(*sibling);
        }
        i >>= 1;
    }
    path
}

/// RFC 9162 §2.1.3.2: the root a proof leads to, or an error if the path
/// does not have exactly the shape `index` and `size` dictate.
fn root_from_path<H: TreeHash>(
    index: u64,
    size: u64,
    leaf_hash: &Digest,
    path: &[Digest],
) -> Result<Digest, MerkleError> {
    if index >= size {
        return Err(MerkleError::InvalidProof);
    }
    let mut f = index;
    let mut s = size - 1;
    let mut r = *leaf_hash;
    for p in path {
        if s == 0 {
            return Err(MerkleError::InvalidProof);
        }
        if f & 1 == 1 || f == s {
            r = H::node(p, &r);
            if f & 1 == 0 {
                // A right-edge node carried up: skip the levels it crossed.
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = H::node(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(MerkleError::InvalidProof);
    }
    Ok(r)
}

fn verify_path<H: TreeHash>(
    index: u64,
    size: u64,
    leaf_hash: &Digest,
    path: &[Digest],
    root: &Digest,
) -> Result<(), MerkleError> {
    let computed = root_from_path::<H>(index, size, leaf_hash, path)?;
    if computed == *root {
        Ok(())
    } else {
        Err(MerkleError::InvalidProof)
    }
}

/// The streaming root: `stack[h]` holds the root of a complete subtree of
/// `2^h` leaves exactly when bit `h` of `count` is set.
#[derive(Clone, Debug)]
struct Builder<H> {
    count: u64,
    stack: [Digest; MAX_PATH_LEN],
    _hash: PhantomData<fn() -> H>,
}

impl<H> Default for Builder<H> {
    fn default() -> Self {
        Self {
            count: 0,
            stack: [Digest::default(); MAX_PATH_LEN],
            _hash: PhantomData,
        }
    }
}

impl<H: TreeHash> Builder<H> {
    fn new() -> Self {
        Self::default()
    }

    fn push_hash(&mut self, leaf_hash: Digest) {
        // Binary increment: merge the complete subtrees of equal height.
        let mut carry = leaf_hash;
        let mut height = 0;
        while (self.count >> height) & 1 == 1 {
            carry = H::node(&self.stack[height], &carry);
            height += 1;
        }
        self.stack[height] = carry;
        self.count += 1;
    }

    fn finish(&self) -> Digest {
        // The RFC tree over n = 2^a + 2^b + … (a > b > …) is
        // node(T_a, node(T_b, …)): fold the subtrees from the smallest.
        let mut acc: Option<Digest> = None;
        for (height, subtree) in self.stack.iter().enumerate() {
            if (self.count >> height) & 1 == 1 {
                acc = Some(match acc {
                    None => *subtree,
                    Some(right) => H::node(subtree, &right),
                });
            }
        }
        acc.unwrap_or_else(H::empty)
    }
}

#[cfg(test)]
mod tests;
