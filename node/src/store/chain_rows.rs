//! The chain's working rows: per list and hop the chunk records
//! (`hops`), the linker's bulk tables (`blindings`, `finals`; the sealed
//! items are in `sealed_rows.rs`),
//! and chain v2's blobs (`chain_v2`). Tables are created with the store's own
//! schema (`store.rs`).

use kobling_protocol::types::{ChunkIndex, HopIndex, ListName, ProjectId};
use rusqlite::{params, OptionalExtension};

use super::{StoreError, Tx};

impl Tx<'_> {
    /// A hop's chunk records (postcard `Vec<ChunkRecord>`) and done flag.
    pub(crate) fn hop(
        &self,
        project: &ProjectId,
        list: &ListName,
        hop: HopKey,
    ) -> Result<Option<(Vec<u8>, bool)>, StoreError> {
        Ok(self
            .0
            .query_row(
                "SELECT records, done FROM hops WHERE project = ?1 AND list = ?2 AND hop = ?3",
                params![project.as_str(), list.as_str(), hop.0],
                |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)? != 0)),
            )
            .optional()?)
    }

    /// Saves a hop's chunk records.
    pub(crate) fn put_hop(
        &self,
        project: &ProjectId,
        list: &ListName,
        hop: HopKey,
        records: &[u8],
        done: bool,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT OR REPLACE INTO hops (project, list, hop, records, done) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![project.as_str(), list.as_str(), hop.0, records, done as i64],
        )?;
        Ok(())
    }

    /// Stores a blob in one of the linker's tables, at `row`.
    ///
    /// A list's blinding is stored once: a second one for the same list,
    /// equal or not, is ignored (never overwrites the first), so a late or
    /// substituted blinding cannot change what the linker combines after it
    /// checked and used the first (issue 12 item 5).
    pub(crate) fn put_blob(
        &self,
        row: LinkerRow,
        project: &ProjectId,
        list: &ListName,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let (sql, key) = match row {
            LinkerRow::Blinding => ("INSERT OR IGNORE INTO blindings (project, list, bytes) VALUES (?1, ?2, ?4)", 0),
            LinkerRow::Final(c) => ("INSERT OR REPLACE INTO finals (project, list, chunk, bytes) VALUES (?1, ?2, ?3, ?4)", c.0),
        };
        self.0.prepare_cached(sql)?.execute(params![
            project.as_str(),
            list.as_str(),
            key as i64,
            bytes
        ])?;
        Ok(())
    }

    /// All blobs of a list in one of the linker's tables, in key order.
    pub(crate) fn blobs(
        &self,
        table: LinkerTable,
        project: &ProjectId,
        list: &ListName,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        self.for_each_blob(table, project, list, |b| {
            out.push(b.to_vec());
            Ok(())
        })?;
        Ok(out)
    }

    /// Hands each blob of a list, in key order, to `f` without keeping
    /// them (a list's sealed items can be far larger than memory).
    pub(crate) fn for_each_blob(
        &self,
        table: LinkerTable,
        project: &ProjectId,
        list: &ListName,
        mut f: impl FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let sql = match table {
            LinkerTable::Blinding => "SELECT bytes FROM blindings WHERE project = ?1 AND list = ?2",
            LinkerTable::Final => {
                "SELECT bytes FROM finals WHERE project = ?1 AND list = ?2 ORDER BY chunk"
            }
        };
        let mut stmt = self.0.prepare_cached(sql)?;
        let mut rows = stmt.query(params![project.as_str(), list.as_str()])?;
        while let Some(row) = rows.next()? {
            f(row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?)?;
        }
        Ok(())
    }

    /// Chain v2 working data (`kind`: the owner's kept output `y` and its
    /// chunk digests, the linker's `Z` and concluded list checks), by key.
    pub(crate) fn put_v2(
        &self,
        project: &ProjectId,
        list: &ListName,
        kind: &str,
        key: u64,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT OR REPLACE INTO chain_v2 (project, list, kind, key, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![project.as_str(), list.as_str(), kind, key as i64, bytes])?;
        Ok(())
    }

    /// One chain v2 blob of `kind` of a list, if it is kept.
    pub(crate) fn get_v2(
        &self,
        project: &ProjectId,
        list: &ListName,
        kind: &str,
        key: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT bytes FROM chain_v2 WHERE project = ?1 AND list = ?2 AND kind = ?3 AND key = ?4",
            )?
            .query_row(params![project.as_str(), list.as_str(), kind, key as i64], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Hands each chain v2 blob of `kind`, in key order, to `f`.
    pub(crate) fn for_each_v2(
        &self,
        project: &ProjectId,
        list: &ListName,
        kind: &str,
        mut f: impl FnMut(u64, &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT key, bytes FROM chain_v2 WHERE project = ?1 AND list = ?2 AND kind = ?3 ORDER BY key",
        )?;
        let mut rows = stmt.query(params![project.as_str(), list.as_str(), kind])?;
        while let Some(row) = rows.next()? {
            let key =
                u64::try_from(row.get::<_, i64>(0)?).map_err(|_| StoreError::Corrupt("v2 key"))?;
            f(
                key,
                row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?,
            )?;
        }
        Ok(())
    }

    /// Discards a list's final pseudonyms (a failed attempt's output,
    /// before the strict attempt writes its own).
    pub(crate) fn delete_finals(
        &self,
        project: &ProjectId,
        list: &ListName,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "DELETE FROM finals WHERE project = ?1 AND list = ?2",
            params![project.as_str(), list.as_str()],
        )?;
        Ok(())
    }

    /// Deletes one chain v2 blob of `kind` of a list.
    pub(crate) fn delete_v2_key(
        &self,
        project: &ProjectId,
        list: &ListName,
        kind: &str,
        key: u64,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "DELETE FROM chain_v2 WHERE project = ?1 AND list = ?2 AND kind = ?3 AND key = ?4",
            params![project.as_str(), list.as_str(), kind, key as i64],
        )?;
        Ok(())
    }

    /// Deletes the chain v2 blobs of `kind` of a list.
    pub(crate) fn delete_v2(
        &self,
        project: &ProjectId,
        list: &ListName,
        kind: &str,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "DELETE FROM chain_v2 WHERE project = ?1 AND list = ?2 AND kind = ?3",
            params![project.as_str(), list.as_str(), kind],
        )?;
        Ok(())
    }
}

/// The `hops` table's key of a hop's chunk records: in chain v1 the hop's
/// index ([`HopIndex`]); in chain v2 the index with the attempt in the bits
/// above 16 (`engine::chain_v2::hop_key`), so that a strict attempt's hop
/// starts afresh. Stored as the `hop` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HopKey(pub(crate) u32);

impl From<HopIndex> for HopKey {
    fn from(hop: HopIndex) -> Self {
        Self(hop.0)
    }
}

/// A row of the linker's bulk tables: the table, and the row's key in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkerRow {
    /// A list's sealed blinding (one per list).
    Blinding,
    /// A chunk's final pseudonyms.
    Final(ChunkIndex),
}

/// The linker's bulk tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkerTable {
    /// Sealed list blindings.
    Blinding,
    /// Final pseudonyms by chunk.
    Final,
}
