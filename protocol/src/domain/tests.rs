//! End-to-end and attack tests of register domains, in memory: several key
//! holders, the linker and the holder, deliveries into R and projects that
//! mix a pseudonymous list with fnr lists (PROTOCOL.md §10).

use curve25519_dalek::RistrettoPoint;
use ed25519_dalek::SigningKey;
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

use super::{
    convert::{verify_chunk, verify_step, ChunkAt, ChunkStatement, ConversionContext},
    pseudonym::{pseudonym_hex, PseudonymListBuilder},
    transcript::{
        decode_domain_transcript, encode_domain_transcript, verify_domain_transcript, DomainBody,
        DomainLog, DomainTranscriptError, OperatorSig, Replacement,
    },
    ConversionError, ConversionKey, ConversionStep, DomainSpec, StepProofs,
};
use crate::{
    bounded::BoundedVec,
    chain,
    group::WirePoint,
    hash::{hash_to_group, tags},
    manifest::{tests::member, Ed25519Key, Manifest, Role},
    share::{Domain, Share},
    transcript::Sig,
    types::{Attempt, ChunkIndex, Digest, HopIndex, ListName, Name, Position, ProjectId},
    v2::{chunk_digest, hop::verify_step_key, SplitBlinding, StepKey},
};

fn n(s: &str) -> Name {
    Name::new(s).expect("valid")
}

/// A federation member with a master secret and a seed per domain.
struct Member {
    name: Name,
    master: [u8; 32],
    /// The seed of register domains (long-lived), and of projects.
    seeds: Vec<(Domain, [u8; 32])>,
}

impl Member {
    fn new(name: &str, i: u8) -> Self {
        Self {
            name: n(name),
            master: [i; 32],
            seeds: Vec::new(),
        }
    }

    fn share(&self, d: &Domain) -> Share {
        let seed = self
            .seeds
            .iter()
            .find(|(x, _)| x == d)
            .map(|(_, s)| *s)
            .unwrap_or([0; 32]);
        Share::derive(&self.master, &seed, d).expect("share")
    }
}

/// NPR, KPR, SSB (registers and key holders of RESEPT), RESEPT (the
/// holder), LINKER; a pharmacy chain (APOTEK) that is a source only.
struct World {
    npr: Member,
    kpr: Member,
    ssb: Member,
    resept: Member,
    linker: Member,
    r: Domain,
}

impl World {
    fn new() -> Self {
        Self {
            npr: Member::new("NPR", 1),
            kpr: Member::new("KPR", 2),
            ssb: Member::new("SSB", 3),
            resept: Member::new("RESEPT", 4),
            linker: Member::new("LINKER", 5),
            r: Domain::Register(n("RESEPT")),
        }
    }

    /// R's key holders that are registers, in chain order.
    fn registers_of_r(&self) -> [&Member; 3] {
        [&self.npr, &self.kpr, &self.ssb]
    }

    fn k_r(&self) -> Share {
        let mut k = self.linker.share(&self.r);
        for m in self.registers_of_r() {
            k = k.product(&m.share(&self.r));
        }
        k
    }
}

fn identity_points(persons: &[u64]) -> Vec<RistrettoPoint> {
    persons
        .iter()
        .map(|x| hash_to_group(tags::IDENTITY, format!("{x:011}").as_bytes()))
        .collect()
}

fn apply(k: &Share, points: &[WirePoint]) -> Vec<WirePoint> {
    chain::apply_share(k, points, 0).expect("valid points")
}

/// A delivery into R from a source that holds no share of R (a pharmacy
/// chain): split blinding β = β₁·β₂, β₂ to hop 1 (NPR), β₁ to the holder.
/// Returns what the holder stores, `Ψ_R(x)` per position.
fn deliver_from_outside(w: &World, persons: &[u64], rng: &mut ChaCha20Rng) -> Vec<WirePoint> {
    let split = SplitBlinding::random(rng);
    let [_, d2] = split.commitments();
    let y = chain::multiply_decoded(&split.owner_step(), &identity_points(persons));
    // Hop 1 combines its share with β₂⁻¹, proven against D₂.
    let hop1 = StepKey::combined(
        &w.r,
        &ListName::new("APOTEK").expect("valid"),
        &w.npr.name,
        &w.npr.share(&w.r),
        split.second(),
        &d2,
        rng,
    )
    .expect("β₂ matches D₂");
    let mut z = apply(hop1.share(), &y);
    // What hop 1 sees (y) and emits carry β₁ or β: no dictionary runs on them.
    z = apply(&w.kpr.share(&w.r), &z);
    z = apply(&w.ssb.share(&w.r), &z);
    let to_holder = apply(&w.linker.share(&w.r), &z);
    // The holder removes β₁.
    apply(&split.first().invert(), &to_holder)
}

/// A delivery into R from NPR, which is a key holder of R: its owner step
/// is β·k_{NPR,R}; β is sealed to the holder.
fn deliver_from_key_holder(w: &World, persons: &[u64], rng: &mut ChaCha20Rng) -> Vec<WirePoint> {
    let beta = Share::random(rng);
    let y = chain::multiply_decoded(&beta.product(&w.npr.share(&w.r)), &identity_points(persons));
    let mut z = apply(&w.kpr.share(&w.r), &y);
    z = apply(&w.ssb.share(&w.r), &z);
    let to_holder = apply(&w.linker.share(&w.r), &z);
    apply(&beta.invert(), &to_holder)
}

