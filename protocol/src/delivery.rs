//! Delivery to the researcher (PROTOCOL.md §7): what the linker sends for
//! each selected position, and the researcher's checks before opening it.
//!
//! ```text
//!  linker:     Linkage ──▶ DeliveredItem { lnr, position, sealed, sealed_proof, point, point_proof (salt, path) }
//!  researcher: open_item(item, sealed_root (owner's announcement), final_root (linker's hop record, salted leaves))
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
    share::Domain,
    transcript::DeliveredList,
    types::{Digest, ListName, Position, ProjectId},
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
    /// The position's salt and the inclusion of the salted leaf
    /// `SHA3-256(0x00 ‖ salt ‖ point)` under the linker's final root: no
    /// sibling hash in it is a hash of a pseudonym alone (issue 12 item 8).
    pub point_proof: SaltedPointProof,
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
        list: ListName,
        /// The position.
        position: Position,
    },
    /// The pseudonym is not the chain's at that position.
    #[error(
        "list {list} position {position}: the pseudonym is not under the linker's signed root"
    )]
    PointProof {
        /// The list.
        list: ListName,
        /// The position.
        position: Position,
    },
    /// The lnr is not derived from the pseudonym.
    #[error("list {list} position {position}: the lnr does not match the pseudonym")]
    Lnr {
        /// The list.
        list: ListName,
        /// The position.
        position: Position,
    },
    /// A position was delivered twice, or out of ascending order.
    #[error("list {list} position {position}: delivered twice or out of order")]
    Duplicate {
        /// The list.
        list: ListName,
        /// The position.
        position: Position,
    },
    /// More or fewer items than the signed delivery record counts.
    #[error("list {list}: {got} items delivered, the signed delivery record says {expected}")]
    Count {
        /// The list.
        list: ListName,
        /// Items in the signed record.
        expected: u64,
        /// Items delivered (saturating).
        got: u64,
    },
    /// The delivered positions and lnr are not the signed selection.
    #[error("list {list}: the delivered selection differs from the signed delivery record")]
    Selection {
        /// The list.
        list: ListName,
    },
    /// The item does not open.
    #[error("list {list} position {position}: {source}")]
    Open {
        /// The list.
        list: ListName,
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
    /// The final pseudonyms' salted tree, by position
    /// ([`salted_final_tree`]).
    pub points: &'a MerkleTree,
    /// The linker's salt key.
    pub salt: &'a FinalSaltKey,
    /// The project's domain.
    pub domain: &'a Domain,
    /// The list.
    pub list: &'a ListName,
}

/// The digest of a list's selection as the delivery record signs it:
/// `framed_sha3("KOBLING-V1-SELECTION", [le64(position), lnr]…)` over the
/// selected positions in order.
pub fn selection_digest(selected: &[(Position, Lnr)]) -> Digest {
    let mut h = FramedHasher::new(SELECTION_TAG);
    for (position, lnr) in selected {
        h.push(&position.to_le_bytes());
        h.push(lnr.as_str().as_bytes());
    }
    Digest(h.finish())
}

/// The researcher's running check of one list's delivery against the
/// linker's signed [`DeliveredList`] record (issue 12 item 9): positions
/// strictly ascending (so none repeats), no more items than the record
/// counts, and at the end exactly that many items whose selection digest
/// ([`selection_digest`], computed incrementally) is the signed one.
///
/// ```text
///  DeliveredList{items, selection} ─▶ SelectionCheck::new
///  each item (position, lnr)       ─▶ push  (Duplicate / Count refusals)
///  end of the list                 ─▶ finish (Count / Selection refusals)
/// ```
#[derive(Debug)]
pub struct SelectionCheck {
    list: ListName,
    expected: u64,
    selection: Digest,
    seen: u64,
    last: Option<Position>,
    hasher: FramedHasher,
}

impl SelectionCheck {
    /// Starts checking `record`'s list.
    pub fn new(record: &DeliveredList) -> Self {
        Self {
            list: record.list.clone(),
            expected: record.items,
            selection: record.selection,
            seen: 0,
            last: None,
            hasher: FramedHasher::new(SELECTION_TAG),
        }
    }

