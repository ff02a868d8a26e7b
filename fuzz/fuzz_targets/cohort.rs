//! Cohort expressions (`link::Cohort::parse`; the order carries one as
//! text, which the linker and the auditor parse), and a cohort's postcard
//! form.
//!
//! Checked: no panic; a parsed cohort prints in its canonical form, which
//! parses back to the same cohort and prints the same; it round-trips
//! through postcard; its names are sorted and distinct and all known to
//! it. Postcard input never panics, and what decodes re-encodes to the
//! same value.
#![no_main]

use kobling_protocol::link::Cohort;
use libfuzzer_sys::fuzz_target;

fn round_trip(c: &Cohort) {
    let canonical = c.to_string();
    let again = Cohort::parse(&canonical).expect("the canonical form parses");
    assert_eq!(again, *c, "the canonical form parses to another cohort");
    assert_eq!(again.to_string(), canonical);
    let bytes = postcard::to_allocvec(c).expect("encode");
    assert_eq!(
        postcard::from_bytes::<Cohort>(&bytes).ok().as_ref(),
        Some(c)
    );
    let names = c.names();
    assert!(names.windows(2).all(|w| w[0] < w[1]));
    c.check_lists(&names).expect("a cohort knows its own names");
    let _ = (c.contains(|_| true), c.contains(|_| false));
}

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = postcard::from_bytes::<Cohort>(data) {
        round_trip(&c);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = Cohort::parse(text) {
            round_trip(&c);
        }
    }
});
