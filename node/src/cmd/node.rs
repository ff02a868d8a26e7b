//! `kobling node run`: run a register or linker node.

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;

use crate::{daemon, manifest_file};

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
    },
}

impl NodeCommand {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            NodeCommand::Run { dir, manifest } => {
                let manifest = manifest_file::load(&manifest)?;
                let passphrase = std::env::var("KOBLING_PASSPHRASE").ok();
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(daemon::run(
                    &dir,
                    manifest,
                    passphrase.as_deref(),
                    shutdown_signal(),
                ))?;
                Ok(ExitCode::SUCCESS)
            }
        }
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
