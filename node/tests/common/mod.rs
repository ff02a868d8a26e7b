//! What the process tests share: a federation of `kobling node run`
//! processes (NPR, KPR, SSB, RESEPT and a linker) on 127.0.0.1 with fresh
//! keystores and a manifest, driven through the `kobling` commands, and the
//! fetched tables checked against the ground truth.
//!
//! Each test file that uses it declares `mod common;`; not every file uses
//! every helper.
#![allow(dead_code)]

use std::{
    fs::File,
    net::UdpSocket,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use kobling_protocol::{
    manifest::{Ed25519Key, Manifest, Member, Operator},
    types::ProjectId,
};
use kobling_sim::{
    population::{generate, render_csv, Population, PopulationConfig},
    truth,
};

pub(crate) const REGISTERS: [&str; 4] = ["NPR", "KPR", "SSB", "RESEPT"];
pub(crate) const MEMBERS: [&str; 5] = ["NPR", "KPR", "SSB", "RESEPT", "LINKER"];
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_kobling");

pub(crate) fn kobling(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("KOBLING_LOG", "warn")
        .output()
        .expect("run kobling")
}

pub(crate) fn ok(args: &[&str]) -> String {
    let out = kobling(args);
    assert!(
        out.status.success(),
        "kobling {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Where a node is reached and where it listens.
#[derive(Clone, Debug)]
pub(crate) struct NodeAddr {
    /// The manifest address (what peers dial).
    pub(crate) advertised: String,
    /// `--listen`, if not the manifest address.
    pub(crate) listen: Option<String>,
    /// A socket the test bound and keeps, handed to the node (and to it
    /// again after every restart) as its standard input
    /// (`--listen-stdin`): no other program can take the port.
    pub(crate) socket: Option<Arc<UdpSocket>>,
}

impl NodeAddr {
    /// A fresh port on 127.0.0.1, advertised and listened on.
    pub(crate) fn direct() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        Self {
            advertised: socket.local_addr().expect("addr").to_string(),
            listen: None,
            socket: Some(Arc::new(socket)),
        }
    }
}

/// The node processes, in [`MEMBERS`] order; stopped (SIGTERM, then
/// SIGKILL) when dropped.
pub(crate) struct Nodes {
    children: Vec<Child>,
    dir: PathBuf,
    manifest: PathBuf,
    listen: Vec<Option<String>>,
    /// Sockets handed to the nodes, in [`MEMBERS`] order.
    sockets: Vec<Option<Arc<UdpSocket>>>,
    log: String,
    args: Vec<String>,
    /// Further arguments of each member, in [`MEMBERS`] order.
    each: Vec<Vec<String>>,
}

impl Nodes {
    fn start(&self, index: usize) -> Child {
        let name = MEMBERS[index];
        let (args, stdin) = self.run_args(index);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(name))
            .expect("log file");
        Command::new(BIN)
            .args(&args)
            .env("KOBLING_LOG", &self.log)
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start node")
    }

    /// The arguments and standard input that run member `index`: its
    /// socket, if the test holds one, as standard input.
    fn run_args(&self, index: usize) -> (Vec<String>, Stdio) {
        let mut args = self.start_args(index);
        let stdin = match &self.sockets[index] {
            Some(socket) => {
                args.push("--listen-stdin".into());
                Stdio::from(OwnedFd::from(socket.try_clone().expect("socket")))
            }
            None => Stdio::null(),
        };
        (args, stdin)
    }

    /// The log file of member `name`: the node's stderr, appended across
    /// restarts.
    pub(crate) fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// The process id of member `index`.
    pub(crate) fn pid(&self, index: usize) -> u32 {
        self.children[index].id()
    }

    /// SIGKILL member `index` (no chance to clean up); it stays down.
    pub(crate) fn kill(&mut self, index: usize) {
        let child = &mut self.children[index];
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }

    /// SIGKILL (no chance to clean up) and start again from its directory.
    pub(crate) fn kill_and_restart(&mut self, index: usize) {
        let child = &mut self.children[index];
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        self.children[index] = self.start(index);
    }

    /// Stops every node (SIGTERM, at most 10 s each, then SIGKILL).
    pub(crate) fn stop(&mut self) {
        for c in &mut self.children {
            if let Ok(Some(_)) = c.try_wait() {
                continue; // already stopped (killed)
            }
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
        for c in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Retries a command until it succeeds (e.g. while the nodes catch up).
pub(crate) fn eventually(args: &[&str], what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let out = kobling(args);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{what} never succeeded: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

pub(crate) struct Setup {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) manifest: PathBuf,
    pub(crate) pop: Population,
}

/// A federation of five node processes on fresh ports, with a population
/// of `persons` and one extract per register.
pub(crate) fn setup(persons: usize) -> (Setup, Nodes) {
    setup_with(persons, "warn", &[], |_| NodeAddr::direct())
}

/// As [`setup`], with each member's addresses from `addr`, the nodes' log
/// filter `log` and further `kobling node run` arguments `args`.
pub(crate) fn setup_with(
    persons: usize,
    log: &str,
    args: &[&str],
    addr: impl Fn(&str) -> NodeAddr,
) -> (Setup, Nodes) {
    setup_with_each(persons, log, args, addr, |_, _| Vec::new())
}

/// As [`setup_with`], with further `kobling node run` arguments for each
/// member from `each(name, federation directory)`.
pub(crate) fn setup_with_each(
    persons: usize,
    log: &str,
    args: &[&str],
    addr: impl Fn(&str) -> NodeAddr,
    each: impl Fn(&str, &Path) -> Vec<String>,
) -> (Setup, Nodes) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut members = Vec::new();
    let mut listen = Vec::new();
    let mut sockets = Vec::new();
    for name in MEMBERS {
        let role = if name == "LINKER" {
            "linker"
        } else {
            "register"
        };
        let a = addr(name);
        listen.push(a.listen.clone());
        sockets.push(a.socket.clone());
        let entry = ok(&[
            "keys",
            "init",
            "--dir",
            path(&d.join(name)),
            "--name",
            name,
            "--address",
            &a.advertised,
            "--role",
            role,
        ]);
        let entry = entry
            .trim_start()
            .strip_prefix("[[members]]")
            .expect("a manifest entry");
        let mut member: Member = toml::from_str(entry).expect("member entry");
        if role == "register" {
            for k in 1..=2 {
                let key = d.join(format!("{name}-operator-{k}.key"));
                let public = ok(&["keys", "operator", "--out", path(&key)]);
                member.operators.push(Operator {
                    name: format!("{name} operator {k}"),
                    key: Ed25519Key::from_hex(public.trim()).expect("hex key"),
                });
            }
        }
        members.push(member);
    }
    // The access authority that grants the tests' projects.
    let authority = d.join("authority.key");
    let authority_public = ok(&["keys", "authority", "--out", path(&authority)]);
    let manifest = Manifest {
        federation: "test".into(),
        portals: Vec::new(),
        members,
        authorities: vec![kobling_protocol::manifest::Authority {
            name: "access office".into(),
            key: Ed25519Key::from_hex(authority_public.trim()).expect("hex key"),
        }],
        domains: Vec::new(),
    };
    let manifest_path = d.join("federation.toml");
    std::fs::write(
        &manifest_path,
        toml::to_string_pretty(&manifest).expect("toml"),
    )
    .expect("write");
    ok(&["manifest", "check", path(&manifest_path)]);

    let pop = generate(&PopulationConfig {
        persons,
        seed: 21,
        ..Default::default()
    });
    for r in REGISTERS {
        std::fs::write(
            d.join(format!("{r}.csv")),
            render_csv(pop.extract(r).expect("extract")),
        )
        .expect("write");
    }
    let mut nodes = Nodes {
        children: Vec::new(),
        dir: d.to_path_buf(),
        manifest: manifest_path.clone(),
        listen,
        sockets,
        log: log.to_string(),
        args: args.iter().map(|a| a.to_string()).collect(),
        each: MEMBERS.iter().map(|m| each(m, d)).collect(),
    };
    nodes.children = (0..MEMBERS.len()).map(|i| nodes.start(i)).collect();
    (
        Setup {
            dir,
            manifest: manifest_path,
            pop,
        },
        nodes,
    )
}

/// Writes the researcher key and the spec, and submits the project.
pub(crate) fn submit(s: &Setup, project: &str) -> PathBuf {
    submit_with(s, project, &REGISTERS)
}

/// [`submit`] for a project with only `registers` (NPR among them: the
/// cohort).
pub(crate) fn submit_with(s: &Setup, project: &str, registers: &[&str]) -> PathBuf {
    let d = s.dir.path();
    let researcher = researcher_key(s, project);
    let mut spec = format!("project = \"{project}\"\ntitle = \"process test\"\nlegal_basis = \"REK test\"\ncohort = \"NPR\"\nexpires = \"2031-12-31\"\n");
    for r in registers {
        let cols: Vec<String> = s.pop.extract(r).expect("extract").columns[1..]
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect();
        spec.push_str(&format!(
            "\n[[registers]]\nname = \"{r}\"\nvariables = [{}]\n",
            cols.join(", ")
        ));
    }
    let spec_path = d.join(format!("{project}.toml"));
    std::fs::write(&spec_path, spec).expect("write spec");
    authorize(s, &spec_path, &researcher);
    eventually(
        &[
            "project",
            "submit",
            "--manifest",
            path(&s.manifest),
            "--key",
            path(&researcher),
            "--spec",
            path(&spec_path),
        ],
        "submit",
    );
    researcher
}

/// A new researcher key file for `project`, its public keys beside it
/// (`<key>.pub`, what `kobling keys researcher` printed).
pub(crate) fn researcher_key(s: &Setup, project: &str) -> PathBuf {
    let researcher = s.dir.path().join(format!("{project}-researcher.key"));
    let public = ok(&["keys", "researcher", "--out", path(&researcher)]);
    std::fs::write(public_keys(&researcher), public).expect("write public keys");
    researcher
}

/// Where [`researcher_key`] wrote the public keys of `researcher`.
pub(crate) fn public_keys(researcher: &Path) -> PathBuf {
    let mut p = researcher.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// The federation's access authority grants `spec` for `researcher` (a
/// key file made by [`researcher_key`]): writes `<spec>.grant`.
pub(crate) fn authorize(s: &Setup, spec: &Path, researcher: &Path) {
    ok(&[
        "project",
        "authorize",
        "--manifest",
        path(&s.manifest),
        "--key",
        path(&s.dir.path().join("authority.key")),
        "--spec",
        path(spec),
        "--researcher",
        path(&public_keys(researcher)),
    ]);
}

pub(crate) fn approve_all(s: &Setup, project: &str) {
    approve(s, project, &REGISTERS);
}

/// Both operators of each of `registers` approve their extract.
pub(crate) fn approve(s: &Setup, project: &str, registers: &[&str]) {
    let d = s.dir.path();
    for r in registers {
        for k in 1..=2 {
            let key = d.join(format!("{r}-operator-{k}.key"));
            let extract = d.join(format!("{r}.csv"));
            eventually(
                &[
                    "project",
                    "approve",
                    "--manifest",
                    path(&s.manifest),
                    "--key",
                    path(&key),
                    "--project",
                    project,
                    "--extract",
                    path(&extract),
                ],
                "approve",
            );
        }
    }
}

/// Fetches into `d/<project>` and checks the tables against the ground truth.
pub(crate) fn fetch_and_check(s: &Setup, researcher: &Path, project: &str) -> PathBuf {
    fetch_and_check_with(s, researcher, project, &REGISTERS)
}

/// [`fetch_and_check`] for a project with only `registers`.
/// The researcher fetches `project` into `out` (retried until the
/// delivery is ready).
pub(crate) fn fetch(s: &Setup, researcher: &Path, project: &str, out: &Path) {
    eventually(
        &[
            "project",
            "fetch",
            "--manifest",
            path(&s.manifest),
            "--key",
            path(researcher),
            "--project",
            project,
            "--out",
            path(out),
        ],
        "fetch",
    );
}

pub(crate) fn fetch_and_check_with(
    s: &Setup,
    researcher: &Path,
    project: &str,
    registers: &[&str],
) -> PathBuf {
    let d = s.dir.path();
    let out = d.join(project);
    fetch(s, researcher, project, &out);
    let keystores: Vec<PathBuf> = registers
        .iter()
        .chain(std::iter::once(&"LINKER"))
        .map(|m| d.join(m).join("keys"))
        .collect();
    let lnr_of =
        truth::lnr_from_keystores(&keystores, &ProjectId::new(project).expect("valid"), &s.pop)
            .expect("shares");
    let tables = truth::read_tables(&out, registers).expect("tables");
    assert_eq!(
        truth::compare(&s.pop, &lnr_of, "NPR", &tables),
        Vec::<String>::new(),
        "the fetched tables differ from the ground truth"
    );
    let npr = &tables[&kobling_protocol::types::Name::new("NPR").expect("valid")];
    assert_eq!(
        npr.iter()
            .map(|(l, _)| *l)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        s.pop.members("NPR").len(),
        "the whole cohort"
    );
    for f in [
        "transcript.kob",
        "persons.csv",
        "persons.parquet",
        "report.txt",
        "NPR.parquet",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    out
}

/// Writes the spec of `project` with `registers` (NPR among them: the
/// cohort) next to the extracts and returns its path; what [`submit_with`]
/// submits.
pub(crate) fn write_spec(s: &Setup, project: &str, registers: &[&str]) -> PathBuf {
    let mut spec = format!("project = \"{project}\"\ntitle = \"process test\"\nlegal_basis = \"REK test\"\ncohort = \"NPR\"\nexpires = \"2031-12-31\"\n");
    for r in registers {
        let cols: Vec<String> = s.pop.extract(r).expect("extract").columns[1..]
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect();
        spec.push_str(&format!(
            "\n[[registers]]\nname = \"{r}\"\nvariables = [{}]\n",
            cols.join(", ")
        ));
    }
    let spec_path = s.dir.path().join(format!("{project}.toml"));
    std::fs::write(&spec_path, spec).expect("write spec");
    spec_path
}

/// Checks the tables fetched into `out` against the ground truth: what
/// [`fetch_and_check_with`] does after fetching.
pub(crate) fn check_fetched(s: &Setup, out: &Path, project: &str, registers: &[&str]) {
    let d = s.dir.path();
    let keystores: Vec<PathBuf> = registers
        .iter()
        .chain(std::iter::once(&"LINKER"))
        .map(|m| d.join(m).join("keys"))
        .collect();
    let lnr_of =
        truth::lnr_from_keystores(&keystores, &ProjectId::new(project).expect("valid"), &s.pop)
            .expect("shares");
    let tables = truth::read_tables(out, registers).expect("tables");
    assert_eq!(
        truth::compare(&s.pop, &lnr_of, "NPR", &tables),
        Vec::<String>::new(),
        "the fetched tables of {project} differ from the ground truth"
    );
    let npr = &tables[&kobling_protocol::types::Name::new("NPR").expect("valid")];
    assert_eq!(
        npr.iter()
            .map(|(l, _)| *l)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        s.pop.members("NPR").len(),
        "the whole cohort"
    );
}

/// Rewrites the registers' extracts from a new population `pop` (before
/// any approval: the nodes read extracts only when approved).
pub(crate) fn replace_population(s: &mut Setup, pop: Population) {
    for r in REGISTERS {
        std::fs::write(
            s.dir.path().join(format!("{r}.csv")),
            render_csv(pop.extract(r).expect("extract")),
        )
        .expect("write");
    }
    s.pop = pop;
}

/// The (list, hop, chunk) of every "chunk stepped" debug line in a node
/// log (the engine writes one per chunk verified, stepped and committed).
pub(crate) fn stepped_chunks(log: &str) -> Vec<(String, u32, u64)> {
    log.lines()
        .filter(|l| l.contains("chunk stepped"))
        .map(without_ansi)
        .filter_map(|l| {
            let field = |name: &str| {
                let start = l.find(&format!(" {name}="))? + name.len() + 2;
                let rest = &l[start..];
                Some(rest[..rest.find(' ').unwrap_or(rest.len())].to_string())
            };
            Some((
                field("list")?,
                field("hop")?.parse().ok()?,
                field("chunk")?.parse().ok()?,
            ))
        })
        .collect()
}

/// A log line without its ANSI colour codes.
pub(crate) fn without_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (a letter).
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Nodes {
    /// SIGKILL member `index` and start it again from its directory under
    /// `sh -c "<prelude>; exec kobling node run …"` (e.g. a `ulimit`).
    pub(crate) fn kill_and_restart_under(&mut self, index: usize, prelude: &str) {
        self.kill(index);
        let (plain, stdin) = self.run_args(index);
        let name = MEMBERS[index];
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(name))
            .expect("log file");
        self.children[index] = Command::new("sh")
            .arg("-c")
            .arg(format!("{prelude}; exec \"$0\" \"$@\""))
            .arg(BIN)
            .args(&plain)
            .env("KOBLING_LOG", &self.log)
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start node");
    }

    /// Starts member `index` again (after [`Nodes::kill`]) with further
    /// `kobling node run` arguments, kept for its later restarts.
    pub(crate) fn restart_with(&mut self, index: usize, extra: &[&str]) {
        self.each[index].extend(extra.iter().map(|a| a.to_string()));
        self.children[index] = self.start(index);
    }

    /// Starts member `index` again (after [`Nodes::kill`]).
    pub(crate) fn restart(&mut self, index: usize) {
        self.children[index] = self.start(index);
    }

    /// The `kobling` arguments that run member `index`.
    pub(crate) fn start_args(&self, index: usize) -> Vec<String> {
        let name = MEMBERS[index];
        let mut args = vec![
            "node".to_string(),
            "run".into(),
            "--dir".into(),
            path(&self.dir.join(name)).into(),
            "--manifest".into(),
            path(&self.manifest).into(),
            "--test-mode".into(),
            "--extracts".into(),
            path(&self.dir).into(),
        ];
        if let Some(listen) = &self.listen[index] {
            args.extend(["--listen".into(), listen.clone()]);
        }
        args.extend(self.args.iter().cloned());
        args.extend(self.each[index].iter().cloned());
        args
    }

    /// Whether member `index` is still running.
    pub(crate) fn running(&mut self, index: usize) -> bool {
        matches!(self.children[index].try_wait(), Ok(None))
    }
}

/// Runs a node from `args` that is expected to stop by itself; its exit
/// code and stderr.
pub(crate) fn run_expecting_exit(args: &[String]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("KOBLING_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
