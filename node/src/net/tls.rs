//! Mutual TLS 1.3 pinned to the federation manifest.
//!
//! Both sides present the self-signed certificate from their keystore.
//! Nothing about the certificate carries trust except the SHA-256 of its
//! SubjectPublicKeyInfo, which must be a manifest member's
//! `tls_spki_sha256`:
//!
//! ```text
//!  server side  ManifestClientVerifier: fingerprint ∈ manifest
//!  client side  PinnedServerVerifier:   fingerprint == the member dialled
//!  both         CertificateVerify checked against the certificate's key
//!               with ring's TLS 1.3 signature schemes
//! ```
//!
//! Validity dates, names, key usages and issuers are ignored on purpose:
//! the keystore's certificate is valid from 1975 to 4096 and names
//! whatever the operator typed; a member is revoked by removing it from the
//! manifest. Session resumption is disabled on both sides (no tickets, no
//! session cache), so no connection skips the verifiers.

use std::{fmt, sync::Arc};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, WebPkiSupportedAlgorithms},
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime},
    server::{
        danger::{ClientCertVerified, ClientCertVerifier},
        NoServerSessionStorage, ParsedCertificate,
    },
    sign::{CertifiedKey, SingleCertAndKey},
    CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme,
};
use sha2::{Digest as _, Sha256};

use kobling_keys::Keystore;
use kobling_protocol::manifest::{Manifest, TlsFingerprint};

/// The ALPN protocol identifier of Kobling v1.
pub(crate) const ALPN: &[u8] = b"kobling/1";

/// The server name a client puts in its handshake. It is never checked
/// (the pin is the identity) and SNI is not sent; rustls only needs a
/// syntactically valid name.
pub(crate) const SERVER_NAME: &str = "kobling.invalid";

/// The TLS layer could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The keystore's certificate or key is unusable, or they do not match.
    #[error("the node's TLS certificate or key is unusable")]
    Identity(#[source] rustls::Error),
    /// The keystore's certificate is not the one the keystore's fingerprint
    /// names.
    #[error("the node's TLS certificate does not match the keystore's fingerprint")]
    FingerprintMismatch,
    /// rustls refused the configuration.
    #[error("TLS configuration refused")]
    Config(#[source] rustls::Error),
    /// The provider lacks the cipher suite QUIC's initial packets need.
    #[error("the crypto provider cannot protect QUIC initial packets")]
    NoInitialCipherSuite(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// A node's own TLS identity: its certificate, its signing key and the
/// certificate's pin. `Debug` shows only the fingerprint.
#[derive(Clone)]
pub struct TlsIdentity {
    certified: Arc<CertifiedKey>,
    fingerprint: TlsFingerprint,
}

impl TlsIdentity {
    /// The identity in `keystore`, after checking that the certificate,
    /// the private key and the keystore's recorded fingerprint agree.
    ///
    /// # Errors
    ///
    /// [`TlsError::Identity`] or [`TlsError::FingerprintMismatch`].
    pub fn from_keystore(keystore: &Keystore) -> Result<Self, TlsError> {
        let identity = Self::from_der(keystore.tls_cert_der(), &keystore.tls_key_der())?;
        if identity.fingerprint.0 != keystore.tls_spki_sha256() {
            return Err(TlsError::FingerprintMismatch);
        }
        Ok(identity)
    }

    /// An identity from a DER certificate and a PKCS#8 DER private key.
    /// The key is parsed in place (no copy of it is kept outside ring's
    /// key object).
    ///
    /// # Errors
    ///
    /// [`TlsError::Identity`] if either does not parse or the certificate
    /// is not for this key.
    pub fn from_der(cert_der: &[u8], pkcs8_der: &[u8]) -> Result<Self, TlsError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8_der));
        let signing_key =
            rustls::crypto::ring::sign::any_supported_type(&key).map_err(TlsError::Identity)?;
        let cert = CertificateDer::from(cert_der.to_vec());
        let fingerprint = spki_fingerprint(&cert).map_err(TlsError::Identity)?;
        let certified = CertifiedKey::new(vec![cert], signing_key);
        certified.keys_match().map_err(TlsError::Identity)?;
        Ok(Self {
            certified: Arc::new(certified),
            fingerprint,
        })
    }

    /// An identity whose certificate need not belong to its key: an
    /// impostor presenting someone else's certificate, for tests.
    #[cfg(test)]
    pub(crate) fn impostor(cert_der: &[u8], pkcs8_der: &[u8]) -> Self {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8_der));
        let signing_key = rustls::crypto::ring::sign::any_supported_type(&key).expect("key");
        let cert = CertificateDer::from(cert_der.to_vec());
        let fingerprint = spki_fingerprint(&cert).expect("certificate");
        Self {
            certified: Arc::new(CertifiedKey::new(vec![cert], signing_key)),
            fingerprint,
        }
    }

    /// The pin of this identity's certificate.
    pub fn fingerprint(&self) -> TlsFingerprint {
        self.fingerprint
    }
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// The crypto provider: ring, with its default TLS 1.3 suites, groups and
/// signature algorithms.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 of the end-entity certificate's SubjectPublicKeyInfo DER: the
/// fingerprint the manifest lists.
///
/// # Errors
///
/// The certificate does not parse.
pub(crate) fn spki_fingerprint(cert: &CertificateDer<'_>) -> Result<TlsFingerprint, rustls::Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    Ok(TlsFingerprint(
        Sha256::digest(parsed.subject_public_key_info().as_ref()).into(),
    ))
}

