//! Norwegian person identifiers (PROTOCOL.md §9): fødselsnummer, D-nummer,
//! H-nummer and synthetic test numbers, their validation, and the mapping of
//! changed numbers.
//!
//! # Layout of an identifier
//!
//! ```text
//!   D D M M Y Y i i i k1 k2
//!   └─┬─┘ └┬┘ └┬┘ └─┬─┘ └─┬─┘
//!   day  month year individual  mod-11 check digits
//!   +40 = D-nummer   │  number (its last digit: odd = male, even = female;
//!   month +40 = H    │   with YY it also fixes the century)
//!   month +80 = synthetic (Skatteetaten/Tenor), also with day +40
//! ```
//!
//! # Privacy
//!
//! An [`Identifier`] is personal data. Its `Debug` and `Display` print only
//! a masked form (`01*********`), and [`IdError`]'s messages never contain
//! the input, because both end up in operator reports and logs. The full
//! number leaves the type only through [`Identifier::expose`] (and its alias
//! [`Identifier::as_str`] / [`Identifier::as_bytes`]), for the one place that
//! hashes it: [`Identifier::identity_point`]. `Identifier` deliberately has
//! no `serde` implementations, so it cannot be put on the wire by accident.

mod mapping;

use core::fmt;

use curve25519_dalek::RistrettoPoint;

pub use self::mapping::{IdMapping, MappingError};
use crate::hash::{hash_to_group, tags};

/// A validated Norwegian person identifier in its canonical form: exactly
/// 11 ASCII digits.
///
/// Only [`Identifier::parse`] and [`Identifier::from_parts`] make one, so an
/// `Identifier` in hand always has a valid kind, birth date, century and
/// check digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identifier {
    digits: [u8; 11],
}

/// Options for [`Identifier::parse`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Accept synthetic test numbers (month + 80). Only a node running in
    /// test mode sets this.
    pub allow_synthetic: bool,
}

/// What kind of number an identifier is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum IdKind {
    /// Fødselsnummer: DDMMYY as is.
    Fnr,
    /// D-nummer: day + 40.
    DNummer,
    /// H-nummer (help number used by health services): month + 40.
    HNummer,
    /// Synthetic test fødselsnummer (Skatteetaten/Tenor): month + 80.
    Synthetic,
    /// Synthetic test D-nummer (Skatteetaten/Tenor): day + 40 and month + 80.
    SyntheticDNummer,
}

/// The legal sex recorded in an identifier (the last digit of the
/// individual number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sex {
    /// Odd digit.
    Male,
    /// Even digit.
    Female,
}

/// Why an identifier was refused.
///
/// The messages never contain the identifier itself (they end up in operator
/// reports and logs); positions are given instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Nothing but whitespace.
    #[error("empty identifier")]
    Empty,
    /// Not 11 characters after trimming.
    #[error("identifier has {len} characters, expected 11")]
    WrongLength {
        /// The number of characters (Unicode scalar values) after trimming.
        len: usize,
    },
    /// A character that is not an ASCII digit `0`–`9` (full-width or other
    /// scripts' digits included).
    #[error("identifier has a non-digit at character {} of 11", .at + 1)]
    NonDigit {
        /// 0-based character index after trimming.
        at: usize,
    },
    /// The day, month, kind offsets, or the century implied by the
    /// individual number and year do not form a valid birth date.
    #[error("identifier does not contain a valid birth date")]
    BadDate,
    /// A mod-11 check digit is wrong, or would be 10 (no valid number has
    /// that individual number for that date).
    #[error("identifier check digit k{which} is wrong")]
    BadCheckDigit {
        /// 1 for k1, 2 for k2.
        which: u8,
    },
    /// A valid synthetic test number while the node is not in test mode.
    #[error("synthetic test identifier, accepted only in test mode")]
    SyntheticNotAllowed,
}

const W1: [u8; 9] = [3, 7, 6, 1, 8, 9, 4, 5, 2];
const W2: [u8; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];

