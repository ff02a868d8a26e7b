//! Issue 3's acceptance: five `kobling node run` processes (NPR, KPR, SSB,
//! RESEPT and a linker) on 127.0.0.1, fresh keystores and a manifest, a
//! project with cohort NPR driven only through the `kobling` commands, and
//! the fetched tables checked against the ground truth.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use kobling_protocol::{
    manifest::{Key32, Manifest, Member, Operator},
    types::ProjectId,
};
use kobling_sim::{
    inmem::render_csv,
    population::{generate, Population, PopulationConfig},
    truth,
};

const REGISTERS: [&str; 4] = ["NPR", "KPR", "SSB", "RESEPT"];
const BIN: &str = env!("CARGO_BIN_EXE_kobling");

fn kobling(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("KOBLING_LOG", "warn")
        .output()
        .expect("run kobling")
}

fn ok(args: &[&str]) -> String {
    let out = kobling(args);
    assert!(
        out.status.success(),
        "kobling {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Nodes(Vec<Child>, PathBuf, PathBuf);

impl Nodes {
    fn start(dir: &Path, manifest: &Path, name: &str) -> Child {
        Command::new(BIN)
            .args([
                "node",
                "run",
                "--dir",
                path(&dir.join(name)),
                "--manifest",
                path(manifest),
            ])
            .env("KOBLING_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node")
    }

    /// SIGKILL (no chance to clean up) and start again from its directory.
    fn kill_and_restart(&mut self, index: usize, name: &str) {
        let child = &mut self.0[index];
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        self.0[index] = Self::start(&self.1, &self.2, name);
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
        for c in &mut self.0 {
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
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Retries a command until it succeeds (e.g. while the nodes catch up).
fn eventually(args: &[&str], what: &str) -> String {
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

struct Setup {
    dir: tempfile::TempDir,
    manifest: PathBuf,
    pop: Population,
}

fn setup(persons: usize) -> (Setup, Nodes) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut members = Vec::new();
    for name in REGISTERS.iter().chain(std::iter::once(&"LINKER")) {
        let role = if *name == "LINKER" {
            "linker"
        } else {
            "register"
        };
        let address = format!("127.0.0.1:{}", free_port());
        let entry = ok(&[
            "keys",
            "init",
            "--dir",
            path(&d.join(name)),
            "--name",
            name,
            "--address",
            &address,
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
                    key: Key32::from_hex(public.trim()).expect("hex key"),
                });
            }
        }
        members.push(member);
    }
    let manifest = Manifest {
        federation: "test".into(),
        members,
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
    let children = REGISTERS
        .iter()
        .chain(std::iter::once(&"LINKER"))
        .map(|name| Nodes::start(d, &manifest_path, name))
        .collect();
    let nodes = Nodes(children, d.to_path_buf(), manifest_path.clone());
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
fn submit(s: &Setup, project: &str) -> PathBuf {
    let d = s.dir.path();
    let researcher = d.join(format!("{project}-researcher.key"));
    ok(&["keys", "researcher", "--out", path(&researcher)]);
    let mut spec = format!("project = \"{project}\"\ntitle = \"process test\"\nlegal_basis = \"REK test\"\ncohort = \"NPR\"\nexpires = \"2031-12-31\"\n");
    for r in REGISTERS {
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

fn approve_all(s: &Setup, project: &str) {
    let d = s.dir.path();
    for r in REGISTERS {
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
fn fetch_and_check(s: &Setup, researcher: &Path, project: &str) -> PathBuf {
    let d = s.dir.path();
    let out = d.join(project);
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
            path(&out),
        ],
        "fetch",
    );
    let keystores: Vec<PathBuf> = REGISTERS
        .iter()
        .chain(std::iter::once(&"LINKER"))
        .map(|m| d.join(m).join("keys"))
        .collect();
    let lnr_of =
        truth::lnr_from_keystores(&keystores, &ProjectId::new(project).expect("valid"), &s.pop)
            .expect("shares");
    let tables = truth::read_tables(&out, &REGISTERS).expect("tables");
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

#[test]
fn five_node_processes_run_a_project_through_the_commands() {
    let (s, _nodes) = setup(1_200);
    let m = path(&s.manifest);
    let researcher = submit(&s, "E2E-1");
    approve_all(&s, "E2E-1");
    fetch_and_check(&s, &researcher, "E2E-1");
    let status = ok(&[
        "project",
        "status",
        "--manifest",
        m,
        "--key",
        path(&researcher),
        "--project",
        "E2E-1",
        "--watch",
    ]);
    assert!(status.contains("delivered: yes"), "{status}");

    // Close: afterwards a fetch fails with a clear message.
    ok(&[
        "project",
        "close",
        "--manifest",
        m,
        "--key",
        path(&researcher),
        "--project",
        "E2E-1",
    ]);
    let again = kobling(&[
        "project",
        "fetch",
        "--manifest",
        m,
        "--key",
        path(&researcher),
        "--project",
        "E2E-1",
        "--out",
        path(&s.dir.path().join("again")),
    ]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("closed"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn nodes_killed_during_the_chain_restart_and_finish_with_the_same_output() {
    let (s, mut nodes) = setup(3_000);
    let researcher = submit(&s, "KILL-1");
    approve_all(&s, "KILL-1");
    // The chain is running: kill a register and the linker without warning,
    // start them again from their directories, twice.
    for round in 0..2 {
        std::thread::sleep(Duration::from_millis(150 + 200 * round));
        nodes.kill_and_restart(1, "KPR");
        nodes.kill_and_restart(4, "LINKER");
    }
    // The delivery is exactly the ground truth, as in an uninterrupted run.
    fetch_and_check(&s, &researcher, "KILL-1");
}
