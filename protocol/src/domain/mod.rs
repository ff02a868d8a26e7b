//! Register domains (PROTOCOL.md §10): long-lived pseudonym domains of
//! registers that never hold fnr, without a trusted pseudonym manager.
//!
//! ## Data flow
//!
//! ```text
//!  delivery into R (source → R's key holders, linker last → holder)
//!  ────────────────────────────────────────────────────────────────
//!  source:  y = (β·[k_{s,R}])·I(x)     (β = β₁·β₂ split if the source holds no share of R)
//!  holder i of R: k_{i,R}   (hop 1: k_{1,R}·β₂⁻¹ for a split source)
//!  linker:  k_{L,R}                    → β·Ψ_R(x) to the holder
//!  holder:  β⁻¹                        → Ψ_R(x) = k_R·I(x), its person key
//!
//!  project p with a list from R (convert)
//!  ──────────────────────────────────────
//!  holder:  y = (β·k_{H,p})·Ψ_R(x)
//!  key holder i of R: ConversionStep k_{i,p}·k_{i,R}⁻¹   (binding proof, batch proof vs K'_i)
//!  linker:  ConversionStep k_{L,p}·k_{L,R}⁻¹·β⁻¹         (binding proof, blinding proof, β check)
//!                                       → P_p(x), the same as the fnr lists' P_p(x)
//!
//!  re-share of key holder i: ConversionStep k'_i·k_i⁻¹ over the holder's
//!  β-blinded table, recorded in the domain transcript.
//! ```
//!
//! - [`spec`]: the `[[domains]]` manifest entry and its validation.
//! - [`convert`]: the conversion step, its binding proof and verification.
//! - [`project`]: a project's pseudonymous lists, key registers and
//!   conversion bindings.
//! - [`pseudonym`]: the `pseudonym` column of a holder's extract.
//! - [`transcript`]: the domain's own signed, hash-chained transcript.
//! - [`wire`]: who may send which domain message; the holder's and key
//!   holders' decisions on commitments and replicated entries.

pub mod convert;
pub mod project;
pub mod pseudonym;
pub mod spec;
pub mod transcript;
pub mod wire;

#[cfg(test)]
mod tests;

pub use convert::{
    verify_chunk, verify_step, BindingProof, ChunkAt, ConversionContext, ConversionError,
    ConversionKey, ConversionStep, StepProofs,
};
pub use project::{
    converting_domain, key_registers, member_registers, validate_order_domains, verify_binding,
    ConversionBinding, PseudonymousList,
};
pub use pseudonym::{
    decode_pseudonym, parse_pseudonym, pseudonym_bytes, pseudonym_hex, PseudonymError,
    PseudonymListBuilder, PseudonymStats, PseudonymousPerson,
};
pub use spec::{validate_domains, DomainKind, DomainSpec, DomainSpecError, DomainUseError};
