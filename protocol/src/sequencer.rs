//! The transcript's sequencer: the linker's append-and-verify, and how a
//! register takes in the entries the linker replicates to it.
//!
//! ```text
//!  researcher ── SubmitOrder ──▶ admit_order ─┐      (kept at the linker alone)
//!  member ────── Statement ────▶ admit_statement ─▶ append (verify whole) ─▶ Entry
//!                                                                 ├──▶ replication(entry): registers and the first
//!                                                                 │    entry to send (nothing before the first
//!                                                                 │    approval; the whole prefix with it; only
//!                                                                 │    the register prefix)
//!                                                                 └──▶ notice(entry): linked / delivered / closed
//!  operator ──── Approve(order entry) ─▶ (register) admit_order_copy ─▶ the copy starts with it
//!  linker ────── Entries ──────▶ (register) accept_replica ─▶ fresh entries ─▶ verify the prefix
//!  linker ────── Notice ───────▶ (register) SignedPhaseNotice::check ─▶ stored, latest phase
//!  tick ─────────────────────▶ forgotten(view, ordered, now): an order no operator approved,
//!                               closed or past its wait ─▶ every row about it deleted
//! ```
//!
//! **Nothing federation-wide before the first approval** (issue 18 item
//! 2). An order lives only in the linker's store until an operator
//! approves it: the linker replicates nothing and commits no key share for
//! it, and an operator's approval carries the order's entry to the
//! operator's own register, which checks it against the linker's
//! signature. With the first approval the linker sends every participating
//! register the transcript from its start. An order that waits longer than
//! [`UNAPPROVED_LIFETIME`], or that its researcher closes before any
//! approval, is *forgotten*: its id, its transcript and every row about it
//! are deleted wherever they are, so the id can be ordered again and a
//! spam order leaves nothing behind.
//!
//! Everything here is pure: the node loads the project's entries, calls
//! one of these, and commits what it returns in one transaction.

use ed25519_dalek::SigningKey;

use crate::{
    manifest::{Manifest, Role},
    notice::{Notified, PhaseNotice, SignedPhaseNotice},
    project::ProjectView,
    refusal::{Refusal, RefusalCode},
    transcript::{self, Body, Entry, SignedStatement, Signer},
    types::{HopIndex, Name, ProjectId, UnixTime},
};

/// The most persons one list may announce: every identifier Norway has
/// issued (about 5.5 million residents, and D-numbers) several times over.
/// A larger announcement is refused, so that a member cannot make the
/// linker reserve room for positions without end.
pub const MAX_LIST_PERSONS: u64 = 1 << 25;

/// The most bytes of sealed items one list may occupy at the linker
/// (issue 18 item 6): the largest extract a node reads (64 GiB, the node's
/// `MAX_EXTRACT_BYTES`), of which the sealed rows are a re-encoding without
/// the identifiers, plus 512 bytes per position for each person's padding
/// (at most 255), tag (16) and length prefixes, over [`MAX_LIST_PERSONS`]
/// positions: 80 GiB. (The per-item cap times the position cap,
/// 16 MiB × 2^25, would be 512 TiB: no bound at all.) Sealed items past it
/// are refused `list-too-large` and nothing of the message is stored.
pub const MAX_LIST_SEALED_BYTES: u64 = (64 << 30) + MAX_LIST_PERSONS * 512;

/// The furthest an order's expiry may lie after its submission: six
/// years (a research project's approval runs for some years; an order that
/// would keep its state at every node for decades is refused).
pub const MAX_ORDER_LIFETIME: u64 = 6 * 366 * 86_400;

/// Orders of one researcher (by key) that the linker holds without any
/// operator's approval: one more is refused `too-many-pending`.
pub const MAX_UNAPPROVED_ORDERS: usize = 3;

/// How long an order waits for its first operator approval: after seven
/// days without one it is forgotten ([`forgotten`]).
pub const UNAPPROVED_LIFETIME: u64 = 7 * 86_400;

/// How much longer than [`UNAPPROVED_LIFETIME`] a register keeps an order
/// its own operator approved while its copy shows no approval the linker
/// recorded: a day, for the approval to reach the linker and the linker's
/// replication to come back. (A register holds such an order only in that
/// race, or when the linker refused the approval because it had forgotten
/// the order already.)
pub const REGISTER_GRACE: u64 = 86_400;

/// What to do with a statement a member sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Append it.
    New,
    /// It is in the transcript already (a resend after a lost
    /// acknowledgement): acknowledge it again.
    AlreadyRecorded,
}

