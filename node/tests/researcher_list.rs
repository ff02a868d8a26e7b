//! Issue 16 item 1, second half (docs/protocol.md §18): the researcher's
//! own list through the real engines (`kobling_node::testing`, in memory).
//! The researcher's client sends its list to the linker, which relays it
//! to hop 1; the registers and the linker step it as any list; the
//! researcher signs its `A_0` once σ is fixed; the cohort is the order's
//! cohort ∩ RESEARCHER and the researcher's own table carries the same
//! lnr as the registers' tables. Checked against the generator's ground
//! truth; a relay that changes the researcher's chunks, an announcement
//! unlike the order or not the researcher's, and a transcript whose
//! researcher list someone else signed are refused.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use ed25519_dalek::SigningKey;
use kobling_node::testing::{Faults, Federation, Net, ProjectConfig, RunOutcome, LINKER};
use kobling_protocol::{
    messages::Message,
    researcher_list::wire::ResearcherListPart,
    transcript::{encode_file, Body, Entry, SignedStatement, Signer, Trailer, Transcript},
    types::{Digest, Name, ProjectId},
};
use kobling_sim::{
    population::{generate, Extract, Population, PopulationConfig},
    truth,
};

const REGISTERS: [&str; 2] = ["NPR", "KPR"];
const RESEARCHER: &str = "RESEARCHER";

fn name(s: &str) -> Name {
    Name::new(s).expect("valid name")
}

fn config(project: &str) -> ProjectConfig {
    ProjectConfig {
        project: project.into(),
        cohort: "NPR | KPR".into(),
        chunk_size: 16,
        seed: 5,
        faults: Faults::default(),
    }
}

struct World {
    dir: tempfile::TempDir,
    fed: Federation,
    pop: Population,
}

fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = Federation::create(&dir.path().join("fed"), &REGISTERS, 42).expect("federation");
    let pop = generate(&PopulationConfig {
        persons: 400,
        seed: 7,
        cohort_share: 0.2,
        ..Default::default()
    });
    World { dir, fed, pop }
}

impl World {
    fn extracts(&self) -> Vec<&Extract> {
        REGISTERS
            .iter()
            .map(|r| self.pop.extract(r).expect("extract"))
            .collect()
    }

    /// The researcher's persons: 30 of NPR's, 10 in KPR but not NPR, and
    /// 8 in neither register.
    fn list(&self) -> Vec<usize> {
        let (npr, kpr) = (self.pop.members("NPR"), self.pop.members("KPR"));
        let mut list: Vec<usize> = npr.iter().copied().step_by(2).take(30).collect();
        list.extend(kpr.difference(&npr).copied().take(10));
        list.extend(
            (0..self.pop.persons.len())
                .filter(|p| !npr.contains(p) && !kpr.contains(p))
                .take(8),
        );
        assert_eq!(list.len(), 48, "the population has too few persons");
        list
    }

    /// The list file's rows: fnr and the researcher's own column.
    fn rows(&self, list: &[usize]) -> Vec<Vec<String>> {
        list.iter()
            .map(|p| {
                vec![
                    self.pop.persons[*p].id.expose().to_string(),
                    format!("arm-{p}"),
                ]
            })
            .collect()
    }

    fn lnr_of(&self, project: &str) -> Vec<kobling_protocol::link::Lnr> {
        let project = ProjectId::new(project).expect("id");
        truth::lnr_from_keystores(&self.fed.keystores(), &project, &self.pop).expect("shares")
    }

    fn signing_key(&self, member: &str) -> SigningKey {
        SigningKey::from_bytes(
            &self
                .fed
                .keystore(member)
                .expect("keystore")
                .signing_key()
                .to_bytes(),
        )
    }
}

fn tables_of(
    out: &RunOutcome,
    list: &str,
) -> BTreeMap<kobling_protocol::link::Lnr, Vec<Vec<String>>> {
    let mut t: BTreeMap<_, Vec<Vec<String>>> = BTreeMap::new();
    for (lnr, row) in out.tables.get(&name(list)).into_iter().flatten() {
        t.entry(*lnr).or_default().push(row.clone());
    }
    t
}

