//! The one-step conversion between two domains (PROTOCOL.md §10).
//!
//! A key holder `i` of register domain R that is also a key holder of
//! project p turns its factor of `Ψ_R(x) = k_R·I(x)` into its factor of
//! `P_p(x)` in one multiplication by `k_{i,p}·k_{i,R}⁻¹`. Nobody can check
//! that scalar against the committed keys `K_{i,R}` and `K_{i,p}` directly,
//! so the step carries a **binding proof**:
//!
//! ```text
//!  K'_i = (k_{i,p}·k_{i,R}⁻¹)·G          the step's public key
//!  binding: log_G K_{i,R} = log_{K'_i} K_{i,p}     (witness k_{i,R}: k_{i,R}·K'_i = K_{i,p})
//!  chunk:   Out_t = (k_{i,p}·k_{i,R}⁻¹)·In_t, batch proof against K'_i (as a v1 hop)
//! ```
//!
//! The linker's step is `k_{L,p}·k_{L,R}⁻¹·β⁻¹`: the binding proof for
//! `K'_L`, and the v2 step-key proof `log_G K'_L = log_D C` with the β
//! check (`β⁻¹·G == D`) before anything is combined.
//!
//! A **re-share** is the same step from a domain to itself: a key holder's
//! old share `k_i` is replaced by `k'_i` and the holder's table converted by
//! `k'_i·k_i⁻¹`, bound by `log_G K_i = log_{K'} K'_i`.
//!
//! Every multiplication by a share is constant-time (`chain`); proofs and
//! their verification touch public values only.

use curve25519_dalek::{constants::RISTRETTO_BASEPOINT_POINT, RistrettoPoint, Scalar};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::{
    chain::{self, ChainError},
    dleq::{self, ChunkProof, DleqProof},
    group::WirePoint,
    hash::framed_sha3,
    share::{Domain, Share},
    types::{ChunkIndex, Digest, HopIndex, ListName, Name, Position},
    v2::{
        chunk_digest,
        hop::{step_key_context, verify_step_key},
        StepKey, StepKeyProof,
    },
};

/// Domain-separation tags of conversions.
pub mod tags {
    /// DLEQ context of a binding proof.
    pub const BINDING: &[u8] = b"KOBLING-V2-CONVERSION-BINDING";
    /// DLEQ context (statement digest) of a conversion chunk.
    pub const CHUNK: &[u8] = b"KOBLING-V2-CONVERSION-CHUNK";
    /// The batch coefficients of a conversion chunk.
    pub const COEFFICIENTS: &[u8] = b"KOBLING-V2-CONVERSION-COEFFICIENTS";
}

/// A conversion cannot be built or does not verify. Proof failures are
/// deliberately not told apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConversionError {
    /// The binding proof names keys other than the committed ones, or does
    /// not verify.
    #[error("the conversion key is not bound to the committed keys")]
    Binding,
    /// The linker's blinding proof does not verify, or names another `D`.
    #[error("the blinding proof of the conversion does not verify")]
    BlindingProof,
    /// The opened blinding is not the announced one (`β⁻¹·G ≠ D`).
    #[error("the blinding does not match the announced commitment")]
    BlindingMismatch,
    /// `D` is not a valid point.
    #[error("bad blinding commitment")]
    BadKey,
    /// A point of a chunk is invalid or the identity.
    #[error(transparent)]
    Point(#[from] ChainError),
    /// The chunk's batch proof does not verify against the step key.
    #[error("chunk {chunk}: the conversion proof does not verify")]
    ChunkProof {
        /// The chunk.
        chunk: ChunkIndex,
    },
}

/// The binding proof of a conversion key `K' = (k_to·k_from⁻¹)·G`:
/// `log_G K_from = log_{K'} K_to` (160 bytes in postcard).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingProof {
    /// `K_from`, the committed key in the domain converted from.
    pub from_key: WirePoint,
    /// `K_to`, the committed key in the domain converted to.
    pub to_key: WirePoint,
    /// `K'`, the step's combined key.
    pub combined: WirePoint,
    /// The DLEQ proof.
    pub proof: DleqProof,
}

