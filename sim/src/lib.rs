//! # kobling-sim
//!
//! Synthetic data, the ground truth and the fault relay for Kobling. A library on
//! `protocol` and `keys` only (no `node`): `node`'s tests use it. The
//! `kobling-sim` program (demo, benchmarks) is the `sim-cli` crate.
//!
//! ## Layout
//!
//! ```text
//!  population::generate(seed) ──▶ Population { persons, extracts (NPR, KPR, SSB, RESEPT) }
//!                                   │
//!                                   └──▶ truth: the lnr and final pseudonyms every person
//!                                        must get (from every keystore), and the check of a
//!                                        delivery against the ground truth
//!
//!  relay::Relay: a UDP forwarder with seeded loss, delay, jitter, reordering,
//!                duplication and cuts, put in front of node processes in tests
//! ```
#![forbid(unsafe_code)]

pub mod bench;
pub mod conversion_bench;
pub mod population;
pub mod relay;
pub mod truth;
