//! Log lines about strangers, rate-limited.
//!
//! A refused handshake or a refused frame from a client costs the sender
//! one datagram (a spoofed source address costs it nothing more), but a log
//! line costs the node a write. [`Quiet`] lets through at most `burst` lines
//! of one category per `window` and counts the rest; the next line let
//! through carries the count (`suppressed = n`), so nothing is lost but the
//! repetition.
//!
//! ```text
//!  event ─▶ Quiet::allow(category) ─┬─ Some(suppressed) ─▶ warn!(…, suppressed)
//!                                   └─ None ─▶ counted, not logged
//! ```
//!
//! Members are authenticated and log every line; only what an unknown host
//! can cause goes through here.

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

/// What a rate-limited line is about; each has its own allowance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Category {
    /// A handshake refused (no slot) or failed (bad certificate, deadline).
    Handshake,
    /// A connection refused after its handshake (per-peer or pool limit).
    Connection,
    /// A client's frame refused (its kind, its size, its bytes).
    ClientFrame,
}

const CATEGORIES: usize = 3;

impl Category {
    fn index(self) -> usize {
        match self {
            Category::Handshake => 0,
            Category::Connection => 1,
            Category::ClientFrame => 2,
        }
    }
}

/// A fixed-window limiter per [`Category`].
#[derive(Debug)]
pub(crate) struct Quiet {
    burst: u32,
    window: Duration,
    state: Mutex<[Window; CATEGORIES]>,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl Quiet {
    /// At most `burst` lines of each category per `window`.
    pub(crate) fn new(burst: u32, window: Duration) -> Self {
        let empty = Window {
            start: None,
            logged: 0,
            suppressed: 0,
        };
        Self {
            burst,
            window,
            state: Mutex::new([empty; CATEGORIES]),
        }
    }

    /// Whether a line of `category` may be logged at `now`: `Some(n)` with
    /// the number of lines suppressed since the last one logged, or `None`
    /// (the line is counted).
    pub(crate) fn allow_at(&self, category: Category, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let w = &mut state[category.index()];
        if w.start
            .is_none_or(|s| now.saturating_duration_since(s) >= self.window)
        {
            w.start = Some(now);
            w.logged = 0;
        }
        if w.logged < self.burst {
            w.logged += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed += 1;
            None
        }
    }

    /// [`Quiet::allow_at`] now.
    pub(crate) fn allow(&self, category: Category) -> Option<u64> {
        self.allow_at(category, Instant::now())
    }
}

impl Default for Quiet {
    /// Ten lines of each category per ten seconds.
    fn default() -> Self {
        Self::new(10, Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_a_burst_per_window_and_the_count_of_the_rest() {
        let quiet = Quiet::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let logged: Vec<_> = (0..1000)
            .filter_map(|i| quiet.allow_at(Category::Handshake, t0 + Duration::from_millis(i)))
            .collect();
        assert_eq!(logged, vec![0, 0, 0]);
        // Another category has its own allowance.
        assert_eq!(quiet.allow_at(Category::ClientFrame, t0), Some(0));
        // The next window's first line reports what was suppressed.
        let later = t0 + Duration::from_secs(11);
        assert_eq!(quiet.allow_at(Category::Handshake, later), Some(997));
        assert_eq!(quiet.allow_at(Category::Handshake, later), Some(0));
    }
}
