//! The `kobling` child processes of the demo: one-shot commands (`run`,
//! `ok`, `eventually`, `ok_measured`) and the long-running nodes.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

/// The node processes, stopped (SIGTERM, then killed) when dropped.
pub(super) struct Nodes(pub(super) Vec<(String, Child)>);

impl Nodes {
    /// Each node's peak resident set (VmHWM from /proc), in MiB; 0 where
    /// the OS does not tell.
    pub(super) fn peak_rss_mb(&self) -> Vec<(String, f64)> {
        self.0
            .iter()
            .map(|(name, c)| (name.clone(), crate::rss::peak_mb(c.id()).unwrap_or(0.0)))
            .collect()
    }

    /// The CPU seconds every node process has used so far, summed; `None`
    /// where the OS does not tell.
    pub(super) fn cpu_seconds(&self) -> Option<f64> {
        self.0
            .iter()
            .map(|(_, c)| crate::rss::cpu_seconds(c.id()))
            .sum()
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
        for (name, c) in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    _ if Instant::now() > deadline => {
                        eprintln!("node {name} did not stop in time; killing it");
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }
}

fn kobling() -> anyhow::Result<Command> {
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

/// Retries until the command succeeds (the nodes are starting or catching up).
pub(super) fn eventually(args: &[&str], what: &str, limit: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + limit;
    loop {
        let out = run(args)?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        if Instant::now() > deadline {
            bail!(
                "{what} did not succeed in {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A path as a `kobling` argument.
pub(super) fn p(path: &Path) -> anyhow::Result<&str> {
    path.to_str().context("paths must be UTF-8")
}


/// Starts a node process per register and the linker, each register with
/// its extract's directory as its extract directory (the operators'
/// approvals name the file in it).
pub(super) fn start_nodes(
    dir: &Path,
    manifest: &Path,
    registers: &[&str],
    extracts: &BTreeMap<&str, PathBuf>,
    threads: Option<usize>,
) -> anyhow::Result<Nodes> {
    let mut nodes = Nodes(Vec::new());
    for name in registers.iter().chain(std::iter::once(&"LINKER")) {
        let node_dir = dir.join("nodes").join(name);
        let log = fs::File::create(node_dir.join("node.log"))?;
        let mut command = kobling()?;
        if let Some(t) = threads {
            command.env("RAYON_NUM_THREADS", t.to_string());
        }
        let child = command
            .env(
                "KOBLING_LOG",
                std::env::var("KOBLING_LOG").unwrap_or_else(|_| "info".into()),
            )
            .args([
                "node",
                "run",
                "--dir",
                p(&node_dir)?,
                "--manifest",
                p(manifest)?,
                "--test-mode",
            ])
            .args(
                extracts
                    .get(name)
                    .and_then(|f| f.parent())
                    .map(|d| ["--extracts".as_ref(), d.as_os_str()])
                    .into_iter()
                    .flatten(),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start node {name}"))?;
        nodes.0.push((name.to_string(), child));
    }
    Ok(nodes)
}
