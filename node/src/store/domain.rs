//! Register domains' tables (PROTOCOL.md §10): each node's verified copy
//! of a domain transcript, a key holder's last commitment sent, and the
//! holder's retirement signatures collected so far.
//!
//! | table | what |
//! |---|---|
//! | `domain_entries` | the node's copy of each domain's transcript (verified whole before every append) |
//! | `domain_commit_sent` | at a key holder: the transcript length at which it last signed its commitment |
//! | `domain_retire_sigs` | at the holder: operators' signatures on the next `Retired` entry, by its statement digest |
//!
//! Nothing here is a pseudonym: a domain transcript holds names, keys,
//! counts and digests.

use kobling_protocol::{
    domain::transcript::{DomainEntry, OperatorSig},
    manifest::Key32,
    messages::{self, Message},
    transcript::{self, Sig},
    types::{Digest, Name},
};
use rusqlite::{params, Connection, OptionalExtension};

use super::{Store, StoreError, Tx};

/// The tables, created with the store's.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS domain_entries (domain TEXT NOT NULL, seq INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (domain, seq));
CREATE TABLE IF NOT EXISTS domain_commit_sent (domain TEXT NOT NULL PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS domain_retire_sigs (domain TEXT NOT NULL, statement BLOB NOT NULL, key BLOB NOT NULL, signature BLOB NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (domain, statement, key));
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
        now: u64,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT OR REPLACE INTO domain_retire_sigs (domain, statement, key, signature, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                domain.as_str(),
                statement.as_bytes().as_slice(),
                sig.key.0.as_slice(),
                sig.signature.0.as_slice(),
                now as i64
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
                key: Key32(key.try_into().map_err(|_| bad())?),
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
