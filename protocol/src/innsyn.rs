//! Innsyn (right of access) without a trusted party (PROTOCOL.md §10a,
//! issue 16): the pieces every party computes, sans-IO.
//!
//! ```text
//!  citizen's device                portal (member)                 register / holder
//!  ────────────────                ───────────────                 ─────────────────
//!  DeviceSession::new(session) ─▶ InnsynRequest {register,     ─▶ Quotas::admit(portal, subject)
//!   (one-time HPKE key,            device key, session digest,    rows of the person
//!    never leaves the device)      nonce}                          seal_reply(request, rows)
//!  open_reply(device secret) ◀──── passes the sealed reply on ◀── SealedReply
//! ```
//!
//! - The reply is sealed to the device's one-time key, never to a key the
//!   portal holds, and bound to the whole request (`InnsynRequest::digest`:
//!   register, device key, login session, nonce), so a reply made for one
//!   session or one register opens for no other.
//! - The reply's plaintext is padded to a size bucket (the next power of two,
//!   at least [`MIN_REPLY_BYTES`]): a portal passing it on learns only the
//!   bucket, and "no rows" looks like any small record.
//! - [`Quotas`] bounds requests per portal and per subject (the person, as
//!   the register or holder knows them: fnr at an fnr register, `Ψ_R` at a
//!   pseudonymous holder) in a sliding day. The subject key never leaves the
//!   node that keeps the quotas.
//!
//! How the subject is found is the node's business: an fnr register looks
//! the fnr up; a pseudonymous holder obtains `Ψ_R(x)` from a one-person list
//! the portal runs through the domain's key holders with a split blinding
//! (§6a), and never sees the fnr.

use std::collections::{BTreeMap, VecDeque};

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{
    bounded::BoundedBytes,
    hash::{frame, framed_sha3},
    seal::{
        decode_rows, encode_rows, ContentKey, HpkePublicKey, HpkeSecretKey, SealError, WrappedKey,
        MAX_SEALED_ITEM, TAG_LEN,
    },
    types::{Digest, Name, UnixTime},
};

/// Domain-separation tags of this module.
pub mod tags {
    /// The request digest.
    pub const REQUEST: &[u8] = b"KOBLING-INNSYN-REQUEST";
    /// The HPKE `info` of the reply key.
    pub const REPLY_KEY: &[u8] = b"KOBLING-INNSYN-REPLY-KEY";
    /// The AEAD associated data of the reply.
    pub const REPLY: &[u8] = b"KOBLING-INNSYN-REPLY";
}

/// The smallest reply plaintext: every reply up to this size looks alike.
pub const MIN_REPLY_BYTES: usize = 4096;

/// What the citizen's device sends the portal to pass on: the register
/// asked, the device's one-time public key, a digest of the login session
/// and a fresh nonce. It holds no identifier; the portal adds the fnr (or
/// runs the one-person list) itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InnsynRequest {
    /// The register (or holder) asked.
    pub register: Name,
    /// The device's one-time key for this request.
    pub device_key: HpkePublicKey,
    /// `SHA3-256` of the portal's login session id, as the device saw it.
    pub session: Digest,
    /// 16 fresh random bytes from the device.
    pub nonce: [u8; 16],
}

impl InnsynRequest {
    /// `framed_sha3("KOBLING-INNSYN-REQUEST", [register, device key,
    /// session, nonce])`: what the reply is bound to.
    pub fn digest(&self) -> Digest {
        Digest(framed_sha3(
            tags::REQUEST,
            &[
                self.register.as_bytes(),
                self.device_key.as_bytes(),
                &self.session.0,
                &self.nonce,
            ],
        ))
    }
}

/// The device's side: a one-time key bound to one login session.
pub struct DeviceSession {
    secret: HpkeSecretKey,
    /// The request the device hands the portal.
    pub request: InnsynRequest,
}

impl DeviceSession {
    /// A fresh key and request for `register` in the login session whose
    /// id digest is `session`.
    pub fn new<R: CryptoRng + ?Sized>(register: Name, session: Digest, rng: &mut R) -> Self {
        let secret = HpkeSecretKey::generate(rng);
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let request = InnsynRequest {
            register,
            device_key: secret.public_key(),
            session,
            nonce,
        };
        Self { secret, request }
    }

