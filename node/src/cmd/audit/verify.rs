//! `kobling audit verify`: every check, the timeline and the counts.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Args;

use super::{read, report::Report};
use crate::{
    console::{say, say_raw},
    manifest_file,
};

/// Arguments of `kobling audit verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The transcript file.
    #[arg(long, value_name = "FILE")]
    transcript: PathBuf,
    /// The federation manifest (TOML) the project ran under.
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// Print a machine-readable JSON report of every check instead.
    #[arg(long)]
    json: bool,
}

/// Runs the command: exit status 0 if the transcript verifies, 1 if not.
pub(crate) fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let loaded = read::load(&args.transcript)?;
    let manifest = manifest_file::load(&args.manifest)?;
    let report = Report::new(&args.transcript.display().to_string(), &loaded, &manifest);
    if args.json {
        let json = serde_json::to_string_pretty(&report).context("cannot render the report")?;
        say!("{json}");
    } else {
        say_raw!("{}", report.to_text());
    }
    Ok(if report.failure.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
