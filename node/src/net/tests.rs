//! The transport over real QUIC on 127.0.0.1: fresh keystores, a manifest,
//! a recording echo handler. Every test is bounded by [`LIMIT`].

use std::{
    future::Future,
    net::{SocketAddr, UdpSocket},
    sync::{Arc, Mutex},
    time::Duration,
};

use tempfile::TempDir;
use tokio::{
    sync::{oneshot, Notify},
    task::JoinHandle,
    time::{sleep, timeout, Instant},
};

use kobling_keys::{KdfParams, Keystore};
use kobling_protocol::{
    manifest::{Ed25519Key, Manifest, Member, Operator, Role},
    messages::{Message, MAX_FRAME},
    types::Name,
};

use super::{
    client::{Client, ClientError, ClientSettings},
    endpoint::{client_endpoint, server_endpoint_on, TransportLimits},
    peer::Peer,
    server::{run, Handler, HandlerFuture, ServerSettings},
    tls::TlsIdentity,
    CloseCode,
};

/// No test may take longer.
const LIMIT: Duration = Duration::from_secs(20);

async fn bounded<T>(test: impl Future<Output = T>) -> T {
    timeout(LIMIT, test)
        .await
        .expect("test exceeded its time limit")
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KOBLING_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_test_writer()
        .try_init();
}

fn name(s: &str) -> Name {
    Name::new(s).expect("valid name")
}

/// A node's keys and a socket bound to learn its address.
struct Node {
    _dir: TempDir,
    name: Name,
    role: Role,
    keystore: Keystore,
    identity: TlsIdentity,
    socket: Option<UdpSocket>,
    addr: SocketAddr,
}

impl Node {
    fn new(name_str: &str, role: Role) -> Self {
        let dir = TempDir::new().expect("tempdir");
        let keystore = Keystore::create(
            dir.path().join("keys"),
            None,
            KdfParams::default(),
            &["localhost".into()],
        )
        .expect("keystore");
        let identity = TlsIdentity::from_keystore(&keystore).expect("identity");
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = socket.local_addr().expect("addr");
        Self {
            _dir: dir,
            name: name(name_str),
            role,
            keystore,
            identity,
            socket: Some(socket),
            addr,
        }
    }

    fn member(&self, seed: u8) -> Member {
        Member {
            operators: match self.role {
                Role::Register => (0..2)
                    .map(|i| Operator {
                        name: format!("op{i}"),
                        key: Ed25519Key([seed * 2 + i; 32]),
                    })
                    .collect(),
                Role::Linker => Vec::new(),
            },
            ..self
                .keystore
                .manifest_entry(self.name.clone(), self.role, self.addr.to_string())
        }
    }

    /// Starts serving with `handler` until the returned sender fires (or
    /// is dropped).
    fn serve(
        &mut self,
        manifest: &Arc<Manifest>,
        handler: Arc<Recorder>,
        settings: ServerSettings,
    ) -> Server {
        let socket = self.socket.take().expect("served once");
        let endpoint = server_endpoint_on(
            socket,
            &self.identity,
            manifest.clone(),
            &TransportLimits::default(),
        )
        .expect("endpoint");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(endpoint, manifest.clone(), handler, settings, stopped));
        Server {
            stop: Some(stop),
            task,
        }
    }

    fn client(&self, manifest: &Arc<Manifest>) -> Client {
        self.client_with(
            manifest,
            ClientSettings {
                connect_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(5),
            },
        )
    }

    fn client_with(&self, manifest: &Arc<Manifest>, settings: ClientSettings) -> Client {
        let endpoint = client_endpoint("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
        Client::new(
            endpoint,
            Some(&self.identity),
            manifest.clone(),
            &TransportLimits::default(),
            settings,
        )
        .expect("client")
    }
}

