//! The researcher's own list in the chain of an identified project
//! (PROTOCOL.md §6a "Owners without a share" and §10a; docs/protocol.md
//! §18). The researcher's client owns a list like a register does, but
//! holds no share: it splits its blinding, `β = β₁·β₂`.
//!
//! ```text
//!  researcher  persons (fnr, own rows) ─▶ prepare ─▶ announcement [D₁, D₂] (signed)
//!              │                                    β₁ sealed to the linker
//!              │                                    β₂ sealed to hop 1 (relayed)
//!              │                                    sealed items (to itself)
//!              │                                    chunks y = β₁β₂·I(x), each signed
//!              │                                    end-of-list statement (signed)
//!              └─ keeps y (KeptOutput) ──── σ fixed ──▶ owner_check ─▶ A_0 (signed)
//!  linker      check_announcement: signer, count, file digest, split ─▶ relay to hop 1
//!  hop 1       hop1_step: open β₂, StepKey::combined(k_1, β₂, D₂); a `RegisterHop`
//!              whose owner key is the researcher's refuses a chunk the relay changed,
//!              dropped or reordered (the researcher signed every chunk digest)
//! ```
//!
//! Call order at the researcher: [`prepare`] (everything to send, and the
//! [`KeptOutput`] to store), then, once the linker has fixed σ,
//! [`KeptOutput::owner_check`]. Nothing here does IO; the client stores the
//! kept output and talks to the linker.

use ed25519_dalek::SigningKey;
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::{
    bounded::BoundedVec,
    group::WirePoint,
    ident::Identifier,
    link::Cohort,
    owner::{shuffled_positions, OwnerError, OwnerList},
    project::ProjectView,
    seal::{
        open_blinding_part, BlindingPart, HpkePublicKey, HpkeSecretKey, SealedItem, WrappedKey,
    },
    share::{Domain, Share},
    transcript::{Body, Columns, ProjectOrder, SignedStatement, Signer, Statement},
    types::{Attempt, Digest, ListName, Name, NameError, ProjectId, UnixTime},
    v2::{
        check::{OwnerCheck, OwnerCheckBuilder},
        ChainView, CheckError, ChunkMsg, HopError, HopRecordV2, ListAnnouncementV2, ListHeader,
        Mode, OwnerStream, Pass, PassContext, StepKey,
    },
};

/// The researcher list's name in the chain. It is no member's name: the
/// engine refuses an identified project in a manifest with a member of
/// this name.
pub const LIST_NAME: &str = "RESEARCHER";

/// The researcher list's [`ListName`].
///
/// # Errors
///
/// None in practice ([`LIST_NAME`] is a valid name); typed for the
/// crate's no-unwrap rule.
pub fn list_name() -> Result<ListName, NameError> {
    ListName::new(LIST_NAME)
}

