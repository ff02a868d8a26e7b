//! The v2 hops as sans-IO state machines (PROTOCOL.md §6 step 5, §6a).
//!
//! ```text
//!  ChunkMsg(hop h-1) ─▶ RegisterHop::handle_chunk ─▶ ChunkMsg(hop h)      (persist: records())
//!                        1. list, attempt, hop, chunk, count match the header
//!                        2. the sender's statement signature verifies
//!                        3. SHA3-256(points) == the statement's output digest
//!                        4. decode, multiply, compress (chain::apply_share)
//!                        5. digest, sign own statement
//!  … RegisterHop::finish → HopRecordV2
//!
//!  ChunkMsg(hop m) ─▶ LinkerHop::handle_chunk ─▶ final pseudonyms of the chunk
//!  … LinkerHop::z_digest (for σ), LinkerHop::finish → HopRecordV2 (with final_root)
//! ```
//!
//! A hop keeps one [`ChunkDigests`] (64 bytes) per chunk and nothing else
//! that grows with the list. A refused chunk leaves the state unchanged.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::CryptoRng;

use super::{
    statement::{
        chunk_digest, list_digest, ChunkDigests, ChunkMsg, ChunkStatement, HopRecordV2, ListHeader,
        Mode, SignedChunkStatement, StepKeyProof,
    },
    strict,
};
use crate::{
    bounded::BoundedVec,
    chain::{self, ChainError},
    delivery::FinalSaltKey,
    dleq::{self, ProofError},
    group::WirePoint,
    hash::framed_sha3,
    merkle::MerkleBuilder,
    share::{Domain, Share},
    types::{ChunkIndex, Digest, HopIndex, ListName, Name},
};

/// A chunk was refused, or a hop cannot be built. The hop's state is
/// unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HopError {
    /// The chunk belongs to another list or attempt.
    #[error("chunk of another list or attempt")]
    WrongList,
    /// Produced by an unexpected step.
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
    /// The chunk's size disagrees with the header.
    #[error("chunk {chunk} has {got} points, expected {expected}")]
    WrongCount {
        /// The chunk.
        chunk: ChunkIndex,
        /// Points expected.
        expected: u64,
        /// Points given.
        got: u64,
    },
    /// The sender's statement signature does not verify.
    #[error("chunk {chunk}: the sender's statement signature does not verify")]
    BadSignature {
        /// The chunk.
        chunk: ChunkIndex,
    },
    /// The chunk's bytes are not the ones the sender's statement digests.
    #[error("chunk {chunk}: the bytes do not match the signed digest")]
    DigestMismatch {
        /// The chunk.
        chunk: ChunkIndex,
    },
    /// A point is invalid or the identity.
    #[error(transparent)]
    Point(#[from] ChainError),
    /// Strict mode: the named hop's per-chunk proof, or the chaining of the
    /// earlier statements it is tied to, fails. That hop deviated.
    #[error("chunk {chunk}: hop {hop}'s strict-mode proof does not verify")]
    StrictProof {
        /// The chunk.
        chunk: ChunkIndex,
        /// The hop whose proof failed.
        hop: HopIndex,
    },
    /// The owner signed a chunk that contradicts its own end-of-list
    /// statement (another digest at that index), or one past the list's
    /// last chunk (streamed lists, docs/protocol.md §19).
    #[error("chunk {chunk}: the owner's chunk contradicts its end-of-list statement or lies past the list's end")]
    OwnerContradiction {
        /// The chunk.
        chunk: ChunkIndex,
    },
    /// Fields present where they must not be, or missing.
    #[error("chunk {chunk}: malformed for this mode")]
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
    /// The header's chunk size or count is out of bounds, or the hop index
    /// is 0.
    #[error("bad list header")]
    BadHeader,
    /// A blinding commitment is not a valid point.
    #[error("bad blinding commitment")]
    BadKey,
    /// The opened blinding does not match its announced commitment:
    /// `β⁻¹·G ≠ D` (a wrong or substituted blinding).
    #[error("the blinding does not match the announced commitment")]
    BlindingMismatch,
}

/// What a step multiplies by: a plain share (`K_h = k_h·G`), or a combined
/// `k·β⁻¹` with its proof against `D = β⁻¹·G`.
pub struct StepKey {
    share: Share,
    key: WirePoint,
    proof: Option<StepKeyProof>,
}

