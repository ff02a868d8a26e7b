//! Newtypes for the names and numbers the protocol passes around.
//!
//! Names are validated at construction (parse, don't validate), so a
//! `ProjectId` or `Name` in hand is always well-formed and bounded, and a
//! value decoded from the wire goes through the same check.

use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Empty or longer than the limit.
    #[error("{kind} must be 1 to {max} characters long, got {len}")]
    Length {
        /// Which kind of name.
        kind: &'static str,
        /// The limit.
        max: usize,
        /// The length given.
        len: usize,
    },
    /// A character outside the allowed set.
    #[error("{kind} may only contain {allowed}; found {found:?} at byte {at}")]
    Character {
        /// Which kind of name.
        kind: &'static str,
        /// The allowed set, in words.
        allowed: &'static str,
        /// The offending character.
        found: char,
        /// Its byte offset.
        at: usize,
    },
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $kind:literal, $max:expr, $allowed_words:literal, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty(String);

        impl $ty {
            /// The maximum length in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates and wraps a name.
            ///
            /// # Errors
            ///
            /// [`NameError`] if it is empty, too long, or has a character
            /// outside the allowed set.
            pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                if s.is_empty() || s.len() > Self::MAX_LEN {
                    return Err(NameError::Length { kind: $kind, max: Self::MAX_LEN, len: s.len() });
                }
                let allowed: fn(char) -> bool = $allowed;
                if let Some((at, found)) = s.char_indices().find(|&(_, c)| !allowed(c)) {
                    return Err(NameError::Character { kind: $kind, allowed: $allowed_words, found, at });
                }
                Ok(Self(s))
            }

            /// The name as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The name's bytes, as they enter hashes and AADs.
            pub fn as_bytes(&self) -> &[u8] {
                self.0.as_bytes()
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.0)
            }
        }

        impl core::str::FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = crate::bounded::BoundedString::<{ $max }>::deserialize(d)?;
                Self::new(s.into_inner()).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A project identifier, e.g. `DEMO-1` or `REK-2024-12345`.
    ProjectId, "project id", 64, "ASCII letters, digits, '.', '_' and '-'",
    |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
);

name_type!(
    /// A federation member's name, which is also the name of a register's
    /// list in a project (`NPR`, `KPR`, `SSB`, `RESEPT`, `LINKER`).
    Name, "member name", 32, "upper-case ASCII letters, digits, '_' and '-'",
    |c| c.is_ascii_uppercase() || c.is_ascii_digit() || matches!(c, '_' | '-')
);

/// A register's list in a project. A list is named by the register that
/// owns it (one list per register per project), so it is spelt like a
/// [`Name`] and encodes exactly like one; the type says "this is a list",
/// where a [`Name`] says "this is a member".
///
/// Convert explicitly: [`ListName::of`] is the list a register owns,
/// [`ListName::owner`] the register that owns a list.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ListName(Name);

impl ListName {
    /// The maximum length in bytes (that of a [`Name`]).
    pub const MAX_LEN: usize = Name::MAX_LEN;

    /// The list owned by `register`.
    pub fn of(register: &Name) -> Self {
        Self(register.clone())
    }

    /// A register domain's stored table, as the list a re-share converts:
    /// it is named by the domain (PROTOCOL.md §10).
    pub fn of_domain(domain: &Name) -> Self {
        Self(domain.clone())
    }

    /// Validates and wraps a list name (the rules of a [`Name`]).
    ///
    /// # Errors
    ///
    /// [`NameError`] as for [`Name::new`].
    pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
        Name::new(s).map(Self)
    }

    /// The register that owns the list.
    pub fn owner(&self) -> &Name {
        &self.0
    }

    /// The register that owns the list, by value.
    pub fn into_owner(self) -> Name {
        self.0
    }

    /// Whether `register` owns this list.
    pub fn is_owned_by(&self, register: &Name) -> bool {
        &self.0 == register
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The name's bytes, as they enter hashes and AADs.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Display for ListName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl fmt::Debug for ListName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ListName({:?})", self.0.as_str())
    }
}

impl core::str::FromStr for ListName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::new(s)
    }
}

/// A person's position in a shuffled list (0-based).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct Position(pub u64);

