//! The collectors of the one pass: what every one counts ([`RowCounts`]),
//! the identifier parsing and mapping the fnr collectors share
//! ([`Canonical`]), and the persons a staging read numbers and hands to
//! its sink ([`PersonRows`]).

use std::{
    collections::{hash_map::Entry, HashMap},
    convert::Infallible,
    hash::Hash,
    io,
    io::Read,
};

use kobling_protocol::{
    extract::{ExtractStats, ReasonTally},
    ident::{IdError, IdMapping, Identifier, ParseOptions},
};

use super::{
    error::ExtractError,
    pass::{read_with, Collector, PerPerson, RowError},
    ExtractSummary,
};

/// What every collector counts: the rows it was handed, the rows whose
/// identifier a mapping changed, and the refused keys per reason.
#[derive(Debug, Default)]
pub(super) struct RowCounts {
    rows: u64,
    mapped_rows: u64,
    invalid: ReasonTally,
}

impl RowCounts {
    /// Counts a row and parses its key with `parse`; a refused key is
    /// tallied under its reason at `line`.
    pub(super) fn key<T, E: RowError>(
        &mut self,
        line: u64,
        parse: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        self.rows += 1;
        parse().inspect_err(|e| self.invalid.add(e.reason(), line))
    }

    /// Tallies a row already counted by [`key`](Self::key) whose key was
    /// refused later, under its reason at `line`.
    pub(super) fn refuse<E: RowError>(&mut self, line: u64, e: &E) {
        self.invalid.add(e.reason(), line);
    }

    /// The counts, for `persons` persons.
    pub(super) fn stats(self, persons: u64) -> ExtractStats {
        let invalid_rows = self.invalid.total();
        ExtractStats {
            rows: self.rows,
            valid_rows: self.rows - invalid_rows,
            persons,
            mapped_rows: self.mapped_rows,
            invalid: self.invalid.into_summaries().collect(),
        }
    }
}

/// A row's identifier as the fnr collectors count it: parsed (an invalid
/// one tallied by reason), then mapped to the current identifier.
pub(super) struct Canonical<'a> {
    options: ParseOptions,
    mapping: Option<&'a IdMapping>,
    /// The counts so far.
    pub(super) counts: RowCounts,
}

impl<'a> Canonical<'a> {
    pub(super) fn new(options: ParseOptions, mapping: Option<&'a IdMapping>) -> Self {
        Self {
            options,
            mapping,
            counts: RowCounts::default(),
        }
    }

    /// Counts the row at `line` and returns its current identifier.
    pub(super) fn identifier(&mut self, line: u64, raw: &str) -> Result<Identifier, IdError> {
        let options = self.options;
        let id = self.counts.key(line, || Identifier::parse(raw, options))?;
        Ok(match self.mapping {
            Some(m) => {
                let current = m.apply(&id);
                self.counts.mapped_rows += u64::from(current != id);
                current
            }
            None => id,
        })
    }
}

/// Numbers persons by their key `K`, in order of first row, keeps each
/// one's first `V` (the identifier or pseudonym the node lists), counts
/// each one's rows and hands every row to a sink. The first error of the
/// sink is kept; rows after it are not handed on.
pub(super) struct PersonRows<K, V, F> {
    index: HashMap<K, u32>,
    persons: Vec<V>,
    rows_of: Vec<u32>,
    sink: F,
    failed: Option<io::Error>,
}

/// What a staging collector gives: the persons in order, and the sink's
/// error if it failed.
pub(super) type Staged<V> = (Vec<V>, Option<io::Error>);

