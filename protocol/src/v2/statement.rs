//! What chain v2 signs: the list header every hop knows, the per-chunk
//! statements with plain SHA3-256 digests, the owner's streamed part, and
//! the records a hop leaves in the transcript.
//!
//! Exact byte formats are in `docs/protocol.md` ("Chain v2").

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha3::{Digest as _, Sha3_256};

use super::hop::HopError;
use crate::{
    bounded::BoundedVec,
    dleq::{ChunkProof, DleqProof},
    group::WirePoint,
    hash::{framed_sha3, FramedHasher},
    hop::MAX_CHUNK_POINTS,
    seal::WrappedKey,
    share::Domain,
    transcript::{Columns, InvalidCount, Sig, MAX_CHUNKS, MAX_REGISTERS},
    types::{Attempt, ChunkIndex, Digest, HopIndex, ListName, Name},
};

/// Domain-separation tags of chain v2. Every one names version 2.
pub mod tags {
    /// Digest of a per-chunk statement (what a hop or the owner signs).
    pub const CHUNK_STATEMENT: &[u8] = b"KOBLING-V2-CHUNK-STATEMENT";
    /// Whole-list digest over the chunk digests.
    pub const LIST_DIGEST: &[u8] = b"KOBLING-V2-LIST-DIGEST";
    /// The check seed σ.
    pub const CHECK: &[u8] = b"KOBLING-V2-CHECK";
    /// The coefficient stream of one chunk, from σ.
    pub const COEFFICIENTS: &[u8] = b"KOBLING-V2-COEFFICIENTS";
    /// The owner's signature over `(σ, A_0)`.
    pub const OWNER_CHECK: &[u8] = b"KOBLING-V2-OWNER-CHECK";
    /// DLEQ context of one backward-pass step.
    pub const PASS: &[u8] = b"KOBLING-V2-PASS";
    /// DLEQ context of a combined step key (`k·β⁻¹` against `k·D`).
    pub const STEP_KEY: &[u8] = b"KOBLING-V2-STEP-KEY";
    /// Strict mode: DLEQ context of a per-chunk register proof.
    pub const STRICT_CHUNK: &[u8] = b"KOBLING-V2-STRICT-CHUNK";
    /// Strict mode: coefficient stream of a per-chunk register proof.
    pub const STRICT_COEFFICIENTS: &[u8] = b"KOBLING-V2-STRICT-COEFFICIENTS";
    /// Per-position salt of a final-pseudonym leaf.
    pub const FINAL_SALT: &[u8] = b"KOBLING-V2-FINAL-SALT";
    /// The salted final-pseudonym leaf.
    pub const FINAL_LEAF: &[u8] = b"KOBLING-V2-FINAL-LEAF";
}

/// How a list attempt is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// One end-to-end check per list (§6a steps 1–5).
    Optimistic,
    /// Per-chunk register proofs (§6a step 6), after a failed check.
    Strict,
}

impl Mode {
    /// The mode's byte in σ: 0 optimistic, 1 strict.
    pub fn byte(self) -> u8 {
        match self {
            Mode::Optimistic => 0,
            Mode::Strict => 1,
        }
    }
}

/// What every party of a list attempt knows from the list announcement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListHeader {
    /// The project or register domain.
    pub domain: Domain,
    /// The delivery id, for a delivery into a register domain.
    pub delivery: Option<Digest>,
    /// The list.
    pub list: ListName,
    /// The attempt (0 first; the strict attempt after a failed check is 1).
    pub attempt: Attempt,
    /// The attempt's mode.
    pub mode: Mode,
    /// Points in the list.
    pub persons: u64,
    /// Points per chunk (a power of two, at most [`MAX_CHUNK_POINTS`]).
    pub chunk_size: u32,
}

impl ListHeader {
    /// Chunks in the list.
    pub fn chunks(&self) -> u64 {
        self.persons.div_ceil(u64::from(self.chunk_size.max(1)))
    }

