//! Preparing a register's list for the chain, away from the engine.
//!
//! ```text
//!  tick: Duty::AnnounceList ─▶ ListJob (extract path, owner key, keys, seed)
//!     background thread:  extract ─▶ staging rows ─▶ shuffled positions
//!                         ─▶ per chunk: points ─▶ staging "outgoing"
//!                                       sealed items ─▶ staging "outgoing"
//!                         ─▶ PreparedList (announcement body, blinding)
//!  tick (engine lock, one transaction): announcement slot, every queued
//!     message into the outbox in order, the signed announcement, blinding
//! ```
//!
//! Reading, hashing, blinding and sealing a national list takes minutes; a
//! node that did it while holding its engine would answer nobody in that
//! time (other projects' chunks, status requests). The job works on its
//! own scratch file and a copy of what it needs; the engine only moves the
//! finished messages into its outbox, signs the announcement and marks the
//! list announced, all in one commit. A node stopped mid-way loses only
//! the scratch file and prepares the list again from the extract.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use kobling_protocol::{
    bounded::{BoundedString, BoundedVec},
    ident::{Identifier, ParseOptions},
    messages::{Message, MAX_ITEMS_PER_MESSAGE},
    owner::{shuffled_positions, OwnerList},
    refusal::{Refusal, RefusalCode},
    rng::ErasingRng,
    seal::{HpkePublicKey, SealedItem, WrappedKey},
    share::Share,
    transcript::{InvalidCount, ListAnnouncement, ProjectOrder},
    types::{Attempt, Digest, ListName, Name, Position, ProjectId, UnixTime},
};
use zeroize::Zeroizing;

use crate::{staging::Staging, store::StoreError};

pub(crate) mod stream;

/// The owner's step key.
pub(crate) enum OwnerKey {
    /// This register's share of the key domain (β sealed to `linker_key`).
    Share(Share),
    /// A delivery's source that holds no share of the domain: a split
    /// blinding, `β₁` sealed to `linker_key` (the holder's) and `β₂` to
    /// this key, hop 1's.
    Split(HpkePublicKey),
}

/// Everything needed to prepare one list, owned, so that it can run on its
/// own thread.
pub(crate) struct ListJob {
    pub(crate) project: ProjectId,
    pub(crate) me: Name,
    /// The approved extract's digest and path.
    pub(crate) extract: Digest,
    pub(crate) path: PathBuf,
    pub(crate) options: ParseOptions,
    /// What the owner steps with.
    pub(crate) owner_key: OwnerKey,
    pub(crate) researcher: HpkePublicKey,
    pub(crate) linker_key: HpkePublicKey,
    pub(crate) linker: Name,
    /// Where the points go first.
    pub(crate) first_hop: Name,
    pub(crate) chunk_size: u32,
    /// Seeds the list's randomness (permutation, blinding, keys): one
    /// key-erasing generator for this list, dropped when the job ends.
    pub(crate) seed: Zeroizing<[u8; 32]>,
    /// The order's variables for this register, in the order's order: the
    /// only columns sealed (issue 12 item 2, see [`variables_of`]).
    pub(crate) variables: Vec<String>,
    /// The node's mapping file of changed identifiers (`kobling node run
    /// --mapping`), applied as `kobling extract check --mapping` applies
    /// it (issue 12 item 4).
    pub(crate) mapping: Option<PathBuf>,
    /// The node's directory (scratch file), or none (in memory, tests).
    pub(crate) dir: Option<PathBuf>,
    /// Set to stop the job (project closed, node stopping).
    pub(crate) cancel: Arc<AtomicBool>,
    /// A gate the job waits at (for a message or a hang-up) before it
    /// starts: lets a test or an operator tool hold a preparation.
    pub(crate) gate: Option<std::sync::mpsc::Receiver<()>>,
    /// Chain v2 (PROTOCOL.md §6a): the node's Ed25519 key, which signs
    /// the owner's per-chunk statements; `None` drives chain v1.
    pub(crate) chain_v2: Option<ed25519_dalek::SigningKey>,
    /// The list is keyed by a register domain (a `pseudonym` column,
    /// PROTOCOL.md §10): this node is the domain's holder.
    pub(crate) pseudonymous: bool,
    /// The key domain of the list's header: the project's, or of a
    /// delivery the register domain's.
    pub(crate) domain: kobling_protocol::share::Domain,
    /// A delivery's id (the header's and the announcement's `delivery`).
    pub(crate) delivery: Option<Digest>,
    /// Of an identified project (PROTOCOL.md §10a): the register's
    /// reservation table file, or `None` if it keeps none. `None` for an
    /// ordinary project, which never reads the table.
    pub(crate) identified: Option<Option<PathBuf>>,
}

