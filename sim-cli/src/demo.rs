//! `kobling-sim demo`: a whole federation on this machine.
//!
//! ```text
//!  generate population ─▶ DIR/registers/<R>/extract.csv (NPR, KPR, SSB: fnr)
//!                      └─▶ DIR/registers/APOTEK/dispensed-<YEAR>.csv (the pharmacy's years)
//!  kobling keys init ×6, operator keys ×10, researcher key ─▶ DIR/federation.toml
//!      (domain RESEPT: holder RESEPT, key holders NPR, KPR, SSB, LINKER)
//!  kobling node run ×6 (separate processes, QUIC on 127.0.0.1) ─▶ DIR/nodes/<N>/
//!  kobling domain status (until every key holder committed)
//!  per year: kobling delivery order ─▶ approve ×2 at APOTEK, ×2 at RESEPT
//!      ─▶ chain through NPR, KPR, SSB, LINKER ─▶ RESEPT stores rows under Ψ_RESEPT
//!  kobling delivery export ─▶ DIR/registers/RESEPT/extract.csv (pseudonym column, no fnr)
//!  kobling project submit ─▶ approve ×2 per register ─▶ (progress) ─▶ fetch ─▶ audit verify
//!  ground truth check ─▶ summary; nodes shut down (SIGTERM)
//! ```
//!
//! With `--registers SRC` (own extracts) and in `kobling-sim bench`, every
//! register holds fnr and there is no delivery.
//!
//! The `kobling` program is this binary itself (`kobling-sim kobling …`
//! runs exactly `kobling …`), so the demo needs nothing else built. A
//! second run with the same `--out` reuses the federation (nodes, keys) and
//! adds a new project: a different `--project-id` gives disjoint lnr.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, ExitCode, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context};
use kobling_protocol::{
    domain::DomainSpec,
    manifest::{Ed25519Key, Manifest, Member, Operator},
    types::{Name, ProjectId},
};
use kobling_sim::{
    population::{generate, render_csv, Extract, Population, PopulationConfig},
    truth,
};

const REGISTERS: [&str; 4] = ["NPR", "KPR", "SSB", "RESEPT"];

/// The pseudonymous register of the demo: it never holds fnr. Its data
/// reaches it from [`SOURCE`], year by year, pseudonymised at receipt
/// into its register domain (PROTOCOL.md §10).
const HOLDER: &str = "RESEPT";

/// The pharmacy chain that delivers every year's dispensations to
/// [`HOLDER`]. It holds no share of the domain, so it splits its list
/// blinding (§6a, "Owners without a share").
const SOURCE: &str = "APOTEK";

/// The date column by whose year the dispensations are delivered.
const YEAR_COLUMN: &str = "dispensed";

/// Options of `kobling-sim demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Persons in the synthetic population.
    #[arg(long, default_value_t = 20_000)]
    persons: usize,
    /// Seed of the generator (same seed, same data).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory; an earlier demo's federation in it is reused.
    #[arg(long, default_value = "kobling-demo")]
    out: PathBuf,
    /// The project id.
    #[arg(long, default_value = "DEMO-1")]
    project_id: String,
    /// Use your own extracts: SRC/<REGISTER>/extract.csv for any subset of
    /// NPR, KPR, SSB, RESEPT (NPR required). No ground truth then.
    #[arg(long)]
    registers: Option<PathBuf>,
    /// The project's cohort: `NPR` (the default), another register's name,
    /// or `all` (every person in any register: the largest delivery).
    #[arg(long, default_value = "NPR")]
    cohort: String,
    /// Deliver all years' dispensations to RESEPT in one delivery instead
    /// of one per year (a measure of one large delivery's memory).
    #[arg(long)]
    one_delivery: bool,
}

struct Nodes(Vec<(String, Child)>);