/// Whether an order carries the grant of an access authority of
/// `manifest` (issue 18 item 2): checked before the linker reads or writes
/// anything for it.
///
/// # Errors
///
/// `not-an-order`, `no-authority`.
pub fn admit_grant(
    manifest: &crate::manifest::Manifest,
    signed: &SignedStatement,
) -> Result<(), Refusal> {
    let Body::Order(order) = &signed.statement.body else {
        return Err(Refusal::new(
            RefusalCode::NotAnOrder,
            "SubmitOrder must carry a project order",
        ));
    };
    // A delivery into a register domain is ordered by an operator of its
    // source and approved at the source and the holder (PROTOCOL.md §10);
    // it needs no access authority's grant ([`crate::receipt`] checks its
    // orderer). A grant it carries anyway must hold.
    if order.delivery.is_some() && order.grant.is_none() {
        return Ok(());
    }
    order
        .check_grant(manifest)
        .map_err(|e| Refusal::new(RefusalCode::NoAuthority, e.to_string()))
}

/// Whether a researcher's order may open a project at `now`, given the
/// entries already held under its project id.
///
/// # Errors
///
/// `not-an-order`, `project-exists`, `expired`.
pub fn admit_order(
    existing: &[Entry],
    signed: &SignedStatement,
    now: UnixTime,
) -> Result<(), Refusal> {
    let Body::Order(order) = &signed.statement.body else {
        return Err(Refusal::new(
            RefusalCode::NotAnOrder,
            "SubmitOrder must carry a project order",
        ));
    };
    if !existing.is_empty() {
        return Err(Refusal::new(
            RefusalCode::ProjectExists,
            format!("project {} already exists", order.project),
        ));
    }
    if order.expires <= now {
        return Err(Refusal::new(
            RefusalCode::Expired,
            "the order's expiry date has passed",
        ));
    }
    if order.expires > now.plus(MAX_ORDER_LIFETIME) {
        return Err(Refusal::new(
            RefusalCode::Order,
            format!(
                "the order expires more than {} days from now",
                MAX_ORDER_LIFETIME / 86_400
            ),
        ));
    }
    // The order's time dates it (its wait for a first approval counts
    // from it), so it must be the linker's now.
    if signed.statement.time.abs_diff(now) > crate::messages::MAX_CLOCK_SKEW {
        return Err(Refusal::new(
            RefusalCode::BadRequest,
            "the order's time is too far from the linker's clock",
        ));
    }
    Ok(())
}

/// Whether a researcher with `unapproved` orders waiting for a first
/// approval may submit another.
///
/// # Errors
///
/// `too-many-pending`.
pub fn admit_pending(unapproved: usize) -> Result<(), Refusal> {
    if unapproved >= MAX_UNAPPROVED_ORDERS {
        return Err(Refusal::new(
            RefusalCode::TooManyPending,
            format!(
                "this researcher has {unapproved} orders without an operator's approval; the linker keeps at most {MAX_UNAPPROVED_ORDERS} (each waits at most {} days)",
                UNAPPROVED_LIFETIME / 86_400
            ),
        ));
    }
    Ok(())
}

