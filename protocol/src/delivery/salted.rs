//! Salted final-pseudonym leaves (issue 12 item 8; v1's linker hop and
//! delivery, and chain v2).
//!
//! A v1 final-pseudonym leaf is `SHA3-256(0x00 ‖ P_t)`: the same person has
//! the same leaf hash in every list of a project, so sibling hashes in two
//! lists' deliveries repeat for the same person. v2 salts each leaf with a
//! per-position secret only the linker can derive:
//!
//! ```text
//! salt_t = framed_sha3("KOBLING-V2-FINAL-SALT", [key, domain, list, le64(t)])
//! leaf_t = SHA3-256(0x00 ‖ salt_t ‖ P_t)          (RFC 6962 leaf over salt_t ‖ P_t)
//! ```
//!
//! The salt is revealed only for delivered positions, with the item's
//! inclusion proof; every other leaf and node hash is a hash over a secret
//! salt, unique to its list and position.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::DeliveryError;
use crate::{
    group::WirePoint,
    hash::framed_sha3,
    merkle::{leaf_hash, InclusionProof, MerkleError, MerkleTree},
    share::{Domain, Share},
    types::{Digest, ListName, Position},
};

/// The tag of [`FinalSaltKey::from_share`].
const FINAL_SALT_KEY_TAG: &[u8] = b"KOBLING-V1-FINAL-SALT-KEY";

/// The linker's secret for the final-leaf salts (derived by the node from
/// its keystore; never leaves the linker).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct FinalSaltKey([u8; 32]);

impl core::fmt::Debug for FinalSaltKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FinalSaltKey(..)")
    }
}

impl FinalSaltKey {
    /// Wraps 32 secret bytes.
    pub fn from_secret_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The linker's salt key for a domain, derived from its share of the
    /// domain: `framed_sha3("KOBLING-V1-FINAL-SALT-KEY", [k_L, domain])`
    /// (v1's linker hop and delivery). The same after a restart, gone
    /// when the share is shredded, and one-way: the salts reveal nothing
    /// of the share.
    pub fn from_share(share: &Share, domain: &Domain) -> Self {
        Self(framed_sha3(
            FINAL_SALT_KEY_TAG,
            &[share.to_secret_bytes().as_slice(), &domain.to_bytes()],
        ))
    }

    /// `salt_t = framed_sha3(FINAL_SALT, [key, domain, list, le64(t)])`.
    pub fn salt(&self, domain: &Domain, list: &ListName, position: u64) -> [u8; 32] {
        framed_sha3(
            crate::v2::tags::FINAL_SALT,
            &[
                &self.0,
                &domain.to_bytes(),
                list.as_bytes(),
                &position.to_le_bytes(),
            ],
        )
    }
}

/// `SHA3-256(0x00 ‖ salt ‖ P)`.
pub fn salted_leaf_hash(salt: &[u8; 32], point: &WirePoint) -> Digest {
    let mut data = [0u8; 64];
    data[..32].copy_from_slice(salt);
    data[32..].copy_from_slice(point.as_bytes());
    leaf_hash(&data)
}

/// The salted final-pseudonym tree of a list (linker side), leaves hashed
/// in parallel. Its root equals the linker hop's streamed `final_root`.
pub fn salted_final_tree(
    key: &FinalSaltKey,
    domain: &Domain,
    list: &ListName,
    points: &[WirePoint],
) -> MerkleTree {
    let leaves = points
        .par_iter()
        .enumerate()
        .map(|(t, p)| salted_leaf_hash(&key.salt(domain, list, t as u64), p))
        .collect();
    MerkleTree::from_leaf_hashes(leaves)
}

/// A delivered pseudonym's salt and inclusion proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaltedPointProof {
    /// The position's salt (revealed for delivered positions only).
    pub salt: [u8; 32],
    /// Inclusion of `salted_leaf_hash(salt, point)` under the final root.
    pub proof: InclusionProof,
}

/// Builds a delivered position's salted proof (linker side).
///
/// # Errors
///
/// A Merkle error if `position` is outside the tree.
pub fn salted_point_proof(
    tree: &MerkleTree,
    key: &FinalSaltKey,
    domain: &Domain,
    list: &ListName,
    position: Position,
) -> Result<SaltedPointProof, MerkleError> {
    Ok(SaltedPointProof {
        salt: key.salt(domain, list, position.0),
        proof: tree.inclusion_proof(position.0)?,
    })
}

