//! The `pseudonym` column of a holder's extract (PROTOCOL.md §10): the
//! lower- or upper-case hex of the 32-byte canonical ristretto255 encoding
//! of `Ψ_R(x)`.
//!
//! A pseudonym that is not a valid point is counted per reason, like an
//! invalid fnr, and never printed: [`PseudonymListBuilder`] groups the
//! rows of a holder's list by pseudonym as [`crate::extract::ListBuilder`]
//! does by fnr.

use std::collections::HashMap;

use crate::{
    extract::{InvalidSummary, ReasonTally},
    group::{Point, PointError, WirePoint},
};

/// Why a `pseudonym` field was refused. Never contains the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PseudonymError {
    /// Nothing but whitespace.
    #[error("empty pseudonym")]
    Empty,
    /// Not 64 characters after trimming.
    #[error("pseudonym has {len} characters, expected 64 hex digits")]
    WrongLength {
        /// Bytes after trimming.
        len: usize,
    },
    /// A character that is not a hex digit.
    #[error("pseudonym has a non-hex character at character {} of 64", .at + 1)]
    NonHex {
        /// 0-based index after trimming.
        at: usize,
    },
    /// Not the canonical encoding of a ristretto255 point.
    #[error("pseudonym is not a canonical ristretto255 encoding")]
    NotAPoint,
    /// The identity point, which no chain produces.
    #[error("pseudonym is the identity point")]
    Identity,
}

impl PseudonymError {
    /// Every reason code, in the order of the enum.
    pub const REASON_CODES: [&'static str; 5] = [
        "empty",
        "wrong-length",
        "non-hex",
        "not-a-point",
        "identity",
    ];

    /// A short stable code for counting rejections per reason.
    pub fn reason_code(&self) -> &'static str {
        match self {
            PseudonymError::Empty => "empty",
            PseudonymError::WrongLength { .. } => "wrong-length",
            PseudonymError::NonHex { .. } => "non-hex",
            PseudonymError::NotAPoint => "not-a-point",
            PseudonymError::Identity => "identity",
        }
    }
}

/// Parses a `pseudonym` field: surrounding whitespace and a byte-order mark
/// trimmed, then exactly 64 hex digits (either case) that decode to a
/// canonical, non-identity ristretto255 point: [`pseudonym_bytes`], then
/// [`decode_pseudonym`].
///
/// # Errors
///
/// A [`PseudonymError`] naming the reason.
pub fn parse_pseudonym(s: &str) -> Result<Point, PseudonymError> {
    decode_pseudonym(&pseudonym_bytes(s)?)
}

/// The text half of [`parse_pseudonym`]: the field's 32 bytes, not yet
/// checked to be a point. Equal pseudonyms give equal bytes (hex digits of
/// either case), so a reader that has already decoded these bytes once
/// need not decode them again: a valid point's encoding is canonical.
///
/// # Errors
///
/// [`PseudonymError::Empty`], [`PseudonymError::WrongLength`] or
/// [`PseudonymError::NonHex`].
pub fn pseudonym_bytes(s: &str) -> Result<WirePoint, PseudonymError> {
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if s.is_empty() {
        return Err(PseudonymError::Empty);
    }
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return Err(PseudonymError::WrongLength { len: bytes.len() });
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = hex_value(pair[0]).ok_or(PseudonymError::NonHex { at: 2 * i })?;
        let lo = hex_value(pair[1]).ok_or(PseudonymError::NonHex { at: 2 * i + 1 })?;
        out[i] = (hi << 4) | lo;
    }
    Ok(WirePoint(out))
}

/// The point half of [`parse_pseudonym`]: the bytes as a canonical,
/// non-identity ristretto255 point.
///
/// # Errors
///
/// [`PseudonymError::NotAPoint`] or [`PseudonymError::Identity`].
pub fn decode_pseudonym(bytes: &WirePoint) -> Result<Point, PseudonymError> {
    bytes.decode().map_err(|e| match e {
        PointError::Identity => PseudonymError::Identity,
        _ => PseudonymError::NotAPoint,
    })
}

