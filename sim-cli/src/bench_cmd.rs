//! `kobling-sim bench`: the per-point costs of a hop beside the raw
//! curve25519-dalek kernel, then a whole federation over QUIC; one
//! `key=value` line per figure (issue 6).

use std::path::PathBuf;

use anyhow::Context;
use kobling_protocol::hop::DEFAULT_CHUNK_SIZE;
use kobling_sim::{
    bench::{hop_figures, v2_figures},
    conversion_bench::conversion_figures,
};

use crate::demo::{run_federation, Plan, CHAIN_PHASE};

/// Options of `kobling-sim bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Points for the micro benchmark, and persons in the federation run.
    #[arg(long, default_value_t = 200_000)]
    persons: usize,
    /// Registers in the federation run (1–4: NPR, KPR, SSB, RESEPT in
    /// that order), plus the linker.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=4))]
    registers: u8,
    /// Threads, for the kernel, the hop and every node process (default:
    /// all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Points per chunk.
    #[arg(long, default_value_t = DEFAULT_CHUNK_SIZE)]
    chunk_size: u32,
    /// The federation run's cohort: a register's name or `all` (every
    /// person: the largest delivery).
    #[arg(long, default_value = "NPR")]
    cohort: String,
    /// Skip the federation run (only kernel, hop and proof figures).
    #[arg(long)]
    no_federation: bool,
    /// Directory for the federation run (default: a fresh one under the
    /// system's temporary directory, removed afterwards).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run the federation on these extracts instead of synthetic ones:
    /// SRC/<REGISTER>/extract.csv for the registers of the run (NPR
    /// required), as `kobling-sim demo --registers SRC` takes. No ground
    /// truth then.
    #[arg(long, value_name = "SRC")]
    extracts: Option<PathBuf>,
}

/// Options of `kobling-sim extracts`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExtractsArgs {
    /// Persons per register (half of them in both).
    #[arg(long, default_value_t = 100_000)]
    persons: usize,
    /// The generator's seed (same seed, same extracts).
    #[arg(long, default_value_t = 13)]
    seed: u64,
    /// Where to write `NPR/extract.csv` and `KPR/extract.csv` (created;
    /// existing extracts there are not overwritten).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// `kobling-sim extracts`: issue 13's comparison job as the CSV files
/// `bench --extracts` reads.
pub(crate) fn write_extracts(args: &ExtractsArgs) -> anyhow::Result<()> {
    let job = kobling_sim::population::comparison_job(args.persons, args.seed);
    let files: Vec<_> = job
        .extracts
        .iter()
        .map(|e| (e, args.out.join(e.name).join("extract.csv")))
        .collect();
    if let Some((_, f)) = files.iter().find(|(_, f)| f.exists()) {
        anyhow::bail!(
            "{} exists; not overwritten (choose another --out, or remove it)",
            f.display()
        );
    }
    for (e, f) in &files {
        let dir = f.parent().context("an extract's directory")?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(f, kobling_sim::population::render_csv(e))
            .with_context(|| format!("cannot write {}", f.display()))?;
    }
    let both = job.members("NPR").intersection(&job.members("KPR")).count();
    eprintln!(
        "Wrote NPR and KPR extracts of {} persons each, {both} of them in both, one row per person, to {}.\n\
         Run the job: kobling-sim bench --persons {} --registers 2 --extracts {}",
        args.persons,
        args.out.display(),
        args.persons,
        args.out.display()
    );
    Ok(())
}

const REGISTERS: [&str; 4] = ["NPR", "KPR", "SSB", "RESEPT"];

