//! An access authority's grant of a project order (issue 18 item 2).
//!
//! Access to register data is granted by a body such as Helsedataservice or
//! a register owner's access office, not by the researcher. The manifest
//! lists those bodies (`[[authorities]]`); one of them signs the order,
//! and the signature travels inside it, so that it is recorded with the
//! order in the transcript:
//!
//! ```text
//!  grant_digest = framed_sha3("KOBLING-V1-AUTHORITY-GRANT", [order digest with grant = None])
//!  grant        = { authority: Ed25519 key, signature: Ed25519(authority, grant_digest) }
//! ```
//!
//! The linker refuses an order without a grant by an authority of its
//! manifest before it writes anything, and every node and auditor checks
//! the grant with the rest of the transcript ([`super::verify`]).

use serde::{Deserialize, Serialize};

use super::{body::ProjectOrder, verify_sig, Sig};
use crate::{hash::framed_sha3, manifest::Ed25519Key, manifest::Manifest, types::Digest};

/// The domain-separation tag of [`ProjectOrder::grant_digest`].
pub const GRANT_TAG: &[u8] = b"KOBLING-V1-AUTHORITY-GRANT";

/// An access authority's signature of a project order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The authority's Ed25519 key (one of the manifest's authorities).
    pub authority: Ed25519Key,
    /// `Ed25519(authority, order.grant_digest())`.
    pub signature: Sig,
}

/// Why an order's grant does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// The order carries no grant.
    #[error("the order carries no access authority's signature")]
    Missing,
    /// The grant's key is not an authority of the manifest.
    #[error("the order is signed by a key that is no access authority of the manifest")]
    UnknownAuthority,
    /// The signature does not verify (for example it was made for another order).
    #[error("the access authority's signature does not verify for this order")]
    BadSignature,
}

impl ProjectOrder {
    /// What an authority signs: the order without its grant, under
    /// [`GRANT_TAG`].
    pub fn grant_digest(&self) -> Digest {
        let mut bare = self.clone();
        bare.grant = None;
        Digest(framed_sha3(GRANT_TAG, &[&bare.digest().0]))
    }

    /// The authority `key` signs this order (its grant replaced).
    pub fn granted_by(mut self, key: &ed25519_dalek::SigningKey) -> ProjectOrder {
        use ed25519_dalek::Signer as _;
        let signature = Sig(key.sign(&self.grant_digest().0).to_bytes());
        self.grant = Some(Grant {
            authority: Ed25519Key(key.verifying_key().to_bytes()),
            signature,
        });
        self
    }

    /// Checks that an authority of `manifest` signed this order.
    ///
    /// # Errors
    ///
    /// A [`GrantError`].
    pub fn check_grant(&self, manifest: &Manifest) -> Result<(), GrantError> {
        let grant = self.grant.as_ref().ok_or(GrantError::Missing)?;
        if !manifest.is_authority(&grant.authority) {
            return Err(GrantError::UnknownAuthority);
        }
        verify_sig(&grant.authority, &self.grant_digest().0, &grant.signature)
            .map_err(|()| GrantError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::UnixTime;
    use crate::{
        bounded::{BoundedString, BoundedVec},
        manifest::Authority,
        types::{Name, ProjectId},
    };

    fn order(title: &str) -> ProjectOrder {
        ProjectOrder {
            project: ProjectId::new("P-1").expect("valid"),
            title: BoundedString::new(title).expect("fits"),
            legal_basis: BoundedString::new("REK 1").expect("fits"),
            manifest_digest: Digest([1; 32]),
            linker: Name::new("LINKER").expect("valid"),
            registers: BoundedVec::default(),
            cohort: BoundedString::new("NPR").expect("fits"),
            expires: UnixTime(2_000_000_000),
            researcher_signing_key: Ed25519Key([2; 32]),
            researcher_hpke_key: crate::manifest::X25519Key([3; 32]),
            test_mode: false,
            grant: None,
            delivery: None,
            pseudonymous: Default::default(),
            identified: None,
        }
    }

    /// Issue 18 item 2: no grant, a grant by a key the manifest does not
    /// list, a grant made for another order: each refused.
    #[test]
    fn only_an_authority_of_the_manifest_grants_and_only_the_order_it_signed() {
        let authority = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let stranger = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        let manifest = Manifest {
            federation: "test".into(),
            portals: Vec::new(),
            members: vec![],
            authorities: vec![Authority {
                name: "Helsedataservice".into(),
                key: Ed25519Key(authority.verifying_key().to_bytes()),
            }],
            domains: Vec::new(),
        };
        assert_eq!(order("a").check_grant(&manifest), Err(GrantError::Missing));
        let granted = order("a").granted_by(&authority);
        assert_eq!(granted.check_grant(&manifest), Ok(()));
        // The grant does not change what it signs.
        assert_eq!(granted.grant_digest(), order("a").grant_digest());
        assert_eq!(
            order("a").granted_by(&stranger).check_grant(&manifest),
            Err(GrantError::UnknownAuthority)
        );
        // A valid signature over another spec, moved onto this one.
        let mut moved = order("b");
        moved.grant = granted.grant.clone();
        assert_eq!(moved.check_grant(&manifest), Err(GrantError::BadSignature));
        // The tag separates a grant from any other signature of the digest.
        assert_ne!(
            granted.grant_digest(),
            Digest(framed_sha3(b"KOBLING-V1-ORDER", &[&order("a").digest().0]))
        );
        // A manifest without authorities grants nothing.
        let bare = Manifest {
            authorities: vec![],
            ..manifest
        };
        assert_eq!(
            granted.check_grant(&bare),
            Err(GrantError::UnknownAuthority)
        );
    }
}
