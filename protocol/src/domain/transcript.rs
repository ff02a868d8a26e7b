//! A register domain's own transcript (PROTOCOL.md §10): append-only,
//! hash-chained, every entry signed by its author's node key.
//!
//! ```text
//!  0  Created        by the holder: name, holder, key holders, manifest digest
//!  …  KeyCommitment  by each key holder: K_{i,R}       (once each, before any delivery)
//!  …  Delivery       by the holder: delivery id, source, counts, digest of the
//!                    values it stored         (only once every key holder committed)
//!  …  Reshare        by the new member: old → new key holder, binding proof
//!                    log_G K_old = log_{K'} K_new, rows converted
//!  n  Retired        by the holder, with two distinct operators' signatures;
//!                    nothing may follow
//! ```
//!
//! An entry's hash is `framed_sha3(ENTRY, [postcard(entry)])`; the next
//! entry's `prev` holds it (all zero for entry 0). The key holders named at
//! creation, with every re-share replayed, must be the manifest's key
//! holders of today. The author signs
//! `framed_sha3(STATEMENT, [le64(seq), prev, postcard(signer),
//! postcard(body)])`; a retirement's operators sign the same digest.
//! Values of the domain (`Ψ_R`) never appear in it: a delivery is a count
//! and a digest.

use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Serialize};

use super::{
    convert::{verify_step, BindingProof, ConversionContext, StepProofs},
    spec::DomainSpec,
};
use crate::{
    bounded::BoundedVec,
    group::WirePoint,
    hash::framed_sha3,
    manifest::{Ed25519Key, Manifest},
    transcript::{encode_value, verify_signature, Sig},
    types::{Digest, ListName, Name, ProjectId},
};

/// Domain-separation tags of the domain transcript.
pub mod tags {
    /// What an entry's author signs.
    pub const STATEMENT: &[u8] = b"KOBLING-V2-DOMAIN-STATEMENT";
    /// An entry's hash.
    pub const ENTRY: &[u8] = b"KOBLING-V2-DOMAIN-ENTRY";
}

/// The most entries a domain transcript file may hold.
pub const MAX_DOMAIN_ENTRIES: usize = 1 << 20;
/// The most key holders a domain may have.
pub const MAX_KEY_HOLDERS: usize = 256;

/// An operator's signature on a retirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorSig {
    /// The operator's Ed25519 key (one of the holder's operators).
    pub key: Ed25519Key,
    /// The signature over the entry's statement digest.
    pub signature: Sig,
}

/// What an entry records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DomainBody {
    /// The domain is created.
    Created {
        /// The domain's name.
        domain: Name,
        /// The holder.
        holder: Name,
        /// The key holders in chain order.
        key_holders: BoundedVec<Name, MAX_KEY_HOLDERS>,
        /// The manifest's digest at creation.
        manifest: Digest,
    },
    /// A key holder's commitment `K_{i,R}`.
    KeyCommitment {
        /// The key holder.
        member: Name,
        /// `K_{i,R} = k_{i,R}·G`.
        key: WirePoint,
    },
    /// A delivery into the domain, as the holder stored it.
    Delivery {
        /// The delivery's id (chosen by the source, unique in the domain).
        delivery: [u8; 16],
        /// The source member.
        source: Name,
        /// Persons stored.
        persons: u64,
        /// Rows stored.
        rows: u64,
        /// `framed_sha3` digest of the stored `(Ψ_R, sealed rows)` table.
        table: Digest,
    },
    /// A key holder replaced by a re-share.
    Reshare {
        /// The key holder whose share is replaced.
        old_member: Name,
        /// The member that holds the new share (may be the same).
        new_member: Name,
        /// `log_G K_old = log_{K'} K_new` under context (R, R, old_member).
        binding: BindingProof,
        /// Persons in the holder's table converted.
        persons: u64,
    },
    /// The domain is retired; its seeds are shredded everywhere.
    Retired,
    /// An innsyn request answered by the holder (PROTOCOL.md §10a): a
    /// portal's one-person list went through every key holder. Counted,
    /// never who: it names the portal and the digest of the portal's
    /// signed call, which every key holder saw, so each can match the
    /// lists it stepped against the holder's record.
    Innsyn {
        /// The asking portal.
        portal: Name,
        /// The digest of the portal's signed call.
        request: Digest,
    },
    /// An identified project's conversion into the disclosure log, as the
    /// holder stored it (PROTOCOL.md §10a): counted by its padded size
    /// only (the number of linked persons, never the number delivered).
    Disclosures {
        /// The identified project.
        project: ProjectId,
        /// The delivery's day (days since 1970-01-01).
        day: u32,
        /// Values stored: the padded size.
        size: u64,
    },
}

