//! The owner's side of a list (PROTOCOL.md §6 steps 1–4): shuffle the
//! persons, blind their identity points with `β_j·k_{j,p}`, seal their rows
//! to the researcher, and prepare what goes to the linker.
//!
//! [`OwnerList`] streams a list chunk by chunk (a node's list of millions
//! of persons never sits in memory). The identity points `I(x)` exist only
//! inside [`OwnerList::points`]; what it returns carries only blinded
//! points, sealed items and public values.

use curve25519_dalek::RistrettoPoint;
use rand_core::CryptoRng;
use rayon::prelude::*;

use crate::{
    bounded::BoundedVec,
    group::WirePoint,
    hop::{points_root, ListContext, PointChunk, MAX_CHUNK_POINTS},
    ident::Identifier,
    merkle::{root_of_aligned_chunks, MerkleBuilder},
    seal::{
        encode_rows, seal_blinding, ContentKey, HpkePublicKey, SealError, SealedItem, WrappedKey,
    },
    share::Share,
    types::{ChunkIndex, Digest, HopIndex, ListName, Position, ProjectId},
};

/// Why a list could not be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OwnerError {
    /// Sealing failed (a row over the limits).
    #[error("sealing a person's rows failed: {0}")]
    Seal(#[from] SealError),
    /// The chunk size is not a power of two (or over the limit).
    #[error("chunk size must be a power of two")]
    BadChunkSize,
    /// A holder's pseudonym that is not a canonical, non-identity point.
    #[error("a pseudonym is not a point: {0}")]
    NotAPoint(String),
    /// Points or items out of step with the list's size.
    #[error("expected {expected} persons here, got {got}")]
    WrongCount {
        /// What the list's size allows.
        expected: u64,
        /// What was given.
        got: u64,
    },
}

/// The leaf encoding of a sealed item in the sealed-items Merkle tree.
pub fn sealed_leaf(item: &SealedItem) -> &[u8] {
    item.as_bytes()
}

/// A uniformly random order of `n` persons: entry `t` is the index (in
/// order of first appearance) of the person at list position `t`.
///
/// # Errors
///
/// [`OwnerError::WrongCount`] for lists of 2³² persons or more.
pub fn shuffled_positions<R: CryptoRng + ?Sized>(
    n: u64,
    rng: &mut R,
) -> Result<Vec<u32>, OwnerError> {
    let n = u32::try_from(n).map_err(|_| OwnerError::WrongCount {
        expected: u64::from(u32::MAX),
        got: n,
    })?;
    let mut order: Vec<u32> = (0..n).collect();
    shuffle(&mut order, rng);
    Ok(order)
}

/// What the list announcement needs once every point and item is made.
#[derive(Debug)]
pub struct ListHeader {
    /// The list's context (project, list, persons, chunk size).
    pub context: ListContext,
    /// Merkle root of the blinded points.
    pub points_root: Digest,
    /// Merkle root of the encoded sealed items.
    pub sealed_root: Digest,
    /// `D_j = β_j⁻¹·G`.
    pub blinding_commitment: WirePoint,
    /// `β_j` sealed to the linker.
    pub blinding_for_linker: WrappedKey,
    /// The content key sealed to the researcher.
    pub content_key: WrappedKey,
    /// Of an owner without a share (split blinding, `crate::v2::split`):
    /// `D₂` and `β₂` sealed to hop 1; `blinding_commitment` and
    /// `blinding_for_linker` are then `D₁` and `β₁` (sealed to whoever
    /// removes it).
    pub second: Option<SecondBlinding>,
}

/// The second part of a split list blinding, for hop 1.
#[derive(Debug, Clone)]
pub struct SecondBlinding {
    /// `D₂ = β₂⁻¹·G`.
    pub commitment: WirePoint,
    /// `β₂` sealed to hop 1 ([`BlindingPart::Second`](crate::seal::BlindingPart)).
    pub sealed: WrappedKey,
}

