//! What each member must do next in a project, derived from the project's
//! transcript (PROTOCOL.md §5).
//!
//! The transcript is the project's event log: every step of the lifecycle
//! is a signed entry in it. A node keeps its copy (the linker's is
//! authoritative), builds a [`ProjectView`] from it, and asks
//! [`ProjectView::duties`] what it should do. So the step order lives here,
//! not in the daemon, and a node that restarts recomputes its duties from
//! the same entries.
//!
//! ```text
//!  Order ─▶ Approval×2 per register ─▶ Commitment (every key holder)
//!        ─▶ ListAnnounced (each register) ─▶ Hop 1..n per list ─▶ LinkSummary ─▶ Delivery
//!        ─▶ Closure ─▶ Shredded (every key holder)
//! ```
//!
//! The view assumes the entries passed [`crate::transcript::verify`] (the
//! linker verifies before it appends; nodes verify what they receive).
//!
//! The same view decides which messages a node admits for the project
//! ([`ProjectView::admit`], in [`admit`](mod@admit)), so the node's engine
//! only loads the entries, asks, and commits.

mod admit;
pub use admit::items_inside;
mod delivery;

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    group::WirePoint,
    manifest::{Ed25519Key, Manifest},
    notice::Notified,
    transcript::{Body, Entry, HopRecord, ListAnnouncement, ProjectOrder, Signer},
    types::{Attempt, Digest, HopIndex, ListName, Name},
    v2::{ChainStopped, HopRecordV2, ListAnnouncementV2, ListCheck, OwnerList},
};

pub use self::admit::{authorise, subject, unexpected, Origin};

/// Where a project is in its lifecycle, as its transcript tells it. The
/// phases are ordered: a project moves only forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Ordered: approvals, commitments and announcements are coming in.
    Ordered,
    /// At least one list is announced and travelling the chain.
    Chaining,
    /// Every list passed every hop and the linker recorded the linkage.
    Linked,
    /// The researcher fetched the delivery (it may fetch again).
    Delivered,
    /// Closed (by the researcher or at expiry): keys are being shredded.
    Closed,
}

impl Phase {
    /// The phase's name, for status lines and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Ordered => "ordered",
            Phase::Chaining => "chaining",
            Phase::Linked => "linked",
            Phase::Delivered => "delivered",
            Phase::Closed => "closed",
        }
    }

    /// Whether the linkage exists and the project is not closed: the
    /// delivery can be served.
    pub fn is_deliverable(self) -> bool {
        matches!(self, Phase::Linked | Phase::Delivered)
    }
}

/// A member's one-shot steps: each is done at most once per project, and a
/// node records that it did it in the same commit as the step's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// The key commitment was sent.
    Commit,
    /// Chain v2: the owner sent `A_0` of its list's attempt 0.
    Pass,
    /// Chain v2: the owner sent `A_0` of its list's strict attempt 1.
    StrictPass,
    /// The list was announced (its chunks queued).
    Announce,
    /// The linkage summary was sent (linker).
    Link,
    /// The closure was sent (linker).
    Close,
    /// The domain key was shredded and the shredding confirmation sent.
    Shred,
    /// Chain v2: the owner sent its list again for the strict attempt.
    Resend,
    /// An identified project's closure waits for its disclosure log
    /// (linker; the closure's reason is then the researcher's or expiry).
    LogBeforeClose,
    /// The padded list was sent into the disclosure log (linker).
    LogSent,
}

impl Step {
    /// The step's stable name, as a node stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Commit => "commit",
            Step::Pass => "pass",
            Step::StrictPass => "pass-strict",
            Step::Announce => "announce",
            Step::Link => "link",
            Step::Close => "close",
            Step::Shred => "shred",
            Step::Resend => "resend-strict",
            Step::LogBeforeClose => "log-before-close",
            Step::LogSent => "log-sent",
        }
    }
}

