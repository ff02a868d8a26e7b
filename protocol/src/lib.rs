//! # kobling-protocol
//!
//! The sans-IO core of Kobling, privacy-preserving record linkage between
//! Norwegian health registers (see `docs/protocol.md`). This crate does no
//! I/O: no sockets, no files, no clock, no OS randomness. Every function is
//! deterministic given its inputs and the RNG it is handed.
//!
//! ## Layout
//!
//! ```text
//!  register R_j                 other registers (manifest order)        linker L
//!  ───────────                  ─────────────────────────────          ────────
//!  ident: fnr → canonical
//!  hash:  I(x) = H2G(x)
//!  chain: y = (β·k_j)·I(x) ──▶ chain: z = k_h·y, dleq: prove ──▶ ... ──▶ dleq: verify last hop
//!  seal:  rows → researcher     dleq: verify previous hop              chain: P = (k_L·β⁻¹)·z
//!  merkle: roots, signed        merkle: roots, signed                  link: cohort, lnr
//!                                                                      transcript: hash chain
//! ```
//!
//! - [`ident`]: fødselsnummer / D-nummer / H-nummer parsing and mapping.
//! - [`hash`]: RFC 9380 `expand_message_xof`, hash-to-group, hash-to-scalar,
//!   framed hashing.
//! - [`group`]: wire points vs validated points.
//! - [`share`]: secret shares, commitments, domains.
//! - [`chain`]: the parallel chain step (the hot loop).
//! - [`dleq`]: batched Chaum–Pedersen proofs per chunk.
//! - [`merkle`]: RFC 6962-shaped SHA3-256 Merkle trees.
//! - [`rng`]: the key-erasing generator behind β, content keys and nonces.
//! - [`seal`]: HPKE + XChaCha20-Poly1305 sealing to the researcher.
//! - [`link`]: cohort expressions, matching and løpenummer.
//! - [`transcript`]: the signed, hash-chained project log and its verifier.
//! - [`messages`]: size-bounded wire messages (postcard).
//! - [`notice`]: the linker's signed phase notices, all registers learn
//!   of a project after its lists were verified.
//! - [`project`]: a project's state from its transcript: phase, duties,
//!   and which messages a node admits ([`project::authorise`],
//!   [`project::ProjectView::admit`]).
//! - [`sequencer`]: the linker's append-and-verify and the replication of
//!   entries to registers.
//! - [`refusal`]: the stable refusal codes.
//! - [`domain`]: register domains: the manifest entry, the one-step
//!   conversion with its binding proof, the `pseudonym` column, the
//!   domain transcript (PROTOCOL.md §10).
//! - [`v2`]: chain v2: per-chunk signed digests and one end-to-end check
//!   per list (PROTOCOL.md §6a).
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used)]

pub mod bounded;
pub mod chain;
pub mod delivery;
pub mod disclosure;
pub mod dleq;
pub mod domain;
pub mod extract;
#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures;
pub mod group;
pub mod hash;
pub mod hop;
pub mod ident;
pub mod identified;
pub mod innsyn;
pub mod link;
pub mod manifest;
pub mod merkle;
pub mod messages;
pub mod notice;
pub mod owner;
pub mod project;
pub mod receipt;
pub mod refusal;
pub mod researcher_list;
pub mod reservation;
pub mod rng;
pub mod seal;
pub mod sequencer;
pub mod share;
pub mod transcript;
pub mod types;
pub mod v2;
