//! Scratch storage for a list being prepared: the extract's rows, keyed by
//! person, on disk next to the state database, so that a register's memory
//! does not grow with its extract (issue 6: SSB's population list).
//!
//! ```text
//!  extract.csv ──(one pass)──▶ staging.db: rows(person, seq, values)
//!                         └──▶ in memory: one identifier per person
//!  shuffled positions ──▶ per chunk: identifiers ─▶ points
//!                                    rows of each person ─▶ sealed items
//! ```
//!
//! The file is the register's own (it holds identifiers' rows, never the
//! identifiers themselves), written without a journal (it is rebuilt from
//! the extract after a crash), and removed when the list is announced.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};

use crate::store::StoreError;

/// The scratch rows of one list being prepared.
pub(crate) struct Staging {
    conn: Connection,
    path: Option<PathBuf>,
    next_seq: i64,
}

impl std::fmt::Debug for Staging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staging")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Staging {
    /// A fresh staging file in `dir` (any earlier one is discarded), or an
    /// in-memory one without a directory (tests).
    ///
    /// # Errors
    ///
    /// [`StoreError::Sql`] if the file cannot be created.
    pub(crate) fn create(dir: Option<&Path>) -> Result<Self, StoreError> {
        let (conn, path) = match dir {
            Some(dir) => {
                let path = dir.join("staging.db");
                let _ = std::fs::remove_file(&path);
                (Connection::open(&path)?, Some(path))
            }
            None => (Connection::open_in_memory()?, None),
        };
        conn.pragma_update(None, "journal_mode", "OFF")?;
        conn.pragma_update(None, "synchronous", "OFF")?;
        conn.execute_batch(
            "CREATE TABLE rows (person INTEGER NOT NULL, seq INTEGER NOT NULL, bytes BLOB NOT NULL);
             BEGIN;",
        )?;
        Ok(Self {
            conn,
            path,
            next_seq: 0,
        })
    }

    /// Appends one row of `person` (rows keep their order).
    ///
    /// # Errors
    ///
    /// [`StoreError::Sql`] (e.g. the disk is full).
    pub(crate) fn push(&mut self, person: u32, values: &[String]) -> Result<(), StoreError> {
        let bytes = postcard::to_allocvec(values).map_err(|_| StoreError::Corrupt("staged row"))?;
        self.conn
            .prepare_cached("INSERT INTO rows (person, seq, bytes) VALUES (?1, ?2, ?3)")?
            .execute(params![person, self.next_seq, bytes])?;
        self.next_seq += 1;
        Ok(())
    }

    /// Ends the loading: commits and indexes the rows by person.
    ///
    /// # Errors
    ///
    /// [`StoreError::Sql`].
    pub(crate) fn seal_off(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("COMMIT; CREATE INDEX rows_person ON rows (person, seq);")?;
        Ok(())
    }

    /// The rows of `person`, in extract order.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub(crate) fn rows(&self, person: u32) -> Result<Vec<Vec<String>>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT bytes FROM rows WHERE person = ?1 ORDER BY seq")?;
        let rows = stmt.query_map([person], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(postcard::from_bytes(&r?).map_err(|_| StoreError::Corrupt("staged row"))?);
        }
        Ok(out)
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
        let mut s = Staging::create(Some(dir.path())).expect("create");
        let row = |a: &str| vec![a.to_string(), format!("{a}-2")];
        s.push(1, &row("a")).expect("push");
        s.push(0, &row("b")).expect("push");
        s.push(1, &row("c")).expect("push");
        s.seal_off().expect("index");
        assert_eq!(s.rows(1).expect("rows"), vec![row("a"), row("c")]);
        assert_eq!(s.rows(0).expect("rows"), vec![row("b")]);
        assert!(s.rows(2).expect("rows").is_empty());
        assert!(dir.path().join("staging.db").exists());
        drop(s);
        assert!(!dir.path().join("staging.db").exists());
    }
}
