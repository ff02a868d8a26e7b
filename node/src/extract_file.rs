//! Register extract files (PROTOCOL.md §5.2, §6.1, §9): one streaming pass
//! that hashes the file, checks its shape, validates every identifier and
//! groups the rows by person. The node (approval, list preparation) and
//! `kobling extract check` share it, so an operator sees before approving
//! exactly the counts the node will announce.
//!
//! # Format
//!
//! CSV, UTF-8 (a byte-order mark at the start is allowed), `\n` or `\r\n`
//! line endings, `,` separator, `"` quoting (fields may hold commas, quotes
//! as `""` and line breaks); the dialect is in [`records`]. The first
//! record is the header: the identifier column is named `fnr` (exactly,
//! after trimming whitespace), every other column is a variable passed
//! through as text, unchanged, in extract order.
//!
//! # Layout
//!
//! ```text
//!  file ──64 KiB reads──▶ RecordReader ──first record──▶ Header: fnr column, variables
//!                          │ SHA3-256 of  ──records─────▶ row checks ──ok──▶ Collector
//!                          │ every byte                      │               ├ Stager (stage_extract, the
//!                          ▼                                 ▼               │   node): rows to disk, one
//!                        digest           ragged-row, cell-too-long,         │   identifier per person
//!                                         bad identifiers: counted per       └ Tally (check_extract, the
//!                                         reason with lines, excluded           CLI): a counter per person
//! ```
//!
//! One pass, never the whole file in memory: the reader holds one 64 KiB
//! buffer and one record (at most 1 MiB). Besides that, [`stage_extract`]
//! keeps one identifier and one row counter per person in memory and hands
//! every valid row to its sink (the node's staging file, see
//! `crate::staging`), and [`check_extract`] keeps one counter per person,
//! so both need memory per person (about 40 bytes), not per row or byte.
//! The digest comes from the same bytes the rows were parsed from, so a
//! file changed between approval and reading cannot slip through: the node
//! compares [`ExtractSummary::digest`] with the approved digest.
//!
//! The 2 GB case is a test run by hand (it writes 2.1 GB to a temporary
//! directory): `cargo test -p kobling-node --test extract_check --
//! --ignored --nocapture`. Measured on the 2-core development machine:
//! 2.1 GB, 41.5 million rows, 65 s in a test build; a 1.7 GB file of
//! 49.6 million rows and 165 264 persons took 85 s in a debug build with a
//! peak RSS of 13 MB under `/usr/bin/time -v kobling extract check`, and
//! its digest matched Python's `hashlib.sha3_256`.
//!
//! # Bad input
//!
//! Every bad input ends in either a refusal ([`ExtractError`], before
//! anything is sent, with the line and a hint) or a read in which bad rows
//! are counted per reason (with the first 20 line numbers) and excluded,
//! and every other row is kept:
//!
//! | input | outcome |
//! |---|---|
//! | empty file, only empty lines or a BOM | refused: [`ExtractError::Empty`] |
//! | header only | read: zero rows (a register may have no one to deliver); `check` warns |
//! | no `fnr` column | refused, naming the columns found (digit runs masked) |
//! | duplicated or empty header name, a variable named `lnr`, > 512 variables, name > 128 bytes | refused |
//! | invalid UTF-8 anywhere | refused with the physical line and column: the whole export has the wrong encoding |
//! | quote never closed, record > 1 MiB | refused with the line where it starts |
//! | row with too few or too many fields | counted as `ragged-row`, excluded (its values cannot be assigned to columns) |
//! | a value > 64 KiB | counted as `cell-too-long`, excluded (cannot be sealed) |
//! | empty, whitespace, 10/12 digits, non-ASCII digits, bad date, bad check digit, synthetic | counted per `IdError::reason_code`, excluded |
//! | BOM, CRLF, quoted commas and line breaks, empty lines | read as intended; lines are physical lines (as in an editor) |
//! | a person with > 65 536 rows | refused (cannot be sealed as one item) |
//! | a variable holding valid identifiers (`mor_fnr`) | read; counted per column and warned about by `check` |
//!
//! Identifiers never appear in a message: invalid ones are reported by line
//! with at most their first two digits ([`error::masked_raw`]), and names
//! from a header that is really a data row are masked ([`error::shown`]).

mod error;
pub(crate) mod lookup;
mod mapping;
pub(crate) mod pseudonymous;
pub(crate) mod records;