impl core::fmt::Debug for StepKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StepKey")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl StepKey {
    /// A register's own share.
    pub fn plain(share: Share) -> Self {
        let key = share.commitment();
        Self {
            share,
            key,
            proof: None,
        }
    }

    /// The combined step `k·β⁻¹` of `member` over `list` of `domain`, with
    /// the proof `log_G K = log_D C` (the linker's step with `β_j`/`D_j`, or
    /// `β₁`/`D₁`; hop 1 over an owner without a share with `β₂`/`D₂`).
    ///
    /// # Errors
    ///
    /// [`HopError::BadKey`] if `blinding_commitment` is not a valid point;
    /// [`HopError::BlindingMismatch`] if the blinding is not the one it
    /// commits to (`β⁻¹·G ≠ D`): a step never combines a blinding it cannot
    /// tie to the owner's signed announcement.
    pub fn combined<R: CryptoRng + ?Sized>(
        domain: &Domain,
        list: &ListName,
        member: &Name,
        share: &Share,
        blinding: &Share,
        blinding_commitment: &WirePoint,
        rng: &mut R,
    ) -> Result<Self, HopError> {
        let d = blinding_commitment.decode().map_err(|_| HopError::BadKey)?;
        let unblind = blinding.invert();
        if unblind.commitment() != *blinding_commitment {
            return Err(HopError::BlindingMismatch);
        }
        let combined = share.product(&unblind);
        let share_key = share.commitment();
        let c = combined.commitment();
        let ctx = step_key_context(domain, list, member, &share_key, blinding_commitment, &c);
        let proof = dleq::prove(share, &RISTRETTO_BASEPOINT_POINT, d.inner(), &ctx, rng);
        Ok(Self {
            share: combined,
            key: c,
            proof: Some(StepKeyProof {
                share_key,
                blinding: *blinding_commitment,
                combined: c,
                proof,
            }),
        })
    }

    /// The step's public key.
    pub fn key(&self) -> WirePoint {
        self.key
    }

    /// The scalar of the step (for the backward pass).
    pub(crate) fn share(&self) -> &Share {
        &self.share
    }
}

/// The DLEQ context of a combined step key: `framed_sha3(STEP_KEY,
/// [domain, list, member, K, D, C])`.
pub fn step_key_context(
    domain: &Domain,
    list: &ListName,
    member: &Name,
    share_key: &WirePoint,
    blinding: &WirePoint,
    combined: &WirePoint,
) -> [u8; 32] {
    framed_sha3(
        super::tags::STEP_KEY,
        &[
            &domain.to_bytes(),
            list.as_bytes(),
            member.as_bytes(),
            share_key.as_bytes(),
            blinding.as_bytes(),
            combined.as_bytes(),
        ],
    )
}

/// Verifies a combined step key's proof.
///
/// # Errors
///
/// [`ProofError`] for an invalid point or a proof that does not verify.
pub fn verify_step_key(
    domain: &Domain,
    list: &ListName,
    member: &Name,
    p: &StepKeyProof,
) -> Result<(), ProofError> {
    let k = p.share_key.decode().map_err(|_| ProofError)?;
    let d = p.blinding.decode().map_err(|_| ProofError)?;
    let c = p.combined.decode().map_err(|_| ProofError)?;
    let ctx = step_key_context(domain, list, member, &p.share_key, &p.blinding, &p.combined);
    dleq::verify(
        &RISTRETTO_BASEPOINT_POINT,
        k.inner(),
        d.inner(),
        c.inner(),
        &ctx,
        &p.proof,
    )
}

/// The common front of both hops: checks a chunk against the header and
/// the sender's signed statement, without touching the points.
struct Front {
    header: ListHeader,
    hop: HopIndex,
    member: Name,
    step: StepKey,
    /// Ed25519 keys of the owner (index 0) and of register hops 1…hop-1.
    senders: Vec<VerifyingKey>,
    /// Step keys of register hops 1…hop-1 (strict mode).
    step_keys: Vec<WirePoint>,
    chunks: Vec<ChunkDigests>,
}

impl Front {
    fn new(
        header: ListHeader,
        hop: HopIndex,
        member: Name,
        step: StepKey,
        senders: Vec<VerifyingKey>,
        step_keys: Vec<WirePoint>,
    ) -> Result<Self, HopError> {
        header.validate()?;
        if hop == HopIndex::OWNER
            || senders.len() != hop.as_usize()
            || step_keys.len() + 1 != hop.as_usize()
        {
            return Err(HopError::BadHeader);
        }
        Ok(Self {
            header,
            hop,
            member,
            step,
            senders,
            step_keys,
            chunks: Vec::new(),
        })
    }

