//! The end-to-end check of one list attempt (PROTOCOL.md §6a steps 2–4).
//!
//! ```text
//!  ChainView::sigma()                      everyone, from the records
//!  owner:   OwnerCheckBuilder::push_chunk… → finish → OwnerCheck { A_0, sig }
//!  linker:  combine_chunk over Z …          → B
//!  hop 1…m: pass_step(ctx, pass, h, step)  → PassStep { A_h, proof }   (appended to the Pass)
//!  linker:  ListCheck::conclude(ctx, pass, B) → ListCheck (A_m == B?)  (transcript only)
//!  auditor: verify_list_check(ctx, check)
//! ```
//!
//! # Soundness
//!
//! σ is a hash of everything both ends fixed (the owner's chunk digests and
//! `Z`'s), so the coefficients `c_t ∈ [1, 2^128)` are fixed after `y` and
//! `Z`. If `Z_t ≠ x·y_t` for the product `x` of the register steps at any
//! position, `Σ c_t·Z_t = x·Σ c_t·y_t` holds with probability at most
//! 2⁻¹²⁸ over the coefficients; `A_0` comes from the owner and each
//! `A_h = k_h·A_{h-1}` is proven, so `A_m = x·A_0` and the check fails.
//! A hop that wants another σ must change `Z` and rehash: ≈ 2^128 tries.

use curve25519_dalek::{
    constants::RISTRETTO_BASEPOINT_POINT, traits::Identity, RistrettoPoint, Scalar,
};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use sha3::digest::XofReader;

use super::{
    hop::StepKey,
    statement::{list_digest, ChunkStatement, HopRecordV2, ListHeader, OwnerList},
    tags,
};
use crate::{
    bounded::BoundedVec,
    dleq::{self, DleqProof},
    group::WirePoint,
    hash::{framed_sha3, framed_shake_reader, FramedHasher},
    transcript::{Sig, MAX_REGISTERS},
    types::{Attempt, ChunkIndex, Digest, HopIndex, ListName, Name},
};

/// The check's version byte in σ.
pub const CHECK_VERSION: u32 = 2;

/// A check step or its inputs are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The records do not chain: a digest, count, hop or attempt disagrees.
    #[error("the chain's records do not chain: {0}")]
    Chaining(&'static str),
    /// The pass is for another σ.
    #[error("the pass is for another check seed")]
    Sigma,
    /// The owner's signature on `A_0` does not verify.
    #[error("the owner's signature on A_0 does not verify")]
    OwnerSignature,
    /// Step `hop`'s proof (or value) does not verify.
    #[error("the backward pass's step {hop} does not verify")]
    Proof {
        /// The step.
        hop: HopIndex,
    },
    /// The pass has the wrong number of steps for this hop.
    #[error("the pass has {got} steps where {expected} were expected")]
    Steps {
        /// Steps expected.
        expected: usize,
        /// Steps given.
        got: usize,
    },
    /// A point to combine is invalid, or a chunk has the wrong size.
    #[error("chunk {chunk}: invalid point or wrong size")]
    Chunk {
        /// The chunk.
        chunk: ChunkIndex,
    },
    /// `A_m ≠ B`: some register step deviated (or the list check's claim
    /// disagrees with its values).
    #[error("the list check fails: A_m differs from B")]
    Failed,
}

/// The chain of one list attempt as the transcript records it: what σ is
/// computed from.
#[derive(Debug, Clone, Copy)]
pub struct ChainView<'a> {
    /// The attempt's header.
    pub header: &'a ListHeader,
    /// The manifest digest.
    pub manifest: Digest,
    /// The list's owner.
    pub owner: &'a Name,
    /// `[D_j]` or `[D₁, D₂]`.
    pub blinding: &'a [WirePoint],
    /// The owner's end-of-list statement.
    pub owner_list: &'a OwnerList,
    /// The register hops 1…m, in order.
    pub hops: &'a [HopRecordV2],
    /// The linker and its step key `C`.
    pub linker: (&'a Name, WirePoint),
}

