//! Hashing: RFC 9380 `expand_message_xof` with SHAKE256, hash-to-group and
//! hash-to-scalar on ristretto255, and the framed (length-prefixed,
//! domain-separated) SHA3-256 / SHAKE256 inputs every other hash in Kobling
//! uses.
//!
//! # Framing
//!
//! No hash input in Kobling is an ad-hoc concatenation. A *framed* input is
//! the sequence of its fields, each written as its length (u64,
//! little-endian) followed by its bytes. A framed digest starts with the
//! domain-separation tag as its first field:
//!
//! ```text
//! framed_sha3(tag, [f1, f2, ...]) = SHA3-256( le64(|tag|) ‖ tag ‖ le64(|f1|) ‖ f1 ‖ le64(|f2|) ‖ f2 ‖ ... )
//! ```

use curve25519_dalek::{RistrettoPoint, Scalar};
use sha3::{
    digest::{ExtendableOutput, Update, XofReader},
    Digest as _, Sha3_256,
};
use shake::Shake256;
use zeroize::Zeroizing;

/// Domain-separation tags. Every tag names the protocol version.
pub mod tags {
    /// Identity point of a person: `I(x) = hash_to_group(IDENTITY, x)`.
    pub const IDENTITY: &[u8] = b"KOBLING-V1-IDENTITY";
    /// Share derivation: `k = hash_to_scalar(DOMAIN_KEY, frame(m, s, d))`.
    pub const DOMAIN_KEY: &[u8] = b"KOBLING-V1-DOMAIN-KEY";
    /// Løpenummer derivation.
    pub const LNR: &[u8] = b"KOBLING-V1-LNR";
    /// DLEQ: Fiat–Shamir context digest of a chunk proof.
    pub const DLEQ_CONTEXT: &[u8] = b"KOBLING-V1-DLEQ-CONTEXT";
    /// DLEQ: batch coefficients stream.
    pub const DLEQ_COEFFICIENTS: &[u8] = b"KOBLING-V1-DLEQ-COEFFICIENTS";
    /// DLEQ: challenge scalar.
    pub const DLEQ_CHALLENGE: &[u8] = b"KOBLING-V1-DLEQ-CHALLENGE";
    /// DLEQ: hedged nonce derivation.
    pub const DLEQ_NONCE: &[u8] = b"KOBLING-V1-DLEQ-NONCE";
}

/// The length of every digest in Kobling (SHA3-256).
pub const DIGEST_LEN: usize = 32;

/// `expand_message_xof` of RFC 9380 §5.3.2, instantiated with SHAKE256
/// (k = 256, so an oversize DST is reduced to 64 bytes as in §5.3.3).
///
/// # Panics
///
/// Panics if `len > 65535`, which RFC 9380 forbids. Every caller in Kobling
/// passes a constant length of at most 64.
///
/// The output is returned in a [`Zeroizing`] buffer: it becomes shares,
/// blinding-derived scalars and DLEQ nonces, and is wiped when dropped
/// (as is the SHAKE256 state that produced it).
pub fn expand_message_xof(dst: &[u8], msg: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    assert!(len <= 65535, "expand_message_xof: len_in_bytes > 65535");
    let mut reduced = [0u8; 64];
    let dst: &[u8] = if dst.len() > 255 {
        let mut h = Shake256::default();
        h.update(b"H2C-OVERSIZE-DST-");
        h.update(dst);
        h.finalize_xof().read(&mut reduced);
        &reduced
    } else {
        dst
    };
    let mut h = Shake256::default();
    h.update(msg);
    h.update(&(len as u16).to_be_bytes());
    h.update(dst);
    // The length check above and the reduction make this cast lossless.
    h.update(&[dst.len() as u8]);
    let mut out = Zeroizing::new(vec![0u8; len]);
    h.finalize_xof().read(&mut out);
    out
}

/// Hash to ristretto255: `from_uniform_bytes(expand_message_xof(dst, msg, 64))`
/// (the RFC 9496 §4.3.4 one-way map on 64 uniform bytes).
pub fn hash_to_group(dst: &[u8], msg: &[u8]) -> RistrettoPoint {
    RistrettoPoint::from_uniform_bytes(&wide(dst, msg))
}

/// Hash to a scalar: `Scalar::from_bytes_mod_order_wide(expand_message_xof(dst, msg, 64))`.
///
/// The 64-byte wide-reduction input is wiped; the scalar is the caller's
/// to protect (callers wrap secret ones in `Share` or `Zeroizing`).
pub fn hash_to_scalar(dst: &[u8], msg: &[u8]) -> Scalar {
    Scalar::from_bytes_mod_order_wide(&wide(dst, msg))
}