/// Why a researcher list is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResearcherListError {
    /// The project is not identified: it has no researcher list.
    #[error("the project is not identified: it takes no researcher list")]
    NotIdentified,
    /// The statement is for another project.
    #[error("the researcher list's statement is for another project")]
    WrongProject,
    /// Not signed by the project's researcher (the order's key), or the
    /// signature does not verify.
    #[error("the researcher list is not signed by the project's researcher")]
    NotTheResearcher,
    /// The statement is not a v2 announcement of the researcher list.
    #[error("the statement is not an announcement of the researcher list")]
    NotAnAnnouncement,
    /// The announced persons differ from the order's `ResearcherList`.
    #[error("the researcher list has {announced} persons, the order says {ordered}")]
    WrongCount {
        /// In the order.
        ordered: u64,
        /// In the announcement (or the file read).
        announced: u64,
    },
    /// The digest of the file read differs from the order's.
    #[error("the researcher list file's digest differs from the order's")]
    WrongDigest,
    /// Not `[D₁, D₂]`, or a field a researcher list never has (a delivery
    /// id, an exclusion count).
    #[error("the researcher list's announcement is not a split-blinding list announcement")]
    NotSplit,
    /// The end-of-list statement is not the researcher's, or contradicts
    /// the announcement.
    #[error("the researcher list's end-of-list statement is refused: {0}")]
    BadEnd(String),
    /// Preparing the list failed.
    #[error(transparent)]
    Owner(#[from] OwnerError),
    /// Streaming the chunks failed.
    #[error(transparent)]
    Hop(#[from] HopError),
    /// Computing `A_0` failed (the kept output is damaged).
    #[error(transparent)]
    Check(#[from] CheckError),
    /// Opening `β₂` at hop 1, or the combined step key, failed.
    #[error("hop 1 cannot open or use the researcher list's second blinding part")]
    Blinding,
    /// The list name (never in practice).
    #[error(transparent)]
    Name(#[from] NameError),
    /// A chunk the linker will not relay (not a hop-0 chunk of attempt 0
    /// inside the list, or points its statement does not digest).
    #[error("the researcher list's chunk is refused: {0}")]
    BadChunk(String),
    /// A pass the linker will not relay (not the researcher list's
    /// attempt 0, or with steps already).
    #[error("the researcher list's A_0 is refused: not a pass of its attempt 0 without steps, or not the researcher's signature under σ")]
    BadPass,
    /// A member of the manifest bears the researcher list's name.
    #[error("the order is identified, but a member of the manifest is named {LIST_NAME}, the researcher list's name")]
    NameTaken,
    /// The researcher list was announced already (with another statement).
    #[error("the researcher list is announced already")]
    Announced,
    /// Not every register (and the linker) committed its key yet: the
    /// list waits (hop 1 could not step it).
    #[error("the researcher list waits until every register has approved and committed its key")]
    NotYet,
    /// The researcher list's chain was stopped, or its check recorded.
    #[error("the researcher list's chain is over: it was stopped or checked")]
    Over,
}

/// One person of the researcher list: the identifier and the researcher's
/// own rows (sealed to the researcher itself as any list's items are).
#[derive(Debug, Clone)]
pub struct ResearcherPerson {
    /// The person's canonical identifier.
    pub fnr: Identifier,
    /// The person's rows, each with the researcher's columns.
    pub rows: Vec<Vec<String>>,
}

/// What the researcher's client needs besides the persons.
#[derive(Debug)]
pub struct Setup<'a> {
    /// The project's order (its `identified` part is checked).
    pub order: &'a ProjectOrder,
    /// SHA3-256 of the researcher list file read.
    pub file_digest: Digest,
    /// Rows read from the file.
    pub rows: u64,
    /// The researcher's columns, in file order (the sealed rows' shape).
    pub columns: Columns,
    /// The linker's HPKE key (`β₁` is sealed to it).
    pub linker: &'a HpkePublicKey,
    /// Hop 1's HPKE key (`β₂` is sealed to it, relayed by the linker).
    pub hop1: &'a HpkePublicKey,
    /// Points per chunk (a power of two).
    pub chunk_size: u32,
    /// The client's clock, for the statements.
    pub now: UnixTime,
}

/// Everything the researcher's client sends (to the linker), and what it
/// keeps.
#[derive(Debug)]
pub struct Prepared {
    /// The signed `ListAnnouncedV2` statement (signer: the researcher).
    pub announcement: SignedStatement,
    /// `β₁` sealed to the linker.
    pub beta_first: WrappedKey,
    /// `β₂` sealed to hop 1 (the linker relays it).
    pub beta_second: WrappedKey,
    /// The sealed items, in position order.
    pub items: Vec<SealedItem>,
    /// The hop-0 chunks, each with the researcher's signed statement.
    pub chunks: Vec<ChunkMsg>,
    /// The signed end-of-list statement (`OwnerListV2`).
    pub end: SignedStatement,
    /// The output `y` to keep until σ is fixed.
    pub kept: KeptOutput,
}

/// The researcher's kept output `y` (store it mode 0600 until `A_0` is
/// signed; it carries the unknown `β₁β₂` and no identifier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptOutput {
    /// The project.
    pub project: ProjectId,
    /// Points per chunk.
    pub chunk_size: u32,
    /// `y`, in position order.
    pub points: Vec<WirePoint>,
}

/// The header of attempt 0 of the researcher list in `project`.
fn header(
    project: &ProjectId,
    persons: u64,
    chunk_size: u32,
    attempt: Attempt,
    mode: Mode,
) -> Result<ListHeader, NameError> {
    Ok(ListHeader {
        domain: Domain::Project(project.clone()),
        delivery: None,
        list: list_name()?,
        attempt,
        mode,
        persons,
        chunk_size,
    })
}

/// The order's researcher list, or [`ResearcherListError::NotIdentified`].
fn ordered(order: &ProjectOrder) -> Result<crate::identified::ResearcherList, ResearcherListError> {
    order.identified.ok_or(ResearcherListError::NotIdentified)
}

/// Checks a count and file digest against the order (the client before
/// it sends, the linker on the announcement).
fn check_against_order(
    order: &ProjectOrder,
    persons: u64,
    digest: &Digest,
) -> Result<(), ResearcherListError> {
    let list = ordered(order)?;
    if list.persons != persons {
        return Err(ResearcherListError::WrongCount {
            ordered: list.persons,
            announced: persons,
        });
    }
    if &list.digest != digest {
        return Err(ResearcherListError::WrongDigest);
    }
    Ok(())
}

/// Prepares the researcher list: shuffles the persons, splits the
/// blinding, makes `y = β₁β₂·I(x)` and the sealed items, signs every chunk,
/// the announcement and the end-of-list statement with `key` (the
/// researcher's signing key, the order's `researcher_signing_key`).
///
/// # Errors
///
/// [`ResearcherListError::WrongCount`] / [`ResearcherListError::WrongDigest`]
/// if the persons or the file do not match the order (nothing is made),
/// [`ResearcherListError::NotIdentified`], or a preparation error.
pub fn prepare<R: CryptoRng + ?Sized>(
    setup: &Setup<'_>,
    persons: &[ResearcherPerson],
    key: &SigningKey,
    rng: &mut R,
) -> Result<Prepared, ResearcherListError> {
    let order = setup.order;
    let n = persons.len() as u64;
    check_against_order(order, n, &setup.file_digest)?;
    let project = &order.project;
    let list = list_name()?;
    let researcher = HpkePublicKey::from_bytes(order.researcher_hpke_key.0)
        .map_err(|_| ResearcherListError::Blinding)?;
    let positions = shuffled_positions(n, rng)?;
    let mut owner = OwnerList::new_split(
        project,
        &list,
        n,
        &researcher,
        setup.linker,
        setup.hop1,
        setup.chunk_size,
        rng,
    )?;
    let mut stream = OwnerStream::new(header(
        project,
        n,
        setup.chunk_size,
        Attempt::FIRST,
        Mode::Optimistic,
    )?)?;
    let (mut chunks, mut items, mut kept) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in positions.chunks(setup.chunk_size.max(1) as usize) {
        let people: Vec<&ResearcherPerson> = chunk.iter().map(|&p| &persons[p as usize]).collect();
        let ids: Vec<&Identifier> = people.iter().map(|p| &p.fnr).collect();
        let points = owner.points(&ids)?.output.to_vec();
        let rows: Vec<&[Vec<String>]> = people.iter().map(|p| p.rows.as_slice()).collect();
        items.extend(owner.seal(&rows)?);
        kept.extend(points.iter().copied());
        chunks.push(stream.chunk(points, key)?);
    }
    let made = owner.finish()?;
    let second = made.second.ok_or(ResearcherListError::NotSplit)?;
    let end = stream.finish(made.sealed_root)?;
    let blinding = BoundedVec::new(vec![made.blinding_commitment, second.commitment])
        .map_err(|_| ResearcherListError::NotSplit)?;
    let announcement = ListAnnouncementV2 {
        list,
        delivery: None,
        extract: setup.file_digest,
        rows: setup.rows,
        invalid: BoundedVec::default(),
        persons: n,
        columns: setup.columns.clone(),
        blinding,
        chunk_size: setup.chunk_size,
        content_key: made.content_key,
        excluded: None,
    };
    let sign = |body| {
        Statement {
            project: project.clone(),
            time: setup.now,
            signer: Signer::Researcher(order.researcher_signing_key),
            body,
        }
        .sign(key)
    };
    Ok(Prepared {
        announcement: sign(Body::ListAnnouncedV2(announcement)),
        beta_first: made.blinding_for_linker,
        beta_second: second.sealed,
        items,
        chunks,
        end: sign(Body::OwnerListV2(end)),
        kept: KeptOutput {
            project: project.clone(),
            chunk_size: setup.chunk_size,
            points: kept,
        },
    })
}

/// The linker's check of the researcher's announcement before it records
/// or relays anything: signed by the order's researcher key, for this
/// project, the researcher list's name, the order's count and file digest,
/// a split blinding `[D₁, D₂]`, no delivery id and no exclusion count.
///
/// # Errors
///
/// The [`ResearcherListError`] that applies.
pub fn check_announcement<'a>(
    order: &ProjectOrder,
    signed: &'a SignedStatement,
) -> Result<&'a ListAnnouncementV2, ResearcherListError> {
    ordered(order)?;
    let a = researcher_body(order, signed, |b| match b {
        Body::ListAnnouncedV2(a) => Some(a),
        _ => None,
    })
    .ok_or(ResearcherListError::NotAnAnnouncement)??;
    if a.list != list_name()? {
        return Err(ResearcherListError::NotAnAnnouncement);
    }
    check_against_order(order, a.persons, &a.extract)?;
    if a.blinding.len() != 2 || a.delivery.is_some() || a.excluded.is_some() {
        return Err(ResearcherListError::NotSplit);
    }
    Ok(a)
}

