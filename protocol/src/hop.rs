//! The chain as sans-IO state machines (PROTOCOL.md §6).
//!
//! ```text
//!  owner R_j: OwnerList ──PointChunk(hop 0)──▶ Hop 1 ──PointChunk(hop 1)──▶ … ──▶ Hop n (linker)
//!                                                   │                                │
//!                                                   └─ finish() → HopRecord          └─ finish() → HopRecord
//! ```
//!
//! A [`Hop`] consumes the previous hop's chunks strictly in order through
//! [`Hop::handle_chunk`], which verifies the previous hop's proof (except
//! after the owner's step, which cannot be proven without revealing
//! identity points), multiplies by its key, proves its own step and returns
//! the chunk for the next hop. [`Hop::finish`] returns the hop record once
//! every chunk has passed. Only per-chunk records (192 bytes each) are kept:
//! memory does not grow with the chunk data.

use curve25519_dalek::{constants::RISTRETTO_BASEPOINT_POINT, RistrettoPoint};
use rand_core::CryptoRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    bounded::BoundedVec,
    chain::{self, ChainError},
    delivery::{salted_leaf_hash, FinalSaltKey},
    dleq::{self, ChunkProof, ChunkStatement},
    group::WirePoint,
    merkle::{leaf_hash, root_of_aligned_chunks, root_of_leaf_hashes},
    share::{Domain, Share},
    transcript::{ChunkRecord, HopRecord, LinkerKeyProof},
    types::{ChunkIndex, Digest, HopIndex, ListName, Name, ProjectId},
};

/// The default number of points per chunk: large enough that the proof's
/// multi-scalar multiplications run near their best per-point cost
/// (Pippenger's fixed cost per call is spread over 8,192 points per core
/// on two cores), small enough that the chain pipelines (a 1,000,000-person
/// list is 62 chunks) and a chunk message stays near 1 MiB.
pub const DEFAULT_CHUNK_SIZE: u32 = 16_384;
/// The most points a chunk may carry.
pub const MAX_CHUNK_POINTS: usize = 1 << 16;

/// A chunk of a list travelling from one hop to the next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointChunk {
    /// The project.
    pub project: ProjectId,
    /// The list.
    pub list: ListName,
    /// The hop that produced `output` (0 = the owner's blinded step).
    pub hop: HopIndex,
    /// The chunk index.
    pub chunk: ChunkIndex,
    /// The producing hop's input (empty for the owner's chunk).
    pub input: BoundedVec<WirePoint, MAX_CHUNK_POINTS>,
    /// The producing hop's output.
    pub output: BoundedVec<WirePoint, MAX_CHUNK_POINTS>,
    /// The producing hop's proof (none for the owner's chunk).
    pub proof: Option<ChunkProof>,
}

/// What a list is, as every hop knows it from the list announcement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListContext {
    /// The project.
    pub project: ProjectId,
    /// The list.
    pub list: ListName,
    /// Points in the list.
    pub persons: u64,
    /// Points per chunk (a power of two).
    pub chunk_size: u32,
}

/// A chunk was refused. The hop's state is unchanged: the same chunk (or a
/// correct one) can be handed in again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HopError {
    /// The chunk belongs to another project or list.
    #[error("chunk of another project or list")]
    WrongList,
    /// Produced by an unexpected hop.
    #[error("chunk from hop {got}, expected hop {expected}")]
    WrongHop {
        /// The hop expected.
        expected: HopIndex,
        /// The hop named.
        got: HopIndex,
    },
    /// Out of order, repeated or beyond the list.
    #[error("chunk {got} where chunk {expected} was expected")]
    OutOfOrder {
        /// The chunk expected next.
        expected: ChunkIndex,
        /// The chunk given.
        got: ChunkIndex,
    },
    /// The chunk's size disagrees with the list announcement.
    #[error("chunk {chunk} has {got} points, expected {expected}")]
    WrongCount {
        /// The chunk.
        chunk: ChunkIndex,
        /// Points expected.
        expected: u64,
        /// Points given.
        got: u64,
    },
    /// A point is invalid or the identity.
    #[error(transparent)]
    Point(#[from] ChainError),
    /// The previous hop's proof is missing or does not verify.
    #[error("chunk {chunk}: the previous hop's proof does not verify")]
    BadProof {
        /// The chunk.
        chunk: ChunkIndex,
    },
    /// A proof was attached where none can exist, or the input is missing.
    #[error("chunk {chunk}: malformed (input or proof present where it must not be, or missing)")]
    Malformed {
        /// The chunk.
        chunk: ChunkIndex,
    },
    /// `finish` before every chunk passed.
    #[error("the list is incomplete: {done} of {total} chunks")]
    Incomplete {
        /// Chunks done.
        done: u64,
        /// Chunks in the list.
        total: u64,
    },
    /// The announced chunk size is not a power of two (or zero).
    #[error("chunk size must be a power of two")]
    BadChunkSize,
    /// The opened list blinding `β` does not match the announcement:
    /// `β⁻¹·G ≠ D_j` (a wrong or substituted blinding).
    #[error("the list blinding does not match the announced commitment D_j")]
    BlindingMismatch,
}

