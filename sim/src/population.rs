//! A seeded synthetic population and the four register extracts of the
//! demo (same seed, same data).
//!
//! The population has Norwegian-shaped identifiers (fødselsnummer and some
//! D-numbers, valid check digits, individual numbers consistent with the
//! century and with sex), an age and sex distribution, and a home
//! municipality. Four registers are extracted from it the way a register
//! operator would for an approved project:
//!
//! | register | who | rows per person |
//! |---|---|---|
//! | `NPR` | the project cohort only (ICD-10 F20–F29, 2018–2023) | 1–8 episodes |
//! | `KPR` | users of municipal care services | 1–6 |
//! | `SSB` | the whole population, less a few emigrated | 1 |
//! | `RESEPT` | users of prescription drugs | 1–24 dispensations |
//!
//! A small share of rows is messy, as in a real extract: an identifier with
//! surrounding spaces (valid once trimmed), one with a wrong check digit,
//! and an empty one. The ground truth records who is where.

use std::collections::{BTreeMap, BTreeSet};

use kobling_protocol::ident::{IdKind, Identifier};
use rand_chacha::{
    rand_core::{Rng, SeedableRng},
    ChaCha20Rng,
};

/// Generator settings.
#[derive(Debug, Clone)]
pub struct PopulationConfig {
    /// Persons.
    pub persons: usize,
    /// The seed.
    pub seed: u64,
    /// Share of the population in the NPR cohort.
    pub cohort_share: f64,
    /// Share of messy rows per register.
    pub messy_share: f64,
}

impl Default for PopulationConfig {
    fn default() -> Self {
        Self {
            persons: 20_000,
            seed: 1,
            cohort_share: 0.02,
            messy_share: 0.004,
        }
    }
}

/// One synthetic person.
#[derive(Debug, Clone)]
pub struct SynthPerson {
    /// The canonical identifier.
    pub id: Identifier,
    /// Birth year.
    pub birth_year: u16,
    /// `"M"` or `"K"` (kvinne).
    pub sex: &'static str,
    /// Home municipality number.
    pub municipality: &'static str,
    /// Whether the person is in the NPR cohort.
    pub in_cohort: bool,
}

/// One register's extract.
#[derive(Debug, Clone)]
pub struct Extract {
    /// Register name.
    pub name: &'static str,
    /// Column names, identifier column `fnr` first.
    pub columns: Vec<&'static str>,
    /// Rows: the raw identifier field, then the variables.
    pub rows: Vec<(String, Vec<String>)>,
    /// For every row: the person it belongs to, or `None` for an invalid
    /// identifier.
    pub owners: Vec<Option<usize>>,
}

/// The population, its extracts and the ground truth.
#[derive(Debug, Clone)]
pub struct Population {
    /// The persons.
    pub persons: Vec<SynthPerson>,
    /// The extracts: NPR, KPR, SSB, RESEPT.
    pub extracts: Vec<Extract>,
}

impl Population {
    /// The extract of register `name`.
    pub fn extract(&self, name: &str) -> Option<&Extract> {
        self.extracts.iter().find(|e| e.name == name)
    }

    /// Persons (indices) with at least one valid row in register `name`.
    pub fn members(&self, name: &str) -> BTreeSet<usize> {
        self.extract(name)
            .map(|e| e.owners.iter().flatten().copied().collect())
            .unwrap_or_default()
    }

