//! A register domain's backup file (`keys::backup::open_backup`), opened
//! with two fixed passphrases.
//!
//! Only inputs whose header asks for small Argon2id costs (m ≤ 64 KiB,
//! t ≤ 2, p ≤ 2) are opened, so one run stays fast; the rest are still
//! parsed up to the costs' check.
//!
//! Checked: no panic; a file that opens yields a valid share, and does not
//! open for another domain or with the passphrases swapped.
#![no_main]

use kobling_keys::backup::open_backup;
use kobling_protocol::{share::Domain, types::Name};
use libfuzzer_sys::fuzz_target;

fn word(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fuzz_target!(|data: &[u8]| {
    let small = matches!(
        (word(data, 14), word(data, 18), word(data, 22)),
        (Some(m), Some(t), Some(p)) if m <= 64 && t <= 2 && p <= 2
    );
    if !small && data.len() >= 26 {
        return;
    }
    let r = Domain::Register(Name::new("RESEPT").expect("valid"));
    let Ok(share) = open_backup(&r, data, "first operator", "second operator") else {
        return;
    };
    assert_ne!(share.commitment().as_bytes(), &[0; 32]);
    let other = Domain::Register(Name::new("IPLOS").expect("valid"));
    assert!(open_backup(&other, data, "first operator", "second operator").is_err());
    assert!(open_backup(&r, data, "second operator", "first operator").is_err());
});