    /// Points in chunk `c`.
    pub fn chunk_len(&self, c: u64) -> u64 {
        let size = u64::from(self.chunk_size);
        self.persons
            .saturating_sub(c.saturating_mul(size))
            .min(size)
    }

    /// Checks the chunk size and the chunk count.
    ///
    /// # Errors
    ///
    /// [`HopError::BadHeader`].
    pub fn validate(&self) -> Result<(), HopError> {
        if !self.chunk_size.is_power_of_two()
            || self.chunk_size as usize > MAX_CHUNK_POINTS
            || self.chunks() > MAX_CHUNKS as u64
        {
            return Err(HopError::BadHeader);
        }
        Ok(())
    }

    fn delivery_bytes(&self) -> &[u8] {
        self.delivery.as_ref().map_or(&[][..], |d| d.as_bytes())
    }
}

/// One chunk step's statement: hop 0 is the owner (its input digest is
/// all zero), hops 1…m the registers, m+1 the linker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkStatement {
    /// The hop that made the chunk.
    pub hop: HopIndex,
    /// The chunk index.
    pub chunk: ChunkIndex,
    /// Points in the chunk.
    pub count: u32,
    /// `SHA3-256` of the input chunk's bytes.
    pub input: Digest,
    /// `SHA3-256` of the output chunk's bytes.
    pub output: Digest,
}

impl ChunkStatement {
    /// `framed_sha3(CHUNK_STATEMENT, [domain, delivery, list, le32(attempt),
    /// le32(hop), le64(chunk), le64(count), input, output])`.
    pub fn digest(&self, header: &ListHeader) -> Digest {
        Digest(framed_sha3(
            tags::CHUNK_STATEMENT,
            &[
                &header.domain.to_bytes(),
                header.delivery_bytes(),
                header.list.as_bytes(),
                &header.attempt.to_le_bytes(),
                &self.hop.to_le_bytes(),
                &self.chunk.to_le_bytes(),
                &u64::from(self.count).to_le_bytes(),
                self.input.as_bytes(),
                self.output.as_bytes(),
            ],
        ))
    }

    /// Ed25519 over [`digest`](Self::digest).
    pub fn sign(&self, header: &ListHeader, key: &SigningKey) -> Sig {
        Sig(key.sign(self.digest(header).as_bytes()).to_bytes())
    }

    /// Strict verification of `sig` with `key`.
    ///
    /// # Errors
    ///
    /// `Err(())`; deliberately opaque.
    #[allow(clippy::result_unit_err)]
    pub fn verify(&self, header: &ListHeader, key: &VerifyingKey, sig: &Sig) -> Result<(), ()> {
        key.verify_strict(
            self.digest(header).as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&sig.0),
        )
        .map_err(|_| ())
    }
}

/// A chunk statement with its signature, as carried with chunks in strict
/// mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedChunkStatement {
    /// The statement.
    pub statement: ChunkStatement,
    /// Its signer's signature.
    pub signature: Sig,
}

/// A chunk travelling from one step to the next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkMsg {
    /// The list.
    pub list: ListName,
    /// The attempt.
    pub attempt: Attempt,
    /// The sender's signed statement about this chunk.
    pub statement: SignedChunkStatement,
    /// The sender's output: the exact bytes `statement.output` digests.
    pub points: BoundedVec<WirePoint, MAX_CHUNK_POINTS>,
    /// Strict mode only: the signed statements of every earlier step for
    /// this chunk, owner first.
    pub earlier: BoundedVec<SignedChunkStatement, MAX_REGISTERS>,
    /// Strict mode only: the sender's input points (the bytes
    /// `statement.input` digests), so the next hop can check its proof.
    pub input: BoundedVec<WirePoint, MAX_CHUNK_POINTS>,
    /// Strict mode only: the sender's per-chunk proof (none from the owner).
    pub proof: Option<ChunkProof>,
}

