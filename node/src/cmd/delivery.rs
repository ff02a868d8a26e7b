//! `kobling delivery`: a domain holder's operator's view of the deliveries
//! its node received into a register domain (PROTOCOL.md §10, issue 15
//! item 2; `docs/deliveries.md`).
//!
//! `kobling delivery export --dir NODE_DIR --domain R [--delivery ID] --out FILE`
//! writes the holder's table of domain R from the node's state database:
//! one CSV line per stored row, `pseudonym` (`Ψ_R`, 64 lowercase hex
//! digits) then the delivery's columns. Without `--delivery`, every
//! delivery received in full (they must share their columns). The file is
//! created new, mode 0600. The command prints, per delivery, its id, its
//! source and its counts; never a pseudonym or a value.
//!
//! `kobling delivery order --manifest M --key OPERATOR_KEY --source S
//! --domain R --id ID --variables a,b,c` orders a delivery
//! ([`super::delivery_order`]).
//!
//! `kobling delivery status --manifest M --key OPERATOR_KEY --delivery ID
//! [--watch]` asks the linker where a delivery is
//! ([`super::delivery_status`]).
//!
//! `kobling delivery status --dir NODE_DIR --domain R` lists the
//! deliveries received in full, each with its counts and whether the
//! stored rows still hash to the table digest recorded at receipt.

use std::{io::Write, path::PathBuf, process::ExitCode};

use anyhow::{bail, Context};
use clap::Subcommand;
use kobling_protocol::{
    domain::{pseudonym_hex, transcript::DomainBody},
    types::{Digest, Name},
};

use crate::{
    console::say,
    store::{DomainRow, Store, StoreError, StoredDelivery},
};

/// Delivery subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DeliveryCommand {
    /// Export the holder's table of a domain as CSV: `pseudonym` (hex)
    /// then the columns, one line per row.
    Export {
        /// The holder node's directory (its `state.db`).
        #[arg(long, value_name = "NODE_DIR")]
        dir: PathBuf,
        /// The register domain.
        #[arg(long)]
        domain: String,
        /// Only this delivery (its id, 64 hex digits, as the export of
        /// every delivery prints it).
        #[arg(long, value_name = "ID")]
        delivery: Option<String>,
        /// The CSV file to create (it must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Where a delivery is (`--manifest --key --delivery`, asked of the
    /// linker: approvals, commitments, chain, check; last line `phase:
    /// …`), or the deliveries the holder received into a domain
    /// (`--dir --domain`: id, source, persons, rows, and whether the
    /// stored table still matches the digest recorded at receipt; exit 1
    /// if one does not).
    Status {
        /// The holder node's directory (its `state.db`).
        #[arg(long, value_name = "NODE_DIR", requires = "domain", conflicts_with_all = ["manifest", "delivery"])]
        dir: Option<PathBuf>,
        /// The register domain.
        #[arg(long, requires = "dir")]
        domain: Option<String>,
        /// The federation manifest.
        #[arg(long, requires_all = ["key", "delivery"])]
        manifest: Option<PathBuf>,
        /// Your operator key file.
        #[arg(long, value_name = "OPERATOR_KEY", requires = "manifest")]
        key: Option<PathBuf>,
        /// The delivery's id.
        #[arg(long, value_name = "ID", requires = "manifest")]
        delivery: Option<String>,
        /// Keep asking until the delivery is received or closed.
        #[arg(long, requires = "manifest")]
        watch: bool,
        /// Write the delivery's whole signed transcript to FILE (a new
        /// file), for `kobling audit verify`; the linker gives it to the
        /// operator who ordered the delivery. With `--watch`, once the
        /// delivery is received or closed.
        #[arg(long, value_name = "FILE", requires = "manifest")]
        transcript: Option<PathBuf>,
    },
    /// Approve a delivery at your own register's node: an operator of the
    /// source with `--extract` (an `fnr` column, no `pseudonym` column),
    /// an operator of the holder without. Two distinct operators of each.
    Approve {
        /// The federation manifest.
        #[arg(long)]
        manifest: PathBuf,
        /// Your operator key file.
        #[arg(long, value_name = "OPERATOR_KEY")]
        key: PathBuf,
        /// The delivery's id.
        #[arg(long, value_name = "ID")]
        delivery: String,
        /// The source's extract (in the node's extract directory).
        #[arg(long, value_name = "FILE")]
        extract: Option<PathBuf>,
    },
    /// Order a delivery of a source register's list into a register
    /// domain (an operator of the source); prints `delivery ID ordered`.
    Order {
        /// The federation manifest.
        #[arg(long)]
        manifest: PathBuf,
        /// Your operator key file (an operator of the source).
        #[arg(long, value_name = "OPERATOR_KEY")]
        key: PathBuf,
        /// The source register (its list is delivered).
        #[arg(long)]
        source: String,
        /// The register domain the delivery goes into.
        #[arg(long)]
        domain: String,
        /// The delivery's id (a project id, e.g. `APOTEK-RESEPT-2026`).
        #[arg(long)]
        id: String,
        /// The variables delivered, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        variables: Vec<String>,
        /// Synthetic test identifiers (month + 80) are accepted (the
        /// nodes must run in test mode).
        #[arg(long)]
        test_mode: bool,
    },
}

fn parse_id(s: &str) -> anyhow::Result<Digest> {
    let bytes = hex::decode(s.trim()).context("a delivery id is 64 hex digits")?;
    let id = <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| anyhow::anyhow!("a delivery id is 64 hex digits"))?;
    Ok(Digest(id))
}

