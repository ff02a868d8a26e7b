//! The simulator's god's-eye view: with every keystore of a local
//! federation at hand it can compute the project key `k_p = Π k_i` — which
//! no real party can — and so the lnr every cohort person must get, and
//! check a delivery against the generator's ground truth.

use std::collections::{BTreeMap, BTreeSet};

use kobling_protocol::{
    chain::multiply_decoded,
    link::Lnr,
    share::{Domain, Share},
    types::{Name, ProjectId},
};

use crate::{
    inmem::{Federation, RunError, LINKER},
    population::Population,
};

/// The lnr each person of the population gets in `project`.
///
/// # Errors
///
/// [`RunError`] if a keystore cannot derive its share.
pub fn expected_lnr(
    fed: &Federation,
    project: &str,
    registers: &[&str],
    pop: &Population,
) -> Result<Vec<Lnr>, RunError> {
    let p = ProjectId::new(project).map_err(|e| RunError::Setup(e.to_string()))?;
    let domain = Domain::Project(p.clone());
    let mut key: Option<Share> = None;
    for m in registers.iter().chain(std::iter::once(&LINKER)) {
        let name = Name::new(*m).map_err(|e| RunError::Setup(e.to_string()))?;
        let ks = fed
            .keystore(&name)
            .ok_or_else(|| RunError::Setup(format!("no keystore for {m}")))?;
        let s = ks.share(&domain)?;
        key = Some(match key {
            None => s,
            Some(acc) => acc.product(&s),
        });
    }
    let key = key.ok_or_else(|| RunError::Setup("no key holders".into()))?;
    let identity: Vec<_> = pop
        .persons
        .iter()
        .map(|person| person.id.identity_point())
        .collect();
    Ok(multiply_decoded(&key, &identity)
        .iter()
        .map(|point| Lnr::derive(&p, point))
        .collect())
}

/// Compares delivered tables (register → (lnr, row)) with the ground truth
/// for cohort `NPR`: exactly the cohort's valid rows of every register,
/// under each person's lnr. Returns the list of discrepancies (empty when
/// the delivery is exact).
pub fn compare(
    pop: &Population,
    lnr_of: &[Lnr],
    cohort_register: &str,
    tables: &BTreeMap<Name, Vec<(Lnr, Vec<String>)>>,
) -> Vec<String> {
    let cohort = pop.members(cohort_register);
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
        let missing = want.keys().filter(|k| !got.contains_key(*k)).count();
        let extra = got.keys().filter(|k| !want.contains_key(*k)).count();
        let differing = want
            .iter()
            .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
            .count();
        if missing + extra + differing > 0 {
            problems.push(format!("{register}: {missing} cohort persons missing, {extra} persons not in the cohort, {differing} persons with wrong rows"));
        }
    }
    let delivered: BTreeSet<Lnr> = tables.values().flatten().map(|(l, _)| *l).collect();
    let expected: BTreeSet<Lnr> = cohort.iter().map(|p| lnr_of[*p]).collect();
    if !delivered.is_subset(&expected) {
        problems.push("an lnr outside the cohort was delivered".into());
    }
    problems
}
