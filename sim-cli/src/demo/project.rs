//! The demo's project: its spec from the extracts' headers, the access
//! authority's grant, submission and approvals, the chain's progress, the
//! researcher's fetch and the audit.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::ensure;

use super::{
    nodes::Nodes,
    process::{ok, ok_measured, p, run, Measured},
    HOLDER,
};

/// One project of the demo's federation, run through the `kobling`
/// commands as the researcher and the operators would.
pub(super) struct Project<'a> {
    /// The demo's output directory.
    out: &'a Path,
    /// The manifest's path.
    m: &'a str,
    /// The project id.
    id: &'a str,
    /// The researcher's key.
    researcher: PathBuf,
    /// The project's spec (written by [`Project::write_spec`]).
    spec: PathBuf,
    /// Where the researcher's fetch writes the tables and the transcript.
    pub(super) dir: PathBuf,
}

impl<'a> Project<'a> {
    pub(super) fn new(out: &'a Path, m: &'a str, id: &'a str) -> Self {
        Self {
            out,
            m,
            id,
            researcher: out.join("keys").join("researcher.key"),
            spec: out.join(format!("{id}.spec.toml")),
            dir: out.join("researcher").join(id),
        }
    }

    /// Writes the spec: every extract's columns but the identifier as
    /// variables, typed where the demo knows the column; RESEPT's list
    /// keyed by its register domain with `receipt`.
    pub(super) fn write_spec(
        &self,
        cohort: &str,
        extracts: &BTreeMap<&str, PathBuf>,
        receipt: bool,
    ) -> anyhow::Result<()> {
        let project = self.id;
        let mut spec = format!("project = \"{project}\"\ntitle = \"Synthetic demonstration\"\nlegal_basis = \"REK 2024/000000 (synthetic)\"\ncohort = \"{cohort}\"\nexpires = \"2031-12-31\"\n");
        for (r, f) in extracts {
            let header = fs::read_to_string(f)?
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches('\u{feff}')
                .to_string();
            let columns: Vec<&str> = header
                .split(',')
                .map(str::trim)
                .filter(|c| *c != "fnr" && *c != "pseudonym")
                .collect();
            let vars: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
            let types: Vec<String> = columns
                .iter()
                .filter_map(|c| Some(format!("{c} = \"{}\"", column_type(c)?)))
                .collect();
            // A list keyed by the register's domain (a `pseudonym` column).
            let domain = if receipt && *r == HOLDER {
                format!("domain = \"{HOLDER}\"\n")
            } else {
                String::new()
            };
            spec.push_str(&format!(
                "\n[[registers]]\nname = \"{r}\"\n{domain}variables = [{}]\ntypes = {{ {} }}\n",
                vars.join(", "),
                types.join(", ")
            ));
        }
        fs::write(&self.spec, spec)?;
        Ok(())
    }

    /// Puts `lines` (top-level keys) at the head of the written spec.
    pub(super) fn prepend_to_spec(&self, lines: &str) -> anyhow::Result<()> {
        let spec = fs::read_to_string(&self.spec)?;
        fs::write(&self.spec, format!("{lines}{spec}"))?;
        Ok(())
    }

    /// The access authority grants the project to the researcher.
    pub(super) fn authorize(&self) -> anyhow::Result<()> {
        println!("The access authority grants project {}…", self.id);
        let keys = self.out.join("keys");
        ok(&[
            "project",
            "authorize",
            "--manifest",
            self.m,
            "--key",
            p(&keys.join("authority.key"))?,
            "--spec",
            p(&self.spec)?,
            "--researcher",
            p(&keys.join("researcher.pub"))?,
        ])?;
        Ok(())
    }

    /// The researcher submits the project.
    pub(super) fn submit(&self, nodes: &mut Nodes, cohort: &str) -> anyhow::Result<()> {
        println!("Submitting project {} (cohort {cohort})…", self.id);
        nodes.eventually(
            &[
                "project",
                "submit",
                "--manifest",
                self.m,
                "--key",
                p(&self.researcher)?,
                "--spec",
                p(&self.spec)?,
            ],
            "submitting the project",
            Duration::from_secs(60),
        )?;
        Ok(())
    }

