//! Strict mode at a node (PROTOCOL.md §6a step 6; `docs/protocol.md`,
//! "Strict mode in the node"): a list whose check failed goes again,
//! unchanged, with per-chunk proofs.
//!
//! ```text
//!  linker: check of attempt 0 failed ─▶ kept (not published), Z and the
//!          finals discarded, ListRetry{list, 1} recorded at once
//!  owner:  Duty::Resend ─▶ the kept y again, statements and OwnerList
//!          for attempt 1 ─ChunkV2 (strict)─▶ hop 1 … m ─▶ linker
//!  hops:   RegisterHop/LinkerHop in strict mode (the header's mode):
//!          a proof that fails names its sender (ChainStopped)
//!  check of attempt 1: passed ─▶ published with the others, linked;
//!          failed ─▶ every kept check recorded, the project closed
//! ```
//!
//! The failed check is recorded only later (before the link summary or
//! the closure): list checks are withheld from registers, and a
//! register's copy of the transcript ends at the first withheld entry, so
//! a check recorded at once would hide the strict attempt's records (which
//! every hop needs for σ) from every register.

use kobling_protocol::{
    messages::Message,
    project::{ProjectView, Step},
    refusal::RefusalCode,
    transcript::{self, Body},
    types::{Attempt, ListName, ProjectId, UnixTime},
    v2::{HopError, ListCheck, ListRetry, OwnerStream},
};

use super::{KEPT_Z, PENDING_CHECK, SENT_CHECK};
use crate::engine::{
    error::{refuse, Outcome, Refused},
    Engine,
};
use crate::store::StoreError;

impl Engine {
    /// The linker: `list`'s attempt `check.attempt` failed its check; the
    /// check is kept for later, the attempt's output discarded, and the
    /// list sent again as the next attempt (in one transaction).
    pub(super) fn retry_list(
        &mut self,
        project: &ProjectId,
        list: &ListName,
        check: &ListCheck,
        now: UnixTime,
    ) -> Outcome<()> {
        let attempt = check.attempt.next();
        let retry = ListRetry {
            list: list.clone(),
            attempt,
        };
        let signed = self.sign(project, Body::ListRetry(retry), now);
        let bytes = transcript::encode_value(check);
        let (manifest, signing) = (&self.manifest, &self.signing);
        self.store.transaction(|tx| {
            tx.put_v2(
                project,
                list,
                PENDING_CHECK,
                u64::from(check.attempt),
                &bytes,
            )?;
            tx.delete_finals(project, list)?;
            tx.delete_v2(project, list, KEPT_Z)?;
            crate::engine::sequencer::append(tx, manifest, signing, signed)?;
            Ok::<_, Refused>(())
        })?;
        tracing::warn!(node = %self.me, %project, %list, %attempt, "list check failed: the list goes again in strict mode");
        Ok(())
    }

    /// The list's owner: the linker sent the list again (`ListRetry`):
    /// the kept output `y`, unchanged, with statements and the owner's
    /// list statement for `attempt` (strict mode), to hop 1.
    pub(in crate::engine) fn resend_list(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        list: &ListName,
        attempt: Attempt,
    ) -> Outcome<()> {
        if self
            .store
            .transaction(|tx| tx.marked(project, Step::Resend))?
        {
            return Ok(());
        }
        let l = view
            .v2_list(list)
            .filter(|l| l.attempt == attempt)
            .ok_or_else(|| refuse(RefusalCode::Check, "no such attempt"))?;
        let header = l.header(crate::engine::delivery_run::key_domain(view, project));
        // The sealed root of the first attempt's statement: the same
        // sealed items (the linker keeps them).
        let sealed_root = view
            .announcement(list)
            .map(|a| a.sealed_root)
            .ok_or_else(|| refuse(RefusalCode::Check, "no announcement"))?;
        let mut stream =
            OwnerStream::new(header).map_err(|e| refuse(RefusalCode::Hop, e.to_string()))?;
        let mut chunks = Vec::new();
        let signing = self.signing.clone();
        let failed = self.for_each_kept_y(project, list, |points| -> Result<(), HopError> {
            chunks.push(stream.chunk(points, &signing)?);
            Ok(())
        })?;
        if let Some(e) = failed {
            return Err(refuse(RefusalCode::Hop, e.to_string()));
        }
        let owner_list = stream
            .finish(sealed_root)
            .map_err(|e| refuse(RefusalCode::Hop, e.to_string()))?;
        let now = crate::engine::now_of(&self.store.entries(project)?);
        let statement = self.sign(project, Body::OwnerListV2(owner_list), now);
        let linker = self.linker();
        let next = view
            .hops_of(list)
            .first()
            .cloned()
            .unwrap_or_else(|| linker.clone());
        let count = chunks.len();
        self.store.transaction(|tx| {
            if !tx.mark(project, Step::Resend)? {
                return Ok::<_, Refused>(());
            }
            for chunk in chunks {
                tx.send(
                    project,
                    &next,
                    &Message::ChunkV2 {
                        project: project.clone(),
                        chunk,
                    },
                )?;
            }
            tx.send(project, &linker, &Message::Statement(statement))?;
            Ok(())
        })?;
        tracing::info!(node = %self.me, %project, %list, %attempt, chunks = count, "list sent again in strict mode");
        Ok(())
    }

    /// The linker, before it closes a project (`publish_once`, the
    /// closure): every list check it kept
    /// (a failed attempt's, or one waiting for the other lists) goes into
    /// the transcript at once, in list and attempt order, so the closed
    /// transcript shows every failed attempt, and the closed notice names
    /// the list (`ProjectView::failed_list`). A check the sequencer
    /// refuses is logged and left.
    pub(in crate::engine) fn record_kept_checks(
        &mut self,
        project: &ProjectId,
        now: UnixTime,
    ) -> Outcome<()> {
        let entries = self.store.entries(project)?;
        let lists = ProjectView::new(&self.manifest, &entries).lists();
        let mut kept: Vec<(ListName, u64, Vec<u8>)> = Vec::new();
        self.store.transaction(|tx| {
            for list in &lists {
                tx.for_each_v2(project, list, PENDING_CHECK, |attempt, bytes| {
                    kept.push((list.clone(), attempt, bytes.to_vec()));
                    Ok(())
                })?;
            }
            Ok::<_, Refused>(())
        })?;
        kept.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        for (list, attempt, bytes) in kept {
            let check: ListCheck =
                postcard::from_bytes(&bytes).map_err(|_| StoreError::Corrupt("list check"))?;
            let signed = self.sign(project, Body::ListCheck(check), now);
            let (manifest, signing, me) = (&self.manifest, &self.signing, &self.me);
            self.store.transaction(|tx| {
                match crate::engine::sequencer::append(tx, manifest, signing, signed) {
                    Ok(_) => {
                        tx.put_v2(project, &list, SENT_CHECK, attempt, &bytes)?;
                        tx.delete_v2_key(project, &list, PENDING_CHECK, attempt)?;
                    }
                    Err(Refused::Refusal(r)) => {
                        tracing::warn!(node = %me, %project, %list, attempt, refusal = %r, "a kept list check was not recorded before the closure");
                    }
                    Err(e) => return Err(e),
                }
                Ok::<_, Refused>(())
            })?;
        }
        Ok(())
    }
}
