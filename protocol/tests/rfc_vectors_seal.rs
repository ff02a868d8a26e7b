//! RFC 9180 known-answer test for the HPKE suite `kobling_protocol::seal`
//! uses: Appendix A.2.1, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20Poly1305, base mode
//! (<https://www.rfc-editor.org/rfc/rfc9180.html#appendix-A.2.1>), read from
//! the checked-in fixture `tests/vectors/rfc9180-a2-1.txt`.

use std::{collections::HashMap, convert::Infallible};

use chacha20poly1305::{
    aead::{Aead as _, KeyInit, Payload},
    ChaCha20Poly1305,
};
use hpke::{
    aead::Aead as _, kdf::Kdf as _, Deserializable, Kem as _, OpModeR, OpModeS, Serializable,
};
use kobling_protocol::seal::{HpkeAead, HpkeKdf, HpkeKem, HpkePublicKey, HpkeSecretKey};

const FIXTURE: &str = include_str!("vectors/rfc9180-a2-1.txt");

/// The fixture: header fields, then one record per encryption and export.
struct Vector {
    fields: HashMap<String, String>,
    encryptions: Vec<HashMap<String, String>>,
    exports: Vec<HashMap<String, String>>,
}

impl Vector {
    fn parse(text: &str) -> Self {
        let mut v = Vector {
            fields: HashMap::new(),
            encryptions: Vec::new(),
            exports: Vec::new(),
        };
        // Which record the next fields belong to.
        enum At {
            Header,
            Encryption,
            Export,
        }
        let mut at = At::Header;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, val) = line.split_once(':').expect("`name: value` line");
            let (k, val) = (k.trim().to_string(), val.trim().to_string());
            match k.as_str() {
                "sequence number" => {
                    at = At::Encryption;
                    v.encryptions.push(HashMap::new());
                }
                "exporter_context" => {
                    at = At::Export;
                    v.exports.push(HashMap::new());
                }
                _ => {}
            }
            let record = match at {
                At::Header => &mut v.fields,
                At::Encryption => v.encryptions.last_mut().expect("record"),
                At::Export => v.exports.last_mut().expect("record"),
            };
            record.insert(k, val);
        }
        v
    }

    fn hex(&self, name: &str) -> Vec<u8> {
        hex::decode(&self.fields[name]).expect("hex")
    }

    fn hex32(&self, name: &str) -> [u8; 32] {
        self.hex(name).try_into().expect("32 bytes")
    }
}

fn hex_of(record: &HashMap<String, String>, name: &str) -> Vec<u8> {
    hex::decode(&record[name]).expect("hex")
}

/// RFC 7748 clamping, which SerializePrivateKey applies (RFC 9180 §7.1.2).
fn clamp(mut k: [u8; 32]) -> [u8; 32] {
    k[0] &= 248;
    k[31] &= 127;
    k[31] |= 64;
    k
}

/// An "RNG" that hands out the fixture's ikmE, so encapsulation derives the
/// RFC's ephemeral key (`GenerateKeyPair` = `DeriveKeyPair(random(Nsk))`).
struct Replay(Vec<u8>);

impl rand_core::TryRng for Replay {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        assert!(dst.len() <= self.0.len(), "replay exhausted");
        let rest = self.0.split_off(dst.len());
        dst.copy_from_slice(&self.0);
        self.0 = rest;
        Ok(())
    }
}

impl rand_core::TryCryptoRng for Replay {}

#[test]
fn suite_is_the_one_the_vector_is_for() {
    let v = Vector::parse(FIXTURE);
    assert_eq!(v.fields["mode"], "0");
    assert_eq!(v.fields["kem_id"], HpkeKem::KEM_ID.to_string());
    assert_eq!(v.fields["kdf_id"], HpkeKdf::KDF_ID.to_string());
    assert_eq!(v.fields["aead_id"], HpkeAead::AEAD_ID.to_string());
    assert_eq!(
        (HpkeKem::KEM_ID, HpkeKdf::KDF_ID, HpkeAead::AEAD_ID),
        (0x0020, 0x0001, 0x0003)
    );
}

