//! The holder's table of a register domain (PROTOCOL.md §10, issue 15
//! item 2): rows delivered into the domain, keyed by the person's `Ψ_R`,
//! as the holder opened them from the sealed items; and, per delivery, the
//! record it appends to the domain's transcript.
//!
//! | table | what |
//! |---|---|
//! | `domain_rows` | `(domain, pseudonym, delivery, row, bytes)`: one row of a delivery, `pseudonym` the 32-byte `Ψ_R`, `bytes` the row's values (`seal::encode_rows` of one row) |
//! | `domain_deliveries` | `(domain, delivery, columns, record)`: a delivery received in full, its column names and its `DomainBody::Delivery` record (postcard) |
//! | `domain_receipts` | `(domain, delivery, position, row)`: a delivery the linker is pushing, the next position and row to store |
//!
//! No fnr is ever stored here: a delivery's rows carry the extract's
//! variables only, and the person key is `Ψ_R`.

use kobling_protocol::{
    domain::transcript::DomainBody,
    group::WirePoint,
    seal,
    types::{Digest, Name},
};
use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError, Tx};

/// The tables of this module, created with the store's own.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS domain_rows (domain TEXT NOT NULL, pseudonym BLOB NOT NULL, delivery BLOB NOT NULL, row INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (domain, delivery, row));
CREATE INDEX IF NOT EXISTS domain_rows_pseudonym ON domain_rows (domain, pseudonym);
CREATE TABLE IF NOT EXISTS domain_deliveries (domain TEXT NOT NULL, delivery BLOB NOT NULL, columns BLOB NOT NULL, record BLOB NOT NULL, PRIMARY KEY (domain, delivery));
CREATE TABLE IF NOT EXISTS domain_receipts (domain TEXT NOT NULL, delivery BLOB NOT NULL, position INTEGER NOT NULL, row INTEGER NOT NULL, PRIMARY KEY (domain, delivery));
";

/// One stored row of the holder's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRow {
    /// The delivery it came with.
    pub delivery: Digest,
    /// Its number within the delivery.
    pub row: u64,
    /// `Ψ_R` of the person.
    pub pseudonym: WirePoint,
    /// The row's values, in the delivery's column order.
    pub values: Vec<String>,
}

/// A delivery the holder received in full.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDelivery {
    /// The delivery id.
    pub delivery: Digest,
    /// The variables of its rows.
    pub columns: Vec<String>,
    /// Its record in the domain's transcript.
    pub record: DomainBody,
}

fn digest(bytes: Vec<u8>) -> Result<Digest, StoreError> {
    <[u8; 32]>::try_from(bytes.as_slice())
        .map(Digest)
        .map_err(|_| StoreError::Corrupt("delivery id"))
}

