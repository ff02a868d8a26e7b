//! `kobling-sim`: synthetic federations for Kobling.
//!
//! `kobling-sim demo` generates a synthetic population and four register
//! extracts, runs a whole project through the protocol, writes what the
//! researcher receives, and checks it against the ground truth.
#![forbid(unsafe_code)]

mod demo;

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
    /// Run a whole project on synthetic data and check the result.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