/// The owner's side of one list, streamed: memory stays at one chunk
/// whatever the list's size.
///
/// Call order: [`new`](Self::new) with the number of persons, then, for
/// each chunk of positions in order, [`points`](Self::points) with the
/// chunk's identifiers and [`seal`](Self::seal) with the same persons'
/// rows (in any batching, but in position order), then
/// [`finish`](Self::finish) for the roots. The identity points exist only
/// inside `points`.
pub struct OwnerList {
    context: ListContext,
    owner_key: Share,
    blinding_commitment: WirePoint,
    blinding_for_linker: WrappedKey,
    content_key: ContentKey,
    wrapped_content_key: WrappedKey,
    next_chunk: u64,
    chunk_roots: Vec<Digest>,
    sealed: MerkleBuilder,
    second: Option<SecondBlinding>,
}

impl core::fmt::Debug for OwnerList {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OwnerList")
            .field("list", &self.context.list)
            .field("next_chunk", &self.next_chunk)
            .field("sealed", &self.sealed.len())
            .finish_non_exhaustive()
    }
}

impl OwnerList {
    /// Starts list `list` of `persons` persons: draws the list blinding
    /// `β_j` and the content key from `rng` and seals them to the linker
    /// and the researcher.
    ///
    /// # Errors
    ///
    /// [`OwnerError::BadChunkSize`].
    #[allow(clippy::too_many_arguments)]
    pub fn new<R: CryptoRng + ?Sized>(
        project: &ProjectId,
        list: &ListName,
        persons: u64,
        share: &Share,
        researcher: &HpkePublicKey,
        linker: &HpkePublicKey,
        chunk_size: u32,
        rng: &mut R,
    ) -> Result<Self, OwnerError> {
        let context = list_context(project, list, persons, chunk_size)?;
        let blinding = Share::random(rng);
        let commitment = blinding.invert().commitment();
        Self::start(
            context,
            blinding.product(share),
            commitment,
            researcher,
            |rng| (seal_blinding(linker, project, list, &blinding, rng), None),
            rng,
        )
    }

    /// Starts list `list` of an owner that holds no share of the key
    /// domain (PROTOCOL.md §6a, "Owners without a share"): the blinding is
    /// split, `β = β₁·β₂`, the step is `β₁·β₂`; `β₁` is sealed to `first`
    /// (who removes it: a delivery's holder), `β₂` to `hop1`, and the
    /// content key to `researcher`.
    ///
    /// # Errors
    ///
    /// [`OwnerError::BadChunkSize`].
    #[allow(clippy::too_many_arguments)]
    pub fn new_split<R: CryptoRng + ?Sized>(
        project: &ProjectId,
        list: &ListName,
        persons: u64,
        researcher: &HpkePublicKey,
        first: &HpkePublicKey,
        hop1: &HpkePublicKey,
        chunk_size: u32,
        rng: &mut R,
    ) -> Result<Self, OwnerError> {
        let context = list_context(project, list, persons, chunk_size)?;
        let split = crate::v2::SplitBlinding::random(rng);
        let [d1, d2] = split.commitments();
        let part = |to, part, share: &Share, rng: &mut R| {
            crate::seal::seal_blinding_part(to, project, list, part, share, rng)
        };
        Self::start(
            context,
            split.owner_step(),
            d1,
            researcher,
            |rng| {
                let first = part(first, crate::seal::BlindingPart::First, split.first(), rng);
                let sealed = part(hop1, crate::seal::BlindingPart::Second, split.second(), rng);
                let second = SecondBlinding {
                    commitment: d2,
                    sealed,
                };
                (first, Some(second))
            },
            rng,
        )
    }

