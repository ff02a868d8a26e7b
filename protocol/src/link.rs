//! Linking at the linker (PROTOCOL.md §7): cohort expressions, matching of
//! final pseudonyms across lists, and the project's løpenummer.
//!
//! ```text
//!  final pseudonyms per list            cohort "NPR & KPR"
//!  NPR: [P₀ P₁ P₂ …]  ─┐
//!  KPR: [P₃ P₀ …]     ─┼─▶ pseudonym → lists it is in ─▶ evaluate per person
//!  SSB: [P₁ …]        ─┘      (one map entry per person)        │
//!                                                               ▼
//!                      lnr = base32(SHAKE256(LNR, project, P))[..10 bytes]
//!                                                               │
//!        per list: selected positions (ascending) with their lnr ◀┘
//!        persons: lnr and the lists each cohort member is in
//! ```
//!
//! - [`Cohort`]: the cohort expression language and its grammar;
//! - [`Lnr`]: the løpenummer;
//! - [`link`]: the matching itself.

mod cohort;
mod lnr;

use core::hash::BuildHasherDefault;
use std::collections::{hash_map::DefaultHasher, HashMap};

use self::cohort::bit;
pub use self::{
    cohort::{Cohort, CohortError, Expected, Token},
    lnr::{Lnr, LnrError},
};
use crate::{
    bounded::{BoundedString, BoundedVec},
    group::WirePoint,
    transcript::{LinkSummary, LinkedList},
    types::{Digest, ListName, Position, ProjectId},
};

/// The linker's result: per list the selected positions with their lnr, and
/// the cohort's persons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linkage {
    /// One entry per input list, in input order.
    pub lists: Vec<ListSelection>,
    /// The cohort's members, sorted by lnr.
    pub persons: Vec<PersonEntry>,
}

/// The selection from one list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListSelection {
    /// The list.
    pub list: ListName,
    /// The number of positions in the list.
    pub total: u64,
    /// The selected positions, ascending, each with its person's lnr.
    pub selected: Vec<(Position, Lnr)>,
}

/// One cohort member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonEntry {
    /// The person's lnr.
    pub lnr: Lnr,
    /// Whether the person is in each list, in [`Linkage::lists`] order.
    pub present: Vec<bool>,
}

/// Why linking failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// Two input lists with the same name.
    #[error("list {list} is given twice")]
    DuplicateList {
        /// The list.
        list: ListName,
    },
    /// A pseudonym twice in one list. Registers group rows by person before
    /// the chain, so the list is broken.
    #[error("list {list} has the same pseudonym at positions {first} and {second}; a list holds each person once")]
    DuplicateInList {
        /// The list.
        list: ListName,
        /// The first position.
        first: Position,
        /// The repeated position.
        second: Position,
    },
    /// The cohort does not fit the lists.
    #[error("cohort: {0}")]
    Cohort(#[from] CohortError),
    /// Two distinct pseudonyms with the same lnr (80 bits: expected never;
    /// delivering either would merge two persons).
    #[error(
        "løpenummer collision between list {first_list} position {first} \
         and list {second_list} position {second}"
    )]
    LnrCollision {
        /// A list holding the first person.
        first_list: ListName,
        /// The first person's position there.
        first: Position,
        /// A list holding the second person.
        second_list: ListName,
        /// The second person's position there.
        second: Position,
    },
    /// The summary does not fit a transcript entry.
    #[error("the linkage summary is too large for a transcript entry")]
    TooLarge,
}

/// A deterministic hasher: this crate uses no OS randomness. The keys are
/// the linker's own final pseudonyms, pseudorandom points no one else can
/// steer, so a fixed-key SipHash cannot be flooded.
type FixedState = BuildHasherDefault<DefaultHasher>;