#[test]
fn derive_key_pair() {
    let v = Vector::parse(FIXTURE);
    for (ikm, pk, sk) in [("ikmR", "pkRm", "skRm"), ("ikmE", "pkEm", "skEm")] {
        let derived = HpkeSecretKey::derive(&v.hex(ikm));
        assert_eq!(derived.public_key().as_bytes(), &v.hex32(pk), "{pk}");
        assert_eq!(*derived.to_secret_bytes(), clamp(v.hex32(sk)), "{sk}");
        let from_bytes = HpkeSecretKey::from_bytes(v.hex32(sk));
        assert_eq!(from_bytes.public_key(), derived.public_key());
        assert!(HpkePublicKey::from_bytes(v.hex32(pk)).is_ok());
    }
    assert_eq!(v.hex("enc"), v.hex("pkEm"));
}

#[test]
fn base_mode_encryptions_and_exports() {
    let v = Vector::parse(FIXTURE);
    let info = v.hex("info");
    let sk_r = HpkeSecretKey::derive(&v.hex("ikmR"));
    let sk_r = <HpkeKem as hpke::Kem>::PrivateKey::from_bytes(sk_r.to_secret_bytes().as_slice())
        .expect("32 bytes");
    let pk_r = <HpkeKem as hpke::Kem>::PublicKey::from_bytes(&v.hex("pkRm")).expect("32 bytes");

    // Sender with the RFC's ephemeral key.
    let (enc, mut sender) = hpke::setup_sender_with_rng::<HpkeAead, HpkeKdf, HpkeKem>(
        &OpModeS::Base,
        &pk_r,
        &info,
        &mut Replay(v.hex("ikmE")),
    )
    .expect("setup sender");
    assert_eq!(enc.to_bytes().as_slice(), v.hex("enc").as_slice());

    // Receiver from the published enc.
    let enc = <HpkeKem as hpke::Kem>::EncappedKey::from_bytes(&v.hex("enc")).expect("32 bytes");
    let mut receiver =
        hpke::setup_receiver::<HpkeAead, HpkeKdf, HpkeKem>(&OpModeR::Base, &sk_r, &enc, &info)
            .expect("setup receiver");

    // Walk the sequence numbers 0..=256; at the published ones the
    // ciphertext must be the RFC's, and every one must open.
    let published: HashMap<u64, &HashMap<String, String>> = v
        .encryptions
        .iter()
        .map(|e| (e["sequence number"].parse().expect("number"), e))
        .collect();
    let last = *published.keys().max().expect("encryptions");
    assert_eq!(published.len(), 6);
    let pt = hex_of(published[&0], "pt");
    let mut checked = 0;
    for seq in 0..=last {
        let aad = format!("Count-{seq}").into_bytes();
        let ct = sender.seal(&pt, &aad).expect("seal");
        if let Some(e) = published.get(&seq) {
            assert_eq!(hex_of(e, "aad"), aad, "aad {seq}");
            assert_eq!(hex_of(e, "pt"), pt, "pt {seq}");
            assert_eq!(hex::encode(&ct), e["ct"], "ct {seq}");
            checked += 1;
        }
        assert_eq!(receiver.open(&ct, &aad).expect("open"), pt, "open {seq}");
    }
    assert_eq!(checked, published.len());

    for e in &v.exports {
        let ctx = hex_of(e, "exporter_context");
        let len: usize = e["L"].parse().expect("number");
        let mut from_sender = vec![0u8; len];
        let mut from_receiver = vec![0u8; len];
        sender.export(&ctx, &mut from_sender).expect("export");
        receiver.export(&ctx, &mut from_receiver).expect("export");
        assert_eq!(hex::encode(&from_sender), e["exported_value"]);
        assert_eq!(from_receiver, from_sender);
    }
}

/// The fixture's key schedule outputs are consistent with its ciphertexts:
/// `ct = ChaCha20Poly1305(key, base_nonce XOR I2OSP(seq, 12), aad, pt)`.
#[test]
fn key_schedule_values_match_the_ciphertexts() {
    let v = Vector::parse(FIXTURE);
    let cipher = ChaCha20Poly1305::new_from_slice(&v.hex("key")).expect("32-byte key");
    let base_nonce = v.hex("base_nonce");
    for e in &v.encryptions {
        let seq: u64 = e["sequence number"].parse().expect("number");
        let mut nonce: [u8; 12] = base_nonce.clone().try_into().expect("12 bytes");
        for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        let ct = cipher
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: &hex_of(e, "pt"),
                    aad: &hex_of(e, "aad"),
                },
            )
            .expect("encrypt");
        assert_eq!(hex::encode(ct), e["ct"], "seq {seq}");
    }
}