/// Attack: every key holder and the linker run a dictionary over a
/// delivery's persons with what they hold (their own shares of R, and for
/// the linker every share but one). Each sees only values carrying β (or
/// β₁), so no candidate matches; the control shows the same dictionary
/// does find the persons in unblinded values.
#[test]
fn no_key_holder_can_run_a_dictionary_on_a_delivery() {
    let w = World::new();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let persons = [60, 61, 62];
    let dictionary: Vec<u64> = (55..70).collect();
    let candidates =
        |k: &Share| -> Vec<WirePoint> { chain::multiply_decoded(k, &identity_points(&dictionary)) };
    let one = Share::from_scalar(curve25519_dalek::Scalar::ONE).expect("non-zero");

    // What each party sees, for a source without a share.
    let split = SplitBlinding::random(&mut rng);
    let [_, d2] = split.commitments();
    let y = chain::multiply_decoded(&split.owner_step(), &identity_points(&persons));
    let hop1 = StepKey::combined(
        &w.r,
        &ListName::new("APOTEK").expect("valid"),
        &w.npr.name,
        &w.npr.share(&w.r),
        split.second(),
        &d2,
        &mut rng,
    )
    .expect("β₂");
    let z1 = apply(hop1.share(), &y);
    let z2 = apply(&w.kpr.share(&w.r), &z1);
    let z3 = apply(&w.ssb.share(&w.r), &z2);
    let to_holder = apply(&w.linker.share(&w.r), &z3);
    // Every share of R but the linker's, which a coalition of all register
    // key holders could pool.
    let mut registers = one.product(&w.npr.share(&w.r));
    registers = registers
        .product(&w.kpr.share(&w.r))
        .product(&w.ssb.share(&w.r));
    let views: [(&str, &[WirePoint], Vec<&Share>); 5] = [
        ("NPR (hop 1) sees y", &y, vec![&one, &registers]),
        ("KPR sees z1", &z1, vec![&one, &registers]),
        ("SSB sees z2", &z2, vec![&one, &registers]),
        ("the linker sees z3", &z3, vec![&one, &registers]),
        ("the holder receives β₁·Ψ_R", &to_holder, vec![&one]),
    ];
    for (who, seen, keys) in views {
        for k in keys {
            for c in candidates(k) {
                assert!(!seen.contains(&c), "{who}: a dictionary candidate matched");
            }
        }
    }
    // Control: without the blinding, the pooled register shares and the
    // linker's find every person.
    let unblinded = psi(&w, &persons);
    let pooled = registers.product(&w.linker.share(&w.r));
    let found = candidates(&pooled)
        .iter()
        .filter(|c| unblinded.contains(c))
        .count();
    assert_eq!(found, persons.len());
}

fn psi(w: &World, persons: &[u64]) -> Vec<WirePoint> {
    chain::multiply_decoded(&w.k_r(), &identity_points(persons))
}

#[test]
fn a_delivery_gives_the_holder_psi_r_the_same_across_deliveries_and_sources() {
    let w = World::new();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let year1 = [10, 11, 12, 13];
    let year2 = [13, 14, 10];
    let a = deliver_from_outside(&w, &year1, &mut rng);
    assert_eq!(a, psi(&w, &year1));
    let b = deliver_from_outside(&w, &year2, &mut rng);
    let c = deliver_from_key_holder(&w, &year2, &mut rng);
    assert_eq!(b, c, "the same persons, two sources, the same Ψ_R");
    assert_eq!(a[3], b[0], "person 13 in two years");
    assert_eq!(a[0], b[2], "person 10 in two years");
    // The holder's store is keyed by Ψ_R; no value equals I(x).
    let ids: Vec<WirePoint> = identity_points(&year1)
        .iter()
        .map(|p| WirePoint(p.compress().to_bytes()))
        .collect();
    assert!(a.iter().all(|p| !ids.contains(p)));
}

#[test]
fn different_domains_give_unrelated_pseudonyms() {
    let w = World::new();
    let iplos = Domain::Register(n("IPLOS"));
    let persons = [1, 2, 3];
    let mut k = w.linker.share(&iplos);
    for m in [&w.npr, &w.kpr] {
        k = k.product(&m.share(&iplos));
    }
    let other = chain::multiply_decoded(&k, &identity_points(&persons));
    let mine = psi(&w, &persons);
    for p in &other {
        assert!(!mine.contains(p));
    }
    // Even a member holding shares of both domains gets unrelated shares.
    assert_ne!(
        w.npr.share(&iplos).commitment(),
        w.npr.share(&w.r).commitment()
    );
}

/// The conversion run of a pseudonymous list through R's key holders into
/// project p, with every proof checked as a receiving hop would.
struct ProjectRun<'a> {
    w: &'a World,
    p: Domain,
    list: ListName,
}

impl ProjectRun<'_> {
    fn committed(&self, m: &Member) -> (WirePoint, WirePoint) {
        (
            m.share(&self.w.r).commitment(),
            m.share(&self.p).commitment(),
        )
    }

    fn ctx<'b>(&'b self, m: &'b Member) -> ConversionContext<'b> {
        ConversionContext {
            from: &self.w.r,
            to: &self.p,
            member: &m.name,
        }
    }

    /// One key holder's conversion, verified by the next hop.
    fn key_holder_step(
        &self,
        m: &Member,
        step: u32,
        input: &[WirePoint],
        rng: &mut ChaCha20Rng,
    ) -> Vec<WirePoint> {
        let conv = ConversionKey::new(self.ctx(m), &m.share(&self.w.r), &m.share(&self.p), rng)
            .into_step();
        self.checked(m, conv, None, step, input, rng)
    }

    fn checked(
        &self,
        m: &Member,
        conv: ConversionStep,
        d: Option<&WirePoint>,
        step: u32,
        input: &[WirePoint],
        rng: &mut ChaCha20Rng,
    ) -> Vec<WirePoint> {
        let at = ChunkAt {
            target: &self.p,
            list: &self.list,
            step: HopIndex(step),
            chunk: ChunkIndex(0),
            first_position: Position(0),
        };
        let (out, proof) = conv.apply_chunk(at, input, rng).expect("valid points");
        let (kr, kp) = self.committed(m);
        let key = verify_step(self.ctx(m), &kr, &kp, &self.list, d, &conv.proofs())
            .expect("bound to the committed keys");
        let st = ChunkStatement {
            target: &self.p,
            list: &self.list,
            step: HopIndex(step),
            chunk: ChunkIndex(0),
            key,
            input: chunk_digest(input),
            output: chunk_digest(&out),
            count: input.len() as u64,
        };
        verify_chunk(&st, input, &out, &proof).expect("the step is proven");
        out
    }
}

/// `P_p(x)` of an fnr list of register `owner` in project p: owner step
/// β·k_{owner,p}, every other key holder of p plainly, the linker k_L·β⁻¹.
fn fnr_list(
    w: &World,
    p: &Domain,
    owner: &Member,
    persons: &[u64],
    rng: &mut ChaCha20Rng,
) -> Vec<WirePoint> {
    let beta = Share::random(rng);
    let mut z = chain::multiply_decoded(&beta.product(&owner.share(p)), &identity_points(persons));
    for m in [&w.npr, &w.kpr, &w.ssb, &w.resept] {
        if m.name != owner.name {
            z = apply(&m.share(p), &z);
        }
    }
    apply(&w.linker.share(p).product(&beta.invert()), &z)
}

