//! The `pseudonym` column of a holder's extract (`domain::parse_pseudonym`)
//! and the per-reason counting of `PseudonymListBuilder`.
//!
//! Checked: parsing never panics; what parses is a valid non-identity
//! point whose lower-case hex is the trimmed input in lower case; a
//! refused field is counted under exactly one reason, and every row is
//! either a person's row or counted.
#![no_main]

use kobling_protocol::domain::{parse_pseudonym, pseudonym_hex, PseudonymListBuilder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut builder = PseudonymListBuilder::new();
    let mut ok = 0u64;
    for (line, field) in text.split('\n').enumerate() {
        match parse_pseudonym(field) {
            Ok(p) => {
                let hex = pseudonym_hex(&p.encode());
                let trimmed = field.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
                assert_eq!(hex, trimmed.to_ascii_lowercase());
                assert!(p.encode().decode().is_ok());
                ok += 1;
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        let _ = builder.push_row(line as u64 + 1, field, vec![]);
    }
    let (persons, stats) = builder.finish();
    assert_eq!(stats.rows, stats.invalid_rows() + ok);
    let rows: usize = persons.iter().map(|p| p.rows.len()).sum();
    assert_eq!(rows as u64, ok);
});