use std::{
    collections::{BTreeMap, HashMap},
    fs::File,
    io::{self, Read},
    path::Path,
};

use kobling_protocol::{
    extract::{ExtractStats, ReasonTally, LINES_PER_REASON},
    ident::{IdError, IdMapping, Identifier, ParseOptions},
    seal::{MAX_CELL_BYTES, MAX_ROWS_PER_PERSON},
    transcript::{MAX_COLUMNS, MAX_COLUMN_NAME},
    types::Digest,
};

#[cfg(fuzzing)]
pub(crate) use self::mapping::read_mapping;
use self::{
    error::{masked_raw, shown_list},
    records::{Record, RecordReader},
};
pub(crate) use self::{
    error::{shown, ExtractError},
    mapping::load_mapping,
};

/// The reason code of a row whose field count differs from the header's.
pub(crate) const RAGGED_ROW: &str = "ragged-row";
/// The reason code of a row with a value longer than `MAX_CELL_BYTES`.
pub(crate) const CELL_TOO_LONG: &str = "cell-too-long";

/// The identifier column.
const FNR: &str = "fnr";
/// The key column of a register domain's holder (`docs/domains.md`).
pub(crate) const PSEUDONYM: &str = "pseudonym";
/// The researcher's key column; no variable may take its name.
const LNR: &str = "lnr";

/// What one pass over an extract found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExtractSummary {
    /// SHA3-256 of the file's bytes, as operators approve it.
    pub(crate) digest: Digest,
    /// The file's size.
    pub(crate) bytes: u64,
    /// The variables (every column but `fnr`), in extract order.
    pub(crate) columns: Vec<String>,
    /// Counts: `rows` is every data record; `invalid` has the identifier
    /// reasons and [`RAGGED_ROW`] and [`CELL_TOO_LONG`], in reason order,
    /// so `valid_rows = rows − invalid_rows()`.
    pub(crate) stats: ExtractStats,
    /// Persons with more than one row (normal for NPR or prescriptions).
    pub(crate) persons_with_several_rows: u64,
    /// The most rows of one person.
    pub(crate) max_rows_per_person: u64,
    /// Variables holding values that are valid identifiers (e.g. a
    /// mother's `fnr`), with how many rows: delivering them would send
    /// identifiers to the researcher. A warning, not a refusal (an 11-digit
    /// code can pass the checks by chance); the operator decides.
    pub(crate) identifier_columns: Vec<(String, u64)>,
    /// Details of the excluded rows: the first [`LINES_PER_REASON`] of
    /// each reason, in file order.
    pub(crate) details: Vec<RowIssue>,
}

/// One excluded row, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowIssue {
    /// The reason code.
    pub(crate) reason: &'static str,
    /// Physical line where the row starts.
    pub(crate) line: u64,
    /// What is wrong (never contains an identifier).
    pub(crate) detail: String,
    /// The identifier field masked ([`error::masked_raw`]), for identifier
    /// reasons.
    pub(crate) masked: Option<String>,
}

/// An extract read whole: the summary and the persons (tests: the node
/// itself stages rows on disk, see [`stage_extract`]).
#[cfg(any(test, fuzzing))]
#[derive(Debug)]
pub(crate) struct ExtractRead {
    /// Counts, digest and columns.
    pub(crate) summary: ExtractSummary,
    /// The persons in order of first appearance, each with its rows'
    /// variable values (in [`ExtractSummary::columns`] order).
    pub(crate) persons: Vec<Person>,
}

impl ExtractSummary {
    /// Why the extract should not be approved although it could be read:
    /// it has data rows but none with a valid identifier (a wrong file,
    /// wrong column, or synthetic numbers outside test mode).
    pub(crate) fn unusable_reason(&self) -> Option<&'static str> {
        (self.stats.rows > 0 && self.stats.valid_rows == 0)
            .then_some("no data row has a valid identifier")
    }
}

/// Reads an extract whole: one pass that hashes the file and returns
/// every person with their rows.
///
/// # Errors
///
/// [`ExtractError`] if the file cannot be used (see the module docs).
#[cfg(test)]
pub(crate) fn read_extract(
    path: &Path,
    options: ParseOptions,
    mapping: Option<&IdMapping>,
) -> Result<ExtractRead, ExtractError> {
    read_extract_from(open(path)?, options, mapping)
}