#[test]
fn a_pseudonymous_list_converted_by_every_key_holder_links_with_the_fnr_lists() {
    let w = World::new();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    // Years of deliveries build the holder's table.
    let stored = deliver_from_outside(&w, &[20, 21, 22, 23, 24], &mut rng);

    // The holder's extract for the project: a pseudonym column, one bad row.
    let mut extract = PseudonymListBuilder::new();
    for (line, p) in stored.iter().enumerate() {
        extract
            .push_row(
                line as u64 + 2,
                &pseudonym_hex(p),
                vec![format!("row{line}")],
            )
            .expect("valid");
    }
    assert!(extract.push_row(9, &"00".repeat(32), vec![]).is_err());
    let (persons, stats) = extract.finish();
    assert_eq!(stats.invalid_rows(), 1);
    assert_eq!(stats.invalid[0].reason, "identity");
    let psi_list: Vec<RistrettoPoint> = persons.iter().map(|p| *p.pseudonym.inner()).collect();

    let run = ProjectRun {
        w: &w,
        p: Domain::Project(ProjectId::new("P-1").expect("valid")),
        list: ListName::new("RESEPT").expect("valid"),
    };
    let p = &run.p;
    // Holder's owner step: (β·k_{H,p})·Ψ_R(x).
    let beta = Share::random(&mut rng);
    let d = beta.invert().commitment();
    let mut z = chain::multiply_decoded(&beta.product(&w.resept.share(p)), &psi_list);
    for (i, m) in w.registers_of_r().into_iter().enumerate() {
        z = run.key_holder_step(m, i as u32 + 1, &z, &mut rng);
    }
    let linker = ConversionKey::new(
        run.ctx(&w.linker),
        &w.linker.share(&w.r),
        &w.linker.share(p),
        &mut rng,
    )
    .into_linker_step(p, &run.list, &w.linker.name, &beta, &d, &mut rng)
    .expect("β matches D");
    let finals = run.checked(&w.linker, linker, Some(&d), 4, &z, &mut rng);

    // The fnr registers' lists of the same project.
    let npr = fnr_list(&w, p, &w.npr, &[22, 30, 20], &mut rng);
    let kpr = fnr_list(&w, p, &w.kpr, &[24, 31], &mut rng);
    assert_eq!(finals[2], npr[0], "person 22");
    assert_eq!(finals[0], npr[2], "person 20");
    assert_eq!(finals[4], kpr[0], "person 24");
    for f in &finals {
        assert!(!stored.contains(f), "no Ψ_R value in the project's output");
    }
}

// ─── Attacks on the conversion step ───────────────────────────────────────

struct AttackSetup {
    w: World,
    p: Domain,
    list: ListName,
    kr: WirePoint,
    kp: WirePoint,
}

fn attack_setup() -> AttackSetup {
    let w = World::new();
    let p = Domain::Project(ProjectId::new("P-1").expect("valid"));
    let (kr, kp) = (w.kpr.share(&w.r).commitment(), w.kpr.share(&p).commitment());
    AttackSetup {
        w,
        p,
        list: ListName::new("RESEPT").expect("valid"),
        kr,
        kp,
    }
}

impl AttackSetup {
    fn ctx(&self) -> ConversionContext<'_> {
        ConversionContext {
            from: &self.w.r,
            to: &self.p,
            member: &self.w.kpr.name,
        }
    }

    fn verify(&self, proofs: &StepProofs) -> Result<WirePoint, ConversionError> {
        verify_step(self.ctx(), &self.kr, &self.kp, &self.list, None, proofs)
    }
}

/// Attack: a key holder multiplies by `k_p` alone (it never removes its
/// factor of `k_R`), by another domain's `k_R`, or by any scalar of its
/// choice; however it builds its binding proof, the step is refused.
#[test]
fn a_conversion_key_not_bound_to_the_committed_keys_is_refused() {
    let s = attack_setup();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let kpr = &s.w.kpr;
    let honest = ConversionKey::new(s.ctx(), &kpr.share(&s.w.r), &kpr.share(&s.p), &mut rng);
    assert!(s.verify(&honest.into_step().proofs()).is_ok());

    // k_p alone: K' = K_p, "converted from" the scalar 1.
    let one = Share::from_scalar(curve25519_dalek::Scalar::ONE).expect("non-zero");
    let kp_alone = ConversionKey::new(s.ctx(), &one, &kpr.share(&s.p), &mut rng).into_step();
    assert_eq!(kp_alone.key(), s.kp);
    assert_eq!(s.verify(&kp_alone.proofs()), Err(ConversionError::Binding));
    // ... with the committed K_R written in: the proof no longer verifies.
    let mut forged = kp_alone.proofs();
    forged.binding.from_key = s.kr;
    assert_eq!(s.verify(&forged), Err(ConversionError::Binding));

    // Another domain's k_R (IPLOS), which the member also holds.
    let iplos = Domain::Register(n("IPLOS"));
    let wrong_domain =
        ConversionKey::new(s.ctx(), &kpr.share(&iplos), &kpr.share(&s.p), &mut rng).into_step();
    assert_eq!(
        s.verify(&wrong_domain.proofs()),
        Err(ConversionError::Binding)
    );
    let mut relabelled = wrong_domain.proofs();
    relabelled.binding.from_key = s.kr;
    assert_eq!(s.verify(&relabelled), Err(ConversionError::Binding));
    // A proof made for IPLOS → p, presented as R → p.
    let iplos_ctx = ConversionContext {
        from: &iplos,
        ..s.ctx()
    };
    let made_for_iplos =
        ConversionKey::new(iplos_ctx, &kpr.share(&iplos), &kpr.share(&s.p), &mut rng).into_step();
    assert!(verify_step(
        iplos_ctx,
        &kpr.share(&iplos).commitment(),
        &s.kp,
        &s.list,
        None,
        &made_for_iplos.proofs()
    )
    .is_ok());
    assert_eq!(
        s.verify(&made_for_iplos.proofs()),
        Err(ConversionError::Binding)
    );

    // Another member's honest proof is not this member's.
    let npr = &s.w.npr;
    let npr_ctx = ConversionContext {
        member: &npr.name,
        ..s.ctx()
    };
    let npr_step =
        ConversionKey::new(npr_ctx, &npr.share(&s.w.r), &npr.share(&s.p), &mut rng).into_step();
    assert_eq!(s.verify(&npr_step.proofs()), Err(ConversionError::Binding));
}