impl Identifier {
    /// Parses and validates an identifier.
    ///
    /// Surrounding whitespace and byte-order marks (U+FEFF, as left by a
    /// UTF-8 BOM at the start of a file) are trimmed. What remains must be
    /// exactly 11 ASCII digits forming:
    ///
    /// 1. valid mod-11 check digits (k1, then k2);
    /// 2. a valid kind: day + 40 (D-nummer), month + 40 (H-nummer),
    ///    month + 80 (synthetic), or day + 40 with month + 80 (synthetic
    ///    D-nummer); any other combination is a bad date;
    /// 3. a real calendar date (leap years included) in the century given
    ///    by the individual number (see [`birth_date`](Self::birth_date));
    /// 4. if synthetic, `opts.allow_synthetic` must be set.
    ///
    /// The checks run in that order, so a mistyped digit is reported as a
    /// check-digit error.
    ///
    /// # Errors
    ///
    /// [`IdError::Empty`], [`IdError::WrongLength`], [`IdError::NonDigit`],
    /// [`IdError::BadCheckDigit`], [`IdError::BadDate`] or
    /// [`IdError::SyntheticNotAllowed`].
    pub fn parse(s: &str, opts: ParseOptions) -> Result<Identifier, IdError> {
        let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\u{FEFF}');
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        let len = s.chars().count();
        if len != 11 {
            return Err(IdError::WrongLength { len });
        }
        let mut digits = [0u8; 11];
        for ((at, c), slot) in s.chars().enumerate().zip(digits.iter_mut()) {
            if !c.is_ascii_digit() {
                return Err(IdError::NonDigit { at });
            }
            // An ASCII digit, so the cast is lossless.
            *slot = c as u8;
        }
        check_digits(&digits)?;
        let fields = Fields::of(&digits);
        let kind = fields.kind()?;
        fields.birth_date()?;
        if kind.is_synthetic() && !opts.allow_synthetic {
            return Err(IdError::SyntheticNotAllowed);
        }
        Ok(Identifier { digits })
    }

    /// Builds the identifier of a birth date, individual number and kind,
    /// computing the check digits; for generators and tests.
    ///
    /// `kind` decides the offsets (day + 40 for D-numbers, month + 40 for
    /// H-numbers, month + 80 for synthetic numbers); `year` must be in the
    /// century the individual number implies.
    /// The result is accepted by [`parse`](Self::parse) (synthetic kinds
    /// with `allow_synthetic`).
    ///
    /// # Errors
    ///
    /// [`IdError::BadDate`] if the date is not a calendar date, `individual`
    /// is above 999, or `individual` and `year` do not fit the century
    /// rules; [`IdError::BadCheckDigit`] if k1 (`which: 1`) or k2
    /// (`which: 2`) would be 10, in which case no identifier exists and the
    /// caller picks another individual number.
    pub fn from_parts(
        year: u16,
        month: u8,
        day: u8,
        individual: u16,
        kind: IdKind,
    ) -> Result<Identifier, IdError> {
        if individual > 999 || !(1..=12).contains(&month) {
            return Err(IdError::BadDate);
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(IdError::BadDate);
        }
        let yy = year % 100;
        if century(individual, yy) != Some(year - yy) {
            return Err(IdError::BadDate);
        }
        let (day_offset, month_offset) = match kind {
            IdKind::Fnr => (0, 0),
            IdKind::DNummer => (40, 0),
            IdKind::HNummer => (0, 40),
            IdKind::Synthetic => (0, 80),
            IdKind::SyntheticDNummer => (40, 80),
        };
        let dd = day + day_offset;
        let mm = month + month_offset;
        // All values are below 100 (or 1000 for `individual`), so every
        // digit is below 10 and the casts are lossless.
        let mut digits = [
            b'0' + dd / 10,
            b'0' + dd % 10,
            b'0' + mm / 10,
            b'0' + mm % 10,
            b'0' + (yy / 10) as u8,
            b'0' + (yy % 10) as u8,
            b'0' + (individual / 100) as u8,
            b'0' + (individual / 10 % 10) as u8,
            b'0' + (individual % 10) as u8,
            b'0',
            b'0',
        ];
        let k1 = check_digit(&digits[..9], &W1).ok_or(IdError::BadCheckDigit { which: 1 })?;
        digits[9] = b'0' + k1;
        let k2 = check_digit(&digits[..10], &W2).ok_or(IdError::BadCheckDigit { which: 2 })?;
        digits[10] = b'0' + k2;
        Ok(Identifier { digits })
    }