/// Whether the linker may append `signed`, sent by member `from`, to the
/// project whose transcript `view` shows.
///
/// A member speaks only for itself (operators' approvals come through
/// their own register's node); a hop record can only follow the previous
/// hop's.
///
/// # Errors
///
/// `impersonation`, `unknown-project` (final), `not-ready` (the previous
/// hop's record or the list's announcement is not recorded yet).
pub fn admit_statement(
    view: &ProjectView<'_>,
    entries: &[Entry],
    from: &Name,
    signed: &SignedStatement,
) -> Result<Admitted, Refusal> {
    let allowed = match &signed.statement.signer {
        Signer::Node(n) => n == from,
        Signer::Operator { register, .. } => register == from,
        Signer::Researcher(_) => false,
    };
    if !allowed {
        return Err(Refusal::new(
            RefusalCode::Impersonation,
            format!("{from} sent a statement signed for someone else"),
        ));
    }
    let project = &signed.statement.project;
    if entries.is_empty() {
        return Err(Refusal::new(
            RefusalCode::UnknownProject,
            format!("no project {project}"),
        ));
    }
    let digest = signed.statement.digest();
    if entries
        .iter()
        .any(|e| e.signed.statement.digest() == digest)
    {
        return Ok(Admitted::AlreadyRecorded);
    }
    if let Body::ListAnnounced(a) = &signed.statement.body {
        if a.persons > MAX_LIST_PERSONS {
            return Err(Refusal::new(
                RefusalCode::Invalid,
                format!(
                    "list {} announces {} persons; a list holds at most {MAX_LIST_PERSONS}",
                    a.list, a.persons
                ),
            ));
        }
    }
    if let Body::Hop(h) = &signed.statement.body {
        let previous_missing = h.hop > HopIndex(1)
            && h.hop
                .previous()
                .is_some_and(|p| view.hop_record(&h.list, p).is_none());
        if view.announcement(&h.list).is_none() || previous_missing {
            return Err(Refusal::not_ready(format!(
                "list {} hop {}: the previous hop is not recorded yet",
                h.list, h.hop
            )));
        }
    }
    if let Body::HopV2(h) = &signed.statement.body {
        // Chain v2: hop records of one attempt arrive from different
        // members; one whose predecessor is not recorded yet waits.
        let ready = view.v2_list(&h.list).is_some_and(|l| {
            l.attempt == h.attempt && l.owner_list.is_some() && l.hops.len() + 1 == h.hop.as_usize()
        });
        if !ready
            && view
                .v2_list(&h.list)
                .is_some_and(|l| l.attempt <= h.attempt)
        {
            return Err(Refusal::not_ready(format!(
                "list {} hop {}: the previous step's record is not recorded yet",
                h.list, h.hop
            )));
        }
    }
    Ok(Admitted::New)
}

/// Whether the linker may append `signed`, a statement of the researcher's
/// own list that its client sent (docs/protocol.md §18; the caller checked
/// it with [`crate::researcher_list`] first): signed as the order's
/// researcher, and not recorded already.
///
/// # Errors
///
/// `unknown-project`, `not-the-researcher`.
pub fn admit_researcher(
    view: &ProjectView<'_>,
    entries: &[Entry],
    signed: &SignedStatement,
) -> Result<Admitted, Refusal> {
    let project = &signed.statement.project;
    let Some(order) = view.order() else {
        return Err(Refusal::new(
            RefusalCode::UnknownProject,
            format!("no project {project}"),
        ));
    };
    if signed.statement.signer != Signer::Researcher(order.researcher_signing_key) {
        return Err(Refusal::new(
            RefusalCode::NotTheResearcher,
            "the researcher list's statement is not signed by the project's researcher",
        ));
    }
    let digest = signed.statement.digest();
    if entries
        .iter()
        .any(|e| e.signed.statement.digest() == digest)
    {
        return Ok(Admitted::AlreadyRecorded);
    }
    Ok(Admitted::New)
}

/// Appends `signed` to `entries` as the linker (chained and countersigned
/// with `linker`), after verifying the whole transcript with it. `entries`
/// must be the linker's own transcript, every entry of which passed this
/// function: the new entry's signature and proofs are checked, the earlier
/// ones not again (`transcript::verify_appended`).
/// Returns the new entry; `entries` holds it on success and is unchanged
/// on error.
///
/// # Errors
///
/// `invalid`, with the verifier's reason.
pub fn append(
    entries: &mut Vec<Entry>,
    signed: SignedStatement,
    manifest: &Manifest,
    linker: &SigningKey,
) -> Result<Entry, Refusal> {
    let prev = entries.last().map(Entry::hash).unwrap_or_default();
    let entry = Entry::record(entries.len() as u64, prev, signed, linker);
    entries.push(entry.clone());
    // The entries before were verified when they were appended.
    if let Err(e) = transcript::verify_appended(entries, manifest, entries.len() - 1) {
        entries.pop();
        return Err(Refusal::new(RefusalCode::Invalid, e.to_string()));
    }
    Ok(entry)
}

/// Whom the linker replicates a new entry to, and from which entry on:
/// `None` while no operator approved the order (registers hold nothing of
/// it); at the first approval, every participating register, from entry 0
/// (the registers whose operators did not approve have nothing yet); after
/// it, every participating register, the new entry alone, while the
/// transcript, this entry included, is all
/// [`visible_to_registers`](transcript::visible_to_registers) (registers
/// hold a prefix of the hash chain, [`transcript::register_prefix`]);
/// nobody after (the linker records its own statements through the same
/// path and holds the transcript itself). `entries` is the transcript
/// with `entry` appended.
pub fn replication(
    view: &ProjectView<'_>,
    entries: &[Entry],
    entry: &Entry,
) -> Option<(Vec<Name>, u64)> {
    if !view.approved_by_anyone() {
        return None;
    }
    let held = transcript::register_prefix(entries) as u64;
    if entry.seq >= held {
        return None;
    }
    let first_approval = matches!(entry.signed.statement.body, Body::Approval(_))
        && !entries[..usize::try_from(entry.seq).unwrap_or(entries.len())]
            .iter()
            .any(|e| matches!(e.signed.statement.body, Body::Approval(_)));
    let first = if first_approval { 0 } else { entry.seq };
    Some((view.replicas(), first))
}