/// One thing a member must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Duty {
    /// A register waits for its operators: it has fewer than two distinct
    /// approvals of one extract.
    AwaitApprovals {
        /// Distinct operators who approved so far.
        approvals: usize,
    },
    /// Accept the project domain and publish the commitment `K_{i,p}`.
    Commit,
    /// Read the approved extract, prepare the list and announce it.
    AnnounceList {
        /// The extract digest both operators approved.
        extract: Digest,
    },
    /// Be hop `hop` of `list`: verify and step the chunks coming from
    /// `previous`, send them on to `next` (none for the linker).
    Step {
        /// The list.
        list: ListName,
        /// This member's hop index.
        hop: HopIndex,
        /// The member whose chunks arrive (the owner for hop 1).
        previous: Name,
        /// The previous hop's committed key; `None` after the owner.
        previous_key: Option<WirePoint>,
        /// Where the output goes; `None` for the linker (last hop).
        next: Option<Name>,
    },
    /// Chain v2: every hop of the list's attempt is recorded: compute σ
    /// and `A_0` over the kept output and start the backward pass (the
    /// list's owner).
    Pass {
        /// The list (this register's own).
        list: ListName,
        /// The attempt.
        attempt: Attempt,
    },
    /// Every list passed every hop: link and summarise (linker only).
    Link,
    /// Linked: serve the researcher's fetch (linker only).
    Deliver,
    /// The project is closed: shred the domain seed and record it.
    Shred,
    /// Chain v2: the linker sent the owner's list again (a failed check):
    /// send the kept output `y` again for the strict attempt (the list's
    /// owner).
    Resend {
        /// The list (this register's own).
        list: ListName,
        /// The strict attempt.
        attempt: Attempt,
    },
    /// Chain v2, streamed (docs/protocol.md §19): the owner's list is
    /// announced and its attempt 0 has no owner's list statement yet:
    /// make and send its remaining chunks, then its final statement (the
    /// list's owner; after a restart, it resumes the list).
    StreamList {
        /// The extract digest both operators approved (the announced one).
        extract: Digest,
    },
}

/// The state of a project as its transcript tells it.
#[derive(Debug, Clone)]
pub struct ProjectView<'a> {
    manifest: &'a Manifest,
    order: Option<&'a ProjectOrder>,
    approvals: BTreeMap<Name, BTreeMap<Digest, BTreeSet<Ed25519Key>>>,
    committed: BTreeMap<Name, WirePoint>,
    /// `K_{i,R}` committed in this project, by (member, domain R).
    domain_committed: BTreeMap<(Name, Name), WirePoint>,
    /// `K'_i` of every conversion binding, by (member, domain R).
    conversions: BTreeMap<(Name, Name), WirePoint>,
    announced: BTreeMap<ListName, &'a ListAnnouncement>,
    hops: BTreeMap<(ListName, HopIndex), &'a HopRecord>,
    v2: BTreeMap<ListName, V2List<'a>>,
    linked: bool,
    delivered: bool,
    closed: bool,
    shredded: BTreeSet<Name>,
    /// The linker stopped the chain on a list with no chain v2 state (a
    /// list announced for chain v1 to a chain v2 linker).
    stopped_other: Option<ListName>,
}