/// An identified order's manifest: no member bears the researcher list's
/// name (its owner is the researcher's client, not a member).
///
/// # Errors
///
/// [`ResearcherListError::NameTaken`].
pub fn check_manifest(
    manifest: &crate::manifest::Manifest,
    order: &ProjectOrder,
) -> Result<(), ResearcherListError> {
    if order.is_identified()
        && manifest
            .members
            .iter()
            .any(|m| m.name.as_str() == LIST_NAME)
    {
        return Err(ResearcherListError::NameTaken);
    }
    Ok(())
}

/// The linker's check of the researcher's end-of-list statement against
/// its (checked) announcement: the researcher's signature, and chunk
/// digests that agree with the announced count.
///
/// # Errors
///
/// [`ResearcherListError::NotTheResearcher`], [`ResearcherListError::BadEnd`].
pub fn check_end(
    order: &ProjectOrder,
    announcement: &ListAnnouncementV2,
    signed: &SignedStatement,
) -> Result<(), ResearcherListError> {
    let end = researcher_body(order, signed, |b| match b {
        Body::OwnerListV2(e) => Some(e),
        _ => None,
    })
    .ok_or_else(|| ResearcherListError::BadEnd("not an end-of-list statement".into()))??;
    let header = header(
        &order.project,
        announcement.persons,
        announcement.chunk_size,
        end.attempt,
        Mode::Optimistic,
    )?;
    match end.contradiction(&header) {
        Some(why) => Err(ResearcherListError::BadEnd(why)),
        None => Ok(()),
    }
}

