//! Secret key shares and their public commitments (PROTOCOL.md §4).
//!
//! A [`Share`] is a non-zero secret scalar: a node's share `k_{i,d}` of a
//! domain key, a list blinding `β`, or a product of such (the owner's
//! `β·k_j`, the linker's `k_L·β⁻¹`). It cannot be cloned or printed, is
//! zeroized on drop, and is only ever multiplied in constant time.

use core::fmt;

use curve25519_dalek::{RistrettoPoint, Scalar};
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{
    group::WirePoint,
    hash::{frame, hash_to_scalar, tags},
    types::{Name, ProjectId},
};

/// A pseudonym domain: a project, or a register's own pseudonym domain
/// (PROTOCOL.md §10).
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub enum Domain {
    /// The domain of an approved research project.
    Project(ProjectId),
    /// A pseudonymous register's internal domain.
    Register(Name),
}

impl Domain {
    /// The domain's canonical bytes: `frame(kind, name)` with kind
    /// `"project"` or `"register"`.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Domain::Project(p) => frame(&[b"project", p.as_bytes()]),
            Domain::Register(r) => frame(&[b"register", r.as_bytes()]),
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Project(p) => write!(f, "project {p}"),
            Domain::Register(r) => write!(f, "register domain {r}"),
        }
    }
}

/// A non-zero secret scalar.
pub struct Share(Scalar);

/// A scalar that cannot be a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// Zero, or a non-canonical encoding.
    #[error("not a canonical non-zero scalar")]
    Invalid,
}

impl Share {
    /// Derives node `i`'s share of `domain` (PROTOCOL.md §4):
    /// `k = hash_to_scalar("KOBLING-V1-DOMAIN-KEY", frame(m, s, domain.to_bytes()))`.
    ///
    /// # Errors
    ///
    /// [`ShareError::Invalid`] in the (2⁻²⁵²) event the hash is zero.
    pub fn derive(master: &[u8; 32], seed: &[u8; 32], domain: &Domain) -> Result<Self, ShareError> {
        let d = domain.to_bytes();
        let msg = Zeroizing::new(frame(&[master, seed, &d]));
        Self::from_scalar(hash_to_scalar(tags::DOMAIN_KEY, &msg))
    }

    /// A fresh uniformly random share (a list blinding): the wide
    /// reduction of 64 random bytes, as `Scalar::random` does, but with the
    /// 64-byte buffer wiped afterwards (`Scalar::random` leaves it).
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut wide = Zeroizing::new([0u8; 64]);
        loop {
            rng.fill_bytes(wide.as_mut());
            if let Ok(share) = Self::from_scalar(Scalar::from_bytes_mod_order_wide(&wide)) {
                return share;
            }
        }
    }

    /// Wraps a scalar.
    ///
    /// # Errors
    ///
    /// [`ShareError::Invalid`] for zero.
    pub fn from_scalar(mut s: Scalar) -> Result<Self, ShareError> {
        if bool::from(s.ct_eq(&Scalar::ZERO)) {
            s.zeroize();
            return Err(ShareError::Invalid);
        }
        Ok(Self(s))
    }

    /// Decodes a share from its canonical 32-byte little-endian encoding.
    ///
    /// # Errors
    ///
    /// [`ShareError::Invalid`] for a non-canonical encoding or zero.
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Result<Self, ShareError> {
        let s: Option<Scalar> = Scalar::from_canonical_bytes(*bytes).into();
        Self::from_scalar(s.ok_or(ShareError::Invalid)?)
    }

    /// The canonical encoding, zeroized when dropped.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public commitment `K = k·G`.
    pub fn commitment(&self) -> WirePoint {
        WirePoint(RistrettoPoint::mul_base(&self.0).compress().to_bytes())
    }

    /// The product of two shares (e.g. the owner's `β·k_j`).
    pub fn product(&self, other: &Share) -> Share {
        // A product of non-zero scalars modulo a prime is non-zero.
        Share(self.0 * other.0)
    }

    /// The inverse (e.g. `β⁻¹`).
    pub fn invert(&self) -> Share {
        Share(self.0.invert())
    }

    /// The scalar one (a conversion's missing side, whose key reads `G`).
    pub(crate) fn one() -> Share {
        Share(Scalar::ONE)
    }

    /// The scalar, for the constant-time operations of this crate.
    pub(crate) fn scalar(&self) -> &Scalar {
        &self.0
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for Share {}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Share(<secret>)")
    }
}

impl ConstantTimeEq for Share {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

    fn project(s: &str) -> Domain {
        Domain::Project(ProjectId::new(s).expect("valid"))
    }

    #[test]
    fn derivation_separates_inputs() {
        let m = [1u8; 32];
        let s = [2u8; 32];
        let a = Share::derive(&m, &s, &project("P1")).expect("share");
        assert!(bool::from(
            a.ct_eq(&Share::derive(&m, &s, &project("P1")).expect("share"))
        ));
        for other in [
            Share::derive(&[9; 32], &s, &project("P1")),
            Share::derive(&m, &[9; 32], &project("P1")),
            Share::derive(&m, &s, &project("P2")),
            Share::derive(&m, &s, &Domain::Register(Name::new("P1").expect("valid"))),
        ] {
            assert!(!bool::from(a.ct_eq(&other.expect("share"))));
        }
    }

    #[test]
    fn product_inverse_and_encoding() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let a = Share::random(&mut rng);
        let b = Share::random(&mut rng);
        let one = a.product(&a.invert());
        assert_eq!(*one.scalar(), Scalar::ONE);
        let ab = a.product(&b);
        assert_eq!(ab.commitment(), b.product(&a).commitment());
        let round = Share::from_secret_bytes(&a.to_secret_bytes()).expect("canonical");
        assert!(bool::from(round.ct_eq(&a)));
        assert_eq!(
            Share::from_secret_bytes(&[0; 32]).err(),
            Some(ShareError::Invalid)
        );
        assert_eq!(
            Share::from_secret_bytes(&[0xff; 32]).err(),
            Some(ShareError::Invalid)
        );
        assert_eq!(format!("{a:?}"), "Share(<secret>)");
    }
}