    /// Register `name`'s extract cut by the year of its `column` (a date,
    /// `YYYY-MM-DD`), as a source that delivers it once a year would send
    /// it: the same rows, each in the extract of its year, in order. Rows
    /// whose date has no year are left out. Empty if there is no such
    /// extract or column.
    pub fn by_year(&self, name: &str, column: &str) -> BTreeMap<u16, Extract> {
        let mut out: BTreeMap<u16, Extract> = BTreeMap::new();
        let Some(e) = self.extract(name) else {
            return out;
        };
        // `columns` starts with the identifier; row values follow it.
        let Some(at) = e.columns.iter().skip(1).position(|c| *c == column) else {
            return out;
        };
        for (row, owner) in e.rows.iter().zip(&e.owners) {
            let year = row.1.get(at).and_then(|d| d.get(..4)?.parse::<u16>().ok());
            let Some(year) = year else { continue };
            let part = out.entry(year).or_insert_with(|| Extract {
                name: e.name,
                columns: e.columns.clone(),
                rows: Vec::new(),
                owners: Vec::new(),
            });
            part.rows.push(row.clone());
            part.owners.push(*owner);
        }
        out
    }

    /// Per person, the valid rows (variables) in register `name`, in
    /// extract order.
    pub fn rows_by_person(&self, name: &str) -> BTreeMap<usize, Vec<Vec<String>>> {
        let mut out: BTreeMap<usize, Vec<Vec<String>>> = BTreeMap::new();
        if let Some(e) = self.extract(name) {
            for (row, owner) in e.rows.iter().zip(&e.owners) {
                if let Some(p) = owner {
                    out.entry(*p).or_default().push(row.1.clone());
                }
            }
        }
        out
    }
}

const MUNICIPALITIES: &[(&str, u32)] = &[
    ("0301", 700),
    ("4601", 290),
    ("5001", 210),
    ("1103", 145),
    ("3301", 105),
    ("1108", 90),
    ("4204", 115),
    ("3907", 65),
    ("3205", 95),
    ("1804", 55),
    ("5501", 78),
    ("3403", 28),
    ("1506", 66),
    ("3103", 50),
    ("4003", 55),
    ("1507", 30),
    ("5401", 42),
    ("3407", 30),
];
const HF: &[&str] = &[
    "Helse Bergen HF",
    "Oslo universitetssykehus HF",
    "St. Olavs hospital HF",
    "Helse Stavanger HF",
    "Vestre Viken HF",
    "Sykehuset Innlandet HF",
    "Universitetssykehuset Nord-Norge HF",
    "Akershus universitetssykehus HF",
];
const F2X: &[&str] = &[
    "F20.0", "F20.1", "F20.3", "F20.5", "F20.9", "F21", "F22.0", "F23.1", "F25.0", "F25.1",
    "F25.9", "F28", "F29",
];
const SERVICES: &[&str] = &[
    "hjemmesykepleie",
    "praktisk bistand",
    "omsorgsbolig",
    "dagaktivitetstilbud",
    "psykisk helsearbeid",
    "rus- og psykiatritjeneste",
    "korttidsopphold",
];
const ANTIPSYCHOTICS: &[&str] = &[
    "N05AH03", "N05AX08", "N05AH04", "N05AX12", "N05AF05", "N05AB03", "N05AE05",
];
const OTHER_ATC: &[&str] = &[
    "C10AA05", "N06AB06", "A10BA02", "R03AC02", "N02BE01", "C09AA05", "N05BA01", "N06AX11",
    "A02BC01", "H03AA01", "J01CE02", "M01AE01",
];