    /// The kind of number.
    pub fn kind(&self) -> IdKind {
        // Every Identifier passed `Fields::kind` at construction.
        Fields::of(&self.digits).kind().unwrap_or(IdKind::Fnr)
    }

    /// The birth date `(year, month, day)`, with the D/H/synthetic offsets
    /// removed and the century from Folkeregisteret's rules for the
    /// individual number `iii` and the two-digit year `YY`:
    ///
    /// | individual | YY    | years     |
    /// |------------|-------|-----------|
    /// | 000–499    | 00–99 | 1900–1999 |
    /// | 500–749    | 54–99 | 1854–1899 |
    /// | 500–999    | 00–39 | 2000–2039 |
    /// | 900–999    | 40–99 | 1940–1999 |
    ///
    /// Any other combination is not a valid identifier.
    pub fn birth_date(&self) -> (u16, u8, u8) {
        // Every Identifier passed `Fields::birth_date` at construction.
        Fields::of(&self.digits).birth_date().unwrap_or((0, 0, 0))
    }

    /// The legal sex: the last digit of the individual number (position 9
    /// of the string), odd for male, even for female.
    pub fn sex(&self) -> Sex {
        if (self.digits[8] - b'0') % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// The masked form for logs and reports: the first two digits followed
    /// by nine `*` (`01*********`).
    pub fn masked(&self) -> String {
        let mut s = String::with_capacity(11);
        s.push(char::from(self.digits[0]));
        s.push(char::from(self.digits[1]));
        s.push_str("*********");
        s
    }

    /// The full 11-digit number.
    ///
    /// **This is personal data.** Never log, print or send it; the only
    /// legitimate use is hashing it into the identity point (see
    /// [`identity_point`](Self::identity_point)). Named so that every place
    /// the full number leaves the type can be found with a search.
    pub fn expose(&self) -> &str {
        // The digits are ASCII by construction; the fallback is unreachable.
        core::str::from_utf8(&self.digits).unwrap_or("")
    }

    /// The full 11-digit number; the same as [`expose`](Self::expose), with
    /// the same warning. Prefer `expose` at call sites.
    pub fn as_str(&self) -> &str {
        self.expose()
    }

    /// The 11 ASCII digits; the same warning as [`expose`](Self::expose).
    pub fn as_bytes(&self) -> &[u8; 11] {
        &self.digits
    }

    /// The person's identity point (PROTOCOL.md §3):
    /// `I(x) = hash_to_group("KOBLING-V1-IDENTITY", x)` where `x` is the
    /// canonical identifier as its 11 ASCII digit bytes (no framing, no
    /// terminator), and `hash_to_group` is RFC 9380 `expand_message_xof`
    /// (SHAKE256, 64 bytes) followed by the RFC 9496 one-way map.
    ///
    /// The identity point is as guessable as the identifier (~10⁸ valid
    /// numbers); it must be multiplied by a secret share before it leaves
    /// the register.
    pub fn identity_point(&self) -> RistrettoPoint {
        hash_to_group(tags::IDENTITY, self.as_bytes())
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identifier({})", self.masked())
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl IdKind {
    /// Whether this is a synthetic test number.
    pub fn is_synthetic(self) -> bool {
        matches!(self, IdKind::Synthetic | IdKind::SyntheticDNummer)
    }

    /// A short stable name (`fnr`, `d-nummer`, `h-nummer`, `synthetic`,
    /// `synthetic-d-nummer`) for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::Fnr => "fnr",
            IdKind::DNummer => "d-nummer",
            IdKind::HNummer => "h-nummer",
            IdKind::Synthetic => "synthetic",
            IdKind::SyntheticDNummer => "synthetic-d-nummer",
        }
    }
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl IdError {
    /// Every reason code [`reason_code`](Self::reason_code) returns, for
    /// reports that list zero counts too.
    pub const REASON_CODES: &'static [&'static str] = &[
        "empty",
        "wrong-length",
        "non-digit",
        "bad-date",
        "bad-check-digit",
        "synthetic-not-allowed",
    ];

    /// A short stable code for counting rejections per reason: `empty`,
    /// `wrong-length`, `non-digit`, `bad-date`, `bad-check-digit` (k1 and
    /// k2 alike) or `synthetic-not-allowed`.
    pub fn reason_code(&self) -> &'static str {
        match self {
            IdError::Empty => "empty",
            IdError::WrongLength { .. } => "wrong-length",
            IdError::NonDigit { .. } => "non-digit",
            IdError::BadDate => "bad-date",
            IdError::BadCheckDigit { .. } => "bad-check-digit",
            IdError::SyntheticNotAllowed => "synthetic-not-allowed",
        }
    }
}