fn kobling(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kobling"))
        .args(args)
        .env("KOBLING_LOG", "warn")
        .output()
        .expect("run kobling");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().expect("exit code"), text)
}

fn verify(dir: &Path, entries: &[Entry], trailer: &Trailer, file: &str) -> (i32, String) {
    let path = dir.join(file);
    std::fs::write(&path, encode_file(entries, trailer)).expect("write transcript");
    kobling(&[
        "audit",
        "verify",
        "--transcript",
        &path.display().to_string(),
        "--manifest",
        &dir.join("manifest.toml").display().to_string(),
    ])
}

#[test]
fn the_researchers_list_goes_through_the_chain_with_the_registers_lnr_and_audits() {
    let w = world();
    let list = w.list();
    let mut net = w.fed.start(16, Faults::default(), 3).expect("net");
    let config = config("RLIST-1");
    let order = w
        .fed
        .order(&config.project, &config.cohort, &w.extracts())
        .expect("order");
    let out = w
        .fed
        .run_identified(
            &mut net,
            order,
            &w.extracts(),
            &config,
            &["arm"],
            &w.rows(&list),
        )
        .expect("delivered");
    let lnr_of = w.lnr_of("RLIST-1");
    let (npr, kpr) = (w.pop.members("NPR"), w.pop.members("KPR"));
    let in_list: BTreeSet<usize> = list.iter().copied().collect();
    // The cohort: (NPR | KPR) & RESEARCHER.
    let cohort: BTreeSet<usize> = in_list
        .iter()
        .copied()
        .filter(|p| npr.contains(p) || kpr.contains(p))
        .collect();
    assert_eq!(cohort.len(), 40);

    // The researcher's own table: every cohort person once, with its own
    // column, under the lnr the generator's ground truth gives.
    let own = tables_of(&out, RESEARCHER);
    let want: BTreeMap<_, Vec<Vec<String>>> = cohort
        .iter()
        .map(|p| (lnr_of[*p], vec![vec![format!("arm-{p}")]]))
        .collect();
    assert_eq!(own, want, "the researcher's table");
    // The registers' tables: the same lnr for the same person, only for
    // the cohort (persons outside the researcher list are not delivered).
    let registers: BTreeMap<Name, Vec<_>> = out
        .tables
        .iter()
        .filter(|(n, _)| n.as_str() != RESEARCHER)
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect();
    let problems = truth::compare_cohort(&w.pop, &lnr_of, &cohort, &registers);
    assert!(problems.is_empty(), "{problems:?}");
    for (register, members) in [("NPR", &npr), ("KPR", &kpr)] {
        let got: BTreeSet<_> = tables_of(&out, register).into_keys().collect();
        let want: BTreeSet<_> = cohort
            .iter()
            .filter(|p| members.contains(p))
            .map(|p| lnr_of[*p])
            .collect();
        assert_eq!(got, want, "{register}'s table");
        assert!(!got.is_empty());
    }
    let delivered: BTreeSet<_> = out.tables.values().flatten().map(|(l, _)| *l).collect();
    for p in npr.iter().filter(|p| !in_list.contains(p)) {
        assert!(
            !delivered.contains(&lnr_of[*p]),
            "a person outside the researcher list"
        );
    }
    for p in in_list.difference(&cohort) {
        assert!(
            !delivered.contains(&lnr_of[*p]),
            "a person in no register list"
        );
    }

    // The transcript: the researcher signed its list; it audits.
    let (entries, trailer) = out.transcript;
    let researcher = Signer::Researcher(out.verified.order.researcher_signing_key);
    let at = entries
        .iter()
        .position(|e| matches!(&e.signed.statement.body, Body::ListAnnouncedV2(a) if a.list.as_str() == RESEARCHER))
        .expect("the researcher list's announcement");
    assert_eq!(entries[at].signed.statement.signer, researcher);
    kobling_protocol::transcript::verify(&entries, Some(&trailer), &w.fed.manifest)
        .expect("the transcript verifies");
    std::fs::write(
        w.dir.path().join("manifest.toml"),
        toml::to_string_pretty(&w.fed.manifest).expect("manifest"),
    )
    .expect("write manifest");
    let (code, text) = verify(w.dir.path(), &entries, &trailer, "clean.kob");
    assert_eq!(code, 0, "{text}");

    // Re-signed by someone else (an operator of NPR, whose signature is
    // valid; or KPR's node) and re-chained by the linker: refused.
    let linker = w.signing_key(LINKER);
    let operator = w.fed.operators[&name("NPR")][0].clone();
    let end = entries
        .iter()
        .position(|e| matches!(&e.signed.statement.body, Body::OwnerListV2(o) if o.list.as_str() == RESEARCHER))
        .expect("the researcher list's end");
    let kpr_key = w.signing_key("KPR");
    let cases: [(usize, Signer, &SigningKey, &str); 2] = [
        (
            at,
            Signer::Operator {
                register: name("NPR"),
                key: kobling_protocol::manifest::Ed25519Key(operator.verifying_key().to_bytes()),
            },
            &operator,
            "operator.kob",
        ),
        (end, Signer::Node(name("KPR")), &kpr_key, "node.kob"),
    ];
    for (i, signer, key, file) in cases {
        let statements: Vec<SignedStatement> = entries
            .iter()
            .enumerate()
            .map(|(j, e)| {
                if j == i {
                    let mut st = e.signed.statement.clone();
                    st.signer = signer.clone();
                    st.sign(key)
                } else {
                    e.signed.clone()
                }
            })
            .collect();
        let mut t = Transcript::new();
        for s in statements {
            t.append(s, &linker);
        }
        let resigned = t.into_entries();
        let retrailer = Trailer::sign(&trailer.project, &resigned, &linker);
        let (code, text) = verify(w.dir.path(), &resigned, &retrailer, file);
        assert_ne!(code, 0, "{file} verified:\n{text}");
        assert!(
            text.contains("must be signed by the project's researcher"),
            "{file}: {text}"
        );
    }
}

