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
    manifest::{Key32, Manifest, Member, Operator, Role},
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
                        key: Key32([seed * 2 + i; 32]),
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
        members: nodes
            .iter()
            .zip(1u8..)
            .map(|(n, seed)| n.member(seed))
            .collect(),
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
