//! Innsyn at an fnr register on the wire (PROTOCOL.md §10a, issue 16
//! item 2): who may ask a register what, and the pure decisions the
//! register takes.
//!
//! ```text
//!  operator of R ──Innsyn(Admit { portal })──▶ R      (two distinct operators: the portal is served)
//!  portal        ──Innsyn(Lookup { request, fnr })──▶ R
//!                  decide_lookup (a manifest portal, admitted by two operators of R, R asked)
//!                  ─▶ Quotas::admit (per portal, per person) ─▶ the person's rows
//!                  ◀──InnsynReply(SealedReply: sealed to the device's one-time key)──
//! ```
//!
//! Both are signed requests ([`SignedInnsyn`]) like an operator's domain
//! request: they name the node, the manifest's digest and a fresh nonce,
//! carry a time, and the node refuses one that is stale, for another node
//! or manifest, or seen before. The fnr travels only inside the QUIC/TLS
//! connection to the register it identifies a person at, and never
//! appears in a `Debug` form ([`Subject`]).

use serde::{Deserialize, Serialize};

use super::InnsynRequest;
use crate::{
    bounded::BoundedString,
    hash::framed_sha3,
    manifest::{Ed25519Key, Manifest},
    messages::{check_signature, sign_digest, RequestError, RequestHead, NONCE_LEN},
    refusal::{Refusal, RefusalCode},
    transcript::{encode_value, Sig},
    types::{Digest, Name, UnixTime},
};

/// Tag of an innsyn request's digest.
pub const CALL_TAG: &[u8] = b"KOBLING-INNSYN-CALL";

/// The longest identifier field a portal sends (an fnr is 11 digits; room
/// for the spacing `Identifier::parse` accepts).
pub const MAX_SUBJECT: usize = 64;

/// The citizen's identifier as the portal sends it to an fnr register.
/// Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject(pub BoundedString<MAX_SUBJECT>);

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subject(..)")
    }
}

/// What an innsyn request asks of a register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InnsynAction {
    /// An operator of the register admits `portal` (one of the two
    /// operators the two-person rule needs).
    Admit {
        /// The portal, as the manifest's `[[portals]]` names it.
        portal: Name,
    },
    /// A portal asks for one person's rows, sealed to the device key in
    /// `request`.
    Lookup {
        /// The device's request (register, one-time key, session, nonce).
        request: InnsynRequest,
        /// The person's identifier.
        subject: Subject,
    },
    /// A portal asks a pseudonymous holder for one person's rows: the
    /// holder runs the portal's one-person list through the domain's key
    /// holders ([`super::blinded`]) and seals the rows it finds under
    /// `Ψ_R(x)` to the device key in `request`. The holder answers
    /// `not-ready`; the portal collects the reply with `Collect`.
    Blinded {
        /// The device's request (`register`: the domain asked).
        request: InnsynRequest,
        /// The one-person list.
        person: Box<super::blinded::BlindedPerson>,
    },
    /// A portal collects the reply to its earlier `Blinded` request with
    /// the same device request (`not-ready` until the key holders are
    /// done).
    Collect {
        /// The device's request, as sent with `Blinded`.
        request: InnsynRequest,
    },
}

/// An innsyn request to one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InnsynCall {
    /// What is asked.
    pub action: InnsynAction,
    /// Seconds since the Unix epoch on the client's clock.
    pub time: UnixTime,
    /// The node the request is for.
    pub node: Name,
    /// The digest of the manifest the client holds.
    pub manifest: Digest,
    /// Random, fresh for every request.
    pub nonce: [u8; NONCE_LEN],
}

/// A signed [`InnsynCall`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedInnsyn {
    /// The request.
    pub call: InnsynCall,
    /// The signer's Ed25519 key (an operator's or a portal's).
    pub key: Ed25519Key,
    /// `Ed25519(key, framed_sha3("KOBLING-INNSYN-CALL", [postcard(call)]))`.
    pub signature: Sig,
}

impl InnsynCall {
    /// The digest the signature covers; also the request's identity in a
    /// node's replay cache.
    pub fn digest(&self) -> Digest {
        Digest(framed_sha3(CALL_TAG, &[&encode_value(self)]))
    }

    /// Signs the request.
    pub fn sign(self, key: &ed25519_dalek::SigningKey) -> SignedInnsyn {
        let (key, signature) = sign_digest(key, &self.digest());
        SignedInnsyn {
            key,
            call: self,
            signature,
        }
    }
}

impl SignedInnsyn {
    /// Checks that the request is fresh at `now`, for node `me` under the
    /// manifest with digest `manifest`, and signed (the caller checks who
    /// may ask, and its replay cache).
    ///
    /// # Errors
    ///
    /// A [`RequestError`].
    pub fn check(&self, now: UnixTime, me: &Name, manifest: &Digest) -> Result<(), RequestError> {
        let c = &self.call;
        RequestHead(c.time, &c.node, &c.manifest).check(now, me, manifest)?;
        check_signature(&self.key, &c.digest(), &self.signature)
    }
}