impl BindingProof {
    /// Checks the proof for `ctx` against the keys the two domains'
    /// transcripts committed: the combined key `K'` it binds.
    ///
    /// # Errors
    ///
    /// [`ConversionError::Binding`] if a key differs from its commitment,
    /// does not decode, or the proof does not verify.
    pub(crate) fn verify(
        &self,
        ctx: ConversionContext<'_>,
        committed_from: &WirePoint,
        committed_to: &WirePoint,
    ) -> Result<WirePoint, ConversionError> {
        if self.from_key != *committed_from || self.to_key != *committed_to {
            return Err(ConversionError::Binding);
        }
        let from = self
            .from_key
            .decode()
            .map_err(|_| ConversionError::Binding)?;
        let to = self.to_key.decode().map_err(|_| ConversionError::Binding)?;
        let k_prime = self
            .combined
            .decode()
            .map_err(|_| ConversionError::Binding)?;
        let digest = ctx.digest(&self.from_key, &self.to_key, &self.combined);
        dleq::verify(
            &RISTRETTO_BASEPOINT_POINT,
            from.inner(),
            k_prime.inner(),
            to.inner(),
            &digest,
            &self.proof,
        )
        .map_err(|_| ConversionError::Binding)?;
        Ok(self.combined)
    }
}

/// Who converts, from which domain to which. The binding proof's context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConversionContext<'a> {
    /// The domain converted from (a register domain).
    pub from: &'a Domain,
    /// The domain converted to (a project; the same register domain for a
    /// re-share).
    pub to: &'a Domain,
    /// The member whose shares these are (for a re-share: the member that
    /// held the old share).
    pub member: &'a Name,
}

impl ConversionContext<'_> {
    /// `framed_sha3(BINDING, [from, to, member, K_from, K_to, K'])`.
    pub fn digest(
        &self,
        from_key: &WirePoint,
        to_key: &WirePoint,
        combined: &WirePoint,
    ) -> [u8; 32] {
        framed_sha3(
            tags::BINDING,
            &[
                &self.from.to_bytes(),
                &self.to.to_bytes(),
                self.member.as_bytes(),
                from_key.as_bytes(),
                to_key.as_bytes(),
                combined.as_bytes(),
            ],
        )
    }
}

/// A key holder's conversion scalar `k_to·k_from⁻¹` with its binding
/// proof. Secret: no `Clone`, no `Debug` of the scalar, zeroized on drop.
pub struct ConversionKey {
    share: Share,
    binding: BindingProof,
}

impl core::fmt::Debug for ConversionKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ConversionKey")
            .field("combined", &self.binding.combined)
            .finish_non_exhaustive()
    }
}

impl ConversionKey {
    /// Builds `k_to·k_from⁻¹` and proves `log_G K_from = log_{K'} K_to`
    /// (witness `k_from`).
    pub fn new<R: CryptoRng + ?Sized>(
        ctx: ConversionContext<'_>,
        from: &Share,
        to: &Share,
        rng: &mut R,
    ) -> Self {
        let share = to.product(&from.invert());
        let combined = share.commitment();
        let (from_key, to_key) = (from.commitment(), to.commitment());
        let k_prime = RistrettoPoint::mul_base(share.scalar());
        let digest = ctx.digest(&from_key, &to_key, &combined);
        let proof = dleq::prove(from, &RISTRETTO_BASEPOINT_POINT, &k_prime, &digest, rng);
        Self {
            share,
            binding: BindingProof {
                from_key,
                to_key,
                combined,
                proof,
            },
        }
    }

    /// `K'`, the step's public key.
    pub fn key(&self) -> WirePoint {
        self.binding.combined
    }

    /// The binding proof, for the transcript and the next hop.
    pub fn binding(&self) -> &BindingProof {
        &self.binding
    }

    /// A key holder's step: multiply by `k_to·k_from⁻¹`, public key `K'`.
    pub fn into_step(self) -> ConversionStep {
        ConversionStep {
            key: self.binding.combined,
            share: self.share,
            binding: self.binding,
            blinding: None,
        }
    }

    /// The linker's step `k_to·k_from⁻¹·β⁻¹` over `list` of the target
    /// domain, with the blinding proof `log_G K' = log_D C`.
    ///
    /// # Errors
    ///
    /// [`ConversionError::BadKey`] if `D` is not a point,
    /// [`ConversionError::BlindingMismatch`] if `β⁻¹·G ≠ D`: a blinding it
    /// cannot tie to the owner's announcement is never combined.
    pub fn into_linker_step<R: CryptoRng + ?Sized>(
        self,
        target: &Domain,
        list: &ListName,
        member: &Name,
        blinding: &Share,
        blinding_commitment: &WirePoint,
        rng: &mut R,
    ) -> Result<ConversionStep, ConversionError> {
        let d = blinding_commitment
            .decode()
            .map_err(|_| ConversionError::BadKey)?;
        let unblind = blinding.invert();
        if unblind.commitment() != *blinding_commitment {
            return Err(ConversionError::BlindingMismatch);
        }
        let combined = self.share.product(&unblind);
        let c = combined.commitment();
        let k_prime = self.binding.combined;
        let digest = step_key_context(target, list, member, &k_prime, blinding_commitment, &c);
        let proof = dleq::prove(
            &self.share,
            &RISTRETTO_BASEPOINT_POINT,
            d.inner(),
            &digest,
            rng,
        );
        Ok(ConversionStep {
            share: combined,
            key: c,
            binding: self.binding,
            blinding: Some(StepKeyProof {
                share_key: k_prime,
                blinding: *blinding_commitment,
                combined: c,
                proof,
            }),
        })
    }

