//! Register domains' tables (PROTOCOL.md §10): each node's verified copy
//! of a domain transcript, a key holder's last commitment sent, and the
//! holder's retirement signatures collected so far.
//!
//! | table | what |
//! |---|---|
//! | `domain_entries` | the node's copy of each domain's transcript (verified whole before every append) |
//! | `domain_commit_sent` | at a key holder: the transcript length at which it last signed its commitment |
//! | `domain_retire_sigs` | at the holder: operators' signatures on the next `Retired` entry, by its statement digest |
//! | `domain_reshare`, `domain_reshare_rows` | at the holder: a re-share of its table (`domain_rows`, `store/domain_rows.rs`) in progress (its new key, and each converted `Ψ_R` beside the old one until the table is replaced) |
//!
//! The transcript tables hold names, keys, counts and digests, never a
//! pseudonym; only the holder's own tables hold `Ψ_R`.

use kobling_protocol::{
    domain::transcript::{DomainEntry, OperatorSig},
    group::WirePoint,
    manifest::Ed25519Key,
    messages::{self, Message},
    transcript::{self, Sig},
    types::{Digest, Name, UnixTime},
};
use rusqlite::{params, Connection, OptionalExtension};

use super::{Store, StoreError, Tx};

/// The tables, created with the store's.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS domain_entries (domain TEXT NOT NULL, seq INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (domain, seq));
CREATE TABLE IF NOT EXISTS domain_commit_sent (domain TEXT NOT NULL PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS domain_retire_sigs (domain TEXT NOT NULL, statement BLOB NOT NULL, key BLOB NOT NULL, signature BLOB NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (domain, statement, key));
CREATE TABLE IF NOT EXISTS domain_reshare (domain TEXT NOT NULL, member TEXT NOT NULL, total INTEGER NOT NULL, to_key BLOB, PRIMARY KEY (domain, member));
CREATE TABLE IF NOT EXISTS domain_reshare_rows (domain TEXT NOT NULL, old BLOB NOT NULL, new BLOB NOT NULL, PRIMARY KEY (domain, old));
";

/// The outbox's `project` column for a domain's messages: not a valid
/// project id (`/`), so no project's deletion touches them.
fn outbox_key(domain: &Name) -> String {
    format!("domain/{domain}")
}

fn entries_of(conn: &Connection, domain: &Name) -> Result<Vec<DomainEntry>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT bytes FROM domain_entries WHERE domain = ?1 ORDER BY seq")?;
    let rows = stmt.query_map([domain.as_str()], |r| r.get::<_, Vec<u8>>(0))?;
    let mut out = Vec::new();
    for r in rows {
        out.push(
            postcard::from_bytes::<DomainEntry>(&r?)
                .map_err(|_| StoreError::Corrupt("domain transcript entry"))?,
        );
    }
    Ok(out)
}

impl Store {
    /// This node's copy of `domain`'s transcript (empty if it has none).
    pub(crate) fn domain_entries(&self, domain: &Name) -> Result<Vec<DomainEntry>, StoreError> {
        entries_of(&self.conn, domain)
    }
}

