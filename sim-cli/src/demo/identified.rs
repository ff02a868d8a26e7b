//! `kobling-sim demo --identified`: the citizen's rights of issue 16
//! (PROTOCOL.md §10a) on synthetic data, each outcome checked against the
//! generator's ground truth.
//!
//! ```text
//!  KPR's reservation table ─▶ kobling node run --reservations (KPR)
//!  the researcher's own list (fnr + arm) ─▶ spec: identified = true
//!  the project (NPR, KPR, SSB; RESEPT's pseudonymous list cannot be in an
//!      identified project) ─▶ fetch: "KPR: N left out by reservation",
//!      the reserved persons absent from KPR's table, present in NPR's
//!  a portal and a disclosure log DLOG (held by SSB) in the manifest
//!  innsyn at KPR (fnr register) ─▶ the device opens exactly the rows of
//!      KPR's extract for the citizen
//!  innsyn at RESEPT (pseudonymous holder, one-person list through the
//!      domain's key holders) ─▶ exactly the citizen's dispensations
//!  project close ─▶ the delivered persons' pseudonyms converted into
//!      DLOG (padded), then every node shreds the project's shares
//!  innsyn at DLOG ─▶ a delivered person finds the project, another not
//! ```

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{ensure, Context};
use kobling_protocol::{
    domain::{DomainKind, DomainSpec},
    manifest::{Ed25519Key, Manifest, Portal},
    types::{Name, ProjectId},
};
use kobling_sim::{population::Population, truth};

use super::{
    process::{ok, p},
    HOLDER,
};

/// The researcher's own table in the delivery (its list's name).
const OWN_TABLE: &str = "RESEARCHER";

/// The fnr register that keeps a reservation table and serves innsyn.
const RESERVING: &str = "KPR";

/// The citizens' portal (Helsenorge in the world).
const PORTAL: &str = "HELSENORGE";

/// The disclosure log of identified projects (PROTOCOL.md §10a), and the
/// member designated to hold it (not the linker).
const LOG: &str = "DLOG";
const LOG_HOLDER: &str = "SSB";

/// Every this many persons of NPR ∩ KPR reserved against disclosure with
/// fnr (at least [`MIN_RESERVED`]).
const RESERVED_EVERY: usize = 40;

/// Reserved persons at least: enough that KPR's count is shown as a
/// number, not `<5`.
const MIN_RESERVED: usize = 6;

/// The identified part of a demo run: the files it wrote, and who
/// reserved.
pub(super) struct Identified {
    /// The demo's output directory.
    out: PathBuf,
    /// The persons (population indices) in KPR's reservation table.
    reserved: BTreeSet<usize>,
    /// KPR's reservation table.
    table: PathBuf,
    /// The researcher's own list: fnr and the researcher's column `arm`.
    pub(super) list: PathBuf,
    /// The portal's signing key.
    portal_key: PathBuf,
}

impl Identified {
    /// Writes KPR's reservation table and the researcher's list (every
    /// NPR person: the cohort must be a subset of it).
    pub(super) fn prepare(out: &Path, pop: &Population) -> anyhow::Result<Self> {
        let npr = pop.members("NPR");
        let both: Vec<usize> = npr.intersection(&pop.members(RESERVING)).copied().collect();
        let mut reserved: BTreeSet<usize> = both.iter().step_by(RESERVED_EVERY).copied().collect();
        reserved.extend(both.iter().take(MIN_RESERVED).copied());
        let table = out
            .join("registers")
            .join(RESERVING)
            .join("reservasjoner.csv");
        let mut text = String::from("fnr,reserved_on\n");
        for person in &reserved {
            text.push_str(&format!(
                "{},2026-03-01\n",
                pop.persons[*person].id.expose()
            ));
        }
        fs::write(&table, text)?;
        let dir = out.join("researcher");
        fs::create_dir_all(&dir)?;
        let list = dir.join("own-list.csv");
        let mut text = String::from("fnr,arm\n");
        for (i, person) in npr.iter().enumerate() {
            let arm = if i % 2 == 0 { "A" } else { "B" };
            text.push_str(&format!("{},{arm}\n", pop.persons[*person].id.expose()));
        }
        fs::write(&list, text)?;
        println!(
            "Identified project: {} persons of NPR and KPR reserved against disclosure with fnr (KPR's table); the researcher's own list holds {} persons",
            reserved.len(),
            npr.len()
        );
        Ok(Self {
            out: out.to_path_buf(),
            reserved,
            table,
            list,
            portal_key: out.join("keys").join("portal.key"),
        })
    }

