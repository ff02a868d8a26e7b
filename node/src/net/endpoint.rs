//! quinn endpoints and transport limits.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use quinn::{
    crypto::rustls::{QuicClientConfig, QuicServerConfig},
    Endpoint, EndpointConfig, IdleTimeout, TokioRuntime, TransportConfig, VarInt,
};

use kobling_protocol::{manifest::Manifest, types::Name};

use super::tls::{self, TlsError, TlsIdentity};

/// Transport limits shared by both ends of a connection.
///
/// The windows are what make a slow reader slow its sender: a peer may
/// have at most `stream_receive_window` unread bytes in flight per stream
/// and `receive_window` per connection; beyond that it is blocked by QUIC
/// flow control until the reader catches up.
#[derive(Clone, Debug)]
pub struct TransportLimits {
    /// A connection with no traffic for this long is closed.
    pub(crate) idle_timeout: Duration,
    /// Keep-alive interval of the connections a node dials (must be well
    /// below `idle_timeout`). A server sends none: a member dialling keeps
    /// its own connection alive, and a client's is let go when idle.
    pub(crate) keep_alive: Duration,
    /// Request streams a member may have open at once per connection.
    pub(crate) max_request_streams: u32,
    /// Request streams a client (no member certificate) may have open at
    /// once per connection; also what any peer gets until its handshake
    /// shows who it is.
    pub(crate) client_request_streams: u32,
    /// Unread bytes a client may send ahead on one connection; also what
    /// any peer gets until its handshake shows who it is.
    pub(crate) client_receive_window: u32,
    /// Unread bytes a peer may send ahead on one stream.
    pub(crate) stream_receive_window: u32,
    /// Unread bytes a member may send ahead on one connection.
    pub(crate) receive_window: u32,
    /// Unacknowledged bytes we buffer for sending on one connection.
    pub(crate) send_window: u64,
}

impl Default for TransportLimits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(10),
            max_request_streams: 32,
            client_request_streams: 4,
            client_receive_window: 2 << 20,
            stream_receive_window: 1 << 20,
            receive_window: 8 << 20,
            send_window: 8 << 20,
        }
    }
}

impl TransportLimits {
    /// The quinn transport configuration. As server (`server`), a node
    /// sends no keep-alives and starts every connection with a client's
    /// streams and receive window (the server raises them for a member
    /// once its certificate is checked); as client it keeps its
    /// connections alive and accepts no streams. Never unidirectional
    /// streams.
    fn transport(&self, server: bool) -> Arc<TransportConfig> {
        let mut t = TransportConfig::default();
        let (keep_alive, streams, window) = if server {
            (
                None,
                self.client_request_streams,
                self.client_receive_window,
            )
        } else {
            (Some(self.keep_alive), 0, self.receive_window)
        };
        // Durations of more than 2^62 ms are impossible here; fall back to
        // quinn's default rather than panic.
        t.max_idle_timeout(IdleTimeout::try_from(self.idle_timeout).ok())
            .keep_alive_interval(keep_alive)
            .max_concurrent_bidi_streams(VarInt::from_u32(streams))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .stream_receive_window(VarInt::from_u32(self.stream_receive_window))
            .receive_window(VarInt::from_u32(window))
            .send_window(self.send_window)
            .datagram_receive_buffer_size(None);
        Arc::new(t)
    }
}

/// A server endpoint bound to `bind` that accepts connections only from
/// manifest members. It can also dial (see [`super::client::Client`]), so a
/// node needs one UDP socket for both directions.
///
/// Must be called inside a tokio runtime.
///
/// # Errors
///
/// [`EndpointError::Tls`] if the identity is unusable, [`EndpointError::Io`]
/// if the socket cannot be bound.
pub fn server_endpoint(
    bind: SocketAddr,
    identity: &TlsIdentity,
    manifest: Arc<Manifest>,
    limits: &TransportLimits,
) -> Result<Endpoint, EndpointError> {
    let socket = std::net::UdpSocket::bind(bind)?;
    server_endpoint_on(socket, identity, manifest, limits)
}

/// [`server_endpoint`] on a socket the caller already bound (e.g. to learn
/// its port before writing the manifest).
///
/// # Errors
///
/// As [`server_endpoint`].
pub fn server_endpoint_on(
    socket: std::net::UdpSocket,
    identity: &TlsIdentity,
    manifest: Arc<Manifest>,
    limits: &TransportLimits,
) -> Result<Endpoint, EndpointError> {
    let crypto = QuicServerConfig::try_from(tls::server_config(identity, manifest)?)
        .map_err(TlsError::from)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(limits.transport(true));
    // A member's address is in the manifest; it has no reason to migrate.
    config.migration(false);
    Ok(Endpoint::new(
        EndpointConfig::default(),
        Some(config),
        socket,
        Arc::new(TokioRuntime),
    )?)
}

/// A client-only endpoint bound to `bind` (e.g. `127.0.0.1:0`).
///
/// # Errors
///
/// [`EndpointError::Io`] if the socket cannot be bound.
pub fn client_endpoint(bind: SocketAddr) -> Result<Endpoint, EndpointError> {
    Ok(Endpoint::client(bind)?)
}

/// One quinn client configuration per manifest member, each pinned to that
/// member's fingerprint.
///
/// # Errors
///
/// [`TlsError`] if rustls refuses the configuration.
pub(crate) fn client_configs(
    identity: Option<&TlsIdentity>,
    manifest: &Manifest,
    limits: &TransportLimits,
) -> Result<HashMap<Name, quinn::ClientConfig>, TlsError> {
    let transport = limits.transport(false);
    manifest
        .members
        .iter()
        .map(|m| {
            let crypto =
                QuicClientConfig::try_from(tls::client_config(identity, m.tls_spki_sha256)?)?;
            let mut config = quinn::ClientConfig::new(Arc::new(crypto));
            config.transport_config(transport.clone());
            Ok((m.name.clone(), config))
        })
        .collect()
}

/// An endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// TLS configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The UDP socket.
    #[error("cannot bind the QUIC socket")]
    Io(#[from] std::io::Error),
}