impl ChainView<'_> {
    /// Checks that the records chain: owner's output = hop 1's input, hop
    /// h's output = hop h+1's input, counts and attempts agree.
    ///
    /// # Errors
    ///
    /// [`CheckError::Chaining`].
    pub fn check_chaining(&self) -> Result<(), CheckError> {
        let h = self.header;
        let o = self.owner_list;
        let k = h.chunks();
        if o.list != h.list || o.attempt != h.attempt {
            return Err(CheckError::Chaining(
                "the owner's list statement is for another attempt",
            ));
        }
        if o.chunks.len() as u64 != k || list_digest(&o.chunks) != o.list_digest {
            return Err(CheckError::Chaining(
                "the owner's chunk digests do not add up to its list digest",
            ));
        }
        let mut previous: Vec<Digest> = o.chunks.to_vec();
        for (i, r) in self.hops.iter().enumerate() {
            if r.list != h.list
                || r.attempt != h.attempt
                || r.hop.as_usize() != i + 1
                || r.count != h.persons
                || r.chunk_size != h.chunk_size
                || r.chunks.len() as u64 != k
            {
                return Err(CheckError::Chaining(
                    "a hop record's list, attempt, index or size disagrees",
                ));
            }
            if r.chunks.iter().zip(&previous).any(|(c, p)| c.input != *p) {
                return Err(CheckError::Chaining(
                    "a hop's input digest is not the previous step's output digest",
                ));
            }
            previous = r.chunks.iter().map(|c| c.output).collect();
        }
        Ok(())
    }

    /// The digest of `Z`: the whole-list digest of hop m's output chunks
    /// (the owner's when there is no register hop).
    pub fn z_digest(&self) -> Digest {
        match self.hops.last() {
            Some(r) => list_digest(&r.chunks.iter().map(|c| c.output).collect::<Vec<_>>()),
            None => self.owner_list.list_digest,
        }
    }

    /// The check seed σ (see `docs/protocol.md`, "Chain v2: σ"), after
    /// [`check_chaining`](Self::check_chaining).
    ///
    /// # Errors
    ///
    /// [`CheckError::Chaining`].
    pub fn sigma(&self) -> Result<Digest, CheckError> {
        self.check_chaining()?;
        let h = self.header;
        let delivery = h.delivery.as_ref().map_or(&[][..], |d| d.as_bytes());
        let mut s = FramedHasher::new(tags::CHECK)
            .field(&CHECK_VERSION.to_le_bytes())
            .field(&[h.mode.byte()])
            .field(&h.domain.to_bytes())
            .field(delivery)
            .field(h.list.as_bytes())
            .field(&h.attempt.to_le_bytes())
            .field(self.manifest.as_bytes())
            .field(self.owner.as_bytes())
            .u64(self.blinding.len() as u64);
        for d in self.blinding {
            s.push(d.as_bytes());
        }
        s = s.u64(self.hops.len() as u64 + 1);
        for r in self.hops {
            s.push(r.member.as_bytes());
            s.push(r.key.as_bytes());
        }
        s.push(self.linker.0.as_bytes());
        s.push(self.linker.1.as_bytes());
        s = s
            .u64(h.persons)
            .field(&h.chunk_size.to_le_bytes())
            .field(self.owner_list.list_digest.as_bytes())
            .field(self.z_digest().as_bytes())
            .u64((self.hops.len() as u64 + 1) * h.chunks());
        let size = u64::from(h.chunk_size);
        for (c, d) in self.owner_list.chunks.iter().enumerate() {
            let c = c as u64;
            let st = ChunkStatement {
                hop: HopIndex::OWNER,
                chunk: ChunkIndex(c),
                count: h.chunk_len(c) as u32,
                input: Digest::default(),
                output: *d,
            };
            debug_assert!(u64::from(st.count) <= size);
            s.push(st.digest(h).as_bytes());
        }
        for r in self.hops {
            for st in r.statements() {
                s.push(st.digest(h).as_bytes());
            }
        }
        Ok(Digest(s.finish()))
    }

    /// Checks the linker's record against the chain: its input digests are
    /// hop m's output digests (the `Z` the linker combines is the `Z` in
    /// σ), its key is the view's linker key, and its size the header's.
    ///
    /// # Errors
    ///
    /// [`CheckError::Chaining`].
    pub fn check_linker(&self, linker: &HopRecordV2) -> Result<(), CheckError> {
        let z: Vec<Digest> = match self.hops.last() {
            Some(r) => r.chunks.iter().map(|c| c.output).collect(),
            None => self.owner_list.chunks.to_vec(),
        };
        let inputs: Vec<Digest> = linker.chunks.iter().map(|c| c.input).collect();
        if inputs != z
            || &linker.member != self.linker.0
            || linker.key != self.linker.1
            || linker.hop.as_usize() != self.hops.len() + 1
            || linker.attempt != self.header.attempt
            || linker.count != self.header.persons
        {
            return Err(CheckError::Chaining(
                "the linker's record is not the last step of this chain",
            ));
        }
        Ok(())
    }

    /// The step keys of the register hops 1…m.
    pub fn step_keys(&self) -> Vec<WirePoint> {
        self.hops.iter().map(|r| r.key).collect()
    }
}