    fn next_chunk(&self) -> ChunkIndex {
        ChunkIndex(self.chunks.len() as u64)
    }

    fn is_complete(&self) -> bool {
        self.next_chunk().0 == self.header.chunks()
    }

    /// Checks everything but the points' validity; returns the chunk index.
    fn admit(&self, msg: &ChunkMsg) -> Result<ChunkIndex, HopError> {
        if msg.list != self.header.list || msg.attempt != self.header.attempt {
            return Err(HopError::WrongList);
        }
        let st = &msg.statement.statement;
        if st.hop.next() != self.hop {
            return Err(HopError::WrongHop {
                expected: HopIndex(self.hop.0.wrapping_sub(1)),
                got: st.hop,
            });
        }
        let c = self.next_chunk();
        if st.chunk != c || self.is_complete() {
            return Err(HopError::OutOfOrder {
                expected: c,
                got: st.chunk,
            });
        }
        let expected = self.header.chunk_len(c.0);
        let got = msg.points.len() as u64;
        if got != expected || u64::from(st.count) != expected {
            return Err(HopError::WrongCount {
                chunk: c,
                expected,
                got,
            });
        }
        let sender = &self.senders[self.hop.as_usize() - 1];
        st.verify(&self.header, sender, &msg.statement.signature)
            .map_err(|()| HopError::BadSignature { chunk: c })?;
        if chunk_digest(&msg.points) != st.output {
            return Err(HopError::DigestMismatch { chunk: c });
        }
        let strict = self.header.mode == Mode::Strict;
        let carries = !msg.earlier.is_empty() || !msg.input.is_empty() || msg.proof.is_some();
        if !strict && carries {
            return Err(HopError::Malformed { chunk: c });
        }
        if strict {
            strict::check_incoming(&self.header, &self.senders, &self.step_keys, msg)?;
        }
        Ok(c)
    }

    /// Applies the step; in strict mode also proves it.
    fn step<R: CryptoRng + ?Sized>(
        &self,
        msg: &ChunkMsg,
        c: ChunkIndex,
        rng: &mut R,
    ) -> Result<
        (
            Vec<WirePoint>,
            Option<crate::dleq::ChunkProof>,
            ChunkStatement,
        ),
        HopError,
    > {
        let first = c.0 * u64::from(self.header.chunk_size);
        let (output, decoded) = if self.header.mode == Mode::Strict {
            let decoded = chain::decode_points(&msg.points, first)?;
            (
                chain::multiply_decoded(&self.step.share, &decoded),
                Some(decoded),
            )
        } else {
            (
                chain::apply_share(&self.step.share, &msg.points, first)?,
                None,
            )
        };
        let statement = ChunkStatement {
            hop: self.hop,
            chunk: c,
            count: msg.statement.statement.count,
            input: msg.statement.statement.output,
            output: chunk_digest(&output),
        };
        let proof = decoded.map(|d| {
            strict::prove(
                &self.header,
                &statement,
                &self.step.share,
                &self.step.key,
                &d,
                rng,
            )
        });
        Ok((output, proof, statement))
    }

    fn record(self, final_root: Option<Digest>) -> Result<HopRecordV2, HopError> {
        if !self.is_complete() {
            return Err(HopError::Incomplete {
                done: self.next_chunk().0,
                total: self.header.chunks(),
            });
        }
        Ok(HopRecordV2 {
            list: self.header.list,
            attempt: self.header.attempt,
            hop: self.hop,
            member: self.member,
            key: self.step.key,
            count: self.header.persons,
            chunk_size: self.header.chunk_size,
            chunks: BoundedVec::new(self.chunks).map_err(|_| HopError::BadHeader)?,
            key_proof: self.step.proof,
            final_root,
        })
    }
}

/// A register's hop `h` (1 ≤ h ≤ m) over one list attempt.
pub struct RegisterHop {
    front: Front,
}

impl core::fmt::Debug for RegisterHop {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RegisterHop")
            .field("list", &self.front.header.list)
            .field("hop", &self.front.hop)
            .field("next_chunk", &self.front.next_chunk())
            .finish_non_exhaustive()
    }
}

