//! The transcript verifier: everything an auditor checks offline
//! (PROTOCOL.md §8), given the entries and the manifest.
//!
//! Checks run in one pass over the entries, in order, so "before" in the
//! rules below means "at a lower sequence number". The first failure stops
//! verification and is reported with its check and entry number.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::{
    body::{Body, HopRecord, ListAnnouncement, ProjectOrder},
    file::Trailer,
    verify_sig, Entry, Signer,
};
use crate::{
    dleq::{self, ChunkStatement},
    group::WirePoint,
    link::Cohort,
    manifest::{Key32, Manifest},
    merkle::root_of_aligned_chunks,
    share::Domain,
    types::{Digest, Name},
};

/// The named checks, in the order an auditor reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Check {
    /// The manifest is valid and is the one the order names.
    Manifest,
    /// Sequence numbers, previous-entry hashes and the signed trailer.
    HashChain,
    /// Every statement signature against the manifest (or the order, for
    /// the researcher) and every recorder signature against the linker.
    Signatures,
    /// The first entry is the order, signed by its researcher; every entry
    /// is about that project; every signer acts within its authority.
    Order,
    /// Two approvals by distinct authorised operators of the register, for
    /// this order and the announced extract, before its list was announced.
    TwoPersonRule,
    /// A commitment from every key holder before its key is used.
    Commitments,
    /// Every list's hops in manifest order, roots chained, counts conserved.
    HopChain,
    /// Every DLEQ proof (chunk proofs and the linker's key proofs).
    Proofs,
    /// The link summary agrees with the hop records.
    LinkSummary,
    /// The delivery agrees with the link summary and the order.
    Delivery,
    /// A closed project was shredded by every key holder.
    Closure,
}

impl Check {
    /// Every check.
    pub const ALL: [Check; 11] = [
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
    /// The entry where it failed, if any one entry.
    pub entry: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

/// Per-list facts established by verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedList {
    /// The list.
    pub list: Name,
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

fn fail(check: Check, entry: Option<u64>, reason: impl Into<String>) -> VerifyError {
    VerifyError {
        check,
        entry,
        reason: reason.into(),
    }
}

struct ListState<'a> {
    announcement: &'a ListAnnouncement,
    /// Members in hop order after the owner, then the linker.
    hops: Vec<Name>,
    done: u32,
    last_output: Digest,
    final_root: Option<Digest>,
}

/// Verifies a transcript against a manifest.
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
    let linker_key = linker.signing_key;

    // Chain and recorder signatures first: nothing else is worth reading
    // from a log whose order is not fixed.
    let mut prev = Digest::default();
    for (i, e) in entries.iter().enumerate() {
        let at = Some(i as u64);
        if e.seq != i as u64 {
            return Err(fail(
                Check::HashChain,
                at,
                format!("sequence number {} where {i} was expected", e.seq),
            ));
        }
        if e.prev != prev {
            return Err(fail(Check::HashChain, at, "previous-entry hash does not match: an entry was removed, inserted, reordered or altered"));
        }
        if verify_sig(
            &linker_key,
            e.link_digest().as_bytes(),
            &e.recorder_signature,
        )
        .is_err()
        {
            return Err(fail(
                Check::Signatures,
                at,
                format!("the recorder signature is not the linker {}'s", linker.name),
            ));
        }
        prev = e.hash();
    }
    if let Some(t) = trailer {
        t.check(entries, &linker_key).map_err(|()| {
            fail(Check::HashChain, None, "the signed trailer does not match the entries: the transcript was truncated, extended or altered")
        })?;
    }

    let first = entries
        .first()
        .ok_or_else(|| fail(Check::Order, None, "the transcript is empty"))?;
    let Body::Order(order) = &first.signed.statement.body else {
        return Err(fail(
            Check::Order,
            Some(0),
            "the first entry is not the project order",
        ));
    };
    let order_digest = order.digest();
    if order.manifest_digest != manifest.digest() {
        return Err(fail(Check::Manifest, Some(0), format!(
            "the order names manifest {} but this manifest is {}: verify against the manifest the project ran under",
            order.manifest_digest, manifest.digest()
        )));
    }
    if order.linker != linker.name {
        return Err(fail(
            Check::Order,
            Some(0),
            format!(
                "the order names linker {} but the manifest's linker is {}",
                order.linker, linker.name
            ),
        ));
    }
    let participants = order.register_names();
    for r in &participants {
        if !manifest.registers().any(|m| &m.name == r) {
            return Err(fail(
                Check::Order,
                Some(0),
                format!("the order names {r}, which is not a register in the manifest"),
            ));
        }
    }
    let cohort = Cohort::parse(&order.cohort).map_err(|e| {
        fail(
            Check::Order,
            Some(0),
            format!("the cohort expression is invalid: {e}"),
        )
    })?;
    cohort.check_lists(&participants).map_err(|e| {
        fail(
            Check::Order,
            Some(0),
            format!("the cohort expression is invalid: {e}"),
        )
    })?;
    let domain = Domain::Project(order.project.clone());

