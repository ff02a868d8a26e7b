//! `kobling audit`: verify and show project transcripts offline.

use std::process::ExitCode;

use clap::Subcommand;

/// Auditor subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {}

impl AuditCommand {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {}
    }
}