impl<'a> ProjectView<'a> {
    /// Builds the view from (verified) entries.
    pub fn new(manifest: &'a Manifest, entries: &'a [Entry]) -> Self {
        let mut v = ProjectView {
            manifest,
            order: None,
            approvals: BTreeMap::new(),
            committed: BTreeMap::new(),
            domain_committed: BTreeMap::new(),
            conversions: BTreeMap::new(),
            announced: BTreeMap::new(),
            hops: BTreeMap::new(),
            v2: BTreeMap::new(),
            linked: false,
            delivered: false,
            closed: false,
            shredded: BTreeSet::new(),
            stopped_other: None,
        };
        for e in entries {
            let st = &e.signed.statement;
            match &st.body {
                Body::Order(o) => v.order = Some(o),
                Body::Approval(a) => {
                    if let Signer::Operator { key, .. } = &st.signer {
                        v.approvals
                            .entry(a.register.clone())
                            .or_default()
                            .entry(a.extract)
                            .or_default()
                            .insert(*key);
                    }
                }
                Body::Commitment(c) => match &c.domain {
                    // The order's own key domain (a project, or the
                    // register domain a delivery goes into).
                    d if v.order.is_none_or(|o| o.key_domain() == *d) => {
                        v.committed.insert(c.member.clone(), c.key);
                    }
                    crate::share::Domain::Register(r) => {
                        v.domain_committed
                            .insert((c.member.clone(), r.clone()), c.key);
                    }
                    crate::share::Domain::Project(_) => {
                        v.committed.insert(c.member.clone(), c.key);
                    }
                },
                Body::Conversion(c) => {
                    v.conversions
                        .insert((c.member.clone(), c.domain.clone()), c.binding.combined);
                }
                Body::ListAnnounced(a) => {
                    v.announced.insert(a.list.clone(), a);
                }
                Body::Hop(h) => {
                    v.hops.insert((h.list.clone(), h.hop), h);
                }
                Body::LinkSummary(_) => v.linked = true,
                Body::Delivery(_) => v.delivered = true,
                Body::Closure(_) => v.closed = true,
                Body::Shredded(s) => {
                    v.shredded.insert(s.member.clone());
                }
                Body::ListAnnouncedV2(a) => {
                    v.v2.insert(a.list.clone(), V2List::new(a));
                }
                Body::OwnerListV2(o) => {
                    if let Some(l) = v.v2.get_mut(&o.list) {
                        if l.synth.sealed_root == Digest::default() {
                            l.synth.sealed_root = o.sealed_root;
                        }
                        l.owner_list = Some(o);
                    }
                }
                Body::HopV2(h) => {
                    if let Some(l) = v.v2.get_mut(&h.list) {
                        l.hops.push(h);
                    }
                }
                Body::ListCheck(c) => {
                    if let Some(l) = v.v2.get_mut(&c.list) {
                        l.checks.push(c);
                        if c.attempt != l.attempt {
                            // A failed check recorded after the retry
                            // that ended its attempt (`ListRetry`).
                        } else if c.passed {
                            l.passed = l.hops.last().and_then(|h| h.final_root);
                        } else {
                            l.attempt = l.attempt.next();
                            l.owner_list = None;
                            l.hops.clear();
                        }
                    }
                }
                Body::ChainStopped(stop) => {
                    if let Some(l) = v.v2.get_mut(&stop.list) {
                        l.stopped = Some(stop);
                    } else {
                        v.stopped_other.get_or_insert(stop.list.clone());
                    }
                }
                Body::ListRetry(r) => {
                    if let Some(l) = v.v2.get_mut(&r.list) {
                        if r.attempt > l.attempt {
                            l.attempt = r.attempt;
                            l.owner_list = None;
                            l.hops.clear();
                        }
                    }
                }
            }
        }
        v
    }

