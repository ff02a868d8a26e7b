//! The node's embedded state: SQLite (bundled) in WAL mode, one file
//! `DIR/state.db`.
//!
//! Everything a node needs to continue after a stop or a crash lives here,
//! and every step that changes state commits in one transaction together
//! with the messages it produces (the outbox), so a crash either happened
//! before the step (it is redone from the same inputs) or after it (its
//! messages are still queued). Nothing here is an identifier or an identity
//! point: registers keep their extracts where the operator put them, and
//! only blinded points, sealed items and transcript entries are stored (at
//! a register domain's holder also the domain's pseudonyms `Ψ_R` with the
//! rows delivered under them, never an fnr).
//!
//! | table | what |
//! |---|---|
//! | `entries` | the node's copy of each project's transcript |
//! | `extracts` | approved extract files (path by digest), registers |
//! | `hops` | per list and hop: chunk records so far, done flag (`store/chain_rows.rs`) |
//! | `outbox` | messages to send, by destination, in order, until acknowledged |
//! | `sent` | one-shot steps already taken (commit, announce, …) |
//! | `blindings`, `sealed_batches`, `finals`, `chain_v2` | the linker's list blindings, sealed items (one row per message, `store/sealed_rows.rs`), final pseudonyms; chain v2's working blobs (`store/chain_rows.rs`) |
//! | `notices` | at a register: the linker's latest phase notice per project (linked, delivered, closed) |
//! | `domain_rows`, `domain_deliveries` | at a domain's holder: its table, keyed by `Ψ_R` (`store/domain_rows.rs`) |

use std::path::{Path, PathBuf};

use kobling_protocol::{
    messages::{self, Message},
    notice::SignedPhaseNotice,
    project::Step,
    transcript::{self, Entry},
    types::{Digest, ListName, Name, ProjectId, UnixTime},
};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};

use self::legacy::LegacyNotice;
use crate::private_fs::PrivateFsError;

mod chain_rows;
mod disclosure_log;
mod domain;
mod domain_rows;
mod innsyn;
mod legacy;
mod sealed_rows;
pub(crate) use self::chain_rows::{HopKey, LinkerRow, LinkerTable};
pub(crate) use self::domain::ReshareSession;
pub use self::domain_rows::{DomainRow, StoredDelivery};

