//! The mapping of changed identifiers (PROTOCOL.md §9): old identifier →
//! current identifier, as Folkeregisteret keeps them.

use core::{fmt, hash::BuildHasherDefault};
use std::collections::{hash_map::DefaultHasher, HashMap};

use super::Identifier;

/// Why a mapping of changed identifiers was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MappingError {
    /// The same old identifier is mapped to two different targets.
    #[error(
        "pairs {first} and {second} (0-based) map the same old identifier to different targets"
    )]
    Conflict {
        /// 0-based index of the first pair.
        first: usize,
        /// 0-based index of the conflicting pair.
        second: usize,
    },
    /// Following the mapping from an old identifier comes back to it
    /// (including an identifier mapped to itself).
    #[error("pair {index} (0-based) is part of a cycle")]
    Cycle {
        /// 0-based index of one pair on the cycle.
        index: usize,
    },
}

/// Old identifier → current identifier, with chains resolved.
///
/// Folkeregisteret keeps the numbers a person had before (a D-nummer
/// replaced by a fødselsnummer, a corrected fødselsnummer). Registers apply
/// the mapping before hashing, so a person linked under an old number in one
/// register and the current number in another still links.
#[derive(Clone, Default)]
pub struct IdMapping {
    current: HashMap<Identifier, Identifier, FixedState>,
}

/// A deterministic hasher: this crate uses no OS randomness. Keys come from
/// the operator's own (trusted) mapping file, not from a peer.
type FixedState = BuildHasherDefault<DefaultHasher>;

impl IdMapping {
    /// Builds a mapping from `(old, current)` pairs and resolves chains
    /// (`a → b`, `b → c` gives `a → c`), so [`apply`](Self::apply) is one
    /// lookup. A pair repeated verbatim is accepted once.
    ///
    /// # Errors
    ///
    /// [`MappingError::Conflict`] if an old identifier is mapped to two
    /// different targets; [`MappingError::Cycle`] if following the mapping
    /// from some identifier returns to it (including `a → a`).
    pub fn new(
        pairs: impl IntoIterator<Item = (Identifier, Identifier)>,
    ) -> Result<Self, MappingError> {
        // Distinct old identifiers in input order, each with its direct
        // target and the index of the pair that introduced it.
        let mut slot_of: HashMap<Identifier, usize, FixedState> = HashMap::default();
        let mut olds = Vec::new();
        let mut next = Vec::new();
        let mut pair_index = Vec::new();
        for (i, (old, new)) in pairs.into_iter().enumerate() {
            if old == new {
                return Err(MappingError::Cycle { index: i });
            }
            if let Some(&slot) = slot_of.get(&old) {
                if next[slot] != new {
                    return Err(MappingError::Conflict {
                        first: pair_index[slot],
                        second: i,
                    });
                }
                continue;
            }
            slot_of.insert(old, olds.len());
            olds.push(old);
            next.push(new);
            pair_index.push(i);
        }

        // Follow every chain once; each slot is resolved exactly once, so
        // this is linear in the number of pairs.
        let mut target: Vec<Option<Identifier>> = vec![None; olds.len()];
        let mut on_path = vec![false; olds.len()];
        let mut path = Vec::new();
        for start in 0..olds.len() {
            if target[start].is_some() {
                continue;
            }
            path.clear();
            let mut cur = start;
            let end = loop {
                if let Some(t) = target[cur] {
                    break t;
                }
                if on_path[cur] {
                    return Err(MappingError::Cycle {
                        index: pair_index[cur],
                    });
                }
                on_path[cur] = true;
                path.push(cur);
                match slot_of.get(&next[cur]) {
                    Some(&s) => cur = s,
                    None => break next[cur],
                }
            };
            for &p in &path {
                target[p] = Some(end);
                on_path[p] = false;
            }
        }

        let current = olds
            .into_iter()
            .zip(target)
            .filter_map(|(old, t)| t.map(|t| (old, t)))
            .collect();
        Ok(IdMapping { current })
    }

    /// The current identifier of `id`: its final target if it is an old
    /// identifier, otherwise `id` itself.
    pub fn apply(&self, id: &Identifier) -> Identifier {
        self.current.get(id).copied().unwrap_or(*id)
    }

    /// The number of old identifiers mapped.
    pub fn len(&self) -> usize {
        self.current.len()
    }

    /// Whether the mapping is empty.
    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }
}

impl fmt::Debug for IdMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdMapping")
            .field("len", &self.current.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::ParseOptions;

    fn id(s: &str) -> Identifier {
        Identifier::parse(
            s,
            ParseOptions {
                allow_synthetic: false,
            },
        )
        .expect("valid identifier")
    }

    #[test]
    fn mapping_resolves_chains() {
        let a = id("41018012365");
        let b = id("01418012354");
        let c = id("01018012371");
        let d = id("31128012322");
        let m = IdMapping::new([(b, c), (a, b), (a, b)]).expect("mapping");
        assert_eq!(m.apply(&a), c);
        assert_eq!(m.apply(&b), c);
        assert_eq!(m.apply(&c), c);
        assert_eq!(m.apply(&d), d);
        assert_eq!(m.len(), 2);
        assert!(IdMapping::default().is_empty());
        assert_eq!(IdMapping::default().apply(&a), a);
    }

    #[test]
    fn mapping_errors() {
        let a = id("41018012365");
        let b = id("01418012354");
        let c = id("01018012371");
        let d = id("31128012322");
        assert_eq!(
            IdMapping::new([(a, b), (c, d), (a, c)]).map(|_| ()),
            Err(MappingError::Conflict {
                first: 0,
                second: 2
            })
        );
        assert_eq!(
            IdMapping::new([(a, a)]).map(|_| ()),
            Err(MappingError::Cycle { index: 0 })
        );
        assert!(matches!(
            IdMapping::new([(d, c), (a, b), (b, c), (c, a)]),
            Err(MappingError::Cycle { .. })
        ));
    }
}
