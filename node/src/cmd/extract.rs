//! `kobling extract`: an operator's checks of an extract file before
//! approving it.
//!
//! `kobling extract check FILE [--allow-synthetic] [--mapping FILE] [--json]`
//! reads the file once, as the node will, and prints its SHA3-256 digest
//! (what the approval signs), the variables, the counts (rows, valid rows,
//! persons, persons with several rows) and the excluded rows per reason
//! with their line numbers (the first 20 per reason) and the identifier
//! masked to at most two digits. No variable value and no identifier is
//! ever printed.
//!
//! Exit codes: 0 the file is usable (even if some rows are excluded);
//! 1 it is not (refused by the reader, or no row has a valid identifier);
//! 2 the check could not run (bad arguments, unusable mapping file).

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Subcommand;
use kobling_protocol::ident::ParseOptions;
use serde::Serialize;

use crate::{
    console::say,
    extract_file::{self, shown, ExtractSummary, RowIssue},
};

/// Extract subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ExtractCommand {
    /// Check an extract before approving it: digest, columns, counts, and
    /// excluded rows per reason with line numbers. Exit 0 if usable, 1 if
    /// not, 2 if the check could not run.
    Check {
        /// The extract (CSV, UTF-8, header row with the identifier column
        /// `fnr`, or a domain holder's `pseudonym`, and the variables).
        file: PathBuf,
        /// Accept synthetic test identifiers (month + 80), as a node in
        /// test mode does.
        #[arg(long)]
        allow_synthetic: bool,
        /// Apply a mapping of changed identifiers: CSV with the header
        /// `old,current` and one pair per line.
        #[arg(long, value_name = "FILE")]
        mapping: Option<PathBuf>,
        /// Print the result as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Check a reservation table (CSV with an `fnr` column) before a node
    /// uses it (`kobling node run --reservations`): digest, rows, persons
    /// reserved, invalid identifiers per reason with line numbers
    /// (`docs/identified.md`). Exit 0 if the node can use it, 1 if not.
    Reservations {
        /// The reservation table.
        file: PathBuf,
        /// Accept synthetic test identifiers (month + 80), as a node in
        /// test mode does.
        #[arg(long)]
        allow_synthetic: bool,
        /// Apply a mapping of changed identifiers, as the node's
        /// `--mapping`.
        #[arg(long, value_name = "FILE")]
        mapping: Option<PathBuf>,
    },
}

/// The JSON report.
#[derive(Debug, Serialize)]
struct Report {
    file: String,
    usable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extract: Option<ExtractJson>,
}

