//! The demo's long-running `kobling node run` processes: their ports,
//! held from the federation's creation until each node starts; their
//! start; and the watch on them while the demo waits for them.

use std::{
    collections::BTreeMap,
    fs,
    net::UdpSocket,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use kobling_protocol::manifest::Manifest;

use super::process::{kobling, p, run};

/// The ports of a new federation's members, each held bound from the
/// moment its address enters the manifest until just before its node is
/// spawned: no other program, and no other member, can be given it
/// meanwhile. A reused federation's addresses are its manifest's (none
/// held).
#[derive(Default)]
pub(super) struct Ports(BTreeMap<String, UdpSocket>);

impl Ports {
    /// Reserves a free UDP port on 127.0.0.1 for `member`: its address.
    pub(super) fn reserve(&mut self, member: &str) -> anyhow::Result<String> {
        let socket = UdpSocket::bind("127.0.0.1:0").context("cannot reserve a port")?;
        let address = socket.local_addr()?.to_string();
        self.0.insert(member.to_string(), socket);
        Ok(address)
    }

    /// Frees `member`'s port, for its node to bind.
    fn release(&mut self, member: &str) {
        self.0.remove(member);
    }
}

/// One node process.
struct Node {
    name: String,
    /// Its address in the manifest.
    address: String,
    /// Where its stderr goes.
    log: PathBuf,
    child: Child,
}

/// The node processes, stopped (SIGTERM, then killed) when dropped.
pub(super) struct Nodes(Vec<Node>);

impl Nodes {
    /// How many nodes run.
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// Each node's peak resident set (VmHWM from /proc), in MiB; 0 where
    /// the OS does not tell.
    pub(super) fn peak_rss_mb(&self) -> Vec<(String, f64)> {
        self.0
            .iter()
            .map(|n| {
                let mb = crate::rss::peak_mb(n.child.id()).unwrap_or(0.0);
                (n.name.clone(), mb)
            })
            .collect()
    }

    /// The CPU seconds every node process has used so far, summed; `None`
    /// where the OS does not tell.
    pub(super) fn cpu_seconds(&self) -> Option<f64> {
        self.0
            .iter()
            .map(|n| crate::rss::cpu_seconds(n.child.id()))
            .sum()
    }

    /// Fails if a node has exited (a node runs until the demo stops it),
    /// naming it and its address: most often its address is taken by
    /// another program.
    ///
    /// # Errors
    ///
    /// The first node that is no longer running, with the end of its log.
    pub(super) fn ensure_running(&mut self) -> anyhow::Result<()> {
        for node in &mut self.0 {
            let Some(status) = node.child.try_wait()? else {
                continue;
            };
            let log = fs::read_to_string(&node.log).unwrap_or_default();
            let last = log
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .unwrap_or("(nothing)");
            let (name, address, path) = (&node.name, &node.address, node.log.display());
            // "Address already in use (os error 98)", as the OS says it.
            if log.contains("already in use") {
                bail!("node {name} stopped ({status}): its address {address} is taken by another program; free it, or run the demo with another --out. The end of {path}: {last}");
            }
            bail!("node {name} ({address}) stopped ({status}); the end of {path}: {last}");
        }
        Ok(())
    }

    /// Retries the command until it succeeds (the nodes are starting or
    /// catching up), as long as every node runs.
    pub(super) fn eventually(
        &mut self,
        args: &[&str],
        what: &str,
        limit: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            let out = run(args)?;
            if out.status.success() {
                return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
            }
            self.ensure_running()?;
            if Instant::now() > deadline {
                bail!(
                    "{what} did not succeed in {limit:?}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for n in &mut self.0 {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(n.child.id().to_string())
                .status();
        }
        for Node { name, child, .. } in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    _ if Instant::now() > deadline => {
                        eprintln!("node {name} did not stop in time; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }
}

/// Starts a node process per register and the linker, each register with
/// its extract's directory as its extract directory (the operators'
/// approvals name the file in it). Each node's reserved port is freed
/// just before it starts.
pub(super) fn start_nodes(
    dir: &Path,
    manifest: &Path,
    registers: &[&str],
    extracts: &BTreeMap<&str, PathBuf>,
    node_args: &BTreeMap<&str, Vec<String>>,
    threads: Option<usize>,
    mut ports: Ports,
) -> anyhow::Result<Nodes> {
    let members = toml::from_str::<Manifest>(&fs::read_to_string(manifest)?)?.members;
    let mut nodes = Nodes(Vec::new());
    for name in registers.iter().chain(std::iter::once(&"LINKER")) {
        let node_dir = dir.join("nodes").join(name);
        let log_path = node_dir.join("node.log");
        let log = fs::File::create(&log_path)?;
        let mut command = kobling()?;
        if let Some(t) = threads {
            command.env("RAYON_NUM_THREADS", t.to_string());
        }
        command
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
            .args(node_args.get(name).into_iter().flatten())
            .stdout(Stdio::null())
            .stderr(log);
        ports.release(name);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start node {name}"))?;
        let address = members
            .iter()
            .find(|m| m.name.as_str() == *name)
            .map_or_else(|| "(not in the manifest)".into(), |m| m.address.clone());
        nodes.0.push(Node {
            name: name.to_string(),
            address,
            log: log_path,
            child,
        });
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_are_distinct_and_held_until_released() {
        let mut ports = Ports::default();
        let names = ["NPR", "KPR", "SSB", "RESEPT", "APOTEK", "LINKER"];
        let addresses: Vec<String> = names
            .iter()
            .map(|n| ports.reserve(n).expect("reserve"))
            .collect();
        let distinct: std::collections::BTreeSet<&String> = addresses.iter().collect();
        assert_eq!(distinct.len(), names.len(), "{addresses:?}");
        // Held: nobody else can bind them now.
        for a in &addresses {
            assert!(UdpSocket::bind(a).is_err(), "{a} is not held");
        }
        // Released: the node can.
        ports.release("NPR");
        UdpSocket::bind(&addresses[0]).expect("NPR's port is free for its node");
        assert!(UdpSocket::bind(&addresses[1]).is_err());
    }
}
