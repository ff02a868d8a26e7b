//! Issue 16 item 3 (PROTOCOL.md §10a, `docs/identified.md`): the
//! disclosure log, on real engines in memory (`kobling_node::testing`).
//! The federation's log domain DLOG is held by SSB, its key holders NPR
//! and the linker. An identified project of NPR and KPR delivers and is
//! closed: before the keys are shredded its delivered persons go into the
//! log (NPR converts both sides, KPR removes its project factor only),
//! padded to the linked count. After the shredding a citizen's innsyn at
//! the log answers the project for a delivered person and nothing for one
//! who was not (ground truth from the generator).

use std::path::Path;

use ed25519_dalek::SigningKey;
use kobling_keys::DomainStatus;
use kobling_node::testing::{
    files_contain, refusal, Faults, Federation, Net, ProjectConfig, LINKER,
};
use kobling_protocol::{
    disclosure::MIN_RETENTION_DAYS,
    domain::{DomainKind, DomainSpec},
    group::WirePoint,
    ident::Identifier,
    innsyn::{
        blinded::BlindedPerson,
        wire::{InnsynAction, InnsynCall, SignedInnsyn},
        DeviceSession,
    },
    manifest::{Ed25519Key, Portal},
    messages::{Action, Message},
    project::{Phase, ProjectView},
    refusal::RefusalCode,
    seal::HpkePublicKey,
    share::Domain,
    types::{Digest, Name, ProjectId, UnixTime},
};
use kobling_sim::population::{generate, Extract, Population, PopulationConfig};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

fn name(s: &str) -> Name {
    Name::new(s).expect("valid name")
}

const LOG: &str = "DLOG";
const HOLDER: &str = "SSB";

struct World {
    fed: Federation,
    net: Net,
    portal: SigningKey,
    pop: Population,
    nonce: u64,
    rng: ChaCha20Rng,
}

fn config(project: &str) -> ProjectConfig {
    ProjectConfig {
        project: project.into(),
        cohort: "NPR & KPR".into(),
        chunk_size: 64,
        seed: 5,
        faults: Faults::default(),
    }
}

impl World {
    fn new(dir: &Path) -> World {
        let mut fed = Federation::create(dir, &["NPR", "KPR", HOLDER], 23).expect("federation");
        fed.manifest.domains.push(DomainSpec {
            name: name(LOG),
            holder: name(HOLDER),
            key_holders: Some(vec![name("NPR"), name(LINKER)]),
            kind: DomainKind::DisclosureLog,
        });
        let portal = SigningKey::from_bytes(&[0x43; 32]);
        fed.manifest.portals.push(Portal {
            name: name("HELSENORGE"),
            key: Ed25519Key(portal.verifying_key().to_bytes()),
        });
        fed.manifest.validate().expect("valid manifest");
        let pop = generate(&PopulationConfig {
            persons: 300,
            seed: 11,
            cohort_share: 0.2,
            ..Default::default()
        });
        let mut net = fed.start(64, Faults::default(), 3).expect("net");
        net.run_until(120_000, |net| {
            Ok(net
                .engine(&name(HOLDER))?
                .domain_state(&name(LOG))?
                .is_some_and(|s| s.is_complete()))
        })
        .expect("the log domain is created and committed");
        World {
            fed,
            net,
            portal,
            pop,
            nonce: 0,
            rng: ChaCha20Rng::seed_from_u64(71),
        }
    }

    fn extracts(&self) -> Vec<&Extract> {
        ["NPR", "KPR"]
            .iter()
            .map(|r| self.pop.extract(r).expect("extract"))
            .collect()
    }

