//! The typed bodies of transcript statements, one per lifecycle step
//! (PROTOCOL.md §5–§8). Every variable-length field is bounded.

use serde::{Deserialize, Serialize};

use super::Entry;
use crate::{
    bounded::{BoundedString, BoundedVec},
    dleq::{ChunkProof, DleqProof},
    domain::{ConversionBinding, PseudonymousList},
    group::WirePoint,
    hash::framed_sha3,
    manifest::{Ed25519Key, X25519Key},
    seal::WrappedKey,
    share::Domain,
    types::{Digest, HopIndex, ListName, Name, ProjectId, UnixTime},
    v2::{ChainStopped, HopRecordV2, ListAnnouncementV2, ListCheck, ListRetry, OwnerList},
};

/// Most registers a project may involve.
pub const MAX_REGISTERS: usize = 32;
/// Most columns (variables) of one extract.
pub const MAX_COLUMNS: usize = 512;
/// Longest column name.
pub const MAX_COLUMN_NAME: usize = 128;
/// Most chunks of one list (with 4096-point chunks: 268 million persons).
pub const MAX_CHUNKS: usize = 65_536;
/// Longest free text (title, legal basis, reasons).
pub const MAX_TEXT: usize = 1024;

/// A column or variable name.
pub type ColumnName = BoundedString<MAX_COLUMN_NAME>;
/// A list of column names.
pub type Columns = BoundedVec<ColumnName, MAX_COLUMNS>;
/// Free text.
pub type Text = BoundedString<MAX_TEXT>;

/// The typed content of a statement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Body {
    /// The researcher's project order (signed by the researcher).
    Order(ProjectOrder),
    /// An operator's approval of a run order (kjøreordre).
    Approval(Approval),
    /// A key holder's commitment `K_{i,p}` to its share.
    Commitment(KeyCommitment),
    /// A register announces its list.
    ListAnnounced(ListAnnouncement),
    /// A hop (register or linker) records its step over a whole list.
    Hop(HopRecord),
    /// The linker's summary of the linkage.
    LinkSummary(LinkSummary),
    /// The linker's record of the delivery to the researcher.
    Delivery(DeliveryRecord),
    /// The project is closed.
    Closure(Closure),
    /// A node confirms it shredded its seed for the project.
    Shredded(Shredded),
    /// Chain v2: a register announces its list (count, chunk size and
    /// blinding commitments before its first chunk).
    ListAnnouncedV2(ListAnnouncementV2),
    /// Chain v2: the owner's end-of-list statement (chunk digests, the
    /// whole-list digest, the sealed root).
    OwnerListV2(OwnerList),
    /// Chain v2: a hop's record (per-chunk digests).
    HopV2(HopRecordV2),
    /// Chain v2: the linker's list check (σ, the backward pass `A_0…A_m`
    /// with its proofs, `B`). Never replicated to registers.
    ListCheck(ListCheck),
    /// Chain v2: a strict attempt stopped the project, naming the hop whose
    /// proof failed (or nobody, if its check failed).
    ChainStopped(ChainStopped),
    /// A key holder of a register domain binds its conversion key
    /// `K'_i = (k_{i,p}·k_{i,R}⁻¹)·G` to its two committed keys.
    Conversion(ConversionBinding),
    /// Chain v2: the linker's word that a list whose check failed goes
    /// again in strict mode (no check value; visible to registers).
    ListRetry(ListRetry),
}

impl Body {
    /// A short stable name of the kind of body (for reports).
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Order(_) => "order",
            Body::Approval(_) => "approval",
            Body::Commitment(_) => "commitment",
            Body::ListAnnounced(_) => "list-announced",
            Body::Hop(_) => "hop",
            Body::LinkSummary(_) => "link-summary",
            Body::Delivery(_) => "delivery",
            Body::Closure(_) => "closure",
            Body::Shredded(_) => "shredded",
            Body::ListAnnouncedV2(_) => "list-announced-v2",
            Body::OwnerListV2(_) => "owner-list-v2",
            Body::HopV2(_) => "hop-v2",
            Body::ListCheck(_) => "list-check",
            Body::ChainStopped(_) => "chain-stopped",
            Body::Conversion(_) => "conversion",
            Body::ListRetry(_) => "list-retry",
        }
    }
}

/// Whether an entry with this body may be replicated to register nodes
/// (PROTOCOL.md §6a step 5, §11; issue 12 item 1).
///
/// Registers see what they need to take part in the chain: the order,
/// approvals, commitments, announcements, hop records (and a stopped
/// chain). Everything written after the lists were verified is kept to
/// the linker's transcript, the researcher and the auditor: the link
/// summary and the delivery record carry counts that would tell a
/// register whether a chosen person is in the cohort, and the closure
/// and shreddings follow them (registers learn the phase from a
/// [`crate::notice`] instead). The v2 list check carries combinations of
/// one list's values and is never replicated either.
pub fn visible_to_registers(body: &Body) -> bool {
    match body {
        Body::Order(_)
        | Body::Approval(_)
        | Body::Commitment(_)
        | Body::ListAnnounced(_)
        | Body::Hop(_)
        | Body::ListAnnouncedV2(_)
        | Body::OwnerListV2(_)
        | Body::HopV2(_)
        | Body::ChainStopped(_)
        | Body::Conversion(_)
        | Body::ListRetry(_) => true,
        Body::LinkSummary(_)
        | Body::Delivery(_)
        | Body::Closure(_)
        | Body::Shredded(_)
        | Body::ListCheck(_) => false,
    }
}