impl RegisterHop {
    /// Hop `hop` of `member` with step `step`.
    ///
    /// `senders` are the Ed25519 node keys of the owner and of hops
    /// 1…hop-1, in chain order (`hop` keys; only the last is used in
    /// optimistic mode, all in strict mode); `step_keys` the step keys of
    /// hops 1…hop-1 (for strict mode; may be checked against commitments
    /// by the caller).
    ///
    /// # Errors
    ///
    /// [`HopError::BadHeader`].
    pub fn new(
        header: ListHeader,
        hop: HopIndex,
        member: Name,
        step: StepKey,
        senders: Vec<VerifyingKey>,
        step_keys: Vec<WirePoint>,
    ) -> Result<Self, HopError> {
        Ok(Self {
            front: Front::new(header, hop, member, step, senders, step_keys)?,
        })
    }

    /// Resumes after a restart from the chunk digests persisted so far.
    ///
    /// # Errors
    ///
    /// [`HopError::OutOfOrder`] if there are more than the list's chunks.
    pub fn resume(mut self, chunks: Vec<ChunkDigests>) -> Result<Self, HopError> {
        if chunks.len() as u64 > self.front.header.chunks() {
            return Err(HopError::OutOfOrder {
                expected: ChunkIndex(self.front.header.chunks()),
                got: ChunkIndex(chunks.len() as u64),
            });
        }
        self.front.chunks = chunks;
        Ok(self)
    }

    /// The chunk digests so far (persist them after each chunk).
    pub fn records(&self) -> &[ChunkDigests] {
        &self.front.chunks
    }

    /// The next chunk expected.
    pub fn next_chunk(&self) -> ChunkIndex {
        self.front.next_chunk()
    }

    /// Whether every chunk has passed.
    pub fn is_complete(&self) -> bool {
        self.front.is_complete()
    }

    /// The step's public key.
    pub fn key(&self) -> WirePoint {
        self.front.step.key
    }

    /// Checks a chunk from the previous step, applies this hop's step and
    /// returns the signed chunk for the next step. `key` is this node's
    /// Ed25519 signing key. `rng` is used only in strict mode (proofs).
    ///
    /// # Errors
    ///
    /// A [`HopError`]; the state is unchanged on error.
    pub fn handle_chunk<R: CryptoRng + ?Sized>(
        &mut self,
        msg: &ChunkMsg,
        key: &SigningKey,
        rng: &mut R,
    ) -> Result<ChunkMsg, HopError> {
        let c = self.front.admit(msg)?;
        let (output, proof, statement) = self.front.step(msg, c, rng)?;
        let signature = statement.sign(&self.front.header, key);
        let strict = self.front.header.mode == Mode::Strict;
        let (earlier, input) = if strict {
            let mut e = msg.earlier.to_vec();
            e.push(msg.statement);
            (
                BoundedVec::new(e).map_err(|_| HopError::Malformed { chunk: c })?,
                msg.points.clone(),
            )
        } else {
            (BoundedVec::default(), BoundedVec::default())
        };
        self.front.chunks.push(ChunkDigests {
            input: statement.input,
            output: statement.output,
        });
        Ok(ChunkMsg {
            list: msg.list.clone(),
            attempt: msg.attempt,
            statement: SignedChunkStatement {
                statement,
                signature,
            },
            points: BoundedVec::new(output).map_err(|_| HopError::Malformed { chunk: c })?,
            earlier,
            input,
            proof,
        })
    }

    /// The hop record, once every chunk has passed.
    ///
    /// # Errors
    ///
    /// [`HopError::Incomplete`].
    pub fn finish(self) -> Result<HopRecordV2, HopError> {
        self.front.record(None)
    }
}

/// The linker's hop (m+1) over one list attempt: the combined step
/// `k_L·β⁻¹`, the salted final-pseudonym tree, and `Z`'s digest for σ.
pub struct LinkerHop {
    front: Front,
    salt: FinalSaltKey,
    tree: MerkleBuilder,
}

impl core::fmt::Debug for LinkerHop {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LinkerHop")
            .field("list", &self.front.header.list)
            .field("next_chunk", &self.front.next_chunk())
            .finish_non_exhaustive()
    }
}

impl LinkerHop {
    /// The linker's hop `hop` = m+1. `step` must be a
    /// [`StepKey::combined`] for a project's list, a [`StepKey::plain`]
    /// for a delivery's (`header.delivery` set); `senders`/`step_keys` as for
    /// [`RegisterHop::new`]; `salt` the linker's secret for the salted
    /// final-pseudonym leaves.
    ///
    /// # Errors
    ///
    /// [`HopError::BadHeader`], or [`HopError::BadKey`] if `step` carries no
    /// key proof for a project or one for a delivery.
    pub fn new(
        header: ListHeader,
        hop: HopIndex,
        member: Name,
        step: StepKey,
        senders: Vec<VerifyingKey>,
        step_keys: Vec<WirePoint>,
        salt: FinalSaltKey,
    ) -> Result<Self, HopError> {
        // A project's linker removes β (a combined key with its proof); a
        // delivery's applies k_{L,R} only and leaves β to the holder.
        if step.proof.is_none() != header.delivery.is_some() {
            return Err(HopError::BadKey);
        }
        Ok(Self {
            front: Front::new(header, hop, member, step, senders, step_keys)?,
            salt,
            tree: MerkleBuilder::new(),
        })
    }