/// A state-store error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("state database: {0}{hint}", hint = write_hint(.0))]
    Sql(#[from] rusqlite::Error),
    /// A stored value does not decode (the database was damaged).
    #[error("state database holds a damaged {0}")]
    Corrupt(&'static str),
    /// A scratch file could not be created or restricted.
    #[error("scratch file: {0}")]
    Scratch(#[source] std::io::Error),
    /// The database or a scratch file is not private, or not a regular
    /// file (issue 18 item 8).
    #[error(transparent)]
    Private(#[from] PrivateFsError),
}

/// How many bytes of queued messages [`Store::outbox`] loads at a time
/// per destination.
pub(crate) const OUTBOX_BATCH_BYTES: usize = 8 << 20;

/// What an operator should look at when SQLite cannot write or open.
fn write_hint(e: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode::{CannotOpen, DiskFull, ReadOnly, SystemIoFailure};
    match e.sqlite_error_code() {
        Some(DiskFull | SystemIoFailure | ReadOnly | CannotOpen) => {
            " (is the disk full, or the node's directory not writable?)"
        }
        _ => "",
    }
}

/// Opens the SQLite database at `path`, which must exist (made private
/// beforehand): read-write, never through a symbolic link.
pub(crate) fn open_existing(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
}

/// The node's state database.
pub struct Store {
    conn: Connection,
    /// The node's mapping file of changed identifiers (`kobling node run
    /// --mapping`): a setting of the node, not of the database, carried
    /// here so that the engine hands it to every list it prepares.
    mapping: Option<PathBuf>,
}

/// Why a transaction asked for a checkpoint after its commit.
#[derive(Debug, Default)]
struct TxFlags {
    /// A project's working data was deleted: once committed, the WAL is
    /// checkpointed and truncated so that no old page survives in it.
    shredded: std::cell::Cell<bool>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (project TEXT NOT NULL, seq INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (project, seq));
CREATE TABLE IF NOT EXISTS extracts (project TEXT NOT NULL, digest BLOB NOT NULL, path TEXT NOT NULL, PRIMARY KEY (project, digest));
CREATE TABLE IF NOT EXISTS hops (project TEXT NOT NULL, list TEXT NOT NULL, hop INTEGER NOT NULL, records BLOB NOT NULL, done INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (project, list, hop));
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT NOT NULL, dest TEXT NOT NULL, bytes BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_dest ON outbox (dest, id);
CREATE TABLE IF NOT EXISTS sent (project TEXT NOT NULL, step TEXT NOT NULL, PRIMARY KEY (project, step));
CREATE TABLE IF NOT EXISTS approvals (project TEXT NOT NULL, statement BLOB NOT NULL, PRIMARY KEY (project, statement));
CREATE TABLE IF NOT EXISTS blindings (project TEXT NOT NULL, list TEXT NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (project, list));
CREATE TABLE IF NOT EXISTS requests (digest BLOB PRIMARY KEY, time INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS requests_time ON requests (time);
CREATE TABLE IF NOT EXISTS sealed_bytes (project TEXT NOT NULL, list TEXT NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY (project, list));
CREATE TABLE IF NOT EXISTS finals (project TEXT NOT NULL, list TEXT NOT NULL, chunk INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (project, list, chunk));
CREATE TABLE IF NOT EXISTS notices (project TEXT NOT NULL PRIMARY KEY, bytes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sealed_batches (project TEXT NOT NULL, list TEXT NOT NULL, first INTEGER NOT NULL, count INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (project, list, first));
CREATE TABLE IF NOT EXISTS chain_v2 (project TEXT NOT NULL, list TEXT NOT NULL, kind TEXT NOT NULL, key INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (project, list, kind, key));
";

impl Store {
    /// Opens (creating if needed) `dir/state.db`: created
    /// `O_EXCL|O_NOFOLLOW` with mode 0600, or an existing regular file
    /// (never through a symlink) tightened to 0600 (see
    /// [`crate::private_fs`]).
    ///
    /// # Errors
    ///
    /// [`StoreError::Private`] for a state file that is not a regular file
    /// (or cannot be made private); [`StoreError::Sql`] if the database
    /// cannot be opened or set up.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("state.db");
        crate::private_fs::prepare_db(&path)?;
        Self::init(open_existing(&path)?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        // Deleted rows are overwritten with zeros, not left in free pages
        // (issue 12 item 6: shredding leaves nothing behind).
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(domain::SCHEMA)?;
        conn.execute_batch(domain_rows::SCHEMA)?;
        conn.execute_batch(innsyn::SCHEMA)?;
        conn.execute_batch(disclosure_log::SCHEMA)?;
        sealed_rows::migrate_per_item_rows(&conn)?;
        Ok(Self {
            conn,
            mapping: None,
        })
    }

    /// Sets the mapping file applied to this node's extracts.
    pub(crate) fn with_mapping(mut self, mapping: Option<PathBuf>) -> Self {
        self.mapping = mapping;
        self
    }

    /// The mapping file applied to this node's extracts, if any.
    pub(crate) fn mapping(&self) -> Option<PathBuf> {
        self.mapping.clone()
    }

    /// Runs `f` in one transaction, committed if `f` succeeds and rolled
    /// back if it fails (with the caller's own error: a refusal decided
    /// inside the transaction writes nothing).
    pub(crate) fn transaction<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let flags = TxFlags::default();
        let tx = self.conn.transaction().map_err(StoreError::from)?;
        let out = f(&Tx(&tx, &flags))?;
        tx.commit().map_err(StoreError::from)?;
        if flags.shredded.get() {
            // The deletion is committed and its pages zeroed; a reader that
            // keeps the WAL from being truncated now (an operator's sqlite3)
            // only delays it to the next shred or the node's stop, so it
            // does not undo the step.
            match self.truncate_wal() {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    "the write-ahead log was not truncated after a shred (a reader is active)"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "the write-ahead log was not truncated after a shred")
                }
            }
        }
        Ok(out)
    }

    /// Copies every page of the WAL into the database and truncates the
    /// WAL to zero bytes: the frames that held deleted rows are gone from
    /// the `-wal` file (the database's copies were zeroed by
    /// `secure_delete`). `false` if a reader kept the checkpoint from
    /// finishing.
    ///
    /// # Errors
    ///
    /// [`StoreError::Sql`].
    pub(crate) fn truncate_wal(&self) -> Result<bool, StoreError> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        Ok(busy == 0)
    }

    /// The directory of the database file (`None` in memory).
    pub(crate) fn dir(&self) -> Option<PathBuf> {
        let path = Path::new(self.conn.path().filter(|p| !p.is_empty())?);
        path.parent().map(Path::to_path_buf)
    }

    /// The projects this node knows.
    pub(crate) fn projects(&self) -> Result<Vec<ProjectId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT project FROM entries ORDER BY project")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(ProjectId::new(r?).map_err(|_| StoreError::Corrupt("project id"))?);
        }
        Ok(out)
    }

    /// Every project's first entry (its order), by project.
    pub(crate) fn first_entries(&self) -> Result<Vec<Entry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT bytes FROM entries WHERE seq = 0 ORDER BY project")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(postcard::from_bytes(&r?).map_err(|_| StoreError::Corrupt("entry"))?);
        }
        Ok(out)
    }

    /// A project's transcript copy.
    pub(crate) fn entries(&self, project: &ProjectId) -> Result<Vec<Entry>, StoreError> {
        Tx::entries_of(&self.conn, project)
    }

    /// The latest phase notice the linker sent about a project (a
    /// register's; the notice was checked before it was stored).
    pub(crate) fn notice(
        &self,
        project: &ProjectId,
    ) -> Result<Option<SignedPhaseNotice>, StoreError> {
        Tx::notice_of(&self.conn, project)
    }

    /// Messages queued per destination (for monitoring).
    pub(crate) fn outbox_depths(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT dest, COUNT(*) FROM outbox GROUP BY dest")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for r in rows {
            let (dest, n) = r?;
            out.push((dest, u64::try_from(n).unwrap_or(0)));
        }
        Ok(out)
    }

    /// Hops of lists this node has finished, over every project it still
    /// has working data of (for monitoring).
    pub(crate) fn hops_done(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM hops WHERE done = 1", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The oldest queued messages to `dest`, up to `limit` or about
    /// [`OUTBOX_BATCH_BYTES`] (at least one), with their ids.
    pub(crate) fn outbox_to(
        &self,
        dest: &Name,
        limit: usize,
    ) -> Result<Vec<(i64, Message)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, bytes FROM outbox WHERE dest = ?1 ORDER BY id LIMIT ?2")?;
        let rows = stmt.query_map(params![dest.as_str(), limit as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        let mut budget = OUTBOX_BATCH_BYTES;
        for r in rows {
            if budget == 0 {
                break;
            }
            let (id, bytes) = r?;
            budget = budget.saturating_sub(bytes.len());
            let msg = messages::decode(&bytes)
                .ok()
                .or_else(|| legacy::message(&bytes))
                .ok_or(StoreError::Corrupt("outbox message"))?;
            out.push((id, msg));
        }
        Ok(out)
    }

    /// Removes an acknowledged message.
    pub(crate) fn acked(&mut self, id: i64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM outbox WHERE id = ?1", [id])?;
        Ok(())
    }
}

/// A transaction on the store.
pub(crate) struct Tx<'a>(&'a Transaction<'a>, &'a TxFlags);