/// The person keys of a staged list, by person number: identifiers, or
/// a holder's pseudonyms `Ψ_R(x)`.
enum PersonKeys {
    Fnr(Vec<Identifier>),
    /// A holder's pseudonyms, as their canonical encodings.
    Pseudonym(Vec<kobling_protocol::group::WirePoint>),
}

impl PersonKeys {
    fn len(&self) -> usize {
        match self {
            PersonKeys::Fnr(ids) => ids.len(),
            PersonKeys::Pseudonym(points) => points.len(),
        }
    }

    /// The owner's points of one chunk of positions.
    fn points(
        &self,
        owner: &mut OwnerList,
        chunk: &[u32],
    ) -> Result<kobling_protocol::hop::PointChunk, kobling_protocol::owner::OwnerError> {
        match self {
            PersonKeys::Fnr(ids) => {
                let chunk_ids: Vec<&Identifier> = chunk.iter().map(|&p| &ids[p as usize]).collect();
                owner.points(&chunk_ids)
            }
            PersonKeys::Pseudonym(points) => {
                let keys: Vec<kobling_protocol::group::WirePoint> =
                    chunk.iter().map(|&p| points[p as usize]).collect();
                owner.points_of_pseudonyms(&keys)
            }
        }
    }
}

/// A list ready to announce: its messages wait in `staging`.
pub(crate) struct PreparedList {
    pub(crate) staging: Staging,
    /// The announcement's body, to be signed when it is queued.
    pub(crate) announcement: ListAnnouncement,
    /// β sealed to the linker.
    pub(crate) blinding: WrappedKey,
    pub(crate) invalid_rows: u64,
    pub(crate) seconds: f64,
    /// Of a split blinding: `D₂` and `β₂` sealed to hop 1.
    pub(crate) second: Option<kobling_protocol::owner::SecondBlinding>,
}

/// Why a list could not be prepared.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobError {
    /// Something the operator must fix (the extract, the order, a key):
    /// a stable code and a detail without identifiers.
    #[error("{0}")]
    Refused(Refusal),
    /// The scratch file (e.g. the disk is full).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job was told to stop.
    #[error("cancelled")]
    Cancelled,
}

fn refused(code: RefusalCode, detail: impl ToString) -> JobError {
    JobError::Refused(Refusal::new(code, detail.to_string()))
}

/// Persons sealed at a time.
const SEALED_BATCH: usize = 1024;

impl ListJob {
    /// The list this job prepares: the node's own.
    fn list(&self) -> ListName {
        ListName::of(&self.me)
    }

