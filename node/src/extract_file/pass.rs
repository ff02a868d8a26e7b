//! The one pass over an extract (see the parent module's layout): records
//! from the reader, the header checked, every row checked for shape and
//! handed to a [`Collector`], excluded rows counted per reason.

use std::{collections::BTreeMap, io::Read};

use kobling_protocol::extract::{ListBuilder, Person};
use kobling_protocol::{
    extract::{ExtractStats, ReasonTally, LINES_PER_REASON},
    ident::{IdError, Identifier, ParseOptions},
    seal::{MAX_CELL_BYTES, MAX_ROWS_PER_PERSON},
};

use super::{
    error::{masked_raw, shown, ExtractError},
    header::Header,
    records::RecordReader,
    ExtractSummary, RowIssue, CELL_TOO_LONG, FNR, RAGGED_ROW,
};

/// The one pass.
pub(super) fn read_with<C: Collector>(
    input: impl Read,
    mut collector: C,
) -> Result<(ExtractSummary, C::Output), ExtractError> {
    let mut reader = RecordReader::new(input)?;
    let header = Header::parse(reader.next_record()?.ok_or(ExtractError::Empty)?, C::KEY)?;
    let mut row_issues = ReasonTally::default();
    let mut identifier_like = vec![0u64; header.names.len()];
    let mut details: BTreeMap<&'static str, Vec<RowIssue>> = BTreeMap::new();
    let mut note = |issue: RowIssue| {
        let v = details.entry(issue.reason).or_default();
        if v.len() < LINES_PER_REASON {
            v.push(issue);
        }
    };
    while let Some(rec) = reader.next_record()? {
        let line = rec.line();
        let mut fields: Vec<&str> = Vec::with_capacity(header.names.len());
        for (i, f) in rec.fields().enumerate() {
            match std::str::from_utf8(f) {
                Ok(s) => fields.push(s),
                Err(e) => return Err(header.utf8_error(rec, i, e.valid_up_to())),
            }
        }
        if fields.len() != header.names.len() {
            row_issues.add(RAGGED_ROW, line);
            note(RowIssue {
                reason: RAGGED_ROW,
                line,
                detail: format!(
                    "{} fields, the header has {}",
                    fields.len(),
                    header.names.len()
                ),
                masked: None,
            });
            continue;
        }
        if let Some(i) = fields.iter().position(|f| f.len() > MAX_CELL_BYTES) {
            row_issues.add(CELL_TOO_LONG, line);
            note(RowIssue {
                reason: CELL_TOO_LONG,
                line,
                detail: format!(
                    "column {} has {} bytes, at most {MAX_CELL_BYTES} can be delivered",
                    shown(&header.names[i]),
                    fields[i].len()
                ),
                masked: None,
            });
            continue;
        }
        for (i, v) in fields.iter().enumerate() {
            if i != header.fnr && looks_like_identifier(v) {
                identifier_like[i] += 1;
            }
        }
        let values = if C::KEEPS_VALUES {
            fields
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != header.fnr)
                .map(|(_, v)| (*v).to_owned())
                .collect()
        } else {
            Vec::new()
        };
        let raw = fields[header.fnr];
        if let Err(e) = collector.push(line, raw, values) {
            note(RowIssue {
                reason: e.reason(),
                line,
                detail: e.detail(),
                masked: e.masked(raw),
            });
        }
    }
    let (digest, bytes) = reader.finish()?;
    let (output, mut stats, per_person) = collector.finish();
    if per_person.max > MAX_ROWS_PER_PERSON as u64 {
        return Err(ExtractError::TooManyRowsForPerson {
            rows: per_person.max,
        });
    }
    stats.rows += row_issues.total();
    stats.invalid.extend(row_issues.into_summaries());
    stats.invalid.sort_by_key(|s| s.reason);
    let mut details: Vec<RowIssue> = details.into_values().flatten().collect();
    details.sort_by_key(|d| d.line);
    let summary = ExtractSummary {
        digest,
        bytes,
        columns: header.variables(),
        stats,
        persons_with_several_rows: per_person.several,
        max_rows_per_person: per_person.max,
        identifier_columns: header
            .names
            .iter()
            .zip(identifier_like)
            .filter(|&(_, n)| n > 0)
            .map(|(name, n)| (name.clone(), n))
            .collect(),
        details,
    };
    Ok((summary, output))
}

/// Whether a variable's value is a valid identifier (synthetic included):
/// at most 64 bytes (so long text is not scanned) and parses.
fn looks_like_identifier(value: &str) -> bool {
    value.len() <= 64
        && Identifier::parse(
            value,
            ParseOptions {
                allow_synthetic: true,
            },
        )
        .is_ok()
}

/// The operator's description of an identifier error (never contains
/// the identifier), with a hint for the usual spreadsheet accident.
fn id_detail(e: &IdError) -> String {
    if matches!(e, IdError::WrongLength { len: 10 }) {
        format!("{e} (a leading 0 dropped by a spreadsheet is the usual cause)")
    } else {
        e.to_string()
    }
}

/// Why a row's key field was refused, as the one pass reports it.
pub(super) trait RowError {
    /// The reason code the row is counted under.
    fn reason(&self) -> &'static str;
    /// What is wrong, without the field.
    fn detail(&self) -> String;
    /// The field masked for the operator, if it may be shown at all.
    fn masked(&self, raw: &str) -> Option<String>;
}

impl RowError for IdError {
    fn reason(&self) -> &'static str {
        self.reason_code()
    }

    fn detail(&self) -> String {
        id_detail(self)
    }

    fn masked(&self, raw: &str) -> Option<String> {
        Some(masked_raw(raw)).filter(|m| !m.is_empty())
    }
}

/// Rows per person.
#[derive(Debug, Default)]
pub(super) struct PerPerson {
    /// Persons with more than one row.
    pub(super) several: u64,
    /// The most rows of one person.
    pub(super) max: u64,
}

impl PerPerson {
    /// Of each person's row count.
    pub(super) fn of(counts: impl Iterator<Item = u64>) -> PerPerson {
        counts.fold(PerPerson::default(), |acc, n| PerPerson {
            several: acc.several + u64::from(n > 1),
            max: acc.max.max(n),
        })
    }
}

/// Where the rows with a plausible shape go.
pub(super) trait Collector {
    /// Whether [`push`](Self::push) wants the variable values.
    const KEEPS_VALUES: bool;
    /// The key column.
    const KEY: &'static str = FNR;
    /// What [`finish`](Self::finish) gives besides the counts.
    type Output;
    /// Why a row's key field is refused.
    type Error: RowError;
    /// One row: its line, raw identifier field and (if wanted) values.
    fn push(&mut self, line: u64, identifier: &str, values: Vec<String>)
        -> Result<(), Self::Error>;
    /// The output, the identifier counts, and rows per person.
    fn finish(self) -> (Self::Output, ExtractStats, PerPerson);
}

impl Collector for ListBuilder {
    const KEEPS_VALUES: bool = true;
    type Output = Vec<Person>;
    type Error = IdError;

    fn push(&mut self, line: u64, identifier: &str, values: Vec<String>) -> Result<(), IdError> {
        self.push_row(line, identifier, values)
    }

    fn finish(self) -> (Vec<Person>, ExtractStats, PerPerson) {
        let (persons, stats) = ListBuilder::finish(self);
        let per_person = PerPerson::of(persons.iter().map(|p| p.rows.len() as u64));
        (persons, stats, per_person)
    }
}
