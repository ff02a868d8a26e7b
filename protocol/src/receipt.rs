//! Deliveries pseudonymised at receipt (PROTOCOL.md §10, issue 15 item 2):
//! a source sends a list into register domain R; R's key holders step it,
//! the linker last; the holder removes the blinding and keeps the rows
//! under `Ψ_R(x) = k_R·I(x)`.
//!
//! A delivery is run like a project: its transcript starts with a
//! [`ProjectOrder`] whose trailing [`ProjectOrder::delivery`] names the
//! domain ([`DeliveryInto`]); the order's id is the delivery's id, its one
//! register is the source, and its sealing key is the holder's HPKE key
//! (the holder plays the researcher's part). [`DeliveryPlan::new`] checks
//! such an order against the manifest and fixes the chain:
//!
//! ```text
//!  source S:  y = (β·k_{S,R})·I(x)          S a key holder of R
//!             y = (β₁·β₂)·I(x)               S not a key holder: split blinding,
//!                                            β₁ sealed to the holder, β₂ to hop 1
//!  hop 1…m:   R's key holders in manifest order except S (not the linker)
//!             k_{i,R}                        (hop 1 of a split source: k_{1,R}·β₂⁻¹,
//!                                            proven against k_{1,R}·D₂)
//!  linker:    §6a check, then k_{L,R} only   → β·Ψ_R(x)  (β₁·Ψ_R(x) if split)
//!  holder:    opens β (β₁), checks it against D (D₁), unblinds
//!                                            → Ψ_R(x); rows keyed by Ψ_R
//!             DomainBody::Delivery { id, source, persons, rows, table digest }
//! ```
//!
//! Every value a key holder or the linker sees carries β (or β₁), which
//! only the source and the holder know: no dictionary over fnr runs on it.
//! This module is sans-IO: it decides and computes; the node stores.

#[cfg(test)]
mod tests;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::{
    chain::{self, ChainError},
    domain::{transcript::DomainBody, DomainSpec},
    group::WirePoint,
    hash::{framed_sha3, FramedHasher},
    manifest::Manifest,
    refusal::{Refusal, RefusalCode},
    share::{Domain, Share},
    transcript::{Body, ProjectOrder, SignedStatement},
    types::{Digest, ListName, Name},
    v2::{HopError, StepKey},
};

/// Domain-separation tags of deliveries.
pub mod tags {
    /// The delivery id (the `delivery` field of a list header and σ).
    pub const DELIVERY_ID: &[u8] = b"KOBLING-DELIVERY-ID";
    /// The digest of the holder's stored table of one delivery.
    pub const DELIVERY_TABLE: &[u8] = b"KOBLING-DELIVERY-TABLE";
}

/// The column of a source's extract that holds the fnr.
pub const FNR_COLUMN: &str = "fnr";
/// The column of a holder's extract that holds `Ψ_R` (never in a delivery).
pub const PSEUDONYM_COLUMN: &str = "pseudonym";

/// The trailing part of a [`ProjectOrder`] that makes it a delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryInto {
    /// The register domain the list is delivered into.
    pub domain: Name,
}

