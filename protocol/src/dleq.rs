//! Chaum–Pedersen proofs of discrete-log equality, and the batched chunk
//! proof of PROTOCOL.md §6.
//!
//! # The single proof
//!
//! A [`DleqProof`] shows knowledge of `x` with `X1 = x·P1` and `X2 = x·P2`
//! without revealing `x`. Fiat–Shamir over a 32-byte context digest that
//! binds it to its project, list, hop and chunk:
//!
//! ```text
//! r  = hash_to_scalar(DLEQ_NONCE, frame(x, ctx, X2, 32 random bytes))   (hedged)
//! R1 = r·P1, R2 = r·P2
//! e  = hash_to_scalar(DLEQ_CHALLENGE, frame(ctx, P1, X1, P2, X2, R1, R2))
//! s  = r − e·x
//! proof = e ‖ s (64 bytes)
//! verify: R1' = s·P1 + e·X1, R2' = s·P2 + e·X2, e == hash_to_scalar(.., R1', R2')
//! ```
//!
//! # The batched chunk proof
//!
//! A hop that maps a chunk `In_t ↦ Out_t = x·In_t` proves it with one DLEQ:
//! from the chunk's [`ChunkStatement`] digest derive 128-bit coefficients
//! `c_t` (SHAKE256 stream), form `A = Σ c_t·In_t`, `B = Σ c_t·Out_t`, and
//! prove `log_G X = log_A B`. If any `Out_t ≠ x·In_t`, then `B = x·A` holds
//! with probability at most 2⁻¹²⁸ over the coefficients, which are fixed only
//! after both chunks are (their Merkle roots are in the statement).
//!
//! Verification only touches public data and is variable-time.

use curve25519_dalek::{
    constants::RISTRETTO_BASEPOINT_POINT,
    traits::{Identity, VartimeMultiscalarMul},
    RistrettoPoint, Scalar,
};
use rand_core::CryptoRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha3::digest::XofReader;
use zeroize::Zeroizing;

use crate::{
    group::WirePoint,
    hash::{frame, framed_sha3, framed_shake_reader, hash_to_scalar, tags},
    share::Share,
    types::{ChunkIndex, Digest, HopIndex, ListName, ProjectId},
};

/// A 64-byte Chaum–Pedersen proof: challenge `e` and response `s`, each a
/// canonical little-endian scalar.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DleqProof {
    /// The challenge `e`.
    pub challenge: [u8; 32],
    /// The response `s`.
    pub response: [u8; 32],
}

/// A proof did not verify. Deliberately opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("proof verification failed")]
pub struct ProofError;

/// What a chunk proof is about. Its digest is the Fiat–Shamir context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkStatement<'a> {
    /// The project.
    pub project: &'a ProjectId,
    /// The list (named by its owning register).
    pub list: &'a ListName,
    /// The hop index in the list's chain (the owner's step is hop 0).
    pub hop: HopIndex,
    /// The chunk index within the list.
    pub chunk: ChunkIndex,
    /// The public key of the step, `X = x·G`: the hop's commitment `K_h`,
    /// or for the linker `C_j`.
    pub key: WirePoint,
    /// Merkle root of the input chunk.
    pub input_root: Digest,
    /// Merkle root of the output chunk.
    pub output_root: Digest,
    /// Number of points in the chunk.
    pub count: u64,
}

/// The proof of one chunk step, as carried in hop records and chunk
/// messages: `A`, `B` and the DLEQ proof (128 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct ChunkProof {
    /// `A = Σ c_t·In_t`.
    pub a: WirePoint,
    /// `B = Σ c_t·Out_t`.
    pub b: WirePoint,
    /// `log_G X = log_A B`.
    pub proof: DleqProof,
}

impl core::fmt::Debug for DleqProof {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "DleqProof({:02x}{:02x}…)",
            self.challenge[0], self.challenge[1]
        )
    }
}