/// Plain `SHA3-256` of a chunk's bytes: the 32-byte encodings in order.
pub fn chunk_digest(points: &[WirePoint]) -> Digest {
    let mut h = Sha3_256::new();
    for p in points {
        h.update(p.as_bytes());
    }
    Digest(h.finalize().into())
}

/// The whole-list digest: `framed_sha3(LIST_DIGEST, [le64(k), d_0, …,
/// d_{k-1}])` over the `k` chunk digests.
pub fn list_digest(chunks: &[Digest]) -> Digest {
    let mut h = FramedHasher::new(tags::LIST_DIGEST).u64(chunks.len() as u64);
    for d in chunks {
        h.push(d.as_bytes());
    }
    Digest(h.finish())
}

/// The digests of one chunk step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkDigests {
    /// `SHA3-256` of the input chunk.
    pub input: Digest,
    /// `SHA3-256` of the output chunk.
    pub output: Digest,
}

/// A combined step key `x = k·β⁻¹` proven against a blinding commitment:
/// `log_G K = log_D C` with `C = k·D = x·G` (the linker's step, and hop 1's
/// step over a list whose owner holds no share).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepKeyProof {
    /// `K`, the member's committed share key.
    pub share_key: WirePoint,
    /// `D = β⁻¹·G`, from the announcement.
    pub blinding: WirePoint,
    /// `C = k·D`, the public key of the step.
    pub combined: WirePoint,
    /// The DLEQ proof.
    pub proof: DleqProof,
}

/// A v2 list announcement: what the owner knows before its first chunk
/// (so its first chunks can go out before the whole list is prepared).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListAnnouncementV2 {
    /// The list (= the owning register).
    pub list: ListName,
    /// The delivery id, for a delivery into a register domain.
    pub delivery: Option<Digest>,
    /// The extract it was built from (must match the approvals).
    pub extract: Digest,
    /// Rows read from the extract.
    pub rows: u64,
    /// Rows excluded for an invalid identifier, per reason.
    pub invalid: BoundedVec<InvalidCount, 16>,
    /// Distinct persons = points in the list.
    pub persons: u64,
    /// The variables delivered, in extract order.
    pub columns: Columns,
    /// `[D_j]`, or `[D₁, D₂]` for an owner without a share (§6a).
    pub blinding: BoundedVec<WirePoint, 2>,
    /// Points per chunk (a power of two).
    pub chunk_size: u32,
    /// The list's content key, sealed to the researcher.
    pub content_key: WrappedKey,
    /// Of an identified project: persons removed by the register's
    /// reservation table, shown (`<5` under 5); `None` otherwise.
    pub excluded: Option<crate::reservation::ShownCount>,
}

impl ListAnnouncementV2 {
    /// The announcement's fields in v1's shape, for the rules both chains
    /// share (no points root, no sealed root: v2 records the sealed root in
    /// the owner's list statement; the first blinding commitment).
    pub fn v1_shape(&self) -> crate::transcript::ListAnnouncement {
        crate::transcript::ListAnnouncement {
            list: self.list.clone(),
            extract: self.extract,
            rows: self.rows,
            invalid: self.invalid.clone(),
            persons: self.persons,
            columns: self.columns.clone(),
            blinding_commitment: self.blinding.first().copied().unwrap_or(WirePoint([0; 32])),
            points_root: Digest::default(),
            sealed_root: Digest::default(),
            chunk_size: self.chunk_size,
            content_key: self.content_key.clone(),
            excluded: self.excluded,
        }
    }

    /// The header of attempt `attempt` in `mode`.
    pub fn header(&self, domain: Domain, attempt: Attempt, mode: Mode) -> ListHeader {
        ListHeader {
            domain,
            delivery: self.delivery,
            list: self.list.clone(),
            attempt,
            mode,
            persons: self.persons,
            chunk_size: self.chunk_size,
        }
    }
}