/// Orders and approves an identified project with the researcher list of
/// `w`, and waits until every key holder committed; returns the order and
/// the list file.
fn approved(
    w: &World,
    net: &mut Net,
    project: &str,
) -> (kobling_protocol::transcript::ProjectOrder, PathBuf) {
    let config = config(project);
    let file = w.dir.path().join(format!("{project}.csv"));
    let mut order = w
        .fed
        .order(&config.project, &config.cohort, &w.extracts())
        .expect("order");
    order.identified = Some(
        w.fed
            .write_researcher_list(&file, &["arm"], &w.rows(&w.list()))
            .expect("list"),
    );
    let order = order.granted_by(&kobling_node::testing::authority());
    let order = w
        .fed
        .submit_and_approve(net, order, &w.extracts(), &config)
        .expect("approved");
    (order, file)
}

fn refused_with(replies: &[Message]) -> (String, String) {
    match replies.first() {
        Some(Message::Refused { code, detail }) => {
            (code.as_str().to_string(), detail.as_str().to_string())
        }
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn the_linker_refuses_a_researcher_announcement_unlike_the_order_or_not_the_researchers() {
    let w = world();
    let mut net = w.fed.start(16, Faults::default(), 3).expect("net");
    let (order, file) = approved(&w, &mut net, "RLIST-BAD");
    // The client refuses a file that is not the order's, before sending.
    let other = w.dir.path().join("other.csv");
    w.fed
        .write_researcher_list(&other, &["arm"], &w.rows(&w.list()[1..]))
        .expect("other list");
    let e = w
        .fed
        .researcher_list_messages(&net, &order, &other, 16, 1)
        .expect_err("another file");
    assert!(e.to_string().contains("persons"), "{e}");

    let (messages, _) = w
        .fed
        .researcher_list_messages(&net, &order, &file, 16, 1)
        .expect("messages");
    let Some(Message::ResearcherList(part)) = messages.first() else {
        panic!("the announcement first");
    };
    let ResearcherListPart::Announce {
        announcement,
        first,
        second,
    } = (**part).clone()
    else {
        panic!("the announcement first");
    };
    let researcher = w.fed.researcher.clone();
    let stranger = SigningKey::from_bytes(&[0x42; 32]);
    let operator = w.fed.operators[&name("NPR")][0].clone();
    let resigned = |change: &dyn Fn(&mut kobling_protocol::transcript::Statement),
                    key: &SigningKey| {
        let mut st = announcement.statement.clone();
        change(&mut st);
        Message::ResearcherList(Box::new(ResearcherListPart::Announce {
            announcement: st.sign(key),
            first: first.clone(),
            second: second.clone(),
        }))
    };
    let persons = |st: &mut kobling_protocol::transcript::Statement| {
        if let Body::ListAnnouncedV2(a) = &mut st.body {
            a.persons += 1;
        }
    };
    let digest = |st: &mut kobling_protocol::transcript::Statement| {
        if let Body::ListAnnouncedV2(a) = &mut st.body {
            a.extract = Digest([9; 32]);
        }
    };
    let op_signer = |st: &mut kobling_protocol::transcript::Statement| {
        st.signer = Signer::Operator {
            register: name("NPR"),
            key: kobling_protocol::manifest::Ed25519Key(operator.verifying_key().to_bytes()),
        };
    };
    let cases: Vec<(Message, &str, &str)> = vec![
        (
            resigned(&persons, &researcher),
            "researcher-list",
            "persons",
        ),
        (resigned(&digest, &researcher), "researcher-list", "digest"),
        (
            resigned(&|_| {}, &stranger),
            "not-the-researcher",
            "researcher",
        ),
        (
            resigned(&op_signer, &operator),
            "not-the-researcher",
            "researcher",
        ),
    ];
    for (msg, code, says) in cases {
        let replies = net
            .client_retrying(&name(LINKER), &msg, 60_000)
            .expect("answered");
        let (got, detail) = refused_with(&replies);
        assert_eq!(got, code, "{detail}");
        assert!(detail.contains(says), "{detail}");
    }
    let entries = net
        .transcript(&name(LINKER), &order.project)
        .expect("transcript");
    assert!(
        !entries.iter().any(|e| matches!(&e.signed.statement.body, Body::ListAnnouncedV2(a) if a.list.as_str() == RESEARCHER)),
        "a refused announcement was recorded"
    );
    // The honest announcement is taken.
    let replies = net
        .client_retrying(&name(LINKER), &messages[0], 60_000)
        .expect("answered");
    assert!(
        matches!(replies.first(), Some(Message::Ack { .. })),
        "{replies:?}"
    );
}

/// What a relaying linker does to the researcher's chunk 1 on its way to
/// hop 1.
#[derive(Clone, Copy, Debug)]
enum Relay {
    /// One point changed (two swapped).
    Changed,
    /// Dropped: chunk 2's statement and points sent as chunk 1.
    Dropped,
    /// Reordered: chunk 1's points in another order.
    Reordered,
}

#[test]
fn hop1_refuses_a_researcher_chunk_the_relaying_linker_changed_dropped_or_reordered() {
    // A federation per case: the stuck chunk holds the linker's queue to
    // hop 1 for good (the sender offers it in order), as it should.
    for (i, relay) in [Relay::Changed, Relay::Dropped, Relay::Reordered]
        .into_iter()
        .enumerate()
    {
        let w = world();
        let mut net = w.fed.start(16, Faults::default(), 3).expect("net");
        let project = format!("RLIST-RELAY-{i}");
        let (order, file) = approved(&w, &mut net, &project);
        // The client's chunk 2, as the client will send it (the same seed
        // makes the same list).
        let (messages, _) = w
            .fed
            .researcher_list_messages(&net, &order, &file, 16, 1)
            .expect("messages");
        let chunk2 = messages
            .iter()
            .find_map(|m| match m {
                Message::ResearcherList(part) => match &**part {
                    ResearcherListPart::Chunk { chunk, .. }
                        if chunk.statement.statement.chunk.0 == 2 =>
                    {
                        Some(chunk.clone())
                    }
                    _ => None,
                },
                _ => None,
            })
            .expect("a chunk 2");
        net.tamper(Box::new(move |from, to, msg| {
            let Message::ChunkV2 { chunk, .. } = msg else {
                return;
            };
            let st = &chunk.statement.statement;
            if from.as_str() != LINKER
                || to.as_str() != "NPR"
                || chunk.list.as_str() != RESEARCHER
                || st.hop.as_usize() != 0
            {
                return;
            }
            match (relay, st.chunk.0) {
                (Relay::Changed, 1) => {
                    let mut points = chunk.points.to_vec();
                    points.swap(0, 1);
                    points[0] = points[2];
                    chunk.points =
                        kobling_protocol::bounded::BoundedVec::new(points).expect("fits");
                }
                (Relay::Reordered, 1) => {
                    let mut points = chunk.points.to_vec();
                    points.reverse();
                    chunk.points =
                        kobling_protocol::bounded::BoundedVec::new(points).expect("fits");
                }
                (Relay::Dropped, 1) => {
                    *chunk = chunk2.clone();
                    chunk.statement.statement.chunk = kobling_protocol::types::ChunkIndex(1);
                }
                _ => {}
            }
        }));
        w.fed
            .send_researcher_list(&mut net, &order, &file, 16, 1)
            .expect("sent");
        net.run_for(60_000).expect("ran");
        let entries = net
            .transcript(&name(LINKER), &order.project)
            .expect("transcript");
        let hop1 = entries.iter().any(
            |e| matches!(&e.signed.statement.body, Body::HopV2(h) if h.list.as_str() == RESEARCHER),
        );
        assert!(!hop1, "{relay:?}: hop 1 stepped the researcher list");
        assert!(
            !entries
                .iter()
                .any(|e| matches!(e.signed.statement.body, Body::LinkSummary(_))),
            "{relay:?}: linked"
        );
        let refused = net.refusals().iter().any(|(from, to, code, _)| {
            from.as_str() == LINKER && to.as_str() == "NPR" && code == "bad-chunk"
        });
        assert!(refused, "{relay:?}: {:?}", net.refusals());
    }
}

#[test]
fn the_linker_relays_only_the_researchers_own_a0_and_the_project_goes_on() {
    let w = world();
    let mut net = w.fed.start(16, Faults::default(), 3).expect("net");
    let start = net.clock_ms();
    let (order, file) = approved(&w, &mut net, "RLIST-A0");
    let kept = w
        .fed
        .send_researcher_list(&mut net, &order, &file, 16, 1)
        .expect("sent");
    // Until every hop record is in, no A_0 is taken.
    let manifest = w.fed.manifest.clone();
    let mut ready = false;
    net.run_until(120_000, |net| {
        let entries = net.transcript(&name(LINKER), &order.project)?;
        let view = kobling_protocol::project::ProjectView::new(&manifest, &entries);
        ready = kobling_protocol::researcher_list::pass_context(&view)
            .expect("records")
            .is_some();
        Ok(ready)
    })
    .expect("the researcher list's hops recorded");
    assert!(ready);
    // A_0 signed by someone else (under the right σ), or for another σ:
    // refused, nothing relayed, the project is not closed.
    let entries = net
        .transcript(&name(LINKER), &order.project)
        .expect("transcript");
    let view = kobling_protocol::project::ProjectView::new(&manifest, &entries);
    let stranger = SigningKey::from_bytes(&[0x42; 32]);
    let honest = kobling_protocol::researcher_list::pass(&view, &kept, &w.fed.researcher)
        .expect("pass")
        .expect("ready");
    let forged = kobling_protocol::researcher_list::pass(&view, &kept, &stranger)
        .expect("pass")
        .expect("ready");
    let mut other_sigma = honest.clone();
    other_sigma.sigma = Digest([7; 32]);
    for pass in [forged, other_sigma] {
        let msg = Message::ResearcherList(Box::new(ResearcherListPart::Pass {
            project: order.project.clone(),
            pass,
        }));
        let replies = net.client(&name(LINKER), msg).expect("answered");
        let (code, detail) = refused_with(&replies);
        assert_eq!(code, "researcher-list", "{detail}");
    }
    net.run_for(5_000).expect("ran");
    let entries = net
        .transcript(&name(LINKER), &order.project)
        .expect("transcript");
    assert!(
        !entries
            .iter()
            .any(|e| matches!(e.signed.statement.body, Body::Closure(_))),
        "a refused A_0 closed the project"
    );
    // The researcher's own A_0 then links and delivers.
    let out = w
        .fed
        .run_to_delivery_with(&mut net, &order, &config("RLIST-A0"), start, Some(&kept))
        .expect("delivered");
    assert!(out.tables.contains_key(&name(RESEARCHER)));
}
