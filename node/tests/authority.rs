//! Issue 18 item 2 against node processes, over QUIC on 127.0.0.1: the
//! linker takes only a project order that an access authority of the
//! manifest signed, and writes nothing for any other.
//!
//! A researcher (with a key of its own making, as anyone can make one)
//! submits to the linker:
//! - an order with no authority's signature;
//! - an order signed by a key that is not in the manifest's
//!   `[[authorities]]`;
//! - an order carrying the authority's valid signature of another spec;
//!
//! each is refused `no-authority`, and no node holds a transcript entry,
//! a queued message or a step for the project. Then the granted order,
//! through `kobling project authorize` and `submit`, is taken. A
//! researcher who floods granted orders has three waiting for a first
//! approval and the fourth refused `too-many-pending`; an order expiring
//! twenty years from now is refused; neither leaves anything at any node.
//!
//! A granted order lives at the linker alone until an operator approves
//! it: no register has a row or a file for it before; after the first
//! approval the project runs to delivery as before.

mod common;
#[path = "common/raw.rs"]
mod raw;

use ed25519_dalek::SigningKey;
use kobling_protocol::{
    bounded::{BoundedString, BoundedVec},
    manifest::Ed25519Key,
    messages::Message,
    refusal::RefusalCode,
    seal::HpkeSecretKey,
    transcript::{Body, ProjectOrder, RegisterRequest, Signer, Statement},
    types::{Name, ProjectId, UnixTime},
};

use common::{
    approve_all, authorize, eventually, fetch_and_check, path, researcher_key, submit, write_spec,
    MEMBERS, REGISTERS,
};