/// The rustls server configuration: TLS 1.3 only, client certificate
/// mandatory and checked against `manifest`, ALPN `kobling/1`, no
/// tickets or session cache, no 0-RTT.
///
/// # Errors
///
/// [`TlsError::Config`] if rustls refuses the combination.
pub(crate) fn server_config(
    identity: &TlsIdentity,
    manifest: Arc<Manifest>,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(ManifestClientVerifier {
        manifest,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(identity.certified.clone())));
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    Ok(config)
}

/// The rustls client configuration for dialling the member whose pin is
/// `expected`: TLS 1.3 only, our certificate as client certificate, ALPN
/// `kobling/1`, no SNI, no resumption.
///
/// # Errors
///
/// [`TlsError::Config`] if rustls refuses the combination.
pub(crate) fn client_config(
    identity: Option<&TlsIdentity>,
    expected: TlsFingerprint,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(PinnedServerVerifier {
        expected,
        algorithms: provider.signature_verification_algorithms,
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Config)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        Some(identity) => builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(
            identity.certified.clone(),
        ))),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_sni = false;
    config.enable_early_data = false;
    Ok(config)
}

/// The refusal for a certificate that is not pinned. Opaque on purpose: the
/// peer learns only that it was refused.
fn not_pinned() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
}

/// TLS 1.2 is never negotiated (the configs enable TLS 1.3 only); refuse
/// in case a future change lets it through.
fn no_tls12() -> rustls::Error {
    rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls13RequiredForQuic)
}

/// Client side: accepts the server iff its certificate's pin is the one of
/// the member dialled.
#[derive(Debug)]
struct PinnedServerVerifier {
    expected: TlsFingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Intermediates carry no trust here and are ignored.
        if spki_fingerprint(end_entity)? == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(not_pinned())
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Server side: requires a client certificate and accepts it iff its pin
/// is a manifest member's.
struct ManifestClientVerifier {
    manifest: Arc<Manifest>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for ManifestClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManifestClientVerifier")
            .field("federation", &self.manifest.federation)
            .field("members", &self.manifest.members.len())
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for ManifestClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        // Researchers and operators connect without a certificate: their
        // messages carry their own signatures. A certificate, when
        // presented, must be a member's pin.
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.manifest.member_by_tls(&spki_fingerprint(end_entity)?) {
            Some(_) => Ok(ClientCertVerified::assertion()),
            None => Err(not_pinned()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(name: &str) -> (TlsIdentity, Vec<u8>) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec![name.into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let der = cert.der().to_vec();
        let id = TlsIdentity::from_der(&der, &key.serialize_der()).expect("identity");
        (id, der)
    }

    #[test]
    fn fingerprint_is_sha256_of_the_spki_der() {
        use rcgen::PublicKeyData as _;
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["a".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let expected: [u8; 32] = Sha256::digest(key.subject_public_key_info()).into();
        let der = CertificateDer::from(cert.der().to_vec());
        assert_eq!(
            spki_fingerprint(&der).expect("parses"),
            TlsFingerprint(expected)
        );
    }

    #[test]
    fn identity_refuses_a_certificate_for_another_key() {
        let (_, cert_a) = identity("a");
        let key_b = rcgen::KeyPair::generate().expect("key");
        assert!(matches!(
            TlsIdentity::from_der(&cert_a, &key_b.serialize_der()),
            Err(TlsError::Identity(_))
        ));
        assert!(TlsIdentity::from_der(b"not a certificate", &key_b.serialize_der()).is_err());
        assert!(TlsIdentity::from_der(&cert_a, b"not a key").is_err());
    }

    #[test]
    fn debug_shows_only_the_fingerprint() {
        let (id, _) = identity("a");
        let shown = format!("{id:?}");
        assert!(shown.contains("fingerprint"));
        assert!(!shown.contains("key:"));
    }

    #[test]
    fn server_pin_accepts_only_the_dialled_member() {
        let (a, cert_a) = identity("a");
        let (_, cert_b) = identity("b");
        let verifier = PinnedServerVerifier {
            expected: a.fingerprint(),
            algorithms: provider().signature_verification_algorithms,
        };
        let name = ServerName::try_from(SERVER_NAME).expect("name");
        let now = UnixTime::now();
        let check = |der: &[u8]| {
            verifier.verify_server_cert(&CertificateDer::from(der), &[], &name, &[], now)
        };
        assert!(check(&cert_a).is_ok());
        assert!(check(&cert_b).is_err());
        assert!(check(b"\x30\x03\x02\x01\x00").is_err());
    }
}
