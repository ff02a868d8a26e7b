//! The TOML files operators and researchers hand each other or write:
//! a node configuration (`kobling node run --config`), a member entry
//! from another node (`kobling manifest add --entry`), a project spec
//! (`kobling project submit`, `fetch --spec`).
//!
//! Checked: parsing never panics, and a parsed spec declares types only
//! for its own variables.
#![no_main]

use kobling_node::fuzzing::parse_operator_files;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_operator_files(text);
    }
});
