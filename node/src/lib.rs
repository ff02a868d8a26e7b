//! `kobling`: the Kobling node daemon and the researcher, operator and
//! auditor commands.
//!
//! The crate is a library with a thin binary: `src/main.rs` only calls
//! [`run`], which parses the command line and runs the command (tools, the
//! simulator, start the same program as their own child processes). What a
//! program embedding a node uses is public:
//!
//! - [`daemon::run`]: a node, until a shutdown future resolves (on a socket
//!   the caller bound, or on its manifest address);
//! - [`engine::Engine`]: the node's core, the driver of the protocol's rules
//!   over a [`store::Store`] (`handle` a message, `tick`, `outbox_to`,
//!   `acked`);
//! - [`net::client::Client`]: the QUIC client every command and the sender
//!   use, pinned to the manifest ([`net::endpoint`], [`net::tls`],
//!   [`net::frame`] for its pieces);
//! - [`testing`] (feature `testing`): a federation of real engines on an
//!   in-memory network with a virtual clock, for tests.
//!
//! `docs/architecture.md` follows one chunk and one approval from the
//! socket to the commit. (Built by `cargo fuzz`, with `--cfg fuzzing`, the
//! crate also has a `fuzzing` module: the readers of outside bytes, for the
//! targets in `fuzz/`.)
//!
//! ## Layout
//!
//! ```text
//!  main ──▶ run ── parse, logging (console) ──▶ cli::Command ──▶ cmd::<command>::run
//!                                            ├─ node run [--config] ──▶ daemon::run ──▶ net (QUIC, pinned TLS) ─┐
//!                                            │      sender, ticker, metrics (/metrics, /healthz)               │
//!                                            │    engine::Engine::handle ◀─────────────────────────────────────┘
//!                                            │      1 protocol::project::authorise (kind, roles)
//!                                            │      2 ProjectView::admit (project state, loaded once)
//!                                            │      3 engine/<concern>.rs: sequencer · approval · list
//!                                            │        · chain · linking · delivery · lifecycle
//!                                            │      4 store: one transaction, with the outbox
//!                                            ├─ project … ──▶ net::client ──▶ linker / own node; researcher (verify, open)
//!                                            │    fetch ──▶ delivery_files (typed tables via output, codebook, report)
//!                                            ├─ audit …, extract check, manifest init/add/check, keys …
//!  manifest_file: the federation manifest (TOML) every command pins; spec: the researcher's project spec
//!  console: stdout that ends cleanly on a closed pipe (say!), the log subscriber
//!  testing: Federation ──▶ Net (engines, virtual clock, faults) ──▶ researcher's client
//!  reshare: a key holder's side of a register domain's re-share (its CLI and the tests)
//! ```
#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod console;
pub mod daemon;
mod delivery_files;
pub mod engine;
mod extract_file;
#[cfg(fuzzing)]
pub mod fuzzing;
mod identified;
mod keyfile;
mod manifest_file;
mod metrics;
pub mod net;
mod output;
mod prepare;
pub mod private_fs;
mod researcher;
mod researcher_list;
mod researcher_state;
mod reservation_file;
pub mod reshare;
mod secrets;
mod sender;
mod spec;
mod staging;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

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
    // Every command handles keys: none may leave them in a core dump.
    if let Err(e) = secrets::no_core_dumps() {
        eprintln!("warning: cannot disable core dumps: {e}");
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
    let (default_filter, format) = cli.logging();
    console::init_logging(cli.verbose, default_filter, format);
    match cli.command.run() {
        Ok(code) => code,
        // The reader of our output went away (`… | head`): not an error.
        Err(e) if e.is::<console::StdoutClosed>() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
