//! Scratch storage for a list being prepared: the extract's rows, keyed by
//! person, on disk next to the state database, so that a register's memory
//! does not grow with its extract (issue 6: SSB's population list).
//!
//! ```text
//!  extract.csv ──(one pass)──▶ staging-<p>-rows.spill: (person, values)*   (spill.rs)
//!                         └──▶ in memory: one identifier per person
//!  shuffled positions ──▶ arrange: staging-<p>-<k>.spill, the rows by chunk bucket
//!                     ──▶ per chunk: identifiers ─▶ points
//!                                    rows of each person ─▶ sealed items
//! ```
//!
//! A chain v1 list's outgoing messages (point chunks for the first hop,
//! sealed items for the linker) wait in order in `staging-<p>.db`, until
//! the engine moves them into its outbox in one transaction (see
//! [`crate::prepare`]); chain v2 streams them instead.
//!
//! The files are the register's own (they hold identifiers' rows, never the
//! identifiers themselves), readable by their owner only, written without
//! a journal or sync (they are rebuilt from the extract after a crash), and
//! removed when the list is announced or its preparation ends.

mod spill;

use std::path::{Path, PathBuf};

use kobling_protocol::{
    messages::{self, Message},
    types::Name,
};
use rusqlite::{params, Connection, OptionalExtension};

use crate::store::StoreError;

/// The scratch rows of one list being prepared.
pub(crate) struct Staging {
    conn: Connection,
    path: Option<PathBuf>,
    /// Boxed: a `Staging` travels in replies (a delivery's spool).
    rows: Box<spill::Rows>,
}

impl std::fmt::Debug for Staging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staging")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Staging {
    /// A fresh staging file `staging-<name>.db` in `dir` (any earlier one is
    /// discarded), or an in-memory one without a directory (tests).
    ///
    /// # Errors
    ///
    /// [`StoreError::Sql`] if the file cannot be created.
    pub(crate) fn create(dir: Option<&Path>, name: &str) -> Result<Self, StoreError> {
        let (conn, path) = match dir {
            Some(dir) => {
                let path = dir.join(format!("{PREFIX}{name}.db"));
                let _ = std::fs::remove_file(&path);
                // O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600: never through a
                // planted link, never readable by anyone else, not even
                // for a moment (issue 18 item 8).
                drop(crate::private_fs::create_new(&path)?);
                let conn = crate::store::open_existing(&path)?;
                (conn, Some(path))
            }
            None => (Connection::open_in_memory()?, None),
        };
        conn.pragma_update(None, "journal_mode", "OFF")?;
        conn.pragma_update(None, "synchronous", "OFF")?;
        conn.execute_batch(
            "CREATE TABLE rows (person INTEGER NOT NULL, seq INTEGER NOT NULL, bytes BLOB NOT NULL);
             CREATE TABLE outgoing (id INTEGER PRIMARY KEY, dest TEXT NOT NULL, bytes BLOB NOT NULL);
             BEGIN;",
        )?;
        let rows = Box::new(spill::Rows::create(dir, &format!("{PREFIX}{name}"))?);
        Ok(Self { conn, path, rows })
    }

    /// Appends one row of `person` (rows keep their order).
    ///
    /// # Errors
    ///
    /// [`StoreError::Sql`] (e.g. the disk is full).
    pub(crate) fn push(&mut self, person: u32, values: &[String]) -> Result<(), StoreError> {
        self.rows.push(person, values)
    }

    /// Ends the loading.
    ///
    /// # Errors
    ///
    /// [`StoreError::Scratch`].
    pub(crate) fn seal_off(&mut self) -> Result<(), StoreError> {
        self.rows.seal_off()
    }

    /// Puts the rows in the order the chunks will read them: `positions`
    /// are the list's persons in position order (persons left out, such as
    /// reserved ones, lose their rows here), `chunk_size` the chunk length.
    ///
    /// # Errors
    ///
    /// [`StoreError::Scratch`] (e.g. the disk is full), or
    /// [`StoreError::Corrupt`] if the spill was damaged.
    pub(crate) fn arrange(
        &mut self,
        positions: &[u32],
        chunk_size: usize,
    ) -> Result<(), StoreError> {
        self.rows.arrange(positions, chunk_size)
    }

    /// Queues an outgoing message for `dest`, after those queued before.
    ///
    /// # Errors
    ///
    /// [`StoreError::Sql`] (e.g. the disk is full).
    pub(crate) fn queue(&mut self, dest: &Name, message: &Message) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("INSERT INTO outgoing (dest, bytes) VALUES (?1, ?2)")?
            .execute(params![dest.as_str(), messages::encode(message)])?;
        Ok(())
    }

    /// Ends the queueing (commits).
    ///
    /// # Errors
    ///
    /// [`StoreError::Sql`].
    pub(crate) fn queued_all(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("COMMIT;")?;
        Ok(())
    }

    /// The first queued message after id `after` (ids start at 1), as its
    /// id and encoding.
    ///
    /// # Errors
    ///
    /// [`StoreError::Sql`].
    pub(crate) fn queued_after(&self, after: i64) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT id, bytes FROM outgoing WHERE id > ?1 ORDER BY id LIMIT 1")?
            .query_row([after], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// Every queued message, in order, as (destination, encoded message).
    ///
    /// # Errors
    ///
    /// [`StoreError`], or the first error of `f`.
    pub(crate) fn for_each_queued(
        &self,
        mut f: impl FnMut(&str, &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT dest, bytes FROM outgoing ORDER BY id")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let dest: String = row.get(0)?;
            let bytes = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            f(&dest, bytes)?;
        }
        Ok(())
    }

    /// The rows of `person`, in extract order (after
    /// [`arrange`](Self::arrange); none for a person not arranged).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub(crate) fn rows(&mut self, person: u32) -> Result<Vec<Vec<String>>, StoreError> {
        self.rows.rows(person)
    }
}

