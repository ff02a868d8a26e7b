//! # kobling-sim
//!
//! Synthetic data and local federation runs for Kobling. A library on
//! `protocol` and `keys` only (no `node`): `node`'s tests use it. The
//! `kobling-sim` program (demo, benchmarks) is the `sim-cli` crate.
//!
//! ## Layout
//!
//! ```text
//!  population::generate(seed) ──▶ Population { persons, extracts (NPR, KPR, SSB, RESEPT) }
//!                                   │
//!  inmem::run_federation ◀──────────┘  the whole protocol in one process, no network
//!
//!  relay::Relay: a UDP forwarder with seeded loss, delay, jitter, reordering,
//!                duplication and cuts, put in front of node processes in tests
//! ```
#![forbid(unsafe_code)]

pub mod bench;
pub mod conversion_bench;
pub mod inmem;
pub mod population;
pub mod relay;
pub mod truth;