/// How many leading entries of `entries` registers hold: the longest
/// prefix whose bodies are all [`visible_to_registers`]. A register's copy
/// is a prefix of the hash chain, so it verifies as one.
pub fn register_prefix(entries: &[Entry]) -> usize {
    entries
        .iter()
        .position(|e| !visible_to_registers(&e.signed.statement.body))
        .unwrap_or(entries.len())
}

/// What a register is asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// The register.
    pub register: Name,
    /// The variables requested from it.
    pub variables: Columns,
}

/// The project order (PROTOCOL.md §5.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectOrder {
    /// The project.
    pub project: ProjectId,
    /// Title.
    pub title: Text,
    /// Legal basis: REK / Datatilsynet reference.
    pub legal_basis: Text,
    /// The manifest every node pins (`Manifest::digest`).
    pub manifest_digest: Digest,
    /// The linker.
    pub linker: Name,
    /// Participating registers and their variables.
    pub registers: BoundedVec<RegisterRequest, MAX_REGISTERS>,
    /// The cohort expression (`link::Cohort` syntax).
    pub cohort: Text,
    /// Expiry, seconds since the Unix epoch.
    pub expires: UnixTime,
    /// The researcher's Ed25519 key.
    pub researcher_signing_key: Ed25519Key,
    /// The researcher's X25519 (HPKE) key.
    pub researcher_hpke_key: X25519Key,
    /// Whether synthetic test identifiers (month + 80) are accepted.
    pub test_mode: bool,
    /// An access authority's signature of this order
    /// ([`ProjectOrder::grant_digest`]); the linker and every verifier
    /// require one by an authority of the manifest.
    pub grant: Option<super::Grant>,
    /// For a delivery into a register domain (PROTOCOL.md §10): the domain.
    /// The order's id is then the delivery's id, its one register the
    /// source, its HPKE key the holder's ([`crate::receipt`]).
    pub delivery: Option<crate::receipt::DeliveryInto>,
    /// The registers whose lists are keyed by a register domain (a
    /// `pseudonym` column instead of `fnr`), each with its domain
    /// (PROTOCOL.md §10; `crate::domain::project`).
    pub pseudonymous: BoundedVec<PseudonymousList, MAX_REGISTERS>,
    /// An identified project (PROTOCOL.md §10a): the researcher list's
    /// person count and file digest, which the registers' operators
    /// approve; registers then apply their reservation tables.
    pub identified: Option<crate::identified::ResearcherList>,
}

impl ProjectOrder {
    /// `framed_sha3(ORDER, [postcard(order)])`: what approvals bind.
    pub fn digest(&self) -> Digest {
        Digest(framed_sha3(super::tags::ORDER, &[&super::encode(self)]))
    }

    /// The participating registers, in the order's order.
    pub fn register_names(&self) -> Vec<Name> {
        self.registers.iter().map(|r| r.register.clone()).collect()
    }

    /// The project's lists: one per participating register, in the
    /// order's order, and of an identified project last the researcher's
    /// own ([`crate::researcher_list::LIST_NAME`], docs/protocol.md §18).
    pub fn lists(&self) -> Vec<ListName> {
        let mut lists: Vec<ListName> = self
            .registers
            .iter()
            .map(|r| ListName::of(&r.register))
            .collect();
        if self.identified.is_some() {
            lists.extend(crate::researcher_list::list_name().ok());
        }
        lists
    }

    /// Whether `list` is this order's researcher list (an identified
    /// project's list `RESEARCHER`, owned by the researcher's client).
    pub fn is_researcher_list(&self, list: &ListName) -> bool {
        self.identified.is_some() && list.as_str() == crate::researcher_list::LIST_NAME
    }

    /// The cohort the linker links: the order's cohort, of an identified
    /// project intersected with the researcher list
    /// ([`crate::researcher_list::cohort`]).
    ///
    /// # Errors
    ///
    /// The order's cohort expression does not parse.
    pub fn linked_cohort(&self) -> Result<crate::link::Cohort, crate::link::CohortError> {
        use crate::link::Cohort;
        let ordered = Cohort::parse(&self.cohort)?;
        match self.identified {
            None => Ok(ordered),
            Some(_) => Ok(Cohort::And(
                Box::new(ordered),
                Box::new(Cohort::parse(crate::researcher_list::LIST_NAME)?),
            )),
        }
    }
}

