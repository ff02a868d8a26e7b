//! Sealing to the researcher and to the linker (PROTOCOL.md §3, §6 steps 2
//! and 4, §7).
//!
//! # Design
//!
//! ```text
//!  register R_j                                   researcher
//!  ───────────                                    ──────────
//!  ContentKey::generate ─┬─ wrap (HPKE) ───────▶ WrappedKey::unwrap ─▶ ContentKey
//!                        │
//!  encode_rows(person) ──┴─ seal_item(t) ──────▶ open_item(t) ─▶ decode_rows
//!    (postcard, zero-padded      (XChaCha20-Poly1305,
//!     to 256-byte blocks)         nonce from position t)
//!
//!  Share::random (β_j) ──── seal_blinding (HPKE) ─▶ linker: open_blinding ─▶ β_j
//! ```
//!
//! - **Key encapsulation**: HPKE (RFC 9180) base mode with
//!   DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and ChaCha20-Poly1305
//!   (suite ids 0x0020, 0x0001, 0x0003), single-shot, empty AAD. The HPKE
//!   `info` binds the purpose, the project and the list:
//!   `frame(["KOBLING-V1-CONTENT-KEY", project, list])` for content keys,
//!   `frame(["KOBLING-V1-BLINDING", project, list])` for list blindings
//!   (see [`crate::hash::frame`]), so a wrapped key opens only for the list
//!   it was made for, and a content key can never be opened as a blinding.
//! - **Items**: XChaCha20-Poly1305 under the list's [`ContentKey`], with
//!   ```text
//!   nonce = le64(position) ‖ 0x00 × 16                                  (24 bytes)
//!   aad   = frame(["KOBLING-V1-ITEM", project, list, le64(position)])
//!   item  = ciphertext ‖ tag                                            (plaintext + 16 bytes)
//!   ```
//!   The nonce never repeats under a key: a content key is drawn fresh
//!   (256 random bits) for exactly one list, and positions within a list are
//!   distinct. **A content key must never seal two lists**, nor be reused
//!   on a re-run; that is why it has no `Clone` and no constructor from
//!   bytes.
//! - **Item plaintext**: a person's rows, postcard-encoded as
//!   `varint(#rows) ‖ for each row: varint(#cells) ‖ for each cell:
//!   varint(len) ‖ UTF-8 bytes`, then zero-padded to the next multiple of
//!   256 bytes (at least one block), so a ciphertext's length reveals only
//!   the number of 256-byte blocks. Decoding is strict: the padding must be
//!   shorter than a block and all zero, and the encoding must be the
//!   canonical (shortest-varint) one, so every row set has exactly one
//!   plaintext.
//!
//! Failures to open are opaque: [`SealError::AuthenticationFailed`] says
//! nothing about which input was wrong.

use core::{fmt, str::FromStr};

use chacha20poly1305::{
    aead::{Aead as _, KeyInit, Payload},
    XChaCha20Poly1305, XNonce,
};
use curve25519_dalek::montgomery::MontgomeryPoint;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{
    bounded::{BoundedBytes, BoundedString, BoundedVec},
    hash::frame,
    share::Share,
    types::{ListName, Position, ProjectId},
};

/// The HPKE KEM: DHKEM(X25519, HKDF-SHA256), kem_id 0x0020.
pub type HpkeKem = hpke::kem::X25519HkdfSha256;
/// The HPKE KDF: HKDF-SHA256, kdf_id 0x0001.
pub type HpkeKdf = hpke::kdf::HkdfSha256;
/// The HPKE AEAD: ChaCha20-Poly1305, aead_id 0x0003.
pub type HpkeAead = hpke::aead::ChaCha20Poly1305;

type HpkePrivate = <HpkeKem as hpke::Kem>::PrivateKey;
type HpkePublic = <HpkeKem as hpke::Kem>::PublicKey;
type HpkeEnc = <HpkeKem as hpke::Kem>::EncappedKey;

/// Domain-separation tags of this module.
pub mod tags {
    /// HPKE `info` of a wrapped content key.
    pub const CONTENT_KEY: &[u8] = b"KOBLING-V1-CONTENT-KEY";
    /// First field of a sealed item's AAD.
    pub const ITEM: &[u8] = b"KOBLING-V1-ITEM";
    /// HPKE `info` of a sealed list blinding.
    pub const BLINDING: &[u8] = b"KOBLING-V1-BLINDING";
}

