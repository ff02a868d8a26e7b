//! An in-memory driver (owner → register hops → linker → backward pass →
//! list check) and the attack tests of issue 13 at protocol level.

use curve25519_dalek::{constants::RISTRETTO_BASEPOINT_POINT, RistrettoPoint, Scalar};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

use super::{
    check::{pass_context, PassStep},
    hop::HopError,
    statement::SignedChunkStatement,
    *,
};
use crate::{
    bounded::BoundedVec,
    chain,
    delivery::FinalSaltKey,
    dleq,
    group::WirePoint,
    hash::{hash_to_group, tags as v1tags},
    share::{Domain, Share},
    types::{Attempt, ChunkIndex, Digest, HopIndex, ListName, Name, ProjectId, UnixTime},
};

/// A member of the in-memory federation.
pub(super) struct Party {
    pub(super) name: Name,
    pub(super) sign: SigningKey,
    share: [u8; 32],
}

impl Party {
    fn new(name: &str, seed: u8) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(u64::from(seed) + 1000);
        Self {
            name: Name::new(name).expect("valid"),
            sign: SigningKey::from_bytes(&[seed; 32]),
            share: *Share::random(&mut rng).to_secret_bytes(),
        }
    }

    pub(super) fn share(&self) -> Share {
        Share::from_secret_bytes(&self.share).expect("share")
    }

    pub(super) fn vk(&self) -> VerifyingKey {
        self.sign.verifying_key()
    }
}

/// The federation: an owner, register hops 1…m, the linker.
pub(super) struct World {
    pub(super) domain: Domain,
    pub(super) manifest: Digest,
    pub(super) owner: Party,
    pub(super) registers: Vec<Party>,
    pub(super) linker: Party,
    pub(super) persons: u64,
    pub(super) chunk_size: u32,
    /// The owner holds no share: split blinding β = β₁·β₂.
    pub(super) split: bool,
    blinding: [[u8; 32]; 2],
    /// A delivery into a register domain: the id in the header, and the
    /// linker steps with its share alone (PROTOCOL.md §10).
    pub(super) delivery: Option<Digest>,
}

impl World {
    pub(super) fn new(registers: usize, persons: u64, chunk_size: u32) -> Self {
        let names = ["KPR", "SSB", "RESEPT", "DAR", "KREFT"];
        let mut rng = ChaCha20Rng::seed_from_u64(77);
        Self {
            domain: Domain::Project(ProjectId::new("P-V2").expect("valid")),
            manifest: Digest([3; 32]),
            owner: Party::new("NPR", 1),
            registers: (0..registers)
                .map(|i| Party::new(names[i], 2 + i as u8))
                .collect(),
            linker: Party::new("LINKER", 9),
            persons,
            chunk_size,
            split: false,
            blinding: [
                *Share::random(&mut rng).to_secret_bytes(),
                *Share::random(&mut rng).to_secret_bytes(),
            ],
            delivery: None,
        }
    }

    fn beta(&self, i: usize) -> Share {
        Share::from_secret_bytes(&self.blinding[i]).expect("share")
    }

    /// `[D_j]`, or `[D₁, D₂]` with a split blinding.
    pub(super) fn blinding_commitments(&self) -> Vec<WirePoint> {
        if self.split {
            vec![
                self.beta(0).invert().commitment(),
                self.beta(1).invert().commitment(),
            ]
        } else {
            vec![self.beta(0).invert().commitment()]
        }
    }

    /// The owner's list.
    pub(super) fn list(&self) -> ListName {
        ListName::of(&self.owner.name)
    }

    pub(super) fn header(&self, attempt: u32, mode: Mode) -> ListHeader {
        ListHeader {
            domain: self.domain.clone(),
            delivery: self.delivery,
            list: self.list(),
            attempt: Attempt(attempt),
            mode,
            persons: self.persons,
            chunk_size: self.chunk_size,
        }
    }

    /// The owner's step scalar: `β·k_j`, or `β₁·β₂` without a share.
    fn owner_step(&self) -> Share {
        if self.split {
            self.beta(0).product(&self.beta(1))
        } else {
            self.beta(0).product(&self.owner.share())
        }
    }

    /// Hop `h`'s step key (1…m registers, m+1 the linker).
    pub(super) fn step(&self, h: usize) -> StepKey {
        let mut rng = ChaCha20Rng::seed_from_u64(500 + h as u64);
        let list = &self.list();
        let d = self.blinding_commitments();
        if h == self.registers.len() + 1 && self.delivery.is_some() {
            StepKey::plain(self.linker.share())
        } else if h == self.registers.len() + 1 {
            let l = &self.linker;
            StepKey::combined(
                &self.domain,
                list,
                &l.name,
                &l.share(),
                &self.beta(0),
                &d[0],
                &mut rng,
            )
            .expect("step")
        } else if h == 1 && self.split {
            let r = &self.registers[0];
            StepKey::combined(
                &self.domain,
                list,
                &r.name,
                &r.share(),
                &self.beta(1),
                &d[1],
                &mut rng,
            )
            .expect("step")
        } else {
            StepKey::plain(self.registers[h - 1].share())
        }
    }

    fn senders(&self, h: usize) -> Vec<VerifyingKey> {
        std::iter::once(self.owner.vk())
            .chain(self.registers[..h - 1].iter().map(Party::vk))
            .collect()
    }

    fn step_keys(&self, h: usize) -> Vec<WirePoint> {
        (1..h).map(|i| self.step(i).key()).collect()
    }

    /// The owner's output `y`.
    pub(super) fn owner_output(&self) -> Vec<WirePoint> {
        let ids: Vec<RistrettoPoint> = (0..self.persons)
            .map(|t| hash_to_group(v1tags::IDENTITY, &t.to_le_bytes()))
            .collect();
        chain::multiply_decoded(&self.owner_step(), &ids)
    }

    /// The expected final pseudonyms `k_p·I(x_t)`.
    fn expected_final(&self) -> Vec<WirePoint> {
        let mut k = self.owner.share();
        if self.split {
            k = self.registers[0].share();
            for r in &self.registers[1..] {
                k = k.product(&r.share());
            }
        } else {
            for r in &self.registers {
                k = k.product(&r.share());
            }
        }
        k = k.product(&self.linker.share());
        let ids: Vec<RistrettoPoint> = (0..self.persons)
            .map(|t| hash_to_group(v1tags::IDENTITY, &t.to_le_bytes()))
            .collect();
        chain::multiply_decoded(&k, &ids)
    }
}