/// The phase notice the linker sends every participating register when it
/// records `entry` (linked, delivered, closed), if any: one per phase,
/// whatever the cohort, and the registers' only news of the project after
/// their lists were verified.
pub fn notice(
    view: &ProjectView<'_>,
    entry: &Entry,
    linker: &SigningKey,
) -> Option<(Vec<Name>, SignedPhaseNotice)> {
    let phase = Notified::of_body(&entry.signed.statement.body)?;
    // Registers hold nothing of an order no operator approved.
    if !view.approved_by_anyone() {
        return None;
    }
    let notice = PhaseNotice {
        project: entry.signed.statement.project.clone(),
        phase,
        failed_list: view.failed_list(),
    }
    .sign(linker);
    Some((view.replicas(), notice))
}

/// Checks the order an operator's approval carries to its register
/// (`carried`: the project's first transcript entry, as the linker
/// recorded it) against the register's copy `have` of `project` at `now`.
/// A register that holds nothing of the project yet starts its copy with
/// it (returned); one that holds the project needs the same entry.
///
/// An order waits at most [`UNAPPROVED_LIFETIME`] for its first approval:
/// while the copy shows none, an approval after that is refused.
///
/// # Errors
///
/// `wrong-order` (not the first entry of this project's order, or not the
/// one this register holds), `invalid` (it does not verify against the
/// manifest: the linker's signature of entry 0, the researcher's, the
/// authority's grant), `expired`.
pub fn admit_order_copy(
    manifest: &Manifest,
    have: &[Entry],
    carried: &Entry,
    project: &ProjectId,
    now: UnixTime,
) -> Result<Option<Entry>, Refusal> {
    let waited_too_long =
        |first: &Entry| now >= first.signed.statement.time.plus(UNAPPROVED_LIFETIME);
    let expired = || {
        Refusal::new(
            RefusalCode::Expired,
            format!(
                "the order of project {project} waited more than {} days for a first approval",
                UNAPPROVED_LIFETIME / 86_400
            ),
        )
    };
    if let Some(first) = have.first() {
        if first != carried {
            return Err(Refusal::new(
                RefusalCode::WrongOrder,
                "the approval carries another order than the one this node holds",
            ));
        }
        let approved = have
            .iter()
            .any(|e| matches!(e.signed.statement.body, Body::Approval(_)));
        if !approved && waited_too_long(first) {
            return Err(expired());
        }
        return Ok(None);
    }
    let is_order =
        matches!(&carried.signed.statement.body, Body::Order(o) if o.project == *project);
    if carried.seq != 0 || carried.signed.statement.project != *project || !is_order {
        return Err(Refusal::new(
            RefusalCode::WrongOrder,
            format!("the approval does not carry the order of project {project}"),
        ));
    }
    transcript::verify(std::slice::from_ref(carried), None, manifest)
        .map_err(|e| Refusal::new(RefusalCode::Invalid, e.to_string()))?;
    if waited_too_long(carried) {
        return Err(expired());
    }
    Ok(Some(carried.clone()))
}

/// Whether a node forgets the project its copy `view` shows, at `now`:
/// no operator's approval is recorded in the copy, and the order was
/// closed or has waited [`UNAPPROVED_LIFETIME`] since `ordered` (its
/// entry's time; at a register, [`REGISTER_GRACE`] longer, for an
/// approval still on its way). A forgotten project's id, transcript copy
/// and every row about it are deleted, so the id can be ordered again.
pub fn forgotten(view: &ProjectView<'_>, role: Role, ordered: UnixTime, now: UnixTime) -> bool {
    if view.order().is_none() || view.approved_by_anyone() {
        return false;
    }
    let wait = match role {
        Role::Linker => UNAPPROVED_LIFETIME,
        Role::Register => UNAPPROVED_LIFETIME.saturating_add(REGISTER_GRACE),
    };
    view.phase() == crate::project::Phase::Closed || now >= ordered.plus(wait)
}