/// The largest sealed item (ciphertext and tag): 16 MiB.
pub const MAX_SEALED_ITEM: usize = 16 * 1024 * 1024;
/// The Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// The largest item plaintext.
pub const MAX_ITEM_PLAINTEXT: usize = MAX_SEALED_ITEM - TAG_LEN;
/// At most this many rows per person.
pub const MAX_ROWS_PER_PERSON: usize = 65_536;
/// At most this many cells per row.
pub const MAX_COLUMNS: usize = 512;
/// At most this many bytes per cell.
pub const MAX_CELL_BYTES: usize = 65_536;
/// Item plaintexts are padded to a multiple of this many bytes.
pub const PADDING_BLOCK: usize = 256;

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// A ciphertext did not open: wrong key, wrong project, list or
    /// position, or tampered bytes. Deliberately says no more.
    #[error("authentication failed")]
    AuthenticationFailed,
    /// A ciphertext opened but did not hold a 32-byte key or a valid share.
    #[error("opened key material is malformed")]
    InvalidKeyMaterial,
    /// Not a usable X25519 public key (a point of small order, or bad hex).
    #[error("not a usable X25519 public key")]
    InvalidPublicKey,
    /// An item plaintext is larger than [`MAX_ITEM_PLAINTEXT`].
    #[error("item plaintext of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Rows exceed one of the per-person limits.
    #[error("too many {what}: {len} exceeds the limit of {max}")]
    Limit {
        /// What was counted.
        what: &'static str,
        /// The count.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An item plaintext is not a valid row encoding.
    #[error("malformed item rows")]
    Decode(#[source] postcard::Error),
    /// An item plaintext's length or padding is wrong.
    #[error("malformed item padding")]
    Padding,
    /// An item plaintext uses a non-canonical encoding.
    #[error("item rows are not canonically encoded")]
    NonCanonical,
}

// ---------------------------------------------------------------------------
// Keys

/// An X25519 HPKE secret key (the researcher's or the linker's).
///
/// No `Clone`; zeroized on drop; `Debug` prints nothing secret.
pub struct HpkeSecretKey {
    sk: HpkePrivate,
    pk: HpkePublicKey,
}

impl HpkeSecretKey {
    /// A fresh key: RFC 9180 `DeriveKeyPair` of 32 bytes from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let (sk, pk) = HpkeKem::gen_keypair_with_rng(&mut &mut *rng);
        Self::from_parts(sk, &pk)
    }

    /// RFC 9180 §7.1.3 `DeriveKeyPair(ikm)` (for known-answer tests and
    /// deterministic simulations; `ikm` must hold 256 bits of entropy).
    pub fn derive(ikm: &[u8]) -> Self {
        let (sk, pk) = HpkeKem::derive_keypair(ikm);
        Self::from_parts(sk, &pk)
    }

    /// A key from its 32-byte X25519 scalar (clamped on use, as RFC 7748
    /// does). The argument is zeroized.
    pub fn from_bytes(mut bytes: [u8; 32]) -> Self {
        let sk = HpkePrivate::from_bytes(&bytes);
        bytes.zeroize();
        // The only error is a length other than 32.
        let sk = sk.expect("an X25519 private key is 32 bytes");
        let pk = HpkeKem::sk_to_pk(&sk);
        Self::from_parts(sk, &pk)
    }

    /// The clamped 32-byte scalar, for the keystore;
    /// `from_bytes(to_secret_bytes())` is the same key.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        self.sk.write_exact(out.as_mut_slice());
        out
    }

    /// The public key.
    pub fn public_key(&self) -> HpkePublicKey {
        self.pk
    }

    fn from_parts(sk: HpkePrivate, pk: &HpkePublic) -> Self {
        let mut bytes = [0u8; 32];
        pk.write_exact(&mut bytes);
        // k·B for a clamped k is never of small order: no check needed.
        Self {
            sk,
            pk: HpkePublicKey(bytes),
        }
    }
}

impl fmt::Debug for HpkeSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HpkeSecretKey(<secret>)")
    }
}

// The inner x25519-dalek `StaticSecret` zeroizes itself on drop.
impl ZeroizeOnDrop for HpkeSecretKey {}