/// How a dishonest hop deviates. Every deviation is made the way a hop
/// running its own code would: its statements are signed over what it
/// actually sent, and its record agrees with them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Attack {
    None,
    /// Hop `hop` multiplies point `index` of chunk `chunk` by a wrong scalar.
    WrongScalar {
        hop: usize,
        chunk: u64,
        index: usize,
    },
    /// Hop `hop` forwards its step over a substituted chunk `chunk`; with
    /// `claim`, it also signs the substitute's digest as its input.
    Substitute {
        hop: usize,
        chunk: u64,
        claim: bool,
    },
    /// Hop `hop` drops one person of chunk `chunk` (the count shrinks).
    Drop {
        hop: usize,
        chunk: u64,
    },
    /// Hop `hop` duplicates one person of chunk `chunk` over another.
    Duplicate {
        hop: usize,
        chunk: u64,
    },
    /// In the backward pass hop `hop` sends a wrong `A_h` with a valid
    /// proof for another point.
    WrongPassValue {
        hop: usize,
    },
    /// Hops `hop` (deviating in its step) and `hop + 1` collude: in the
    /// pass `hop` sends `A_hop = k_{hop+1}⁻¹·…·B` so that `A_m = B` would
    /// hold, with a proof for another point.
    FitPass {
        hop: usize,
    },
}

impl Attack {
    fn tampers(&self, h: usize, c: u64) -> bool {
        match *self {
            Attack::WrongScalar { hop, chunk, .. }
            | Attack::Substitute { hop, chunk, .. }
            | Attack::Drop { hop, chunk }
            | Attack::Duplicate { hop, chunk } => hop == h && chunk == c,
            Attack::FitPass { hop } => hop == h && c == 0,
            _ => false,
        }
    }
}

/// What became of a list attempt.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The check passed; everything the transcript needs.
    Passed(Box<Passed>),
    /// A hop (1…m, or m+1 = the linker) refused a chunk.
    Refused { hop: usize, error: HopError },
    /// σ could not be computed: the records do not chain.
    Chaining(CheckError),
    /// A hop (or the linker, m+1) refused the backward pass.
    PassRefused { hop: usize, error: CheckError },
    /// The list check ran and `A_m ≠ B`.
    CheckFailed(Box<Passed>),
}

#[derive(Debug)]
pub(super) struct Passed {
    pub(super) owner_list: OwnerList,
    pub(super) records: Vec<HopRecordV2>,
    pub(super) check: ListCheck,
    pub(super) finals: Vec<WirePoint>,
    /// Hop m's output chunks, as the linker received them.
    pub(super) z: Vec<ChunkMsg>,
    /// Every stream of the chain: the owner's output, then each register
    /// hop's (the last is `z`).
    pub(super) streams: Vec<Vec<ChunkMsg>>,
}

fn tamper(
    w: &World,
    attack: Attack,
    h: usize,
    header: &ListHeader,
    input: &ChunkMsg,
    out: &mut ChunkMsg,
    record: &mut Vec<(u64, Digest, Digest)>,
) {
    let c = out.statement.statement.chunk;
    if !attack.tampers(h, c.0) {
        return;
    }
    let mut pts = out.points.to_vec();
    let mut claimed_input = out.statement.statement.input;
    match attack {
        Attack::WrongScalar { index, .. } => {
            let p = pts[index].decode().expect("valid");
            pts[index] = WirePoint((Scalar::from(2u8) * p.inner()).compress().to_bytes());
        }
        Attack::Substitute { claim, .. } => {
            let substitute: Vec<WirePoint> = (0..pts.len())
                .map(|i| {
                    let p = hash_to_group(b"substitute", &(i as u64).to_le_bytes());
                    WirePoint(p.compress().to_bytes())
                })
                .collect();
            pts = chain::apply_share(w.step(h).share(), &substitute, 0).expect("valid");
            if claim {
                claimed_input = chunk_digest(&substitute);
            }
        }
        Attack::Drop { .. } => {
            pts.pop();
        }
        Attack::Duplicate { .. } | Attack::FitPass { .. } => {
            pts[1] = pts[0];
        }
        _ => {}
    }
    let _ = input;
    let key = if h == 0 {
        &w.owner.sign
    } else {
        &w.registers[h - 1].sign
    };
    let mut st = out.statement.statement;
    st.output = chunk_digest(&pts);
    st.input = claimed_input;
    st.count = pts.len() as u32;
    out.statement = SignedChunkStatement {
        statement: st,
        signature: st.sign(header, key),
    };
    out.points = BoundedVec::new(pts).expect("fits");
    record.push((c.0, st.input, st.output));
}