    /// Runs `project` to delivery (identified or ordinary) and closes it
    /// as its researcher; runs until every node shredded its key.
    fn run_and_close(&mut self, project: &str, identified: bool) {
        let config = config(project);
        let order = self
            .fed
            .order(&config.project, &config.cohort, &self.extracts())
            .expect("order");
        let extracts: Vec<Extract> = self.extracts().into_iter().cloned().collect();
        let refs: Vec<&Extract> = extracts.iter().collect();
        if identified {
            // The researcher's own list: the persons it will receive.
            let rows: Vec<Vec<String>> = self
                .delivered()
                .iter()
                .map(|p| vec![self.pop.persons[*p].id.expose().to_string(), "A".into()])
                .collect();
            self.fed
                .run_identified(&mut self.net, order, &refs, &config, &["arm"], &rows)
                .expect("delivered");
        } else {
            let start = self.net.clock_ms();
            let order = self
                .fed
                .submit_and_approve(&mut self.net, order, &refs, &config)
                .expect("approved");
            self.fed
                .run_to_delivery(&mut self.net, &order, &config, start)
                .expect("delivered");
        }
        let close = self
            .fed
            .request(project, Action::Close, self.net.now())
            .expect("request");
        let replies = self.net.client(&name(LINKER), close).expect("answered");
        assert!(
            matches!(replies.first(), Some(Message::Ack { .. })),
            "{replies:?}"
        );
        let id = ProjectId::new(project).expect("id");
        let manifest = self.fed.manifest.clone();
        self.net
            .run_until(300_000, |net| {
                let entries = net.transcript(&name(LINKER), &id)?;
                Ok(ProjectView::new(&manifest, &entries).phase() == Phase::Closed)
            })
            .expect("closed");
        self.net.settle(120_000).expect("settles");
        for m in ["NPR", "KPR", LINKER] {
            let ks = self.fed.keystore(m).expect("keystore");
            assert_eq!(
                ks.domain_status(&Domain::Project(id.clone()))
                    .expect("status"),
                DomainStatus::Shredded,
                "{m} shredded {project}"
            );
        }
    }

    /// Persons in both NPR and KPR (the cohort `NPR & KPR`).
    fn delivered(&self) -> Vec<usize> {
        self.pop
            .members("NPR")
            .intersection(&self.pop.members("KPR"))
            .copied()
            .collect()
    }

    /// Persons in NPR or KPR (the linked persons).
    fn linked(&self) -> usize {
        self.pop
            .members("NPR")
            .union(&self.pop.members("KPR"))
            .count()
    }

    fn psi_log(&self, ids: &[Identifier]) -> Vec<WirePoint> {
        self.fed.register_pseudonyms(LOG, ids, 1).expect("Ψ_log")
    }

    fn values(&mut self) -> Vec<WirePoint> {
        self.net
            .engine(&name(HOLDER))
            .expect("holder")
            .disclosure_values(&name(LOG))
            .expect("values")
    }

    fn call(&mut self, key: &SigningKey, domain_node: &str, action: InnsynAction) -> Message {
        self.nonce += 1;
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.nonce.to_le_bytes());
        let signed: SignedInnsyn = InnsynCall {
            action,
            time: self.net.now(),
            node: name(domain_node),
            manifest: self.fed.manifest.digest(),
            nonce,
        }
        .sign(key);
        let mut replies = self
            .net
            .client(&name(domain_node), Message::Innsyn(Box::new(signed)))
            .expect("handled");
        assert_eq!(replies.len(), 1);
        replies.remove(0)
    }

    fn hpke(&self, member: &str) -> HpkePublicKey {
        HpkePublicKey::from_bytes(
            self.fed
                .manifest
                .member(&name(member))
                .expect("member")
                .hpke_key
                .0,
        )
        .expect("key")
    }

    fn one_person(
        &mut self,
        domain: &str,
        device: &DeviceSession,
        id: &Identifier,
    ) -> InnsynAction {
        let (holder, hop1) = (self.hpke(HOLDER), self.hpke("NPR"));
        InnsynAction::Blinded {
            request: device.request.clone(),
            person: Box::new(BlindedPerson::new(
                &device.request,
                name(domain),
                id,
                &holder,
                &hop1,
                &mut self.rng,
            )),
        }
    }

    fn answered(&mut self) -> u64 {
        self.net
            .engine(&name(HOLDER))
            .expect("holder")
            .domain_state(&name(LOG))
            .expect("state")
            .expect("held")
            .innsyn
    }

    /// The portal's innsyn at the log for `id`: the rows the device opens.
    fn ask(&mut self, seed: u8, id: &Identifier) -> Vec<Vec<String>> {
        let device = DeviceSession::new(name(LOG), Digest([seed; 32]), &mut self.rng);
        let before = self.answered();
        let portal = self.portal.clone();
        let action = self.one_person(LOG, &device, id);
        let taken = self.call(&portal, HOLDER, action);
        assert!(matches!(taken, Message::Ack { .. }), "{taken:?}");
        self.net
            .run_until(60_000, |net| {
                Ok(net
                    .engine(&name(HOLDER))?
                    .domain_state(&name(LOG))?
                    .is_some_and(|s| s.innsyn > before))
            })
            .expect("the one-person list comes back");
        let reply = self.call(
            &portal,
            HOLDER,
            InnsynAction::Collect {
                request: device.request.clone(),
            },
        );
        let Message::InnsynReply(sealed) = reply else {
            panic!("expected the reply, got {reply:?}")
        };
        device.open(&sealed).expect("the device opens it")
    }
}