    /// A chain v2 list's state (`None` for a v1 list or one not announced).
    pub fn v2_list(&self, list: &ListName) -> Option<&V2List<'a>> {
        self.v2.get(list)
    }

    /// A member's recorded key commitment `K_{i,p}`.
    pub fn commitment(&self, member: &Name) -> Option<WirePoint> {
        self.committed.get(member).copied()
    }

    /// The view at a register, which holds only the prefix of the
    /// transcript written before the lists were verified
    /// ([`crate::transcript::register_prefix`]) and learns the later
    /// phases from the linker's [`notice`](crate::notice): the phase it
    /// was told of, if any, moves the view forward (a closed project's
    /// duty is to shred).
    pub fn with_notice(mut self, notice: Option<Notified>) -> Self {
        match notice {
            Some(Notified::Linked) => self.linked = true,
            Some(Notified::Delivered) => {
                self.linked = true;
                self.delivered = true;
            }
            Some(Notified::Closed) => self.closed = true,
            None => {}
        }
        self
    }

    /// The registers that hold a key of the project: the participants and
    /// every register key holder of the order's domains
    /// ([`crate::domain::key_registers`]), in manifest order.
    pub fn key_registers(&self) -> Vec<Name> {
        self.order
            .map(|o| crate::domain::key_registers(self.manifest, o))
            .unwrap_or_default()
    }

    /// The step key `member` applies to `list`: `K'_i` of its conversion
    /// binding if `list` is keyed by a domain `member` holds a key of,
    /// else its commitment `K_{i,p}`.
    pub fn step_key(&self, list: &ListName, member: &Name) -> Option<WirePoint> {
        let order = self.order?;
        match crate::domain::converting_domain(self.manifest, order, list, member) {
            Some(d) => self.conversions.get(&(member.clone(), d.clone())).copied(),
            None => self.committed.get(member).copied(),
        }
    }

    /// Whether `member` recorded everything it commits to: `K_{i,p}`, and
    /// for every domain of the order it holds a key of, `K_{i,R}` and its
    /// conversion binding.
    pub fn fully_committed(&self, member: &Name) -> bool {
        if !self.committed.contains_key(member) {
            return false;
        }
        let Some(order) = self.order else {
            return true;
        };
        order.domains().iter().all(|d| {
            let holds = self
                .manifest
                .domain(d)
                .is_some_and(|spec| spec.is_key_holder(self.manifest, member));
            !holds
                || (self
                    .domain_committed
                    .contains_key(&(member.clone(), d.clone()))
                    && self.conversions.contains_key(&(member.clone(), d.clone())))
        })
    }

    /// The members besides the linker that hold the transcript's register
    /// prefix and get the phase notices: [`key_registers`](Self::key_registers),
    /// and of a delivery also its source and its holder
    /// ([`DeliveryPlan::members`](crate::receipt::DeliveryPlan::members)).
    pub fn replicas(&self) -> Vec<Name> {
        self.order
            .map(|o| crate::domain::member_registers(self.manifest, o))
            .unwrap_or_default()
    }

    /// The manifest's linker, by name.
    pub fn manifest_linker(&self) -> Option<Name> {
        self.manifest.linker().map(|l| l.name.clone())
    }

    /// The project order, once submitted.
    pub fn order(&self) -> Option<&'a ProjectOrder> {
        self.order
    }

    /// The participating registers.
    pub fn participants(&self) -> Vec<Name> {
        self.order
            .map(ProjectOrder::register_names)
            .unwrap_or_default()
    }

    /// The project's lists: one per participating register.
    pub fn lists(&self) -> Vec<ListName> {
        self.order.map(ProjectOrder::lists).unwrap_or_default()
    }

    /// The extract digest approved by at least two distinct operators of
    /// `register`, if any.
    pub fn approved_extract(&self, register: &Name) -> Option<Digest> {
        self.approvals
            .get(register)?
            .iter()
            .find(|(_, keys)| keys.len() >= 2)
            .map(|(digest, _)| *digest)
    }

    /// The hop sequence of `list` after its owner: registers in manifest
    /// order, then the linker.
    pub fn hops_of(&self, list: &ListName) -> Vec<Name> {
        let mut hops = self
            .manifest
            .chain_order(list.owner(), &self.key_registers());
        hops.remove(0);
        hops.extend(self.manifest.linker().map(|l| l.name.clone()));
        hops
    }

    /// The announcement of `list` (of a chain v2 list: its fields, with
    /// the sealed root of the owner's list statement once recorded and no
    /// points root).
    pub fn announcement(&self, list: &ListName) -> Option<&ListAnnouncement> {
        self.announced
            .get(list)
            .copied()
            .or_else(|| self.v2.get(list).map(|l| &l.synth))
    }

    /// The hop record of `list` at `hop`.
    pub fn hop_record(&self, list: &ListName, hop: HopIndex) -> Option<&'a HopRecord> {
        self.hops.get(&(list.clone(), hop)).copied()
    }

    /// The Merkle root of `list`'s final pseudonyms: the output root of its
    /// last hop (the linker's), once recorded.
    pub fn final_root(&self, list: &ListName) -> Option<Digest> {
        if let Some(l) = self.v2.get(list) {
            return l.passed;
        }
        let last = HopIndex(self.hops_of(list).len() as u32);
        self.hop_record(list, last).map(|h| h.output_root)
    }

    /// How many hops of `list` are recorded (of chain v2: in its open or
    /// passed attempt).
    pub fn hops_done(&self, list: &ListName) -> usize {
        if let Some(l) = self.v2.get(list) {
            return l.hops.len();
        }
        let n = self.hops_of(list).len() as u32;
        (1..=n)
            .filter(|h| self.hops.contains_key(&(list.clone(), HopIndex(*h))))
            .count()
    }

    /// Whether every hop of `list` is recorded.
    pub fn list_complete(&self, list: &ListName) -> bool {
        if let Some(l) = self.v2.get(list) {
            return l.passed.is_some();
        }
        let n = self.hops_of(list).len() as u32;
        self.announced.contains_key(list)
            && (1..=n).all(|h| self.hops.contains_key(&(list.clone(), HopIndex(h))))
    }

    /// The project's phase.
    pub fn phase(&self) -> Phase {
        if self.closed {
            Phase::Closed
        } else if self.delivered {
            Phase::Delivered
        } else if self.linked {
            Phase::Linked
        } else if self.announced.is_empty() && self.v2.is_empty() {
            Phase::Ordered
        } else {
            Phase::Chaining
        }
    }

    /// The most distinct operators of `register` who approved one extract.
    fn approvals_of(&self, register: &Name) -> usize {
        self.approvals
            .get(register)
            .map(|m| m.values().map(BTreeSet::len).max().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Whether the project is ordered, not closed, and no operator has
    /// approved anything for it yet.
    pub fn unapproved(&self) -> bool {
        self.order.is_some() && self.approvals.is_empty() && !self.closed
    }

    /// Whether any operator's approval is recorded: from then on the
    /// participating registers hold the project (before, only the linker
    /// does; [`crate::sequencer`]).
    pub fn approved_by_anyone(&self) -> bool {
        !self.approvals.is_empty()
    }

    /// Whether `member` recorded the shredding of its key share.
    pub fn shredded(&self, member: &Name) -> bool {
        self.shredded.contains(member)
    }

    /// Whether `me` has nothing left to do in this project, ever: it takes
    /// no part in it, or the project is closed and `me` has shredded.
    pub fn finished_for(&self, me: &Name) -> bool {
        // A delivery's holder has nothing to do once it is closed (it
        // holds no share of the delivery to shred).
        if self.closed && self.delivery_plan().is_some_and(|p| p.spec.holder == *me) {
            return true;
        }
        let takes_part =
            self.replicas().contains(me) || self.manifest.linker().is_some_and(|l| l.name == *me);
        !takes_part || (self.closed && self.shredded.contains(me))
    }

    /// What `me` must do next, in order.
    pub fn duties(&self, me: &Name) -> Vec<Duty> {
        let Some(_) = self.order else {
            return Vec::new();
        };
        if let Some(plan) = self.delivery_plan() {
            return self.delivery_duties(me, &plan);
        }
        let participants = self.participants();
        let key_registers = self.key_registers();
        let linker = self.manifest.linker().map(|l| l.name.clone());
        let is_linker = linker.as_ref() == Some(me);
        // A key holder of a domain without a list of its own takes part
        // like a participant: its operators approve (without an extract),
        // it commits and steps every list; it announces nothing.
        let is_participant = key_registers.contains(me);
        let has_list = participants.contains(me);
        if !is_linker && !is_participant {
            return Vec::new();
        }
        if self.closed {
            return if self.shredded.contains(me) {
                Vec::new()
            } else {
                vec![Duty::Shred]
            };
        }
        let mut duties = Vec::new();
        if is_participant {
            let Some(extract) = self.approved_extract(me) else {
                // Nothing else for a register until its operators approve.
                return vec![Duty::AwaitApprovals {
                    approvals: self.approvals_of(me),
                }];
            };
            if !self.committed.contains_key(me) {
                duties.push(Duty::Commit);
            }
            let all_committed = key_registers
                .iter()
                .chain(linker.iter())
                .all(|m| self.fully_committed(m));
            let mine = ListName::of(me);
            if has_list
                && all_committed
                && !self.announced.contains_key(&mine)
                && !self.v2.contains_key(&mine)
            {
                duties.push(Duty::AnnounceList { extract });
            }
        } else if !self.committed.contains_key(me) && self.approved_by_anyone() {
            // The linker accepts the project's domain only once an
            // operator approved: before, the order is all it holds.
            duties.push(Duty::Commit);
        }
        for list in self.announced.keys() {
            let hops = self.hops_of(list);
            for (i, member) in hops.iter().enumerate() {
                let hop = HopIndex(i as u32 + 1);
                if member != me || self.hops.contains_key(&(list.clone(), hop)) {
                    continue;
                }
                let previous = if i == 0 {
                    list.owner().clone()
                } else {
                    hops[i - 1].clone()
                };
                let previous_key = if i == 0 {
                    None
                } else {
                    self.committed.get(&previous).copied()
                };
                duties.push(Duty::Step {
                    list: list.clone(),
                    hop,
                    previous,
                    previous_key,
                    next: hops.get(i + 1).cloned(),
                });
            }
        }
        self.v2_step_duties(me, &mut duties);
        if is_linker {
            self.linker_duties(&mut duties);
        }
        duties
    }

    /// Chain v2 duties of `me` on every open list: its hop's steps, and
    /// the owner's backward pass once every hop is recorded.
    fn v2_step_duties(&self, me: &Name, duties: &mut Vec<Duty>) {
        for (list, l) in &self.v2 {
            if l.stopped.is_some() || l.passed.is_some() {
                continue;
            }
            let hops = self.hops_of(list);
            for (i, member) in hops.iter().enumerate() {
                if member != me || l.hops.len() > i {
                    continue;
                }
                duties.push(Duty::Step {
                    list: list.clone(),
                    hop: HopIndex(i as u32 + 1),
                    previous: if i == 0 {
                        list.owner().clone()
                    } else {
                        hops[i - 1].clone()
                    },
                    previous_key: None,
                    next: hops.get(i + 1).cloned(),
                });
            }
            if list.is_owned_by(me) && l.attempt == Attempt::FIRST && l.owner_list.is_none() {
                duties.push(Duty::StreamList {
                    extract: l.announcement.extract,
                });
            }
            if list.is_owned_by(me) && l.attempt > Attempt::FIRST && l.owner_list.is_none() {
                duties.push(Duty::Resend {
                    list: list.clone(),
                    attempt: l.attempt,
                });
            }
            if list.is_owned_by(me) && l.owner_list.is_some() && l.hops.len() == hops.len() {
                duties.push(Duty::Pass {
                    list: list.clone(),
                    attempt: l.attempt,
                });
            }
        }
    }

    /// The linker's duties once every list passed: link, then deliver.
    fn linker_duties(&self, duties: &mut Vec<Duty>) {
        let lists = self.lists();
        let all_lists = !lists.is_empty() && lists.iter().all(|l| self.list_complete(l));
        if all_lists && !self.linked {
            duties.push(Duty::Link);
        }
        if self.linked && !self.delivered {
            duties.push(Duty::Deliver);
        }
    }

    /// The chain v2 list that ended the project, if one did: a list whose
    /// chain was stopped ([`ChainStopped`]), else one whose last list
    /// check failed and ended it (a strict attempt's, or any once the
    /// project is closed: a node without strict mode closes the project
    /// on the first failed check), else a list the linker stopped that has
    /// no chain v2 state (a chain v1 announcement to a chain v2 linker).
    /// The first such list by name. What the
    /// linker's phase notice tells registers ([`crate::notice`]): a list
    /// name, nothing about its values. `None` for a project stopped for
    /// another reason (the closure's reason then says why, to the
    /// researcher and the auditor).
    pub fn failed_list(&self) -> Option<ListName> {
        let stopped = self.v2.iter().find(|(_, l)| l.stopped.is_some());
        let failed = || {
            self.v2.iter().find(|(_, l)| {
                l.checks
                    .last()
                    .is_some_and(|c| !c.passed && (c.attempt > Attempt::FIRST || self.closed))
            })
        };
        stopped
            .or_else(failed)
            .map(|(list, _)| list.clone())
            .or_else(|| self.stopped_other.clone())
    }
}

/// A chain v2 list as the transcript tells it (PROTOCOL.md §6a): the
/// records of its open (or passed) attempt, its checks and its stop.
#[derive(Debug, Clone)]
pub struct V2List<'a> {
    /// The owner's announcement.
    pub announcement: &'a ListAnnouncementV2,
    /// The open attempt (0, or 1 after a failed check), or the passed one.
    pub attempt: Attempt,
    /// The owner's list statement of the attempt.
    pub owner_list: Option<&'a OwnerList>,
    /// The attempt's hop records 1…m+1 recorded so far, in order.
    pub hops: Vec<&'a HopRecordV2>,
    /// The list checks recorded (at the linker; never at a register).
    pub checks: Vec<&'a ListCheck>,
    /// The salted final root of the attempt whose check passed.
    pub passed: Option<Digest>,
    /// The chain stopped on this list.
    pub stopped: Option<&'a ChainStopped>,
    /// The announcement's fields in v1's shape (no points root; the sealed
    /// root from the owner's first list statement).
    synth: ListAnnouncement,
}

impl<'a> V2List<'a> {
    fn new(a: &'a ListAnnouncementV2) -> Self {
        Self {
            announcement: a,
            attempt: Attempt::FIRST,
            owner_list: None,
            hops: Vec::new(),
            checks: Vec::new(),
            passed: None,
            stopped: None,
            synth: a.v1_shape(),
        }
    }

    /// The mode of the open attempt.
    pub fn mode(&self) -> crate::v2::Mode {
        if self.attempt == Attempt::FIRST {
            crate::v2::Mode::Optimistic
        } else {
            crate::v2::Mode::Strict
        }
    }

    /// The open attempt's header in `domain`.
    pub fn header(&self, domain: crate::share::Domain) -> crate::v2::ListHeader {
        self.announcement.header(domain, self.attempt, self.mode())
    }
}
