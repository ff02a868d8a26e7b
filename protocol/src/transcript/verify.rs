//! The transcript verifier: everything an auditor checks offline
//! (PROTOCOL.md §8), given the entries and the manifest.
//!
//! ## Design
//!
//! Verification is a sequence of named checks, run in the order of
//! [`Check::ALL`]. Each check is one pass over the whole transcript and may
//! rely on every earlier check having held (the signature check trusts the
//! chain, the two-person rule trusts the signatures, the proofs trust the
//! hop chain, …). The first failure stops verification, so a
//! [`VerifyError`] says everything: its check failed, every check before
//! it in [`Check::ALL`] passed over the whole transcript, and no check
//! after it was run.
//!
//! ```text
//!  bytes ─ decode_file ─▶ format
//!  entries + trailer + manifest ─▶ manifest ─▶ hash-chain ─▶ signatures ─▶ order
//!     ─▶ two-person-rule ─▶ commitments ─▶ hop-chain ─▶ proofs (v1 chunks, v2 list checks)
//!     ─▶ link-summary ─▶ delivery ─▶ closure ─▶ VerifiedTranscript
//! ```
//!
//! "Before" in the rules below means "at a lower sequence number".
//!
//! The chunk proofs are checked offline ([`dleq::verify_chunk_offline`]):
//! a transcript holds each chunk's roots and `A`, `B`, not its points, so
//! the auditor checks `log_G K = log_A B` under the chunk's statement; that
//! `A` and `B` are the combinations of the actual points was checked by the
//! next hop, whose own proof binds the same roots.

mod approvals;
mod lists;
mod pseudo;
mod v2;

use std::collections::HashSet;

use serde::Serialize;

use self::approvals::{check_commitments, check_two_person_rule};
use self::lists::{
    check_closure, check_delivery, check_hop_chain, check_link_summary, check_proofs,
};
use super::{
    body::{Body, ProjectOrder},
    file::{FileError, Trailer},
    verify_sig, Entry, Signer,
};
use crate::{
    link::Cohort,
    manifest::{Ed25519Key, Manifest, Member},
    share::Domain,
    types::{Digest, ListName, Name},
};

/// The named checks, in the order they run (and an auditor reads them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Check {
    /// The transcript file is well formed: magic, a version this build
    /// reads, complete records, canonical encodings, a trailer. Reported by
    /// converting a [`FileError`]; [`verify`] itself starts after it.
    Format,
    /// The manifest is valid, and it is the one the project order names
    /// (checked before anything else when the order is intact, so a
    /// transcript read against the wrong manifest says so).
    Manifest,
    /// Sequence numbers, previous-entry hashes, the linker's signature on
    /// every entry (which fixes the order), and the signed trailer (which
    /// fixes the end).
    HashChain,
    /// Every author's statement signature, against the node or operator key
    /// in the manifest, or the researcher key in the order.
    Signatures,
    /// The first entry is the order, signed by its researcher and valid
    /// against the manifest; every entry is about that project; every node
    /// statement is signed by the node it is about.
    Order,
    /// Two approvals by distinct authorised operators of the register, for
    /// this order and the announced extract and row count, before its list
    /// was announced.
    TwoPersonRule,
    /// One commitment per key holder of the project, made before the key
    /// is used, and every hop steps with its committed key.
    Commitments,
    /// Every list's hops in manifest order ending at the linker, roots
    /// chained, counts conserved, chunk roots adding up; every list
    /// complete before linkage.
    HopChain,
    /// Every DLEQ proof: each chunk proof and the linker's key proof
    /// `log_G K_L = log_{D_j} C_j` of every list.
    /// Chain v2 (in the same check): every list check recomputes (σ from
    /// the records, the owner's signed `A_0`, every backward-pass proof,
    /// `passed` is `A_m == B`) and every combined step key's proof
    /// verifies.
    Proofs,
    /// The link summary agrees with the order and the hop records.
    LinkSummary,
    /// The delivery agrees with the link summary and the order.
    Delivery,
    /// A closed project ran nothing after its closure and was shredded by
    /// every key holder.
    Closure,
}

