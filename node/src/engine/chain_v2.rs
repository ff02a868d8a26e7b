//! Chain v2 at a node (PROTOCOL.md §6a; `docs/protocol.md` §6a, "Driving
//! chain v2 from a node"): the hops over `ChunkV2`s, σ from the
//! transcript, the backward pass (`PassV2`) and the linker's list check.
//!
//! ```text
//!  owner (list.rs, prepare.rs)   ChunkV2 ─▶ chunk_v2 (hop 1 … m: RegisterHop) ─▶ chunk_v2 (linker: LinkerHop)
//!    keeps y (store: chain_v2 "y")            records → hops table                finals + Z ("z") → store
//!  every HopV2 recorded ─▶ Duty::Pass ─▶ start_pass (owner: A_0) ─PassV2─▶ pass_v2 (hop h: pass_step)
//!    ─PassV2─▶ … ─▶ pass_v2 (linker: B, ListCheck::conclude) → "check" (pending) → published
//! ```
//!
//! The linker publishes its list checks once every list of the project
//! has one that passed (then links), so that no list check precedes a
//! hop record another list's hops need for σ in the transcript registers
//! hold (a register's copy ends at the first entry kept from registers,
//! `transcript::register_prefix`). A failed check sends the list again in
//! strict mode (`chain_v2/strict.rs`, with a `ListRetry` in the
//! transcript); a failed strict check, or a pass whose proofs do not
//! verify, closes the project naming the list; so do a hop record
//! that does not chain (`refused_hop_record`), a list of no person
//! (`stop_empty_list`) and a malformed chunk its sender signed (the next
//! register hop records a `ChainStopped` naming it, `stop_named_hop`).
//!
//! Files: the hops' chunk steps here; the backward pass and the list
//! checks in `chain_v2/pass.rs`; the stops in `chain_v2/stop.rs`; strict
//! mode (the retry, the owner's resend, the kept checks) in
//! `chain_v2/strict.rs`.

use ed25519_dalek::VerifyingKey;
use kobling_protocol::{
    bounded::BoundedVec,
    delivery::FinalSaltKey,
    group::WirePoint,
    manifest::Role,
    messages::Message,
    project::ProjectView,
    refusal::RefusalCode,
    seal::{open_blinding, HpkeSecretKey},
    transcript::{self, Body, ListAnnouncement},
    types::{Attempt, ChunkIndex, HopIndex, ListName, Name, ProjectId, UnixTime},
    v2::{
        ChunkDigests, ChunkMsg, HopError, LinkerHop, ListAnnouncementV2, ListHeader, RegisterHop,
        StepKey,
    },
};

use super::{
    error::{ack, not_ready, refuse, Outcome, Refused},
    now_of, Engine,
};
use crate::store::{LinkerRow, LinkerTable, StoreError};

mod hops;
mod pass;
mod record;
mod stop;
mod strict;

pub(super) use hops::Hops;
use hops::{hop_key, settle};
use record::Chain;

/// The owner's kept output `y`, by chunk.
pub(super) const KEPT_Y: &str = "y";
/// The linker's `Z` (hop m's output as received), by chunk.
const KEPT_Z: &str = "z";
/// A concluded list check the linker has not published yet, by attempt.
const PENDING_CHECK: &str = "check";
/// A list check the linker published, by attempt.
const SENT_CHECK: &str = "check-sent";
/// A chain stop this hop sent, by attempt.
const STOP_SENT: &str = "stop-sent";

/// A v1-shaped announcement's fields as a v2 announcement (the owner's
/// preparation makes both; the roots go in the owner's list statement).
pub(super) fn announcement_v2(a: ListAnnouncement) -> ListAnnouncementV2 {
    ListAnnouncementV2 {
        list: a.list,
        delivery: None,
        extract: a.extract,
        rows: a.rows,
        invalid: a.invalid,
        persons: a.persons,
        columns: a.columns,
        blinding: BoundedVec::new(vec![a.blinding_commitment]).unwrap_or_default(),
        chunk_size: a.chunk_size,
        content_key: a.content_key,
        excluded: a.excluded,
    }
}

