//! A register's reservation table, one identifier per line
//! (`reservation::ReservationBuilder`), in test mode and in production.
//!
//! Checked: never panics; every row is either a reservation or counted
//! under one reason; applying the table to its own persons removes them
//! all, and the shown count is never a number under 5.
#![no_main]

use kobling_protocol::{
    extract::Person,
    ident::{Identifier, ParseOptions},
    reservation::{ReservationBuilder, ShownCount},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for allow_synthetic in [false, true] {
        let options = ParseOptions { allow_synthetic };
        let mut builder = ReservationBuilder::new(options, None);
        let mut ids = Vec::new();
        for (line, field) in text.split('\n').enumerate() {
            if builder.push_row(line as u64 + 1, field).is_ok() {
                ids.push(Identifier::parse(field, options).expect("parsed once"));
            }
        }
        let (table, stats) = builder.finish();
        let invalid: u64 = stats.invalid.iter().map(|s| s.count).sum();
        assert_eq!(stats.rows, invalid + ids.len() as u64);
        assert_eq!(table.len() as u64, stats.persons);
        let persons = ids
            .iter()
            .map(|id| Person {
                id: *id,
                rows: Vec::new(),
            })
            .collect::<Vec<_>>();
        let out = table.exclude(persons);
        assert!(out.kept.is_empty());
        assert_eq!(out.count, ids.len() as u64);
        assert!(out.shown().is_canonical());
        assert_eq!(out.shown(), ShownCount::of(out.count));
    }
});
