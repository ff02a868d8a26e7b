use super::*;
use proptest::prelude::*;
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
use subtle::ConstantTimeEq;

fn project(s: &str) -> ProjectId {
    ProjectId::new(s).expect("valid")
}

fn list(s: &str) -> ListName {
    ListName::new(s).expect("valid")
}

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(0x5ea1)
}

#[test]
fn wrap_and_unwrap() {
    let mut rng = rng();
    let researcher = HpkeSecretKey::generate(&mut rng);
    let other = HpkeSecretKey::generate(&mut rng);
    let (p, l) = (project("P-1"), list("NPR"));
    let key = ContentKey::generate(&mut rng);
    let wrapped = key.wrap(&researcher.public_key(), &p, &l, &mut rng);
    assert_eq!(wrapped.ciphertext.len(), 32 + TAG_LEN);
    let opened = wrapped.unwrap(&researcher, &p, &l).expect("opens");
    assert_eq!(opened.0, key.0);

    let auth = Err(SealError::AuthenticationFailed);
    assert_eq!(wrapped.unwrap(&other, &p, &l).map(|k| k.0), auth);
    assert_eq!(
        wrapped
            .unwrap(&researcher, &project("P-2"), &l)
            .map(|k| k.0),
        auth
    );
    assert_eq!(
        wrapped.unwrap(&researcher, &p, &list("KPR")).map(|k| k.0),
        auth
    );
    // A content key is not a blinding.
    assert_eq!(
        open_blinding(&researcher, &p, &l, &wrapped).map(|_| ()),
        Err(SealError::AuthenticationFailed)
    );
    let mut bad = wrapped.clone();
    bad.enc[0] ^= 1;
    assert_eq!(bad.unwrap(&researcher, &p, &l).map(|k| k.0), auth);
    for i in 0..wrapped.ciphertext.len() {
        let mut ct = wrapped.ciphertext.clone().into_inner();
        ct[i] ^= 0x80;
        let bad = WrappedKey {
            ciphertext: BoundedBytes::new(ct).expect("fits"),
            ..wrapped.clone()
        };
        assert_eq!(bad.unwrap(&researcher, &p, &l).map(|k| k.0), auth);
    }
    let mut ct = wrapped.ciphertext.clone().into_inner();
    ct.pop();
    let short = WrappedKey {
        ciphertext: BoundedBytes::new(ct).expect("fits"),
        ..wrapped.clone()
    };
    assert_eq!(short.unwrap(&researcher, &p, &l).map(|k| k.0), auth);
    // A small-order enc is refused, not a panic.
    let zero = WrappedKey {
        enc: [0; 32],
        ..wrapped.clone()
    };
    assert_eq!(zero.unwrap(&researcher, &p, &l).map(|k| k.0), auth);
}

#[test]
fn wrapping_is_randomised() {
    let mut rng = rng();
    let sk = HpkeSecretKey::generate(&mut rng);
    let key = ContentKey::generate(&mut rng);
    let (p, l) = (project("P"), list("NPR"));
    let a = key.wrap(&sk.public_key(), &p, &l, &mut rng);
    let b = key.wrap(&sk.public_key(), &p, &l, &mut rng);
    assert_ne!(a, b);
}

#[test]
fn blinding_round_trip_and_binding() {
    let mut rng = rng();
    let linker = HpkeSecretKey::generate(&mut rng);
    let (p, l) = (project("P-1"), list("KPR"));
    let beta = Share::random(&mut rng);
    let sealed = seal_blinding(&linker.public_key(), &p, &l, &beta, &mut rng);
    let opened = open_blinding(&linker, &p, &l, &sealed).expect("opens");
    assert!(bool::from(opened.ct_eq(&beta)));
    for (pp, ll) in [(project("P-2"), l.clone()), (p.clone(), list("NPR"))] {
        assert_eq!(
            open_blinding(&linker, &pp, &ll, &sealed).map(|_| ()),
            Err(SealError::AuthenticationFailed)
        );
    }
    let stranger = HpkeSecretKey::generate(&mut rng);
    assert!(open_blinding(&stranger, &p, &l, &sealed).is_err());
    // A blinding is not a content key.
    assert!(sealed.unwrap(&linker, &p, &l).is_err());
}

