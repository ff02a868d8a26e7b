//! The researcher's project spec (TOML): what `kobling project submit`
//! signs into the project order, and what `kobling project fetch --spec`
//! reads the variables' types from.
//!
//! The types stay in the researcher's spec, not in the signed order: they
//! tell the researcher's own client how to write the Parquet tables, and
//! no node or auditor acts on them (the registers deliver text, as in
//! their extracts). `kobling project init` writes [`TEMPLATE`].

use std::{collections::BTreeMap, path::Path};

use anyhow::{ensure, Context};
use serde::Deserialize;

use crate::output::ColumnType;

/// The largest spec file read.
const MAX_SPEC_BYTES: u64 = 1 << 20;

/// A project spec, as the researcher writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Spec {
    pub(crate) project: String,
    pub(crate) title: String,
    pub(crate) legal_basis: String,
    pub(crate) cohort: String,
    /// YYYY-MM-DD.
    pub(crate) expires: String,
    #[serde(default)]
    pub(crate) test_mode: bool,
    pub(crate) registers: Vec<SpecRegister>,
    /// An identified project (PROTOCOL.md §10a, `docs/identified.md`):
    /// the researcher brings its own fnr list, `researcher_list`.
    #[serde(default)]
    pub(crate) identified: bool,
    /// The researcher list file (CSV with an `fnr` column), relative to
    /// the spec's directory; required when `identified = true`.
    #[serde(default)]
    pub(crate) researcher_list: Option<String>,
}

/// One register's part of a spec.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SpecRegister {
    pub(crate) name: String,
    pub(crate) variables: Vec<String>,
    /// Variable → type in the Parquet table (default `string`).
    #[serde(default)]
    pub(crate) types: BTreeMap<String, ColumnType>,
    /// The register domain the register's list is keyed by (its extract
    /// has a `pseudonym` column instead of `fnr`; `docs/domains.md`).
    #[serde(default)]
    pub(crate) domain: Option<String>,
}

impl Spec {
    /// Reads and checks a spec file.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Spec> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("cannot read the spec {}", path.display()))?;
        ensure!(
            meta.len() <= MAX_SPEC_BYTES,
            "the spec {} is larger than 1 MiB",
            path.display()
        );
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the spec {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid project spec {}", path.display()))
    }

    /// Parses and checks spec text.
    pub(crate) fn parse(text: &str) -> anyhow::Result<Spec> {
        let spec: Spec = toml::from_str(text)?;
        ensure!(
            spec.identified == spec.researcher_list.is_some(),
            "an identified project (`identified = true`) names its researcher list \
             (`researcher_list = \"FILE\"`), and only an identified one does"
        );
        ensure!(
            !spec.identified || spec.registers.iter().all(|r| r.domain.is_none()),
            "an identified project's lists are fnr lists (a reservation is by fnr): \
             no register may be keyed by a register domain (`domain = ...`)"
        );
        for r in &spec.registers {
            for (variable, kind) in &r.types {
                ensure!(
                    r.variables.contains(variable),
                    "{}: `types` names {variable:?}, which is not among its variables",
                    r.name
                );
                ensure!(
                    *kind != ColumnType::Bool,
                    "{}: {variable:?}: the types are int, float, date, string and category",
                    r.name
                );
            }
        }
        Ok(spec)
    }

    /// The declared type of each register's variables.
    pub(crate) fn types(&self) -> BTreeMap<String, BTreeMap<String, ColumnType>> {
        self.registers
            .iter()
            .map(|r| (r.name.clone(), r.types.clone()))
            .collect()
    }
}

/// What `kobling project init` writes: a commented spec that is valid as
/// it stands (for a federation with NPR and SSB).
pub(crate) const TEMPLATE: &str = r#"# A Kobling project spec. Edit it, then submit it:
#   kobling project submit --manifest federation.toml --key researcher.key --spec project.toml
# and, once linked, fetch the tables with the same spec (for the types below):
#   kobling project fetch --manifest federation.toml --key researcher.key --project ID --spec project.toml --out DIR