    /// The key holder's step as a chain v2 step key (a register hop), with
    /// the binding proof to publish beside it.
    pub fn into_v2_step(self) -> (StepKey, BindingProof) {
        (StepKey::plain(self.share), self.binding)
    }

    /// The linker's step as a chain v2 step key: `StepKey::combined` over
    /// `k_to·k_from⁻¹` (its step-key proof is then against `K'`), with the
    /// binding proof to publish beside it.
    ///
    /// # Errors
    ///
    /// As [`StepKey::combined`]: a bad `D`, or a β that is not the
    /// announced one.
    pub fn into_v2_linker_step<R: CryptoRng + ?Sized>(
        self,
        target: &Domain,
        list: &ListName,
        member: &Name,
        blinding: &Share,
        blinding_commitment: &WirePoint,
        rng: &mut R,
    ) -> Result<(StepKey, BindingProof), crate::v2::HopError> {
        let step = StepKey::combined(
            target,
            list,
            member,
            &self.share,
            blinding,
            blinding_commitment,
            rng,
        )?;
        Ok((step, self.binding))
    }
}

/// One conversion step, ready to apply to chunks: a key holder's
/// (`k_to·k_from⁻¹`) or the linker's (`k_to·k_from⁻¹·β⁻¹`).
pub struct ConversionStep {
    share: Share,
    key: WirePoint,
    binding: BindingProof,
    blinding: Option<StepKeyProof>,
}

impl core::fmt::Debug for ConversionStep {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ConversionStep")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// What a conversion step publishes about its key: the binding proof, and
/// for the linker the blinding proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepProofs {
    /// `log_G K_from = log_{K'} K_to`.
    pub binding: BindingProof,
    /// The linker's `log_G K' = log_D C`.
    pub blinding: Option<StepKeyProof>,
}

/// Where a chunk is: its list, step and index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkAt<'a> {
    /// The target domain.
    pub target: &'a Domain,
    /// The list.
    pub list: &'a ListName,
    /// The step's index in the list's chain.
    pub step: HopIndex,
    /// The chunk index.
    pub chunk: ChunkIndex,
    /// The list position of the chunk's first point (for errors).
    pub first_position: Position,
}

/// What a conversion chunk proof is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkStatement<'a> {
    /// The target domain (the project; the register domain for a re-share).
    pub target: &'a Domain,
    /// The list.
    pub list: &'a ListName,
    /// The step's index in the list's chain.
    pub step: HopIndex,
    /// The chunk index.
    pub chunk: ChunkIndex,
    /// The step's public key (`K'`, or `C` for the linker).
    pub key: WirePoint,
    /// `chunk_digest` of the input points.
    pub input: Digest,
    /// `chunk_digest` of the output points.
    pub output: Digest,
    /// Points in the chunk.
    pub count: u64,
}

impl ChunkStatement<'_> {
    /// `framed_sha3(CHUNK, [target, list, le32(step), le64(chunk), key,
    /// input, output, le64(count)])`.
    pub fn digest(&self) -> [u8; 32] {
        framed_sha3(
            tags::CHUNK,
            &[
                &self.target.to_bytes(),
                self.list.as_bytes(),
                &self.step.to_le_bytes(),
                &self.chunk.to_le_bytes(),
                self.key.as_bytes(),
                self.input.as_bytes(),
                self.output.as_bytes(),
                &self.count.to_le_bytes(),
            ],
        )
    }

    /// `count` 128-bit coefficients from `SHAKE256(frame(COEFFICIENTS,
    /// digest))`, consecutive 16-byte little-endian integers.
    pub fn coefficients(&self) -> Vec<Scalar> {
        crate::dleq::batch_coefficients(tags::COEFFICIENTS, &self.digest(), self.count)
    }
}

impl ConversionStep {
    /// The step's public key: `K'`, or `C = k'·D` for the linker.
    pub fn key(&self) -> WirePoint {
        self.key
    }

