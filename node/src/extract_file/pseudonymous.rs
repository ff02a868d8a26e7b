//! A register domain holder's extract for a project (PROTOCOL.md §10;
//! `docs/domains.md`, "Projects with a pseudonymous list"): the same file
//! format, keyed by a `pseudonym` column (64 hex digits of `Ψ_R(x)`)
//! instead of `fnr`.
//!
//! The one pass of the parent module reads it: invalid pseudonyms are
//! counted per `PseudonymError::reason_code` and excluded, like invalid
//! fnr, and never shown (not even masked). An `fnr` column in a holder's
//! list, or a `pseudonym` column in an fnr register's list, refuses the
//! file ([`ExtractError::WrongKeyColumn`]), at approval
//! ([`check_key_column`]) and again when the list is prepared.

use std::{io, io::Read, path::Path};

use kobling_protocol::{
    domain::{parse_pseudonym, PseudonymError},
    extract::ExtractStats,
    group::Point,
};

use super::{
    collect::{stage_with, PersonRows, RowCounts, Staged},
    header::Header,
    open,
    pass::{Collector, PerPerson, RowError},
    records::RecordReader,
    ExtractError, ExtractSummary, FNR, PSEUDONYM,
};

impl RowError for PseudonymError {
    fn reason(&self) -> &'static str {
        self.reason_code()
    }

    fn detail(&self) -> String {
        self.to_string()
    }

    fn masked(&self, _: &str) -> Option<String> {
        // A pseudonym is never shown, not even in part.
        None
    }
}

/// Checks the header of the extract at `path`: keyed by `pseudonym` (a
/// holder's list) or by `fnr`, without the other key column. Reads only
/// the header.
///
/// # Errors
///
/// [`ExtractError::WrongKeyColumn`], [`ExtractError::MissingPseudonym`],
/// [`ExtractError::MissingFnr`], or any header error of the format.
pub(crate) fn check_key_column(path: &Path, pseudonymous: bool) -> Result<(), ExtractError> {
    let key = if pseudonymous { PSEUDONYM } else { FNR };
    let mut reader = RecordReader::new(open(path)?)?;
    let record = reader.next_record()?.ok_or(ExtractError::Empty)?;
    Header::parse(record, key).map(|_| ())
}

/// Reads a holder's extract for its node's list without keeping the
/// rows: every valid row goes to `sink` with its person's number (in order
/// of first pseudonym appearance); only the pseudonyms stay in memory.
///
/// # Errors
///
/// As [`super::stage_extract`].
pub(crate) fn stage_pseudonymous_extract<F>(
    path: &Path,
    sink: F,
) -> Result<(ExtractSummary, Vec<Point>), ExtractError>
where
    F: FnMut(u32, Vec<String>) -> io::Result<()>,
{
    stage_pseudonymous_from(open(path)?, sink)
}

/// [`stage_pseudonymous_extract`] from any reader.
///
/// # Errors
///
/// As [`stage_pseudonymous_extract`].
pub(crate) fn stage_pseudonymous_from<F>(
    input: impl Read,
    sink: F,
) -> Result<(ExtractSummary, Vec<Point>), ExtractError>
where
    F: FnMut(u32, Vec<String>) -> io::Result<()>,
{
    let stager = PseudonymStager {
        counts: RowCounts::default(),
        persons: PersonRows::new(sink),
    };
    stage_with(input, stager)
}

/// Numbers persons by pseudonym and hands their rows to a sink.
struct PseudonymStager<F> {
    counts: RowCounts,
    persons: PersonRows<[u8; 32], Point, F>,
}

