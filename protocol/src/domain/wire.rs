//! A register domain's lifecycle on the wire (PROTOCOL.md §10): who may
//! send which domain message, and the pure decisions a node takes on them.
//!
//! ```text
//!  holder ──DomainEntries(domain, first, entries)──▶ every key holder (the linker among them)
//!  key holder ──DomainCommitment(domain, entry)──▶ holder   (its KeyCommitment, signed at the
//!                                                          holder's next sequence number)
//!  operator ──DomainRequest(Transcript { first })──▶ any node holding a copy ──▶ DomainEntries
//!  operator ──DomainRequest(Retire { statement, signature })──▶ holder   (two distinct operators)
//!  operator of key holder i, re-sharing its lost share (k_old from the two-operator backup):
//!    ──ReshareTable { first }──▶ holder ──DomainPoints (β·Ψ_R, a page)──▶
//!    ──ReshareConverted { first, (k_new·k_old⁻¹)·β·Ψ_R, batch proof, binding proof }──▶ holder
//!      (verify_reshare_page; the holder removes β and keeps the new values aside)
//!    ──ReshareFinish { Reshare entry, signed by i }──▶ holder (decide_reshare; table replaced,
//!      entry appended and replicated, in one transaction)
//! ```
//!
//! The holder sequences the domain transcript: it appends `Created` itself,
//! takes each key holder's commitment only when it is signed at the
//! transcript's current head (a stale one is refused, final, and the key
//! holder signs again at the new head once the entries reach it), and
//! replicates every entry. Every copy, at every node, is verified whole
//! with [`verify_domain_transcript`] before it is stored.
//!
//! A domain request is an operator's, signed like a project request
//! ([`crate::messages::SignedRequest`]): it names the node, the manifest's
//! digest and a fresh nonce, and carries a time; the node refuses it when
//! stale, for another node or manifest, or seen before (its replay cache).

use serde::{Deserialize, Serialize};

use super::{
    convert::{
        verify_chunk, verify_step, BindingProof, ChunkStatement, ConversionContext, StepProofs,
    },
    transcript::{verify_domain_transcript, DomainBody, DomainEntry, DomainState},
};
use crate::{
    bounded::BoundedVec,
    dleq::ChunkProof,
    group::WirePoint,
    hash::framed_sha3,
    manifest::{Ed25519Key, Manifest},
    messages::{check_signature, sign_digest, Message, RequestError, RequestHead, NONCE_LEN},
    project::Origin,
    refusal::{Refusal, RefusalCode},
    share::Domain,
    transcript::{encode_value, Sig},
    types::{ChunkIndex, Digest, HopIndex, ListName, Name, UnixTime},
    v2::chunk_digest,
};

/// Tag of a domain request's digest.
pub const REQUEST_TAG: &[u8] = b"KOBLING-V2-DOMAIN-REQUEST";

/// What an operator asks of a node about a domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DomainAction {
    /// The node's copy of the domain transcript, from entry `first` (the
    /// answer is [`Message::DomainEntries`], at most
    /// [`crate::messages::MAX_ENTRIES_PER_MESSAGE`] entries; ask again
    /// from the next one until fewer come).
    Transcript {
        /// The first entry wanted.
        first: u64,
    },
    /// One of the two operators' signatures on the retirement: `signature`
    /// is the operator's Ed25519 signature (with the request's key) over
    /// `statement`, the statement digest of the `Retired` entry the holder
    /// appends next ([`super::transcript::DomainLog::next_digest`]).
    Retire {
        /// The retirement entry's statement digest.
        statement: Digest,
        /// The operator's signature over it.
        signature: Sig,
    },
    /// A re-share of `member`'s share (an operator of `member`): a page of
    /// the holder's table of pseudonyms, blinded by the holder's fresh
    /// re-share blinding β, from position `first` (the answer is
    /// [`Message::DomainPoints`]).
    ReshareTable {
        /// The key holder whose share is replaced.
        member: Name,
        /// The first position wanted.
        first: u64,
    },
    /// A re-share: the page from `first`, converted by `k'·k⁻¹`, with the
    /// chunk's batch proof against `K'` and the binding proof
    /// `log_G K_old = log_{K'} K_new`.
    ReshareConverted {
        /// The key holder whose share is replaced.
        member: Name,
        /// The page's first position.
        first: u64,
        /// The converted points, in the page's order.
        points: BoundedVec<WirePoint, RESHARE_PAGE>,
        /// The batch proof of the page.
        proof: Box<ChunkProof>,
        /// The binding proof.
        binding: Box<BindingProof>,
    },
    /// A re-share's end: the `Reshare` entry, signed by the member's node
    /// key at the transcript's next position. The holder appends it and
    /// replaces its table by the converted one in one transaction.
    ReshareFinish {
        /// The entry.
        entry: Box<DomainEntry>,
    },
}