    /// Accounts for one delivered item, before it is opened.
    ///
    /// # Errors
    ///
    /// [`DeliveryError::Duplicate`] for a position not above the previous
    /// one; [`DeliveryError::Count`] for an item beyond the record's count.
    pub fn push(&mut self, position: Position, lnr: &Lnr) -> Result<(), DeliveryError> {
        if self.last.is_some_and(|last| position.0 <= last.0) {
            return Err(DeliveryError::Duplicate {
                list: self.list.clone(),
                position,
            });
        }
        let seen = self.seen.checked_add(1).filter(|n| *n <= self.expected);
        let Some(seen) = seen else {
            return Err(DeliveryError::Count {
                list: self.list.clone(),
                expected: self.expected,
                got: self.seen.saturating_add(1),
            });
        };
        self.seen = seen;
        self.last = Some(position);
        self.hasher.push(&position.to_le_bytes());
        self.hasher.push(lnr.as_str().as_bytes());
        Ok(())
    }

    /// Ends the list.
    ///
    /// # Errors
    ///
    /// [`DeliveryError::Count`] for fewer items than the record counts;
    /// [`DeliveryError::Selection`] if the digest differs.
    pub fn finish(self) -> Result<(), DeliveryError> {
        if self.seen != self.expected {
            return Err(DeliveryError::Count {
                list: self.list,
                expected: self.expected,
                got: self.seen,
            });
        }
        if Digest(self.hasher.finish()) != self.selection {
            return Err(DeliveryError::Selection { list: self.list });
        }
        Ok(())
    }
}

const SELECTION_TAG: &[u8] = b"KOBLING-V1-SELECTION";

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
        point_proof: salted_point_proof(
            source.points,
            source.salt,
            source.domain,
            source.list,
            position,
        )?,
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
    list: &ListName,
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
    verify_salted_point(list, p, &item.point, &item.point_proof, final_root, persons)?;
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

    fn lnr(i: u8) -> Lnr {
        Lnr::derive(&ProjectId::new("P").expect("valid"), &WirePoint([i; 32]))
    }

    fn record(selected: &[(Position, Lnr)]) -> DeliveredList {
        DeliveredList {
            list: ListName::new("NPR").expect("valid"),
            items: selected.len() as u64,
            selection: selection_digest(selected),
        }
    }

    fn check(record: &DeliveredList, delivered: &[(Position, Lnr)]) -> Result<(), DeliveryError> {
        let mut c = SelectionCheck::new(record);
        for (p, l) in delivered {
            c.push(*p, l)?;
        }
        c.finish()
    }

    /// Attack (issue 12 item 9): a linker delivers an item twice, drops
    /// one, or delivers a selection other than the one it signed; the
    /// researcher's check refuses each, and accepts the honest delivery.
    #[test]
    fn a_delivery_that_differs_from_the_signed_record_is_refused() {
        let honest = [
            (Position(2), lnr(1)),
            (Position(5), lnr(2)),
            (Position(9), lnr(3)),
        ];
        let signed = record(&honest);
        assert!(check(&signed, &honest).is_ok());

        let duplicated = [honest[0], honest[1], honest[1], honest[2]];
        assert!(matches!(
            check(&signed, &duplicated),
            Err(DeliveryError::Duplicate {
                position: Position(5),
                ..
            })
        ));
        // A duplicate that replaces an item (count unchanged) as well.
        let replaced = [honest[0], honest[1], honest[1]];
        assert!(matches!(
            check(&signed, &replaced),
            Err(DeliveryError::Duplicate { .. })
        ));
        let dropped = [honest[0], honest[2]];
        assert!(matches!(
            check(&signed, &dropped),
            Err(DeliveryError::Count {
                expected: 3,
                got: 2,
                ..
            })
        ));
        let extra = [honest[0], honest[1], honest[2], (Position(11), lnr(4))];
        assert!(matches!(
            check(&signed, &extra),
            Err(DeliveryError::Count {
                expected: 3,
                got: 4,
                ..
            })
        ));
        let other_person = [honest[0], (Position(6), lnr(2)), honest[2]];
        assert!(matches!(
            check(&signed, &other_person),
            Err(DeliveryError::Selection { .. })
        ));
        let other_lnr = [honest[0], (Position(5), lnr(7)), honest[2]];
        assert!(matches!(
            check(&signed, &other_lnr),
            Err(DeliveryError::Selection { .. })
        ));
    }

    /// A record claiming `u64::MAX` items neither overflows nor panics.
    #[test]
    fn a_huge_signed_count_is_a_refusal_not_a_wrap() {
        let mut r = record(&[(Position(0), lnr(1))]);
        r.items = u64::MAX;
        assert!(matches!(
            check(&r, &[(Position(0), lnr(1))]),
            Err(DeliveryError::Count { .. })
        ));
        let mut c = SelectionCheck::new(&record(&[]));
        assert!(matches!(
            c.push(Position(u64::MAX), &lnr(1)),
            Err(DeliveryError::Count { got: 1, .. })
        ));
    }
}
