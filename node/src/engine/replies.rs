//! A handler's replies: some in hand, then perhaps many more read back one
//! at a time from a spool file (a large delivery), which is removed when
//! the replies are dropped.

use std::collections::VecDeque;

use kobling_protocol::messages::Message;

use crate::{staging::Staging, store::StoreError};

/// A handler's replies, an iterator the transport drains as it sends.
#[derive(Debug)]
pub struct Replies {
    now: VecDeque<Message>,
    /// The spool and the id of the last message read from it.
    spool: Option<(Staging, i64)>,
}

impl Replies {
    /// `first`, then every message queued in `spool`.
    pub(crate) fn spooled(first: Vec<Message>, spool: Staging) -> Self {
        Self {
            now: first.into(),
            spool: Some((spool, 0)),
        }
    }
}

impl From<Vec<Message>> for Replies {
    fn from(v: Vec<Message>) -> Self {
        Self {
            now: v.into(),
            spool: None,
        }
    }
}

impl Iterator for Replies {
    type Item = Message;

    fn next(&mut self) -> Option<Message> {
        if let Some(m) = self.now.pop_front() {
            return Some(m);
        }
        let (spool, last) = self.spool.as_mut()?;
        let read = spool.queued_after(*last).and_then(|next| {
            next.map(|(id, bytes)| {
                *last = id;
                kobling_protocol::messages::decode(&bytes)
                    .map_err(|_| StoreError::Corrupt("spooled reply"))
            })
            .transpose()
        });
        match read {
            Ok(Some(m)) => Some(m),
            Ok(None) => {
                self.spool = None;
                None
            }
            Err(e) => {
                // The recipient sees a delivery shorter than its headers
                // announce, and asks again.
                tracing::error!(error = %e, "a spooled reply could not be read; the rest is not sent");
                self.spool = None;
                None
            }
        }
    }
}