/// An operator's approval of a register's run order (PROTOCOL.md §5.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The register.
    pub register: Name,
    /// The order approved.
    pub order: Digest,
    /// SHA3-256 of the extract file.
    pub extract: Digest,
    /// Data rows in the extract.
    pub rows: u64,
    /// The extract's column names.
    pub columns: Columns,
}

/// A key holder's commitment to its share of a domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCommitment {
    /// The key holder.
    pub member: Name,
    /// The domain.
    pub domain: Domain,
    /// `K = k·G`.
    pub key: WirePoint,
}

/// Invalid identifiers of an extract, per reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidCount {
    /// `ident::IdError::reason_code()`.
    pub reason: BoundedString<32>,
    /// How many rows.
    pub count: u64,
}

/// A register's list announcement (PROTOCOL.md §6 steps 1–4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListAnnouncement {
    /// The list (= the register).
    pub list: ListName,
    /// The extract it was built from (must match the approvals).
    pub extract: Digest,
    /// Rows read from the extract.
    pub rows: u64,
    /// Rows excluded for an invalid identifier, per reason.
    pub invalid: BoundedVec<InvalidCount, 16>,
    /// Distinct persons = points in the list.
    pub persons: u64,
    /// The variables delivered, in extract order.
    pub columns: Columns,
    /// `D_j = β_j⁻¹·G`.
    pub blinding_commitment: WirePoint,
    /// Merkle root of the owner's blinded points `y_t` (input of hop 1).
    pub points_root: Digest,
    /// Merkle root of the sealed items.
    pub sealed_root: Digest,
    /// Points per chunk (a power of two).
    pub chunk_size: u32,
    /// The list's content key, sealed to the researcher.
    pub content_key: WrappedKey,
    /// Of an identified project: persons removed by the register's
    /// reservation table, shown (`<5` under 5); `None` otherwise.
    pub excluded: Option<crate::reservation::ShownCount>,
}

/// One chunk of a hop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRecord {
    /// Merkle root of the chunk's input points.
    pub input_root: Digest,
    /// Merkle root of the chunk's output points.
    pub output_root: Digest,
    /// Points in the chunk.
    pub count: u32,
    /// The batched DLEQ proof.
    pub proof: ChunkProof,
}

/// The linker's proof that its step key is `k_L·β⁻¹`:
/// `log_G K_L = log_{D_j} C_j`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkerKeyProof {
    /// `K_L`, the linker's commitment.
    pub linker_key: WirePoint,
    /// `C_j = k_L·D_j`, the public key of the linker's chunk step.
    pub combined: WirePoint,
    /// The DLEQ proof.
    pub proof: DleqProof,
}

/// A hop's record of its step over one list (PROTOCOL.md §6.5–6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HopRecord {
    /// The list.
    pub list: ListName,
    /// The hop index (1 = first hop after the owner).
    pub hop: HopIndex,
    /// The hop's node.
    pub member: Name,
    /// The step's public key: `K_h`, or `C_j` for the linker.
    pub key: WirePoint,
    /// Points in the list.
    pub count: u64,
    /// Points per chunk.
    pub chunk_size: u32,
    /// Merkle root of all input points.
    pub input_root: Digest,
    /// Merkle root of all output points.
    pub output_root: Digest,
    /// Per-chunk roots and proofs.
    pub chunks: BoundedVec<ChunkRecord, MAX_CHUNKS>,
    /// For the linker's hop: the key proof.
    pub linker: Option<LinkerKeyProof>,
}

/// Per-list outcome of the linkage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedList {
    /// The list.
    pub list: ListName,
    /// Merkle root of the final pseudonyms (the linker hop's output root).
    pub final_root: Digest,
    /// Persons in the list.
    pub persons: u64,
    /// Of those, persons in the cohort.
    pub matched: u64,
}

/// The linker's summary of the linkage (PROTOCOL.md §7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSummary {
    /// The cohort expression evaluated (canonical form).
    pub cohort: Text,
    /// Persons in the cohort.
    pub cohort_persons: u64,
    /// Per list.
    pub lists: BoundedVec<LinkedList, MAX_REGISTERS>,
}

/// Per-list delivery record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredList {
    /// The list.
    pub list: ListName,
    /// Items (persons) delivered.
    pub items: u64,
    /// Digest of the delivered selection (positions and lnr, in order).
    pub selection: Digest,
}

/// The linker's record of a delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// The researcher key the delivery was made to.
    pub recipient: Ed25519Key,
    /// Per list.
    pub lists: BoundedVec<DeliveredList, MAX_REGISTERS>,
}

/// The project is closed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    /// Why (expiry, researcher's request, ...).
    pub reason: Text,
}

/// A node confirms it deleted its seed for the domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shredded {
    /// The node.
    pub member: Name,
    /// The domain shredded.
    pub domain: Domain,
}
