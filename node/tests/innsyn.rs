//! Innsyn at an fnr register through the `kobling` commands, against a
//! node process over QUIC on 127.0.0.1 (issue 16 item 2): a portal listed
//! in the manifest and admitted by two distinct operators of KPR asks for
//! a citizen's rows with a device's one-time key; the device opens the
//! reply and gets exactly the citizen's rows from the generator's ground
//! truth; the portal's files and output hold no row value and no fnr, and
//! its key opens nothing. A portal not in the manifest, not admitted,
//! admitted by one operator only, or over the per-person quota is refused,
//! as is a request for a register the manifest does not have; KPR's log
//! shows the fnr masked, never whole.

mod common;

use std::path::Path;

use kobling_protocol::{
    innsyn::{open_reply, InnsynRequest, SealedReply},
    manifest::{Ed25519Key, Manifest, Portal},
    seal::HpkeSecretKey,
    types::Name,
};

use common::{kobling, ok, path, setup_with, NodeAddr, MEMBERS};
use kobling_node::testing::csv_line;

const SESSION: &str = "5e55105e55105e55105e55105e55105e55105e55105e55105e55105e55105e55";

fn device(dir: &Path, name: &str, register: &str) -> (String, String) {
    let secret = dir.join(format!("{name}.secret"));
    let request = ok(&[
        "innsyn",
        "device-key",
        "--register",
        register,
        "--session",
        SESSION,
        "--out",
        path(&secret),
    ]);
    (request.trim().to_owned(), path(&secret).to_owned())
}