    /// Opens the register's reply to this session's request.
    ///
    /// # Errors
    ///
    /// As [`open_reply`].
    pub fn open(&self, reply: &SealedReply) -> Result<Vec<Vec<String>>, InnsynError> {
        open_reply(&self.secret, &self.request, reply)
    }
}

/// A reply sealed to the device: a fresh key wrapped to the device key,
/// and the padded rows under it.
///
/// Wire format (postcard): `WrappedKey` (§8), then `varint(len) ‖
/// ciphertext ‖ tag`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedReply {
    /// The reply key, HPKE-sealed to the device key under
    /// `info = frame(["KOBLING-INNSYN-REPLY-KEY", request digest])`.
    pub key: WrappedKey,
    /// XChaCha20-Poly1305 of the padded plaintext, nonce zero (the key is
    /// drawn for this one reply), `aad = frame(["KOBLING-INNSYN-REPLY",
    /// request digest])`.
    pub ciphertext: BoundedBytes<MAX_SEALED_ITEM>,
}

/// An innsyn step failed.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum InnsynError {
    /// Sealing or opening failed (another device, session or register, or
    /// altered bytes), or the rows are too large.
    #[error("innsyn reply: {0}")]
    Seal(#[from] SealError),
    /// The opened plaintext is not a padded reply.
    #[error("innsyn reply: malformed padding")]
    Padding,
    /// A quota is used up.
    #[error("innsyn quota exceeded: {0}")]
    Quota(QuotaExceeded),
}

/// Which quota was used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaExceeded {
    /// The portal's requests in the window.
    Portal,
    /// Requests about one subject in the window.
    Subject,
}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Portal => "too many requests from this portal",
            Self::Subject => "too many requests about this person",
        })
    }
}

fn reply_info(request: &InnsynRequest) -> (Vec<u8>, Vec<u8>) {
    let d = request.digest();
    (frame(&[tags::REPLY_KEY, &d.0]), frame(&[tags::REPLY, &d.0]))
}

/// The padded plaintext: `le32(len) ‖ encode_rows(rows) ‖ zeros`, to the
/// next power of two of at least [`MIN_REPLY_BYTES`].
fn pad(rows: &[Vec<String>]) -> Result<Vec<u8>, SealError> {
    let body = encode_rows(rows)?;
    let len = u32::try_from(body.len()).map_err(|_| SealError::TooLarge {
        len: body.len(),
        max: MAX_SEALED_ITEM - TAG_LEN,
    })?;
    let bucket = (body.len() + 4).next_power_of_two().max(MIN_REPLY_BYTES);
    if bucket > MAX_SEALED_ITEM - TAG_LEN {
        return Err(SealError::TooLarge {
            len: bucket,
            max: MAX_SEALED_ITEM - TAG_LEN,
        });
    }
    let mut out = Vec::with_capacity(bucket);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    out.resize(bucket, 0);
    Ok(out)
}

fn unpad(plain: &[u8]) -> Result<Vec<Vec<String>>, InnsynError> {
    if plain.len() < MIN_REPLY_BYTES || !plain.len().is_power_of_two() {
        return Err(InnsynError::Padding);
    }
    let (len, rest) = plain.split_at(4);
    let len = u32::from_le_bytes(len.try_into().map_err(|_| InnsynError::Padding)?) as usize;
    if len > rest.len() || rest[len..].iter().any(|&b| b != 0) {
        return Err(InnsynError::Padding);
    }
    Ok(decode_rows(&rest[..len])?)
}

/// The register's (or holder's) side: seals the person's rows (possibly
/// none) to the device key named in `request`.
///
/// # Errors
///
/// [`InnsynError::Seal`] if the rows exceed the sealing limits.
pub fn seal_reply<R: CryptoRng + ?Sized>(
    request: &InnsynRequest,
    rows: &[Vec<String>],
    rng: &mut R,
) -> Result<SealedReply, InnsynError> {
    let (info, aad) = reply_info(request);
    let plain = zeroize::Zeroizing::new(pad(rows)?);
    let key = ContentKey::generate(rng);
    let ct = key.seal_once(&aad, &plain)?;
    let ciphertext = BoundedBytes::new(ct).map_err(|_| SealError::TooLarge {
        len: plain.len() + TAG_LEN,
        max: MAX_SEALED_ITEM,
    })?;
    Ok(SealedReply {
        key: key.wrap_for(&request.device_key, &info, rng),
        ciphertext,
    })
}