impl Tx<'_> {
    /// Stores one row of `delivery` into `domain` (`bytes`:
    /// `seal::encode_rows` of the one row).
    pub(crate) fn put_domain_row(
        &self,
        domain: &Name,
        delivery: &Digest,
        row: u64,
        pseudonym: &WirePoint,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT OR REPLACE INTO domain_rows (domain, pseudonym, delivery, row, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                domain.as_str(),
                &pseudonym.as_bytes()[..],
                &delivery.as_bytes()[..],
                row as i64,
                bytes
            ],
        )?;
        Ok(())
    }

    /// Stores `rows`, one person's, under `pseudonym`, numbered from
    /// `row` on; returns the next row number.
    pub(crate) fn put_person_rows(
        &self,
        domain: &Name,
        delivery: &Digest,
        row: u64,
        pseudonym: &WirePoint,
        rows: &[Vec<String>],
    ) -> Result<u64, StoreError> {
        let mut next = row;
        for r in rows {
            let bytes = seal::encode_rows(std::slice::from_ref(r))
                .map_err(|_| StoreError::Corrupt("domain row"))?;
            self.put_domain_row(domain, delivery, next, pseudonym, &bytes)?;
            next += 1;
        }
        Ok(next)
    }

    /// Whether `delivery` into `domain` was received in full.
    pub(crate) fn has_domain_delivery(
        &self,
        domain: &Name,
        delivery: &Digest,
    ) -> Result<bool, StoreError> {
        Ok(self
            .0
            .query_row(
                "SELECT 1 FROM domain_deliveries WHERE domain = ?1 AND delivery = ?2",
                params![domain.as_str(), &delivery.as_bytes()[..]],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Deletes the rows of a delivery that was not received in full (a
    /// receipt interrupted by a stop starts over).
    pub(crate) fn drop_partial_delivery(
        &self,
        domain: &Name,
        delivery: &Digest,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "DELETE FROM domain_rows WHERE domain = ?1 AND delivery = ?2",
            params![domain.as_str(), &delivery.as_bytes()[..]],
        )?;
        Ok(())
    }

    /// Starts (or restarts) the receipt of a pushed delivery: its partial
    /// rows are dropped and its next position and row are 0.
    pub(crate) fn start_receipt(&self, domain: &Name, delivery: &Digest) -> Result<(), StoreError> {
        self.drop_partial_delivery(domain, delivery)?;
        self.0.execute(
            "INSERT OR REPLACE INTO domain_receipts (domain, delivery, position, row) VALUES (?1, ?2, 0, 0)",
            params![domain.as_str(), &delivery.as_bytes()[..]],
        )?;
        Ok(())
    }

    /// The next position and row of a pushed delivery being received.
    pub(crate) fn receipt(
        &self,
        domain: &Name,
        delivery: &Digest,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        Ok(self
            .0
            .query_row(
                "SELECT position, row FROM domain_receipts WHERE domain = ?1 AND delivery = ?2",
                params![domain.as_str(), &delivery.as_bytes()[..]],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .optional()?)
    }

    /// Moves a receipt on to `position` and `row`, or ends it (`None`).
    pub(crate) fn set_receipt(
        &self,
        domain: &Name,
        delivery: &Digest,
        next: Option<(u64, u64)>,
    ) -> Result<(), StoreError> {
        match next {
            Some((position, row)) => self.0.execute(
                "UPDATE domain_receipts SET position = ?3, row = ?4 WHERE domain = ?1 AND delivery = ?2",
                params![domain.as_str(), &delivery.as_bytes()[..], position as i64, row as i64],
            )?,
            None => self.0.execute(
                "DELETE FROM domain_receipts WHERE domain = ?1 AND delivery = ?2",
                params![domain.as_str(), &delivery.as_bytes()[..]],
            )?,
        };
        Ok(())
    }

    /// The digest of `delivery`'s rows in `domain` as stored, streamed in
    /// row order (`receipt::TableDigest`).
    pub(crate) fn table_digest(
        &self,
        domain: &Name,
        delivery: &Digest,
    ) -> Result<kobling_protocol::receipt::TableDigest, StoreError> {
        let mut table = kobling_protocol::receipt::TableDigest::new(domain, delivery);
        let mut stmt = self.0.prepare(
            "SELECT row, pseudonym, bytes FROM domain_rows WHERE domain = ?1 AND delivery = ?2 ORDER BY row",
        )?;
        let mut rows = stmt.query(params![domain.as_str(), &delivery.as_bytes()[..]])?;
        while let Some(r) = rows.next()? {
            let row: i64 = r.get(0)?;
            let pseudonym: Vec<u8> = r.get(1)?;
            let bytes: Vec<u8> = r.get(2)?;
            let pseudonym = <[u8; 32]>::try_from(pseudonym.as_slice())
                .map(WirePoint)
                .map_err(|_| StoreError::Corrupt("pseudonym"))?;
            table.push(&pseudonym, row as u64, &bytes);
        }
        Ok(table)
    }

    /// After a re-share converted the table: every delivery's kept record
    /// gets the digest of its converted rows, so that `kobling delivery
    /// status` checks the table as it now is (the domain transcript keeps
    /// the digest recorded at receipt, and the `Reshare` entry after it).
    pub(crate) fn refresh_delivery_digests(&self, domain: &Name) -> Result<(), StoreError> {
        let mut kept = Vec::new();
        {
            let mut stmt = self
                .0
                .prepare("SELECT delivery, record FROM domain_deliveries WHERE domain = ?1")?;
            let mut rows = stmt.query(params![domain.as_str()])?;
            while let Some(r) = rows.next()? {
                kept.push((digest(r.get(0)?)?, r.get::<_, Vec<u8>>(1)?));
            }
        }
        for (delivery, record) in kept {
            let record: DomainBody = postcard::from_bytes(&record)
                .map_err(|_| StoreError::Corrupt("delivery record"))?;
            let table = self.table_digest(domain, &delivery)?;
            let (_, _, now) = table.counts();
            let DomainBody::Delivery {
                delivery: id,
                source,
                persons,
                rows,
                ..
            } = record
            else {
                return Err(StoreError::Corrupt("delivery record"));
            };
            let record = DomainBody::Delivery {
                delivery: id,
                source,
                persons,
                rows,
                table: now,
            };
            let record = postcard::to_allocvec(&record)
                .map_err(|_| StoreError::Corrupt("delivery record"))?;
            self.0.execute(
                "UPDATE domain_deliveries SET record = ?3 WHERE domain = ?1 AND delivery = ?2",
                params![domain.as_str(), &delivery.as_bytes()[..], record],
            )?;
        }
        Ok(())
    }

    /// Records that `delivery` was received in full, with its columns and
    /// its domain transcript record.
    pub(crate) fn put_domain_delivery(
        &self,
        domain: &Name,
        delivery: &Digest,
        columns: &[String],
        record: &DomainBody,
    ) -> Result<(), StoreError> {
        let columns = seal::encode_rows(&[columns.to_vec()])
            .map_err(|_| StoreError::Corrupt("delivery columns"))?;
        let record =
            postcard::to_allocvec(record).map_err(|_| StoreError::Corrupt("delivery record"))?;
        self.0.execute(
            "INSERT INTO domain_deliveries (domain, delivery, columns, record) VALUES (?1, ?2, ?3, ?4)",
            params![domain.as_str(), &delivery.as_bytes()[..], columns, record],
        )?;
        Ok(())
    }
}

impl Store {
    /// The deliveries into `domain` received in full, in id order.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn domain_deliveries(&self, domain: &Name) -> Result<Vec<StoredDelivery>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT delivery, columns, record FROM domain_deliveries WHERE domain = ?1 ORDER BY delivery",
        )?;
        let rows = stmt.query_map([domain.as_str()], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (delivery, columns, record) = r?;
            let columns = seal::decode_rows(&columns)
                .ok()
                .and_then(|mut c| c.pop())
                .ok_or(StoreError::Corrupt("delivery columns"))?;
            let record = postcard::from_bytes(&record)
                .map_err(|_| StoreError::Corrupt("delivery record"))?;
            out.push(StoredDelivery {
                delivery: digest(delivery)?,
                columns,
                record,
            });
        }
        Ok(out)
    }

    /// Streams the rows of `delivery` into `domain` to `each`, in row
    /// order, one at a time (memory stays flat in the table's size).
    ///
    /// # Errors
    ///
    /// [`StoreError`], or the first error `each` returns.
    pub fn for_each_domain_row<E: From<StoreError>>(
        &self,
        domain: &Name,
        delivery: &Digest,
        mut each: impl FnMut(DomainRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT row, pseudonym, bytes FROM domain_rows WHERE domain = ?1 AND delivery = ?2 ORDER BY row",
            )
            .map_err(StoreError::from)?;
        let mut rows = stmt
            .query(params![domain.as_str(), &delivery.as_bytes()[..]])
            .map_err(StoreError::from)?;
        while let Some(r) = rows.next().map_err(StoreError::from)? {
            let row: i64 = r.get(0).map_err(StoreError::from)?;
            let pseudonym: Vec<u8> = r.get(1).map_err(StoreError::from)?;
            let bytes: Vec<u8> = r.get(2).map_err(StoreError::from)?;
            let pseudonym = <[u8; 32]>::try_from(pseudonym.as_slice())
                .map(WirePoint)
                .map_err(|_| StoreError::Corrupt("pseudonym"))?;
            let values = seal::decode_rows(&bytes)
                .ok()
                .and_then(|mut v| v.pop())
                .ok_or(StoreError::Corrupt("domain row"))?;
            each(DomainRow {
                delivery: *delivery,
                row: row as u64,
                pseudonym,
                values,
            })?;
        }
        Ok(())
    }

    /// The rows stored under `pseudonym` in `domain`, by delivery and row
    /// number (innsyn at the holder: one person's rows, through the
    /// pseudonym index).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn person_domain_rows(
        &self,
        domain: &Name,
        pseudonym: &WirePoint,
    ) -> Result<Vec<DomainRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT delivery, row, bytes FROM domain_rows WHERE domain = ?1 AND pseudonym = ?2 ORDER BY delivery, row",
        )?;
        let rows = stmt.query_map(params![domain.as_str(), &pseudonym.as_bytes()[..]], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (delivery, row, bytes) = r?;
            let values = seal::decode_rows(&bytes)
                .ok()
                .and_then(|mut v| v.pop())
                .ok_or(StoreError::Corrupt("domain row"))?;
            out.push(DomainRow {
                delivery: digest(delivery)?,
                row: row as u64,
                pseudonym: *pseudonym,
                values,
            });
        }
        Ok(out)
    }
}
