//! Strict mode (PROTOCOL.md §6a step 6): after a failed check the list goes
//! again, unchanged, with per-chunk register proofs, and every chunk
//! carries the signed statements of all earlier steps so that each hop's
//! input is tied to its predecessor's signed output.
//!
//! ```text
//!  ChunkMsg(hop h-1) { statement_{h-1}, earlier = [statement_0 … statement_{h-2}],
//!                      input = In_{h-1}, points = Out_{h-1}, proof_{h-1} }
//!  hop h: every earlier signature, the digest chain 0 → … → h-1,
//!         SHA3(input) == statement_{h-1}.input, then
//!         proof_{h-1}: A = Σ c_t·In_t, B = Σ c_t·Out_t, log_G K_{h-1} = log_A B
//!  any failure names hop h-1 ([`HopError::StrictProof`])
//! ```
//!
//! The proof is v1's batched Chaum–Pedersen proof, with its context and
//! coefficients under v2 tags and bound to the v2 chunk statement.

use curve25519_dalek::{constants::RISTRETTO_BASEPOINT_POINT, RistrettoPoint, Scalar};
use ed25519_dalek::VerifyingKey;
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use sha3::digest::XofReader;

use super::{
    hop::HopError,
    statement::{chunk_digest, ChunkMsg, ChunkStatement, ListHeader},
    tags,
};
use crate::{
    chain,
    dleq::{self, ChunkProof},
    group::WirePoint,
    hash::{framed_sha3, framed_shake_reader},
    share::Share,
    types::{Attempt, Digest, HopIndex, ListName},
};

/// The linker's word that a list goes again (a transcript body, visible
/// to registers): its attempt `attempt - 1` failed its list check, and
/// attempt `attempt` runs in strict mode. It carries no check value: the
/// failed [`ListCheck`](super::ListCheck) itself is withheld from
/// registers and owners and recorded later (with the list's other
/// checks, before the link summary or the closure), so that the replica
/// a register holds (a prefix of the transcript) reaches the strict
/// attempt's records, which it needs for σ. The auditor requires that
/// failed check before the link summary (`docs/protocol.md`, "Strict
/// mode in the node").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRetry {
    /// The list.
    pub list: ListName,
    /// The attempt that opens (1: the strict attempt).
    pub attempt: Attempt,
}

/// The highest attempt of a list: attempt 0, then one strict attempt.
pub const LAST_ATTEMPT: Attempt = Attempt(1);

/// The context of a strict chunk proof: `framed_sha3(STRICT_CHUNK,
/// [statement digest, K])`.
pub fn strict_context(
    header: &ListHeader,
    statement: &ChunkStatement,
    key: &WirePoint,
) -> [u8; 32] {
    framed_sha3(
        tags::STRICT_CHUNK,
        &[statement.digest(header).as_bytes(), key.as_bytes()],
    )
}

fn strict_coefficients(ctx: &[u8; 32], n: usize) -> Vec<Scalar> {
    let mut r = framed_shake_reader(tags::STRICT_COEFFICIENTS, &[ctx]);
    let mut buf = [0u8; 16];
    (0..n)
        .map(|_| {
            r.read(&mut buf);
            Scalar::from(u128::from_le_bytes(buf).max(1))
        })
        .collect()
}

/// Proves a strict chunk step `Out_t = x·In_t` under `statement` (public
/// for attack tests that act as a hop).
pub fn prove<R: CryptoRng + ?Sized>(
    header: &ListHeader,
    statement: &ChunkStatement,
    x: &Share,
    key: &WirePoint,
    input: &[RistrettoPoint],
    rng: &mut R,
) -> ChunkProof {
    let ctx = strict_context(header, statement, key);
    let c = strict_coefficients(&ctx, input.len());
    let a = dleq::vartime_combination(&c, input);
    let b = x.scalar() * a;
    let proof = dleq::prove(x, &RISTRETTO_BASEPOINT_POINT, &a, &ctx, rng);
    ChunkProof {
        a: WirePoint(a.compress().to_bytes()),
        b: WirePoint(b.compress().to_bytes()),
        proof,
    }
}

/// Checks what a strict chunk carries; any failure names the sender.
pub(crate) fn check_incoming(
    header: &ListHeader,
    senders: &[VerifyingKey],
    step_keys: &[WirePoint],
    msg: &ChunkMsg,
) -> Result<(), HopError> {
    let st = &msg.statement.statement;
    let (c, sender) = (st.chunk, st.hop);
    let named = HopError::StrictProof {
        chunk: c,
        hop: sender,
    };
    if msg.earlier.len() != sender.as_usize() {
        return Err(named);
    }
    let mut previous = Digest::default();
    for (i, e) in msg.earlier.iter().enumerate() {
        let s = &e.statement;
        let key = senders.get(i).ok_or_else(|| named.clone())?;
        if s.hop.as_usize() != i
            || s.chunk != c
            || s.count != st.count
            || s.input != previous
            || s.verify(header, key, &e.signature).is_err()
        {
            return Err(named);
        }
        previous = s.output;
    }
    if st.input != previous {
        return Err(named);
    }
    if sender == HopIndex::OWNER {
        return if msg.input.is_empty() && msg.proof.is_none() {
            Ok(())
        } else {
            Err(HopError::Malformed { chunk: c })
        };
    }
    let proof = msg.proof.as_ref().ok_or_else(|| named.clone())?;
    let key_w = step_keys
        .get(sender.as_usize() - 1)
        .ok_or_else(|| named.clone())?;
    if msg.input.len() != msg.points.len() || chunk_digest(&msg.input) != st.input {
        return Err(named);
    }
    let first = c.0 * u64::from(header.chunk_size);
    let input = chain::decode_points(&msg.input, first).map_err(|_| named.clone())?;
    let output = chain::decode_points(&msg.points, first)?;
    verify(header, st, key_w, &input, &output, proof).map_err(|()| named)
}

fn verify(
    header: &ListHeader,
    statement: &ChunkStatement,
    key: &WirePoint,
    input: &[RistrettoPoint],
    output: &[RistrettoPoint],
    proof: &ChunkProof,
) -> Result<(), ()> {
    let ctx = strict_context(header, statement, key);
    let c = strict_coefficients(&ctx, input.len());
    let (a, b) = rayon::join(
        || dleq::vartime_combination(&c, input),
        || dleq::vartime_combination(&c, output),
    );
    if a.compress().to_bytes() != proof.a.0 || b.compress().to_bytes() != proof.b.0 {
        return Err(());
    }
    let k = key.decode().map_err(|_| ())?;
    dleq::verify(
        &RISTRETTO_BASEPOINT_POINT,
        k.inner(),
        &a,
        &b,
        &ctx,
        &proof.proof,
    )
    .map_err(|_| ())
}
