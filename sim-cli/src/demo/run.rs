//! [`run_federation`]: one run of a whole federation, as a list of steps.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{ensure, Context};
use kobling_sim::population::{generate, render_csv, Population, PopulationConfig};

use super::{
    federation::federation,
    identified::Identified,
    nodes::{start_nodes, Nodes, Ports},
    process::p,
    project::Project,
    receipt::{periods, receive_dispensations},
    truth::{compare, list_persons},
    Outcome, Plan, CHAIN_PHASE, HOLDER, SOURCE,
};

/// Runs a whole federation: extracts, keys, node processes, a project
/// through every command, audit and ground truth.
pub(crate) fn run_federation(args: &Plan<'_>) -> anyhow::Result<Outcome> {
    let mut phases = Phases::start();
    fs::create_dir_all(args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let out = args.out.canonicalize()?;

    // 1. Extracts.
    let receipt = args.receipt && args.registers_src.is_none() && args.registers.contains(&HOLDER);
    let (pop, extracts) = match args.registers_src {
        Some(src) => (None, own_extracts(src, args.registers)?),
        None => {
            let (pop, files) = synthetic_extracts(args, &out, receipt)?;
            (Some(pop), files)
        }
    };
    let identified = match (&pop, args.identified) {
        (Some(pop), true) if receipt => Some(Identified::prepare(&out, pop)?),
        (_, true) => anyhow::bail!(
            "--identified runs on synthetic data with every register (NPR, KPR, SSB, RESEPT)"
        ),
        (_, false) => None,
    };
    phases.lap("generate population and extracts");

    // 2. Federation and nodes.
    let (manifest_path, ports) = federation(&out, args.registers, receipt)?;
    let m = p(&manifest_path)?.to_string();
    let node_args = match &identified {
        Some(i) => {
            i.add_portal(&manifest_path)?;
            i.node_args(&extracts)?
        }
        None => BTreeMap::new(),
    };
    let mut nodes = start_members(
        args,
        &out,
        &manifest_path,
        &extracts,
        &node_args,
        receipt,
        ports,
    )?;
    phases.lap("keys, manifest, start nodes");
    if let (true, Some(pop)) = (receipt, &pop) {
        receive_dispensations(
            &mut nodes,
            &out,
            &m,
            pop,
            &extracts,
            &population_label(args),
            args.one_delivery,
        )?;
        phases.lap("deliveries into RESEPT's domain");
        print_peaks("after the deliveries", &nodes);
    }

    // 3. The project. An identified one has no pseudonymous list: a
    // reservation is by fnr.
    let mut project_extracts = extracts.clone();
    if identified.is_some() {
        project_extracts.remove(HOLDER);
    }
    let project_registers: Vec<&str> = project_extracts.keys().copied().collect();
    let project = Project::new(&out, &m, args.project_id);
    project.write_spec(args.cohort, &project_extracts, receipt)?;
    if let Some(i) = &identified {
        project.prepend_to_spec(&i.spec_lines()?)?;
    }
    project.authorize()?;
    project.submit(&mut nodes, args.cohort)?;
    project.approve(&mut nodes, &project_extracts)?;
    phases.lap("submit and approve");
    if let Some(i) = &identified {
        project.send_list(&i.list, &out.join("researcher").join("state"))?;
        phases.lap("the researcher's own list");
    }

    // 4. The chain, then the researcher's fetch and the audit.
    let cpu_before_chain = nodes.cpu_seconds();
    project.wait_for_chain(&mut nodes)?;
    phases.lap(CHAIN_PHASE);
    let chain_cpu_seconds = nodes
        .cpu_seconds()
        .zip(cpu_before_chain)
        .map(|(after, before)| after - before);
    let fetch = project.fetch()?;
    let (audit_ok, audit_line) = project.audit()?;
    phases.lap("fetch, verify and open; audit");
    // The ground truth needs the project's key shares: before any close.
    let mut problems = match &pop {
        Some(pop) => {
            let truth = match &identified {
                Some(i) => i.truth(pop),
                None => pop.clone(),
            };
            Some(compare(
                &out,
                args.project_id,
                &truth,
                &project.dir,
                &project_registers,
                args.cohort,
            )?)
        }
        None => None,
    };
    if let (Some(i), Some(pop), Some(problems)) = (&identified, &pop, &mut problems) {
        let report = fs::read_to_string(project.dir.join("report.txt")).unwrap_or_default();
        problems.extend(i.check_report(pop, &report));
        problems.extend(i.check_own_table(
            pop,
            args.project_id,
            &project_registers,
            &pop.members(args.cohort),
            &project.dir,
        )?);
        problems.extend(i.innsyn(&m, pop)?);
        project.close()?;
        problems.extend(i.check_shredded(&out, args.project_id, &project_registers)?);
        let cohort = pop.members(args.cohort);
        problems.extend(i.disclosure_log(&m, pop, args.project_id, &cohort)?);
        phases.lap("citizen rights: innsyn, close, disclosure log");
    }
    let peak_rss_mb = nodes.peak_rss_mb();
    let nodes_cpu_seconds = nodes.cpu_seconds();
    drop(nodes);
    phases.lap("shut the nodes down");

    // 5. Summary.
    println!(
        "\n{}",
        fs::read_to_string(project.dir.join("report.txt")).unwrap_or_default()
    );
    println!("Audit: {audit_line}");
    phases.print(&out, args.project_id);
    println!("Peak memory per node (VmHWM):");
    for (node, mb) in &peak_rss_mb {
        println!("  {node:<46} {mb:>8.1} MiB");
    }
    if let Some(mb) = fetch.peak {
        println!("  {:<46} {mb:>8.1} MiB", "the researcher's fetch");
    }
    ensure!(audit_ok, "the transcript did not verify: {audit_line}");

    Ok(Outcome {
        phases: phases.laps,
        peak_rss_mb,
        list_persons: list_persons(&manifest_path, &project.dir.join("transcript.kob"))?,
        problems,
        chain_cpu_seconds,
        nodes_cpu_seconds,
        fetch_peak_rss_mb: fetch.peak,
        fetch_cpu_seconds: fetch.cpu_seconds,
    })
}

/// Wall time per phase of a run.
struct Phases {
    started: Instant,
    clock: Instant,
    laps: Vec<(&'static str, Duration)>,
}

impl Phases {
    fn start() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            clock: now,
            laps: Vec::new(),
        }
    }

    /// Ends phase `name`: the time since the previous lap.
    fn lap(&mut self, name: &'static str) {
        self.laps.push((name, self.clock.elapsed()));
        self.clock = Instant::now();
    }

    /// The time per phase and in all.
    fn print(&self, out: &Path, project: &str) {
        println!("Time per phase:");
        for (phase, d) in &self.laps {
            println!("  {phase:<46} {:>8.2} s", d.as_secs_f64());
        }
        println!(
            "Total: {:.1} s. Output: {} (extracts, federation.toml, nodes/, researcher/{project}/)",
            self.started.elapsed().as_secs_f64(),
            out.display()
        );
    }
}