/// An operator's admission at register `me`: the operator's name, if
/// `key` is an operator of `me` and `portal` a manifest portal.
///
/// # Errors
///
/// [`RefusalCode::NotAnOperator`] for a key of no operator of `me`;
/// [`RefusalCode::NotAllowed`] for a portal the manifest does not list.
pub fn decide_admit(
    manifest: &Manifest,
    me: &Name,
    key: &Ed25519Key,
    portal: &Name,
) -> Result<String, Refusal> {
    let operator = manifest
        .member(me)
        .and_then(|m| m.operators.iter().find(|o| &o.key == key))
        .ok_or_else(|| {
            Refusal::new(
                RefusalCode::NotAnOperator,
                format!("only an operator of {me} admits an innsyn portal to it"),
            )
        })?;
    if manifest.portal(portal).is_none() {
        return Err(Refusal::new(
            RefusalCode::NotAllowed,
            format!("the manifest lists no innsyn portal {portal}"),
        ));
    }
    Ok(operator.name.clone())
}

/// Whether a second admission by `key` adds anything: the same operator
/// admitting twice is refused (the two-person rule needs two people).
///
/// # Errors
///
/// [`RefusalCode::NotAllowed`] when `key` already admitted `portal`.
pub fn decide_second_admission(
    admitted_by: &[Ed25519Key],
    key: &Ed25519Key,
    portal: &Name,
) -> Result<(), Refusal> {
    if admitted_by.contains(key) {
        return Err(Refusal::new(
            RefusalCode::NotAllowed,
            format!(
                "this operator already admitted portal {portal}; a second, different operator must admit it"
            ),
        ));
    }
    Ok(())
}

/// A lookup at register `me`: the asking portal's name, if `key` is a
/// manifest portal that two distinct operators of `me` admitted
/// (`admitted_by`, the operators' keys that admitted it), and the device's
/// request names `me`.
///
/// # Errors
///
/// [`RefusalCode::NotAllowed`] naming the reason: a key of no portal, a
/// portal not admitted, or admitted by one operator only;
/// [`RefusalCode::WrongRegister`] for a device request made for another
/// register (its reply would open for none).
pub fn decide_lookup(
    manifest: &Manifest,
    me: &Name,
    key: &Ed25519Key,
    request: &InnsynRequest,
    admitted_by: &[Ed25519Key],
) -> Result<Name, Refusal> {
    let portal = admitted_portal(manifest, me, key, admitted_by)?;
    if request.register != *me {
        return Err(Refusal::new(
            RefusalCode::WrongRegister,
            format!("the device's request is for {}, not {me}", request.register),
        ));
    }
    Ok(portal)
}

/// A one-person list at holder `me` ([`InnsynAction::Blinded`]): the
/// asking portal's name, if `key` is a manifest portal that two distinct
/// operators of `me` admitted, the list's domain is one the manifest
/// declares with `me` as its holder, and the device's request names that
/// domain.
///
/// # Errors
///
/// As [`decide_lookup`]; [`RefusalCode::WrongRegister`] also for a domain
/// `me` does not hold (or no domain at all).
pub fn decide_blinded(
    manifest: &Manifest,
    me: &Name,
    key: &Ed25519Key,
    request: &InnsynRequest,
    domain: &Name,
    admitted_by: &[Ed25519Key],
) -> Result<Name, Refusal> {
    let portal = admitted_portal(manifest, me, key, admitted_by)?;
    match manifest.domain(domain) {
        Some(spec) if spec.holder == *me => {}
        Some(spec) => {
            return Err(Refusal::new(
                RefusalCode::WrongRegister,
                format!("domain {domain} is held by {}, not {me}", spec.holder),
            ))
        }
        None => {
            return Err(Refusal::new(
                RefusalCode::WrongRegister,
                format!("the manifest declares no register domain {domain}"),
            ))
        }
    }
    if request.register != *domain {
        return Err(Refusal::new(
            RefusalCode::WrongRegister,
            format!(
                "the device's request is for {}, not domain {domain}",
                request.register
            ),
        ));
    }
    Ok(portal)
}

/// The portal of `key`, if the manifest lists it and two distinct
/// operators of `me` admitted it.
fn admitted_portal(
    manifest: &Manifest,
    me: &Name,
    key: &Ed25519Key,
    admitted_by: &[Ed25519Key],
) -> Result<Name, Refusal> {
    let portal = manifest.portal_by_key(key).ok_or_else(|| {
        Refusal::new(
            RefusalCode::NotAllowed,
            "this key is no innsyn portal of the manifest",
        )
    })?;
    let operators = manifest.member(me).map(|m| &m.operators[..]).unwrap_or(&[]);
    let admitted = operators
        .iter()
        .filter(|o| admitted_by.contains(&o.key))
        .count();
    match admitted {
        0 => Err(Refusal::new(
            RefusalCode::NotAllowed,
            format!(
                "portal {} is not admitted at {me}: two of its operators must admit it",
                portal.name
            ),
        )),
        1 => Err(Refusal::new(
            RefusalCode::NotAllowed,
            format!(
                "portal {} is admitted by one operator of {me} only: a second, different operator must admit it",
                portal.name
            ),
        )),
        _ => Ok(portal.name.clone()),
    }
}

#[cfg(test)]
mod tests;