impl Tx<'_> {
    /// This node's copy of `domain`'s transcript.
    pub(crate) fn domain_entries(&self, domain: &Name) -> Result<Vec<DomainEntry>, StoreError> {
        entries_of(self.0, domain)
    }

    /// Appends entries to `domain`'s copy (the caller verified the whole).
    pub(crate) fn append_domain_entries(
        &self,
        domain: &Name,
        entries: &[DomainEntry],
    ) -> Result<(), StoreError> {
        for e in entries {
            self.0
                .prepare_cached(
                    "INSERT INTO domain_entries (domain, seq, bytes) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    domain.as_str(),
                    e.seq as i64,
                    transcript::encode_value(e)
                ])?;
        }
        Ok(())
    }

    /// Queues a domain message for `dest`.
    pub(crate) fn send_domain(
        &self,
        domain: &Name,
        dest: &Name,
        msg: &Message,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached("INSERT INTO outbox (project, dest, bytes) VALUES (?1, ?2, ?3)")?
            .execute(params![
                outbox_key(domain),
                dest.as_str(),
                messages::encode(msg)
            ])?;
        Ok(())
    }

    /// The transcript length at which this key holder last signed its
    /// commitment to `domain`.
    pub(crate) fn domain_commit_sent(&self, domain: &Name) -> Result<Option<u64>, StoreError> {
        let seq: Option<i64> = self
            .0
            .query_row(
                "SELECT seq FROM domain_commit_sent WHERE domain = ?1",
                [domain.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        seq.map(|s| u64::try_from(s).map_err(|_| StoreError::Corrupt("domain commitment")))
            .transpose()
    }

    /// Records that the commitment was signed at transcript length `seq`.
    pub(crate) fn set_domain_commit_sent(&self, domain: &Name, seq: u64) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT OR REPLACE INTO domain_commit_sent (domain, seq) VALUES (?1, ?2)",
            params![domain.as_str(), seq as i64],
        )?;
        Ok(())
    }

    /// Keeps an operator's signature on the retirement entry whose
    /// statement digest is `statement` (one per operator key: a second
    /// one by the same operator replaces the first).
    pub(crate) fn put_retire_sig(
        &self,
        domain: &Name,
        statement: &Digest,
        sig: &OperatorSig,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT OR REPLACE INTO domain_retire_sigs (domain, statement, key, signature, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                domain.as_str(),
                statement.as_bytes().as_slice(),
                sig.key.0.as_slice(),
                sig.signature.0.as_slice(),
                now.secs() as i64
            ],
        )?;
        Ok(())
    }

    /// The operators' signatures on `statement` so far, oldest first.
    pub(crate) fn retire_sigs(
        &self,
        domain: &Name,
        statement: &Digest,
    ) -> Result<Vec<OperatorSig>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT key, signature FROM domain_retire_sigs WHERE domain = ?1 AND statement = ?2 ORDER BY at, rowid",
        )?;
        let rows = stmt.query_map(
            params![domain.as_str(), statement.as_bytes().as_slice()],
            |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?)),
        )?;
        let mut out = Vec::new();
        for r in rows {
            let (key, signature) = r?;
            let bad = || StoreError::Corrupt("retirement signature");
            out.push(OperatorSig {
                key: Ed25519Key(key.try_into().map_err(|_| bad())?),
                signature: Sig(signature.try_into().map_err(|_| bad())?),
            });
        }
        Ok(out)
    }

    /// Forgets the retirement signatures of `domain` (once it is retired).
    pub(crate) fn clear_retire_sigs(&self, domain: &Name) -> Result<(), StoreError> {
        self.0.execute(
            "DELETE FROM domain_retire_sigs WHERE domain = ?1",
            [domain.as_str()],
        )?;
        Ok(())
    }
}

/// A re-share in progress at the holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReshareSession {
    /// Persons in the table when it started.
    pub(crate) total: u64,
    /// The new key the first converted page was bound to.
    pub(crate) to_key: Option<WirePoint>,
}

fn point(bytes: Vec<u8>) -> Result<WirePoint, StoreError> {
    Ok(WirePoint(
        bytes
            .try_into()
            .map_err(|_| StoreError::Corrupt("pseudonym"))?,
    ))
}