impl Check {
    /// Every check, in the order verification runs them. If check `c`
    /// fails, every check before `c` here passed over the whole transcript
    /// and none after it was run.
    pub const ALL: [Check; 12] = [
        Check::Format,
        Check::Manifest,
        Check::HashChain,
        Check::Signatures,
        Check::Order,
        Check::TwoPersonRule,
        Check::Commitments,
        Check::HopChain,
        Check::Proofs,
        Check::LinkSummary,
        Check::Delivery,
        Check::Closure,
    ];

    /// The check's stable name (as in reports and JSON).
    pub fn name(&self) -> &'static str {
        match self {
            Check::Format => "format",
            Check::Manifest => "manifest",
            Check::HashChain => "hash-chain",
            Check::Signatures => "signatures",
            Check::Order => "order",
            Check::TwoPersonRule => "two-person-rule",
            Check::Commitments => "commitments",
            Check::HopChain => "hop-chain",
            Check::Proofs => "proofs",
            Check::LinkSummary => "link-summary",
            Check::Delivery => "delivery",
            Check::Closure => "closure",
        }
    }

    /// Whether this check runs before `other` (so passed if `other` failed).
    pub fn runs_before(&self, other: Check) -> bool {
        let at = |c: Check| Check::ALL.iter().position(|x| *x == c);
        at(*self) < at(other)
    }
}

impl core::fmt::Display for Check {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a transcript was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{check} check failed{}: {reason}", entry.map(|e| format!(" at entry {e}")).unwrap_or_default())]
pub struct VerifyError {
    /// The check that failed.
    pub check: Check,
    /// The entry where it failed, if any one entry (for [`Check::Format`]:
    /// the index of the bad record, which is the entry number for entry
    /// records).
    pub entry: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl From<FileError> for VerifyError {
    /// A file that cannot be read fails the [`Check::Format`] check.
    fn from(e: FileError) -> Self {
        let entry = match &e {
            FileError::Truncated { record, .. }
            | FileError::RecordTooLarge { record, .. }
            | FileError::Decode { record, .. }
            | FileError::UnknownKind { record, .. } => Some(*record as u64),
            _ => None,
        };
        fail(Check::Format, entry, e.to_string())
    }
}

/// Per-list facts established by verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedList {
    /// The list.
    pub list: ListName,
    /// Extract rows.
    pub rows: u64,
    /// Invalid identifiers excluded.
    pub invalid: u64,
    /// Persons.
    pub persons: u64,
    /// Hops recorded (including the linker's).
    pub hops: u32,
    /// Whether the list reached the linker.
    pub complete: bool,
    /// Matched persons, if linked.
    pub matched: Option<u64>,
    /// Of an identified project: persons the register's reservation
    /// table left out, shown (PROTOCOL.md §10a).
    pub excluded: Option<crate::reservation::ShownCount>,
}

/// What a verified transcript establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTranscript {
    /// The project order.
    pub order: ProjectOrder,
    /// Number of entries.
    pub entries: usize,
    /// Per announced list.
    pub lists: Vec<VerifiedList>,
    /// Cohort size, if linked.
    pub cohort_persons: Option<u64>,
    /// Whether a delivery was recorded.
    pub delivered: bool,
    /// Whether the project was closed (and shredded everywhere).
    pub closed: bool,
}

pub(crate) fn fail(check: Check, entry: Option<u64>, reason: impl Into<String>) -> VerifyError {
    VerifyError {
        check,
        entry,
        reason: reason.into(),
    }
}

/// What the order establishes, for the checks after [`Check::Order`].
pub(crate) struct Project<'a> {
    pub(crate) order: &'a ProjectOrder,
    pub(crate) order_digest: Digest,
    pub(crate) participants: Vec<Name>,
    /// The project's lists: one per participant, in the order's order.
    pub(crate) lists: Vec<ListName>,
    /// The registers that hold a key of the project: the participants and
    /// the register key holders of the order's domains.
    pub(crate) registers: Vec<Name>,
    pub(crate) cohort: Cohort,
    pub(crate) domain: Domain,
    pub(crate) linker: &'a Member,
    pub(crate) manifest: &'a Manifest,
    /// Of a delivery into a register domain: its plan.
    pub(crate) delivery: Option<crate::receipt::DeliveryPlan>,
}

