//! Innsyn at a pseudonymous holder (PROTOCOL.md §10a, issue 16 item 2):
//! the portal's one-person list, run through the domain's key holders so
//! that the holder obtains `Ψ_R(x) = k_R·I(x)` and never the fnr.
//!
//! ```text
//!  portal   BlindedPerson::new: y = β₁β₂·I(x), [D₁, D₂] = [β₁⁻¹·G, β₂⁻¹·G],
//!           β₁ sealed to the holder, β₂ to hop 1 (the first key holder)
//!     ──Innsyn(Blinded)──▶ holder H ──InnsynSteps{call, []}──▶ hop 1
//!  hop 1    c₁ = k₁·β₂⁻¹ (log_G K₁ = log_{D₂} C₁), y₁ = c₁·y       ──▶ hop 2
//!  hop h    y_h = k_h·y_{h-1} (log_G K_h = log_{y_{h-1}} y_h)     ──▶ … ──▶ linker (last)
//!  holder   verify_steps; β₁ (β₁⁻¹·G = D₁); Ψ_R(x) = β₁⁻¹·y_m; the rows sealed to the device
//! ```
//!
//! Every hop checks the portal's signed call and every earlier step
//! against the key holders' committed keys before it adds its own, so a
//! holder cannot run a value of its own choosing through the key holders
//! (that would be a dictionary oracle over fnr): the chain starts at the
//! point the portal signed. The portal never sees an output (they travel
//! between members only), and no member but the holder can remove `β₁`.
//! Each proof's context binds the device's request and the hop, so a step
//! made for one request verifies for no other.

use curve25519_dalek::{constants::RISTRETTO_BASEPOINT_POINT, RistrettoPoint};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::InnsynRequest;
use crate::{
    bounded::BoundedVec,
    dleq::{self, DleqProof},
    group::{Point, WirePoint},
    hash::framed_sha3,
    ident::Identifier,
    seal::{hpke_open, hpke_seal, HpkePublicKey, HpkeSecretKey, WrappedKey},
    share::Share,
    types::{Digest, HopIndex, Name},
    v2::split::SplitBlinding,
};

/// Domain-separation tags of the one-person list.
pub mod tags {
    /// HPKE `info` of `β₁`, sealed to the holder.
    pub const BLINDING_1: &[u8] = b"KOBLING-INNSYN-BLINDING-1";
    /// HPKE `info` of `β₂`, sealed to hop 1.
    pub const BLINDING_2: &[u8] = b"KOBLING-INNSYN-BLINDING-2";
    /// The context of hop 1's combined-key proof.
    pub const KEY: &[u8] = b"KOBLING-INNSYN-STEP-KEY";
    /// The context of a step proof.
    pub const STEP: &[u8] = b"KOBLING-INNSYN-STEP";
}

/// The most key holders a domain's one-person list runs through.
pub const MAX_STEPS: usize = 64;

/// The portal's one-person list: the blinded identity point and what the
/// holder and hop 1 need to remove the blinding's two parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlindedPerson {
    /// The register domain asked.
    pub domain: Name,
    /// `y = β₁·β₂·I(x)`.
    pub point: WirePoint,
    /// `[D₁, D₂] = [β₁⁻¹·G, β₂⁻¹·G]`.
    pub blinding: [WirePoint; 2],
    /// `β₁`, HPKE-sealed to the holder under
    /// `info = frame(["KOBLING-INNSYN-BLINDING-1", request digest, domain])`.
    pub first: WrappedKey,
    /// `β₂`, HPKE-sealed to hop 1 under
    /// `info = frame(["KOBLING-INNSYN-BLINDING-2", request digest, domain])`.
    pub second: WrappedKey,
}

/// Hop 1's combined key `C₁ = (k₁·β₂⁻¹)·G` with the proof
/// `log_G K₁ = log_{D₂} C₁`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CombinedKey {
    /// `C₁`.
    pub key: WirePoint,
    /// The proof, context `framed_sha3("KOBLING-INNSYN-STEP-KEY",
    /// [request digest, member, K₁, D₂, C₁])`.
    pub proof: DleqProof,
}

/// One key holder's step of the one-person list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InnsynStep {
    /// The key holder.
    pub member: Name,
    /// Hop 1's combined key; `None` at every later hop.
    pub key: Option<CombinedKey>,
    /// `y_h`.
    pub output: WirePoint,
    /// `log_G P_h = log_{y_{h-1}} y_h` with `P_h = C₁` at hop 1 and the
    /// committed `K_h` after it; context `framed_sha3("KOBLING-INNSYN-STEP",
    /// [request digest, le64(h), member])` (h from 1).
    pub proof: DleqProof,
}

/// The one-person list on its way: the portal's signed call and the steps
/// so far. It travels holder → hop 1 → … → last key holder → holder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InnsynSteps {
    /// The portal's signed call (action `Blinded`).
    pub call: super::wire::SignedInnsyn,
    /// The steps so far, in chain order.
    pub steps: BoundedVec<InnsynStep, MAX_STEPS>,
}

