//! Projects with pseudonymous lists (PROTOCOL.md §10, "Project from a
//! pseudonymous register"; `docs/domains.md`, "Projects with a
//! pseudonymous list").
//!
//! ```text
//!  order.pseudonymous = [(RESEPT, RESEPT_DOMAIN)]
//!        │ validate_order_domains: the domain exists, its holder is that register
//!        ▼
//!  key registers = Manifest::project_key_holders(participants, domains) − linker
//!        │ every key holder i of R (the linker too) commits, in one step:
//!        │   Commitment(Project p)  K_{i,p}
//!        │   Commitment(Register R) K_{i,R}
//!        │   Conversion { member, domain R, binding: log_G K_{i,R} = log_{K'_i} K_{i,p} }
//!        ▼
//!  list from R:  holder (β·k_{H,p})·Ψ_R(x) → key holder of R: K'_i = k_{i,p}·k_{i,R}⁻¹
//!                → other register: k_{i,p} → linker: k_{L,p}·k_{L,R}⁻¹·β⁻¹ (proof vs K'_L)
//! ```
//!
//! A conversion hop's record carries `K'_i` as its step key; the auditor
//! (and the linker, on every append) checks it against the member's
//! [`ConversionBinding`], which it verified against the two committed
//! keys. A hop that applies plain `k_{i,p}` on a list from R records
//! `K_{i,p}`, not `K'_i`, and is refused.

use serde::{Deserialize, Serialize};

use super::{
    convert::{BindingProof, ConversionContext, ConversionError},
    spec::DomainUseError,
};
use crate::{
    group::WirePoint,
    manifest::Manifest,
    share::Domain,
    transcript::ProjectOrder,
    types::{ListName, Name, ProjectId},
};

/// One register's list keyed by a register domain (an entry of
/// `ProjectOrder::pseudonymous`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PseudonymousList {
    /// The register (the domain's holder), whose extract has a
    /// `pseudonym` column instead of `fnr`.
    pub register: Name,
    /// The register domain its pseudonyms are from.
    pub domain: Name,
}

/// A key holder's conversion key for a project (a transcript body): the
/// binding proof `log_G K_{i,R} = log_{K'_i} K_{i,p}` with
/// `K'_i = (k_{i,p}·k_{i,R}⁻¹)·G`. Recorded once per key holder and domain
/// of the order, right after its two commitments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversionBinding {
    /// The key holder.
    pub member: Name,
    /// The register domain converted from.
    pub domain: Name,
    /// The binding proof (`from_key` = `K_{i,R}`, `to_key` = `K_{i,p}`,
    /// `combined` = `K'_i`).
    pub binding: BindingProof,
}

impl ProjectOrder {
    /// The domain `register`'s list is keyed by, if the order says so.
    pub fn list_domain(&self, register: &Name) -> Option<&Name> {
        self.pseudonymous
            .iter()
            .find(|p| &p.register == register)
            .map(|p| &p.domain)
    }

    /// The register domains of the order's pseudonymous lists, in order.
    pub fn domains(&self) -> Vec<Name> {
        let mut out: Vec<Name> = Vec::new();
        for p in self.pseudonymous.iter() {
            if !out.contains(&p.domain) {
                out.push(p.domain.clone());
            }
        }
        out
    }
}

/// Checks an order's pseudonymous lists against the manifest: each names
/// a participating register once, a declared domain, and that domain's
/// holder is the register.
///
/// # Errors
///
/// A [`DomainUseError`].
pub fn validate_order_domains(
    manifest: &Manifest,
    order: &ProjectOrder,
) -> Result<(), DomainUseError> {
    let participants = order.register_names();
    let mut seen: Vec<&Name> = Vec::new();
    for p in order.pseudonymous.iter() {
        if seen.contains(&&p.register) {
            return Err(DomainUseError::DuplicateList(p.register.clone()));
        }
        seen.push(&p.register);
        if !participants.contains(&p.register) {
            return Err(DomainUseError::NotAParticipant(p.register.clone()));
        }
        let spec = manifest
            .domain(&p.domain)
            .ok_or_else(|| DomainUseError::UnknownDomain(p.domain.clone()))?;
        if spec.kind == super::DomainKind::DisclosureLog {
            return Err(DomainUseError::DisclosureLog {
                register: p.register.clone(),
                domain: p.domain.clone(),
            });
        }
        if spec.holder != p.register {
            return Err(DomainUseError::NotTheHolder {
                register: p.register.clone(),
                domain: p.domain.clone(),
                holder: spec.holder.clone(),
            });
        }
    }
    manifest
        .project_key_holders(&participants, &order.domains())
        .map(|_| ())
}

/// The registers that hold a key of the project, in manifest order: the
/// participants and every register key holder of the order's domains (the
/// linker is not among them); of a delivery into R, the registers that
/// hold R's key. An order that does not validate gives its participants.
pub fn key_registers(manifest: &Manifest, order: &ProjectOrder) -> Vec<Name> {
    let participants = order.register_names();
    if order.delivery.is_some() {
        // A delivery into R: the registers that hold R's key (a source
        // without a share is not among them; `DeliveryPlan::members`).
        return crate::receipt::DeliveryPlan::new(manifest, order)
            .map(|plan| plan.key_registers(manifest))
            .unwrap_or(participants);
    }
    if order.pseudonymous.is_empty() {
        return participants;
    }
    let linker = manifest.linker().map(|l| &l.name);
    match manifest.project_key_holders(&participants, &order.domains()) {
        Ok(all) => all.into_iter().filter(|n| Some(n) != linker).collect(),
        Err(_) => participants,
    }
}

/// The registers that take part in `order` and hold its transcript's
/// register prefix: [`key_registers`], and of a delivery also its source
/// and its holder ([`crate::receipt::DeliveryPlan::members`]). Their
/// operators may read the project's status.
pub fn member_registers(manifest: &Manifest, order: &ProjectOrder) -> Vec<Name> {
    match crate::receipt::DeliveryPlan::new(manifest, order) {
        Ok(plan) => plan.members(manifest),
        Err(_) => key_registers(manifest, order),
    }
}

/// Whether `member` converts `list` (of `order`): the list is keyed by a
/// domain of which `member` is a key holder. Returns the domain.
pub fn converting_domain<'o>(
    manifest: &Manifest,
    order: &'o ProjectOrder,
    list: &ListName,
    member: &Name,
) -> Option<&'o Name> {
    let domain = order.list_domain(list.owner())?;
    manifest
        .domain(domain)
        .filter(|spec| spec.is_key_holder(manifest, member))
        .map(|_| domain)
}

/// Verifies a conversion binding against the member's committed keys
/// `K_{i,R}` (`committed_from`) and `K_{i,p}` (`committed_to`); returns
/// `K'_i`.
///
/// # Errors
///
/// [`ConversionError::Binding`]: another key named, or a proof that does
/// not verify.
pub fn verify_binding(
    project: &ProjectId,
    c: &ConversionBinding,
    committed_from: &WirePoint,
    committed_to: &WirePoint,
) -> Result<WirePoint, ConversionError> {
    let (from_domain, to_domain) = (
        Domain::Register(c.domain.clone()),
        Domain::Project(project.clone()),
    );
    let ctx = ConversionContext {
        from: &from_domain,
        to: &to_domain,
        member: &c.member,
    };
    c.binding.verify(ctx, committed_from, committed_to)
}
