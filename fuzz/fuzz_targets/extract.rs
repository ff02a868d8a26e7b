//! Extract files and mapping files as the node and `kobling extract check`
//! read them (`extract_file::stage_extract`, the node's path when it
//! prepares a list, cross-checked inside `fuzzing::read_extract` against
//! the in-memory `read_extract`; `check_extract`; `read_mapping`).
//!
//! A flag byte: bit 0 accepts synthetic identifiers (test mode); bit 1
//! reads the input up to its first NUL byte as a mapping file and applies
//! it if it is valid; the rest of the byte chooses the read size. The rest
//! of the input is the extract.
//!
//! Checked: no panic; the staged and the in-memory reads agree exactly;
//! the node's read and the operator's check agree
//! exactly (the same refusal, or the same counts, digest and details); the
//! counts add up (valid rows are the persons' rows, persons are distinct,
//! every row has one value per variable); the digest and size are those of
//! the file; and no message the operator is shown (a refusal, a row's
//! detail, a masked identifier) contains any valid identifier that occurs
//! in the input.
#![no_main]

use std::collections::HashSet;

use kobling_fuzz::{step_of, Cursor};
use kobling_node::fuzzing::{check_extract, read_extract, read_mapping};
use kobling_protocol::{
    hash::sha3_256,
    ident::{Identifier, ParseOptions},
};
use libfuzzer_sys::fuzz_target;

/// Every run of 11 ASCII digits in `data` that is a valid identifier.
fn identifiers(data: &[u8]) -> Vec<String> {
    let any = ParseOptions {
        allow_synthetic: true,
    };
    data.windows(11)
        .filter(|w| w.iter().all(u8::is_ascii_digit))
        .filter_map(|w| std::str::from_utf8(w).ok())
        .filter(|s| Identifier::parse(s, any).is_ok())
        .map(str::to_owned)
        .collect()
}

/// Panics (without printing it) if `text` contains one of `ids`.
fn no_identifier_in(text: &str, ids: &[String], what: &str) {
    assert!(
        !ids.iter().any(|id| text.contains(id.as_str())),
        "an identifier appears in {what}"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor(data);
    let flags = input.u8();
    let options = ParseOptions {
        allow_synthetic: flags & 1 != 0,
    };
    let step = step_of(flags >> 2);
    let mut file = input.rest();
    let ids = identifiers(data);
    let mut mapping = None;
    if flags & 2 != 0 {
        let (map_bytes, rest) = match file.iter().position(|&b| b == 0) {
            Some(i) => (&file[..i], &file[i + 1..]),
            None => (file, &[][..]),
        };
        file = rest;
        match read_mapping(map_bytes, options) {
            Ok(m) => mapping = Some(m),
            Err(e) => no_identifier_in(&e, &ids, "a mapping refusal"),
        }
    }

    let read = read_extract(file, step, options, mapping.as_ref());
    let check = check_extract(file, usize::MAX, options, mapping.as_ref());
    let (summary, persons) = match (read, check) {
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "the node and the check refuse differently");
            no_identifier_in(&a, &ids, "an extract refusal");
            return;
        }
        (Ok((summary, persons)), Ok(checked)) => {
            assert_eq!(summary, checked, "the node and the check count differently");
            (summary, persons)
        }
        _ => panic!("the node and the check disagree on whether the extract is usable"),
    };
    assert_eq!(summary.digest, sha3_256(file));
    assert_eq!(summary.bytes, file.len() as u64);
    let stats = &summary.stats;
    assert_eq!(stats.persons, persons.len() as u64);
    assert_eq!(stats.valid_rows + stats.invalid_rows(), stats.rows);
    let rows: u64 = persons.iter().map(|p| p.rows.len() as u64).sum();
    assert_eq!(rows, stats.valid_rows);
    let distinct: HashSet<_> = persons.iter().map(|p| &p.id).collect();
    assert_eq!(distinct.len(), persons.len(), "a person appears twice");
    for p in &persons {
        assert!(p.rows.iter().all(|r| r.len() == summary.columns.len()));
    }
    assert_eq!(
        summary.max_rows_per_person,
        persons
            .iter()
            .map(|p| p.rows.len() as u64)
            .max()
            .unwrap_or(0)
    );
    for d in &summary.details {
        no_identifier_in(&d.detail, &ids, "a row's detail");
        if let Some(m) = &d.masked {
            no_identifier_in(m, &ids, "a masked identifier");
        }
    }
});
