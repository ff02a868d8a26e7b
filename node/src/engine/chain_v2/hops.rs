//! The hops' state between chunks: a register hop's and the linker's,
//! kept in memory by (project, list, attempt), and the `hops` table's key.

use std::collections::BTreeMap;

use kobling_protocol::{
    refusal::RefusalCode,
    transcript,
    types::{Attempt, HopIndex, ListName, ProjectId},
    v2::{ChunkDigests, HopError, HopRecordV2, LinkerHop, RegisterHop},
};

use crate::{
    engine::error::{refuse, Outcome},
    store::HopKey,
};

/// Chain v2 hops in progress, kept between chunks (rebuilt from the
/// store's records after a restart or a cache miss).
#[derive(Default)]
pub(crate) struct Hops {
    pub(super) register: BTreeMap<(ProjectId, ListName, Attempt), RegisterHop>,
    pub(super) linker: BTreeMap<(ProjectId, ListName, Attempt), LinkerHop>,
}

/// A hop's state between chunks, the same for a register's hop and the
/// linker's.
pub(super) trait HopState {
    fn records(&self) -> &[ChunkDigests];
    fn is_complete(&self) -> bool;
    fn finish(self) -> Result<HopRecordV2, HopError>;
}

/// Both hop kinds' own methods, as a [`HopState`].
macro_rules! hop_state {
    ($($hop:ty),*) => {$(
        impl HopState for $hop {
            fn records(&self) -> &[ChunkDigests] {
                <$hop>::records(self)
            }
            fn is_complete(&self) -> bool {
                <$hop>::is_complete(self)
            }
            fn finish(self) -> Result<HopRecordV2, HopError> {
                <$hop>::finish(self)
            }
        }
    )*};
}
hop_state!(RegisterHop, LinkerHop);

/// After a chunk the hop took: its chunk records so far (encoded), and
/// its record if that was its last chunk; else the state is kept for the
/// next chunk.
pub(super) fn settle<H: HopState>(
    kept: &mut BTreeMap<(ProjectId, ListName, Attempt), H>,
    cache: &(ProjectId, ListName, Attempt),
    state: H,
) -> Outcome<(Vec<u8>, Option<HopRecordV2>)> {
    let records = transcript::encode_value(&state.records().to_vec());
    if !state.is_complete() {
        kept.insert(cache.clone(), state);
        return Ok((records, None));
    }
    let record = state
        .finish()
        .map_err(|e| refuse(RefusalCode::Hop, e.to_string()))?;
    Ok((records, Some(record)))
}

/// The `hops` table's key of hop `hop` in attempt `attempt`.
pub(super) fn hop_key(hop: HopIndex, attempt: Attempt) -> HopKey {
    HopKey(hop.0 | (attempt.0 << 16))
}
