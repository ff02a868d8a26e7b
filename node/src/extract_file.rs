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

mod collect;
mod error;
mod header;
pub(crate) mod lookup;
mod mapping;
mod pass;
pub(crate) mod pseudonymous;
pub(crate) mod records;

use std::{
    collections::HashMap,
    fs::File,
    io::{self, Read},
    path::Path,
};

use kobling_protocol::extract::{ListBuilder, Person};
use kobling_protocol::{
    extract::ExtractStats,
    ident::{IdMapping, Identifier, ParseOptions},
    types::Digest,
};

#[cfg(fuzzing)]
pub(crate) use self::mapping::read_mapping;
use self::{
    collect::{stage_with, Canonical, PersonRows, Stager, Tally},
    pass::read_with,
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
        canonical: Canonical::new(options, mapping),
        rows_of: HashMap::new(),
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
        canonical: Canonical::new(options, mapping),
        persons: PersonRows::new(sink),
    };
    stage_with(input, stager)
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

#[cfg(test)]
mod tests;