#[test]
fn a_sealed_non_scalar_is_invalid_key_material() {
    let mut rng = rng();
    let linker = HpkeSecretKey::generate(&mut rng);
    let (p, l) = (project("P"), list("NPR"));
    let info = info(tags::BLINDING, &p, &l);
    let zero = hpke_seal(&linker.public_key(), &info, &[0; 32], &mut rng);
    assert_eq!(
        open_blinding(&linker, &p, &l, &zero).map(|_| ()),
        Err(SealError::InvalidKeyMaterial)
    );
    let over = hpke_seal(&linker.public_key(), &info, &[0xff; 32], &mut rng);
    assert_eq!(
        open_blinding(&linker, &p, &l, &over).map(|_| ()),
        Err(SealError::InvalidKeyMaterial)
    );
}

#[test]
fn seal_and_open_items() {
    let mut rng = rng();
    let key = ContentKey::generate(&mut rng);
    let other = ContentKey::generate(&mut rng);
    let (p, l) = (project("P-1"), list("NPR"));
    let pt = encode_rows(&[vec!["2019".into(), "F20".into()]]).expect("encodes");
    let item = key.seal_item(&p, &l, Position(7), &pt).expect("seals");
    assert_eq!(item.as_bytes().len(), pt.len() + TAG_LEN);
    assert_eq!(
        key.open_item(&p, &l, Position(7), &item).expect("opens"),
        pt
    );

    let auth = Err(SealError::AuthenticationFailed);
    assert_eq!(key.open_item(&p, &l, Position(6), &item), auth);
    assert_eq!(key.open_item(&p, &l, Position(7 + (1 << 32)), &item), auth);
    assert_eq!(key.open_item(&p, &list("KPR"), Position(7), &item), auth);
    assert_eq!(key.open_item(&project("P-2"), &l, Position(7), &item), auth);
    assert_eq!(other.open_item(&p, &l, Position(7), &item), auth);
    let mut bytes = item.0.clone().into_inner();
    bytes[0] ^= 1;
    let bad = SealedItem(BoundedBytes::new(bytes).expect("fits"));
    assert_eq!(key.open_item(&p, &l, Position(7), &bad), auth);
    let short = SealedItem(BoundedBytes::new(vec![0; TAG_LEN - 1]).expect("fits"));
    assert_eq!(key.open_item(&p, &l, Position(7), &short), auth);

    // The same plaintext at two positions gives unrelated ciphertexts.
    let again = key.seal_item(&p, &l, Position(8), &pt).expect("seals");
    assert_ne!(again, item);
}

#[test]
fn item_byte_format() {
    // Pins nonce and AAD against an independent construction.
    let key = ContentKey([0x42; 32]);
    let (p, l) = (project("P-1"), list("NPR"));
    let item = key
        .seal_item(&p, &l, Position(0x0102_0304), b"hello")
        .expect("seals");
    let mut aad = Vec::new();
    for field in [
        &b"KOBLING-V1-ITEM"[..],
        b"P-1",
        b"NPR",
        &[4, 3, 2, 1, 0, 0, 0, 0],
    ] {
        aad.extend_from_slice(&(field.len() as u64).to_le_bytes());
        aad.extend_from_slice(field);
    }
    let mut nonce = [0u8; 24];
    nonce[..4].copy_from_slice(&[4, 3, 2, 1]);
    let want = XChaCha20Poly1305::new(&[0x42; 32].into())
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: b"hello",
                aad: &aad,
            },
        )
        .expect("encrypts");
    assert_eq!(item.as_bytes(), want.as_slice());
    assert_eq!(
        hex::encode(item.as_bytes()),
        "7af044828bc1c2f60f855a95ae159e18bd088e4067"
    );
}

#[test]
fn oversized_items_are_refused() {
    let key = ContentKey([1; 32]);
    let (p, l) = (project("P"), list("NPR"));
    let big = vec![0u8; MAX_ITEM_PLAINTEXT + 1];
    assert_eq!(
        key.seal_item(&p, &l, Position(0), &big),
        Err(SealError::TooLarge {
            len: MAX_ITEM_PLAINTEXT + 1,
            max: MAX_ITEM_PLAINTEXT
        })
    );
    let item = key
        .seal_item(&p, &l, Position(0), &big[1..])
        .expect("the limit itself fits");
    assert_eq!(item.as_bytes().len(), MAX_SEALED_ITEM);
}