fn manifest(nodes: &[&Node]) -> Arc<Manifest> {
    let manifest = Manifest {
        federation: "test".into(),
        portals: Vec::new(),
        members: nodes
            .iter()
            .zip(1u8..)
            .map(|(n, seed)| n.member(seed))
            .collect(),
        authorities: Vec::new(),
        domains: Vec::new(),
    };
    manifest.validate().expect("valid manifest");
    Arc::new(manifest)
}

struct Server {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    /// Requests shutdown and returns how long `run` took to return.
    async fn shutdown(mut self) -> Duration {
        let start = Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("server task");
        start.elapsed()
    }
}

/// Echoes every request after `delay`, recording who sent what.
#[derive(Default)]
struct Recorder {
    delay: Duration,
    seen: Mutex<Vec<(Name, Message)>>,
    started: Notify,
}

impl Recorder {
    fn with_delay(delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            delay,
            ..Self::default()
        })
    }

    fn seen(&self) -> Vec<(Name, Message)> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Handler for Recorder {
    fn handle<'a>(&'a self, peer: Option<&'a Peer>, request: Message) -> HandlerFuture<'a> {
        Box::pin(async move {
            self.started.notify_one();
            sleep(self.delay).await;
            self.seen.lock().expect("lock").push((
                peer.map_or_else(|| Name::new("CLIENT").expect("valid"), |p| p.name.clone()),
                request.clone(),
            ));
            Box::new(std::iter::once(request)) as super::server::Replies
        })
    }
}

fn hello() -> Message {
    Message::Hello { version: 1 }
}

fn fast() -> ServerSettings {
    ServerSettings {
        drain_timeout: Duration::from_secs(5),
        frame_timeout: Duration::from_secs(5),
        ..ServerSettings::default()
    }
}

/// The application close code of a closed connection.
fn close_code(e: &quinn::ConnectionError) -> Option<CloseCode> {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => CloseCode::from_varint(c.error_code),
        _ => None,
    }
}