/// `count` batch coefficients of 128 bits each, drawn from
/// `SHAKE256(frame(tag, digest))` as consecutive 16-byte little-endian
/// integers (a chunk proof's and a conversion chunk's).
pub(crate) fn batch_coefficients(tag: &[u8], digest: &[u8; 32], count: u64) -> Vec<Scalar> {
    let mut reader = framed_shake_reader(tag, &[digest]);
    let n = usize::try_from(count).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(n.min(1 << 20));
    let mut buf = [0u8; 16];
    for _ in 0..count {
        reader.read(&mut buf);
        out.push(Scalar::from(u128::from_le_bytes(buf)));
    }
    out
}

impl ChunkStatement<'_> {
    /// The context digest: `framed_sha3(DLEQ_CONTEXT, [project, list,
    /// le32(hop), le64(chunk), X, input_root, output_root, le64(count)])`.
    pub fn digest(&self) -> [u8; 32] {
        framed_sha3(
            tags::DLEQ_CONTEXT,
            &[
                b"chunk",
                self.project.as_bytes(),
                self.list.as_bytes(),
                &self.hop.to_le_bytes(),
                &self.chunk.to_le_bytes(),
                self.key.as_bytes(),
                self.input_root.as_bytes(),
                self.output_root.as_bytes(),
                &self.count.to_le_bytes(),
            ],
        )
    }

    /// The `count` batch coefficients, 128 bits each, drawn from
    /// `SHAKE256(frame(DLEQ_COEFFICIENTS, digest))` as consecutive 16-byte
    /// little-endian integers.
    pub fn coefficients(&self) -> Vec<Scalar> {
        batch_coefficients(tags::DLEQ_COEFFICIENTS, &self.digest(), self.count)
    }
}

/// The context of the linker's key proof `log_G K_L = log_{D_j} C_j`.
pub fn linker_key_context(
    project: &ProjectId,
    list: &ListName,
    k_l: &WirePoint,
    d_j: &WirePoint,
    c_j: &WirePoint,
) -> [u8; 32] {
    framed_sha3(
        tags::DLEQ_CONTEXT,
        &[
            b"linker-key",
            project.as_bytes(),
            list.as_bytes(),
            k_l.as_bytes(),
            d_j.as_bytes(),
            c_j.as_bytes(),
        ],
    )
}

/// Proves `log_{P1} (x·P1) = log_{P2} (x·P2)` under context `ctx`.
///
/// The nonce is hedged: derived from the secret, the context, the statement
/// and 32 bytes from `rng`, so a weak RNG alone does not leak `x`.
pub fn prove<R: CryptoRng + ?Sized>(
    x: &Share,
    p1: &RistrettoPoint,
    p2: &RistrettoPoint,
    ctx: &[u8; 32],
    rng: &mut R,
) -> DleqProof {
    let x1 = (x.scalar() * p1).compress();
    let x2 = (x.scalar() * p2).compress();
    let mut noise = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(noise.as_mut());
    let secret = Zeroizing::new(x.scalar().to_bytes());
    let nonce_input = Zeroizing::new(frame(&[
        secret.as_ref(),
        ctx,
        x2.as_bytes(),
        noise.as_ref(),
    ]));
    let r = Zeroizing::new(hash_to_scalar(tags::DLEQ_NONCE, &nonce_input));
    let r1 = (*r * p1).compress();
    let r2 = (*r * p2).compress();
    let e = challenge(
        ctx,
        &p1.compress().to_bytes(),
        x1.as_bytes(),
        &p2.compress().to_bytes(),
        x2.as_bytes(),
        r1.as_bytes(),
        r2.as_bytes(),
    );
    let s = *r - e * x.scalar();
    DleqProof {
        challenge: e.to_bytes(),
        response: s.to_bytes(),
    }
}

