//! Issue 3's acceptance: five `kobling node run` processes (NPR, KPR, SSB,
//! RESEPT and a linker) on 127.0.0.1, fresh keystores and a manifest, a
//! project with cohort NPR driven only through the `kobling` commands, and
//! the fetched tables checked against the ground truth.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use kobling_keys::Keystore;
use kobling_protocol::{
    chain::multiply_decoded,
    link::Lnr,
    manifest::{Key32, Manifest, Member, Operator},
    share::{Domain, Share},
    types::ProjectId,
};
use kobling_sim::{
    inmem::render_csv,
    population::{generate, Population, PopulationConfig},
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

struct Nodes(Vec<Child>);

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
    let mut children = Vec::new();
    for name in REGISTERS.iter().chain(std::iter::once(&"LINKER")) {
        let child = Command::new(BIN)
            .args([
                "node",
                "run",
                "--dir",
                path(&d.join(name)),
                "--manifest",
                path(&manifest_path),
            ])
            .env("KOBLING_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node");
        children.push(child);
    }
    (
        Setup {
            dir,
            manifest: manifest_path,
            pop,
        },
        Nodes(children),
    )
}

fn expected_lnr(dir: &Path, project: &str, pop: &Population) -> Vec<Lnr> {
    let p = ProjectId::new(project).expect("valid");
    let domain = Domain::Project(p.clone());
    let mut key: Option<Share> = None;
    for m in REGISTERS.iter().chain(std::iter::once(&"LINKER")) {
        let s = Keystore::open(dir.join(m).join("keys"), None)
            .expect("keystore")
            .share(&domain)
            .expect("share");
        key = Some(match key {
            None => s,
            Some(k) => k.product(&s),
        });
    }
    let key = key.expect("key");
    let ids: Vec<_> = pop.persons.iter().map(|p| p.id.identity_point()).collect();
    multiply_decoded(&key, &ids)
        .iter()
        .map(|pt| Lnr::derive(&p, pt))
        .collect()
}

#[test]
fn five_node_processes_run_a_project_through_the_commands() {
    let (s, _nodes) = setup(1_200);
    let d = s.dir.path();
    let m = path(&s.manifest);
    let researcher = d.join("researcher.key");
    ok(&["keys", "researcher", "--out", path(&researcher)]);
    let mut spec = String::from("project = \"E2E-1\"\ntitle = \"process test\"\nlegal_basis = \"REK test\"\ncohort = \"NPR\"\nexpires = \"2031-12-31\"\n");
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
    let spec_path = d.join("spec.toml");
    std::fs::write(&spec_path, spec).expect("write spec");
    eventually(
        &[
            "project",
            "submit",
            "--manifest",
            m,
            "--key",
            path(&researcher),
            "--spec",
            path(&spec_path),
        ],
        "submit",
    );

    for r in REGISTERS {
        for k in 1..=2 {
            let key = d.join(format!("{r}-operator-{k}.key"));
            eventually(
                &[
                    "project",
                    "approve",
                    "--manifest",
                    m,
                    "--key",
                    path(&key),
                    "--project",
                    "E2E-1",
                    "--extract",
                    path(&d.join(format!("{r}.csv"))),
                ],
                "approve",
            );
        }
    }
    let out = d.join("delivery");
    eventually(
        &[
            "project",
            "fetch",
            "--manifest",
            m,
            "--key",
            path(&researcher),
            "--project",
            "E2E-1",
            "--out",
            path(&out),
        ],
        "fetch",
    );
    let status = ok(&[
        "project",
        "status",
        "--manifest",
        m,
        "--key",
        path(&researcher),
        "--project",
        "E2E-1",
    ]);
    assert!(status.contains("delivered: yes"), "{status}");

    // The tables are exactly the cohort's rows, one lnr per person.
    let lnr_of = expected_lnr(d, "E2E-1", &s.pop);
    let cohort = s.pop.members("NPR");
    for r in REGISTERS {
        let mut want: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
        for (person, rows) in s.pop.rows_by_person(r) {
            if cohort.contains(&person) {
                want.insert(lnr_of[person].to_string(), rows);
            }
        }
        let mut got: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
        let mut reader = csv::Reader::from_path(out.join(format!("{r}.csv"))).expect("table");
        for rec in reader.records() {
            let rec = rec.expect("record");
            got.entry(rec[0].to_string())
                .or_default()
                .push(rec.iter().skip(1).map(str::to_string).collect());
        }
        assert_eq!(
            got, want,
            "{r}: the fetched table differs from the ground truth"
        );
    }
    assert!(
        out.join("transcript.kob").exists()
            && out.join("persons.csv").exists()
            && out.join("report.txt").exists()
    );

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
        path(&d.join("again")),
    ]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("closed"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
