//! Why an extract or mapping file was refused, and how names from a file
//! are shown in messages.
//!
//! Every message says what to fix and where (line, column), and never
//! contains an identifier: the only text from the file that appears is a
//! column name, passed through [`shown`] first.

use std::{fmt, io, path::PathBuf};

use kobling_protocol::{
    ident::IdError,
    seal::MAX_ROWS_PER_PERSON,
    transcript::{MAX_COLUMNS, MAX_COLUMN_NAME},
};

use super::records::{RecordError, MAX_RECORD_BYTES};

/// Why an extract file cannot be used. Each is found before anything is
/// sent.
#[derive(Debug)]
pub(crate) enum ExtractError {
    /// The file could not be opened.
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Reading failed part-way.
    Read(io::Error),
    /// No header row: the file is empty, or holds only empty lines or a
    /// byte-order mark.
    Empty,
    /// Bytes that are not UTF-8.
    InvalidUtf8 {
        /// Physical line of the first invalid byte.
        line: u64,
        /// The column (already passed through [`shown`]), or `field N` past
        /// the header's width.
        column: String,
    },
    /// A quoted field is never closed.
    UnterminatedQuote {
        /// Physical line of its opening `"`.
        line: u64,
    },
    /// A record longer than [`MAX_RECORD_BYTES`].
    RecordTooLong {
        /// Physical line where it starts.
        line: u64,
    },
    /// A header name that is empty (or only whitespace).
    EmptyColumnName {
        /// 1-based column.
        column: usize,
    },
    /// The same name twice in the header.
    DuplicateColumn {
        /// The name, shown.
        name: String,
        /// 1-based column of its first occurrence.
        first: usize,
        /// 1-based column of the repeat.
        second: usize,
    },
    /// No column named `fnr`.
    MissingFnr {
        /// Physical line of the header.
        line: u64,
        /// The names found, shown ([`shown_list`]).
        columns: String,
        /// The first line looks like data rather than a header.
        looks_like_data: bool,
        /// A name that is `fnr` but for case (shown), if any.
        near_miss: Option<String>,
    },
    /// A variable named `lnr`, the name of the researcher's key column.
    ReservedColumn {
        /// 1-based column.
        column: usize,
    },
    /// More variables than a transcript can name.
    TooManyColumns {
        /// Variables in the header.
        count: usize,
    },
    /// A header name longer than a transcript can hold.
    ColumnNameTooLong {
        /// 1-based column.
        column: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// A person with more rows than can be sealed as one item.
    TooManyRowsForPerson {
        /// The person's rows.
        rows: u64,
    },
    /// The other list kind's key column: `pseudonym` in an fnr register's
    /// list, or `fnr` in a domain holder's pseudonymous list.
    WrongKeyColumn {
        /// 1-based column.
        column: usize,
        /// The key column found (`pseudonym` or `fnr`).
        found: &'static str,
        /// The key column this list is keyed by.
        expected: &'static str,
    },
    /// A holder's pseudonymous list without a `pseudonym` column.
    MissingPseudonym {
        /// Physical line of the header.
        line: u64,
        /// The names found, shown ([`shown_list`]).
        columns: String,
    },
}

/// Why a mapping file (`old,current`) cannot be used.
#[derive(Debug)]
pub(crate) enum MappingFileError {
    /// The file could not be opened.
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Reading failed part-way.
    Read(io::Error),
    /// No header row.
    Empty,
    /// The header is not `old,current`.
    Header {
        /// The names found, shown ([`shown_list`]).
        found: String,
    },
    /// Bytes that are not UTF-8.
    InvalidUtf8 {
        /// Physical line.
        line: u64,
    },
    /// A quoted field is never closed.
    UnterminatedQuote {
        /// Physical line of its opening `"`.
        line: u64,
    },
    /// A record longer than [`MAX_RECORD_BYTES`].
    RecordTooLong {
        /// Physical line where it starts.
        line: u64,
    },
    /// A row without exactly two fields.
    Ragged {
        /// Physical line where it starts.
        line: u64,
        /// Fields found.
        fields: usize,
    },
    /// An identifier that is not valid.
    InvalidIdentifier {
        /// Physical line where the row starts.
        line: u64,
        /// `old` or `current`.
        column: &'static str,
        /// Why (never contains the identifier).
        error: IdError,
    },
    /// One old identifier mapped to two different current ones.
    Conflict {
        /// Line of the first mapping.
        first: u64,
        /// Line of the conflicting one.
        second: u64,
    },
    /// Following the mapping comes back to where it started.
    Cycle {
        /// Line of one mapping on the cycle.
        line: u64,
    },
}

impl From<RecordError> for ExtractError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Io(e) => ExtractError::Read(e),
            RecordError::TooLong { line } => ExtractError::RecordTooLong { line },
            RecordError::UnterminatedQuote { line } => ExtractError::UnterminatedQuote { line },
        }
    }
}