/// A one-person list or a step of it is not valid.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlindedError {
    /// A point does not decode or is the identity.
    #[error("the one-person list carries an invalid point")]
    Point,
    /// A sealed blinding part does not open here, or does not match its
    /// commitment.
    #[error("the blinding part does not open here or does not match its commitment")]
    Blinding,
    /// More steps than key holders, or a step by the wrong member.
    #[error("step {hop} is not by the key holder {expected} of the domain's chain")]
    Member {
        /// The hop (from 1).
        hop: HopIndex,
        /// The key holder the chain has there.
        expected: Name,
    },
    /// A key holder has no committed key.
    #[error("key holder {0} has no committed key in the domain transcript")]
    NoKey(Name),
    /// A step's proof does not verify.
    #[error("the proof of step {hop} (by {member}) does not verify")]
    Proof {
        /// The hop (from 1).
        hop: HopIndex,
        /// Its member.
        member: Name,
    },
    /// The list needs more steps than a domain has key holders.
    #[error("too many steps")]
    TooMany,
}

fn blinding_info(tag: &[u8], request: &InnsynRequest, domain: &Name) -> Vec<u8> {
    crate::hash::frame(&[tag, &request.digest().0, domain.as_bytes()])
}

/// The context of hop 1's combined-key proof:
/// `framed_sha3("KOBLING-INNSYN-STEP-KEY", [request digest, member, K₁, D₂, C₁])`.
pub fn key_context(
    request: &Digest,
    member: &Name,
    share_key: &WirePoint,
    d2: &WirePoint,
    combined: &WirePoint,
) -> [u8; 32] {
    framed_sha3(
        tags::KEY,
        &[
            &request.0,
            member.as_bytes(),
            share_key.as_bytes(),
            d2.as_bytes(),
            combined.as_bytes(),
        ],
    )
}

/// The context of step `hop` (from 1):
/// `framed_sha3("KOBLING-INNSYN-STEP", [request digest, le64(hop), member])`.
pub fn step_context(request: &Digest, hop: HopIndex, member: &Name) -> [u8; 32] {
    framed_sha3(
        tags::STEP,
        &[
            &request.0,
            &u64::from(hop.0).to_le_bytes(),
            member.as_bytes(),
        ],
    )
}

fn decode(p: &WirePoint) -> Result<RistrettoPoint, BlindedError> {
    p.decode()
        .map(RistrettoPoint::from)
        .map_err(|_| BlindedError::Point)
}

impl BlindedPerson {
    /// The portal's side: blinds the person's identity point with a fresh
    /// split blinding, sealing `β₁` to the holder and `β₂` to hop 1. The
    /// blinding is dropped (and zeroized) here: the portal keeps nothing
    /// that could remove it.
    pub fn new<R: CryptoRng + ?Sized>(
        request: &InnsynRequest,
        domain: Name,
        id: &Identifier,
        holder: &HpkePublicKey,
        hop1: &HpkePublicKey,
        rng: &mut R,
    ) -> Self {
        let split = SplitBlinding::random(rng);
        let point = Point::new(split.owner_step().scalar() * id.identity_point())
            .map(|p| p.encode())
            // β₁β₂ ≠ 0 and I(x) is not the identity (hash to group), so the
            // product never is; an identity here would be refused by
            // every hop, never accepted.
            .unwrap_or(WirePoint([0; 32]));
        let first = hpke_seal(
            holder,
            &blinding_info(tags::BLINDING_1, request, &domain),
            &split.first().to_secret_bytes(),
            rng,
        );
        let second = hpke_seal(
            hop1,
            &blinding_info(tags::BLINDING_2, request, &domain),
            &split.second().to_secret_bytes(),
            rng,
        );
        Self {
            blinding: split.commitments(),
            domain,
            point,
            first,
            second,
        }
    }

    fn open_part(
        &self,
        sk: &HpkeSecretKey,
        request: &InnsynRequest,
        tag: &[u8],
        wrapped: &WrappedKey,
        commitment: &WirePoint,
    ) -> Result<Share, BlindedError> {
        let bytes = hpke_open(sk, &blinding_info(tag, request, &self.domain), wrapped)
            .map_err(|_| BlindedError::Blinding)?;
        let share = Share::from_secret_bytes(&bytes).map_err(|_| BlindedError::Blinding)?;
        if share.invert().commitment() != *commitment {
            return Err(BlindedError::Blinding);
        }
        Ok(share)
    }

