//! A register's reservation table file (PROTOCOL.md §10a, issue 16):
//! the persons who reserved against disclosure of their health data
//! together with fnr. `kobling node run --reservations FILE` names it; the
//! node reads it afresh for every identified project's list (so a table
//! updated between projects applies to the next one) and never for an
//! ordinary project.
//!
//! # Format
//!
//! CSV in the same dialect as extracts (UTF-8, optional byte-order mark,
//! `\n` or `\r\n` line endings, quoting allowed) with one column named
//! `fnr` in the header (other columns, e.g. the date of the reservation,
//! are allowed and ignored), one person per row:
//!
//! ```text
//! fnr
//! 01018012371
//! ```
//!
//! Identifiers are canonicalised, validated and mapped (`--mapping`)
//! exactly as an extract's are. An invalid identifier is counted per
//! reason, with its line numbers, and the rest of the table applies (as an
//! extract's invalid rows are excluded and counted); a file that cannot be
//! read as a table at all (no `fnr` column, a quote never closed, not a
//! regular file) is refused whole.

use std::{io::Read, path::Path};

use kobling_protocol::{
    ident::{IdMapping, ParseOptions},
    reservation::{ReservationBuilder, ReservationStats, ReservationTable},
    types::Digest,
};

use crate::extract_file::{
    records::{RecordError, RecordReader},
    trimmed,
};

/// The identifier column.
const FNR: &str = "fnr";

/// Why a reservation file cannot be used at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ReservationFileError {
    /// The file could not be opened, or is not a regular file.
    #[error("cannot open the reservation table {path}")]
    Open {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading failed part-way.
    #[error("reading the reservation table failed")]
    Read(#[source] std::io::Error),
    /// No header row.
    #[error("the reservation table is empty: expected a header row naming the column `fnr`")]
    Empty,
    /// The header has no `fnr` column (or two).
    #[error("the reservation table's header must name one column `fnr` (found {columns} columns)")]
    Header {
        /// Columns in the header.
        columns: usize,
    },
    /// A record that cannot be read.
    #[error("line {line}: {what}")]
    Record {
        /// Physical line where it starts.
        line: u64,
        /// What is wrong.
        what: &'static str,
    },
}

impl From<RecordError> for ReservationFileError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Io(e) => Self::Read(e),
            RecordError::TooLong { line } => Self::Record {
                line,
                what: "the record is too long (a quote never closed?)",
            },
            RecordError::UnterminatedQuote { line } => Self::Record {
                line,
                what: "a quoted field is never closed",
            },
        }
    }
}

/// A reservation table read from its file.
#[derive(Debug)]
pub(crate) struct LoadedReservations {
    /// The persons who reserved.
    pub(crate) table: ReservationTable,
    /// Rows, persons, mapped rows and invalid identifiers per reason.
    pub(crate) stats: ReservationStats,
    /// SHA3-256 of the file (for the operator's log).
    pub(crate) digest: Digest,
}

/// Reads and validates a reservation file.
///
/// # Errors
///
/// [`ReservationFileError`] for a file that cannot be used at all; invalid
/// identifiers are counted in [`LoadedReservations::stats`] instead.
pub(crate) fn load_reservations(
    path: &Path,
    options: ParseOptions,
    mapping: Option<IdMapping>,
) -> Result<LoadedReservations, ReservationFileError> {
    let file =
        crate::private_fs::open_regular(path, false).map_err(|e| ReservationFileError::Open {
            path: path.to_owned(),
            source: match e {
                crate::private_fs::PrivateFsError::Io { source, .. } => source,
                _ => std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            },
        })?;
    read_reservations(file, options, mapping)
}

/// [`load_reservations`] from any reader.
///
/// # Errors
///
/// As [`load_reservations`].
pub(crate) fn read_reservations(
    input: impl Read,
    options: ParseOptions,
    mapping: Option<IdMapping>,
) -> Result<LoadedReservations, ReservationFileError> {
    let mut reader = RecordReader::new(input)?;
    let (at, width) = {
        let header = reader.next_record()?.ok_or(ReservationFileError::Empty)?;
        let names: Vec<String> = header
            .fields()
            .map(|f| trimmed(&String::from_utf8_lossy(f)).to_string())
            .collect();
        let mut fnr = names.iter().enumerate().filter(|(_, n)| *n == FNR);
        match (fnr.next(), fnr.next()) {
            (Some((i, _)), None) => (i, names.len()),
            _ => {
                return Err(ReservationFileError::Header {
                    columns: names.len(),
                })
            }
        }
    };
    let mut builder = ReservationBuilder::new(options, mapping);
    while let Some(record) = reader.next_record()? {
        if record.len() != width {
            return Err(ReservationFileError::Record {
                line: record.line(),
                what: "the row's field count differs from the header's",
            });
        }
        // An invalid identifier (non-UTF-8 included) is counted by
        // reason in the builder; the table goes on.
        let raw = String::from_utf8_lossy(record.field(at));
        let _ = builder.push_row(record.line(), &raw);
    }
    let (digest, _) = reader.finish()?;
    let (table, stats) = builder.finish();
    Ok(LoadedReservations {
        table,
        stats,
        digest,
    })
}