/// Attack: a forged binding proof (tampered bytes, a proof for another
/// K', a replayed proof with a swapped combined key).
#[test]
fn a_forged_binding_proof_is_refused() {
    let s = attack_setup();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let kpr = &s.w.kpr;
    let honest = ConversionKey::new(s.ctx(), &kpr.share(&s.w.r), &kpr.share(&s.p), &mut rng)
        .into_step()
        .proofs();
    let mut t = honest.clone();
    t.binding.proof.response[3] ^= 1;
    assert_eq!(s.verify(&t), Err(ConversionError::Binding));
    let mut t = honest.clone();
    t.binding.proof.challenge = [0xff; 32];
    assert_eq!(s.verify(&t), Err(ConversionError::Binding));
    // A K' of the attacker's choosing under the honest proof.
    let mut t = honest.clone();
    t.binding.combined = Share::random(&mut rng).commitment();
    assert_eq!(s.verify(&t), Err(ConversionError::Binding));
    // Not a point.
    let mut t = honest.clone();
    t.binding.combined = WirePoint([0xff; 32]);
    assert_eq!(s.verify(&t), Err(ConversionError::Binding));
    // A blinding proof where none belongs.
    let mut t = honest;
    t.blinding = Some(crate::v2::StepKeyProof {
        share_key: t.binding.combined,
        blinding: t.binding.combined,
        combined: t.binding.combined,
        proof: t.binding.proof,
    });
    assert_eq!(s.verify(&t), Err(ConversionError::BlindingProof));
}

/// Attack: the linker's step with a β other than the announced one, and a
/// blinding proof presented against another `D`.
#[test]
fn the_linker_conversion_refuses_a_wrong_blinding() {
    let s = attack_setup();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let l = &s.w.linker;
    let ctx = ConversionContext {
        member: &l.name,
        ..s.ctx()
    };
    let key = || {
        ConversionKey::new(
            ctx,
            &l.share(&s.w.r),
            &l.share(&s.p),
            &mut ChaCha20Rng::seed_from_u64(9),
        )
    };
    let beta = Share::random(&mut rng);
    let d = beta.invert().commitment();
    let wrong = Share::random(&mut rng);
    assert_eq!(
        key()
            .into_linker_step(&s.p, &s.list, &l.name, &wrong, &d, &mut rng)
            .err(),
        Some(ConversionError::BlindingMismatch)
    );
    assert_eq!(
        key()
            .into_linker_step(&s.p, &s.list, &l.name, &beta, &beta.commitment(), &mut rng)
            .err(),
        Some(ConversionError::BlindingMismatch)
    );
    assert_eq!(
        key()
            .into_linker_step(
                &s.p,
                &s.list,
                &l.name,
                &beta,
                &WirePoint([0xff; 32]),
                &mut rng
            )
            .err(),
        Some(ConversionError::BadKey)
    );
    let step = key()
        .into_linker_step(&s.p, &s.list, &l.name, &beta, &d, &mut rng)
        .expect("the announced β");
    let (kr, kp) = (l.share(&s.w.r).commitment(), l.share(&s.p).commitment());
    let proofs = step.proofs();
    assert!(verify_step(ctx, &kr, &kp, &s.list, Some(&d), &proofs).is_ok());
    // The proof checked against another list's D.
    let other_d = wrong.invert().commitment();
    assert_eq!(
        verify_step(ctx, &kr, &kp, &s.list, Some(&other_d), &proofs),
        Err(ConversionError::BlindingProof)
    );
    // No blinding proof where one is owed.
    let bare = StepProofs {
        blinding: None,
        ..proofs.clone()
    };
    assert_eq!(
        verify_step(ctx, &kr, &kp, &s.list, Some(&d), &bare),
        Err(ConversionError::BlindingProof)
    );
    // The blinding proof presented over another K' (the committed K_p).
    let mut swapped = proofs.clone();
    let mut bp = swapped.blinding.clone().expect("present");
    bp.share_key = kp;
    swapped.blinding = Some(bp);
    assert_eq!(
        verify_step(ctx, &kr, &kp, &s.list, Some(&d), &swapped),
        Err(ConversionError::BlindingProof)
    );
    // The blinding proof itself is the v2 step-key proof.
    assert!(verify_step_key(
        &s.p,
        &s.list,
        &l.name,
        proofs.blinding.as_ref().expect("present")
    )
    .is_ok());
}

/// Attack: a key holder publishes an honest, bound K' but multiplies its
/// chunk by something else (k_p alone); the batch proof is refused.
#[test]
fn a_chunk_converted_with_another_scalar_is_refused() {
    let s = attack_setup();
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let kpr = &s.w.kpr;
    let input: Vec<WirePoint> = identity_points(&[1, 2, 3, 4, 5, 6, 7, 8])
        .iter()
        .map(|p| WirePoint(p.compress().to_bytes()))
        .collect();
    let honest =
        ConversionKey::new(s.ctx(), &kpr.share(&s.w.r), &kpr.share(&s.p), &mut rng).into_step();
    let key = s.verify(&honest.proofs()).expect("bound");
    let at = ChunkAt {
        target: &s.p,
        list: &s.list,
        step: HopIndex(2),
        chunk: ChunkIndex(0),
        first_position: Position(0),
    };
    let (out, proof) = honest.apply_chunk(at, &input, &mut rng).expect("valid");
    let st = |out: &[WirePoint]| ChunkStatement {
        target: &s.p,
        list: &s.list,
        step: HopIndex(2),
        chunk: ChunkIndex(0),
        key,
        input: chunk_digest(&input),
        output: chunk_digest(out),
        count: input.len() as u64,
    };
    assert_eq!(verify_chunk(&st(&out), &input, &out, &proof), Ok(()));
    // The cheater's output under the cheater's own (valid) proof for k_p.
    let kp_alone = ConversionKey::new(
        s.ctx(),
        &Share::from_scalar(curve25519_dalek::Scalar::ONE).expect("non-zero"),
        &kpr.share(&s.p),
        &mut rng,
    )
    .into_step();
    let (bad, bad_proof) = kp_alone.apply_chunk(at, &input, &mut rng).expect("valid");
    assert_eq!(
        verify_chunk(&st(&bad), &input, &bad, &bad_proof),
        Err(ConversionError::ChunkProof {
            chunk: ChunkIndex(0)
        })
    );
    // One point swapped in the honest output.
    let mut one = out.clone();
    one.swap(1, 2);
    assert_eq!(
        verify_chunk(&st(&one), &input, &one, &proof),
        Err(ConversionError::ChunkProof {
            chunk: ChunkIndex(0)
        })
    );
    // The identity in the input is refused before any work.
    let mut with_identity = input.clone();
    with_identity[3] = WirePoint([0; 32]);
    assert!(matches!(
        honest.apply_chunk(at, &with_identity, &mut rng),
        Err(ConversionError::Point(_))
    ));
}

