//! The simulator's god's-eye view: holding every keystore of a local
//! federation it can compute the project key `k_p = Π k_i` — which no real
//! party can — and so the lnr every person must get, and check a delivery
//! against the generator's ground truth.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use kobling_keys::{Keystore, KeystoreError};
use kobling_protocol::{
    chain::multiply_decoded,
    group::WirePoint,
    link::Lnr,
    share::{Domain, Share},
    types::{Name, ProjectId},
};

use crate::population::Population;

/// Delivered tables: per register, (lnr, row values) for every row.
pub type Tables = BTreeMap<Name, Vec<(Lnr, Vec<String>)>>;

/// The lnr of every person of `pop` in `project`, from every key holder's
/// share of the project (in any order: the product commutes).
pub fn lnr_with_shares(
    project: &ProjectId,
    shares: impl IntoIterator<Item = Share>,
    pop: &Population,
) -> Vec<Lnr> {
    final_points_with_shares(shares, pop)
        .iter()
        .map(|point| Lnr::derive(project, point))
        .collect()
}

/// The final pseudonym `P_p(x) = k_p·I(x)` of every person of `pop`, from
/// every key holder's share of the project: what only the linker may see.
pub fn final_points_with_shares(
    shares: impl IntoIterator<Item = Share>,
    pop: &Population,
) -> Vec<WirePoint> {
    let Some(key) = shares.into_iter().reduce(|acc, s| acc.product(&s)) else {
        return Vec::new();
    };
    let identity: Vec<_> = pop
        .persons
        .iter()
        .map(|person| person.id.identity_point())
        .collect();
    multiply_decoded(&key, &identity)
}

/// Every key holder's share of `project`, read from the (unencrypted)
/// keystores in `keystores` (each a node's `keys` directory).
///
/// # Errors
///
/// A keystore that cannot be opened or has no share for the project.
pub fn project_shares<P: AsRef<Path>>(
    keystores: &[P],
    project: &ProjectId,
) -> Result<Vec<Share>, KeystoreError> {
    let domain = Domain::Project(project.clone());
    keystores
        .iter()
        .map(|dir| Keystore::open(dir.as_ref(), None)?.share(&domain))
        .collect()
}

/// [`final_points_with_shares`] with the shares of [`project_shares`].
///
/// # Errors
///
/// As [`project_shares`].
pub fn final_points_from_keystores<P: AsRef<Path>>(
    keystores: &[P],
    project: &ProjectId,
    pop: &Population,
) -> Result<Vec<WirePoint>, KeystoreError> {
    Ok(final_points_with_shares(
        project_shares(keystores, project)?,
        pop,
    ))
}

/// [`lnr_with_shares`] with the shares of [`project_shares`].
///
/// # Errors
///
/// As [`project_shares`].
pub fn lnr_from_keystores<P: AsRef<Path>>(
    keystores: &[P],
    project: &ProjectId,
    pop: &Population,
) -> Result<Vec<Lnr>, KeystoreError> {
    Ok(lnr_with_shares(
        project,
        project_shares(keystores, project)?,
        pop,
    ))
}

/// Compares delivered tables (register → (lnr, row)) with the ground truth
/// for a cohort of the persons in `cohort_register`: exactly the cohort's
/// valid rows of every register, under each person's lnr. Returns the
/// discrepancies (empty when the delivery is exact).
pub fn compare(
    pop: &Population,
    lnr_of: &[Lnr],
    cohort_register: &str,
    tables: &BTreeMap<Name, Vec<(Lnr, Vec<String>)>>,
) -> Vec<String> {
    compare_cohort(pop, lnr_of, &pop.members(cohort_register), tables)
}

/// [`compare`] for any cohort, given as the persons in it.
pub fn compare_cohort(
    pop: &Population,
    lnr_of: &[Lnr],
    cohort: &BTreeSet<usize>,
    tables: &BTreeMap<Name, Vec<(Lnr, Vec<String>)>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (register, rows) in tables {
        let mut want: BTreeMap<Lnr, Vec<Vec<String>>> = BTreeMap::new();
        for (person, rows) in pop.rows_by_person(register.as_str()) {
            if cohort.contains(&person) {
                want.insert(lnr_of[person], rows);
            }
        }
        let mut got: BTreeMap<Lnr, Vec<Vec<String>>> = BTreeMap::new();
        for (lnr, row) in rows {
            got.entry(*lnr).or_default().push(row.clone());
        }
        // A person's rows as a multiset: their order is not data (a
        // pseudonymous register's table is its deliveries, year by year,
        // not the order of one extract).
        for rows in want.values_mut().chain(got.values_mut()) {
            rows.sort();
        }
        let missing = want.keys().filter(|k| !got.contains_key(*k)).count();
        let extra = got.keys().filter(|k| !want.contains_key(*k)).count();
        let differing = want
            .iter()
            .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
            .count();
        if missing + extra + differing > 0 {
            problems.push(format!(
                "{register}: {missing} cohort persons missing, {extra} persons not in the cohort, {differing} persons with wrong rows"
            ));
        }
    }
    let delivered: BTreeSet<Lnr> = tables.values().flatten().map(|(l, _)| *l).collect();
    let expected: BTreeSet<Lnr> = cohort.iter().map(|p| lnr_of[*p]).collect();
    if !delivered.is_subset(&expected) {
        problems.push("an lnr outside the cohort was delivered".into());
    }
    problems
}

/// Reads researcher tables `dir/<REGISTER>.csv` (first column `lnr`) for
/// [`compare`].
///
/// # Errors
///
/// A table that cannot be read or has a malformed lnr.
pub fn read_tables(
    dir: &Path,
    registers: &[&str],
) -> Result<Tables, Box<dyn std::error::Error + Send + Sync>> {
    let mut tables = BTreeMap::new();
    for r in registers {
        let mut rows = Vec::new();
        let mut reader = csv::Reader::from_path(dir.join(format!("{r}.csv")))?;
        for rec in reader.records() {
            let rec = rec?;
            let lnr: Lnr = rec.get(0).unwrap_or_default().parse()?;
            rows.push((lnr, rec.iter().skip(1).map(str::to_string).collect()));
        }
        tables.insert(Name::new(*r)?, rows);
    }
    Ok(tables)
}
