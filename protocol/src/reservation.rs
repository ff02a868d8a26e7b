//! Reservasjon (PROTOCOL.md §10a, issue 16): a person may reserve against
//! disclosure of their health data *together with fnr*. Only an
//! identified project (the researcher brings its own fnr list) is
//! affected; an ordinary project delivers lnr and ignores the table.
//!
//! ```text
//!  reservation file rows ─▶ ReservationBuilder::push_row ─▶ ReservationTable
//!                             (invalid rows counted per reason, like extracts)
//!  identified project:  persons ─▶ ReservationTable::exclude ─▶ kept persons
//!                                                         └──▶ ShownCount (never under 5)
//! ```
//!
//! The table never leaves the register's node, and the excluded persons are
//! never listed: the only thing reported beyond the node is their number as
//! a [`ShownCount`], which shows any count under [`SMALL_CELL`] as `<5`.

use std::{collections::BTreeSet, fmt};

use serde::{Deserialize, Serialize};

use crate::{
    extract::{current_identifier, InvalidSummary, Person, ReasonTally},
    ident::{IdError, IdMapping, Identifier, ParseOptions},
};

/// The smallest count shown as a number; anything below is `<5`
/// (statistics never show cells under 5 persons).
pub const SMALL_CELL: u64 = 5;

/// A count of persons as it may be shown outside the register's node: the
/// exact number from [`SMALL_CELL`] up, otherwise only "under 5". Every
/// count under 5, zero included, has the same encoding, so nothing that
/// carries a `ShownCount` tells 0 from 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShownCount {
    /// Fewer than [`SMALL_CELL`] persons (possibly none).
    Under5,
    /// At least [`SMALL_CELL`] persons.
    Exactly(u64),
}

impl ShownCount {
    /// The shown form of `n`.
    pub fn of(n: u64) -> Self {
        if n < SMALL_CELL {
            Self::Under5
        } else {
            Self::Exactly(n)
        }
    }

    /// Whether a decoded value is one [`ShownCount::of`] can produce
    /// (`Exactly(n)` with `n < 5` is not, and is refused by verifiers).
    pub fn is_canonical(self) -> bool {
        match self {
            Self::Under5 => true,
            Self::Exactly(n) => n >= SMALL_CELL,
        }
    }
}

impl fmt::Display for ShownCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Under5 => f.write_str("<5"),
            Self::Exactly(n) => write!(f, "{n}"),
        }
    }
}

/// What reading a reservation table found, for the operator's report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReservationStats {
    /// Data rows read.
    pub rows: u64,
    /// Distinct persons who reserved (after the mapping).
    pub persons: u64,
    /// Rows whose identifier the mapping replaced.
    pub mapped_rows: u64,
    /// Invalid identifiers, per reason (the identifiers are not kept).
    pub invalid: Vec<InvalidSummary>,
}

/// Reads a register's reservation table one row at a time. Identifiers are
/// canonicalised, validated and mapped exactly as an extract's are, so a
/// person who reserved under an old D-nummer is excluded under the current
/// fnr.
#[derive(Debug)]
pub struct ReservationBuilder {
    options: ParseOptions,
    mapping: Option<IdMapping>,
    reserved: BTreeSet<Identifier>,
    rows: u64,
    mapped_rows: u64,
    invalid: ReasonTally,
}

impl ReservationBuilder {
    /// A builder with the node's parse options and optional mapping.
    pub fn new(options: ParseOptions, mapping: Option<IdMapping>) -> Self {
        Self {
            options,
            mapping,
            reserved: BTreeSet::new(),
            rows: 0,
            mapped_rows: 0,
            invalid: ReasonTally::default(),
        }
    }

    /// Adds one row: its line number (for the report) and the raw
    /// identifier. A person listed twice is one reservation.
    ///
    /// # Errors
    ///
    /// The row's [`IdError`]; the row is counted per reason and the builder
    /// carries on.
    pub fn push_row(&mut self, line: u64, identifier: &str) -> Result<(), IdError> {
        self.rows += 1;
        let id = Identifier::parse(identifier, self.options).inspect_err(|e| {
            self.invalid.add(e.reason_code(), line);
        })?;
        let id = current_identifier(self.mapping.as_ref(), id, &mut self.mapped_rows);
        self.reserved.insert(id);
        Ok(())
    }

    /// The table and what reading it found.
    pub fn finish(self) -> (ReservationTable, ReservationStats) {
        let stats = ReservationStats {
            rows: self.rows,
            persons: self.reserved.len() as u64,
            mapped_rows: self.mapped_rows,
            invalid: self.invalid.into_summaries().collect(),
        };
        (
            ReservationTable {
                reserved: self.reserved,
            },
            stats,
        )
    }
}

/// The persons who reserved against disclosure with fnr. Lives only in the
/// register's node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReservationTable {
    reserved: BTreeSet<Identifier>,
}

/// The result of applying a reservation table to a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excluded {
    /// The persons who stay in the list, in their original order.
    pub kept: Vec<Person>,
    /// How many were removed. Exact, for the register's own node; show it
    /// anywhere else only as [`Excluded::shown`].
    pub count: u64,
}

impl Excluded {
    /// The count as it may leave the register's node.
    pub fn shown(&self) -> ShownCount {
        ShownCount::of(self.count)
    }
}

impl ReservationTable {
    /// Distinct persons in the table.
    pub fn len(&self) -> usize {
        self.reserved.len()
    }

    /// Whether nobody reserved.
    pub fn is_empty(&self) -> bool {
        self.reserved.is_empty()
    }

    /// Whether `id` reserved.
    pub fn contains(&self, id: &Identifier) -> bool {
        self.reserved.contains(id)
    }

    /// The numbers of the persons `ids` (a list's persons, by number) who
    /// stay in an identified project's list: those who did not reserve, in
    /// their order. What a node uses; [`exclude`](Self::exclude) is the
    /// same rule over an extract read in memory.
    pub fn kept(&self, ids: &[Identifier]) -> Vec<u32> {
        (0..ids.len() as u32)
            .zip(ids)
            .filter(|(_, id)| !self.reserved.contains(id))
            .map(|(p, _)| p)
            .collect()
    }

    /// Removes every person who reserved from an identified project's list
    /// (before the chain), keeping the others' order. An ordinary project
    /// never calls this.
    pub fn exclude(&self, persons: Vec<Person>) -> Excluded {
        let total = persons.len();
        let kept: Vec<Person> = persons
            .into_iter()
            .filter(|p| !self.reserved.contains(&p.id))
            .collect();
        Excluded {
            count: (total - kept.len()) as u64,
            kept,
        }
    }
}

#[cfg(test)]
mod tests;