    /// The list with its step scalar and blinding commitment: the content
    /// key drawn, then the blinding sealed (`seal`), then the content key
    /// wrapped to `researcher`, in this order from `rng`.
    fn start<R: CryptoRng + ?Sized>(
        context: ListContext,
        owner_key: Share,
        blinding_commitment: WirePoint,
        researcher: &HpkePublicKey,
        seal: impl FnOnce(&mut R) -> (WrappedKey, Option<SecondBlinding>),
        rng: &mut R,
    ) -> Result<Self, OwnerError> {
        let content_key = ContentKey::generate(rng);
        let (blinding_for_linker, second) = seal(rng);
        let wrapped_content_key =
            content_key.wrap(researcher, &context.project, &context.list, rng);
        Ok(Self {
            context,
            owner_key,
            blinding_commitment,
            blinding_for_linker,
            content_key,
            wrapped_content_key,
            next_chunk: 0,
            chunk_roots: Vec::new(),
            sealed: MerkleBuilder::new(),
            second,
        })
    }

    /// The list's context.
    pub fn context(&self) -> &ListContext {
        &self.context
    }

    /// `D_j = β_j⁻¹·G` (`D₁` of a split blinding): known before any point
    /// is made, so a streamed list is announced first (chain v2).
    pub fn blinding_commitment(&self) -> WirePoint {
        self.blinding_commitment
    }

    /// `β_j` (`β₁`) sealed to whoever removes it.
    pub fn blinding_for_linker(&self) -> &WrappedKey {
        &self.blinding_for_linker
    }

    /// The content key sealed to the researcher.
    pub fn wrapped_content_key(&self) -> &WrappedKey {
        &self.wrapped_content_key
    }

    /// Of a split blinding: `D₂` and `β₂` sealed to hop 1.
    pub fn second(&self) -> Option<&SecondBlinding> {
        self.second.as_ref()
    }

    /// The next chunk: `y_t = (β_j·k_{j,p})·I(x_t)` for the identifiers of
    /// its positions, in order, as the hop-0 chunk for the first hop.
    ///
    /// # Errors
    ///
    /// [`OwnerError::WrongCount`] unless `ids` is exactly the next chunk.
    pub fn points(&mut self, ids: &[&Identifier]) -> Result<PointChunk, OwnerError> {
        self.check_next(ids.len())?;
        let identity: Vec<RistrettoPoint> = ids.par_iter().map(|id| id.identity_point()).collect();
        let chunk = self.points_of_keys(&identity);
        drop(identity);
        chunk
    }

    /// The next chunk of a register domain holder's list (PROTOCOL.md §10):
    /// `y_t = (β_j·k_{j,p})·Ψ_R(x_t)` for the pseudonyms of its positions,
    /// in order, given as their encodings (a holder keeps 32 bytes per
    /// person, not a decoded point; they are decoded here, in parallel).
    ///
    /// # Errors
    ///
    /// [`OwnerError::WrongCount`] unless `pseudonyms` is exactly the next
    /// chunk; [`OwnerError::NotAPoint`] if one is not a canonical,
    /// non-identity point.
    pub fn points_of_pseudonyms(
        &mut self,
        pseudonyms: &[crate::group::WirePoint],
    ) -> Result<PointChunk, OwnerError> {
        self.check_next(pseudonyms.len())?;
        let keys = crate::chain::decode_points(pseudonyms, 0)
            .map_err(|e| OwnerError::NotAPoint(e.to_string()))?;
        self.points_of_keys(&keys)
    }

    fn check_next(&self, got: usize) -> Result<(), OwnerError> {
        let c = self.next_chunk;
        let expected = self.context.chunk_len(c);
        if got as u64 != expected || c >= self.context.chunks() {
            return Err(OwnerError::WrongCount {
                expected,
                got: got as u64,
            });
        }
        Ok(())
    }

    /// `(β_j·k_{j,p})·key` for every person key of the next chunk.
    fn points_of_keys(&mut self, keys: &[RistrettoPoint]) -> Result<PointChunk, OwnerError> {
        let c = self.next_chunk;
        let points = crate::hop::owner_step(&self.owner_key, keys);
        self.chunk_roots.push(points_root(&points));
        self.next_chunk += 1;
        Ok(PointChunk {
            project: self.context.project.clone(),
            list: self.context.list.clone(),
            hop: HopIndex::OWNER,
            chunk: ChunkIndex(c),
            input: BoundedVec::default(),
            output: BoundedVec::new(points).map_err(|_| OwnerError::BadChunkSize)?,
            proof: None,
        })
    }