impl Tx<'_> {
    fn entries_of(conn: &Connection, project: &ProjectId) -> Result<Vec<Entry>, StoreError> {
        let mut stmt = conn.prepare("SELECT bytes FROM entries WHERE project = ?1 ORDER BY seq")?;
        let rows = stmt.query_map([project.as_str()], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(
                postcard::from_bytes::<Entry>(&r?)
                    .map_err(|_| StoreError::Corrupt("transcript entry"))?,
            );
        }
        Ok(out)
    }

    /// A project's transcript copy.
    pub(crate) fn entries(&self, project: &ProjectId) -> Result<Vec<Entry>, StoreError> {
        Self::entries_of(self.0, project)
    }

    fn notice_of(
        conn: &Connection,
        project: &ProjectId,
    ) -> Result<Option<SignedPhaseNotice>, StoreError> {
        let bytes: Option<Vec<u8>> = conn
            .query_row(
                "SELECT bytes FROM notices WHERE project = ?1",
                [project.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        bytes
            .map(|b| {
                postcard::from_bytes(&b)
                    .or_else(|_| postcard::from_bytes::<LegacyNotice>(&b).map(Into::into))
                    .map_err(|_| StoreError::Corrupt("phase notice"))
            })
            .transpose()
    }

    /// Keeps `notice` (checked by the caller) if it tells a later phase
    /// than the one held: a project only moves forward.
    pub(crate) fn put_notice(&self, notice: &SignedPhaseNotice) -> Result<(), StoreError> {
        let project = &notice.notice.project;
        let newer = Self::notice_of(self.0, project)?
            .is_none_or(|held| held.notice.phase < notice.notice.phase);
        if newer {
            self.0.execute(
                "INSERT OR REPLACE INTO notices (project, bytes) VALUES (?1, ?2)",
                params![project.as_str(), transcript::encode_value(notice)],
            )?;
        }
        Ok(())
    }

    /// Appends transcript entries (already verified by the caller).
    pub(crate) fn append_entries(
        &self,
        project: &ProjectId,
        entries: &[Entry],
    ) -> Result<(), StoreError> {
        for e in entries {
            self.0.execute(
                "INSERT INTO entries (project, seq, bytes) VALUES (?1, ?2, ?3)",
                params![project.as_str(), e.seq as i64, transcript::encode_value(e)],
            )?;
        }
        Ok(())
    }

    /// Queues a message for `dest`.
    pub(crate) fn send(
        &self,
        project: &ProjectId,
        dest: &Name,
        msg: &Message,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO outbox (project, dest, bytes) VALUES (?1, ?2, ?3)",
            params![project.as_str(), dest.as_str(), messages::encode(msg)],
        )?;
        Ok(())
    }

    /// Queues an already encoded message for `dest`.
    pub(crate) fn send_encoded(
        &self,
        project: &ProjectId,
        dest: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached("INSERT INTO outbox (project, dest, bytes) VALUES (?1, ?2, ?3)")?
            .execute(params![project.as_str(), dest, bytes])?;
        Ok(())
    }

    /// Queues an empty message to `dest` now, to be filled with
    /// [`fill`](Self::fill) later in the same transaction: it keeps its
    /// place in the queue (e.g. an announcement whose roots are known
    /// only after the points and items queued behind it).
    pub(crate) fn reserve(&self, project: &ProjectId, dest: &Name) -> Result<i64, StoreError> {
        self.0.execute(
            "INSERT INTO outbox (project, dest, bytes) VALUES (?1, ?2, x'')",
            params![project.as_str(), dest.as_str()],
        )?;
        Ok(self.0.last_insert_rowid())
    }

    /// Fills a message queued with [`reserve`](Self::reserve).
    pub(crate) fn fill(&self, id: i64, message: &Message) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE outbox SET bytes = ?1 WHERE id = ?2",
            params![messages::encode(message), id],
        )?;
        Ok(())
    }

    /// Marks a one-shot step as taken; false if it already was.
    pub(crate) fn mark(&self, project: &ProjectId, step: Step) -> Result<bool, StoreError> {
        let n = self.0.execute(
            "INSERT OR IGNORE INTO sent (project, step) VALUES (?1, ?2)",
            params![project.as_str(), step.as_str()],
        )?;
        Ok(n == 1)
    }

    /// Whether a one-shot step was taken.
    pub(crate) fn marked(&self, project: &ProjectId, step: Step) -> Result<bool, StoreError> {
        Ok(self
            .0
            .query_row(
                "SELECT 1 FROM sent WHERE project = ?1 AND step = ?2",
                params![project.as_str(), step.as_str()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Records where an approved extract is.
    pub(crate) fn put_extract(
        &self,
        project: &ProjectId,
        digest: &[u8; 32],
        path: &str,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT OR REPLACE INTO extracts (project, digest, path) VALUES (?1, ?2, ?3)",
            params![project.as_str(), &digest[..], path],
        )?;
        Ok(())
    }

    /// Records that an approval (by its statement digest) was taken.
    pub(crate) fn put_approval_seen(
        &self,
        project: &ProjectId,
        statement: &Digest,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT OR IGNORE INTO approvals (project, statement) VALUES (?1, ?2)",
            params![project.as_str(), &statement.0[..]],
        )?;
        Ok(())
    }

    /// Remembers a client request by `digest`, with its `time`, after
    /// forgetting those older than `forget_before`; at most `cap` are kept.
    pub(crate) fn remember_request(
        &self,
        digest: &Digest,
        time: UnixTime,
        forget_before: UnixTime,
        cap: u64,
    ) -> Result<Remembered, StoreError> {
        let sql_time = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
        self.0.execute(
            "DELETE FROM requests WHERE time < ?1",
            [sql_time(forget_before.0)],
        )?;
        let seen = self
            .0
            .query_row(
                "SELECT 1 FROM requests WHERE digest = ?1",
                [&digest.0[..]],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if seen {
            return Ok(Remembered::Seen);
        }
        let held: i64 = self
            .0
            .query_row("SELECT COUNT(*) FROM requests", [], |r| r.get(0))?;
        if u64::try_from(held).unwrap_or(u64::MAX) >= cap {
            return Ok(Remembered::Full);
        }
        self.0.execute(
            "INSERT INTO requests (digest, time) VALUES (?1, ?2)",
            params![&digest.0[..], sql_time(time.0)],
        )?;
        Ok(Remembered::New)
    }

    /// Bytes of sealed items stored for `list`.
    pub(crate) fn sealed_bytes(
        &self,
        project: &ProjectId,
        list: &ListName,
    ) -> Result<u64, StoreError> {
        let bytes: Option<i64> = self
            .0
            .query_row(
                "SELECT bytes FROM sealed_bytes WHERE project = ?1 AND list = ?2",
                params![project.as_str(), list.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(bytes.map_or(0, |b| u64::try_from(b).unwrap_or(0)))
    }

    /// Sets the bytes of sealed items stored for `list`.
    pub(crate) fn set_sealed_bytes(
        &self,
        project: &ProjectId,
        list: &ListName,
        bytes: u64,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT OR REPLACE INTO sealed_bytes (project, list, bytes) VALUES (?1, ?2, ?3)",
            params![
                project.as_str(),
                list.as_str(),
                i64::try_from(bytes).unwrap_or(i64::MAX)
            ],
        )?;
        Ok(())
    }

    /// Whether an approval (by its statement digest) was taken.
    pub(crate) fn approval_seen(
        &self,
        project: &ProjectId,
        statement: &Digest,
    ) -> Result<bool, StoreError> {
        Ok(self
            .0
            .query_row(
                "SELECT 1 FROM approvals WHERE project = ?1 AND statement = ?2",
                params![project.as_str(), &statement.0[..]],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Where the extract with `digest` is.
    pub(crate) fn extract_path(
        &self,
        project: &ProjectId,
        digest: &[u8; 32],
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .query_row(
                "SELECT path FROM extracts WHERE project = ?1 AND digest = ?2",
                params![project.as_str(), &digest[..]],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Deletes a project's working data (keeps the transcript: disclosure
    /// records are kept; and the outbox, which may still hold the closure's
    /// notices to other nodes).
    ///
    /// With `secure_delete` on, the rows' bytes are zeroed in the pages;
    /// after the commit the store truncates the WAL (see
    /// [`Store::truncate_wal`]).
    pub(crate) fn delete_working_data(&self, project: &ProjectId) -> Result<(), StoreError> {
        for table in [
            "extracts",
            "approvals",
            "hops",
            "blindings",
            "sealed_batches",
            "sealed_bytes",
            "finals",
            "chain_v2",
        ] {
            self.0.execute(
                &format!("DELETE FROM {table} WHERE project = ?1"),
                [project.as_str()],
            )?;
        }
        self.1.shredded.set(true);
        Ok(())
    }
}

impl Tx<'_> {
    /// Deletes every row about a project, its transcript copy included
    /// (an order no operator approved, forgotten: issue 18 item 2), and
    /// truncates the WAL after the commit as a shred does.
    pub(crate) fn forget_project(&self, project: &ProjectId) -> Result<(), StoreError> {
        self.delete_working_data(project)?;
        for table in ["entries", "outbox", "sent", "notices"] {
            self.0.execute(
                &format!("DELETE FROM {table} WHERE project = ?1"),
                [project.as_str()],
            )?;
        }
        Ok(())
    }
}

/// What [`Tx::remember_request`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Remembered {
    /// The request is new and now remembered.
    New,
    /// The request was remembered before.
    Seen,
    /// The cache is full: not remembered.
    Full,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attack (issue 12 item 5): after the owner's blinding is stored, a
    /// second, different blinding for the same list arrives (a replayed or
    /// forged message). The first one stays.
    #[test]
    fn a_stored_blinding_is_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(dir.path()).expect("store");
        let project = ProjectId::new("P1").expect("valid");
        let list = ListName::new("NPR").expect("valid");
        let other = ListName::new("KPR").expect("valid");
        store
            .transaction(|tx| tx.put_blob(LinkerRow::Blinding, &project, &list, b"first"))
            .expect("stored");
        store
            .transaction(|tx| tx.put_blob(LinkerRow::Blinding, &project, &list, b"second"))
            .expect("ignored, not an error");
        store
            .transaction(|tx| tx.put_blob(LinkerRow::Blinding, &project, &other, b"kpr"))
            .expect("stored");
        let mut read = |l: &ListName| {
            store
                .transaction(|tx| tx.blobs(LinkerTable::Blinding, &project, l))
                .expect("read")
        };
        assert_eq!(read(&list), vec![b"first".to_vec()]);
        assert_eq!(read(&other), vec![b"kpr".to_vec()]);
    }
}
