//! A register domain's lifecycle through the `kobling` commands, against
//! node processes over QUIC on 127.0.0.1 (issue 15 items 1 and 4):
//! declared with `manifest add --domain`, checked, created and committed
//! by the nodes, followed with `domain status`, exported and audited
//! (a tampered export fails), a key holder's share backed up under two
//! passphrases and checked against its commitment, re-shared from that
//! backup after the key holder lost its seed, and retired by two
//! distinct operators of the holder (one alone, or the same one twice,
//! does not), after which every key holder's seed is shredded.

mod common;

use std::{os::unix::fs::PermissionsExt, path::Path};

use kobling_keys::{DomainStatus, Keystore};
use kobling_protocol::{share::Domain, types::Name};

use common::{eventually, kobling, ok, path, setup, MEMBERS};

fn passphrase_file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path(&p).to_string()
}

/// Runs `args` until its output contains `text` (the nodes catch up).
fn until(args: &[&str], text: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let out = ok(args);
        if out.contains(text) {
            return out;
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

fn shredded(dir: &Path, member: &str) -> bool {
    Keystore::open(dir.join(member).join("keys"), None)
        .expect("keystore")
        .domain_status(&Domain::Register(Name::new("RESEPT").expect("name")))
        .expect("status")
        == DomainStatus::Shredded
}

#[test]
fn a_domain_is_declared_committed_followed_exported_backed_up_and_retired_by_two_operators() {
    let (s, mut nodes) = setup(20);
    let d = s.dir.path();
    let manifest = path(&s.manifest);

    // Declare the domain; the nodes pick the manifest up as they restart.
    let declared = ok(&[
        "manifest",
        "add",
        manifest,
        "--domain",
        "RESEPT",
        "--holder",
        "RESEPT",
        "--key-holder",
        "LINKER",
        "--key-holder",
        "NPR",
        "--key-holder",
        "KPR",
    ]);
    assert!(
        declared.contains("key holders in chain order: NPR, KPR, LINKER"),
        "{declared}"
    );
    // A second declaration of the same name, and a holder that is no
    // member, are refused and leave the file as it was.
    let before = std::fs::read(&s.manifest).expect("read");
    for bad in [
        ["--domain", "RESEPT", "--holder", "RESEPT"],
        ["--domain", "IPLOS", "--holder", "NOBODY"],
    ] {
        let args: Vec<&str> = ["manifest", "add", manifest]
            .into_iter()
            .chain(bad)
            .collect();
        assert!(!kobling(&args).status.success(), "{bad:?}");
    }
    assert_eq!(std::fs::read(&s.manifest).expect("read"), before);
    let checked = ok(&["manifest", "check", manifest]);
    assert!(
        checked.contains("domain RESEPT") && checked.contains("key holders: NPR, KPR, LINKER"),
        "{checked}"
    );
    for i in 0..MEMBERS.len() {
        nodes.kill_and_restart(i);
    }

    let op = |register: &str, k: u8| d.join(format!("{register}-operator-{k}.key"));
    let (op1, op2) = (op("RESEPT", 1), op("RESEPT", 2));
    let status_args = [
        "domain",
        "status",
        "--manifest",
        manifest,
        "--key",
        path(&op1),
        "--domain",
        "RESEPT",
    ];
    eventually(&status_args, "the domain's status");
    let status = until(&status_args, "3 of 3 committed");
    assert!(status.contains("holder RESEPT, active"), "{status}");
    assert!(status.contains("deliveries 0"), "{status}");
    // NPR's operator is answered by NPR's own copy; the linker's says the
    // same.
    until(
        &[
            "domain",
            "status",
            "--manifest",
            manifest,
            "--key",
            path(&op("NPR", 1)),
            "--domain",
            "RESEPT",
        ],
        "(as NPR holds it, verified)",
    );
    until(
        &[
            "domain",
            "status",
            "--manifest",
            manifest,
            "--key",
            path(&op("NPR", 1)),
            "--domain",
            "RESEPT",
            "--node",
            "LINKER",
        ],
        "3 of 3 committed",
    );

    // Export and audit; a tampered copy fails the audit.
    let export = d.join("resept.domain");
    ok(&[
        "domain",
        "export",
        "--manifest",
        manifest,
        "--key",
        path(&op1),
        "--domain",
        "RESEPT",
        "--out",
        path(&export),
    ]);
    let audit = |file: &Path| {
        kobling(&[
            "audit",
            "domain",
            "--transcript",
            path(file),
            "--manifest",
            manifest,
            "--domain",
            "RESEPT",
        ])
    };
    let good = audit(&export);
    assert!(good.status.success(), "{good:?}");
    let mut bytes = std::fs::read(&export).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1; // a byte of the last entry's signature
    let tampered = d.join("tampered.domain");
    std::fs::write(&tampered, &bytes).expect("write");
    let bad = audit(&tampered);
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stdout).contains("FAILS"));

    // NPR's share, backed up under two operators' passphrases, opens with
    // both and holds NPR's committed key; swapped passphrases do not open.
    let p1 = passphrase_file(d, "kari.pass", "kari's long passphrase");
    let p2 = passphrase_file(d, "ola.pass", "ola's other passphrase");
    let backup = d.join("npr-resept.dbak");
    ok(&[
        "domain",
        "backup",
        "--dir",
        path(&d.join("NPR")),
        "--domain",
        "RESEPT",
        "--first-passphrase-file",
        &p1,
        "--second-passphrase-file",
        &p2,
        "--out",
        path(&backup),
    ]);
    let mode = std::fs::metadata(&backup)
        .expect("backup")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let check = |first: &str, second: &str| {
        kobling(&[
            "domain",
            "check-backup",
            "--backup",
            path(&backup),
            "--domain",
            "RESEPT",
            "--first-passphrase-file",
            first,
            "--second-passphrase-file",
            second,
            "--manifest",
            manifest,
            "--transcript",
            path(&export),
            "--member",
            "NPR",
        ])
    };
    let opened = check(&p1, &p2);
    assert!(
        opened.status.success()
            && String::from_utf8_lossy(&opened.stdout).contains("holds NPR's committed share"),
        "{opened:?}"
    );
    assert!(!check(&p2, &p1).status.success());

    // NPR loses its seed (not its node keys); its operators re-share from
    // the backup, and the holder's table (two persons, written here as a
    // delivery would) is converted.
    {
        let db = rusqlite::Connection::open(d.join("RESEPT").join("state.db")).expect("db");
        for (row, seed) in [3u8, 4].into_iter().enumerate() {
            let p = kobling_protocol::share::Share::derive(
                &[seed; 32],
                &[seed; 32],
                &Domain::Register(Name::new("X").expect("name")),
            )
            .expect("share")
            .commitment();
            db.execute(
                "INSERT INTO domain_rows (domain, pseudonym, delivery, row, bytes) VALUES ('RESEPT', ?1, ?2, ?3, ?4)",
                rusqlite::params![p.0.as_slice(), [1u8; 16].as_slice(), row as i64, b"rows".as_slice()],
            )
            .expect("insert");
        }
    }
    for e in std::fs::read_dir(d.join("NPR").join("keys").join("domains")).expect("seeds") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "seed") {
            std::fs::remove_file(p).expect("lose the seed");
        }
    }
    let reshared = ok(&[
        "domain",
        "reshare",
        "--manifest",
        manifest,
        "--key",
        path(&op("NPR", 1)),
        "--domain",
        "RESEPT",
        "--dir",
        path(&d.join("NPR")),
        "--backup",
        path(&backup),
        "--first-passphrase-file",
        &p1,
        "--second-passphrase-file",
        &p2,
    ]);
    assert!(reshared.contains("is re-shared"), "{reshared}");
    let status = ok(&status_args);
    assert!(status.contains("re-shares 1"), "{status}");
    // The old backup no longer holds NPR's committed share.
    let export2 = d.join("resept-2.domain");
    ok(&[
        "domain",
        "export",
        "--manifest",
        manifest,
        "--key",
        path(&op1),
        "--domain",
        "RESEPT",
        "--out",
        path(&export2),
    ]);
    let stale = kobling(&[
        "domain",
        "check-backup",
        "--backup",
        path(&backup),
        "--domain",
        "RESEPT",
        "--first-passphrase-file",
        &p1,
        "--second-passphrase-file",
        &p2,
        "--manifest",
        manifest,
        "--transcript",
        path(&export2),
        "--member",
        "NPR",
    ]);
    assert_eq!(stale.status.code(), Some(1), "{stale:?}");

    // Retirement: one operator, then the same one again, retire nothing.
    let retire = |key: &Path| {
        ok(&[
            "domain",
            "retire",
            "--manifest",
            manifest,
            "--key",
            path(key),
            "--domain",
            "RESEPT",
        ])
    };
    for _ in 0..2 {
        let once = retire(&op1);
        assert!(once.contains("a second operator"), "{once}");
    }
    assert!(ok(&status_args).contains("active"));
    // An operator of another register cannot sign it.
    let npr_op = kobling(&[
        "domain",
        "retire",
        "--manifest",
        manifest,
        "--key",
        path(&op("NPR", 1)),
        "--domain",
        "RESEPT",
    ]);
    assert!(!npr_op.status.success());
    let done = retire(&op2);
    assert!(done.contains("is retired"), "{done}");
    assert!(ok(&status_args).contains("RETIRED"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !["NPR", "KPR", "LINKER"].iter().all(|m| shredded(d, m)) {
        assert!(
            std::time::Instant::now() < deadline,
            "every key holder shreds its seed"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // A retired domain's backup still opens (it is an operators' file),
    // but no node holds the share any more.
    assert!(!kobling(&[
        "domain",
        "backup",
        "--dir",
        path(&d.join("NPR")),
        "--domain",
        "RESEPT",
        "--first-passphrase-file",
        &p1,
        "--second-passphrase-file",
        &p2,
        "--out",
        path(&d.join("again.dbak")),
    ])
    .status
    .success());
}