/// An X25519 HPKE public key: 32 bytes, checked not to be of small order
/// (a small-order key would make every encapsulation fail).
///
/// Serialized as its 32 bytes; the check runs again when deserialized.
/// `Display` and `FromStr` use lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HpkePublicKey([u8; 32]);

impl HpkePublicKey {
    /// Checks and wraps a public key.
    ///
    /// # Errors
    ///
    /// [`SealError::InvalidPublicKey`] for a point of small order (on the
    /// curve or its twist, in any encoding).
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, SealError> {
        // Every clamped scalar is 8·j with 2^251 ≤ j < 2^252, so X25519 with
        // it gives u = 0 exactly when the point's order divides 8 (the
        // curve's cofactor; the twist's is 4) — the case in which RFC 9180
        // §7.1.4 makes DH fail.
        let probe = MontgomeryPoint(bytes).mul_clamped([0x5a; 32]);
        if probe.to_bytes() == [0u8; 32] {
            return Err(SealError::InvalidPublicKey);
        }
        Ok(Self(bytes))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    fn to_hpke(self) -> HpkePublic {
        // The only error is a length other than 32.
        HpkePublic::from_bytes(&self.0).expect("an X25519 public key is 32 bytes")
    }
}

impl fmt::Debug for HpkePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HpkePublicKey({})", self.to_hex())
    }
}

impl fmt::Display for HpkePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for HpkePublicKey {
    type Err = SealError;

    fn from_str(s: &str) -> Result<Self, SealError> {
        Self::from_bytes(from_hex32(s).ok_or(SealError::InvalidPublicKey)?)
    }
}

impl Serialize for HpkePublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for HpkePublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = <[u8; 32]>::deserialize(d)?;
        Self::from_bytes(bytes).map_err(serde::de::Error::custom)
    }
}

/// The random 32-byte key sealing one list's items.
///
/// No `Clone`, no constructor from bytes (a content key must never seal a
/// second list); zeroized on drop; `Debug` prints nothing secret.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ContentKey([u8; 32]);

impl ContentKey {
    /// A fresh key for one list.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        // Filled in place: no copy of the key is left behind.
        let mut key = Self([0u8; 32]);
        rng.fill_bytes(&mut key.0);
        key
    }

    /// Encapsulates the key to `to` (HPKE base mode, single shot, empty
    /// AAD, `info = frame(["KOBLING-V1-CONTENT-KEY", project, list])`).
    pub fn wrap<R: CryptoRng + ?Sized>(
        &self,
        to: &HpkePublicKey,
        project: &ProjectId,
        list: &ListName,
        rng: &mut R,
    ) -> WrappedKey {
        hpke_seal(to, &info(tags::CONTENT_KEY, project, list), &self.0, rng)
    }

    /// Seals the item at `position` of `list`.
    ///
    /// # Errors
    ///
    /// [`SealError::TooLarge`] if `plaintext` is longer than
    /// [`MAX_ITEM_PLAINTEXT`].
    pub fn seal_item(
        &self,
        project: &ProjectId,
        list: &ListName,
        position: Position,
        plaintext: &[u8],
    ) -> Result<SealedItem, SealError> {
        let too_large = SealError::TooLarge {
            len: plaintext.len(),
            max: MAX_ITEM_PLAINTEXT,
        };
        if plaintext.len() > MAX_ITEM_PLAINTEXT {
            return Err(too_large);
        }
        let aad = item_aad(project, list, position);
        let ct = self
            .cipher()
            .encrypt(
                &item_nonce(position),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| too_large.clone())?;
        Ok(SealedItem(BoundedBytes::new(ct).map_err(|_| too_large)?))
    }

    /// Opens the item at `position` of `list`.
    ///
    /// # Errors
    ///
    /// [`SealError::AuthenticationFailed`] if the item was not sealed under
    /// this key for this project, list and position, or was altered.
    pub fn open_item(
        &self,
        project: &ProjectId,
        list: &ListName,
        position: Position,
        item: &SealedItem,
    ) -> Result<Vec<u8>, SealError> {
        let aad = item_aad(project, list, position);
        self.cipher()
            .decrypt(
                &item_nonce(position),
                Payload {
                    msg: item.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::AuthenticationFailed)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }

    /// [`wrap`](Self::wrap) under another purpose's `info` (for this
    /// crate's other sealed replies, e.g. [`crate::innsyn`]).
    pub(crate) fn wrap_for<R: CryptoRng + ?Sized>(
        &self,
        to: &HpkePublicKey,
        info: &[u8],
        rng: &mut R,
    ) -> WrappedKey {
        hpke_seal(to, info, &self.0, rng)
    }

    /// Seals one message under this key with a caller-bound `aad` and the
    /// all-zero nonce: only for a key drawn for exactly that one message.
    pub(crate) fn seal_once(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        self.cipher()
            .encrypt(
                &item_nonce(Position(0)),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| SealError::TooLarge {
                len: plaintext.len(),
                max: MAX_ITEM_PLAINTEXT,
            })
    }

    /// Opens what [`seal_once`](Self::seal_once) sealed.
    pub(crate) fn open_once(&self, aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, SealError> {
        self.cipher()
            .decrypt(
                &item_nonce(Position(0)),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| SealError::AuthenticationFailed)
    }
}

impl fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContentKey(<secret>)")
    }
}

