//! Delivery to the researcher (PROTOCOL.md §7): what the linker sends for
//! each selected position, and the researcher's checks before opening it.
//!
//! ```text
//!  linker:     Linkage ──▶ batches of DeliveredItem { lnr, position, sealed, point, salt }
//!                          with one BatchProof { sealed: MultiProof, points: MultiProof } each
//!  researcher: verify_batch(items, proof, sealed_root (owner's announcement),
//!                           final_root (linker's hop record, salted leaves), persons)
//!              ──▶ per item: lnr == Lnr::derive(project, point) ──▶ open with the list's content key ──▶ rows
//! ```
//!
//! Both roots come from the transcript, which the researcher verifies
//! first: an item is accepted only if the owner sealed it at that position
//! and the chain produced that pseudonym at that position. One
//! [`MultiProof`] per tree covers a whole batch of items (a message's
//! worth), instead of two RFC 6962 paths per item.

use serde::{Deserialize, Serialize};

use crate::{
    group::WirePoint,
    hash::FramedHasher,
    link::Lnr,
    merkle::{leaf_hash, MerkleError, MerkleTree, MultiProof},
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

/// One cohort member's item of one list. Its inclusion under the two
/// signed roots is proven for its whole batch by a [`BatchProof`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveredItem {
    /// The person's løpenummer.
    pub lnr: Lnr,
    /// The position in the owner's shuffled list.
    pub position: Position,
    /// The owner's sealed rows.
    pub sealed: SealedItem,
    /// The final pseudonym `P_p(x)`.
    pub point: WirePoint,
    /// The position's salt: the salted leaf `SHA3-256(0x00 ‖ salt ‖ point)`
    /// is under the linker's final root, and no hash in the batch's proof
    /// is a hash of a pseudonym alone (issue 12 item 8).
    pub salt: [u8; 32],
}

/// The inclusion of a batch of delivered items (positions strictly
/// ascending) under a list's two signed roots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchProof {
    /// The sealed items' leaves under the owner's sealed root.
    pub sealed: MultiProof,
    /// The salted final leaves under the linker's final root.
    pub points: MultiProof,
}