    /// Seals the next persons' rows to the researcher, in parallel: item
    /// `i` is for position `sealed-so-far + i`.
    ///
    /// # Errors
    ///
    /// [`OwnerError::Seal`] for rows over the limits, or
    /// [`OwnerError::WrongCount`] past the end of the list.
    pub fn seal(&mut self, rows: &[&[Vec<String>]]) -> Result<Vec<SealedItem>, OwnerError> {
        let first = self.sealed.len();
        if first + rows.len() as u64 > self.context.persons {
            return Err(OwnerError::WrongCount {
                expected: self.context.persons - first,
                got: rows.len() as u64,
            });
        }
        let (project, list, key) = (&self.context.project, &self.context.list, &self.content_key);
        let items: Vec<SealedItem> = rows
            .par_iter()
            .enumerate()
            .map(|(i, r)| {
                let plain = encode_rows(r)?;
                key.seal_item(project, list, Position(first + i as u64), &plain)
            })
            .collect::<Result<_, SealError>>()?;
        for item in &items {
            self.sealed.push(sealed_leaf(item));
        }
        Ok(items)
    }

    /// The roots and keys for the announcement.
    ///
    /// # Errors
    ///
    /// [`OwnerError::WrongCount`] unless every point and item was made.
    pub fn finish(self) -> Result<ListHeader, OwnerError> {
        let persons = self.context.persons;
        if self.next_chunk != self.context.chunks() || self.sealed.len() != persons {
            return Err(OwnerError::WrongCount {
                expected: persons,
                got: self
                    .sealed
                    .len()
                    .min(self.next_chunk * u64::from(self.context.chunk_size)),
            });
        }
        Ok(ListHeader {
            points_root: root_of_aligned_chunks(&self.chunk_roots),
            sealed_root: self.sealed.finish(),
            context: self.context,
            blinding_commitment: self.blinding_commitment,
            blinding_for_linker: self.blinding_for_linker,
            content_key: self.wrapped_content_key,
            second: self.second,
        })
    }
}

/// A list's context, its chunk size checked (a power of two, at most
/// [`MAX_CHUNK_POINTS`]).
fn list_context(
    project: &ProjectId,
    list: &ListName,
    persons: u64,
    chunk_size: u32,
) -> Result<ListContext, OwnerError> {
    if !chunk_size.is_power_of_two() || chunk_size as usize > MAX_CHUNK_POINTS {
        return Err(OwnerError::BadChunkSize);
    }
    Ok(ListContext {
        project: project.clone(),
        list: list.clone(),
        persons,
        chunk_size,
    })
}