/// Rows for `project` in the tables a project leaves at a node, and the
/// row counts of the tables every message touches.
fn footprint(dir: &std::path::Path, project: &str) -> (i64, Vec<i64>) {
    let db = rusqlite::Connection::open_with_flags(
        dir.join("state.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("state.db");
    let mut rows = 0;
    for table in ["entries", "outbox", "sent", "extracts", "approvals"] {
        let n: i64 = db
            .query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE project = ?1"),
                [project],
                |r| r.get(0),
            )
            .expect("count");
        rows += n;
    }
    let totals = ["entries", "outbox", "sent", "requests"]
        .iter()
        .map(|t| {
            db.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
                .expect("count")
        })
        .collect();
    (rows, totals)
}

/// Every member's [`footprint`] once the federation is quiet: the same
/// twice, a second apart (replication of the orders taken before may still
/// be under way; at most a minute).
fn settled(dir: &std::path::Path, project: &str) -> Vec<(i64, Vec<i64>)> {
    let read = || -> Vec<_> {
        MEMBERS
            .iter()
            .map(|m| footprint(&dir.join(m), project))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut last = read();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let now = read();
        if now == last || std::time::Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[test]
fn orders_without_an_authority_s_grant_for_them_are_refused_and_leave_nothing() {
    let f = raw::Fixture::start(200);
    let (s, d, manifest) = (&f.s, f.dir(), &f.manifest);
    let authority = f.key("authority.key");
    let researcher_file = researcher_key(s, "AUTH-1");
    let researcher = f.key(&researcher_file);
    let hpke = HpkeSecretKey::from_bytes([9; 32]);

    let order = |project: &str, title: &str| ProjectOrder {
        expires: UnixTime(raw::now() + 365 * 86_400),
        project: ProjectId::new(project).expect("valid"),
        title: BoundedString::new(title).expect("fits"),
        legal_basis: BoundedString::new("REK test").expect("fits"),
        manifest_digest: manifest.digest(),
        linker: Name::new("LINKER").expect("valid"),
        registers: BoundedVec::new(vec![RegisterRequest {
            register: Name::new("NPR").expect("valid"),
            variables: BoundedVec::default(),
        }])
        .expect("fits"),
        cohort: BoundedString::new("NPR").expect("fits"),
        researcher_signing_key: Ed25519Key(researcher.verifying_key().to_bytes()),
        researcher_hpke_key: kobling_protocol::manifest::X25519Key(*hpke.public_key().as_bytes()),
        test_mode: true,
        grant: None,
        delivery: None,
        pseudonymous: Default::default(),
        identified: None,
    };
    let submit_as = |researcher: &SigningKey, order: ProjectOrder| {
        let signed = Statement {
            project: order.project.clone(),
            time: UnixTime(raw::now()),
            signer: Signer::Researcher(order.researcher_signing_key),
            body: Body::Order(order),
        }
        .sign(researcher);
        f.send("LINKER", &Message::SubmitOrder(signed))
    };
    let submit = |order: ProjectOrder| submit_as(&researcher, order);
    // Every node is up (its state database set up) before the attack.
    f.wait_started();
    let before = settled(d, "AUTH-X");
    let nothing_kept = |project: &str, before: &[(i64, Vec<i64>)]| {
        // Give any replication a moment, then: nothing anywhere.
        std::thread::sleep(std::time::Duration::from_secs(2));
        for (m, before) in MEMBERS.iter().zip(before) {
            let after = footprint(&d.join(m), project);
            assert_eq!(after.0, 0, "{m} holds rows for the refused {project}");
            assert_eq!(&after, before, "{m}'s tables changed");
        }
    };

    // No grant.
    let none = submit(order("AUTH-X", "no grant"));
    // A grant by a key nobody listed (a researcher can make one).
    let stranger = SigningKey::from_bytes(&[0x5e; 32]);
    let foreign = submit(order("AUTH-X", "self-granted").granted_by(&stranger));
    // The authority's valid grant of another spec, moved onto this one.
    let granted = order("AUTH-X", "the spec the authority read").granted_by(&authority);
    let mut moved = order("AUTH-X", "a wider spec, never granted");
    moved.grant = granted.grant.clone();
    let swapped = submit(moved);
    for (what, replies) in [
        ("no grant", &none),
        ("a foreign key", &foreign),
        ("another spec's grant", &swapped),
    ] {
        assert_eq!(
            replies.first().and_then(Message::refusal_code),
            Some(RefusalCode::NoAuthority),
            "{what}: {replies:?}"
        );
    }
    nothing_kept("AUTH-X", &before);

    // The same order with the authority's own grant is taken.
    assert!(matches!(submit(granted).first(), Some(Message::Ack { .. })));

    // A researcher floods granted orders: the linker keeps three waiting
    // for a first approval, refuses the fourth and stores nothing of it;
    // an order that would expire twenty years from now is refused too.
    let flooder = SigningKey::from_bytes(&[0xf1; 32]);
    let of_flooder = |project: &str, expires: u64| {
        let mut o = order(project, "flood");
        o.researcher_signing_key = Ed25519Key(flooder.verifying_key().to_bytes());
        o.expires = UnixTime(expires);
        o.granted_by(&authority)
    };
    let year = 365 * 86_400;
    for i in 0..3 {
        let replies = submit_as(
            &flooder,
            of_flooder(&format!("FLOOD-{i}"), raw::now() + year),
        );
        assert!(
            matches!(replies.first(), Some(Message::Ack { .. })),
            "{replies:?}"
        );
    }
    let before = settled(d, "FLOOD-3");
    let replies = submit_as(&flooder, of_flooder("FLOOD-3", raw::now() + year));
    assert_eq!(
        replies.first().and_then(Message::refusal_code),
        Some(RefusalCode::TooManyPending),
        "{replies:?}"
    );
    nothing_kept("FLOOD-3", &before);
    let patient = SigningKey::from_bytes(&[0xf2; 32]);
    let mut far = order("FAR-1", "forever");
    far.researcher_signing_key = Ed25519Key(patient.verifying_key().to_bytes());
    far.expires = UnixTime(raw::now() + 20 * year);
    let before = settled(d, "FAR-1");
    let replies = submit_as(&patient, far.granted_by(&authority));
    assert_eq!(
        replies.first().and_then(Message::refusal_code),
        Some(RefusalCode::Order),
        "{replies:?}"
    );
    nothing_kept("FAR-1", &before);

    // Through the commands: a spec granted by the authority is submitted.
    let spec = write_spec(s, "AUTH-1", &["NPR"]);
    authorize(s, &spec, &researcher_file);
    let m = path(&s.manifest).to_string();
    eventually(
        &[
            "project",
            "submit",
            "--manifest",
            &m,
            "--key",
            path(&researcher_file),
            "--spec",
            path(&spec),
        ],
        "submit",
    );
    // A spec changed after the grant is refused by the command itself.
    let other = write_spec(s, "AUTH-2", &["NPR"]);
    std::fs::copy(
        format!("{}.grant", spec.display()),
        format!("{}.grant", other.display()),
    )
    .expect("copy");
    let out = common::kobling(&[
        "project",
        "submit",
        "--manifest",
        &m,
        "--key",
        path(&researcher_file),
        "--spec",
        path(&other),
    ]);
    assert!(!out.status.success(), "a grant of another spec was sent");
}

/// A register's whole state: rows about `project` in every table with a
/// `project` column, every table's row count, and the files under the
/// node's directory (other than the database's own).
fn snapshot(dir: &std::path::Path, project: &str) -> (i64, Vec<(String, i64)>, Vec<String>) {
    let db = rusqlite::Connection::open_with_flags(
        dir.join("state.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("state.db");
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("tables");
    let mut about = 0;
    let mut totals = Vec::new();
    for t in tables {
        let count = |sql: &str, p: &[&str]| -> i64 {
            db.query_row(sql, rusqlite::params_from_iter(p), |r| r.get(0))
                .expect("count")
        };
        totals.push((t.clone(), count(&format!("SELECT COUNT(*) FROM {t}"), &[])));
        let columns = count(
            "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = 'project'",
            &[&t],
        );
        if columns > 0 {
            about += count(
                &format!("SELECT COUNT(*) FROM {t} WHERE project = ?1"),
                &[project],
            );
        }
    }
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir").flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                stack.push(p);
            } else if !name.starts_with("state.db") {
                files.push(p.display().to_string());
            }
        }
    }
    files.sort();
    (about, totals, files)
}

/// Issue 18 item 2: nothing is committed federation-wide before the first
/// approval. A granted order submitted with `kobling project submit` is
/// held by the linker alone: every register's rows (about the project and
/// in total) and files are what they were before. Then both operators of
/// each register approve with `kobling project approve` (which takes the
/// order's entry from the linker to its register) and the project runs to
/// a verified delivery.
#[test]
fn an_order_lives_at_the_linker_alone_until_the_first_approval() {
    let f = raw::Fixture::start(400);
    let (s, d) = (&f.s, f.dir());
    f.wait_started();
    let registers = || -> Vec<_> {
        REGISTERS
            .iter()
            .map(|r| snapshot(&d.join(r), "SOLO-1"))
            .collect()
    };
    let before = registers();
    let researcher = submit(s, "SOLO-1");
    assert!(
        snapshot(&d.join("LINKER"), "SOLO-1").0 > 0,
        "the linker holds the order"
    );
    // Give any replication a moment: still nothing at any register.
    std::thread::sleep(std::time::Duration::from_secs(3));
    for (r, (after, before)) in REGISTERS.iter().zip(registers().iter().zip(&before)) {
        assert_eq!(after.0, 0, "{r} holds rows about an unapproved order");
        assert_eq!(after, before, "{r}'s state changed");
    }
    approve_all(s, "SOLO-1");
    fetch_and_check(s, &researcher, "SOLO-1");
    for r in REGISTERS {
        assert!(snapshot(&d.join(r), "SOLO-1").0 > 0, "{r} took part");
    }
}