/// The coefficients of chunk `chunk` (`count` points): consecutive 16-byte
/// little-endian integers from `SHAKE256(frame(COEFFICIENTS, [σ,
/// le64(chunk)]))`, a zero replaced by 1, so `c_t ∈ [1, 2^128)`.
pub fn coefficients(sigma: &Digest, chunk: ChunkIndex, count: usize) -> Vec<Scalar> {
    let mut r = framed_shake_reader(
        tags::COEFFICIENTS,
        &[sigma.as_bytes(), &chunk.to_le_bytes()],
    );
    let mut buf = [0u8; 16];
    (0..count)
        .map(|_| {
            r.read(&mut buf);
            Scalar::from(u128::from_le_bytes(buf).max(1))
        })
        .collect()
}

/// `Σ c_t·P_t` over one chunk, variable-time (public data: the
/// coefficients come from σ; see the module docs of [`super`]).
///
/// # Errors
///
/// [`CheckError::Chunk`] if a point is invalid or the identity.
pub fn combine_chunk(
    sigma: &Digest,
    chunk: ChunkIndex,
    points: &[WirePoint],
) -> Result<RistrettoPoint, CheckError> {
    let decoded =
        crate::chain::decode_points(points, 0).map_err(|_| CheckError::Chunk { chunk })?;
    let c = coefficients(sigma, chunk, points.len());
    Ok(dleq::vartime_combination(&c, &decoded))
}

/// The linker's `B = Σ_c Σ_t c_t·Z_t`, accumulated chunk by chunk over the
/// `Z` it kept (variable-time: public data, see [`combine_chunk`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Combination(RistrettoPoint);

impl Combination {
    /// Adds chunk `chunk`'s `Σ c_t·Z_t`.
    ///
    /// # Errors
    ///
    /// [`CheckError::Chunk`] if a point is invalid or the identity.
    pub fn push_chunk(
        &mut self,
        sigma: &Digest,
        chunk: ChunkIndex,
        points: &[WirePoint],
    ) -> Result<(), CheckError> {
        self.0 += combine_chunk(sigma, chunk, points)?;
        Ok(())
    }

    /// `B`.
    pub fn point(&self) -> RistrettoPoint {
        self.0
    }
}

/// The owner's `A_0 = Σ c_t·y_t`, built chunk by chunk from its kept
/// output.
#[derive(Debug)]
pub struct OwnerCheckBuilder {
    header: ListHeader,
    sigma: Digest,
    next: u64,
    acc: RistrettoPoint,
}

