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
    /// An identified order with a list keyed by a register domain, or a
    /// delivery into one: reservations are by fnr.
    #[error("an identified project's lists are fnr lists: no pseudonymous list, no delivery into a register domain")]
    NotFnr,
}

impl ProjectOrder {
    /// Whether the project is identified (PROTOCOL.md §10a).
    pub fn is_identified(&self) -> bool {
        self.identified.is_some()
    }
}

/// Checks an identified order's own part: a researcher list of at least
/// one person, and only fnr lists (a reservation is by fnr).
///
/// # Errors
///
/// [`ExclusionError::EmptyList`], [`ExclusionError::NotFnr`].
pub fn check_order(order: &ProjectOrder) -> Result<(), ExclusionError> {
    match &order.identified {
        None => Ok(()),
        Some(list) if list.persons == 0 => Err(ExclusionError::EmptyList),
        Some(_) if order.delivery.is_some() || !order.pseudonymous.is_empty() => {
            Err(ExclusionError::NotFnr)
        }
        Some(_) => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::{check_exclusion, ExclusionError};
    use crate::{
        bounded::BoundedVec,
        manifest::{Ed25519Key, X25519Key},
        reservation::ShownCount,
        transcript::ProjectOrder,
        types::{Digest, Name, ProjectId, UnixTime},
    };

    fn order(identified: bool) -> ProjectOrder {
        ProjectOrder {
            project: ProjectId::new("P-1").expect("id"),
            title: crate::bounded::BoundedString::new("t").expect("fits"),
            legal_basis: crate::bounded::BoundedString::new("REK").expect("fits"),
            manifest_digest: Digest([1; 32]),
            linker: Name::new("LINKER").expect("name"),
            registers: BoundedVec::default(),
            cohort: crate::bounded::BoundedString::new("all").expect("fits"),
            expires: UnixTime(1),
            researcher_signing_key: Ed25519Key([2; 32]),
            researcher_hpke_key: X25519Key([3; 32]),
            test_mode: false,
            grant: None,
            delivery: None,
            pseudonymous: BoundedVec::default(),
            identified: identified.then_some(super::ResearcherList {
                persons: 10,
                digest: Digest([4; 32]),
            }),
        }
    }

    #[test]
    fn an_exclusion_count_is_shown_exactly_when_the_project_is_identified() {
        let (ident, ordinary) = (order(true), order(false));
        assert_eq!(check_exclusion(&ident, Some(ShownCount::of(3))), Ok(()));
        assert_eq!(check_exclusion(&ident, Some(ShownCount::of(7))), Ok(()));
        assert_eq!(check_exclusion(&ordinary, None), Ok(()));
        assert_eq!(check_exclusion(&ident, None), Err(ExclusionError::Missing));
        assert_eq!(
            check_exclusion(&ordinary, Some(ShownCount::of(0))),
            Err(ExclusionError::Unexpected)
        );
        for n in 0..5 {
            assert_eq!(
                check_exclusion(&ident, Some(ShownCount::Exactly(n))),
                Err(ExclusionError::NotShown)
            );
        }
    }

    #[test]
    fn an_identified_order_names_someone_and_only_fnr_lists() {
        let mut o = order(true);
        assert_eq!(super::check_order(&o), Ok(()));
        o.identified = o
            .identified
            .map(|l| super::ResearcherList { persons: 0, ..l });
        assert_eq!(super::check_order(&o), Err(ExclusionError::EmptyList));
        let mut o = order(true);
        o.pseudonymous = BoundedVec::new(vec![crate::domain::PseudonymousList {
            register: Name::new("RESEPT").expect("name"),
            domain: Name::new("RESEPT").expect("name"),
        }])
        .expect("fits");
        assert_eq!(super::check_order(&o), Err(ExclusionError::NotFnr));
    }
}