/// What the linker answers a register operator's status request with:
/// the register prefix of the transcript, and the notice of the project's
/// phase if it is past the chain (the researcher's key gets the whole
/// transcript).
pub fn redacted_status<'e>(
    view: &ProjectView<'_>,
    entries: &'e [Entry],
    linker: &SigningKey,
) -> (&'e [Entry], Option<SignedPhaseNotice>) {
    let held = &entries[..transcript::register_prefix(entries)];
    let notice = Notified::of_phase(view.phase())
        .zip(view.order())
        .map(|(phase, order)| {
            PhaseNotice {
                project: order.project.clone(),
                phase,
                failed_list: view.failed_list(),
            }
            .sign(linker)
        });
    (held, notice)
}

/// A register takes in entries `new`, numbered from `first`, that the
/// linker replicated: returns those it does not hold yet. Entries it holds
/// must be identical, and every entry must be one registers may hold
/// ([`transcript::visible_to_registers`]).
///
/// # Errors
///
/// `invalid` (an entry kept from registers), `not-ready` (a gap: earlier
/// entries have not arrived), `diverged`.
pub fn accept_replica(have: &[Entry], first: u64, new: Vec<Entry>) -> Result<Vec<Entry>, Refusal> {
    if let Some(e) = new
        .iter()
        .find(|e| !transcript::visible_to_registers(&e.signed.statement.body))
    {
        return Err(Refusal::new(
            RefusalCode::Invalid,
            format!(
                "entry {} ({}) is not replicated to registers",
                e.seq,
                e.signed.statement.body.kind()
            ),
        ));
    }
    let held = have.len() as u64;
    if first > held {
        return Err(Refusal::not_ready(format!(
            "entries from {first}, but this node has {held}"
        )));
    }
    let mut fresh = Vec::new();
    for (seq, e) in (first..).zip(new) {
        match usize::try_from(seq).ok().and_then(|i| have.get(i)) {
            Some(old) if *old == e => {}
            Some(_) => {
                return Err(Refusal::new(
                    RefusalCode::Diverged,
                    format!("entry {seq} differs from this node's copy"),
                ))
            }
            None => fresh.push(e),
        }
    }
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        bounded::BoundedString,
        transcript::{register_prefix, Closure, Statement},
        types::ProjectId,
    };

    fn entry(seq: u64, prev: crate::types::Digest, body: Body, key: &SigningKey) -> Entry {
        let signed = Statement {
            project: ProjectId::new("P-1").expect("valid"),
            time: UnixTime(1),
            signer: Signer::Node(Name::new("LINKER").expect("valid")),
            body,
        }
        .sign(key);
        Entry::record(seq, prev, signed, key)
    }

    fn closure() -> Body {
        Body::Closure(Closure {
            reason: BoundedString::new("closed").expect("fits"),
        })
    }

    /// A register holds the prefix before the first entry kept from
    /// registers, and refuses to take such an entry from a linker that
    /// sends one (issue 12 item 1).
    #[test]
    fn registers_hold_a_prefix_and_refuse_entries_kept_from_them() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let shred = Body::Shredded(crate::transcript::Shredded {
            member: Name::new("NPR").expect("valid"),
            domain: crate::share::Domain::Project(ProjectId::new("P-1").expect("valid")),
        });
        let a = entry(0, Default::default(), closure(), &key);
        let b = entry(1, a.hash(), shred, &key);
        assert_eq!(register_prefix(&[a.clone(), b.clone()]), 0);
        assert_eq!(register_prefix(&[]), 0);
        let refused = accept_replica(&[], 0, vec![a]).expect_err("a closure entry");
        assert_eq!(refused.code, RefusalCode::Invalid);
        let refused = accept_replica(&[], 1, vec![b]).expect_err("a shredding entry");
        assert_eq!(refused.code, RefusalCode::Invalid);
    }

    #[test]
    fn the_bodies_after_the_chain_call_for_notices_and_nothing_else_does() {
        assert_eq!(Notified::of_body(&closure()), Some(Notified::Closed));
        for phase in [
            crate::project::Phase::Ordered,
            crate::project::Phase::Chaining,
        ] {
            assert_eq!(Notified::of_phase(phase), None);
        }
        for n in [Notified::Linked, Notified::Delivered, Notified::Closed] {
            assert_eq!(Notified::of_phase(n.phase()), Some(n));
        }
    }
}
