//! A chain v2 list streamed (docs/protocol.md §19): the announcement as
//! soon as the list is grouped, shuffled and its keys drawn; then each
//! chunk as it is made; the owner's end-of-list statement last.
//!
//! ```text
//!  ListJob::start ─▶ Announce ─▶ Chunk 0 ─▶ Chunk 1 ─▶ … ─▶ Done (OwnerListV2)
//!   (extract read, grouped, shuffled; β, content key drawn)
//!  thread (daemon): events through a channel of STREAM_AHEAD chunks: the
//!     job waits when the engine has not taken them (memory stays bounded)
//!  inline (deterministic harnesses): at most `per_tick` chunks per tick
//! ```
//!
//! The engine commits each event in its own transaction
//! (`engine/list_stream.rs`). Everything the job makes follows from its
//! 32-byte seed and the extract: a node restarted mid-stream runs the job
//! again from the same seed (kept in its store until the end-of-list
//! statement is queued) and sends only the chunks it had not queued.

use std::{
    sync::mpsc::{sync_channel, Receiver, TryRecvError},
    thread::JoinHandle,
};

use kobling_protocol::{
    owner::SecondBlinding, seal::WrappedKey, transcript::ListAnnouncement, v2::OwnerList,
};

use super::{CancelOnDrop, JobError, ListJob, MadeChunk, Started};

/// Chunks a streaming job makes ahead of the engine before it waits.
pub(crate) const STREAM_AHEAD: usize = 4;

/// What a streamed list's job hands the engine, in this order.
pub(crate) enum StreamEvent {
    /// The announcement (no roots) and the sealed blinding(s).
    Announce(Box<Announced>),
    /// The next chunk.
    Chunk(Box<MadeChunk>),
    /// Every chunk was made: the owner's end-of-list statement.
    Done(Box<Done>),
}

/// What the announcement needs.
pub(crate) struct Announced {
    /// The announcement, without roots.
    pub(crate) announcement: ListAnnouncement,
    /// β (β₁) sealed to whoever removes it.
    pub(crate) blinding: WrappedKey,
    /// Of a split blinding: `D₂` and β₂ sealed to hop 1.
    pub(crate) second: Option<SecondBlinding>,
    /// Chunks the list will have.
    pub(crate) chunks: u64,
    pub(crate) invalid_rows: u64,
    /// Since the job started.
    pub(crate) seconds: f64,
}

/// The end of a streamed list.
pub(crate) struct Done {
    /// The owner's end-of-list statement (unsigned body).
    pub(crate) owner_list: OwnerList,
    /// Since the job started.
    pub(crate) seconds: f64,
}

fn announced(s: &Started) -> StreamEvent {
    StreamEvent::Announce(Box::new(Announced {
        announcement: s.announcement.clone(),
        blinding: s.owner.blinding_for_linker().clone(),
        second: s.owner.second().cloned(),
        chunks: s.chunks() as u64,
        invalid_rows: s.invalid_rows,
        seconds: s.started.elapsed().as_secs_f64(),
    }))
}

fn done(s: Started) -> Result<StreamEvent, JobError> {
    let finished = s.finish()?;
    let owner_list = finished.owner_list.ok_or_else(|| {
        super::refused(
            kobling_protocol::refusal::RefusalCode::Prepare,
            "a streamed list is a chain v2 list",
        )
    })?;
    Ok(StreamEvent::Done(Box::new(Done {
        owner_list,
        seconds: finished.seconds,
    })))
}

/// A streamed list's job: on a thread of its own, or made within the
/// engine's ticks.
pub(crate) enum Streaming {
    /// On a thread; events wait in a bounded channel.
    Thread {
        events: Receiver<Result<StreamEvent, JobError>>,
        handle: JoinHandle<()>,
        _cancel: CancelOnDrop,
    },
    /// Within the ticks.
    Inline {
        job: Option<Box<ListJob>>,
        started: Option<Box<Started>>,
        /// Chunks made per tick.
        per_tick: usize,
    },
}

impl Streaming {
    /// Starts `job` on a thread of its own.
    ///
    /// # Errors
    ///
    /// The OS refused a thread.
    pub(crate) fn spawn(job: ListJob) -> std::io::Result<Self> {
        let cancel = job.cancel.clone();
        let (tx, events) = sync_channel(STREAM_AHEAD);
        let handle = std::thread::Builder::new()
            .name(format!("stream {}", job.project))
            .spawn(move || {
                let run = || -> Result<(), JobError> {
                    let send = |e: StreamEvent| tx.send(Ok(e)).map_err(|_| JobError::Cancelled);
                    let mut s = job.start()?;
                    send(announced(&s))?;
                    while let Some(chunk) = s.next_chunk()? {
                        send(StreamEvent::Chunk(Box::new(chunk)))?;
                    }
                    send(done(s)?)
                };
                if let Err(e) = run() {
                    let _ = tx.send(Err(e));
                }
            })?;
        Ok(Self::Thread {
            events,
            handle,
            _cancel: CancelOnDrop(cancel),
        })
    }

    /// `job`, made within the ticks, `per_tick` chunks at a time.
    pub(crate) fn inline(job: ListJob, per_tick: usize) -> Self {
        Self::Inline {
            job: Some(Box::new(job)),
            started: None,
            per_tick: per_tick.max(1),
        }
    }

    /// Whether the job still makes events: a thread that runs, or an
    /// inline job (kept only while it has chunks left to make).
    pub(crate) fn running(&self) -> bool {
        match self {
            Self::Thread { handle, .. } => !handle.is_finished(),
            Self::Inline { .. } => true,
        }
    }

    /// The events ready now, in order; the last may be the job's error.
    /// `finished` once the job has nothing more to give.
    pub(crate) fn poll(&mut self) -> (Vec<Result<StreamEvent, JobError>>, bool) {
        let mut out = Vec::new();
        match self {
            Self::Thread { events, .. } => loop {
                match events.try_recv() {
                    Ok(e) => {
                        let end = matches!(e, Err(_) | Ok(StreamEvent::Done(_)));
                        out.push(e);
                        if end {
                            return (out, true);
                        }
                    }
                    Err(TryRecvError::Empty) => return (out, false),
                    Err(TryRecvError::Disconnected) => return (out, true),
                }
            },
            Self::Inline {
                job,
                started,
                per_tick,
            } => {
                if let Some(job) = job.take() {
                    match job.start() {
                        Ok(s) => {
                            out.push(Ok(announced(&s)));
                            *started = Some(Box::new(s));
                        }
                        Err(e) => {
                            out.push(Err(e));
                            return (out, true);
                        }
                    }
                }
                let Some(s) = started.as_mut() else {
                    return (out, true);
                };
                for _ in 0..*per_tick {
                    match s.next_chunk() {
                        Ok(Some(chunk)) => out.push(Ok(StreamEvent::Chunk(Box::new(chunk)))),
                        Ok(None) => {
                            let s = started.take().map(|s| *s);
                            out.extend(s.map(done));
                            return (out, true);
                        }
                        Err(e) => {
                            out.push(Err(e));
                            return (out, true);
                        }
                    }
                }
                (out, false)
            }
        }
    }
}