/// The owner's end-of-list statement (a transcript body): its chunk
/// digests, the whole-list digest over them, and the sealed items' root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerList {
    /// The list.
    pub list: ListName,
    /// The attempt whose chunks these are (a strict attempt resends the
    /// same chunks: the owner records them again under the new attempt).
    pub attempt: Attempt,
    /// `SHA3-256` of every output chunk, in order.
    pub chunks: BoundedVec<Digest, MAX_CHUNKS>,
    /// [`list_digest`] of `chunks`.
    pub list_digest: Digest,
    /// Merkle root of the sealed items.
    pub sealed_root: Digest,
}

impl OwnerList {
    /// Why this end-of-list statement contradicts itself or the list's
    /// announcement (`header`): its number of chunk digests, or a
    /// whole-list digest that is not the digest of its chunk digests
    /// (docs/protocol.md §19). `None` if it agrees.
    pub fn contradiction(&self, header: &ListHeader) -> Option<String> {
        if self.list != header.list {
            return Some("the owner's end-of-list statement is for another list".into());
        }
        if self.chunks.len() as u64 != header.chunks() {
            return Some(format!(
                "the owner's end-of-list statement lists {} chunk digests where its announcement makes {} chunks",
                self.chunks.len(),
                header.chunks()
            ));
        }
        if list_digest(&self.chunks) != self.list_digest {
            return Some(
                "the owner's end-of-list statement signs a whole-list digest that is not the digest of its chunk digests"
                    .into(),
            );
        }
        None
    }
}

/// A hop's record of its step over one list attempt (a transcript body).
/// It keeps per-chunk digests only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HopRecordV2 {
    /// The list.
    pub list: ListName,
    /// The attempt.
    pub attempt: Attempt,
    /// The hop index (1 = first hop after the owner; the linker is m+1).
    pub hop: HopIndex,
    /// The hop's node.
    pub member: Name,
    /// The step's public key: `K_h`, or `C` for a combined step.
    pub key: WirePoint,
    /// Points in the list.
    pub count: u64,
    /// Points per chunk.
    pub chunk_size: u32,
    /// Per-chunk input and output digests.
    pub chunks: BoundedVec<ChunkDigests, MAX_CHUNKS>,
    /// For a combined step: its key proof.
    pub key_proof: Option<StepKeyProof>,
    /// The linker's hop only: root of the salted final-pseudonym tree.
    pub final_root: Option<Digest>,
}

impl HopRecordV2 {
    /// The chunk statements this record stands for, in chunk order.
    pub fn statements(&self) -> impl Iterator<Item = ChunkStatement> + '_ {
        let size = u64::from(self.chunk_size);
        self.chunks.iter().enumerate().map(move |(c, d)| {
            let c = c as u64;
            let count = self.count.saturating_sub(c * size).min(size);
            ChunkStatement {
                hop: self.hop,
                chunk: ChunkIndex(c),
                count: u32::try_from(count).unwrap_or(u32::MAX),
                input: d.input,
                output: d.output,
            }
        })
    }
}

/// The owner's streaming part: signs each output chunk as it is sent, and
/// the whole-list digest at the end. Keeps one digest per chunk.
#[derive(Debug)]
pub struct OwnerStream {
    header: ListHeader,
    digests: Vec<Digest>,
}

impl OwnerStream {
    /// Starts a list attempt.
    ///
    /// # Errors
    ///
    /// [`HopError::BadHeader`].
    pub fn new(header: ListHeader) -> Result<Self, HopError> {
        header.validate()?;
        Ok(Self {
            header,
            digests: Vec::new(),
        })
    }

    /// Resumes after a restart from the digests of the chunks already sent.
    ///
    /// # Errors
    ///
    /// [`HopError::OutOfOrder`] if there are more digests than chunks.
    pub fn resume(mut self, digests: Vec<Digest>) -> Result<Self, HopError> {
        if digests.len() as u64 > self.header.chunks() {
            return Err(HopError::OutOfOrder {
                expected: ChunkIndex(self.header.chunks()),
                got: ChunkIndex(digests.len() as u64),
            });
        }
        self.digests = digests;
        Ok(self)
    }