/// A delivered item was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// A sealed item of the batch is not the owner's at its position.
    #[error(
        "list {list}, batch from position {position}: the sealed items are not under the owner's signed root"
    )]
    SealedProof {
        /// The list.
        list: ListName,
        /// The batch's first position.
        position: Position,
    },
    /// A pseudonym of the batch is not the chain's at its position.
    #[error(
        "list {list}, batch from position {position}: the pseudonyms are not under the linker's signed root"
    )]
    PointProof {
        /// The list.
        list: ListName,
        /// The batch's first position (a single proof's own position).
        position: Position,
    },
    /// A batch without items, or whose positions do not ascend.
    #[error("list {list}: a batch that is empty or whose positions do not ascend")]
    Batch {
        /// The list.
        list: ListName,
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

/// Builds a batch of delivered items and its proof (linker side):
/// `selected` are `(lnr, position, sealed item, final point)`, positions
/// strictly ascending.
///
/// # Errors
///
/// A Merkle error for an empty or unordered batch or a position outside
/// the list.
pub fn deliver_batch(
    selected: Vec<(Lnr, Position, SealedItem, WirePoint)>,
    source: &ListDeliverySource<'_>,
) -> Result<(Vec<DeliveredItem>, BatchProof), MerkleError> {
    let positions: Vec<u64> = selected.iter().map(|(_, p, _, _)| p.0).collect();
    let proof = BatchProof {
        sealed: source.sealed.multi_proof(&positions)?,
        points: source.points.multi_proof(&positions)?,
    };
    let items = selected
        .into_iter()
        .map(|(lnr, position, sealed, point)| DeliveredItem {
            lnr,
            salt: source.salt.salt(source.domain, source.list, position.0),
            position,
            sealed,
            point,
        })
        .collect();
    Ok((items, proof))
}

/// Verifies a batch of delivered items against the transcript's roots
/// (researcher and domain holder): positions strictly ascending, every
/// sealed item under the owner's `sealed_root` and every salted pseudonym
/// under the `final_root`, at its position, in trees of exactly `persons`
/// leaves (the size signed in the owner's announcement: RFC 6962 proofs
/// alone do not bind it), and every lnr derived from its pseudonym.
///
/// # Errors
///
/// A [`DeliveryError`] naming the list and the batch's first position.
pub fn verify_batch(
    project: &ProjectId,
    list: &ListName,
    items: &[DeliveredItem],
    proof: &BatchProof,
    sealed_root: &Digest,
    final_root: &Digest,
    persons: u64,
) -> Result<(), DeliveryError> {
    let Some(first) = items.first().map(|i| i.position) else {
        return Err(DeliveryError::Batch { list: list.clone() });
    };
    if items.windows(2).any(|w| w[0].position.0 >= w[1].position.0) {
        return Err(DeliveryError::Batch { list: list.clone() });
    }
    let sealed: Vec<(u64, Digest)> = items
        .iter()
        .map(|i| (i.position.0, leaf_hash(sealed_leaf(&i.sealed))))
        .collect();
    if proof.sealed.size != persons || proof.sealed.verify(sealed_root, &sealed).is_err() {
        return Err(DeliveryError::SealedProof {
            list: list.clone(),
            position: first,
        });
    }
    let points: Vec<(u64, Digest)> = items
        .iter()
        .map(|i| (i.position.0, salted_leaf_hash(&i.salt, &i.point)))
        .collect();
    if proof.points.size != persons || proof.points.verify(final_root, &points).is_err() {
        return Err(DeliveryError::PointProof {
            list: list.clone(),
            position: first,
        });
    }
    if let Some(i) = items
        .iter()
        .find(|i| Lnr::derive(project, &i.point) != i.lnr)
    {
        return Err(DeliveryError::Lnr {
            list: list.clone(),
            position: i.position,
        });
    }
    Ok(())
}

/// Opens a delivered item of a batch that [`verify_batch`] accepted
/// (researcher side). Returns the person's rows.
///
/// # Errors
///
/// [`DeliveryError::Open`].
pub fn open_item(
    project: &ProjectId,
    list: &ListName,
    item: &DeliveredItem,
    key: &ContentKey,
) -> Result<Vec<Vec<String>>, DeliveryError> {
    let p = item.position;
    let plain = key
        .open_item(project, list, p, &item.sealed)
        .map_err(|source| DeliveryError::Open {
            list: list.clone(),
            position: p,
            source,
        })?;
    decode_rows(&plain).map_err(|source| DeliveryError::Open {
        list: list.clone(),
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

    struct Fixture {
        project: ProjectId,
        list: ListName,
        sealed: MerkleTree,
        points: MerkleTree,
        finals: Vec<WirePoint>,
        items: Vec<SealedItem>,
    }

    const SALT_KEY: [u8; 32] = [5; 32];

    fn fixture(n: u64) -> Fixture {
        let project = ProjectId::new("P").expect("valid");
        let list = ListName::new("NPR").expect("valid");
        let key = FinalSaltKey::from_secret_bytes(SALT_KEY);
        let domain = Domain::Project(project.clone());
        let finals: Vec<WirePoint> = (0..n)
            .map(|i| {
                WirePoint(
                    crate::hash::hash_to_group(b"test", &i.to_le_bytes())
                        .compress()
                        .to_bytes(),
                )
            })
            .collect();
        let items: Vec<SealedItem> = (0..n)
            .map(|i| {
                SealedItem(crate::bounded::BoundedBytes::new(vec![i as u8; 40]).expect("fits"))
            })
            .collect();
        Fixture {
            sealed: MerkleTree::from_leaves(items.iter().map(sealed_leaf)),
            points: salted_final_tree(&key, &domain, &list, &finals),
            project,
            list,
            finals,
            items,
        }
    }

    fn batch(f: &Fixture, at: &[u64]) -> (Vec<DeliveredItem>, BatchProof) {
        let key = FinalSaltKey::from_secret_bytes(SALT_KEY);
        let domain = Domain::Project(f.project.clone());
        let source = ListDeliverySource {
            sealed: &f.sealed,
            points: &f.points,
            salt: &key,
            domain: &domain,
            list: &f.list,
        };
        let selected = at
            .iter()
            .map(|&t| {
                let point = f.finals[t as usize];
                (
                    Lnr::derive(&f.project, &point),
                    Position(t),
                    f.items[t as usize].clone(),
                    point,
                )
            })
            .collect();
        deliver_batch(selected, &source).expect("in the list")
    }

    fn verify(
        f: &Fixture,
        items: &[DeliveredItem],
        proof: &BatchProof,
    ) -> Result<(), DeliveryError> {
        verify_batch(
            &f.project,
            &f.list,
            items,
            proof,
            &f.sealed.root(),
            &f.points.root(),
            f.sealed.len(),
        )
    }

    /// Attack: one item of a batch altered (its sealed bytes, pseudonym,
    /// salt, lnr or position), an item dropped, added or reordered, or a
    /// hash of either proof altered: the whole batch is refused; the honest
    /// batch verifies.
    #[test]
    fn a_tampered_item_or_proof_in_a_batch_is_refused() {
        let f = fixture(50);
        let at = [3u64, 4, 5, 9, 20, 21, 33, 49];
        let (items, proof) = batch(&f, &at);
        verify(&f, &items, &proof).expect("the honest batch verifies");

        for k in 0..items.len() {
            let changed = |g: &dyn Fn(&mut DeliveredItem)| {
                let mut v = items.clone();
                g(&mut v[k]);
                verify(&f, &v, &proof)
            };
            assert!(matches!(
                changed(&|i| {
                    let mut b = i.sealed.0.to_vec();
                    b[0] ^= 1;
                    i.sealed = SealedItem(crate::bounded::BoundedBytes::new(b).expect("fits"));
                }),
                Err(DeliveryError::SealedProof { .. })
            ));
            assert!(matches!(
                changed(&|i| i.point.0[0] ^= 1),
                Err(DeliveryError::PointProof { .. })
            ));
            assert!(matches!(
                changed(&|i| i.salt[31] ^= 1),
                Err(DeliveryError::PointProof { .. })
            ));
            assert!(matches!(
                changed(&|i| i.lnr = Lnr::derive(&f.project, &f.finals[0])),
                Err(DeliveryError::Lnr { .. })
            ));
            // Another person's item, whole, in this item's place.
            let other = if k == 0 { 0 } else { at[k - 1] + 1 };
            if !at.contains(&other) {
                let (o, _) = batch(&f, &[other]);
                let mut v = items.clone();
                let position = v[k].position;
                v[k] = o[0].clone();
                v[k].position = position;
                assert!(verify(&f, &v, &proof).is_err(), "item {k} substituted");
            }
        }
        let mut dropped = items.clone();
        dropped.remove(3);
        assert!(verify(&f, &dropped, &proof).is_err(), "an item dropped");
        let (extra, _) = batch(&f, &[10]);
        let mut added = items.clone();
        added.insert(4, extra[0].clone());
        assert!(verify(&f, &added, &proof).is_err(), "an item added");
        let mut swapped = items.clone();
        swapped.swap(1, 2);
        assert!(matches!(
            verify(&f, &swapped, &proof),
            Err(DeliveryError::Batch { .. })
        ));
        let mut twice = items.clone();
        twice[2] = twice[1].clone();
        assert!(matches!(
            verify(&f, &twice, &proof),
            Err(DeliveryError::Batch { .. })
        ));
        assert!(matches!(
            verify(&f, &[], &proof),
            Err(DeliveryError::Batch { .. })
        ));
        for which in [0, 1] {
            let mut bad = proof.clone();
            let mp = if which == 0 {
                &mut bad.sealed
            } else {
                &mut bad.points
            };
            let mut h = mp.hashes.to_vec();
            h[0].0[0] ^= 1;
            mp.hashes = crate::bounded::BoundedVec::new(h).expect("fits");
            assert!(verify(&f, &items, &bad).is_err(), "proof {which} altered");
        }
        // A proof for another size (the announced count is 50).
        let (items_small, proof_small) = batch(&fixture(49), &at[..7]);
        assert!(verify(&f, &items_small, &proof_small).is_err());
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
