//! `kobling`: the Kobling node daemon and the researcher, operator and
//! auditor commands.
//!
//! The crate is the `kobling` binary's library: [`run`] runs the command
//! line (so that tools, the simulator, can start the same program as their
//! own child processes), and [`engine`] is the node's core, the driver of
//! the protocol's rules over a [`store`]. `docs/architecture.md` follows
//! one chunk and one approval from the socket to the commit.
//! (Built by `cargo fuzz`, with `--cfg fuzzing`, it also has a `fuzzing`
//! module: the readers of outside bytes, for the targets in `fuzz/`.)
//!
//! ## Layout
//!
//! ```text
//!  run ── tracing, parse ──▶ cli::Command ──▶ cmd::<command>::run
//!                                            ├─ node run ──▶ daemon ──▶ net (QUIC, pinned TLS) ─┐
//!                                            │                 sender, ticker                   │
//!                                            │    engine::Engine::handle ◀──────────────────────┘
//!                                            │      1 protocol::project::authorise (kind, roles)
//!                                            │      2 ProjectView::admit (project state, loaded once)
//!                                            │      3 engine/<concern>.rs: sequencer · approval · list
//!                                            │        · chain · linking · delivery · lifecycle
//!                                            │      4 store: one transaction, with the outbox
//!                                            ├─ project … ──▶ net client ──▶ linker / own node; researcher (verify, open)
//!                                            ├─ audit …, extract check, manifest check, keys …
//!  manifest_file: the federation manifest (TOML) every command pins
//! ```
#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod daemon;
pub mod engine;
mod extract_file;
#[cfg(fuzzing)]
pub mod fuzzing;
#[cfg(test)]
mod hostile_tests;
mod keyfile;
mod manifest_file;
mod net;
mod output;
mod prepare;
mod researcher;
mod secrets;
mod sender;
mod staging;
pub mod store;

use std::{ffi::OsString, process::ExitCode};

use clap::Parser;

/// Runs the `kobling` command line on `args` (the first is the program's
/// name) and returns its exit status: 0 success, 1 a negative answer (a
/// transcript that does not verify, an unusable extract), 2 an error.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KOBLING_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    // Every command handles keys: none may leave them in a core dump.
    if let Err(e) = secrets::no_core_dumps() {
        tracing::warn!(error = %e, "cannot disable core dumps");
    }
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
