//! An extract's header (the first record): the key column (`fnr`, or
//! `pseudonym` in a holder's list) and the variables, checked before any
//! row is read.

use std::collections::HashMap;

use kobling_protocol::transcript::{MAX_COLUMNS, MAX_COLUMN_NAME};

use super::{
    error::{shown, shown_list, ExtractError},
    records::Record,
    trimmed, FNR, LNR, PSEUDONYM,
};

/// A checked header.
#[derive(Debug)]
pub(super) struct Header {
    /// Every column's name, trimmed.
    pub(super) names: Vec<String>,
    /// The index of the key column (`fnr`, or `pseudonym` in a holder's
    /// list).
    pub(super) fnr: usize,
}

impl Header {
    /// Checks the header record `rec` of a list keyed by `key`.
    pub(super) fn parse(rec: &Record, key: &'static str) -> Result<Header, ExtractError> {
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

    /// The variables: every column but the key, in extract order.
    pub(super) fn variables(&self) -> Vec<String> {
        let mut v = self.names.clone();
        v.remove(self.fnr);
        v
    }

    /// The error for invalid UTF-8 in field `field` of a data record.
    pub(super) fn utf8_error(&self, rec: &Record, field: usize, at: usize) -> ExtractError {
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