/// The owner's signed `A_0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerCheck {
    /// `A_0`.
    pub a0: WirePoint,
    /// Ed25519 over `framed_sha3(OWNER_CHECK, [σ, A_0])`.
    pub signature: Sig,
}

fn owner_check_digest(sigma: &Digest, a0: &WirePoint) -> [u8; 32] {
    framed_sha3(tags::OWNER_CHECK, &[sigma.as_bytes(), a0.as_bytes()])
}

impl OwnerCheckBuilder {
    /// Starts `A_0` for σ (which the owner recomputes from the records with
    /// [`ChainView::sigma`]).
    pub fn new(header: ListHeader, sigma: Digest) -> Self {
        Self {
            header,
            sigma,
            next: 0,
            acc: RistrettoPoint::identity(),
        }
    }

    /// Adds the next chunk of the kept output `y`.
    ///
    /// # Errors
    ///
    /// [`CheckError::Chunk`] for a chunk out of order, of the wrong size, or
    /// with an invalid point (the owner's store was damaged).
    pub fn push_chunk(&mut self, points: &[WirePoint]) -> Result<(), CheckError> {
        let c = self.next;
        if c >= self.header.chunks() || points.len() as u64 != self.header.chunk_len(c) {
            return Err(CheckError::Chunk {
                chunk: ChunkIndex(c),
            });
        }
        self.acc += combine_chunk(&self.sigma, ChunkIndex(c), points)?;
        self.next += 1;
        Ok(())
    }

    /// The signed `A_0`, once every chunk was added.
    ///
    /// # Errors
    ///
    /// [`CheckError::Chunk`] naming the first missing chunk.
    pub fn finish(self, key: &SigningKey) -> Result<OwnerCheck, CheckError> {
        if self.next != self.header.chunks() {
            return Err(CheckError::Chunk {
                chunk: ChunkIndex(self.next),
            });
        }
        let a0 = WirePoint(self.acc.compress().to_bytes());
        let signature = Sig(key.sign(&owner_check_digest(&self.sigma, &a0)).to_bytes());
        Ok(OwnerCheck { a0, signature })
    }
}

/// One backward-pass step: `A_h` and the proof `log_G K_h = log_{A_{h-1}} A_h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassStep {
    /// `A_h`.
    pub a: WirePoint,
    /// The DLEQ proof.
    pub proof: DleqProof,
}

/// The backward pass as it travels owner → hop 1 → … → hop m → linker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pass {
    /// The list.
    pub list: ListName,
    /// The attempt.
    pub attempt: Attempt,
    /// σ.
    pub sigma: Digest,
    /// The owner's signed `A_0`.
    pub owner: OwnerCheck,
    /// Steps 1…h so far.
    pub steps: BoundedVec<PassStep, MAX_REGISTERS>,
}

/// What verifies a pass: σ (recomputed), the owner's node key and the
/// register hops' step keys.
#[derive(Debug, Clone)]
pub struct PassContext {
    /// σ.
    pub sigma: Digest,
    /// The owner's Ed25519 node key.
    pub owner_key: VerifyingKey,
    /// Step keys of hops 1…m.
    pub step_keys: Vec<WirePoint>,
}

/// The DLEQ context of pass step `h`: `framed_sha3(PASS, [σ, le32(h), K_h,
/// A_{h-1}, A_h])`.
pub fn pass_context(
    sigma: &Digest,
    hop: HopIndex,
    key: &WirePoint,
    prev: &WirePoint,
    a: &WirePoint,
) -> [u8; 32] {
    framed_sha3(
        tags::PASS,
        &[
            sigma.as_bytes(),
            &hop.to_le_bytes(),
            key.as_bytes(),
            prev.as_bytes(),
            a.as_bytes(),
        ],
    )
}