    /// The proofs to publish with the step.
    pub fn proofs(&self) -> StepProofs {
        StepProofs {
            binding: self.binding,
            blinding: self.blinding.clone(),
        }
    }

    /// Applies the step to one chunk and proves it: decode every point
    /// (invalid and identity refused), multiply in constant time, and the
    /// batch proof `log_G key = log_A B` with `A = Σ c_t·In_t`,
    /// `B = Σ c_t·Out_t`, coefficients from the statement.
    ///
    /// # Errors
    ///
    /// [`ConversionError::Point`] naming the first refused position.
    pub fn apply_chunk<R: CryptoRng + ?Sized>(
        &self,
        at: ChunkAt<'_>,
        input: &[WirePoint],
        rng: &mut R,
    ) -> Result<(Vec<WirePoint>, ChunkProof), ConversionError> {
        let decoded = chain::decode_points(input, at.first_position.0)?;
        let output = chain::multiply_decoded(&self.share, &decoded);
        let st = ChunkStatement {
            target: at.target,
            list: at.list,
            step: at.step,
            chunk: at.chunk,
            key: self.key,
            input: chunk_digest(input),
            output: chunk_digest(&output),
            count: input.len() as u64,
        };
        let a = dleq::vartime_combination(&st.coefficients(), &decoded);
        let b = self.share.scalar() * a;
        let proof = dleq::prove(
            &self.share,
            &RISTRETTO_BASEPOINT_POINT,
            &a,
            &st.digest(),
            rng,
        );
        Ok((
            output,
            ChunkProof {
                a: WirePoint(a.compress().to_bytes()),
                b: WirePoint(b.compress().to_bytes()),
                proof,
            },
        ))
    }
}

/// Verifies a conversion step's key before any chunk of it is accepted
/// (what the next hop, the linker and the auditor call): the binding proof
/// must name exactly the committed `K_from` and `K_to` of `ctx.member`,
/// and, for the linker, the blinding proof must build on `K'` and the
/// announced `D`. Returns the step's public key (`K'`, or `C`).
///
/// # Errors
///
/// [`ConversionError::Binding`] or [`ConversionError::BlindingProof`].
pub fn verify_step(
    ctx: ConversionContext<'_>,
    committed_from: &WirePoint,
    committed_to: &WirePoint,
    list: &ListName,
    announced_blinding: Option<&WirePoint>,
    proofs: &StepProofs,
) -> Result<WirePoint, ConversionError> {
    let combined = proofs.binding.verify(ctx, committed_from, committed_to)?;
    match (announced_blinding, &proofs.blinding) {
        (None, None) => Ok(combined),
        (Some(d), Some(p)) => {
            if p.share_key != combined || p.blinding != *d {
                return Err(ConversionError::BlindingProof);
            }
            verify_step_key(ctx.to, list, ctx.member, p)
                .map_err(|_| ConversionError::BlindingProof)?;
            Ok(p.combined)
        }
        _ => Err(ConversionError::BlindingProof),
    }
}

/// Verifies one conversion chunk against a step key that [`verify_step`]
/// returned: recomputes `A` and `B` from the points and checks the proof.
///
/// # Errors
///
/// [`ConversionError::ChunkProof`] (counts, `A`/`B` or the DLEQ), or
/// [`ConversionError::Point`] for an invalid point.
pub fn verify_chunk(
    statement: &ChunkStatement<'_>,
    input: &[WirePoint],
    output: &[WirePoint],
    proof: &ChunkProof,
) -> Result<(), ConversionError> {
    let chunk = statement.chunk;
    let bad = || ConversionError::ChunkProof { chunk };
    if input.len() as u64 != statement.count
        || output.len() as u64 != statement.count
        || chunk_digest(input) != statement.input
        || chunk_digest(output) != statement.output
    {
        return Err(bad());
    }
    let ins = chain::decode_points(input, 0)?;
    let outs = chain::decode_points(output, 0)?;
    let c = statement.coefficients();
    let a = dleq::vartime_combination(&c, &ins);
    let b = dleq::vartime_combination(&c, &outs);
    if a.compress().to_bytes() != proof.a.0 || b.compress().to_bytes() != proof.b.0 {
        return Err(bad());
    }
    let key = statement.key.decode().map_err(|_| bad())?;
    dleq::verify(
        &RISTRETTO_BASEPOINT_POINT,
        key.inner(),
        &a,
        &b,
        &statement.digest(),
        &proof.proof,
    )
    .map_err(|_| bad())
}