#[test]
fn the_log_answers_which_identified_projects_received_a_person_after_the_shredding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = World::new(dir.path());

    // An ordinary project writes no log record.
    w.run_and_close("ORD-1", false);
    assert!(w.values().is_empty(), "an ordinary project is not logged");

    // The identified project: delivered, closed, shredded everywhere.
    w.run_and_close("ID-1", true);
    let values = w.values();
    assert_eq!(
        values.len(),
        w.linked(),
        "the padded size is the linked count, not the delivered count ({})",
        w.delivered().len()
    );
    assert!(w.delivered().len() < w.linked());
    let state = w
        .net
        .engine(&name(HOLDER))
        .expect("holder")
        .domain_state(&name(LOG))
        .expect("state")
        .expect("held");
    assert_eq!(
        state.disclosures, 1,
        "one counted entry in the log's transcript"
    );

    // Ground truth: every delivered person's Ψ_log is stored once; nobody
    // else's is.
    let delivered = w.delivered();
    let inside = w.pop.persons[delivered[0]].id;
    let outside = (0..w.pop.persons.len())
        .find(|i| !delivered.contains(i) && w.pop.members("NPR").contains(i))
        .map(|i| w.pop.persons[i].id)
        .expect("an NPR person outside the cohort");
    let ids: Vec<Identifier> = delivered.iter().map(|&i| w.pop.persons[i].id).collect();
    for psi in w.psi_log(&ids) {
        assert_eq!(values.iter().filter(|v| **v == psi).count(), 1);
    }
    let psi_out = w.psi_log(&[outside])[0];
    assert!(!values.contains(&psi_out));

    // No key holder or linker keeps a Ψ_log value; the holder does.
    let psi_in = w.psi_log(&[inside])[0];
    for m in ["NPR", "KPR", LINKER] {
        assert!(
            !files_contain(&dir.path().join(m), psi_in.as_bytes()),
            "{m} holds a Ψ_log value"
        );
    }

    // Innsyn at the log: admitted by two operators of the holder.
    for op in 0..2 {
        let key = w.fed.operators[&name(HOLDER)][op].clone();
        let reply = w.call(
            &key,
            HOLDER,
            InnsynAction::Admit {
                portal: name("HELSENORGE"),
            },
        );
        assert!(matches!(reply, Message::Ack { .. }), "{reply:?}");
    }
    let rows = w.ask(1, &inside);
    let day = w.net.now().0 / 86_400;
    assert_eq!(rows[0], vec!["project".to_owned(), "date".to_owned()]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1][0], "ID-1");
    let date = kobling_protocol::disclosure::DisclosureRecord {
        project: ProjectId::new("ID-1").expect("id"),
        day: u32::try_from(day).expect("day"),
    }
    .date();
    assert_eq!(rows[1][1], date);
    assert!(w.ask(2, &outside).is_empty(), "not delivered: nothing");

    // Refused: a log the manifest does not declare, a portal it does not list.
    let device = DeviceSession::new(name("NOPE"), Digest([3; 32]), &mut w.rng);
    let portal = w.portal.clone();
    let action = w.one_person("NOPE", &device, &inside);
    let (code, detail) = refusal(&w.call(&portal, HOLDER, action));
    assert_ne!(code, RefusalCode::Unexpected, "{detail}");
    assert!(detail.contains("NOPE"), "{detail}");
    let stranger = SigningKey::from_bytes(&[0x44; 32]);
    let device = DeviceSession::new(name(LOG), Digest([4; 32]), &mut w.rng);
    let action = w.one_person(LOG, &device, &inside);
    let (code, detail) = refusal(&w.call(&stranger, HOLDER, action));
    assert_eq!(code, RefusalCode::NotAllowed, "{detail}");

    // Kept five years: not purged on the last day of retention, purged after.
    let holder = w.net.engine(&name(HOLDER)).expect("holder");
    let kept = (day + u64::from(MIN_RETENTION_DAYS)) * 86_400;
    holder.tick(UnixTime(kept)).expect("tick");
    assert_eq!(
        holder.disclosure_values(&name(LOG)).expect("values").len(),
        values.len()
    );
    holder.tick(UnixTime(kept + 2 * 86_400)).expect("tick");
    assert!(holder
        .disclosure_values(&name(LOG))
        .expect("values")
        .is_empty());
}