/// Fisher–Yates with rejection sampling (no modulo bias).
pub(crate) fn shuffle<T, R: CryptoRng + ?Sized>(v: &mut [T], rng: &mut R) {
    for i in (1..v.len()).rev() {
        let bound = i as u64 + 1;
        let zone = u64::MAX - (u64::MAX % bound);
        let j = loop {
            let x = rng.next_u64();
            if x < zone {
                break x % bound;
            }
        };
        v.swap(i, j as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ident::ParseOptions, seal::HpkeSecretKey};
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

    fn ids(n: usize) -> Vec<Identifier> {
        let options = ParseOptions {
            allow_synthetic: true,
        };
        (0..1000u32)
            .flat_map(|i| (0..100u8).map(move |k| format!("0181900{:02}{k:02}", i % 100)))
            .filter_map(|c| Identifier::parse(&c, options).ok())
            .take(n)
            .collect()
    }

    #[test]
    fn the_stream_refuses_wrong_counts_and_an_early_finish() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let project = ProjectId::new("P-1").expect("valid");
        let list = ListName::new("NPR").expect("valid");
        let share = Share::random(&mut rng);
        let key = HpkeSecretKey::generate(&mut rng).public_key();
        let people = ids(5);
        let refs: Vec<&Identifier> = people.iter().collect();
        let new = |rng: &mut ChaCha20Rng| {
            OwnerList::new(&project, &list, 5, &share, &key, &key, 4, rng).expect("valid")
        };

        let mut owner = new(&mut rng);
        assert!(matches!(
            owner.points(&refs[..3]),
            Err(OwnerError::WrongCount {
                expected: 4,
                got: 3
            })
        ));
        let first = owner.points(&refs[..4]).expect("chunk 0");
        assert_eq!((first.chunk, first.output.len()), (ChunkIndex(0), 4));
        let rows = vec![vec!["x".to_string()]];
        let five: Vec<&[Vec<String>]> = (0..5).map(|_| rows.as_slice()).collect();
        assert_eq!(owner.seal(&five).expect("five items").len(), 5);
        assert!(owner.seal(&five[..1]).is_err(), "a sixth item");
        assert!(matches!(owner.finish(), Err(OwnerError::WrongCount { .. })));

        let mut owner = new(&mut rng);
        assert!(OwnerList::new(&project, &list, 5, &share, &key, &key, 3, &mut rng).is_err());
        owner.points(&refs[..4]).expect("chunk 0");
        let last = owner.points(&refs[4..]).expect("chunk 1");
        assert_eq!((last.chunk, last.output.len()), (ChunkIndex(1), 1));
        assert!(owner.points(&refs[4..]).is_err(), "past the end");
        owner.seal(&five).expect("five items");
        let header = owner.finish().expect("complete");
        assert_eq!(header.context.persons, 5);
        assert!(header.second.is_none());
    }

    #[test]
    fn an_owner_without_a_share_splits_its_blinding_between_the_holder_and_hop_1() {
        use crate::seal::{open_blinding_part, BlindingPart};
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let project = ProjectId::new("APOTEK-RESEPT-2025").expect("valid");
        let list = ListName::new("APOTEK").expect("valid");
        let (holder, hop1) = (
            HpkeSecretKey::generate(&mut rng),
            HpkeSecretKey::generate(&mut rng),
        );
        let people = ids(4);
        let refs: Vec<&Identifier> = people.iter().collect();
        let mut owner = OwnerList::new_split(
            &project,
            &list,
            4,
            &holder.public_key(),
            &holder.public_key(),
            &hop1.public_key(),
            4,
            &mut rng,
        )
        .expect("valid");
        let chunk = owner.points(&refs).expect("chunk");
        let rows = vec![vec!["x".to_string()]];
        let four: Vec<&[Vec<String>]> = (0..4).map(|_| rows.as_slice()).collect();
        owner.seal(&four).expect("items");
        let header = owner.finish().expect("complete");
        let second = header.second.expect("a split blinding");
        let beta1 = open_blinding_part(
            &holder,
            &project,
            &list,
            BlindingPart::First,
            &header.blinding_for_linker,
        )
        .expect("β₁ opens at the holder");
        let beta2 =
            open_blinding_part(&hop1, &project, &list, BlindingPart::Second, &second.sealed)
                .expect("β₂ opens at hop 1");
        // Each part only where it is sealed to.
        assert!(open_blinding_part(
            &hop1,
            &project,
            &list,
            BlindingPart::First,
            &header.blinding_for_linker
        )
        .is_err());
        assert!(open_blinding_part(
            &holder,
            &project,
            &list,
            BlindingPart::Second,
            &second.sealed
        )
        .is_err());
        assert_eq!(beta1.invert().commitment(), header.blinding_commitment);
        assert_eq!(beta2.invert().commitment(), second.commitment);
        // y = (β₁·β₂)·I(x): no share in it.
        let expected: Vec<_> = people
            .iter()
            .map(|id| {
                crate::chain::apply_share(
                    &beta1.product(&beta2),
                    &[crate::group::WirePoint(
                        id.identity_point().compress().to_bytes(),
                    )],
                    0,
                )
                .expect("apply")[0]
            })
            .collect();
        assert_eq!(chunk.output.to_vec(), expected);
    }
}