/// Runs one list attempt through the whole chain and the check.
pub(super) fn run(w: &World, attack: Attack, attempt: u32, mode: Mode) -> Outcome {
    let header = w.header(attempt, mode);
    let m = w.registers.len();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let y = w.owner_output();
    let size = w.chunk_size as usize;

    // Owner: stream y.
    let mut owner = OwnerStream::new(header.clone()).expect("header");
    let mut msgs: Vec<ChunkMsg> = y
        .chunks(size)
        .map(|c| owner.chunk(c.to_vec(), &w.owner.sign).expect("chunk"))
        .collect();
    let owner_list = owner.finish(Digest([5; 32])).expect("complete");

    // Register hops.
    let mut records = Vec::new();
    let mut streams = vec![msgs.clone()];
    for h in 1..=m {
        let me = &w.registers[h - 1];
        let mut hop = RegisterHop::new(
            header.clone(),
            HopIndex(h as u32),
            me.name.clone(),
            w.step(h),
            w.senders(h),
            w.step_keys(h),
        )
        .expect("hop");
        let mut patched = Vec::new();
        let mut out = Vec::new();
        for msg in &msgs {
            match hop.handle_chunk(msg, &me.sign, &mut rng) {
                Ok(mut o) => {
                    tamper(w, attack, h, &header, msg, &mut o, &mut patched);
                    out.push(o);
                }
                Err(error) => return Outcome::Refused { hop: h, error },
            }
        }
        let mut record = hop.finish().expect("complete");
        let mut chunks = record.chunks.to_vec();
        for (c, i, o) in patched {
            chunks[c as usize].input = i;
            chunks[c as usize].output = o;
        }
        record.chunks = BoundedVec::new(chunks).expect("fits");
        records.push(record);
        msgs = out;
        streams.push(msgs.clone());
    }

    // The linker's hop.
    let salt = FinalSaltKey::from_secret_bytes([4; 32]);
    let mut linker = LinkerHop::new(
        header.clone(),
        HopIndex(m as u32 + 1),
        w.linker.name.clone(),
        w.step(m + 1),
        w.senders(m + 1),
        w.step_keys(m + 1),
        salt,
    )
    .expect("linker");
    let mut finals = Vec::new();
    for msg in &msgs {
        match linker.handle_chunk(msg) {
            Ok(f) => finals.extend(f),
            Err(error) => return Outcome::Refused { hop: m + 1, error },
        }
    }
    let z_digest = linker.z_digest().expect("complete");
    let linker_record = linker.finish().expect("complete");

    // σ, as everyone recomputes it.
    let blinding = w.blinding_commitments();
    let view = ChainView {
        header: &header,
        manifest: w.manifest,
        owner: &w.owner.name,
        blinding: &blinding,
        owner_list: &owner_list,
        hops: &records,
        linker: (&w.linker.name, linker_record.key),
    };
    let sigma = match view.sigma() {
        Ok(s) => s,
        Err(e) => return Outcome::Chaining(e),
    };
    assert_eq!(
        view.z_digest(),
        z_digest,
        "the linker's Z is hop m's output"
    );
    view.check_linker(&linker_record)
        .expect("the linker's record is the chain's last step");
    let ctx = PassContext {
        sigma,
        owner_key: w.owner.vk(),
        step_keys: view.step_keys(),
    };

    // The owner's A_0 over its kept y.
    let mut a0 = OwnerCheckBuilder::new(header.clone(), sigma);
    for c in y.chunks(size) {
        a0.push_chunk(c).expect("own chunk");
    }
    let mut pass = Pass {
        list: header.list.clone(),
        attempt: Attempt(attempt),
        sigma,
        owner: a0.finish(&w.owner.sign).expect("complete"),
        steps: BoundedVec::default(),
    };

    // B, by the linker over Z.
    let mut b = RistrettoPoint::default();
    for (c, msg) in msgs.iter().enumerate() {
        b += combine_chunk(&sigma, ChunkIndex(c as u64), &msg.points).expect("Z");
    }

    // The backward pass.
    for h in 1..=m {
        let step = match pass_step(&ctx, &pass, HopIndex(h as u32), &w.step(h), &mut rng) {
            Ok(s) => s,
            Err(error) => return Outcome::PassRefused { hop: h, error },
        };
        let step = match attack {
            Attack::WrongPassValue { hop } if hop == h => {
                forged_step(w, &ctx, h, &hash_to_group(b"other", b"point"), &mut rng)
            }
            Attack::FitPass { hop } if hop == h => {
                // The colluders know the later shares: they want A_h with
                // k_{h+1}…k_m·A_h = B.
                let mut later = Scalar::ONE;
                for r in &w.registers[h..] {
                    later *= r.share().scalar();
                }
                let target = later.invert() * b;
                let k_inv = w.step(h).share().scalar().invert();
                forged_step_to(w, &ctx, h, &(k_inv * target), target, &mut rng)
            }
            _ => step,
        };
        pass.steps = BoundedVec::new([pass.steps.to_vec(), vec![step]].concat()).expect("fits");
    }
    let check = match ListCheck::conclude(&ctx, &pass, b) {
        Ok(c) => c,
        Err(error) => return Outcome::PassRefused { hop: m + 1, error },
    };
    verify_list_check(&ctx, &check).expect("the linker's own entry verifies");
    let mut all = records;
    all.push(linker_record);
    let done = Box::new(Passed {
        owner_list,
        records: all,
        check,
        finals,
        z: msgs,
        streams,
    });
    if done.check.passed {
        Outcome::Passed(done)
    } else {
        Outcome::CheckFailed(done)
    }
}

/// A step `A_h = k_h·X` for another point `X`, with a valid proof for `X`.
fn forged_step(
    w: &World,
    ctx: &PassContext,
    h: usize,
    x: &RistrettoPoint,
    rng: &mut ChaCha20Rng,
) -> PassStep {
    let a = w.step(h).share().scalar() * x;
    forged_step_to(w, ctx, h, x, a, rng)
}

fn forged_step_to(
    w: &World,
    ctx: &PassContext,
    h: usize,
    x: &RistrettoPoint,
    a: RistrettoPoint,
    rng: &mut ChaCha20Rng,
) -> PassStep {
    let step = w.step(h);
    let a_w = WirePoint(a.compress().to_bytes());
    let x_w = WirePoint(x.compress().to_bytes());
    let c = pass_context(&ctx.sigma, HopIndex(h as u32), &step.key(), &x_w, &a_w);
    PassStep {
        a: a_w,
        proof: dleq::prove(step.share(), &RISTRETTO_BASEPOINT_POINT, x, &c, rng),
    }
}

fn passed(o: Outcome) -> Box<Passed> {
    match o {
        Outcome::Passed(p) => p,
        other => panic!("expected a passed check, got {other:?}"),
    }
}

fn caught_before_linking(o: &Outcome) -> bool {
    !matches!(o, Outcome::Passed(_))
}

mod delivery;

#[test]
fn an_honest_run_passes_and_produces_the_final_pseudonyms() {
    for (registers, split) in [(3, false), (1, false), (0, false), (3, true), (2, true)] {
        let mut w = World::new(registers, 100, 16);
        w.split = split;
        if split && registers == 0 {
            continue;
        }
        let p = passed(run(&w, Attack::None, 0, Mode::Optimistic));
        assert_eq!(
            p.finals,
            w.expected_final(),
            "m = {registers}, split = {split}"
        );
        assert!(p.check.passed);
        assert_eq!(p.check.a.len(), registers + 1);
    }
}

#[test]
fn a_hop_multiplying_one_point_by_a_wrong_scalar_is_caught() {
    let w = World::new(3, 100, 16);
    for hop in 1..=3 {
        let o = run(
            &w,
            Attack::WrongScalar {
                hop,
                chunk: 2,
                index: 5,
            },
            0,
            Mode::Optimistic,
        );
        assert!(matches!(o, Outcome::CheckFailed(_)), "hop {hop}: {o:?}");
    }
}