/// The body `pick` selects from a statement for `order`'s project signed
/// by its researcher: `None` if `pick` selects nothing, `Some(Err)` if the
/// project or signer is wrong.
fn researcher_body<'a, T>(
    order: &ProjectOrder,
    signed: &'a SignedStatement,
    pick: impl FnOnce(&'a Body) -> Option<&'a T>,
) -> Option<Result<&'a T, ResearcherListError>> {
    let body = pick(&signed.statement.body)?;
    if signed.statement.project != order.project {
        return Some(Err(ResearcherListError::WrongProject));
    }
    let key = order.researcher_signing_key;
    if signed.statement.signer != Signer::Researcher(key) || signed.verify_with(&key).is_err() {
        return Some(Err(ResearcherListError::NotTheResearcher));
    }
    Some(Ok(body))
}

/// Hop 1's step over the researcher list: opens `β₂` (sealed to `me`'s
/// HPKE key, relayed by the linker) and makes the combined step
/// `k_1·β₂⁻¹`, proven against `D₂` (the announcement's second commitment).
///
/// # Errors
///
/// [`ResearcherListError::Blinding`] if `β₂` does not open or does not
/// match `D₂`, [`ResearcherListError::NotSplit`] without `D₂`.
#[allow(clippy::too_many_arguments)]
pub fn hop1_step<R: CryptoRng + ?Sized>(
    project: &ProjectId,
    member: &Name,
    share: &Share,
    hpke: &HpkeSecretKey,
    sealed_second: &WrappedKey,
    announcement: &ListAnnouncementV2,
    rng: &mut R,
) -> Result<StepKey, ResearcherListError> {
    let list = list_name()?;
    let d2 = announcement
        .blinding
        .get(1)
        .ok_or(ResearcherListError::NotSplit)?;
    let beta2 = open_blinding_part(hpke, project, &list, BlindingPart::Second, sealed_second)
        .map_err(|_| ResearcherListError::Blinding)?;
    let domain = Domain::Project(project.clone());
    StepKey::combined(&domain, &list, member, share, &beta2, d2, rng)
        .map_err(|_| ResearcherListError::Blinding)
}