/// Verifies a [`DleqProof`] that `log_{P1} X1 = log_{P2} X2`.
///
/// # Errors
///
/// [`ProofError`] if it does not verify (including non-canonical scalars).
pub fn verify(
    p1: &RistrettoPoint,
    x1: &RistrettoPoint,
    p2: &RistrettoPoint,
    x2: &RistrettoPoint,
    ctx: &[u8; 32],
    proof: &DleqProof,
) -> Result<(), ProofError> {
    let e: Option<Scalar> = Scalar::from_canonical_bytes(proof.challenge).into();
    let s: Option<Scalar> = Scalar::from_canonical_bytes(proof.response).into();
    let (e, s) = (e.ok_or(ProofError)?, s.ok_or(ProofError)?);
    let r1 = RistrettoPoint::vartime_multiscalar_mul([s, e], [*p1, *x1]).compress();
    let r2 = RistrettoPoint::vartime_multiscalar_mul([s, e], [*p2, *x2]).compress();
    let want = challenge(
        ctx,
        &p1.compress().to_bytes(),
        &x1.compress().to_bytes(),
        &p2.compress().to_bytes(),
        &x2.compress().to_bytes(),
        r1.as_bytes(),
        r2.as_bytes(),
    );
    if want == e {
        Ok(())
    } else {
        Err(ProofError)
    }
}

fn challenge(
    ctx: &[u8; 32],
    p1: &[u8; 32],
    x1: &[u8; 32],
    p2: &[u8; 32],
    x2: &[u8; 32],
    r1: &[u8; 32],
    r2: &[u8; 32],
) -> Scalar {
    hash_to_scalar(tags::DLEQ_CHALLENGE, &frame(&[ctx, p1, x1, p2, x2, r1, r2]))
}

/// `Σ c_t·P_t`, variable-time (public data only), split across cores.
/// Extra points or coefficients beyond the shorter of the two are ignored
/// (callers check counts first).
pub fn vartime_combination(coefficients: &[Scalar], points: &[RistrettoPoint]) -> RistrettoPoint {
    // One part per thread: Pippenger's per-point cost falls with the batch
    // (its bucket sums are a fixed cost per call), so parts are as large as
    // the pool allows, but not below MIN_PART.
    const MIN_PART: usize = 2048;
    let n = coefficients.len().min(points.len());
    let (coefficients, points) = (&coefficients[..n], &points[..n]);
    let part = n
        .div_ceil(rayon::current_num_threads().max(1))
        .max(MIN_PART);
    coefficients
        .par_chunks(part)
        .zip(points.par_chunks(part))
        .map(|(c, p)| RistrettoPoint::vartime_multiscalar_mul(c, p))
        .reduce(RistrettoPoint::identity, |a, b| a + b)
}

/// Proves a chunk step `Out_t = x·In_t` (see the module docs).
///
/// `input` are the decoded input points of the chunk; the statement's
/// `output_root` must be the root of the outputs the caller computed.
/// Returns `A`, `B = x·A` and the DLEQ proof.
pub fn prove_chunk<R: CryptoRng + ?Sized>(
    x: &Share,
    statement: &ChunkStatement<'_>,
    input: &[RistrettoPoint],
    rng: &mut R,
) -> ChunkProof {
    let c = statement.coefficients();
    let a = vartime_combination(&c, input);
    let b = x.scalar() * a;
    let proof = prove(x, &RISTRETTO_BASEPOINT_POINT, &a, &statement.digest(), rng);
    ChunkProof {
        a: WirePoint(a.compress().to_bytes()),
        b: WirePoint(b.compress().to_bytes()),
        proof,
    }
}

/// Verifies a chunk proof against the chunk's decoded points: recomputes
/// `A` and `B` from the data and checks them and the DLEQ proof.
///
/// # Errors
///
/// [`ProofError`] if the counts disagree, `A`/`B` differ from the data, or
/// the proof does not verify against the statement's key.
pub fn verify_chunk(
    statement: &ChunkStatement<'_>,
    input: &[RistrettoPoint],
    output: &[RistrettoPoint],
    proof: &ChunkProof,
) -> Result<(), ProofError> {
    if input.len() as u64 != statement.count || output.len() as u64 != statement.count {
        return Err(ProofError);
    }
    let c = statement.coefficients();
    let (a, b) = rayon::join(
        || vartime_combination(&c, input),
        || vartime_combination(&c, output),
    );
    if a.compress().to_bytes() != proof.a.0 || b.compress().to_bytes() != proof.b.0 {
        return Err(ProofError);
    }
    verify_chunk_offline(statement, proof)
}