pub(crate) fn run_bench(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.chunk_size.is_power_of_two(),
        "--chunk-size must be a power of two"
    );
    let pool = {
        let mut b = rayon::ThreadPoolBuilder::new();
        if let Some(t) = args.threads {
            b = b.num_threads(t);
        }
        b.build().context("cannot start the thread pool")?
    };
    eprintln!(
        "Measuring the kernel and a hop on {} points with {} threads…",
        args.persons,
        pool.current_num_threads()
    );
    // Chain v2 (issue 13): the real middle hop beside the kernel.
    let v = pool.install(|| v2_figures(args.persons, args.chunk_size));
    // v1.s hop and its proof parts: the per-chunk work strict mode adds.
    let f = pool.install(|| hop_figures(args.persons, args.chunk_size));
    println!("points={}", v.points);
    println!("threads={}", f.threads);
    println!("chunk_size={}", f.chunk_size);
    println!("hash_to_group_us={:.3}", f.hash_to_group_us);
    println!("kernel_us_per_point={:.3}", v.kernel_us);
    println!("hop_us_per_point={:.3}", v.hop_us);
    println!("hop_ratio={:.3}", v.ratio());
    println!("check_us_per_point={:.3}", v.check_us);
    if let (Some(k), Some(h), Some(r)) = (v.kernel_cpu_us, v.hop_cpu_us, v.cpu_ratio()) {
        println!("kernel_cpu_us_per_point={k:.3}");
        println!("hop_cpu_us_per_point={h:.3}");
        println!("hop_cpu_ratio={r:.3}");
    }
    if let Some(c) = v.check_cpu_us {
        println!("check_cpu_us_per_point={c:.3}");
    }
    println!("v1_hop_us_per_point={:.3}", f.hop_us);
    println!("v1_hop_ratio={:.3}", f.ratio());
    println!("v1_verify_us_per_point={:.3}", f.verify_us);
    println!("v1_prove_us_per_point={:.3}", f.prove_us);
    println!("decompress_us_per_point={:.3}", f.decompress_us);
    println!("combination_us_per_point={:.3}", f.combination_us);
    println!("root_us_per_point={:.3}", f.root_us);
    println!("strict_floor_ratio={:.3}", f.floor_ratio());
    // Register domains (issue 15): a conversion step beside an ordinary hop.
    let c = pool.install(|| conversion_figures(args.persons, args.chunk_size));
    println!("conversion_us_per_point={:.3}", c.conversion_us);
    println!("conversion_plain_hop_us_per_point={:.3}", c.hop_us);
    println!("conversion_hop_ratio={:.3}", c.ratio());
    // A record's inherent work: one hash to the group and three
    // multiplications (its owner, one other register, the linker).
    let record_floor = f
        .hash_to_group_cpu_us
        .zip(f.kernel_cpu_us)
        .map(|(h, k)| h + 3.0 * k);
    if args.no_federation {
        if let Some(floor) = record_floor {
            println!("record_floor_cpu_us={floor:.3}");
        }
        return Ok(());
    }

    let (out, temporary) = match &args.out {
        Some(o) => (o.clone(), false),
        None => (
            std::env::temp_dir().join(format!("kobling-bench-{}", std::process::id())),
            true,
        ),
    };
    let registers = &REGISTERS[..usize::from(args.registers)];
    eprintln!(
        "Running a federation of {} registers and a linker over QUIC in {}…",
        registers.len(),
        out.display()
    );
    let project = format!(
        "BENCH-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
    );
    let result = run_federation(&Plan {
        persons: args.persons,
        seed: 1,
        out: &out,
        project_id: &project,
        registers_src: args.extracts.as_deref(),
        registers,
        threads: args.threads,
        cohort: &args.cohort,
        receipt: false,
        one_delivery: false,
        identified: false,
    });
    if temporary {
        let _ = std::fs::remove_dir_all(&out);
    }
    let outcome = result?;
    let problems = outcome.problems.unwrap_or_default();
    anyhow::ensure!(
        problems.is_empty(),
        "the federation's output does not match the ground truth: {}",
        problems.join("; ")
    );
    let chain = outcome
        .phases
        .iter()
        .find(|(p, _)| *p == CHAIN_PHASE)
        .map(|(_, d)| d.as_secs_f64())
        .context("no chain phase measured")?;
    let points: u64 = outcome.list_persons.iter().map(|(_, n)| n).sum();
    // Every list is stepped by its owner, by every other register and by
    // the linker.
    let steps = points * (registers.len() as u64 + 1);
    println!("e2e_registers={}", registers.len());
    println!("e2e_points={points}");
    println!("e2e_seconds={chain:.3}");
    println!("e2e_points_per_second={:.0}", points as f64 / chain);
    println!("e2e_point_steps_per_second={:.0}", steps as f64 / chain);
    for (phase, d) in &outcome.phases {
        let key: String = phase
            .chars()
            .take_while(|c| *c != '(')
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        println!(
            "phase_seconds_{}={:.3}",
            key.trim_matches('_').replace("__", "_"),
            d.as_secs_f64()
        );
    }
    if let Some(cpu) = outcome.chain_cpu_seconds {
        // All node processes, from the last approval until linked.
        println!("e2e_cpu_us_per_point_step={:.3}", cpu * 1e6 / steps as f64);
    }
    // Per person of every list: all node processes over the whole run,
    // the researcher's `project fetch` (fetch, verify, open, write), and
    // both together (issue 13: every process of the run).
    let per_record = |cpu: f64| cpu * 1e6 / points as f64;
    if let Some(cpu) = outcome.nodes_cpu_seconds {
        println!("nodes_cpu_us_per_record={:.3}", per_record(cpu));
    }
    if let Some(cpu) = outcome.fetch_cpu_seconds {
        println!("fetch_cpu_us_per_record={:.3}", per_record(cpu));
    }
    if let (Some(nodes), Some(fetch)) = (outcome.nodes_cpu_seconds, outcome.fetch_cpu_seconds) {
        println!("e2e_cpu_us_per_record={:.3}", per_record(nodes + fetch));
    }
    if let Some(floor) = record_floor {
        println!("record_floor_cpu_us={floor:.3}");
    }
    for (node, mb) in &outcome.peak_rss_mb {
        println!("peak_rss_mb_{node}={mb:.1}");
    }
    if let Some(mb) = outcome.fetch_peak_rss_mb {
        // The researcher's `project fetch`: streamed, so it does not grow
        // with the delivery (issue 13: under 256 MiB at 200,000 persons).
        println!("fetch_peak_rss_mib={mb:.1}");
    }
    Ok(())
}
