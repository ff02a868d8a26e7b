//! The chain v2 parts of verification: v2 lists' records in the
//! hop-chain check ([`on_body`]), and their list checks and step-key
//! proofs in the [`Check::Proofs`] check ([`check_list_checks`]).
//!
//! Per list attempt the transcript holds, in this order: the owner's
//! [`OwnerList`], the register hops' [`HopRecordV2`] 1…m, the linker's
//! hop record, and the linker's [`ListCheck`]. A failed check starts the
//! next attempt in strict mode; a list is complete once an attempt's check
//! passed.
//!
//! A node with strict mode records, instead of the failed check, the
//! linker's [`ListRetry`] right after the attempt's records, and the
//! failed check later (the check is withheld from registers, whose
//! replica must reach the strict attempt's records): the attempt waits,
//! in `retried`, for its check, which must have failed and must be
//! recorded before the link summary ([`retries_checked`]).

use std::{borrow::Cow, collections::BTreeMap};

use super::{
    fail,
    lists::{ListState, Lists},
    Check, Project, VerifyError,
};
use crate::{
    transcript::{body::Body, Signer},
    types::{Attempt, Digest, ListName},
    v2::{
        check::{verify_list_check, ChainView, PassContext},
        hop::verify_step_key,
        HopRecordV2, ListAnnouncementV2, ListCheck, ListHeader, ListRetry, Mode, OwnerList,
        LAST_ATTEMPT,
    },
};

/// One v2 list's attempts as the hop-chain check saw them.
pub(crate) struct V2List<'a> {
    announcement: &'a ListAnnouncementV2,
    attempt: Attempt,
    owner_list: Option<&'a OwnerList>,
    records: Vec<&'a HopRecordV2>,
    /// Every list check, with its entry and the attempt's records.
    checks: Vec<Concluded<'a>>,
    passed: bool,
    /// A `ChainStopped` was recorded: nothing more for this list.
    stopped: bool,
    /// Attempts a [`ListRetry`] ended, waiting for their failed check.
    retried: Vec<Retried<'a>>,
}

/// An attempt a [`ListRetry`] ended, with its records.
struct Retried<'a> {
    header: ListHeader,
    owner_list: &'a OwnerList,
    records: Vec<&'a HopRecordV2>,
}

struct Concluded<'a> {
    at: Option<u64>,
    header: ListHeader,
    owner_list: &'a OwnerList,
    records: Vec<&'a HopRecordV2>,
    check: &'a ListCheck,
}

/// Every v2 list.
#[derive(Default)]
pub(crate) struct V2Lists<'a> {
    by_name: BTreeMap<ListName, V2List<'a>>,
}

fn mode(attempt: Attempt) -> Mode {
    if attempt == Attempt::FIRST {
        Mode::Optimistic
    } else {
        Mode::Strict
    }
}