/// The 64 uniform bytes of the wide reductions, wiped when dropped.
fn wide(dst: &[u8], msg: &[u8]) -> Zeroizing<[u8; 64]> {
    let bytes = expand_message_xof(dst, msg, 64);
    let mut out = Zeroizing::new([0u8; 64]);
    out.copy_from_slice(&bytes);
    out
}

/// The framing of a list of fields: each field as `le64(len) ‖ bytes`.
pub fn frame(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.iter().map(|f| f.len() + 8).sum());
    for f in fields {
        out.extend_from_slice(&(f.len() as u64).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// Incremental framed SHA3-256: the tag is the first field.
#[derive(Clone)]
pub struct FramedHasher {
    inner: Sha3_256,
}

impl FramedHasher {
    /// Starts a digest under domain-separation tag `tag`.
    pub fn new(tag: &[u8]) -> Self {
        let mut inner = Sha3_256::new();
        sha3::Digest::update(&mut inner, (tag.len() as u64).to_le_bytes());
        sha3::Digest::update(&mut inner, tag);
        Self { inner }
    }

    /// Appends one length-prefixed field.
    pub fn field(mut self, bytes: &[u8]) -> Self {
        self.push(bytes);
        self
    }

    /// Appends one length-prefixed field in place.
    pub fn push(&mut self, bytes: &[u8]) {
        sha3::Digest::update(&mut self.inner, (bytes.len() as u64).to_le_bytes());
        sha3::Digest::update(&mut self.inner, bytes);
    }

    /// Appends a u64 as an 8-byte little-endian field.
    pub fn u64(self, v: u64) -> Self {
        self.field(&v.to_le_bytes())
    }

    /// Finishes the digest.
    pub fn finish(self) -> [u8; DIGEST_LEN] {
        self.inner.finalize().into()
    }
}

impl core::fmt::Debug for FramedHasher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FramedHasher { .. }")
    }
}

/// Plain SHA3-256 of `bytes` (file digests: an operator can check them with
/// any `sha3-256` tool).
pub fn sha3_256(bytes: &[u8]) -> [u8; DIGEST_LEN] {
    Sha3_256::digest(bytes).into()
}

/// `framed_sha3(tag, fields)`: SHA3-256 over the framing of `[tag, fields..]`.
pub fn framed_sha3(tag: &[u8], fields: &[&[u8]]) -> [u8; DIGEST_LEN] {
    let mut h = FramedHasher::new(tag);
    for f in fields {
        h.push(f);
    }
    h.finish()
}

/// SHAKE256 over the framing of `[tag, fields..]`, read into `out`.
pub fn framed_shake(tag: &[u8], fields: &[&[u8]], out: &mut [u8]) {
    framed_shake_reader(tag, fields).read(out);
}

