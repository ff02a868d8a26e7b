//! The command line: one subcommand per module of `cmd`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{cmd, console::LogFormat};

/// Kobling: privacy-preserving record linkage between health registers.
#[derive(Debug, Parser)]
#[command(name = "kobling", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Show log lines on stderr (`-v` info, `-vv` debug, `-vvv` trace);
    /// by default a command prints only its result and warnings, a node
    /// logs at info. `KOBLING_LOG` or `RUST_LOG` (a tracing filter) take
    /// precedence.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// The default log filter and the log format of this command.
    pub(crate) fn logging(&self) -> (&'static str, LogFormat) {
        match &self.command {
            // A node is a service: it logs at info. A configuration file
            // that cannot be read is reported by the command itself.
            Command::Node(c) => (
                "info",
                c.settings()
                    .ok()
                    .and_then(|s| s.log_format)
                    .unwrap_or_default(),
            ),
            _ => ("warn", LogFormat::Text),
        }
    }
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
    /// Create, extend and check a federation manifest.
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
    /// Follow, export, back up and retire register domains.
    #[command(subcommand)]
    Domain(cmd::domain::DomainCommand),
    /// A domain holder's deliveries: export its table.
    #[command(subcommand)]
    Delivery(cmd::delivery::DeliveryCommand),
    /// Innsyn at an fnr register: admit a portal, ask for a person's rows
    /// on their device's behalf, open the reply on the device.
    #[command(subcommand)]
    Innsyn(cmd::innsyn::InnsynCommand),
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
            Command::Domain(c) => c.run(),
            Command::Delivery(c) => c.run(),
            Command::Innsyn(c) => c.run(),
        }
    }
}