/// Points per page of a re-share (128 KiB of points: a page and its proofs
/// fit a client's frame).
pub const RESHARE_PAGE: usize = 4096;

/// An operator's request about a domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRequest {
    /// The domain.
    pub domain: Name,
    /// What is asked.
    pub action: DomainAction,
    /// Seconds since the Unix epoch on the client's clock.
    pub time: UnixTime,
    /// The node the request is for.
    pub node: Name,
    /// The digest of the manifest the client holds.
    pub manifest: Digest,
    /// Random, fresh for every request.
    pub nonce: [u8; NONCE_LEN],
}

/// A signed [`DomainRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDomainRequest {
    /// The request.
    pub request: DomainRequest,
    /// The operator's Ed25519 key.
    pub key: Ed25519Key,
    /// `Ed25519(key, framed_sha3("KOBLING-V2-DOMAIN-REQUEST", [postcard(request)]))`.
    pub signature: Sig,
}

impl DomainRequest {
    /// The digest the signature covers; also the request's identity in a
    /// node's replay cache.
    pub fn digest(&self) -> Digest {
        Digest(framed_sha3(REQUEST_TAG, &[&encode_value(self)]))
    }

    /// Signs the request.
    pub fn sign(self, key: &ed25519_dalek::SigningKey) -> SignedDomainRequest {
        let (key, signature) = sign_digest(key, &self.digest());
        SignedDomainRequest {
            key,
            request: self,
            signature,
        }
    }
}

impl SignedDomainRequest {
    /// Checks that the request is fresh at `now`, for node `me` under the
    /// manifest with digest `manifest`, and signed (the caller checks that
    /// the key may ask, and its replay cache).
    ///
    /// # Errors
    ///
    /// A [`RequestError`].
    pub fn check(&self, now: UnixTime, me: &Name, manifest: &Digest) -> Result<(), RequestError> {
        let r = &self.request;
        RequestHead(r.time, &r.node, &r.manifest).check(now, me, manifest)?;
        check_signature(&self.key, &r.digest(), &self.signature)
    }
}

/// Whether `msg` is one of the domain messages (handled by
/// [`authorise_domain`] and the node's domain module, not by a project's
/// admission).
pub fn is_domain_message(msg: &Message) -> bool {
    matches!(
        msg,
        Message::DomainEntries { .. }
            | Message::DomainCommitment { .. }
            | Message::DomainRequest(_)
    )
}

/// Authorises a domain message at node `me` by its kind, its sender and
/// the manifest alone (no state read):
///
/// | kind | from | to |
/// |---|---|---|
/// | `DomainEntries` | the domain's holder | a key holder of the domain |
/// | `DomainCommitment` | a key holder, about its own key | the domain's holder |
/// | `DomainRequest` | a client | any node (the node checks the key) |
///
/// # Errors
///
/// [`RefusalCode::Unexpected`] for a domain the manifest does not declare,
/// a sender that is not the holder (entries) or a key holder (commitments),
/// or a node that is not the receiver; [`RefusalCode::Impersonation`] for a
/// key holder's commitment that names or is signed by another member.
pub fn authorise_domain(
    manifest: &Manifest,
    me: &Name,
    from: &Origin,
    msg: &Message,
) -> Result<(), Refusal> {
    let unexpected = || crate::project::unexpected(msg);
    let member = match from {
        Origin::Member(m) => Some(m),
        Origin::Client => None,
    };
    match msg {
        Message::DomainRequest(_) if member.is_none() => Ok(()),
        Message::DomainEntries { domain, .. } => {
            let spec = manifest.domain(domain).ok_or_else(unexpected)?;
            if member == Some(&spec.holder) && spec.is_key_holder(manifest, me) {
                Ok(())
            } else {
                Err(unexpected())
            }
        }
        Message::DomainCommitment { domain, entry } => {
            let spec = manifest.domain(domain).ok_or_else(unexpected)?;
            let Some(sender) = member else {
                return Err(unexpected());
            };
            if spec.holder != *me || !spec.is_key_holder(manifest, sender) {
                return Err(unexpected());
            }
            match &entry.body {
                DomainBody::KeyCommitment { member, .. }
                    if member == sender && entry.signer == *sender =>
                {
                    Ok(())
                }
                _ => Err(Refusal::new(
                    RefusalCode::Impersonation,
                    format!(
                        "a commitment to domain {domain} must be the sender's own key commitment"
                    ),
                )),
            }
        }
        _ => Err(unexpected()),
    }
}

