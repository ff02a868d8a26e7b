//! Deliveries into a register domain through the `kobling` commands,
//! against node processes over QUIC on 127.0.0.1 (issue 15 items 2 and
//! 4): domain RESEPT (holder RESEPT; key holders NPR, KPR and the linker).
//! SSB, which holds no share of RESEPT (a pharmacy's part: split
//! blinding), and NPR, a key holder, each deliver their list; operators
//! order, approve and follow the deliveries, the holder's operator exports
//! the table, an auditor verifies a delivery's transcript. The same person
//! has the same pseudonym in both deliveries (checked against the key
//! holders' keystores), and no fnr reaches RESEPT's node directory or the
//! export.

mod common;

use std::{collections::BTreeSet, path::Path};

use kobling_keys::Keystore;
use kobling_node::testing::walk;
use kobling_protocol::{
    chain,
    domain::pseudonym_hex,
    group::WirePoint,
    ident::{Identifier, ParseOptions},
    manifest::{Ed25519Key, Manifest, Portal},
    share::Domain,
    types::Name,
};
use kobling_sim::population::Extract;

use common::{eventually, kobling, ok, path, setup, MEMBERS};

fn until(args: &[&str], text: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    loop {
        let out = kobling(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && stdout.contains(text) {
            return stdout;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{text} never shown: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// `pseudonym (hex) → rows` of `extract`'s valid rows under Ψ_RESEPT,
/// from the key holders' keystores (the test only: no party can).
fn expected(d: &Path, extract: &Extract) -> BTreeSet<(String, Vec<String>)> {
    let options = ParseOptions {
        allow_synthetic: true,
    };
    let domain = Domain::Register(Name::new("RESEPT").expect("name"));
    let rows: Vec<(Identifier, Vec<String>)> = extract
        .rows
        .iter()
        .zip(&extract.owners)
        .filter_map(|((raw, values), owner)| {
            owner.and(
                Identifier::parse(raw, options)
                    .ok()
                    .map(|id| (id, values.clone())),
            )
        })
        .collect();
    let mut points: Vec<WirePoint> = rows
        .iter()
        .map(|(id, _)| WirePoint(id.identity_point().compress().to_bytes()))
        .collect();
    for m in ["NPR", "KPR", "LINKER"] {
        let ks = Keystore::open(d.join(m).join("keys"), None).expect("keystore");
        points = chain::apply_share(&ks.share(&domain).expect("share"), &points, 0).expect("apply");
    }
    points
        .iter()
        .zip(rows)
        .map(|(p, (_, values))| (pseudonym_hex(p), values))
        .collect()
}

/// The exported table: `pseudonym` and the values, per line.
fn exported(file: &Path) -> BTreeSet<(String, Vec<String>)> {
    let mut reader = csv::Reader::from_path(file).expect("export");
    let headers = reader.headers().expect("header").clone();
    assert_eq!(headers.get(0), Some("pseudonym"), "{headers:?}");
    assert!(!headers.iter().any(|h| h == "fnr"), "{headers:?}");
    reader
        .records()
        .map(|r| {
            let r = r.expect("record");
            let mut it = r.iter().map(str::to_string);
            (it.next().expect("pseudonym"), it.collect())
        })
        .collect()
}

fn deliver(s: &common::Setup, source: &str, id: &str, variables: &str) -> String {
    let d = s.dir.path();
    let manifest = path(&s.manifest);
    let op = |r: &str, k: u8| d.join(format!("{r}-operator-{k}.key"));
    let ordered = eventually(
        &[
            "delivery",
            "order",
            "--manifest",
            manifest,
            "--key",
            path(&op(source, 1)),
            "--source",
            source,
            "--domain",
            "RESEPT",
            "--id",
            id,
            "--variables",
            variables,
            "--test-mode",
        ],
        "the delivery order",
    );
    assert!(
        ordered.contains(&format!("delivery {id} ordered")),
        "{ordered}"
    );
    let extract = d.join(format!("{source}.csv"));
    for k in 1..=2 {
        eventually(
            &[
                "delivery",
                "approve",
                "--manifest",
                manifest,
                "--key",
                path(&op(source, k)),
                "--delivery",
                id,
                "--extract",
                path(&extract),
            ],
            "the source's approval",
        );
        eventually(
            &[
                "delivery",
                "approve",
                "--manifest",
                manifest,
                "--key",
                path(&op("RESEPT", k)),
                "--delivery",
                id,
            ],
            "the holder's approval",
        );
    }
    until(
        &[
            "delivery",
            "status",
            "--manifest",
            manifest,
            "--key",
            path(&op("RESEPT", 1)),
            "--delivery",
            id,
        ],
        "phase: closed",
    )
}

#[test]
fn deliveries_are_ordered_approved_followed_exported_and_audited_through_the_commands() {
    let (s, mut nodes) = setup(300);
    let d = s.dir.path();
    let manifest = path(&s.manifest);
    // An innsyn portal (issue 16 item 2), asked at the end.
    let portal_key = d.join("portal.key");
    let portal_public = ok(&["keys", "operator", "--out", path(&portal_key)]);
    let mut listed: Manifest =
        toml::from_str(&std::fs::read_to_string(&s.manifest).expect("read")).expect("toml");
    listed.portals.push(Portal {
        name: Name::new("HELSENORGE").expect("name"),
        key: Ed25519Key::from_hex(portal_public.trim()).expect("hex"),
    });
    std::fs::write(&s.manifest, toml::to_string_pretty(&listed).expect("toml")).expect("write");
    ok(&[
        "manifest",
        "add",
        manifest,
        "--domain",
        "RESEPT",
        "--holder",
        "RESEPT",
        "--key-holder",
        "NPR",
        "--key-holder",
        "KPR",
        "--key-holder",
        "LINKER",
    ]);
    for i in 0..MEMBERS.len() {
        nodes.kill_and_restart(i);
    }
    let op = |r: &str, k: u8| d.join(format!("{r}-operator-{k}.key"));
    until(
        &[
            "domain",
            "status",
            "--manifest",
            manifest,
            "--key",
            path(&op("RESEPT", 1)),
            "--domain",
            "RESEPT",
        ],
        "3 of 3 committed",
    );
    let columns = |e: &Extract| e.columns[1..].join(",");
    let ssb = s.pop.extract("SSB").expect("SSB").clone();
    let npr = s.pop.extract("NPR").expect("NPR").clone();
    assert!(!ssb.rows.is_empty() && !npr.rows.is_empty());

    // A delivery to a domain the manifest does not declare, and an
    // approval by a key of no operator of the register, are refused.
    let unknown = kobling(&[
        "delivery",
        "order",
        "--manifest",
        manifest,
        "--key",
        path(&op("SSB", 1)),
        "--source",
        "SSB",
        "--domain",
        "IPLOS",
        "--id",
        "SSB-IPLOS-2025",
        "--variables",
        &columns(&ssb),
    ]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("IPLOS"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );

    let status = deliver(&s, "SSB", "SSB-RESEPT-2025", &columns(&ssb));
    assert!(
        status.contains("delivery SSB-RESEPT-2025: from SSB into RESEPT"),
        "{status}"
    );
    deliver(&s, "NPR", "NPR-RESEPT-2025", &columns(&npr));

    // The orderer saves the transcript; the auditor verifies it.
    let transcript = d.join("SSB-RESEPT-2025.kbt");
    ok(&[
        "delivery",
        "status",
        "--manifest",
        manifest,
        "--key",
        path(&op("SSB", 1)),
        "--delivery",
        "SSB-RESEPT-2025",
        "--transcript",
        path(&transcript),
    ]);
    let audit = kobling(&[
        "audit",
        "verify",
        "--transcript",
        path(&transcript),
        "--manifest",
        manifest,
    ]);
    assert!(
        audit.status.success(),
        "{}{}",
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr)
    );

    // The holder's table: one export per delivery, exactly the rows under
    // Ψ_RESEPT(fnr), the same pseudonym for the same person.
    let held = ok(&[
        "delivery",
        "status",
        "--dir",
        path(&d.join("RESEPT")),
        "--domain",
        "RESEPT",
    ]);
    assert!(held.contains("SSB") && held.contains("NPR"), "{held}");
    for (source, extract) in [("SSB", &ssb), ("NPR", &npr)] {
        let out = d.join(format!("{source}-export.csv"));
        let id = held
            .lines()
            .find(|l| l.contains(&format!(" from {source}:")))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("no delivery from {source}: {held}"))
            .to_string();
        ok(&[
            "delivery",
            "export",
            "--dir",
            path(&d.join("RESEPT")),
            "--domain",
            "RESEPT",
            "--delivery",
            &id,
            "--out",
            path(&out),
        ]);
        assert_eq!(
            exported(&out),
            expected(d, extract),
            "{source}'s rows under Ψ_RESEPT"
        );
    }
    // Innsyn at the pseudonymous holder: a portal admitted by RESEPT's two
    // operators asks for a citizen in both deliveries; the device opens
    // exactly the citizen's rows of both; the portal's output and reply
    // file hold no pseudonym.
    let by_npr = s.pop.rows_by_person("NPR");
    let by_ssb = s.pop.rows_by_person("SSB");
    let (&person, npr_rows) = by_npr
        .iter()
        .find(|(p, _)| by_ssb.contains_key(p))
        .expect("a person in both deliveries");
    let fnr_file = d.join("citizen.fnr");
    std::fs::write(&fnr_file, s.pop.persons[person].id.expose()).expect("write");
    for k in [1, 2] {
        ok(&[
            "innsyn",
            "admit",
            "--manifest",
            manifest,
            "--key",
            path(&op("RESEPT", k)),
            "--register",
            "RESEPT",
            "--portal",
            "HELSENORGE",
        ]);
    }
    let secret = d.join("device.secret");
    let device_request = ok(&[
        "innsyn",
        "device-key",
        "--register",
        "RESEPT",
        "--session",
        &"5e".repeat(32),
        "--out",
        path(&secret),
    ]);
    let reply = d.join("innsyn.reply");
    let portal_out = ok(&[
        "innsyn",
        "request",
        "--manifest",
        manifest,
        "--portal-key",
        path(&portal_key),
        "--fnr-file",
        path(&fnr_file),
        "--device-request",
        device_request.trim(),
        "--out",
        path(&reply),
    ]);
    let opened = ok(&[
        "innsyn",
        "open",
        "--secret",
        path(&secret),
        "--reply",
        path(&reply),
    ]);
    let mut lines = opened.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(header[0], "delivery", "{opened}");
    let mut got: Vec<Vec<String>> = lines
        .map(|l| {
            l.split(',')
                .skip(1)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect();
    let mut want: Vec<Vec<String>> = npr_rows
        .iter()
        .chain(&by_ssb[&person])
        .map(|r| r.iter().filter(|v| !v.is_empty()).cloned().collect())
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "exactly the citizen's rows of both deliveries");
    let psi = expected(d, &npr)
        .into_iter()
        .find(|(_, values)| npr_rows.contains(values))
        .map(|(p, _)| p)
        .expect("the citizen's pseudonym");
    let reply_bytes = std::fs::read(&reply).expect("reply");
    let psi_bytes = hex::decode(psi.trim_start_matches("psi:")).unwrap_or_default();
    assert!(!portal_out.contains(&psi), "{portal_out}");
    assert!(psi_bytes.len() == 32 && !reply_bytes.windows(32).any(|w| w == psi_bytes));

    drop(nodes);
    // No fnr of either extract in RESEPT's node directory or its exports.
    let fnrs: Vec<&str> = ssb
        .rows
        .iter()
        .chain(&npr.rows)
        .map(|(f, _)| f.as_str())
        .collect();
    let mut files = walk(&d.join("RESEPT"));
    files.push(d.join("SSB-export.csv"));
    files.push(d.join("NPR-export.csv"));
    for file in files {
        let bytes = std::fs::read(&file).expect("read");
        for f in &fnrs {
            assert!(
                !bytes.windows(f.len()).any(|w| w == f.as_bytes()),
                "an fnr in {}",
                file.display()
            );
        }
    }
}