impl PassContext {
    /// Verifies a pass's σ and its owner's signature on `A_0` (not its
    /// steps): what a party that relays an owner's `A_0` checks first
    /// (the linker, for the researcher's list).
    ///
    /// # Errors
    ///
    /// [`CheckError::OwnerSignature`] for another σ or a signature that
    /// does not verify under the owner's key.
    pub fn verify_owner(&self, pass: &Pass) -> Result<(), CheckError> {
        if pass.sigma != self.sigma {
            return Err(CheckError::OwnerSignature);
        }
        self.owner_key
            .verify_strict(
                &owner_check_digest(&self.sigma, &pass.owner.a0),
                &ed25519_dalek::Signature::from_bytes(&pass.owner.signature.0),
            )
            .map_err(|_| CheckError::OwnerSignature)
    }

    /// Verifies the owner's signature and steps `1…steps.len()`; returns
    /// the last value (`A_0` if there is no step).
    fn verify_prefix(
        &self,
        a0: &WirePoint,
        owner_signature: &Sig,
        steps: &[(WirePoint, DleqProof)],
    ) -> Result<(WirePoint, RistrettoPoint), CheckError> {
        self.owner_key
            .verify_strict(
                &owner_check_digest(&self.sigma, a0),
                &ed25519_dalek::Signature::from_bytes(&owner_signature.0),
            )
            .map_err(|_| CheckError::OwnerSignature)?;
        if steps.len() > self.step_keys.len() {
            return Err(CheckError::Steps {
                expected: self.step_keys.len(),
                got: steps.len(),
            });
        }
        let mut prev_w = *a0;
        let mut prev = *a0
            .decode()
            .map_err(|_| CheckError::Proof {
                hop: HopIndex::OWNER,
            })?
            .inner();
        for (i, (a, proof)) in steps.iter().enumerate() {
            let hop = HopIndex(i as u32 + 1);
            let bad = CheckError::Proof { hop };
            let key_w = &self.step_keys[i];
            let key = key_w.decode().map_err(|_| bad.clone())?;
            let p = a.decode().map_err(|_| bad.clone())?;
            let ctx = pass_context(&self.sigma, hop, key_w, &prev_w, a);
            dleq::verify(
                &RISTRETTO_BASEPOINT_POINT,
                key.inner(),
                &prev,
                p.inner(),
                &ctx,
                proof,
            )
            .map_err(|_| bad)?;
            prev_w = *a;
            prev = *p.inner();
        }
        Ok((prev_w, prev))
    }
}

/// Hop `hop`'s step of the backward pass: verifies the owner's signature
/// and every earlier step, then computes `A_h = k_h·A_{h-1}` from the
/// verified previous value and proves it.
///
/// # Errors
///
/// [`CheckError::Sigma`] if the pass is for another σ,
/// [`CheckError::Steps`] if it does not hold exactly `hop - 1` steps, the
/// first failing check otherwise.
pub fn pass_step<R: CryptoRng + ?Sized>(
    ctx: &PassContext,
    pass: &Pass,
    hop: HopIndex,
    step: &StepKey,
    rng: &mut R,
) -> Result<PassStep, CheckError> {
    if pass.sigma != ctx.sigma {
        return Err(CheckError::Sigma);
    }
    let expected = hop.as_usize().saturating_sub(1);
    if hop == HopIndex::OWNER
        || pass.steps.len() != expected
        || ctx.step_keys.get(expected) != Some(&step.key())
    {
        return Err(CheckError::Steps {
            expected,
            got: pass.steps.len(),
        });
    }
    let steps: Vec<_> = pass.steps.iter().map(|s| (s.a, s.proof)).collect();
    let (prev_w, prev) = ctx.verify_prefix(&pass.owner.a0, &pass.owner.signature, &steps)?;
    // Constant-time multiplication by the secret step scalar.
    let a = step.share().scalar() * prev;
    let a_w = WirePoint(a.compress().to_bytes());
    let c = pass_context(&ctx.sigma, hop, &step.key(), &prev_w, &a_w);
    let proof = dleq::prove(step.share(), &RISTRETTO_BASEPOINT_POINT, &prev, &c, rng);
    Ok(PassStep { a: a_w, proof })
}

