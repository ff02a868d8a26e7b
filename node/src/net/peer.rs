//! Who is speaking on a connection.

use rustls::pki_types::CertificateDer;

use kobling_protocol::{
    manifest::{Manifest, Role, TlsFingerprint},
    types::Name,
};

use super::tls::spki_fingerprint;

/// The authenticated peer of a connection: the manifest member whose pinned
/// certificate it presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Peer {
    /// The member's name.
    pub(crate) name: Name,
    /// The member's role.
    pub(crate) role: Role,
    /// The pin of the certificate it presented.
    pub(crate) fingerprint: TlsFingerprint,
}

impl Peer {
    /// The peer of an established connection, from the certificate it
    /// presented in the handshake.
    ///
    /// The TLS verifiers already refused any certificate that is not
    /// pinned; this recovers *which* member it was, and refuses again if
    /// the chain is missing or maps to no member (defence in depth).
    pub(crate) fn of(conn: &quinn::Connection, manifest: &Manifest) -> Option<Self> {
        let chain = conn
            .peer_identity()?
            .downcast::<Vec<CertificateDer<'static>>>()
            .ok()?;
        let fingerprint = spki_fingerprint(chain.first()?).ok()?;
        let member = manifest.member_by_tls(&fingerprint)?;
        Some(Self {
            name: member.name.clone(),
            role: member.role,
            fingerprint,
        })
    }
}