/// Verifies a delivered pseudonym against the linker's signed salted final
/// root (researcher side). `persons` is the announced list size.
///
/// # Errors
///
/// [`DeliveryError::PointProof`].
pub fn verify_salted_point(
    list: &ListName,
    position: Position,
    point: &WirePoint,
    proof: &SaltedPointProof,
    final_root: &Digest,
    persons: u64,
) -> Result<(), DeliveryError> {
    let p = &proof.proof;
    if p.index != position.0
        || p.size != persons
        || p.verify_leaf_hash(final_root, &salted_leaf_hash(&proof.salt, point))
            .is_err()
    {
        return Err(DeliveryError::PointProof {
            list: list.clone(),
            position,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::types::ProjectId;

    fn person(i: u64) -> WirePoint {
        WirePoint(
            crate::hash::hash_to_group(b"test", &i.to_le_bytes())
                .compress()
                .to_bytes(),
        )
    }

    fn siblings(proofs: &[InclusionProof]) -> HashSet<Digest> {
        proofs.iter().flat_map(|p| p.path.iter().copied()).collect()
    }

    #[test]
    fn no_sibling_hash_repeats_across_two_lists_deliveries_of_the_same_persons() {
        let domain = Domain::Project(ProjectId::new("P").expect("valid"));
        let key = FinalSaltKey::from_secret_bytes([7; 32]);
        let (npr, kpr) = (
            ListName::new("NPR").expect("valid"),
            ListName::new("KPR").expect("valid"),
        );
        // Both lists hold persons 0..64, in different orders; persons
        // 0..8 are delivered from both.
        let a: Vec<WirePoint> = (0..64).map(person).collect();
        let b: Vec<WirePoint> = (0..64).rev().map(person).collect();
        let delivered_a: Vec<u64> = (0..8).collect();
        let delivered_b: Vec<u64> = (0..8).map(|i| 63 - i).collect();

        let (ta, tb) = (
            salted_final_tree(&key, &domain, &npr, &a),
            salted_final_tree(&key, &domain, &kpr, &b),
        );
        let proofs = |t: &MerkleTree, list: &ListName, pts: &[WirePoint], at: &[u64]| {
            at.iter()
                .map(|&i| {
                    let p = salted_point_proof(t, &key, &domain, list, Position(i)).expect("in");
                    verify_salted_point(list, Position(i), &pts[i as usize], &p, &t.root(), 64)
                        .expect("verifies");
                    p.proof
                })
                .collect::<Vec<_>>()
        };
        let sa = siblings(&proofs(&ta, &npr, &a, &delivered_a));
        let sb = siblings(&proofs(&tb, &kpr, &b, &delivered_b));
        assert!(!sa.is_empty() && !sb.is_empty());
        assert!(sa.is_disjoint(&sb), "a sibling hash repeats across lists");

        // The v1 unsalted trees over the same lists do repeat siblings: the
        // property is the salt's doing.
        let (ua, ub) = (
            MerkleTree::from_leaves(a.iter().map(|p| p.0)),
            MerkleTree::from_leaves(b.iter().map(|p| p.0)),
        );
        let v1 = |t: &MerkleTree, at: &[u64]| {
            siblings(
                &at.iter()
                    .map(|&i| t.inclusion_proof(i).expect("in"))
                    .collect::<Vec<_>>(),
            )
        };
        assert!(!v1(&ua, &delivered_a).is_disjoint(&v1(&ub, &delivered_b)));
    }

    #[test]
    fn a_salted_proof_fails_with_another_point_salt_or_position() {
        let domain = Domain::Project(ProjectId::new("P").expect("valid"));
        let key = FinalSaltKey::from_secret_bytes([9; 32]);
        let list = ListName::new("NPR").expect("valid");
        let pts: Vec<WirePoint> = (0..10).map(person).collect();
        let t = salted_final_tree(&key, &domain, &list, &pts);
        let p = salted_point_proof(&t, &key, &domain, &list, Position(3)).expect("in");
        let root = t.root();
        assert!(verify_salted_point(&list, Position(3), &pts[3], &p, &root, 10).is_ok());
        assert!(verify_salted_point(&list, Position(3), &pts[4], &p, &root, 10).is_err());
        assert!(verify_salted_point(&list, Position(4), &pts[3], &p, &root, 10).is_err());
        assert!(verify_salted_point(&list, Position(3), &pts[3], &p, &root, 11).is_err());
        let mut bad = p.clone();
        bad.salt[0] ^= 1;
        assert!(verify_salted_point(&list, Position(3), &pts[3], &bad, &root, 10).is_err());
    }
}
