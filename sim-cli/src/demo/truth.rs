//! What the researcher received, against the generator's ground truth.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::Context;
use kobling_protocol::{manifest::Manifest, types::ProjectId};
use kobling_sim::{population::Population, truth};

/// Persons per list, as the researcher's verified transcript states them.
pub(super) fn list_persons(
    manifest: &Path,
    transcript: &Path,
) -> anyhow::Result<Vec<(String, u64)>> {
    let manifest: Manifest = toml::from_str(&fs::read_to_string(manifest)?)?;
    let (entries, trailer) = kobling_protocol::transcript::decode_file(&fs::read(transcript)?)
        .context("the researcher's transcript is malformed")?;
    let verified = kobling_protocol::transcript::verify(&entries, Some(&trailer), &manifest)
        .context("the researcher's transcript does not verify")?;
    Ok(verified
        .lists
        .into_iter()
        .map(|l| (l.list.to_string(), l.persons))
        .collect())
}

/// Compares the researcher's tables with the generator's ground truth.
pub(super) fn compare(
    out: &Path,
    project: &str,
    pop: &Population,
    tables: &Path,
    registers: &[&str],
    cohort: &str,
) -> anyhow::Result<Vec<String>> {
    let keystores: Vec<PathBuf> = registers
        .iter()
        .chain(std::iter::once(&"LINKER"))
        .map(|m| out.join("nodes").join(m).join("keys"))
        .collect();
    let lnr_of = truth::lnr_from_keystores(&keystores, &ProjectId::new(project)?, pop)?;
    let delivered = truth::read_tables(tables, registers)
        .map_err(|e| anyhow::anyhow!("cannot read the delivered tables: {e}"))?;
    let cohort: std::collections::BTreeSet<usize> = if cohort == "all" {
        registers.iter().flat_map(|r| pop.members(r)).collect()
    } else {
        pop.members(cohort)
    };
    let mut problems = truth::compare_cohort(pop, &lnr_of, &cohort, &delivered);
    let persons = csv::Reader::from_path(tables.join("persons.csv"))?
        .records()
        .count();
    let cohort = cohort.len();
    if persons != cohort {
        problems.push(format!(
            "{persons} persons delivered, the cohort has {cohort}"
        ));
    }
    Ok(problems)
}
