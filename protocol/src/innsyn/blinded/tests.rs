use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

use super::*;
use crate::{ident::ParseOptions, innsyn::DeviceSession, share::Domain};

const STRICT: ParseOptions = ParseOptions {
    allow_synthetic: false,
};

fn name(s: &str) -> Name {
    Name::new(s.to_string()).expect("name")
}

fn person(s: &str) -> Identifier {
    Identifier::parse(s, STRICT).expect("valid")
}

/// A domain of three key holders (two registers and the linker), each
/// with its share and HPKE key, and a holder with its HPKE key.
struct World {
    members: Vec<(Name, Share, HpkeSecretKey)>,
    holder: HpkeSecretKey,
    device: DeviceSession,
    rng: ChaCha20Rng,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let members = ["NPR", "KPR", "LINKER"]
            .iter()
            .map(|m| {
                (
                    name(m),
                    Share::derive(
                        &[seed as u8; 32],
                        &[m.len() as u8; 32],
                        &Domain::Register(name("RESEPT")),
                    )
                    .expect("share"),
                    HpkeSecretKey::generate(&mut rng),
                )
            })
            .collect();
        let holder = HpkeSecretKey::generate(&mut rng);
        let device = DeviceSession::new(name("RESEPT"), Digest([7; 32]), &mut rng);
        Self {
            members,
            holder,
            device,
            rng,
        }
    }

    fn keys(&self) -> Vec<(Name, Option<WirePoint>)> {
        self.members
            .iter()
            .map(|(n, s, _)| (n.clone(), Some(s.commitment())))
            .collect()
    }

    fn blinded(&mut self, fnr: &str) -> BlindedPerson {
        BlindedPerson::new(
            &self.device.request,
            name("RESEPT"),
            &person(fnr),
            &self.holder.public_key(),
            &self.members[0].2.public_key(),
            &mut self.rng,
        )
    }

    /// Every key holder's step in turn, each checking the ones before.
    fn run(&mut self, list: &BlindedPerson) -> Vec<InnsynStep> {
        let keys = self.keys();
        let request = self.device.request.clone();
        let mut steps: Vec<InnsynStep> = Vec::new();
        for (h, (member, share, sk)) in self.members.iter().enumerate() {
            let input =
                verify_steps(&request, list, &keys, &steps).expect("the steps so far verify");
            let step = if h == 0 {
                list.first_step(&request, member, share, sk, &mut self.rng)
            } else {
                BlindedPerson::later_step(
                    &request,
                    HopIndex::after(h),
                    member,
                    share,
                    &input,
                    &mut self.rng,
                )
            }
            .expect("step");
            steps.push(step);
        }
        steps
    }

    fn psi(&self, fnr: &str) -> WirePoint {
        let k = self.members[0]
            .1
            .product(&self.members[1].1)
            .product(&self.members[2].1);
        Point::new(k.scalar() * person(fnr).identity_point())
            .expect("point")
            .encode()
    }
}

const X: &str = "01018012371";

#[test]
fn the_holder_obtains_the_domain_pseudonym_and_nothing_on_the_way_is_the_identity_point() {
    let mut w = World::new(1);
    let list = w.blinded(X);
    let steps = w.run(&list);
    let last = verify_steps(&w.device.request, &list, &w.keys(), &steps).expect("verifies");
    let psi = list
        .pseudonym(&w.device.request, &w.holder, &last)
        .expect("the holder removes β₁");
    assert_eq!(psi, w.psi(X), "Ψ_R(x) = k_R·I(x)");

    // No value that travels is I(x), Ψ_R(x), or a share of k_R times I(x).
    let ix = Point::new(person(X).identity_point())
        .expect("point")
        .encode();
    let mut seen = vec![list.point];
    seen.extend(steps.iter().map(|s| s.output));
    for v in &seen {
        assert_ne!(*v, ix);
        assert_ne!(*v, psi);
    }
    for (_, share, _) in &w.members {
        let partial = Point::new(share.scalar() * person(X).identity_point())
            .expect("point")
            .encode();
        assert!(!seen.contains(&partial));
    }
}

#[test]
fn only_the_holder_opens_beta_one_and_only_hop_one_opens_beta_two() {
    let mut w = World::new(2);
    let list = w.blinded(X);
    let steps = w.run(&list);
    let last = steps.last().expect("steps").output;
    // Hop 1's key does not open β₁; the holder's does not open β₂.
    assert_eq!(
        list.pseudonym(&w.device.request, &w.members[0].2, &last),
        Err(BlindedError::Blinding)
    );
    let (member, share, _) = &w.members[0];
    assert_eq!(
        list.first_step(&w.device.request, member, share, &w.holder, &mut w.rng),
        Err(BlindedError::Blinding)
    );
    // A sealed part for another request opens for none.
    let other = DeviceSession::new(name("RESEPT"), Digest([8; 32]), &mut w.rng);
    assert_eq!(
        list.pseudonym(&other.request, &w.holder, &last),
        Err(BlindedError::Blinding)
    );
    // A commitment that does not match the sealed part is refused.
    let mut changed = list.clone();
    changed.blinding.swap(0, 1);
    assert_eq!(
        changed.pseudonym(&w.device.request, &w.holder, &last),
        Err(BlindedError::Blinding)
    );
}

