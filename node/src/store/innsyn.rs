//! Innsyn at a register (PROTOCOL.md §10a): the operators' admissions of
//! portals, and a count of the requests served per day.
//!
//! | table | what |
//! |---|---|
//! | `innsyn_admissions` | an operator's admission of a portal: the portal, the operator's key, when |
//! | `innsyn_served` | requests answered, per portal and day: a count, never who was asked about |

use kobling_protocol::{
    manifest::Ed25519Key,
    types::{Name, UnixTime},
};
use rusqlite::params;

use super::{StoreError, Tx};

/// The tables, created with the store's.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS innsyn_admissions (portal TEXT NOT NULL, key BLOB NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (portal, key));
CREATE TABLE IF NOT EXISTS innsyn_served (portal TEXT NOT NULL, day INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (portal, day));
";

impl Tx<'_> {
    /// The keys of the operators that admitted `portal`.
    pub(crate) fn innsyn_admissions(&self, portal: &Name) -> Result<Vec<Ed25519Key>, StoreError> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT key FROM innsyn_admissions WHERE portal = ?1 ORDER BY at")?;
        let rows = stmt.query_map([portal.as_str()], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for r in rows {
            let key: [u8; 32] = r?
                .try_into()
                .map_err(|_| StoreError::Corrupt("innsyn admission"))?;
            out.push(Ed25519Key(key));
        }
        Ok(out)
    }

    /// Records operator `key`'s admission of `portal` at `at`.
    pub(crate) fn admit_portal(
        &self,
        portal: &Name,
        key: &Ed25519Key,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT OR IGNORE INTO innsyn_admissions (portal, key, at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![portal.as_str(), &key.0[..], at.0 as i64])?;
        Ok(())
    }

    /// Counts one request of `portal` answered on `day` (days since
    /// 1970-01-01).
    pub(crate) fn count_innsyn(&self, portal: &Name, day: u64) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO innsyn_served (portal, day, count) VALUES (?1, ?2, 1) \
                 ON CONFLICT (portal, day) DO UPDATE SET count = count + 1",
            )?
            .execute(params![portal.as_str(), day as i64])?;
        Ok(())
    }

    /// Requests of `portal` answered on `day`.
    pub(crate) fn innsyn_served(&self, portal: &Name, day: u64) -> Result<u64, StoreError> {
        let n: Option<i64> = rusqlite::OptionalExtension::optional(self.0.query_row(
            "SELECT count FROM innsyn_served WHERE portal = ?1 AND day = ?2",
            params![portal.as_str(), day as i64],
            |r| r.get(0),
        ))?;
        u64::try_from(n.unwrap_or(0)).map_err(|_| StoreError::Corrupt("innsyn count"))
    }
}