impl Project<'_> {
    /// Whether `member` holds a key share of the project.
    pub(crate) fn is_key_holder(&self, member: &Name) -> bool {
        self.registers.contains(member) || member == &self.linker.name
    }

    /// The registers whose operators approve: the key registers; of a
    /// delivery, its source (with the extract) and its holder (without).
    pub(crate) fn approvers(&self) -> Vec<Name> {
        match &self.delivery {
            Some(plan) => vec![plan.source.clone(), plan.spec.holder.clone()],
            None => self.registers.clone(),
        }
    }

    /// The key holders: the participating registers, then the linker.
    pub(crate) fn key_holders(&self) -> impl Iterator<Item = &Name> {
        self.registers
            .iter()
            .chain(std::iter::once(&self.linker.name))
    }
}

/// Verifies a transcript against a manifest, running every check of
/// [`Check::ALL`] after [`Check::Format`] in order.
///
/// `trailer` is the signed trailer of a transcript file; pass `None` only
/// for a transcript in progress (a live node's view), never for an audit.
///
/// # Errors
///
/// The first [`VerifyError`], naming the check and the entry.
pub fn verify(
    entries: &[Entry],
    trailer: Option<&Trailer>,
    manifest: &Manifest,
) -> Result<VerifiedTranscript, VerifyError> {
    verify_from(entries, trailer, manifest, 0)
}

/// [`verify`] of a transcript in progress whose first `verified` entries
/// are exactly a prefix that passed [`verify`] before (the linker's own
/// transcript, one entry appended at a time): every check runs over the
/// whole transcript, but the statement signatures and the proofs (the
/// costly part, and a function of each entry and the entries before it
/// only) are checked for the new entries alone.
///
/// # Errors
///
/// As [`verify`].
pub fn verify_appended(
    entries: &[Entry],
    manifest: &Manifest,
    verified: usize,
) -> Result<VerifiedTranscript, VerifyError> {
    verify_from(entries, None, manifest, verified)
}

fn verify_from(
    entries: &[Entry],
    trailer: Option<&Trailer>,
    manifest: &Manifest,
    verified: usize,
) -> Result<VerifiedTranscript, VerifyError> {
    let linker = check_manifest(entries, manifest)?;
    check_hash_chain(entries, trailer, linker)?;
    check_signatures(entries, manifest, verified)?;
    let project = check_order(entries, manifest, linker)?;
    check_two_person_rule(entries, &project)?;
    check_commitments(entries, &project)?;
    let lists = check_hop_chain(entries, &project)?;
    check_proofs(entries, &project, &lists, verified)?;
    let summary = check_link_summary(entries, &project, &lists)?;
    let delivered = check_delivery(entries, &project, summary.as_ref())?;
    let closed = check_closure(entries, &project, trailer.is_some())?;

    let lists = lists
        .in_order()
        .map(|s| VerifiedList {
            list: s.announcement.list.clone(),
            rows: s.announcement.rows,
            // The hop-chain check refused a sum that overflows.
            invalid: s
                .announcement
                .invalid
                .iter()
                .fold(0u64, |sum, c| sum.saturating_add(c.count)),
            persons: s.announcement.persons,
            hops: s.done,
            complete: s.final_root.is_some(),
            matched: summary
                .as_ref()
                .and_then(|m| m.matched.get(&s.announcement.list).copied()),
            excluded: s.announcement.excluded,
        })
        .collect();
    Ok(VerifiedTranscript {
        order: project.order.clone(),
        entries: entries.len(),
        lists,
        cohort_persons: summary.map(|s| s.cohort_persons),
        delivered,
        closed,
    })
}

/// [`Check::Manifest`]: a valid manifest with a linker, and, if the first
/// entry is an order its researcher signed, the manifest it names.
///
/// An order that does not verify is left to the later checks (it is
/// tampering, not a question of which manifest), so a flipped bit is never
/// blamed on the manifest.
fn check_manifest<'m>(
    entries: &[Entry],
    manifest: &'m Manifest,
) -> Result<&'m Member, VerifyError> {
    manifest.validate().map_err(|e| {
        fail(
            Check::Manifest,
            None,
            format!("the manifest is invalid: {e}"),
        )
    })?;
    let linker = manifest
        .linker()
        .ok_or_else(|| fail(Check::Manifest, None, "the manifest names no linker"))?;
    for m in &manifest.members {
        let keys = std::iter::once(&m.signing_key).chain(m.operators.iter().map(|o| &o.key));
        if let Some(bad) = keys.into_iter().find(|k| !is_valid_key(k)) {
            return Err(fail(
                Check::Manifest,
                None,
                format!(
                    "the manifest lists {} for {}, which is not a valid Ed25519 key",
                    short(&bad.0),
                    m.name
                ),
            ));
        }
    }
    if let Some(first) = entries.first() {
        let st = &first.signed.statement;
        if let (Body::Order(order), Signer::Researcher(key)) = (&st.body, &st.signer) {
            let intact =
                || *key == order.researcher_signing_key && first.signed.verify_with(key).is_ok();
            if order.manifest_digest != manifest.digest() && intact() {
                return Err(fail(
                    Check::Manifest,
                    Some(0),
                    format!(
                        "the project order names manifest {} but manifest {:?} is {}: verify against the manifest the project ran under",
                        short(order.manifest_digest.as_bytes()),
                        manifest.federation,
                        short(manifest.digest().as_bytes()),
                    ),
                ));
            }
        }
    }
    Ok(linker)
}

