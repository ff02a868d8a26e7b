//! Stored values in the form an earlier version of the node wrote them,
//! read into today's types (a register's state database outlives an
//! upgrade).

use kobling_protocol::{
    messages::Message,
    notice::{Notified, PhaseNotice, SignedPhaseNotice},
    transcript::Sig,
    types::ProjectId,
};
use serde::Deserialize;

/// A phase notice as stored before it named the failed list (`notices`
/// table). Its signature still verifies: a notice naming no list signs the
/// same digest as before (`PhaseNotice::digest`).
#[derive(Deserialize)]
pub(super) struct LegacyNotice {
    project: ProjectId,
    phase: Notified,
    signature: Sig,
}

impl From<LegacyNotice> for SignedPhaseNotice {
    fn from(old: LegacyNotice) -> Self {
        SignedPhaseNotice {
            notice: PhaseNotice {
                project: old.project,
                phase: old.phase,
                failed_list: None,
            },
            signature: old.signature,
        }
    }
}

/// A queued message (`outbox` table) in the form an earlier version
/// encoded it, if it is one: a phase notice (wire kind 18) without the
/// failed list. Without this, such a notice still queued at an upgrade
/// would stop its destination's queue.
pub(super) fn message(bytes: &[u8]) -> Option<Message> {
    let (&kind, body) = bytes.split_first()?;
    if kind != NOTICE_KIND {
        return None;
    }
    match postcard::take_from_bytes::<LegacyNotice>(body) {
        Ok((old, [])) => Some(Message::Notice(old.into())),
        _ => None,
    }
}

/// `Message::Notice`'s wire kind (`docs/protocol.md` §12).
const NOTICE_KIND: u8 = 18;

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use kobling_protocol::manifest::Ed25519Key;
    use serde::Serialize;

    use super::*;

    /// The stored form before `failed_list`: `{ { project, phase }, signature }`.
    #[derive(Serialize)]
    struct Before<'a> {
        project: &'a ProjectId,
        phase: Notified,
        signature: &'a Sig,
    }

    #[test]
    fn a_notice_stored_before_the_failed_list_reads_and_still_verifies() {
        let linker = SigningKey::from_bytes(&[7; 32]);
        let project = ProjectId::new("P-1").expect("valid");
        let signed = PhaseNotice {
            project: project.clone(),
            phase: Notified::Closed,
            failed_list: None,
        }
        .sign(&linker);
        let old = postcard::to_allocvec(&Before {
            project: &project,
            phase: Notified::Closed,
            signature: &signed.signature,
        })
        .expect("encodes");
        assert!(postcard::from_bytes::<SignedPhaseNotice>(&old).is_err());
        let read: SignedPhaseNotice = postcard::from_bytes::<LegacyNotice>(&old)
            .expect("decodes")
            .into();
        assert_eq!(read, signed);
        let lk = Ed25519Key(linker.verifying_key().to_bytes());
        assert_eq!(read.check(&project, &lk), Ok(Notified::Closed));

        // The same notice queued as a message before the upgrade.
        let mut queued = vec![NOTICE_KIND];
        queued.extend_from_slice(&old);
        assert!(kobling_protocol::messages::decode(&queued).is_err());
        assert_eq!(message(&queued), Some(Message::Notice(signed.clone())));
        assert_eq!(
            kobling_protocol::messages::encode(&Message::Notice(signed))[0],
            NOTICE_KIND
        );
        // Anything else stays undecodable.
        queued.push(0);
        assert_eq!(message(&queued), None);
        assert_eq!(message(&[17, 0]), None);
        assert_eq!(message(&[]), None);
    }
}
