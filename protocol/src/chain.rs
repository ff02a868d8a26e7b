//! The chain step: multiply every point of a chunk by a secret share
//! (PROTOCOL.md §6), in parallel on all cores.
//!
//! This is the hot loop of the whole system. Per point it does exactly one
//! decompression (which validates the encoding), one constant-time
//! variable-base scalar multiplication, and a share of one batched
//! compression. No allocation per point: work is split into blocks of
//! [`BLOCK`] points, each block decoded into one buffer and compressed with
//! one field inversion.
//!
//! Batched compression uses `double_and_compress_batch`, which compresses
//! `2·P`; we therefore multiply by `k/2` (computed once per chunk), so the
//! result is the encoding of `k·P`.

use curve25519_dalek::{RistrettoPoint, Scalar};
use rayon::prelude::*;
use zeroize::Zeroizing;

use crate::{
    group::{PointError, WirePoint},
    share::Share,
};

/// Points per parallel work item: large enough to amortise the batch
/// inversion, small enough to balance across cores.
pub const BLOCK: usize = 256;

/// A point of a chunk was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("point at position {position}: {reason}")]
pub struct ChainError {
    /// The position of the first refused point in the list (chunk offset
    /// plus index in the chunk).
    pub position: u64,
    /// Why it was refused.
    pub reason: PointError,
}

/// Decodes and validates every point of `input` in parallel.
///
/// `first_position` is the list position of `input[0]`, used in errors.
///
/// # Errors
///
/// [`ChainError`] naming the lowest position whose encoding is invalid or is
/// the identity.
pub fn decode_points(
    input: &[WirePoint],
    first_position: u64,
) -> Result<Vec<RistrettoPoint>, ChainError> {
    let mut out = vec![RistrettoPoint::default(); input.len()];
    let ok = out
        .par_chunks_mut(BLOCK)
        .zip(input.par_chunks(BLOCK))
        .all(|(dst, src)| decode_block(src, dst).is_ok());
    if ok {
        Ok(out)
    } else {
        Err(first_error(input, first_position))
    }
}

/// Multiplies every point of `input` by `share` and returns the encodings,
/// in order.
///
/// # Errors
///
/// [`ChainError`] naming the lowest position whose encoding is invalid or is
/// the identity. Nothing is returned for a chunk with any bad point: a hop
/// never forwards part of a chunk.
pub fn apply_share(
    share: &Share,
    input: &[WirePoint],
    first_position: u64,
) -> Result<Vec<WirePoint>, ChainError> {
    let half = Zeroizing::new(share.scalar().div_by_2());
    let mut out = vec![WirePoint([0; 32]); input.len()];
    let ok = out
        .par_chunks_mut(BLOCK)
        .zip(input.par_chunks(BLOCK))
        .all(|(dst, src)| {
            let mut buf = [RistrettoPoint::default(); BLOCK];
            let buf = &mut buf[..src.len()];
            if decode_block(src, buf).is_err() {
                return false;
            }
            mul_compress_block(&half, buf, dst);
            true
        });
    if ok {
        Ok(out)
    } else {
        Err(first_error(input, first_position))
    }
}

/// Multiplies already-decoded points by `share` and compresses them, in
/// parallel. Used by the owner's first step (on identity points) and by
/// hops that decoded their input already (for the proof).
pub fn multiply_decoded(share: &Share, input: &[RistrettoPoint]) -> Vec<WirePoint> {
    let half = Zeroizing::new(share.scalar().div_by_2());
    let mut out = vec![WirePoint([0; 32]); input.len()];
    out.par_chunks_mut(BLOCK)
        .zip(input.par_chunks(BLOCK))
        .for_each(|(dst, src)| {
            let mut buf = [RistrettoPoint::default(); BLOCK];
            let buf = &mut buf[..src.len()];
            buf.copy_from_slice(src);
            mul_compress_block(&half, buf, dst);
        });
    out
}

fn decode_block(src: &[WirePoint], dst: &mut [RistrettoPoint]) -> Result<(), PointError> {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s.decode()?.inner();
    }
    Ok(())
}

/// `dst[i] = encode(2·(half·buf[i]))`, reusing `buf` for the products.
fn mul_compress_block(half: &Scalar, buf: &mut [RistrettoPoint], dst: &mut [WirePoint]) {
    for p in buf.iter_mut() {
        // Constant-time variable-base multiplication by the secret.
        *p = half * *p;
    }
    for (d, c) in dst
        .iter_mut()
        .zip(RistrettoPoint::double_and_compress_batch(buf.iter()))
    {
        *d = WirePoint(c.to_bytes());
    }
}

fn first_error(input: &[WirePoint], first_position: u64) -> ChainError {
    for (i, p) in input.iter().enumerate() {
        if let Err(reason) = p.decode() {
            return ChainError {
                position: first_position + i as u64,
                reason,
            };
        }
    }
    // Only called after a block failed, so some point failed.
    ChainError {
        position: first_position,
        reason: PointError::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{hash_to_group, tags};
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

    fn points(n: usize) -> Vec<RistrettoPoint> {
        (0..n)
            .map(|i| hash_to_group(tags::IDENTITY, &(i as u64).to_le_bytes()))
            .collect()
    }

    fn encode(ps: &[RistrettoPoint]) -> Vec<WirePoint> {
        ps.iter()
            .map(|p| WirePoint(p.compress().to_bytes()))
            .collect()
    }

    #[test]
    fn apply_share_equals_naive_multiplication_for_all_block_shapes() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let k = Share::random(&mut rng);
        for n in [0, 1, 2, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 17] {
            let ps = points(n);
            let want: Vec<WirePoint> = ps
                .iter()
                .map(|p| WirePoint((k.scalar() * p).compress().to_bytes()))
                .collect();
            assert_eq!(
                apply_share(&k, &encode(&ps), 0).expect("valid"),
                want,
                "n = {n}"
            );
            assert_eq!(multiply_decoded(&k, &ps), want, "n = {n}");
            assert_eq!(decode_points(&encode(&ps), 0).expect("valid"), ps);
        }
    }

    #[test]
    fn shares_compose() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let a = Share::random(&mut rng);
        let b = Share::random(&mut rng);
        let ps = encode(&points(300));
        let ab = apply_share(&b, &apply_share(&a, &ps, 0).expect("valid"), 0).expect("valid");
        assert_eq!(ab, apply_share(&a.product(&b), &ps, 0).expect("valid"));
        let back =
            apply_share(&a.invert(), &apply_share(&a, &ps, 0).expect("valid"), 0).expect("valid");
        assert_eq!(back, ps);
    }

    #[test]
    fn bad_points_are_named_by_position() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let k = Share::random(&mut rng);
        let mut ps = encode(&points(2 * BLOCK));
        ps[BLOCK + 5] = WirePoint([0; 32]);
        ps[BLOCK + 9] = WirePoint([0xff; 32]);
        let err = apply_share(&k, &ps, 1000).expect_err("identity");
        assert_eq!(
            err,
            ChainError {
                position: 1000 + BLOCK as u64 + 5,
                reason: PointError::Identity
            }
        );
        ps[3] = WirePoint([0xff; 32]);
        let err = decode_points(&ps, 0).expect_err("invalid");
        assert_eq!(
            err,
            ChainError {
                position: 3,
                reason: PointError::Invalid
            }
        );
    }
}