/// The Merkle root of a chunk of points (leaves = the 32-byte encodings),
/// with the leaves hashed in parallel.
pub fn points_root(points: &[WirePoint]) -> Digest {
    let leaves: Vec<Digest> = points.par_iter().map(|p| leaf_hash(p.as_bytes())).collect();
    root_of_leaf_hashes(&leaves)
}

impl ListContext {
    /// Chunks in the list.
    pub fn chunks(&self) -> u64 {
        self.persons.div_ceil(u64::from(self.chunk_size.max(1)))
    }

    /// Points in chunk `c`.
    pub fn chunk_len(&self, c: u64) -> u64 {
        let size = u64::from(self.chunk_size);
        self.persons.saturating_sub(c * size).min(size)
    }
}

/// What the linker combines into its step over list `j`.
#[derive(Debug, Clone, Copy)]
pub struct LinkerKeys<'a> {
    /// The linker's share `k_L`.
    pub share: &'a Share,
    /// The list blinding `β_j`, opened from the owner's HPKE box.
    pub blinding: &'a Share,
    /// `D_j = β_j⁻¹·G` from the list announcement.
    pub blinding_commitment: &'a WirePoint,
}

/// One hop's step over one list: a register's, or the linker's.
pub struct Hop {
    ctx: ListContext,
    hop: HopIndex,
    member: Name,
    share: Share,
    key: WirePoint,
    previous_key: Option<WirePoint>,
    linker: Option<LinkerKeyProof>,
    /// The linker's final-leaf salts: its output roots are over salted
    /// leaves (issue 12 item 8).
    final_salt: Option<(FinalSaltKey, Domain)>,
    next_chunk: ChunkIndex,
    records: Vec<ChunkRecord>,
}

impl core::fmt::Debug for Hop {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hop")
            .field("list", &self.ctx.list)
            .field("hop", &self.hop)
            .field("member", &self.member)
            .field("next_chunk", &self.next_chunk)
            .finish_non_exhaustive()
    }
}

impl Hop {
    /// A register's hop `hop` (≥ 1) with its share `k_{h,p}`.
    /// `previous_key` is the previous hop's commitment, or `None` when the
    /// previous step is the owner's.
    ///
    /// # Errors
    ///
    /// [`HopError::BadChunkSize`].
    pub fn register(
        ctx: ListContext,
        hop: HopIndex,
        member: Name,
        share: Share,
        previous_key: Option<WirePoint>,
    ) -> Result<Self, HopError> {
        Self::new(ctx, hop, member, share, previous_key, None)
    }