/// Generates the population and extracts.
pub fn generate(config: &PopulationConfig) -> Population {
    let mut rng = ChaCha20Rng::seed_from_u64(config.seed);
    let mut persons = Vec::with_capacity(config.persons);
    let mut used = BTreeSet::new();
    while persons.len() < config.persons {
        let p = person(&mut rng, config.cohort_share);
        if used.insert(p.id) {
            persons.push(p);
        }
    }

    let mut extracts = vec![
        Extract {
            name: "NPR",
            columns: vec![
                "fnr",
                "birth_year",
                "sex",
                "episode_start",
                "episode_end",
                "icd10_main",
                "hf",
            ],
            rows: vec![],
            owners: vec![],
        },
        Extract {
            name: "KPR",
            columns: vec!["fnr", "service", "start", "end", "municipality"],
            rows: vec![],
            owners: vec![],
        },
        Extract {
            name: "SSB",
            columns: vec![
                "fnr",
                "birth_year",
                "sex",
                "education_level",
                "income_decile",
                "municipality",
            ],
            rows: vec![],
            owners: vec![],
        },
        Extract {
            name: "RESEPT",
            columns: vec!["fnr", "dispensed", "atc", "ddd"],
            rows: vec![],
            owners: vec![],
        },
    ];
    for (i, p) in persons.iter().enumerate() {
        if p.in_cohort {
            for _ in 0..rng.random_range(1..=8u32) {
                let (start, end) = episode(&mut rng, 2018, 2023, 1, 60);
                let values = vec![
                    p.birth_year.to_string(),
                    p.sex.into(),
                    start,
                    end,
                    pick(&mut rng, F2X).into(),
                    pick(&mut rng, HF).into(),
                ];
                extracts[0].rows.push((p.id.expose().to_string(), values));
                extracts[0].owners.push(Some(i));
            }
        }
        let kpr_user = if p.in_cohort {
            chance(&mut rng, 0.45)
        } else {
            chance(&mut rng, 0.12)
        };
        if kpr_user {
            for _ in 0..rng.random_range(1..=6u32) {
                let (start, end) = episode(&mut rng, 2016, 2024, 14, 700);
                let values = vec![
                    pick(&mut rng, SERVICES).into(),
                    start,
                    end,
                    p.municipality.into(),
                ];
                extracts[1].rows.push((p.id.expose().to_string(), values));
                extracts[1].owners.push(Some(i));
            }
        }
        if !chance(&mut rng, 0.015) {
            let age = 2024 - i32::from(p.birth_year);
            let education = if age < 16 {
                0
            } else {
                1 + rng.random_range(0..8u32)
            };
            let values = vec![
                p.birth_year.to_string(),
                p.sex.into(),
                education.to_string(),
                (1 + rng.random_range(0..10u32)).to_string(),
                p.municipality.into(),
            ];
            extracts[2].rows.push((p.id.expose().to_string(), values));
            extracts[2].owners.push(Some(i));
        }
        let resept_user = if p.in_cohort {
            chance(&mut rng, 0.85)
        } else {
            chance(&mut rng, 0.55)
        };
        if resept_user {
            for _ in 0..rng.random_range(1..=24u32) {
                let atc = if p.in_cohort && chance(&mut rng, 0.6) {
                    pick(&mut rng, ANTIPSYCHOTICS)
                } else {
                    pick(&mut rng, OTHER_ATC)
                };
                let (day, _) = episode(&mut rng, 2018, 2023, 0, 0);
                let ddd = format!("{:.1}", 10.0 + rng.random_range(0..1800u32) as f64 / 10.0);
                extracts[3]
                    .rows
                    .push((p.id.expose().to_string(), vec![day, atc.into(), ddd]));
                extracts[3].owners.push(Some(i));
            }
        }
    }
    for e in &mut extracts {
        mess_up(e, &mut rng, config.messy_share);
    }
    Population { persons, extracts }
}

fn person(rng: &mut ChaCha20Rng, cohort_share: f64) -> SynthPerson {
    loop {
        // Age 0–99, thinning out after 70.
        let age = loop {
            let a = rng.random_range(0..100u32);
            if a < 70 || chance(rng, 1.0 - f64::from(a - 70) / 32.0) {
                break a;
            }
        };
        let year = (2024 - age) as u16;
        let month = rng.random_range(1..=12u32) as u8;
        let day = rng.random_range(1..=days_in_month(year, month) as u32) as u8;
        let male = chance(rng, 0.5);
        // Individual numbers by century (Folkeregisteret's ranges).
        let range = if year >= 2000 {
            500..1000u32
        } else {
            0..500u32
        };
        // Odd individual number = male (the ranges start and end even, so
        // setting the parity bit stays in range).
        let individual = (rng.random_range(range) as u16 & !1) | u16::from(male);
        let kind = if chance(rng, 0.03) {
            IdKind::DNummer
        } else {
            IdKind::Fnr
        };
        let Ok(id) = Identifier::from_parts(year, month, day, individual, kind) else {
            continue; // a check digit of 10: this individual number is not issued
        };
        let municipality = weighted(rng, MUNICIPALITIES);
        let cohort_age = (15..=80).contains(&age);
        return SynthPerson {
            id,
            birth_year: year,
            sex: if male { "M" } else { "K" },
            municipality,
            in_cohort: cohort_age && chance(rng, cohort_share * 1.25),
        };
    }
}

