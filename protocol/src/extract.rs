//! From extract rows to persons (PROTOCOL.md §6.1, §9): every identifier is
//! canonicalised and validated, the old→current mapping applied, and rows
//! grouped by person. Invalid identifiers are never silently dropped: they
//! are counted per reason with the line numbers of the first few, and the
//! identifier itself is never kept.
//!
//! Reading the file is the caller's business (the node reads CSV); this
//! module sees one row at a time.

use std::collections::{BTreeMap, HashMap};

use crate::ident::{IdError, IdMapping, Identifier, ParseOptions};

/// How many line numbers are kept per reason for the operator report.
pub const LINES_PER_REASON: usize = 20;

/// One person's rows (the variable columns, in extract order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The canonical, mapped identifier. Never leaves the register's node.
    pub id: Identifier,
    /// The person's rows.
    pub rows: Vec<Vec<String>>,
}

/// Invalid identifiers of one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSummary {
    /// `IdError::reason_code()`.
    pub reason: &'static str,
    /// Rows with this reason.
    pub count: u64,
    /// The first [`LINES_PER_REASON`] line numbers.
    pub lines: Vec<u64>,
}

/// Counts of an extract.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtractStats {
    /// Data rows read.
    pub rows: u64,
    /// Rows with a valid identifier.
    pub valid_rows: u64,
    /// Distinct persons.
    pub persons: u64,
    /// Rows whose identifier the mapping replaced.
    pub mapped_rows: u64,
    /// Invalid identifiers, per reason.
    pub invalid: Vec<InvalidSummary>,
}

impl ExtractStats {
    /// All invalid rows.
    pub fn invalid_rows(&self) -> u64 {
        self.invalid.iter().map(|i| i.count).sum()
    }
}

/// Refused rows counted per reason, with the first [`LINES_PER_REASON`]
/// line numbers of each: the one tally behind every operator report of
/// refused rows (extracts, pseudonym lists, reservation tables).
#[derive(Debug, Default, Clone)]
pub struct ReasonTally(BTreeMap<&'static str, InvalidSummary>);

impl ReasonTally {
    /// Counts one refused row.
    pub fn add(&mut self, reason: &'static str, line: u64) {
        let s = self.0.entry(reason).or_insert_with(|| InvalidSummary {
            reason,
            count: 0,
            lines: Vec::new(),
        });
        s.count += 1;
        if s.lines.len() < LINES_PER_REASON {
            s.lines.push(line);
        }
    }

    /// All refused rows.
    pub fn total(&self) -> u64 {
        self.0.values().map(|s| s.count).sum()
    }

    /// The summaries, in reason order.
    pub fn into_summaries(self) -> impl Iterator<Item = InvalidSummary> {
        self.0.into_values()
    }
}

/// `id` after the optional old → current mapping, counting a replaced one
/// in `mapped_rows` (extracts and reservation tables alike).
pub(crate) fn current_identifier(
    mapping: Option<&IdMapping>,
    id: Identifier,
    mapped_rows: &mut u64,
) -> Identifier {
    let Some(m) = mapping else {
        return id;
    };
    let current = m.apply(&id);
    if current != id {
        *mapped_rows += 1;
    }
    current
}

/// Accumulates an extract's rows into persons.
#[derive(Debug)]
pub struct ListBuilder {
    options: ParseOptions,
    mapping: Option<IdMapping>,
    index: HashMap<Identifier, usize>,
    persons: Vec<Person>,
    rows: u64,
    mapped_rows: u64,
    invalid: ReasonTally,
}

impl ListBuilder {
    /// A builder with the given parse options and optional mapping.
    pub fn new(options: ParseOptions, mapping: Option<IdMapping>) -> Self {
        Self {
            options,
            mapping,
            index: HashMap::new(),
            persons: Vec::new(),
            rows: 0,
            mapped_rows: 0,
            invalid: ReasonTally::default(),
        }
    }

    /// Adds one data row: its line number (for the report), the raw
    /// identifier field and the variable values.
    ///
    /// # Errors
    ///
    /// The row's [`IdError`] if the identifier is invalid; the row is counted
    /// and excluded, and the builder carries on.
    pub fn push_row(
        &mut self,
        line: u64,
        identifier: &str,
        values: Vec<String>,
    ) -> Result<(), IdError> {
        self.rows += 1;
        let id = match Identifier::parse(identifier, self.options) {
            Ok(id) => id,
            Err(e) => {
                self.invalid.add(e.reason_code(), line);
                return Err(e);
            }
        };
        let id = current_identifier(self.mapping.as_ref(), id, &mut self.mapped_rows);
        match self.index.get(&id) {
            Some(&i) => self.persons[i].rows.push(values),
            None => {
                self.index.insert(id, self.persons.len());
                self.persons.push(Person {
                    id,
                    rows: vec![values],
                });
            }
        }
        Ok(())
    }

    /// The persons (in order of first appearance) and the counts.
    pub fn finish(self) -> (Vec<Person>, ExtractStats) {
        let stats = ExtractStats {
            rows: self.rows,
            valid_rows: self.rows - self.invalid.total(),
            persons: self.persons.len() as u64,
            mapped_rows: self.mapped_rows,
            invalid: self.invalid.into_summaries().collect(),
        };
        (self.persons, stats)
    }
}
