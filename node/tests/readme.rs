//! Issue 17: the README's "Running a real federation" path works verbatim.
//!
//! Every command in the `sh` blocks of that section runs, in order, as
//! written, through `sh` with the `kobling` under test first on `PATH`, in
//! an empty directory holding two synthetic extracts (`npr.csv`,
//! `ssb.csv`). The only change: the section's `127.0.0.1:74xx` addresses
//! get free ports. `kobling node run … &` lines are started as the node
//! processes (stopped at the end). A command that talks to a node is
//! repeated while it fails (the nodes start, and pass the order on, in
//! the background); every other command must succeed the first time.
//! The key shares are read for the ground truth after the fetch, and after
//! the close every node's share is shredded. Then the fetched delivery is
//! checked against the ground truth, and its
//! typed Parquet tables, codebook and report are checked; no command's
//! stderr carries an INFO line or a colour escape (the quiet CLI).

use std::{
    collections::BTreeMap,
    fs::File,
    path::Path,
    process::{Child, Command, Output},
    time::{Duration, Instant},
};

use arrow_schema::DataType;
use kobling_keys::{error::KeystoreError, Keystore};
use kobling_protocol::{
    share::Domain,
    types::{Name, ProjectId},
};
use kobling_sim::{
    population::{generate, render_csv, PopulationConfig},
    truth,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const BIN: &str = env!("CARGO_BIN_EXE_kobling");
const PROJECT: &str = "REK-2024-12345";

/// The commands of the README's manual path, in order.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let start = readme
        .find("\n## Running a real federation")
        .expect("the section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in section.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            in_sh = !in_sh && t == "```sh";
            continue;
        }
        if in_sh && !t.is_empty() {
            commands.push(t.to_string());
        }
    }
    commands
}

struct Background(Vec<Child>);

impl Drop for Background {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
        for c in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn shell(dir: &Path, path_var: &str, line: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(line)
        .current_dir(dir)
        .env("PATH", path_var)
        .env_remove("KOBLING_LOG")
        .env_remove("RUST_LOG")
        .env_remove("KOBLING_PASSPHRASE");
    c
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn parquet_types(path: &Path) -> BTreeMap<String, DataType> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).expect("parquet"))
        .expect("a Parquet file");
    reader
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect()
}

#[test]
fn the_readme_manual_path_runs_verbatim_for_three_nodes() {
    let commands = readme_commands();
    assert!(commands.len() >= 30, "the README's commands: {commands:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let pop = generate(&PopulationConfig {
        persons: 300,
        seed: 17,
        ..Default::default()
    });
    for (register, file) in [("NPR", "npr.csv"), ("SSB", "ssb.csv")] {
        std::fs::write(
            d.join(file),
            render_csv(pop.extract(register).expect("extract")),
        )
        .expect("write");
    }
    let bin_dir = Path::new(BIN).parent().expect("bin dir");
    let path_var = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ports = BTreeMap::new();
    let mut nodes = Background(Vec::new());
    let keystores = ["npr", "ssb", "linker"].map(|m| d.join(m).join("keys"));
    let project = ProjectId::new(PROJECT).expect("valid");
    let mut lnr_of = None;
    for written in &commands {
        assert!(
            written.starts_with("kobling "),
            "every README command is a kobling command: {written}"
        );
        let mut line = written.clone();
        while let Some(at) = line.find("127.0.0.1:74") {
            let old = line[at..at + 14].to_string();
            let new = ports
                .entry(old.clone())
                .or_insert_with(|| {
                    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
                    format!("127.0.0.1:{}", s.local_addr().expect("addr").port())
                })
                .clone();
            line = line.replacen(&old, &new, 1);
        }
        if let Some(node) = line.strip_suffix('&') {
            assert!(
                line.contains(" node run "),
                "only nodes run in the background"
            );
            nodes.0.push(
                shell(d, &path_var, &format!("exec {}", node.trim()))
                    .spawn()
                    .expect("start a node"),
            );
            continue;
        }
        let talks_to_a_node = [
            "project submit",
            "project approve",
            "project status",
            "project fetch",
            "project close",
        ]
        .iter()
        .any(|c| line.contains(c));
        let deadline = Instant::now() + Duration::from_secs(240);
        let out = loop {
            let out = shell(d, &path_var, &line).output().expect("sh");
            if out.status.success() || !talks_to_a_node || Instant::now() > deadline {
                break out;
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        assert!(out.status.success(), "`{written}` failed:\n{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains(" INFO ")
                && !stderr.contains('\u{1b}')
                && !stderr.contains("panicked"),
            "`{written}` is not quiet:\n{stderr}"
        );
        if line.starts_with("kobling project fetch") {
            // The key shares, for the ground truth, before the close
            // shreds them.
            lnr_of = Some(
                truth::lnr_from_keystores(&keystores, &project, &pop)
                    .expect("the shares of an open project"),
            );
        }
        if line.starts_with("kobling audit verify") {
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("transcript OK"),
                "the audit verifies: {}",
                text(&out)
            );
        }
        if line.starts_with("kobling audit show") {
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).lines().count(),
                20,
                "audit show through head"
            );
        }
    }
    assert_eq!(ports.len(), 3, "three nodes");
    assert_eq!(nodes.0.len(), 3, "three nodes ran");
    // The close reaches every node: each shreds its share.
    let deadline = Instant::now() + Duration::from_secs(60);
    let domain = Domain::Project(project.clone());
    while keystores.iter().any(|k| {
        !matches!(
            Keystore::open(k, None).expect("keystore").share(&domain),
            Err(KeystoreError::Shredded { .. })
        )
    }) {
        assert!(
            Instant::now() < deadline,
            "the nodes never shredded their shares"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(nodes);

    // The delivery: NPR's table is the ground truth (the template asks for
    // every NPR column), under lnr from the nodes' key shares.
    let out = d.join("rek-2024-12345");
    let lnr_of = lnr_of.expect("the path fetches");
    let tables = truth::read_tables(&out, &["NPR"]).expect("tables");
    assert_eq!(
        truth::compare(&pop, &lnr_of, "NPR", &tables),
        Vec::<String>::new()
    );
    let npr = &tables[&Name::new("NPR").expect("valid")];
    assert_eq!(
        npr.iter()
            .map(|(l, _)| *l)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        pop.members("NPR").len(),
        "the whole cohort"
    );

    // Typed Parquet, as the template declares.
    let npr_types = parquet_types(&out.join("NPR.parquet"));
    assert_eq!(npr_types["lnr"], DataType::Utf8);
    assert_eq!(npr_types["birth_year"], DataType::Int64);
    assert_eq!(npr_types["episode_start"], DataType::Date32);
    assert!(matches!(npr_types["hf"], DataType::Dictionary(..)));
    let ssb_types = parquet_types(&out.join("SSB.parquet"));
    assert_eq!(ssb_types["income_decile"], DataType::Int64);
    let persons = parquet_types(&out.join("persons.parquet"));
    assert_eq!(persons["NPR"], DataType::Boolean);
    assert_eq!(persons["SSB"], DataType::Boolean);

    // The codebook: project, legal basis, each column with its type.
    let codebook: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("codebook.json")).expect("codebook.json"),
    )
    .expect("JSON");
    assert_eq!(codebook["project"], PROJECT);
    assert_eq!(codebook["legal_basis"], "REK 2024/12345");
    let npr_book = codebook["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["table"] == "NPR")
        .expect("NPR in the codebook");
    assert_eq!(npr_book["rows"], npr.len() as u64);
    let birth_year = npr_book["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .find(|c| c["name"] == "birth_year")
        .expect("birth_year");
    assert_eq!(birth_year["type"], "int");
    assert_eq!(birth_year["unparsed"], 0);

    // The report shows no count under 5.
    let report = std::fs::read_to_string(out.join("report.txt")).expect("report.txt");
    for token in report.split_whitespace() {
        if let Ok(n) = token.parse::<u64>() {
            assert!(n >= 5, "a count under 5 in report.txt:\n{report}");
        }
    }
    assert!(report.contains("persons by the registers"), "{report}");
}