/// An HPKE-encapsulated 32-byte secret (a content key or a list blinding).
///
/// Wire format (postcard): `enc` as 32 raw bytes, then `ciphertext` as
/// `varint(48) ‖ 32-byte encrypted secret ‖ 16-byte tag`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WrappedKey {
    /// The HPKE encapsulated key (the ephemeral X25519 public key).
    pub enc: [u8; 32],
    /// The HPKE ciphertext of the secret (48 bytes when well-formed).
    pub ciphertext: BoundedBytes<64>,
}

impl WrappedKey {
    /// Opens a wrapped content key of `list`.
    ///
    /// # Errors
    ///
    /// [`SealError::AuthenticationFailed`] for another recipient, project,
    /// list or purpose, or altered bytes; [`SealError::InvalidKeyMaterial`]
    /// if it opens to something other than 32 bytes.
    pub fn unwrap(
        &self,
        sk: &HpkeSecretKey,
        project: &ProjectId,
        list: &ListName,
    ) -> Result<ContentKey, SealError> {
        let key = hpke_open(sk, &info(tags::CONTENT_KEY, project, list), self)?;
        Ok(ContentKey(*key))
    }

    /// Opens a key wrapped by [`ContentKey::wrap_for`] under `info`.
    pub(crate) fn unwrap_for(
        &self,
        sk: &HpkeSecretKey,
        info: &[u8],
    ) -> Result<ContentKey, SealError> {
        let key = hpke_open(sk, info, self)?;
        Ok(ContentKey(*key))
    }
}

/// A sealed item: XChaCha20-Poly1305 ciphertext and tag (the tag last).
/// Its bytes are the item's Merkle leaf.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SealedItem(pub BoundedBytes<MAX_SEALED_ITEM>);

impl SealedItem {
    /// The ciphertext bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Seals a list blinding `β` to the linker (PROTOCOL.md §6 step 2): HPKE
/// base mode, `info = frame(["KOBLING-V1-BLINDING", project, list])`,
/// plaintext the 32-byte canonical scalar.
pub fn seal_blinding<R: CryptoRng + ?Sized>(
    to: &HpkePublicKey,
    project: &ProjectId,
    list: &ListName,
    blinding: &Share,
    rng: &mut R,
) -> WrappedKey {
    let bytes = blinding.to_secret_bytes();
    hpke_seal(to, &info(tags::BLINDING, project, list), &bytes, rng)
}

/// Opens a list blinding sealed by [`seal_blinding`].
///
/// # Errors
///
/// [`SealError::AuthenticationFailed`] for another recipient, project, list
/// or purpose, or altered bytes; [`SealError::InvalidKeyMaterial`] if the
/// plaintext is not a canonical non-zero scalar.
pub fn open_blinding(
    sk: &HpkeSecretKey,
    project: &ProjectId,
    list: &ListName,
    wrapped: &WrappedKey,
) -> Result<Share, SealError> {
    let bytes = hpke_open(sk, &info(tags::BLINDING, project, list), wrapped)?;
    Share::from_secret_bytes(&bytes).map_err(|_| SealError::InvalidKeyMaterial)
}

/// Which part of a split blinding `β = β₁·β₂` (chain v2, PROTOCOL.md §6a,
/// owners without a share) is sealed: `β₁` to the party that removes the
/// blinding, `β₂` to hop 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlindingPart {
    /// `β₁`: `info = frame(["KOBLING-V2-BLINDING-1", project, list])`.
    First,
    /// `β₂`: `info = frame(["KOBLING-V2-BLINDING-2", project, list])`.
    Second,
}