/// A delivery that cannot be run as ordered, or a member acting outside
/// it. Nothing is stored for a refused delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The order is a project's, not a delivery's.
    #[error("the order is not a delivery")]
    NotADelivery,
    /// The domain is not declared in the manifest.
    #[error("no register domain {0} is declared in the manifest")]
    UnknownDomain(Name),
    /// The domain is the disclosure log: nothing is delivered into it
    /// (its holder would hold data beside the disclosure records).
    #[error("domain {0} is the disclosure log: nothing is delivered into it")]
    IntoDisclosureLog(Name),
    /// A delivery has exactly one list, the source's.
    #[error("a delivery has exactly one source register; the order names {0}")]
    SourceCount(usize),
    /// The source is not a register of the manifest.
    #[error("the source {0} is not a register of the manifest")]
    UnknownSource(Name),
    /// The holder cannot deliver into its own domain (it would see fnr
    /// beside the pseudonym).
    #[error("domain {domain}: the source {source_member} is the domain's holder")]
    SourceIsHolder {
        /// The domain.
        domain: Name,
        /// The source named.
        source_member: Name,
    },
    /// The order does not seal to the holder.
    #[error("domain {domain}: the order's sealing key is not the HPKE key of the holder {holder}")]
    HolderKey {
        /// The domain.
        domain: Name,
        /// Its holder.
        holder: Name,
    },
    /// A member that is not a key holder of the domain acted as one (or a
    /// key holder acted out of its hop).
    #[error("domain {domain}: {member} is not a key holder at this step of the delivery")]
    NotAKeyHolder {
        /// The domain.
        domain: Name,
        /// The member.
        member: Name,
    },
    /// The order is not signed for by an operator of the source.
    #[error("a delivery from {0} must be ordered by one of its operators")]
    Orderer(Name),
    /// The source's extract has no fnr column.
    #[error("a delivery's extract needs an `fnr` column")]
    MissingFnr,
    /// The source's extract has a `pseudonym` column: a source holds fnr,
    /// never a domain's pseudonyms.
    #[error("a delivery's extract must not have a `pseudonym` column")]
    PseudonymColumn,
    /// The blinding the holder opened is not the one the source announced.
    #[error("the opened blinding does not match the announced commitment")]
    BlindingMismatch,
    /// A step key could not be built.
    #[error(transparent)]
    Step(#[from] HopError),
    /// A delivered value is not a valid point.
    #[error(transparent)]
    Point(#[from] ChainError),
}

impl ProjectOrder {
    /// The key domain of the order's shares: `Domain::Register(R)` for a
    /// delivery into R, else `Domain::Project(p)`.
    pub fn key_domain(&self) -> Domain {
        match &self.delivery {
            Some(d) => Domain::Register(d.domain.clone()),
            None => Domain::Project(self.project.clone()),
        }
    }

    /// The delivery id that list headers and σ carry, for a delivery:
    /// `framed_sha3(DELIVERY_ID, [domain, id])`.
    pub fn delivery_id(&self) -> Option<Digest> {
        self.delivery.as_ref().map(|d| {
            Digest(framed_sha3(
                tags::DELIVERY_ID,
                &[d.domain.as_bytes(), self.project.as_bytes()],
            ))
        })
    }
}

/// A delivery checked against the manifest: who does what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryPlan {
    /// The domain's manifest entry.
    pub spec: DomainSpec,
    /// The source (the list's owner).
    pub source: Name,
    /// R's key holders, registers in manifest order, then the linker.
    pub key_holders: Vec<Name>,
    /// The hops after the source: the key holders except the source, the
    /// linker last.
    pub hops: Vec<Name>,
    /// The source holds no share of R and splits its blinding.
    pub split: bool,
    /// The delivery id ([`ProjectOrder::delivery_id`]).
    pub delivery: Digest,
}

impl DeliveryPlan {
    /// Checks a delivery order against the manifest.
    ///
    /// # Errors
    ///
    /// [`DeliveryError::NotADelivery`], [`DeliveryError::UnknownDomain`],
    /// [`DeliveryError::IntoDisclosureLog`], [`DeliveryError::SourceCount`], [`DeliveryError::UnknownSource`],
    /// [`DeliveryError::SourceIsHolder`], [`DeliveryError::HolderKey`].
    pub fn new(manifest: &Manifest, order: &ProjectOrder) -> Result<Self, DeliveryError> {
        let (Some(into), Some(delivery)) = (&order.delivery, order.delivery_id()) else {
            return Err(DeliveryError::NotADelivery);
        };
        let spec = manifest
            .domain(&into.domain)
            .ok_or_else(|| DeliveryError::UnknownDomain(into.domain.clone()))?;
        if spec.kind == crate::domain::DomainKind::DisclosureLog {
            return Err(DeliveryError::IntoDisclosureLog(spec.name.clone()));
        }
        let [source] = &order.registers[..] else {
            return Err(DeliveryError::SourceCount(order.registers.len()));
        };
        let source = source.register.clone();
        if !manifest.registers().any(|m| m.name == source) {
            return Err(DeliveryError::UnknownSource(source));
        }
        if source == spec.holder {
            return Err(DeliveryError::SourceIsHolder {
                domain: spec.name.clone(),
                source_member: source,
            });
        }
        let holder_key = manifest.member(&spec.holder).map(|m| m.hpke_key.0);
        if holder_key != Some(order.researcher_hpke_key.0) {
            return Err(DeliveryError::HolderKey {
                domain: spec.name.clone(),
                holder: spec.holder.clone(),
            });
        }
        let key_holders = spec.key_holders(manifest);
        let hops: Vec<Name> = key_holders
            .iter()
            .filter(|m| **m != source)
            .cloned()
            .collect();
        Ok(Self {
            split: !key_holders.contains(&source),
            spec: spec.clone(),
            source,
            key_holders,
            hops,
            delivery,
        })
    }