/// What the holder does with a key holder's commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitmentDecision {
    /// Append it: the transcript with it verifies (the new state).
    Append(Box<DomainState>),
    /// The key holder's commitment is already in the transcript.
    AlreadyCommitted,
}

/// The holder's decision on `entry`, a key holder's commitment, against
/// its transcript `held` (authorised already).
///
/// # Errors
///
/// `diverged` for a commitment signed at another position than the
/// transcript's next (the key holder signs again once it holds the
/// latest entries); `closed` for a retired domain; `invalid` for one that
/// does not verify (a bad key or signature).
pub fn decide_commitment(
    manifest: &Manifest,
    domain: &Name,
    held: &[DomainEntry],
    entry: &DomainEntry,
) -> Result<CommitmentDecision, Refusal> {
    let state = verify_domain_transcript(manifest, domain, held).map_err(|e| {
        Refusal::new(
            RefusalCode::NotReady,
            format!("domain {domain} has no transcript here yet ({e})"),
        )
    })?;
    if state.retirement().is_some() {
        return Err(Refusal::new(
            RefusalCode::Closed,
            format!("domain {domain} is retired"),
        ));
    }
    if state.key_of(&entry.signer).is_some() {
        return Ok(CommitmentDecision::AlreadyCommitted);
    }
    let next = held.len() as u64;
    let head = held.last().map_or(Digest([0; 32]), DomainEntry::hash);
    if entry.seq != next || entry.prev != head {
        return Err(Refusal::new(
            RefusalCode::Diverged,
            format!("the commitment to domain {domain} is not signed at the transcript's head (entry {next}); sign again"),
        ));
    }
    let mut all = held.to_vec();
    all.push(entry.clone());
    let state = verify_domain_transcript(manifest, domain, &all).map_err(|e| {
        Refusal::new(
            RefusalCode::Invalid,
            format!("the commitment to domain {domain} does not verify: {e}"),
        )
    })?;
    Ok(CommitmentDecision::Append(Box::new(state)))
}

/// The holder's check of a converted re-share page: `binding` binds a
/// step key to `member`'s committed key `committed` (and to the same new
/// key as the pages before, `to_key`), and `proof` proves `output` =
/// `K'`-step of `input` (the page as the holder blinded it). Returns the
/// new key `K_new`.
///
/// # Errors
///
/// `invalid` for a binding to another key, a new key that changed between
/// pages, or a proof that does not verify.
#[allow(clippy::too_many_arguments)]
pub fn verify_reshare_page(
    domain: &Name,
    member: &Name,
    committed: &WirePoint,
    to_key: Option<&WirePoint>,
    first: u64,
    input: &[WirePoint],
    output: &[WirePoint],
    proof: &ChunkProof,
    binding: &BindingProof,
) -> Result<WirePoint, Refusal> {
    let bad = |what: &str| {
        Refusal::new(
            RefusalCode::Invalid,
            format!("re-share of {member} in domain {domain}: {what}"),
        )
    };
    let d = Domain::Register(domain.clone());
    let ctx = ConversionContext {
        from: &d,
        to: &d,
        member,
    };
    if to_key.is_some_and(|k| *k != binding.to_key) || binding.to_key == *committed {
        return Err(bad("the new key changed between pages, or is the old key"));
    }
    let list = ListName::of_domain(domain);
    let key = verify_step(
        ctx,
        committed,
        &binding.to_key,
        &list,
        None,
        &StepProofs {
            binding: *binding,
            blinding: None,
        },
    )
    .map_err(|_| bad("the binding proof does not bind the committed key"))?;
    let statement = ChunkStatement {
        target: &d,
        list: &list,
        step: HopIndex(1),
        chunk: ChunkIndex(first / RESHARE_PAGE as u64),
        key,
        input: chunk_digest(input),
        output: chunk_digest(output),
        count: input.len() as u64,
    };
    verify_chunk(&statement, input, output, proof)
        .map_err(|_| bad("the page's conversion proof does not verify"))?;
    Ok(binding.to_key)
}