impl Engine {
    /// A malformed chunk: named if its sender signed it
    /// (`name_signed_bad_chunk`), and refused as `bad-chunk`.
    fn signed_bad_chunk(
        &mut self,
        project: &ProjectId,
        header: &ListHeader,
        hops: &[Name],
        msg: &ChunkMsg,
        e: HopError,
        now: UnixTime,
    ) -> Refused {
        match self.name_signed_bad_chunk(project, header, hops, msg, &e, now) {
            Ok(()) => refuse(RefusalCode::BadChunk, e.to_string()),
            Err(stopped) => stopped,
        }
    }

    /// A member's Ed25519 node key.
    pub(super) fn node_key(&self, member: &Name) -> Outcome<VerifyingKey> {
        self.manifest
            .member(member)
            .and_then(|m| VerifyingKey::from_bytes(&m.signing_key.0).ok())
            .ok_or_else(|| {
                refuse(
                    RefusalCode::Manifest,
                    format!("{member} has no valid node key"),
                )
            })
    }

    /// A chain v2 chunk of `chunk.list` for this node's hop (admitted: the
    /// sender is the step before this node's).
    pub(super) fn chunk_v2(&mut self, project: &ProjectId, msg: ChunkMsg) -> Outcome<Vec<Message>> {
        let entries = self.store.entries(project)?;
        let manifest = self.manifest.clone();
        let view = ProjectView::new(&manifest, &entries);
        let list = msg.list.clone();
        let l = view.v2_list(&list).ok_or_else(|| {
            not_ready(format!(
                "list {list} is not announced for chain v2 here yet"
            ))
        })?;
        if l.stopped.is_some() || l.passed.is_some() || msg.attempt < l.attempt {
            return Ok(vec![ack()]); // a resend of a finished attempt
        }
        if msg.attempt > l.attempt {
            return Err(not_ready(format!(
                "list {list}: attempt {} is not open here yet",
                msg.attempt
            )));
        }
        let attempt = l.attempt;
        let hops = view.hops_of(&list);
        let from_hop = msg.statement.statement.hop.as_usize();
        if hops.get(from_hop) != Some(&self.me) {
            return Err(refuse(
                RefusalCode::UnexpectedSender,
                format!("a chunk of list {list} from hop {from_hop} is not for this node"),
            ));
        }
        let hop = HopIndex(from_hop as u32 + 1);
        if l.hops.len() > from_hop {
            return Ok(vec![ack()]); // this hop's record is in the transcript
        }
        let key = hop_key(hop, attempt);
        let stored = self.store.transaction(|tx| tx.hop(project, &list, key))?;
        let records: Vec<ChunkDigests> = match &stored {
            Some((_, true)) => return Ok(vec![ack()]),
            Some((bytes, false)) => {
                postcard::from_bytes(bytes).map_err(|_| StoreError::Corrupt("v2 hop records"))?
            }
            None => Vec::new(),
        };
        let done = records.len() as u64;
        let c = msg.statement.statement.chunk;
        if from_hop == 0 {
            // Hop 1 over a streamed list (docs/protocol.md §19): no owner's
            // chunk past the list's end, and, once the owner's end-of-list
            // statement is here, none other than the one it lists.
            let header = l.header(super::delivery_run::key_domain(&view, project));
            let past = c.0 >= header.chunks();
            let contradicts = l
                .owner_list
                .filter(|o| o.attempt == attempt)
                .is_some_and(|o| {
                    o.chunks.get(usize::try_from(c.0).unwrap_or(usize::MAX))
                        != Some(&msg.statement.statement.output)
                });
            if past || contradicts {
                let e = HopError::OwnerContradiction { chunk: c };
                return Err(self.signed_bad_chunk(
                    project,
                    &header,
                    &hops,
                    &msg,
                    e,
                    now_of(&entries),
                ));
            }
        }
        if c < ChunkIndex(done) {
            tracing::debug!(node = %self.me, %project, %list, hop = hop.0, chunk = c.0, "chunk already stepped: acknowledged, not redone");
            return Ok(vec![ack()]);
        }
        if c > ChunkIndex(done) {
            return Err(not_ready(format!("chunk {c} before chunk {done}")));
        }
        let header = l.header(super::delivery_run::key_domain(&view, project));
        let mut senders = vec![self.owner_key(&view, &list)?];
        for member in &hops[..from_hop] {
            senders.push(self.node_key(member)?);
        }
        let step_keys: Vec<WirePoint> = hops[..from_hop]
            .iter()
            .filter_map(|m| view.step_key(&list, m))
            .collect();
        let cache = (project.clone(), list.clone(), attempt);
        let is_linker = self.role == Role::Linker;
        let share = self
            .keystore
            .share(&super::delivery_run::key_domain(&view, project))?;
        // k_{i,p}, or k_{i,p}·k_{i,R}⁻¹ on a list from register domain R.
        let step_share = self.step_share(&view, project, &list)?;
        let now = now_of(&entries);
        let (records, output, next, record) = if is_linker {
            let mut state = match self.v2_hops.linker.remove(&cache) {
                Some(s) if s.next_chunk() == ChunkIndex(done) => s,
                _ => {
                    let d =
                        l.announcement.blinding.first().copied().ok_or_else(|| {
                            refuse(RefusalCode::Blinding, "no blinding commitment")
                        })?;
                    let domain = super::delivery_run::key_domain(&view, project);
                    let step = if view.delivery_plan().is_some() {
                        // A delivery: k_{L,R} only; β stays on until the
                        // holder removes it (the linker never sees Ψ_R).
                        StepKey::plain(step_share)
                    } else {
                        let blinding = if view.is_researcher_list(&list) {
                            self.researcher_first_blinding(project, &view, &list)?
                        } else {
                            self.open_list_blinding(project, &list)?
                        };
                        StepKey::combined(
                            &domain,
                            &list,
                            &self.me,
                            &step_share,
                            &blinding,
                            &d,
                            &mut self.rng,
                        )
                        .map_err(|e| refuse(RefusalCode::Blinding, e.to_string()))?
                    };
                    let salt = FinalSaltKey::from_share(&share, &domain);
                    let finals = self.final_points_of(project, &list)?;
                    LinkerHop::new(
                        header.clone(),
                        hop,
                        self.me.clone(),
                        step,
                        senders,
                        step_keys,
                        salt,
                    )
                    .and_then(|h| h.resume(records, &finals))
                    .map_err(|e| refuse(RefusalCode::Hop, e.to_string()))?
                }
            };
            let finals = match state.handle_chunk(&msg) {
                Ok(f) => f,
                Err(e) => {
                    self.v2_hops.linker.insert(cache, state);
                    return Err(self.signed_bad_chunk(project, &header, &hops, &msg, e, now));
                }
            };
            let (records, record) = settle(&mut self.v2_hops.linker, &cache, state)?;
            (records, Output::Finals(finals), None, record)
        } else {
            let mut state = match self.v2_hops.register.remove(&cache) {
                Some(s) if s.next_chunk() == ChunkIndex(done) => s,
                _ => {
                    let step = self.register_step_key(&view, project, &list, step_share)?;
                    RegisterHop::new(
                        header.clone(),
                        hop,
                        self.me.clone(),
                        step,
                        senders,
                        step_keys,
                    )
                    .and_then(|h| h.resume(records))
                    .map_err(|e| refuse(RefusalCode::Hop, e.to_string()))?
                }
            };
            let out = match state.handle_chunk(&msg, &self.signing, &mut self.rng) {
                Ok(out) => out,
                Err(e) => {
                    self.v2_hops.register.insert(cache, state);
                    return Err(self.signed_bad_chunk(project, &header, &hops, &msg, e, now));
                }
            };
            let (records, record) = settle(&mut self.v2_hops.register, &cache, state)?;
            (
                records,
                Output::Chunk(Box::new(out)),
                hops.get(hop.as_usize()).cloned(),
                record,
            )
        };
        let complete = record.is_some();
        let statement = record.map(|r| self.sign(project, Body::HopV2(r), now_of(&entries)));
        let linker = self.linker();
        let committed = self.store.transaction(|tx| {
            tx.put_hop(project, &list, key, &records, complete)?;
            match &output {
                Output::Finals(finals) => {
                    tx.put_blob(
                        LinkerRow::Final(c),
                        project,
                        &list,
                        &transcript::encode_value(finals),
                    )?;
                    tx.put_v2(
                        project,
                        &list,
                        KEPT_Z,
                        c.0,
                        &transcript::encode_value(&msg.points),
                    )?;
                }
                Output::Chunk(out) => {
                    if let Some(next) = &next {
                        tx.send(
                            project,
                            next,
                            &Message::ChunkV2 {
                                project: project.clone(),
                                chunk: (**out).clone(),
                            },
                        )?;
                    }
                }
            }
            if let Some(s) = &statement {
                tx.send(project, &linker, &Message::Statement(s.clone()))?;
            }
            Ok::<_, Refused>(())
        });
        if let Err(e) = committed {
            // The cached state is ahead of the store: rebuild it next time.
            self.v2_hops.register.remove(&cache);
            self.v2_hops.linker.remove(&cache);
            return Err(e);
        }
        // Counted by the restart tests: one line per chunk verified, stepped
        // and committed, so a chunk stepped twice shows up.
        tracing::debug!(node = %self.me, %project, %list, hop = hop.0, chunk = c.0, "chunk stepped");
        Ok(vec![ack()])
    }