/// [`Check::HashChain`]: sequence numbers and previous-entry hashes (cheap,
/// first), the trailer's count and head, then the recorder's (linker's)
/// signature on every link, then the trailer's project and signature.
///
/// A broken link between entries `i-1` and `i` is blamed on entry `i-1`
/// if the linker's signature on it no longer verifies (it was altered after
/// it was recorded), otherwise on entry `i` (removed, inserted or reordered
/// entries).
fn check_hash_chain(
    entries: &[Entry],
    trailer: Option<&Trailer>,
    linker: &Member,
) -> Result<(), VerifyError> {
    let recorded = |e: &Entry| {
        verify_sig(
            &linker.signing_key,
            e.link_digest().as_bytes(),
            &e.recorder_signature,
        )
        .is_ok()
    };
    let altered = |i: usize| {
        fail(
            Check::HashChain,
            Some(i as u64),
            format!(
                "the linker {}'s signature on this entry does not verify: it was altered after it was recorded, or recorded by someone else",
                linker.name
            ),
        )
    };
    let blame_previous = |i: usize| match i.checked_sub(1) {
        Some(p) if !recorded(&entries[p]) => Some(altered(p)),
        _ => None,
    };
    let mut prev = Digest::default();
    for (i, e) in entries.iter().enumerate() {
        let at = Some(i as u64);
        if e.seq != i as u64 {
            return Err(blame_previous(i).unwrap_or_else(|| {
                fail(
                    Check::HashChain,
                    at,
                    format!(
                        "sequence number {} where {i} was expected: an entry was removed, inserted or reordered",
                        e.seq
                    ),
                )
            }));
        }
        if e.prev != prev {
            return Err(blame_previous(i).unwrap_or_else(|| {
                fail(
                    Check::HashChain,
                    at,
                    "the previous-entry hash does not match: an entry was removed, inserted, reordered or altered",
                )
            }));
        }
        prev = e.hash();
    }
    if let Some(t) = trailer {
        if t.entries != entries.len() as u64 {
            return Err(fail(
                Check::HashChain,
                None,
                format!(
                    "the signed trailer counts {} entries but the transcript holds {}: it was truncated or extended",
                    t.entries,
                    entries.len()
                ),
            ));
        }
        if t.head != prev {
            return Err(blame_previous(entries.len()).unwrap_or_else(|| {
                fail(
                    Check::HashChain,
                    None,
                    "the signed trailer's head is not the hash of the last entry: the transcript was cut and extended, or altered",
                )
            }));
        }
    }
    if let Some(i) = entries.iter().position(|e| !recorded(e)) {
        return Err(altered(i));
    }
    let Some(t) = trailer else {
        return Ok(());
    };
    if let Some(first) = entries.first() {
        if t.project != first.signed.statement.project {
            return Err(fail(
                Check::HashChain,
                None,
                format!(
                    "the signed trailer is for project {}, not {}",
                    t.project, first.signed.statement.project
                ),
            ));
        }
    }
    t.check(entries, &linker.signing_key).map_err(|()| {
        fail(
            Check::HashChain,
            None,
            format!(
                "the trailer's signature is not the linker {}'s",
                linker.name
            ),
        )
    })
}