/// An operator's own extracts: SRC/<REGISTER>/extract.csv for the
/// registers that have one (NPR required).
fn own_extracts<'r>(
    src: &Path,
    registers: &[&'r str],
) -> anyhow::Result<BTreeMap<&'r str, PathBuf>> {
    let mut found = BTreeMap::new();
    for r in registers.iter().copied() {
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
    Ok(found)
}

/// Generates the synthetic population and writes its extracts to
/// OUT/registers/<R>/extract.csv, and with `receipt` the pharmacy's
/// files to OUT/registers/APOTEK/ (RESEPT's extract comes later, from
/// its domain).
fn synthetic_extracts(
    args: &Plan<'_>,
    out: &Path,
    receipt: bool,
) -> anyhow::Result<(Population, BTreeMap<&'static str, PathBuf>)> {
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
    Ok((pop, files))
}

/// Starts a node per member: the registers, with `receipt` the pharmacy
/// (its files' directory as its extract directory), and the linker.
fn start_members(
    args: &Plan<'_>,
    out: &Path,
    manifest: &Path,
    extracts: &BTreeMap<&str, PathBuf>,
    node_args: &BTreeMap<&str, Vec<String>>,
    receipt: bool,
    ports: Ports,
) -> anyhow::Result<Nodes> {
    let mut members: Vec<&str> = args.registers.to_vec();
    let mut extract_dirs = extracts.clone();
    if receipt {
        members.push(SOURCE);
        extract_dirs.insert(
            SOURCE,
            out.join("registers").join(SOURCE).join("dispensed.csv"),
        );
    }
    let nodes = start_nodes(
        out,
        manifest,
        &members,
        &extract_dirs,
        node_args,
        args.threads,
        ports,
    )?;
    println!(
        "Started {} node processes (QUIC on 127.0.0.1); logs in {}/nodes/<NODE>/node.log",
        nodes.len(),
        out.display()
    );
    Ok(nodes)
}

/// The population the deliveries came from, as the pharmacy's marker
/// file records it (a reused federation must have received the same).
fn population_label(args: &Plan<'_>) -> String {
    let population = format!("persons {} seed {}", args.persons, args.seed);
    if args.one_delivery {
        format!("{population}, one delivery")
    } else {
        population
    }
}

/// Prints every node's peak resident memory so far.
fn print_peaks(when: &str, nodes: &Nodes) {
    let peaks: Vec<String> = nodes
        .peak_rss_mb()
        .iter()
        .map(|(name, mb)| format!("{name} {mb:.1}"))
        .collect();
    println!("Peak memory (VmHWM, MiB) {when}: {}", peaks.join(", "));
}