/// The stats as one line for an operator: rows, persons, and invalid
/// identifiers per reason with their first line numbers (never an
/// identifier).
pub(crate) fn describe(stats: &ReservationStats) -> String {
    let mut out = format!(
        "{} rows, {} persons reserved, {} mapped",
        stats.rows, stats.persons, stats.mapped_rows
    );
    if stats.invalid.is_empty() {
        out.push_str(", no invalid identifier");
    }
    for i in &stats.invalid {
        let lines: Vec<String> = i.lines.iter().map(u64::to_string).collect();
        out.push_str(&format!(
            "; {} invalid ({}), lines {}",
            i.count,
            i.reason,
            lines.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use kobling_protocol::ident::{IdKind, Identifier, ParseOptions};

    use super::{describe, read_reservations, ReservationFileError};

    const TEST: ParseOptions = ParseOptions {
        allow_synthetic: true,
    };

    /// The `n`th synthetic test fnr born 1980-01-01.
    fn synthetic(n: usize) -> Identifier {
        (0..1000u16)
            .filter_map(|i| Identifier::from_parts(1980, 1, 1, i, IdKind::Synthetic).ok())
            .nth(n)
            .expect("a synthetic identifier")
    }

    #[test]
    fn invalid_identifiers_are_counted_by_reason_and_the_rest_applies() {
        let (a, b) = (synthetic(1), synthetic(2));
        let text = format!(
            "fnr,reserved_on\n{},2026-01-01\n12345,2026-01-02\n{},2026-01-03\n{},2026-01-04\nabcdefghijk,x\n,2026-01-05\n",
            a.expose(),
            b.expose(),
            a.expose(),
        );
        let loaded = read_reservations(text.as_bytes(), TEST, None).expect("table");
        assert_eq!(loaded.stats.rows, 6);
        assert_eq!(
            loaded.stats.persons, 2,
            "a person listed twice reserved once"
        );
        assert!(loaded.table.contains(&a) && loaded.table.contains(&b));
        let reasons: Vec<(&str, u64, Vec<u64>)> = loaded
            .stats
            .invalid
            .iter()
            .map(|i| (i.reason, i.count, i.lines.clone()))
            .collect();
        let total: u64 = reasons.iter().map(|r| r.1).sum();
        assert_eq!(total, 3, "{reasons:?}");
        assert!(reasons.len() >= 2, "counted per reason: {reasons:?}");
        let lines: Vec<u64> = reasons.iter().flat_map(|r| r.2.clone()).collect();
        for line in [3, 6, 7] {
            assert!(lines.contains(&line), "line {line} in {lines:?}");
        }
        // The operator's line names reasons and lines, never an identifier.
        let shown = describe(&loaded.stats);
        assert!(
            !shown.contains(a.expose()) && !shown.contains("12345"),
            "{shown}"
        );
        assert!(shown.contains("invalid"), "{shown}");
    }

    #[test]
    fn synthetic_numbers_count_as_invalid_outside_test_mode() {
        let text = format!("fnr\n{}\n", synthetic(3).expose());
        let loaded =
            read_reservations(text.as_bytes(), ParseOptions::default(), None).expect("table");
        assert!(loaded.table.is_empty());
        assert_eq!(loaded.stats.invalid.iter().map(|i| i.count).sum::<u64>(), 1);
    }

    #[test]
    fn a_file_that_is_not_a_reservation_table_is_refused_whole() {
        for (text, want) in [
            ("", "empty"),
            ("old,current\n1,2\n", "header"),
            ("fnr,fnr\n1,2\n", "header"),
            ("fnr,x\n1\n", "record"),
            ("fnr\n\"0101\n", "record"),
        ] {
            let e = read_reservations(text.as_bytes(), TEST, None).expect_err(text);
            let ok = match want {
                "empty" => matches!(e, ReservationFileError::Empty),
                "header" => matches!(e, ReservationFileError::Header { .. }),
                _ => matches!(e, ReservationFileError::Record { .. }),
            };
            assert!(ok, "{text:?}: {e:?}");
        }
    }
}