#[test]
fn rows_encoding_is_padded_and_pinned() {
    let rows = vec![vec!["a".to_string(), "bc".to_string()], vec![]];
    let bytes = encode_rows(&rows).expect("encodes");
    assert_eq!(bytes.len(), PADDING_BLOCK);
    assert_eq!(&bytes[..8], &[2, 2, 1, b'a', 2, b'b', b'c', 0]);
    assert!(bytes[8..].iter().all(|&b| b == 0));
    assert_eq!(decode_rows(&bytes).expect("decodes"), rows);

    assert_eq!(encode_rows(&[]).expect("encodes"), vec![0; PADDING_BLOCK]);
    assert!(decode_rows(&[0; PADDING_BLOCK])
        .expect("decodes")
        .is_empty());

    // Exactly one block of encoding needs no padding; one more byte, two.
    let fill = |n: usize| vec![vec!["x".repeat(n)]];
    let exact = PADDING_BLOCK - 4; // varints 1, 1, 2 bytes
    assert_eq!(encode_rows(&fill(exact)).expect("encodes").len(), 256);
    assert_eq!(encode_rows(&fill(exact + 1)).expect("encodes").len(), 512);
}

#[test]
fn malformed_plaintexts_are_rejected() {
    let good = encode_rows(&[vec!["x".into()]]).expect("encodes");
    assert_eq!(decode_rows(&[]), Err(SealError::Padding));
    assert_eq!(decode_rows(&good[..255]), Err(SealError::Padding));
    let mut nonzero = good.clone();
    nonzero[255] = 1;
    assert_eq!(decode_rows(&nonzero), Err(SealError::Padding));
    let mut extra_block = good.clone();
    extra_block.extend_from_slice(&[0; PADDING_BLOCK]);
    assert_eq!(decode_rows(&extra_block), Err(SealError::Padding));
    // Over-long varint for the row count (0x81 0x00 = 1).
    let mut overlong = vec![0x81, 0x00, 1, 1, b'x'];
    overlong.resize(PADDING_BLOCK, 0);
    assert_eq!(decode_rows(&overlong), Err(SealError::NonCanonical));
    // Invalid UTF-8.
    let mut bad_utf8 = vec![1, 1, 1, 0xff];
    bad_utf8.resize(PADDING_BLOCK, 0);
    assert!(matches!(decode_rows(&bad_utf8), Err(SealError::Decode(_))));
    // A row claiming 513 cells.
    let mut wide = vec![1, 0x81, 0x04];
    wide.resize(PADDING_BLOCK * 4, 0);
    assert!(matches!(decode_rows(&wide), Err(SealError::Decode(_))));
    // Truncated: a cell claiming 254 bytes where 252 are left.
    let mut truncated = vec![1, 1, 0xfe, 0x01];
    truncated.resize(PADDING_BLOCK, 0);
    assert!(matches!(decode_rows(&truncated), Err(SealError::Decode(_))));
    // Zero bytes after a count read as empty rows: `3 ‖ 0 0 0 ‖ 0…` is
    // simply the canonical encoding of three empty rows.
    let mut three = vec![3];
    three.resize(PADDING_BLOCK, 0);
    assert_eq!(
        encode_rows(&[vec![], vec![], vec![]]).expect("encodes"),
        three
    );
}

#[test]
fn row_limits_are_enforced_on_encode() {
    let too_wide = vec![vec![String::new(); MAX_COLUMNS + 1]];
    assert!(matches!(
        encode_rows(&too_wide),
        Err(SealError::Limit {
            what: "columns in a row",
            ..
        })
    ));
    let too_long = vec![vec!["x".repeat(MAX_CELL_BYTES + 1)]];
    assert!(matches!(
        encode_rows(&too_long),
        Err(SealError::Limit {
            what: "bytes in a cell",
            ..
        })
    ));
    let too_many = vec![Vec::new(); MAX_ROWS_PER_PERSON + 1];
    assert!(matches!(
        encode_rows(&too_many),
        Err(SealError::Limit {
            what: "rows per person",
            ..
        })
    ));
    // Within every limit, but too big for one item.
    let huge = vec![vec!["x".repeat(MAX_CELL_BYTES); 4]; 65];
    assert!(matches!(
        encode_rows(&huge),
        Err(SealError::TooLarge { .. })
    ));
    // The limits themselves are accepted.
    let max_wide = vec![vec![String::new(); MAX_COLUMNS]];
    let bytes = encode_rows(&max_wide).expect("encodes");
    assert_eq!(decode_rows(&bytes).expect("decodes"), max_wide);
}

#[test]
fn varint_lengths() {
    for (n, len) in [
        (0, 1),
        (127, 1),
        (128, 2),
        (16_383, 2),
        (16_384, 3),
        (usize::MAX, 10),
    ] {
        assert_eq!(varint_len(n), len, "{n}");
    }
}