fn mess_up(e: &mut Extract, rng: &mut ChaCha20Rng, share: f64) {
    let n = e.rows.len();
    for i in 0..n {
        if !chance(rng, share) {
            continue;
        }
        match rng.random_range(0..3u32) {
            // Surrounding spaces: still valid, still the same person.
            0 => e.rows[i].0 = format!("  {} ", e.rows[i].0),
            // A wrong check digit: invalid, excluded.
            1 => {
                let mut bytes = e.rows[i].0.trim().as_bytes().to_vec();
                bytes[10] = b'0' + (bytes[10] - b'0' + 1) % 10;
                e.rows[i].0 = String::from_utf8(bytes).unwrap_or_default();
                e.owners[i] = None;
            }
            // An empty identifier.
            _ => {
                e.rows[i].0 = String::new();
                e.owners[i] = None;
            }
        }
    }
}

fn episode(
    rng: &mut ChaCha20Rng,
    from: u16,
    to: u16,
    min_days: u32,
    max_days: u32,
) -> (String, String) {
    let year = rng.random_range(u32::from(from)..=u32::from(to)) as u16;
    let month = rng.random_range(1..=12u32) as u8;
    let day = rng.random_range(1..=days_in_month(year, month) as u32) as u8;
    let start = format!("{year:04}-{month:02}-{day:02}");
    let length = if max_days == 0 {
        0
    } else {
        rng.random_range(min_days..=max_days)
    };
    let (mut y, mut m, mut d) = (year, month, u32::from(day) + length);
    while d > u32::from(days_in_month(y, m)) {
        d -= u32::from(days_in_month(y, m));
        m += 1;
        if m > 12 {
            m = 1;
            y += 1;
        }
    }
    (start, format!("{y:04}-{m:02}-{d:02}"))
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Uniform draws from ranges, without modulo bias (rand_core has no
/// ranges, and this crate needs only these).
trait Draw {
    fn random_range<S: Span>(&mut self, span: S) -> S::Out;
}

trait Span {
    type Out;
    /// (low, number of values)
    fn bounds(&self) -> (u64, u64);
    fn out(v: u64) -> Self::Out;
}

impl Span for core::ops::Range<u32> {
    type Out = u32;
    fn bounds(&self) -> (u64, u64) {
        (
            u64::from(self.start),
            u64::from(self.end.saturating_sub(self.start)),
        )
    }
    fn out(v: u64) -> u32 {
        v as u32
    }
}

impl Span for core::ops::RangeInclusive<u32> {
    type Out = u32;
    fn bounds(&self) -> (u64, u64) {
        (
            u64::from(*self.start()),
            u64::from(self.end().saturating_sub(*self.start())) + 1,
        )
    }
    fn out(v: u64) -> u32 {
        v as u32
    }
}

impl Span for core::ops::Range<usize> {
    type Out = usize;
    fn bounds(&self) -> (u64, u64) {
        (
            self.start as u64,
            self.end.saturating_sub(self.start) as u64,
        )
    }
    fn out(v: u64) -> usize {
        v as usize
    }
}

impl Draw for ChaCha20Rng {
    fn random_range<S: Span>(&mut self, span: S) -> S::Out {
        let (low, n) = span.bounds();
        let n = n.max(1);
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64();
            if x < zone {
                return S::out(low + x % n);
            }
        }
    }
}

fn chance(rng: &mut ChaCha20Rng, p: f64) -> bool {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
}

fn pick<'a>(rng: &mut ChaCha20Rng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn weighted(rng: &mut ChaCha20Rng, items: &[(&'static str, u32)]) -> &'static str {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0..total);
    for (item, w) in items {
        if x < *w {
            return item;
        }
        x -= w;
    }
    items[0].0
}