/// `kobling innsyn request`: (success, stdout + stderr).
fn request(
    manifest: &Path,
    portal_key: &Path,
    fnr_file: &Path,
    device_request: &str,
    out: &Path,
) -> (bool, String) {
    let o = kobling(&[
        "innsyn",
        "request",
        "--manifest",
        path(manifest),
        "--portal-key",
        path(portal_key),
        "--fnr-file",
        path(fnr_file),
        "--device-request",
        device_request,
        "--out",
        path(out),
    ]);
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn admit(manifest: &Path, key: &Path) -> (bool, String) {
    let o = kobling(&[
        "innsyn",
        "admit",
        "--manifest",
        path(manifest),
        "--key",
        path(key),
        "--register",
        "KPR",
        "--portal",
        "HELSENORGE",
    ]);
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn a_citizen_gets_exactly_their_rows_through_an_admitted_portal() {
    let (s, mut nodes) = setup_with(150, "info", &[], |_| NodeAddr::direct());
    let d = s.dir.path();
    let kpr = MEMBERS.iter().position(|m| *m == "KPR").expect("KPR");
    // Only KPR is needed: the others stop, and KPR restarts with a portal
    // in the manifest and its extract as the innsyn extract.
    for i in 0..MEMBERS.len() {
        nodes.kill(i);
    }
    let portal_key = d.join("portal.key");
    let portal_public = ok(&["keys", "operator", "--out", path(&portal_key)]);
    let stranger_key = d.join("stranger.key");
    ok(&["keys", "operator", "--out", path(&stranger_key)]);
    let mut manifest: Manifest =
        toml::from_str(&std::fs::read_to_string(&s.manifest).expect("read")).expect("toml");
    manifest.portals.push(Portal {
        name: Name::new("HELSENORGE").expect("name"),
        key: Ed25519Key::from_hex(portal_public.trim()).expect("hex"),
    });
    std::fs::write(
        &s.manifest,
        toml::to_string_pretty(&manifest).expect("toml"),
    )
    .expect("write");
    ok(&["manifest", "check", path(&s.manifest)]);
    nodes.restart_with(kpr, &["--innsyn-extract", path(&d.join("KPR.csv"))]);

    let rows_of = s.pop.rows_by_person("KPR");
    let (&person, rows) = rows_of
        .iter()
        .find(|(_, rows)| rows.len() >= 2)
        .expect("a person with rows");
    let absent = (0..s.pop.persons.len())
        .find(|p| !rows_of.contains_key(p))
        .expect("a person without rows");
    let fnr = s.pop.persons[person].id.expose().to_owned();
    let absent_fnr = s.pop.persons[absent].id.expose().to_owned();
    let fnr_file = d.join("citizen.fnr");
    std::fs::write(&fnr_file, format!("{fnr}\n")).expect("write");
    let absent_file = d.join("absent.fnr");
    std::fs::write(&absent_file, &absent_fnr).expect("write");
    let op = |k: u8| d.join(format!("KPR-operator-{k}.key"));

    // Not admitted yet (the node may still be starting: retried briefly).
    let (req1, secret1) = device(d, "device1", "KPR");
    let reply1 = d.join("reply1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (done, out) = loop {
        let r = request(&s.manifest, &portal_key, &fnr_file, &req1, &reply1);
        if !r.1.contains("cannot reach") || std::time::Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert!(!done && out.contains("not admitted"), "{out}");
    // One operator admits: still refused, and the same one again is refused.
    let (done, out) = admit(&s.manifest, &op(1));
    assert!(done, "{out}");
    let (done, out) = request(&s.manifest, &portal_key, &fnr_file, &req1, &reply1);
    assert!(!done && out.contains("one operator"), "{out}");
    let (done, out) = admit(&s.manifest, &op(1));
    assert!(!done && out.contains("already admitted"), "{out}");
    // An operator of another register admits nothing at KPR.
    let (done, out) = admit(&s.manifest, &d.join("NPR-operator-1.key"));
    assert!(!done && out.contains("not an operator"), "{out}");
    let (done, out) = admit(&s.manifest, &op(2));
    assert!(done, "{out}");

    // A key that is no portal of the manifest: the register refuses it.
    let (done, out) = request(&s.manifest, &stranger_key, &fnr_file, &req1, &reply1);
    assert!(!done && out.contains("no innsyn portal"), "{out}");
    // A register the manifest does not have.
    let (req_x, _) = device(d, "device-x", "NOSUCH");
    let (done, out) = request(
        &s.manifest,
        &portal_key,
        &fnr_file,
        &req_x,
        &d.join("reply-x"),
    );
    assert!(!done && out.contains("no register NOSUCH"), "{out}");

    // The citizen with rows.
    let (done, portal_out) = request(&s.manifest, &portal_key, &fnr_file, &req1, &reply1);
    assert!(done, "{portal_out}");
    let opened = kobling(&[
        "innsyn",
        "open",
        "--secret",
        &secret1,
        "--reply",
        path(&reply1),
    ]);
    assert!(
        opened.status.success(),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    let printed = String::from_utf8_lossy(&opened.stdout).into_owned();
    let mut lines = printed.lines();
    let header = lines.next().expect("header");
    let columns: Vec<String> = s.pop.extract("KPR").expect("KPR").columns[1..]
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(header, csv_line(&columns));
    let got: Vec<&str> = lines.collect();
    let want: Vec<String> = rows.iter().map(|r| csv_line(r)).collect();
    assert_eq!(got, want, "exactly the citizen's rows, in extract order");

    // What the portal holds and printed: no row value, no fnr; its key
    // opens nothing, nor does another device's.
    let reply_bytes = std::fs::read(&reply1).expect("reply");
    let reply_text = String::from_utf8_lossy(&reply_bytes);
    for value in rows.iter().flatten().filter(|v| v.len() >= 4) {
        assert!(
            !reply_text.contains(value.as_str()),
            "a row value in the reply file"
        );
        assert!(
            !portal_out.contains(value.as_str()),
            "a row value in the portal's output"
        );
    }
    assert!(!portal_out.contains(&fnr) && !reply_text.contains(&fnr));
    let sealed: SealedReply = postcard::from_bytes(&reply_bytes).expect("a reply");
    let request1: InnsynRequest =
        postcard::from_bytes(&hex::decode(&req1).expect("hex")).expect("request");
    let portal_file = std::fs::read_to_string(&portal_key).expect("key file");
    let portal_seed: [u8; 32] = portal_file
        .lines()
        .find_map(|l| l.strip_prefix("signing_key = \""))
        .and_then(|l| hex::decode(l.trim_end_matches('"')).ok())
        .and_then(|b| b.try_into().ok())
        .expect("the portal's key");
    assert!(open_reply(&HpkeSecretKey::from_bytes(portal_seed), &request1, &sealed).is_err());
    let (_, secret2) = device(d, "device2", "KPR");
    let other = kobling(&[
        "innsyn",
        "open",
        "--secret",
        &secret2,
        "--reply",
        path(&reply1),
    ]);
    assert!(
        !other.status.success(),
        "another device's key opens nothing"
    );

    // A citizen without rows: the header only, in the same size bucket.
    let (req3, secret3) = device(d, "device3", "KPR");
    let reply3 = d.join("reply3");
    let (done, out) = request(&s.manifest, &portal_key, &absent_file, &req3, &reply3);
    assert!(done, "{out}");
    assert_eq!(
        std::fs::metadata(&reply3).expect("reply").len(),
        reply_bytes.len() as u64,
        "no rows look like a few rows"
    );
    let opened = kobling(&[
        "innsyn",
        "open",
        "--secret",
        &secret3,
        "--reply",
        path(&reply3),
    ]);
    assert!(opened.status.success());
    assert_eq!(
        String::from_utf8_lossy(&opened.stdout).lines().count(),
        1,
        "the header only"
    );

    // The per-person quota: three a day; the fourth is refused.
    for i in 0..2 {
        let (req, _) = device(d, &format!("q{i}"), "KPR");
        let (done, out) = request(
            &s.manifest,
            &portal_key,
            &fnr_file,
            &req,
            &d.join(format!("q{i}.reply")),
        );
        assert!(done, "{out}");
    }
    let (req, _) = device(d, "q-over", "KPR");
    let (done, out) = request(
        &s.manifest,
        &portal_key,
        &fnr_file,
        &req,
        &d.join("q-over.reply"),
    );
    assert!(
        !done && out.contains("quota") && out.contains("this person"),
        "{out}"
    );

    // The per-portal quota, set by the operator: five a day. The portal
    // was answered four times today; the node restarts (its book in
    // memory is empty) and the day's stored count still holds: one more,
    // then refused.
    nodes.kill(kpr);
    nodes.restart_with(kpr, &["--innsyn-quota-portal", "5"]);
    let ask = |name: &str, who: &Path| {
        let (req, _) = device(d, name, "KPR");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let r = request(
                &s.manifest,
                &portal_key,
                who,
                &req,
                &d.join(format!("{name}.reply")),
            );
            if !r.1.contains("cannot reach") || std::time::Instant::now() > deadline {
                break r;
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    };
    let (done, out) = ask("p1", &absent_file);
    assert!(done, "{out}");
    let (done, out) = ask("p2", &fnr_file);
    assert!(
        !done && out.contains("quota") && out.contains("this portal"),
        "{out}"
    );

    // KPR's log: the requests, the fnr masked, never whole.
    nodes.stop();
    let log = std::fs::read_to_string(nodes.log_path("KPR")).expect("log");
    assert!(log.contains("answered an innsyn request"), "{log}");
    assert!(log.contains(&format!("{}*********", &fnr[..2])));
    for x in [&fnr, &absent_fnr] {
        assert!(!log.contains(x.as_str()), "an fnr in KPR's log");
    }

    // An innsyn extract that cannot be used stops the node at its start,
    // saying which file and why (not at the first request).
    let missing = d.join("no-such-extract.csv");
    let keyed_by_pseudonym = d.join("pseudonyms.csv");
    std::fs::write(&keyed_by_pseudonym, "pseudonym,x\n").expect("write");
    for (bad, why) in [(&missing, "cannot"), (&keyed_by_pseudonym, "fnr")] {
        let mut args = nodes.start_args(kpr);
        let at = args
            .iter()
            .position(|a| a == "--innsyn-extract")
            .expect("the flag");
        args[at + 1] = path(bad).to_string();
        let (code, err) = common::run_expecting_exit(&args);
        assert!(code.is_some_and(|c| c != 0), "{code:?} {err}");
        assert!(
            err.contains("unusable innsyn extract") && err.contains(why),
            "{err}"
        );
    }
}
