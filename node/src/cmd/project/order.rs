//! `kobling project authorize` and `submit`'s files: the order built from
//! a project spec and the researcher's keys, and the access authority's
//! grant file beside the spec.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context};
use kobling_protocol::{
    bounded::{BoundedString, BoundedVec},
    domain::{validate_order_domains, PseudonymousList},
    manifest::{Ed25519Key, Manifest, X25519Key},
    transcript::{Grant, ProjectOrder, RegisterRequest, Sig},
    types::{Name, ProjectId, UnixTime},
};

use super::linker;
use crate::spec::Spec;

/// The researcher's public keys, as `kobling keys researcher` prints them.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResearcherKeys {
    pub(super) signing_key: String,
    pub(super) hpke_key: String,
}

/// An access authority's grant file (`project authorize`).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantFile {
    /// The digest signed (for people; recomputed from the spec).
    pub(super) order: String,
    /// The authority's public key.
    pub(super) authority: String,
    /// The Ed25519 signature.
    pub(super) signature: String,
}

/// `SPEC.grant`.
pub(super) fn grant_path(spec: &Path) -> PathBuf {
    let mut name = spec.as_os_str().to_owned();
    name.push(".grant");
    PathBuf::from(name)
}

pub(super) fn read_grant(path: &Path) -> anyhow::Result<Grant> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the access authority's grant {} (`kobling project authorize` writes it)",
            path.display()
        )
    })?;
    let file: GrantFile =
        toml::from_str(&text).with_context(|| format!("{} is not a grant", path.display()))?;
    let signature: [u8; 64] = hex::decode(file.signature.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{}: the signature is not 128 hex digits", path.display()))?;
    Ok(Grant {
        authority: Ed25519Key::from_hex(file.authority.trim()).map_err(anyhow::Error::msg)?,
        signature: Sig(signature),
    })
}

