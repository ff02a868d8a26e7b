//! The disclosure log (PROTOCOL.md §10a, issue 16): before an identified
//! project's keys are shredded, the pseudonyms of the persons it delivered
//! are converted into a long-lived log domain (§10's one-step conversion),
//! so a citizen can later ask "which identified projects received my data
//! together with my fnr".
//!
//! ```text
//!  linker: delivered persons' pseudonyms ─▶ padded_list(size) ─▶ conversion chain (§15)
//!          (one per person)                 + random points,       into the log domain
//!                                           shuffled               ─▶ holder: DisclosureRecord
//! ```
//!
//! The list is padded with uniformly random group elements to a size fixed
//! before the cohort is known (the number of linked persons), and shuffled,
//! so no key holder on the way learns how many were delivered or which
//! positions are real. After the conversion a random point is a random
//! point: the holder stores every value, and the padding simply never
//! matches anyone's pseudonym.

use curve25519_dalek::RistrettoPoint;
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{group::WirePoint, owner::shuffle, types::ProjectId};

pub mod log;

/// Building a disclosure list failed.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisclosureError {
    /// More delivered persons than the padded size.
    #[error("{delivered} delivered persons do not fit a list of {size}")]
    TooMany {
        /// Delivered persons.
        delivered: u64,
        /// The padded size.
        size: u64,
    },
    /// A delivered pseudonym appears twice (one entry per person).
    #[error("a delivered pseudonym appears twice")]
    Duplicate,
}

/// The list the linker sends into the log domain's conversion: the
/// delivered persons' pseudonyms and `size − delivered` uniformly random
/// points, in a random order.
///
/// # Errors
///
/// [`DisclosureError::TooMany`] if `delivered` is longer than `size`;
/// [`DisclosureError::Duplicate`] if a pseudonym repeats.
pub fn padded_list<R: CryptoRng + ?Sized>(
    delivered: &[WirePoint],
    size: u64,
    rng: &mut R,
) -> Result<Vec<WirePoint>, DisclosureError> {
    let n = delivered.len() as u64;
    if n > size {
        return Err(DisclosureError::TooMany { delivered: n, size });
    }
    let mut seen = std::collections::BTreeSet::new();
    if !delivered.iter().all(|p| seen.insert(p.0)) {
        return Err(DisclosureError::Duplicate);
    }
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    out.extend_from_slice(delivered);
    for _ in n..size {
        let mut wide = [0u8; 64];
        rng.fill_bytes(&mut wide);
        out.push(WirePoint(
            RistrettoPoint::from_uniform_bytes(&wide)
                .compress()
                .to_bytes(),
        ));
    }
    shuffle(&mut out, rng);
    Ok(out)
}

/// What the log domain's holder keeps per converted value: the project and
/// the day its delivery was made (days since 1970-01-01), kept at least
/// five years. An innsyn request to the log domain returns the records
/// stored under the citizen's log pseudonym.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DisclosureRecord {
    /// The identified project.
    pub project: ProjectId,
    /// The delivery's day.
    pub day: u32,
}

impl DisclosureRecord {
    /// The day as an ISO 8601 date, `YYYY-MM-DD` (proleptic Gregorian).
    pub fn date(&self) -> String {
        crate::types::UnixTime::date_of_day(u64::from(self.day))
    }

    /// Whether the record may be purged on `today` (days since
    /// 1970-01-01): only once [`MIN_RETENTION_DAYS`] have passed.
    pub fn purgeable(&self, today: u32) -> bool {
        u64::from(self.day) + u64::from(MIN_RETENTION_DAYS) < u64::from(today)
    }
}

/// Days a disclosure record is kept at least (five years, leap days
/// included).
pub const MIN_RETENTION_DAYS: u32 = 5 * 365 + 2;

#[cfg(test)]
mod tests;
