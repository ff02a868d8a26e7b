//! `kobling keys`: create a node's keystore, and operator and researcher
//! keys.

use std::{path::PathBuf, process::ExitCode};

use clap::{Subcommand, ValueEnum};
use kobling_keys::{KdfParams, Keystore};
use kobling_protocol::manifest::Role;

use crate::{console::say, keyfile::KeyFile};

/// A node's role.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RoleArg {
    /// A register.
    Register,
    /// The linker.
    Linker,
}

/// Key subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a node's keystore and TLS certificate in DIR/keys and print
    /// its manifest entry. With a passphrase (--passphrase-file, the
    /// systemd credential `kobling-passphrase`, or KOBLING_PASSPHRASE), the
    /// keystore is encrypted under it (Argon2id).
    Init {
        /// The node's directory.
        #[arg(long)]
        dir: PathBuf,
        /// The member name, e.g. NPR.
        #[arg(long)]
        name: String,
        /// The QUIC address other nodes reach it at, host:port.
        #[arg(long)]
        address: String,
        /// Register or linker.
        #[arg(long, value_enum, default_value = "register")]
        role: RoleArg,
        /// A file holding the passphrase to encrypt the keystore under
        /// (mode 0600 or stricter; one trailing newline is ignored).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Create an operator's key file and print its public key.
    Operator {
        /// The key file to create (mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Create an access authority's key file (for the manifest's
    /// `[[authorities]]`) and print its public key.
    Authority {
        /// The key file to create (mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Create a researcher's key file (signing and receiving keys) and
    /// print the public keys.
    Researcher {
        /// The key file to create (mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
}

impl KeysCommand {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            KeysCommand::Init {
                dir,
                name,
                address,
                role,
                passphrase_file,
            } => {
                let passphrase = crate::secrets::passphrase(passphrase_file.as_deref())?;
                let name = kobling_protocol::types::Name::new(name)?;
                let host = address
                    .rsplit_once(':')
                    .map_or(address.as_str(), |(h, _)| h)
                    .trim_matches(['[', ']'])
                    .to_string();
                let ks = Keystore::create(
                    dir.join("keys"),
                    passphrase.as_ref().map(|p| p.as_str()),
                    KdfParams::default(),
                    &[host, "localhost".into()],
                )?;
                let role = match role {
                    RoleArg::Register => Role::Register,
                    RoleArg::Linker => Role::Linker,
                };
                let member = ks.manifest_entry(name, role, address);
                eprintln!("keystore created in {}; the node's manifest entry (add its operators for a register):", dir.join("keys").display());
                say!("[[members]]\n{}", toml::to_string(&member)?);
                Ok(ExitCode::SUCCESS)
            }
            KeysCommand::Operator { out } => {
                let k = KeyFile::create(&out, false)?;
                eprintln!(
                    "operator key written to {} (mode 0600); its public key for the manifest:",
                    out.display()
                );
                say!("{}", k.public());
                Ok(ExitCode::SUCCESS)
            }
            KeysCommand::Authority { out } => {
                let k = KeyFile::create(&out, false)?;
                eprintln!(
                    "access authority key written to {} (mode 0600); its public key for the manifest's [[authorities]]:",
                    out.display()
                );
                say!("{}", k.public());
                Ok(ExitCode::SUCCESS)
            }
            KeysCommand::Researcher { out } => {
                let k = KeyFile::create(&out, true)?;
                eprintln!(
                    "researcher key written to {} (mode 0600); its public keys, for the access authority's `project authorize --researcher FILE`:",
                    out.display()
                );
                say!("signing_key = \"{}\"", k.public());
                if let Some(h) = k.hpke_public() {
                    say!("hpke_key = \"{h}\"");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