impl Linkage {
    /// The transcript's summary of this linkage of `cohort`: per list, its
    /// size, its matched persons and the root of its final points
    /// (`final_root(list)`).
    ///
    /// # Errors
    ///
    /// [`LinkError::TooLarge`] if the cohort's text or the lists do not fit
    /// a transcript entry.
    pub fn summary(
        &self,
        cohort: &Cohort,
        final_root: impl Fn(&ListName) -> Digest,
    ) -> Result<LinkSummary, LinkError> {
        let lists = self
            .lists
            .iter()
            .map(|l| LinkedList {
                list: l.list.clone(),
                final_root: final_root(&l.list),
                persons: l.total,
                matched: l.selected.len() as u64,
            })
            .collect();
        Ok(LinkSummary {
            cohort: BoundedString::new(cohort.to_string()).map_err(|_| LinkError::TooLarge)?,
            cohort_persons: self.persons.len() as u64,
            lists: BoundedVec::new(lists).map_err(|_| LinkError::TooLarge)?,
        })
    }
}

/// Links a project's lists: matches the final pseudonyms, evaluates the
/// cohort per person, and assigns lnrs.
///
/// `lists` holds each register's list of final pseudonyms `P_p(x_t)` (index
/// = position). Pseudonyms are compared as encodings (ristretto255
/// encodings are canonical, so equal points have equal encodings).
///
/// 1. Each pseudonym gets one map entry recording the lists it is in; one
///    that occurs twice in a list is an error.
/// 2. The cohort is evaluated once per distinct pseudonym.
/// 3. Every distinct pseudonym gets its lnr ([`Lnr::derive`]), and all of
///    them, selected or not, must be distinct.
/// 4. Per list, the selected positions in ascending order with their lnr;
///    and the selected persons, sorted by lnr, with the lists they are in.
///
/// Memory is one hash-map entry, one membership bit per list and one lnr
/// per distinct pseudonym, with no per-person heap allocation except the
/// `present` vectors of the output.
///
/// # Errors
///
/// [`LinkError::DuplicateList`], [`LinkError::DuplicateInList`],
/// [`LinkError::Cohort`] (a list the cohort names is not given) or
/// [`LinkError::LnrCollision`].
pub fn link(
    project: &ProjectId,
    lists: &[(ListName, &[WirePoint])],
    cohort: &Cohort,
) -> Result<Linkage, LinkError> {
    let names: Vec<ListName> = lists.iter().map(|(n, _)| n.clone()).collect();
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(LinkError::DuplicateList { list: n.clone() });
        }
    }
    let compiled = cohort.compile(&names)?;

    // Memberships: person index per pseudonym, `words` bitmask words per
    // person in one flat vector.
    let words = lists.len().div_ceil(64);
    let largest = lists.iter().map(|(_, p)| p.len()).max().unwrap_or(0);
    let mut person_of: HashMap<WirePoint, usize, FixedState> =
        HashMap::with_capacity_and_hasher(largest, FixedState::default());
    let mut bits: Vec<u64> = Vec::with_capacity(largest * words);
    for (l, (name, points)) in lists.iter().enumerate() {
        let (word, mask) = (l / 64, 1u64 << (l % 64));
        for (t, p) in points.iter().enumerate() {
            let fresh = person_of.len();
            let id = *person_of.entry(*p).or_insert(fresh);
            if id == fresh {
                bits.resize(bits.len() + words, 0);
            }
            let cell = &mut bits[id * words + word];
            if *cell & mask != 0 {
                let first = points.iter().position(|q| q == p).unwrap_or(t);
                return Err(LinkError::DuplicateInList {
                    list: name.clone(),
                    first: position(first),
                    second: position(t),
                });
            }
            *cell |= mask;
        }
    }
    let persons = person_of.len();
    let member = |id: usize| &bits[id * words..(id + 1) * words];

    let mut lnrs = vec![Lnr::PLACEHOLDER; persons];
    for (p, &id) in &person_of {
        lnrs[id] = Lnr::derive(project, p);
    }
    let selected: Vec<bool> = (0..persons).map(|id| compiled.eval(member(id))).collect();

    let by_lnr = sorted_by_lnr(&lnrs).map_err(|(a, b)| {
        let ((first_list, first), (second_list, second)) =
            (locate(lists, &person_of, a), locate(lists, &person_of, b));
        LinkError::LnrCollision {
            first_list,
            first,
            second_list,
            second,
        }
    })?;

    let persons = by_lnr
        .iter()
        .filter(|&&id| selected[id])
        .map(|&id| PersonEntry {
            lnr: lnrs[id],
            present: (0..lists.len()).map(|l| bit(member(id), l)).collect(),
        })
        .collect();
    let selections = lists
        .iter()
        .map(|(name, points)| ListSelection {
            list: name.clone(),
            total: points.len() as u64,
            selected: points
                .iter()
                .enumerate()
                .filter_map(|(t, p)| {
                    let id = *person_of.get(p)?;
                    selected[id].then(|| (position(t), lnrs[id]))
                })
                .collect(),
        })
        .collect();
    Ok(Linkage {
        lists: selections,
        persons,
    })
}