/// The holder's decision on a re-share's `Reshare` entry: `old`'s share
/// replaced by `new`'s (the same member after a lost seed, or the member
/// that takes `old`'s place, [`Replacement`](super::transcript::Replacement)),
/// signed by `new`, with the binding to `to_key` its pages were proven
/// with, the count of persons converted, at the transcript's next
/// position; the new state.
///
/// # Errors
///
/// `invalid` for another entry, `diverged` for one signed at another
/// position, `invalid` for a transcript that does not verify with it.
pub fn decide_reshare(
    manifest: &Manifest,
    domain: &Name,
    held: &[DomainEntry],
    entry: &DomainEntry,
    (old, new): (&Name, &Name),
    to_key: &WirePoint,
    persons: u64,
) -> Result<DomainState, Refusal> {
    let ok = matches!(
        &entry.body,
        DomainBody::Reshare { old_member, new_member, binding, persons: p }
            if old_member == old && new_member == new && entry.signer == *new
                && binding.to_key == *to_key && *p == persons
    );
    if !ok {
        return Err(Refusal::new(
            RefusalCode::Invalid,
            format!("domain {domain}: not the re-share of {old}'s share to {new} of the converted table"),
        ));
    }
    let next = held.len() as u64;
    let head = held.last().map_or(Digest([0; 32]), DomainEntry::hash);
    if entry.seq != next || entry.prev != head {
        return Err(Refusal::new(
            RefusalCode::Diverged,
            format!("the re-share entry of domain {domain} is not signed at the transcript's head (entry {next}); sign again"),
        ));
    }
    let mut all = held.to_vec();
    all.push(entry.clone());
    verify_domain_transcript(manifest, domain, &all).map_err(|e| {
        Refusal::new(
            RefusalCode::Invalid,
            format!("the re-share entry of domain {domain} does not verify: {e}"),
        )
    })
}

