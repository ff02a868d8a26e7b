//! What a register learns of a project after its lists were verified
//! (PROTOCOL.md §11; issue 12 item 1): only that the project is linked,
//! delivered or closed.
//!
//! ```text
//!  linker appends LinkSummary / Delivery / Closure   (kept from registers)
//!        └──▶ PhaseNotice { project, phase, failed_list }, signed by the linker ──▶ every participating register
//!  register: accept ──▶ stores the latest ──▶ ProjectView::with_notice ──▶ duties (Shred when closed)
//!                                         └──▶ `project status`: "stopped: list KPR failed its check"
//! ```
//!
//! A notice is not a transcript entry and carries no number and no hash
//! of anything a register could brute-force: its only fields are the
//! project id, one of three phases and, when a chain v2 list ended the
//! project, that list's name ([`crate::project::ProjectView::failed_list`]:
//! a list name, never a value); its signature is deterministic (Ed25519),
//! so two projects' notices of the same phase differ only by the project
//! id. The linker sends one per phase, whatever the cohort.

use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Serialize};

use crate::{
    hash::framed_sha3,
    manifest::Ed25519Key,
    project::Phase,
    transcript::{verify_sig, Body, Sig},
    types::{ListName, ProjectId},
};

/// The domain-separation tag of a phase notice's digest.
pub const NOTICE_TAG: &[u8] = b"KOBLING-V1-PHASE-NOTICE";

/// The phases a register is told of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Notified {
    /// The linker linked the lists.
    Linked,
    /// The researcher fetched the delivery.
    Delivered,
    /// The project is closed: shred.
    Closed,
}

impl Notified {
    /// The project phase it tells.
    pub fn phase(self) -> Phase {
        match self {
            Notified::Linked => Phase::Linked,
            Notified::Delivered => Phase::Delivered,
            Notified::Closed => Phase::Closed,
        }
    }

    /// The notice a phase calls for, if registers are told of it.
    pub fn of_phase(phase: Phase) -> Option<Notified> {
        match phase {
            Phase::Ordered | Phase::Chaining => None,
            Phase::Linked => Some(Notified::Linked),
            Phase::Delivered => Some(Notified::Delivered),
            Phase::Closed => Some(Notified::Closed),
        }
    }

    /// The notice a newly recorded entry calls for: its body's phase, for
    /// the bodies that move a project past the chain.
    pub fn of_body(body: &Body) -> Option<Notified> {
        match body {
            Body::LinkSummary(_) => Some(Notified::Linked),
            Body::Delivery(_) => Some(Notified::Delivered),
            Body::Closure(_) => Some(Notified::Closed),
            _ => None,
        }
    }

    fn byte(self) -> u8 {
        match self {
            Notified::Linked => 1,
            Notified::Delivered => 2,
            Notified::Closed => 3,
        }
    }
}

/// A project's phase, as the linker tells registers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseNotice {
    /// The project.
    pub project: ProjectId,
    /// The phase.
    pub phase: Notified,
    /// The chain v2 list whose check failed or whose chain was stopped,
    /// ending the project (`None` when no list did): registers' operators
    /// learn which list failed, and nothing else about it.
    pub failed_list: Option<ListName>,
}

/// A [`PhaseNotice`] with the linker's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPhaseNotice {
    /// The notice.
    pub notice: PhaseNotice,
    /// `Ed25519(linker, digest)`, see [`PhaseNotice::digest`].
    pub signature: Sig,
}

/// A notice was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoticeError {
    /// The notice is about another project.
    #[error("the notice is about another project")]
    WrongProject,
    /// The signature is not the linker's.
    #[error("the notice's signature is not the linker's")]
    BadSignature,
}

impl PhaseNotice {
    /// `framed_sha3(NOTICE_TAG, [project, phase byte])`, the phase byte
    /// being 1 (linked), 2 (delivered) or 3 (closed), with the failed
    /// list's name as a third field when there is one
    /// (`[project, phase byte, failed list]`). A notice naming no list
    /// signs the same bytes as before the field existed; one naming a list
    /// cannot be read as one that names none (the framing differs).
    pub fn digest(&self) -> [u8; 32] {
        let phase = [self.phase.byte()];
        match &self.failed_list {
            None => framed_sha3(NOTICE_TAG, &[self.project.as_bytes(), &phase]),
            Some(list) => framed_sha3(
                NOTICE_TAG,
                &[self.project.as_bytes(), &phase, list.as_bytes()],
            ),
        }
    }

    /// Signs the notice as the linker.
    pub fn sign(self, linker: &SigningKey) -> SignedPhaseNotice {
        let signature = Sig(linker.sign(&self.digest()).to_bytes());
        SignedPhaseNotice {
            notice: self,
            signature,
        }
    }
}