#[test]
fn a_hop_forwarding_a_substituted_chunk_is_caught() {
    let w = World::new(3, 100, 16);
    for hop in 1..=3 {
        // Signing the true input digest: the check fails.
        let o = run(
            &w,
            Attack::Substitute {
                hop,
                chunk: 1,
                claim: false,
            },
            0,
            Mode::Optimistic,
        );
        assert!(matches!(o, Outcome::CheckFailed(_)), "hop {hop}: {o:?}");
        // Signing the substitute's digest as its input: the records do not
        // chain (its input is not its predecessor's signed output).
        let o = run(
            &w,
            Attack::Substitute {
                hop,
                chunk: 1,
                claim: true,
            },
            0,
            Mode::Optimistic,
        );
        assert!(
            matches!(o, Outcome::Chaining(CheckError::Chaining(_))),
            "hop {hop}: {o:?}"
        );
    }
}

#[test]
fn a_hop_dropping_or_duplicating_a_person_is_caught() {
    let w = World::new(3, 100, 16);
    for hop in 1..=3 {
        let o = run(&w, Attack::Drop { hop, chunk: 3 }, 0, Mode::Optimistic);
        assert!(
            matches!(o, Outcome::Refused { hop: next, error: HopError::WrongCount { chunk: ChunkIndex(3), .. } } if next == hop + 1),
            "hop {hop}: {o:?}"
        );
        let o = run(&w, Attack::Duplicate { hop, chunk: 3 }, 0, Mode::Optimistic);
        assert!(matches!(o, Outcome::CheckFailed(_)), "hop {hop}: {o:?}");
    }
}

#[test]
fn hop_one_deviating_with_consistent_statements_is_caught() {
    // Hop 1 signs statements over exactly what it sent, and its record
    // agrees: A_0 from the owner still catches it.
    let w = World::new(3, 100, 16);
    for attack in [
        Attack::WrongScalar {
            hop: 1,
            chunk: 0,
            index: 0,
        },
        Attack::Substitute {
            hop: 1,
            chunk: 6,
            claim: false,
        },
        Attack::Duplicate { hop: 1, chunk: 6 },
    ] {
        assert!(
            caught_before_linking(&run(&w, attack, 0, Mode::Optimistic)),
            "{attack:?}"
        );
    }
}

#[test]
fn two_colluding_consecutive_hops_are_caught() {
    // m = 3: hops 1–2 and hops m−1, m = 2–3. The deviating hop changes a
    // point; its partner stays silent (processes the changed chunk) and in
    // FitPass also sends a pass value chosen to make A_m equal B.
    let w = World::new(3, 100, 16);
    for hop in [1, 2] {
        let silent = run(&w, Attack::Duplicate { hop, chunk: 0 }, 0, Mode::Optimistic);
        assert!(
            matches!(silent, Outcome::CheckFailed(_)),
            "hop {hop}: {silent:?}"
        );
        let fit = run(&w, Attack::FitPass { hop }, 0, Mode::Optimistic);
        assert!(
            matches!(fit, Outcome::PassRefused { hop: next, error: CheckError::Proof { hop: bad } } if next == hop + 1 && bad == HopIndex(hop as u32)),
            "hop {hop}: {fit:?}"
        );
    }
    // The last hop deviating, its predecessor silent.
    let last = run(
        &w,
        Attack::WrongScalar {
            hop: 3,
            chunk: 6,
            index: 3,
        },
        0,
        Mode::Optimistic,
    );
    assert!(matches!(last, Outcome::CheckFailed(_)), "{last:?}");
}

#[test]
fn a_wrong_pass_value_with_a_proof_for_another_point_is_refused() {
    let w = World::new(3, 40, 16);
    for hop in 1..=3 {
        let o = run(&w, Attack::WrongPassValue { hop }, 0, Mode::Optimistic);
        assert!(
            matches!(o, Outcome::PassRefused { hop: next, error: CheckError::Proof { hop: bad } } if next == hop + 1 && bad == HopIndex(hop as u32)),
            "hop {hop}: {o:?}"
        );
    }
}

#[test]
fn the_owner_signature_and_sigma_bind_the_pass() {
    let w = World::new(2, 40, 16);
    let p = passed(run(&w, Attack::None, 0, Mode::Optimistic));
    let header = w.header(0, Mode::Optimistic);
    let blinding = w.blinding_commitments();
    let view = ChainView {
        header: &header,
        manifest: w.manifest,
        owner: &w.owner.name,
        blinding: &blinding,
        owner_list: &p.owner_list,
        hops: &p.records[..2],
        linker: (&w.linker.name, p.records[2].key),
    };
    let ctx = PassContext {
        sigma: view.sigma().expect("chains"),
        owner_key: w.owner.vk(),
        step_keys: view.step_keys(),
    };
    assert!(verify_list_check(&ctx, &p.check).is_ok());
    // Another attempt, mode, or manifest gives another σ.
    for other in [
        ChainView {
            manifest: Digest([4; 32]),
            ..view
        },
        ChainView {
            header: &w.header(1, Mode::Strict),
            ..view
        },
    ] {
        assert_ne!(other.sigma().ok(), Some(ctx.sigma));
    }
    // A_0 not signed by the owner.
    let mut forged = p.check.clone();
    forged.owner_signature.0[0] ^= 1;
    assert_eq!(
        verify_list_check(&ctx, &forged),
        Err(CheckError::OwnerSignature)
    );
    // A claimed pass where A_m ≠ B.
    let mut lie = p.check.clone();
    lie.b = p.check.a[0];
    assert_eq!(verify_list_check(&ctx, &lie), Err(CheckError::Failed));
}

#[test]
fn strict_mode_names_the_deviating_hop() {
    let w = World::new(3, 100, 16);
    let p = passed(run(&w, Attack::None, 1, Mode::Strict));
    assert_eq!(p.finals, w.expected_final());
    for hop in 1..=3 {
        for attack in [
            Attack::WrongScalar {
                hop,
                chunk: 2,
                index: 5,
            },
            Attack::Substitute {
                hop,
                chunk: 2,
                claim: false,
            },
            Attack::Substitute {
                hop,
                chunk: 2,
                claim: true,
            },
            Attack::Duplicate { hop, chunk: 2 },
        ] {
            let o = run(&w, attack, 1, Mode::Strict);
            assert!(
                matches!(o, Outcome::Refused { hop: next, error: HopError::StrictProof { chunk: ChunkIndex(2), hop: bad } } if next == hop + 1 && bad == HopIndex(hop as u32)),
                "{attack:?}: {o:?}"
            );
        }
    }
}

