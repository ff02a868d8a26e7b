//! Where fresh random bytes come from: the OS (fallibly, as a typed error
//! rather than a panic) or a caller's [`CryptoRng`] (tests, simulations).

use rand_core::CryptoRng;

use crate::error::KeystoreError;

/// A source of random bytes for secrets, salts and nonces.
pub(crate) trait Entropy {
    /// Fills `buf` with fresh random bytes.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), KeystoreError>;
}

/// The operating system's generator (`getrandom`).
pub(crate) struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), KeystoreError> {
        getrandom::fill(buf).map_err(KeystoreError::Randomness)
    }
}

/// A caller's cryptographic generator.
pub(crate) struct RngEntropy<'a, R: CryptoRng + ?Sized>(pub(crate) &'a mut R);

impl<R: CryptoRng + ?Sized> Entropy for RngEntropy<'_, R> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), KeystoreError> {
        self.0.fill_bytes(buf);
        Ok(())
    }
}
