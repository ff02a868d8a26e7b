//! The researcher list through the real hops at protocol level: an honest
//! run (same pseudonym and lnr as the registers' rows, the cohort cut to
//! the researcher list), a relaying linker that changes, drops or reorders
//! a chunk or substitutes `A_0`, and the linker's refusals.

use curve25519_dalek::RistrettoPoint;
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

use super::*;
use crate::{
    bounded::BoundedString,
    delivery::FinalSaltKey,
    ident::ParseOptions,
    identified::ResearcherList,
    link::{link, Lnr},
    manifest::{Ed25519Key, X25519Key},
    seal::decode_rows,
    transcript::ColumnName,
    types::{HopIndex, Position},
    v2::{pass_step, Combination, LinkerHop, ListCheck, Pass, PassContext, RegisterHop},
};

const CHUNK: u32 = 4;

fn name(s: &str) -> Name {
    Name::new(s).expect("valid")
}

/// Synthetic identifiers (test mode), distinct.
fn ids(n: usize) -> Vec<Identifier> {
    let options = ParseOptions {
        allow_synthetic: true,
    };
    (0..1000u32)
        .flat_map(|i| (0..100u8).map(move |k| format!("0181900{:02}{k:02}", i % 100)))
        .filter_map(|c| Identifier::parse(&c, options).ok())
        .take(n)
        .collect()
}

/// A member: signing key, share, HPKE key.
struct Member {
    name: Name,
    sign: SigningKey,
    share: [u8; 32],
    hpke: HpkeSecretKey,
}

impl Member {
    fn new(n: &str, seed: u8) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(u64::from(seed));
        Self {
            name: name(n),
            sign: SigningKey::from_bytes(&[seed; 32]),
            share: *Share::random(&mut rng).to_secret_bytes(),
            hpke: HpkeSecretKey::generate(&mut rng),
        }
    }

    fn share(&self) -> Share {
        Share::from_secret_bytes(&self.share).expect("share")
    }
}

/// The federation: hop 1 KPR, hop 2 SSB, the linker; the researcher.
struct World {
    kpr: Member,
    ssb: Member,
    linker: Member,
    researcher: SigningKey,
    researcher_hpke: HpkeSecretKey,
    persons: Vec<ResearcherPerson>,
    order: ProjectOrder,
}

const FILE_DIGEST: Digest = Digest([0x1d; 32]);

fn world(n: usize) -> World {
    let researcher = SigningKey::from_bytes(&[42; 32]);
    let researcher_hpke = HpkeSecretKey::derive(b"researcher");
    let persons = ids(n)
        .into_iter()
        .enumerate()
        .map(|(row, fnr)| ResearcherPerson {
            fnr,
            rows: vec![vec![(row + 1).to_string(), format!("arm-{}", row % 2)]],
        })
        .collect();
    let order = ProjectOrder {
        project: ProjectId::new("P-1").expect("id"),
        title: BoundedString::new("t").expect("fits"),
        legal_basis: BoundedString::new("REK").expect("fits"),
        manifest_digest: Digest([1; 32]),
        linker: name("LINKER"),
        registers: BoundedVec::default(),
        cohort: BoundedString::new("KPR").expect("fits"),
        expires: UnixTime(1),
        researcher_signing_key: Ed25519Key(researcher.verifying_key().to_bytes()),
        researcher_hpke_key: X25519Key(*researcher_hpke.public_key().as_bytes()),
        test_mode: true,
        grant: None,
        delivery: None,
        pseudonymous: BoundedVec::default(),
        identified: Some(ResearcherList {
            persons: n as u64,
            digest: FILE_DIGEST,
        }),
    };
    World {
        kpr: Member::new("KPR", 1),
        ssb: Member::new("SSB", 2),
        linker: Member::new("LINKER", 9),
        researcher,
        researcher_hpke,
        persons,
        order,
    }
}

impl World {
    fn prepare(&self) -> Prepared {
        let columns = BoundedVec::new(vec![
            ColumnName::new("row").expect("name"),
            ColumnName::new("arm").expect("name"),
        ])
        .expect("fits");
        let setup = Setup {
            order: &self.order,
            file_digest: FILE_DIGEST,
            rows: self.persons.len() as u64,
            columns,
            linker: &self.linker.hpke.public_key(),
            hop1: &self.kpr.hpke.public_key(),
            chunk_size: CHUNK,
            now: UnixTime(10),
        };
        prepare(
            &setup,
            &self.persons,
            &self.researcher,
            &mut ChaCha20Rng::seed_from_u64(3),
        )
        .expect("prepared")
    }

    fn project(&self) -> &ProjectId {
        &self.order.project
    }

