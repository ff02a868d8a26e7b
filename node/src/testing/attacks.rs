//! Malicious members on the in-memory network: tamper hooks for
//! [`Net::tamper`](super::Net::tamper) that act as one member would, with
//! its own node key (what the attack tests of `tests/tests/chain_v2.rs`
//! and `node/tests/chain_v2_stops.rs` share).

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use kobling_protocol::{
    bounded::BoundedVec,
    messages::Message,
    transcript::Body,
    types::{Attempt, Digest, HopIndex, Name},
    v2::{chunk_digest, ChunkMsg, ListHeader, Mode},
};

use super::Tamper;

/// Re-signs `chunk`'s statement after its points changed, as a malicious
/// sender does with its own node key `key`: the statement then digests
/// what it sends, so the next hop's admission checks pass.
pub fn resign(chunk: &mut ChunkMsg, header: &ListHeader, key: &SigningKey) {
    chunk.statement.statement.output = chunk_digest(&chunk.points);
    chunk.statement.signature = chunk.statement.statement.sign(header, key);
}

/// The header of `header`'s list for `attempt` (attempt 0 optimistic,
/// later ones strict), as every party derives it.
pub fn header_of_attempt(header: &ListHeader, attempt: Attempt) -> ListHeader {
    ListHeader {
        attempt,
        mode: if attempt == Attempt::FIRST {
            Mode::Optimistic
        } else {
            Mode::Strict
        },
        ..header.clone()
    }
}

/// A hop that deviates and signs statements consistent with its own
/// output: `f` rewrites the chunks member `by` sends of list `list` (in
/// every attempt: `header`'s fields, each chunk's attempt) and returns
/// whether it changed one; each changed chunk is re-signed with `key`,
/// and `by`'s hop record of the list then records the outputs it sent. In
/// a strict attempt the chunk's proof no longer verifies, and the next
/// step names `by`. `also` sees every message first (the network takes
/// one hook).
pub fn consistent_hop(
    by: Name,
    header: ListHeader,
    key: SigningKey,
    mut f: impl FnMut(&mut ChunkMsg) -> bool + 'static,
    mut also: impl FnMut(&Name, &Name, &mut Message) + 'static,
) -> Tamper {
    let mut sent: BTreeMap<u64, Digest> = BTreeMap::new();
    let list = header.list.clone();
    Box::new(move |from, to, msg| {
        also(from, to, msg);
        if *from != by {
            return;
        }
        if let Message::ChunkV2 { chunk, .. } = msg {
            if chunk.list == list && f(chunk) {
                resign(chunk, &header_of_attempt(&header, chunk.attempt), &key);
                sent.insert(
                    chunk.statement.statement.chunk.0,
                    chunk.statement.statement.output,
                );
            }
            return;
        }
        let Message::Statement(signed) = msg else {
            return;
        };
        let mut st = signed.statement.clone();
        let Body::HopV2(h) = &mut st.body else { return };
        if h.list != list || h.attempt != Attempt::FIRST {
            return;
        }
        if sent.is_empty() {
            // The record overtook the tampered chunk (another
            // destination's queue): the linker answers `not-ready` to a
            // hop out of order, and it comes again.
            h.hop = HopIndex(99);
            *signed = st.sign(&key);
            return;
        }
        let mut chunks = h.chunks.to_vec();
        for (c, d) in &sent {
            if let Some(x) = usize::try_from(*c).ok().and_then(|c| chunks.get_mut(c)) {
                x.output = *d;
            }
        }
        h.chunks = BoundedVec::new(chunks).expect("as many chunks as before");
        *signed = st.sign(&key);
    })
}
