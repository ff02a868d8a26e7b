//! Issue 15 item 3: projects with pseudonymous lists, on real engines in
//! memory (`kobling_node::testing`). RESEPT is the holder of register
//! domain RESEPT (key holders NPR, KPR, SSB and the linker); its extract
//! has a `pseudonym` column (`Ψ_R(x)`, computed by the harness from the key
//! holders' keystores) instead of `fnr`. A project links NPR and KPR (fnr)
//! with RESEPT (pseudonymous); SSB, a key holder of RESEPT without a list,
//! takes part and converts RESEPT's list.

use std::{cell::RefCell, collections::BTreeSet, path::Path, rc::Rc};

use aho_corasick::AhoCorasick;
use kobling_node::testing::{
    Faults, Federation, Net, ProjectConfig, RunOutcome, INVALID_PSEUDONYM, LINKER,
};
use kobling_protocol::{
    domain::parse_pseudonym,
    group::WirePoint,
    link::Lnr,
    messages::Message,
    share::Domain,
    transcript::{self, Body, Signer, Statement},
    types::{ListName, Name, ProjectId},
};
use kobling_sim::{
    population::{generate, Extract, Population, PopulationConfig},
    truth,
};
use rand_chacha::rand_core::SeedableRng as _;

const REGISTERS: [&str; 4] = ["NPR", "KPR", "SSB", "RESEPT"];

fn name(s: &str) -> Name {
    Name::new(s).expect("valid name")
}

fn list_name(s: &str) -> ListName {
    ListName::new(s).expect("valid name")
}

fn config(project: &str) -> ProjectConfig {
    ProjectConfig {
        project: project.into(),
        cohort: "NPR | RESEPT".into(),
        chunk_size: 64,
        seed: 3,
        faults: Faults::default(),
    }
}

struct World {
    _dir: tempfile::TempDir,
    fed: Federation,
    pop: Population,
    resept: Extract,
}

fn world(persons: usize) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = Federation::create(dir.path(), &REGISTERS, 42)
        .expect("federation")
        .with_domain("RESEPT", "RESEPT")
        .expect("domain");
    let pop = generate(&PopulationConfig {
        persons,
        seed: 7,
        ..Default::default()
    });
    let resept = fed
        .pseudonymous_extract(pop.extract("RESEPT").expect("extract"), "RESEPT")
        .expect("holder's extract");
    World {
        _dir: dir,
        fed,
        pop,
        resept,
    }
}

impl World {
    fn extracts(&self) -> Vec<&Extract> {
        vec![
            self.pop.extract("NPR").expect("NPR"),
            self.pop.extract("KPR").expect("KPR"),
            &self.resept,
        ]
    }

    fn run(&self, net: &mut Net, project: &str) -> RunOutcome {
        let config = config(project);
        let order = self
            .fed
            .pseudonymous_order(&config, &self.extracts(), &[("RESEPT", "RESEPT")])
            .expect("order");
        let start = net.clock_ms();
        self.fed
            .approve_pseudonymous(net, &order, &self.extracts(), &["SSB"], &config)
            .expect("approved");
        self.fed
            .run_to_delivery(net, &order, &config, start)
            .expect("run")
    }