    let mut approvals: HashMap<Name, Vec<(Key32, Digest)>> = HashMap::new();
    let mut commitments: HashMap<Name, WirePoint> = HashMap::new();
    let mut lists: BTreeMap<Name, ListState<'_>> = BTreeMap::new();
    let mut list_order: Vec<Name> = Vec::new();
    let mut link_summary: Option<(u64, HashMap<Name, u64>)> = None;
    let mut delivered = false;
    let mut closed = false;
    let mut shredded: HashSet<Name> = HashSet::new();

    for (i, e) in entries.iter().enumerate() {
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
        // Resolve and check the author's key.
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
                            short(key)
                        ),
                    ));
                }
                *key
            }
            Signer::Researcher(key) => {
                if *key != order.researcher_signing_key {
                    return Err(fail(
                        Check::Signatures,
                        at,
                        "signed by a researcher key other than the order's",
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
                    "the {} statement's signature does not verify",
                    st.body.kind()
                ),
            ));
        }
        let node = |expected: &Name| -> Result<(), VerifyError> {
            match &st.signer {
                Signer::Node(n) if n == expected => Ok(()),
                _ => Err(fail(
                    Check::Order,
                    at,
                    format!(
                        "a {} statement for {expected} must be signed by node {expected}",
                        st.body.kind()
                    ),
                )),
            }
        };

        match &st.body {
            Body::Order(_) if i == 0 => {
                if !matches!(st.signer, Signer::Researcher(_)) {
                    return Err(fail(
                        Check::Order,
                        at,
                        "the order is not signed by the researcher",
                    ));
                }
            }
            Body::Order(_) => return Err(fail(Check::Order, at, "a second project order")),
            Body::Approval(a) => {
                let Signer::Operator { register, key } = &st.signer else {
                    return Err(fail(
                        Check::TwoPersonRule,
                        at,
                        "an approval not signed by an operator",
                    ));
                };
                if register != &a.register {
                    return Err(fail(
                        Check::TwoPersonRule,
                        at,
                        format!("an operator of {register} approved for {}", a.register),
                    ));
                }
                if !participants.contains(&a.register) {
                    return Err(fail(
                        Check::TwoPersonRule,
                        at,
                        format!("approval for {}, which is not in the order", a.register),
                    ));
                }
                if a.order != order_digest {
                    return Err(fail(
                        Check::TwoPersonRule,
                        at,
                        "the approval binds a different project order",
                    ));
                }
                approvals
                    .entry(a.register.clone())
                    .or_default()
                    .push((*key, a.extract));
            }
            Body::Commitment(c) => {
                node(&c.member)?;
                if c.domain != domain {
                    return Err(fail(
                        Check::Commitments,
                        at,
                        format!("commitment for {}, not this project", c.domain),
                    ));
                }
                if !participants.contains(&c.member) && c.member != linker.name {
                    return Err(fail(
                        Check::Commitments,
                        at,
                        format!("{} holds no key in this project", c.member),
                    ));
                }
                if let Some(old) = commitments.insert(c.member.clone(), c.key) {
                    if old != c.key {
                        return Err(fail(
                            Check::Commitments,
                            at,
                            format!("{} committed to two different keys", c.member),
                        ));
                    }
                }
            }
            Body::ListAnnounced(a) => {
                node(&a.list)?;
                if !participants.contains(&a.list) {
                    return Err(fail(
                        Check::Order,
                        at,
                        format!("list {} is not in the order", a.list),
                    ));
                }
                if lists.contains_key(&a.list) {
                    return Err(fail(
                        Check::Order,
                        at,
                        format!("list {} announced twice", a.list),
                    ));
                }
                let approvers: HashSet<Key32> = approvals
                    .get(&a.list)
                    .into_iter()
                    .flatten()
                    .filter(|(_, extract)| *extract == a.extract)
                    .map(|(k, _)| *k)
                    .collect();
                if approvers.len() < 2 {
                    return Err(fail(Check::TwoPersonRule, at, format!(
                        "list {} was announced with {} distinct operator approval(s) of its extract; two are required",
                        a.list, approvers.len()
                    )));
                }
                if !a.chunk_size.is_power_of_two() {
                    return Err(fail(
                        Check::HopChain,
                        at,
                        "chunk size is not a power of two",
                    ));
                }
                let mut hops = manifest.chain_order(&a.list, &participants);
                hops.remove(0);
                hops.push(linker.name.clone());
                list_order.push(a.list.clone());
                lists.insert(
                    a.list.clone(),
                    ListState {
                        announcement: a,
                        hops,
                        done: 0,
                        last_output: a.points_root,
                        final_root: None,
                    },
                );
            }
            Body::Hop(h) => {
                node(&h.member)?;
                let state = lists.get_mut(&h.list).ok_or_else(|| {
                    fail(
                        Check::HopChain,
                        at,
                        format!("hop record for list {}, which was not announced", h.list),
                    )
                })?;
                check_hop(h, state, &commitments, &order.project, &linker.name, at)?;
            }
            Body::LinkSummary(s) => {
                node(&linker.name)?;
                if link_summary.is_some() {
                    return Err(fail(Check::LinkSummary, at, "a second link summary"));
                }
                if s.cohort.as_str() != cohort.to_string() {
                    return Err(fail(
                        Check::LinkSummary,
                        at,
                        "the summary's cohort is not the order's",
                    ));
                }
                let mut matched = HashMap::new();
                for name in &participants {
                    let state = lists.get(name).ok_or_else(|| {
                        fail(
                            Check::HopChain,
                            at,
                            format!("linked before list {name} was announced"),
                        )
                    })?;
                    let Some(final_root) = state.final_root else {
                        return Err(fail(
                            Check::HopChain,
                            at,
                            format!("linked before list {name} passed every hop"),
                        ));
                    };
                    let l = s.lists.iter().find(|l| &l.list == name).ok_or_else(|| {
                        fail(
                            Check::LinkSummary,
                            at,
                            format!("list {name} is missing from the summary"),
                        )
                    })?;
                    if l.final_root != final_root
                        || l.persons != state.announcement.persons
                        || l.matched > l.persons
                    {
                        return Err(fail(
                            Check::LinkSummary,
                            at,
                            format!("list {name} in the summary disagrees with its hop records"),
                        ));
                    }
                    matched.insert(name.clone(), l.matched);
                }
                if s.lists.len() != participants.len() {
                    return Err(fail(
                        Check::LinkSummary,
                        at,
                        "the summary lists a list not in the order",
                    ));
                }
                link_summary = Some((s.cohort_persons, matched));
            }
            Body::Delivery(d) => {
                node(&linker.name)?;
                let Some((_, matched)) = &link_summary else {
                    return Err(fail(Check::Delivery, at, "delivery before linkage"));
                };
                if d.recipient != order.researcher_signing_key {
                    return Err(fail(
                        Check::Delivery,
                        at,
                        "delivered to a key other than the order's researcher",
                    ));
                }
                for l in d.lists.iter() {
                    if matched.get(&l.list) != Some(&l.items) {
                        return Err(fail(
                            Check::Delivery,
                            at,
                            format!(
                                "delivery of list {} disagrees with the link summary",
                                l.list
                            ),
                        ));
                    }
                }
                delivered = true;
            }
            Body::Closure(_) => {
                node(&linker.name)?;
                if closed {
                    return Err(fail(Check::Closure, at, "closed twice"));
                }
                closed = true;
            }
            Body::Shredded(s) => {
                node(&s.member)?;
                if !closed {
                    return Err(fail(
                        Check::Closure,
                        at,
                        "shredding recorded before the closure",
                    ));
                }
                if s.domain != domain {
                    return Err(fail(Check::Closure, at, "shredding of another domain"));
                }
                shredded.insert(s.member.clone());
            }
        }
    }

    // A complete (trailer-signed) transcript of a closed project must show
    // every key holder's shredding; a live one may still be collecting them.
    if closed && trailer.is_some() {
        for m in participants.iter().chain(std::iter::once(&linker.name)) {
            if !shredded.contains(m) {
                return Err(fail(
                    Check::Closure,
                    None,
                    format!("the project is closed but {m} has not recorded shredding its key"),
                ));
            }
        }
    }

    let lists = list_order
        .iter()
        .filter_map(|n| lists.get(n))
        .map(|s| VerifiedList {
            list: s.announcement.list.clone(),
            rows: s.announcement.rows,
            invalid: s.announcement.invalid.iter().map(|c| c.count).sum(),
            persons: s.announcement.persons,
            hops: s.done,
            complete: s.final_root.is_some(),
            matched: link_summary
                .as_ref()
                .and_then(|(_, m)| m.get(&s.announcement.list).copied()),
        })
        .collect();
    Ok(VerifiedTranscript {
        order: order.clone(),
        entries: entries.len(),
        lists,
        cohort_persons: link_summary.map(|(c, _)| c),
        delivered,
        closed,
    })
}