    fn header(&self) -> ListHeader {
        super::header(
            self.project(),
            self.persons.len() as u64,
            CHUNK,
            Attempt::FIRST,
            Mode::Optimistic,
        )
        .expect("header")
    }

    /// Hop 1 over the researcher list, as the relayed bytes reach it.
    fn hop1(&self, p: &Prepared) -> RegisterHop {
        let a = check_announcement(&self.order, &p.announcement).expect("admitted");
        let step = hop1_step(
            self.project(),
            &self.kpr.name,
            &self.kpr.share(),
            &self.kpr.hpke,
            &p.beta_second,
            a,
            &mut ChaCha20Rng::seed_from_u64(4),
        )
        .expect("β₂ opens");
        RegisterHop::new(
            self.header(),
            HopIndex(1),
            self.kpr.name.clone(),
            step,
            vec![self.researcher.verifying_key()],
            Vec::new(),
        )
        .expect("hop 1")
    }

    /// `P = (k_KPR·k_SSB·k_L)·I(x)`: what every register's list ends as.
    fn pseudonym(&self, id: &Identifier) -> WirePoint {
        let k = self
            .kpr
            .share()
            .product(&self.ssb.share())
            .product(&self.linker.share());
        let p: RistrettoPoint = k.scalar() * id.identity_point();
        WirePoint(p.compress().to_bytes())
    }
}

/// The whole chain and the pass: the final points, and the list check.
fn run(w: &World, p: &Prepared) -> (Vec<WirePoint>, ListCheck) {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let a = check_announcement(&w.order, &p.announcement).expect("admitted");
    check_end(&w.order, a, &p.end).expect("end admitted");
    let list = list_name().expect("name");
    let mut hop1 = w.hop1(p);
    let k1 = hop1.key();
    let k2 = w.ssb.share().commitment();
    let mut hop2 = RegisterHop::new(
        w.header(),
        HopIndex(2),
        w.ssb.name.clone(),
        StepKey::plain(w.ssb.share()),
        vec![w.researcher.verifying_key(), w.kpr.sign.verifying_key()],
        vec![k1],
    )
    .expect("hop 2");
    let beta1 = open_blinding_part(
        &w.linker.hpke,
        w.project(),
        &list,
        BlindingPart::First,
        &p.beta_first,
    )
    .expect("β₁ opens");
    let d1 = a.blinding[0];
    let domain = Domain::Project(w.project().clone());
    let step = StepKey::combined(
        &domain,
        &list,
        &w.linker.name,
        &w.linker.share(),
        &beta1,
        &d1,
        &mut rng,
    )
    .expect("combined");
    let mut linker = LinkerHop::new(
        w.header(),
        HopIndex(3),
        w.linker.name.clone(),
        step,
        vec![
            w.researcher.verifying_key(),
            w.kpr.sign.verifying_key(),
            w.ssb.sign.verifying_key(),
        ],
        vec![k1, k2],
        FinalSaltKey::from_secret_bytes([4; 32]),
    )
    .expect("linker");
    let (mut z, mut finals) = (Vec::new(), Vec::new());
    for c in &p.chunks {
        let out1 = hop1
            .handle_chunk(c, &w.kpr.sign, &mut rng)
            .expect("hop 1 steps");
        let out2 = hop2
            .handle_chunk(&out1, &w.ssb.sign, &mut rng)
            .expect("hop 2 steps");
        z.push(out2.points.to_vec());
        finals.extend(linker.handle_chunk(&out2).expect("linker steps"));
    }
    // σ is fixed by the linker after y and Z; any fixed value serves here.
    let sigma = Digest([7; 32]);
    let owner = p
        .kept
        .owner_check(Attempt::FIRST, Mode::Optimistic, sigma, &w.researcher)
        .expect("A_0");
    let ctx = PassContext {
        sigma,
        owner_key: w.researcher.verifying_key(),
        step_keys: vec![k1, k2],
    };
    let mut pass = Pass {
        list: list.clone(),
        attempt: Attempt::FIRST,
        sigma,
        owner,
        steps: BoundedVec::default(),
    };
    let s1 = pass_step(&ctx, &pass, HopIndex(1), &hop1_key(w, p), &mut rng).expect("pass 1");
    pass.steps = BoundedVec::new(vec![s1]).expect("fits");
    let s2 = pass_step(
        &ctx,
        &pass,
        HopIndex(2),
        &StepKey::plain(w.ssb.share()),
        &mut rng,
    )
    .expect("pass 2");
    pass.steps = BoundedVec::new(vec![s1, s2]).expect("fits");
    let mut b = Combination::default();
    for (c, points) in z.iter().enumerate() {
        b.push_chunk(&sigma, crate::types::ChunkIndex(c as u64), points)
            .expect("valid");
    }
    (
        finals,
        ListCheck::conclude(&ctx, &pass, b.point()).expect("pass verifies"),
    )
}