impl Tx<'_> {
    /// Distinct persons (pseudonyms) in the holder's table of `domain`.
    pub(crate) fn holder_persons(&self, domain: &Name) -> Result<u64, StoreError> {
        let n: i64 = self.0.query_row(
            "SELECT COUNT(DISTINCT pseudonym) FROM domain_rows WHERE domain = ?1",
            [domain.as_str()],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The holder's distinct pseudonyms of `domain` in byte order, from
    /// position `first`, at most `limit`.
    pub(crate) fn holder_pseudonyms(
        &self,
        domain: &Name,
        first: u64,
        limit: usize,
    ) -> Result<Vec<WirePoint>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT DISTINCT pseudonym FROM domain_rows WHERE domain = ?1 ORDER BY pseudonym LIMIT ?2 OFFSET ?3",
        )?;
        let rows = stmt.query_map(
            params![
                domain.as_str(),
                i64::try_from(limit).unwrap_or(i64::MAX),
                i64::try_from(first).unwrap_or(i64::MAX)
            ],
            |r| r.get::<_, Vec<u8>>(0),
        )?;
        let mut out = Vec::new();
        for r in rows {
            out.push(point(r?)?);
        }
        Ok(out)
    }

    /// Starts (or starts again) a re-share of `member`'s share over a
    /// table of `total` persons.
    pub(crate) fn start_reshare(
        &self,
        domain: &Name,
        member: &Name,
        total: u64,
    ) -> Result<(), StoreError> {
        self.clear_reshare(domain)?;
        self.0.execute(
            "INSERT INTO domain_reshare (domain, member, total, to_key) VALUES (?1, ?2, ?3, NULL)",
            params![domain.as_str(), member.as_str(), total as i64],
        )?;
        Ok(())
    }

    /// The re-share of `member`'s share in progress, if any.
    pub(crate) fn reshare(
        &self,
        domain: &Name,
        member: &Name,
    ) -> Result<Option<ReshareSession>, StoreError> {
        let row: Option<(i64, Option<Vec<u8>>)> = self
            .0
            .query_row(
                "SELECT total, to_key FROM domain_reshare WHERE domain = ?1 AND member = ?2",
                params![domain.as_str(), member.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(total, to_key)| {
            Ok(ReshareSession {
                total: u64::try_from(total).map_err(|_| StoreError::Corrupt("re-share"))?,
                to_key: to_key.map(point).transpose()?,
            })
        })
        .transpose()
    }

    /// Keeps a converted page: the new key it was bound to, and each new
    /// value beside the old one.
    pub(crate) fn put_reshare_page(
        &self,
        domain: &Name,
        member: &Name,
        to_key: &WirePoint,
        old: &[WirePoint],
        new: &[WirePoint],
    ) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE domain_reshare SET to_key = ?3 WHERE domain = ?1 AND member = ?2",
            params![domain.as_str(), member.as_str(), to_key.0.as_slice()],
        )?;
        let mut stmt = self.0.prepare_cached(
            "INSERT OR REPLACE INTO domain_reshare_rows (domain, old, new) VALUES (?1, ?2, ?3)",
        )?;
        for (o, n) in old.iter().zip(new) {
            stmt.execute(params![domain.as_str(), o.0.as_slice(), n.0.as_slice()])?;
        }
        Ok(())
    }

    /// Converted persons of the re-share in progress.
    pub(crate) fn reshare_converted(&self, domain: &Name) -> Result<u64, StoreError> {
        let n: i64 = self.0.query_row(
            "SELECT COUNT(*) FROM domain_reshare_rows r WHERE r.domain = ?1 AND EXISTS (SELECT 1 FROM domain_rows d WHERE d.domain = r.domain AND d.pseudonym = r.old)",
            [domain.as_str()],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Replaces every pseudonym of the holder's table by its converted
    /// value.
    pub(crate) fn apply_reshare(&self, domain: &Name) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE domain_rows SET pseudonym = (SELECT r.new FROM domain_reshare_rows r WHERE r.domain = domain_rows.domain AND r.old = domain_rows.pseudonym) WHERE domain = ?1",
            [domain.as_str()],
        )?;
        Ok(())
    }

    /// Forgets the re-share in progress of `domain`.
    pub(crate) fn clear_reshare(&self, domain: &Name) -> Result<(), StoreError> {
        for table in ["domain_reshare", "domain_reshare_rows"] {
            self.0.execute(
                &format!("DELETE FROM {table} WHERE domain = ?1"),
                [domain.as_str()],
            )?;
        }
        Ok(())
    }
}
