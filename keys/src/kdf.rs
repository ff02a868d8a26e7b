//! Passphrase key derivation: Argon2id (RFC 9106, version 0x13).
//!
//! The passphrase's UTF-8 bytes (as given, no Unicode normalisation) and a
//! random 16-byte salt go through Argon2id to a 32-byte output `a`, from
//! which two independent values are hashed:
//!
//! ```text
//! key   = framed_sha3("KOBLING-V1-KEYSTORE-KEY",   [a])   XChaCha20-Poly1305 key
//! check = framed_sha3("KOBLING-V1-KEYSTORE-CHECK", [a])   stored in the header
//! ```
//!
//! The check value lets `open` tell a wrong passphrase from a damaged file.
//! It helps an attacker no more than the AEAD tag already does: either way
//! every guess costs one Argon2id evaluation.

use argon2::{Algorithm, Argon2, Params, Version};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use kobling_protocol::hash::framed_sha3;

use crate::error::KeystoreError;

/// Tag of the keystore encryption key.
const KEY_TAG: &[u8] = b"KOBLING-V1-KEYSTORE-KEY";
/// Tag of the passphrase check value.
const CHECK_TAG: &[u8] = b"KOBLING-V1-KEYSTORE-CHECK";

/// Length of the Argon2id salt.
pub(crate) const SALT_LEN: usize = 16;
/// Length of the passphrase check value.
pub(crate) const CHECK_LEN: usize = 32;

/// Argon2id cost parameters for a passphrase-protected keystore.
///
/// [`KdfParams::default`] is m = 64 MiB, t = 3, p = 1, paid once per
/// `create` and `open`. Lower values are for tests only: they make an
/// offline guessing attack on a stolen keystore file cheaper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
}

impl KdfParams {
    /// The largest memory cost accepted, also when reading a file: 4 GiB.
    pub const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
    /// The largest number of passes accepted.
    pub const MAX_T_COST: u32 = 64;
    /// The largest degree of parallelism accepted.
    pub const MAX_P_COST: u32 = 16;

    /// The recommended parameters: m = 64 MiB, t = 3, p = 1.
    pub const RECOMMENDED: KdfParams = KdfParams {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };

    /// Checks and wraps cost parameters.
    ///
    /// # Errors
    ///
    /// [`KeystoreError::InvalidKdfParams`] unless `8·p_cost ≤ m_cost_kib ≤
    /// MAX_M_COST_KIB`, `1 ≤ t_cost ≤ MAX_T_COST` and `1 ≤ p_cost ≤
    /// MAX_P_COST`.
    pub fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Self, KeystoreError> {
        let ok = (1..=Self::MAX_P_COST).contains(&p_cost)
            && (1..=Self::MAX_T_COST).contains(&t_cost)
            && (8 * p_cost..=Self::MAX_M_COST_KIB).contains(&m_cost_kib);
        if ok {
            Ok(Self {
                m_cost_kib,
                t_cost,
                p_cost,
            })
        } else {
            Err(KeystoreError::InvalidKdfParams {
                m_cost_kib,
                t_cost,
                p_cost,
            })
        }
    }

    /// Memory cost in KiB.
    pub fn m_cost_kib(&self) -> u32 {
        self.m_cost_kib
    }

    /// Number of passes.
    pub fn t_cost(&self) -> u32 {
        self.t_cost
    }

    /// Degree of parallelism.
    pub fn p_cost(&self) -> u32 {
        self.p_cost
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::RECOMMENDED
    }
}

/// Argon2id (version 0x13) of a passphrase's UTF-8 bytes and a salt, to
/// 32 bytes.
pub(crate) fn argon2id(
    passphrase: &str,
    salt: &[u8; SALT_LEN],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let params = Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
        .map_err(KeystoreError::Kdf)?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, out.as_mut())
        .map_err(KeystoreError::Kdf)?;
    Ok(out)
}

/// The two values derived from a passphrase.
pub(crate) struct PassphraseKeys {
    /// The XChaCha20-Poly1305 key of the keystore payload.
    pub(crate) key: Zeroizing<[u8; 32]>,
    /// The check value stored in the header.
    pub(crate) check: [u8; CHECK_LEN],
}

impl PassphraseKeys {
    /// Runs Argon2id and derives the key and the check value.
    pub(crate) fn derive(
        passphrase: &str,
        salt: &[u8; SALT_LEN],
        params: KdfParams,
    ) -> Result<Self, KeystoreError> {
        let out = argon2id(passphrase, salt, params)?;
        Ok(Self {
            key: Zeroizing::new(framed_sha3(KEY_TAG, &[out.as_ref()])),
            check: framed_sha3(CHECK_TAG, &[out.as_ref()]),
        })
    }

    /// Whether `stored` is this passphrase's check value (constant time).
    pub(crate) fn matches(&self, stored: &[u8; CHECK_LEN]) -> bool {
        bool::from(self.check.ct_eq(stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_bounded() {
        assert!(KdfParams::new(8, 1, 1).is_ok());
        assert!(KdfParams::new(7, 1, 1).is_err());
        assert!(KdfParams::new(16, 1, 2).is_ok());
        assert!(KdfParams::new(15, 1, 2).is_err());
        assert!(KdfParams::new(64, 0, 1).is_err());
        assert!(KdfParams::new(64, 1, 0).is_err());
        assert!(KdfParams::new(KdfParams::MAX_M_COST_KIB + 1, 1, 1).is_err());
        assert_eq!(KdfParams::default().m_cost_kib(), 65536);
        assert_eq!(KdfParams::default().t_cost(), 3);
        assert_eq!(KdfParams::default().p_cost(), 1);
    }

    #[test]
    fn derivation_depends_on_every_input() {
        let p = KdfParams::new(64, 1, 1).expect("params");
        let base = PassphraseKeys::derive("hemmelig", &[1; 16], p).expect("kdf");
        let again = PassphraseKeys::derive("hemmelig", &[1; 16], p).expect("kdf");
        assert_eq!(*base.key, *again.key);
        assert!(base.matches(&again.check));
        assert_ne!(*base.key, base.check, "key and check are separated");
        for other in [
            PassphraseKeys::derive("hemmelig!", &[1; 16], p),
            PassphraseKeys::derive("hemmelig", &[2; 16], p),
            PassphraseKeys::derive("hemmelig", &[1; 16], KdfParams::new(128, 1, 1).expect("p")),
            PassphraseKeys::derive("hemmelig", &[1; 16], KdfParams::new(64, 2, 1).expect("p")),
        ] {
            let other = other.expect("kdf");
            assert_ne!(*base.key, *other.key);
            assert!(!base.matches(&other.check));
        }
    }
}