/// Handles a v2 body in the hop-chain check.
pub(crate) fn on_body<'a>(
    lists: &mut Lists<'a>,
    body: &'a Body,
    signer: &Signer,
    p: &Project<'_>,
    at: Option<u64>,
) -> Result<(), VerifyError> {
    let chain_fail = |reason: String| fail(Check::HopChain, at, reason);
    match body {
        Body::ListAnnouncedV2(a) => {
            let invalid: u64 = a.invalid.iter().map(|c| c.count).sum();
            if invalid > a.rows || a.persons > a.rows - invalid {
                return Err(chain_fail(format!(
                    "list {} announces {} persons from {} rows of which {invalid} invalid",
                    a.list, a.persons, a.rows
                )));
            }
            let header = a.header(p.domain.clone(), Attempt::FIRST, Mode::Optimistic);
            if header.validate().is_err() || a.blinding.is_empty() {
                return Err(chain_fail(format!(
                    "list {}: chunk size out of bounds, or no blinding commitment",
                    a.list
                )));
            }
            // A delivery's linker steps without a key proof: a list names
            // a delivery exactly when the order is one, and then its id.
            if a.delivery != p.order.delivery_id() {
                return Err(chain_fail(format!(
                    "list {}: its announcement names a delivery the order does not",
                    a.list
                )));
            }
            let mut hops = p.manifest.chain_order(a.list.owner(), &p.registers);
            hops.remove(0);
            hops.push(p.linker.name.clone());
            lists.insert(ListState {
                announcement: Cow::Owned(a.v1_shape()),
                hops,
                done: 0,
                last_output: Digest::default(),
                final_root: None,
            });
            lists.v2.by_name.insert(
                a.list.clone(),
                V2List {
                    announcement: a,
                    attempt: Attempt::FIRST,
                    owner_list: None,
                    records: Vec::new(),
                    checks: Vec::new(),
                    passed: false,
                    stopped: false,
                    retried: Vec::new(),
                },
            );
        }
        Body::OwnerListV2(o) => {
            let l = v2_list(&mut lists.v2, &o.list, at)?;
            if l.stopped || l.passed || o.attempt != l.attempt || l.owner_list.is_some() {
                return Err(chain_fail(format!(
                    "list {}: an owner's list statement for attempt {} where attempt {} is open",
                    o.list, o.attempt, l.attempt
                )));
            }
            // Streamed lists (docs/protocol.md §19): the owner's
            // end-of-list statement, signed last, must agree with itself
            // and with the announcement it follows.
            let header = l
                .announcement
                .header(p.domain.clone(), o.attempt, mode(o.attempt));
            if let Some(reason) = o.contradiction(&header) {
                return Err(chain_fail(format!("list {}: {reason}", o.list)));
            }
            l.owner_list = Some(o);
        }
        Body::HopV2(h) => {
            let state = lists.get(&h.list).ok_or_else(|| {
                chain_fail(format!(
                    "hop record for list {}, which was not announced",
                    h.list
                ))
            })?;
            let hops = state.hops.clone();
            let l = v2_list(&mut lists.v2, &h.list, at)?;
            let n = l.records.len();
            let a = l.announcement;
            let expected = hops.get(n).ok_or_else(|| {
                chain_fail(format!("an extra hop for list {} after the linker", h.list))
            })?;
            if l.stopped
                || l.passed
                || l.owner_list.is_none()
                || h.attempt != l.attempt
                || h.hop.as_usize() != n + 1
                || &h.member != expected
            {
                return Err(chain_fail(format!(
                    "list {} attempt {}: hop {} by {} where hop {} by {expected} of attempt {} was expected (after the owner's list statement)",
                    h.list, h.attempt, h.hop, h.member, n + 1, l.attempt
                )));
            }
            if h.count != a.persons
                || h.chunk_size != a.chunk_size
                || h.chunks.len() as u64
                    != a.header(p.domain.clone(), Attempt::FIRST, Mode::Optimistic)
                        .chunks()
            {
                return Err(chain_fail(format!(
                    "list {} hop {}: its size disagrees with the announcement",
                    h.list, h.hop
                )));
            }
            let previous: Vec<Digest> = match l.records.last() {
                Some(r) => r.chunks.iter().map(|c| c.output).collect(),
                None => l.owner_list.map(|o| o.chunks.to_vec()).unwrap_or_default(),
            };
            if h.chunks.iter().zip(&previous).any(|(c, d)| c.input != *d)
                || previous.len() != h.chunks.len()
            {
                return Err(chain_fail(format!(
                    "list {} hop {}: an input digest is not the previous step's output digest",
                    h.list, h.hop
                )));
            }
            let is_linker = h.member == p.linker.name;
            if is_linker != h.final_root.is_some() {
                return Err(chain_fail(format!(
                    "list {} hop {}: a final root on a register hop, or none on the linker's",
                    h.list, h.hop
                )));
            }
            l.records.push(h);
        }
        Body::ListCheck(c) => {
            let hops = lists.get(&c.list).map(|s| s.hops.len()).ok_or_else(|| {
                chain_fail(format!(
                    "a list check for list {}, which was not announced",
                    c.list
                ))
            })?;
            let l = v2_list(&mut lists.v2, &c.list, at)?;
            if let Some(i) = l.retried.iter().position(|r| r.header.attempt == c.attempt) {
                // The failed check of an attempt a retry ended.
                if c.passed {
                    return Err(chain_fail(format!(
                        "list {}: a passed list check for attempt {}, which the linker sent again",
                        c.list, c.attempt
                    )));
                }
                let r = l.retried.remove(i);
                l.checks.push(Concluded {
                    at,
                    header: r.header,
                    owner_list: r.owner_list,
                    records: r.records,
                    check: c,
                });
                return Ok(());
            }
            let Some(owner_list) = l.owner_list.filter(|_| {
                !l.stopped && !l.passed && c.attempt == l.attempt && l.records.len() == hops
            }) else {
                return Err(chain_fail(format!(
                    "list {}: a list check for attempt {} before every hop of attempt {} was recorded",
                    c.list, c.attempt, l.attempt
                )));
            };
            let header = l
                .announcement
                .header(p.domain.clone(), l.attempt, mode(l.attempt));
            l.checks.push(Concluded {
                at,
                header,
                owner_list,
                records: std::mem::take(&mut l.records),
                check: c,
            });
            let final_root = l.checks.last().and_then(|k| k.records.last()?.final_root);
            if c.passed {
                l.passed = true;
                let state = lists
                    .get_mut(&c.list)
                    .ok_or_else(|| chain_fail("gone".into()))?;
                state.done = hops as u32;
                state.final_root = final_root;
            } else {
                l.attempt = l.attempt.next();
                l.owner_list = None;
            }
        }
        Body::ListRetry(r) => on_retry(lists, r, p, at)?,
        Body::ChainStopped(stop) => {
            let Signer::Node(signer) = signer else {
                return Err(chain_fail("a chain stop not signed by a node".into()));
            };
            // The linker stops, naming nobody, a list of the order that has
            // no chain v2 state (announced for chain v1 to a chain v2
            // linker, whose entry it did not record).
            if !lists.v2.by_name.contains_key(&stop.list) {
                let of_order = p.lists.contains(&stop.list);
                if stop.named.is_some() || *signer != p.linker.name || !of_order {
                    return Err(chain_fail(format!(
                        "a chain stop for list {}, which has no chain v2 announcement, not the linker's unnamed stop of a list of the order",
                        stop.list
                    )));
                }
                return Ok(());
            }
            let hops = lists
                .get(&stop.list)
                .map(|s| s.hops.clone())
                .ok_or_else(|| {
                    chain_fail(format!(
                        "a chain stop for list {}, which was not announced",
                        stop.list
                    ))
                })?;
            let l = v2_list(&mut lists.v2, &stop.list, at)?;
            // A named hop is the list's owner (hop 0, whose name the list
            // bears) or a register hop of the list, and the signer is the
            // next step, which found it, in the open attempt; an unnamed
            // stop (a failed strict check) is the linker's.
            let by = match &stop.named {
                Some((hop, member)) => {
                    let h = hop.as_usize();
                    let named = match h.checked_sub(1) {
                        None => stop.list.is_owned_by(member),
                        Some(i) => hops.get(i) == Some(member),
                    };
                    if !named || h >= hops.len() {
                        return Err(chain_fail(format!(
                            "list {}: the chain stop names hop {hop} ({member}), which is neither the list's owner nor a register hop of it",
                            stop.list
                        )));
                    }
                    &hops[h]
                }
                None => &p.linker.name,
            };
            let failed_strict = stop.named.is_none()
                && l.checks.last().is_some_and(|k| {
                    !k.check.passed
                        && k.header.mode == Mode::Strict
                        && k.header.attempt == stop.attempt
                });
            // A named stop in an optimistic attempt: the next step refused
            // a chunk its sender signed that is malformed (docs/protocol.md
            // §6a, "Driving chain v2 from a node"). An unnamed one in the
            // open attempt: the linker stops the list without a failed
            // check (a record that does not chain, a pass that does not
            // verify, a list of no person), so the list is named.
            let open_strict = !l.passed && stop.attempt == l.attempt;
            if l.stopped || signer != by || !(failed_strict || open_strict) {
                return Err(chain_fail(format!(
                    "list {}: a chain stop for attempt {} by {signer} that no strict attempt of this list allows",
                    stop.list, stop.attempt
                )));
            }
            l.stopped = true;
        }
        _ => {}
    }
    Ok(())
}