/// Issue 13's comparison job (the one Private-ID was measured on): two
/// registers, `NPR` and `KPR`, of `persons` persons each, one row per
/// person (`fnr,birth_year`), exactly half of them (rounded down) in both
/// lists, in a random order; no messy rows. The persons are drawn like
/// [`generate`]'s (valid fødselsnummer and D-numbers, unique).
pub fn comparison_job(persons: usize, seed: u64) -> Population {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let half = persons / 2;
    let total = persons + (persons - half);
    let mut all = Vec::with_capacity(total);
    let mut used = BTreeSet::new();
    while all.len() < total {
        let p = person(&mut rng, 0.0);
        if used.insert(p.id) {
            all.push(p);
        }
    }
    // The persons are drawn independently, so index ranges make random
    // lists; each list is shuffled so the shared persons are spread.
    let mut extract = |name: &'static str, members: std::ops::Range<usize>| {
        let mut members: Vec<usize> = members.collect();
        for i in (1..members.len()).rev() {
            let j = rng.random_range(0..i + 1);
            members.swap(i, j);
        }
        Extract {
            name,
            columns: vec!["fnr", "birth_year"],
            rows: members
                .iter()
                .map(|&i| {
                    let p: &SynthPerson = &all[i];
                    (p.id.expose().to_string(), vec![p.birth_year.to_string()])
                })
                .collect(),
            owners: members.into_iter().map(Some).collect(),
        }
    };
    // NPR: persons 0..N; KPR: the second half of those and N..N+⌈N/2⌉.
    let extracts = vec![
        extract("NPR", 0..persons),
        extract("KPR", persons - half..total),
    ];
    Population {
        persons: all,
        extracts,
    }
}

