//! The checks of the lists' journey: hop chain, proofs, link summary,
//! delivery, closure (the second half of [`super::Check::ALL`]).

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap, HashSet},
};

use super::{fail, short, v2::V2Lists, Check, Project, VerifyError};
use crate::{
    dleq::{self, ChunkStatement},
    group::WirePoint,
    merkle::root_of_aligned_chunks,
    transcript::{
        body::{Body, HopRecord, ListAnnouncement},
        Entry,
    },
    types::{ChunkIndex, Digest, HopIndex, ListName, Name},
};

/// One list's progress through its hops.
pub(crate) struct ListState<'a> {
    /// The announcement (for a v2 list: its v1-shaped summary, with no
    /// points root).
    pub(crate) announcement: Cow<'a, ListAnnouncement>,
    /// Members in hop order after the owner, then the linker.
    pub(crate) hops: Vec<Name>,
    /// Hop records seen.
    pub(crate) done: u32,
    pub(crate) last_output: Digest,
    /// The linker hop's output root, once the list is complete.
    pub(crate) final_root: Option<Digest>,
}

/// Every announced list, as the hop-chain check left it.
pub(crate) struct Lists<'a> {
    by_name: BTreeMap<ListName, ListState<'a>>,
    /// Names in order of announcement.
    order: Vec<ListName>,
    /// Chain v2 lists.
    pub(crate) v2: V2Lists<'a>,
}

impl<'a> Lists<'a> {
    /// The lists in order of announcement.
    pub(crate) fn in_order(&self) -> impl Iterator<Item = &ListState<'a>> {
        self.order.iter().filter_map(|n| self.by_name.get(n))
    }

    pub(crate) fn get(&self, list: &ListName) -> Option<&ListState<'a>> {
        self.by_name.get(list)
    }

    pub(crate) fn get_mut(&mut self, list: &ListName) -> Option<&mut ListState<'a>> {
        self.by_name.get_mut(list)
    }

    /// Adds an announced list.
    pub(crate) fn insert(&mut self, state: ListState<'a>) {
        self.order.push(state.announcement.list.clone());
        self.by_name.insert(state.announcement.list.clone(), state);
    }
}

/// What the link summary establishes.
pub(crate) struct Summary {
    pub(crate) cohort_persons: u64,
    pub(crate) matched: HashMap<ListName, u64>,
}