#[test]
fn a_hop_refuses_chunks_that_do_not_match_the_signed_statement() {
    let w = World::new(2, 40, 16);
    let header = w.header(0, Mode::Optimistic);
    let mut owner = OwnerStream::new(header.clone()).expect("header");
    let y = w.owner_output();
    let msg = owner.chunk(y[..16].to_vec(), &w.owner.sign).expect("chunk");
    let me = &w.registers[0];
    let mut hop = RegisterHop::new(
        header,
        HopIndex(1),
        me.name.clone(),
        w.step(1),
        w.senders(1),
        w.step_keys(1),
    )
    .expect("hop");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut swapped = msg.clone();
    let mut pts = swapped.points.to_vec();
    pts.swap(0, 1);
    swapped.points = BoundedVec::new(pts).expect("fits");
    assert_eq!(
        hop.handle_chunk(&swapped, &me.sign, &mut rng),
        Err(HopError::DigestMismatch {
            chunk: ChunkIndex(0)
        })
    );
    let mut unsigned = msg.clone();
    unsigned.statement.signature = unsigned
        .statement
        .statement
        .sign(&w.header(0, Mode::Optimistic), &me.sign);
    assert_eq!(
        hop.handle_chunk(&unsigned, &me.sign, &mut rng),
        Err(HopError::BadSignature {
            chunk: ChunkIndex(0)
        })
    );
    let mut other_attempt = msg.clone();
    other_attempt.attempt = Attempt(1);
    assert_eq!(
        hop.handle_chunk(&other_attempt, &me.sign, &mut rng),
        Err(HopError::WrongList)
    );
    assert_eq!(
        hop.next_chunk(),
        ChunkIndex(0),
        "refused chunks change nothing"
    );
    assert!(hop.handle_chunk(&msg, &me.sign, &mut rng).is_ok());
}

#[test]
fn the_linker_hop_streams_the_salted_final_root() {
    let w = World::new(2, 100, 16);
    let p = passed(run(&w, Attack::None, 0, Mode::Optimistic));
    let tree = crate::delivery::salted_final_tree(
        &FinalSaltKey::from_secret_bytes([4; 32]),
        &w.domain,
        &w.list(),
        &p.finals,
    );
    assert_eq!(p.records[2].final_root, Some(tree.root()));
}

#[test]
fn a_restarted_linker_resumes_from_its_stored_finals_to_the_same_record() {
    let w = World::new(2, 100, 16);
    let p = passed(run(&w, Attack::None, 0, Mode::Optimistic));
    let header = w.header(0, Mode::Optimistic);
    let linker = || {
        LinkerHop::new(
            header.clone(),
            HopIndex(3),
            w.linker.name.clone(),
            w.step(3),
            w.senders(3),
            w.step_keys(3),
            FinalSaltKey::from_secret_bytes([4; 32]),
        )
        .expect("linker")
    };
    // Three chunks, then a crash: what the store keeps is the digests and
    // the finals.
    let mut first = linker();
    let mut finals = Vec::new();
    for msg in &p.z[..3] {
        finals.extend(first.handle_chunk(msg).expect("chunk"));
    }
    let kept = first.records().to_vec();
    drop(first);
    let mut again = linker().resume(kept.clone(), &finals).expect("resumes");
    assert_eq!(again.next_chunk(), ChunkIndex(3));
    for msg in &p.z[3..] {
        finals.extend(again.handle_chunk(msg).expect("chunk"));
    }
    assert_eq!(finals, p.finals);
    assert_eq!(again.finish().expect("complete"), p.records[2]);
    // A store that lost or altered a final is refused, not resumed.
    let mut altered = p.finals[..48].to_vec();
    altered[17] = p.finals[60];
    for bad in [&p.finals[..47], &p.finals[..49], &altered[..]] {
        assert!(matches!(
            linker().resume(kept.clone(), bad),
            Err(HopError::Malformed { .. })
        ));
    }
    let too_many = vec![kept[0]; 8];
    assert!(matches!(
        linker().resume(too_many, &[]),
        Err(HopError::OutOfOrder { .. })
    ));
}

/// Transcripts with chain v2 entries, verified by `transcript::verify`.
mod transcript {
    use super::*;
    use crate::{
        bounded::BoundedString,
        manifest::{Ed25519Key, Manifest, Member, Operator, Role},
        seal::WrappedKey,
        transcript::{
            verify, visible_to_registers, Approval, Body, Check, ColumnName, Entry, KeyCommitment,
            ProjectOrder, RegisterRequest, Signer, Statement, Transcript,
        },
    };

    const REGISTERS: [&str; 4] = ["NPR", "KPR", "SSB", "RESEPT"];

    fn operator(register: usize, i: usize) -> SigningKey {
        SigningKey::from_bytes(&[100 + (register * 2 + i) as u8; 32])
    }

    fn researcher() -> SigningKey {
        SigningKey::from_bytes(&[200; 32])
    }

    fn world() -> (World, Manifest) {
        let mut w = World::new(3, 70, 16);
        let mut members: Vec<Member> = std::iter::once(&w.owner)
            .chain(&w.registers)
            .enumerate()
            .map(|(r, p)| Member {
                name: p.name.clone(),
                role: Role::Register,
                address: format!("127.0.0.1:{}", 4000 + r),
                tls_spki_sha256: crate::manifest::TlsFingerprint([r as u8 + 1; 32]),
                signing_key: Ed25519Key(p.vk().to_bytes()),
                hpke_key: crate::manifest::X25519Key([r as u8 + 50; 32]),
                operators: (0..2)
                    .map(|i| Operator {
                        name: format!("op{i}"),
                        key: Ed25519Key(operator(r, i).verifying_key().to_bytes()),
                    })
                    .collect(),
            })
            .collect();
        members.push(Member {
            name: w.linker.name.clone(),
            role: Role::Linker,
            address: "127.0.0.1:4999".into(),
            tls_spki_sha256: crate::manifest::TlsFingerprint([99; 32]),
            signing_key: Ed25519Key(w.linker.vk().to_bytes()),
            hpke_key: crate::manifest::X25519Key([98; 32]),
            operators: Vec::new(),
        });
        let manifest = Manifest {
            federation: "v2-test".into(),
            portals: Vec::new(),
            members,
            authorities: vec![crate::manifest::Authority {
                name: "access office".into(),
                key: Ed25519Key(authority().verifying_key().to_bytes()),
            }],
            domains: Vec::new(),
        };
        w.manifest = manifest.digest();
        (w, manifest)
    }

