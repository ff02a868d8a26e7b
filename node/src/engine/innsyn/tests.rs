//! Innsyn at an fnr register, on one real engine: the two-person rule,
//! the quotas, the rows against the generator's ground truth, and what the
//! portal holds.

use ed25519_dalek::SigningKey;
use kobling_keys::Keystore;
use kobling_protocol::{
    bounded::BoundedString,
    innsyn::{
        wire::{InnsynAction, InnsynCall, Subject},
        DeviceSession, QuotaLimits,
    },
    messages::Message,
    refusal::RefusalCode,
    types::{Digest, Name, UnixTime},
};
use kobling_sim::population::{generate, Population, PopulationConfig};

use crate::{
    engine::{Engine, EngineConfig, Peer},
    store::Store,
    testing::Federation,
};

const NOW: UnixTime = UnixTime(crate::testing::EPOCH);

fn n(s: &str) -> Name {
    Name::new(s).expect("name")
}

struct Register {
    _dir: tempfile::TempDir,
    engine: Engine,
    fed: Federation,
    portal: SigningKey,
    pop: Population,
    nonce: u8,
}

impl Register {
    /// KPR's engine, with a portal in the manifest and KPR's extract as
    /// its innsyn extract.
    fn new() -> Register {
        let dir = tempfile::tempdir().expect("tempdir");
        let portal = SigningKey::from_bytes(&[0x42; 32]);
        let fed = Federation::create(dir.path(), &["NPR", "KPR"], 5)
            .expect("keys")
            .with_portal("HELSENORGE", &portal)
            .expect("valid");
        let pop = generate(&PopulationConfig {
            persons: 300,
            seed: 8,
            ..Default::default()
        });
        fed.write_extract(pop.extract("KPR").expect("KPR"), "KPR.csv")
            .expect("write");
        let base = dir.path().join("KPR");
        let ks = Keystore::open(base.join("keys"), None).expect("keystore");
        let store = Store::open(&base).expect("store");
        let config = EngineConfig {
            test_mode: true,
            background_preparation: false,
            ..EngineConfig::default()
        };
        let mut engine = Engine::new(n("KPR"), fed.manifest.clone(), ks, store, [9; 32], config)
            .expect("engine");
        engine.set_innsyn_extract(Some(fed.extracts().join("KPR.csv")));
        Register {
            _dir: dir,
            engine,
            fed,
            portal,
            pop,
            nonce: 0,
        }
    }

    fn call(&mut self, key: &SigningKey, action: InnsynAction) -> Message {
        self.nonce += 1;
        let call = InnsynCall {
            action,
            time: NOW,
            node: n("KPR"),
            manifest: self.fed.manifest.digest(),
            nonce: [self.nonce; 16],
        };
        let mut replies = self
            .engine
            .handle(
                &Peer::Client,
                Message::Innsyn(Box::new(call.sign(key))),
                NOW,
            )
            .expect("handled");
        assert_eq!(replies.len(), 1);
        replies.remove(0)
    }

    fn admit(&mut self, operator: usize) -> Message {
        let key = self.fed.operators[&n("KPR")][operator].clone();
        self.call(
            &key,
            InnsynAction::Admit {
                portal: n("HELSENORGE"),
            },
        )
    }

    fn lookup(&mut self, device: &DeviceSession, fnr: &str) -> Message {
        let portal = self.portal.clone();
        self.call(
            &portal,
            InnsynAction::Lookup {
                request: device.request.clone(),
                subject: Subject(BoundedString::new(fnr).expect("short")),
            },
        )
    }
}

fn device(register: &str, seed: u8) -> DeviceSession {
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([seed; 32]);
    DeviceSession::new(n(register), Digest([seed; 32]), &mut rng)
}

use rand_chacha::rand_core::SeedableRng as _;

fn refusal(m: &Message) -> (RefusalCode, String) {
    match m {
        Message::Refused { code, detail } => (
            RefusalCode::from_wire(code.as_str()),
            detail.as_str().to_owned(),
        ),
        other => panic!("expected a refusal, got {}", other.kind()),
    }
}

#[test]
fn two_distinct_operators_admit_a_portal_before_it_is_served() {
    let mut r = Register::new();
    let (person, rows) = r
        .pop
        .rows_by_person("KPR")
        .into_iter()
        .next()
        .expect("rows");
    let fnr = r.pop.persons[person].id.expose().to_owned();
    let (code, detail) = refusal(&r.lookup(&device("KPR", 1), &fnr));
    assert_eq!(code, RefusalCode::NotAllowed);
    assert!(detail.contains("not admitted"), "{detail}");
    assert!(matches!(r.admit(0), Message::Ack { .. }));
    let (_, detail) = refusal(&r.lookup(&device("KPR", 2), &fnr));
    assert!(detail.contains("one operator"), "{detail}");
    // The same operator again adds nothing.
    let (code, detail) = refusal(&r.admit(0));
    assert_eq!(code, RefusalCode::NotAllowed);
    assert!(detail.contains("already admitted"), "{detail}");
    // An operator of another register cannot admit here.
    let npr = r.fed.operators[&n("NPR")][0].clone();
    let other = r.call(
        &npr,
        InnsynAction::Admit {
            portal: n("HELSENORGE"),
        },
    );
    assert_eq!(refusal(&other).0, RefusalCode::NotAnOperator);
    assert!(matches!(r.admit(1), Message::Ack { .. }));
    let d = device("KPR", 3);
    let reply = match r.lookup(&d, &fnr) {
        Message::InnsynReply(reply) => reply,
        other => panic!("expected a reply, got {other:?}"),
    };
    let opened = d.open(&reply).expect("opens at the device");
    assert_eq!(opened[1..], rows[..], "exactly the person's rows");
    assert_eq!(
        r.engine
            .innsyn_served(&n("HELSENORGE"), NOW)
            .expect("count"),
        1
    );
}