    /// Every `Ψ_R` of the holder's extract, as 32 bytes.
    fn pseudonyms(&self) -> Vec<[u8; 32]> {
        self.resept
            .rows
            .iter()
            .filter_map(|(p, _)| parse_pseudonym(p).ok())
            .map(|p| p.encode().0)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

/// Every point a chunk carried on the network.
fn observe_points(net: &mut Net) -> Rc<RefCell<Vec<WirePoint>>> {
    let seen: Rc<RefCell<Vec<WirePoint>>> = Rc::default();
    let s = seen.clone();
    net.observe(Box::new(move |_, _, msg| {
        if let Message::ChunkV2 { chunk, .. } = msg {
            s.borrow_mut()
                .extend(chunk.input.iter().chain(chunk.points.iter()).copied());
        }
    }));
    seen
}

/// The files under `dir` (recursively), but `skip`.
fn files(dir: &Path, skip: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir") {
        let path = e.expect("entry").path();
        if path.starts_with(skip) {
            continue;
        }
        if path.is_dir() {
            files(&path, skip, out);
        } else if path.is_file() {
            out.push(path);
        }
    }
}

#[test]
fn a_pseudonymous_list_links_with_fnr_lists_and_its_pseudonyms_stay_at_the_holder() {
    let w = world(240);
    let mut net = w.fed.start(64, Faults::default(), 3).expect("nodes");
    let wire = observe_points(&mut net);
    let out = w.run(&mut net, "PSEUDO-1");

    // The same person gets the same lnr in every table, as the ground
    // truth (every member's project share, SSB's included) says.
    let project = ProjectId::new("PSEUDO-1").expect("id");
    let lnr_of = truth::lnr_from_keystores(&w.fed.keystores(), &project, &w.pop).expect("shares");
    let cohort: BTreeSet<usize> = w
        .pop
        .members("NPR")
        .union(&w.pop.members("RESEPT"))
        .copied()
        .collect();
    let problems = truth::compare_cohort(&w.pop, &lnr_of, &cohort, &out.tables);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        out.tables.keys().cloned().collect::<Vec<_>>(),
        vec![name("KPR"), name("NPR"), name("RESEPT")]
    );
    let both: Vec<usize> = w
        .pop
        .members("NPR")
        .intersection(&w.pop.members("RESEPT"))
        .copied()
        .collect();
    assert!(both.len() >= 5, "persons in NPR and RESEPT: {}", both.len());
    for person in &both {
        let lnr = lnr_of[*person];
        for r in ["NPR", "RESEPT"] {
            assert!(
                out.tables[&name(r)].iter().any(|(l, _)| *l == lnr),
                "person {person} is missing from {r} under its lnr"
            );
        }
    }

    // The holder's invalid pseudonyms: counted per reason, not delivered.
    let invalid = w.resept.owners.iter().filter(|o| o.is_none()).count() as u64;
    assert!(invalid > 0);
    let list = out
        .verified
        .lists
        .iter()
        .find(|l| l.list == list_name("RESEPT"))
        .expect("RESEPT's list");
    assert_eq!(list.invalid, invalid);
    let (entries, trailer) = &out.transcript;
    let reasons: Vec<(String, u64)> = entries
        .iter()
        .find_map(|e| match &e.signed.statement.body {
            Body::ListAnnouncedV2(a) if a.list == list_name("RESEPT") => Some(
                a.invalid
                    .iter()
                    .map(|i| (i.reason.as_str().to_string(), i.count))
                    .collect(),
            ),
            _ => None,
        })
        .expect("RESEPT's announcement");
    assert_eq!(reasons, vec![("non-hex".to_string(), invalid)]);
    assert!(INVALID_PSEUDONYM.starts_with("zz"));

    // SSB has no list and took part: its hop on RESEPT's list is a
    // conversion (K'_SSB, bound to K_{SSB,R} and K_{SSB,p}), its hop on
    // NPR's list a plain step (K_{SSB,p}).
    let key_of = |list: &str, member: &str| {
        entries
            .iter()
            .find_map(|e| match &e.signed.statement.body {
                Body::HopV2(h) if h.list == list_name(list) && h.member == name(member) => {
                    Some(h.key)
                }
                _ => None,
            })
            .expect("hop record")
    };
    let committed = |member: &str, domain: &Domain| {
        entries
            .iter()
            .find_map(|e| match &e.signed.statement.body {
                Body::Commitment(c) if c.member == name(member) && &c.domain == domain => {
                    Some(c.key)
                }
                _ => None,
            })
            .expect("commitment")
    };
    let conversion = |member: &str| {
        entries
            .iter()
            .find_map(|e| match &e.signed.statement.body {
                Body::Conversion(c) if c.member == name(member) => Some(c.binding),
                _ => None,
            })
            .expect("conversion binding")
    };
    let p = Domain::Project(project.clone());
    let r = Domain::Register(name("RESEPT"));
    for member in ["NPR", "KPR", "SSB", LINKER] {
        let b = conversion(member);
        assert_eq!(b.from_key, committed(member, &r), "{member}: K_R");
        assert_eq!(b.to_key, committed(member, &p), "{member}: K_p");
    }
    assert!(
        !entries.iter().any(|e| matches!(
            &e.signed.statement.body,
            Body::Conversion(c) if c.member == name("RESEPT")
        )),
        "the holder holds no share of its own domain"
    );
    assert_eq!(key_of("RESEPT", "SSB"), conversion("SSB").combined);
    assert_eq!(key_of("NPR", "SSB"), committed("SSB", &p));
    assert_eq!(key_of("RESEPT", "NPR"), conversion("NPR").combined);
    // The transcript verifies on its own (the auditor's check).
    let manifest = net.manifest().clone();
    transcript::verify(entries, Some(trailer), &manifest).expect("the transcript verifies");