/// One domain transcript entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainEntry {
    /// 0, 1, 2, … without gaps.
    pub seq: u64,
    /// The previous entry's hash (all zero for entry 0).
    pub prev: Digest,
    /// The author (a member; signs with its node key).
    pub signer: Name,
    /// What is recorded.
    pub body: DomainBody,
    /// The author's signature.
    pub signature: Sig,
    /// Two operators' signatures (a retirement only).
    pub operators: BoundedVec<OperatorSig, 2>,
}

/// A domain transcript was refused. The first entry at fault is named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainTranscriptError {
    /// The bytes are not a transcript.
    #[error("not a domain transcript: {0}")]
    Decode(#[from] postcard::Error),
    /// Empty, or not opened by a matching creation entry.
    #[error(
        "the transcript does not start with the creation of domain {0} as the manifest declares it"
    )]
    BadCreation(Name),
    /// The domain is not declared in the manifest.
    #[error("domain {0} is not declared in the manifest")]
    UnknownDomain(Name),
    /// A sequence number or `prev` hash breaks the chain.
    #[error("entry {0}: the hash chain is broken")]
    Chain(u64),
    /// An author's signature does not verify, or the author may not write
    /// this entry.
    #[error("entry {0}: bad signature or an author that may not write it")]
    Signature(u64),
    /// A commitment from a non-key holder, or a second one.
    #[error("entry {0}: a key commitment from a member that is not an uncommitted key holder")]
    Commitment(u64),
    /// A delivery before every key holder committed, or a repeated id.
    #[error("entry {0}: a delivery before every key holder committed, or a repeated delivery id")]
    Delivery(u64),
    /// An innsyn record not by the holder, before the domain is complete,
    /// or for a portal the manifest does not list.
    #[error("entry {0}: an innsyn record not by the holder, before every key holder committed, or for no portal of the manifest")]
    Innsyn(u64),
    /// A disclosure log record not by the holder, before the domain is
    /// complete, or in a domain the manifest does not declare a
    /// disclosure log.
    #[error("entry {0}: a disclosure record not by the holder, before every key holder committed, or outside the disclosure log domain")]
    Disclosures(u64),
    /// A re-share whose binding proof does not verify against the old key.
    #[error("entry {0}: the re-share is not bound to the committed key")]
    Reshare(u64),
    /// A retirement without two distinct operators of the holder.
    #[error("entry {0}: a retirement needs two distinct operators of the holder")]
    Retirement(u64),
    /// The key holders after the recorded re-shares are not the ones the
    /// manifest declares.
    #[error("domain {0}: the key holders after the recorded re-shares are not the manifest's")]
    KeyHolders(Name),
    /// An entry after the retirement, or a second creation.
    #[error("entry {0}: nothing may follow a retirement or precede the creation")]
    Order(u64),
}

/// The verified state of a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainState {
    /// The domain.
    pub domain: Name,
    /// The holder.
    pub holder: Name,
    /// The key holders with their current committed keys, in chain order.
    pub keys: Vec<(Name, Option<WirePoint>)>,
    /// Deliveries recorded.
    pub deliveries: u64,
    /// Re-shares recorded.
    pub reshares: u64,
    /// Innsyn requests answered through the domain's key holders.
    pub innsyn: u64,
    /// Identified projects recorded in a disclosure log.
    pub disclosures: u64,
    /// The hash of the last entry.
    pub head: Digest,
    /// A key holder the manifest no longer names, whose place a member
    /// the manifest now names takes once a re-share converts the holder's
    /// table to the new member's share ([`Replacement`]). Until then the
    /// domain is not complete: no delivery, no project uses it.
    pub replacing: Option<Replacement>,
    retired: bool,
}

/// A pending replacement of one key holder by another member: the
/// manifest of today names `joining` where the transcript's key holders
/// have `leaving` (with a committed key). Only a `Reshare` entry from
/// `leaving` to `joining`, signed by `joining`, completes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replacement {
    /// The key holder whose place is taken (its key is still the
    /// committed one).
    pub leaving: Name,
    /// The member that takes it (no key yet).
    pub joining: Name,
}

