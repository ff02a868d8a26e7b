//! A register domain holder's extract, keyed by a `pseudonym` column
//! instead of `fnr`, as the node reads it when it prepares the holder's
//! list (`extract_file::pseudonymous::stage_pseudonymous_from`).
//!
//! A flag byte chooses the read size; the rest is the extract.
//!
//! Checked: no panic; the same result whatever the read size; the counts
//! add up (valid rows are the persons' rows, persons are distinct, every
//! row has one value per variable, invalid rows are counted per reason);
//! the digest and size are those of the file; and no message the operator
//! is shown (a refusal, a row's detail) contains any valid pseudonym of the
//! input, nor any row issue shows a masked field.
#![no_main]

use std::collections::HashSet;

use kobling_fuzz::{step_of, Cursor};
use kobling_node::fuzzing::read_pseudonymous_extract;
use kobling_protocol::{domain::parse_pseudonym, hash::sha3_256};
use libfuzzer_sys::fuzz_target;

/// Every run of 64 hex digits in `data` that is a valid pseudonym, in
/// lower case.
fn pseudonyms(data: &[u8]) -> Vec<String> {
    data.windows(64)
        .filter(|w| w.iter().all(u8::is_ascii_hexdigit))
        .filter_map(|w| std::str::from_utf8(w).ok())
        .filter(|s| parse_pseudonym(s).is_ok())
        .map(str::to_ascii_lowercase)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor(data);
    let step = step_of(input.u8());
    let file = input.rest();
    let read = read_pseudonymous_extract(file, step);
    assert_eq!(
        read,
        read_pseudonymous_extract(file, usize::MAX),
        "the read size changed the result"
    );
    let found = pseudonyms(file);
    let shown = |text: &str| {
        let lower = text.to_ascii_lowercase();
        assert!(
            !found.iter().any(|p| lower.contains(p.as_str())),
            "a pseudonym appears in what the operator is shown"
        );
    };
    match read {
        Err(e) => shown(&e),
        Ok((summary, persons)) => {
            assert_eq!(summary.digest, sha3_256(file));
            assert_eq!(summary.bytes, file.len() as u64);
            let distinct: HashSet<[u8; 32]> = persons.iter().map(|(p, _)| *p).collect();
            assert_eq!(distinct.len(), persons.len(), "persons are distinct");
            assert_eq!(summary.stats.persons, persons.len() as u64);
            let rows: u64 = persons.iter().map(|(_, r)| r.len() as u64).sum();
            assert_eq!(rows, summary.stats.valid_rows);
            let invalid: u64 = summary.stats.invalid.iter().map(|i| i.count).sum();
            assert_eq!(summary.stats.valid_rows + invalid, summary.stats.rows);
            for (_, rows) in &persons {
                assert!(!rows.is_empty());
                for row in rows {
                    assert_eq!(row.len(), summary.columns.len());
                }
            }
            for d in &summary.details {
                shown(&d.detail);
                if d.reason != "ragged-row" && d.reason != "cell-too-long" {
                    assert!(d.masked.is_none(), "a pseudonym field is never shown");
                }
            }
        }
    }
});
