//! The client side: dial a member by name, send a request, await the reply.
//!
//! A member's address and pinned fingerprint both come from the manifest;
//! a server presenting any other certificate (even another member's) is
//! refused during the handshake. Connections are cached per member and
//! redialled once closed.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use quinn::Endpoint;
use tokio::time::timeout;
use tracing::debug;

use kobling_protocol::{manifest::Manifest, messages::Message, types::Name};

use super::{
    endpoint::{client_configs, TransportLimits},
    frame::{self, FrameError},
    peer::Peer,
    tls::{TlsError, TlsIdentity, SERVER_NAME},
    CloseCode,
};

/// Client deadlines.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// Resolving the address and completing the handshake.
    pub connect_timeout: Duration,
    /// Sending a request and receiving its whole reply.
    pub request_timeout: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// A request could not be made or answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The manifest has no member of that name.
    #[error("{0} is not a member of the federation")]
    UnknownMember(Name),
    /// The member's address did not resolve.
    #[error("cannot resolve the address of {member}")]
    Resolve {
        /// The member.
        member: Name,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// quinn refused to start the connection.
    #[error("cannot connect")]
    Connect(#[from] quinn::ConnectError),
    /// The handshake failed (e.g. the server's certificate is not the
    /// member's pin, or the server refused ours), or the connection was
    /// lost.
    #[error("connection failed")]
    Connection(#[from] quinn::ConnectionError),
    /// The connected server is not the member dialled (the verifier makes
    /// this unreachable).
    #[error("the server is not {0}")]
    WrongPeer(Name),
    /// A deadline passed.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// A frame could not be written or read.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream was closed under us.
    #[error("stream closed")]
    ClosedStream(#[from] quinn::ClosedStream),
    /// The server finished the stream without a reply.
    #[error("no reply")]
    NoReply,
    /// The server sent more than one reply to one request.
    #[error("more than one reply")]
    ExtraReply,
}

/// Dials manifest members and exchanges requests with them.
pub struct Client {
    endpoint: Endpoint,
    manifest: Arc<Manifest>,
    configs: HashMap<Name, quinn::ClientConfig>,
    settings: ClientSettings,
    connections: Mutex<HashMap<Name, Connection>>,
}

impl Client {
    /// A client dialling from `endpoint` (a client endpoint, or the node's
    /// own server endpoint) as `identity`.
    ///
    /// # Errors
    ///
    /// [`TlsError`] if rustls refuses the configuration.
    pub fn new(
        endpoint: Endpoint,
        identity: Option<&TlsIdentity>,
        manifest: Arc<Manifest>,
        limits: &TransportLimits,
        settings: ClientSettings,
    ) -> Result<Self, TlsError> {
        Ok(Self {
            configs: client_configs(identity, &manifest, limits)?,
            endpoint,
            manifest,
            settings,
            connections: Mutex::new(HashMap::new()),
        })
    }

    /// A connection to `member`: the cached one if it is still open,
    /// otherwise a new one.
    ///
    /// # Errors
    ///
    /// [`ClientError::UnknownMember`], [`ClientError::Resolve`],
    /// [`ClientError::Connect`], [`ClientError::Connection`] (handshake
    /// refused), [`ClientError::Timeout`].
    pub async fn connect(&self, member: &Name) -> Result<Connection, ClientError> {
        let stale = {
            let mut cache = self.cache();
            match cache.get(member) {
                Some(c) if c.conn.close_reason().is_none() => return Ok(c.clone()),
                Some(_) => cache.remove(member),
                None => None,
            }
        };
        if let Some(c) = stale {
            super::log_stats(&c.conn, "client", member.as_str());
        }
        let c = self.dial(member).await?;
        self.cache().insert(member.clone(), c.clone());
        Ok(c)
    }

    /// Sends `request` to `member` on a new stream and returns the reply.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`] and [`Connection::request`].
    pub async fn request(&self, member: &Name, request: &Message) -> Result<Message, ClientError> {
        self.connect(member).await?.request(request).await
    }

    /// Sends `request` to `member` and collects every reply frame until the
    /// member ends the stream (for requests answered in several parts, like
    /// a delivery).
    pub async fn request_all(
        &self,
        member: &Name,
        request: &Message,
    ) -> Result<Vec<Message>, ClientError> {
        self.connect(member).await?.request_all(request).await
    }

    /// Sends `request` to `member` and hands every reply frame to
    /// `replies` as it arrives, waiting while the receiver is behind (a
    /// large delivery is never held whole); stops reading when the
    /// receiver is dropped.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`] and [`Connection::request_all`].
    pub(crate) async fn request_each(
        &self,
        member: &Name,
        request: &Message,
        replies: tokio::sync::mpsc::Sender<Message>,
    ) -> Result<(), ClientError> {
        self.connect(member)
            .await?
            .request_each(request, replies)
            .await
    }

    /// Closes every cached connection.
    pub fn close(&self) {
        for (member, c) in self.cache().drain() {
            c.close();
            super::log_stats(&c.conn, "client", member.as_str());
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Name, Connection>> {
        // The map stays consistent whatever a panicking holder did.
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn dial(&self, member: &Name) -> Result<Connection, ClientError> {
        let unknown = || ClientError::UnknownMember(member.clone());
        let m = self.manifest.member(member).ok_or_else(unknown)?;
        let config = self.configs.get(member).ok_or_else(unknown)?.clone();
        let dial = async {
            let addr = self.resolve(member, &m.address).await?;
            debug!(%member, %addr, "dialling");
            Ok::<_, ClientError>(
                self.endpoint
                    .connect_with(config, addr, SERVER_NAME)?
                    .await?,
            )
        };
        let conn = timeout(self.settings.connect_timeout, dial)
            .await
            .map_err(|_| ClientError::Timeout("connect"))??;
        match Peer::of(&conn, &self.manifest) {
            Some(peer) if &peer.name == member => Ok(Connection {
                conn,
                peer,
                request_timeout: self.settings.request_timeout,
            }),
            _ => {
                CloseCode::UnknownPeer.close(&conn);
                Err(ClientError::WrongPeer(member.clone()))
            }
        }
    }

    /// The first address of `address` in the endpoint's address family (or
    /// the first address at all).
    async fn resolve(&self, member: &Name, address: &str) -> Result<SocketAddr, ClientError> {
        let resolve_error = |source| ClientError::Resolve {
            member: member.clone(),
            source,
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(address)
            .await
            .map_err(resolve_error)?
            .collect();
        let v4 = self.endpoint.local_addr().map_or(true, |a| a.is_ipv4());
        addrs
            .iter()
            .find(|a| a.is_ipv4() == v4)
            .or(addrs.first())
            .copied()
            .ok_or_else(|| {
                resolve_error(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no address",
                ))
            })
    }
}

/// An authenticated connection to a member.
#[derive(Clone, Debug)]
pub struct Connection {
    conn: quinn::Connection,
    peer: Peer,
    request_timeout: Duration,
}

impl Connection {
    /// The member at the other end.
    #[cfg_attr(not(test), expect(dead_code, reason = "used by the transport tests"))]
    pub(crate) fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The underlying quinn connection (for streaming exchanges).
    pub fn quinn(&self) -> &quinn::Connection {
        &self.conn
    }

    /// Sends `request` on a new stream, finishes it, and returns the one
    /// reply, within the request timeout.
    ///
    /// # Errors
    ///
    /// [`ClientError::Connection`] with the close reason if the connection
    /// is closed (e.g. the server refused our certificate or a frame),
    /// [`ClientError::Timeout`], [`ClientError::NoReply`],
    /// [`ClientError::ExtraReply`], [`ClientError::Frame`].
    pub async fn request(&self, request: &Message) -> Result<Message, ClientError> {
        let exchange = async {
            let (mut send, mut recv) = self.conn.open_bi().await?;
            frame::write_message(&mut send, request).await?;
            send.finish()?;
            let reply = frame::read_message(&mut recv)
                .await?
                .ok_or(ClientError::NoReply)?;
            match frame::read_message(&mut recv).await? {
                None => Ok(reply),
                Some(_) => Err(ClientError::ExtraReply),
            }
        };
        match timeout(self.request_timeout, exchange).await {
            Ok(Ok(reply)) => Ok(reply),
            // Whatever the stream said, a closed connection's reason is the
            // more useful error.
            Ok(Err(e)) => Err(self.conn.close_reason().map_or(e, ClientError::from)),
            Err(_) => Err(ClientError::Timeout("request")),
        }
    }

    /// Sends `request` and collects every reply frame until the peer ends
    /// the stream.
    pub async fn request_all(&self, request: &Message) -> Result<Vec<Message>, ClientError> {
        let exchange = async {
            let (mut send, mut recv) = self.conn.open_bi().await?;
            frame::write_message(&mut send, request).await?;
            send.finish()?;
            let mut replies = Vec::new();
            while let Some(reply) = frame::read_message(&mut recv).await? {
                replies.push(reply);
            }
            if replies.is_empty() {
                return Err(ClientError::NoReply);
            }
            Ok(replies)
        };
        match timeout(self.request_timeout, exchange).await {
            Ok(Ok(replies)) => Ok(replies),
            Ok(Err(e)) => Err(self.conn.close_reason().map_or(e, ClientError::from)),
            Err(_) => Err(ClientError::Timeout("request")),
        }
    }

    /// Sends `request` and hands every reply frame to `replies` as it
    /// arrives, until the peer ends the stream or the receiver is dropped.
    pub(crate) async fn request_each(
        &self,
        request: &Message,
        replies: tokio::sync::mpsc::Sender<Message>,
    ) -> Result<(), ClientError> {
        let exchange = async {
            let (mut send, mut recv) = self.conn.open_bi().await?;
            frame::write_message(&mut send, request).await?;
            send.finish()?;
            let mut any = false;
            while let Some(reply) = frame::read_message(&mut recv).await? {
                any = true;
                if replies.send(reply).await.is_err() {
                    // The receiver stopped (it refused what it got).
                    let _ = recv.stop(0u32.into());
                    return Ok(());
                }
            }
            if any {
                Ok(())
            } else {
                Err(ClientError::NoReply)
            }
        };
        match timeout(self.request_timeout, exchange).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.conn.close_reason().map_or(e, ClientError::from)),
            Err(_) => Err(ClientError::Timeout("request")),
        }
    }

    /// Closes the connection (normal close).
    pub fn close(&self) {
        CloseCode::Shutdown.close(&self.conn);
    }
}