#[test]
fn public_keys_of_small_order_are_refused() {
    use curve25519_dalek::constants::EIGHT_TORSION;
    let p_minus = |k: u8| {
        // 2^255 - 19 - k, little-endian.
        let mut b = [0xff; 32];
        b[0] = 0xed - k;
        b[31] = 0x7f;
        b
    };
    let mut bad: Vec<[u8; 32]> = EIGHT_TORSION
        .iter()
        .map(|t| t.to_montgomery().to_bytes())
        .collect();
    bad.extend([[0; 32], p_minus(1), p_minus(0), {
        let mut b = p_minus(0);
        b[0] = 0xee; // p + 1 ≡ 1
        b
    }]);
    let with_high_bit: Vec<[u8; 32]> = bad
        .iter()
        .map(|b| {
            let mut b = *b;
            b[31] |= 0x80;
            b
        })
        .collect();
    for b in bad.iter().chain(&with_high_bit) {
        assert_eq!(
            HpkePublicKey::from_bytes(*b),
            Err(SealError::InvalidPublicKey),
            "{}",
            hex::encode(b)
        );
        let wire = postcard::to_allocvec(b).expect("encode");
        assert!(postcard::from_bytes::<HpkePublicKey>(&wire).is_err());
    }
    let good = HpkeSecretKey::generate(&mut rng()).public_key();
    assert_eq!(HpkePublicKey::from_bytes(good.0), Ok(good));
}

#[test]
fn keys_round_trip() {
    let mut rng = rng();
    let sk = HpkeSecretKey::generate(&mut rng);
    let pk = sk.public_key();
    let again = HpkeSecretKey::from_bytes(*sk.to_secret_bytes());
    assert_eq!(again.public_key(), pk);
    assert_eq!(*again.to_secret_bytes(), *sk.to_secret_bytes());

    let wire = postcard::to_allocvec(&pk).expect("encode");
    assert_eq!(wire.len(), 32);
    assert_eq!(
        postcard::from_bytes::<HpkePublicKey>(&wire).expect("decode"),
        pk
    );
    assert_eq!(pk.to_string().parse::<HpkePublicKey>(), Ok(pk));
    assert_eq!(pk.to_hex().to_uppercase().parse::<HpkePublicKey>(), Ok(pk));
    assert!("00".parse::<HpkePublicKey>().is_err());
    assert!("zz".repeat(32).parse::<HpkePublicKey>().is_err());

    let wrapped = ContentKey::generate(&mut rng).wrap(&pk, &project("P"), &list("A"), &mut rng);
    let wire = postcard::to_allocvec(&wrapped).expect("encode");
    assert_eq!(wire.len(), 32 + 1 + 48);
    assert_eq!(
        postcard::from_bytes::<WrappedKey>(&wire).expect("decode"),
        wrapped
    );
    let mut long = wire[..32].to_vec();
    long.push(65);
    long.extend([0; 65]);
    assert!(postcard::from_bytes::<WrappedKey>(&long).is_err());
}

#[test]
fn debug_output_of_secrets_shows_nothing() {
    let mut rng = rng();
    let sk = HpkeSecretKey::generate(&mut rng);
    let key = ContentKey([0xab; 32]);
    assert_eq!(format!("{sk:?}"), "HpkeSecretKey(<secret>)");
    assert_eq!(format!("{key:?}"), "ContentKey(<secret>)");
    assert!(!format!("{key:#?}").contains("ab"));
    let pk = sk.public_key();
    assert_eq!(format!("{pk:?}"), format!("HpkePublicKey({})", pk.to_hex()));
    let item = key
        .seal_item(&project("P"), &list("A"), Position(0), b"secret")
        .expect("seals");
    assert_eq!(format!("{item:?}"), "SealedItem(<22 bytes>)");
}

proptest! {
    #[test]
    fn rows_round_trip(rows in proptest::collection::vec(
        proptest::collection::vec(".{0,40}", 0..6), 0..12))
    {
        let bytes = encode_rows(&rows).expect("encodes");
        prop_assert_eq!(bytes.len() % PADDING_BLOCK, 0);
        prop_assert!(!bytes.is_empty());
        prop_assert!(bytes.len() - encoded_len(&rows) < PADDING_BLOCK);
        prop_assert_eq!(
            &postcard::to_allocvec(&PersonRowsRef { rows: &rows }).expect("encodes")[..],
            &bytes[..encoded_len(&rows)]
        );
        prop_assert_eq!(decode_rows(&bytes).expect("decodes"), rows);
    }
}
