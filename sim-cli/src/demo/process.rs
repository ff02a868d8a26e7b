//! The demo's one-shot `kobling` commands (`run`, `ok`, `ok_measured`);
//! the long-running nodes are in `nodes.rs`.

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use anyhow::{bail, Context};

/// The `kobling` program: this binary's `kobling` subcommand, logging at
/// `KOBLING_LOG` (default `warn`).
pub(super) fn kobling() -> anyhow::Result<Command> {
    let mut c = Command::new(std::env::current_exe().context("cannot find this program")?);
    c.arg("kobling").env(
        "KOBLING_LOG",
        std::env::var("KOBLING_LOG").unwrap_or_else(|_| "warn".into()),
    );
    Ok(c)
}

pub(super) fn run(args: &[&str]) -> anyhow::Result<Output> {
    Ok(kobling()?.args(args).output()?)
}

pub(super) fn ok(args: &[&str]) -> anyhow::Result<String> {
    let out = run(args)?;
    if !out.status.success() {
        bail!(
            "kobling {} failed: {}",
            args.first().copied().unwrap_or(""),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command as [`ok`] does, and samples its peak resident memory
/// (`VmHWM`) every 20 ms while it runs: the last sample before it exits,
/// in MiB; and its CPU time, from this process's waited children's
/// (`None` where the OS does not tell).
pub(super) fn ok_measured(args: &[&str]) -> anyhow::Result<Measured> {
    let cpu_before = crate::rss::children_cpu_seconds();
    use std::io::Read as _;
    let mut child = kobling()?
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut text);
        }
        text
    });
    let mut peak: Option<f64> = None;
    let status = loop {
        if let Some(mb) = crate::rss::peak_mb(child.id()) {
            peak = Some(peak.map_or(mb, |p| p.max(mb)));
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().unwrap_or_default();
    if !status.success() {
        bail!(
            "kobling {} failed: {}",
            args.first().copied().unwrap_or(""),
            stderr.trim()
        );
    }
    let cpu_seconds = crate::rss::children_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    Ok(Measured { peak, cpu_seconds })
}

/// A command's peak memory (VmHWM, MiB) and CPU seconds, where the OS
/// tells.
pub(super) struct Measured {
    pub(super) peak: Option<f64>,
    pub(super) cpu_seconds: Option<f64>,
}

/// A path as a `kobling` argument.
pub(super) fn p(path: &Path) -> anyhow::Result<&str> {
    path.to_str().context("paths must be UTF-8")
}
