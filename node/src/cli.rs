//! The command line: one subcommand per module of `cmd`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cmd;

/// Kobling: privacy-preserving record linkage between health registers.
#[derive(Debug, Parser)]
#[command(name = "kobling", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Auditor commands: verify and read project transcripts offline.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCommand),
    /// Operator checks of extract files.
    #[command(subcommand)]
    Extract(cmd::extract::ExtractCommand),
    /// Check a federation manifest.
    #[command(subcommand)]
    Manifest(cmd::manifest::ManifestCommand),
    /// Create node keystores and operator and researcher keys.
    #[command(subcommand)]
    Keys(cmd::keys::KeysCommand),
    /// Run a node.
    #[command(subcommand)]
    Node(cmd::node::NodeCommand),
    /// Submit, approve, follow, fetch and close projects.
    #[command(subcommand)]
    Project(cmd::project::ProjectCommand),
}

impl Command {
    /// Runs the command; the exit code on success.
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Audit(c) => c.run(),
            Command::Extract(c) => c.run(),
            Command::Manifest(c) => c.run(),
            Command::Keys(c) => c.run(),
            Command::Node(c) => c.run(),
            Command::Project(c) => c.run(),
        }
    }
}