impl<F> Collector for PseudonymStager<F>
where
    F: FnMut(u32, Vec<String>) -> io::Result<()>,
{
    const KEEPS_VALUES: bool = true;
    const KEY: &'static str = PSEUDONYM;
    type Output = Staged<Point>;
    type Error = PseudonymError;

    fn push(&mut self, line: u64, pseudonym: &str, values: Vec<String>) -> Result<(), Self::Error> {
        let point = self.counts.key(line, || parse_pseudonym(pseudonym))?;
        self.persons.push(point.encode().0, point, values);
        Ok(())
    }

    fn finish(self) -> (Self::Output, ExtractStats, PerPerson) {
        self.persons.finish(self.counts)
    }
}

#[cfg(test)]
mod tests {
    use kobling_protocol::{domain::pseudonym_hex, share::Share};

    use super::*;

    /// The hex of `k·G` (`k` a small byte, repeated: a canonical scalar).
    fn hex_of(k: u8) -> String {
        let share = Share::from_secret_bytes(&[k; 32]).expect("canonical scalar");
        pseudonym_hex(&share.commitment())
    }

    /// A staged read: the summary, the pseudonyms and every (person, row).
    type Staged = (ExtractSummary, Vec<Point>, Vec<(u32, Vec<String>)>);

    fn stage(text: &str) -> Result<Staged, ExtractError> {
        let mut rows = Vec::new();
        let (summary, points) = stage_pseudonymous_from(text.as_bytes(), |p, r| {
            rows.push((p, r));
            Ok(())
        })?;
        Ok((summary, points, rows))
    }

    #[test]
    fn rows_group_by_pseudonym_and_invalid_ones_are_counted_per_reason() {
        let (a, b) = (hex_of(7), hex_of(8));
        let mut not_a_point = "ff".repeat(32);
        not_a_point.truncate(64);
        let text = format!(
            "pseudonym,atc\n{a},N02\n{b},C09\n{},A10\n,B01\n{not_a_point},B02\nxyz,B03\n{a},N05\n{},B04\n",
            a.to_uppercase(),
            "00".repeat(32),
        );
        let (summary, points, rows) = stage(&text).expect("read");
        assert_eq!(points.len(), 2, "upper- and lower-case hex are one person");
        assert_eq!(summary.columns, vec!["atc".to_string()]);
        assert_eq!(summary.stats.rows, 8);
        assert_eq!(summary.stats.valid_rows, 4);
        let per_reason: Vec<(&str, u64)> = summary
            .stats
            .invalid
            .iter()
            .map(|i| (i.reason, i.count))
            .collect();
        assert_eq!(
            per_reason,
            vec![
                ("empty", 1),
                ("identity", 1),
                ("not-a-point", 1),
                ("wrong-length", 1)
            ]
        );
        assert_eq!(rows.iter().filter(|(p, _)| *p == 0).count(), 3);
        // No pseudonym, whole or in part, in what the operator is shown.
        for d in &summary.details {
            assert!(d.masked.is_none());
            assert!(!d.detail.contains(&not_a_point[..8]));
        }
    }

    #[test]
    fn the_other_key_column_refuses_the_list() {
        let a = hex_of(7);
        let holder_with_fnr = format!("pseudonym,fnr,atc\n{a},01010112345,N02\n");
        let e = stage(&holder_with_fnr).expect_err("fnr in a holder's list");
        assert!(
            matches!(
                e,
                ExtractError::WrongKeyColumn {
                    column: 2,
                    found: "fnr",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("never holds fnr"), "{e}");
        let no_key = "atc\nN02\n";
        assert!(matches!(
            stage(no_key).expect_err("no key"),
            ExtractError::MissingPseudonym { .. }
        ));
        let fnr_with_pseudonym = format!("fnr,pseudonym,diag\n01010112345,{a},I21\n");
        let e = super::super::check_extract_from(
            fnr_with_pseudonym.as_bytes(),
            kobling_protocol::ident::ParseOptions::default(),
            None,
        )
        .expect_err("pseudonym in an fnr list");
        assert!(
            matches!(
                e,
                ExtractError::WrongKeyColumn {
                    column: 2,
                    found: "pseudonym",
                    ..
                }
            ),
            "{e}"
        );
    }
}
