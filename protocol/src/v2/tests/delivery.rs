//! Deliveries into a register domain on the chain v2 driver (PROTOCOL.md
//! §10, `crate::receipt`): the linker applies `k_{L,R}` only, the holder
//! removes β. The properties of issue 15 item 2 at protocol level: the same
//! person gets the same `Ψ_R` across years and sources, two domains give
//! unrelated pseudonyms, and no key holder (nor the linker) sees a value on
//! which a dictionary over fnr runs.

use std::collections::HashSet;

use curve25519_dalek::{RistrettoPoint, Scalar};
use ed25519_dalek::SigningKey;
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

use super::{passed, run, Attack, Party, Passed, World};
use crate::{
    group::WirePoint,
    hash::{hash_to_group, tags as v1tags},
    receipt::Unblinder,
    share::{Domain, Share},
    types::{ChunkIndex, Digest, HopIndex, Name},
    v2::{check::coefficients, HopError, LinkerHop, Mode, StepKey},
};

fn name(s: &str) -> Name {
    Name::new(s).expect("valid")
}

/// A member with its long-lived share of register domain `domain`, derived
/// as a keystore derives it (master secret and seed of member `seed`).
fn member(n: &str, seed: u8, domain: &str) -> Party {
    let share = Share::derive(
        &[seed; 32],
        &[seed.wrapping_add(100); 32],
        &Domain::Register(name(domain)),
    )
    .expect("share");
    Party {
        name: name(n),
        sign: SigningKey::from_bytes(&[seed; 32]),
        share: *share.to_secret_bytes(),
    }
}

/// Domain `domain`'s key holders: NPR, KPR and the linker (the holder SSB
/// and the pharmacy APOTEK hold no share).
fn key_holders(domain: &str) -> (Party, Party, Party) {
    (
        member("NPR", 1, domain),
        member("KPR", 2, domain),
        member("LINKER", 9, domain),
    )
}

/// A delivery of persons `0..persons` into `domain` from `source`
/// (`split` if the source holds no share), with year `year`'s blinding.
fn delivery(domain: &str, source: &str, persons: u64, year: u64) -> World {
    let (npr, kpr, linker) = key_holders(domain);
    let mut w = World::new(0, persons, 4);
    w.domain = Domain::Register(name(domain));
    w.linker = linker;
    if source == "NPR" {
        w.owner = npr;
        w.registers = vec![kpr];
        w.split = false;
    } else {
        w.owner = member(source, 7, domain);
        w.registers = vec![npr, kpr];
        w.split = true;
    }
    let mut rng = ChaCha20Rng::seed_from_u64(1_000 + year);
    w.blinding = [
        *Share::random(&mut rng).to_secret_bytes(),
        *Share::random(&mut rng).to_secret_bytes(),
    ];
    w.delivery = Some(Digest([year as u8; 32]));
    w
}

fn identities(persons: u64) -> Vec<RistrettoPoint> {
    (0..persons)
        .map(|t| hash_to_group(v1tags::IDENTITY, &t.to_le_bytes()))
        .collect()
}

/// `Ψ_R(x_t) = (Π k_{i,R})·I(x_t)` over `domain`'s key holders, computed
/// from their shares (the test's view of every keystore).
fn psi(domain: &str, persons: u64) -> Vec<WirePoint> {
    let (a, b, c) = key_holders(domain);
    let k = a.share().scalar() * b.share().scalar() * c.share().scalar();
    identities(persons)
        .iter()
        .map(|p| WirePoint((k * p).compress().to_bytes()))
        .collect()
}

/// What the holder stores: the linker's values with β (β₁) removed.
fn receive(w: &World, p: &Passed) -> Vec<WirePoint> {
    let unblinder =
        Unblinder::new(&w.beta(0), &w.blinding_commitments()[0]).expect("announced blinding");
    unblinder.unblind(&p.finals, 0).expect("valid points")
}

