//! `kobling node run`: run a register or linker node.

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;
use kobling_protocol::hop::{DEFAULT_CHUNK_SIZE, MAX_CHUNK_POINTS};

use crate::{daemon, manifest_file, secrets};

/// Node subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Run the node daemon (role and address from the manifest) until
    /// interrupted (SIGINT / SIGTERM).
    Run {
        /// The node's directory (keystore in DIR/keys, state in DIR/state.db).
        #[arg(long)]
        dir: PathBuf,
        /// The federation manifest every node pins.
        #[arg(long)]
        manifest: PathBuf,
        /// The UDP address to listen on (and dial from). Default: this
        /// node's manifest address. Peers always dial the manifest address,
        /// so use this behind a NAT, a load balancer or a relay that
        /// forwards the manifest address here.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Points per chunk in the lists this node announces (a power of
        /// two, at most 65536): smaller chunks stream in more, smaller
        /// messages.
        #[arg(long, default_value_t = DEFAULT_CHUNK_SIZE, value_parser = chunk_size)]
        chunk_size: u32,
        /// A file holding the keystore's passphrase (mode 0600 or
        /// stricter; one trailing newline is ignored). Without it, the
        /// systemd credential `kobling-passphrase` is used if
        /// $CREDENTIALS_DIRECTORY holds it, else $KOBLING_PASSPHRASE (removed
        /// from the environment once read).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Test mode, for tests and demonstrations only: accept synthetic
        /// test numbers (month + 80) in extracts and orders that ask for
        /// them. A production node refuses a test-mode order.
        #[arg(long)]
        test_mode: bool,
        /// The directory extract files are read from: an operator's
        /// approval names a file in it (`project approve --extract`), never
        /// a path. Default: DIR/extracts.
        #[arg(long, value_name = "DIR")]
        extracts: Option<PathBuf>,
    },
}

impl NodeCommand {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            NodeCommand::Run {
                dir,
                manifest,
                listen,
                chunk_size,
                passphrase_file,
                test_mode,
                extracts,
            } => {
                // Before the runtime's threads exist: this edits the
                // environment.
                let passphrase = secrets::passphrase(passphrase_file.as_deref())?;
                let manifest = manifest_file::load(&manifest)?;
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(daemon::run(
                    &dir,
                    manifest,
                    passphrase,
                    &daemon::Options {
                        listen,
                        chunk_size,
                        test_mode,
                        extracts,
                    },
                    shutdown_signal(),
                ))?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// A chunk size: a power of two, at most [`MAX_CHUNK_POINTS`].
fn chunk_size(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if n.is_power_of_two() && n as usize <= MAX_CHUNK_POINTS {
        Ok(n)
    } else {
        Err(format!(
            "{n} is not a power of two between 1 and {MAX_CHUNK_POINTS}"
        ))
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
