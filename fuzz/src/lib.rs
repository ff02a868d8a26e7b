//! Helpers shared by the fuzz targets in `fuzz_targets/`: a cursor that
//! reads operations and small numbers from the fuzzer's bytes, and the
//! fixed federation with one real project run that `transcript_verify`
//! edits.
//!
//! The targets themselves are thin: decode the bytes with the real entry
//! point, never panic, and on success check the round trip. See
//! `docs/reliability.md` ("Fuzzing") for what each one checks and how to
//! run them.
#![forbid(unsafe_code)]

pub mod fixture;

/// Reads little pieces off the front of the fuzzer's input; every read
/// past the end yields zeros, so any input is a valid program.
#[derive(Debug, Clone)]
pub struct Cursor<'a>(pub &'a [u8]);

impl<'a> Cursor<'a> {
    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    /// The next 8 bytes as a little-endian number (missing bytes are 0).
    pub fn u64(&mut self) -> u64 {
        let mut out = [0u8; 8];
        for b in &mut out {
            *b = self.u8();
        }
        u64::from_le_bytes(out)
    }

    /// A number below `n` (0 if `n` is 0), from the next two bytes.
    pub fn below(&mut self, n: usize) -> usize {
        let v = usize::from(self.u8()) | usize::from(self.u8()) << 8;
        v.checked_rem(n).unwrap_or(0)
    }

    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

/// The read size a target hands a stream reader: 1 to 8 bytes at a time
/// (crossing every boundary), or everything at once for 0.
pub fn step_of(b: u8) -> usize {
    match b % 9 {
        0 => usize::MAX,
        n => usize::from(n),
    }
}