pub(super) fn order_from_spec(
    path: &Path,
    manifest: &Manifest,
    researcher: Ed25519Key,
    hpke: X25519Key,
) -> anyhow::Result<ProjectOrder> {
    let spec = Spec::load(path)?;
    let registers = spec
        .registers
        .iter()
        .map(|r| {
            Ok(RegisterRequest {
                register: Name::new(r.name.as_str())?,
                variables: BoundedVec::new(
                    r.variables
                        .iter()
                        .map(|v| BoundedString::new(v.as_str()))
                        .collect::<Result<Vec<_>, _>>()?,
                )?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    ensure!(!registers.is_empty(), "the spec names no register");
    let pseudonymous = spec
        .registers
        .iter()
        .filter_map(|r| r.domain.as_ref().map(|d| (r, d)))
        .map(|(r, d)| {
            Ok(PseudonymousList {
                register: Name::new(r.name.as_str())?,
                domain: Name::new(d.as_str())?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let order = ProjectOrder {
        project: ProjectId::new(spec.project)?,
        title: BoundedString::new(spec.title)?,
        legal_basis: BoundedString::new(spec.legal_basis)?,
        manifest_digest: manifest.digest(),
        linker: linker(manifest)?,
        registers: BoundedVec::new(registers)?,
        cohort: BoundedString::new(
            kobling_protocol::link::Cohort::parse(&spec.cohort)?.to_string(),
        )?,
        expires: UnixTime(parse_date(&spec.expires)?),
        researcher_signing_key: researcher,
        researcher_hpke_key: hpke,
        test_mode: spec.test_mode,
        grant: None,
        delivery: None,
        pseudonymous: BoundedVec::new(pseudonymous)?,
        identified: match &spec.researcher_list {
            Some(file) => Some(researcher_list(path, file, spec.test_mode)?),
            None => None,
        },
    };
    validate_order_domains(manifest, &order)
        .context("the spec's pseudonymous lists (`domain = ...`)")?;
    Ok(order)
}

/// An identified order's researcher list (`docs/identified.md`): `file`
/// (relative to the spec's directory) read as an extract is, with the same
/// identifier rules; every identifier must be valid. The order carries
/// its person count and SHA3-256, never its identifiers.
pub(super) fn researcher_list(
    spec: &Path,
    file: &str,
    test_mode: bool,
) -> anyhow::Result<kobling_protocol::identified::ResearcherList> {
    let path = spec.parent().unwrap_or(Path::new(".")).join(file);
    let summary = crate::extract_file::check_extract(
        &path,
        kobling_protocol::ident::ParseOptions {
            allow_synthetic: test_mode,
        },
        None,
    )
    .with_context(|| format!("the researcher list {}", path.display()))?;
    let invalid = summary.stats.invalid_rows();
    if invalid > 0 {
        let reasons: Vec<String> = summary
            .stats
            .invalid
            .iter()
            .map(|i| {
                let lines: Vec<String> = i.lines.iter().map(u64::to_string).collect();
                format!("{} {} (lines {})", i.count, i.reason, lines.join(", "))
            })
            .collect();
        anyhow::bail!(
            "the researcher list {} has {invalid} invalid rows: {}; correct them (`kobling extract check` shows them)",
            path.display(),
            reasons.join("; ")
        );
    }
    ensure!(
        summary.stats.persons > 0,
        "the researcher list {} has no person",
        path.display()
    );
    Ok(kobling_protocol::identified::ResearcherList {
        persons: summary.stats.persons,
        digest: summary.digest,
    })
}

/// `YYYY-MM-DD` (a real calendar day) → seconds since the Unix epoch (end
/// of that day, UTC).
pub(super) fn parse_date(s: &str) -> anyhow::Result<u64> {
    let days =
        crate::output::days_from_date(s.trim()).context("expires must be a date, YYYY-MM-DD")?;
    ensure!(days > 0, "expires must be after 1970");
    Ok(u64::from(days.unsigned_abs()) * 86_400 + 86_399)
}

#[cfg(test)]
mod tests {
    use super::{parse_date, researcher_list};

    #[test]
    fn a_researcher_list_is_counted_and_hashed_and_must_be_valid() {
        use kobling_protocol::ident::{IdKind, Identifier};
        let dir = tempfile::tempdir().expect("tempdir");
        let ids: Vec<Identifier> = (0..40u16)
            .filter_map(|i| Identifier::from_parts(1980, 1, 1, i, IdKind::Synthetic).ok())
            .take(3)
            .collect();
        let text = format!(
            "fnr,arm\n{},A\n{},B\n{},A\n{},B\n",
            ids[0].expose(),
            ids[1].expose(),
            ids[2].expose(),
            ids[0].expose()
        );
        std::fs::write(dir.path().join("list.csv"), &text).expect("write");
        let spec = dir.path().join("project.toml");
        let list = researcher_list(&spec, "list.csv", true).expect("a valid list");
        assert_eq!(list.persons, 3, "persons, not rows");
        assert_eq!(
            list.digest.0,
            kobling_protocol::hash::sha3_256(text.as_bytes())
        );
        // Synthetic numbers outside test mode, or a malformed row: refused,
        // by reason and line, without the identifier.
        let e = researcher_list(&spec, "list.csv", false).expect_err("synthetic");
        assert!(!format!("{e:#}").contains(ids[0].expose()), "{e:#}");
        std::fs::write(dir.path().join("bad.csv"), format!("{text}12345,A\n")).expect("write");
        let e = format!(
            "{:#}",
            researcher_list(&spec, "bad.csv", true).expect_err("bad row")
        );
        assert!(e.contains("1 invalid rows") && e.contains("lines 6"), "{e}");
    }

    #[test]
    fn dates_parse_to_the_end_of_the_day_utc() {
        assert_eq!(parse_date("1970-01-02").expect("date"), 86_400 + 86_399);
        assert_eq!(
            parse_date("2000-03-01").expect("date"),
            951_868_800 + 86_399
        );
        assert!(parse_date("2024-13-01").is_err());
        assert!(parse_date("soon").is_err());
        // Only real calendar days (one reader of dates with `output`).
        assert!(parse_date("2031-02-30").is_err());
        assert!(parse_date("1970-01-01").is_err(), "not after 1970");
    }
}