/// A key holder's decision on replicated entries `entries` starting at
/// `first`, against its copy `held`: the entries to append (possibly none)
/// and the verified state of the whole.
///
/// # Errors
///
/// `not-ready` for entries after a gap (the earlier ones come first);
/// `diverged` for entries that differ from the held copy where they
/// overlap; `invalid` for a transcript that does not verify.
pub fn decide_entries(
    manifest: &Manifest,
    domain: &Name,
    held: &[DomainEntry],
    first: u64,
    entries: &[DomainEntry],
) -> Result<(Vec<DomainEntry>, DomainState), Refusal> {
    let len = held.len() as u64;
    if first > len {
        return Err(Refusal::not_ready(format!(
            "domain {domain}: entries from {first}, but this node holds {len}"
        )));
    }
    // `first <= len`, so the overlap fits in both.
    let overlap = usize::try_from(len - first)
        .unwrap_or(usize::MAX)
        .min(entries.len());
    let start = usize::try_from(first).unwrap_or(usize::MAX);
    let same = held
        .get(start..start.saturating_add(overlap))
        .is_some_and(|h| h == &entries[..overlap]);
    if !same {
        return Err(Refusal::new(
            RefusalCode::Diverged,
            format!("domain {domain}: the entries differ from this node's copy"),
        ));
    }
    let new = entries[overlap..].to_vec();
    let mut all = held.to_vec();
    all.extend(new.iter().cloned());
    let state = verify_domain_transcript(manifest, domain, &all).map_err(|e| {
        Refusal::new(
            RefusalCode::Invalid,
            format!("domain {domain}: the transcript does not verify: {e}"),
        )
    })?;
    Ok((new, state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        bounded::BoundedVec,
        domain::{transcript::DomainLog, DomainSpec},
        fixtures::{manifest_of, member, signing_key as key},
        manifest::Role,
        messages::MAX_CLOCK_SKEW,
        share::{Domain, Share},
    };

    fn n(s: &str) -> Name {
        Name::new(s).expect("valid")
    }

    fn manifest() -> Manifest {
        let m = manifest_of(
            vec![
                member("NPR", Role::Register, 1),
                member("RESEPT", Role::Register, 2),
                member("KPR", Role::Register, 4),
                member("LINKER", Role::Linker, 3),
            ],
            vec![DomainSpec {
                name: n("RESEPT"),
                holder: n("RESEPT"),
                key_holders: Some(vec![n("NPR"), n("LINKER")]),
                kind: Default::default(),
            }],
        );
        m.validate().expect("valid");
        m
    }

    fn created(m: &Manifest) -> DomainLog {
        let mut log = DomainLog::new();
        log.append(
            n("RESEPT"),
            &key(12),
            DomainBody::Created {
                domain: n("RESEPT"),
                holder: n("RESEPT"),
                key_holders: BoundedVec::new(vec![n("NPR"), n("LINKER")]).expect("fits"),
                manifest: m.digest(),
            },
            vec![],
        );
        log
    }

    fn commitment(log: &DomainLog, who: &str, i: u8) -> DomainEntry {
        let k = Share::derive(&[i; 32], &[0; 32], &Domain::Register(n("RESEPT")))
            .expect("share")
            .commitment();
        let mut copy = DomainLog::from_entries(log.entries().to_vec());
        copy.append(
            n(who),
            &key(i),
            DomainBody::KeyCommitment {
                member: n(who),
                key: k,
            },
            vec![],
        )
        .clone()
    }

    fn commit_msg(entry: &DomainEntry) -> Message {
        Message::DomainCommitment {
            domain: n("RESEPT"),
            entry: Box::new(entry.clone()),
        }
    }

    #[test]
    fn only_the_holder_replicates_and_only_key_holders_commit_their_own_key() {
        let m = manifest();
        let log = created(&m);
        let entries = Message::DomainEntries {
            domain: n("RESEPT"),
            first: 0,
            entries: BoundedVec::new(log.entries().to_vec()).expect("fits"),
        };
        let from = |s: &str| Origin::Member(n(s));
        assert_eq!(
            authorise_domain(&m, &n("NPR"), &from("RESEPT"), &entries),
            Ok(())
        );
        // KPR is not a key holder: it neither receives nor sends.
        for (me, sender) in [("KPR", "RESEPT"), ("NPR", "LINKER"), ("NPR", "KPR")] {
            let e = authorise_domain(&m, &n(me), &from(sender), &entries).expect_err("refused");
            assert_eq!(e.code, RefusalCode::Unexpected);
        }
        assert!(authorise_domain(&m, &n("NPR"), &Origin::Client, &entries).is_err());
        let own = commitment(&log, "NPR", 11);
        assert_eq!(
            authorise_domain(&m, &n("RESEPT"), &from("NPR"), &commit_msg(&own)),
            Ok(())
        );
        // A member that is not a key holder tries to act as one.
        let kpr = commitment(&log, "KPR", 14);
        let e = authorise_domain(&m, &n("RESEPT"), &from("KPR"), &commit_msg(&kpr))
            .expect_err("not a key holder");
        assert_eq!(e.code, RefusalCode::Unexpected);
        // A key holder passing on another's commitment.
        let e = authorise_domain(&m, &n("RESEPT"), &from("LINKER"), &commit_msg(&own))
            .expect_err("not its own");
        assert_eq!(e.code, RefusalCode::Impersonation);
        // Sent to a node that is not the holder.
        assert!(authorise_domain(&m, &n("LINKER"), &from("NPR"), &commit_msg(&own)).is_err());
        // An undeclared domain.
        let ghost = Message::DomainCommitment {
            domain: n("GHOST"),
            entry: Box::new(own),
        };
        assert!(authorise_domain(&m, &n("RESEPT"), &from("NPR"), &ghost).is_err());
    }

    #[test]
    fn the_holder_takes_a_commitment_only_at_its_head_and_once() {
        let m = manifest();
        let mut log = created(&m);
        let npr = commitment(&log, "NPR", 11);
        let linker_stale = commitment(&log, "LINKER", 13);
        let d = decide_commitment(&m, &n("RESEPT"), log.entries(), &npr).expect("taken");
        assert!(matches!(d, CommitmentDecision::Append(_)));
        log = DomainLog::from_entries([log.entries(), std::slice::from_ref(&npr)].concat());
        // LINKER signed at the old head: refused, to be signed again.
        let e =
            decide_commitment(&m, &n("RESEPT"), log.entries(), &linker_stale).expect_err("stale");
        assert_eq!(e.code, RefusalCode::Diverged);
        assert_eq!(
            decide_commitment(&m, &n("RESEPT"), log.entries(), &npr),
            Ok(CommitmentDecision::AlreadyCommitted)
        );
        let linker = commitment(&log, "LINKER", 13);
        let Ok(CommitmentDecision::Append(state)) =
            decide_commitment(&m, &n("RESEPT"), log.entries(), &linker)
        else {
            panic!("taken")
        };
        assert!(state.is_complete());
        // A commitment whose signature is not the key holder's.
        let mut forged = commitment(&log, "LINKER", 13);
        forged.signature = Sig([0; 64]);
        let e = decide_commitment(&m, &n("RESEPT"), log.entries(), &forged).expect_err("forged");
        assert_eq!(e.code, RefusalCode::Invalid);
    }

    #[test]
    fn replicated_entries_extend_the_copy_and_a_tampered_or_forked_one_is_refused() {
        let m = manifest();
        let log = created(&m);
        let npr = commitment(&log, "NPR", 11);
        let all = [log.entries(), std::slice::from_ref(&npr)].concat();
        let (new, state) = decide_entries(&m, &n("RESEPT"), &[], 0, &all).expect("verifies");
        assert_eq!(new.len(), 2);
        assert_eq!(state.key_of(&n("NPR")), {
            let DomainBody::KeyCommitment { key, .. } = &npr.body else {
                panic!("a commitment")
            };
            Some(*key)
        });
        // Overlapping and repeated entries add nothing twice.
        let (new, _) = decide_entries(&m, &n("RESEPT"), &all[..1], 0, &all).expect("overlap");
        assert_eq!(new, vec![npr.clone()]);
        let (new, _) = decide_entries(&m, &n("RESEPT"), &all, 1, &all[1..]).expect("repeat");
        assert!(new.is_empty());
        // A gap waits for the earlier entries.
        let e = decide_entries(&m, &n("RESEPT"), &[], 1, &all[1..]).expect_err("gap");
        assert_eq!(e.code, RefusalCode::NotReady);
        // A tampered entry (the key changed after signing) is refused.
        let mut tampered = all.clone();
        if let DomainBody::KeyCommitment { key, .. } = &mut tampered[1].body {
            key.0[0] ^= 1;
        }
        let e =
            decide_entries(&m, &n("RESEPT"), &all[..1], 1, &tampered[1..]).expect_err("tampered");
        assert_eq!(e.code, RefusalCode::Invalid);
        // A copy that differs where it overlaps is a fork.
        let e = decide_entries(&m, &n("RESEPT"), &all, 0, &tampered).expect_err("fork");
        assert_eq!(e.code, RefusalCode::Diverged);
    }

    #[test]
    fn a_domain_request_is_bound_to_its_node_manifest_and_time() {
        let op = key(31);
        let req = DomainRequest {
            domain: n("RESEPT"),
            action: DomainAction::Transcript { first: 0 },
            time: UnixTime(1_000),
            node: n("RESEPT"),
            manifest: Digest([7; 32]),
            nonce: [1; NONCE_LEN],
        }
        .sign(&op);
        assert_eq!(
            req.check(UnixTime(1_000), &n("RESEPT"), &Digest([7; 32])),
            Ok(())
        );
        assert_eq!(
            req.check(UnixTime(1_000), &n("NPR"), &Digest([7; 32])),
            Err(RequestError::WrongNode)
        );
        assert_eq!(
            req.check(UnixTime(1_000), &n("RESEPT"), &Digest([8; 32])),
            Err(RequestError::WrongManifest)
        );
        assert_eq!(
            req.check(
                UnixTime(1_000 + MAX_CLOCK_SKEW + 1),
                &n("RESEPT"),
                &Digest([7; 32])
            ),
            Err(RequestError::Stale)
        );
        let mut other = req.clone();
        other.request.domain = n("IPLOS");
        assert_eq!(
            other.check(UnixTime(1_000), &n("RESEPT"), &Digest([7; 32])),
            Err(RequestError::BadSignature)
        );
    }
}
