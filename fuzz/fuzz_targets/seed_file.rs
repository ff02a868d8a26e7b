//! Domain seed files (`DIR/domains/<id>.seed`, read by the keystore for
//! every share it derives).
//!
//! Flag byte, then:
//! - bit 0 clear: the rest is a seed file for project `FUZZ-1` in a
//!   keystore with a fixed master secret. It must never panic; if it
//!   opens, wrapping the seed again with the file's nonce gives the file.
//! - bit 0 set: the rest is a seed, a nonce and a project id. The wrapped
//!   seed opens to the seed, and only for that master secret and domain;
//!   the file with one fuzzer-chosen byte changed does not open.
#![no_main]

use kobling_fuzz::Cursor;
use kobling_keys::fuzzing::{unwrap_seed, wrap_seed};
use kobling_protocol::{share::Domain, types::ProjectId};
use libfuzzer_sys::fuzz_target;

const MASTER: [u8; 32] = [0x33; 32];

fn domain(id: &str) -> Domain {
    Domain::Project(ProjectId::new(id).expect("valid"))
}

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor(data);
    let flags = input.u8();
    if flags & 1 == 0 {
        let file = input.rest();
        if let Ok(seed) = unwrap_seed(&MASTER, &domain("FUZZ-1"), file) {
            let nonce: [u8; 24] = file[14..38].try_into().expect("a seed file has a nonce");
            let again = wrap_seed(&MASTER, &domain("FUZZ-1"), &seed, &nonce).expect("wraps");
            assert_eq!(again, file);
        }
        return;
    }
    let mut seed = [0u8; 32];
    seed.iter_mut().for_each(|b| *b = input.u8());
    let mut nonce = [0u8; 24];
    nonce.iter_mut().for_each(|b| *b = input.u8());
    let at = input.u8();
    let xor = input.u8().max(1);
    let id = String::from_utf8_lossy(input.rest()).into_owned();
    let Ok(project) = ProjectId::new(id) else {
        return;
    };
    let d = Domain::Project(project);
    let file = wrap_seed(&MASTER, &d, &seed, &nonce).expect("wraps");
    assert_eq!(unwrap_seed(&MASTER, &d, &file), Ok(seed));
    assert!(
        unwrap_seed(&[0x34; 32], &d, &file).is_err(),
        "opened under another master secret"
    );
    if d != domain("FUZZ-1") {
        assert!(
            unwrap_seed(&MASTER, &domain("FUZZ-1"), &file).is_err(),
            "opened for another domain"
        );
    }
    let mut damaged = file.clone();
    let i = usize::from(at) % damaged.len();
    damaged[i] ^= xor;
    assert!(
        unwrap_seed(&MASTER, &d, &damaged).is_err(),
        "a damaged seed file opened"
    );
});
