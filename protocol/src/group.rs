//! Points on the wire and points in hand.
//!
//! [`WirePoint`] is the 32-byte compressed ristretto255 encoding as it
//! travels; [`Point`] is a decoded, validated, non-identity group element.
//! The only way from one to the other is [`WirePoint::decode`], so no code
//! can use a peer's bytes as a point without the check.

use core::fmt;

use curve25519_dalek::{ristretto::CompressedRistretto, traits::Identity, RistrettoPoint};
use serde::{Deserialize, Serialize};

/// The encoded length of a point.
pub const POINT_LEN: usize = 32;

/// A compressed ristretto255 point as received or sent (unchecked).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WirePoint(pub [u8; POINT_LEN]);

/// A decoded ristretto255 point that is not the identity.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Point(RistrettoPoint);

/// Why a point encoding was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PointError {
    /// Not the canonical encoding of a ristretto255 point.
    #[error("not a valid ristretto255 encoding")]
    Invalid,
    /// The identity element, which no honest party ever produces.
    #[error("the identity point")]
    Identity,
}

impl WirePoint {
    /// Decompresses and validates: a canonical encoding of a point other
    /// than the identity.
    ///
    /// # Errors
    ///
    /// [`PointError::Invalid`] or [`PointError::Identity`].
    pub fn decode(&self) -> Result<Point, PointError> {
        let p = CompressedRistretto(self.0)
            .decompress()
            .ok_or(PointError::Invalid)?;
        if p == RistrettoPoint::identity() {
            return Err(PointError::Identity);
        }
        Ok(Point(p))
    }

    /// The encoding's bytes.
    pub fn as_bytes(&self) -> &[u8; POINT_LEN] {
        &self.0
    }
}

impl fmt::Debug for WirePoint {
    // Only a prefix: a point may be a pseudonym, and debug output ends up in
    // logs. Never print a whole point.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WirePoint({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

impl Point {
    /// Wraps a point known not to be the identity.
    ///
    /// # Errors
    ///
    /// [`PointError::Identity`] for the identity.
    pub fn new(p: RistrettoPoint) -> Result<Self, PointError> {
        if p == RistrettoPoint::identity() {
            return Err(PointError::Identity);
        }
        Ok(Self(p))
    }

    /// The group element.
    pub fn inner(&self) -> &RistrettoPoint {
        &self.0
    }

    /// Compresses for the wire.
    pub fn encode(&self) -> WirePoint {
        WirePoint(self.0.compress().to_bytes())
    }
}

impl fmt::Debug for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Point(..)")
    }
}

impl From<Point> for RistrettoPoint {
    fn from(p: Point) -> Self {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<const N: usize>(s: &str) -> [u8; N] {
        hex::decode(s).expect("hex").try_into().expect("length")
    }

    /// RFC 9496 Appendix A.3: the one-way map from 64 uniform bytes.
    #[test]
    fn rfc9496_a3_one_way_map() {
        let vectors = [
            ("5d1be09e3d0c82fc538112490e35701979d99e06ca3e2b5b54bffe8b4dc772c14d98b696a1bbfb5ca32c436cc61c16563790306c79eaca7705668b47dffe5bb6", "3066f82a1a747d45120d1740f14358531a8f04bbffe6a819f86dfe50f44a0a46"),
            ("f116b34b8f17ceb56e8732a60d913dd10cce47a6d53bee9204be8b44f6678b270102a56902e2488c46120e9276cfe54638286b9e4b3cdb470b542d46c2068d38", "f26e5b6f7d362d2d2a94c5d0e7602cb4773c95a2e5c31a64f133189fa76ed61b"),
            ("8422e1bbdaab52938b81fd602effb6f89110e1e57208ad12d9ad767e2e25510c27140775f9337088b982d83d7fcf0b2fa1edffe51952cbe7365e95c86eaf325c", "006ccd2a9e6867e6a2c5cea83d3302cc9de128dd2a9a57dd8ee7b9d7ffe02826"),
            ("ac22415129b61427bf464e17baee8db65940c233b98afce8d17c57beeb7876c2150d15af1cb1fb824bbd14955f2b57d08d388aab431a391cfc33d5bafb5dbbaf", "f8f0c87cf237953c5890aec3998169005dae3eca1fbb04548c635953c817f92a"),
            ("165d697a1ef3d5cf3c38565beefcf88c0f282b8e7dbd28544c483432f1cec7675debea8ebb4e5fe7d6f6e5db15f15587ac4d4d4a1de7191e0c1ca6664abcc413", "ae81e7dedf20a497e10c304a765c1767a42d6e06029758d2d7e8ef7cc4c41179"),
            ("a836e6c9a9ca9f1e8d486273ad56a78c70cf18f0ce10abb1c7172ddd605d7fd2979854f47ae1ccf204a33102095b4200e5befc0465accc263175485f0e17ea5c", "e2705652ff9f5e44d3e841bf1c251cf7dddb77d140870d1ab2ed64f1a9ce8628"),
            ("2cdc11eaeb95daf01189417cdddbf95952993aa9cb9c640eb5058d09702c74622c9965a697a3b345ec24ee56335b556e677b30e6f90ac77d781064f866a3c982", "80bd07262511cdde4863f8a7434cef696750681cb9510eea557088f76d9e5065"),
        ];
        for (input, output) in vectors {
            let p = RistrettoPoint::from_uniform_bytes(&h::<64>(input));
            assert_eq!(p.compress().to_bytes(), h::<32>(output));
        }
    }

    /// RFC 9496 Appendix A.2: invalid encodings are rejected.
    #[test]
    fn rfc9496_a2_invalid_encodings_are_rejected() {
        for bad in [
            "00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371",
            "3eb858e78f5a7254d8c9731174a94f76755fd3941c0ac93735c07ba14579630e",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ] {
            assert_eq!(
                WirePoint(h(bad)).decode(),
                Err(PointError::Invalid),
                "{bad}"
            );
        }
    }

    #[test]
    fn identity_is_rejected_and_valid_points_round_trip() {
        assert_eq!(WirePoint([0; 32]).decode(), Err(PointError::Identity));
        let g = curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
        let p = Point::new(g).expect("not identity");
        assert_eq!(p.encode().decode().expect("valid"), p);
        assert!(format!("{:?}", p.encode()).len() < 20);
    }
}