/// The person indices sorted by lnr, or two persons with the same lnr.
fn sorted_by_lnr(lnrs: &[Lnr]) -> Result<Vec<usize>, (usize, usize)> {
    let mut order: Vec<usize> = (0..lnrs.len()).collect();
    order.sort_unstable_by_key(|&id| lnrs[id]);
    match order.windows(2).find(|w| lnrs[w[0]] == lnrs[w[1]]) {
        Some(w) => Err((w[0].min(w[1]), w[0].max(w[1]))),
        None => Ok(order),
    }
}

fn position(t: usize) -> Position {
    Position(t as u64)
}

/// The first list and position of person `id` (error path only: a scan).
fn locate(
    lists: &[(ListName, &[WirePoint])],
    person_of: &HashMap<WirePoint, usize, FixedState>,
    id: usize,
) -> (ListName, Position) {
    let point = person_of.iter().find(|(_, &i)| i == id).map(|(p, _)| p);
    for (name, points) in lists {
        if let Some(t) = points.iter().position(|q| Some(q) == point) {
            return (name.clone(), position(t));
        }
    }
    // Unreachable: every person comes from some list.
    (lists[0].0.clone(), Position(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::hash::hash_to_group;
    use cohort::tests::{ast, c, n};

    pub(super) fn project(s: &str) -> ProjectId {
        ProjectId::new(s).expect("valid project id")
    }

    /// A distinct, valid pseudonym per `i`.
    pub(super) fn pt(i: u32) -> WirePoint {
        WirePoint(
            hash_to_group(b"TEST-PSEUDONYM", &i.to_le_bytes())
                .compress()
                .to_bytes(),
        )
    }

    /// Persons 0..10: NPR = {0..=5}, KPR = {3..=8}, SSB = {0, 8, 9}, each
    /// list in its own order.
    fn lists() -> Vec<(ListName, Vec<WirePoint>)> {
        let list = |ids: &[u32]| ids.iter().map(|&i| pt(i)).collect::<Vec<_>>();
        vec![
            (n("NPR"), list(&[5, 0, 3, 1, 4, 2])),
            (n("KPR"), list(&[8, 3, 7, 4, 6, 5])),
            (n("SSB"), list(&[9, 0, 8])),
        ]
    }

    fn run(project_id: &str, lists: &[(ListName, Vec<WirePoint>)], cohort: &str) -> Linkage {
        let borrowed: Vec<(ListName, &[WirePoint])> = lists
            .iter()
            .map(|(n, p)| (n.clone(), p.as_slice()))
            .collect();
        link(&project(project_id), &borrowed, &c(cohort)).expect("link")
    }

    /// The person ids selected per list, and the ids of the persons entry.
    fn selected_ids(lists: &[(ListName, Vec<WirePoint>)], linkage: &Linkage) -> BTreeSet<u32> {
        let id_of = |lnr: &Lnr| {
            (0..10)
                .find(|&i| Lnr::derive(&project("P-1"), &pt(i)) == *lnr)
                .expect("known person")
        };
        let mut all = BTreeSet::new();
        for (sel, (_, points)) in linkage.lists.iter().zip(lists) {
            assert_eq!(sel.total, points.len() as u64);
            assert!(sel.selected.windows(2).all(|w| w[0].0 < w[1].0));
            for (pos, lnr) in &sel.selected {
                let i = id_of(lnr);
                assert_eq!(points[pos.0 as usize], pt(i));
                all.insert(i);
            }
        }
        let persons: BTreeSet<u32> = linkage.persons.iter().map(|p| id_of(&p.lnr)).collect();
        assert_eq!(persons, all);
        all
    }

    #[test]
    fn link_selects_the_cohort_from_every_list() {
        let lists = lists();
        let set = |ids: &[u32]| ids.iter().copied().collect::<BTreeSet<u32>>();
        let cases: [(&str, &[u32]); 6] = [
            ("NPR", &[0, 1, 2, 3, 4, 5]),
            ("NPR & KPR", &[3, 4, 5]),
            ("NPR - KPR", &[0, 1, 2]),
            ("all", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
            ("NPR | KPR - SSB", &[1, 2, 3, 4, 5, 6, 7]),
            ("SSB & (NPR | KPR)", &[0, 8]),
        ];
        for (cohort, want) in cases {
            let linkage = run("P-1", &lists, cohort);
            assert_eq!(selected_ids(&lists, &linkage), set(want), "{cohort}");
        }

        // Cohort NPR takes from every list exactly the positions of NPR's
        // persons.
        let linkage = run("P-1", &lists, "NPR");
        let positions: Vec<Vec<u64>> = linkage
            .lists
            .iter()
            .map(|s| s.selected.iter().map(|(p, _)| p.0).collect())
            .collect();
        assert_eq!(
            positions,
            vec![vec![0, 1, 2, 3, 4, 5], vec![1, 3, 5], vec![1]]
        );
    }

    #[test]
    fn same_person_same_lnr_across_lists() {
        let lists = lists();
        let linkage = run("P-1", &lists, "all");
        let lnr_at = |list: usize, pos: u64| {
            linkage.lists[list]
                .selected
                .iter()
                .find(|(p, _)| p.0 == pos)
                .map(|(_, l)| *l)
                .expect("selected")
        };
        // Person 3: NPR position 2, KPR position 1. Person 0: NPR 1, SSB 1.
        assert_eq!(lnr_at(0, 2), lnr_at(1, 1));
        assert_eq!(lnr_at(0, 1), lnr_at(2, 1));
        assert_ne!(lnr_at(0, 2), lnr_at(0, 1));
        assert_eq!(lnr_at(0, 2), Lnr::derive(&project("P-1"), &pt(3)));

        // Persons sorted by lnr, with their lists.
        assert_eq!(linkage.persons.len(), 10);
        assert!(linkage.persons.windows(2).all(|w| w[0].lnr < w[1].lnr));
        let entry = |i: u32| {
            let lnr = Lnr::derive(&project("P-1"), &pt(i));
            linkage
                .persons
                .iter()
                .find(|p| p.lnr == lnr)
                .map(|p| p.present.clone())
                .expect("person")
        };
        assert_eq!(entry(0), vec![true, false, true]);
        assert_eq!(entry(3), vec![true, true, false]);
        assert_eq!(entry(8), vec![false, true, true]);
        assert_eq!(entry(9), vec![false, false, true]);
    }

    #[test]
    fn projects_have_unlinkable_lnrs() {
        let lists = lists();
        let a = run("P-1", &lists, "all");
        let b = run("P-2", &lists, "all");
        assert_eq!(a.lists[0].selected.len(), b.lists[0].selected.len());
        for (x, y) in a.lists[0].selected.iter().zip(&b.lists[0].selected) {
            assert_eq!(x.0, y.0);
            assert_ne!(x.1, y.1);
        }
        assert_ne!(
            Lnr::derive(&project("P-1"), &pt(1)),
            Lnr::derive(&project("P-2"), &pt(1))
        );
    }

    #[test]
    fn link_errors() {
        let (a, b) = (pt(1), pt(2));
        let dup = [a, b, a];
        let ok = [b];
        let p = project("P-1");
        assert_eq!(
            link(&p, &[(n("NPR"), &ok), (n("KPR"), &dup)], &Cohort::All),
            Err(LinkError::DuplicateInList {
                list: n("KPR"),
                first: Position(0),
                second: Position(2)
            })
        );
        assert_eq!(
            link(&p, &[(n("NPR"), &ok), (n("NPR"), &ok)], &Cohort::All),
            Err(LinkError::DuplicateList { list: n("NPR") })
        );
        assert!(matches!(
            link(&p, &[(n("NPR"), &ok)], &c("NPR & KPR")),
            Err(LinkError::Cohort(CohortError::UnknownList { .. }))
        ));
        let empty = link(&p, &[], &Cohort::All).expect("link");
        assert!(empty.lists.is_empty() && empty.persons.is_empty());
    }

    #[test]
    fn lnr_collisions_are_found() {
        let lnr = |s: &str| s.parse::<Lnr>().expect("lnr");
        let (a, b, z) = (
            lnr("0000000000000001"),
            lnr("0000000000000002"),
            lnr("ZZZZZZZZZZZZZZZZ"),
        );
        assert_eq!(sorted_by_lnr(&[z, b, a]), Ok(vec![2, 1, 0]));
        assert_eq!(sorted_by_lnr(&[]), Ok(vec![]));
        assert_eq!(sorted_by_lnr(&[b, z, a, z]), Err((1, 3)));
        // `locate` names a list and position of each colliding person.
        let points = [pt(1), pt(2)];
        let lists = [(n("NPR"), &points[..1]), (n("KPR"), &points[..])];
        let person_of: HashMap<WirePoint, usize, FixedState> =
            [(pt(1), 0), (pt(2), 1)].into_iter().collect();
        assert_eq!(locate(&lists, &person_of, 0), (n("NPR"), Position(0)));
        assert_eq!(locate(&lists, &person_of, 1), (n("KPR"), Position(1)));
    }

    #[test]
    fn link_with_more_than_64_lists() {
        let lists: Vec<(ListName, Vec<WirePoint>)> = (0..70u32)
            .map(|i| (n(&format!("L{i}")), vec![pt(i), pt(1000)]))
            .collect();
        let linkage = run("P-1", &lists, "L69 - L3");
        assert_eq!(linkage.persons.len(), 1);
        assert_eq!(linkage.lists[69].selected.len(), 1);
        assert_eq!(linkage.lists[69].selected[0].0, Position(0));
        let linkage = run("P-1", &lists, "L69 & L3");
        assert_eq!(linkage.persons.len(), 1);
        assert!(linkage.persons[0].present.iter().all(|&p| p));
    }

    proptest! {
        #[test]
        fn link_agrees_with_contains(
            cohort in ast(&["A", "B", "C"]),
            members in prop::collection::vec(1u8..8, 1..20),
        ) {
            let names = [n("A"), n("B"), n("C")];
            let lists: Vec<(ListName, Vec<WirePoint>)> = names
                .iter()
                .enumerate()
                .map(|(l, name)| {
                    let points = members
                        .iter()
                        .enumerate()
                        .filter(|(_, &m)| m >> l & 1 == 1)
                        .map(|(i, _)| pt(i as u32))
                        .collect();
                    (name.clone(), points)
                })
                .collect();
            let linkage = run("P-1", &lists, &cohort.to_string());
            let mut want: Vec<Lnr> = members
                .iter()
                .enumerate()
                .filter(|(_, &m)| cohort.contains(|x| {
                    names.iter().position(|k| k == x).is_some_and(|l| m >> l & 1 == 1)
                }))
                .map(|(i, _)| Lnr::derive(&project("P-1"), &pt(i as u32)))
                .collect();
            want.sort();
            let got: Vec<Lnr> = linkage.persons.iter().map(|p| p.lnr).collect();
            prop_assert_eq!(got, want);
        }
    }
}
