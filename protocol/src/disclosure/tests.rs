use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

use super::*;
use crate::hash::hash_to_group;

fn delivered(n: u8) -> Vec<WirePoint> {
    (0..n)
        .map(|i| WirePoint(hash_to_group(b"TEST-PERSON", &[i]).compress().to_bytes()))
        .collect()
}

#[test]
fn the_list_hides_how_many_were_delivered_and_where() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let real = delivered(3);
    let list = padded_list(&real, 40, &mut rng).expect("fits");
    assert_eq!(list.len(), 40, "the size is fixed before the cohort");
    for p in &real {
        assert_eq!(list.iter().filter(|q| *q == p).count(), 1);
    }
    let padding: Vec<_> = list.iter().filter(|q| !real.contains(q)).collect();
    assert_eq!(padding.len(), 37);
    assert!(
        padding.iter().all(|q| q.decode().is_ok()),
        "padding is made of valid points, like the real ones"
    );
    let distinct: std::collections::BTreeSet<_> = list.iter().map(|q| q.0).collect();
    assert_eq!(distinct.len(), 40);
    // Over many lists, the real ones land everywhere.
    let mut positions = std::collections::BTreeSet::new();
    for _ in 0..50 {
        let list = padded_list(&real, 40, &mut rng).expect("fits");
        positions.extend(list.iter().positions_of(&real));
    }
    assert!(positions.len() > 30, "shuffled: {positions:?}");
    // Two lists of different cohorts look alike from outside: same length.
    let other = padded_list(&delivered(30), 40, &mut rng).expect("fits");
    assert_eq!(other.len(), list.len());
}

trait PositionsOf {
    fn positions_of(self, of: &[WirePoint]) -> Vec<usize>;
}

impl<'a, I: Iterator<Item = &'a WirePoint>> PositionsOf for I {
    fn positions_of(self, of: &[WirePoint]) -> Vec<usize> {
        self.enumerate()
            .filter(|(_, p)| of.contains(p))
            .map(|(i, _)| i)
            .collect()
    }
}

#[test]
fn too_many_or_repeated_persons_are_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    assert_eq!(
        padded_list(&delivered(5), 4, &mut rng),
        Err(DisclosureError::TooMany {
            delivered: 5,
            size: 4
        })
    );
    let mut twice = delivered(2);
    twice.push(twice[0]);
    assert_eq!(
        padded_list(&twice, 10, &mut rng),
        Err(DisclosureError::Duplicate)
    );
    assert_eq!(padded_list(&[], 0, &mut rng), Ok(vec![]));
}

#[test]
fn a_record_prints_its_date_and_is_kept_five_years() {
    let r = DisclosureRecord {
        project: ProjectId::new("ID-1").expect("id"),
        day: 20_424, // 2025-12-02
    };
    assert_eq!(r.date(), "2025-12-02");
    let epoch = DisclosureRecord {
        day: 0,
        ..r.clone()
    };
    assert_eq!(epoch.date(), "1970-01-01");
    let leap = DisclosureRecord {
        day: 11_016,
        ..r.clone()
    };
    assert_eq!(leap.date(), "2000-02-29");
    assert!(!r.purgeable(r.day + MIN_RETENTION_DAYS));
    assert!(r.purgeable(r.day + MIN_RETENTION_DAYS + 1));
}