impl<K, V, F> PersonRows<K, V, F>
where
    K: Hash + Eq,
    F: FnMut(u32, Vec<String>) -> io::Result<()>,
{
    pub(super) fn new(sink: F) -> Self {
        Self {
            index: HashMap::new(),
            persons: Vec::new(),
            rows_of: Vec::new(),
            sink,
            failed: None,
        }
    }

    /// Takes a row of the person keyed `key` (listed as `person` if new).
    pub(super) fn push(&mut self, key: K, person: V, values: Vec<String>) {
        let Ok(()) = self.push_with(key, || Ok::<_, Infallible>(person), values);
    }

    /// Takes a row of the person keyed `key`; only for a key not seen
    /// before is `person` called (the key's check, e.g. decoding a point,
    /// runs once per person, not once per row). A refused key takes no
    /// row.
    pub(super) fn push_with<E>(
        &mut self,
        key: K,
        person: impl FnOnce() -> Result<V, E>,
        values: Vec<String>,
    ) -> Result<(), E> {
        let number = match self.index.entry(key) {
            Entry::Occupied(seen) => *seen.get(),
            Entry::Vacant(new) => {
                let person = person()?;
                let number = *new.insert(self.rows_of.len() as u32);
                self.rows_of.push(0);
                self.persons.push(person);
                number
            }
        };
        self.rows_of[number as usize] += 1;
        if self.failed.is_none() {
            if let Err(e) = (self.sink)(number, values) {
                self.failed = Some(e);
            }
        }
        Ok(())
    }

    /// The end of a staging collector: the persons and the sink's error,
    /// the counts, and rows per person.
    pub(super) fn finish(self, counts: RowCounts) -> (Staged<V>, ExtractStats, PerPerson) {
        let stats = counts.stats(self.persons.len() as u64);
        let per_person = PerPerson::of(self.rows_of.iter().map(|&n| u64::from(n)));
        ((self.persons, self.failed), stats, per_person)
    }
}

/// The one pass with a staging collector: the summary and the persons, or
/// [`ExtractError::Read`] if the sink failed.
pub(super) fn stage_with<V, C>(
    input: impl Read,
    collector: C,
) -> Result<(ExtractSummary, Vec<V>), ExtractError>
where
    C: Collector<Output = Staged<V>>,
{
    let (summary, (persons, failed)) = read_with(input, collector)?;
    match failed {
        Some(e) => Err(ExtractError::Read(e)),
        None => Ok((summary, persons)),
    }
}

/// Numbers persons and hands their rows to a sink (see
/// [`super::stage_extract`]).
pub(super) struct Stager<'a, F> {
    pub(super) canonical: Canonical<'a>,
    pub(super) persons: PersonRows<Identifier, Identifier, F>,
}

impl<F> Collector for Stager<'_, F>
where
    F: FnMut(u32, Vec<String>) -> io::Result<()>,
{
    const KEEPS_VALUES: bool = true;
    type Output = Staged<Identifier>;
    type Error = IdError;

    fn push(&mut self, line: u64, identifier: &str, values: Vec<String>) -> Result<(), IdError> {
        let id = self.canonical.identifier(line, identifier)?;
        self.persons.push(id, id, values);
        Ok(())
    }

    fn finish(self) -> (Self::Output, ExtractStats, PerPerson) {
        self.persons.finish(self.canonical.counts)
    }
}

/// Counts what `ListBuilder` counts without keeping rows: one counter per
/// person.
pub(super) struct Tally<'a> {
    pub(super) canonical: Canonical<'a>,
    pub(super) rows_of: HashMap<Identifier, u64>,
}

impl Collector for Tally<'_> {
    const KEEPS_VALUES: bool = false;
    type Output = ();
    type Error = IdError;

    fn push(&mut self, line: u64, identifier: &str, _: Vec<String>) -> Result<(), IdError> {
        let id = self.canonical.identifier(line, identifier)?;
        *self.rows_of.entry(id).or_default() += 1;
        Ok(())
    }

    fn finish(self) -> ((), ExtractStats, PerPerson) {
        let stats = self.canonical.counts.stats(self.rows_of.len() as u64);
        ((), stats, PerPerson::of(self.rows_of.into_values()))
    }
}