/// The `pseudonym` column's text for a point: 64 lower-case hex digits.
pub fn pseudonym_hex(p: &WirePoint) -> String {
    p.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One person's rows in a holder's list, keyed by `Ψ_R(x)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PseudonymousPerson {
    /// `Ψ_R(x)`. Never leaves the holder's node.
    pub pseudonym: Point,
    /// The person's rows.
    pub rows: Vec<Vec<String>>,
}

/// Counts of a holder's extract.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PseudonymStats {
    /// Data rows read.
    pub rows: u64,
    /// Distinct pseudonyms.
    pub persons: u64,
    /// Invalid pseudonyms, per reason.
    pub invalid: Vec<InvalidSummary>,
}

impl PseudonymStats {
    /// All invalid rows.
    pub fn invalid_rows(&self) -> u64 {
        self.invalid.iter().map(|i| i.count).sum()
    }
}

/// Accumulates a holder's extract rows into persons.
#[derive(Debug, Default)]
pub struct PseudonymListBuilder {
    index: HashMap<[u8; 32], usize>,
    persons: Vec<PseudonymousPerson>,
    rows: u64,
    invalid: ReasonTally,
}

impl PseudonymListBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one data row: its line number, the raw `pseudonym` field and
    /// the variable values.
    ///
    /// # Errors
    ///
    /// The row's [`PseudonymError`]; the row is counted and excluded, and
    /// the builder carries on.
    pub fn push_row(
        &mut self,
        line: u64,
        pseudonym: &str,
        values: Vec<String>,
    ) -> Result<(), PseudonymError> {
        self.rows += 1;
        let p = match parse_pseudonym(pseudonym) {
            Ok(p) => p,
            Err(e) => {
                self.invalid.add(e.reason_code(), line);
                return Err(e);
            }
        };
        let key = p.encode().0;
        match self.index.get(&key) {
            Some(&i) => self.persons[i].rows.push(values),
            None => {
                self.index.insert(key, self.persons.len());
                self.persons.push(PseudonymousPerson {
                    pseudonym: p,
                    rows: vec![values],
                });
            }
        }
        Ok(())
    }

    /// The persons (in order of first appearance) and the counts.
    pub fn finish(self) -> (Vec<PseudonymousPerson>, PseudonymStats) {
        let stats = PseudonymStats {
            rows: self.rows,
            persons: self.persons.len() as u64,
            invalid: self.invalid.into_summaries().collect(),
        };
        (self.persons, stats)
    }
}

#[cfg(test)]
mod tests {
    use curve25519_dalek::{constants::RISTRETTO_BASEPOINT_POINT, Scalar};

    use super::*;

    fn valid() -> String {
        let p = RISTRETTO_BASEPOINT_POINT * Scalar::from(7u64);
        pseudonym_hex(&WirePoint(p.compress().to_bytes()))
    }

    #[test]
    fn a_canonical_point_round_trips_in_either_case() {
        let hex = valid();
        let p = parse_pseudonym(&hex).expect("valid");
        assert_eq!(pseudonym_hex(&p.encode()), hex);
        assert_eq!(parse_pseudonym(&hex.to_uppercase()), Ok(p));
        assert_eq!(parse_pseudonym(&format!("\u{feff} {hex}\t")), Ok(p));
    }

    #[test]
    fn every_bad_pseudonym_is_refused_with_its_reason() {
        let hex = valid();
        // A non-canonical encoding: the field element p+1 ≡ 1 (the
        // canonical encoding of a point never has its top bit set, and
        // 2^255 - 18 is ≥ p).
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xed;
        non_canonical[31] = 0x7f;
        let mut high_bit = WirePoint(
            (RISTRETTO_BASEPOINT_POINT * Scalar::from(7u64))
                .compress()
                .to_bytes(),
        );
        high_bit.0[31] |= 0x80;
        // A negative field element (low bit set) is not canonical either.
        let mut negative = [0u8; 32];
        negative[0] = 1;
        let cases = [
            ("  ".to_string(), PseudonymError::Empty),
            (
                hex[..62].to_string(),
                PseudonymError::WrongLength { len: 62 },
            ),
            (format!("{hex}00"), PseudonymError::WrongLength { len: 66 }),
            (
                format!("{}g{}", &hex[..10], &hex[11..]),
                PseudonymError::NonHex { at: 10 },
            ),
            (format!("+{}", &hex[1..]), PseudonymError::NonHex { at: 0 }),
            ("00".repeat(32), PseudonymError::Identity),
            (
                pseudonym_hex(&WirePoint(non_canonical)),
                PseudonymError::NotAPoint,
            ),
            (pseudonym_hex(&high_bit), PseudonymError::NotAPoint),
            (
                pseudonym_hex(&WirePoint(negative)),
                PseudonymError::NotAPoint,
            ),
            // 32 characters of two bytes each: 64 bytes, not hex.
            ("é".repeat(32), PseudonymError::NonHex { at: 0 }),
        ];
        for (field, want) in cases {
            assert_eq!(parse_pseudonym(&field), Err(want));
            // The message never contains the field.
            if field.trim().len() > 8 {
                assert!(!want.to_string().contains(field.trim()));
            }
        }
    }

    #[test]
    fn the_builder_groups_by_pseudonym_and_counts_invalid_rows_per_reason() {
        let hex = valid();
        let mut b = PseudonymListBuilder::new();
        assert!(b.push_row(2, &hex, vec!["a".into()]).is_ok());
        assert!(b.push_row(3, &hex.to_uppercase(), vec!["b".into()]).is_ok());
        assert_eq!(
            b.push_row(4, &"00".repeat(32), vec![]),
            Err(PseudonymError::Identity)
        );
        assert_eq!(
            b.push_row(5, "xyz", vec![]),
            Err(PseudonymError::WrongLength { len: 3 })
        );
        assert_eq!(
            b.push_row(6, "abc", vec![]),
            Err(PseudonymError::WrongLength { len: 3 })
        );
        let (persons, stats) = b.finish();
        assert_eq!(persons.len(), 1);
        assert_eq!(
            persons[0].rows,
            vec![vec!["a".to_string()], vec!["b".to_string()]]
        );
        assert_eq!(stats.rows, 5);
        assert_eq!(stats.persons, 1);
        assert_eq!(stats.invalid_rows(), 3);
        assert_eq!(
            stats.invalid,
            vec![
                InvalidSummary {
                    reason: "identity",
                    count: 1,
                    lines: vec![4]
                },
                InvalidSummary {
                    reason: "wrong-length",
                    count: 2,
                    lines: vec![5, 6]
                },
            ]
        );
    }
}
