//! # kobling-sim
//!
//! Synthetic data and local federation runs for Kobling.
//!
//! ## Layout
//!
//! ```text
//!  population::generate(seed) ──▶ Population { persons, extracts (NPR, KPR, SSB, RESEPT) }
//!                                   │
//!  inmem::run_federation ◀──────────┘  the whole protocol in one process, no network
//! ```
#![forbid(unsafe_code)]

pub mod bench;
pub mod inmem;
pub mod population;
pub mod truth;
