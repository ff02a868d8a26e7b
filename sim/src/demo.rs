//! `kobling-sim demo`.
//!
//! Today the demo runs every party in this one process (each with its own
//! keystore, every message and proof as between nodes); running the same
//! project across separate `kobling node` processes over QUIC is the node
//! issue's work.

use std::{collections::BTreeMap, fs, path::PathBuf, process::ExitCode, time::Instant};

use anyhow::Context;
use kobling_protocol::{
    link::Lnr,
    transcript::{encode_file, Check},
    types::Name,
};
use kobling_sim::{
    inmem::{render_csv, Federation, ProjectConfig, RunOutcome},
    population::{generate, Extract, Population, PopulationConfig},
    truth,
};

const REGISTERS: [&str; 4] = ["NPR", "KPR", "SSB", "RESEPT"];

/// Options of `kobling-sim demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Persons in the synthetic population.
    #[arg(long, default_value_t = 20_000)]
    persons: usize,
    /// Seed of the generator (same seed, same data).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory (must not hold an earlier demo's keystores).
    #[arg(long, default_value = "kobling-demo")]
    out: PathBuf,
    /// The project id.
    #[arg(long, default_value = "DEMO-1")]
    project_id: String,
    /// Points per chunk (a power of two).
    #[arg(long, default_value_t = 4096)]
    chunk_size: u32,
}

pub(crate) fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let nodes = args.out.join("nodes");
    anyhow::ensure!(
        !nodes.exists(),
        "{} already holds a federation from an earlier demo; choose another --out or remove it",
        args.out.display()
    );
    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    println!(
        "Generating {} synthetic persons (seed {})…",
        args.persons, args.seed
    );
    let t = Instant::now();
    let pop = generate(&PopulationConfig {
        persons: args.persons,
        seed: args.seed,
        ..Default::default()
    });
    for e in &pop.extracts {
        let dir = args.out.join("registers").join(e.name);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("extract.csv"), render_csv(e))?;
    }
    let generate_time = t.elapsed();

    println!(
        "Creating keystores for {} registers and a linker, two operators each…",
        REGISTERS.len()
    );
    let mut fed = Federation::create(&nodes, &REGISTERS, args.seed)?;
    fs::write(
        args.out.join("federation.toml"),
        toml::to_string_pretty(&fed.manifest)?,
    )?;

    println!(
        "Running project {} (cohort NPR) through the blind chain…",
        args.project_id
    );
    let extracts: Vec<&Extract> = REGISTERS.iter().filter_map(|r| pop.extract(r)).collect();
    let config = ProjectConfig {
        project: args.project_id.clone(),
        cohort: "NPR".into(),
        chunk_size: args.chunk_size,
        seed: args.seed,
    };
    let outcome = fed.run_project(&extracts, &config, None, None)?;

    let researcher = args.out.join("researcher");
    write_researcher_output(&researcher, &pop, &outcome)?;

    let lnr_of = truth::expected_lnr(&fed, &args.project_id, &REGISTERS, &pop)?;
    let problems = truth::compare(&pop, &lnr_of, "NPR", &outcome.tables);

    print_summary(&pop, &outcome, generate_time);
    println!(
        "\nTranscript: {} entries, every check passed ({}).",
        outcome.verified.entries,
        Check::ALL.map(|c| c.name()).join(", ")
    );
    println!(
        "Output: {} (extracts, federation.toml, researcher/ tables, transcript.kob)",
        args.out.display()
    );
    println!("Total time: {:.1} s", started.elapsed().as_secs_f64());
    if problems.is_empty() {
        println!("\nGround truth: MATCH. Every register delivered exactly the cohort's rows, one lnr per person across tables.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\nGround truth: MISMATCH.");
        for p in problems {
            println!("  - {p}");
        }
        Ok(ExitCode::from(1))
    }
}

fn write_researcher_output(
    dir: &std::path::Path,
    pop: &Population,
    out: &RunOutcome,
) -> anyhow::Result<()> {
    fs::create_dir_all(dir)?;
    for (register, rows) in &out.tables {
        let extract = pop.extract(register.as_str()).context("extract")?;
        let mut w = csv::Writer::from_path(dir.join(format!("{register}.csv")))?;
        let mut header = vec!["lnr"];
        header.extend(extract.columns.iter().skip(1));
        w.write_record(&header)?;
        let mut sorted: Vec<&(Lnr, Vec<String>)> = rows.iter().collect();
        sorted.sort_by_key(|r| r.0);
        for (lnr, values) in sorted {
            let mut record = vec![lnr.as_str().to_string()];
            record.extend(values.iter().cloned());
            w.write_record(&record)?;
        }
        w.flush()?;
    }
    let names: Vec<&Name> = out.linkage.lists.iter().map(|l| &l.list).collect();
    let mut w = csv::Writer::from_path(dir.join("persons.csv"))?;
    let mut header = vec!["lnr".to_string()];
    header.extend(names.iter().map(|n| n.to_string()));
    w.write_record(&header)?;
    for p in &out.linkage.persons {
        let mut record = vec![p.lnr.as_str().to_string()];
        record.extend(
            p.present
                .iter()
                .map(|b| if *b { "1" } else { "0" }.to_string()),
        );
        w.write_record(&record)?;
    }
    w.flush()?;
    fs::write(dir.join("report.txt"), report(out))?;
    fs::write(
        dir.join("transcript.kob"),
        encode_file(&out.transcript.0, &out.transcript.1),
    )?;
    Ok(())
}

fn report(out: &RunOutcome) -> String {
    let mut s = String::from(
        "register  extract_rows  invalid_ids  persons  matched_persons  delivered_rows\n",
    );
    for sel in &out.linkage.lists {
        let st = &out.stats[&sel.list];
        let rows = out.tables.get(&sel.list).map_or(0, Vec::len);
        s.push_str(&format!(
            "{:<8}  {:>12}  {:>11}  {:>7}  {:>15}  {:>14}\n",
            sel.list,
            st.rows,
            st.invalid_rows(),
            st.persons,
            sel.selected.len(),
            rows
        ));
        for i in &st.invalid {
            s.push_str(&format!(
                "          invalid identifiers ({}): {} (first lines: {:?})\n",
                i.reason, i.count, i.lines
            ));
        }
    }
    s.push_str(&format!("cohort persons: {}\n", out.linkage.persons.len()));
    s
}

fn print_summary(pop: &Population, out: &RunOutcome, generate_time: std::time::Duration) {
    println!("\n{}", report(out));
    let mut by_register: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &pop.extracts {
        by_register.insert(e.name, e.rows.len());
    }
    println!("Time per phase:");
    println!(
        "  {:<40} {:>8.2} s",
        "generate population and extracts",
        generate_time.as_secs_f64()
    );
    for (phase, d) in &out.timings {
        println!("  {:<40} {:>8.2} s", phase, d.as_secs_f64());
    }
}