/// [`Check::Signatures`]: every author's statement signature.
fn check_signatures(
    entries: &[Entry],
    manifest: &Manifest,
    verified: usize,
) -> Result<(), VerifyError> {
    // The researcher's key is the one the order names; without an order no
    // researcher signature can be checked (and the order check fails).
    let researcher = entries
        .first()
        .and_then(|e| match &e.signed.statement.body {
            Body::Order(o) => Some(o.researcher_signing_key),
            _ => None,
        });
    for (i, e) in entries.iter().enumerate().skip(verified) {
        let at = Some(i as u64);
        let st = &e.signed.statement;
        let key = match &st.signer {
            Signer::Node(name) => {
                manifest
                    .member(name)
                    .map(|m| m.signing_key)
                    .ok_or_else(|| {
                        fail(
                            Check::Signatures,
                            at,
                            format!("signer {name} is not a member of the manifest"),
                        )
                    })?
            }
            Signer::Operator { register, key } => {
                if !manifest.is_operator_of(register, key) {
                    return Err(fail(
                        Check::Signatures,
                        at,
                        format!(
                            "key {} is not an authorised operator of {register} in the manifest",
                            short(&key.0)
                        ),
                    ));
                }
                *key
            }
            Signer::Researcher(key) => {
                if researcher != Some(*key) {
                    return Err(fail(
                        Check::Signatures,
                        at,
                        format!(
                            "signed by researcher key {}, which is not the one the project order names",
                            short(&key.0)
                        ),
                    ));
                }
                *key
            }
        };
        if e.signed.verify_with(&key).is_err() {
            return Err(fail(
                Check::Signatures,
                at,
                format!(
                    "the {} statement's signature does not verify with the key of {}",
                    st.body.kind(),
                    signer_name(&st.signer)
                ),
            ));
        }
    }
    Ok(())
}