impl From<RecordError> for MappingFileError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Io(e) => MappingFileError::Read(e),
            RecordError::TooLong { line } => MappingFileError::RecordTooLong { line },
            RecordError::UnterminatedQuote { line } => MappingFileError::UnterminatedQuote { line },
        }
    }
}

const UTF8_HINT: &str = "the file must be UTF-8 (an export in Latin-1, Windows-1252 or UTF-16 \
                         is the usual cause: export it again as UTF-8)";

fn too_long(f: &mut fmt::Formatter<'_>, line: u64) -> fmt::Result {
    write!(
        f,
        "the record starting at line {line} is longer than {} MiB; a quote (\") that is \
         opened and never closed is the usual cause",
        MAX_RECORD_BYTES >> 20
    )
}

fn unterminated(f: &mut fmt::Formatter<'_>, line: u64) -> fmt::Result {
    write!(
        f,
        "the quoted field opened at line {line} is never closed (a quote (\") is missing)"
    )
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtractError::Open { path, .. } => {
                write!(f, "cannot open the extract {}", path.display())
            }
            ExtractError::Read(_) => f.write_str("reading the extract failed"),
            ExtractError::Empty => f.write_str(
                "the extract is empty: expected a header row naming the identifier column `fnr` \
                 and the variables",
            ),
            ExtractError::InvalidUtf8 { line, column } => {
                write!(
                    f,
                    "invalid UTF-8 at line {line}, column {column}: {UTF8_HINT}"
                )
            }
            ExtractError::UnterminatedQuote { line } => unterminated(f, *line),
            ExtractError::RecordTooLong { line } => too_long(f, *line),
            ExtractError::EmptyColumnName { column } => {
                write!(f, "column {column} of the header has no name")
            }
            ExtractError::DuplicateColumn {
                name,
                first,
                second,
            } => write!(
                f,
                "the header names column {name} twice (columns {first} and {second}); \
                 every column needs its own name"
            ),
            ExtractError::MissingFnr {
                line,
                columns,
                looks_like_data,
                near_miss,
            } => {
                write!(
                    f,
                    "no column `fnr` in the header (line {line}); columns found: {columns}"
                )?;
                if let Some(name) = near_miss {
                    write!(
                        f,
                        "; the identifier column must be named `fnr` exactly, not {name}"
                    )?;
                }
                if *looks_like_data {
                    f.write_str("; the first line looks like data: the file needs a header row")?;
                }
                Ok(())
            }
            ExtractError::ReservedColumn { column } => write!(
                f,
                "column {column} is named `lnr`, the name of the researcher's key column; \
                 rename the variable"
            ),
            ExtractError::TooManyColumns { count } => write!(
                f,
                "the extract has {count} variables; at most {MAX_COLUMNS} are supported"
            ),
            ExtractError::ColumnNameTooLong { column, len } => write!(
                f,
                "the name of column {column} has {len} bytes; at most {MAX_COLUMN_NAME} are \
                 supported"
            ),
            ExtractError::TooManyRowsForPerson { rows } => write!(
                f,
                "a person has {rows} rows; at most {MAX_ROWS_PER_PERSON} rows per person can be \
                 delivered"
            ),
            ExtractError::WrongKeyColumn {
                column,
                found,
                expected,
            } => {
                if *expected == "fnr" {
                    write!(
                        f,
                        "column {column} is `{found}`: this register's list is keyed by `fnr`, \
                         and a list never carries a register domain's pseudonyms; remove the \
                         column (the order names no register domain for this register)"
                    )
                } else {
                    write!(
                        f,
                        "column {column} is `{found}`: this list is keyed by its register \
                         domain (`{expected}`), and a domain's holder never holds fnr; remove \
                         the column"
                    )
                }
            }
            ExtractError::MissingPseudonym { line, columns } => write!(
                f,
                "no column `pseudonym` in the header (line {line}); the order keys this \
                 register's list by its register domain; columns found: {columns}"
            ),
        }
    }
}

impl std::error::Error for ExtractError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExtractError::Open { source, .. } => Some(source),
            ExtractError::Read(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for MappingFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MappingFileError::Open { path, .. } => {
                write!(f, "cannot open the mapping file {}", path.display())
            }
            MappingFileError::Read(_) => f.write_str("reading the mapping file failed"),
            MappingFileError::Empty => {
                f.write_str("the mapping file is empty: expected the header `old,current`")
            }
            MappingFileError::Header { found } => write!(
                f,
                "the mapping file's header must be `old,current`; found: {found}"
            ),
            MappingFileError::InvalidUtf8 { line } => {
                write!(f, "invalid UTF-8 at line {line}: {UTF8_HINT}")
            }
            MappingFileError::UnterminatedQuote { line } => unterminated(f, *line),
            MappingFileError::RecordTooLong { line } => too_long(f, *line),
            MappingFileError::Ragged { line, fields } => write!(
                f,
                "line {line} has {fields} fields; every line of a mapping file has two \
                 (old,current)"
            ),
            MappingFileError::InvalidIdentifier {
                line,
                column,
                error,
            } => write!(
                f,
                "line {line}: the {column} identifier is invalid: {error}"
            ),
            MappingFileError::Conflict { first, second } => write!(
                f,
                "lines {first} and {second} map the same old identifier to different current \
                 identifiers"
            ),
            MappingFileError::Cycle { line } => write!(
                f,
                "the mapping at line {line} is part of a cycle (following old → current comes \
                 back to the same identifier)"
            ),
        }
    }
}

