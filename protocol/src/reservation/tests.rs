use proptest::prelude::*;

use super::*;
use crate::ident::IdKind;

/// The `i`-th valid synthetic number of 1990 (a valid check digit pair
/// exists for most individual numbers; the others are skipped).
fn person(i: u16) -> Identifier {
    (i..=999)
        .find_map(|n| {
            Identifier::from_parts(1990, 3, 1 + (i % 28) as u8, n, IdKind::Synthetic).ok()
        })
        .expect("a valid synthetic number")
}

fn list(ids: &[Identifier]) -> Vec<Person> {
    ids.iter()
        .map(|id| Person {
            id: *id,
            rows: vec![vec![format!("row of {}", id.masked())]],
        })
        .collect()
}

const TEST: ParseOptions = ParseOptions {
    allow_synthetic: true,
};

#[test]
fn reserved_persons_are_removed_and_only_their_number_is_told() {
    let ids: Vec<Identifier> = (0..20).map(|i| person(i * 7)).collect();
    let mut b = ReservationBuilder::new(TEST, None);
    for (line, id) in [ids[3], ids[11], ids[3]].iter().enumerate() {
        b.push_row(line as u64 + 2, id.expose()).expect("valid");
    }
    let (table, stats) = b.finish();
    assert_eq!(stats.rows, 3);
    assert_eq!(stats.persons, 2, "a person listed twice is one reservation");
    let out = table.exclude(list(&ids));
    assert_eq!(out.count, 2);
    assert_eq!(out.kept.len(), 18);
    assert!(out.kept.iter().all(|p| p.id != ids[3] && p.id != ids[11]));
    let order: Vec<_> = out.kept.iter().map(|p| p.id).collect();
    let expected: Vec<_> = ids
        .iter()
        .copied()
        .filter(|id| *id != ids[3] && *id != ids[11])
        .collect();
    assert_eq!(order, expected, "the others keep their order");
    assert_eq!(out.shown(), ShownCount::Under5);
    assert_eq!(out.shown().to_string(), "<5");
}

#[test]
fn invalid_rows_are_counted_per_reason_and_not_kept() {
    let good = person(1);
    let mut bad_check = good.expose().to_string().into_bytes();
    bad_check[10] = if bad_check[10] == b'9' {
        b'0'
    } else {
        bad_check[10] + 1
    };
    let bad_check = String::from_utf8(bad_check).expect("ascii");
    let mut b = ReservationBuilder::new(ParseOptions::default(), None);
    assert_eq!(
        b.push_row(2, good.expose()).map_err(|e| e.reason_code()),
        Err("synthetic-not-allowed"),
        "a production node refuses synthetic numbers in its table too"
    );
    assert!(b.push_row(3, "").is_err());
    assert!(b.push_row(4, "12345").is_err());
    assert!(b.push_row(5, "1234567890x").is_err());
    let (table, stats) = b.finish();
    assert!(table.is_empty());
    assert_eq!(stats.rows, 4);
    let reasons: Vec<(&str, u64, Vec<u64>)> = stats
        .invalid
        .iter()
        .map(|s| (s.reason, s.count, s.lines.clone()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("empty", 1, vec![3]),
            ("non-digit", 1, vec![5]),
            ("synthetic-not-allowed", 1, vec![2]),
            ("wrong-length", 1, vec![4]),
        ]
    );
    let mut b = ReservationBuilder::new(TEST, None);
    assert_eq!(
        b.push_row(7, &bad_check).map_err(|e| e.reason_code()),
        Err("bad-check-digit")
    );
}

#[test]
fn a_reservation_under_an_old_number_excludes_the_current_one() {
    let old = Identifier::from_parts(1990, 3, 4, 101, IdKind::SyntheticDNummer)
        .or_else(|_| Identifier::from_parts(1990, 3, 4, 102, IdKind::SyntheticDNummer))
        .expect("a valid synthetic D-nummer");
    let current = person(40);
    let mapping = IdMapping::new([(old, current)]).expect("mapping");
    let mut b = ReservationBuilder::new(TEST, Some(mapping));
    b.push_row(2, old.expose()).expect("valid");
    let (table, stats) = b.finish();
    assert_eq!(stats.mapped_rows, 1);
    assert!(table.contains(&current));
    assert!(!table.contains(&old));
    assert_eq!(table.exclude(list(&[current, person(2)])).count, 1);
}

#[test]
fn every_count_under_five_looks_the_same_and_five_is_shown() {
    let under: Vec<Vec<u8>> = (0..SMALL_CELL)
        .map(|n| postcard::to_allocvec(&ShownCount::of(n)).expect("encode"))
        .collect();
    assert!(under.windows(2).all(|w| w[0] == w[1]), "0..4 encode alike");
    assert_eq!(ShownCount::of(5), ShownCount::Exactly(5));
    assert_eq!(ShownCount::of(5).to_string(), "5");
    assert_eq!(ShownCount::of(4).to_string(), "<5");
    assert!(ShownCount::of(0).is_canonical() && ShownCount::of(9).is_canonical());
    assert!(
        !ShownCount::Exactly(3).is_canonical(),
        "a forged small count"
    );
}

proptest! {
    #[test]
    fn exclusion_partitions_the_list(reserved in proptest::collection::vec(0u16..60, 0..30)) {
        let ids: Vec<Identifier> = (0..60).map(person).collect();
        let mut b = ReservationBuilder::new(TEST, None);
        for (line, i) in reserved.iter().enumerate() {
            b.push_row(line as u64, ids[*i as usize].expose()).expect("valid");
        }
        let (table, _) = b.finish();
        let out = table.exclude(list(&ids));
        let removed = ids.iter().filter(|id| table.contains(id)).count() as u64;
        prop_assert_eq!(out.count, removed);
        prop_assert_eq!(out.kept.len() as u64 + out.count, ids.len() as u64);
        let wanted: BTreeSet<Identifier> = reserved.iter().map(|i| ids[*i as usize]).collect();
        prop_assert!(ids.iter().all(|id| table.contains(id) == wanted.contains(id)));
        prop_assert!(out.kept.iter().all(|p| !table.contains(&p.id)));
        // The node's form of the same rule: the kept persons' numbers, in order.
        let kept: Vec<Identifier> = table.kept(&ids).iter().map(|&p| ids[p as usize]).collect();
        let by_exclude: Vec<Identifier> = out.kept.iter().map(|p| p.id).collect();
        prop_assert_eq!(kept, by_exclude);
    }
}
