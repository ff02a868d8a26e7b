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

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    group::WirePoint,
    manifest::{Key32, Manifest},
    notice::Notified,
    transcript::{Body, Entry, HopRecord, ListAnnouncement, ProjectOrder, Signer},
    types::{Digest, Name},
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
    /// The list was announced (its chunks queued).
    Announce,
    /// The linkage summary was sent (linker).
    Link,
    /// The closure was sent (linker).
    Close,
    /// The domain key was shredded and the shredding confirmation sent.
    Shred,
}

impl Step {
    /// The step's stable name, as a node stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Commit => "commit",
            Step::Announce => "announce",
            Step::Link => "link",
            Step::Close => "close",
            Step::Shred => "shred",
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
        list: Name,
        /// This member's hop index.
        hop: u32,
        /// The member whose chunks arrive (the owner for hop 1).
        previous: Name,
        /// The previous hop's committed key; `None` after the owner.
        previous_key: Option<WirePoint>,
        /// Where the output goes; `None` for the linker (last hop).
        next: Option<Name>,
    },
    /// Every list passed every hop: link and summarise (linker only).
    Link,
    /// Linked: serve the researcher's fetch (linker only).
    Deliver,
    /// The project is closed: shred the domain seed and record it.
    Shred,
}

/// The state of a project as its transcript tells it.
#[derive(Debug, Clone)]
pub struct ProjectView<'a> {
    manifest: &'a Manifest,
    order: Option<&'a ProjectOrder>,
    approvals: BTreeMap<Name, BTreeMap<Digest, BTreeSet<Key32>>>,
    committed: BTreeMap<Name, WirePoint>,
    announced: BTreeMap<Name, &'a ListAnnouncement>,
    hops: BTreeMap<(Name, u32), &'a HopRecord>,
    linked: bool,
    delivered: bool,
    closed: bool,
    shredded: BTreeSet<Name>,
}

impl<'a> ProjectView<'a> {
    /// Builds the view from (verified) entries.
    pub fn new(manifest: &'a Manifest, entries: &'a [Entry]) -> Self {
        let mut v = ProjectView {
            manifest,
            order: None,
            approvals: BTreeMap::new(),
            committed: BTreeMap::new(),
            announced: BTreeMap::new(),
            hops: BTreeMap::new(),
            linked: false,
            delivered: false,
            closed: false,
            shredded: BTreeSet::new(),
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
                Body::Commitment(c) => {
                    v.committed.insert(c.member.clone(), c.key);
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
                // Chain v2 bodies: not yet part of the node's view.
                _ => {}
            }
        }
        v
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
    pub fn hops_of(&self, list: &Name) -> Vec<Name> {
        let mut hops = self.manifest.chain_order(list, &self.participants());
        hops.remove(0);
        hops.extend(self.manifest.linker().map(|l| l.name.clone()));
        hops
    }

    /// The announcement of `list`.
    pub fn announcement(&self, list: &Name) -> Option<&'a ListAnnouncement> {
        self.announced.get(list).copied()
    }

    /// The hop record of `list` at `hop`.
    pub fn hop_record(&self, list: &Name, hop: u32) -> Option<&'a HopRecord> {
        self.hops.get(&(list.clone(), hop)).copied()
    }

    /// The Merkle root of `list`'s final pseudonyms: the output root of its
    /// last hop (the linker's), once recorded.
    pub fn final_root(&self, list: &Name) -> Option<Digest> {
        let last = self.hops_of(list).len() as u32;
        self.hop_record(list, last).map(|h| h.output_root)
    }

    /// Whether every hop of `list` is recorded.
    pub fn list_complete(&self, list: &Name) -> bool {
        let n = self.hops_of(list).len() as u32;
        self.announced.contains_key(list)
            && (1..=n).all(|h| self.hops.contains_key(&(list.clone(), h)))
    }

    /// The project's phase.
    pub fn phase(&self) -> Phase {
        if self.closed {
            Phase::Closed
        } else if self.delivered {
            Phase::Delivered
        } else if self.linked {
            Phase::Linked
        } else if self.announced.is_empty() {
            Phase::Ordered
        } else {
            Phase::Chaining
        }
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
        let takes_part = self.participants().contains(me)
            || self.manifest.linker().is_some_and(|l| l.name == *me);
        !takes_part || (self.closed && self.shredded.contains(me))
    }

    /// What `me` must do next, in order.
    pub fn duties(&self, me: &Name) -> Vec<Duty> {
        let Some(_) = self.order else {
            return Vec::new();
        };
        let participants = self.participants();
        let linker = self.manifest.linker().map(|l| l.name.clone());
        let is_linker = linker.as_ref() == Some(me);
        let is_participant = participants.contains(me);
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
                let approvals = self
                    .approvals
                    .get(me)
                    .map(|m| m.values().map(BTreeSet::len).max().unwrap_or(0))
                    .unwrap_or(0);
                // Nothing else for a register until its operators approve.
                return vec![Duty::AwaitApprovals { approvals }];
            };
            if !self.committed.contains_key(me) {
                duties.push(Duty::Commit);
            }
            let all_committed = participants
                .iter()
                .chain(linker.iter())
                .all(|m| self.committed.contains_key(m));
            if all_committed && !self.announced.contains_key(me) {
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
                let hop = i as u32 + 1;
                if member != me || self.hops.contains_key(&(list.clone(), hop)) {
                    continue;
                }
                let previous = if i == 0 {
                    list.clone()
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
        if is_linker {
            let all_lists =
                !participants.is_empty() && participants.iter().all(|l| self.list_complete(l));
            if all_lists && !self.linked {
                duties.push(Duty::Link);
            }
            if self.linked && !self.delivered {
                duties.push(Duty::Deliver);
            }
        }
        duties
    }
}