    /// The access authority that grants the test's orders.
    fn authority() -> SigningKey {
        SigningKey::from_bytes(&[66; 32])
    }

    struct Log<'a> {
        w: &'a World,
        manifest: &'a Manifest,
        statements: Vec<(Signer, Body, Option<SigningKey>)>,
    }

    impl Log<'_> {
        fn node(&mut self, name: &Name, body: Body) {
            self.statements
                .push((Signer::Node(name.clone()), body, None));
        }

        fn key_of(&self, signer: &Signer) -> SigningKey {
            let w = self.w;
            match signer {
                Signer::Node(n) => std::iter::once(&w.owner)
                    .chain(&w.registers)
                    .chain(std::iter::once(&w.linker))
                    .find(|p| &p.name == n)
                    .map(|p| p.sign.clone())
                    .expect("a member"),
                Signer::Researcher(_) => researcher(),
                Signer::Operator { key, .. } => (0..4)
                    .flat_map(|r| (0..2).map(move |i| operator(r, i)))
                    .find(|k| k.verifying_key().to_bytes() == key.0)
                    .expect("an operator"),
            }
        }

        fn entries(&self) -> Vec<Entry> {
            let project = ProjectId::new("P-V2").expect("valid");
            let mut t = Transcript::new();
            for (signer, body, _) in &self.statements {
                let st = Statement {
                    project: project.clone(),
                    time: UnixTime(1),
                    signer: signer.clone(),
                    body: body.clone(),
                };
                t.append(st.sign(&self.key_of(signer)), &self.w.linker.sign);
            }
            let _ = self.manifest;
            t.into_entries()
        }
    }

    /// The order, approvals, commitments and NPR's v2 announcement.
    fn preamble<'a>(w: &'a World, manifest: &'a Manifest) -> Log<'a> {
        let columns: crate::transcript::Columns =
            BoundedVec::new(vec![ColumnName::new("diag").expect("fits")]).expect("fits");
        let order = ProjectOrder {
            project: ProjectId::new("P-V2").expect("valid"),
            title: BoundedString::new("v2").expect("fits"),
            legal_basis: BoundedString::new("REK 1").expect("fits"),
            manifest_digest: manifest.digest(),
            linker: w.linker.name.clone(),
            registers: BoundedVec::new(
                REGISTERS
                    .iter()
                    .map(|r| RegisterRequest {
                        register: Name::new(*r).expect("valid"),
                        variables: columns.clone(),
                    })
                    .collect(),
            )
            .expect("fits"),
            cohort: BoundedString::new("NPR").expect("fits"),
            expires: UnixTime(2_000_000_000),
            researcher_signing_key: Ed25519Key(researcher().verifying_key().to_bytes()),
            researcher_hpke_key: crate::manifest::X25519Key([77; 32]),
            test_mode: true,
            grant: None,
            delivery: None,
            pseudonymous: Default::default(),
            identified: None,
        }
        .granted_by(&authority());
        let mut log = Log {
            w,
            manifest,
            statements: Vec::new(),
        };
        let digest = order.digest();
        log.statements.push((
            Signer::Researcher(order.researcher_signing_key),
            Body::Order(order),
            None,
        ));
        for i in 0..2 {
            log.statements.push((
                Signer::Operator {
                    register: w.owner.name.clone(),
                    key: Ed25519Key(operator(0, i).verifying_key().to_bytes()),
                },
                Body::Approval(Approval {
                    register: w.owner.name.clone(),
                    order: digest,
                    extract: Digest([8; 32]),
                    rows: 80,
                    columns: columns.clone(),
                }),
                None,
            ));
        }
        for p in std::iter::once(&w.owner)
            .chain(&w.registers)
            .chain(std::iter::once(&w.linker))
        {
            log.node(
                &p.name,
                Body::Commitment(KeyCommitment {
                    member: p.name.clone(),
                    domain: w.domain.clone(),
                    key: p.share().commitment(),
                }),
            );
        }
        log.node(
            &w.owner.name,
            Body::ListAnnouncedV2(ListAnnouncementV2 {
                list: w.list(),
                delivery: None,
                extract: Digest([8; 32]),
                rows: 80,
                invalid: BoundedVec::default(),
                persons: w.persons,
                columns,
                blinding: BoundedVec::new(w.blinding_commitments()).expect("fits"),
                chunk_size: w.chunk_size,
                content_key: WrappedKey {
                    enc: [1; 32],
                    ciphertext: crate::bounded::BoundedBytes::new(vec![0; 48]).expect("fits"),
                },
                excluded: None,
            }),
        );
        log
    }

    fn attempt(log: &mut Log<'_>, p: &Passed) {
        let w = log.w;
        log.node(&w.owner.name, Body::OwnerListV2(p.owner_list.clone()));
        for r in &p.records {
            log.node(&r.member, Body::HopV2(r.clone()));
        }
        log.node(&w.linker.name, Body::ListCheck(p.check.clone()));
    }

    fn honest() -> (World, Manifest, Box<Passed>) {
        let (w, manifest) = world();
        let p = passed(run(&w, Attack::None, 0, Mode::Optimistic));
        (w, manifest, p)
    }

    #[test]
    fn a_project_list_announced_as_a_delivery_is_refused() {
        // A delivery's linker steps without a key proof (it leaves β to the
        // holder); a project's list announced as a delivery would let the
        // linker skip the proof that binds its step to K_L.
        let (mut w, manifest) = world();
        w.delivery = Some(Digest([9; 32]));
        let p = passed(run(&w, Attack::None, 0, Mode::Optimistic));
        let mut log = preamble(&w, &manifest);
        let Some((_, Body::ListAnnouncedV2(a), _)) = log.statements.last_mut() else {
            panic!("the announcement ends the preamble");
        };
        a.delivery = w.delivery;
        attempt(&mut log, &p);
        let e = verify(&log.entries(), None, &manifest).expect_err("refused");
        assert_eq!(e.check, Check::HopChain, "{}", e.reason);
        assert!(e.reason.contains("delivery"), "{}", e.reason);
    }

    #[test]
    fn an_end_of_list_statement_that_contradicts_its_list_is_refused() {
        // A streamed owner signs its end-of-list statement last
        // (docs/protocol.md §19): one whose whole-list digest is not the
        // digest of its chunk digests, or whose chunk count is not the
        // announcement's, is refused where it stands, before any hop
        // record; one whose chunk digests are not those hop 1 checked is
        // refused at hop 1's record.
        let (w, manifest, p) = honest();
        let whole = |o: &mut OwnerList| o.list_digest.0[0] ^= 1;
        let count = |o: &mut OwnerList| {
            let mut c = o.chunks.to_vec();
            c.pop();
            o.chunks = BoundedVec::new(c).expect("fits");
            o.list_digest = list_digest(&o.chunks);
        };
        let chunk = |o: &mut OwnerList| {
            let mut c = o.chunks.to_vec();
            c[0].0[0] ^= 1;
            o.chunks = BoundedVec::new(c).expect("fits");
            o.list_digest = list_digest(&o.chunks);
        };
        type Case = (fn(&mut OwnerList), &'static str, bool);
        let cases: [Case; 3] = [
            (whole, "whole-list digest", true),
            (count, "chunk digests where its announcement makes", true),
            (
                chunk,
                "input digest is not the previous step's output digest",
                false,
            ),
        ];
        for (tamper, why, at_owner) in cases {
            let mut bad = p.owner_list.clone();
            tamper(&mut bad);
            assert!(bad.contradiction(&w.header(0, Mode::Optimistic)).is_some() == at_owner);
            let mut log = preamble(&w, &manifest);
            let before = log.statements.len();
            log.node(&w.owner.name, Body::OwnerListV2(bad));
            for r in &p.records {
                log.node(&r.member, Body::HopV2(r.clone()));
            }
            log.node(&w.linker.name, Body::ListCheck(p.check.clone()));
            let e = verify(&log.entries(), None, &manifest).expect_err("refused");
            assert_eq!(e.check, Check::HopChain, "{}", e.reason);
            assert!(e.reason.contains(why), "{why}: {}", e.reason);
            // Where: the owner's statement itself, or hop 1's record.
            let at = if at_owner { before } else { before + 1 };
            assert_eq!(e.entry, Some(at as u64), "{why}");
        }
    }

    #[test]
    fn an_honest_v2_transcript_verifies() {
        let (w, manifest, p) = honest();
        let mut log = preamble(&w, &manifest);
        attempt(&mut log, &p);
        let v = verify(&log.entries(), None, &manifest).expect("verifies");
        let npr = v.lists.iter().find(|l| l.list == w.list()).expect("listed");
        assert!(npr.complete);
        assert_eq!(npr.hops, 4);
    }

    #[test]
    fn a_tampered_list_check_entry_is_rejected() {
        let (w, manifest, p) = honest();
        let tampers: [fn(&mut ListCheck); 5] = [
            |c| {
                let mut a = c.a.to_vec();
                a[1] = a[2];
                c.a = BoundedVec::new(a).expect("fits");
            },
            |c| c.passed = false,
            |c| c.sigma.0[0] ^= 1,
            |c| c.b = c.a[0],
            |c| {
                let mut p = c.proofs.to_vec();
                p[0] = p[1];
                c.proofs = BoundedVec::new(p).expect("fits");
            },
        ];
        for (i, t) in tampers.iter().enumerate() {
            let mut bad = p.check.clone();
            t(&mut bad);
            let mut log = preamble(&w, &manifest);
            attempt(
                &mut log,
                &Passed {
                    check: bad,
                    owner_list: p.owner_list.clone(),
                    records: p.records.clone(),
                    finals: Vec::new(),
                    z: Vec::new(),
                    streams: Vec::new(),
                },
            );
            // Re-signed by the linker itself: only the check's own
            // verification can catch it.
            let err = verify(&log.entries(), None, &manifest).expect_err("tampered");
            assert_eq!(err.check, Check::Proofs, "tamper {i}: {err}");
        }
    }

    #[test]
    fn a_hop_record_that_does_not_chain_is_rejected() {
        let (w, manifest, p) = honest();
        let mut records = p.records.clone();
        let mut chunks = records[1].chunks.to_vec();
        chunks[2].input = Digest([1; 32]);
        records[1].chunks = BoundedVec::new(chunks).expect("fits");
        let mut log = preamble(&w, &manifest);
        attempt(
            &mut log,
            &Passed {
                records,
                check: p.check.clone(),
                owner_list: p.owner_list.clone(),
                finals: Vec::new(),
                z: Vec::new(),
                streams: Vec::new(),
            },
        );
        let err = verify(&log.entries(), None, &manifest).expect_err("tampered");
        assert_eq!(err.check, Check::HopChain, "{err}");
    }

    #[test]
    fn a_failed_check_then_a_strict_attempt_verifies() {
        let (w, manifest) = world();
        let failed = match run(
            &w,
            Attack::Duplicate { hop: 2, chunk: 1 },
            0,
            Mode::Optimistic,
        ) {
            Outcome::CheckFailed(p) => p,
            other => panic!("expected a failed check, got {other:?}"),
        };
        let strict = passed(run(&w, Attack::None, 1, Mode::Strict));
        let mut log = preamble(&w, &manifest);
        attempt(&mut log, &failed);
        attempt(&mut log, &strict);
        let v = verify(&log.entries(), None, &manifest).expect("verifies");
        assert!(v.lists.iter().any(|l| l.list == w.list() && l.complete));

        // The failed attempt alone: the list is not complete.
        let mut only_failed = preamble(&w, &manifest);
        attempt(&mut only_failed, &failed);
        let v = verify(&only_failed.entries(), None, &manifest).expect("verifies");
        assert!(v.lists.iter().all(|l| !l.complete));

        // The failed attempt's check claimed passed, re-signed by the linker.
        let mut lie = failed.check.clone();
        lie.passed = true;
        let mut log = preamble(&w, &manifest);
        attempt(
            &mut log,
            &Passed {
                check: lie,
                owner_list: failed.owner_list.clone(),
                records: failed.records.clone(),
                finals: Vec::new(),
                z: Vec::new(),
                streams: Vec::new(),
            },
        );
        let err = verify(&log.entries(), None, &manifest).expect_err("a lie");
        assert_eq!(err.check, Check::Proofs, "{err}");
    }

    #[test]
    fn a_strict_attempt_names_the_deviating_hop_in_the_transcript() {
        let (w, manifest) = world();
        let failed = match run(
            &w,
            Attack::Duplicate { hop: 2, chunk: 1 },
            0,
            Mode::Optimistic,
        ) {
            Outcome::CheckFailed(p) => p,
            other => panic!("expected a failed check, got {other:?}"),
        };
        // Hop 2 keeps deviating in the strict attempt: hop 3 finds it.
        let header = w.header(1, Mode::Strict);
        let error = match run(&w, Attack::Duplicate { hop: 2, chunk: 1 }, 1, Mode::Strict) {
            Outcome::Refused { hop: 3, error } => error,
            other => panic!("expected hop 3 to refuse, got {other:?}"),
        };
        let chain: Vec<Name> = w
            .registers
            .iter()
            .chain(std::iter::once(&w.linker))
            .map(|p| p.name.clone())
            .collect();
        let stop = ChainStopped::from_error(&header, &chain, &error).expect("names a hop");
        assert_eq!(stop.named, Some((HopIndex(2), w.registers[1].name.clone())));
        let strict = passed(run(&w, Attack::None, 1, Mode::Strict));

        let stopped_log = |signer: &Name, stop: &ChainStopped| {
            let mut log = preamble(&w, &manifest);
            attempt(&mut log, &failed);
            log.node(&w.owner.name, Body::OwnerListV2(strict.owner_list.clone()));
            log.node(
                &strict.records[0].member,
                Body::HopV2(strict.records[0].clone()),
            );
            log.node(signer, Body::ChainStopped(stop.clone()));
            log
        };
        let by_hop_3 = &w.registers[2].name;
        let log = stopped_log(by_hop_3, &stop);
        let v = verify(&log.entries(), None, &manifest).expect("verifies");
        assert!(
            v.lists.iter().all(|l| !l.complete),
            "a stopped list is never linked"
        );

        // Only the hop after the named one can name it.
        let err = verify(
            &stopped_log(&w.registers[0].name, &stop).entries(),
            None,
            &manifest,
        )
        .expect_err("wrong signer");
        assert_eq!(err.check, Check::HopChain, "{err}");
        // Nothing of the list after the stop.
        let mut after = stopped_log(by_hop_3, &stop);
        after.node(
            &strict.records[1].member,
            Body::HopV2(strict.records[1].clone()),
        );
        let err = verify(&after.entries(), None, &manifest).expect_err("after the stop");
        assert_eq!(err.check, Check::HopChain, "{err}");
        // A stop in the open optimistic attempt (a signed malformed chunk)
        // is accepted from the next step, not from anyone else, and not
        // for an attempt that is not open.
        let mut early = preamble(&w, &manifest);
        early.node(
            by_hop_3,
            Body::ChainStopped(ChainStopped {
                attempt: Attempt::FIRST,
                ..stop.clone()
            }),
        );
        let v = verify(&early.entries(), None, &manifest).expect("optimistic stop");
        assert!(v.lists.iter().all(|l| !l.complete));
        for (signer, attempt) in [
            (&w.registers[0].name, Attempt::FIRST),
            (by_hop_3, Attempt(1)),
        ] {
            let mut wrong = preamble(&w, &manifest);
            wrong.node(
                signer,
                Body::ChainStopped(ChainStopped {
                    attempt,
                    ..stop.clone()
                }),
            );
            let err = verify(&wrong.entries(), None, &manifest).expect_err("refused stop");
            assert_eq!(err.check, Check::HopChain, "{err}");
        }
    }

    #[test]
    fn a_stop_naming_the_owner_is_accepted_only_from_hop_1_and_only_naming_the_owner() {
        // The owner (hop 0) signed a malformed chunk, e.g. a short chunk
        // that is not its last: hop 1 names it, and the list stops.
        let (w, manifest) = world();
        let stop = ChainStopped {
            list: w.list(),
            attempt: Attempt::FIRST,
            chunk: ChunkIndex(1),
            named: Some((HopIndex::OWNER, w.owner.name.clone())),
        };
        let with = |signer: &Name, stop: ChainStopped| {
            let mut log = preamble(&w, &manifest);
            log.node(signer, Body::ChainStopped(stop));
            verify(&log.entries(), None, &manifest)
        };
        let hop_1 = &w.registers[0].name;
        let v = with(hop_1, stop.clone()).expect("hop 1 names the owner");
        assert!(v.lists.iter().all(|l| !l.complete));
        // Not from another hop, and hop 0 is the owner, nobody else.
        let err = with(&w.registers[1].name, stop.clone()).expect_err("not hop 1");
        assert_eq!(err.check, Check::HopChain, "{err}");
        let other = ChainStopped {
            named: Some((HopIndex::OWNER, hop_1.clone())),
            ..stop
        };
        let err = with(hop_1, other).expect_err("hop 0 is the owner");
        assert_eq!(err.check, Check::HopChain, "{err}");
    }

    #[test]
    fn the_list_check_entry_is_not_visible_to_registers() {
        let (w, manifest, p) = honest();
        let mut log = preamble(&w, &manifest);
        attempt(&mut log, &p);
        let entries = log.entries();
        let to_registers: Vec<&Entry> = entries
            .iter()
            .filter(|e| visible_to_registers(&e.signed.statement.body))
            .collect();
        assert_eq!(to_registers.len(), entries.len() - 1);
        assert!(to_registers
            .iter()
            .all(|e| !matches!(e.signed.statement.body, Body::ListCheck(_))));
        assert!(entries
            .iter()
            .any(|e| matches!(e.signed.statement.body, Body::ListCheck(_))));
    }
}

#[test]
fn a_combined_step_refuses_a_blinding_that_is_not_the_announced_one() {
    let mut w = World::new(2, 10, 4);
    w.split = true;
    let d = w.blinding_commitments();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let l = &w.linker;
    // The linker opens β₂ (hop 1's part) where β₁ was announced as D₁,
    // or a blinding nobody announced: neither is combined.
    for wrong in [w.beta(1), Share::random(&mut rng)] {
        let step = StepKey::combined(
            &w.domain,
            &w.list(),
            &l.name,
            &l.share(),
            &wrong,
            &d[0],
            &mut rng,
        );
        assert!(matches!(step, Err(HopError::BlindingMismatch)));
    }
    // The announced one is.
    assert!(StepKey::combined(
        &w.domain,
        &w.list(),
        &l.name,
        &l.share(),
        &w.beta(0),
        &d[0],
        &mut rng
    )
    .is_ok());
}