fn hop1_key(w: &World, p: &Prepared) -> StepKey {
    let a = check_announcement(&w.order, &p.announcement).expect("admitted");
    hop1_step(
        w.project(),
        &w.kpr.name,
        &w.kpr.share(),
        &w.kpr.hpke,
        &p.beta_second,
        a,
        &mut ChaCha20Rng::seed_from_u64(4),
    )
    .expect("β₂ opens")
}

#[test]
fn an_honest_researcher_list_links_to_the_registers_persons_with_the_same_lnr() {
    let w = world(10);
    let p = w.prepare();
    let (finals, check) = run(&w, &p);
    assert!(check.passed, "A_m == B for an honest chain");

    // The researcher's own table: position → its own row (the sealed
    // item), and the final point is the person's pseudonym.
    let list = list_name().expect("name");
    let a = check_announcement(&w.order, &p.announcement).expect("admitted");
    let key = a
        .content_key
        .unwrap(&w.researcher_hpke, w.project(), &list)
        .expect("the researcher opens its own items");
    let mut by_row = std::collections::HashMap::new();
    for (t, item) in p.items.iter().enumerate() {
        let rows = decode_rows(
            &key.open_item(w.project(), &list, Position(t as u64), item)
                .expect("opens"),
        )
        .expect("rows");
        let row: usize = rows[0][0].parse().expect("row number");
        assert_eq!(finals[t], w.pseudonym(&w.persons[row - 1].fnr));
        by_row.insert(row, finals[t]);
    }
    assert_eq!(by_row.len(), 10, "every researcher row has its pseudonym");

    // A register (KPR) with persons 5…14: 5…9 are in the researcher list,
    // 10…14 are not. Linking with the researcher list cut to the order's
    // cohort gives equal lnr for the shared persons, nobody outside it.
    let everyone = ids(15);
    let kpr: Vec<WirePoint> = everyone[5..].iter().map(|id| w.pseudonym(id)).collect();
    let cohort = cohort(&crate::link::Cohort::parse("KPR").expect("cohort")).expect("cohort");
    let linkage = link(
        w.project(),
        &[
            (list.clone(), &finals),
            (ListName::new("KPR").expect("name"), &kpr),
        ],
        &cohort,
    )
    .expect("linked");
    let researcher_lnr: std::collections::HashMap<Position, Lnr> =
        linkage.lists[0].selected.iter().cloned().collect();
    let kpr_sel = &linkage.lists[1].selected;
    assert_eq!(
        kpr_sel.len(),
        5,
        "only KPR's persons in the researcher list"
    );
    assert_eq!(researcher_lnr.len(), 5);
    for (pos, lnr) in kpr_sel {
        let id = &everyone[5 + pos.0 as usize];
        assert!(
            ids(10).contains(id),
            "a person outside the researcher list is delivered"
        );
        let t = finals
            .iter()
            .position(|f| *f == w.pseudonym(id))
            .expect("in the researcher list");
        assert_eq!(researcher_lnr.get(&Position(t as u64)), Some(lnr));
        assert_eq!(Lnr::derive(w.project(), &w.pseudonym(id)), *lnr);
    }

    // The kept output survives its store and gives the same A_0.
    let kept = KeptOutput::decode(&p.kept.encode()).expect("decode");
    assert_eq!(kept, p.kept);
    assert_eq!(
        kept.owner_check(Attempt::FIRST, Mode::Optimistic, check.sigma, &w.researcher)
            .expect("A_0")
            .a0,
        check.a[0]
    );
}

