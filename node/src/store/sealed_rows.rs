//! The linker's sealed items, one row per message of items (`sealed_batches`):
//! `(project, list, first, count, bytes)` with `bytes` the items in
//! position order, each as `le32(length) ‖ item`. One row per message, not
//! one per item: a B-tree insert per item cost the linker about 3 µs per
//! record (issue 13).
//!
//! A message's positions either are new (no stored message overlaps them)
//! or are exactly a stored message's (a resent message replaces it); the
//! caller refuses any other overlap ([`Tx::sealed_batch_before`]), so the
//! rows never hold a position twice.

use kobling_protocol::{
    seal::SealedItem,
    types::{ListName, Position, ProjectId},
};
use rusqlite::{params, Connection, OptionalExtension};

use super::{StoreError, Tx};

/// A stored message of sealed items: its first position, its item count
/// and the items' bytes (without their length prefixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SealedBatch {
    pub(crate) first: u64,
    pub(crate) count: u64,
    pub(crate) item_bytes: u64,
}

fn at(p: u64) -> i64 {
    i64::try_from(p).unwrap_or(i64::MAX)
}

impl Tx<'_> {
    /// The stored message with the greatest first position before `end`,
    /// if any: the only one that can overlap positions `.. end` from
    /// above.
    pub(crate) fn sealed_batch_before(
        &self,
        project: &ProjectId,
        list: &ListName,
        end: u64,
    ) -> Result<Option<SealedBatch>, StoreError> {
        let row: Option<(i64, i64, i64)> = self
            .0
            .prepare_cached(
                "SELECT first, count, length(bytes) FROM sealed_batches WHERE project = ?1 AND list = ?2 AND first < ?3 ORDER BY first DESC LIMIT 1",
            )?
            .query_row(params![project.as_str(), list.as_str(), at(end)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        row.map(|(first, count, len)| {
            let first = u64::try_from(first).map_err(|_| StoreError::Corrupt("sealed items"))?;
            let count = u64::try_from(count).map_err(|_| StoreError::Corrupt("sealed items"))?;
            let len = u64::try_from(len).map_err(|_| StoreError::Corrupt("sealed items"))?;
            Ok(SealedBatch {
                first,
                count,
                item_bytes: len.saturating_sub(4 * count),
            })
        })
        .transpose()
    }

    /// Stores a message of sealed items at `first` (replacing a stored
    /// message at the same position).
    pub(crate) fn put_sealed_batch(
        &self,
        project: &ProjectId,
        list: &ListName,
        first: Position,
        items: &[SealedItem],
    ) -> Result<(), StoreError> {
        let total = items.iter().map(|i| 4 + i.as_bytes().len()).sum::<usize>();
        let mut bytes = Vec::with_capacity(total);
        for item in items {
            let len = u32::try_from(item.as_bytes().len())
                .map_err(|_| StoreError::Corrupt("sealed item"))?;
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(item.as_bytes());
        }
        self.0
            .prepare_cached(
                "INSERT OR REPLACE INTO sealed_batches (project, list, first, count, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                project.as_str(),
                list.as_str(),
                at(first.0),
                at(items.len() as u64),
                bytes
            ])?;
        Ok(())
    }

    /// Hands each sealed item of a list to `f`, in position order from
    /// position 0, up to the first position not stored yet; returns how
    /// many it handed over.
    pub(crate) fn for_each_sealed(
        &self,
        project: &ProjectId,
        list: &ListName,
        mut f: impl FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT first, count, bytes FROM sealed_batches WHERE project = ?1 AND list = ?2 ORDER BY first",
        )?;
        let mut rows = stmt.query(params![project.as_str(), list.as_str()])?;
        let mut next = 0u64;
        while let Some(row) = rows.next()? {
            let first = row.get::<_, i64>(0)?;
            let count = row.get::<_, i64>(1)?;
            if u64::try_from(first).ok() != Some(next) {
                break; // a gap: the items after it wait for the missing ones
            }
            let count = u64::try_from(count).map_err(|_| StoreError::Corrupt("sealed items"))?;
            let mut rest = row.get_ref(2)?.as_blob().map_err(rusqlite::Error::from)?;
            for _ in 0..count {
                let (len, tail) = rest
                    .split_first_chunk::<4>()
                    .ok_or(StoreError::Corrupt("sealed items"))?;
                let len = u32::from_le_bytes(*len) as usize;
                if tail.len() < len {
                    return Err(StoreError::Corrupt("sealed items"));
                }
                let (item, tail) = tail.split_at(len);
                f(item)?;
                rest = tail;
            }
            if !rest.is_empty() {
                return Err(StoreError::Corrupt("sealed items"));
            }
            next += count;
        }
        Ok(next)
    }
}