// ─── Re-share ─────────────────────────────────────────────────────────────

/// Replace one key holder (KPR's share of R, e.g. after its keystore was
/// lost and restored from the backup): the holder's whole table, blinded by
/// the holder, is converted by `k'·k⁻¹` with the binding proof; every
/// stored pseudonym then matches a new delivery of the same persons.
#[test]
fn after_a_reshare_every_stored_pseudonym_matches_a_new_delivery() {
    let mut w = World::new();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let persons = [40, 41, 42, 43, 44, 45];
    let table = deliver_from_outside(&w, &persons, &mut rng);
    let old = w.kpr.share(&w.r);
    let old_key = old.commitment();

    // KPR draws a new seed for R.
    w.kpr.seeds.push((w.r.clone(), [77; 32]));
    let new = w.kpr.share(&w.r);
    assert_ne!(new.commitment(), old_key);
    let ctx = ConversionContext {
        from: &w.r,
        to: &w.r,
        member: &w.kpr.name,
    };
    let step = ConversionKey::new(ctx, &old, &new, &mut rng).into_step();
    // The holder blinds its table with γ so that KPR never sees Ψ_R.
    let gamma = Share::random(&mut rng);
    let blinded = apply(&gamma, &table);
    let at = ChunkAt {
        target: &w.r,
        list: &ListName::of_domain(&w.resept.name),
        step: HopIndex(1),
        chunk: ChunkIndex(0),
        first_position: Position(0),
    };
    let (converted, proof) = step.apply_chunk(at, &blinded, &mut rng).expect("valid");
    // The holder checks the step against the committed old key.
    let key = verify_step(
        ctx,
        &old_key,
        &new.commitment(),
        &ListName::of_domain(&w.resept.name),
        None,
        &step.proofs(),
    )
    .expect("bound");
    let st = ChunkStatement {
        target: &w.r,
        list: &ListName::of_domain(&w.resept.name),
        step: HopIndex(1),
        chunk: ChunkIndex(0),
        key,
        input: chunk_digest(&blinded),
        output: chunk_digest(&converted),
        count: blinded.len() as u64,
    };
    verify_chunk(&st, &blinded, &converted, &proof).expect("proven");
    let new_table = apply(&gamma.invert(), &converted);
    assert_ne!(new_table, table);

    let again = deliver_from_outside(&w, &persons, &mut rng);
    assert_eq!(new_table, again);
    let from_npr = deliver_from_key_holder(&w, &[43, 40], &mut rng);
    assert_eq!(from_npr, vec![new_table[3], new_table[0]]);
}

// ─── The domain transcript ────────────────────────────────────────────────

struct Fed {
    manifest: Manifest,
    nodes: Vec<(Name, SigningKey)>,
    operators: Vec<SigningKey>,
}

fn federation() -> Fed {
    let names = [
        ("NPR", Role::Register),
        ("KPR", Role::Register),
        ("RESEPT", Role::Register),
        ("LINKER", Role::Linker),
        ("SSB", Role::Register),
    ];
    let mut members = Vec::new();
    let mut nodes = Vec::new();
    let operators: Vec<SigningKey> = (0..3)
        .map(|i| SigningKey::from_bytes(&[90 + i; 32]))
        .collect();
    for (i, (name, role)) in names.iter().enumerate() {
        let sk = SigningKey::from_bytes(&[i as u8 + 1; 32]);
        let ops = if *role == Role::Linker { 0 } else { 2 };
        let mut m = member(name, *role, i as u8 + 1, ops);
        m.signing_key = Ed25519Key(sk.verifying_key().to_bytes());
        if *name == "RESEPT" {
            for (o, k) in m.operators.iter_mut().zip(&operators) {
                o.key = Ed25519Key(k.verifying_key().to_bytes());
            }
        }
        members.push(m);
        nodes.push((n(name), sk));
    }
    Fed {
        manifest: Manifest {
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
        },
        nodes,
        operators,
    }
}

impl Fed {
    fn key(&self, name: &str) -> &SigningKey {
        &self
            .nodes
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .expect("member")
            .1
    }
}

fn created(f: &Fed) -> DomainLog {
    let mut log = DomainLog::new();
    let spec = f.manifest.domain(&n("RESEPT")).expect("declared");
    log.append(
        n("RESEPT"),
        f.key("RESEPT"),
        DomainBody::Created {
            domain: n("RESEPT"),
            holder: n("RESEPT"),
            key_holders: BoundedVec::new(spec.key_holders(&f.manifest)).expect("fits"),
            manifest: f.manifest.digest(),
        },
        vec![],
    );
    for (i, name) in ["NPR", "KPR", "LINKER"].iter().enumerate() {
        let share = Share::derive(&[i as u8 + 1; 32], &[0; 32], &Domain::Register(n("RESEPT")))
            .expect("share");
        log.append(
            n(name),
            f.key(name),
            DomainBody::KeyCommitment {
                member: n(name),
                key: share.commitment(),
            },
            vec![],
        );
    }
    log
}

fn delivery(id: u8) -> DomainBody {
    DomainBody::Delivery {
        delivery: [id; 16],
        source: n("NPR"),
        persons: 100,
        rows: 250,
        table: Digest([id; 32]),
    }
}

fn retire(f: &Fed, log: &mut DomainLog, ops: [&SigningKey; 2]) {
    let digest = log.next_digest(&n("RESEPT"), &DomainBody::Retired);
    let sigs = ops
        .iter()
        .map(|k| OperatorSig {
            key: Ed25519Key(k.verifying_key().to_bytes()),
            signature: Sig(ed25519_dalek::Signer::sign(*k, digest.as_bytes()).to_bytes()),
        })
        .collect();
    log.append(n("RESEPT"), f.key("RESEPT"), DomainBody::Retired, sigs);
}