    /// Resumes after a restart from the chunk digests persisted so far and
    /// the final pseudonyms they produced (in position order, as the
    /// linker stores them for linking): the salted tree is rebuilt from
    /// them, and each chunk's output digest must match, so a store that
    /// lost or altered a point is refused rather than resumed.
    ///
    /// # Errors
    ///
    /// [`HopError::OutOfOrder`] for more chunks than the list has,
    /// [`HopError::Malformed`] for finals that do not match the digests.
    pub fn resume(
        mut self,
        chunks: Vec<ChunkDigests>,
        finals: &[WirePoint],
    ) -> Result<Self, HopError> {
        let header = &self.front.header;
        if chunks.len() as u64 > header.chunks() {
            return Err(HopError::OutOfOrder {
                expected: ChunkIndex(header.chunks()),
                got: ChunkIndex(chunks.len() as u64),
            });
        }
        let mut rest = finals;
        for (c, digests) in (0u64..).map(ChunkIndex).zip(&chunks) {
            let len = usize::try_from(header.chunk_len(c.0))
                .map_err(|_| HopError::Malformed { chunk: c })?;
            if rest.len() < len {
                return Err(HopError::Malformed { chunk: c });
            }
            let (points, tail) = rest.split_at(len);
            if chunk_digest(points) != digests.output {
                return Err(HopError::Malformed { chunk: c });
            }
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(HopError::Malformed {
                chunk: ChunkIndex(chunks.len() as u64),
            });
        }
        for (i, p) in (0u64..).zip(finals) {
            let salt = self.salt.salt(&header.domain, &header.list, i);
            self.tree
                .push_leaf_hash(crate::delivery::salted_leaf_hash(&salt, p));
        }
        self.front.chunks = chunks;
        Ok(self)
    }

    /// The next chunk expected.
    pub fn next_chunk(&self) -> ChunkIndex {
        self.front.next_chunk()
    }

    /// Whether every chunk has passed.
    pub fn is_complete(&self) -> bool {
        self.front.is_complete()
    }

    /// The chunk digests so far (persist them, with the final pseudonyms,
    /// after each chunk).
    pub fn records(&self) -> &[ChunkDigests] {
        &self.front.chunks
    }

    /// Checks a chunk of `Z` from hop m, applies `k_L·β⁻¹` and returns the
    /// final pseudonyms of the chunk (in position order) for linking.
    ///
    /// # Errors
    ///
    /// A [`HopError`]; the state is unchanged on error.
    pub fn handle_chunk(&mut self, msg: &ChunkMsg) -> Result<Vec<WirePoint>, HopError> {
        let c = self.front.admit(msg)?;
        let first = c.0 * u64::from(self.front.header.chunk_size);
        // The linker proves nothing per chunk (strict mode included): its
        // step is bound by its key proof, and it publishes no chunk proofs.
        let output = chain::apply_share(&self.front.step.share, &msg.points, first)?;
        let h = &self.front.header;
        for (i, p) in output.iter().enumerate() {
            let salt = self.salt.salt(&h.domain, &h.list, first + i as u64);
            self.tree
                .push_leaf_hash(crate::delivery::salted_leaf_hash(&salt, p));
        }
        self.front.chunks.push(ChunkDigests {
            input: msg.statement.statement.output,
            output: chunk_digest(&output),
        });
        Ok(output)
    }

    /// The digest of `Z` (the whole-list digest of hop m's output chunks,
    /// as received), once every chunk has passed.
    pub fn z_digest(&self) -> Option<Digest> {
        self.is_complete().then(|| {
            let ins: Vec<Digest> = self.front.chunks.iter().map(|c| c.input).collect();
            list_digest(&ins)
        })
    }

    /// The hop record (with the salted final root), once every chunk has
    /// passed.
    ///
    /// # Errors
    ///
    /// [`HopError::Incomplete`].
    pub fn finish(self) -> Result<HopRecordV2, HopError> {
        let root = self.tree.finish();
        self.front.record(Some(root))
    }
}
