//! Issue 16 item 2: innsyn at a pseudonymous holder, by real engines in
//! memory (`kobling_node::testing`). NPR delivers its extract into domain
//! SSB (holder SSB; key holders NPR, KPR and the linker). A portal
//! admitted by two operators of SSB asks for one citizen's rows with a
//! one-person list; the list goes SSB → NPR → KPR → linker → SSB; the
//! device opens exactly the citizen's delivered rows. The holder never
//! receives the fnr, the portal never receives the pseudonym, and a holder
//! that tries to run a value of its own through the key holders (a
//! dictionary oracle) is refused by them.

use std::{collections::BTreeMap, path::Path};

use ed25519_dalek::SigningKey;
use kobling_node::{
    engine::Peer,
    testing::{files_contain, refusal, Faults, Federation, Net, LINKER},
};
use kobling_protocol::{
    group::{Point, WirePoint},
    ident::Identifier,
    innsyn::{
        blinded::{BlindedPerson, InnsynSteps},
        wire::{InnsynAction, InnsynCall, SignedInnsyn},
        DeviceSession,
    },
    messages::{self, Message},
    refusal::RefusalCode,
    seal::HpkePublicKey,
    types::{Digest, Name},
};
use kobling_sim::population::{generate, Population, PopulationConfig};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

fn name(s: &str) -> Name {
    Name::new(s).expect("valid name")
}

struct World {
    fed: Federation,
    net: Net,
    portal: SigningKey,
    pop: Population,
    nonce: u64,
    rng: ChaCha20Rng,
    /// Every byte the portal received.
    portal_saw: Vec<u8>,
}

impl World {
    /// The federation with a portal, SSB's domain committed and NPR's
    /// extract delivered into it.
    fn new(dir: &Path) -> World {
        let portal = SigningKey::from_bytes(&[0x42; 32]);
        let fed = Federation::create(dir, &["NPR", "KPR", "SSB"], 17)
            .expect("federation")
            .with_domain("SSB", "SSB")
            .expect("domain")
            .with_portal("HELSENORGE", &portal)
            .expect("valid manifest");
        let pop = generate(&PopulationConfig {
            persons: 120,
            seed: 5,
            ..Default::default()
        });
        let mut net = fed.start(16, Faults::default(), 9).expect("net");
        net.run_until(120_000, |net| {
            Ok(net
                .engine(&name("SSB"))?
                .domain_state(&name("SSB"))?
                .is_some_and(|s| s.is_complete()))
        })
        .expect("the domain is created and committed");
        let npr = pop.extract("NPR").expect("NPR").clone();
        let order = fed
            .order_delivery(&mut net, "NPR-SSB-2025", &npr, "SSB")
            .expect("ordered and approved");
        fed.await_delivery(&mut net, &order, &name("SSB"))
            .expect("received");
        World {
            fed,
            net,
            portal,
            pop,
            nonce: 0,
            rng: ChaCha20Rng::seed_from_u64(77),
            portal_saw: Vec::new(),
        }
    }

    fn signed(&mut self, key: &SigningKey, node: &str, action: InnsynAction) -> SignedInnsyn {
        self.nonce += 1;
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.nonce.to_le_bytes());
        InnsynCall {
            action,
            time: self.net.now(),
            node: name(node),
            manifest: self.fed.manifest.digest(),
            nonce,
        }
        .sign(key)
    }

    /// A client's call to SSB; its one reply.
    fn call(&mut self, key: &SigningKey, action: InnsynAction) -> Message {
        let signed = self.signed(key, "SSB", action);
        let mut replies = self
            .net
            .client(&name("SSB"), Message::Innsyn(Box::new(signed)))
            .expect("handled");
        assert_eq!(replies.len(), 1);
        let reply = replies.remove(0);
        if *key == self.portal {
            self.portal_saw.extend(messages::encode(&reply));
        }
        reply
    }

    fn admit(&mut self, operator: usize) {
        let key = self.fed.operators[&name("SSB")][operator].clone();
        let reply = self.call(
            &key,
            InnsynAction::Admit {
                portal: name("HELSENORGE"),
            },
        );
        assert!(matches!(reply, Message::Ack { .. }), "{reply:?}");
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

    fn one_person(&mut self, device: &DeviceSession, id: &Identifier) -> InnsynAction {
        let (holder, hop1) = (self.hpke("SSB"), self.hpke("NPR"));
        InnsynAction::Blinded {
            request: device.request.clone(),
            person: Box::new(BlindedPerson::new(
                &device.request,
                name("SSB"),
                id,
                &holder,
                &hop1,
                &mut self.rng,
            )),
        }
    }

    fn answered(&mut self) -> u64 {
        self.net
            .engine(&name("SSB"))
            .expect("SSB")
            .domain_state(&name("SSB"))
            .expect("state")
            .expect("held")
            .innsyn
    }

    /// The portal asks, the network runs until the holder has recorded
    /// the answer, and the portal collects it.
    fn ask(&mut self, device: &DeviceSession, id: &Identifier) -> Message {
        let before = self.answered();
        let portal = self.portal.clone();
        let action = self.one_person(device, id);
        let taken = self.call(&portal, action);
        assert!(matches!(taken, Message::Ack { .. }), "{taken:?}");
        self.net
            .run_until(60_000, |net| {
                Ok(net
                    .engine(&name("SSB"))?
                    .domain_state(&name("SSB"))?
                    .is_some_and(|s| s.innsyn > before))
            })
            .expect("the one-person list comes back");
        self.call(
            &portal,
            InnsynAction::Collect {
                request: device.request.clone(),
            },
        )
    }

    fn device(&mut self, seed: u8) -> DeviceSession {
        DeviceSession::new(name("SSB"), Digest([seed; 32]), &mut self.rng)
    }
}