/// The linker's list check entry (a transcript body that never reaches a
/// register: see [`crate::transcript::visible_to_registers`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListCheck {
    /// The list.
    pub list: ListName,
    /// The attempt.
    pub attempt: Attempt,
    /// σ.
    pub sigma: Digest,
    /// `A_0 … A_m`.
    pub a: BoundedVec<WirePoint, { MAX_REGISTERS + 1 }>,
    /// The owner's signature on `A_0`.
    pub owner_signature: Sig,
    /// The proofs of steps 1…m.
    pub proofs: BoundedVec<DleqProof, MAX_REGISTERS>,
    /// `B = Σ c_t·Z_t`.
    pub b: WirePoint,
    /// Whether `A_m == B`.
    pub passed: bool,
}

impl ListCheck {
    /// The linker's conclusion: verifies the whole pass (`m` steps) and
    /// compares `A_m` with `B`. A failed comparison is a valid entry with
    /// `passed = false` (the list then goes again in strict mode).
    ///
    /// # Errors
    ///
    /// The first failing check of the pass itself.
    pub fn conclude(ctx: &PassContext, pass: &Pass, b: RistrettoPoint) -> Result<Self, CheckError> {
        if pass.sigma != ctx.sigma {
            return Err(CheckError::Sigma);
        }
        if pass.steps.len() != ctx.step_keys.len() {
            return Err(CheckError::Steps {
                expected: ctx.step_keys.len(),
                got: pass.steps.len(),
            });
        }
        let steps: Vec<_> = pass.steps.iter().map(|s| (s.a, s.proof)).collect();
        let (_, am) = ctx.verify_prefix(&pass.owner.a0, &pass.owner.signature, &steps)?;
        let mut a = vec![pass.owner.a0];
        a.extend(pass.steps.iter().map(|s| s.a));
        Ok(Self {
            list: pass.list.clone(),
            attempt: pass.attempt,
            sigma: pass.sigma,
            a: BoundedVec::new(a).map_err(|_| CheckError::Steps {
                expected: MAX_REGISTERS,
                got: pass.steps.len(),
            })?,
            owner_signature: pass.owner.signature,
            proofs: BoundedVec::new(pass.steps.iter().map(|s| s.proof).collect()).map_err(
                |_| CheckError::Steps {
                    expected: MAX_REGISTERS,
                    got: pass.steps.len(),
                },
            )?,
            b: WirePoint(b.compress().to_bytes()),
            passed: am == b,
        })
    }
}

/// Verifies a list check entry (auditor): σ as recomputed, the owner's
/// signature, every step's proof, and that `passed` is `A_m == B`.
///
/// # Errors
///
/// The first failing check; [`CheckError::Failed`] if `passed` disagrees
/// with the values.
pub fn verify_list_check(ctx: &PassContext, check: &ListCheck) -> Result<(), CheckError> {
    if check.sigma != ctx.sigma {
        return Err(CheckError::Sigma);
    }
    if check.a.len() != check.proofs.len() + 1 || check.proofs.len() != ctx.step_keys.len() {
        return Err(CheckError::Steps {
            expected: ctx.step_keys.len(),
            got: check.proofs.len(),
        });
    }
    let steps: Vec<_> = check.a[1..]
        .iter()
        .copied()
        .zip(check.proofs.iter().copied())
        .collect();
    let (am, _) = ctx.verify_prefix(&check.a[0], &check.owner_signature, &steps)?;
    if (am == check.b) != check.passed {
        return Err(CheckError::Failed);
    }
    Ok(())
}