/// Proof that a domain's retirement was recorded with two operators'
/// signatures: only [`verify_domain_transcript`] makes one. The keystore
/// shreds a register domain's seed only against it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retirement {
    domain: Name,
}

impl Retirement {
    /// The retired domain.
    pub fn domain(&self) -> &Name {
        &self.domain
    }
}

impl DomainState {
    /// Whether every key holder has committed (and no replacement of a
    /// key holder is pending).
    pub fn is_complete(&self) -> bool {
        self.replacing.is_none() && self.keys.iter().all(|(_, k)| k.is_some())
    }

    /// The committed key of `member`.
    pub fn key_of(&self, member: &Name) -> Option<WirePoint> {
        self.keys
            .iter()
            .find(|(n, _)| n == member)
            .and_then(|(_, k)| *k)
    }

    /// The retirement, if the transcript ends with one.
    pub fn retirement(&self) -> Option<Retirement> {
        self.retired.then(|| Retirement {
            domain: self.domain.clone(),
        })
    }
}

impl DomainEntry {
    /// What the author (and a retirement's operators) sign.
    pub fn statement_digest(&self) -> Digest {
        statement_digest(self.seq, &self.prev, &self.signer, &self.body)
    }

    /// The entry's hash (the next entry's `prev`).
    pub fn hash(&self) -> Digest {
        Digest(framed_sha3(tags::ENTRY, &[&encode_value(self)]))
    }
}

fn statement_digest(seq: u64, prev: &Digest, signer: &Name, body: &DomainBody) -> Digest {
    Digest(framed_sha3(
        tags::STATEMENT,
        &[
            &seq.to_le_bytes(),
            prev.as_bytes(),
            &encode_value(signer),
            &encode_value(body),
        ],
    ))
}

/// Appends entries to a domain transcript (the writer's side).
#[derive(Debug, Default)]
pub struct DomainLog {
    entries: Vec<DomainEntry>,
}

impl DomainLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A log continuing `entries` (verify them first).
    pub fn from_entries(entries: Vec<DomainEntry>) -> Self {
        Self { entries }
    }

    /// The entries.
    pub fn entries(&self) -> &[DomainEntry] {
        &self.entries
    }

    /// The statement digest the next entry with `body` by `signer` will
    /// have (for a retirement's operators to sign first).
    pub fn next_digest(&self, signer: &Name, body: &DomainBody) -> Digest {
        let (seq, prev) = self.next();
        statement_digest(seq, &prev, signer, body)
    }

    /// Appends `body`, signed by `signer` with `key`, with `operators`'
    /// signatures (a retirement) or none.
    pub fn append(
        &mut self,
        signer: Name,
        key: &SigningKey,
        body: DomainBody,
        operators: Vec<OperatorSig>,
    ) -> &DomainEntry {
        let (seq, prev) = self.next();
        let digest = statement_digest(seq, &prev, &signer, &body);
        let signature = Sig(key.sign(digest.as_bytes()).to_bytes());
        self.entries.push(DomainEntry {
            seq,
            prev,
            signer,
            body,
            signature,
            operators: BoundedVec::new(operators).unwrap_or_default(),
        });
        // Just pushed.
        &self.entries[self.entries.len() - 1]
    }

    fn next(&self) -> (u64, Digest) {
        match self.entries.last() {
            Some(e) => (e.seq + 1, e.hash()),
            None => (0, Digest([0; 32])),
        }
    }
}

/// Encodes a transcript: postcard of the bounded entry list.
pub fn encode_domain_transcript(entries: &[DomainEntry]) -> Vec<u8> {
    postcard::to_allocvec(entries).unwrap_or_default()
}

/// Decodes a transcript from outside bytes (bounded; trailing bytes and
/// non-canonical encodings refused).
///
/// # Errors
///
/// [`DomainTranscriptError::Decode`].
pub fn decode_domain_transcript(bytes: &[u8]) -> Result<Vec<DomainEntry>, DomainTranscriptError> {
    let (v, rest): (BoundedVec<DomainEntry, MAX_DOMAIN_ENTRIES>, &[u8]) =
        postcard::take_from_bytes(bytes)?;
    let entries = v.into_inner();
    // Trailing bytes, or a non-canonical encoding (an overlong varint):
    // the bytes must be the one encoding of what they decode to, so that
    // an entry's hash is unambiguous.
    if !rest.is_empty() || encode_domain_transcript(&entries) != bytes {
        return Err(DomainTranscriptError::Decode(
            postcard::Error::DeserializeBadEncoding,
        ));
    }
    Ok(entries)
}