#[test]
fn a_citizen_gets_exactly_their_delivered_rows_from_a_pseudonymous_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = World::new(dir.path());
    let npr = w.pop.extract("NPR").expect("NPR").clone();
    let by_person: BTreeMap<usize, Vec<Vec<String>>> = w.pop.rows_by_person("NPR");

    // Not admitted yet: refused. One operator: still refused.
    let device = w.device(1);
    let (&p, want) = by_person
        .iter()
        .find(|(_, r)| r.len() >= 2)
        .expect("a person with rows");
    let id = w.pop.persons[p].id;
    let portal = w.portal.clone();
    let action = w.one_person(&device, &id);
    let (code, detail) = refusal(&w.call(&portal, action));
    assert_eq!(code, RefusalCode::NotAllowed, "{detail}");
    w.admit(0);
    let action = w.one_person(&device, &id);
    let (code, detail) = refusal(&w.call(&portal, action));
    assert_eq!(code, RefusalCode::NotAllowed, "{detail}");
    assert!(detail.contains("one operator"), "{detail}");
    w.admit(1);

    // Admitted: the device opens exactly the person's delivered rows.
    let reply = w.ask(&device, &id);
    let Message::InnsynReply(sealed) = reply else {
        panic!("expected the reply, got {reply:?}")
    };
    let rows = device.open(&sealed).expect("the device opens it");
    let columns: Vec<String> = npr
        .columns
        .iter()
        .filter(|c| **c != "fnr")
        .map(|c| c.to_string())
        .collect();
    assert_eq!(rows[0][0], "delivery");
    assert_eq!(rows[0][1..], columns, "the delivery's column names first");
    let mut got: Vec<Vec<String>> = rows[1..].iter().map(|r| r[1..].to_vec()).collect();
    let mut want = want.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "exactly the person's rows");

    // A person NPR did not deliver: no rows, and the reply looks alike.
    let absent = w
        .pop
        .persons
        .iter()
        .enumerate()
        .find(|(i, _)| !by_person.contains_key(i))
        .map(|(_, p)| p.id)
        .expect("someone not in NPR");
    let device2 = w.device(2);
    let Message::InnsynReply(sealed2) = w.ask(&device2, &absent) else {
        panic!("expected a reply")
    };
    assert!(device2.open(&sealed2).expect("opens").is_empty());
    assert_eq!(
        sealed.ciphertext.len(),
        sealed2.ciphertext.len(),
        "same size bucket"
    );

    // The portal received no pseudonym; the holder's files hold no fnr.
    let psi = w
        .fed
        .register_pseudonyms("SSB", &[id, absent], 1)
        .expect("pseudonyms");
    for p in &psi {
        assert!(
            !w.portal_saw.windows(32).any(|x| x == p.0),
            "the portal never sees Ψ_SSB"
        );
    }
    for x in [&id, &absent] {
        assert!(
            !files_contain(&dir.path().join("SSB"), x.expose().as_bytes()),
            "SSB's files hold no fnr"
        );
    }

    // Every copy of the domain transcript counts both requests, and only
    // counts them.
    for m in ["NPR", "KPR", LINKER, "SSB"] {
        w.net
            .run_until(30_000, |net| {
                Ok(net
                    .engine(&name(m))?
                    .domain_state(&name("SSB"))?
                    .is_some_and(|s| s.innsyn == 2))
            })
            .unwrap_or_else(|e| panic!("{m}'s copy records both requests: {e}"));
    }

    // The per-person quota at the holder (3 a day by default): the
    // fourth request about the same person is refused, and says why.
    let d3 = w.device(3);
    assert!(matches!(w.ask(&d3, &id), Message::InnsynReply(_)));
    let d4 = w.device(4);
    assert!(matches!(w.ask(&d4, &id), Message::InnsynReply(_)));
    let d5 = w.device(5);
    let (code, detail) = refusal(&w.ask(&d5, &id));
    assert_eq!(code, RefusalCode::Quota, "{detail}");
    assert!(detail.contains("this person"), "{detail}");
}