impl DeliveryCommand {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            DeliveryCommand::Export {
                dir,
                domain,
                delivery,
                out,
            } => export(&dir, &domain, delivery.as_deref(), &out),
            DeliveryCommand::Status {
                dir,
                domain,
                manifest,
                key,
                delivery,
                watch,
                transcript,
            } => match (dir, domain, manifest, key, delivery) {
                (Some(dir), Some(domain), None, None, None) => status(&dir, &domain),
                (None, None, Some(manifest), Some(key), Some(delivery)) => {
                    super::delivery_status::status(
                        &manifest,
                        &key,
                        &delivery,
                        watch,
                        transcript.as_deref(),
                    )
                }
                _ => bail!(
                    "either --dir NODE_DIR --domain R (at the holder) or --manifest M --key OPERATOR_KEY --delivery ID"
                ),
            },
            DeliveryCommand::Approve {
                manifest,
                key,
                delivery,
                extract,
            } => super::project::ProjectCommand::Approve {
                common: super::project::Common { manifest, key },
                project: delivery,
                extract,
            }
            .run(),
            DeliveryCommand::Order {
                manifest,
                key,
                source,
                domain,
                id,
                variables,
                test_mode,
            } => {
                super::delivery_order::order(&super::delivery_order::OrderArgs {
                    manifest: &manifest,
                    key: &key,
                    source: &source,
                    domain: &domain,
                    id: &id,
                    variables: &variables,
                    test_mode,
                })?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn open(dir: &std::path::Path, domain: &str) -> anyhow::Result<(Name, Store)> {
    let domain = Name::new(domain).context("a domain is named as in the manifest")?;
    if !dir.join("state.db").is_file() {
        bail!("{} holds no node state (state.db)", dir.display());
    }
    let store = Store::open(dir).context("opening the node's state")?;
    Ok((domain, store))
}

fn status(dir: &std::path::Path, domain: &str) -> anyhow::Result<ExitCode> {
    let (domain, mut store) = open(dir, domain)?;
    let deliveries = store.domain_deliveries(&domain)?;
    if deliveries.is_empty() {
        say!("domain {domain}: no delivery received");
    }
    let mut intact = true;
    for d in &deliveries {
        let table = store.transaction(|tx| tx.table_digest(&domain, &d.delivery))?;
        let (persons, rows, digest) = table.counts();
        let matches = matches!(&d.record, DomainBody::Delivery { persons: p, rows: n, table: t, .. }
            if *p == persons && *n == rows && *t == digest);
        intact &= matches;
        let state = if matches {
            "received, table intact"
        } else {
            "received, TABLE DIFFERS from its record"
        };
        say!("{}: {state}", summary(d));
    }
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn export(
    dir: &std::path::Path,
    domain: &str,
    delivery: Option<&str>,
    out: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let (domain, store) = open(dir, domain)?;
    let mut deliveries = store.domain_deliveries(&domain)?;
    if let Some(id) = delivery {
        let id = parse_id(id)?;
        deliveries.retain(|d| d.delivery == id);
        if deliveries.is_empty() {
            bail!(
                "no delivery {} into domain {domain} was received in full here",
                hex::encode(id.0)
            );
        }
    }
    let Some(first) = deliveries.first() else {
        bail!("no delivery into domain {domain} was received here");
    };
    let columns = first.columns.clone();
    if let Some(other) = deliveries.iter().find(|d| d.columns != columns) {
        bail!(
            "deliveries {} and {} have different columns; export them one at a time with --delivery",
            hex::encode(first.delivery.0),
            hex::encode(other.delivery.0)
        );
    }
    let file = crate::private_fs::create_new(out)?;
    let mut csv = csv::Writer::from_writer(std::io::BufWriter::new(file));
    csv.write_record(std::iter::once("pseudonym").chain(columns.iter().map(String::as_str)))?;
    for d in &deliveries {
        let written = write_delivery(&store, &domain, d, &mut csv)?;
        say!("{}; {written} rows written", summary(d));
    }
    let mut inner = csv
        .into_inner()
        .map_err(|e| anyhow::anyhow!("writing {}: {}", out.display(), e.error()))?;
    inner.flush()?;
    inner.get_ref().sync_all()?;
    Ok(ExitCode::SUCCESS)
}

/// One error type for the row callback: the store's or the CSV writer's.
#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Csv(#[from] csv::Error),
}

fn write_delivery<W: Write>(
    store: &Store,
    domain: &Name,
    d: &StoredDelivery,
    csv: &mut csv::Writer<W>,
) -> Result<u64, ExportError> {
    let mut written = 0u64;
    store.for_each_domain_row(
        domain,
        &d.delivery,
        |r: DomainRow| -> Result<(), ExportError> {
            let hex = pseudonym_hex(&r.pseudonym);
            csv.write_record(
                std::iter::once(hex.as_str()).chain(r.values.iter().map(String::as_str)),
            )?;
            written += 1;
            Ok(())
        },
    )?;
    Ok(written)
}

fn summary(d: &StoredDelivery) -> String {
    let id = hex::encode(d.delivery.0);
    match &d.record {
        DomainBody::Delivery {
            source,
            persons,
            rows,
            ..
        } => format!("delivery {id} from {source}: {persons} persons, {rows} rows"),
        _ => format!("delivery {id}"),
    }
}
