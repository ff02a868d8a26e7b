//! The transport: QUIC between federation members, with mutual TLS pinned
//! to the federation manifest.
//!
//! ## Layout
//!
//! ```text
//!  tls       TlsIdentity (own cert + key), the two pinning verifiers, the
//!            rustls configs (TLS 1.3 only, ALPN `kobling/1`, no resumption)
//!  peer      Peer: who is speaking on a connection (certificate → SPKI
//!            fingerprint → manifest member)
//!  endpoint  quinn transport limits, server endpoint, per-member client
//!            configs
//!  frame     u32-LE length ‖ postcard message; length checked against
//!            MAX_FRAME before a byte of the body is read or allocated
//!  limits    handshake slots (members' reserve, per client prefix);
//!            per-peer limits (member, or client IPv4 / IPv6 /64):
//!            members' and clients' connection pools, request slots, frame
//!            bytes read piece by piece within a budget
//!  quiet     rate-limited log lines for what strangers cause
//!  server    run(endpoint, manifest, handler, settings, shutdown): one task
//!            per connection, one per request stream, broadcast-and-drop
//!            graceful shutdown with a drain deadline
//!  client    Client: connect to a member by name, request → reply, timeouts
//!
//!    Client ──dial(member) ──▶ address + pinned fingerprint from the manifest
//!      │  bidi stream: [len‖request]… FIN          ┌──────────────┐
//!      └────────────────────────────────────────▶ │ server::run  │
//!      ◀──────────────────────── [len‖reply]… FIN  │  conn task   │──▶ Handler::handle(peer, msg)
//!                                                  │  stream task │
//!                                                  └──────────────┘
//! ```
//!
//! ## Design
//!
//! - **The pin is the identity.** There is no CA and no host-name check:
//!   a peer is accepted iff the SHA-256 of its end-entity certificate's
//!   SubjectPublicKeyInfo is a member's `tls_spki_sha256` (and, when we
//!   dial, the member we dialled). The handshake signature is still
//!   verified against that certificate's key, so presenting someone else's
//!   certificate does not help. Session resumption and 0-RTT are off, so
//!   every connection runs the verifiers.
//! - **Stream protocol.** A request stream is a bidirectional stream the
//!   client opens. It carries one or more request frames, each answered by
//!   one reply frame in order; the client finishes its side when done and
//!   the server then finishes its own. [`client::Client::request`] sends
//!   exactly one request per stream.
//! - **Hostile frames.** A length over [`MAX_FRAME`], a stream that ends
//!   inside a frame, or bytes that do not decode close the whole
//!   connection with a [`CloseCode`]; the server keeps serving everyone
//!   else. Logs name the peer and the reason, never message contents.
//! - **Memory and fairness.** Flow control windows bound what a peer may
//!   send ahead of the reader; the server reads frame bodies piece by
//!   piece, each piece taken from the peer's byte budget before it is read
//!   (an announced length costs nothing); and each peer — a member, or a
//!   client's IP address — has its own connections, request slots and
//!   budget (`limits`, `server::ServerSettings::per_member`; clients
//!   also share one budget). A peer that stalls, floods or never reads its
//!   replies waits on its own limits, and QUIC flow control pushes back on
//!   it alone.
//! - **Strangers.** Anyone who can reach the port can send datagrams, so
//!   the server keeps nothing for an address until it proves it receives
//!   there (QUIC Retry), gives a handshake a few seconds and a bounded
//!   number of slots (a reserve for the members' manifest addresses, a cap
//!   per client address or IPv6 /64), keeps members' and clients'
//!   connections in separate pools (a full clients' pool evicts its
//!   idlest), closes idle clients and sends them no keep-alives, starts
//!   every connection with a client's small stream limit and window and
//!   raises them only for a member. The message kind is read before the
//!   body: a client may send only its own kinds, each of at most
//!   [`MAX_CLIENT_FRAME`], and a member's kind from a client closes the
//!   connection unread. What peers are told is a fixed code and phrase;
//!   what strangers cause is logged within a rate limit (`quiet`).
//!
//! [`MAX_FRAME`]: kobling_protocol::messages::MAX_FRAME
//! [`MAX_CLIENT_FRAME`]: kobling_protocol::messages::MAX_CLIENT_FRAME

