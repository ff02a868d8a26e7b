//! `kobling manifest`: check a federation manifest.

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;
use kobling_protocol::manifest::Role;

use crate::{console::say, manifest_file};

/// Manifest subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ManifestCommand {
    /// Validate a manifest and print its digest and members.
    Check {
        /// The manifest file (TOML).
        file: PathBuf,
    },
}

impl ManifestCommand {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            ManifestCommand::Check { file } => {
                let m = manifest_file::load(&file)?;
                say!(
                    "manifest OK: federation {:?}, digest {}",
                    m.federation,
                    m.digest()
                );
                for member in &m.members {
                    let role = match member.role {
                        Role::Register => "register",
                        Role::Linker => "linker",
                    };
                    say!(
                        "  {:<10} {:<8} {:<24} tls {}…  operators: {}",
                        member.name.as_str(),
                        role,
                        member.address,
                        &member.tls_spki_sha256.to_hex()[..16],
                        member
                            .operators
                            .iter()
                            .map(|o| o.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