    /// The linker's hop: its share `k_L` and the list blinding `β_j` it
    /// opened, combined into the one step `k_L·β_j⁻¹`, with the key proof
    /// `log_G K_L = log_{D_j} C_j` (PROTOCOL.md §6.6).
    ///
    /// # Errors
    ///
    /// [`HopError::BadChunkSize`], [`HopError::Malformed`] if `D_j` is not
    /// a valid point, or [`HopError::BlindingMismatch`] if the opened
    /// blinding is not the one announced (`β⁻¹·G ≠ D_j`): a linker never
    /// combines a blinding it cannot tie to the owner's signed announcement.
    pub fn linker<R: CryptoRng + ?Sized>(
        ctx: ListContext,
        hop: HopIndex,
        member: Name,
        keys: LinkerKeys<'_>,
        previous_key: Option<WirePoint>,
        rng: &mut R,
    ) -> Result<Self, HopError> {
        let LinkerKeys {
            share,
            blinding,
            blinding_commitment,
        } = keys;
        let d = blinding_commitment
            .decode()
            .map_err(|_| HopError::Malformed {
                chunk: ChunkIndex::FIRST,
            })?;
        let unblind = blinding.invert();
        if unblind.commitment() != *blinding_commitment {
            return Err(HopError::BlindingMismatch);
        }
        let combined = share.product(&unblind);
        let linker_key = share.commitment();
        let c = combined.commitment();
        let context = dleq::linker_key_context(
            &ctx.project,
            &ctx.list,
            &linker_key,
            blinding_commitment,
            &c,
        );
        let proof = dleq::prove(share, &RISTRETTO_BASEPOINT_POINT, d.inner(), &context, rng);
        Self::new(
            ctx,
            hop,
            member,
            combined,
            previous_key,
            Some(LinkerKeyProof {
                linker_key,
                combined: c,
                proof,
            }),
        )
    }

    fn new(
        ctx: ListContext,
        hop: HopIndex,
        member: Name,
        share: Share,
        previous_key: Option<WirePoint>,
        linker: Option<LinkerKeyProof>,
    ) -> Result<Self, HopError> {
        if !ctx.chunk_size.is_power_of_two() || ctx.chunk_size as usize > MAX_CHUNK_POINTS {
            return Err(HopError::BadChunkSize);
        }
        let key = share.commitment();
        Ok(Self {
            ctx,
            hop,
            member,
            share,
            key,
            previous_key,
            linker,
            final_salt: None,
            next_chunk: ChunkIndex::FIRST,
            records: Vec::new(),
        })
    }

    /// The linker's hop salts its final leaves (issue 12 item 8): the
    /// output root of each chunk, and so the hop record's output root
    /// (the list's final root), is over `SHA3-256(0x00 ‖ salt_t ‖ P_t)`
    /// with `salt_t = key.salt(domain, list, t)` ([`FinalSaltKey`]), so
    /// that the inclusion proofs delivered to the researcher carry no
    /// hash of a non-cohort person's pseudonym that repeats in another
    /// list. Equal to [`salted_final_tree`](crate::delivery::salted_final_tree)'s
    /// root over the whole list.
    pub fn with_final_salt(mut self, key: FinalSaltKey, domain: Domain) -> Self {
        self.final_salt = Some((key, domain));
        self
    }

    /// Resumes a hop after a restart from the chunk records it had made
    /// (persisted by the node as it went): the next chunk expected is the
    /// one after the last record, and no verified chunk is redone.
    ///
    /// # Errors
    ///
    /// [`HopError::OutOfOrder`] if there are more records than chunks.
    pub fn resume(mut self, records: Vec<ChunkRecord>) -> Result<Self, HopError> {
        let n = records.len() as u64;
        if n > self.ctx.chunks() {
            return Err(HopError::OutOfOrder {
                expected: ChunkIndex(self.ctx.chunks()),
                got: ChunkIndex(n),
            });
        }
        self.records = records;
        self.next_chunk = ChunkIndex(n);
        Ok(self)
    }

    /// The chunk records so far (to persist).
    pub fn records(&self) -> &[ChunkRecord] {
        &self.records
    }

    /// The step's public key (`K_h`, or `C_j` for the linker).
    pub fn key(&self) -> WirePoint {
        self.key
    }

    /// The next chunk this hop expects.
    pub fn next_chunk(&self) -> ChunkIndex {
        self.next_chunk
    }

    /// Whether every chunk has passed.
    pub fn is_complete(&self) -> bool {
        self.next_chunk.0 == self.ctx.chunks()
    }