#[test]
fn a_domain_transcript_verifies_from_creation_to_retirement() {
    let f = federation();
    let mut log = created(&f);
    log.append(n("RESEPT"), f.key("RESEPT"), delivery(1), vec![]);
    log.append(n("RESEPT"), f.key("RESEPT"), delivery(2), vec![]);
    // A re-share of KPR's key.
    let r = Domain::Register(n("RESEPT"));
    let old = Share::derive(&[2; 32], &[0; 32], &r).expect("share");
    let new = Share::derive(&[2; 32], &[1; 32], &r).expect("share");
    let ctx = ConversionContext {
        from: &r,
        to: &r,
        member: &n("KPR"),
    };
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let binding = *ConversionKey::new(ctx, &old, &new, &mut rng).binding();
    log.append(
        n("KPR"),
        f.key("KPR"),
        DomainBody::Reshare {
            old_member: n("KPR"),
            new_member: n("KPR"),
            binding,
            persons: 100,
        },
        vec![],
    );
    let state = verify_domain_transcript(&f.manifest, &n("RESEPT"), log.entries()).expect("valid");
    assert_eq!(state.deliveries, 2);
    assert_eq!(state.reshares, 1);
    assert_eq!(state.key_of(&n("KPR")), Some(new.commitment()));
    assert!(state.retirement().is_none());
    retire(&f, &mut log, [&f.operators[0], &f.operators[1]]);
    let bytes = encode_domain_transcript(log.entries());
    let decoded = decode_domain_transcript(&bytes).expect("decodes");
    let state = verify_domain_transcript(&f.manifest, &n("RESEPT"), &decoded).expect("valid");
    assert_eq!(
        state.retirement().map(|r| r.domain().clone()),
        Some(n("RESEPT"))
    );
    assert_eq!(state.head, log.entries().last().expect("entries").hash());
}

#[test]
fn a_tampered_domain_transcript_is_refused_with_the_entry_at_fault() {
    let f = federation();
    let base = created(&f);
    let verify = |e: &[super::transcript::DomainEntry]| {
        verify_domain_transcript(&f.manifest, &n("RESEPT"), e)
    };

    // A delivery before every key holder committed.
    let mut early = DomainLog::from_entries(base.entries()[..3].to_vec());
    early.append(n("RESEPT"), f.key("RESEPT"), delivery(1), vec![]);
    assert_eq!(
        verify(early.entries()),
        Err(DomainTranscriptError::Delivery(3))
    );

    // A delivery recorded by a non-holder, and a repeated delivery id.
    let mut by_npr = DomainLog::from_entries(base.entries().to_vec());
    by_npr.append(n("NPR"), f.key("NPR"), delivery(1), vec![]);
    assert_eq!(
        verify(by_npr.entries()),
        Err(DomainTranscriptError::Delivery(4))
    );
    let mut twice = DomainLog::from_entries(base.entries().to_vec());
    twice.append(n("RESEPT"), f.key("RESEPT"), delivery(1), vec![]);
    twice.append(n("RESEPT"), f.key("RESEPT"), delivery(1), vec![]);
    assert_eq!(
        verify(twice.entries()),
        Err(DomainTranscriptError::Delivery(5))
    );

    // A commitment from the holder (not a key holder), and a second one.
    let mut holder_key = DomainLog::from_entries(base.entries().to_vec());
    holder_key.append(
        n("RESEPT"),
        f.key("RESEPT"),
        DomainBody::KeyCommitment {
            member: n("RESEPT"),
            key: Share::derive(&[9; 32], &[0; 32], &Domain::Register(n("RESEPT")))
                .expect("share")
                .commitment(),
        },
        vec![],
    );
    assert_eq!(
        verify(holder_key.entries()),
        Err(DomainTranscriptError::Commitment(4))
    );

    // A changed body under the old signature; a broken chain; truncation of
    // the creation.
    let mut changed = base.entries().to_vec();
    if let DomainBody::KeyCommitment { key, .. } = &mut changed[2].body {
        *key = Share::derive(&[8; 32], &[0; 32], &Domain::Register(n("X")))
            .expect("share")
            .commitment();
    }
    assert_eq!(verify(&changed), Err(DomainTranscriptError::Signature(2)));
    let mut reordered = base.entries().to_vec();
    reordered.swap(1, 2);
    assert_eq!(verify(&reordered), Err(DomainTranscriptError::Chain(2)));
    assert_eq!(
        verify(&base.entries()[1..]),
        Err(DomainTranscriptError::BadCreation(n("RESEPT")))
    );

    // A retirement by one operator twice, or by a non-operator; anything
    // after a retirement.
    let mut one_op = DomainLog::from_entries(base.entries().to_vec());
    retire(&f, &mut one_op, [&f.operators[0], &f.operators[0]]);
    assert_eq!(
        verify(one_op.entries()),
        Err(DomainTranscriptError::Retirement(4))
    );
    let mut stranger = DomainLog::from_entries(base.entries().to_vec());
    retire(&f, &mut stranger, [&f.operators[0], &f.operators[2]]);
    assert_eq!(
        verify(stranger.entries()),
        Err(DomainTranscriptError::Retirement(4))
    );
    let mut after = DomainLog::from_entries(base.entries().to_vec());
    retire(&f, &mut after, [&f.operators[1], &f.operators[0]]);
    assert!(verify(after.entries()).is_ok());
    after.append(n("RESEPT"), f.key("RESEPT"), delivery(3), vec![]);
    assert_eq!(
        verify(after.entries()),
        Err(DomainTranscriptError::Order(5))
    );

    // A re-share whose proof is bound to another old key.
    let r = Domain::Register(n("RESEPT"));
    let ctx = ConversionContext {
        from: &r,
        to: &r,
        member: &n("KPR"),
    };
    let not_kpr = Share::derive(&[7; 32], &[0; 32], &r).expect("share");
    let new = Share::derive(&[2; 32], &[1; 32], &r).expect("share");
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let binding = *ConversionKey::new(ctx, &not_kpr, &new, &mut rng).binding();
    let mut bad_reshare = DomainLog::from_entries(base.entries().to_vec());
    bad_reshare.append(
        n("KPR"),
        f.key("KPR"),
        DomainBody::Reshare {
            old_member: n("KPR"),
            new_member: n("KPR"),
            binding,
            persons: 1,
        },
        vec![],
    );
    assert_eq!(
        verify(bad_reshare.entries()),
        Err(DomainTranscriptError::Reshare(4))
    );

    // Trailing bytes and garbage are refused by the decoder.
    let mut bytes = encode_domain_transcript(base.entries());
    bytes.push(0);
    assert!(decode_domain_transcript(&bytes).is_err());
    // An overlong varint (the entry count 4 as `84 00`) is refused.
    let canonical = encode_domain_transcript(base.entries());
    assert_eq!(canonical[0], 4);
    let mut overlong = vec![0x84, 0x00];
    overlong.extend_from_slice(&canonical[1..]);
    assert!(decode_domain_transcript(&overlong).is_err());
    assert_eq!(
        decode_domain_transcript(&canonical).expect("canonical"),
        base.entries()
    );
    assert!(decode_domain_transcript(&[0xff; 9]).is_err());
}

