//! The pharmacy's dispensations reach RESEPT, the register that never
//! holds fnr, through deliveries into its register domain; then RESEPT
//! exports its table as the project's extract.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{ensure, Context};
use kobling_sim::population::{Extract, Population};

use super::{
    nodes::Nodes,
    process::{ok, p, run},
    HOLDER, SOURCE, YEAR_COLUMN,
};

/// Every year's dispensations reach RESEPT from the pharmacy chain through
/// a delivery into RESEPT's register domain, pseudonymised at receipt
/// (PROTOCOL.md §10, `docs/deliveries.md`); then RESEPT's operators export
/// its table as the project's extract: a `pseudonym` column and no fnr.
///
/// A reused federation whose domain already received this population's
/// years exports the table it holds; one that received another
/// population's is refused (the ground truth would not hold).
pub(super) fn receive_dispensations(
    nodes: &mut Nodes,
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
        nodes.ensure_running()?;
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
            nodes.eventually(
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
                nodes.eventually(
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
                nodes.eventually(
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
            nodes.ensure_running()?;
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
pub(super) fn periods(pop: &Population, one: bool) -> BTreeMap<String, Extract> {
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