impl SignedPhaseNotice {
    /// Checks that the notice is about `project` and signed by the linker
    /// (`linker_key`, from the manifest); returns its phase.
    ///
    /// # Errors
    ///
    /// [`NoticeError`].
    pub fn check(
        &self,
        project: &ProjectId,
        linker_key: &Ed25519Key,
    ) -> Result<Notified, NoticeError> {
        if &self.notice.project != project {
            return Err(NoticeError::WrongProject);
        }
        verify_sig(linker_key, &self.notice.digest(), &self.signature)
            .map_err(|()| NoticeError::BadSignature)?;
        Ok(self.notice.phase)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn project(s: &str) -> ProjectId {
        ProjectId::new(s).expect("valid")
    }

    #[test]
    fn a_notice_verifies_only_for_its_project_phase_and_linker() {
        let linker = key(1);
        let lk = Ed25519Key(linker.verifying_key().to_bytes());
        let signed = PhaseNotice {
            project: project("P-1"),
            phase: Notified::Closed,
            failed_list: None,
        }
        .sign(&linker);
        assert_eq!(signed.check(&project("P-1"), &lk), Ok(Notified::Closed));
        assert_eq!(
            signed.check(&project("P-2"), &lk),
            Err(NoticeError::WrongProject)
        );
        let other = Ed25519Key(key(2).verifying_key().to_bytes());
        assert_eq!(
            signed.check(&project("P-1"), &other),
            Err(NoticeError::BadSignature)
        );
        let mut moved = signed.clone();
        moved.notice.phase = Notified::Linked;
        assert_eq!(
            moved.check(&project("P-1"), &lk),
            Err(NoticeError::BadSignature)
        );
    }

    /// A notice naming the list that failed verifies only as signed: the
    /// list can be neither changed, added nor removed.
    #[test]
    fn the_failed_list_is_signed_with_the_notice() {
        let linker = key(5);
        let lk = Ed25519Key(linker.verifying_key().to_bytes());
        let list = |s: &str| Some(ListName::new(s).expect("valid"));
        let signed = PhaseNotice {
            project: project("P-1"),
            phase: Notified::Closed,
            failed_list: list("KPR"),
        }
        .sign(&linker);
        assert_eq!(signed.check(&project("P-1"), &lk), Ok(Notified::Closed));
        for tampered in [list("NPR"), None] {
            let mut t = signed.clone();
            t.notice.failed_list = tampered;
            assert_eq!(
                t.check(&project("P-1"), &lk),
                Err(NoticeError::BadSignature)
            );
        }
        let mut added = PhaseNotice {
            project: project("P-1"),
            phase: Notified::Closed,
            failed_list: None,
        }
        .sign(&linker);
        added.notice.failed_list = list("KPR");
        assert_eq!(
            added.check(&project("P-1"), &lk),
            Err(NoticeError::BadSignature)
        );
    }

    /// The wire form `docs/protocol.md` §11–12 gives: kind 18, the project
    /// id, the phase (postcard variant 2 for closed), the failed list
    /// (`0x00` for none; `0x01`, its length, its name), 64 signature bytes.
    #[test]
    fn the_wire_form_is_the_documented_one() {
        let signed = PhaseNotice {
            project: project("DEMO-1"),
            phase: Notified::Closed,
            failed_list: None,
        }
        .sign(&key(4));
        let bytes = crate::messages::encode(&crate::messages::Message::Notice(signed.clone()));
        let mut want = vec![18u8, 6];
        want.extend_from_slice(b"DEMO-1");
        want.push(2);
        want.push(0);
        want.extend_from_slice(&signed.signature.0);
        assert_eq!(bytes, want);
        assert_eq!(
            crate::messages::decode(&bytes),
            Ok(crate::messages::Message::Notice(signed))
        );
        let named = PhaseNotice {
            project: project("DEMO-1"),
            phase: Notified::Closed,
            failed_list: Some(ListName::new("KPR").expect("valid")),
        }
        .sign(&key(4));
        let bytes = crate::messages::encode(&crate::messages::Message::Notice(named.clone()));
        let mut want = vec![18u8, 6];
        want.extend_from_slice(b"DEMO-1");
        want.extend_from_slice(&[2, 1, 3]);
        want.extend_from_slice(b"KPR");
        want.extend_from_slice(&named.signature.0);
        assert_eq!(bytes, want);
        assert_eq!(
            crate::messages::decode(&bytes),
            Ok(crate::messages::Message::Notice(named))
        );
    }

    /// Two projects' notices of one phase differ only where their ids do:
    /// same length, deterministic signature, nothing else carried.
    #[test]
    fn a_notice_carries_only_the_project_and_the_phase() {
        let linker = key(3);
        let enc = |p: &str| {
            crate::transcript::encode_value(
                &PhaseNotice {
                    project: project(p),
                    phase: Notified::Delivered,
                    failed_list: None,
                }
                .sign(&linker),
            )
        };
        assert_eq!(enc("COHORT-I").len(), enc("COHORT-O").len());
        assert_eq!(enc("COHORT-I"), enc("COHORT-I"));
    }
}