#[tokio::test]
async fn a_request_round_trips_and_the_server_knows_the_client() {
    init_tracing();
    bounded(async {
        let mut npr = Node::new("NPR", Role::Register);
        let linker = Node::new("LINKER", Role::Linker);
        let m = manifest(&[&npr, &linker]);
        let handler = Arc::new(Recorder::default());
        let server = npr.serve(&m, handler.clone(), fast());

        let client = linker.client(&m);
        let conn = client.connect(&npr.name).await.expect("connect");
        assert_eq!(conn.peer().name, npr.name);
        assert_eq!(conn.peer().fingerprint, npr.identity.fingerprint());
        assert_eq!(
            client.request(&npr.name, &hello()).await.expect("reply"),
            hello()
        );
        let ack = Message::Ack {
            of: kobling_protocol::types::Digest([7; 32]),
        };
        assert_eq!(client.request(&npr.name, &ack).await.expect("reply"), ack);
        assert_eq!(
            handler.seen(),
            vec![(linker.name.clone(), hello()), (linker.name.clone(), ack)]
        );
        // Both requests went over the one cached connection.
        assert_eq!(
            client
                .connect(&npr.name)
                .await
                .expect("cached")
                .quinn()
                .stable_id(),
            conn.quinn().stable_id()
        );
        assert!(matches!(
            client.request(&name("KPR"), &hello()).await,
            Err(ClientError::UnknownMember(_))
        ));
        client.close();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_client_outside_the_manifest_is_refused_in_the_handshake() {
    init_tracing();
    bounded(async {
        let mut npr = Node::new("NPR", Role::Register);
        let linker = Node::new("LINKER", Role::Linker);
        let stranger = Node::new("SSB", Role::Register);
        let m = manifest(&[&npr, &linker]);
        let handler = Arc::new(Recorder::default());
        let server = npr.serve(&m, handler.clone(), fast());

        // The stranger knows the manifest (so it can pin NPR), but its own
        // certificate is in no member's entry.
        let client = stranger.client(&m);
        let err = match client.connect(&npr.name).await {
            Err(e) => e,
            Ok(conn) => conn.request(&hello()).await.expect_err("refused"),
        };
        assert!(matches!(err, ClientError::Connection(_)), "{err:?}");
        assert!(handler.seen().is_empty(), "the handler saw a request");

        // A member is still served.
        let member = linker.client(&m);
        assert_eq!(
            member.request(&npr.name, &hello()).await.expect("reply"),
            hello()
        );
        assert_eq!(handler.seen(), vec![(linker.name.clone(), hello())]);
        member.close();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_served_as_a_client() {
    init_tracing();
    bounded(async {
        let mut npr = Node::new("NPR", Role::Register);
        let linker = Node::new("LINKER", Role::Linker);
        let m = manifest(&[&npr, &linker]);
        let handler = Arc::new(Recorder::default());
        let server = npr.serve(&m, handler.clone(), fast());

        // A researcher's or operator's CLI: no member certificate; it still
        // pins the node it dials.
        let endpoint = client_endpoint("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
        let settings = ClientSettings {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
        };
        let client = Client::new(
            endpoint,
            None,
            m.clone(),
            &TransportLimits::default(),
            settings,
        )
        .expect("client");
        assert_eq!(
            client.request(&npr.name, &hello()).await.expect("reply"),
            hello()
        );
        assert_eq!(handler.seen(), vec![(name("CLIENT"), hello())]);
        client.close();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_server_with_another_members_certificate_is_refused() {
    init_tracing();
    bounded(async {
        let npr = Node::new("NPR", Role::Register);
        let kpr = Node::new("KPR", Role::Register);
        let mut linker = Node::new("LINKER", Role::Linker);
        let honest = manifest(&[&npr, &kpr, &linker]);
        let handler = Arc::new(Recorder::default());
        let server = linker.serve(&honest, handler.clone(), fast());

        // KPR dials NPR, but NPR's address leads to the linker, which
        // presents its own (valid, pinned) certificate.
        let mut misrouted = (*honest).clone();
        misrouted.members[0].address = linker.addr.to_string();
        let client = kpr.client(&Arc::new(misrouted));
        let err = client
            .request(&npr.name, &hello())
            .await
            .expect_err("pin mismatch");
        assert!(
            matches!(
                err,
                ClientError::Connection(quinn::ConnectionError::TransportError(_))
            ),
            "{err:?}"
        );
        assert!(handler.seen().is_empty());
        // Dialled by its own name, the linker is accepted.
        assert_eq!(
            client.request(&linker.name, &hello()).await.expect("reply"),
            hello()
        );
        client.close();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_members_certificate_without_its_key_is_refused_both_ways() {
    init_tracing();
    bounded(async {
        let npr = Node::new("NPR", Role::Register);
        let mut linker = Node::new("LINKER", Role::Linker);
        let mut stranger = Node::new("SSB", Role::Register);
        let m = manifest(&[&npr, &linker]);
        let stolen = |thief: &Node| {
            TlsIdentity::impostor(npr.keystore.tls_cert_der(), &thief.keystore.tls_key_der())
        };

        // As a client: the pin matches NPR, the handshake signature does not.
        let handler = Arc::new(Recorder::default());
        let server = linker.serve(&m, handler.clone(), fast());
        stranger.identity = stolen(&stranger);
        let client = stranger.client(&m);
        let err = match client.connect(&linker.name).await {
            Err(e) => e,
            Ok(conn) => conn.request(&hello()).await.expect_err("refused"),
        };
        assert!(matches!(err, ClientError::Connection(_)), "{err:?}");
        assert!(handler.seen().is_empty());
        server.shutdown().await;

        // As a server: NPR's address leads to the impostor.
        let handler = Arc::new(Recorder::default());
        let mut misrouted = (*m).clone();
        misrouted.members[0].address = stranger.addr.to_string();
        let server = stranger.serve(&Arc::new(misrouted.clone()), handler.clone(), fast());
        let err = linker
            .client(&Arc::new(misrouted))
            .request(&npr.name, &hello())
            .await
            .expect_err("refused");
        // Refused by our own verifier: a local TLS failure.
        assert!(
            matches!(
                err,
                ClientError::Connection(quinn::ConnectionError::TransportError(_))
            ),
            "{err:?}"
        );
        assert!(handler.seen().is_empty());
        server.shutdown().await;
    })
    .await;
}

/// Opens a stream on a fresh connection, writes `bytes` (finishing the
/// stream if `finish`), and returns how the server closed the connection.
async fn send_raw(client: &Client, to: &Name, bytes: &[u8], finish: bool) -> Option<CloseCode> {
    let conn = client.connect(to).await.expect("connect");
    let (mut send, mut recv) = conn.quinn().open_bi().await.expect("stream");
    send.write_all(bytes).await.expect("write");
    if finish {
        send.finish().expect("finish");
    }
    // The server answers nothing and closes the connection.
    assert!(super::frame::read_message(&mut recv).await.is_err());
    close_code(&conn.quinn().closed().await)
}

#[tokio::test]
async fn hostile_frames_close_their_connection_and_others_are_still_served() {
    init_tracing();
    bounded(async {
        let mut npr = Node::new("NPR", Role::Register);
        let kpr = Node::new("KPR", Role::Register);
        let linker = Node::new("LINKER", Role::Linker);
        let m = manifest(&[&npr, &kpr, &linker]);
        let handler = Arc::new(Recorder::default());
        let server = npr.serve(&m, handler.clone(), fast());
        let hostile = kpr.client(&m);
        // A well-behaved client with a connection open throughout.
        let good = linker.client(&m);
        assert_eq!(
            good.request(&npr.name, &hello()).await.expect("reply"),
            hello()
        );

        // A length over MAX_FRAME, with no body behind it: refused on the
        // length alone, without waiting for (or allocating) the body.
        let too_large = ((MAX_FRAME + 1) as u32).to_le_bytes();
        assert_eq!(
            send_raw(&hostile, &npr.name, &too_large, false).await,
            Some(CloseCode::FrameTooLarge)
        );
        // A frame that does not decode.
        assert_eq!(
            send_raw(&hostile, &npr.name, &[3, 0, 0, 0, 0xff, 0xff, 0xff], true).await,
            Some(CloseCode::Malformed)
        );
        // A stream that ends inside a frame.
        assert_eq!(
            send_raw(&hostile, &npr.name, &[100, 0, 0, 0, 1, 2, 3], true).await,
            Some(CloseCode::Truncated)
        );

        // The hostile member's earlier connections are gone, but it may
        // reconnect and behave; the good client's connection is untouched.
        assert_eq!(
            hostile.request(&npr.name, &hello()).await.expect("reply"),
            hello()
        );
        assert_eq!(
            good.request(&npr.name, &hello()).await.expect("reply"),
            hello()
        );
        assert_eq!(
            handler.seen(),
            vec![
                (linker.name.clone(), hello()),
                (kpr.name.clone(), hello()),
                (linker.name.clone(), hello()),
            ]
        );
        hostile.close();
        good.close();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_stalled_frame_resets_only_its_stream() {
    init_tracing();
    bounded(async {
        let mut npr = Node::new("NPR", Role::Register);
        let linker = Node::new("LINKER", Role::Linker);
        let m = manifest(&[&npr, &linker]);
        let handler = Arc::new(Recorder::default());
        let settings = ServerSettings {
            frame_timeout: Duration::from_millis(200),
            ..fast()
        };
        let server = npr.serve(&m, handler.clone(), settings);
        let client = linker.client(&m);
        let conn = client.connect(&npr.name).await.expect("connect");
        let (mut send, mut recv) = conn.quinn().open_bi().await.expect("stream");
        // Announce 100 bytes, send 3, then stall.
        send.write_all(&[100, 0, 0, 0, 1, 2, 3])
            .await
            .expect("write");
        match recv.read_to_end(1024).await {
            Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
                assert_eq!(CloseCode::from_varint(code), Some(CloseCode::Timeout));
            }
            other => panic!("expected a reset, got {other:?}"),
        }
        // The connection itself is fine.
        assert_eq!(conn.request(&hello()).await.expect("reply"), hello());
        client.close();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn graceful_shutdown_completes_while_idle() {
    init_tracing();
    bounded(async {
        let mut npr = Node::new("NPR", Role::Register);
        let linker = Node::new("LINKER", Role::Linker);
        let m = manifest(&[&npr, &linker]);
        let server = npr.serve(&m, Arc::new(Recorder::default()), fast());
        let client = linker.client(&m);
        // An idle, open connection.
        let conn = client.connect(&npr.name).await.expect("connect");
        assert_eq!(conn.request(&hello()).await.expect("reply"), hello());

        let took = server.shutdown().await;
        assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
        assert_eq!(
            close_code(&conn.quinn().closed().await),
            Some(CloseCode::Shutdown)
        );
        // Nobody is listening any more.
        let late = linker.client_with(
            &m,
            ClientSettings {
                connect_timeout: Duration::from_millis(300),
                request_timeout: Duration::from_millis(300),
            },
        );
        assert!(matches!(
            late.request(&npr.name, &hello()).await,
            Err(ClientError::Timeout("connect"))
        ));
    })
    .await;
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish() {
    init_tracing();
    bounded(async {
        let mut npr = Node::new("NPR", Role::Register);
        let linker = Node::new("LINKER", Role::Linker);
        let m = manifest(&[&npr, &linker]);
        let handler = Recorder::with_delay(Duration::from_millis(300));
        let server = npr.serve(&m, handler.clone(), fast());
        let client = Arc::new(linker.client(&m));
        let to = npr.name.clone();
        let c = client.clone();
        let in_flight = tokio::spawn(async move { c.request(&to, &hello()).await });
        handler.started.notified().await;
        let took = server.shutdown().await;
        assert_eq!(in_flight.await.expect("task").expect("reply"), hello());
        assert!(took >= Duration::from_millis(200), "shutdown took {took:?}");
        assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    })
    .await;
}

#[tokio::test]
async fn the_drain_deadline_bounds_shutdown() {
    init_tracing();
    bounded(async {
        let mut npr = Node::new("NPR", Role::Register);
        let linker = Node::new("LINKER", Role::Linker);
        let m = manifest(&[&npr, &linker]);
        let handler = Recorder::with_delay(Duration::from_secs(3600));
        let settings = ServerSettings {
            drain_timeout: Duration::from_millis(200),
            ..fast()
        };
        let server = npr.serve(&m, handler.clone(), settings);
        let client = Arc::new(linker.client(&m));
        let to = npr.name.clone();
        let c = client.clone();
        let stuck = tokio::spawn(async move { c.request(&to, &hello()).await });
        handler.started.notified().await;
        let took = server.shutdown().await;
        assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
        let err = stuck.await.expect("task").expect_err("no reply");
        assert!(matches!(err, ClientError::Connection(_)), "{err:?}");
    })
    .await;
}

// ---- strangers: kinds, handshakes, pools, idling ----

/// A researcher's or operator's client: no certificate.
fn anonymous(m: &Arc<Manifest>) -> Client {
    let endpoint = client_endpoint("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    Client::new(
        endpoint,
        None,
        m.clone(),
        &TransportLimits::default(),
        ClientSettings {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
        },
    )
    .expect("client")
}

/// A frame announcing `len` bytes, with `head` as its first bytes.
fn announce(len: usize, head: &[u8]) -> Vec<u8> {
    let mut f = (len as u32).to_le_bytes().to_vec();
    f.extend_from_slice(head);
    f
}

#[tokio::test]
async fn a_client_may_send_only_its_own_kinds_each_within_its_cap() {
    init_tracing();
    bounded(async {
        let mut npr = Node::new("NPR", Role::Register);
        let linker = Node::new("LINKER", Role::Linker);
        let m = manifest(&[&npr, &linker]);
        let handler = Arc::new(Recorder::default());
        let server = npr.serve(&m, handler.clone(), fast());
        let client = anonymous(&m);

        // A member's kind (Entries = 4, Points = 7) from a client: closed on
        // its first byte, whatever length it announces.
        for kind in [4u8, 7] {
            assert_eq!(
                send_raw(
                    &client,
                    &npr.name,
                    &announce(MAX_FRAME, &[kind, 0, 0]),
                    false
                )
                .await,
                Some(CloseCode::NotAllowed)
            );
            assert_eq!(
                send_raw(&client, &npr.name, &announce(10, &[kind, 0, 0]), false).await,
                Some(CloseCode::NotAllowed)
            );
        }
        // A client's kind (SubmitOrder = 1) longer than a client may send.
        let over = kobling_protocol::messages::MAX_CLIENT_FRAME + 1;
        assert_eq!(
            send_raw(&client, &npr.name, &announce(over, &[1]), false).await,
            Some(CloseCode::FrameTooLarge)
        );
        // Status (10) is tiny: 64 KiB of it is refused before it arrives.
        assert_eq!(
            send_raw(&client, &npr.name, &announce(64 << 10, &[10]), false).await,
            Some(CloseCode::FrameTooLarge)
        );
        // A member's frame over its kind's cap (Points: 5 MiB) is refused
        // too; a member may send Entries.
        let member = linker.client(&m);
        assert_eq!(
            send_raw(&member, &npr.name, &announce(6 << 20, &[7]), false).await,
            Some(CloseCode::FrameTooLarge)
        );
        let entries = Message::Entries {
            project: kobling_protocol::types::ProjectId::new("P").expect("valid"),
            first: 0,
            entries: Default::default(),
        };
        assert_eq!(
            member.request(&npr.name, &entries).await.expect("reply"),
            entries
        );
        // The handler never saw a refused frame; the client may still say
        // Hello.
        assert_eq!(
            client.request(&npr.name, &hello()).await.expect("reply"),
            hello()
        );
        assert_eq!(
            handler.seen(),
            vec![(linker.name.clone(), entries), (name("CLIENT"), hello())]
        );
        client.close();
        member.close();
        server.shutdown().await;
    })
    .await;
}

/// A UDP relay in front of a server: forwards every datagram from the
/// client, and only the first `pass` from the server (the rest are lost,
/// which stalls a handshake); records the first byte of each datagram the
/// server sends.
struct Relay {
    addr: SocketAddr,
    from_server: Arc<Mutex<Vec<u8>>>,
    task: JoinHandle<()>,
}

impl Relay {
    async fn start(server: SocketAddr, pass: usize) -> Self {
        let front = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let back = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        back.connect(server).await.expect("connect");
        let addr = front.local_addr().expect("addr");
        let from_server = Arc::new(Mutex::new(Vec::new()));
        let seen = from_server.clone();
        let task = tokio::spawn(async move {
            let (mut a, mut b) = ([0u8; 2048], [0u8; 2048]);
            let mut client = None;
            loop {
                tokio::select! {
                    r = front.recv_from(&mut a) => {
                        let Ok((n, from)) = r else { return };
                        client = Some(from);
                        let _ = back.send(&a[..n]).await;
                    }
                    r = back.recv(&mut b) => {
                        let Ok(n) = r else { return };
                        let count = {
                            let mut seen = seen.lock().expect("lock");
                            seen.push(b[0]);
                            seen.len()
                        };
                        if let (Some(to), true) = (client, count <= pass) {
                            let _ = front.send_to(&b[..n], to).await;
                        }
                    }
                }
            }
        });
        Self {
            addr,
            from_server,
            task,
        }
    }

    /// Whether the server's first datagram was a QUIC v1 Retry (long
    /// header, type 3).
    fn first_was_retry(&self) -> bool {
        self.from_server
            .lock()
            .expect("lock")
            .first()
            .is_some_and(|b| b & 0xf0 == 0xf0)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Dials `node` (pinned to `member`'s certificate, without one of our
/// own) at `addr`.
fn dial(
    endpoint: &quinn::Endpoint,
    m: &Manifest,
    member: &Name,
    addr: SocketAddr,
) -> quinn::Connecting {
    let configs =
        super::endpoint::client_configs(None, m, &TransportLimits::default()).expect("configs");
    endpoint
        .connect_with(
            configs.get(member).expect("member").clone(),
            addr,
            super::tls::SERVER_NAME,
        )
        .expect("connect")
}

#[tokio::test]
async fn an_unvalidated_address_gets_a_retry_before_any_state() {
    init_tracing();
    bounded(async {
        for validate in [true, false] {
            let mut npr = Node::new("NPR", Role::Register);
            let linker = Node::new("LINKER", Role::Linker);
            let m = manifest(&[&npr, &linker]);
            let server_addr = npr.addr;
            let settings = ServerSettings {
                validate_addresses: validate,
                ..fast()
            };
            let server = npr.serve(&m, Arc::new(Recorder::default()), settings);
            let relay = Relay::start(server_addr, usize::MAX).await;
            let endpoint = client_endpoint("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
            let conn = dial(&endpoint, &m, &npr.name, relay.addr)
                .await
                .expect("handshake through the relay");
            assert_eq!(relay.first_was_retry(), validate);
            conn.close(0u32.into(), b"");
            server.shutdown().await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_stalled_handshake_loses_its_slot_at_the_deadline() {
    init_tracing();
    bounded(async {
        let mut npr = Node::new("NPR", Role::Register);
        let linker = Node::new("LINKER", Role::Linker);
        let m = manifest(&[&npr, &linker]);
        let server_addr = npr.addr;
        let settings = ServerSettings {
            max_handshakes: 1,
            member_handshakes: 0,
            handshake_timeout: Duration::from_millis(800),
            ..fast()
        };
        let server = npr.serve(&m, Arc::new(Recorder::default()), settings);

        // The server's Retry gets through, nothing after it: the server
        // holds a handshake with a validated address that never completes.
        let relay = Relay::start(server_addr, 1).await;
        let endpoint = client_endpoint("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
        let stalled = dial(&endpoint, &m, &npr.name, relay.addr);
        let stalled = tokio::spawn(async move { stalled.await.is_ok() });
        sleep(Duration::from_millis(300)).await;
        assert!(relay.first_was_retry());

        // The one handshake slot is taken: a direct client is refused…
        let direct = || dial(&endpoint, &m, &npr.name, server_addr);
        let refused = direct().await;
        assert!(
            matches!(refused, Err(quinn::ConnectionError::ConnectionClosed(_))),
            "{refused:?}"
        );
        // …until the deadline frees it. (The relay goes first, so that
        // nothing the stalled client sends reaches the server any more:
        // only the deadline can end its handshake.)
        drop(relay);
        sleep(Duration::from_millis(900)).await;
        let conn = direct().await.expect("served after the deadline");
        conn.close(0u32.into(), b"");
        stalled.abort();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn idle_clients_are_closed_and_a_full_pool_evicts_the_idlest() {
    init_tracing();
    bounded(async {
        let mut npr = Node::new("NPR", Role::Register);
        let linker = Node::new("LINKER", Role::Linker);
        let m = manifest(&[&npr, &linker]);
        let settings = ServerSettings {
            max_client_connections: 2,
            max_member_connections: 1,
            client_idle_timeout: Duration::from_millis(1500),
            ..fast()
        };
        let server = npr.serve(&m, Arc::new(Recorder::default()), settings);

        // Two clients fill the clients' pool…
        let (a, b) = (anonymous(&m), anonymous(&m));
        assert_eq!(a.request(&npr.name, &hello()).await.expect("a"), hello());
        let a_conn = a.connect(&npr.name).await.expect("cached");
        sleep(Duration::from_millis(50)).await;
        assert_eq!(b.request(&npr.name, &hello()).await.expect("b"), hello());
        let b_conn = b.connect(&npr.name).await.expect("cached");
        // …which does not keep a member out…
        let member = linker.client(&m);
        assert_eq!(
            member.request(&npr.name, &hello()).await.expect("member"),
            hello()
        );
        // …nor a third client: the idlest, `a`, makes room.
        let c = anonymous(&m);
        assert_eq!(c.request(&npr.name, &hello()).await.expect("c"), hello());
        let reason = timeout(Duration::from_millis(500), a_conn.quinn().closed())
            .await
            .expect("evicted");
        assert_eq!(close_code(&reason), Some(CloseCode::Idle));
        assert_eq!(b_conn.quinn().close_reason(), None);

        // A client left idle is closed by the server; a member is not.
        let reason = timeout(Duration::from_secs(5), b_conn.quinn().closed())
            .await
            .expect("closed for idling");
        assert_eq!(close_code(&reason), Some(CloseCode::Idle));
        let member_conn = member.connect(&npr.name).await.expect("cached");
        assert_eq!(member_conn.quinn().close_reason(), None);
        for c in [&a, &b, &c, &member] {
            c.close();
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn busy_clients_are_not_evicted_and_the_pool_refuses_more() {
    init_tracing();
    bounded(async {
        let mut npr = Node::new("NPR", Role::Register);
        let linker = Node::new("LINKER", Role::Linker);
        let m = manifest(&[&npr, &linker]);
        let settings = ServerSettings {
            max_client_connections: 1,
            ..fast()
        };
        let server = npr.serve(&m, Arc::new(Recorder::default()), settings);
        let busy = anonymous(&m);
        let conn = busy.connect(&npr.name).await.expect("connect");
        // A request in hand: announced, partly sent.
        let (mut send, _recv) = conn.quinn().open_bi().await.expect("stream");
        send.write_all(&announce(100, &[1, 2]))
            .await
            .expect("write");
        sleep(Duration::from_millis(200)).await;
        let other = anonymous(&m);
        let refused = match other.connect(&npr.name).await {
            Ok(c) => c.quinn().closed().await,
            Err(ClientError::Connection(e)) => e,
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(close_code(&refused), Some(CloseCode::TooManyConnections));
        assert_eq!(conn.quinn().close_reason(), None, "the busy client stays");
        busy.close();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_client_gets_a_clients_streams_and_a_member_more_after_the_handshake() {
    init_tracing();
    bounded(async {
        let mut npr = Node::new("NPR", Role::Register);
        let linker = Node::new("LINKER", Role::Linker);
        let m = manifest(&[&npr, &linker]);
        let server = npr.serve(&m, Arc::new(Recorder::default()), fast());
        let limits = TransportLimits::default();
        let open = |conn: quinn::Connection, n: u32| async move {
            let mut held = Vec::new();
            for _ in 0..n {
                match timeout(Duration::from_millis(500), conn.open_bi()).await {
                    Ok(Ok((mut send, recv))) => {
                        // A request in hand: announced, not sent.
                        send.write_all(&announce(100, &[1])).await.expect("write");
                        held.push((send, recv));
                    }
                    _ => break,
                }
            }
            held.len() as u32
        };
        let client = anonymous(&m);
        let c = client.connect(&npr.name).await.expect("connect");
        assert_eq!(
            open(c.quinn().clone(), limits.client_request_streams + 1).await,
            limits.client_request_streams
        );
        let member = linker.client(&m);
        let c = member.connect(&npr.name).await.expect("connect");
        assert_eq!(
            open(c.quinn().clone(), limits.client_request_streams + 4).await,
            limits.client_request_streams + 4
        );
        client.close();
        member.close();
        server.shutdown().await;
    })
    .await;
}