/// Staging files are named `staging-<project>.db`.
const PREFIX: &str = "staging-";

/// Removes staging files left in `dir` by a node that stopped while it
/// prepared a list (they are rebuilt from the extract).
pub(crate) fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = name.ends_with(".db") || name.ends_with(spill::SUFFIX);
        if (name.starts_with(PREFIX) && ours) || name == "staging.db" {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_back_per_person_in_order_and_the_file_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Staging::create(Some(dir.path()), "P-1").expect("create");
        let row = |a: &str| vec![a.to_string(), format!("{a}-2")];
        s.push(1, &row("a")).expect("push");
        s.push(0, &row("b")).expect("push");
        s.push(1, &row("c")).expect("push");
        s.push(2, &row("d")).expect("push");
        s.seal_off().expect("sealed off");
        let spill = dir.path().join("staging-P-1-rows.spill");
        assert!(spill.exists());
        // Person 2 was left out (reserved, say): its rows go.
        s.arrange(&[1, 0], 1).expect("arrange");
        assert!(!spill.exists(), "the unarranged spill stays behind");
        assert_eq!(s.rows(1).expect("rows"), vec![row("a"), row("c")]);
        assert_eq!(s.rows(0).expect("rows"), vec![row("b")]);
        // Asked again, the same rows.
        assert_eq!(s.rows(1).expect("rows"), vec![row("a"), row("c")]);
        assert!(s.rows(2).expect("rows").is_empty());
        assert!(s.rows(7).expect("rows").is_empty());
        let mut files = vec![dir.path().join("staging-P-1.db")];
        for k in 0..2 {
            files.push(dir.path().join(format!("staging-P-1-{k}.spill")));
        }
        for file in &files {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(file).expect("file").permissions().mode();
                assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
            }
        }
        drop(s);
        for file in &files {
            assert!(!file.exists(), "{} stays behind", file.display());
        }
    }

    #[test]
    fn queued_messages_come_back_in_order() {
        let mut s = Staging::create(None, "P-1").expect("create");
        s.seal_off().expect("index");
        let npr = Name::new("NPR").expect("valid");
        let linker = Name::new("LINKER").expect("valid");
        let ack = |b: u8| Message::Ack {
            of: kobling_protocol::types::Digest([b; 32]),
        };
        let msgs = [(npr.clone(), ack(1)), (linker, ack(2)), (npr, ack(3))];
        for (dest, m) in &msgs {
            s.queue(dest, m).expect("queue");
        }
        s.queued_all().expect("commit");
        let mut got = Vec::new();
        s.for_each_queued(|dest, bytes| {
            got.push((dest.to_string(), bytes.to_vec()));
            Ok(())
        })
        .expect("read");
        let want: Vec<(String, Vec<u8>)> = msgs
            .iter()
            .map(|(d, m)| (d.to_string(), messages::encode(m)))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn leftovers_of_a_stopped_node_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in [
            "staging-P-1.db",
            "staging-P-1-rows.spill",
            "staging-P-1-3.spill",
            "staging.db",
            "state.db",
            "staging-notes.txt",
        ] {
            std::fs::write(dir.path().join(f), b"x").expect("write");
        }
        remove_leftovers(dir.path());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["staging-notes.txt", "state.db"]);
    }
}