/// Verifies a domain's transcript against the manifest: the chain, every
/// signature and author, the creation against the manifest's `[[domains]]`
/// entry, one commitment per key holder before any delivery, every
/// re-share's binding proof, and a retirement's two operators.
///
/// # Errors
///
/// The first [`DomainTranscriptError`].
pub fn verify_domain_transcript(
    manifest: &Manifest,
    domain: &Name,
    entries: &[DomainEntry],
) -> Result<DomainState, DomainTranscriptError> {
    let spec = manifest
        .domain(domain)
        .ok_or_else(|| DomainTranscriptError::UnknownDomain(domain.clone()))?;
    let first = entries
        .first()
        .ok_or_else(|| DomainTranscriptError::BadCreation(domain.clone()))?;
    let mut state = creation(manifest, spec, first)?;
    let mut prev = Digest([0; 32]);
    let mut delivery_ids = std::collections::HashSet::new();
    for (i, e) in entries.iter().enumerate() {
        let seq = i as u64;
        if e.seq != seq || e.prev != prev {
            return Err(DomainTranscriptError::Chain(e.seq));
        }
        if state.retired {
            return Err(DomainTranscriptError::Order(seq));
        }
        let author = manifest
            .member(&e.signer)
            .ok_or(DomainTranscriptError::Signature(seq))?;
        verify_signature(
            &author.signing_key,
            e.statement_digest().as_bytes(),
            &e.signature,
        )
        .map_err(|()| DomainTranscriptError::Signature(seq))?;
        if !matches!(e.body, DomainBody::Retired) && !e.operators.is_empty() {
            return Err(DomainTranscriptError::Signature(seq));
        }
        match &e.body {
            DomainBody::Created { .. } if seq == 0 => {}
            DomainBody::Created { .. } => return Err(DomainTranscriptError::Order(seq)),
            DomainBody::KeyCommitment { member, key } => {
                let slot = state
                    .keys
                    .iter_mut()
                    .find(|(n, _)| n == member)
                    .filter(|(_, k)| k.is_none())
                    .ok_or(DomainTranscriptError::Commitment(seq))?;
                if e.signer != *member || key.decode().is_err() {
                    return Err(DomainTranscriptError::Commitment(seq));
                }
                slot.1 = Some(*key);
            }
            DomainBody::Delivery { delivery, .. } => {
                if e.signer != state.holder
                    || !state.is_complete()
                    || !delivery_ids.insert(*delivery)
                {
                    return Err(DomainTranscriptError::Delivery(seq));
                }
                state.deliveries += 1;
            }
            DomainBody::Innsyn { portal, .. } => {
                if e.signer != state.holder
                    || !state.is_complete()
                    || manifest.portal(portal).is_none()
                {
                    return Err(DomainTranscriptError::Innsyn(seq));
                }
                state.innsyn += 1;
            }
            DomainBody::Disclosures { .. } => {
                let log = manifest
                    .disclosure_log()
                    .is_some_and(|d| d.name == state.domain);
                if e.signer != state.holder || !state.is_complete() || !log {
                    return Err(DomainTranscriptError::Disclosures(seq));
                }
                state.disclosures += 1;
            }
            DomainBody::Reshare {
                old_member,
                new_member,
                binding,
                ..
            } => reshare(
                manifest, &mut state, seq, e, old_member, new_member, binding,
            )?,
            DomainBody::Retired => {
                let digest = e.statement_digest();
                let holder = manifest
                    .member(&state.holder)
                    .ok_or(DomainTranscriptError::Retirement(seq))?;
                let ops = &e.operators;
                let ok = e.signer == state.holder
                    && ops.len() == 2
                    && ops[0].key != ops[1].key
                    && ops.iter().all(|o| {
                        holder.operators.iter().any(|h| h.key == o.key)
                            && verify_signature(&o.key, digest.as_bytes(), &o.signature).is_ok()
                    });
                if !ok {
                    return Err(DomainTranscriptError::Retirement(seq));
                }
                state.retired = true;
            }
        }
        prev = e.hash();
    }
    // Today's key holders (after the re-shares) are the manifest's, and
    // are reported in its chain order; or the manifest names one member
    // in place of one committed key holder, whose re-share is pending.
    let today = spec.key_holders(manifest);
    let leaving: Vec<&(Name, Option<WirePoint>)> = state
        .keys
        .iter()
        .filter(|(k, _)| !today.contains(k))
        .collect();
    let joining: Vec<&Name> = today
        .iter()
        .filter(|n| !state.keys.iter().any(|(k, _)| k == *n))
        .collect();
    state.replacing = match (leaving.as_slice(), joining.as_slice()) {
        ([], []) => None,
        ([(old, Some(_))], [new]) if **new != state.holder => Some(Replacement {
            leaving: old.clone(),
            joining: (*new).clone(),
        }),
        _ => return Err(DomainTranscriptError::KeyHolders(domain.clone())),
    };
    let order: Vec<Option<usize>> = state
        .keys
        .iter()
        .map(|(n, _)| {
            let at = match &state.replacing {
                Some(r) if *n == r.leaving => &r.joining,
                _ => n,
            };
            today.iter().position(|t| t == at)
        })
        .collect();
    let mut keyed: Vec<_> = order.into_iter().zip(state.keys.drain(..)).collect();
    keyed.sort_by_key(|(at, _)| *at);
    state.keys = keyed.into_iter().map(|(_, k)| k).collect();
    state.head = prev;
    Ok(state)
}

