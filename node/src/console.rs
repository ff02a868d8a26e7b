//! What a command writes to the terminal: its result on stdout (through
//! [`say!`] and [`say_raw!`], which end the command cleanly when stdout is
//! a closed pipe, e.g. `kobling audit show … | head`), and its logs on
//! stderr (see [`init_logging`]).
//!
//! ```text
//!  say!(…) ──▶ stdout ── BrokenPipe ──▶ Err(StdoutClosed) ──▶ `run` exits 0
//!  tracing ──▶ filter (KOBLING_LOG, RUST_LOG, -v, the command's default)
//!          ──▶ text (ANSI only on a terminal) or JSON, one object per line ──▶ stderr
//! ```

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;

/// Stdout was closed by its reader: the command stops, and exits 0.
#[derive(Debug, thiserror::Error)]
#[error("stdout is closed")]
pub(crate) struct StdoutClosed;

/// Writes `args` to stdout (and a newline if `newline`).
///
/// # Errors
///
/// [`StdoutClosed`] if the reader went away (a closed pipe), or the
/// write error.
pub(crate) fn write_out(args: std::fmt::Arguments<'_>, newline: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| {
            if newline {
                out.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| out.flush());
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to stdout")),
    }
}

/// `println!` that returns (with `?`) instead of panicking on a closed
/// stdout.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::console::write_out(format_args!($($arg)*), true)?
    };
}

/// `print!` that returns (with `?`) instead of panicking on a closed
/// stdout.
macro_rules! say_raw {
    ($($arg:tt)*) => {
        $crate::console::write_out(format_args!($($arg)*), false)?
    };
}

pub(crate) use {say, say_raw};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines (colour only on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the log subscriber (on stderr). The filter is `KOBLING_LOG`,
/// else `RUST_LOG`, else the level `-v` asks for (`-v` info, `-vv` debug,
/// `-vvv` trace), else `default` (`warn` for a command: only its result
/// and warnings; `info` for a node).
pub(crate) fn init_logging(verbose: u8, default: &str, format: LogFormat) {
    let from_env = ["KOBLING_LOG", "RUST_LOG"]
        .into_iter()
        .find_map(|var| EnvFilter::try_from_env(var).ok());
    let filter = from_env.unwrap_or_else(|| {
        EnvFilter::new(match verbose {
            0 => default,
            1 => "info",
            2 => "debug",
            _ => "trace",
        })
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second call (the simulator runs commands in-process too) keeps the
    // first subscriber.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}