impl BlindingPart {
    fn tag(self) -> &'static [u8] {
        match self {
            BlindingPart::First => b"KOBLING-V2-BLINDING-1",
            BlindingPart::Second => b"KOBLING-V2-BLINDING-2",
        }
    }
}

/// Seals one part of a split blinding (HPKE base mode as
/// [`seal_blinding`], under the part's own `info`).
pub fn seal_blinding_part<R: CryptoRng + ?Sized>(
    to: &HpkePublicKey,
    project: &ProjectId,
    list: &ListName,
    part: BlindingPart,
    blinding: &Share,
    rng: &mut R,
) -> WrappedKey {
    let bytes = blinding.to_secret_bytes();
    hpke_seal(to, &info(part.tag(), project, list), &bytes, rng)
}

/// Opens one part of a split blinding.
///
/// # Errors
///
/// As [`open_blinding`]; a box of the other part (or of an unsplit
/// blinding) does not open.
pub fn open_blinding_part(
    sk: &HpkeSecretKey,
    project: &ProjectId,
    list: &ListName,
    part: BlindingPart,
    wrapped: &WrappedKey,
) -> Result<Share, SealError> {
    let bytes = hpke_open(sk, &info(part.tag(), project, list), wrapped)?;
    Share::from_secret_bytes(&bytes).map_err(|_| SealError::InvalidKeyMaterial)
}

fn info(tag: &[u8], project: &ProjectId, list: &ListName) -> Vec<u8> {
    frame(&[tag, project.as_bytes(), list.as_bytes()])
}

fn item_aad(project: &ProjectId, list: &ListName, position: Position) -> Vec<u8> {
    frame(&[
        tags::ITEM,
        project.as_bytes(),
        list.as_bytes(),
        &position.to_le_bytes(),
    ])
}

fn item_nonce(position: Position) -> XNonce {
    let mut n = [0u8; 24];
    n[..8].copy_from_slice(&position.to_le_bytes());
    XNonce::from(n)
}

pub(crate) fn hpke_seal<R: CryptoRng + ?Sized>(
    to: &HpkePublicKey,
    info: &[u8],
    secret: &[u8; 32],
    rng: &mut R,
) -> WrappedKey {
    // Encapsulation fails only for a small-order public key, which
    // `HpkePublicKey` excludes, and the first seal of a context cannot hit
    // the message limit.
    let (enc, ct) = hpke::single_shot_seal_with_rng::<HpkeAead, HpkeKdf, HpkeKem>(
        &OpModeS::Base,
        &to.to_hpke(),
        info,
        secret,
        b"",
        &mut &mut *rng,
    )
    .expect("HPKE seal to a checked public key cannot fail");
    let mut enc_bytes = [0u8; 32];
    enc.write_exact(&mut enc_bytes);
    WrappedKey {
        enc: enc_bytes,
        ciphertext: BoundedBytes::new(ct).expect("32 bytes + tag fit in 64"),
    }
}

pub(crate) fn hpke_open(
    sk: &HpkeSecretKey,
    info: &[u8],
    wrapped: &WrappedKey,
) -> Result<Zeroizing<[u8; 32]>, SealError> {
    let enc = HpkeEnc::from_bytes(&wrapped.enc).map_err(|_| SealError::AuthenticationFailed)?;
    let pt = hpke::single_shot_open::<HpkeAead, HpkeKdf, HpkeKem>(
        &OpModeR::Base,
        &sk.sk,
        &enc,
        info,
        &wrapped.ciphertext,
        b"",
    )
    .map(Zeroizing::new)
    .map_err(|_| SealError::AuthenticationFailed)?;
    let mut out = Zeroizing::new([0u8; 32]);
    if pt.len() != out.len() {
        return Err(SealError::InvalidKeyMaterial);
    }
    out.copy_from_slice(&pt);
    Ok(out)
}

// ---------------------------------------------------------------------------
// Item plaintext: a person's rows

