//! The checks of who may act: the two-person rule and the key
//! commitments (see [`super::Check::ALL`]).

use std::collections::{HashMap, HashSet};

use super::{fail, short, signer_name, Check, Project, VerifyError};
use crate::{
    group::WirePoint,
    manifest::Ed25519Key,
    transcript::{
        body::{Body, Columns},
        Entry, Signer,
    },
    types::{Digest, Name},
};

/// [`Check::TwoPersonRule`]: approvals, and two distinct approvers of the
/// announced extract before every announcement.
pub(crate) fn check_two_person_rule(entries: &[Entry], p: &Project<'_>) -> Result<(), VerifyError> {
    // Per register: (operator key, extract digest, rows) of every approval.
    let mut approvals: HashMap<&Name, Vec<(Ed25519Key, Digest, u64, &Columns)>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let at = Some(i as u64);
        let st = &e.signed.statement;
        match &st.body {
            Body::Approval(a) => {
                let Signer::Operator { register, key } = &st.signer else {
                    return Err(fail(
                        Check::TwoPersonRule,
                        at,
                        format!(
                            "an approval signed by {}, not by an operator",
                            signer_name(&st.signer)
                        ),
                    ));
                };
                if register != &a.register {
                    return Err(fail(
                        Check::TwoPersonRule,
                        at,
                        format!("an operator of {register} approved for {}", a.register),
                    ));
                }
                if !p.approvers().contains(&a.register) {
                    return Err(fail(
                        Check::TwoPersonRule,
                        at,
                        format!("approval for {}, which is not in the order", a.register),
                    ));
                }
                // A key holder without a list approves without an extract.
                if !p.participants.contains(&a.register)
                    && (a.extract != Digest::default() || a.rows != 0 || !a.columns.is_empty())
                {
                    return Err(fail(
                        Check::TwoPersonRule,
                        at,
                        format!(
                            "{} has no list in the order; its operators approve without an extract",
                            a.register
                        ),
                    ));
                }
                if a.order != p.order_digest {
                    return Err(fail(
                        Check::TwoPersonRule,
                        at,
                        "the approval binds a different project order",
                    ));
                }
                approvals
                    .entry(&a.register)
                    .or_default()
                    .push((*key, a.extract, a.rows, &a.columns));
            }
            Body::ListAnnounced(_) | Body::ListAnnouncedV2(_) => {
                let Some(a) = announced(&e.signed.statement.body) else {
                    continue;
                };
                // The researcher list is no register's: its count and file
                // digest are the order's, which every register's operators
                // approved; the order check compared them
                // (`researcher_list::check_announcement`).
                if p.order.is_researcher_list(a.list) {
                    continue;
                }
                // Data minimisation (issue 12 item 2): a list delivers
                // exactly the order's variables for its register, in the
                // order's order, and every operator who approved the
                // extract signed each of them.
                let requested = p
                    .order
                    .registers
                    .iter()
                    .find(|r| a.list.is_owned_by(&r.register))
                    .map(|r| &r.variables);
                // Reservasjon (§10a): an identified project's list shows
                // its exclusion count, an ordinary one's carries none.
                crate::identified::check_exclusion(p.order, a.excluded)
                    .map_err(|e| fail(Check::TwoPersonRule, at, format!("list {}: {e}", a.list)))?;
                if requested != Some(a.columns) {
                    return Err(fail(
                        Check::TwoPersonRule,
                        at,
                        format!(
                            "list {} announces columns [{}], the order requests [{}]",
                            a.list,
                            shown(a.columns),
                            requested.map(shown).unwrap_or_default()
                        ),
                    ));
                }
                // A delivery's list goes out only once two operators of
                // the holder approved (without an extract).
                if let Some(plan) = &p.delivery {
                    let holder: HashSet<&Ed25519Key> = approvals
                        .get(&plan.spec.holder)
                        .into_iter()
                        .flatten()
                        .map(|(k, _, _, _)| k)
                        .collect();
                    if holder.len() < 2 {
                        return Err(fail(
                            Check::TwoPersonRule,
                            at,
                            format!(
                                "list {} of a delivery into {} was announced with {} distinct approval(s) of the holder {}'s operators; two are required",
                                a.list,
                                plan.spec.name,
                                holder.len(),
                                plan.spec.holder
                            ),
                        ));
                    }
                }
                let of_extract: Vec<&(Ed25519Key, Digest, u64, &Columns)> = approvals
                    .get(a.list.owner())
                    .into_iter()
                    .flatten()
                    .filter(|(_, extract, _, _)| *extract == a.extract)
                    .collect();
                let approvers: HashSet<&Ed25519Key> =
                    of_extract.iter().map(|(k, _, _, _)| k).collect();
                if approvers.len() < 2 {
                    return Err(fail(
                        Check::TwoPersonRule,
                        at,
                        format!(
                            "list {} was announced with {} distinct operator approval(s) of its extract {}; two are required",
                            a.list,
                            approvers.len(),
                            short(a.extract.as_bytes())
                        ),
                    ));
                }
                if let Some((_, _, rows, _)) = of_extract.iter().find(|(_, _, r, _)| *r != a.rows) {
                    return Err(fail(
                        Check::TwoPersonRule,
                        at,
                        format!(
                            "list {} announces {} rows but an operator approved {rows}",
                            a.list, a.rows
                        ),
                    ));
                }
                if of_extract
                    .iter()
                    .any(|(_, _, _, signed)| !a.columns.iter().all(|c| signed.contains(c)))
                {
                    return Err(fail(
                        Check::TwoPersonRule,
                        at,
                        format!(
                            "list {} delivers a column an operator did not approve",
                            a.list
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// [`Check::Commitments`]: one key per key holder, committed before use.
fn shown(columns: &Columns) -> String {
    columns
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn check_commitments(entries: &[Entry], p: &Project<'_>) -> Result<(), VerifyError> {
    let mut commitments = HashMap::new();
    // Register domains (PROTOCOL.md §10): K_{i,R} and K'_i by (member, R).
    let mut conversions = super::pseudo::Conversions::default();
    for (i, e) in entries.iter().enumerate() {
        let at = Some(i as u64);
        if conversions.on_body(&e.signed.statement.body, &commitments, p, at)? {
            continue;
        }
        match &e.signed.statement.body {
            Body::Commitment(c) => {
                if c.domain != p.domain {
                    return Err(fail(
                        Check::Commitments,
                        at,
                        format!("commitment for {}, not this project", c.domain),
                    ));
                }
                if !p.is_key_holder(&c.member) {
                    return Err(fail(
                        Check::Commitments,
                        at,
                        format!("{} holds no key in this project", c.member),
                    ));
                }
                if let Some(old) = commitments.insert(&c.member, c.key) {
                    if old != c.key {
                        return Err(fail(
                            Check::Commitments,
                            at,
                            format!("{} committed to two different keys", c.member),
                        ));
                    }
                }
            }
            Body::HopV2(h) => {
                let committed = committed_key(&commitments, &h.member, at)?;
                let used = h.key_proof.as_ref().map_or(h.key, |k| k.share_key);
                let committed = match conversions.expected(p, &h.list, &h.member, at)? {
                    Some(k_prime) => k_prime,
                    None => *committed,
                };
                if used != committed {
                    return Err(not_its_commitment(&h.member, &h.list, at));
                }
            }
            Body::Hop(h) => {
                if conversions.expected(p, &h.list, &h.member, at)?.is_some() {
                    return Err(fail(
                        Check::Commitments,
                        at,
                        format!(
                            "list {} is keyed by a register domain; chain v1 cannot convert it",
                            h.list
                        ),
                    ));
                }
                let committed = committed_key(&commitments, &h.member, at)?;
                if h.member == p.linker.name {
                    // A missing key proof is the proof check's to report.
                    if let Some(lp) = &h.linker {
                        if &lp.linker_key != committed {
                            return Err(fail(
                                Check::Commitments,
                                at,
                                format!(
                                    "list {}: the linker's key proof is not about its committed key",
                                    h.list
                                ),
                            ));
                        }
                    }
                } else if &h.key != committed {
                    return Err(not_its_commitment(&h.member, &h.list, at));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The key `member` committed to, which it uses at entry `at`.
fn committed_key<'c>(
    commitments: &'c HashMap<&Name, WirePoint>,
    member: &Name,
    at: Option<u64>,
) -> Result<&'c WirePoint, VerifyError> {
    commitments.get(member).ok_or_else(|| {
        fail(
            Check::Commitments,
            at,
            format!("{member} used its key before committing to it"),
        )
    })
}

/// `member` stepped `list` with a key other than its commitment.
fn not_its_commitment(
    member: &Name,
    list: &crate::types::ListName,
    at: Option<u64>,
) -> VerifyError {
    fail(
        Check::Commitments,
        at,
        format!("{member} stepped list {list} with a key other than its commitment"),
    )
}

/// The fields of a v1 or v2 list announcement the two-person rule checks.
struct Announced<'a> {
    list: &'a crate::types::ListName,
    extract: Digest,
    rows: u64,
    columns: &'a Columns,
    excluded: Option<crate::reservation::ShownCount>,
}

fn announced(body: &Body) -> Option<Announced<'_>> {
    match body {
        Body::ListAnnouncedV2(a) => Some(Announced {
            list: &a.list,
            extract: a.extract,
            rows: a.rows,
            columns: &a.columns,
            excluded: a.excluded,
        }),
        Body::ListAnnounced(a) => Some(Announced {
            list: &a.list,
            extract: a.extract,
            rows: a.rows,
            columns: &a.columns,
            excluded: a.excluded,
        }),
        _ => None,
    }
}