/// A [`ListRetry`]: the open attempt is complete and not the last; it
/// waits for its failed check, and the next attempt opens.
fn on_retry<'a>(
    lists: &mut Lists<'a>,
    r: &ListRetry,
    p: &Project<'_>,
    at: Option<u64>,
) -> Result<(), VerifyError> {
    let chain_fail = |reason: String| fail(Check::HopChain, at, reason);
    let hops = lists.get(&r.list).map(|s| s.hops.len()).ok_or_else(|| {
        chain_fail(format!(
            "a list retry for list {}, which was not announced",
            r.list
        ))
    })?;
    let l = v2_list(&mut lists.v2, &r.list, at)?;
    let Some(owner_list) = l.owner_list.filter(|_| {
        !l.stopped
            && !l.passed
            && l.records.len() == hops
            && r.attempt == l.attempt.next()
            && r.attempt <= LAST_ATTEMPT
    }) else {
        return Err(chain_fail(format!(
            "list {}: a retry as attempt {} where attempt {} is open or not every hop of it was recorded",
            r.list, r.attempt, l.attempt
        )));
    };
    l.retried.push(Retried {
        header: l
            .announcement
            .header(p.domain.clone(), l.attempt, mode(l.attempt)),
        owner_list,
        records: std::mem::take(&mut l.records),
    });
    l.attempt = r.attempt;
    l.owner_list = None;
    Ok(())
}

/// At the link summary: every attempt a [`ListRetry`] ended has its
/// failed list check recorded.
pub(crate) fn retries_checked(lists: &Lists<'_>, at: Option<u64>) -> Result<(), VerifyError> {
    for (name, l) in &lists.v2.by_name {
        if let Some(r) = l.retried.first() {
            return Err(fail(
                Check::HopChain,
                at,
                format!(
                    "linked before the failed list check of list {name} attempt {} was recorded",
                    r.header.attempt
                ),
            ));
        }
    }
    Ok(())
}