/// The cohort of an identified project: the order's cohort intersected
/// with the researcher list (PROTOCOL.md §10a: the cohort is a subset of
/// the researcher list), linked over the registers' lists and the
/// researcher list together.
///
/// # Errors
///
/// Never in practice (the list name).
pub fn cohort(ordered: &Cohort) -> Result<Cohort, NameError> {
    Ok(Cohort::And(
        Box::new(ordered.clone()),
        Box::new(Cohort::List(list_name()?)),
    ))
}

/// Why a kept output's bytes (the researcher's state file) are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeptError {
    /// Not a postcard `KeptOutput`.
    #[error("the kept researcher list is malformed: {0}")]
    Malformed(String),
    /// Bytes after the value.
    #[error("the kept researcher list has trailing bytes")]
    Trailing,
    /// No point, a chunk size that is not a power of two, or too many
    /// chunks.
    #[error("the kept researcher list has no point or an impossible chunk size")]
    BadHeader,
}

impl KeptOutput {
    /// The state file's bytes: `postcard(KeptOutput)` (docs/protocol.md
    /// §18).
    pub fn encode(&self) -> Vec<u8> {
        crate::transcript::encode_value(self)
    }

    /// Reads the state file's bytes back.
    ///
    /// # Errors
    ///
    /// The [`KeptError`] that applies.
    pub fn decode(bytes: &[u8]) -> Result<Self, KeptError> {
        let (kept, rest) = postcard::take_from_bytes::<KeptOutput>(bytes)
            .map_err(|e| KeptError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(KeptError::Trailing);
        }
        let header = kept
            .header(Attempt::FIRST, Mode::Optimistic)
            .map_err(|_| KeptError::BadHeader)?;
        if kept.points.is_empty() || header.validate().is_err() {
            return Err(KeptError::BadHeader);
        }
        Ok(kept)
    }

    /// The header of the kept list's attempt `attempt` in `mode`.
    ///
    /// # Errors
    ///
    /// Never in practice (the list name).
    pub fn header(&self, attempt: Attempt, mode: Mode) -> Result<ListHeader, NameError> {
        header(
            &self.project,
            self.points.len() as u64,
            self.chunk_size,
            attempt,
            mode,
        )
    }

    /// The researcher's signed `A_0 = Σ c_t·y_t` for σ `sigma` (which the
    /// client recomputes from the records, as every owner does).
    ///
    /// # Errors
    ///
    /// [`ResearcherListError::Check`] if the kept output is damaged.
    pub fn owner_check(
        &self,
        attempt: Attempt,
        mode: Mode,
        sigma: Digest,
        key: &SigningKey,
    ) -> Result<OwnerCheck, ResearcherListError> {
        let mut a0 = OwnerCheckBuilder::new(self.header(attempt, mode)?, sigma);
        for chunk in self.points.chunks(self.chunk_size.max(1) as usize) {
            a0.push_chunk(chunk)?;
        }
        Ok(a0.finish(key)?)
    }
}

