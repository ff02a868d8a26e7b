//! The researcher's kept list output (`researcher_list::KeptOutput`, its
//! state file between sending the list and signing `A_0`,
//! docs/protocol.md §18).
//!
//! Checked: never panics; what decodes has at least one point and a
//! valid chunk size, and its encoding decodes back to the same value.
#![no_main]

use kobling_protocol::researcher_list::KeptOutput;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(kept) = KeptOutput::decode(data) {
        assert!(!kept.points.is_empty());
        assert!(kept.chunk_size.is_power_of_two());
        assert_eq!(KeptOutput::decode(&kept.encode()), Ok(kept.clone()));
    }
});
