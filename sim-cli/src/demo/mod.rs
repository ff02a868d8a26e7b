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
//!
//! ## Layout
//!
//! - `mod.rs`: the options, the plan of a run and what it measured.
//! - `run.rs`: [`run_federation`], a run as a list of steps.
//! - `process.rs`: the one-shot `kobling` commands.
//! - `nodes.rs`: the node processes: their reserved ports, their start,
//!   the watch on them.
//! - `federation.rs`: keystores, operator keys and the manifest.
//! - `project.rs`: the project's spec, submission, approvals and chain.
//! - `receipt.rs`: the pharmacy's dispensations delivered into RESEPT's domain.
//! - `truth.rs`: the researcher's tables against the ground truth.
//! - `identified.rs`: `--identified`, the citizen's rights (issue 16).

mod federation;
mod identified;
mod nodes;
mod process;
mod project;
mod receipt;
mod run;
mod truth;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

pub(crate) use run::run_federation;

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
    /// Also run the citizen's rights (issue 16): an identified project
    /// with the researcher's own fnr list and a reservation table at KPR,
    /// innsyn at KPR and at RESEPT's holder, then close the project.
    #[arg(long)]
    identified: bool,
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
    /// An identified project with reservations, innsyn at an fnr register
    /// and at the pseudonymous holder, then the project's close.
    pub(crate) identified: bool,
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
        identified: args.identified,
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