fn creation(
    manifest: &Manifest,
    spec: &DomainSpec,
    e: &DomainEntry,
) -> Result<DomainState, DomainTranscriptError> {
    let bad = || DomainTranscriptError::BadCreation(spec.name.clone());
    let DomainBody::Created {
        domain,
        holder,
        key_holders,
        ..
    } = &e.body
    else {
        return Err(bad());
    };
    // The key holders at creation are checked against the manifest's
    // after the re-shares are replayed (`verify_domain_transcript`): the
    // manifest names today's key holders.
    let distinct: std::collections::HashSet<&Name> = key_holders.iter().collect();
    let linker = manifest.linker().map(|l| &l.name);
    if *domain != spec.name
        || *holder != spec.holder
        || e.signer != spec.holder
        || distinct.len() != key_holders.len()
        || key_holders.contains(holder)
        || linker.is_none_or(|l| !key_holders.contains(l))
    {
        return Err(bad());
    }
    Ok(DomainState {
        domain: domain.clone(),
        holder: holder.clone(),
        keys: key_holders.iter().map(|n| (n.clone(), None)).collect(),
        deliveries: 0,
        reshares: 0,
        innsyn: 0,
        disclosures: 0,
        replacing: None,
        head: Digest([0; 32]),
        retired: false,
    })
}

fn reshare(
    manifest: &Manifest,
    state: &mut DomainState,
    seq: u64,
    e: &DomainEntry,
    old_member: &Name,
    new_member: &Name,
    binding: &BindingProof,
) -> Result<(), DomainTranscriptError> {
    let bad = || DomainTranscriptError::Reshare(seq);
    if e.signer != *new_member || manifest.member(new_member).is_none() {
        return Err(bad());
    }
    if *new_member != *old_member && state.keys.iter().any(|(n, _)| n == new_member) {
        return Err(bad());
    }
    if *new_member == state.holder {
        return Err(bad());
    }
    let old_key = state.key_of(old_member).ok_or_else(bad)?;
    let d = crate::share::Domain::Register(state.domain.clone());
    let ctx = ConversionContext {
        from: &d,
        to: &d,
        member: old_member,
    };
    verify_step(
        ctx,
        &old_key,
        &binding.to_key,
        &ListName::of_domain(&state.domain),
        None,
        &StepProofs {
            binding: *binding,
            blinding: None,
        },
    )
    .map_err(|_| bad())?;
    if binding.to_key == old_key {
        return Err(bad());
    }
    let slot = state
        .keys
        .iter_mut()
        .find(|(n, _)| n == old_member)
        .ok_or_else(bad)?;
    *slot = (new_member.clone(), Some(binding.to_key));
    state.reshares += 1;
    Ok(())
}