/// The encoding side of the rows (borrowed, so encoding copies nothing).
#[derive(Serialize)]
struct PersonRowsRef<'a> {
    rows: &'a [Vec<String>],
}

/// The decoding side: the same layout with every length bounded.
#[derive(Deserialize)]
struct PersonRows {
    rows: BoundedVec<BoundedVec<BoundedString<MAX_CELL_BYTES>, MAX_COLUMNS>, MAX_ROWS_PER_PERSON>,
}

/// Encodes a person's rows as an item plaintext (postcard, zero-padded to
/// a multiple of [`PADDING_BLOCK`] bytes, at least one block).
///
/// # Errors
///
/// [`SealError::Limit`] if there are more than [`MAX_ROWS_PER_PERSON`]
/// rows, a row has more than [`MAX_COLUMNS`] cells or a cell more than
/// [`MAX_CELL_BYTES`] bytes; [`SealError::TooLarge`] if the padded
/// encoding exceeds [`MAX_ITEM_PLAINTEXT`].
pub fn encode_rows(rows: &[Vec<String>]) -> Result<Vec<u8>, SealError> {
    check_limit("rows per person", rows.len(), MAX_ROWS_PER_PERSON)?;
    for row in rows {
        check_limit("columns in a row", row.len(), MAX_COLUMNS)?;
        for cell in row {
            check_limit("bytes in a cell", cell.len(), MAX_CELL_BYTES)?;
        }
    }
    let len = encoded_len(rows);
    let padded = len.div_ceil(PADDING_BLOCK).max(1) * PADDING_BLOCK;
    if padded > MAX_ITEM_PLAINTEXT {
        return Err(SealError::TooLarge {
            len: padded,
            max: MAX_ITEM_PLAINTEXT,
        });
    }
    let mut out = postcard::to_extend(&PersonRowsRef { rows }, Vec::with_capacity(padded))
        .map_err(SealError::Decode)?;
    debug_assert_eq!(out.len(), len);
    out.resize(padded, 0);
    Ok(out)
}

/// Decodes an item plaintext made by [`encode_rows`].
///
/// # Errors
///
/// [`SealError::Padding`] unless the length is a non-zero multiple of
/// [`PADDING_BLOCK`] and the bytes after the encoding are fewer than a
/// block and all zero; [`SealError::Decode`] for a malformed encoding or
/// one over the limits; [`SealError::NonCanonical`] for over-long varints.
pub fn decode_rows(bytes: &[u8]) -> Result<Vec<Vec<String>>, SealError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(PADDING_BLOCK) {
        return Err(SealError::Padding);
    }
    let (decoded, rest) =
        postcard::take_from_bytes::<PersonRows>(bytes).map_err(SealError::Decode)?;
    if rest.len() >= PADDING_BLOCK || rest.iter().any(|&b| b != 0) {
        return Err(SealError::Padding);
    }
    let rows: Vec<Vec<String>> = decoded
        .rows
        .into_inner()
        .into_iter()
        .map(|row| {
            row.into_inner()
                .into_iter()
                .map(|c| c.into_inner())
                .collect()
        })
        .collect();
    // Postcard accepts over-long varints; the canonical encoding is the
    // only one of exactly this length.
    if encoded_len(&rows) != bytes.len() - rest.len() {
        return Err(SealError::NonCanonical);
    }
    Ok(rows)
}

fn check_limit(what: &'static str, len: usize, max: usize) -> Result<(), SealError> {
    if len > max {
        return Err(SealError::Limit { what, len, max });
    }
    Ok(())
}

/// The length of the canonical postcard encoding of `rows`.
fn encoded_len(rows: &[Vec<String>]) -> usize {
    let cells = |row: &Vec<String>| -> usize {
        row.iter()
            .map(|c| varint_len(c.len()) + c.len())
            .sum::<usize>()
    };
    varint_len(rows.len())
        + rows
            .iter()
            .map(|row| varint_len(row.len()) + cells(row))
            .sum::<usize>()
}

/// Bytes in the shortest LEB128 varint of `n`.
fn varint_len(n: usize) -> usize {
    let bits = usize::BITS - n.leading_zeros();
    (bits.max(1) as usize).div_ceil(7)
}

// ---------------------------------------------------------------------------
// Hex for public keys

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn from_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let nibble = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
