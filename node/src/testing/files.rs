//! What tests look for on disk and in replies: every file under a node's
//! directory, whether any holds given bytes (an fnr, a pseudonym), and a
//! refusal's code and detail.

use std::path::{Path, PathBuf};

use kobling_protocol::{messages::Message, refusal::RefusalCode};

/// Every file below `dir`, depth first (none if `dir` cannot be read).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Whether any file below `dir` contains `needle`.
pub fn files_contain(dir: &Path, needle: &[u8]) -> bool {
    walk(dir)
        .iter()
        .any(|f| std::fs::read(f).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)))
}

/// A refusal's code and detail.
///
/// # Panics
///
/// If `m` is not a refusal (a test's expectation failed).
pub fn refusal(m: &Message) -> (RefusalCode, String) {
    match m {
        Message::Refused { code, detail } => (
            RefusalCode::from_wire(code.as_str()),
            detail.as_str().to_owned(),
        ),
        other => panic!("expected a refusal, got {}", other.kind()),
    }
}
