//! Chain v2 (PROTOCOL.md §6, §6a): hops that forward only their output and
//! sign plain digests per chunk, and one end-to-end check per list.
//!
//! ## Data flow
//!
//! ```text
//!  owner                register hop 1 … m                        linker
//!  ─────                ──────────────────                        ──────
//!  OwnerStream::chunk ─ChunkMsg(hop 0)─▶ RegisterHop::handle_chunk ─ChunkMsg(hop h)─▶ … ─▶ LinkerHop::handle_chunk
//!  OwnerStream::finish → OwnerList (signed, at the end)        finish → HopRecordV2 (each hop)
//!
//!  σ = ChainView::sigma()   (everyone recomputes it from the records)
//!  owner: OwnerCheckBuilder → A_0, signed ─▶ hop 1: pass_step ─▶ … ─▶ hop m: pass_step
//!                                                                    ─▶ linker: ListCheck (A_m == B)
//! ```
//!
//! - [`statement`]: the list header, per-chunk statements, digests, tags,
//!   the owner's streaming part.
//! - [`hop`]: the register hop and the linker hop (sans-IO state machines).
//! - [`check`]: σ, the coefficients, `A_0`, `B`, the backward pass and the
//!   list check.
//! - [`split`]: the split blinding of an owner without a share.
//! - [`strict`]: strict mode (v1 per-chunk proofs with the earlier hops'
//!   signed statements carried along).
//!
//! ## Constant time
//!
//! The multi-scalar multiplications `A_0 = Σ c_t·y_t` and `B = Σ c_t·Z_t`
//! are variable-time: the coefficients come from σ, which is public, and
//! the points are public to the party combining them (`y` is what the
//! owner sends to hop 1, `Z` is what the linker receives from hop m).
//! Every multiplication by a share or a blinding is constant-time.

pub mod check;
pub mod hop;
pub mod split;
pub mod statement;
pub mod strict;

#[cfg(test)]
mod tests;

pub use check::{
    coefficients, combine_chunk, pass_step, verify_list_check, ChainView, CheckError, Combination,
    ListCheck, OwnerCheck, OwnerCheckBuilder, Pass, PassContext, PassStep,
};
pub use hop::{HopError, LinkerHop, RegisterHop, StepKey};
pub use split::SplitBlinding;
pub use statement::{
    chunk_digest, list_digest, tags, ChainStopped, ChunkDigests, ChunkMsg, ChunkStatement,
    HopRecordV2, ListAnnouncementV2, ListHeader, Mode, OwnerList, OwnerStream,
    SignedChunkStatement, StepKeyProof,
};
pub use strict::{ListRetry, LAST_ATTEMPT};
