//! Reading a transcript file: strictly (as the verifier needs it) and, for
//! a damaged file, leniently (the entries before the damage, to show).

use std::path::Path;

use anyhow::Context;
use kobling_protocol::transcript::{
    decode_file, encode_value, Entry, FileError, Trailer, FILE_MAGIC, FILE_VERSION, MAX_RECORD,
};

/// The record kind of an entry (see the module docs of `audit`).
const KIND_ENTRY: u8 = 1;

/// A transcript file as read.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// Its size in bytes.
    pub(crate) size: usize,
    /// The entries: all of them, or for a damaged file those before the
    /// damage.
    pub(crate) entries: Vec<Entry>,
    /// The trailer, or why the file is not a well-formed transcript.
    pub(crate) trailer: Result<Trailer, FileError>,
}

/// Reads a transcript file.
///
/// # Errors
///
/// The file cannot be read. A file that is not a well-formed transcript is
/// not an error here: [`Loaded::trailer`] says what is wrong with it.
pub(crate) fn load(path: &Path) -> anyhow::Result<Loaded> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the transcript {}", path.display()))?;
    Ok(parse(&bytes))
}

/// Parses transcript bytes (see [`load`]).
pub(crate) fn parse(bytes: &[u8]) -> Loaded {
    match decode_file(bytes) {
        Ok((entries, trailer)) => Loaded {
            size: bytes.len(),
            entries,
            trailer: Ok(trailer),
        },
        Err(e) => Loaded {
            size: bytes.len(),
            entries: salvage(bytes),
            trailer: Err(e),
        },
    }
}

/// The entry records of a damaged version-1 file that decode, canonically,
/// before the first one that does not.
fn salvage(bytes: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let Some(rest) = bytes.strip_prefix(FILE_MAGIC.as_slice()) else {
        return out;
    };
    let version = FILE_VERSION.to_le_bytes();
    let Some(mut rest) = rest.strip_prefix(version.as_slice()) else {
        return out;
    };
    while let [KIND_ENTRY, a, b, c, d, tail @ ..] = rest {
        let len = u32::from_le_bytes([*a, *b, *c, *d]) as usize;
        let Some((body, after)) = tail.split_at_checked(len).filter(|_| len <= MAX_RECORD) else {
            break;
        };
        match postcard::from_bytes::<Entry>(body) {
            Ok(e) if encode_value(&e) == body => out.push(e),
            _ => break,
        }
        rest = after;
    }
    out
}