/// A SHAKE256 reader over the framing of `[tag, fields..]`, for callers that
/// draw a long stream (batch coefficients).
pub fn framed_shake_reader(tag: &[u8], fields: &[&[u8]]) -> impl XofReader {
    let mut h = Shake256::default();
    h.update(&(tag.len() as u64).to_le_bytes());
    h.update(tag);
    for f in fields {
        h.update(&(f.len() as u64).to_le_bytes());
        h.update(f);
    }
    h.finalize_xof()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9380 Appendix K.6: expand_message_xof(SHAKE256).
    const K6_DST: &[u8] = b"QUUX-V01-CS02-with-expander-SHAKE256";

    fn k6_messages() -> [Vec<u8>; 5] {
        let mut q128 = b"q128_".to_vec();
        q128.extend(std::iter::repeat_n(b'q', 128));
        let mut a512 = b"a512_".to_vec();
        a512.extend(std::iter::repeat_n(b'a', 512));
        [
            b"".to_vec(),
            b"abc".to_vec(),
            b"abcdef0123456789".to_vec(),
            q128,
            a512,
        ]
    }

    #[test]
    fn rfc9380_k6_short_outputs() {
        let expected = [
            "2ffc05c48ed32b95d72e807f6eab9f7530dd1c2f013914c8fed38c5ccc15ad76",
            "b39e493867e2767216792abce1f2676c197c0692aed061560ead251821808e07",
            "245389cf44a13f0e70af8665fe5337ec2dcd138890bb7901c4ad9cfceb054b65",
            "719b3911821e6428a5ed9b8e600f2866bcf23c8f0515e52d6c6c019a03f16f0e",
            "9181ead5220b1963f1b5951f35547a5ea86a820562287d6ca4723633d17ccbbc",
        ];
        for (msg, want) in k6_messages().iter().zip(expected) {
            assert_eq!(hex::encode(expand_message_xof(K6_DST, msg, 0x20)), want);
        }
    }

    #[test]
    fn rfc9380_k6_long_outputs() {
        let expected = [
            "7a1361d2d7d82d79e035b8880c5a3c86c5afa719478c007d96e6c88737a3f631dd74a2c88df79a4cb5e5d9f7504957c70d669ec6bfedc31e01e2bacc4ff3fdf9b6a00b17cc18d9d72ace7d6b81c2e481b4f73f34f9a7505dccbe8f5485f3d20c5409b0310093d5d6492dea4e18aa6979c23c8ea5de01582e9689612afbb353df",
            "a54303e6b172909783353ab05ef08dd435a558c3197db0c132134649708e0b9b4e34fb99b92a9e9e28fc1f1d8860d85897a8e021e6382f3eea10577f968ff6df6c45fe624ce65ca25932f679a42a404bc3681efe03fcd45ef73bb3a8f79ba784f80f55ea8a3c367408f30381299617f50c8cf8fbb21d0f1e1d70b0131a7b6fbe",
            "e42e4d9538a189316e3154b821c1bafb390f78b2f010ea404e6ac063deb8c0852fcd412e098e231e43427bd2be1330bb47b4039ad57b30ae1fc94e34993b162ff4d695e42d59d9777ea18d3848d9d336c25d2acb93adcad009bcfb9cde12286df267ada283063de0bb1505565b2eb6c90e31c48798ecdc71a71756a9110ff373",
            "4ac054dda0a38a65d0ecf7afd3c2812300027c8789655e47aecf1ecc1a2426b17444c7482c99e5907afd9c25b991990490bb9c686f43e79b4471a23a703d4b02f23c669737a886a7ec28bddb92c3a98de63ebf878aa363a501a60055c048bea11840c4717beae7eee28c3cfa42857b3d130188571943a7bd747de831bd6444e0",
            "09afc76d51c2cccbc129c2315df66c2be7295a231203b8ab2dd7f95c2772c68e500bc72e20c602abc9964663b7a03a389be128c56971ce81001a0b875e7fd17822db9d69792ddf6a23a151bf470079c518279aef3e75611f8f828994a9988f4a8a256ddb8bae161e658d5a2a09bcfe839c6396dc06ee5c8ff3c22d3b1f9deb7e",
        ];
        for (msg, want) in k6_messages().iter().zip(expected) {
            assert_eq!(hex::encode(expand_message_xof(K6_DST, msg, 0x80)), want);
        }
    }

    #[test]
    fn oversize_dst_is_reduced_per_rfc9380_5_3_3() {
        let long_dst = vec![b'x'; 300];
        let mut h = Shake256::default();
        h.update(b"H2C-OVERSIZE-DST-");
        h.update(&long_dst);
        let mut reduced = [0u8; 64];
        h.finalize_xof().read(&mut reduced);
        assert_eq!(
            expand_message_xof(&long_dst, b"abc", 32),
            expand_message_xof(&reduced, b"abc", 32)
        );
        assert_ne!(
            expand_message_xof(&long_dst, b"abc", 32),
            expand_message_xof(&long_dst[..255], b"abc", 32)
        );
    }

    /// `hash_to_group` is the RFC 9496 one-way map (tested against RFC 9496
    /// A.3 in `group.rs`) of the RFC 9380 XOF output.
    #[test]
    fn hash_to_group_is_the_one_way_map_of_the_xof_output() {
        let p = hash_to_group(tags::IDENTITY, b"01018012345");
        let bytes: [u8; 64] = expand_message_xof(tags::IDENTITY, b"01018012345", 64)
            .as_slice()
            .try_into()
            .expect("64 bytes");
        assert_eq!(p, RistrettoPoint::from_uniform_bytes(&bytes));
        assert_ne!(p, hash_to_group(tags::LNR, b"01018012345"));
        assert_ne!(p, hash_to_group(tags::IDENTITY, b"01018012346"));
    }

    #[test]
    fn framing_is_unambiguous() {
        assert_ne!(
            framed_sha3(b"T", &[b"ab", b"c"]),
            framed_sha3(b"T", &[b"a", b"bc"])
        );
        assert_ne!(framed_sha3(b"T", &[b"x"]), framed_sha3(b"U", &[b"x"]));
        assert_eq!(
            framed_sha3(b"T", &[b"ab", b"c"]),
            FramedHasher::new(b"T").field(b"ab").field(b"c").finish()
        );
        let mut a = [0u8; 40];
        let mut b = [0u8; 40];
        framed_shake(b"T", &[b"ab"], &mut a);
        framed_shake(b"T", &[b"a", b"b"], &mut b);
        assert_ne!(a, b);
    }
}