    // Ψ_R never leaves the holder: not on the network, not in the
    // researcher's output or the transcript, not in any node's files (the
    // extracts directory, where the holder's extract lies, aside).
    let pseudonyms = w.pseudonyms();
    assert!(pseudonyms.len() > 100);
    let on_wire: BTreeSet<[u8; 32]> = wire.borrow().iter().map(|p| p.0).collect();
    assert!(!on_wire.is_empty());
    assert!(pseudonyms.iter().all(|p| !on_wire.contains(p)));
    let mut needles: Vec<Vec<u8>> = Vec::new();
    for p in &pseudonyms {
        let hex: String = p.iter().map(|b| format!("{b:02x}")).collect();
        needles.push(p.to_vec());
        needles.push(hex.to_uppercase().into_bytes());
        needles.push(hex.into_bytes());
    }
    let finder = AhoCorasick::new(&needles).expect("patterns");
    let researcher: String = out
        .tables
        .values()
        .flatten()
        .map(|(l, row)| format!("{l},{}\n", row.join(",")))
        .collect();
    assert!(
        finder.find(researcher.as_bytes()).is_none(),
        "researcher's tables"
    );
    assert!(finder.find(&out.transcript_file).is_none(), "transcript");
    for m in REGISTERS.iter().chain([&LINKER]) {
        let t = net.transcript(&name(m), &project).expect("transcript copy");
        assert!(
            finder.find(&transcript::encode_value(&t)).is_none(),
            "{m}'s transcript"
        );
    }
    let mut all = Vec::new();
    files(&w.fed.dir, &w.fed.extracts(), &mut all);
    assert!(all.iter().any(|f| f.starts_with(w.fed.dir.join("RESEPT"))));
    for f in &all {
        let bytes = std::fs::read(f).expect("read");
        assert!(
            finder.find(&bytes).is_none(),
            "a pseudonym of the holder's extract is in {}",
            f.display()
        );
    }

    // A second project gives every person other lnr.
    let second = w.run(&mut net, "PSEUDO-2");
    let first_lnr: BTreeSet<Lnr> = out.tables.values().flatten().map(|(l, _)| *l).collect();
    let second_lnr: BTreeSet<Lnr> = second.tables.values().flatten().map(|(l, _)| *l).collect();
    assert_eq!(first_lnr.len(), second_lnr.len());
    assert!(first_lnr.is_disjoint(&second_lnr));
}