/// [`Check::Order`]: the order, the project of every entry, and who may
/// sign what.
fn check_order<'a>(
    entries: &'a [Entry],
    manifest: &'a Manifest,
    linker: &'a Member,
) -> Result<Project<'a>, VerifyError> {
    let first = entries
        .first()
        .ok_or_else(|| fail(Check::Order, None, "the transcript is empty"))?;
    let Body::Order(order) = &first.signed.statement.body else {
        return Err(fail(
            Check::Order,
            Some(0),
            format!(
                "the first entry is a {} statement, not the project order",
                first.signed.statement.body.kind()
            ),
        ));
    };
    if !matches!(first.signed.statement.signer, Signer::Researcher(_)) {
        return Err(fail(
            Check::Order,
            Some(0),
            "the project order is not signed by the researcher",
        ));
    }
    // The signature check made the researcher key the order's own, so the
    // manifest check saw this order intact and compared its digest.
    let at0 = |reason: String| fail(Check::Order, Some(0), reason);
    if order.project != first.signed.statement.project {
        return Err(at0(format!(
            "the order is for project {} but its statement for {}",
            order.project, first.signed.statement.project
        )));
    }
    if order.linker != linker.name {
        return Err(at0(format!(
            "the order names linker {} but the manifest's linker is {}",
            order.linker, linker.name
        )));
    }
    // Issue 18 item 2: access is granted by an authority of the manifest;
    // a delivery needs no grant (its orderer, an operator of the source,
    // is checked below), but one it carries must hold.
    if order.delivery.is_none() || order.grant.is_some() {
        order
            .check_grant(manifest)
            .map_err(|e| at0(e.to_string()))?;
    }
    // An identified project (§10a): a researcher list of someone, fnr
    // lists only.
    crate::identified::check_order(order).map_err(|e| at0(e.to_string()))?;
    // A delivery into a register domain (§10): a domain the manifest
    // declares, one source that is not its holder, sealed to the holder,
    // ordered by an operator of the source.
    let delivery = match order.delivery {
        Some(_) => Some(
            crate::receipt::check_delivery_order(manifest, order)
                .map_err(|e| at0(e.to_string()))?,
        ),
        None => None,
    };
    let participants = order.register_names();
    let mut seen = HashSet::new();
    for r in &participants {
        if !manifest.registers().any(|m| &m.name == r) {
            return Err(at0(format!(
                "the order names {r}, which is not a register in the manifest"
            )));
        }
        if !seen.insert(r) {
            return Err(at0(format!("the order names register {r} twice")));
        }
    }
    crate::domain::validate_order_domains(manifest, order)
        .map_err(|e| at0(format!("the order's pseudonymous lists: {e}")))?;
    let registers = crate::domain::key_registers(manifest, order);
    // An identified project's researcher list is named `RESEARCHER`,
    // which no member may bear (its owner is the researcher's client).
    crate::researcher_list::check_manifest(manifest, order).map_err(|e| at0(e.to_string()))?;
    let lists = order.lists();
    let cohort = order
        .linked_cohort()
        .and_then(|c| c.check_lists(&lists).map(|()| c))
        .map_err(|e| at0(format!("the cohort expression is invalid: {e}")))?;
    let project = Project {
        order,
        order_digest: order.digest(),
        participants,
        lists,
        registers,
        cohort,
        domain: order.key_domain(),
        linker,
        manifest,
        delivery,
    };

    let mut announced = HashSet::new();
    for (i, e) in entries.iter().enumerate().skip(1) {
        let at = Some(i as u64);
        let st = &e.signed.statement;
        if st.project != order.project {
            return Err(fail(
                Check::Order,
                at,
                format!(
                    "entry is about project {}, not {}",
                    st.project, order.project
                ),
            ));
        }
        let by_node = |expected: &Name| -> Result<(), VerifyError> {
            match &st.signer {
                Signer::Node(n) if n == expected => Ok(()),
                other => Err(fail(
                    Check::Order,
                    at,
                    format!(
                        "a {} statement for {expected} must be signed by node {expected}, not by {}",
                        st.body.kind(),
                        signer_name(other)
                    ),
                )),
            }
        };
        // The researcher list's statements are the researcher's
        // (docs/protocol.md §18).
        let by_researcher = || v2::researcher_signed(order, st, at);
        // A list is announced once, by its own node (the researcher list by
        // the researcher), and is in the order.
        let announce = |list: &'a ListName, announced: &mut HashSet<&'a ListName>| {
            if order.is_researcher_list(list) {
                by_researcher()?;
                crate::researcher_list::check_announcement(order, &e.signed)
                    .map_err(|err| fail(Check::Order, at, err.to_string()))?;
            } else {
                by_node(list.owner())?;
            }
            if !project.lists.contains(list) {
                return Err(fail(
                    Check::Order,
                    at,
                    format!("list {list} is not in the order"),
                ));
            }
            if !announced.insert(list) {
                return Err(fail(
                    Check::Order,
                    at,
                    format!("list {list} announced twice"),
                ));
            }
            Ok(())
        };
        match &st.body {
            Body::Order(_) => return Err(fail(Check::Order, at, "a second project order")),
            // Who may approve is the two-person rule's business.
            Body::Approval(_) => {}
            Body::Commitment(c) => by_node(&c.member)?,
            Body::ListAnnounced(a) => announce(&a.list, &mut announced)?,
            Body::Hop(h) => by_node(&h.member)?,
            Body::LinkSummary(_) | Body::Delivery(_) | Body::Closure(_) => by_node(&linker.name)?,
            Body::Shredded(s) => by_node(&s.member)?,
            Body::ListAnnouncedV2(a) => announce(&a.list, &mut announced)?,
            Body::OwnerListV2(o) if order.is_researcher_list(&o.list) => by_researcher()?,
            Body::OwnerListV2(o) => by_node(o.list.owner())?,
            Body::HopV2(h) => by_node(&h.member)?,
            Body::ListCheck(_) | Body::ListRetry(_) => by_node(&linker.name)?,
            // Who may stop a chain is the hop-chain check's business.
            Body::ChainStopped(_) => {}
            Body::Conversion(c) => by_node(&c.member)?,
        }
    }
    Ok(project)
}

/// Whether `key` is a valid, not weak, Ed25519 public key.
fn is_valid_key(key: &Ed25519Key) -> bool {
    ed25519_dalek::VerifyingKey::from_bytes(&key.0).is_ok_and(|k| !k.is_weak())
}

/// Who signed, for messages: a node name, "operator <key prefix> of R", or
/// "the researcher".
pub(crate) fn signer_name(s: &Signer) -> String {
    match s {
        Signer::Node(n) => format!("node {n}"),
        Signer::Operator { register, key } => {
            format!("operator {} of {register}", short(&key.0))
        }
        Signer::Researcher(_) => "the researcher".into(),
    }
}

/// The first 16 hex digits of a key or digest: enough to tell them apart,
/// never a whole key in a report.
pub(crate) fn short(bytes: &[u8; 32]) -> String {
    bytes[..8].iter().map(|b| format!("{b:02x}")).collect()
}