fn check_hop(
    h: &HopRecord,
    state: &mut ListState<'_>,
    commitments: &HashMap<Name, WirePoint>,
    project: &crate::types::ProjectId,
    linker: &Name,
    at: Option<u64>,
) -> Result<(), VerifyError> {
    let a = state.announcement;
    let index = state.done as usize;
    let expected = state.hops.get(index).ok_or_else(|| {
        fail(
            Check::HopChain,
            at,
            format!("an extra hop for list {} after the linker", h.list),
        )
    })?;
    if h.hop != state.done + 1 || &h.member != expected {
        return Err(fail(
            Check::HopChain,
            at,
            format!(
                "list {}: hop {} by {} where hop {} by {expected} was expected",
                h.list,
                h.hop,
                h.member,
                state.done + 1
            ),
        ));
    }
    if h.input_root != state.last_output {
        return Err(fail(
            Check::HopChain,
            at,
            format!(
                "list {} hop {}: input root is not the previous hop's output root",
                h.list, h.hop
            ),
        ));
    }
    if h.count != a.persons || h.chunk_size != a.chunk_size {
        return Err(fail(
            Check::HopChain,
            at,
            format!(
                "list {} hop {}: count or chunk size differs from the announcement",
                h.list, h.hop
            ),
        ));
    }
    let chunk = u64::from(a.chunk_size.max(1));
    let chunks = h.count.div_ceil(chunk);
    if h.chunks.len() as u64 != chunks {
        return Err(fail(
            Check::HopChain,
            at,
            format!(
                "list {} hop {}: {} chunk records for {} points",
                h.list,
                h.hop,
                h.chunks.len(),
                h.count
            ),
        ));
    }
    for (c, rec) in h.chunks.iter().enumerate() {
        let want = if (c as u64) + 1 < chunks {
            chunk
        } else {
            h.count - chunk * (chunks - 1)
        };
        if u64::from(rec.count) != want {
            return Err(fail(
                Check::HopChain,
                at,
                format!("list {} hop {} chunk {c}: wrong point count", h.list, h.hop),
            ));
        }
    }
    let ins: Vec<Digest> = h.chunks.iter().map(|c| c.input_root).collect();
    let outs: Vec<Digest> = h.chunks.iter().map(|c| c.output_root).collect();
    if root_of_aligned_chunks(&ins) != h.input_root
        || root_of_aligned_chunks(&outs) != h.output_root
    {
        return Err(fail(
            Check::HopChain,
            at,
            format!(
                "list {} hop {}: chunk roots do not add up to the list roots",
                h.list, h.hop
            ),
        ));
    }

    // The step's key: the member's commitment, or for the linker C_j.
    let committed = commitments.get(&h.member).ok_or_else(|| {
        fail(
            Check::Commitments,
            at,
            format!("{} used its key before committing to it", h.member),
        )
    })?;
    if &h.member == linker {
        let lp = h
            .linker
            .as_ref()
            .ok_or_else(|| fail(Check::Proofs, at, "the linker's hop has no key proof"))?;
        if &lp.linker_key != committed || lp.combined != h.key {
            return Err(fail(
                Check::Proofs,
                at,
                "the linker's key proof is not about its committed key",
            ));
        }
        let ctx = dleq::linker_key_context(
            project,
            &h.list,
            &lp.linker_key,
            &a.blinding_commitment,
            &lp.combined,
        );
        let decode = |p: &WirePoint| {
            p.decode()
                .map_err(|_| fail(Check::Proofs, at, "invalid point in the linker's key proof"))
        };
        let (k, d, c) = (
            decode(&lp.linker_key)?,
            decode(&a.blinding_commitment)?,
            decode(&lp.combined)?,
        );
        let g = curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
        dleq::verify(&g, k.inner(), d.inner(), c.inner(), &ctx, &lp.proof).map_err(|_| {
            fail(
                Check::Proofs,
                at,
                format!(
                    "list {}: the linker's key proof log_G K_L = log_D C does not verify",
                    h.list
                ),
            )
        })?;
    } else {
        if h.linker.is_some() {
            return Err(fail(
                Check::HopChain,
                at,
                "a register hop carries a linker key proof",
            ));
        }
        if &h.key != committed {
            return Err(fail(
                Check::Commitments,
                at,
                format!("{} stepped with a key other than its commitment", h.member),
            ));
        }
    }
    for (c, rec) in h.chunks.iter().enumerate() {
        let statement = ChunkStatement {
            project,
            list: &h.list,
            hop: h.hop,
            chunk: c as u64,
            key: h.key,
            input_root: rec.input_root,
            output_root: rec.output_root,
            count: u64::from(rec.count),
        };
        dleq::verify_chunk_offline(&statement, &rec.proof).map_err(|_| {
            fail(
                Check::Proofs,
                at,
                format!(
                    "list {} hop {} chunk {c}: the DLEQ proof does not verify",
                    h.list, h.hop
                ),
            )
        })?;
    }
    state.done += 1;
    state.last_output = h.output_root;
    if state.done as usize == state.hops.len() {
        state.final_root = Some(h.output_root);
    }
    Ok(())
}

fn short(k: &Key32) -> String {
    k.to_hex()[..16].to_string()
}