    /// Hop 1: takes the key holder's share `k₁` and the portal's `β₂` and
    /// makes the first step.
    ///
    /// # Errors
    ///
    /// [`BlindedError::Blinding`] if `β₂` does not open with `sk` or does
    /// not match `D₂`; [`BlindedError::Point`] for an invalid `y`.
    pub fn first_step<R: CryptoRng + ?Sized>(
        &self,
        request: &InnsynRequest,
        member: &Name,
        share: &Share,
        sk: &HpkeSecretKey,
        rng: &mut R,
    ) -> Result<InnsynStep, BlindedError> {
        let beta2 = self.open_part(
            sk,
            request,
            tags::BLINDING_2,
            &self.second,
            &self.blinding[1],
        )?;
        let d2 = decode(&self.blinding[1])?;
        let combined = share.product(&beta2.invert());
        let c = combined.commitment();
        let digest = request.digest();
        let ctx = key_context(&digest, member, &share.commitment(), &self.blinding[1], &c);
        let key_proof = dleq::prove(share, &RISTRETTO_BASEPOINT_POINT, &d2, &ctx, rng);
        let mut step = step_with(&combined, &digest, HopIndex(1), member, &self.point, rng)?;
        step.key = Some(CombinedKey {
            key: c,
            proof: key_proof,
        });
        Ok(step)
    }

    /// A later hop `hop` (from 2) with share `k_h` on `input` (`y_{h-1}`).
    ///
    /// # Errors
    ///
    /// [`BlindedError::Point`] for an invalid input.
    pub fn later_step<R: CryptoRng + ?Sized>(
        request: &InnsynRequest,
        hop: HopIndex,
        member: &Name,
        share: &Share,
        input: &WirePoint,
        rng: &mut R,
    ) -> Result<InnsynStep, BlindedError> {
        step_with(share, &request.digest(), hop, member, input, rng)
    }

    /// The holder: checks `β₁` against `D₁` and removes it from the last
    /// step's output, giving `Ψ_R(x)`.
    ///
    /// # Errors
    ///
    /// [`BlindedError::Blinding`] if `β₁` does not open with `sk` or does
    /// not match `D₁`; [`BlindedError::Point`] for an invalid output.
    pub fn pseudonym(
        &self,
        request: &InnsynRequest,
        sk: &HpkeSecretKey,
        last: &WirePoint,
    ) -> Result<WirePoint, BlindedError> {
        let beta1 = self.open_part(
            sk,
            request,
            tags::BLINDING_1,
            &self.first,
            &self.blinding[0],
        )?;
        let y = decode(last)?;
        Point::new(beta1.invert().scalar() * y)
            .map(|p| p.encode())
            .map_err(|_| BlindedError::Point)
    }
}

fn step_with<R: CryptoRng + ?Sized>(
    key: &Share,
    request: &Digest,
    hop: HopIndex,
    member: &Name,
    input: &WirePoint,
    rng: &mut R,
) -> Result<InnsynStep, BlindedError> {
    let y = decode(input)?;
    let out = Point::new(key.scalar() * y).map_err(|_| BlindedError::Point)?;
    let proof = dleq::prove(
        key,
        &RISTRETTO_BASEPOINT_POINT,
        &y,
        &step_context(request, hop, member),
        rng,
    );
    Ok(InnsynStep {
        member: member.clone(),
        key: None,
        output: out.encode(),
        proof,
    })
}

/// Checks `steps` (a prefix of the chain, possibly all of it) against the
/// key holders' committed keys in chain order (`keys`, from the domain
/// transcript) and returns the last output (`y` itself for no step).
///
/// # Errors
///
/// A [`BlindedError`] naming the first step that is out of place or does
/// not verify.
pub fn verify_steps(
    request: &InnsynRequest,
    person: &BlindedPerson,
    keys: &[(Name, Option<WirePoint>)],
    steps: &[InnsynStep],
) -> Result<WirePoint, BlindedError> {
    if steps.len() > keys.len() {
        return Err(BlindedError::TooMany);
    }
    let digest = request.digest();
    let mut input = person.point;
    decode(&input)?;
    for (i, (step, (member, committed))) in steps.iter().zip(keys).enumerate() {
        let hop = HopIndex::after(i);
        if step.member != *member {
            return Err(BlindedError::Member {
                hop,
                expected: member.clone(),
            });
        }
        let committed = committed.ok_or_else(|| BlindedError::NoKey(member.clone()))?;
        let bad = || BlindedError::Proof {
            hop,
            member: member.clone(),
        };
        let public = match (hop, &step.key) {
            (HopIndex(1), Some(c)) => {
                let ctx = key_context(&digest, member, &committed, &person.blinding[1], &c.key);
                dleq::verify(
                    &RISTRETTO_BASEPOINT_POINT,
                    &decode(&committed)?,
                    &decode(&person.blinding[1])?,
                    &decode(&c.key)?,
                    &ctx,
                    &c.proof,
                )
                .map_err(|_| bad())?;
                c.key
            }
            (HopIndex(1), None) => return Err(bad()),
            (_, Some(_)) => return Err(bad()),
            (_, None) => committed,
        };
        dleq::verify(
            &RISTRETTO_BASEPOINT_POINT,
            &decode(&public)?,
            &decode(&input)?,
            &decode(&step.output)?,
            &step_context(&digest, hop, member),
            &step.proof,
        )
        .map_err(|_| bad())?;
        input = step.output;
    }
    Ok(input)
}

#[cfg(test)]
mod tests;