# The project's id: the ethics approval's reference, unique in the federation.
project = "REK-2024-12345"
title = "Antipsychotics and outcomes"
# The legal basis, as the registers' operators will check it.
legal_basis = "REK 2024/12345"
# Whose rows are delivered: one register's persons ("NPR"), or
# "NPR & KPR" (in both), "NPR | KPR" (in either), "NPR - KPR" (in NPR,
# not in KPR), or "all".
cohort = "NPR"
# The last day (YYYY-MM-DD, UTC) the project may run.
expires = "2029-12-31"
# test_mode = true   # synthetic identifiers only (a rehearsal)

# One [[registers]] table per register: the variables (extract columns)
# the approval covers, and optionally each variable's type in the Parquet
# tables: int, float, date (YYYY-MM-DD), string (the default) or category.
# A value that does not parse as its type is a null in Parquet (counted in
# report.txt and the codebook); the CSV tables keep every value as text.
[[registers]]
name = "NPR"
variables = ["birth_year", "sex", "episode_start", "episode_end", "icd10_main", "hf"]
types = { birth_year = "int", sex = "category", episode_start = "date", episode_end = "date", icd10_main = "category", hf = "category" }

[[registers]]
name = "SSB"
variables = ["education_level", "income_decile", "municipality"]
types = { education_level = "category", income_decile = "int", municipality = "category" }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_a_valid_spec_and_types_are_checked() {
        let spec = Spec::parse(TEMPLATE).expect("the template parses");
        assert_eq!(spec.registers.len(), 2);
        assert_eq!(
            spec.types()["NPR"]["episode_start"],
            ColumnType::Date,
            "types are read"
        );
        let unknown = TEMPLATE.replace("hf = \"category\"", "hospital = \"category\"");
        assert!(Spec::parse(&unknown).is_err(), "a type of no variable");
        let bad = TEMPLATE.replace("hf = \"category\"", "hf = \"number\"");
        assert!(Spec::parse(&bad).is_err(), "an unknown type");
        let boolean = TEMPLATE.replace("hf = \"category\"", "hf = \"bool\"");
        assert!(Spec::parse(&boolean).is_err(), "bool is not a spec type");
    }

    #[test]
    fn an_identified_spec_names_its_researcher_list() {
        let base = "project = \"P\"\ntitle = \"t\"\nlegal_basis = \"REK\"\ncohort = \"NPR\"\nexpires = \"2030-01-01\"\n";
        let reg = "[[registers]]\nname = \"NPR\"\nvariables = [\"a\"]\n";
        let ok = Spec::parse(&format!(
            "{base}identified = true\nresearcher_list = \"list.csv\"\n{reg}"
        ))
        .expect("identified spec");
        assert!(ok.identified);
        assert!(Spec::parse(&format!("{base}identified = true\n{reg}")).is_err());
        assert!(Spec::parse(&format!("{base}researcher_list = \"list.csv\"\n{reg}")).is_err());
        let pseudo = "[[registers]]\nname = \"RESEPT\"\nvariables = [\"a\"]\ndomain = \"RESEPT\"\n";
        assert!(Spec::parse(&format!(
            "{base}identified = true\nresearcher_list = \"l.csv\"\n{pseudo}"
        ))
        .is_err());
    }

    #[test]
    fn a_register_s_list_may_be_keyed_by_a_register_domain() {
        let text = TEMPLATE.replace("name = \"SSB\"", "name = \"SSB\"\ndomain = \"SSB\"");
        let spec = Spec::parse(&text).expect("parses");
        assert_eq!(spec.registers[1].domain.as_deref(), Some("SSB"));
        assert_eq!(spec.registers[0].domain, None, "fnr by default");
        let typo = TEMPLATE.replace("name = \"SSB\"", "name = \"SSB\"\ndomian = \"SSB\"");
        assert!(Spec::parse(&typo).is_err(), "unknown keys are refused");
    }
}