// ─── In chain v2 ──────────────────────────────────────────────────────────

/// The holder's pseudonymous list run through the real chain v2 machinery:
/// the holder as owner (`OwnerStream`), R's key holders as register hops
/// with their conversion keys (`into_v2_step`, step key `K'_i`), the linker
/// with `into_v2_linker_step`, σ, the backward pass proven against every
/// `K'_i`, and the list check. The final pseudonyms are `P_p(x)`; a key
/// holder that steps with `k_p` alone is caught by the check.
#[test]
fn a_pseudonymous_list_passes_chain_v2_with_conversion_steps() {
    use crate::{
        delivery::FinalSaltKey,
        v2::{
            combine_chunk, pass_step, ChainView, ListCheck, ListHeader, Mode, OwnerCheckBuilder,
            OwnerStream, Pass, PassContext, RegisterHop,
        },
    };
    use curve25519_dalek::traits::Identity;

    let w = World::new();
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let persons = [50, 51, 52, 53, 54];
    let psi_list: Vec<RistrettoPoint> = psi(&w, &persons)
        .iter()
        .map(|p| *p.decode().expect("valid").inner())
        .collect();
    let p = Domain::Project(ProjectId::new("P-V2").expect("valid"));
    let list = ListName::new("RESEPT").expect("valid");
    let sign = |i: u8| SigningKey::from_bytes(&[i; 32]);
    let holder_sign = sign(40);
    let hop_signs = [sign(41), sign(42), sign(43)];
    let header = ListHeader {
        domain: p.clone(),
        delivery: None,
        list: list.clone(),
        attempt: Attempt::FIRST,
        mode: Mode::Optimistic,
        persons: persons.len() as u64,
        chunk_size: 2,
    };
    let beta = Share::random(&mut rng);
    let d = beta.invert().commitment();
    let members = w.registers_of_r();
    let conversion = |m: &Member, honest: bool| {
        let from = if honest {
            m.share(&w.r)
        } else {
            Share::from_scalar(curve25519_dalek::Scalar::ONE).expect("non-zero")
        };
        let ctx = ConversionContext {
            from: &w.r,
            to: &p,
            member: &m.name,
        };
        ConversionKey::new(ctx, &from, &m.share(&p), &mut ChaCha20Rng::seed_from_u64(3))
    };

    let run = |cheater: Option<usize>| {
        let mut rng = ChaCha20Rng::seed_from_u64(22);
        let y = chain::multiply_decoded(&beta.product(&w.resept.share(&p)), &psi_list);
        let mut owner = OwnerStream::new(header.clone()).expect("header");
        let mut msgs: Vec<_> = y
            .chunks(2)
            .map(|c| owner.chunk(c.to_vec(), &holder_sign).expect("chunk"))
            .collect();
        let owner_list = owner.finish(Digest([5; 32])).expect("complete");
        let senders: Vec<_> = std::iter::once(holder_sign.verifying_key())
            .chain(hop_signs.iter().map(SigningKey::verifying_key))
            .collect();
        let step = |h: usize| {
            conversion(members[h - 1], cheater != Some(h))
                .into_v2_step()
                .0
        };
        let keys: Vec<WirePoint> = (1..=3).map(|h| step(h).key()).collect();
        let mut records = Vec::new();
        for h in 1..=3 {
            let mut hop = RegisterHop::new(
                header.clone(),
                HopIndex(h as u32),
                members[h - 1].name.clone(),
                step(h),
                senders[..h].to_vec(),
                keys[..h - 1].to_vec(),
            )
            .expect("hop");
            msgs = msgs
                .iter()
                .map(|m| {
                    hop.handle_chunk(m, &hop_signs[h - 1], &mut rng)
                        .expect("chunk")
                })
                .collect();
            records.push(hop.finish().expect("complete"));
        }
        let (linker_step, binding) = conversion(&w.linker, true)
            .into_v2_linker_step(&p, &list, &w.linker.name, &beta, &d, &mut rng)
            .expect("β matches D");
        let linker_key = linker_step.key();
        let mut linker = crate::v2::LinkerHop::new(
            header.clone(),
            HopIndex(4),
            w.linker.name.clone(),
            linker_step,
            senders.clone(),
            keys.clone(),
            FinalSaltKey::from_secret_bytes([4; 32]),
        )
        .expect("linker");
        let mut finals = Vec::new();
        for m in &msgs {
            finals.extend(linker.handle_chunk(m).expect("chunk"));
        }
        let linker_record = linker.finish().expect("complete");
        // The linker's step key proof builds on K'_L, bound to its keys.
        let proofs = StepProofs {
            binding,
            blinding: linker_record.key_proof.clone(),
        };
        let lctx = ConversionContext {
            from: &w.r,
            to: &p,
            member: &w.linker.name,
        };
        assert_eq!(
            verify_step(
                lctx,
                &w.linker.share(&w.r).commitment(),
                &w.linker.share(&p).commitment(),
                &list,
                Some(&d),
                &proofs
            ),
            Ok(linker_key)
        );
        let blinding = [d];
        let view = ChainView {
            header: &header,
            manifest: Digest([3; 32]),
            owner: &w.resept.name,
            blinding: &blinding,
            owner_list: &owner_list,
            hops: &records,
            linker: (&w.linker.name, linker_key),
        };
        let sigma = view.sigma().expect("chains");
        let ctx = PassContext {
            sigma,
            owner_key: holder_sign.verifying_key(),
            step_keys: view.step_keys(),
        };
        let mut a0 = OwnerCheckBuilder::new(header.clone(), sigma);
        for c in y.chunks(2) {
            a0.push_chunk(c).expect("own chunk");
        }
        let mut pass = Pass {
            list: list.clone(),
            attempt: Attempt::FIRST,
            sigma,
            owner: a0.finish(&holder_sign).expect("complete"),
            steps: BoundedVec::default(),
        };
        let mut b = RistrettoPoint::identity();
        for (c, m) in msgs.iter().enumerate() {
            b += combine_chunk(&sigma, ChunkIndex(c as u64), &m.points).expect("Z");
        }
        for h in 1..=3 {
            let s =
                pass_step(&ctx, &pass, HopIndex(h as u32), &step(h), &mut rng).expect("pass step");
            let mut steps = pass.steps.to_vec();
            steps.push(s);
            pass.steps = BoundedVec::new(steps).expect("fits");
        }
        let check = ListCheck::conclude(&ctx, &pass, b).expect("concludes");
        (check.passed, finals)
    };

    let (passed, finals) = run(None);
    assert!(passed, "the honest conversion chain passes the check");
    let expected: Vec<WirePoint> = fnr_list(&w, &p, &w.npr, &persons, &mut rng);
    assert_eq!(finals, expected, "P_p(x), as the fnr lists give it");

    // KPR steps with k_p alone (its K' is then its K_p): the chain's
    // outputs are consistent with its step key, but its binding proof
    // fails against the committed K_{KPR,R} — and the result is not P_p.
    let cheat = conversion(&w.kpr, false);
    let (kr, kp) = (w.kpr.share(&w.r).commitment(), w.kpr.share(&p).commitment());
    let ctx = ConversionContext {
        from: &w.r,
        to: &p,
        member: &w.kpr.name,
    };
    assert_eq!(
        verify_step(ctx, &kr, &kp, &list, None, &cheat.into_step().proofs()),
        Err(ConversionError::Binding)
    );
    let (passed, finals) = run(Some(2));
    assert!(passed, "σ's check alone cannot see a step-key swap…");
    assert_ne!(
        finals, expected,
        "…which is why the binding proof is required"
    );
}