    /// The extra options of the node processes: KPR applies its
    /// reservation table and serves innsyn from its extract.
    pub(super) fn node_args(
        &self,
        extracts: &BTreeMap<&str, PathBuf>,
    ) -> anyhow::Result<BTreeMap<&'static str, Vec<String>>> {
        let extract = extracts.get(RESERVING).context("no KPR extract")?;
        Ok(BTreeMap::from([(
            RESERVING,
            vec![
                "--reservations".into(),
                p(&self.table)?.into(),
                "--innsyn-extract".into(),
                p(extract)?.into(),
            ],
        )]))
    }

    /// Lists the portal in the manifest (its key made once), before the
    /// nodes start.
    pub(super) fn add_portal(&self, manifest_path: &Path) -> anyhow::Result<()> {
        let mut manifest: Manifest = toml::from_str(&fs::read_to_string(manifest_path)?)?;
        if manifest.portals.iter().any(|q| q.name.as_str() == PORTAL) {
            return Ok(());
        }
        let public = ok(&["keys", "operator", "--out", p(&self.portal_key)?])?;
        manifest.portals.push(Portal {
            name: Name::new(PORTAL).map_err(anyhow::Error::msg)?,
            key: Ed25519Key::from_hex(public.trim()).map_err(anyhow::Error::msg)?,
        });
        let name = |n: &str| Name::new(n).map_err(anyhow::Error::msg);
        manifest.domains.push(DomainSpec {
            name: name(LOG)?,
            holder: name(LOG_HOLDER)?,
            key_holders: Some(vec![name("NPR")?, name(RESERVING)?, name("LINKER")?]),
            kind: DomainKind::DisclosureLog,
        });
        fs::write(manifest_path, toml::to_string_pretty(&manifest)?)?;
        ok(&["manifest", "check", p(manifest_path)?])?;
        println!("Listed the portal {PORTAL} and the disclosure log {LOG} (held by {LOG_HOLDER}) in the manifest");
        Ok(())
    }

    /// The spec's identified part.
    pub(super) fn spec_lines(&self) -> anyhow::Result<String> {
        Ok(format!(
            "identified = true\nresearcher_list = \"{}\"\n",
            p(&self.list)?
        ))
    }

    /// The ground truth of an identified project: the population without
    /// KPR's rows of the reserved persons (they never leave KPR).
    pub(super) fn truth(&self, pop: &Population) -> Population {
        let mut pop = pop.clone();
        if let Some(e) = pop.extracts.iter_mut().find(|e| e.name == RESERVING) {
            for owner in &mut e.owners {
                if owner.is_some_and(|o| self.reserved.contains(&o)) {
                    *owner = None;
                }
            }
        }
        pop
    }

    /// The researcher's report states the project is identified and KPR's
    /// exclusion count, which matches the reservation table's persons in
    /// KPR's extract.
    pub(super) fn check_report(&self, pop: &Population, report: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !report.contains("identified project") {
            problems.push("the report does not say the project is identified".into());
        }
        let in_kpr = pop.members(RESERVING);
        let n = self.reserved.iter().filter(|r| in_kpr.contains(r)).count();
        let shown = if n < 5 {
            "<5".to_string()
        } else {
            n.to_string()
        };
        let line = format!("{RESERVING}: {shown} left out by reservation");
        if report.contains(&line) {
            println!("  the report says \"{line}\": MATCH");
        } else {
            problems.push(format!("the report lacks \"{line}\""));
        }
        problems
    }

    /// The researcher's own table `RESEARCHER` (its list went through the
    /// chain, docs/identified.md): exactly the cohort's persons (every
    /// NPR person is in the list), each with its own column `arm`, under
    /// the lnr the ground truth gives, the lnr of the registers' rows.
    pub(super) fn check_own_table(
        &self,
        pop: &Population,
        project: &str,
        registers: &[&str],
        cohort: &BTreeSet<usize>,
        tables: &Path,
    ) -> anyhow::Result<Vec<String>> {
        let keystores: Vec<PathBuf> = registers
            .iter()
            .chain(std::iter::once(&"LINKER"))
            .map(|m| self.out.join("nodes").join(m).join("keys"))
            .collect();
        let lnr_of = truth::lnr_from_keystores(&keystores, &ProjectId::new(project)?, pop)?;
        let got = truth::read_tables(tables, &[OWN_TABLE])
            .map_err(|e| anyhow::anyhow!("cannot read the researcher's own table: {e}"))?;
        let mut got: Vec<_> = got.into_values().flatten().collect();
        let npr = pop.members("NPR");
        let mut want: Vec<_> = npr
            .iter()
            .enumerate()
            .filter(|(_, p)| cohort.contains(p))
            .map(|(i, p)| {
                let arm = if i % 2 == 0 { "A" } else { "B" };
                (lnr_of[*p], vec![arm.to_string()])
            })
            .collect();
        got.sort();
        want.sort();
        if got == want {
            println!(
                "  the researcher's own table: {} persons, each under its registers' lnr: MATCH",
                got.len()
            );
            Ok(Vec::new())
        } else {
            Ok(vec![format!(
                "the researcher's own table has {} rows, the ground truth {} (or other lnr or values)",
                got.len(),
                want.len()
            )])
        }
    }

    /// Innsyn for one citizen at an fnr register (KPR) and at the
    /// pseudonymous holder (RESEPT): two operators admit the portal, the
    /// device makes its one-time key, the portal asks, the device opens;
    /// the rows opened must be exactly the citizen's rows in the ground
    /// truth, and the portal's output must show none of them.
    pub(super) fn innsyn(&self, m: &str, pop: &Population) -> anyhow::Result<Vec<String>> {
        let kpr = pop.rows_by_person(RESERVING);
        let resept = pop.rows_by_person(HOLDER);
        // A citizen with rows in both: one innsyn at each.
        let person = kpr
            .keys()
            .find(|p| resept.contains_key(p))
            .copied()
            .context("no person in both KPR and RESEPT")?;
        let fnr_file = self.out.join("researcher").join("citizen.fnr");
        fs::write(&fnr_file, pop.persons[person].id.expose())?;
        let mut problems = Vec::new();
        for (register, want) in [(RESERVING, &kpr[&person]), (HOLDER, &resept[&person])] {
            println!("Innsyn at {register} for one citizen (portal {PORTAL}, a one-time key on the device)…");
            let (opened, portal_said) = self.ask(m, register, register, &fnr_file)?;
            // RESEPT's table starts with the delivery's id; KPR's rows are
            // the extract's variables.
            let skip = usize::from(register == HOLDER);
            let mut got: Vec<Vec<String>> = opened
                .lines()
                .skip(1)
                .map(|l| {
                    l.split(',')
                        .skip(skip)
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .collect();
            let mut want: Vec<Vec<String>> = want
                .iter()
                .map(|r| r.iter().filter(|v| !v.is_empty()).cloned().collect())
                .collect();
            got.sort();
            want.sort();
            let leaked = want
                .iter()
                .flatten()
                .any(|v| v.len() > 3 && portal_said.contains(v.as_str()));
            if got == want && !leaked {
                println!("  the device opened the citizen's {} rows at {register}: MATCH; the portal saw none of them", got.len());
            } else {
                problems.push(format!(
                    "innsyn at {register}: {} rows opened, {} in the ground truth{}",
                    got.len(),
                    want.len(),
                    if leaked {
                        "; the portal's output shows a row"
                    } else {
                        ""
                    }
                ));
            }
        }
        Ok(problems)
    }

    /// Two operators of `admitting` admit the portal (again on a reused
    /// federation: "already admitted" is fine); the device makes its
    /// one-time key for `register`; the portal asks for the person in
    /// `fnr_file`; the device opens the reply. What the device opened, and
    /// what the portal printed.
    fn ask(
        &self,
        m: &str,
        register: &str,
        admitting: &str,
        fnr_file: &Path,
    ) -> anyhow::Result<(String, String)> {
        for k in 1..=2 {
            let key = self
                .out
                .join("keys")
                .join(format!("{admitting}-operator-{k}.key"));
            let admitted = super::process::run(&[
                "innsyn",
                "admit",
                "--manifest",
                m,
                "--key",
                p(&key)?,
                "--register",
                admitting,
                "--portal",
                PORTAL,
            ])?;
            let said = String::from_utf8_lossy(&admitted.stderr);
            ensure!(
                admitted.status.success() || said.contains("already admitted"),
                "admitting the portal at {admitting}: {said}"
            );
        }
        let dir = self.out.join("researcher");
        let secret = dir.join(format!("device-{register}.secret"));
        let reply = dir.join(format!("innsyn-{register}.reply"));
        let _ = fs::remove_file(&secret);
        let _ = fs::remove_file(&reply);
        let request = ok(&[
            "innsyn",
            "device-key",
            "--register",
            register,
            "--session",
            &"5e".repeat(32),
            "--out",
            p(&secret)?,
        ])?;
        let portal_said = ok(&[
            "innsyn",
            "request",
            "--manifest",
            m,
            "--portal-key",
            p(&self.portal_key)?,
            "--fnr-file",
            p(fnr_file)?,
            "--device-request",
            request.trim(),
            "--out",
            p(&reply)?,
        ])?;
        let opened = ok(&[
            "innsyn",
            "open",
            "--secret",
            p(&secret)?,
            "--reply",
            p(&reply)?,
        ])?;
        Ok((opened, portal_said))
    }

    /// After the shredding, the disclosure log answers a citizen's innsyn:
    /// a person the project delivered (in the cohort) finds the project
    /// and its date; a person it did not deliver does not find it.
    pub(super) fn disclosure_log(
        &self,
        m: &str,
        pop: &Population,
        project: &str,
        cohort: &BTreeSet<usize>,
    ) -> anyhow::Result<Vec<String>> {
        let delivered = cohort
            .iter()
            .rev()
            .copied()
            .find(|p| pop.persons[*p].id.expose().len() == 11)
            .context("no cohort person")?;
        let not_delivered = (0..pop.persons.len())
            .find(|p| !cohort.contains(p))
            .context("every person is in the cohort")?;
        let mut problems = Vec::new();
        for (person, was) in [(delivered, true), (not_delivered, false)] {
            println!(
                "Innsyn at the disclosure log {LOG} (held by {LOG_HOLDER}) for a person the project {} …",
                if was { "delivered" } else { "did not deliver" }
            );
            let fnr_file = self.out.join("researcher").join("log-citizen.fnr");
            fs::write(&fnr_file, pop.persons[person].id.expose())?;
            let (opened, _) = self.ask(m, LOG, LOG_HOLDER, &fnr_file)?;
            let found = opened
                .lines()
                .skip(1)
                .any(|l| l.split(',').next() == Some(project));
            if found == was {
                println!(
                    "  the log {} {project}: MATCH",
                    if was { "lists" } else { "does not list" }
                );
            } else {
                problems.push(format!(
                    "the disclosure log {} {project} for a person it {} delivered:\n{opened}",
                    if found { "lists" } else { "does not list" },
                    if was { "was" } else { "was not" }
                ));
            }
        }
        Ok(problems)
    }

    /// After the close, no node keeps a key share of the project: each
    /// keystore is asked until it has none (the close reaches the nodes
    /// through the linker), at most a minute.
    pub(super) fn check_shredded(
        &self,
        out: &Path,
        project: &str,
        registers: &[&str],
    ) -> anyhow::Result<Vec<String>> {
        let id = ProjectId::new(project)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut left: Vec<&str> = registers.iter().copied().chain(["LINKER"]).collect();
        while !left.is_empty() && Instant::now() < deadline {
            left.retain(|m| {
                truth::project_shares(&[out.join("nodes").join(m).join("keys")], &id).is_ok()
            });
            std::thread::sleep(Duration::from_millis(250));
        }
        if left.is_empty() {
            println!("  every node shredded its key share of {project}: MATCH");
            Ok(Vec::new())
        } else {
            Ok(vec![format!(
                "a key share of {project} still at {} a minute after the close",
                left.join(", ")
            )])
        }
    }
}