#[test]
fn quotas_a_person_without_rows_strangers_and_replays() {
    let mut r = Register::new();
    r.admit(0);
    r.admit(1);
    let with_rows = r.pop.members("KPR");
    let (absent, present) = {
        let absent = (0..r.pop.persons.len())
            .find(|p| !with_rows.contains(p))
            .expect("absent");
        (absent, *with_rows.iter().next().expect("present"))
    };
    let fnr = r.pop.persons[absent].id.expose().to_owned();
    let d = device("KPR", 4);
    let Message::InnsynReply(empty) = r.lookup(&d, &fnr) else {
        panic!("a reply for a person without rows")
    };
    let opened = d.open(&empty).expect("opens");
    assert_eq!(opened.len(), 1, "the header only");
    let d2 = device("KPR", 5);
    let present = r.pop.persons[present].id.expose().to_owned();
    let Message::InnsynReply(full) = r.lookup(&d2, &present) else {
        panic!("a reply")
    };
    assert_eq!(
        empty.ciphertext.len(),
        full.ciphertext.len(),
        "no rows and a few rows are the same size bucket"
    );
    // Per person: three a day (the default); the fourth is refused.
    for seed in 6..8 {
        assert!(matches!(
            r.lookup(&device("KPR", seed), &fnr),
            Message::InnsynReply(_)
        ));
    }
    let (code, detail) = refusal(&r.lookup(&device("KPR", 8), &fnr));
    assert_eq!(code, RefusalCode::Quota);
    assert!(detail.contains("this person"), "{detail}");
    // Per portal: one more than it was answered today, then no more.
    let served = r
        .engine
        .innsyn_served(&n("HELSENORGE"), NOW)
        .expect("count");
    let limits = QuotaLimits {
        window_secs: 86_400,
        per_portal: u32::try_from(served).expect("small") + 1,
        per_subject: 3,
    };
    r.engine.set_innsyn_quotas(limits);
    assert!(matches!(
        r.lookup(&device("KPR", 9), &fnr),
        Message::InnsynReply(_)
    ));
    let (code, detail) = refusal(&r.lookup(&device("KPR", 10), &fnr));
    assert_eq!(code, RefusalCode::Quota);
    assert!(detail.contains("this portal"), "{detail}");
    // The book emptied, as by a restart: the day's stored count still
    // holds the portal to its quota.
    r.engine.set_innsyn_quotas(limits);
    let (code, detail) = refusal(&r.lookup(&device("KPR", 20), &fnr));
    assert_eq!(code, RefusalCode::Quota);
    assert!(detail.contains("this portal today"), "{detail}");
    // A key of no portal; a device request for another register.
    let stranger = SigningKey::from_bytes(&[0x13; 32]);
    let m = r.call(
        &stranger,
        InnsynAction::Lookup {
            request: device("KPR", 11).request,
            subject: Subject(BoundedString::new(fnr.as_str()).expect("short")),
        },
    );
    assert!(refusal(&m).1.contains("no innsyn portal"));
    assert_eq!(
        refusal(&r.lookup(&device("NPR", 12), &fnr)).0,
        RefusalCode::WrongRegister
    );
    // The same signed request twice.
    let call = InnsynCall {
        action: InnsynAction::Admit {
            portal: n("HELSENORGE"),
        },
        time: NOW,
        node: n("KPR"),
        manifest: r.fed.manifest.digest(),
        nonce: [0xee; 16],
    }
    .sign(&r.fed.operators[&n("KPR")][0]);
    let msg = Message::Innsyn(Box::new(call));
    let first = r
        .engine
        .handle(&Peer::Client, msg.clone(), NOW)
        .expect("handled");
    assert_eq!(
        refusal(&first[0]).0,
        RefusalCode::NotAllowed,
        "already admitted"
    );
    let again = r.engine.handle(&Peer::Client, msg, NOW).expect("handled");
    assert_eq!(refusal(&again[0]).0, RefusalCode::Replayed);
}

#[test]
fn a_register_without_an_innsyn_extract_and_a_bad_identifier_are_refused() {
    let mut r = Register::new();
    r.admit(0);
    r.admit(1);
    let (code, detail) = refusal(&r.lookup(&device("KPR", 1), "12345"));
    assert_eq!(code, RefusalCode::BadRequest);
    assert!(!detail.contains("12345"), "{detail}");
    r.engine.set_innsyn_extract(None);
    let fnr = r.pop.persons[0].id.expose().to_owned();
    let (code, detail) = refusal(&r.lookup(&device("KPR", 2), &fnr));
    assert_eq!(code, RefusalCode::Extract);
    assert!(detail.contains("--innsyn-extract"), "{detail}");
}