#[test]
fn a_member_that_holds_no_key_of_the_domain_cannot_bind_a_conversion() {
    let w = world(60);
    let mut net = w.fed.start(64, Faults::default(), 5).expect("nodes");
    let config = config("PSEUDO-3");
    let order = w
        .fed
        .pseudonymous_order(&config, &w.extracts(), &[("RESEPT", "RESEPT")])
        .expect("order");
    let _ = w.fed.submit(&mut net, &order).expect("submitted");
    // RESEPT, the holder, holds no share of its own domain: a conversion
    // binding it signs (with any keys) is refused by the linker and kept
    // out of the transcript.
    let ks = w.fed.keystore("RESEPT").expect("keystore");
    let forged = kobling_protocol::domain::ConversionKey::new(
        kobling_protocol::domain::ConversionContext {
            from: &Domain::Register(name("RESEPT")),
            to: &Domain::Project(order.project.clone()),
            member: &name("RESEPT"),
        },
        &kobling_protocol::share::Share::from_secret_bytes(&[7; 32]).expect("share"),
        &kobling_protocol::share::Share::from_secret_bytes(&[9; 32]).expect("share"),
        &mut rand_chacha::ChaCha20Rng::from_seed([1; 32]),
    );
    let signed = Statement {
        project: order.project.clone(),
        time: net.now(),
        signer: Signer::Node(name("RESEPT")),
        body: Body::Conversion(kobling_protocol::domain::ConversionBinding {
            member: name("RESEPT"),
            domain: name("RESEPT"),
            binding: *forged.binding(),
        }),
    }
    .sign(ks.signing_key());
    let now = net.now();
    let replies = net
        .engine(&name(LINKER))
        .expect("linker")
        .handle(
            &kobling_node::engine::Peer::Member(name("RESEPT")),
            Message::Statement(signed),
            now,
        )
        .expect("handled");
    let refused = replies.first().expect("a reply");
    let detail = match refused {
        Message::Refused { detail, .. } => detail.as_str().to_string(),
        other => panic!("not refused: {}", other.kind()),
    };
    assert!(detail.contains("holds no key of domain RESEPT"), "{detail}");
    let entries = net
        .transcript(&name(LINKER), &order.project)
        .expect("transcript");
    assert!(!entries
        .iter()
        .any(|e| matches!(e.signed.statement.body, Body::Conversion(_))));
}

/// `entries` with entry `at`'s body replaced by `body`, re-signed by its
/// author and re-chained by the linker from there on (what a member and
/// the linker together could forge; the auditor must still refuse it).
fn forged(
    w: &World,
    entries: &[kobling_protocol::transcript::Entry],
    at: usize,
    body: Body,
) -> Vec<kobling_protocol::transcript::Entry> {
    let author = match &entries[at].signed.statement.signer {
        Signer::Node(n) => n.clone(),
        _ => panic!("not a node's statement"),
    };
    let linker = w.fed.keystore(LINKER).expect("keystore");
    let ks = w.fed.keystore(author.as_str()).expect("keystore");
    let mut out: Vec<kobling_protocol::transcript::Entry> = entries[..at].to_vec();
    for (i, e) in entries.iter().enumerate().skip(at) {
        let signed = if i == at {
            let mut st = e.signed.statement.clone();
            st.body = body.clone();
            st.sign(ks.signing_key())
        } else {
            e.signed.clone()
        };
        let prev = out.last().map(|e| e.hash()).unwrap_or_default();
        out.push(kobling_protocol::transcript::Entry::record(
            i as u64,
            prev,
            signed,
            linker.signing_key(),
        ));
    }
    out
}