/// [`Check::HopChain`]: every list's hops in manifest order, roots chained,
/// counts conserved; every list complete before the linkage.
pub(crate) fn check_hop_chain<'a>(
    entries: &'a [Entry],
    p: &Project<'_>,
) -> Result<Lists<'a>, VerifyError> {
    let mut lists = Lists {
        by_name: BTreeMap::new(),
        order: Vec::new(),
        v2: V2Lists::default(),
    };
    for (i, e) in entries.iter().enumerate() {
        let at = Some(i as u64);
        match &e.signed.statement.body {
            Body::ListAnnounced(a) => {
                // Counts come from a peer: overflow is a refusal, never a wrap.
                let invalid = a
                    .invalid
                    .iter()
                    .try_fold(0u64, |sum, c| sum.checked_add(c.count));
                let valid = invalid.and_then(|invalid| a.rows.checked_sub(invalid));
                if valid.is_none_or(|valid| a.persons > valid) {
                    return Err(fail(
                        Check::HopChain,
                        at,
                        format!(
                            "list {} announces {} persons from {} rows of which {} invalid",
                            a.list,
                            a.persons,
                            a.rows,
                            invalid.map_or("more than 2^64".to_string(), |i| i.to_string())
                        ),
                    ));
                }
                if !a.chunk_size.is_power_of_two() {
                    return Err(fail(
                        Check::HopChain,
                        at,
                        format!("list {}: chunk size is not a power of two", a.list),
                    ));
                }
                let mut hops = p.manifest.chain_order(a.list.owner(), &p.registers);
                hops.remove(0);
                hops.push(p.linker.name.clone());
                lists.order.push(a.list.clone());
                lists.by_name.insert(
                    a.list.clone(),
                    ListState {
                        announcement: Cow::Borrowed(a),
                        hops,
                        done: 0,
                        last_output: a.points_root,
                        final_root: None,
                    },
                );
            }
            Body::Hop(h) => {
                let state = lists.by_name.get_mut(&h.list).ok_or_else(|| {
                    fail(
                        Check::HopChain,
                        at,
                        format!("hop record for list {}, which was not announced", h.list),
                    )
                })?;
                check_hop(h, state, &p.linker.name, at)?;
            }
            Body::ListAnnouncedV2(_)
            | Body::OwnerListV2(_)
            | Body::HopV2(_)
            | Body::ListCheck(_)
            | Body::ChainStopped(_)
            | Body::ListRetry(_) => {
                let st = &e.signed.statement;
                super::v2::on_body(&mut lists, &st.body, &st.signer, p, at)?;
            }
            Body::LinkSummary(_) => {
                super::v2::retries_checked(&lists, at)?;
                for name in &p.lists {
                    let state = lists.get(name).ok_or_else(|| {
                        fail(
                            Check::HopChain,
                            at,
                            format!("linked before list {name} was announced"),
                        )
                    })?;
                    if state.final_root.is_none() {
                        return Err(fail(
                            Check::HopChain,
                            at,
                            format!(
                                "linked before list {name} passed every hop ({} of {})",
                                state.done,
                                state.hops.len()
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(lists)
}

fn check_hop(
    h: &HopRecord,
    state: &mut ListState<'_>,
    linker: &Name,
    at: Option<u64>,
) -> Result<(), VerifyError> {
    let a = &*state.announcement;
    let hop_fail = |reason: String| fail(Check::HopChain, at, reason);
    let expected = state
        .hops
        .get(state.done as usize)
        .ok_or_else(|| hop_fail(format!("an extra hop for list {} after the linker", h.list)))?;
    if h.hop != HopIndex(state.done + 1) || &h.member != expected {
        return Err(hop_fail(format!(
            "list {}: hop {} by {} where hop {} by {expected} was expected",
            h.list,
            h.hop,
            h.member,
            state.done + 1
        )));
    }
    if h.input_root != state.last_output {
        let previous = if state.done == 0 {
            "the owner's announced points root".to_string()
        } else {
            format!("the output root of hop {}", state.done)
        };
        return Err(hop_fail(format!(
            "list {} hop {}: input root {} is not {previous} ({})",
            h.list,
            h.hop,
            short(h.input_root.as_bytes()),
            short(state.last_output.as_bytes())
        )));
    }
    if h.count != a.persons || h.chunk_size != a.chunk_size {
        return Err(hop_fail(format!(
            "list {} hop {}: {} points in chunks of {} where the announcement has {} in chunks of {}",
            h.list, h.hop, h.count, h.chunk_size, a.persons, a.chunk_size
        )));
    }
    if &h.member != linker && h.linker.is_some() {
        return Err(hop_fail(format!(
            "list {} hop {}: a register hop carries a linker key proof",
            h.list, h.hop
        )));
    }
    let chunk = u64::from(a.chunk_size.max(1));
    let chunks = h.count.div_ceil(chunk);
    if h.chunks.len() as u64 != chunks {
        return Err(hop_fail(format!(
            "list {} hop {}: {} chunk records for {} points in chunks of {chunk}",
            h.list,
            h.hop,
            h.chunks.len(),
            h.count
        )));
    }
    for (c, rec) in h.chunks.iter().enumerate() {
        let want = if (c as u64) + 1 < chunks {
            chunk
        } else {
            h.count - chunk * (chunks - 1)
        };
        if u64::from(rec.count) != want {
            return Err(hop_fail(format!(
                "list {} hop {} chunk {c}: {} points where {want} were expected",
                h.list, h.hop, rec.count
            )));
        }
    }
    let ins: Vec<Digest> = h.chunks.iter().map(|c| c.input_root).collect();
    let outs: Vec<Digest> = h.chunks.iter().map(|c| c.output_root).collect();
    if root_of_aligned_chunks(&ins) != h.input_root
        || root_of_aligned_chunks(&outs) != h.output_root
    {
        return Err(hop_fail(format!(
            "list {} hop {}: the chunk roots do not add up to the list roots",
            h.list, h.hop
        )));
    }
    state.done += 1;
    state.last_output = h.output_root;
    if state.done as usize == state.hops.len() {
        state.final_root = Some(h.output_root);
    }
    Ok(())
}

/// [`Check::Proofs`]: every chunk proof, and the linker's key proof of
/// every list (of the entries from `verified` on: see
/// [`verify_appended`](super::verify_appended)).
pub(crate) fn check_proofs(
    entries: &[Entry],
    p: &Project<'_>,
    lists: &Lists<'_>,
    verified: usize,
) -> Result<(), VerifyError> {
    let project = &p.order.project;
    for (i, e) in entries.iter().enumerate().skip(verified) {
        let at = Some(i as u64);
        let Body::Hop(h) = &e.signed.statement.body else {
            continue;
        };
        // The hop chain check found every hop's list.
        let Some(state) = lists.get(&h.list) else {
            continue;
        };
        if h.member == p.linker.name {
            let lp = h.linker.as_ref().ok_or_else(|| {
                fail(
                    Check::Proofs,
                    at,
                    format!("list {}: the linker's hop has no key proof", h.list),
                )
            })?;
            if lp.combined != h.key {
                return Err(fail(
                    Check::Proofs,
                    at,
                    format!(
                        "list {}: the linker stepped with a key other than the one its key proof is about",
                        h.list
                    ),
                ));
            }
            let d = &state.announcement.blinding_commitment;
            let ctx = dleq::linker_key_context(project, &h.list, &lp.linker_key, d, &lp.combined);
            let decode = |w: &WirePoint| {
                w.decode().map_err(|_| {
                    fail(
                        Check::Proofs,
                        at,
                        format!(
                            "list {}: an invalid point in the linker's key proof",
                            h.list
                        ),
                    )
                })
            };
            let (k, d, c) = (decode(&lp.linker_key)?, decode(d)?, decode(&lp.combined)?);
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
        }
        for (c, rec) in h.chunks.iter().enumerate() {
            let statement = ChunkStatement {
                project,
                list: &h.list,
                hop: h.hop,
                chunk: ChunkIndex(c as u64),
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
                        "list {} hop {} ({}) chunk {c}: the DLEQ proof does not verify against the step key",
                        h.list, h.hop, h.member
                    ),
                )
            })?;
        }
    }
    super::v2::check_list_checks(p, lists)
}

/// [`Check::LinkSummary`]: one summary, agreeing with the order and the
/// hop records.
pub(crate) fn check_link_summary(
    entries: &[Entry],
    p: &Project<'_>,
    lists: &Lists<'_>,
) -> Result<Option<Summary>, VerifyError> {
    let mut summary: Option<Summary> = None;
    for (i, e) in entries.iter().enumerate() {
        let at = Some(i as u64);
        let Body::LinkSummary(s) = &e.signed.statement.body else {
            continue;
        };
        let sum_fail = |reason: String| fail(Check::LinkSummary, at, reason);
        if summary.is_some() {
            return Err(sum_fail("a second link summary".into()));
        }
        if s.cohort.as_str() != p.cohort.to_string() {
            return Err(sum_fail(format!(
                "the summary's cohort {:?} is not the order's {:?}",
                s.cohort.as_str(),
                p.cohort.to_string()
            )));
        }
        if s.lists.len() != p.lists.len() {
            return Err(sum_fail(format!(
                "the summary has {} lists where the order has {}",
                s.lists.len(),
                p.lists.len()
            )));
        }
        let mut matched = HashMap::new();
        for name in &p.lists {
            // The hop chain check saw every list complete before linkage.
            let Some((state, final_root)) = lists
                .get(name)
                .and_then(|state| Some((state, state.final_root?)))
            else {
                return Err(sum_fail(format!("list {name} was not linked")));
            };
            let mut found = s.lists.iter().filter(|l| &l.list == name);
            let (Some(l), None) = (found.next(), found.next()) else {
                return Err(sum_fail(format!(
                    "list {name} is missing from the summary, or there twice"
                )));
            };
            if l.final_root != final_root {
                return Err(sum_fail(format!(
                    "list {name}: the summary's final root is not the linker hop's output root"
                )));
            }
            if l.persons != state.announcement.persons || l.matched > l.persons {
                return Err(sum_fail(format!(
                    "list {name}: the summary's {} matched of {} persons disagree with the {} announced",
                    l.matched, l.persons, state.announcement.persons
                )));
            }
            matched.insert(name.clone(), l.matched);
        }
        // Every cohort person is in some list, and a list's matched persons
        // are in the cohort: max(matched) <= cohort <= sum(matched).
        let most = matched.values().copied().max().unwrap_or(0);
        // In u128: 32 lists of up to 2^64 - 1 persons cannot overflow it.
        let total: u128 = matched.values().map(|m| u128::from(*m)).sum();
        if s.cohort_persons < most || u128::from(s.cohort_persons) > total {
            return Err(sum_fail(format!(
                "a cohort of {} persons cannot come from lists matching {most} at most and {total} in all",
                s.cohort_persons
            )));
        }
        summary = Some(Summary {
            cohort_persons: s.cohort_persons,
            matched,
        });
    }
    Ok(summary)
}

/// [`Check::Delivery`]: deliveries after the linkage, to the order's
/// researcher, of the matched persons of each list.
pub(crate) fn check_delivery(
    entries: &[Entry],
    p: &Project<'_>,
    summary: Option<&Summary>,
) -> Result<bool, VerifyError> {
    let mut delivered = false;
    let mut linked = false;
    for (i, e) in entries.iter().enumerate() {
        let at = Some(i as u64);
        match &e.signed.statement.body {
            Body::LinkSummary(_) => linked = true,
            Body::Delivery(d) => {
                let matched = match summary {
                    Some(s) if linked => &s.matched,
                    _ => return Err(fail(Check::Delivery, at, "a delivery before the linkage")),
                };
                // A delivery into a register domain goes to its holder's
                // node, a project's to its researcher.
                let recipient = match &p.delivery {
                    Some(plan) => p.manifest.member(&plan.spec.holder).map(|m| m.signing_key),
                    None => Some(p.order.researcher_signing_key),
                };
                if Some(d.recipient) != recipient {
                    return Err(fail(
                        Check::Delivery,
                        at,
                        format!(
                            "delivered to key {}, not the order's recipient",
                            short(&d.recipient.0)
                        ),
                    ));
                }
                let mut seen = HashSet::new();
                for l in d.lists.iter() {
                    if !seen.insert(&l.list) {
                        return Err(fail(
                            Check::Delivery,
                            at,
                            format!("list {} delivered twice in one delivery", l.list),
                        ));
                    }
                    if matched.get(&l.list) != Some(&l.items) {
                        return Err(fail(
                            Check::Delivery,
                            at,
                            format!(
                                "{} items of list {} delivered where the link summary matched {}",
                                l.items,
                                l.list,
                                matched
                                    .get(&l.list)
                                    .map_or("none".to_string(), |m| m.to_string())
                            ),
                        ));
                    }
                }
                delivered = true;
            }
            _ => {}
        }
    }
    Ok(delivered)
}

/// [`Check::Closure`]: after a closure only shredding confirmations, and,
/// in a complete (trailer-signed) transcript, one from every key holder (a
/// live transcript may still be collecting them).
pub(crate) fn check_closure(
    entries: &[Entry],
    p: &Project<'_>,
    complete: bool,
) -> Result<bool, VerifyError> {
    let mut closed = false;
    let mut shredded = HashSet::new();
    for (i, e) in entries.iter().enumerate() {
        let at = Some(i as u64);
        match &e.signed.statement.body {
            Body::Closure(_) => {
                if closed {
                    return Err(fail(Check::Closure, at, "closed twice"));
                }
                closed = true;
            }
            Body::Shredded(s) => {
                if !closed {
                    return Err(fail(
                        Check::Closure,
                        at,
                        "shredding recorded before the closure",
                    ));
                }
                if s.domain != p.domain {
                    return Err(fail(
                        Check::Closure,
                        at,
                        format!("shredding of {}, not this project", s.domain),
                    ));
                }
                if !p.is_key_holder(&s.member) {
                    return Err(fail(
                        Check::Closure,
                        at,
                        format!("{} holds no key in this project", s.member),
                    ));
                }
                shredded.insert(&s.member);
            }
            body if closed => {
                return Err(fail(
                    Check::Closure,
                    at,
                    format!("a {} statement after the closure", body.kind()),
                ));
            }
            _ => {}
        }
    }
    if closed && complete {
        if let Some(m) = p.key_holders().find(|m| !shredded.contains(m)) {
            return Err(fail(
                Check::Closure,
                None,
                format!("the project is closed but {m} has not recorded shredding its key"),
            ));
        }
    }
    Ok(closed)
}