    /// Verifies the previous hop's chunk, applies this hop's step, proves it
    /// and returns the chunk for the next hop (for the linker: the final
    /// pseudonyms in `output`).
    ///
    /// # Errors
    ///
    /// A [`HopError`]; the hop's state is unchanged on error.
    pub fn handle_chunk<R: CryptoRng + ?Sized>(
        &mut self,
        chunk: &PointChunk,
        rng: &mut R,
    ) -> Result<PointChunk, HopError> {
        if chunk.project != self.ctx.project || chunk.list != self.ctx.list {
            return Err(HopError::WrongList);
        }
        if chunk.hop.0.checked_add(1) != Some(self.hop.0) {
            return Err(HopError::WrongHop {
                expected: HopIndex(self.hop.0.wrapping_sub(1)),
                got: chunk.hop,
            });
        }
        if chunk.chunk != self.next_chunk || self.is_complete() {
            return Err(HopError::OutOfOrder {
                expected: self.next_chunk,
                got: chunk.chunk,
            });
        }
        let c = chunk.chunk;
        let expected = self.ctx.chunk_len(c.0);
        let got = chunk.output.len() as u64;
        if got != expected {
            return Err(HopError::WrongCount {
                chunk: c,
                expected,
                got,
            });
        }
        let first = c.0 * u64::from(self.ctx.chunk_size);
        let points = chain::decode_points(&chunk.output, first)?;
        let input_root = points_root(&chunk.output);

        match (&self.previous_key, &chunk.proof) {
            (None, None) if chunk.input.is_empty() => {}
            (Some(prev_key), Some(proof)) if chunk.input.len() == chunk.output.len() => {
                let prev_input = chain::decode_points(&chunk.input, first)?;
                let statement = ChunkStatement {
                    project: &self.ctx.project,
                    list: &self.ctx.list,
                    hop: chunk.hop,
                    chunk: c,
                    key: *prev_key,
                    input_root: points_root(&chunk.input),
                    output_root: input_root,
                    count: expected,
                };
                dleq::verify_chunk(&statement, &prev_input, &points, proof)
                    .map_err(|_| HopError::BadProof { chunk: c })?;
            }
            _ => return Err(HopError::Malformed { chunk: c }),
        }

        let output = chain::multiply_decoded(&self.share, &points);
        let output_root = match &self.final_salt {
            Some((key, domain)) => {
                let list = &self.ctx.list;
                let leaves: Vec<Digest> = output
                    .par_iter()
                    .enumerate()
                    .map(|(i, p)| salted_leaf_hash(&key.salt(domain, list, first + i as u64), p))
                    .collect();
                root_of_leaf_hashes(&leaves)
            }
            None => points_root(&output),
        };
        let statement = ChunkStatement {
            project: &self.ctx.project,
            list: &self.ctx.list,
            hop: self.hop,
            chunk: c,
            key: self.key,
            input_root,
            output_root,
            count: expected,
        };
        let proof = dleq::prove_chunk(&self.share, &statement, &points, rng);
        self.records.push(ChunkRecord {
            input_root,
            output_root,
            count: expected as u32,
            proof,
        });
        self.next_chunk = self.next_chunk.next();
        Ok(PointChunk {
            project: self.ctx.project.clone(),
            list: self.ctx.list.clone(),
            hop: self.hop,
            chunk: c,
            input: chunk.output.clone(),
            output: bounded(output),
            proof: Some(proof),
        })
    }

    /// The hop record, once every chunk has passed.
    ///
    /// # Errors
    ///
    /// [`HopError::Incomplete`].
    pub fn finish(self) -> Result<HopRecord, HopError> {
        if !self.is_complete() {
            return Err(HopError::Incomplete {
                done: self.next_chunk.0,
                total: self.ctx.chunks(),
            });
        }
        let ins: Vec<Digest> = self.records.iter().map(|r| r.input_root).collect();
        let outs: Vec<Digest> = self.records.iter().map(|r| r.output_root).collect();
        Ok(HopRecord {
            list: self.ctx.list,
            hop: self.hop,
            member: self.member,
            key: self.key,
            count: self.ctx.persons,
            chunk_size: self.ctx.chunk_size,
            input_root: root_of_aligned_chunks(&ins),
            output_root: root_of_aligned_chunks(&outs),
            // At most MAX_CHUNKS records: the chunk count is bounded by the
            // announced size, which the transcript bounds.
            chunks: BoundedVec::new(self.records).map_err(|_| HopError::BadChunkSize)?,
            linker: self.linker,
        })
    }
}

/// Splits owner points into hop-0 chunks.
pub fn owner_chunks<'a>(
    ctx: &'a ListContext,
    points: &'a [WirePoint],
) -> impl Iterator<Item = PointChunk> + 'a {
    points
        .chunks(ctx.chunk_size.max(1) as usize)
        .enumerate()
        .map(move |(i, c)| PointChunk {
            project: ctx.project.clone(),
            list: ctx.list.clone(),
            hop: HopIndex::OWNER,
            chunk: ChunkIndex(i as u64),
            input: BoundedVec::default(),
            output: bounded(c.to_vec()),
            proof: None,
        })
}

