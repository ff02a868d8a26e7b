use curve25519_dalek::RistrettoPoint;
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

use super::*;
use crate::{disclosure::padded_list, hash::hash_to_group};

fn n(s: &str) -> Name {
    Name::new(s).expect("valid name")
}

fn share(seed: u8) -> Share {
    Share::random(&mut ChaCha20Rng::seed_from_u64(u64::from(seed)))
}

fn times(k: &[&Share], p: &RistrettoPoint) -> WirePoint {
    let mut q = *p;
    for s in k {
        q = s.scalar() * q;
    }
    WirePoint(q.compress().to_bytes())
}

/// The parties of a log conversion: the linker and NPR hold keys of both
/// sides, KPR of the project only, SSB of the log only, and the log's
/// holder RESEPT a key of the project.
struct Parties {
    linker_p: Share,
    linker_log: Share,
    npr_p: Share,
    npr_log: Share,
    kpr_p: Share,
    ssb_log: Share,
    holder_p: Share,
    holder_hpke: HpkeSecretKey,
    linker_sig: SigningKey,
}

fn parties() -> Parties {
    Parties {
        linker_p: share(1),
        linker_log: share(2),
        npr_p: share(3),
        npr_log: share(4),
        kpr_p: share(5),
        ssb_log: share(6),
        holder_p: share(7),
        holder_hpke: HpkeSecretKey::derive(b"log holder"),
        linker_sig: SigningKey::from_bytes(&[9; 32]),
    }
}

fn persons(k: u8) -> Vec<RistrettoPoint> {
    (0..k)
        .map(|i| hash_to_group(b"TEST-PERSON", &[i]))
        .collect()
}

impl Parties {
    fn project(&self, x: &RistrettoPoint) -> WirePoint {
        times(
            &[&self.linker_p, &self.npr_p, &self.kpr_p, &self.holder_p],
            x,
        )
    }

    fn log(&self, x: &RistrettoPoint) -> WirePoint {
        times(&[&self.linker_log, &self.npr_log, &self.ssb_log], x)
    }

    fn header(&self, size: u64, rng: &mut ChaCha20Rng) -> (SignedLogHeader, Share) {
        let beta = Share::random(rng);
        let project = ProjectId::new("ID-1").expect("id");
        let log = n("DLOG");
        let blinding =
            seal_log_blinding(&self.holder_hpke.public_key(), &project, &log, &beta, rng);
        let hop = |m: &str, p: Option<&Share>, l: Option<&Share>| LogHop {
            member: n(m),
            project_key: p.map(Share::commitment),
            log_key: l.map(Share::commitment),
        };
        let header = LogHeader {
            project,
            log,
            day: 20_000,
            size,
            hops: BoundedVec::new(vec![
                hop("NPR", Some(&self.npr_p), Some(&self.npr_log)),
                hop("KPR", Some(&self.kpr_p), None),
                hop("SSB", None, Some(&self.ssb_log)),
            ])
            .expect("fits"),
            holder_project_key: Some(self.holder_p.commitment()),
            blinding,
        };
        (header.sign(&self.linker_sig), beta)
    }

    fn log_keys(&self) -> Vec<(Name, WirePoint)> {
        vec![
            (n("NPR"), self.npr_log.commitment()),
            (n("SSB"), self.ssb_log.commitment()),
        ]
    }

    /// Runs every hop over `page`.
    fn run(&self, mut page: LogPage, rng: &mut ChaCha20Rng) -> LogPage {
        let steps: [(&str, Option<&Share>, Option<&Share>); 3] = [
            ("NPR", Some(&self.npr_p), Some(&self.npr_log)),
            ("KPR", Some(&self.kpr_p), None),
            ("SSB", None, Some(&self.ssb_log)),
        ];
        for (m, p, l) in steps {
            assert_eq!(page.next(&n("RESEPT")), &n(m));
            let step = page.step(&n(m), p, l, rng).expect("steps");
            page = page.with_step(step).expect("fits");
        }
        assert_eq!(page.next(&n("RESEPT")), &n("RESEPT"));
        page
    }
}

