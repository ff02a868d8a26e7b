//! The node's TLS identity: an ECDSA P-256 key pair (PKCS#8 DER) and a
//! self-signed certificate (DER) made with rcgen.
//!
//! Peers pin the certificate by the SHA-256 of its SubjectPublicKeyInfo
//! (the fingerprint the federation manifest lists), not by a CA, so the
//! certificate's names and validity (1975 to 4096) carry no trust.

use rcgen::{CertificateParams, KeyPair, PublicKeyData};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::{error::KeystoreError, format::FormatError};

/// A generated TLS identity.
pub(crate) struct TlsIdentity {
    /// PKCS#8 DER of the private key.
    pub(crate) key_der: Zeroizing<Vec<u8>>,
    /// DER of the self-signed certificate.
    pub(crate) cert_der: Vec<u8>,
}

impl TlsIdentity {
    /// Generates a key pair (with the OS RNG, through ring) and a self-signed
    /// certificate for `names` (DNS names or IP addresses).
    pub(crate) fn generate(names: &[String]) -> Result<Self, KeystoreError> {
        let key_pair = KeyPair::generate().map_err(KeystoreError::Tls)?;
        let params = CertificateParams::new(names.to_vec()).map_err(KeystoreError::Tls)?;
        let cert = params.self_signed(&key_pair).map_err(KeystoreError::Tls)?;
        Ok(Self {
            key_der: Zeroizing::new(key_pair.serialize_der()),
            cert_der: cert.der().to_vec(),
        })
    }
}

/// SHA-256 of the certificate's SubjectPublicKeyInfo, after checking that
/// the certificate really carries the public key of `key_der`.
///
/// The SPKI is re-encoded from the private key and must occur verbatim in
/// the certificate: DER is canonical, so a certificate for this key holds
/// exactly these bytes, and one for another key cannot.
pub(crate) fn spki_sha256(key_der: &[u8], cert_der: &[u8]) -> Result<[u8; 32], FormatError> {
    let key_pair = KeyPair::try_from(key_der).map_err(|_| FormatError::TlsKey)?;
    let spki = key_pair.subject_public_key_info();
    if spki.is_empty() || !cert_der.windows(spki.len()).any(|w| w == spki.as_slice()) {
        return Err(FormatError::TlsMismatch);
    }
    Ok(Sha256::digest(&spki).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_key_and_rejects_foreign_certificate() {
        let a = TlsIdentity::generate(&["a.kobling.test".into()]).expect("tls");
        let b = TlsIdentity::generate(&["b.kobling.test".into()]).expect("tls");
        let fa = spki_sha256(&a.key_der, &a.cert_der).expect("consistent");
        let fb = spki_sha256(&b.key_der, &b.cert_der).expect("consistent");
        assert_ne!(fa, fb);
        assert_eq!(
            spki_sha256(&a.key_der, &b.cert_der),
            Err(FormatError::TlsMismatch)
        );
        assert_eq!(
            spki_sha256(b"not a key", &a.cert_der),
            Err(FormatError::TlsKey)
        );
    }
}
