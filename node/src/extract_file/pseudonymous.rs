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
    domain::{decode_pseudonym, pseudonym_bytes, PseudonymError},
    extract::ExtractStats,
    group::WirePoint,
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
/// of first pseudonym appearance); only the pseudonyms stay in memory, as
/// their 32-byte encodings (each decoded once to check it).
///
/// # Errors
///
/// As [`super::stage_extract`].
pub(crate) fn stage_pseudonymous_extract<F>(
    path: &Path,
    sink: F,
) -> Result<(ExtractSummary, Vec<WirePoint>), ExtractError>
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
) -> Result<(ExtractSummary, Vec<WirePoint>), ExtractError>
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
    persons: PersonRows<[u8; 32], WirePoint, F>,
}

impl<F> Collector for PseudonymStager<F>
where
    F: FnMut(u32, Vec<String>) -> io::Result<()>,
{
    const KEEPS_VALUES: bool = true;
    const KEY: &'static str = PSEUDONYM;
    type Output = Staged<WirePoint>;
    type Error = PseudonymError;

    fn push(&mut self, line: u64, pseudonym: &str, values: Vec<String>) -> Result<(), Self::Error> {
        // The text checked on every row; the point decoded once per
        // person (a valid point's bytes are its canonical encoding, so
        // equal bytes are the same person and the same verdict).
        let bytes = self.counts.key(line, || pseudonym_bytes(pseudonym))?;
        let counts = &mut self.counts;
        self.persons
            .push_with(bytes.0, || decode_pseudonym(&bytes).map(|_| bytes), values)
            .inspect_err(|e| counts.refuse(line, e))
    }

    fn finish(self) -> (Self::Output, ExtractStats, PerPerson) {
        self.persons.finish(self.counts)
    }
}

#[cfg(test)]
mod tests {
    use kobling_protocol::{
        domain::{parse_pseudonym, pseudonym_hex},
        share::Share,
    };

    use super::*;

    /// The hex of `k·G` (`k` a small byte, repeated: a canonical scalar).
    fn hex_of(k: u8) -> String {
        let share = Share::from_secret_bytes(&[k; 32]).expect("canonical scalar");
        pseudonym_hex(&share.commitment())
    }

    /// A staged read: the summary, the pseudonyms and every (person, row).
    type Staged = (ExtractSummary, Vec<WirePoint>, Vec<(u32, Vec<String>)>);

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

    /// The point is decoded once per person: rows of a person seen before
    /// take its number without a decode, and a refused pseudonym is
    /// refused on every row that has it, each under its own line, exactly
    /// as parsing every row on its own would.
    #[test]
    fn a_pseudonym_is_decoded_once_per_person_with_the_verdict_of_every_row() {
        let (a, b) = (hex_of(7), hex_of(9));
        let bad = "ff".repeat(32);
        let identity = "00".repeat(32);
        let keys = [
            a.as_str(),
            bad.as_str(),
            &b,
            &identity,
            &a,
            &bad,
            " \u{feff}",
            &b.to_uppercase(),
            &bad,
            &identity,
            &a,
        ];
        let mut text = String::from("pseudonym,n\n");
        for (i, k) in keys.iter().enumerate() {
            text.push_str(&format!("{k},{i}\n"));
        }
        let (summary, points, rows) = stage(&text).expect("read");
        // The reference: every row parsed on its own.
        let mut expected_points: Vec<WirePoint> = Vec::new();
        let mut expected_rows = Vec::new();
        let mut refused: Vec<(&str, u64)> = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            match parse_pseudonym(k).map(|p| p.encode()) {
                Ok(p) => {
                    let n = expected_points
                        .iter()
                        .position(|q| *q == p)
                        .unwrap_or_else(|| {
                            expected_points.push(p);
                            expected_points.len() - 1
                        });
                    expected_rows.push((n as u32, vec![i.to_string()]));
                }
                Err(e) => refused.push((e.reason_code(), i as u64 + 2)),
            }
        }
        assert_eq!(points, expected_points);
        assert_eq!(rows, expected_rows);
        assert_eq!(summary.stats.rows, keys.len() as u64);
        assert_eq!(summary.stats.valid_rows, expected_rows.len() as u64);
        let mut per_reason: Vec<(&str, u64)> = summary
            .stats
            .invalid
            .iter()
            .map(|i| (i.reason, i.count))
            .collect();
        per_reason.sort();
        assert_eq!(
            per_reason,
            vec![("empty", 1), ("identity", 2), ("not-a-point", 3)]
        );
        // Each refused row is reported under its own line.
        let mut lines: Vec<u64> = summary
            .stats
            .invalid
            .iter()
            .flat_map(|i| i.lines.iter().copied())
            .collect();
        lines.sort_unstable();
        let mut want: Vec<u64> = refused.iter().map(|(_, l)| *l).collect();
        want.sort_unstable();
        assert_eq!(lines, want);
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
