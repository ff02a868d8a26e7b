//! `kobling delivery order` through the binary: a manifest with a register
//! domain RESEPT (holder RESEPT; key holders NPR, KPR and the linker) and
//! a pharmacy source APOTEK that holds no share. Bad orders are refused by
//! the command with their reason before anything is sent; a valid one
//! reaches the linker (a real node over QUIC on 127.0.0.1) without an
//! access authority's grant.

mod common;

use std::{
    fs::File,
    net::UdpSocket,
    os::fd::OwnedFd,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{kobling, ok, path, BIN};
use kobling_protocol::{
    domain::DomainSpec,
    manifest::{Ed25519Key, Manifest, Member, Operator},
    types::Name,
};

const MEMBERS: [&str; 5] = ["RESEPT", "NPR", "KPR", "APOTEK", "LINKER"];

/// Keystores, two operators per register and the manifest under `d`; the
/// linker's socket (bound here, kept, handed to its node).
fn federation(d: &Path) -> UdpSocket {
    let mut members = Vec::new();
    let mut linker_socket = None;
    for name in MEMBERS {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let role = if name == "LINKER" {
            "linker"
        } else {
            "register"
        };
        let entry = ok(&[
            "keys",
            "init",
            "--dir",
            path(&d.join(name)),
            "--name",
            name,
            "--address",
            &socket.local_addr().expect("addr").to_string(),
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
        } else {
            linker_socket = Some(socket);
        }
        members.push(member);
    }
    let n = |s: &str| Name::new(s).expect("name");
    let manifest = Manifest {
        federation: "test".into(),
        portals: Vec::new(),
        members,
        authorities: Vec::new(),
        domains: vec![DomainSpec {
            name: n("RESEPT"),
            holder: n("RESEPT"),
            key_holders: Some(vec![n("NPR"), n("KPR"), n("LINKER")]),
            kind: Default::default(),
        }],
    };
    std::fs::write(
        d.join("federation.toml"),
        toml::to_string_pretty(&manifest).expect("toml"),
    )
    .expect("write");
    ok(&["manifest", "check", path(&d.join("federation.toml"))]);
    linker_socket.expect("a linker")
}

/// The linker's node, on the socket the test bound; killed when dropped.
struct Linker(Child);

impl Linker {
    fn start(d: &Path, socket: &UdpSocket) -> Self {
        let log = File::create(d.join("LINKER.log")).expect("log");
        let child = Command::new(BIN)
            .args([
                "node",
                "run",
                "--dir",
                path(&d.join("LINKER")),
                "--manifest",
                path(&d.join("federation.toml")),
                "--test-mode",
                "--listen-stdin",
            ])
            .env("KOBLING_LOG", "info")
            .stdin(Stdio::from(OwnedFd::from(
                socket.try_clone().expect("socket"),
            )))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the linker");
        Self(child)
    }
}

impl Drop for Linker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn order(d: &Path, key: &str, source: &str, domain: &str, id: &str) -> std::process::Output {
    kobling(&[
        "delivery",
        "order",
        "--manifest",
        path(&d.join("federation.toml")),
        "--key",
        path(&d.join(key)),
        "--source",
        source,
        "--domain",
        domain,
        "--id",
        id,
        "--variables",
        "atc,dato",
        "--test-mode",
    ])
}

fn refused(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "must be refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_delivery_orders_are_refused_with_their_reason_and_a_valid_one_reaches_the_linker() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let socket = federation(d);

    // Refused by the command itself: no node runs yet, so nothing can
    // have been sent.
    let err = refused(&order(
        d,
        "APOTEK-operator-1.key",
        "APOTEK",
        "IPLOS",
        "APOTEK-IPLOS-2025",
    ));
    assert!(err.contains("no register domain IPLOS"), "{err}");
    let err = refused(&order(
        d,
        "RESEPT-operator-1.key",
        "RESEPT",
        "RESEPT",
        "RESEPT-RESEPT-2025",
    ));
    assert!(err.contains("is the domain's holder"), "{err}");
    // A key of an operator of another register (KPR's), not of APOTEK.
    let err = refused(&order(
        d,
        "KPR-operator-1.key",
        "APOTEK",
        "RESEPT",
        "APOTEK-RESEPT-2025",
    ));
    assert!(err.contains("ordered by one of its operators"), "{err}");
    let err = refused(&order(
        d,
        "APOTEK-operator-1.key",
        "NOBODY",
        "RESEPT",
        "NOBODY-RESEPT-2025",
    ));
    assert!(err.contains("NOBODY"), "{err}");

    // A valid order from an operator of APOTEK goes to the linker with no
    // grant; the linker answers with its own reason (it admits the order
    // as a delivery, not as a project without a grant).
    let _linker = Linker::start(d, &socket);
    let deadline = Instant::now() + Duration::from_secs(60);
    let err = loop {
        let out = order(
            d,
            "APOTEK-operator-1.key",
            "APOTEK",
            "RESEPT",
            "APOTEK-RESEPT-2025",
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if !err.contains("cannot reach") || Instant::now() > deadline {
            break (out, err);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (out, err) = err;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the linker answered: {stdout}{err}");
    assert!(
        stdout.contains("delivery APOTEK-RESEPT-2025 ordered"),
        "{stdout}"
    );

    // The operator's status form asks the linker; the local form and the
    // operator's cannot be mixed.
    let manifest = d.join("federation.toml");
    let status = kobling(&[
        "delivery",
        "status",
        "--manifest",
        path(&manifest),
        "--key",
        path(&d.join("APOTEK-operator-1.key")),
        "--delivery",
        "APOTEK-NOSUCH-2025",
    ]);
    let err = refused(&status);
    assert!(
        err.contains("APOTEK-NOSUCH-2025") || err.contains("refused"),
        "{err}"
    );
    let mixed = kobling(&[
        "delivery",
        "status",
        "--dir",
        path(&d.join("RESEPT")),
        "--domain",
        "RESEPT",
        "--manifest",
        path(&manifest),
        "--key",
        path(&d.join("RESEPT-operator-1.key")),
        "--delivery",
        "APOTEK-RESEPT-2025",
    ]);
    refused(&mixed);

    // An approval with a key of no operator in the manifest.
    let stranger = d.join("stranger.key");
    ok(&["keys", "operator", "--out", path(&stranger)]);
    let err = refused(&kobling(&[
        "delivery",
        "approve",
        "--manifest",
        path(&manifest),
        "--key",
        path(&stranger),
        "--delivery",
        "APOTEK-RESEPT-2025",
    ]));
    assert!(err.contains("no register's operator"), "{err}");
}
