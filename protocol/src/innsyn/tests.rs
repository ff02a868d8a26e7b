use proptest::prelude::*;
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

use super::*;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn name(s: &str) -> Name {
    Name::new(s.to_string()).expect("name")
}

fn session(s: &str) -> Digest {
    Digest(framed_sha3(b"TEST-SESSION", &[s.as_bytes()]))
}

fn rows(n: usize) -> Vec<Vec<String>> {
    (0..n)
        .map(|i| vec![format!("2024-01-{:02}", i % 28 + 1), "F20".to_string()])
        .collect()
}

#[test]
fn only_the_device_of_the_session_opens_the_reply() {
    let mut r = rng(1);
    let device = DeviceSession::new(name("KPR"), session("login-1"), &mut r);
    let reply = seal_reply(&device.request, &rows(3), &mut r).expect("seal");
    assert_eq!(device.open(&reply).expect("the device opens it"), rows(3));

    // The portal passes the reply on; none of its keys opens it.
    let portal = HpkeSecretKey::generate(&mut r);
    assert!(matches!(
        open_reply(&portal, &device.request, &reply),
        Err(InnsynError::Seal(SealError::AuthenticationFailed))
    ));

    // The same device key under another login session, nonce or register.
    let mut other = device.request.clone();
    other.session = session("login-2");
    assert!(open_reply(&device.secret, &other, &reply).is_err());
    let mut other = device.request.clone();
    other.nonce[0] ^= 1;
    assert!(open_reply(&device.secret, &other, &reply).is_err());
    let mut other = device.request.clone();
    other.register = name("NPR");
    assert!(open_reply(&device.secret, &other, &reply).is_err());
}

#[test]
fn an_altered_reply_does_not_open() {
    let mut r = rng(2);
    let device = DeviceSession::new(name("RESEPT"), session("s"), &mut r);
    let reply = seal_reply(&device.request, &rows(1), &mut r).expect("seal");
    let mut bytes = reply.ciphertext.to_vec();
    bytes[100] ^= 0x40;
    let altered = SealedReply {
        key: reply.key.clone(),
        ciphertext: BoundedBytes::new(bytes).expect("same length"),
    };
    assert!(device.open(&altered).is_err());
    let mut key = reply.key.clone();
    key.enc[0] ^= 1;
    let altered = SealedReply {
        key,
        ciphertext: reply.ciphertext.clone(),
    };
    assert!(device.open(&altered).is_err());
}

#[test]
fn a_portal_cannot_tell_no_rows_from_a_few() {
    let mut r = rng(3);
    let device = DeviceSession::new(name("KPR"), session("s"), &mut r);
    let none = seal_reply(&device.request, &[], &mut r).expect("seal");
    let few = seal_reply(&device.request, &rows(20), &mut r).expect("seal");
    assert_eq!(none.ciphertext.len(), MIN_REPLY_BYTES + TAG_LEN);
    assert_eq!(none.ciphertext.len(), few.ciphertext.len());
    assert_eq!(device.open(&none).expect("open"), Vec::<Vec<String>>::new());
    let many = seal_reply(&device.request, &rows(2_000), &mut r).expect("seal");
    let plain = many.ciphertext.len() - TAG_LEN;
    assert!(plain.is_power_of_two() && plain > MIN_REPLY_BYTES);
    assert_eq!(device.open(&many).expect("open"), rows(2_000));
}

#[test]
fn quotas_bound_requests_per_subject_and_per_portal_in_a_window() {
    let limits = QuotaLimits {
        window_secs: 100,
        per_portal: 5,
        per_subject: 2,
    };
    let mut q = Quotas::new(limits);
    let helsenorge = name("PORTAL");
    let other = name("PORTAL-2");
    let a = [1u8; 32];
    let b = [2u8; 32];
    q.admit(&helsenorge, &a, UnixTime(1_000)).expect("first");
    q.admit(&other, &a, UnixTime(1_010))
        .expect("second, from another portal");
    assert_eq!(
        q.admit(&helsenorge, &a, UnixTime(1_020)),
        Err(InnsynError::Quota(QuotaExceeded::Subject)),
        "the person's quota counts every portal"
    );
    for t in 0..4 {
        q.admit(&helsenorge, &[10 + t; 32], UnixTime(1_030))
            .expect("other persons");
    }
    assert_eq!(
        q.admit(&helsenorge, &b, UnixTime(1_040)),
        Err(InnsynError::Quota(QuotaExceeded::Portal))
    );
    assert_eq!(q.in_window(), 6, "refused requests are not counted");
    // The window passes the first two requests: the person may ask again.
    q.admit(&other, &a, UnixTime(1_101))
        .expect("after the window");
    // ... and the portal's first request has left its window too.
    q.admit(&helsenorge, &b, UnixTime(1_101))
        .expect("after the window");
    assert_eq!(q.in_window(), 7, "1,010, four at 1,030 and two at 1,101");
    // A clock that steps back does not reopen the window.
    assert_eq!(
        q.admit(&helsenorge, &b, UnixTime(0)),
        Err(InnsynError::Quota(QuotaExceeded::Portal))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn any_rows_round_trip_and_the_size_is_a_bucket(
        cells in proptest::collection::vec(proptest::collection::vec("[a-zæøå0-9 -]{0,40}", 0..6), 0..50),
        seed in any::<u64>(),
    ) {
        let mut r = rng(seed);
        let device = DeviceSession::new(name("NPR"), session("p"), &mut r);
        let reply = seal_reply(&device.request, &cells, &mut r).expect("seal");
        let plain = reply.ciphertext.len() - TAG_LEN;
        prop_assert!(plain.is_power_of_two() && plain >= MIN_REPLY_BYTES);
        prop_assert_eq!(device.open(&reply).expect("open"), cells);
    }
}