#[test]
fn hop1_refuses_a_chunk_the_relaying_linker_changed_dropped_or_reordered() {
    let w = world(10);
    let p = w.prepare();
    let rng = &mut ChaCha20Rng::seed_from_u64(6);
    assert_eq!(p.chunks.len(), 3);

    // Changed: one point replaced.
    let mut changed = p.chunks[0].clone();
    let mut pts = changed.points.to_vec();
    pts[0] = pts[1];
    changed.points = BoundedVec::new(pts.clone()).expect("fits");
    let mut hop = w.hop1(&p);
    assert!(matches!(
        hop.handle_chunk(&changed, &w.kpr.sign, rng),
        Err(HopError::DigestMismatch { .. })
    ));
    // Changed and re-signed by the linker: not the researcher's signature.
    let header = w.header();
    changed.statement.statement.output = crate::v2::chunk_digest(&pts);
    changed.statement.signature = changed.statement.statement.sign(&header, &w.linker.sign);
    assert!(matches!(
        hop.handle_chunk(&changed, &w.kpr.sign, rng),
        Err(HopError::BadSignature { .. })
    ));
    // Reordered points inside a chunk.
    let mut swapped = p.chunks[0].clone();
    let mut pts = swapped.points.to_vec();
    pts.swap(0, 3);
    swapped.points = BoundedVec::new(pts).expect("fits");
    assert!(matches!(
        hop.handle_chunk(&swapped, &w.kpr.sign, rng),
        Err(HopError::DigestMismatch { .. })
    ));
    // Dropped chunk 0 / chunks reordered: chunk 1 first.
    assert!(matches!(
        hop.handle_chunk(&p.chunks[1], &w.kpr.sign, rng),
        Err(HopError::OutOfOrder { .. })
    ));
    // Chunk 1's points under chunk 0's statement.
    let mut moved = p.chunks[0].clone();
    moved.points = p.chunks[1].points.clone();
    assert!(hop.handle_chunk(&moved, &w.kpr.sign, rng).is_err());
    // The honest chunks still pass, in order; a chunk replayed is refused.
    hop.handle_chunk(&p.chunks[0], &w.kpr.sign, rng)
        .expect("chunk 0");
    assert!(hop.handle_chunk(&p.chunks[0], &w.kpr.sign, rng).is_err());
    hop.handle_chunk(&p.chunks[1], &w.kpr.sign, rng)
        .expect("chunk 1");
    hop.handle_chunk(&p.chunks[2], &w.kpr.sign, rng)
        .expect("chunk 2");
    assert!(hop.is_complete());
}

#[test]
fn a_substituted_a0_fails_the_researchers_signature() {
    let w = world(5);
    let p = w.prepare();
    let sigma = Digest([7; 32]);
    let step = hop1_key(&w, &p);
    let ctx = PassContext {
        sigma,
        owner_key: w.researcher.verifying_key(),
        step_keys: vec![step.key(), w.ssb.share().commitment()],
    };
    // The relaying linker signs an A_0 of its own.
    let forged = p
        .kept
        .owner_check(Attempt::FIRST, Mode::Optimistic, sigma, &w.linker.sign)
        .expect("A_0");
    let pass = Pass {
        list: list_name().expect("name"),
        attempt: Attempt::FIRST,
        sigma,
        owner: forged,
        steps: BoundedVec::default(),
    };
    let rng = &mut ChaCha20Rng::seed_from_u64(8);
    assert_eq!(
        pass_step(&ctx, &pass, HopIndex(1), &step, rng),
        Err(CheckError::OwnerSignature)
    );
    let honest = Pass {
        owner: p
            .kept
            .owner_check(Attempt::FIRST, Mode::Optimistic, sigma, &w.researcher)
            .expect("A_0"),
        ..pass
    };
    pass_step(&ctx, &honest, HopIndex(1), &step, rng).expect("the researcher's A_0 passes");
}

/// The announcement's body, changed by `f` and re-signed by `key` as
/// `signer`.
fn resigned(
    p: &Prepared,
    signer: Signer,
    key: &SigningKey,
    f: impl FnOnce(&mut ListAnnouncementV2),
) -> SignedStatement {
    let mut statement = p.announcement.statement.clone();
    if let Body::ListAnnouncedV2(a) = &mut statement.body {
        f(a);
    }
    statement.signer = signer;
    statement.sign(key)
}

