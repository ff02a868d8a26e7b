//! Delivery to the researcher (PROTOCOL.md §7): what the linker sends for
//! each selected position, and the researcher's checks before opening it.
//!
//! ```text
//!  linker:     Linkage ──▶ DeliveredItem { lnr, position, sealed, sealed_proof, point, point_proof }
//!  researcher: verify_item(item, sealed_root (owner's announcement), final_root (linker's hop record))
//!              ──▶ lnr == Lnr::derive(project, point) ──▶ open with the list's content key ──▶ rows
//! ```
//!
//! Both roots come from the transcript, which the researcher verifies
//! first: an item is accepted only if the owner sealed it at that position
//! and the chain produced that pseudonym at that position.

use serde::{Deserialize, Serialize};

use crate::{
    group::WirePoint,
    hash::FramedHasher,
    link::Lnr,
    merkle::{InclusionProof, MerkleTree},
    owner::sealed_leaf,
    seal::{decode_rows, ContentKey, SealError, SealedItem},
    types::{Digest, Name, Position, ProjectId},
};

mod salted;
pub use salted::{
    salted_final_tree, salted_leaf_hash, salted_point_proof, verify_salted_point, FinalSaltKey,
    SaltedPointProof,
};

/// One cohort member's item of one list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveredItem {
    /// The person's løpenummer.
    pub lnr: Lnr,
    /// The position in the owner's shuffled list.
    pub position: Position,
    /// The owner's sealed rows.
    pub sealed: SealedItem,
    /// Inclusion of `sealed` under the owner's sealed root.
    pub sealed_proof: InclusionProof,
    /// The final pseudonym `P_p(x)`.
    pub point: WirePoint,
    /// Inclusion of `point` under the linker's final root.
    pub point_proof: InclusionProof,
}

/// A delivered item was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The sealed item is not the owner's at that position.
    #[error(
        "list {list} position {position}: the sealed item is not under the owner's signed root"
    )]
    SealedProof {
        /// The list.
        list: Name,
        /// The position.
        position: Position,
    },
    /// The pseudonym is not the chain's at that position.
    #[error(
        "list {list} position {position}: the pseudonym is not under the linker's signed root"
    )]
    PointProof {
        /// The list.
        list: Name,
        /// The position.
        position: Position,
    },
    /// The lnr is not derived from the pseudonym.
    #[error("list {list} position {position}: the lnr does not match the pseudonym")]
    Lnr {
        /// The list.
        list: Name,
        /// The position.
        position: Position,
    },
    /// The item does not open.
    #[error("list {list} position {position}: {source}")]
    Open {
        /// The list.
        list: Name,
        /// The position.
        position: Position,
        /// Why.
        source: SealError,
    },
}

/// What the linker holds to serve a list's delivery.
#[derive(Debug)]
pub struct ListDeliverySource<'a> {
    /// The sealed items, by position.
    pub sealed: &'a MerkleTree,
    /// The final pseudonyms' tree, by position.
    pub points: &'a MerkleTree,
}

/// The digest of a list's selection as the delivery record signs it:
/// `framed_sha3("KOBLING-V1-SELECTION", [le64(position), lnr]…)` over the
/// selected positions in order.
pub fn selection_digest(selected: &[(Position, Lnr)]) -> Digest {
    let mut h = FramedHasher::new(b"KOBLING-V1-SELECTION");
    for (position, lnr) in selected {
        h.push(&position.to_le_bytes());
        h.push(lnr.as_str().as_bytes());
    }
    Digest(h.finish())
}

/// Builds a delivered item (linker side).
///
/// # Errors
///
/// A Merkle error if `position` is outside the list.
pub fn deliver_item(
    lnr: Lnr,
    position: Position,
    sealed: SealedItem,
    point: WirePoint,
    source: &ListDeliverySource<'_>,
) -> Result<DeliveredItem, crate::merkle::MerkleError> {
    Ok(DeliveredItem {
        lnr,
        position,
        sealed_proof: source.sealed.inclusion_proof(position.0)?,
        point_proof: source.points.inclusion_proof(position.0)?,
        sealed,
        point,
    })
}

/// Verifies a delivered item against the transcript's roots and opens it
/// (researcher side). Returns the person's rows.
///
/// `persons` is the list size signed in the owner's announcement: RFC 6962
/// paths alone do not bind the tree size, so both proofs must be for a
/// tree of exactly that many leaves.
///
/// # Errors
///
/// A [`DeliveryError`] naming the list, the position and the check.
pub fn open_item(
    project: &ProjectId,
    list: &Name,
    item: &DeliveredItem,
    sealed_root: &Digest,
    final_root: &Digest,
    persons: u64,
    key: &ContentKey,
) -> Result<Vec<Vec<String>>, DeliveryError> {
    let (l, p) = (list.clone(), item.position);
    let sized = |proof: &InclusionProof| proof.index == p.0 && proof.size == persons;
    if !sized(&item.sealed_proof)
        || item
            .sealed_proof
            .verify(sealed_root, sealed_leaf(&item.sealed))
            .is_err()
    {
        return Err(DeliveryError::SealedProof {
            list: l,
            position: p,
        });
    }
    if !sized(&item.point_proof)
        || item
            .point_proof
            .verify(final_root, item.point.as_bytes())
            .is_err()
    {
        return Err(DeliveryError::PointProof {
            list: l,
            position: p,
        });
    }
    if Lnr::derive(project, &item.point) != item.lnr {
        return Err(DeliveryError::Lnr {
            list: l,
            position: p,
        });
    }
    let plain = key
        .open_item(project, list, p, &item.sealed)
        .map_err(|source| DeliveryError::Open {
            list: l.clone(),
            position: p,
            source,
        })?;
    decode_rows(&plain).map_err(|source| DeliveryError::Open {
        list: l,
        position: p,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selection_digest_binds_positions_lnr_and_order() {
        let a = Lnr::derive(&ProjectId::new("P").expect("valid"), &WirePoint([1; 32]));
        let b = Lnr::derive(&ProjectId::new("P").expect("valid"), &WirePoint([2; 32]));
        let base = selection_digest(&[(Position(1), a), (Position(5), b)]);
        assert_ne!(
            base,
            selection_digest(&[(Position(5), b), (Position(1), a)])
        );
        assert_ne!(
            base,
            selection_digest(&[(Position(1), b), (Position(5), a)])
        );
        assert_ne!(
            base,
            selection_digest(&[(Position(1), a), (Position(6), b)])
        );
        assert_ne!(base, selection_digest(&[(Position(1), a)]));
    }
}