impl Position {
    /// The position as little-endian bytes, as it enters hashes and AADs.
    pub fn to_le_bytes(self) -> [u8; 8] {
        self.0.to_le_bytes()
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A time: whole seconds since the Unix epoch (UTC). Expiries, request
/// times, statement times and every `now` a sans-IO step is handed.
///
/// Encodes as its `u64` (postcard varint, a number in TOML/JSON).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// The epoch itself.
    pub const EPOCH: Self = Self(0);

    /// The UTC date of day `days` since 1970-01-01 as ISO 8601,
    /// `YYYY-MM-DD` (proleptic Gregorian; H. Hinnant, "chrono-Compatible
    /// Low-Level Date Algorithms", `civil_from_days`, in unsigned
    /// arithmetic: the epoch shifted to 0000-03-01).
    pub fn date_of_day(days: u64) -> String {
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        format!("{year:04}-{month:02}-{day:02}")
    }

    /// This time as UTC ISO 8601, `2023-11-14T22:13:20Z`.
    pub fn iso8601(self) -> String {
        let rem = self.0 % 86_400;
        format!(
            "{}T{:02}:{:02}:{:02}Z",
            Self::date_of_day(self.0 / 86_400),
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }

    /// Seconds since the epoch.
    pub const fn secs(self) -> u64 {
        self.0
    }

    /// `secs` seconds later, saturating at the end of time.
    #[must_use]
    pub const fn plus(self, secs: u64) -> Self {
        Self(self.0.saturating_add(secs))
    }

    /// `secs` seconds earlier, saturating at the epoch.
    #[must_use]
    pub const fn minus(self, secs: u64) -> Self {
        Self(self.0.saturating_sub(secs))
    }

    /// Seconds from `earlier` to `self` (0 if `earlier` is later).
    pub const fn since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Seconds between the two times, either way round.
    pub const fn abs_diff(self, other: Self) -> u64 {
        self.0.abs_diff(other.0)
    }

    /// The time as little-endian bytes, as it enters hashes and AADs.
    pub const fn to_le_bytes(self) -> [u8; 8] {
        self.0.to_le_bytes()
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A step of a list's chain: 0 is the owner's blinded step, 1..=m the
/// hops after it (registers, then the linker).
///
/// Encodes as its `u32`.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct HopIndex(pub u32);

impl HopIndex {
    /// The owner's step.
    pub const OWNER: Self = Self(0);

    /// The hop after this one (saturating).
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// The hop before this one, if any.
    pub const fn previous(self) -> Option<Self> {
        match self.0.checked_sub(1) {
            Some(h) => Some(Self(h)),
            None => None,
        }
    }

    /// The hop after `done` steps (hop `done + 1`, saturating), numbering
    /// a list of steps from 1.
    pub fn after(done: usize) -> Self {
        Self(u32::try_from(done).map_or(u32::MAX, |d| d.saturating_add(1)))
    }

    /// The index as a `usize`, for indexing a list of hops.
    pub const fn as_usize(self) -> usize {
        self.0 as usize
    }

    /// The index as little-endian bytes, as it enters hashes.
    pub const fn to_le_bytes(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }
}

impl fmt::Display for HopIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A chain v2 list attempt: 0 the first (optimistic) attempt, 1 the
/// strict attempt after a failed list check ([`crate::v2::LAST_ATTEMPT`]).
///
/// Encodes as its `u32`.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Attempt(pub u32);

impl Attempt {
    /// The first attempt.
    pub const FIRST: Self = Self(0);

    /// The attempt after this one (saturating).
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// The number as little-endian bytes, as it enters hashes.
    pub const fn to_le_bytes(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }
}

impl From<Attempt> for u64 {
    fn from(a: Attempt) -> Self {
        Self::from(a.0)
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A chunk's index within a list (0-based; chunk `c` holds the points
/// `c·chunk_size ..`).
///
/// Encodes as its `u64`.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ChunkIndex(pub u64);

impl ChunkIndex {
    /// The first chunk.
    pub const FIRST: Self = Self(0);

    /// The chunk after this one (saturating).
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// The index as little-endian bytes, as it enters hashes and AADs.
    pub const fn to_le_bytes(self) -> [u8; 8] {
        self.0.to_le_bytes()
    }
}

impl fmt::Display for ChunkIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A SHA3-256 digest (a Merkle root, an entry hash, a file digest).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(Name::new("NPR").is_ok());
        assert!(Name::new("RESEPT_2").is_ok());
        assert!(matches!(
            Name::new("npr"),
            Err(NameError::Character { found: 'n', .. })
        ));
        assert!(matches!(Name::new(""), Err(NameError::Length { .. })));
        assert!(Name::new("A".repeat(33)).is_err());
        assert!(ProjectId::new("REK-2024.123_a").is_ok());
        assert!(ProjectId::new("a b").is_err());
        assert!(ProjectId::new("æ").is_err());
    }

    #[test]
    fn numbers_encode_as_their_bare_integers() {
        // postcard (the wire, every signed body) and JSON/TOML see the
        // integer alone, so the newtypes changed no byte of any format.
        for (typed, bare) in [
            (
                postcard::to_allocvec(&UnixTime(1_700_000_000)),
                postcard::to_allocvec(&1_700_000_000u64),
            ),
            (
                postcard::to_allocvec(&HopIndex(300)),
                postcard::to_allocvec(&300u32),
            ),
            (
                postcard::to_allocvec(&ChunkIndex(u64::MAX)),
                postcard::to_allocvec(&u64::MAX),
            ),
            (
                postcard::to_allocvec(&Attempt(1)),
                postcard::to_allocvec(&1u32),
            ),
        ] {
            assert_eq!(typed.expect("encode"), bare.expect("encode"));
        }
        let back: UnixTime = postcard::from_bytes(&[0x80, 0x01]).expect("decode");
        assert_eq!(back, UnixTime(128));
        assert_eq!(UnixTime(5).plus(u64::MAX), UnixTime(u64::MAX));
        assert_eq!(UnixTime(5).since(UnixTime(7)), 0);
        assert_eq!(HopIndex::OWNER.previous(), None);
        assert_eq!(HopIndex(2).previous(), Some(HopIndex(1)));
    }

    #[test]
    fn list_names_encode_exactly_like_member_names() {
        // A list is spelt as its owner's name, on the wire and in every
        // signed body: the newtype changed no byte of any format.
        let npr = Name::new("NPR").expect("valid");
        let list = ListName::of(&npr);
        assert_eq!(
            postcard::to_allocvec(&list).expect("encode"),
            postcard::to_allocvec(&npr).expect("encode")
        );
        let long = Name::new("N".repeat(Name::MAX_LEN)).expect("valid");
        assert_eq!(
            postcard::to_allocvec(&ListName::of(&long)).expect("encode"),
            postcard::to_allocvec(&long).expect("encode")
        );
        let bytes = postcard::to_allocvec(&npr).expect("encode");
        let back: ListName = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!(back, list);
        assert_eq!(back.owner(), &npr);
        assert!(back.is_owned_by(&npr));
        assert_eq!(back.to_string(), "NPR");
        assert_eq!(format!("{back:?}"), "ListName(\"NPR\")");
        // The same validation as a member name, by hand and when decoded.
        assert_eq!(ListName::new("npr").err(), Name::new("npr").err());
        assert!(ListName::new("N".repeat(Name::MAX_LEN + 1)).is_err());
        for bad in ["npr", ""] {
            let bytes = postcard::to_allocvec(&bad).expect("encode");
            assert!(postcard::from_bytes::<ListName>(&bytes).is_err());
        }
        let too_long = postcard::to_allocvec(&"N".repeat(Name::MAX_LEN + 1)).expect("encode");
        assert!(postcard::from_bytes::<ListName>(&too_long).is_err());
    }

    #[test]
    fn names_are_checked_when_decoded() {
        let bytes = postcard::to_allocvec(&"bad name").expect("encode");
        assert!(postcard::from_bytes::<ProjectId>(&bytes).is_err());
        let bytes = postcard::to_allocvec(&"P-1").expect("encode");
        assert_eq!(
            postcard::from_bytes::<ProjectId>(&bytes).expect("decode"),
            ProjectId::new("P-1").expect("valid")
        );
    }
}