    /// Two operators approve at every register, naming its extract.
    pub(super) fn approve(
        &self,
        nodes: &mut Nodes,
        extracts: &BTreeMap<&str, PathBuf>,
    ) -> anyhow::Result<()> {
        println!("Two operators approve at every register…");
        for (r, f) in extracts {
            for k in 1..=2 {
                let key = self.out.join("keys").join(format!("{r}-operator-{k}.key"));
                nodes.eventually(
                    &[
                        "project",
                        "approve",
                        "--manifest",
                        self.m,
                        "--key",
                        p(&key)?,
                        "--project",
                        self.id,
                        "--extract",
                        p(f)?,
                    ],
                    "an approval",
                    Duration::from_secs(60),
                )?;
            }
        }
        Ok(())
    }

    /// Waits for the chain until the project is linked, showing the hops
    /// done per list.
    pub(super) fn wait_for_chain(&self, nodes: &mut Nodes) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(3600);
        let mut last = String::new();
        loop {
            let status = run(&self.as_researcher("status", &[])?)?;
            let text = String::from_utf8_lossy(&status.stdout).into_owned();
            // One line: hops done per list.
            let progress: Vec<String> = text
                .lines()
                .filter_map(|l| {
                    let list = l.split_whitespace().next()?;
                    let hops = l.split("hops ").nth(1)?.split_whitespace().next()?;
                    Some(format!("{list} {hops}"))
                })
                .collect();
            let line = format!("  hops done: {}", progress.join(" · "));
            if !progress.is_empty() && line != last {
                println!("{line}");
                last = line;
            }
            if text.contains("phase: linked") || text.contains("phase: delivered") {
                return Ok(());
            }
            nodes.ensure_running()?;
            ensure!(
                Instant::now() < deadline,
                "the project did not finish in an hour; see the node logs"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The researcher sends its own list of an identified project
    /// (`kobling project send-list`): it waits until the registers
    /// committed, sends the list, waits for the chain to step it and
    /// signs its check. The kept output goes to `state` (made 0700).
    pub(super) fn send_list(&self, list: &Path, state: &Path) -> anyhow::Result<()> {
        println!("The researcher sends its own list into the chain and signs its check…");
        std::fs::create_dir_all(state)?;
        std::fs::set_permissions(state, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let said = ok(&self.as_researcher(
            "send-list",
            &[
                "--list",
                p(list)?,
                "--state",
                p(state)?,
                "--chunk-size",
                "1024",
                "--wait",
                "1800",
            ],
        )?)?;
        for line in said
            .lines()
            .filter(|l| l.contains("sent") || l.contains("signed"))
        {
            println!("  {line}");
        }
        Ok(())
    }

    /// The researcher fetches, verifies and opens the tables, measured.
    pub(super) fn fetch(&self) -> anyhow::Result<Measured> {
        let (dir, spec) = (p(&self.dir)?, p(&self.spec)?);
        ok_measured(&self.as_researcher("fetch", &["--out", dir, "--spec", spec])?)
    }

    /// The researcher closes the project: every node shreds its key share
    /// and deletes the project's working data.
    pub(super) fn close(&self) -> anyhow::Result<()> {
        println!(
            "Closing project {}: every node shreds its key share…",
            self.id
        );
        ok(&self.as_researcher("close", &[])?)?;
        Ok(())
    }

    /// `kobling audit verify` on the researcher's transcript: whether it
    /// verified, and its verdict line.
    pub(super) fn audit(&self) -> anyhow::Result<(bool, String)> {
        let audit = run(&[
            "audit",
            "verify",
            "--transcript",
            p(&self.dir.join("transcript.kob"))?,
            "--manifest",
            self.m,
        ])?;
        let line = String::from_utf8_lossy(&audit.stdout)
            .lines()
            .rev()
            .find(|l| l.starts_with("transcript"))
            .unwrap_or_default()
            .to_string();
        Ok((audit.status.success(), line))
    }

    /// `project COMMAND --manifest M --key RESEARCHER --project ID`, then
    /// `rest`.
    fn as_researcher<'s>(
        &'s self,
        command: &'s str,
        rest: &[&'s str],
    ) -> anyhow::Result<Vec<&'s str>> {
        let mut args = vec![
            "project",
            command,
            "--manifest",
            self.m,
            "--key",
            p(&self.researcher)?,
            "--project",
            self.id,
        ];
        args.extend_from_slice(rest);
        Ok(args)
    }
}

/// The type the demo's spec declares for a column of the synthetic
/// extracts (none for a column it does not know: text).
fn column_type(column: &str) -> Option<&'static str> {
    Some(match column {
        "birth_year" | "income_decile" => "int",
        "ddd" => "float",
        "episode_start" | "episode_end" | "start" | "end" | "dispensed" => "date",
        "sex" | "icd10_main" | "hf" | "service" | "municipality" | "education_level" | "atc" => {
            "category"
        }
        _ => return None,
    })
}