fn pages(
    p: &Parties,
    padded: &[WirePoint],
    beta: &Share,
    header: &SignedLogHeader,
) -> Vec<LogPage> {
    linker_pages(padded, &p.linker_p, &p.linker_log, beta)
        .expect("valid points")
        .into_iter()
        .enumerate()
        .map(|(i, start)| LogPage {
            header: header.clone(),
            page: i as u64,
            start: BoundedVec::new(start).expect("a page"),
            steps: BoundedVec::default(),
        })
        .collect()
}

#[test]
fn the_holder_obtains_psi_log_of_every_delivered_person_and_padding_matches_nobody() {
    let p = parties();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let everyone = persons(40);
    let delivered: Vec<WirePoint> = everyone[..7].iter().map(|x| p.project(x)).collect();
    let size = 300; // two pages
    let padded = padded_list(&delivered, size, &mut rng).expect("fits");
    let (header, beta) = p.header(size, &mut rng);
    header
        .check(&Ed25519Key(p.linker_sig.verifying_key().to_bytes()))
        .expect("signed");
    assert_eq!(header.header.pages(), 2);
    let mut stored = Vec::new();
    for page in pages(&p, &padded, &beta, &header) {
        let page = p.run(page, &mut rng);
        for step in page.steps.iter() {
            // No value on the way is Ψ_log or P_p of anyone.
            for x in &everyone {
                assert!(!step.output.contains(&p.log(x)));
                assert!(!step.output.contains(&p.project(x)));
            }
        }
        stored.extend(
            page.finish(&p.log_keys(), Some(&p.holder_p), &p.holder_hpke)
                .expect("verifies"),
        );
    }
    assert_eq!(stored.len() as u64, size);
    for (i, x) in everyone.iter().enumerate() {
        let found = stored.iter().filter(|v| **v == p.log(x)).count();
        assert_eq!(found, usize::from(i < 7), "person {i}");
    }
}

#[test]
fn a_hop_with_another_key_or_a_tampered_step_is_refused() {
    let p = parties();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let padded = padded_list(&[p.project(&persons(1)[0])], 10, &mut rng).expect("fits");
    let (header, beta) = p.header(10, &mut rng);
    let page = pages(&p, &padded, &beta, &header).remove(0);
    // KPR steps out of turn; NPR with another share.
    assert!(matches!(
        page.step(&n("KPR"), Some(&p.kpr_p), None, &mut rng),
        Err(LogError::NotMyStep { .. })
    ));
    let other = share(99);
    assert_eq!(
        page.step(&n("NPR"), Some(&other), Some(&p.npr_log), &mut rng),
        Err(LogError::WrongKey(n("NPR")))
    );
    // NPR's output replaced: KPR refuses to step on it.
    let step = page
        .step(&n("NPR"), Some(&p.npr_p), Some(&p.npr_log), &mut rng)
        .expect("steps");
    let mut bad = step.clone();
    let mut out = bad.output.clone().into_inner();
    out.swap(0, 1);
    bad.output = BoundedVec::new(out).expect("fits");
    let tampered = page.with_step(bad).expect("fits");
    assert!(matches!(
        tampered.step(&n("KPR"), Some(&p.kpr_p), None, &mut rng),
        Err(LogError::Step { step: 1, .. })
    ));
    // The holder refuses a conversion that skipped a key holder of the log.
    let done = p.run(page, &mut rng);
    let mut keys = p.log_keys();
    keys.push((n("KPR"), share(50).commitment()));
    assert_eq!(
        done.finish(&keys, Some(&p.holder_p), &p.holder_hpke),
        Err(LogError::Hops)
    );
    assert_eq!(
        done.finish(&p.log_keys(), None, &p.holder_hpke),
        Err(LogError::HolderKey)
    );
    assert_eq!(
        done.finish(
            &p.log_keys(),
            Some(&p.holder_p),
            &HpkeSecretKey::derive(b"another")
        ),
        Err(LogError::Blinding)
    );
    // A header signed by another key.
    assert_eq!(
        header.check(&Ed25519Key([3; 32])),
        Err(LogError::BadSignature)
    );
}