/// The extract as CSV text: header, then one line per row.
pub fn render_csv(e: &Extract) -> String {
    let mut s = e.columns.join(",");
    s.push('\n');
    for (id, values) in &e.rows {
        s.push_str(id);
        for v in values {
            s.push(',');
            s.push_str(v);
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use kobling_protocol::ident::ParseOptions;

    #[test]
    fn same_seed_same_population_and_valid_identifiers() {
        let cfg = PopulationConfig {
            persons: 2000,
            ..Default::default()
        };
        let a = generate(&cfg);
        let b = generate(&cfg);
        assert_eq!(a.extracts[3].rows, b.extracts[3].rows);
        let c = generate(&PopulationConfig {
            seed: 2,
            ..cfg.clone()
        });
        assert_ne!(a.extracts[2].rows, c.extracts[2].rows);
        for p in &a.persons {
            let parsed = Identifier::parse(p.id.expose(), ParseOptions::default()).expect("valid");
            assert_eq!(parsed, p.id);
            let male = p.sex == "M";
            assert_eq!(parsed.sex() == kobling_protocol::ident::Sex::Male, male);
        }
    }

    #[test]
    fn the_comparison_job_has_two_lists_of_n_persons_half_of_them_in_both() {
        for n in [0usize, 1, 7, 1000] {
            let job = comparison_job(n, 13);
            let npr = job.extract("NPR").expect("NPR");
            let kpr = job.extract("KPR").expect("KPR");
            assert_eq!((npr.rows.len(), kpr.rows.len()), (n, n));
            assert_eq!(job.members("NPR").len(), n, "one row per person");
            let both = job.members("NPR").intersection(&job.members("KPR")).count();
            assert_eq!(both, n / 2);
            for e in [npr, kpr] {
                assert_eq!(e.columns, ["fnr", "birth_year"]);
                for ((id, values), owner) in e.rows.iter().zip(&e.owners) {
                    let p = &job.persons[owner.expect("no messy rows")];
                    let parsed = Identifier::parse(id, ParseOptions::default()).expect("valid");
                    assert_eq!(parsed, p.id);
                    assert_eq!(values, &[p.birth_year.to_string()]);
                }
            }
        }
        let (a, b) = (comparison_job(500, 1), comparison_job(500, 1));
        assert_eq!(
            a.extracts[1].rows, b.extracts[1].rows,
            "same seed, same job"
        );
        assert_ne!(a.extracts[0].rows, comparison_job(500, 2).extracts[0].rows);
        // The shared persons are spread over the list, not its first half.
        let shared = a.members("KPR");
        let first_half = a.extracts[0].owners[..250]
            .iter()
            .flatten()
            .filter(|p| shared.contains(p))
            .count();
        assert!((75..=175).contains(&first_half), "{first_half} of 250");
    }

    #[test]
    fn a_yearly_cut_partitions_the_extract_by_the_dates_year() {
        let pop = generate(&PopulationConfig {
            persons: 2_000,
            seed: 5,
            ..Default::default()
        });
        let whole = pop.extract("RESEPT").expect("RESEPT");
        let years = pop.by_year("RESEPT", "dispensed");
        assert_eq!(
            years.keys().copied().collect::<Vec<_>>(),
            (2018..=2023).collect::<Vec<u16>>()
        );
        let total: usize = years.values().map(|e| e.rows.len()).sum();
        assert_eq!(total, whole.rows.len());
        for (year, e) in &years {
            assert_eq!(e.columns, whole.columns);
            assert_eq!(e.rows.len(), e.owners.len());
            assert!(e.rows.iter().all(|r| r.1[0].starts_with(&year.to_string())));
        }
        // The same persons' valid rows, year by year, make the whole.
        let mut rebuilt: BTreeMap<usize, Vec<Vec<String>>> = BTreeMap::new();
        for e in years.values() {
            for (r, o) in e.rows.iter().zip(&e.owners) {
                if let Some(p) = o {
                    rebuilt.entry(*p).or_default().push(r.1.clone());
                }
            }
        }
        let mut whole_rows = pop.rows_by_person("RESEPT");
        for v in whole_rows.values_mut().chain(rebuilt.values_mut()) {
            v.sort();
        }
        assert_eq!(rebuilt, whole_rows);
        assert!(pop.by_year("RESEPT", "no-such-column").is_empty());
        assert!(pop.by_year("NOPE", "dispensed").is_empty());
    }

    #[test]
    fn registers_overlap_realistically_and_messy_rows_are_marked() {
        let pop = generate(&PopulationConfig {
            persons: 5000,
            ..Default::default()
        });
        let npr = pop.members("NPR");
        let ssb = pop.members("SSB");
        let resept = pop.members("RESEPT");
        let kpr = pop.members("KPR");
        assert!(npr.len() > 40, "cohort of {}", npr.len());
        let share = |s: &BTreeSet<usize>| npr.intersection(s).count() as f64 / npr.len() as f64;
        assert!(share(&ssb) > 0.9);
        assert!(share(&resept) > 0.6);
        assert!(share(&kpr) > 0.2 && share(&kpr) < 0.8);
        for e in &pop.extracts {
            for ((id, _), owner) in e.rows.iter().zip(&e.owners) {
                let parsed = Identifier::parse(id, ParseOptions::default());
                assert_eq!(parsed.is_ok(), owner.is_some(), "{}", e.name);
            }
        }
        let invalid: usize = pop
            .extracts
            .iter()
            .map(|e| e.owners.iter().filter(|o| o.is_none()).count())
            .sum();
        assert!(invalid > 0);
    }
}