pub mod client;
pub mod endpoint;
pub mod frame;
pub(crate) mod limits;
pub(crate) mod peer;
pub(crate) mod quiet;
pub(crate) mod server;
pub mod tls;

#[cfg(test)]
mod tests;

use std::fmt;

use quinn::VarInt;

/// Application error codes a node closes a connection or resets a stream
/// with. The reason phrase sent along is the code's fixed text, never
/// anything taken from a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseCode {
    /// Normal close: the conversation is over, or the node shuts down.
    Shutdown,
    /// A frame announced a length over `MAX_FRAME`.
    FrameTooLarge,
    /// A frame's bytes are not a valid message.
    Malformed,
    /// A stream ended inside a frame.
    Truncated,
    /// A frame did not arrive, or a reply was not taken, in time.
    Timeout,
    /// The peer's certificate maps to no manifest member (or not to the
    /// member dialled); the verifiers make this unreachable.
    UnknownPeer,
    /// The client gives up on a request stream.
    Cancelled,
    /// The peer already holds as many connections as it may (or, for a
    /// member, the members' pool is full; for a client, every client
    /// connection is busy).
    TooManyConnections,
    /// The peer sent a kind of message it may not send (a member's kind
    /// from a client), refused before its body was read.
    NotAllowed,
    /// A client's connection was idle too long, or was the idlest when a
    /// new client needed its place.
    Idle,
}

impl CloseCode {
    /// All codes, for mapping back from the wire.
    const ALL: [CloseCode; 10] = [
        CloseCode::Shutdown,
        CloseCode::FrameTooLarge,
        CloseCode::Malformed,
        CloseCode::Truncated,
        CloseCode::Timeout,
        CloseCode::UnknownPeer,
        CloseCode::Cancelled,
        CloseCode::TooManyConnections,
        CloseCode::NotAllowed,
        CloseCode::Idle,
    ];

    /// The code on the wire.
    pub(crate) fn varint(self) -> VarInt {
        VarInt::from_u32(match self {
            CloseCode::Shutdown => 0,
            CloseCode::FrameTooLarge => 1,
            CloseCode::Malformed => 2,
            CloseCode::Truncated => 3,
            CloseCode::Timeout => 4,
            CloseCode::UnknownPeer => 5,
            CloseCode::Cancelled => 6,
            CloseCode::TooManyConnections => 7,
            CloseCode::NotAllowed => 8,
            CloseCode::Idle => 9,
        })
    }

    /// The reason phrase sent with the code.
    pub(crate) fn reason(self) -> &'static [u8] {
        match self {
            CloseCode::Shutdown => b"shutdown",
            CloseCode::FrameTooLarge => b"frame too large",
            CloseCode::Malformed => b"malformed message",
            CloseCode::Truncated => b"stream ended inside a frame",
            CloseCode::Timeout => b"timeout",
            CloseCode::UnknownPeer => b"unknown peer",
            CloseCode::Cancelled => b"cancelled",
            CloseCode::TooManyConnections => b"too many connections",
            CloseCode::NotAllowed => b"not allowed",
            CloseCode::Idle => b"idle",
        }
    }

    /// The code for a wire value, if it is one of ours.
    pub fn from_varint(code: VarInt) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.varint() == code)
    }

    /// Closes `conn` with this code and its reason phrase.
    pub(crate) fn close(self, conn: &quinn::Connection) {
        conn.close(self.varint(), self.reason());
    }

    /// Closes every connection of `endpoint` with this code.
    pub(crate) fn close_endpoint(self, endpoint: &quinn::Endpoint) {
        endpoint.close(self.varint(), self.reason());
    }
}

/// Logs what a connection cost on the network (at its end): packets sent
/// and declared lost (each loss is a retransmission), congestion events,
/// the last smoothed round-trip time.
pub(crate) fn log_stats(conn: &quinn::Connection, side: &'static str, peer: &str) {
    let s = conn.stats();
    tracing::info!(
        side,
        peer,
        sent_packets = s.path.sent_packets,
        lost_packets = s.path.lost_packets,
        lost_bytes = s.path.lost_bytes,
        congestion_events = s.path.congestion_events,
        rtt_ms = s.path.rtt.as_millis() as u64,
        "connection stats"
    );
}

/// Displays an error with its chain of sources, `a: b: c`, for log lines.
pub(crate) struct ErrorChain<'a>(pub(crate) &'a dyn std::error::Error);

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}