#[test]
fn the_key_holders_refuse_a_holder_that_runs_its_own_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = World::new(dir.path());
    w.admit(0);
    w.admit(1);
    let id = w.pop.persons[0].id;
    let guess = w.pop.persons[1].id;
    let device = w.device(1);
    let action = w.one_person(&device, &id);
    let call = w.signed(&w.portal.clone(), "SSB", action);
    let Ok(Message::Ack { .. }) = w
        .net
        .client(&name("SSB"), Message::Innsyn(Box::new(call.clone())))
        .map(|mut r| r.remove(0))
    else {
        panic!("taken")
    };
    let now = w.net.now();
    let to = |w: &mut World, member: &str, from: &str, steps: InnsynSteps| {
        let mut r = w
            .net
            .engine(&name(member))
            .expect("engine")
            .handle(
                &Peer::Member(name(from)),
                Message::InnsynSteps(Box::new(steps)),
                now,
            )
            .expect("handled");
        r.remove(0)
    };

    // 1. The holder replaces the portal's point by a dictionary guess
    //    I(x') (times anything it likes): the portal's signature fails.
    let mut forged = call.clone();
    if let InnsynAction::Blinded { person, .. } = &mut forged.call.action {
        person.point = Point::new(guess.identity_point()).expect("point").encode();
    }
    let (code, detail) = refusal(&to(
        &mut w,
        "NPR",
        "SSB",
        InnsynSteps {
            call: forged,
            steps: Default::default(),
        },
    ));
    assert_eq!(code, RefusalCode::BadRequest, "{detail}");

    // 2. The holder skips hop 1 (which alone can remove β₂) and asks KPR
    //    to step the portal's point: refused, KPR is not hop 1.
    let (code, detail) = refusal(&to(
        &mut w,
        "KPR",
        "SSB",
        InnsynSteps {
            call: call.clone(),
            steps: Default::default(),
        },
    ));
    assert_eq!(code, RefusalCode::Unexpected, "{detail}");

    // 3. The holder lets NPR step, then swaps NPR's output for its own
    //    value before KPR: KPR checks NPR's proof and refuses.
    let Message::Ack { .. } = to(
        &mut w,
        "NPR",
        "SSB",
        InnsynSteps {
            call: call.clone(),
            steps: Default::default(),
        },
    ) else {
        panic!("NPR steps the genuine list")
    };
    // NPR queued its genuine step to KPR (member to member: the holder
    // never sees it). The holder claims NPR's output is its own value.
    let ix = Point::new(guess.identity_point()).expect("point").encode();
    let npr_step = {
        let keys: Vec<(Name, Option<WirePoint>)> = w
            .net
            .engine(&name("KPR"))
            .expect("KPR")
            .domain_state(&name("SSB"))
            .expect("state")
            .expect("held")
            .keys;
        let InnsynAction::Blinded { request, person } = &call.call.action else {
            unreachable!()
        };
        // A step by NPR's key on the guess needs NPR's share, which the
        // holder does not have: the best it can do is claim the output.
        let step = kobling_protocol::innsyn::blinded::InnsynStep {
            member: name("NPR"),
            key: None,
            output: ix,
            proof: kobling_protocol::dleq::DleqProof {
                challenge: [0; 32],
                response: [0; 32],
            },
        };
        assert!(kobling_protocol::innsyn::blinded::verify_steps(
            request,
            person,
            &keys,
            std::slice::from_ref(&step)
        )
        .is_err());
        step
    };
    let (code, detail) = refusal(&to(
        &mut w,
        "KPR",
        "NPR",
        InnsynSteps {
            call: call.clone(),
            steps: kobling_protocol::bounded::BoundedVec::new(vec![npr_step]).expect("bounded"),
        },
    ));
    assert_eq!(code, RefusalCode::Invalid, "{detail}");

    // 4. The same genuine list a second time at NPR: stepped once only.
    let (code, detail) = refusal(&to(
        &mut w,
        "NPR",
        "SSB",
        InnsynSteps {
            call: call.clone(),
            steps: Default::default(),
        },
    ));
    assert_eq!(code, RefusalCode::Replayed, "{detail}");

    // 5. A stranger's key, and a domain the manifest does not declare.
    let stranger = SigningKey::from_bytes(&[0x17; 32]);
    let device2 = w.device(2);
    let action = w.one_person(&device2, &id);
    let (code, _) = refusal(&w.call(&stranger, action));
    assert_eq!(code, RefusalCode::NotAllowed);
    let d3 = DeviceSession::new(name("NOPE"), Digest([3; 32]), &mut w.rng);
    let action = w.one_person(&d3, &id);
    let (code, detail) = refusal(&w.call(&w.portal.clone(), action));
    assert_eq!(code, RefusalCode::WrongRegister, "{detail}");
}
