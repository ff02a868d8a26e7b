//! The mapping file of changed identifiers (PROTOCOL.md §9).
//!
//! # Format
//!
//! CSV in the same dialect as extracts (UTF-8, optional byte-order mark,
//! `\n` or `\r\n` line endings, quoting allowed), with exactly two
//! columns named `old` and `current` in the header (in either order) and
//! one old → current pair per row:
//!
//! ```text
//! old,current
//! 41018012365,01018012371
//! ```
//!
//! Every identifier must be valid (synthetic ones only in test mode); a
//! pair repeated verbatim counts once; chains (`a → b`, `b → c`) are
//! resolved. Any invalid row, a conflict (one old identifier with two
//! targets) or a cycle refuses the whole file with the line number: a
//! mapping is applied to every row of the extract, so a partly applied one
//! would split persons silently.

use std::{io::Read, path::Path};

use kobling_protocol::ident::{IdMapping, Identifier, MappingError, ParseOptions};

use super::{
    error::{shown_list, MappingFileError},
    records::RecordReader,
    trimmed,
};

/// Reads and validates a mapping file.
///
/// # Errors
///
/// A [`MappingFileError`] naming the line at fault.
pub(crate) fn load_mapping(
    path: &Path,
    options: ParseOptions,
) -> Result<IdMapping, MappingFileError> {
    // Checked on the handle: a regular file (a FIFO is refused, not
    // waited on), and the file checked is the file read.
    let file =
        crate::private_fs::open_regular(path, false).map_err(|e| MappingFileError::Open {
            path: path.to_owned(),
            source: match e {
                crate::private_fs::PrivateFsError::Io { source, .. } => source,
                _ => std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            },
        })?;
    read_mapping(file, options)
}

/// [`load_mapping`] from any reader.
///
/// # Errors
///
/// As [`load_mapping`].
pub(crate) fn read_mapping(
    input: impl Read,
    options: ParseOptions,
) -> Result<IdMapping, MappingFileError> {
    let mut reader = RecordReader::new(input)?;
    let (old_at, current_at) = {
        let header = reader.next_record()?.ok_or(MappingFileError::Empty)?;
        let mut names = Vec::with_capacity(header.len());
        for f in header.fields() {
            let name = std::str::from_utf8(f).map_err(|_| MappingFileError::InvalidUtf8 {
                line: header.line(),
            })?;
            names.push(trimmed(name));
        }
        let old = names.iter().position(|n| *n == "old");
        let current = names.iter().position(|n| *n == "current");
        match (old, current) {
            (Some(o), Some(c)) if names.len() == 2 => (o, c),
            _ => {
                return Err(MappingFileError::Header {
                    found: shown_list(names.iter().copied()),
                })
            }
        }
    };
    let mut pairs = Vec::new();
    let mut lines = Vec::new();
    while let Some(rec) = reader.next_record()? {
        let line = rec.line();
        if rec.len() != 2 {
            return Err(MappingFileError::Ragged {
                line,
                fields: rec.len(),
            });
        }
        let parse = |at: usize, column: &'static str| -> Result<Identifier, MappingFileError> {
            let text =
                std::str::from_utf8(rec.field(at)).map_err(|e| MappingFileError::InvalidUtf8 {
                    line: rec.line_of(at, e.valid_up_to()),
                })?;
            Identifier::parse(text, options).map_err(|error| MappingFileError::InvalidIdentifier {
                line,
                column,
                error,
            })
        };
        let old = parse(old_at, "old")?;
        let current = parse(current_at, "current")?;
        pairs.push((old, current));
        lines.push(line);
    }
    // Read to the end so a read error is not mistaken for a short file.
    reader.finish()?;
    IdMapping::new(pairs).map_err(|e| match e {
        MappingError::Conflict { first, second } => MappingFileError::Conflict {
            first: lines[first],
            second: lines[second],
        },
        MappingError::Cycle { index } => MappingFileError::Cycle { line: lines[index] },
        // `MappingError` is non-exhaustive; point at the first line.
        _ => MappingFileError::Cycle {
            line: lines.first().copied().unwrap_or(1),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: ParseOptions = ParseOptions {
        allow_synthetic: false,
    };

    fn id(s: &str) -> Identifier {
        Identifier::parse(s, STRICT).expect("valid")
    }

    fn read(text: &str) -> Result<IdMapping, MappingFileError> {
        read_mapping(text.as_bytes(), STRICT)
    }

    #[test]
    fn reads_pairs_and_resolves_chains() {
        let m = read(
            "\u{FEFF}old,current\r\n41018012365,01418012354\r\n\"01418012354\", 01018012371\r\n\r\n",
        )
        .expect("mapping");
        assert_eq!(m.len(), 2);
        assert_eq!(m.apply(&id("41018012365")), id("01018012371"));
        let m = read("current,old\n01018012371,41018012365\n").expect("mapping");
        assert_eq!(m.apply(&id("41018012365")), id("01018012371"));
        assert!(read("old,current\n").expect("mapping").is_empty());
    }

    #[test]
    fn bad_files_name_the_line() {
        let msg = |text: &str| read(text).map(|_| ()).expect_err("refused").to_string();
        assert!(msg("").contains("empty"));
        assert!(msg("fra,til\n").contains("found: `fra`, `til`"));
        assert!(msg("old,current,x\n").contains("must be `old,current`"));
        let m = msg("old,current\n41018012365,01018012371\n41018012365,01018012372\n");
        assert_eq!(
            m,
            "line 3: the current identifier is invalid: identifier check digit k2 is wrong"
        );
        assert!(!m.contains("0101801237"));
        assert_eq!(
            msg("old,current\n41018012365\n"),
            "line 2 has 1 fields; every line of a mapping file has two (old,current)"
        );
        assert_eq!(
            msg("old,current\n41018012365,01018012371\n41018012365,01418012354\n"),
            "lines 2 and 3 map the same old identifier to different current identifiers"
        );
        assert!(
            msg("old,current\n41018012365,01018012371\n01018012371,41018012365\n")
                .starts_with("the mapping at line 2 is part of a cycle")
        );
        assert!(msg("old,current\n\"41018012365,01018012371\n").contains("line 2 is never closed"));
        assert!(
            read_mapping(&b"old,current\n41018012365,0101801\xff2371\n"[..], STRICT)
                .map(|_| ())
                .expect_err("refused")
                .to_string()
                .starts_with("invalid UTF-8 at line 2")
        );
    }
}