fn v2_list<'l, 'a>(
    v2: &'l mut V2Lists<'a>,
    list: &ListName,
    at: Option<u64>,
) -> Result<&'l mut V2List<'a>, VerifyError> {
    v2.by_name.get_mut(list).ok_or_else(|| {
        fail(
            Check::HopChain,
            at,
            format!("a chain v2 record for list {list}, which has no v2 announcement"),
        )
    })
}

/// Chain v2's part of [`Check::Proofs`]: every list check recomputes, and
/// every combined step key's proof verifies.
pub(crate) fn check_list_checks(p: &Project<'_>, lists: &Lists<'_>) -> Result<(), VerifyError> {
    for l in lists.v2.by_name.values() {
        for k in &l.checks {
            let at = k.at;
            let list = &k.header.list;
            let lc_fail = |reason: String| fail(Check::Proofs, at, reason);
            let Some((linker, registers)) = k.records.split_last() else {
                return Err(lc_fail(format!("list {list}: no hop records")));
            };
            let blinding = &l.announcement.blinding;
            // The linker's step is k_L·β⁻¹ against D_j (or D₁), except in a
            // delivery, where it is k_{L,R} alone (the holder removes β);
            // with a split blinding, hop 1's is k_1·β₂⁻¹ against D₂.
            let mut expected_proofs: Vec<(&HopRecordV2, usize)> = if k.header.delivery.is_some() {
                Vec::new()
            } else {
                vec![(linker, 0)]
            };
            if blinding.len() == 2 {
                if let Some(first) = registers.first() {
                    expected_proofs.push((first, 1));
                }
            }
            for r in &k.records {
                let wanted = expected_proofs.iter().find(|(x, _)| std::ptr::eq(*x, *r));
                match (wanted, &r.key_proof) {
                    (None, None) => {}
                    (Some((_, d)), Some(kp)) => {
                        if kp.combined != r.key
                            || kp.blinding != blinding[*d]
                            || verify_step_key(&p.domain, list, &r.member, kp).is_err()
                        {
                            return Err(lc_fail(format!(
                                "list {list} hop {} ({}): the combined step key's proof does not verify",
                                r.hop, r.member
                            )));
                        }
                    }
                    _ => {
                        return Err(lc_fail(format!(
                            "list {list} hop {} ({}): a combined step key's proof is missing or unexpected",
                            r.hop, r.member
                        )))
                    }
                }
            }
            let registers: Vec<HopRecordV2> = registers.iter().map(|r| (*r).clone()).collect();
            let view = ChainView {
                header: &k.header,
                manifest: p.order.manifest_digest,
                owner: list.owner(),
                blinding,
                owner_list: k.owner_list,
                hops: &registers,
                linker: (&linker.member, linker.key),
            };
            let sigma = view
                .sigma()
                .map_err(|e| lc_fail(format!("list {list} attempt {}: {e}", k.header.attempt)))?;
            // The researcher list's owner is the researcher (its key the
            // order's); every other list's, the member of its name.
            let owner_key = if p.order.is_researcher_list(list) {
                Some(p.order.researcher_signing_key)
            } else {
                p.manifest.member(list.owner()).map(|m| m.signing_key)
            }
            .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k.0).ok())
            .ok_or_else(|| lc_fail(format!("list {list}: the owner has no valid key")))?;
            let ctx = PassContext {
                sigma,
                owner_key,
                step_keys: view.step_keys(),
            };
            if k.check.sigma != sigma {
                return Err(lc_fail(format!(
                    "list {list} attempt {}: the check seed is not the one the records give",
                    k.header.attempt
                )));
            }
            verify_list_check(&ctx, k.check)
                .map_err(|e| lc_fail(format!("list {list} attempt {}: {e}", k.header.attempt)))?;
        }
    }
    Ok(())
}

/// [`Check::Order`] of a statement of the researcher list (its
/// announcement, its end-of-list statement): signed as the order's
/// researcher (docs/protocol.md §18).
pub(crate) fn researcher_signed(
    order: &crate::transcript::ProjectOrder,
    st: &crate::transcript::Statement,
    at: Option<u64>,
) -> Result<(), VerifyError> {
    if st.signer == Signer::Researcher(order.researcher_signing_key) {
        return Ok(());
    }
    Err(fail(
        Check::Order,
        at,
        format!(
            "a {} statement of the researcher list must be signed by the project's researcher, not by {}",
            st.body.kind(),
            super::signer_name(&st.signer)
        ),
    ))
}
