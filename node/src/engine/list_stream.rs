//! A register's own chain v2 list, streamed (docs/protocol.md §19): the
//! announcement goes out once the list is grouped and shuffled, each chunk
//! as it is made, the owner's end-of-list statement last. Each step
//! commits in its own transaction.
//!
//! ```text
//!  Duty::AnnounceList / Duty::StreamList ─▶ stream()
//!    job (crate::prepare::stream): Announce ─▶ Chunk c … ─▶ Done
//!    Announce: mark "announce", keep seed + announcement; queue ListAnnouncedV2, β (β₂ to hop 1)
//!    Chunk c:  keep y_c (kind "y"); queue ChunkV2 to hop 1, sealed items to the linker
//!    Done:     queue OwnerListV2 to the linker; forget seed + announcement
//! ```
//!
//! **Restart.** The job's output follows from its seed and the extract.
//! The seed is kept (kind `seed`, state.db: 0600, `secure_delete`) from the
//! announcement until the end-of-list statement is queued. A node that
//! restarts mid-stream runs the job again from that seed; the announcement
//! it makes again must be the one it queued (else the extract, the
//! reservation table or the mapping changed: refused, nothing sent), each
//! chunk already kept must have the same digest, and only the chunks not
//! yet kept are queued. "Announce marked, no seed kept" means the list is
//! wholly queued.

use std::time::Instant;

use kobling_protocol::{
    bounded::BoundedVec,
    messages::Message,
    project::{ProjectView, Step},
    refusal::RefusalCode,
    transcript::{self, Body},
    types::{Digest, ListName, Name, ProjectId, UnixTime},
    v2::{chunk_digest, ListAnnouncementV2},
};
use rand_chacha::rand_core::Rng;
use zeroize::Zeroizing;

use super::{
    chain_v2::KEPT_Y,
    error::{refuse, EngineError, Outcome},
    Engine,
};
use crate::{
    prepare::{
        stream::{Announced, Done, StreamEvent, Streaming},
        JobState, MadeChunk, RETRY_AFTER_SECONDS,
    },
    store::StoreError,
};

/// The streaming list's seed (kind of the `chain_v2` table, key 0).
const SEED: &str = "seed";
/// The streaming list's announcement body as queued (key 0).
const ANNOUNCED: &str = "announced";