#[test]
fn the_hops_are_both_sides_key_holders_but_the_linker_and_the_holder() {
    use crate::{
        domain::{DomainKind, DomainSpec, DomainSpecError},
        manifest::{tests::member, Role},
    };
    let log = |name: &str, holder: &str| DomainSpec {
        name: n(name),
        holder: n(holder),
        key_holders: Some(vec![n("NPR"), n("SSB"), n("LINKER")]),
        kind: DomainKind::DisclosureLog,
    };
    let mut m = Manifest {
        federation: "test".into(),
        portals: Vec::new(),
        members: vec![
            member("NPR", Role::Register, 1, 2),
            member("KPR", Role::Register, 2, 2),
            member("RESEPT", Role::Register, 3, 2),
            member("LINKER", Role::Linker, 4, 0),
            member("SSB", Role::Register, 5, 2),
        ],
        authorities: Vec::new(),
        domains: vec![log("DLOG", "RESEPT")],
    };
    assert_eq!(m.validate(), Ok(()));
    assert_eq!(m.disclosure_log().map(|d| d.name.clone()), Some(n("DLOG")));
    let hops = log_hops(&m, &[n("NPR"), n("KPR"), n("RESEPT")], &n("DLOG"));
    assert_eq!(hops, vec![n("NPR"), n("KPR"), n("SSB")]);
    // The kind is in the manifest's bytes (and so its digest): `01`.
    let bytes = postcard::to_allocvec(&m.domains[0]).expect("encodes");
    assert_eq!(bytes.last(), Some(&1));
    // One log per federation; its holder is never the linker.
    m.domains.push(log("DLOG2", "KPR"));
    assert_eq!(
        crate::domain::validate_domains(&m),
        Err(DomainSpecError::SecondDisclosureLog {
            domain: n("DLOG2"),
            first: n("DLOG")
        })
    );
    m.domains = vec![log("DLOG", "LINKER")];
    assert!(matches!(
        crate::domain::validate_domains(&m),
        Err(DomainSpecError::LinkerHolder { .. })
    ));
}

/// The byte vectors of `docs/protocol.md` §20.
#[test]
fn vectors() {
    use crate::domain::transcript::DomainBody;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let project = ProjectId::new("ID-1").expect("id");
    let header = LogHeader {
        project: project.clone(),
        log: n("DLOG"),
        day: 20_424,
        size: 3,
        hops: BoundedVec::new(vec![LogHop {
            member: n("NPR"),
            project_key: Some(basepoint()),
            log_key: None,
        }])
        .expect("fits"),
        holder_project_key: None,
        blinding: WrappedKey {
            enc: [0x11; 32],
            ciphertext: crate::bounded::BoundedBytes::new(vec![0x22; 48]).expect("fits"),
        },
    };
    let got = [
        (
            "header",
            hex(&postcard::to_allocvec(&header).expect("encodes")),
        ),
        ("header digest", hex(&header.digest())),
        (
            "stored",
            hex(&postcard::to_allocvec(&LogMessage::Stored {
                project: project.clone(),
                log: n("DLOG"),
            })
            .expect("encodes")),
        ),
        (
            "disclosures body",
            hex(&postcard::to_allocvec(&DomainBody::Disclosures {
                project: project.clone(),
                day: 20_424,
                size: 3,
            })
            .expect("encodes")),
        ),
        (
            "record",
            hex(
                &postcard::to_allocvec(&crate::disclosure::DisclosureRecord {
                    project,
                    day: 20_424,
                })
                .expect("encodes"),
            ),
        ),
        (
            "blinding info",
            hex(&blinding_info(
                &ProjectId::new("ID-1").expect("id"),
                &n("DLOG"),
            )),
        ),
    ];
    for (what, value) in &got {
        println!("{what}: {value}");
    }
    let want = [
        ("header", "0449442d3104444c4f47c89f010301034e505201e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d760000111111111111111111111111111111111111111111111111111111111111111130222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222"),
        ("header digest", "9cda610b1b3ccdf9eedf29a0c25c19c1685720a530fe95f48648ef44f339cb53"),
        ("stored", "010449442d3104444c4f47"),
        ("disclosures body", "060449442d31c89f0103"),
        ("record", "0449442d31c89f01"),
        ("blinding info", "1f000000000000004b4f424c494e472d444953434c4f535552452d4c4f472d424c494e44494e47040000000000000049442d310400000000000000444c4f47"),
    ];
    for (what, value) in want {
        assert_eq!(
            got.iter()
                .find(|(w, _)| *w == what)
                .map(|(_, v)| v.as_str()),
            Some(value)
        );
    }
}