/// Moves the rows of an earlier node's per-item table (`sealed`: one row
/// per position) into `sealed_batches`, one row per item, and drops it: a
/// list in flight across an upgrade keeps the items it has.
pub(super) fn migrate_per_item_rows(conn: &Connection) -> Result<(), StoreError> {
    let old: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sealed')",
        [],
        |r| r.get(0),
    )?;
    if !old {
        return Ok(());
    }
    conn.execute_batch("BEGIN")?;
    let moved = (|| {
        let mut read = conn.prepare("SELECT project, list, position, bytes FROM sealed")?;
        let mut write = conn.prepare(
            "INSERT OR REPLACE INTO sealed_batches (project, list, first, count, bytes) VALUES (?1, ?2, ?3, 1, ?4)",
        )?;
        let mut rows = read.query([])?;
        while let Some(row) = rows.next()? {
            let item = row.get_ref(3)?.as_blob()?;
            let len = u32::try_from(item.len()).unwrap_or(u32::MAX);
            let mut bytes = Vec::with_capacity(4 + item.len());
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(item);
            write.execute(params![
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                bytes
            ])?;
        }
        conn.execute_batch("DROP TABLE sealed")
    })();
    match moved {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kobling_protocol::bounded::BoundedBytes;

    use super::*;
    use crate::store::Store;

    fn items(first: u64, count: u64) -> Vec<SealedItem> {
        (first..first + count)
            .map(|p| SealedItem(BoundedBytes::new(vec![p as u8; 3 + p as usize]).expect("fits")))
            .collect()
    }

    fn read(store: &mut Store, project: &ProjectId, list: &ListName) -> (u64, Vec<Vec<u8>>) {
        let mut got = Vec::new();
        let n = store
            .transaction(|tx| {
                tx.for_each_sealed(project, list, |b| {
                    got.push(b.to_vec());
                    Ok(())
                })
            })
            .expect("read");
        (n, got)
    }

    #[test]
    fn items_come_back_in_position_order_up_to_the_first_gap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(dir.path()).expect("store");
        let project = ProjectId::new("P1").expect("valid");
        let list = ListName::new("NPR").expect("valid");
        let put = |store: &mut Store, first: u64, count: u64| {
            store
                .transaction(|tx| {
                    tx.put_sealed_batch(&project, &list, Position(first), &items(first, count))
                })
                .expect("stored");
        };
        // Stored out of order, with positions 5..7 missing.
        put(&mut store, 7, 2);
        put(&mut store, 2, 3);
        put(&mut store, 0, 2);
        let want: Vec<Vec<u8>> = items(0, 5).iter().map(|i| i.as_bytes().to_vec()).collect();
        assert_eq!(read(&mut store, &project, &list), (5, want));
        put(&mut store, 5, 2);
        let (n, got) = read(&mut store, &project, &list);
        assert_eq!(n, 9);
        assert_eq!(got[8], items(8, 1)[0].as_bytes());
        let before = store
            .transaction(|tx| tx.sealed_batch_before(&project, &list, 7))
            .expect("read");
        assert_eq!(
            before,
            Some(SealedBatch {
                first: 5,
                count: 2,
                item_bytes: 8 + 9
            })
        );
    }

    #[test]
    fn a_damaged_row_is_refused_not_misread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(dir.path()).expect("store");
        let project = ProjectId::new("P1").expect("valid");
        let list = ListName::new("NPR").expect("valid");
        store
            .transaction(|tx| {
                tx.0.execute(
                    "INSERT INTO sealed_batches (project, list, first, count, bytes) VALUES ('P1', 'NPR', 0, 2, x'0100000041')",
                    [],
                )?;
                Ok::<_, StoreError>(())
            })
            .expect("stored");
        let r = store.transaction(|tx| tx.for_each_sealed(&project, &list, |_| Ok(())));
        assert!(matches!(r, Err(StoreError::Corrupt("sealed items"))));
    }

    /// A node upgraded in the middle of a project keeps the items an
    /// earlier version stored one row per position.
    #[test]
    fn per_item_rows_of_an_earlier_node_are_moved_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Store::open(dir.path()).expect("store"));
        {
            let conn = Connection::open(dir.path().join("state.db")).expect("open");
            conn.execute_batch(
                "CREATE TABLE sealed (project TEXT NOT NULL, list TEXT NOT NULL, position INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (project, list, position));
                 INSERT INTO sealed VALUES ('P1', 'NPR', 1, x'4242'), ('P1', 'NPR', 0, x'41');",
            )
            .expect("old rows");
        }
        let mut store = Store::open(dir.path()).expect("store");
        let project = ProjectId::new("P1").expect("valid");
        let list = ListName::new("NPR").expect("valid");
        assert_eq!(
            read(&mut store, &project, &list),
            (2, vec![b"A".to_vec(), b"BB".to_vec()])
        );
        drop(store);
        let conn = Connection::open(dir.path().join("state.db")).expect("open");
        let old: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'sealed')",
                [],
                |r| r.get(0),
            )
            .expect("query");
        assert!(!old, "the old table stays");
    }
}