/// Verifies the DLEQ part of a chunk proof without the points, as an auditor
/// does from a transcript: `log_G X = log_A B` under the statement's digest.
/// The binding of `A` and `B` to the data was checked by the next hop.
///
/// # Errors
///
/// [`ProofError`] if a point is invalid or the proof does not verify.
pub fn verify_chunk_offline(
    statement: &ChunkStatement<'_>,
    proof: &ChunkProof,
) -> Result<(), ProofError> {
    let key = statement.key.decode().map_err(|_| ProofError)?;
    let a = proof.a.decode().map_err(|_| ProofError)?;
    let b = proof.b.decode().map_err(|_| ProofError)?;
    verify(
        &RISTRETTO_BASEPOINT_POINT,
        key.inner(),
        a.inner(),
        b.inner(),
        &statement.digest(),
        &proof.proof,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_to_group;
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

    struct Fixture {
        project: ProjectId,
        list: ListName,
        input: Vec<RistrettoPoint>,
    }

    fn fixture(n: usize) -> Fixture {
        Fixture {
            project: ProjectId::new("P-1").expect("valid"),
            list: ListName::new("NPR").expect("valid"),
            input: (0..n as u64)
                .map(|i| hash_to_group(b"test", &i.to_le_bytes()))
                .collect(),
        }
    }

    fn root(ps: &[RistrettoPoint]) -> Digest {
        // Any binding digest of the chunk will do for these tests; the
        // real callers pass Merkle roots.
        let mut h = crate::hash::FramedHasher::new(b"test-root");
        for p in ps {
            h.push(p.compress().as_bytes());
        }
        Digest(h.finish())
    }

    fn statement<'a>(
        f: &'a Fixture,
        key: &Share,
        out: &[RistrettoPoint],
        hop: HopIndex,
        chunk: ChunkIndex,
    ) -> ChunkStatement<'a> {
        ChunkStatement {
            project: &f.project,
            list: &f.list,
            hop,
            chunk,
            key: key.commitment(),
            input_root: root(&f.input),
            output_root: root(out),
            count: out.len() as u64,
        }
    }

    fn step(k: &Share, input: &[RistrettoPoint]) -> Vec<RistrettoPoint> {
        input.iter().map(|p| k.scalar() * p).collect()
    }

    #[test]
    fn single_proof_verifies_and_rejects_wrong_statements() {
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        let x = Share::random(&mut rng);
        let g = RISTRETTO_BASEPOINT_POINT;
        let h = hash_to_group(b"test", b"h");
        let ctx = [7u8; 32];
        let proof = prove(&x, &g, &h, &ctx, &mut rng);
        let (x1, x2) = (x.scalar() * g, x.scalar() * h);
        assert_eq!(verify(&g, &x1, &h, &x2, &ctx, &proof), Ok(()));
        assert_eq!(
            verify(&g, &x1, &h, &x2, &[8u8; 32], &proof),
            Err(ProofError)
        );
        assert_eq!(
            verify(&g, &x1, &h, &(x2 + g), &ctx, &proof),
            Err(ProofError)
        );
        let other = Share::random(&mut rng);
        assert_eq!(
            verify(&g, &(other.scalar() * g), &h, &x2, &ctx, &proof),
            Err(ProofError)
        );
        let mut bad = proof;
        bad.response[0] ^= 1;
        assert_eq!(verify(&g, &x1, &h, &x2, &ctx, &bad), Err(ProofError));
        bad = proof;
        bad.challenge = [0xff; 32];
        assert_eq!(verify(&g, &x1, &h, &x2, &ctx, &bad), Err(ProofError));
    }

    #[test]
    fn chunk_proof_verifies_with_the_right_share() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let f = fixture(500);
        let k = Share::random(&mut rng);
        let out = step(&k, &f.input);
        let st = statement(&f, &k, &out, HopIndex(2), ChunkIndex(0));
        let proof = prove_chunk(&k, &st, &f.input, &mut rng);
        assert_eq!(verify_chunk(&st, &f.input, &out, &proof), Ok(()));
        assert_eq!(verify_chunk_offline(&st, &proof), Ok(()));
    }

    #[test]
    fn chunk_proof_rejects_every_kind_of_tampering() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let f = fixture(64);
        let k = Share::random(&mut rng);
        let honest = step(&k, &f.input);
        let other = Share::random(&mut rng);

        let mut one_wrong_scalar = honest.clone();
        one_wrong_scalar[17] = other.scalar() * f.input[17];
        let mut swapped = honest.clone();
        swapped.swap(3, 40);
        let mut replaced = honest.clone();
        replaced[9] = hash_to_group(b"test", b"replacement");
        let mut duplicated = honest.clone();
        duplicated[5] = duplicated[6];
        let mut dropped = honest.clone();
        dropped.remove(30);
        let all_wrong = step(&other, &f.input);

        for (what, out) in [
            ("one point multiplied by another scalar", one_wrong_scalar),
            ("two points swapped", swapped),
            ("a point replaced", replaced),
            ("a point duplicated", duplicated),
            ("a point dropped", dropped),
            ("the wrong share", all_wrong),
        ] {
            // A cheating hop proves with its real share over what it sent.
            let st = statement(&f, &k, &out, HopIndex(1), ChunkIndex(0));
            let input_for_proof = if out.len() == f.input.len() {
                &f.input[..]
            } else {
                &f.input[..out.len()]
            };
            let proof = prove_chunk(&k, &st, input_for_proof, &mut rng);
            assert_eq!(
                verify_chunk(&st, &f.input, &out, &proof),
                Err(ProofError),
                "{what}"
            );
        }

        // A hop proving with the share it actually used, against the wrong
        // published commitment.
        let out = step(&other, &f.input);
        let mut st = statement(&f, &other, &out, HopIndex(1), ChunkIndex(0));
        let proof = prove_chunk(&other, &st, &f.input, &mut rng);
        st.key = k.commitment();
        assert_eq!(verify_chunk(&st, &f.input, &out, &proof), Err(ProofError));
    }

    #[test]
    fn a_chunk_proof_is_bound_to_its_context() {
        let mut rng = ChaCha20Rng::seed_from_u64(13);
        let f = fixture(32);
        let k = Share::random(&mut rng);
        let out = step(&k, &f.input);
        let st = statement(&f, &k, &out, HopIndex(1), ChunkIndex(4));
        let proof = prove_chunk(&k, &st, &f.input, &mut rng);
        assert_eq!(verify_chunk(&st, &f.input, &out, &proof), Ok(()));

        let other_project = ProjectId::new("P-2").expect("valid");
        let other_list = ListName::new("KPR").expect("valid");
        let variants = [
            ChunkStatement {
                chunk: ChunkIndex(5),
                ..st.clone()
            },
            ChunkStatement {
                hop: HopIndex(2),
                ..st.clone()
            },
            ChunkStatement {
                project: &other_project,
                ..st.clone()
            },
            ChunkStatement {
                list: &other_list,
                ..st.clone()
            },
        ];
        for v in &variants {
            assert_eq!(
                verify_chunk(v, &f.input, &out, &proof),
                Err(ProofError),
                "{v:?}"
            );
            assert_eq!(verify_chunk_offline(v, &proof), Err(ProofError), "{v:?}");
        }

        // Another chunk's data under the same proof.
        let f2 = Fixture {
            input: f.input.iter().rev().copied().collect(),
            ..fixture(0)
        };
        let out2 = step(&k, &f2.input);
        let st2 = statement(&f2, &k, &out2, HopIndex(1), ChunkIndex(4));
        assert_eq!(
            verify_chunk(&st2, &f2.input, &out2, &proof),
            Err(ProofError)
        );
    }

    #[test]
    fn count_mismatch_is_rejected() {
        let mut rng = ChaCha20Rng::seed_from_u64(14);
        let f = fixture(8);
        let k = Share::random(&mut rng);
        let out = step(&k, &f.input);
        let st = statement(&f, &k, &out, HopIndex(1), ChunkIndex(0));
        let proof = prove_chunk(&k, &st, &f.input, &mut rng);
        assert_eq!(
            verify_chunk(&st, &f.input[..7], &out[..7], &proof),
            Err(ProofError)
        );
    }
}