#[test]
fn the_same_person_gets_the_same_pseudonym_across_years_and_sources() {
    let expected = psi("SSB", 12);
    let year1 = delivery("SSB", "NPR", 12, 2025);
    let year2 = delivery("SSB", "NPR", 12, 2026);
    let pharmacy = delivery("SSB", "APOTEK", 12, 2027);
    let mut finals = Vec::new();
    for w in [&year1, &year2, &pharmacy] {
        let p = passed(run(w, Attack::None, 0, Mode::Optimistic));
        assert!(p.check.passed, "the §6a check passes");
        assert_eq!(receive(w, &p), expected, "the holder obtains Ψ_R(x_t)");
        finals.push(p.finals.clone());
    }
    // What the holder receives differs every time (a fresh β), what it
    // stores does not.
    assert_ne!(finals[0], finals[1]);
    assert_ne!(finals[1], finals[2]);
}

#[test]
fn two_domains_give_unrelated_pseudonyms() {
    let ssb = psi("SSB", 20);
    let iplos = psi("IPLOS", 20);
    let w = delivery("IPLOS", "APOTEK", 20, 2026);
    assert_eq!(
        receive(&w, &passed(run(&w, Attack::None, 0, Mode::Optimistic))),
        iplos
    );
    let ssb: HashSet<_> = ssb.iter().map(|p| p.0).collect();
    assert!(iplos.iter().all(|p| !ssb.contains(&p.0)));
    // No one member's shares relate them: k_{i,IPLOS}/k_{i,SSB}·Ψ_SSB is
    // not Ψ_IPLOS for any key holder i.
    let pairs = [
        (key_holders("SSB").0, key_holders("IPLOS").0),
        (key_holders("SSB").1, key_holders("IPLOS").1),
        (key_holders("SSB").2, key_holders("IPLOS").2),
    ];
    let first = psi("SSB", 1)[0].decode().expect("valid");
    for (a, b) in pairs {
        let moved = b.share().scalar() * a.share().scalar().invert() * first.inner();
        assert_ne!(moved.compress().to_bytes(), iplos[0].0);
    }
}

/// Every value `v` a party sees, with every combination of the secrets it
/// knows removed (and a one-person list's public coefficient removed from
/// the check values), must be none of `(Π_{i∈S} k_{i,R})·I(x)` for any set
/// S of key holders (the empty set: `I(x)`; the full set: `Ψ_R(x)`).
struct Dictionary {
    candidates: HashSet<[u8; 32]>,
}

impl Dictionary {
    fn new(domain: &str, persons: u64) -> Self {
        let (a, b, c) = key_holders(domain);
        let shares = [
            *a.share().scalar(),
            *b.share().scalar(),
            *c.share().scalar(),
        ];
        let mut candidates = HashSet::new();
        for i in identities(persons) {
            for set in 0..8u8 {
                let mut k = Scalar::ONE;
                for (j, s) in shares.iter().enumerate() {
                    if set & (1 << j) != 0 {
                        k *= s;
                    }
                }
                candidates.insert((k * i).compress().to_bytes());
            }
        }
        Self { candidates }
    }

    /// Asserts that `party`, knowing `secrets`, cannot find any candidate
    /// in `seen` (`factors`: public scalars it may also remove).
    fn assert_blind(
        &self,
        party: &str,
        secrets: &[Scalar],
        factors: &[Scalar],
        seen: &[WirePoint],
    ) {
        let mut removals = Vec::new();
        for set in 0..(1u32 << secrets.len()) {
            let mut k = Scalar::ONE;
            for (j, s) in secrets.iter().enumerate() {
                if set & (1 << j) != 0 {
                    k *= s.invert();
                }
            }
            removals.push(k);
            for f in factors {
                removals.push(k * f.invert());
            }
        }
        assert!(!seen.is_empty());
        for v in seen {
            let v = *v.decode().expect("valid").inner();
            for r in &removals {
                assert!(
                    !self.candidates.contains(&(r * v).compress().to_bytes()),
                    "{party} can run a dictionary over fnr on a value it saw"
                );
            }
        }
    }
}

fn points(msgs: &[super::ChunkMsg]) -> Vec<WirePoint> {
    msgs.iter().flat_map(|m| m.points.to_vec()).collect()
}