#[test]
fn audit_verify_refuses_an_unbound_conversion_key_and_a_plain_step_on_a_list_from_the_domain() {
    let w = world(60);
    let mut net = w.fed.start(64, Faults::default(), 7).expect("nodes");
    let out = w.run(&mut net, "PSEUDO-4");
    let manifest = net.manifest().clone();
    let (entries, _) = &out.transcript;
    transcript::verify(entries, None, &manifest).expect("the honest transcript verifies");
    let project = ProjectId::new("PSEUDO-4").expect("id");
    let p = Domain::Project(project.clone());
    let k_p = |member: &str| {
        entries
            .iter()
            .find_map(|e| match &e.signed.statement.body {
                Body::Commitment(c) if c.member == name(member) && c.domain == p => Some(c.key),
                _ => None,
            })
            .expect("commitment")
    };

    // SSB's conversion binding names NPR's project key instead of its own:
    // the binding does not bind K'_SSB to SSB's committed keys.
    let (at, binding) = entries
        .iter()
        .enumerate()
        .find_map(|(i, e)| match &e.signed.statement.body {
            Body::Conversion(c) if c.member == name("SSB") => Some((i, c.clone())),
            _ => None,
        })
        .expect("SSB's binding");
    let mut other_key = binding.clone();
    other_key.binding.to_key = k_p("NPR");
    let e = transcript::verify(
        &forged(&w, entries, at, Body::Conversion(other_key)),
        None,
        &manifest,
    )
    .expect_err("a binding to another member's key");
    assert_eq!(e.check, transcript::Check::Commitments, "{e}");
    assert!(e.reason.contains("not bound"), "{e}");
    // A binding proof for another K' (a forged proof).
    let mut other_combined = binding.clone();
    other_combined.binding.combined = k_p("SSB");
    let e = transcript::verify(
        &forged(&w, entries, at, Body::Conversion(other_combined)),
        None,
        &manifest,
    )
    .expect_err("a forged binding proof");
    assert_eq!(e.check, transcript::Check::Commitments, "{e}");

    // SSB records a plain step k_{SSB,p} on RESEPT's list (its hop record
    // names K_{SSB,p}, not K'_SSB).
    let (at, hop) = entries
        .iter()
        .enumerate()
        .find_map(|(i, e)| match &e.signed.statement.body {
            Body::HopV2(h) if h.list == list_name("RESEPT") && h.member == name("SSB") => {
                Some((i, h.clone()))
            }
            _ => None,
        })
        .expect("SSB's hop on RESEPT's list");
    let mut plain = hop.clone();
    plain.key = k_p("SSB");
    let e = transcript::verify(
        &forged(&w, entries, at, Body::HopV2(plain)),
        None,
        &manifest,
    )
    .expect_err("a plain step on a list from the domain");
    assert_eq!(e.check, transcript::Check::Commitments, "{e}");
    assert!(e.reason.contains("a key other than its commitment"), "{e}");
}