    fn check(&self) -> Result<(), JobError> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(JobError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Prepares the whole list (chain v1, whose announcement carries the
    /// roots of the whole list): every message waits in the staging file.
    ///
    /// # Errors
    ///
    /// [`JobError`].
    pub(crate) fn run(self) -> Result<PreparedList, JobError> {
        let mut s = self.start()?;
        while let Some(chunk) = s.next_chunk()? {
            s.staging.queue(&s.job.first_hop, &chunk.points)?;
            for m in &chunk.sealed {
                s.staging.queue(&s.job.linker, m)?;
            }
        }
        s.staging.queued_all()?;
        let (blinding, second) = (
            s.owner.blinding_for_linker().clone(),
            s.owner.second().cloned(),
        );
        let finished = s.finish()?;
        Ok(PreparedList {
            staging: finished.staging,
            announcement: finished.announcement,
            blinding,
            second,
            invalid_rows: finished.invalid_rows,
            seconds: finished.seconds,
        })
    }

    /// Reads and stages the extract, applies the reservation table,
    /// shuffles the persons and draws the list's keys: everything before
    /// the first point. The announcement is then known except for the
    /// roots (chain v2 announces it now, PROTOCOL.md §6a step 1).
    ///
    /// # Errors
    ///
    /// [`JobError`].
    pub(crate) fn start(self) -> Result<Started, JobError> {
        if let Some(gate) = &self.gate {
            let _ = gate.recv();
        }
        let started = Instant::now();
        let mapping = match &self.mapping {
            Some(path) => Some(
                crate::extract_file::load_mapping(path, self.options)
                    .map_err(|e| refused(RefusalCode::Extract, e))?,
            ),
            None => None,
        };
        let mut staging = Staging::create(self.dir.as_deref(), self.project.as_str())?;
        let (summary, ids) = {
            let (staging, cancel) = (&mut staging, &self.cancel);
            let sink = |person, values: Vec<String>| {
                if cancel.load(Ordering::Relaxed) {
                    return Err(std::io::Error::other("cancelled"));
                }
                staging.push(person, &values).map_err(std::io::Error::other)
            };
            if self.pseudonymous {
                crate::extract_file::pseudonymous::stage_pseudonymous_extract(&self.path, sink)
                    .map(|(summary, points)| (summary, PersonKeys::Pseudonym(points)))
            } else {
                crate::extract_file::stage_extract(&self.path, self.options, mapping.as_ref(), sink)
                    .map(|(summary, ids)| (summary, PersonKeys::Fnr(ids)))
            }
        }
        .map_err(|e| match self.check() {
            Err(cancelled) => cancelled,
            Ok(()) => refused(RefusalCode::Extract, e),
        })?;
        staging.seal_off()?;
        tracing::info!(node = %self.me, project = %self.project, persons = ids.len(), rows = summary.stats.rows, seconds = started.elapsed().as_secs_f64(), "extract read and staged");
        if summary.digest != self.extract {
            return Err(refused(
                RefusalCode::ExtractDigest,
                "the extract file changed since it was approved",
            ));
        }
        // Before anything is made: every requested variable is a column.
        let selected = select_columns(&summary.columns, &self.variables)?;
        // Reservasjon (§10a): of an identified project, the persons in
        // the register's reservation table are left out before anything
        // is made; only their number leaves this node, shown.
        let (kept, excluded) = match &self.identified {
            None => ((0..ids.len() as u32).collect::<Vec<u32>>(), None),
            Some(table) => {
                let PersonKeys::Fnr(fnrs) = &ids else {
                    return Err(refused(
                        RefusalCode::Order,
                        "an identified project's lists are fnr lists (a reservation is by fnr)",
                    ));
                };
                let kept = match table {
                    Some(path) => {
                        let loaded = crate::reservation_file::load_reservations(
                            path,
                            self.options,
                            mapping.clone(),
                        )
                        .map_err(|e| refused(RefusalCode::Extract, e))?;
                        tracing::info!(node = %self.me, project = %self.project, table = %loaded.digest, "reservation table applied: {}", crate::reservation_file::describe(&loaded.stats));
                        loaded.table.kept(fnrs)
                    }
                    None => (0..fnrs.len() as u32).collect(),
                };
                let count = (ids.len() - kept.len()) as u64;
                (
                    kept,
                    Some(kobling_protocol::reservation::ShownCount::of(count)),
                )
            }
        };
        let mut rng = ErasingRng::from_seed(self.seed.clone());
        let positions: Vec<u32> = shuffled_positions(kept.len() as u64, &mut rng)
            .map_err(|e| refused(RefusalCode::Prepare, e))?
            .into_iter()
            .map(|p| kept[p as usize])
            .collect();
        drop(kept);
        // The rows, in the order the chunks read them.
        staging.arrange(&positions, self.chunk_size as usize)?;
        let owner = match &self.owner_key {
            OwnerKey::Split(hop1) => OwnerList::new_split(
                &self.project,
                &self.list(),
                positions.len() as u64,
                &self.researcher,
                &self.linker_key,
                hop1,
                self.chunk_size,
                &mut rng,
            ),
            OwnerKey::Share(share) => OwnerList::new(
                &self.project,
                &self.list(),
                positions.len() as u64,
                share,
                &self.researcher,
                &self.linker_key,
                self.chunk_size,
                &mut rng,
            ),
        }
        .map_err(|e| refused(RefusalCode::Prepare, e))?;
        let stream = match &self.chain_v2 {
            Some(_) => Some(
                kobling_protocol::v2::OwnerStream::new(kobling_protocol::v2::ListHeader {
                    domain: self.domain.clone(),
                    delivery: self.delivery,
                    list: self.list(),
                    attempt: Attempt::FIRST,
                    mode: kobling_protocol::v2::Mode::Optimistic,
                    persons: positions.len() as u64,
                    chunk_size: self.chunk_size,
                })
                .map_err(|e| refused(RefusalCode::Prepare, e))?,
            ),
            None => None,
        };
        let stats = summary.stats;
        let announcement = ListAnnouncement {
            list: self.list(),
            extract: self.extract,
            rows: stats.rows,
            invalid: BoundedVec::new(
                stats
                    .invalid
                    .iter()
                    .map(|i| InvalidCount {
                        reason: BoundedString::new(i.reason).unwrap_or_default(),
                        count: i.count,
                    })
                    .collect(),
            )
            .map_err(|_| refused(RefusalCode::Extract, "too many kinds of invalid rows"))?,
            persons: positions.len() as u64,
            columns: BoundedVec::new(
                self.variables
                    .iter()
                    .map(|c| BoundedString::new(c.as_str()).unwrap_or_default())
                    .collect(),
            )
            .map_err(|_| refused(RefusalCode::Extract, "too many columns"))?,
            blinding_commitment: owner.blinding_commitment(),
            // The roots need the whole list: set by `Started::finish`
            // (chain v1); chain v2 records the sealed root in the owner's
            // list statement at the end.
            points_root: Digest::default(),
            sealed_root: Digest::default(),
            chunk_size: self.chunk_size,
            content_key: owner.wrapped_content_key().clone(),
            excluded,
        };
        tracing::info!(node = %self.me, project = %self.project, persons = positions.len(), seconds = started.elapsed().as_secs_f64(), "list grouped and shuffled, keys drawn");
        Ok(Started {
            invalid_rows: stats.invalid_rows(),
            job: self,
            started,
            staging,
            ids,
            positions,
            selected,
            owner,
            stream,
            announcement,
            next: 0,
            first: 0,
            points_time: Duration::ZERO,
            sealing_time: Duration::ZERO,
        })
    }
}

/// A list read, grouped and shuffled, its keys drawn: it makes its chunks
/// one at a time, in position order ([`next_chunk`](Self::next_chunk)),
/// then [`finish`](Self::finish)es. Memory: one identifier per person and
/// one chunk; the rows stay in the staging file.
pub(crate) struct Started {
    pub(crate) job: ListJob,
    started: Instant,
    pub(crate) staging: Staging,
    ids: PersonKeys,
    positions: Vec<u32>,
    selected: Selected,
    pub(crate) owner: OwnerList,
    stream: Option<kobling_protocol::v2::OwnerStream>,
    /// The announcement without its roots.
    pub(crate) announcement: ListAnnouncement,
    pub(crate) invalid_rows: u64,
    /// The next chunk.
    next: usize,
    /// The next sealed position.
    first: u64,
    points_time: Duration,
    sealing_time: Duration,
}

/// One chunk of the list: its points for the first hop (`Points`, or a
/// signed `ChunkV2`) and its persons' sealed items for the linker.
pub(crate) struct MadeChunk {
    /// The chunk index.
    pub(crate) index: u64,
    /// The points message for the first hop.
    pub(crate) points: Message,
    /// The sealed items messages for the linker, in position order.
    pub(crate) sealed: Vec<Message>,
}

/// A list whose every chunk was made.
pub(crate) struct Finished {
    pub(crate) staging: Staging,
    /// The announcement with its roots.
    pub(crate) announcement: ListAnnouncement,
    /// Chain v2: the owner's end-of-list statement.
    pub(crate) owner_list: Option<kobling_protocol::v2::OwnerList>,
    pub(crate) invalid_rows: u64,
    /// Since the job started.
    pub(crate) seconds: f64,
}

impl Started {
    /// Chunks in the list.
    pub(crate) fn chunks(&self) -> usize {
        self.positions
            .len()
            .div_ceil((self.job.chunk_size as usize).max(1))
    }

    /// Makes the next chunk: its points (signed for chain v2) and its
    /// persons' sealed items; `None` after the last.
    ///
    /// # Errors
    ///
    /// [`JobError`].
    pub(crate) fn next_chunk(&mut self) -> Result<Option<MadeChunk>, JobError> {
        let size = (self.job.chunk_size as usize).max(1);
        let index = self.next;
        let Some(chunk) = self.positions.chunks(size).nth(index) else {
            return Ok(None);
        };
        self.job.check()?;
        let t = Instant::now();
        let points = self
            .ids
            .points(&mut self.owner, chunk)
            .map_err(|e| refused(RefusalCode::Prepare, e))?;
        let points = match (&mut self.stream, &self.job.chain_v2) {
            (Some(stream), Some(key)) => Message::ChunkV2 {
                project: self.job.project.clone(),
                chunk: stream
                    .chunk(points.output.into_inner(), key)
                    .map_err(|e| refused(RefusalCode::Prepare, e))?,
            },
            _ => Message::Points(points),
        };
        self.points_time += t.elapsed();
        let t = Instant::now();
        let mut sealed = Vec::new();
        for batch in chunk.chunks(SEALED_BATCH) {
            // Only the requested columns are sealed: the others never
            // leave this node.
            let rows = batch
                .iter()
                .map(|&p| Ok(self.selected.project(self.staging.rows(p)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            let rows: Vec<&[Vec<String>]> = rows.iter().map(Vec::as_slice).collect();
            let items = self
                .owner
                .seal(&rows)
                .map_err(|e| refused(RefusalCode::Prepare, e))?;
            for part in sealed_batches(&items) {
                let n = part.len() as u64;
                let items =
                    BoundedVec::new(part.to_vec()).map_err(|_| StoreError::Corrupt("batch"))?;
                sealed.push(Message::SealedItems {
                    project: self.job.project.clone(),
                    list: self.job.list(),
                    first: Position(self.first),
                    items,
                });
                self.first += n;
            }
        }
        self.sealing_time += t.elapsed();
        self.next += 1;
        Ok(Some(MadeChunk {
            index: index as u64,
            points,
            sealed,
        }))
    }

    /// The roots, once every chunk was made, and chain v2's end-of-list
    /// statement.
    ///
    /// # Errors
    ///
    /// [`JobError`].
    pub(crate) fn finish(self) -> Result<Finished, JobError> {
        let header = self
            .owner
            .finish()
            .map_err(|e| refused(RefusalCode::Prepare, e))?;
        tracing::info!(node = %self.job.me, project = %self.job.project, points_seconds = self.points_time.as_secs_f64(), sealing_seconds = self.sealing_time.as_secs_f64(), "list points and sealed items made");
        let owner_list = match self.stream {
            Some(stream) => Some(
                stream
                    .finish(header.sealed_root)
                    .map_err(|e| refused(RefusalCode::Prepare, e))?,
            ),
            None => None,
        };
        let mut announcement = self.announcement;
        announcement.points_root = header.points_root;
        announcement.sealed_root = header.sealed_root;
        Ok(Finished {
            staging: self.staging,
            announcement,
            owner_list,
            invalid_rows: self.invalid_rows,
            seconds: self.started.elapsed().as_secs_f64(),
        })
    }
}

/// The order's variables for `register`, in the order's order (none if
/// the register is not in the order).
pub(crate) fn variables_of(order: &ProjectOrder, register: &Name) -> Vec<String> {
    order
        .registers
        .iter()
        .find(|r| &r.register == register)
        .map(|r| r.variables.iter().map(|v| v.to_string()).collect())
        .unwrap_or_default()
}

/// Where each requested variable is among an extract's variable columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selected(Vec<usize>);

impl Selected {
    /// A person's rows reduced to the requested columns, in the order's
    /// order.
    pub(crate) fn project(&self, rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
        rows.into_iter()
            .map(|row| {
                self.0
                    .iter()
                    .map(|&i| row.get(i).cloned().unwrap_or_default())
                    .collect()
            })
            .collect()
    }
}

/// The positions of `variables` among the extract's `columns` (its
/// variable columns, without the identifier).
///
/// # Errors
///
/// [`JobError::Refused`] naming every requested variable the extract
/// lacks, or one requested twice.
pub(crate) fn select_columns(
    columns: &[String],
    variables: &[String],
) -> Result<Selected, JobError> {
    let mut at = Vec::with_capacity(variables.len());
    let mut missing = Vec::new();
    for (k, v) in variables.iter().enumerate() {
        if variables[..k].contains(v) {
            return Err(refused(
                RefusalCode::Order,
                format!("the order requests variable {v} twice"),
            ));
        }
        match columns.iter().position(|c| c == v) {
            Some(i) => at.push(i),
            None => missing.push(v.as_str()),
        }
    }
    if !missing.is_empty() {
        return Err(refused(
            RefusalCode::Extract,
            format!(
                "the extract has no column {}, which the order requests (its columns: {})",
                missing.join(", "),
                columns.join(", ")
            ),
        ));
    }
    Ok(Selected(at))
}

/// A list being prepared on its own thread, or the last failure.
pub(crate) enum JobState {
    /// Running; `cancel` stops it.
    Running {
        handle: std::thread::JoinHandle<Result<PreparedList, JobError>>,
        cancel: CancelOnDrop,
    },
    /// Failed; not tried again before `retry_at` (Unix seconds).
    Failed { retry_at: UnixTime },
    /// Chain v2: a list streamed (`stream`), with the seed of its job
    /// (kept in the store once the list is announced) and when it began.
    Streaming {
        stream: stream::Streaming,
        seed: Zeroizing<[u8; 32]>,
        since: Instant,
    },
}

impl JobState {
    /// Starts `job` on a thread of its own.
    ///
    /// # Errors
    ///
    /// The OS refused a thread.
    pub(crate) fn spawn(job: ListJob) -> std::io::Result<Self> {
        let cancel = job.cancel.clone();
        let handle = std::thread::Builder::new()
            .name(format!("prepare {}", job.project))
            .spawn(move || job.run())?;
        Ok(Self::Running {
            handle,
            cancel: CancelOnDrop(cancel),
        })
    }
}

/// Stops a job when its state is dropped (project shredded, node stopped):
/// it ends at its next chunk or row and removes its scratch file.
pub(crate) struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// How long a failed preparation waits before it is tried again: long
/// enough not to re-read a national extract twice a second, short enough
/// for an operator who fixed the file.
pub(crate) const RETRY_AFTER_SECONDS: u64 = 10;

/// Sealed items in batches of at most [`MAX_ITEMS_PER_MESSAGE`] items and
/// about 8 MiB.
pub(crate) fn sealed_batches(items: &[SealedItem]) -> Vec<&[SealedItem]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, item) in items.iter().enumerate() {
        if i > start
            && (i - start == MAX_ITEMS_PER_MESSAGE || bytes + item.as_bytes().len() > 8 << 20)
        {
            out.push(&items[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += item.as_bytes().len();
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_the_requested_columns_are_kept_in_the_order_s_order() {
        let columns = strings(&["icd10", "secret", "year"]);
        let sel = select_columns(&columns, &strings(&["year", "icd10"])).expect("present");
        assert_eq!(
            sel.project(vec![strings(&["F20", "MARKER", "2019"])]),
            vec![strings(&["2019", "F20"])]
        );
        let e = select_columns(&columns, &strings(&["year", "income"])).expect_err("missing");
        assert!(e.to_string().contains("no column income"), "{e}");
        assert!(select_columns(&columns, &strings(&["year", "year"])).is_err());
        assert_eq!(
            select_columns(&columns, &[])
                .expect("none")
                .project(vec![strings(&["a", "b", "c"])]),
            vec![Vec::<String>::new()]
        );
    }
}
