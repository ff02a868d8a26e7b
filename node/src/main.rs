//! `kobling`: the Kobling node daemon and the researcher, operator and
//! auditor commands.
//!
//! ## Layout
//!
//! ```text
//!  main ── tracing, parse ──▶ cli::Command ──▶ cmd::<command>::run
//!  manifest_file: the federation manifest (TOML) every command pins
//! ```
#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod daemon;
mod engine;
mod extract_file;
mod keyfile;
mod manifest_file;
mod net;
mod researcher;
mod store;

use clap::Parser;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KOBLING_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = cli::Cli::parse();
    match cli.command.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