#[test]
fn a_holder_cannot_run_a_value_of_its_own_through_the_key_holders() {
    // The attack: a holder (or anyone relaying) substitutes its own point
    // for a step's output, e.g. I(x') for a dictionary, and asks the next
    // key holder to step it. The next key holder checks every step from the
    // portal's signed point on, and refuses.
    let mut w = World::new(3);
    let list = w.blinded(X);
    let request = w.device.request.clone();
    let keys = w.keys();
    let (m1, k1, sk1) = &w.members[0];
    let mut steps = vec![list
        .first_step(&request, m1, k1, sk1, &mut w.rng)
        .expect("step")];
    let guess = Point::new(person("01018012452").identity_point())
        .expect("point")
        .encode();
    steps[0].output = guess;
    assert_eq!(
        verify_steps(&request, &list, &keys, &steps),
        Err(BlindedError::Proof {
            hop: HopIndex(1),
            member: name("NPR")
        })
    );

    // Substituting the portal's point itself breaks hop 1's proof too
    // (and the portal's signature, checked by the node).
    let mut forged = list.clone();
    forged.point = guess;
    let steps = vec![list
        .first_step(&request, m1, k1, sk1, &mut w.rng)
        .expect("step")];
    assert!(verify_steps(&request, &forged, &keys, &steps).is_err());
}

#[test]
fn every_step_is_bound_to_its_member_its_hop_and_its_request() {
    let mut w = World::new(4);
    let list = w.blinded(X);
    let steps = w.run(&list);
    let request = w.device.request.clone();
    let keys = w.keys();

    // Out of order: the steps of hops 2 and 3 swapped.
    let mut swapped = steps.clone();
    swapped.swap(1, 2);
    assert_eq!(
        verify_steps(&request, &list, &keys, &swapped),
        Err(BlindedError::Member {
            hop: HopIndex(2),
            expected: name("KPR")
        })
    );
    // A step signed as another member (its name changed).
    let mut renamed = steps.clone();
    renamed[1].member = name("LINKER");
    assert!(verify_steps(&request, &list, &keys, &renamed).is_err());
    // Hop 1 without its combined key, or a later hop with one.
    let mut bare = steps.clone();
    bare[0].key = None;
    assert!(matches!(
        verify_steps(&request, &list, &keys, &bare),
        Err(BlindedError::Proof {
            hop: HopIndex(1),
            ..
        })
    ));
    let mut extra = steps.clone();
    extra[1].key = steps[0].key.clone();
    assert!(matches!(
        verify_steps(&request, &list, &keys, &extra),
        Err(BlindedError::Proof {
            hop: HopIndex(2),
            ..
        })
    ));
    // Another device request: every proof's context differs.
    let other = DeviceSession::new(name("RESEPT"), Digest([9; 32]), &mut w.rng);
    assert!(verify_steps(&other.request, &list, &keys, &steps).is_err());
    // A key holder stepping with a key other than its committed one.
    let mut wrong_keys = keys.clone();
    wrong_keys[2].1 = Some(Share::random(&mut w.rng).commitment());
    assert!(matches!(
        verify_steps(&request, &list, &wrong_keys, &steps),
        Err(BlindedError::Proof {
            hop: HopIndex(3),
            ..
        })
    ));
    // No committed key, or more steps than key holders.
    let mut missing = keys.clone();
    missing[1].1 = None;
    assert_eq!(
        verify_steps(&request, &list, &missing, &steps),
        Err(BlindedError::NoKey(name("KPR")))
    );
    let mut more = steps.clone();
    more.push(steps[2].clone());
    assert_eq!(
        verify_steps(&request, &list, &keys, &more),
        Err(BlindedError::TooMany)
    );
}

#[test]
fn two_requests_for_the_same_person_look_unrelated_on_the_way_and_give_the_same_pseudonym() {
    let mut w = World::new(5);
    let a = w.blinded(X);
    let b = w.blinded(X);
    assert_ne!(a.point, b.point);
    let (sa, sb) = (w.run(&a), w.run(&b));
    for (x, y) in sa.iter().zip(&sb) {
        assert_ne!(x.output, y.output);
    }
    let last = |s: &[InnsynStep]| s.last().expect("steps").output;
    assert_eq!(
        a.pseudonym(&w.device.request, &w.holder, &last(&sa))
            .expect("psi"),
        b.pseudonym(&w.device.request, &w.holder, &last(&sb))
            .expect("psi"),
    );
}