impl std::error::Error for MappingFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MappingFileError::Open { source, .. } => Some(source),
            MappingFileError::Read(e) => Some(e),
            _ => None,
        }
    }
}

/// The longest name shown in a message, in characters.
const SHOWN_CHARS: usize = 40;

/// A name that has this many digits (of any script, separators or not)
/// may be an identifier: all its digits but the first two are masked.
const MASK_FROM_DIGITS: usize = 6;

/// A name from a file as shown in a message: in backticks, control
/// characters escaped, at most [`SHOWN_CHARS`] characters, and, if it has
/// [`MASK_FROM_DIGITS`] or more digits, every digit after the first two
/// masked (`01*********`, `01**-**-*****`), so a data row taken for a
/// header never prints an identifier, even one written with separators.
pub(crate) fn shown(name: &str) -> String {
    let mask = name.chars().filter(|c| c.is_numeric()).count() >= MASK_FROM_DIGITS;
    let mut out = String::from("`");
    let mut digits = 0;
    for c in name.chars().take(SHOWN_CHARS) {
        if mask && c.is_numeric() {
            digits += 1;
            out.push(if digits <= 2 { c } else { '*' });
        } else {
            out.extend(c.escape_debug());
        }
    }
    if name.chars().nth(SHOWN_CHARS).is_some() {
        out.push('…');
    }
    out.push('`');
    out
}

/// At most this many names in a message, then how many more.
const SHOWN_NAMES: usize = 20;

/// A list of names for a message: [`shown`], comma-separated, at most
/// [`SHOWN_NAMES`] of them.
pub(crate) fn shown_list<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> String {
    let total = names.len();
    let mut out: Vec<String> = names.take(SHOWN_NAMES).map(shown).collect();
    if total > SHOWN_NAMES {
        out.push(format!("… ({total} in all)"));
    }
    out.join(", ")
}

/// The masked form of an identifier field that did not parse: nothing for
/// an empty one; otherwise one `*` per character (at most 16, then `…`),
/// with the first two characters shown only if both are ASCII digits and
/// there are at least eight (as `Identifier::masked` shows two digits).
pub(crate) fn masked_raw(raw: &str) -> String {
    let t = raw.trim_matches(|c: char| c.is_whitespace() || c == '\u{FEFF}');
    let n = t.chars().count();
    let show_head = n >= 8 && t.chars().take(2).all(|c| c.is_ascii_digit());
    let mut out = String::new();
    for (k, c) in t.chars().enumerate().take(16) {
        if k < 2 && show_head {
            out.push(c);
        } else {
            out.push('*');
        }
    }
    if n > 16 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_masks_digits_and_escapes() {
        assert_eq!(shown("diag"), "`diag`");
        assert_eq!(shown("icd10_201"), "`icd10_201`");
        assert_eq!(shown("icd10_2019"), "`icd10_****`");
        assert_eq!(shown("01018012371"), "`01*********`");
        assert_eq!(shown("x 0101801237 y"), "`x 01******** y`");
        assert_eq!(shown("0101-80-12371"), "`01**-**-*****`");
        assert_eq!(shown("٠١٠١٨٠١٢٣٧١"), "`٠١*********`");
        assert_eq!(shown("a\nb\u{1b}"), "`a\\nb\\u{1b}`");
        assert_eq!(shown(&"x".repeat(40)), format!("`{}`", "x".repeat(40)));
        assert_eq!(shown(&"x".repeat(50)), format!("`{}…`", "x".repeat(40)));
        // Digits past the cut count too.
        let s = format!("{}01018012371", "x".repeat(38));
        assert_eq!(shown(&s), format!("`{}01…`", "x".repeat(38)));
        let names: Vec<String> = (0..25).map(|i| format!("c{i}")).collect();
        let list = shown_list(names.iter().map(String::as_str));
        assert!(list.starts_with("`c0`, `c1`, "));
        assert!(list.ends_with("`c19`, … (25 in all)"), "{list}");
    }

    #[test]
    fn masked_raw_shows_at_most_two_digits() {
        assert_eq!(masked_raw(""), "");
        assert_eq!(masked_raw("  "), "");
        assert_eq!(masked_raw(" 01018012372 "), "01*********");
        assert_eq!(masked_raw("0101801237"), "01********");
        assert_eq!(masked_raw("1234567"), "*******");
        assert_eq!(masked_raw("Ola Nordmann"), "************");
        assert_eq!(masked_raw("٠١٠١٨٠١٢٣٧١"), "***********");
        assert_eq!(
            masked_raw(&"1".repeat(30)),
            format!("11{}…", "*".repeat(14))
        );
    }
}
