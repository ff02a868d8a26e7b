//! `kobling-sim`: synthetic federations for Kobling.
//!
//! `kobling-sim demo` generates a synthetic population and four register
//! extracts, starts a federation of node processes on this machine, runs a
//! project through the `kobling` commands, and checks what the researcher
//! receives against the ground truth. This crate is the one place where
//! `node` and `sim` meet (`sim` stays a library on `protocol` and `keys`).
//!
//! ## Layout
//!
//! ```text
//!  demo:  sim::population ──▶ extracts (CSV) + ground truth
//!         kobling keys init / manifest ──▶ federation.toml
//!         kobling node run × 5 (child processes of this program, QUIC on 127.0.0.1)
//!         kobling project submit / approve / fetch ──▶ tables
//!         tables vs sim::truth ──▶ exit status
//!  extracts: issue 13's comparison job (sim::population::comparison_job) as CSV
//!  bench: a hop against the raw curve25519-dalek kernel; a federation over QUIC
//!  kobling …: the `kobling` program itself (kobling_node::run), which the
//!         demo starts its nodes and commands with
//! ```
#![forbid(unsafe_code)]

mod bench_cmd;
mod demo;
mod rss;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Synthetic federations for Kobling.
#[derive(Debug, Parser)]
#[command(name = "kobling-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole federation on this machine: node processes over QUIC,
    /// a project on synthetic data, checked against the ground truth.
    Demo(demo::DemoArgs),
    /// Measure a hop against the raw curve25519-dalek kernel, then a whole
    /// federation over QUIC; prints `key=value` lines.
    Bench(bench_cmd::BenchArgs),
    /// Write issue 13's comparison job (the one Private-ID was measured
    /// on) as extracts for `bench --extracts`: two registers of N persons,
    /// one row each, half of them in both lists.
    Extracts(bench_cmd::ExtractsArgs),
    /// Run the `kobling` program (what the demo starts its nodes and
    /// commands with), e.g. `kobling-sim kobling audit verify …`.
    #[command(disable_help_flag = true)]
    Kobling {
        /// The `kobling` arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run_demo(&args),
        Command::Bench(args) => bench_cmd::run_bench(&args).map(|()| ExitCode::SUCCESS),
        Command::Extracts(args) => bench_cmd::write_extracts(&args).map(|()| ExitCode::SUCCESS),
        Command::Kobling { args } => {
            return kobling_node::run(std::iter::once("kobling".into()).chain(args))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