fn assert_no_key_holder_sees_a_dictionary_value(w: &World, persons: u64) {
    let p = passed(run(w, Attack::None, 0, Mode::Optimistic));
    let dict = Dictionary::new("SSB", persons);
    let m = w.registers.len();
    // A one-person list's check values are c_0·y_0 with c_0 public.
    let c0 = coefficients(&p.check.sigma, ChunkIndex(0), 1)[0];
    let public = if persons == 1 { vec![c0] } else { Vec::new() };
    let a = p.check.a.to_vec();
    for h in 1..=m {
        let me = &w.registers[h - 1];
        let mut secrets = vec![*me.share().scalar()];
        if h == 1 && w.split {
            secrets.push(*w.beta(1).scalar());
        }
        let mut seen = points(&p.streams[h - 1]);
        seen.extend(points(&p.streams[h]));
        seen.extend([a[h - 1], a[h]]);
        dict.assert_blind(me.name.as_str(), &secrets, &public, &seen);
    }
    // The linker: hop m's output, its own values, every check value and B.
    let mut seen = points(&p.z);
    seen.extend(p.finals.iter().copied());
    seen.extend(a.iter().copied());
    seen.push(p.check.b);
    dict.assert_blind("LINKER", &[*w.linker.share().scalar()], &public, &seen);
    // And the linker holds no Ψ_R: its values still carry β (β₁).
    let psi: HashSet<_> = psi("SSB", persons).iter().map(|p| p.0).collect();
    assert!(p.finals.iter().all(|f| !psi.contains(&f.0)));
}

#[test]
fn no_key_holder_sees_a_value_a_dictionary_over_fnr_runs_on() {
    // A pharmacy (no share) with a one-person list: split blinding.
    assert_no_key_holder_sees_a_dictionary_value(&delivery("SSB", "APOTEK", 1, 2026), 1);
    assert_no_key_holder_sees_a_dictionary_value(&delivery("SSB", "APOTEK", 9, 2026), 9);
    // A key holder's delivery: β and its own share.
    assert_no_key_holder_sees_a_dictionary_value(&delivery("SSB", "NPR", 1, 2026), 1);
    assert_no_key_holder_sees_a_dictionary_value(&delivery("SSB", "NPR", 9, 2026), 9);
}

#[test]
fn an_unsplit_one_person_list_from_a_source_without_a_share_would_be_open_to_the_dictionary() {
    // The reason for the split (§6a): with β alone and no share at the
    // source, whoever removes β sees k_1·I(x) at hop 1's output.
    let mut w = delivery("SSB", "APOTEK", 1, 2026);
    w.split = false;
    w.owner.share = *Share::from_scalar(Scalar::ONE)
        .expect("one")
        .to_secret_bytes();
    let p = passed(run(&w, Attack::None, 0, Mode::Optimistic));
    let dict = Dictionary::new("SSB", 1);
    let holder_view = Unblinder::new(&w.beta(0), &w.blinding_commitments()[0])
        .expect("blinding")
        .unblind(&points(&p.streams[1]), 0)
        .expect("valid");
    assert!(dict.candidates.contains(&holder_view[0].0));
}

#[test]
fn the_linker_of_a_delivery_steps_with_its_share_alone() {
    let w = delivery("SSB", "APOTEK", 4, 2026);
    let m = w.registers.len() as u32;
    let salt = || crate::delivery::FinalSaltKey::from_secret_bytes([4; 32]);
    let combined = StepKey::combined(
        &w.domain,
        &w.list(),
        &w.linker.name,
        &w.linker.share(),
        &w.beta(0),
        &w.blinding_commitments()[0],
        &mut ChaCha20Rng::seed_from_u64(1),
    )
    .expect("step");
    // A delivery's linker refuses to remove β (it would see Ψ_R).
    let refused = LinkerHop::new(
        w.header(0, Mode::Optimistic),
        HopIndex(m + 1),
        w.linker.name.clone(),
        combined,
        Vec::new(),
        Vec::new(),
        salt(),
    );
    assert!(matches!(refused, Err(HopError::BadKey)));
    // A project's linker must remove it.
    let mut project = w.header(0, Mode::Optimistic);
    project.delivery = None;
    let refused = LinkerHop::new(
        project,
        HopIndex(m + 1),
        w.linker.name.clone(),
        StepKey::plain(w.linker.share()),
        Vec::new(),
        Vec::new(),
        salt(),
    );
    assert!(matches!(refused, Err(HopError::BadKey)));
}