/// Opens a reply with the device's secret key.
///
/// # Errors
///
/// [`InnsynError::Seal`] (`AuthenticationFailed`) for another device key,
/// session, nonce or register, or altered bytes; [`InnsynError::Padding`]
/// for a plaintext that is not a padded reply.
pub fn open_reply(
    device: &HpkeSecretKey,
    request: &InnsynRequest,
    reply: &SealedReply,
) -> Result<Vec<Vec<String>>, InnsynError> {
    let (info, aad) = reply_info(request);
    let key = reply.key.unwrap_for(device, &info)?;
    let plain = zeroize::Zeroizing::new(key.open_once(&aad, &reply.ciphertext)?);
    unpad(&plain)
}

/// Request limits in a sliding window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaLimits {
    /// Window length in seconds.
    pub window_secs: u64,
    /// Requests one portal may make in a window.
    pub per_portal: u32,
    /// Requests about one subject in a window, from all portals together.
    pub per_subject: u32,
}

impl Default for QuotaLimits {
    /// A day; 10,000 requests per portal; 3 per person.
    fn default() -> Self {
        Self {
            window_secs: 86_400,
            per_portal: 10_000,
            per_subject: 3,
        }
    }
}

/// Requests admitted in the current window, per portal and per subject.
/// The caller supplies the time (sans-IO) and persists the book if it
/// must survive a restart. Requests leave the book in the order they came
/// as the window passes them, so it holds at most one window's requests
/// and each admission costs `O(log n)`.
#[derive(Clone, Debug, Default)]
pub struct Quotas {
    limits: QuotaLimits,
    log: VecDeque<(UnixTime, Name, [u8; 32])>,
    portals: BTreeMap<Name, u32>,
    subjects: BTreeMap<[u8; 32], u32>,
}

impl Quotas {
    /// An empty book with `limits`.
    pub fn new(limits: QuotaLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Admits one request from `portal` about `subject` at `now` (unix
    /// seconds), or refuses it without counting it. Times are expected in
    /// order; an earlier `now` than a previous one is treated as that one.
    ///
    /// # Errors
    ///
    /// [`InnsynError::Quota`] naming the quota that is used up.
    pub fn admit(
        &mut self,
        portal: &Name,
        subject: &[u8; 32],
        now: UnixTime,
    ) -> Result<(), InnsynError> {
        let now = self.log.back().map_or(now, |(t, _, _)| now.max(*t));
        self.expire(now);
        if self.portals.get(portal).copied().unwrap_or(0) >= self.limits.per_portal {
            return Err(InnsynError::Quota(QuotaExceeded::Portal));
        }
        if self.subjects.get(subject).copied().unwrap_or(0) >= self.limits.per_subject {
            return Err(InnsynError::Quota(QuotaExceeded::Subject));
        }
        *self.portals.entry(portal.clone()).or_default() += 1;
        *self.subjects.entry(*subject).or_default() += 1;
        self.log.push_back((now, portal.clone(), *subject));
        Ok(())
    }

    /// Requests in the current window (for the node's metrics; never the
    /// subjects).
    pub fn in_window(&self) -> usize {
        self.log.len()
    }

    fn expire(&mut self, now: UnixTime) {
        let start = now.minus(self.limits.window_secs);
        while self.log.front().is_some_and(|(t, _, _)| *t <= start) {
            let Some((_, portal, subject)) = self.log.pop_front() else {
                break;
            };
            decrement(&mut self.portals, &portal);
            decrement(&mut self.subjects, &subject);
        }
    }
}

fn decrement<K: Ord>(counts: &mut BTreeMap<K, u32>, key: &K) {
    if let Some(c) = counts.get_mut(key) {
        *c -= 1;
        if *c == 0 {
            counts.remove(key);
        }
    }
}

pub mod blinded;
pub mod wire;

#[cfg(test)]
mod tests;
