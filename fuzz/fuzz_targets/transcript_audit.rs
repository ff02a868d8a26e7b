//! Transcript files as `kobling audit` reads them: strictly, or for a
//! damaged file leniently (the entries before the damage), then rendered
//! by `audit show` and, against the fixture's manifest, `audit verify`
//! (text and JSON).
//!
//! Checked: the lenient reader agrees with `decode_file` on a good file;
//! on a damaged one it reports the same error and salvages only entries
//! whose canonical records are where it found them, in order, right after
//! the header; rendering never panics and the JSON report always renders.
#![no_main]

use kobling_fuzz::fixture::FIXTURE;
use kobling_node::fuzzing::{audit, read_transcript};
use kobling_protocol::transcript::{decode_file, encode_value, FILE_MAGIC, FILE_VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (entries, trailer) = read_transcript(data);
    match decode_file(data) {
        Ok((strict, t)) => {
            assert_eq!(entries, strict);
            assert_eq!(trailer, Ok(t));
        }
        Err(e) => {
            assert_eq!(trailer, Err(e));
            let mut prefix = FILE_MAGIC.to_vec();
            prefix.extend_from_slice(&FILE_VERSION.to_le_bytes());
            for entry in &entries {
                let body = encode_value(entry);
                prefix.push(1);
                prefix.extend_from_slice(&(body.len() as u32).to_le_bytes());
                prefix.extend_from_slice(&body);
            }
            assert!(
                entries.is_empty() || data.starts_with(&prefix),
                "salvaged entries are not the file's first records"
            );
        }
    }
    let (shown, report) = audit(data, Some(&FIXTURE.manifest));
    assert!(!shown.is_empty());
    let (_, json) = report.expect("a manifest was given");
    json.expect("the JSON report renders");
    let _ = audit(data, None);
});
