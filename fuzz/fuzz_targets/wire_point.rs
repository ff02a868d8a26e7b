//! Point encodings (`WirePoint::decode`) and the batched chain step that
//! decodes whole chunks (`chain::decode_points`, `chain::apply_share`).
//!
//! The input is a share byte and then 32-byte point encodings (up to 600,
//! so more than two blocks of 256). Checked: a point decodes only from its
//! canonical encoding (decode then encode gives the same bytes); the
//! batched decoder accepts exactly when every point decodes on its own,
//! and otherwise names the first bad position with its reason; the
//! batched step multiplies every point by the share exactly as one
//! scalar multiplication at a time does; a point's postcard form round
//! trips.
#![no_main]

use curve25519_dalek::Scalar;
use kobling_fuzz::Cursor;
use kobling_protocol::{
    chain::{apply_share, decode_points, ChainError},
    group::{Point, WirePoint},
    share::Share,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor(data);
    let k = input.u8().max(1);
    let first_position = u64::from(input.u8()) << 56;
    let points: Vec<WirePoint> = input
        .rest()
        .chunks_exact(32)
        .take(600)
        .map(|c| WirePoint(c.try_into().expect("32 bytes")))
        .collect();

    let mut first_bad = None;
    let mut decoded = Vec::new();
    for (i, w) in points.iter().enumerate() {
        match w.decode() {
            Ok(p) => {
                assert_eq!(p.encode(), *w, "a non-canonical encoding decoded");
                decoded.push(p);
            }
            Err(reason) => {
                first_bad.get_or_insert(ChainError {
                    position: first_position + i as u64,
                    reason,
                });
            }
        }
        let wire = postcard::to_allocvec(w).expect("encode");
        assert_eq!(wire.len(), 32);
        assert_eq!(postcard::from_bytes::<WirePoint>(&wire).ok(), Some(*w));
    }

    let batch = decode_points(&points, first_position);
    match (&batch, first_bad) {
        (Ok(all), None) => {
            let one_by_one: Vec<_> = decoded.iter().map(|p| *p.inner()).collect();
            assert_eq!(*all, one_by_one);
        }
        (Err(e), Some(bad)) => assert_eq!(*e, bad),
        _ => panic!("the batched decoder disagrees with the point decoder"),
    }

    let mut scalar_bytes = [0u8; 32];
    scalar_bytes[0] = k;
    let share = Share::from_secret_bytes(&scalar_bytes).expect("small non-zero scalar");
    let scalar = Scalar::from_bytes_mod_order(scalar_bytes);
    match apply_share(&share, &points, first_position) {
        Ok(out) => {
            assert!(first_bad.is_none());
            for (o, p) in out.iter().zip(&decoded) {
                let expected = Point::new(scalar * p.inner()).expect("k·P is not the identity");
                assert_eq!(*o, expected.encode(), "batched step differs from k·P");
            }
        }
        Err(e) => assert_eq!(Some(e), first_bad),
    }
});