/// [`read_extract`] from any reader.
///
/// # Errors
///
/// As [`read_extract`].
#[cfg(any(test, fuzzing))]
pub(crate) fn read_extract_from(
    input: impl Read,
    options: ParseOptions,
    mapping: Option<&IdMapping>,
) -> Result<ExtractRead, ExtractError> {
    let builder = ListBuilder::new(options, mapping.cloned());
    let (summary, persons) = read_with(input, builder)?;
    Ok(ExtractRead { summary, persons })
}

/// Checks an extract for an operator: the same pass and counts as
/// [`read_extract`], keeping no variable values and only a row counter
/// per person.
///
/// # Errors
///
/// As [`read_extract`].
pub(crate) fn check_extract(
    path: &Path,
    options: ParseOptions,
    mapping: Option<&IdMapping>,
) -> Result<ExtractSummary, ExtractError> {
    check_extract_from(open(path)?, options, mapping)
}

/// [`check_extract`] from any reader.
///
/// # Errors
///
/// As [`read_extract`].
pub(crate) fn check_extract_from(
    input: impl Read,
    options: ParseOptions,
    mapping: Option<&IdMapping>,
) -> Result<ExtractSummary, ExtractError> {
    let tally = Tally {
        options,
        mapping,
        rows_of: HashMap::new(),
        rows: 0,
        mapped_rows: 0,
        invalid: ReasonTally::default(),
    };
    Ok(read_with(input, tally)?.0)
}

/// Opens the extract and checks, on the handle, that it is a regular file
/// (a FIFO or device is refused without blocking): the file checked is the
/// file read.
fn open(path: &Path) -> Result<File, ExtractError> {
    crate::private_fs::open_regular(path, false).map_err(|e| ExtractError::Open {
        path: path.to_owned(),
        source: match e {
            crate::private_fs::PrivateFsError::Io { source, .. } => source,
            _ => std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        },
    })
}

/// A header or identifier field as compared: surrounding whitespace and
/// byte-order marks removed (as `Identifier::parse` does).
pub(crate) fn trimmed(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\u{FEFF}')
}

#[cfg(any(test, fuzzing))]
use kobling_protocol::extract::{ListBuilder, Person};