impl Nodes {
    /// Each node's peak resident set (VmHWM from /proc), in MiB; 0 where
    /// the OS does not tell.
    fn peak_rss_mb(&self) -> Vec<(String, f64)> {
        self.0
            .iter()
            .map(|(name, c)| (name.clone(), crate::rss::peak_mb(c.id()).unwrap_or(0.0)))
            .collect()
    }

    /// The CPU seconds every node process has used so far, summed; `None`
    /// where the OS does not tell.
    fn cpu_seconds(&self) -> Option<f64> {
        self.0
            .iter()
            .map(|(_, c)| crate::rss::cpu_seconds(c.id()))
            .sum()
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
        for (name, c) in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    _ if Instant::now() > deadline => {
                        eprintln!("node {name} did not stop in time; killing it");
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
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

fn kobling() -> anyhow::Result<Command> {
    let mut c = Command::new(std::env::current_exe().context("cannot find this program")?);
    c.arg("kobling").env(
        "KOBLING_LOG",
        std::env::var("KOBLING_LOG").unwrap_or_else(|_| "warn".into()),
    );
    Ok(c)
}

fn run(args: &[&str]) -> anyhow::Result<Output> {
    Ok(kobling()?.args(args).output()?)
}

fn ok(args: &[&str]) -> anyhow::Result<String> {
    let out = run(args)?;
    if !out.status.success() {
        bail!(
            "kobling {} failed: {}",
            args.first().copied().unwrap_or(""),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command as [`ok`] does, and samples its peak resident memory
/// (`VmHWM`) every 20 ms while it runs: the last sample before it exits,
/// in MiB; and its CPU time, from this process's waited children's
/// (`None` where the OS does not tell).
fn ok_measured(args: &[&str]) -> anyhow::Result<Measured> {
    let cpu_before = crate::rss::children_cpu_seconds();
    use std::io::Read as _;
    let mut child = kobling()?
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut text);
        }
        text
    });
    let mut peak: Option<f64> = None;
    let status = loop {
        if let Some(mb) = crate::rss::peak_mb(child.id()) {
            peak = Some(peak.map_or(mb, |p| p.max(mb)));
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().unwrap_or_default();
    if !status.success() {
        bail!(
            "kobling {} failed: {}",
            args.first().copied().unwrap_or(""),
            stderr.trim()
        );
    }
    let cpu_seconds = crate::rss::children_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    Ok(Measured { peak, cpu_seconds })
}

/// A command's peak memory (VmHWM, MiB) and CPU seconds, where the OS
/// tells.
struct Measured {
    peak: Option<f64>,
    cpu_seconds: Option<f64>,
}

/// Retries until the command succeeds (the nodes are starting or catching up).
fn eventually(args: &[&str], what: &str, limit: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + limit;
    loop {
        let out = run(args)?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        if Instant::now() > deadline {
            bail!(
                "{what} did not succeed in {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn p(path: &Path) -> anyhow::Result<&str> {
    path.to_str().context("paths must be UTF-8")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Creates the federation in `dir` unless one is there.
fn federation(dir: &Path, registers: &[&str], receipt: bool) -> anyhow::Result<PathBuf> {
    let manifest_path = dir.join("federation.toml");
    if manifest_path.exists() {
        let manifest: Manifest = toml::from_str(&fs::read_to_string(&manifest_path)?)
            .with_context(|| format!("cannot read {}", manifest_path.display()))?;
        let has = |n: &str| manifest.members.iter().any(|m| m.name.as_str() == n);
        ensure!(
            registers.iter().all(|r| has(r)) && (!receipt || has(SOURCE)),
            "the federation in {} was made for other registers; remove the directory or choose another --out",
            dir.display()
        );
        println!("Reusing the federation in {}", dir.display());
        return Ok(manifest_path);
    }
    let registers: Vec<&str> = registers
        .iter()
        .copied()
        .chain(receipt.then_some(SOURCE))
        .collect();
    let registers = registers.as_slice();
    println!("Creating keystores for {} registers and a linker, two operators per register, a researcher…", registers.len());
    let nodes = dir.join("nodes");
    let keys = dir.join("keys");
    fs::create_dir_all(&keys)?;
    let mut members = Vec::new();
    for name in registers.iter().chain(std::iter::once(&"LINKER")) {
        let role = if *name == "LINKER" {
            "linker"
        } else {
            "register"
        };
        let address = format!("127.0.0.1:{}", free_port()?);
        let entry = ok(&[
            "keys",
            "init",
            "--dir",
            p(&nodes.join(name))?,
            "--name",
            name,
            "--address",
            &address,
            "--role",
            role,
        ])?;
        let entry = entry
            .trim_start()
            .strip_prefix("[[members]]")
            .context("kobling keys init printed no manifest entry")?;
        let mut member: Member = toml::from_str(entry)?;
        if role == "register" {
            for k in 1..=2 {
                let key = keys.join(format!("{name}-operator-{k}.key"));
                let public = ok(&["keys", "operator", "--out", p(&key)?])?;
                member.operators.push(Operator {
                    name: format!("{name} operator {k}"),
                    key: Ed25519Key::from_hex(public.trim()).map_err(anyhow::Error::msg)?,
                });
            }
        }
        members.push(member);
    }
    let researcher_public = ok(&[
        "keys",
        "researcher",
        "--out",
        p(&keys.join("researcher.key"))?,
    ])?;
    fs::write(keys.join("researcher.pub"), researcher_public)?;
    // The access authority that grants the demo's project.
    let authority = ok(&[
        "keys",
        "authority",
        "--out",
        p(&keys.join("authority.key"))?,
    ])?;
    let manifest = Manifest {
        federation: "kobling-demo".into(),
        portals: Vec::new(),
        members,
        authorities: vec![kobling_protocol::manifest::Authority {
            name: "Helsedataservice (demo)".into(),
            key: Ed25519Key::from_hex(authority.trim()).map_err(anyhow::Error::msg)?,
        }],
        domains: if receipt {
            // Key holders named: NPR, KPR, SSB and the linker, not the
            // pharmacy (a source without a share) nor the holder.
            let key_holders = registers
                .iter()
                .filter(|r| **r != HOLDER && **r != SOURCE)
                .chain(std::iter::once(&"LINKER"))
                .map(|n| Name::new(*n).map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<Vec<_>>>()?;
            vec![DomainSpec {
                name: Name::new(HOLDER).map_err(anyhow::Error::msg)?,
                holder: Name::new(HOLDER).map_err(anyhow::Error::msg)?,
                key_holders: Some(key_holders),
                kind: Default::default(),
            }]
        } else {
            Vec::new()
        },
    };
    fs::write(&manifest_path, toml::to_string_pretty(&manifest)?)?;
    ok(&["manifest", "check", p(&manifest_path)?])?;
    Ok(manifest_path)
}

/// Starts a node process per register and the linker, each register with
/// its extract's directory as its extract directory (the operators'
/// approvals name the file in it).
fn start_nodes(
    dir: &Path,
    manifest: &Path,
    registers: &[&str],
    extracts: &BTreeMap<&str, PathBuf>,
    threads: Option<usize>,
) -> anyhow::Result<Nodes> {
    let mut nodes = Nodes(Vec::new());
    for name in registers.iter().chain(std::iter::once(&"LINKER")) {
        let node_dir = dir.join("nodes").join(name);
        let log = fs::File::create(node_dir.join("node.log"))?;
        let mut command = kobling()?;
        if let Some(t) = threads {
            command.env("RAYON_NUM_THREADS", t.to_string());
        }
        let child = command
            .env(
                "KOBLING_LOG",
                std::env::var("KOBLING_LOG").unwrap_or_else(|_| "info".into()),
            )
            .args([
                "node",
                "run",
                "--dir",
                p(&node_dir)?,
                "--manifest",
                p(manifest)?,
                "--test-mode",
            ])
            .args(
                extracts
                    .get(name)
                    .and_then(|f| f.parent())
                    .map(|d| ["--extracts".as_ref(), d.as_os_str()])
                    .into_iter()
                    .flatten(),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start node {name}"))?;
        nodes.0.push((name.to_string(), child));
    }
    Ok(nodes)
}

/// One run of a whole federation, as the demo and the benchmark do it.
pub(crate) struct Plan<'a> {
    /// Persons in the synthetic population.
    pub(crate) persons: usize,
    /// Generator seed.
    pub(crate) seed: u64,
    /// Output directory (a federation in it is reused).
    pub(crate) out: &'a Path,
    /// The project id.
    pub(crate) project_id: &'a str,
    /// Own extracts instead of synthetic ones.
    pub(crate) registers_src: Option<&'a Path>,
    /// The registers of the federation (NPR first).
    pub(crate) registers: &'a [&'static str],
    /// Rayon threads per node process (default: all cores).
    pub(crate) threads: Option<usize>,
    /// The cohort: a register's name or `all`.
    pub(crate) cohort: &'a str,
    /// The world as it is: RESEPT never holds fnr; a pharmacy source
    /// delivers every year's dispensations into its register domain, and
    /// the project links RESEPT's pseudonymous list with the others (with
    /// synthetic data only; ignored with own extracts).
    pub(crate) receipt: bool,
    /// All years in one delivery instead of one per year.
    pub(crate) one_delivery: bool,
}

/// What a federation run measured.
pub(crate) struct Outcome {
    /// Wall time per phase, in order.
    pub(crate) phases: Vec<(&'static str, Duration)>,
    /// Peak resident memory per node process (VmHWM), in MiB.
    pub(crate) peak_rss_mb: Vec<(String, f64)>,
    /// Persons per list, from the verified transcript.
    pub(crate) list_persons: Vec<(String, u64)>,
    /// CPU seconds of all node processes during the chain phase (from the
    /// last approval until linked).
    pub(crate) chain_cpu_seconds: Option<f64>,
    /// CPU seconds of all node processes from their start until the
    /// researcher's fetch and the audit are done.
    pub(crate) nodes_cpu_seconds: Option<f64>,
    /// Ground-truth problems; `None` without ground truth.
    pub(crate) problems: Option<Vec<String>>,
    /// Peak resident memory of the researcher's `project fetch` (fetch,
    /// verify, open, write), in MiB.
    pub(crate) fetch_peak_rss_mb: Option<f64>,
    /// CPU seconds of the researcher's `project fetch` (fetch, verify,
    /// open, write), all its threads.
    pub(crate) fetch_cpu_seconds: Option<f64>,
}

/// The phase whose time is the chain's: from the last approval until the
/// linker has linked (list preparation, every hop, every proof, linking).
pub(crate) const CHAIN_PHASE: &str = "chain and linking (all hops, proofs checked)";

pub(crate) fn run_demo(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let outcome = run_federation(&Plan {
        persons: args.persons,
        seed: args.seed,
        out: &args.out,
        project_id: &args.project_id,
        registers_src: args.registers.as_deref(),
        registers: &REGISTERS,
        threads: None,
        cohort: &args.cohort,
        receipt: true,
        one_delivery: args.one_delivery,
    })?;
    let Some(problems) = outcome.problems else {
        println!("\nGround truth: not available for your own extracts.");
        return Ok(ExitCode::SUCCESS);
    };
    if problems.is_empty() {
        println!("\nGround truth: MATCH. Every register delivered exactly the cohort's rows, one lnr per person across tables.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\nGround truth: MISMATCH.");
        for problem in problems {
            println!("  - {problem}");
        }
        Ok(ExitCode::from(1))
    }
}

/// Runs a whole federation: extracts, keys, node processes, a project
/// through every command, audit and ground truth.
pub(crate) fn run_federation(args: &Plan<'_>) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let mut phases: Vec<(&str, Duration)> = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |name: &'static str, phases: &mut Vec<(&str, Duration)>| {
        phases.push((name, clock.elapsed()));
        clock = Instant::now();
    };
    fs::create_dir_all(args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let out = args.out.canonicalize()?;

    // 1. Extracts.
    let receipt = args.receipt && args.registers_src.is_none() && args.registers.contains(&HOLDER);
    let (pop, extracts) = match args.registers_src {
        Some(src) => {
            let mut found = BTreeMap::new();
            for r in args.registers.iter().copied() {
                let f = src.join(r).join("extract.csv");
                if f.exists() {
                    found.insert(r, f.canonicalize()?);
                }
            }
            ensure!(
                found.contains_key("NPR"),
                "{} has no NPR/extract.csv (NPR is the cohort)",
                src.display()
            );
            println!(
                "Using your extracts: {}",
                found.keys().copied().collect::<Vec<_>>().join(", ")
            );
            (None, found)
        }
        None => {
            println!(
                "Generating {} synthetic persons (seed {})…",
                args.persons, args.seed
            );
            let pop = generate(&PopulationConfig {
                persons: args.persons,
                seed: args.seed,
                ..Default::default()
            });
            let mut files = BTreeMap::new();
            for e in pop
                .extracts
                .iter()
                .filter(|e| args.registers.contains(&e.name))
            {
                let d = out.join("registers").join(e.name);
                fs::create_dir_all(&d)?;
                let file = d.join("extract.csv");
                if receipt && e.name == HOLDER {
                    // RESEPT holds no fnr: its extract is the export of
                    // its table, after the deliveries (below).
                    let _ = fs::remove_file(&file);
                } else {
                    fs::write(&file, render_csv(e))?;
                }
                files.insert(e.name, file);
            }
            if receipt {
                let d = out.join("registers").join(SOURCE);
                fs::create_dir_all(&d)?;
                for (period, e) in periods(&pop, args.one_delivery) {
                    fs::write(d.join(format!("dispensed-{period}.csv")), render_csv(&e))?;
                }
            }
            (Some(pop), files)
        }
    };
    lap("generate population and extracts", &mut phases);

    // 2. Federation and nodes.
    let manifest_path = federation(&out, args.registers, receipt)?;
    let m = p(&manifest_path)?.to_string();
    let mut members: Vec<&str> = args.registers.to_vec();
    let mut extract_dirs = extracts.clone();
    if receipt {
        members.push(SOURCE);
        extract_dirs.insert(
            SOURCE,
            out.join("registers").join(SOURCE).join("dispensed.csv"),
        );
    }
    let nodes = start_nodes(&out, &manifest_path, &members, &extract_dirs, args.threads)?;
    println!(
        "Started {} node processes (QUIC on 127.0.0.1); logs in {}/nodes/<NODE>/node.log",
        nodes.0.len(),
        out.display()
    );
    lap("keys, manifest, start nodes", &mut phases);

    if let (true, Some(pop)) = (receipt, &pop) {
        let population = format!("persons {} seed {}", args.persons, args.seed);
        let population = if args.one_delivery {
            format!("{population}, one delivery")
        } else {
            population
        };
        receive_dispensations(&out, &m, pop, &extracts, &population, args.one_delivery)?;
        lap("deliveries into RESEPT's domain", &mut phases);
        let peaks: Vec<String> = nodes
            .peak_rss_mb()
            .iter()
            .map(|(name, mb)| format!("{name} {mb:.1}"))
            .collect();
        println!(
            "Peak memory (VmHWM, MiB) after the deliveries: {}",
            peaks.join(", ")
        );
    }

    // 3. The project.
    let researcher = out.join("keys").join("researcher.key");
    let project = args.project_id;
    let cohort = args.cohort;
    let mut spec = format!("project = \"{project}\"\ntitle = \"Synthetic demonstration\"\nlegal_basis = \"REK 2024/000000 (synthetic)\"\ncohort = \"{cohort}\"\nexpires = \"2031-12-31\"\n");
    for (r, f) in &extracts {
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
    let spec_path = out.join(format!("{project}.spec.toml"));
    fs::write(&spec_path, spec)?;
    println!("The access authority grants project {project}…");
    ok(&[
        "project",
        "authorize",
        "--manifest",
        &m,
        "--key",
        p(&out.join("keys").join("authority.key"))?,
        "--spec",
        p(&spec_path)?,
        "--researcher",
        p(&out.join("keys").join("researcher.pub"))?,
    ])?;
    println!("Submitting project {project} (cohort {cohort})…");
    eventually(
        &[
            "project",
            "submit",
            "--manifest",
            &m,
            "--key",
            p(&researcher)?,
            "--spec",
            p(&spec_path)?,
        ],
        "submitting the project",
        Duration::from_secs(60),
    )?;
    println!("Two operators approve at every register…");
    for (r, f) in &extracts {
        for k in 1..=2 {
            let key = out.join("keys").join(format!("{r}-operator-{k}.key"));
            eventually(
                &[
                    "project",
                    "approve",
                    "--manifest",
                    &m,
                    "--key",
                    p(&key)?,
                    "--project",
                    project,
                    "--extract",
                    p(f)?,
                ],
                "an approval",
                Duration::from_secs(60),
            )?;
        }
    }
    lap("submit and approve", &mut phases);
    let cpu_before_chain = nodes.cpu_seconds();

    // 4. Wait for the chain, showing progress.
    let researcher_dir = out.join("researcher").join(project);
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut last = String::new();
    loop {
        let status = run(&[
            "project",
            "status",
            "--manifest",
            &m,
            "--key",
            p(&researcher)?,
            "--project",
            project,
        ])?;
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
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the project did not finish in an hour; see the node logs"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    lap(CHAIN_PHASE, &mut phases);
    let chain_cpu_seconds = nodes
        .cpu_seconds()
        .zip(cpu_before_chain)
        .map(|(after, before)| after - before);
    let fetch = ok_measured(&[
        "project",
        "fetch",
        "--manifest",
        &m,
        "--key",
        p(&researcher)?,
        "--project",
        project,
        "--out",
        p(&researcher_dir)?,
        "--spec",
        p(&spec_path)?,
    ])?;
    let audit = run(&[
        "audit",
        "verify",
        "--transcript",
        p(&researcher_dir.join("transcript.kob"))?,
        "--manifest",
        &m,
    ])?;
    let audit_line = String::from_utf8_lossy(&audit.stdout)
        .lines()
        .rev()
        .find(|l| l.starts_with("transcript"))
        .unwrap_or_default()
        .to_string();
    lap("fetch, verify and open; audit", &mut phases);
    let peak_rss_mb = nodes.peak_rss_mb();
    let nodes_cpu_seconds = nodes.cpu_seconds();
    drop(nodes);
    lap("shut the nodes down", &mut phases);

    // 5. Summary.
    println!(
        "\n{}",
        fs::read_to_string(researcher_dir.join("report.txt")).unwrap_or_default()
    );
    println!("Audit: {audit_line}");
    println!("Time per phase:");
    for (phase, d) in &phases {
        println!("  {phase:<46} {:>8.2} s", d.as_secs_f64());
    }
    println!(
        "Total: {:.1} s. Output: {} (extracts, federation.toml, nodes/, researcher/{project}/)",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    println!("Peak memory per node (VmHWM):");
    for (node, mb) in &peak_rss_mb {
        println!("  {node:<46} {mb:>8.1} MiB");
    }
    if let Some(mb) = fetch.peak {
        println!("  {:<46} {mb:>8.1} MiB", "the researcher's fetch");
    }
    ensure!(
        audit.status.success(),
        "the transcript did not verify: {audit_line}"
    );
    let problems = match &pop {
        Some(pop) => Some(compare(
            &out,
            project,
            pop,
            &researcher_dir,
            args.registers,
            args.cohort,
        )?),
        None => None,
    };
    Ok(Outcome {
        phases,
        peak_rss_mb,
        list_persons: list_persons(&manifest_path, &researcher_dir.join("transcript.kob"))?,
        problems,
        chain_cpu_seconds,
        nodes_cpu_seconds,
        fetch_peak_rss_mb: fetch.peak,
        fetch_cpu_seconds: fetch.cpu_seconds,
    })
}

/// Persons per list, as the researcher's verified transcript states them.
fn list_persons(manifest: &Path, transcript: &Path) -> anyhow::Result<Vec<(String, u64)>> {
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
fn compare(
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

/// Every year's dispensations reach RESEPT from the pharmacy chain through
/// a delivery into RESEPT's register domain, pseudonymised at receipt
/// (PROTOCOL.md §10, `docs/deliveries.md`); then RESEPT's operators export
/// its table as the project's extract: a `pseudonym` column and no fnr.
///
/// A reused federation whose domain already received this population's
/// years exports the table it holds; one that received another
/// population's is refused (the ground truth would not hold).
fn receive_dispensations(
    out: &Path,
    m: &str,
    pop: &Population,
    extracts: &BTreeMap<&str, PathBuf>,
    population: &str,
    one_delivery: bool,
) -> anyhow::Result<()> {
    let key = |member: &str, k: u8| out.join("keys").join(format!("{member}-operator-{k}.key"));
    let holder_key = key(HOLDER, 1);
    let domain_status = || -> anyhow::Result<Option<(u64, u64, u64)>> {
        let status = run(&[
            "domain",
            "status",
            "--manifest",
            m,
            "--key",
            p(&holder_key)?,
            "--domain",
            HOLDER,
        ])?;
        Ok(status
            .status
            .success()
            .then(|| domain_counts(&String::from_utf8_lossy(&status.stdout)))
            .flatten())
    };

    println!("Domain {HOLDER}: waiting for its key holders (NPR, KPR, SSB, LINKER) to commit their shares…");
    let deadline = Instant::now() + Duration::from_secs(120);
    let before = loop {
        if let Some((committed, holders, deliveries)) = domain_status()? {
            if committed == holders {
                break deliveries;
            }
        }
        ensure!(
            Instant::now() < deadline,
            "domain {HOLDER}'s key holders did not all commit in 2 minutes; see `kobling domain status` and the node logs"
        );
        std::thread::sleep(Duration::from_millis(250));
    };

    let marker = out.join("registers").join(SOURCE).join("delivered.txt");
    let years = periods(pop, one_delivery);
    if before > 0 {
        ensure!(
            fs::read_to_string(&marker).ok().as_deref() == Some(population),
            "domain {HOLDER} in {} already holds deliveries of another synthetic population; use another --out",
            out.display()
        );
        println!("Domain {HOLDER} received the dispensations in an earlier run ({before} deliveries); exporting its table again.");
    } else {
        let variables: Vec<&str> = pop
            .extract(HOLDER)
            .context("no RESEPT extract")?
            .columns
            .iter()
            .copied()
            .filter(|c| *c != "fnr")
            .collect();
        let variables = variables.join(",");
        for year in years.keys() {
            let id = format!("{HOLDER}-{year}");
            let rows = years.get(year).map_or(0, |e| e.rows.len());
            let file = out
                .join("registers")
                .join(SOURCE)
                .join(format!("dispensed-{year}.csv"));
            println!("  {SOURCE} orders delivery {id} ({rows} rows) into domain {HOLDER}; two operators of {SOURCE} approve it with the file, two of {HOLDER} without");
            eventually(
                &[
                    "delivery",
                    "order",
                    "--manifest",
                    m,
                    "--key",
                    p(&key(SOURCE, 1))?,
                    "--source",
                    SOURCE,
                    "--domain",
                    HOLDER,
                    "--id",
                    &id,
                    "--variables",
                    &variables,
                ],
                "ordering a delivery",
                Duration::from_secs(60),
            )?;
            for k in 1..=2 {
                eventually(
                    &[
                        "delivery",
                        "approve",
                        "--manifest",
                        m,
                        "--key",
                        p(&key(SOURCE, k))?,
                        "--delivery",
                        &id,
                        "--extract",
                        p(&file)?,
                    ],
                    "a source operator's approval",
                    Duration::from_secs(60),
                )?;
                eventually(
                    &[
                        "delivery",
                        "approve",
                        "--manifest",
                        m,
                        "--key",
                        p(&key(HOLDER, k))?,
                        "--delivery",
                        &id,
                    ],
                    "a holder operator's approval",
                    Duration::from_secs(60),
                )?;
            }
        }
        let want = years.len() as u64;
        // 15 minutes, or more for a large population (about a second per
        // 100 persons: 1,000,000 persons' dispensations are ~7 million rows).
        let limit = Duration::from_secs(900.max(pop.persons.len() as u64 / 100));
        let deadline = Instant::now() + limit;
        let mut shown = u64::MAX;
        loop {
            let received = domain_status()?.map_or(0, |(_, _, d)| d);
            if received != shown {
                println!("  {HOLDER} received {received} of {want} deliveries (chain: NPR, KPR, SSB, LINKER; each list checked end to end)");
                shown = received;
            }
            if received >= want {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{HOLDER} received {received} of {want} deliveries in {} minutes; see `kobling delivery status` and the node logs",
                limit.as_secs() / 60
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        fs::write(&marker, population)?;
    }

    let table = extracts.get(HOLDER).context("no RESEPT extract path")?;
    let _ = fs::remove_file(table);
    ok(&[
        "delivery",
        "export",
        "--dir",
        p(&out.join("nodes").join(HOLDER))?,
        "--domain",
        HOLDER,
        "--out",
        p(table)?,
    ])?;
    // The demo's own check of the promise: no fnr in the holder's export.
    let text = fs::read_to_string(table)?;
    ensure!(
        text.lines()
            .next()
            .is_some_and(|h| h.starts_with("pseudonym,")),
        "{}: the export does not start with a pseudonym column",
        table.display()
    );
    let fnr: std::collections::HashSet<&str> = pop.persons.iter().map(|q| q.id.expose()).collect();
    ensure!(
        !text
            .split([',', '\n'])
            .any(|field| fnr.contains(field.trim())),
        "{}: the holder's export contains a fødselsnummer",
        table.display()
    );
    println!(
        "  {HOLDER}'s table: {} rows under Ψ_{HOLDER}, exported to {} (pseudonym column, no fnr)",
        text.lines().count().saturating_sub(1),
        table.display()
    );
    Ok(())
}

/// The pharmacy's files: one per year of dispensations, or one with
/// every year (`all`).
fn periods(pop: &Population, one: bool) -> BTreeMap<String, Extract> {
    if one {
        let mut all = BTreeMap::new();
        if let Some(e) = pop.extract(HOLDER) {
            all.insert("all".to_string(), e.clone());
        }
        return all;
    }
    pop.by_year(HOLDER, YEAR_COLUMN)
        .into_iter()
        .map(|(year, e)| (year.to_string(), e))
        .collect()
}

/// `(committed, key holders, deliveries)` from `kobling domain status`
/// (its line "N of M committed; deliveries D; …").
fn domain_counts(status: &str) -> Option<(u64, u64, u64)> {
    let line = status
        .lines()
        .find(|l| l.contains(" committed; deliveries "))?;
    let mut words = line.split_whitespace();
    let committed = words.next()?.parse().ok()?;
    let _of = words.next()?;
    let holders = words.next()?.parse().ok()?;
    let deliveries = line
        .split("deliveries ")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((committed, holders, deliveries))
}
