//! # kobling-tests
//!
//! End-to-end tests across the crates, in `tests/tests/`. The crate has no
//! code of its own: it sits on top of the graph (`protocol` ← `keys` ←
//! `node`, with `sim`) and runs every flow on the engine operators run.
//!
//! ## Layout
//!
//! ```text
//!  sim::population ──▶ extracts, ground truth (sim::truth)
//!        │
//!        ▼
//!  node::testing::Federation ── keys, operators, researcher, manifest
//!        │ start(chunk size, faults, seed)
//!        ▼
//!  node::testing::Net ── one node::engine::Engine per member, virtual clock,
//!        │                seeded loss, duplication, latency, crashes
//!        │ run_project: order → approvals → chain → linkage → fetch
//!        ▼
//!  researcher's client (the code of `kobling project fetch`) ──▶ tables
//!        │
//!        ▼
//!  inmem_federation, network: tables == ground truth, byte-identical replays
//!  audit: the transcript tampered with, protocol::transcript's verifier
//!  project_duties: protocol::project::ProjectView over every prefix
//!  fuzz_seeds: the fuzz targets' seed corpus from a real run
//! ```