    /// The key domain: `Domain::Register(R)`.
    pub fn domain(&self) -> Domain {
        self.spec.domain()
    }

    /// The hop index (1…m+1, the linker last) of `member`.
    ///
    /// # Errors
    ///
    /// [`DeliveryError::NotAKeyHolder`] for a member that is no hop of
    /// this delivery (not a key holder of R, or the source itself).
    pub fn hop_of(&self, member: &Name) -> Result<u32, DeliveryError> {
        self.hops
            .iter()
            .position(|m| m == member)
            .map(|i| i as u32 + 1)
            .ok_or_else(|| DeliveryError::NotAKeyHolder {
                domain: self.spec.name.clone(),
                member: member.clone(),
            })
    }

    /// The delivered list: the source's own.
    pub fn list(&self) -> ListName {
        ListName::of(&self.source)
    }

    /// Whether `member` must commit `K_{i,R}` in the delivery transcript.
    pub fn commits(&self, member: &Name) -> bool {
        self.key_holders.contains(member)
    }

    /// The registers that hold R's key: the key holders but the linker,
    /// in manifest order (the source among them exactly when it holds a
    /// share).
    pub fn key_registers(&self, manifest: &Manifest) -> Vec<Name> {
        let linker = manifest.linker().map(|l| &l.name);
        self.key_holders
            .iter()
            .filter(|m| Some(*m) != linker)
            .cloned()
            .collect()
    }

    /// Every member that takes part besides the linker, each once: R's
    /// key registers, the source, then the holder. The linker replicates
    /// the delivery's transcript prefix and its phase notices to them.
    pub fn members(&self, manifest: &Manifest) -> Vec<Name> {
        let mut out = self.key_registers(manifest);
        for m in [&self.source, &self.spec.holder] {
            if !out.contains(m) {
                out.push(m.clone());
            }
        }
        out
    }

    /// The step key of `member` at its hop: `k_{i,R}` (the linker too: it
    /// does not remove β), or for hop 1 after a split source
    /// `k_{1,R}·β₂⁻¹` proven against `D₂` (`blinding` is `[D₁, D₂]` and
    /// `second` the opened β₂).
    ///
    /// # Errors
    ///
    /// [`DeliveryError::NotAKeyHolder`]; hop 1 of a split source without
    /// β₂ or without two commitments gives [`DeliveryError::BlindingMismatch`];
    /// [`DeliveryError::Step`] if β₂ is not the one `D₂` commits to.
    pub fn step_key<R: CryptoRng + ?Sized>(
        &self,
        member: &Name,
        share: Share,
        blinding: &[WirePoint],
        second: Option<&Share>,
        rng: &mut R,
    ) -> Result<StepKey, DeliveryError> {
        let hop = self.hop_of(member)?;
        if hop == 1 && self.split {
            let (Some(beta2), [_, d2]) = (second, blinding) else {
                return Err(DeliveryError::BlindingMismatch);
            };
            return Ok(StepKey::combined(
                &self.domain(),
                &self.list(),
                member,
                &share,
                beta2,
                d2,
                rng,
            )?);
        }
        Ok(StepKey::plain(share))
    }
}

/// A delivery order checked as the linker and `transcript::verify` check
/// it: [`DeliveryPlan::new`], and the order's signing key
/// (`researcher_signing_key`, whose signature entry 0 carries) is an
/// operator of the source.
///
/// # Errors
///
/// As [`DeliveryPlan::new`], or [`DeliveryError::Orderer`].
pub fn check_delivery_order(
    manifest: &Manifest,
    order: &ProjectOrder,
) -> Result<DeliveryPlan, DeliveryError> {
    let plan = DeliveryPlan::new(manifest, order)?;
    if !manifest.is_operator_of(&plan.source, &order.researcher_signing_key) {
        return Err(DeliveryError::Orderer(plan.source));
    }
    Ok(plan)
}