/// The one pass.
fn read_with<C: Collector>(
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
trait RowError {
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

/// A checked header.
#[derive(Debug)]
struct Header {
    /// Every column's name, trimmed.
    names: Vec<String>,
    /// The index of the key column (`fnr`, or `pseudonym` in a holder's
    /// list).
    fnr: usize,
}

impl Header {
    fn parse(rec: &Record, key: &'static str) -> Result<Header, ExtractError> {
        let mut names = Vec::with_capacity(rec.len());
        for (i, f) in rec.fields().enumerate() {
            let name = std::str::from_utf8(f).map_err(|e| ExtractError::InvalidUtf8 {
                line: rec.line_of(i, e.valid_up_to()),
                column: format!("{} (in the header)", i + 1),
            })?;
            names.push(trimmed(name).to_owned());
        }
        // The other key column in a list: a pseudonym beside fnr data, or
        // fnr in a holder's pseudonymous list (PROTOCOL.md §10).
        let other = if key == FNR { PSEUDONYM } else { FNR };
        if let Some(i) = names.iter().position(|n| n == other) {
            return Err(ExtractError::WrongKeyColumn {
                column: i + 1,
                found: other,
                expected: key,
            });
        }
        let Some(fnr) = names.iter().position(|n| n == key) else {
            if key != FNR {
                return Err(ExtractError::MissingPseudonym {
                    line: rec.line(),
                    columns: shown_list(names.iter().map(String::as_str)),
                });
            }
            return Err(ExtractError::MissingFnr {
                line: rec.line(),
                columns: shown_list(names.iter().map(String::as_str)),
                looks_like_data: names
                    .iter()
                    .any(|n| n.chars().filter(|c| c.is_numeric()).count() >= 6),
                near_miss: names
                    .iter()
                    .find(|n| n.eq_ignore_ascii_case(FNR))
                    .map(|n| shown(n)),
            });
        };
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() {
                return Err(ExtractError::EmptyColumnName { column: i + 1 });
            }
            if let Some(first) = seen.insert(name, i) {
                return Err(ExtractError::DuplicateColumn {
                    name: shown(name),
                    first: first + 1,
                    second: i + 1,
                });
            }
            if name == LNR {
                return Err(ExtractError::ReservedColumn { column: i + 1 });
            }
            if name.len() > MAX_COLUMN_NAME {
                return Err(ExtractError::ColumnNameTooLong {
                    column: i + 1,
                    len: name.len(),
                });
            }
        }
        if names.len() - 1 > MAX_COLUMNS {
            return Err(ExtractError::TooManyColumns {
                count: names.len() - 1,
            });
        }
        Ok(Header { names, fnr })
    }

    fn variables(&self) -> Vec<String> {
        let mut v = self.names.clone();
        v.remove(self.fnr);
        v
    }

    /// The error for invalid UTF-8 in field `field` of a data record.
    fn utf8_error(&self, rec: &Record, field: usize, at: usize) -> ExtractError {
        let column = match self.names.get(field) {
            Some(name) => shown(name),
            None => format!("{} (past the header's {})", field + 1, self.names.len()),
        };
        ExtractError::InvalidUtf8 {
            line: rec.line_of(field, at),
            column,
        }
    }
}

/// Rows per person.
#[derive(Debug, Default)]
struct PerPerson {
    several: u64,
    max: u64,
}

impl PerPerson {
    fn of(counts: impl Iterator<Item = u64>) -> PerPerson {
        counts.fold(PerPerson::default(), |acc, n| PerPerson {
            several: acc.several + u64::from(n > 1),
            max: acc.max.max(n),
        })
    }
}

/// Where the rows with a plausible shape go.
trait Collector {
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

#[cfg(any(test, fuzzing))]
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

/// Reads an extract for a node preparing its list without keeping the
/// rows: every valid row goes to `sink` with its person's number (in order
/// of first appearance), and only the identifiers stay in memory.
///
/// # Errors
///
/// As [`read_extract`]; a failing `sink` (e.g. a full disk) ends the read
/// with [`ExtractError::Read`].
pub(crate) fn stage_extract<F>(
    path: &Path,
    options: ParseOptions,
    mapping: Option<&IdMapping>,
    sink: F,
) -> Result<(ExtractSummary, Vec<Identifier>), ExtractError>
where
    F: FnMut(u32, Vec<String>) -> io::Result<()>,
{
    stage_extract_from(open(path)?, options, mapping, sink)
}

/// [`stage_extract`] from any reader.
///
/// # Errors
///
/// As [`stage_extract`].
pub(crate) fn stage_extract_from<F>(
    input: impl Read,
    options: ParseOptions,
    mapping: Option<&IdMapping>,
    sink: F,
) -> Result<(ExtractSummary, Vec<Identifier>), ExtractError>
where
    F: FnMut(u32, Vec<String>) -> io::Result<()>,
{
    let stager = Stager {
        options,
        mapping,
        ids: Vec::new(),
        persons: PersonRows::new(sink),
        rows: 0,
        mapped_rows: 0,
        invalid: ReasonTally::default(),
    };
    let (summary, (ids, failed)) = read_with(input, stager)?;
    match failed {
        Some(e) => Err(ExtractError::Read(e)),
        None => Ok((summary, ids)),
    }
}

/// [`stage_extract_from`] with the staged rows collected per person, in
/// the shape [`read_extract_from`] returns (to compare the two paths).
///
/// # Errors
///
/// As [`stage_extract`].
#[cfg(any(test, fuzzing))]
pub(crate) fn stage_persons_from(
    input: impl Read,
    options: ParseOptions,
    mapping: Option<&IdMapping>,
) -> Result<(ExtractSummary, Vec<Person>), ExtractError> {
    let mut rows_of: Vec<Vec<Vec<String>>> = Vec::new();
    let (summary, ids) = stage_extract_from(input, options, mapping, |person, row| {
        let person = person as usize;
        if rows_of.len() <= person {
            rows_of.resize_with(person + 1, Vec::new);
        }
        rows_of[person].push(row);
        Ok(())
    })?;
    rows_of.resize_with(ids.len(), Vec::new);
    let persons = ids
        .into_iter()
        .zip(rows_of)
        .map(|(id, rows)| Person { id, rows })
        .collect();
    Ok((summary, persons))
}

/// A row's identifier as the collectors count it: parsed (an invalid one
/// tallied by reason at `line`), then mapped to the current identifier.
fn canonical(
    identifier: &str,
    line: u64,
    options: ParseOptions,
    mapping: Option<&IdMapping>,
    invalid: &mut ReasonTally,
    mapped_rows: &mut u64,
) -> Result<Identifier, IdError> {
    let id = Identifier::parse(identifier, options).inspect_err(|e| {
        invalid.add(e.reason_code(), line);
    })?;
    Ok(match mapping {
        Some(m) => {
            let current = m.apply(&id);
            *mapped_rows += u64::from(current != id);
            current
        }
        None => id,
    })
}

/// Numbers persons and hands their rows to a sink (see [`stage_extract`]).
struct Stager<'a, F> {
    options: ParseOptions,
    mapping: Option<&'a IdMapping>,
    ids: Vec<Identifier>,
    persons: PersonRows<Identifier, F>,
    rows: u64,
    mapped_rows: u64,
    invalid: ReasonTally,
}

/// Numbers persons by their key, in order of first row, counts each one's
/// rows and hands every row to a sink (for either key column). The first
/// error of the sink is kept; rows after it are not handed on.
struct PersonRows<K, F> {
    index: HashMap<K, u32>,
    rows_of: Vec<u32>,
    sink: F,
    failed: Option<io::Error>,
}

impl<K, F> PersonRows<K, F>
where
    K: std::hash::Hash + Eq,
    F: FnMut(u32, Vec<String>) -> io::Result<()>,
{
    fn new(sink: F) -> Self {
        Self {
            index: HashMap::new(),
            rows_of: Vec::new(),
            sink,
            failed: None,
        }
    }

    /// Takes a row of the person keyed `key`; `true` if the person is new.
    fn push(&mut self, key: K, values: Vec<String>) -> bool {
        let next = self.rows_of.len() as u32;
        let person = *self.index.entry(key).or_insert(next);
        let new = person == next;
        if new {
            self.rows_of.push(0);
        }
        self.rows_of[person as usize] += 1;
        if self.failed.is_none() {
            if let Err(e) = (self.sink)(person, values) {
                self.failed = Some(e);
            }
        }
        new
    }

    /// Rows per person, and the sink's error if it failed.
    fn finish(self) -> (PerPerson, Option<io::Error>) {
        let per_person = PerPerson::of(self.rows_of.iter().map(|&n| u64::from(n)));
        (per_person, self.failed)
    }
}

impl<F> Collector for Stager<'_, F>
where
    F: FnMut(u32, Vec<String>) -> io::Result<()>,
{
    const KEEPS_VALUES: bool = true;
    type Output = (Vec<Identifier>, Option<io::Error>);
    type Error = IdError;

    fn push(&mut self, line: u64, identifier: &str, values: Vec<String>) -> Result<(), IdError> {
        self.rows += 1;
        let id = canonical(
            identifier,
            line,
            self.options,
            self.mapping,
            &mut self.invalid,
            &mut self.mapped_rows,
        )?;
        if self.persons.push(id, values) {
            self.ids.push(id);
        }
        Ok(())
    }

    fn finish(self) -> (Self::Output, ExtractStats, PerPerson) {
        let invalid_rows = self.invalid.total();
        let stats = ExtractStats {
            rows: self.rows,
            valid_rows: self.rows - invalid_rows,
            persons: self.ids.len() as u64,
            mapped_rows: self.mapped_rows,
            invalid: self.invalid.into_summaries().collect(),
        };
        let (per_person, failed) = self.persons.finish();
        ((self.ids, failed), stats, per_person)
    }
}

/// Counts what `ListBuilder` counts without keeping rows: one counter per
/// person.
struct Tally<'a> {
    options: ParseOptions,
    mapping: Option<&'a IdMapping>,
    rows_of: HashMap<Identifier, u64>,
    rows: u64,
    mapped_rows: u64,
    invalid: ReasonTally,
}

impl Collector for Tally<'_> {
    const KEEPS_VALUES: bool = false;
    type Output = ();
    type Error = IdError;

    fn push(&mut self, line: u64, identifier: &str, _: Vec<String>) -> Result<(), IdError> {
        self.rows += 1;
        let id = canonical(
            identifier,
            line,
            self.options,
            self.mapping,
            &mut self.invalid,
            &mut self.mapped_rows,
        )?;
        *self.rows_of.entry(id).or_default() += 1;
        Ok(())
    }

    fn finish(self) -> ((), ExtractStats, PerPerson) {
        let invalid_rows = self.invalid.total();
        let stats = ExtractStats {
            rows: self.rows,
            valid_rows: self.rows - invalid_rows,
            persons: self.rows_of.len() as u64,
            mapped_rows: self.mapped_rows,
            invalid: self.invalid.into_summaries().collect(),
        };
        ((), stats, PerPerson::of(self.rows_of.into_values()))
    }
}

#[cfg(test)]
mod tests;