#[test]
fn the_linker_refuses_a_researcher_list_unlike_the_order_or_not_the_researchers() {
    let w = world(6);
    let p = w.prepare();
    let me = Signer::Researcher(w.order.researcher_signing_key);
    assert!(check_announcement(&w.order, &p.announcement).is_ok());

    let more = resigned(&p, me.clone(), &w.researcher, |a| a.persons += 1);
    assert!(matches!(
        check_announcement(&w.order, &more),
        Err(ResearcherListError::WrongCount {
            ordered: 6,
            announced: 7
        })
    ));
    let other_file = resigned(&p, me.clone(), &w.researcher, |a| {
        a.extract = Digest([9; 32])
    });
    assert!(matches!(
        check_announcement(&w.order, &other_file),
        Err(ResearcherListError::WrongDigest)
    ));
    let unsplit = resigned(&p, me.clone(), &w.researcher, |a| {
        a.blinding = BoundedVec::new(vec![a.blinding[0]]).expect("fits");
    });
    assert!(matches!(
        check_announcement(&w.order, &unsplit),
        Err(ResearcherListError::NotSplit)
    ));
    // Someone else: another key named as the researcher, the order's key
    // named but another key signing, a node.
    let mallory = SigningKey::from_bytes(&[66; 32]);
    let as_other = resigned(
        &p,
        Signer::Researcher(Ed25519Key(mallory.verifying_key().to_bytes())),
        &mallory,
        |_| {},
    );
    let forged = resigned(&p, me.clone(), &mallory, |_| {});
    let by_node = resigned(
        &p,
        Signer::Node(w.linker.name.clone()),
        &w.linker.sign,
        |_| {},
    );
    for s in [&as_other, &forged, &by_node] {
        assert!(matches!(
            check_announcement(&w.order, s),
            Err(ResearcherListError::NotTheResearcher)
        ));
    }
    // An ordinary project takes no researcher list.
    let mut ordinary = w.order.clone();
    ordinary.identified = None;
    assert!(matches!(
        check_announcement(&ordinary, &p.announcement),
        Err(ResearcherListError::NotIdentified)
    ));
    // The end-of-list statement: the researcher's only.
    let a = check_announcement(&w.order, &p.announcement).expect("admitted");
    let mut end = p.end.statement.clone();
    end.signer = Signer::Node(w.linker.name.clone());
    assert!(matches!(
        check_end(&w.order, a, &end.sign(&w.linker.sign)),
        Err(ResearcherListError::NotTheResearcher)
    ));
    // The client refuses to make a list unlike its order.
    let mut short = world(6);
    short.persons.pop();
    let columns = BoundedVec::default();
    let setup = Setup {
        order: &short.order,
        file_digest: FILE_DIGEST,
        rows: 5,
        columns,
        linker: &short.linker.hpke.public_key(),
        hop1: &short.kpr.hpke.public_key(),
        chunk_size: CHUNK,
        now: UnixTime(10),
    };
    assert!(matches!(
        prepare(
            &setup,
            &short.persons,
            &short.researcher,
            &mut ChaCha20Rng::seed_from_u64(1)
        ),
        Err(ResearcherListError::WrongCount { .. })
    ));
}

#[test]
fn the_kept_output_has_its_documented_bytes_and_refuses_bad_ones() {
    let kept = KeptOutput {
        project: ProjectId::new("P-1").expect("id"),
        chunk_size: 4,
        points: vec![WirePoint([0x11; 32])],
    };
    let bytes = kept.encode();
    // docs/protocol.md §18, "The researcher's kept output".
    let expected = format!("03502d310401{}", "11".repeat(32));
    assert_eq!(hex::encode(&bytes), expected);
    assert_eq!(KeptOutput::decode(&bytes), Ok(kept.clone()));
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(KeptOutput::decode(&trailing), Err(KeptError::Trailing));
    assert!(matches!(
        KeptOutput::decode(&bytes[..bytes.len() - 1]),
        Err(KeptError::Malformed(_))
    ));
    let empty = KeptOutput {
        points: Vec::new(),
        ..kept.clone()
    };
    assert_eq!(
        KeptOutput::decode(&empty.encode()),
        Err(KeptError::BadHeader)
    );
    let odd = KeptOutput {
        chunk_size: 3,
        ..kept
    };
    assert_eq!(KeptOutput::decode(&odd.encode()), Err(KeptError::BadHeader));
}

#[test]
fn an_identified_order_takes_no_manifest_with_a_member_named_researcher() {
    use crate::manifest::{tests::member, Role};
    let w = world(3);
    let plain = crate::fixtures::manifest_of(vec![member("KPR", Role::Register, 1, 2)], Vec::new());
    let taken = crate::fixtures::manifest_of(
        vec![
            member("KPR", Role::Register, 1, 2),
            member(LIST_NAME, Role::Register, 2, 2),
        ],
        Vec::new(),
    );
    assert!(check_manifest(&plain, &w.order).is_ok());
    assert!(matches!(
        check_manifest(&taken, &w.order),
        Err(ResearcherListError::NameTaken)
    ));
    // An ordinary project's lists are the registers' only: the name is free.
    let mut ordinary = w.order.clone();
    ordinary.identified = None;
    assert!(check_manifest(&taken, &ordinary).is_ok());
    assert!(!ordinary.lists().iter().any(|l| l.as_str() == LIST_NAME));
    assert!(w.order.lists().iter().any(|l| l.as_str() == LIST_NAME));
    assert_eq!(
        w.order.linked_cohort().expect("cohort").to_string(),
        cohort(&crate::link::Cohort::parse("KPR").expect("cohort"))
            .expect("cohort")
            .to_string()
    );
}
