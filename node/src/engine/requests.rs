//! The replay cache of clients' signed requests (issue 18 item 7).
//!
//! A client request (status, fetch, close, an approval's envelope) names
//! its node, its manifest and a random nonce, and carries a time that the
//! node accepts only within [`MAX_CLOCK_SKEW`] of its clock. The node
//! remembers every request it took, by digest, in its store, and refuses
//! one it has seen. A request whose time is more than `MAX_CLOCK_SKEW`
//! behind the clock is refused by its time, so it is forgotten then: the
//! cache holds at most the requests of the last twenty minutes, and at most
//! [`MAX_REMEMBERED_REQUESTS`] of them (past that, requests wait:
//! `not-ready`, never a forgotten entry). It survives a restart.
//!
//! Only requests from keys allowed to make them are remembered, so a
//! stranger cannot fill it.
//!
//! ```text
//!  request ─▶ check(time, node, manifest, signature) ─▶ may this key ask? ─▶ remember ─▶ handle
//!                                                                             └ seen ─▶ `replayed`
//! ```

use kobling_protocol::{
    messages::{SignedRequest, MAX_CLOCK_SKEW},
    refusal::RefusalCode,
};

use super::{
    error::{not_ready, refuse, Outcome},
    Engine,
};
use crate::store::Remembered;
use kobling_protocol::types::UnixTime;

/// The most client requests a node remembers at once.
pub const MAX_REMEMBERED_REQUESTS: u64 = 1 << 16;

impl Engine {
    /// Remembers `req` (checked and allowed) at `now`, refusing it if it
    /// was seen before.
    pub(super) fn remember_request(&mut self, req: &SignedRequest, now: UnixTime) -> Outcome<()> {
        self.remember_request_digest(&req.request.digest(), req.request.time, now)
    }

    /// Remembers a client request by its digest and signed time (any kind
    /// of signed request: a project's, a domain's), refusing one seen
    /// before.
    pub(super) fn remember_request_digest(
        &mut self,
        digest: &kobling_protocol::types::Digest,
        time: UnixTime,
        now: UnixTime,
    ) -> Outcome<()> {
        let forget_before = now.minus(MAX_CLOCK_SKEW);
        let remembered = self.store.transaction(|tx| {
            tx.remember_request(digest, time, forget_before, MAX_REMEMBERED_REQUESTS)
        })?;
        match remembered {
            Remembered::New => Ok(()),
            Remembered::Seen => Err(refuse(
                RefusalCode::Replayed,
                "this request was taken before; a client makes a new one for every request",
            )),
            Remembered::Full => Err(not_ready(
                "this node holds as many recent requests as it keeps; ask again in a few minutes",
            )),
        }
    }
}