/// The numeric fields of 11 ASCII digits.
struct Fields {
    dd: u8,
    mm: u8,
    yy: u16,
    individual: u16,
}

impl Fields {
    fn of(d: &[u8; 11]) -> Fields {
        let n = |i: usize| d[i] - b'0';
        Fields {
            dd: n(0) * 10 + n(1),
            mm: n(2) * 10 + n(3),
            yy: u16::from(n(4)) * 10 + u16::from(n(5)),
            individual: u16::from(n(6)) * 100 + u16::from(n(7)) * 10 + u16::from(n(8)),
        }
    }

    /// The kind from the day and month offsets.
    fn kind(&self) -> Result<IdKind, IdError> {
        let d_offset = match self.dd {
            1..=31 => false,
            41..=71 => true,
            _ => return Err(IdError::BadDate),
        };
        let kind = match (d_offset, self.mm) {
            (false, 1..=12) => IdKind::Fnr,
            (true, 1..=12) => IdKind::DNummer,
            (false, 41..=52) => IdKind::HNummer,
            (false, 81..=92) => IdKind::Synthetic,
            (true, 81..=92) => IdKind::SyntheticDNummer,
            // D and H together, or a month outside every range.
            _ => return Err(IdError::BadDate),
        };
        Ok(kind)
    }

    /// The birth date with offsets removed, checked against the calendar.
    fn birth_date(&self) -> Result<(u16, u8, u8), IdError> {
        self.kind()?;
        // After `kind`, dd is 1..=31 or 41..=71 and mm is 1..=12, 41..=52 or
        // 81..=92, so `% 40` removes exactly the offset.
        let day = self.dd % 40;
        let month = self.mm % 40;
        let year = century(self.individual, self.yy).ok_or(IdError::BadDate)? + self.yy;
        if day > days_in_month(year, month) {
            return Err(IdError::BadDate);
        }
        Ok((year, month, day))
    }
}

/// The century (1800, 1900 or 2000) of an individual number and two-digit
/// year, or `None` for a combination Folkeregisteret never issues.
fn century(individual: u16, yy: u16) -> Option<u16> {
    match (individual, yy) {
        (0..=499, 0..=99) => Some(1900),
        (500..=749, 54..=99) => Some(1800),
        (500..=999, 0..=39) => Some(2000),
        (900..=999, 40..=99) => Some(1900),
        _ => None,
    }
}

fn is_leap(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

/// Days in `month` (1–12) of `year`; 0 for any other month.
fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// A mod-11 check digit over ASCII digits: `11 − (Σ wᵢ·dᵢ mod 11)`, with
/// 11 → 0 and `None` for 10 (no valid number).
///
/// This is the classic scheme. From 2032 Skatteetaten relaxes k1 (it may
/// then be any of `k`, `k+1`, `k+2`, `k+3` mod 11, extending the number
/// space); that is not implemented, and such numbers are refused with
/// `BadCheckDigit { which: 1 }`.
fn check_digit(digits: &[u8], weights: &[u8]) -> Option<u8> {
    let sum: u32 = digits
        .iter()
        .zip(weights)
        .map(|(&d, &w)| u32::from(d - b'0') * u32::from(w))
        .sum();
    // `sum % 11` is below 11, so the cast is lossless.
    match 11 - (sum % 11) as u8 {
        11 => Some(0),
        10 => None,
        k => Some(k),
    }
}

/// Checks k1 then k2 of 11 ASCII digits.
fn check_digits(d: &[u8; 11]) -> Result<(), IdError> {
    let k1 = check_digit(&d[..9], &W1).ok_or(IdError::BadCheckDigit { which: 1 })?;
    if d[9] - b'0' != k1 {
        return Err(IdError::BadCheckDigit { which: 1 });
    }
    let k2 = check_digit(&d[..10], &W2).ok_or(IdError::BadCheckDigit { which: 2 })?;
    if d[10] - b'0' != k2 {
        return Err(IdError::BadCheckDigit { which: 2 });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