impl Engine {
    /// Chain v2 owner: starts, follows or resumes this node's streamed
    /// list, committing what its job made since the last tick.
    pub(super) fn stream(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        extract: Digest,
        now: UnixTime,
    ) -> Outcome<()> {
        let me = ListName::of(&self.me);
        let (marked, kept_seed) = self.store.transaction(|tx| {
            Ok::<_, StoreError>((
                tx.marked(project, Step::Announce)?,
                tx.get_v2(project, &me, SEED, 0)?.map(Zeroizing::new),
            ))
        })?;
        if marked && kept_seed.is_none() {
            // Wholly queued.
            self.jobs.remove(project);
            return Ok(());
        }
        let (mut streaming, seed, since) = match self.jobs.remove(project) {
            Some(JobState::Failed { retry_at }) if now < retry_at => {
                self.jobs
                    .insert(project.clone(), JobState::Failed { retry_at });
                return Ok(());
            }
            Some(JobState::Streaming {
                stream,
                seed,
                since,
            }) => (stream, seed, since),
            Some(running @ JobState::Running { .. }) => {
                // A chain v1 job (configuration changed under it): let it end.
                self.jobs.insert(project.clone(), running);
                return Ok(());
            }
            Some(JobState::Failed { .. }) | None => {
                let seed: Zeroizing<[u8; 32]> = match &kept_seed {
                    Some(bytes) => {
                        let mut s = Zeroizing::new([0u8; 32]);
                        if bytes.len() != 32 {
                            return Err(StoreError::Corrupt("stream seed").into());
                        }
                        s.copy_from_slice(bytes);
                        tracing::info!(node = %self.me, %project, "resuming the list's stream from its seed");
                        s
                    }
                    None => {
                        let mut s = Zeroizing::new([0u8; 32]);
                        self.rng.fill_bytes(s.as_mut());
                        s
                    }
                };
                let job = self.list_job(project, view, extract, seed.clone())?;
                let stream = if self.config.background_preparation {
                    tracing::info!(node = %self.me, %project, "preparing the list (streamed)");
                    Streaming::spawn(job).map_err(EngineError::Spawn)?
                } else {
                    Streaming::inline(job, self.config.stream_chunks_per_tick)
                };
                (stream, seed, Instant::now())
            }
        };
        let (events, finished) = streaming.poll();
        for event in events {
            let done = match event {
                Ok(StreamEvent::Announce(a)) => self.commit_announce(project, view, *a, &seed, now),
                Ok(StreamEvent::Chunk(c)) => self.commit_chunk(project, view, *c, since),
                Ok(StreamEvent::Done(d)) => self.commit_done(project, *d, since, now),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = done {
                // The job is dropped (it stops); tried again later, from
                // the kept seed if the list was announced.
                self.jobs.insert(
                    project.clone(),
                    JobState::Failed {
                        retry_at: now.plus(RETRY_AFTER_SECONDS),
                    },
                );
                return Err(e);
            }
        }
        if !finished {
            self.jobs.insert(
                project.clone(),
                JobState::Streaming {
                    stream: streaming,
                    seed,
                    since,
                },
            );
        }
        Ok(())
    }

    /// Where this node's list goes first: hop 1, or the linker.
    fn first_hop(&self, view: &ProjectView<'_>) -> Name {
        view.hops_of(&ListName::of(&self.me))
            .first()
            .cloned()
            .unwrap_or_else(|| self.linker())
    }

    /// The announcement: signed and queued with the sealed blinding(s),
    /// the seed kept; after a restart, checked against the one queued.
    fn commit_announce(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        a: Announced,
        seed: &Zeroizing<[u8; 32]>,
        now: UnixTime,
    ) -> Outcome<()> {
        let plan = view.delivery_plan();
        let mut body: ListAnnouncementV2 = super::chain_v2::announcement_v2(a.announcement);
        body.delivery = plan.as_ref().map(|p| p.delivery);
        if let Some(second) = &a.second {
            // A split blinding announces [D₁, D₂].
            body.blinding = BoundedVec::new(vec![body.blinding[0], second.commitment])
                .map_err(|_| StoreError::Corrupt("blinding"))?;
        }
        let encoded = transcript::encode_value(&body);
        let (persons, rows) = (body.persons, body.rows);
        let signed = self.sign(project, Body::ListAnnouncedV2(body), now);
        let linker = self.linker();
        // β goes to whoever removes it: the linker, or a delivery's holder.
        let beta_to = plan
            .as_ref()
            .map_or_else(|| linker.clone(), |p| p.spec.holder.clone());
        let hop1 = plan.as_ref().and_then(|p| p.hops.first().cloned());
        let me = ListName::of(&self.me);
        let fresh = self.store.transaction(|tx| {
            if !tx.mark(project, Step::Announce)? {
                // A restart: the list made again must be the one announced.
                if tx.get_v2(project, &me, ANNOUNCED, 0)?.as_deref() != Some(&encoded[..]) {
                    return Err(refuse(
                        RefusalCode::Prepare,
                        "the list made again after a restart is not the one announced: the extract, the reservation table or the mapping file changed while the list was being sent; restore them (the list resumes from where it stopped)",
                    ));
                }
                return Ok(false);
            }
            tx.put_v2(project, &me, SEED, 0, seed.as_ref())?;
            tx.put_v2(project, &me, ANNOUNCED, 0, &encoded)?;
            tx.send(project, &linker, &Message::Statement(signed))?;
            // β₂ reaches hop 1 before the first chunk, which it needs.
            if let (Some(second), Some(hop1)) = (&a.second, &hop1) {
                tx.send(
                    project,
                    hop1,
                    &Message::Blinding {
                        project: project.clone(),
                        list: me.clone(),
                        sealed: second.sealed.clone(),
                    },
                )?;
            }
            tx.send(
                project,
                &beta_to,
                &Message::Blinding {
                    project: project.clone(),
                    list: me.clone(),
                    sealed: a.blinding,
                },
            )?;
            Ok(true)
        })?;
        if fresh {
            tracing::info!(node = %self.me, %project, persons, rows, invalid = a.invalid_rows, chunks = a.chunks, seconds = a.seconds, "list announced (streamed: chunks follow)");
        }
        Ok(())
    }

    /// One chunk: `y_c` kept, the chunk queued to hop 1 and its sealed
    /// items to the linker, in one transaction; a chunk kept before a
    /// restart is checked and not queued again.
    fn commit_chunk(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        c: MadeChunk,
        since: Instant,
    ) -> Outcome<()> {
        let Message::ChunkV2 { chunk, .. } = &c.points else {
            return Err(StoreError::Corrupt("a streamed chunk that is not chain v2").into());
        };
        let digest = chunk.statement.statement.output;
        let y = transcript::encode_value(&chunk.points);
        let (me, linker, first_hop) = (ListName::of(&self.me), self.linker(), self.first_hop(view));
        let queued = self.store.transaction(|tx| {
            if let Some(kept) = tx.get_v2(project, &me, KEPT_Y, c.index)? {
                let kept: Vec<kobling_protocol::group::WirePoint> =
                    postcard::from_bytes(&kept).map_err(|_| StoreError::Corrupt("kept y"))?;
                if chunk_digest(&kept) != digest {
                    return Err(refuse(
                        RefusalCode::Prepare,
                        format!(
                            "chunk {} made again after a restart differs from the one sent: the list's inputs changed while it was being sent",
                            c.index
                        ),
                    ));
                }
                return Ok(false);
            }
            // Chain v2: the owner keeps its output y until the list is
            // checked (A_0 = Σ c_t·y_t), in this node's store (0600,
            // shredded with the project).
            tx.put_v2(project, &me, KEPT_Y, c.index, &y)?;
            tx.send(project, &first_hop, &c.points)?;
            for m in &c.sealed {
                tx.send(project, &linker, m)?;
            }
            Ok(true)
        })?;
        if queued && c.index == 0 {
            tracing::info!(node = %self.me, %project, seconds = since.elapsed().as_secs_f64(), "first chunk queued");
        } else if queued {
            tracing::debug!(node = %self.me, %project, chunk = c.index, "chunk queued");
        }
        Ok(())
    }

    /// The owner's end-of-list statement, signed and queued to the linker;
    /// the seed forgotten.
    fn commit_done(
        &mut self,
        project: &ProjectId,
        d: Done,
        since: Instant,
        now: UnixTime,
    ) -> Outcome<()> {
        let chunks = d.owner_list.chunks.len();
        let signed = self.sign(project, Body::OwnerListV2(d.owner_list), now);
        let (me, linker) = (ListName::of(&self.me), self.linker());
        let queued = self.store.transaction(|tx| {
            if tx.get_v2(project, &me, SEED, 0)?.is_none() {
                return Ok::<_, StoreError>(false);
            }
            tx.send(project, &linker, &Message::Statement(signed))?;
            tx.delete_v2(project, &me, SEED)?;
            tx.delete_v2(project, &me, ANNOUNCED)?;
            Ok(true)
        })?;
        if queued {
            tracing::info!(node = %self.me, %project, chunks, seconds = d.seconds, stream_seconds = since.elapsed().as_secs_f64(), "list streamed: the owner's list statement queued");
        }
        Ok(())
    }
}