    /// The list blinding the owner sealed to the linker, opened (it was
    /// checked against the announcement when it arrived; `StepKey::combined`
    /// checks it again).
    fn open_list_blinding(
        &mut self,
        project: &ProjectId,
        list: &ListName,
    ) -> Outcome<kobling_protocol::share::Share> {
        let wrapped = self.kept_blinding(project, list)?;
        let hpke = HpkeSecretKey::from_bytes(*self.keystore.x25519_secret_bytes());
        open_blinding(&hpke, project, list, &wrapped)
            .map_err(|_| refuse(RefusalCode::Blinding, "the list blinding does not open"))
    }

    /// The final points of a list stored so far, in position order.
    fn final_points_of(&mut self, project: &ProjectId, list: &ListName) -> Outcome<Vec<WirePoint>> {
        let mut points = Vec::new();
        self.store.transaction(|tx| {
            tx.for_each_blob(LinkerTable::Final, project, list, |b| {
                let chunk: Vec<WirePoint> =
                    postcard::from_bytes(b).map_err(|_| StoreError::Corrupt("final points"))?;
                points.extend(chunk);
                Ok(())
            })
        })?;
        Ok(points)
    }
}

/// The list an announcement with no person announces (v1 or v2).
pub(super) fn empty_list(body: &Body) -> Option<ListName> {
    match body {
        Body::ListAnnouncedV2(a) if a.persons == 0 => Some(a.list.clone()),
        Body::ListAnnounced(a) if a.persons == 0 => Some(a.list.clone()),
        _ => None,
    }
}

/// Who a hop record says it is (kept when the record itself is moved
/// into the transcript).
pub(super) struct HopOf {
    pub(super) list: ListName,
    attempt: Attempt,
    hop: HopIndex,
    member: Name,
}

impl HopOf {
    /// A chain v2 hop record's list, attempt, hop and member.
    pub(super) fn of(body: &Body) -> Option<Self> {
        match body {
            Body::HopV2(h) => Some(Self {
                list: h.list.clone(),
                attempt: h.attempt,
                hop: h.hop,
                member: h.member.clone(),
            }),
            _ => None,
        }
    }
}

/// What a chunk's step produced.
enum Output {
    /// A register hop's chunk for the next step.
    Chunk(Box<ChunkMsg>),
    /// The linker's final pseudonyms of the chunk.
    Finals(Vec<WirePoint>),
}
