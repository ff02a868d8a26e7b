//! Identified projects (PROTOCOL.md §10a, issue 16 item 1): the researcher
//! brings its own fnr list (e.g. a clinical cohort) and will hold the
//! registers' data beside those fnr. The order says so and binds the
//! researcher list's person count and file digest; the registers'
//! operators approve that with the run order.
//!
//! ```text
//!  researcher list file ─▶ (persons, SHA3-256) ─▶ ProjectOrder::identified
//!  register: extract ─▶ persons ─▶ ReservationTable::exclude ─▶ chain
//!                                     └─▶ announcement.excluded = ShownCount
//!  verifier: identified order ⇔ every announcement carries a canonical
//!            ShownCount; an ordinary order ⇔ none does
//! ```
//!
//! Reservasjon applies only here: an ordinary project delivers lnr, not
//! fnr, and its announcements carry no exclusion count.

use serde::{Deserialize, Serialize};

use crate::{reservation::ShownCount, transcript::ProjectOrder, types::Digest};

/// The identified part of a project order: the researcher list the
/// registers' data will be held beside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResearcherList {
    /// Distinct persons in the researcher list (after validation, as an
    /// extract's persons are counted).
    pub persons: u64,
    /// SHA3-256 of the researcher list file, as approvals bind extracts.
    pub digest: Digest,
}

/// Why a list announcement's exclusion count does not fit its order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExclusionError {
    /// An identified project's announcement without an exclusion count.
    #[error("the project is identified, but the announcement carries no reservation count")]
    Missing,
    /// An ordinary project's announcement with an exclusion count.
    #[error("the project is not identified, but the announcement carries a reservation count")]
    Unexpected,
    /// A count under 5 shown as a number (`ShownCount::Exactly(n)`, n < 5).
    #[error("the reservation count is not in its shown form (a count under 5 must be `<5`)")]
    NotShown,
    /// An identified order's researcher list has no person.
    #[error("the identified order's researcher list is empty")]
    EmptyList,
}

impl ProjectOrder {
    /// Whether the project is identified (PROTOCOL.md §10a).
    pub fn is_identified(&self) -> bool {
        self.identified.is_some()
    }
}

/// Checks an identified order's own part: a researcher list of at least
/// one person.
///
/// # Errors
///
/// [`ExclusionError::EmptyList`].
pub fn check_order(order: &ProjectOrder) -> Result<(), ExclusionError> {
    match &order.identified {
        Some(list) if list.persons == 0 => Err(ExclusionError::EmptyList),
        _ => Ok(()),
    }
}

/// Checks the exclusion count a list announcement carries against its
/// order: present and in its shown form exactly when the project is
/// identified.
///
/// # Errors
///
/// The [`ExclusionError`] that applies.
pub fn check_exclusion(
    order: &ProjectOrder,
    excluded: Option<ShownCount>,
) -> Result<(), ExclusionError> {
    match (order.is_identified(), excluded) {
        (true, None) => Err(ExclusionError::Missing),
        (false, Some(_)) => Err(ExclusionError::Unexpected),
        (true, Some(c)) if !c.is_canonical() => Err(ExclusionError::NotShown),
        _ => Ok(()),
    }
}
