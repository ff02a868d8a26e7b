//! The owner's side of a list (PROTOCOL.md §6 steps 1–4): shuffle the
//! persons, blind their identity points with `β_j·k_{j,p}`, seal their rows
//! to the researcher, and prepare what goes to the linker.
//!
//! The identity points `I(x)` exist only inside [`prepare_list`]; what it
//! returns carries only blinded points, sealed items and public values.

use curve25519_dalek::RistrettoPoint;
use rand_core::CryptoRng;
use rayon::prelude::*;

use crate::{
    extract::Person,
    group::WirePoint,
    hop::{points_root, ListContext},
    merkle::MerkleTree,
    seal::{
        encode_rows, seal_blinding, ContentKey, HpkePublicKey, SealError, SealedItem, WrappedKey,
    },
    share::Share,
    types::{Digest, Name, Position, ProjectId},
};

/// A list ready to enter the chain.
#[derive(Debug)]
pub struct PreparedList {
    /// The list's context (project, list, persons, chunk size).
    pub context: ListContext,
    /// `y_t = (β_j·k_{j,p})·I(x_t)` in shuffled order.
    pub points: Vec<WirePoint>,
    /// Each person's rows sealed to the researcher, in the same order.
    pub sealed: Vec<SealedItem>,
    /// Merkle root of `points`.
    pub points_root: Digest,
    /// Merkle root of the encoded sealed items.
    pub sealed_root: Digest,
    /// `D_j = β_j⁻¹·G`.
    pub blinding_commitment: WirePoint,
    /// `β_j` sealed to the linker.
    pub blinding_for_linker: WrappedKey,
    /// The content key sealed to the researcher.
    pub content_key: WrappedKey,
}

/// Why a list could not be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OwnerError {
    /// Sealing failed (a row over the limits).
    #[error("sealing a person's rows failed: {0}")]
    Seal(#[from] SealError),
    /// The chunk size is not a power of two.
    #[error("chunk size must be a power of two")]
    BadChunkSize,
}

/// The leaf encoding of a sealed item in the sealed-items Merkle tree.
pub fn sealed_leaf(item: &SealedItem) -> &[u8] {
    item.as_bytes()
}

/// Prepares register `list`'s list for `project`.
///
/// `share` is the register's own `k_{j,p}`; a fresh list blinding `β_j`
/// and content key are drawn from `rng`, and the persons shuffled with a
/// permutation drawn from it.
///
/// # Errors
///
/// [`OwnerError`].
#[allow(clippy::too_many_arguments)]
pub fn prepare_list<R: CryptoRng + ?Sized>(
    project: &ProjectId,
    list: &Name,
    mut persons: Vec<Person>,
    share: &Share,
    researcher: &HpkePublicKey,
    linker: &HpkePublicKey,
    chunk_size: u32,
    rng: &mut R,
) -> Result<PreparedList, OwnerError> {
    if !chunk_size.is_power_of_two() {
        return Err(OwnerError::BadChunkSize);
    }
    shuffle(&mut persons, rng);
    let blinding = Share::random(rng);
    let owner_key = blinding.product(share);
    let identity: Vec<RistrettoPoint> = persons.par_iter().map(|p| p.id.identity_point()).collect();
    let points = crate::hop::owner_step(&owner_key, &identity);
    drop(identity);

    let content_key = ContentKey::generate(rng);
    let sealed: Vec<SealedItem> = persons
        .par_iter()
        .enumerate()
        .map(|(t, p)| {
            let plain = encode_rows(&p.rows)?;
            content_key.seal_item(project, list, Position(t as u64), &plain)
        })
        .collect::<Result<_, SealError>>()?;
    let sealed_root = MerkleTree::from_leaves(sealed.iter().map(sealed_leaf)).root();
    let points_root = points_root(&points);
    Ok(PreparedList {
        context: ListContext {
            project: project.clone(),
            list: list.clone(),
            persons: points.len() as u64,
            chunk_size,
        },
        blinding_commitment: blinding.invert().commitment(),
        blinding_for_linker: seal_blinding(linker, project, list, &blinding, rng),
        content_key: content_key.wrap(researcher, project, list, rng),
        points,
        sealed,
        points_root,
        sealed_root,
    })
}

/// Fisher–Yates with rejection sampling (no modulo bias).
fn shuffle<T, R: CryptoRng + ?Sized>(v: &mut [T], rng: &mut R) {
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