/// The owner's step on identity points: `y_t = (β·k_j)·I(x_t)`.
pub fn owner_step(owner_key: &Share, identity_points: &[RistrettoPoint]) -> Vec<WirePoint> {
    chain::multiply_decoded(owner_key, identity_points)
}

fn bounded(v: Vec<WirePoint>) -> BoundedVec<WirePoint, MAX_CHUNK_POINTS> {
    // Callers pass at most one chunk, whose size is bounded by
    // MAX_CHUNK_POINTS at construction.
    BoundedVec::new(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{hash_to_group, tags};
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

    fn setup(n: u64, chunk_size: u32) -> (ListContext, Vec<WirePoint>) {
        let ctx = ListContext {
            project: ProjectId::new("P").expect("valid"),
            list: ListName::new("NPR").expect("valid"),
            persons: n,
            chunk_size,
        };
        let points = (0..n)
            .map(|i| {
                WirePoint(
                    hash_to_group(tags::IDENTITY, &i.to_le_bytes())
                        .compress()
                        .to_bytes(),
                )
            })
            .collect();
        (ctx, points)
    }

    #[test]
    fn a_resumed_hop_continues_and_produces_the_same_record() {
        let (ctx, points) = setup(300, 64);
        let chunks: Vec<PointChunk> = owner_chunks(&ctx, &points).collect();
        let member = Name::new("KPR").expect("valid");
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let share = Share::random(&mut rng);
        let bytes = share.to_secret_bytes();
        let again = || Share::from_secret_bytes(&bytes).expect("share");

        let mut straight =
            Hop::register(ctx.clone(), HopIndex(1), member.clone(), again(), None).expect("hop");
        let mut outputs = Vec::new();
        for c in &chunks {
            outputs.push(
                straight
                    .handle_chunk(c, &mut ChaCha20Rng::seed_from_u64(c.chunk.0))
                    .expect("valid")
                    .output,
            );
        }
        let full = straight.finish().expect("complete");

        let mut first =
            Hop::register(ctx.clone(), HopIndex(1), member.clone(), again(), None).expect("hop");
        for c in &chunks[..2] {
            first
                .handle_chunk(c, &mut ChaCha20Rng::seed_from_u64(c.chunk.0))
                .expect("valid");
        }
        let saved = first.records().to_vec();
        drop(first); // the node crashes
        let mut resumed = Hop::register(ctx, HopIndex(1), member, again(), None)
            .expect("hop")
            .resume(saved)
            .expect("resume");
        assert_eq!(resumed.next_chunk(), ChunkIndex(2));
        // A replayed chunk is refused, not redone.
        assert!(matches!(
            resumed.handle_chunk(&chunks[1], &mut rng),
            Err(HopError::OutOfOrder {
                expected: ChunkIndex(2),
                got: ChunkIndex(1)
            })
        ));
        for c in &chunks[2..] {
            let out = resumed
                .handle_chunk(c, &mut ChaCha20Rng::seed_from_u64(c.chunk.0))
                .expect("valid");
            assert_eq!(out.output, outputs[c.chunk.0 as usize]);
        }
        assert_eq!(resumed.finish().expect("complete"), full);
    }

    #[test]
    fn chunks_are_checked_before_any_work() {
        let (ctx, points) = setup(100, 32);
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let mut hop = Hop::register(
            ctx.clone(),
            HopIndex(1),
            Name::new("KPR").expect("valid"),
            Share::random(&mut rng),
            None,
        )
        .expect("hop");
        let chunks: Vec<PointChunk> = owner_chunks(&ctx, &points).collect();
        let mut wrong = chunks[0].clone();
        wrong.list = ListName::new("SSB").expect("valid");
        assert_eq!(hop.handle_chunk(&wrong, &mut rng), Err(HopError::WrongList));
        assert!(matches!(
            hop.handle_chunk(&chunks[1], &mut rng),
            Err(HopError::OutOfOrder {
                expected: ChunkIndex(0),
                got: ChunkIndex(1)
            })
        ));
        let mut short = chunks[0].clone();
        short.output = BoundedVec::new(short.output[..31].to_vec()).expect("fits");
        assert!(matches!(
            hop.handle_chunk(&short, &mut rng),
            Err(HopError::WrongCount {
                chunk: ChunkIndex(0),
                expected: 32,
                got: 31
            })
        ));
        let mut identity = chunks[0].clone();
        let mut pts = identity.output.to_vec();
        pts[7] = WirePoint([0; 32]);
        identity.output = BoundedVec::new(pts).expect("fits");
        assert!(matches!(
            hop.handle_chunk(&identity, &mut rng),
            Err(HopError::Point(ChainError { position: 7, .. }))
        ));
        let mut with_proof = chunks[0].clone();
        with_proof.input = with_proof.output.clone();
        assert_eq!(
            hop.handle_chunk(&with_proof, &mut rng),
            Err(HopError::Malformed {
                chunk: ChunkIndex(0)
            })
        );
        assert_eq!(
            hop.next_chunk(),
            ChunkIndex(0),
            "refused chunks change nothing"
        );
        assert!(matches!(
            hop.finish(),
            Err(HopError::Incomplete { done: 0, total: 4 })
        ));
    }

    /// Attack (issue 12 item 5): the owner, or whoever forged the HPKE box,
    /// hands the linker a blinding other than the one announced in `D_j`.
    /// The linker refuses to build its hop from it; the right one passes.
    #[test]
    fn the_linker_refuses_a_blinding_that_does_not_match_the_announcement() {
        let (ctx, _) = setup(10, 8);
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let share = Share::random(&mut rng);
        let beta = Share::random(&mut rng);
        let announced = beta.invert().commitment();
        let wrong = Share::random(&mut rng);
        let linker = Name::new("LINK").expect("valid");
        let refused = Hop::linker(
            ctx.clone(),
            HopIndex(2),
            linker.clone(),
            LinkerKeys {
                share: &share,
                blinding: &wrong,
                blinding_commitment: &announced,
            },
            None,
            &mut rng,
        );
        assert!(matches!(refused, Err(HopError::BlindingMismatch)));
        // β itself instead of β⁻¹ (an owner who announced D_j = β·G) too.
        let flipped = beta.commitment();
        assert!(matches!(
            Hop::linker(
                ctx.clone(),
                HopIndex(2),
                linker.clone(),
                LinkerKeys {
                    share: &share,
                    blinding: &beta,
                    blinding_commitment: &flipped,
                },
                None,
                &mut rng,
            ),
            Err(HopError::BlindingMismatch)
        ));
        let hop = Hop::linker(
            ctx,
            HopIndex(2),
            linker,
            LinkerKeys {
                share: &share,
                blinding: &beta,
                blinding_commitment: &announced,
            },
            None,
            &mut rng,
        );
        assert!(hop.is_ok());
    }

    /// Issue 12 item 8: the linker's chunk output roots are over salted
    /// leaves, so its hop record's output root (the final root) is the
    /// salted final tree's, not the plain tree's of the final points.
    #[test]
    fn the_linker_hop_s_final_root_is_over_salted_leaves() {
        use crate::delivery::{salted_final_tree, FinalSaltKey};
        let (ctx, points) = setup(10, 4);
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let share = Share::random(&mut rng);
        let beta = Share::random(&mut rng);
        let announced = beta.invert().commitment();
        let domain = Domain::Project(ctx.project.clone());
        let keys = LinkerKeys {
            share: &share,
            blinding: &beta,
            blinding_commitment: &announced,
        };
        let mut hop = Hop::linker(
            ctx.clone(),
            HopIndex(1),
            Name::new("LINK").expect("valid"),
            keys,
            None,
            &mut rng,
        )
        .expect("hop")
        .with_final_salt(FinalSaltKey::from_share(&share, &domain), domain.clone());
        let mut finals = Vec::new();
        for c in owner_chunks(&ctx, &points).collect::<Vec<_>>() {
            finals.extend(
                hop.handle_chunk(&c, &mut rng)
                    .expect("valid")
                    .output
                    .to_vec(),
            );
        }
        let record = hop.finish().expect("complete");
        let key = FinalSaltKey::from_share(&share, &domain);
        let tree = salted_final_tree(&key, &domain, &ctx.list, &finals);
        assert_eq!(record.output_root, tree.root());
        assert_ne!(record.output_root, points_root(&finals));
    }
}