/// The researcher list's open attempt as the transcript records it, once
/// every hop record is in: its attempt, mode and pass context (σ
/// recomputed from the records as every owner does, `ChainView::sigma`,
/// after checking that the records chain and that the linker's record is
/// the last step; the owner key the order's researcher key). `None` while
/// some hop record is missing.
///
/// # Errors
///
/// [`ResearcherListError::NotIdentified`] (no identified order in
/// `view`), [`ResearcherListError::Over`] (stopped or checked),
/// [`ResearcherListError::Check`] (records that do not chain),
/// [`ResearcherListError::NotTheResearcher`] (the order's key is not a
/// valid key).
pub fn pass_context(
    view: &ProjectView<'_>,
) -> Result<Option<(Attempt, Mode, PassContext)>, ResearcherListError> {
    let order = view.order().ok_or(ResearcherListError::NotIdentified)?;
    ordered(order)?;
    let list = list_name()?;
    let Some(l) = view.v2_list(&list) else {
        return Ok(None);
    };
    if l.stopped.is_some() || l.passed.is_some() || l.attempt != Attempt::FIRST {
        return Err(ResearcherListError::Over);
    }
    let Some(owner_list) = l.owner_list else {
        return Ok(None);
    };
    if l.hops.len() != view.hops_of(&list).len() {
        return Ok(None);
    }
    let Some((linker, registers)) = l.hops.split_last() else {
        return Ok(None);
    };
    let header = l.header(Domain::Project(order.project.clone()));
    let registers: Vec<HopRecordV2> = registers.iter().map(|r| (*r).clone()).collect();
    let blinding = l.announcement.blinding.to_vec();
    let chain = ChainView {
        header: &header,
        manifest: order.manifest_digest,
        owner: list.owner(),
        blinding: &blinding,
        owner_list,
        hops: &registers,
        linker: (&linker.member, linker.key),
    };
    chain.check_linker(linker)?;
    let sigma = chain.sigma()?;
    let owner_key = ed25519_dalek::VerifyingKey::from_bytes(&order.researcher_signing_key.0)
        .map_err(|_| ResearcherListError::NotTheResearcher)?;
    Ok(Some((
        l.attempt,
        l.mode(),
        PassContext {
            sigma,
            owner_key,
            step_keys: chain.step_keys(),
        },
    )))
}

/// The researcher's `A_0` for its list's open attempt, from its copy of
/// the transcript and its kept output: `None` while some hop record of
/// the attempt is missing (ask again later); see [`pass_context`].
///
/// # Errors
///
/// As [`pass_context`]; [`ResearcherListError::WrongProject`] (the kept
/// output is another project's), [`ResearcherListError::Check`] (a kept
/// output that does not fit).
pub fn pass(
    view: &ProjectView<'_>,
    kept: &KeptOutput,
    key: &SigningKey,
) -> Result<Option<Pass>, ResearcherListError> {
    let order = view.order().ok_or(ResearcherListError::NotIdentified)?;
    if kept.project != order.project {
        return Err(ResearcherListError::WrongProject);
    }
    let Some((attempt, mode, ctx)) = pass_context(view)? else {
        return Ok(None);
    };
    let owner = kept.owner_check(attempt, mode, ctx.sigma, key)?;
    Ok(Some(Pass {
        list: list_name()?,
        attempt,
        sigma: ctx.sigma,
        owner,
        steps: BoundedVec::default(),
    }))
}

/// What the linker does with a researcher's announcement: it must be the
/// first of the list (a resend of the same statement is fine), pass
/// [`check_announcement`], and come once every key holder committed.
///
/// # Errors
///
/// As [`check_announcement`]; [`ResearcherListError::Announced`] if
/// another announcement of the list is recorded.
pub fn admit_announcement<'a>(
    view: &ProjectView<'_>,
    signed: &'a SignedStatement,
) -> Result<&'a ListAnnouncementV2, ResearcherListError> {
    let order = view.order().ok_or(ResearcherListError::NotIdentified)?;
    let a = check_announcement(order, signed)?;
    let linker = view.manifest_linker();
    if !view
        .key_registers()
        .iter()
        .chain(linker.as_ref())
        .all(|m| view.fully_committed(m))
    {
        return Err(ResearcherListError::NotYet);
    }
    if view.v2_list(&a.list).is_some_and(|l| l.announcement != a) {
        return Err(ResearcherListError::Announced);
    }
    Ok(a)
}

pub mod wire;

#[cfg(test)]
mod tests;