/// KPR leaves the federation's key holders of RESEPT and SSB takes its
/// place by a re-share: the transcript verifies against the manifest that
/// names SSB, not against the one that still names KPR; a commitment from
/// KPR after it left is refused.
#[test]
fn a_reshare_to_a_new_member_must_match_the_manifest_of_today() {
    let f = federation();
    let mut log = created(&f);
    log.append(n("RESEPT"), f.key("RESEPT"), delivery(1), vec![]);
    let r = Domain::Register(n("RESEPT"));
    let old = Share::derive(&[2; 32], &[0; 32], &r).expect("share");
    let new = Share::derive(&[5; 32], &[0; 32], &r).expect("share");
    let ctx = ConversionContext {
        from: &r,
        to: &r,
        member: &n("KPR"),
    };
    let binding =
        *ConversionKey::new(ctx, &old, &new, &mut ChaCha20Rng::seed_from_u64(10)).binding();
    let body = DomainBody::Reshare {
        old_member: n("KPR"),
        new_member: n("SSB"),
        binding,
        persons: 100,
    };
    // Signed by the old member instead of the new one: refused.
    let mut by_old = DomainLog::from_entries(log.entries().to_vec());
    by_old.append(n("KPR"), f.key("KPR"), body.clone(), vec![]);
    assert_eq!(
        verify_domain_transcript(&f.manifest, &n("RESEPT"), by_old.entries()),
        Err(DomainTranscriptError::Reshare(5))
    );
    log.append(n("SSB"), f.key("SSB"), body, vec![]);
    let stale = verify_domain_transcript(&f.manifest, &n("RESEPT"), log.entries())
        .expect("a manifest one member away verifies");
    assert_eq!(
        stale.replacing,
        Some(Replacement {
            leaving: n("SSB"),
            joining: n("KPR"),
        }),
        "the manifest still names KPR: the domain waits for a re-share to KPR"
    );
    assert!(!stale.is_complete(), "and nothing may use it until then");
    let mut today = f.manifest.clone();
    today.domains[0].key_holders = Some(vec![n("NPR"), n("SSB"), n("LINKER")]);
    today.validate().expect("valid");
    let state = verify_domain_transcript(&today, &n("RESEPT"), log.entries()).expect("valid");
    assert_eq!(
        state.keys,
        vec![
            (n("NPR"), state.key_of(&n("NPR"))),
            (n("SSB"), Some(new.commitment())),
            (n("LINKER"), state.key_of(&n("LINKER"))),
        ],
        "today's key holders in chain order: registers, then the linker"
    );
    assert_eq!(state.key_of(&n("KPR")), None);
    // KPR, no longer a key holder, tries to act as one.
    let mut rogue = DomainLog::from_entries(log.entries().to_vec());
    rogue.append(
        n("KPR"),
        f.key("KPR"),
        DomainBody::KeyCommitment {
            member: n("KPR"),
            key: old.commitment(),
        },
        vec![],
    );
    assert_eq!(
        verify_domain_transcript(&today, &n("RESEPT"), rogue.entries()),
        Err(DomainTranscriptError::Commitment(6))
    );
}

/// A manifest that names another member in one committed key holder's
/// place leaves the domain waiting for that member's re-share (not
/// complete); any other difference between the manifest's key holders
/// and the transcript's is refused.
#[test]
fn a_manifest_may_differ_from_the_transcript_by_one_replaced_key_holder_only() {
    let f = federation();
    let log = created(&f);
    let with = |holders: &[&str]| {
        let mut m = f.manifest.clone();
        m.domains[0].key_holders = Some(holders.iter().map(|h| n(h)).collect());
        m.validate().expect("valid");
        verify_domain_transcript(&m, &n("RESEPT"), log.entries())
    };
    let state = with(&["NPR", "SSB", "LINKER"]).expect("one replaced");
    assert_eq!(
        state.replacing,
        Some(Replacement {
            leaving: n("KPR"),
            joining: n("SSB"),
        })
    );
    assert!(!state.is_complete());
    assert_eq!(
        state
            .keys
            .iter()
            .map(|(m, _)| m.clone())
            .collect::<Vec<_>>(),
        vec![n("NPR"), n("KPR"), n("LINKER")],
        "the leaving key holder keeps its place in chain order until replaced"
    );
    // Two replaced at once, one added, one removed: refused.
    for holders in [
        &["SSB", "LINKER"][..],
        &["NPR", "KPR", "SSB", "LINKER"][..],
        &["NPR", "LINKER"][..],
    ] {
        assert_eq!(
            with(holders),
            Err(DomainTranscriptError::KeyHolders(n("RESEPT"))),
            "{holders:?}"
        );
    }
    // A key holder that never committed cannot be replaced (there is no
    // key to carry over): refused.
    let bare = DomainLog::from_entries(log.entries()[..1].to_vec());
    let mut m = f.manifest.clone();
    m.domains[0].key_holders = Some(vec![n("NPR"), n("SSB"), n("LINKER")]);
    assert_eq!(
        verify_domain_transcript(&m, &n("RESEPT"), bare.entries()),
        Err(DomainTranscriptError::KeyHolders(n("RESEPT")))
    );
}