    /// The next chunk index.
    pub fn next_chunk(&self) -> u64 {
        self.digests.len() as u64
    }

    /// Signs the next chunk of the owner's output `y` and wraps it for
    /// hop 1.
    ///
    /// # Errors
    ///
    /// [`HopError::WrongCount`] if the chunk's size is not the header's,
    /// [`HopError::OutOfOrder`] after the last chunk.
    pub fn chunk(
        &mut self,
        points: Vec<WirePoint>,
        key: &SigningKey,
    ) -> Result<ChunkMsg, HopError> {
        let c = self.next_chunk();
        if c >= self.header.chunks() {
            return Err(HopError::OutOfOrder {
                expected: ChunkIndex(self.header.chunks()),
                got: ChunkIndex(c),
            });
        }
        let expected = self.header.chunk_len(c);
        if points.len() as u64 != expected {
            return Err(HopError::WrongCount {
                chunk: ChunkIndex(c),
                expected,
                got: points.len() as u64,
            });
        }
        let output = chunk_digest(&points);
        let statement = ChunkStatement {
            hop: HopIndex::OWNER,
            chunk: ChunkIndex(c),
            count: expected as u32,
            input: Digest::default(),
            output,
        };
        let signature = statement.sign(&self.header, key);
        self.digests.push(output);
        Ok(ChunkMsg {
            list: self.header.list.clone(),
            attempt: self.header.attempt,
            statement: SignedChunkStatement {
                statement,
                signature,
            },
            points: BoundedVec::new(points).map_err(|_| HopError::BadHeader)?,
            earlier: BoundedVec::default(),
            input: BoundedVec::default(),
            proof: None,
        })
    }

    /// The owner's end-of-list statement, once every chunk went out.
    ///
    /// # Errors
    ///
    /// [`HopError::Incomplete`].
    pub fn finish(self, sealed_root: Digest) -> Result<OwnerList, HopError> {
        if self.next_chunk() != self.header.chunks() {
            return Err(HopError::Incomplete {
                done: self.next_chunk(),
                total: self.header.chunks(),
            });
        }
        let list_digest = list_digest(&self.digests);
        Ok(OwnerList {
            list: self.header.list,
            attempt: self.header.attempt,
            chunks: BoundedVec::new(self.digests).map_err(|_| HopError::BadHeader)?,
            list_digest,
            sealed_root,
        })
    }
}

/// A list attempt that stopped the project (a transcript body): a strict
/// attempt in which a hop's proof failed (that hop is named), or a strict
/// attempt whose check failed too (nobody is named). Recorded by the node
/// that found it; operators and the researcher are told which list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainStopped {
    /// The list.
    pub list: ListName,
    /// The attempt.
    pub attempt: Attempt,
    /// The chunk where a proof failed (0 when nobody is named).
    pub chunk: ChunkIndex,
    /// The hop whose strict-mode proof failed, and its member; `None` when
    /// the strict attempt's check failed.
    pub named: Option<(HopIndex, Name)>,
}

impl ChainStopped {
    /// What the detecting hop records from its [`HopError::StrictProof`]
    /// (`chain` = the members of hops 1…m+1 in order); `None` for any other
    /// error, which names nobody.
    pub fn from_error(header: &ListHeader, chain: &[Name], error: &HopError) -> Option<Self> {
        match error {
            HopError::StrictProof { chunk, hop } => Some(Self {
                list: header.list.clone(),
                attempt: header.attempt,
                chunk: *chunk,
                named: Some((*hop, chain.get(hop.as_usize().checked_sub(1)?)?.clone())),
            }),
            _ => None,
        }
    }
}