/// What the linker does with a submitted order as far as deliveries go:
/// a project's order passes, and so does a delivery's that
/// [`check_delivery_order`] accepts; any other is refused with its reason
/// (an unknown domain, a source that is the holder, …, or an orderer who
/// is not an operator of the source), before anything is read or written.
///
/// # Errors
///
/// `order`, with the reason.
pub fn admit_delivery_order(manifest: &Manifest, signed: &SignedStatement) -> Result<(), Refusal> {
    let Body::Order(order) = &signed.statement.body else {
        return Ok(());
    };
    if order.delivery.is_none() {
        return Ok(());
    }
    check_delivery_order(manifest, order)
        .map(drop)
        .map_err(|e| Refusal::new(RefusalCode::Order, e.to_string()))
}

/// Checks the header of a source's extract: an `fnr` column, and no
/// `pseudonym` column.
///
/// # Errors
///
/// [`DeliveryError::PseudonymColumn`] or [`DeliveryError::MissingFnr`].
pub fn check_extract_columns<S: AsRef<str>>(columns: &[S]) -> Result<(), DeliveryError> {
    let has = |name: &str| columns.iter().any(|c| c.as_ref().trim() == name);
    if has(PSEUDONYM_COLUMN) {
        return Err(DeliveryError::PseudonymColumn);
    }
    if !has(FNR_COLUMN) {
        return Err(DeliveryError::MissingFnr);
    }
    Ok(())
}

/// The holder's side of the receipt: the blinding it opened (β, or β₁ of a
/// split source), checked against the announced commitment.
pub struct Unblinder {
    inverse: Share,
}

impl core::fmt::Debug for Unblinder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Unblinder(..)")
    }
}

impl Unblinder {
    /// `blinding` is the opened β (β₁ for a split source), `commitment`
    /// the announced `D` (`D₁`).
    ///
    /// # Errors
    ///
    /// [`DeliveryError::BlindingMismatch`] if `β⁻¹·G ≠ D`.
    pub fn new(blinding: &Share, commitment: &WirePoint) -> Result<Self, DeliveryError> {
        let inverse = blinding.invert();
        if inverse.commitment() != *commitment {
            return Err(DeliveryError::BlindingMismatch);
        }
        Ok(Self { inverse })
    }

    /// `Ψ_R(x_t) = β⁻¹·(β·Ψ_R(x_t))` for one chunk of delivered values.
    ///
    /// # Errors
    ///
    /// [`DeliveryError::Point`] naming the first invalid value.
    pub fn unblind(
        &self,
        values: &[WirePoint],
        first_position: u64,
    ) -> Result<Vec<WirePoint>, DeliveryError> {
        Ok(chain::apply_share(&self.inverse, values, first_position)?)
    }
}

/// The digest of the holder's stored table of one delivery, streamed row
/// by row in position order: `framed_sha3(DELIVERY_TABLE, [domain,
/// delivery, then per row: Ψ_R, le64(row), bytes])`.
pub struct TableDigest {
    hasher: FramedHasher,
    persons: u64,
    rows: u64,
    last: Option<WirePoint>,
}

impl TableDigest {
    /// A table of `delivery` into `domain`.
    pub fn new(domain: &Name, delivery: &Digest) -> Self {
        Self {
            hasher: FramedHasher::new(tags::DELIVERY_TABLE)
                .field(domain.as_bytes())
                .field(delivery.as_bytes()),
            persons: 0,
            rows: 0,
            last: None,
        }
    }

    /// One stored row: the person's pseudonym, the row's number, its bytes.
    /// Rows of one person come together (a person is counted when its
    /// pseudonym differs from the previous row's).
    pub fn push(&mut self, pseudonym: &WirePoint, row: u64, bytes: &[u8]) {
        if self.last.as_ref() != Some(pseudonym) {
            self.persons += 1;
            self.last = Some(*pseudonym);
        }
        self.rows += 1;
        self.hasher.push(pseudonym.as_bytes());
        self.hasher.push(&row.to_le_bytes());
        self.hasher.push(bytes);
    }

    /// The domain transcript's record of the delivery.
    pub fn finish(self, plan: &DeliveryPlan) -> DomainBody {
        let mut id = [0u8; 16];
        id.copy_from_slice(&plan.delivery.as_bytes()[..16]);
        let (persons, rows, table) = self.counts();
        DomainBody::Delivery {
            delivery: id,
            source: plan.source.clone(),
            persons,
            rows,
            table,
        }
    }

    /// Persons, rows and the table digest (to check a stored table against
    /// its record).
    pub fn counts(self) -> (u64, u64, Digest) {
        (self.persons, self.rows, Digest(self.hasher.finish()))
    }
}