#[derive(Debug, Serialize)]
struct ExtractJson {
    sha3_256: String,
    bytes: u64,
    columns: Vec<String>,
    rows: u64,
    valid_rows: u64,
    invalid_rows: u64,
    persons: u64,
    persons_with_several_rows: u64,
    max_rows_per_person: u64,
    mapped_rows: u64,
    invalid: Vec<ReasonJson>,
    identifier_columns: Vec<IdentifierColumnJson>,
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct IdentifierColumnJson {
    column: String,
    values: u64,
}

#[derive(Debug, Serialize)]
struct ReasonJson {
    reason: &'static str,
    count: u64,
    lines: Vec<u64>,
    details: Vec<DetailJson>,
}

#[derive(Debug, Serialize)]
struct DetailJson {
    line: u64,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    masked: Option<String>,
}

/// The mapping of changed identifiers at `path`, if one is given.
fn load_mapping(
    path: Option<&std::path::Path>,
    options: ParseOptions,
) -> anyhow::Result<Option<kobling_protocol::ident::IdMapping>> {
    path.map(|path| {
        extract_file::load_mapping(path, options)
            .with_context(|| format!("unusable mapping file {}", path.display()))
    })
    .transpose()
}

impl ExtractCommand {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            ExtractCommand::Check {
                file,
                allow_synthetic,
                mapping,
                json,
            } => {
                let options = ParseOptions { allow_synthetic };
                let mapping = load_mapping(mapping.as_deref(), options)?;
                // A domain holder's extract is keyed by `pseudonym`
                // (docs/domains.md): read as the node reads it.
                let pseudonymous =
                    extract_file::pseudonymous::check_key_column(&file, true).is_ok();
                anyhow::ensure!(
                    !(pseudonymous && mapping.is_some()),
                    "{} is keyed by pseudonym: a mapping of changed identifiers does not apply",
                    file.display()
                );
                let result = if pseudonymous {
                    extract_file::pseudonymous::stage_pseudonymous_extract(&file, |_, _| Ok(()))
                        .map(|(summary, _)| summary)
                } else {
                    extract_file::check_extract(&file, options, mapping.as_ref())
                };
                let (usable, error, summary) = match result {
                    Ok(s) => {
                        let reason = s.unusable_reason().map(str::to_owned);
                        (reason.is_none(), reason, Some(s))
                    }
                    Err(e) => (false, Some(e.to_string()), None),
                };
                if json {
                    let report = Report {
                        file: file.display().to_string(),
                        usable,
                        error: error.clone(),
                        extract: summary.as_ref().map(to_json),
                    };
                    say!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    if let Some(s) = &summary {
                        print_text(&file, s)?;
                    }
                    match &error {
                        None => say!("usable: yes"),
                        Some(e) => {
                            say!("usable: no");
                            eprintln!("error: extract {} is not usable: {e}", file.display());
                        }
                    }
                }
                Ok(if usable {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
            ExtractCommand::Reservations {
                file,
                allow_synthetic,
                mapping,
            } => {
                let options = ParseOptions { allow_synthetic };
                let mapping = load_mapping(mapping.as_deref(), options)?;
                match crate::reservation_file::load_reservations(&file, options, mapping) {
                    Ok(loaded) => {
                        say!("reservation table {}", file.display());
                        say!("SHA3-256 {}", loaded.digest);
                        say!("{}", crate::reservation_file::describe(&loaded.stats));
                        say!("usable: yes");
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e) => {
                        say!("usable: no");
                        eprintln!(
                            "error: reservation table {} is not usable: {e}",
                            file.display()
                        );
                        Ok(ExitCode::from(1))
                    }
                }
            }
        }
    }
}

fn warnings(s: &ExtractSummary) -> Vec<String> {
    let mut w = Vec::new();
    if s.stats.rows == 0 {
        w.push("the extract has a header but no data rows".to_owned());
    }
    for (column, n) in &s.identifier_columns {
        w.push(format!(
            "column {} has {n} values that are valid identifiers; identifiers must not be \
             delivered as variables",
            shown(column)
        ));
    }
    if s.stats.invalid_rows() > 0 {
        w.push(format!(
            "{} rows will be excluded from the list (counted per reason above)",
            s.stats.invalid_rows()
        ));
    }
    w
}

fn to_json(s: &ExtractSummary) -> ExtractJson {
    ExtractJson {
        sha3_256: s.digest.to_hex(),
        bytes: s.bytes,
        columns: s.columns.clone(),
        rows: s.stats.rows,
        valid_rows: s.stats.valid_rows,
        invalid_rows: s.stats.invalid_rows(),
        persons: s.stats.persons,
        persons_with_several_rows: s.persons_with_several_rows,
        max_rows_per_person: s.max_rows_per_person,
        mapped_rows: s.stats.mapped_rows,
        invalid: s
            .stats
            .invalid
            .iter()
            .map(|r| ReasonJson {
                reason: r.reason,
                count: r.count,
                lines: r.lines.clone(),
                details: details_of(s, r.reason)
                    .map(|d| DetailJson {
                        line: d.line,
                        detail: d.detail.clone(),
                        masked: d.masked.clone(),
                    })
                    .collect(),
            })
            .collect(),
        identifier_columns: s
            .identifier_columns
            .iter()
            .map(|(column, values)| IdentifierColumnJson {
                column: column.clone(),
                values: *values,
            })
            .collect(),
        warnings: warnings(s),
    }
}

fn details_of<'a>(s: &'a ExtractSummary, reason: &'a str) -> impl Iterator<Item = &'a RowIssue> {
    s.details.iter().filter(move |d| d.reason == reason)
}

fn print_text(file: &std::path::Path, s: &ExtractSummary) -> anyhow::Result<()> {
    let st = &s.stats;
    say!("extract    {}", file.display());
    say!("sha3-256   {}", s.digest);
    say!("size       {} bytes", s.bytes);
    say!(
        "columns    {} variables besides fnr, in extract order: {}",
        s.columns.len(),
        s.columns
            .iter()
            .map(|c| c.escape_debug().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    say!("rows       {}", st.rows);
    say!("  valid    {}", st.valid_rows);
    say!("  invalid  {}", st.invalid_rows());
    say!(
        "persons    {} ({} with several rows; at most {} rows for one person)",
        st.persons,
        s.persons_with_several_rows,
        s.max_rows_per_person
    );
    if st.mapped_rows > 0 {
        say!(
            "mapped     {} rows had an old identifier replaced",
            st.mapped_rows
        );
    }
    if !st.invalid.is_empty() {
        say!("excluded rows by reason (first 20 lines each):");
        for r in &st.invalid {
            let lines: Vec<String> = r.lines.iter().map(u64::to_string).collect();
            let more = if r.count > r.lines.len() as u64 {
                ", …"
            } else {
                ""
            };
            let word = if r.count == 1 { "line " } else { "lines" };
            say!(
                "  {:<22} {:>8}  {word} {}{more}",
                r.reason,
                r.count,
                lines.join(", ")
            );
            for d in details_of(s, r.reason) {
                match &d.masked {
                    Some(m) => say!("      line {}: {} [{m}]", d.line, d.detail),
                    None => say!("      line {}: {}", d.line, d.detail),
                }
            }
        }
    }
    for w in warnings(s) {
        say!("warning: {w}");
    }
    Ok(())
}
