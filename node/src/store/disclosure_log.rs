//! The disclosure log's holder's tables (PROTOCOL.md §10a, issue 16 item
//! 3): one record per converted value of an identified project's padded
//! list, under `Ψ_log` (random points for the padding, which match
//! nobody).
//!
//! | table | what |
//! |---|---|
//! | `disclosure_records` | `(domain, pseudonym, project, day)`: `Ψ_log` (32 bytes), the project, its delivery's day (days since 1970-01-01) |
//! | `disclosure_pages` | `(domain, project, page)`: the pages of a project's list stored so far |
//!
//! Records are purged only once `day + MIN_RETENTION_DAYS` is past.

use kobling_protocol::{
    disclosure::{DisclosureRecord, MIN_RETENTION_DAYS},
    group::WirePoint,
    types::{Name, ProjectId},
};
use rusqlite::params;

use super::{Store, StoreError, Tx};

/// The tables of this module, created with the store's own.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS disclosure_records (domain TEXT NOT NULL, pseudonym BLOB NOT NULL, project TEXT NOT NULL, day INTEGER NOT NULL, PRIMARY KEY (domain, project, pseudonym));
CREATE INDEX IF NOT EXISTS disclosure_records_pseudonym ON disclosure_records (domain, pseudonym);
CREATE TABLE IF NOT EXISTS disclosure_pages (domain TEXT NOT NULL, project TEXT NOT NULL, page INTEGER NOT NULL, PRIMARY KEY (domain, project, page));
";

impl Tx<'_> {
    /// Stores one page of `project`'s converted list (once: a page stored
    /// before is left as it is); returns the number of pages stored.
    pub(crate) fn put_disclosure_page(
        &self,
        domain: &Name,
        project: &ProjectId,
        page: u64,
        day: u32,
        values: &[WirePoint],
    ) -> Result<u64, StoreError> {
        let new = self.0.execute(
            "INSERT OR IGNORE INTO disclosure_pages (domain, project, page) VALUES (?1, ?2, ?3)",
            params![domain.as_str(), project.as_str(), page as i64],
        )?;
        if new == 1 {
            for v in values {
                self.0.execute(
                    "INSERT OR IGNORE INTO disclosure_records (domain, pseudonym, project, day) VALUES (?1, ?2, ?3, ?4)",
                    params![domain.as_str(), &v.as_bytes()[..], project.as_str(), day],
                )?;
            }
        }
        let pages: i64 = self.0.query_row(
            "SELECT COUNT(*) FROM disclosure_pages WHERE domain = ?1 AND project = ?2",
            params![domain.as_str(), project.as_str()],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(pages).unwrap_or(0))
    }

    /// Deletes the records whose retention ended: `day + MIN_RETENTION_DAYS
    /// < today`. Returns how many went.
    pub(crate) fn purge_disclosure_records(&self, today: u32) -> Result<u64, StoreError> {
        let n = self.0.execute(
            "DELETE FROM disclosure_records WHERE day + ?1 < ?2",
            params![MIN_RETENTION_DAYS, today],
        )?;
        Ok(n as u64)
    }
}

impl Store {
    /// The records stored under `pseudonym` in `domain`, by project.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn disclosure_records(
        &self,
        domain: &Name,
        pseudonym: &WirePoint,
    ) -> Result<Vec<DisclosureRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT project, day FROM disclosure_records WHERE domain = ?1 AND pseudonym = ?2 ORDER BY project",
        )?;
        let rows = stmt.query_map(params![domain.as_str(), &pseudonym.as_bytes()[..]], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (project, day) = row?;
            let project =
                ProjectId::new(project).map_err(|_| StoreError::Corrupt("disclosure record"))?;
            out.push(DisclosureRecord { project, day });
        }
        Ok(out)
    }

    /// Every record's stored value in `domain` (for tests and audits:
    /// the count is the sum of the padded sizes).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn disclosure_values(&self, domain: &Name) -> Result<Vec<WirePoint>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT pseudonym FROM disclosure_records WHERE domain = ?1")?;
        let rows = stmt.query_map(params![domain.as_str()], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for row in rows {
            let bytes = <[u8; 32]>::try_from(row?.as_slice())
                .map_err(|_| StoreError::Corrupt("disclosure record"))?;
            out.push(WirePoint(bytes));
        }
        Ok(out)
    }
}