/// A log sink the test reads back.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_hop_that_records_a_plain_step_on_the_domain_s_list_is_refused_by_the_linker() {
    let w = world(60);
    let mut net = w.fed.start(64, Faults::default(), 9).expect("nodes");
    let project = ProjectId::new("PSEUDO-5").expect("id");
    let ssb_keys = w.fed.dir.join("SSB").join("keys");
    let signing = w
        .fed
        .keystore("SSB")
        .expect("keystore")
        .signing_key()
        .clone();
    // SSB's hop record of RESEPT's list, rewritten in flight to the plain
    // key K_{SSB,p} (read from SSB's keystore once the project domain is
    // accepted) and re-signed with SSB's own key: what SSB sends if it
    // applies k_{SSB,p} instead of its conversion.
    let project_domain = Domain::Project(project.clone());
    let tampered: Rc<RefCell<bool>> = Rc::default();
    let fired = tampered.clone();
    net.tamper(Box::new(move |from, _to, msg| {
        let Message::Statement(s) = msg else {
            return;
        };
        let Body::HopV2(h) = &s.statement.body else {
            return;
        };
        if from.as_str() != "SSB" || h.list.as_str() != "RESEPT" {
            return;
        }
        let k_p = kobling_keys::Keystore::open(&ssb_keys, None)
            .and_then(|k| k.commitment(&project_domain))
            .expect("SSB's project key");
        let mut st = s.statement.clone();
        if let Body::HopV2(h) = &mut st.body {
            h.key = k_p;
        }
        *s = st.sign(&signing);
        *fired.borrow_mut() = true;
    }));
    let config = config("PSEUDO-5");
    let order = w
        .fed
        .pseudonymous_order(&config, &w.extracts(), &[("RESEPT", "RESEPT")])
        .expect("order");
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        w.fed
            .approve_pseudonymous(&mut net, &order, &w.extracts(), &["SSB"], &config)
            .expect("approved");
        net.run_until(300_000, |_| Ok(*tampered.borrow()))
            .expect("SSB sent its record");
        net.run_for(30_000).expect("run");
    });
    // The linker did not record it, and logged why, naming SSB's record.
    let entries = net.transcript(&name(LINKER), &project).expect("transcript");
    assert!(!entries.iter().any(|e| matches!(
        &e.signed.statement.body,
        Body::HopV2(h) if h.list == list_name("RESEPT") && h.member == name("SSB")
    )));
    assert!(!entries
        .iter()
        .any(|e| matches!(&e.signed.statement.body, Body::LinkSummary(_))));
    let logs = String::from_utf8(logs.0.lock().expect("logs").clone()).expect("utf-8");
    let line = logs
        .lines()
        .find(|l| l.contains("the record of hop 3 (SSB) was refused"))
        .unwrap_or_else(|| panic!("no log line of the refusal"));
    assert!(line.contains("a key other than its commitment"), "{line}");
    assert!(line.contains("ERROR"), "{line}");
    // And the project is stopped: the linker's closure is recorded (it is
    // not left queued behind the linker's own record of the list, which
    // waits for SSB's), naming the list.
    let closure = entries
        .iter()
        .find_map(|e| match &e.signed.statement.body {
            Body::Closure(c) => Some(c.reason.as_str().to_string()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the project was not closed"));
    assert!(closure.contains("RESEPT"), "{closure}");
}

#[test]
fn an_extract_with_the_other_key_column_is_refused_at_approval_and_nothing_is_stored() {
    let w = world(40);
    let mut net = w.fed.start(64, Faults::default(), 11).expect("nodes");
    let config = config("PSEUDO-6");
    let order = w
        .fed
        .pseudonymous_order(&config, &w.extracts(), &[("RESEPT", "RESEPT")])
        .expect("order");
    let entry = w.fed.submit(&mut net, &order).expect("submitted");

    // NPR's list with a `pseudonym` column: NPR is an fnr register.
    let npr = w.pop.extract("NPR").expect("NPR");
    let mut bad_npr = npr.clone();
    bad_npr.columns.push("pseudonym");
    for (_, values) in &mut bad_npr.rows {
        values.push(w.resept.rows[0].0.clone());
    }
    // RESEPT's list with its `fnr` column: a holder never holds fnr.
    let fnr_resept = w.pop.extract("RESEPT").expect("RESEPT");
    for (register, extract, file, says) in [
        (
            "NPR",
            &bad_npr,
            "bad-npr.csv",
            "a list never carries a register domain's pseudonyms",
        ),
        ("RESEPT", fnr_resept, "fnr-resept.csv", "never holds fnr"),
    ] {
        w.fed.write_extract(extract, file).expect("write");
        let now = net.now();
        let msg = w
            .fed
            .approval_message(&order, &entry, extract, file, 0, now)
            .expect("approval");
        let replies = net.client(&name(register), msg).expect("reply");
        match replies.first() {
            Some(Message::Refused { code, detail }) => {
                assert_eq!(code.as_str(), "extract", "{register}: {detail:?}");
                assert!(
                    detail.as_str().contains(says),
                    "{register}: {}",
                    detail.as_str()
                );
            }
            other => panic!("{register}: not refused: {other:?}"),
        }
        // Nothing kept: the register holds no copy of the project.
        let held = net
            .transcript(&name(register), &order.project)
            .expect("transcript");
        assert!(held.is_empty(), "{register} kept {} entries", held.len());
    }
    // The holder's own pseudonymous extract is taken.
    let file = "resept.csv";
    w.fed.write_extract(&w.resept, file).expect("write");
    w.fed
        .approve_until_ready(&mut net, "RESEPT", |fed, now| {
            fed.approval_message(&order, &entry, &w.resept, file, 0, now)
        })
        .expect("the holder's extract is approved");
    // A key holder without a list may not approve an extract.
    let kpr_like = w.pop.extract("SSB").expect("SSB");
    w.fed.write_extract(kpr_like, "ssb.csv").expect("write");
    let now = net.now();
    let msg = w
        .fed
        .approval_message(&order, &entry, kpr_like, "ssb.csv", 0, now)
        .expect("approval");
    let replies = net.client(&name("SSB"), msg).expect("reply");
    assert!(
        matches!(replies.first(), Some(Message::Refused { detail, .. }) if detail.as_str().contains("without an extract")),
        "{replies:?}"
    );
}
