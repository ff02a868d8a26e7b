//! Hostile peers against real nodes: four node daemons (NPR, SSB, RESEPT
//! and the linker, [`crate::daemon::run`]) serving QUIC on 127.0.0.1, and
//! KPR played by the test — an honest engine, served over QUIC like a
//! daemon, whose outgoing messages the test can hold, tamper with and
//! replay, sent with KPR's own pinned certificate (so every forgery comes
//! from a genuine member, and the previous hop of the list it attacks).
//!
//! ```text
//!   researcher / operators (no certificate) ──▶ daemons, KPR
//!   KPR engine ── outbox ──▶ hold? ──▶ honest send ──▶ daemons
//!                              └──▶ test: tampered copies, replays, forgeries ──▶ SSB, LINKER, NPR
//!   stranger (certificate outside the manifest) ──▶ daemons
//! ```
//!
//! Every refusal must be an answer with a stable code (or, for broken
//! framing, a closed connection) and a log line naming the reason — never
//! an identifier — and the nodes must go on to deliver exactly the ground
//! truth. The daemons' log lines are captured from the test's runtime.

use std::{
    collections::BTreeMap,
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use ed25519_dalek::SigningKey;
use kobling_keys::{KdfParams, Keystore};
use kobling_protocol::{
    bounded::{BoundedBytes, BoundedString, BoundedVec},
    group::WirePoint,
    hop::PointChunk,
    manifest::{Key32, Manifest, Member, Operator, Role},
    messages::{self, Action, Message, Request, MAX_FRAME},
    seal::{HpkeSecretKey, SealedItem, WrappedKey},
    share::Domain,
    transcript::{Approval, Body, KeyCommitment, ProjectOrder, RegisterRequest, Signer, Statement},
    types::{Name, Position, ProjectId},
};
use kobling_sim::{
    inmem::render_csv,
    population::{generate, Population, PopulationConfig},
    truth,
};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
use tokio::{
    sync::{oneshot, watch},
    task::JoinHandle,
    time::{sleep, Instant},
};

use crate::{
    daemon::{self, unix_now},
    engine::{file_digest, Engine, Peer},
    net::{
        client::{Client, ClientError, ClientSettings},
        endpoint::{client_endpoint, server_endpoint, TransportLimits},
        peer::Peer as NetPeer,
        server::{self, Handler, HandlerFuture, ServerSettings},
        tls::TlsIdentity,
        CloseCode,
    },
    researcher::open_delivery,
    store::Store,
};

const REGISTERS: [&str; 4] = ["NPR", "KPR", "SSB", "RESEPT"];
const PERSONS: usize = 200;
const CHUNK_SIZE: u32 = 16;
/// No wait for the federation may take longer (liveness, not speed).
const LIVENESS: Duration = Duration::from_secs(120);

fn name(s: &str) -> Name {
    Name::new(s).expect("valid name")
}

fn pid(s: &str) -> ProjectId {
    ProjectId::new(s).expect("valid project id")
}

// ---- captured logs ----

/// Every log line of the test's runtime (the daemons, KPR, the server).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter(self.0.clone())
    }
}

/// A runtime whose every thread logs (INFO and above) into `logs`.
fn runtime(logs: &Logs) -> (tokio::runtime::Runtime, tracing::Dispatch) {
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish(),
    );
    let d = dispatch.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // The thread's default for its whole life.
            std::mem::forget(tracing::dispatcher::set_default(&d));
        })
        .build()
        .expect("runtime");
    (rt, dispatch)
}

// ---- KPR, played by the test ----

/// Serves KPR's engine over QUIC, as the daemon serves its own.
struct EngineHandler(Arc<Mutex<Engine>>);

impl Handler for EngineHandler {
    fn handle<'a>(&'a self, peer: Option<&'a NetPeer>, request: Message) -> HandlerFuture<'a> {
        let from = peer.map_or(Peer::Client, |p| Peer::Member(p.name.clone()));
        let engine = self.0.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut engine = lock(&engine);
                let replies = engine
                    .handle(&from, request, unix_now())
                    .expect("KPR handles");
                engine.tick(unix_now()).expect("KPR ticks");
                replies
            })
            .await
            .expect("KPR's handler")
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

type Rule = Box<dyn Fn(&Name, &Message) -> bool + Send>;

/// Outgoing messages of KPR that the test holds back.
#[derive(Default)]
struct Hold {
    rule: Option<Rule>,
    held: Option<(Name, Message)>,
}

struct Kpr {
    engine: Arc<Mutex<Engine>>,
    client: Arc<Client>,
    hold: Arc<Mutex<Hold>>,
    /// Final refusals of KPR's honest messages (there must be none).
    refused: Arc<Mutex<Vec<String>>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Kpr {
    /// Holds the first outgoing message matching `rule` (and everything
    /// after it to the same destination) until [`Kpr::release`].
    fn hold(&self, rule: impl Fn(&Name, &Message) -> bool + Send + 'static) {
        let mut h = lock(&self.hold);
        h.rule = Some(Box::new(rule));
        h.held = None;
    }

    async fn held(&self) -> (Name, Message) {
        let deadline = Instant::now() + LIVENESS;
        loop {
            if let Some(h) = lock(&self.hold).held.clone() {
                return h;
            }
            assert!(Instant::now() < deadline, "KPR never sent the message");
            sleep(Duration::from_millis(50)).await;
        }
    }

    fn release(&self) {
        *lock(&self.hold) = Hold::default();
    }

    /// KPR's sender: honest, in outbox order per destination, except for
    /// what is held.
    async fn send_loop(
        engine: Arc<Mutex<Engine>>,
        client: Arc<Client>,
        hold: Arc<Mutex<Hold>>,
        refused: Arc<Mutex<Vec<String>>>,
        members: Vec<Name>,
        mut stopped: watch::Receiver<bool>,
    ) {
        loop {
            for dest in &members {
                let batch = {
                    let (engine, dest) = (engine.clone(), dest.clone());
                    tokio::task::spawn_blocking(move || {
                        let mut e = lock(&engine);
                        e.tick(unix_now()).expect("tick");
                        e.outbox_to(&dest, 64).expect("outbox")
                    })
                    .await
                    .expect("outbox task")
                };
                for (id, msg) in batch {
                    {
                        let mut h = lock(&hold);
                        if h.held.as_ref().is_some_and(|(d, _)| d == dest) {
                            break;
                        }
                        if h.held.is_none() && h.rule.as_ref().is_some_and(|r| r(dest, &msg)) {
                            h.held = Some((dest.clone(), msg));
                            break;
                        }
                    }
                    match client.request(dest, &msg).await {
                        Ok(Message::Ack { .. }) => {
                            let engine = engine.clone();
                            tokio::task::spawn_blocking(move || lock(&engine).acked(id))
                                .await
                                .expect("ack task")
                                .expect("acked");
                        }
                        Ok(Message::Refused { code, .. }) if code.as_str() == "not-ready" => break,
                        Ok(Message::Refused { code, detail }) => {
                            lock(&refused).push(format!("{dest} {}: {code}: {detail}", msg.kind()));
                            break;
                        }
                        _ => break,
                    }
                }
            }
            tokio::select! {
                _ = stopped.changed() => return,
                () = sleep(Duration::from_millis(50)) => {}
            }
        }
    }
}

// ---- the federation ----

struct Fed {
    dir: tempfile::TempDir,
    manifest: Arc<Manifest>,
    operators: BTreeMap<Name, Vec<SigningKey>>,
    researcher: SigningKey,
    researcher_hpke: HpkeSecretKey,
    pop: Population,
    daemons: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
    kpr: Kpr,
    kpr_server: (oneshot::Sender<()>, JoinHandle<()>),
    /// A certificate-less client: the researcher's and operators' CLI.
    client: Client,
}

fn free_addr() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

fn settings() -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(60),
    }
}

fn extract_path(dir: &Path, register: &str) -> PathBuf {
    dir.join("extracts").join(format!("{register}.csv"))
}

impl Fed {
    async fn start() -> Fed {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let mut members = Vec::new();
        let mut operators = BTreeMap::new();
        for m in REGISTERS.iter().chain(std::iter::once(&"LINKER")) {
            let ks = Keystore::create(
                dir.path().join(m).join("keys"),
                None,
                KdfParams::default(),
                &["localhost".into()],
            )
            .expect("keystore");
            let role = if *m == "LINKER" {
                Role::Linker
            } else {
                Role::Register
            };
            let ops: Vec<SigningKey> = match role {
                Role::Register => (0..2).map(|_| SigningKey::generate(&mut rng)).collect(),
                Role::Linker => Vec::new(),
            };
            members.push(Member {
                operators: ops
                    .iter()
                    .enumerate()
                    .map(|(k, o)| Operator {
                        name: format!("{m} operator {k}"),
                        key: Key32(o.verifying_key().to_bytes()),
                    })
                    .collect(),
                ..ks.manifest_entry(name(m), role, free_addr().to_string())
            });
            operators.insert(name(m), ops);
        }
        let manifest = Manifest {
            federation: "hostile".into(),
            members,
        };
        manifest.validate().expect("manifest");
        let manifest = Arc::new(manifest);
        let pop = generate(&PopulationConfig {
            persons: PERSONS,
            seed: 5,
            ..Default::default()
        });
        std::fs::create_dir_all(dir.path().join("extracts")).expect("dir");
        for r in REGISTERS {
            std::fs::write(
                extract_path(dir.path(), r),
                render_csv(pop.extract(r).expect("extract")),
            )
            .expect("write");
        }

        // Four daemons.
        let mut daemons = Vec::new();
        for m in ["NPR", "SSB", "RESEPT", "LINKER"] {
            let (stop, stopped) = oneshot::channel::<()>();
            let node_dir = dir.path().join(m);
            let manifest = (*manifest).clone();
            let task = tokio::spawn(async move {
                let options = daemon::Options {
                    listen: None,
                    chunk_size: CHUNK_SIZE,
                };
                daemon::run(&node_dir, manifest, None, &options, async {
                    let _ = stopped.await;
                })
                .await
                .expect("the daemon runs");
            });
            daemons.push((stop, task));
        }

        // KPR: its engine, served and sending over its own endpoint.
        let kpr_dir = dir.path().join("KPR");
        let ks = Keystore::open(kpr_dir.join("keys"), None).expect("keystore");
        let identity = TlsIdentity::from_keystore(&ks).expect("identity");
        let store = Store::open(&kpr_dir).expect("store");
        let engine = Engine::new(name("KPR"), (*manifest).clone(), ks, store, [9; 32])
            .expect("engine")
            .with_chunk_size(CHUNK_SIZE);
        let engine = Arc::new(Mutex::new(engine));
        let addr: SocketAddr = manifest
            .member(&name("KPR"))
            .expect("KPR")
            .address
            .parse()
            .expect("addr");
        let limits = TransportLimits::default();
        let endpoint =
            server_endpoint(addr, &identity, manifest.clone(), &limits).expect("endpoint");
        let (stop, stopped) = oneshot::channel::<()>();
        let kpr_server = tokio::spawn(server::run(
            endpoint.clone(),
            manifest.clone(),
            Arc::new(EngineHandler(engine.clone())),
            ServerSettings::default(),
            async {
                let _ = stopped.await;
            },
        ));
        let kpr_client = Arc::new(
            Client::new(
                endpoint,
                Some(&identity),
                manifest.clone(),
                &limits,
                settings(),
            )
            .expect("client"),
        );
        let (stop_kpr, stopped_kpr) = watch::channel(false);
        let hold = Arc::new(Mutex::new(Hold::default()));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let members = manifest.members.iter().map(|m| m.name.clone()).collect();
        let sender = tokio::spawn(Kpr::send_loop(
            engine.clone(),
            kpr_client.clone(),
            hold.clone(),
            refused.clone(),
            members,
            stopped_kpr,
        ));
        let kpr = Kpr {
            engine,
            client: kpr_client,
            hold,
            refused,
            stop: stop_kpr,
            tasks: vec![sender],
        };
        let client = Client::new(
            client_endpoint("127.0.0.1:0".parse().expect("addr")).expect("endpoint"),
            None,
            manifest.clone(),
            &limits,
            settings(),
        )
        .expect("client");
        Fed {
            dir,
            manifest,
            operators,
            researcher: SigningKey::generate(&mut rng),
            researcher_hpke: HpkeSecretKey::generate(&mut rng),
            pop,
            daemons,
            kpr,
            kpr_server: (stop, kpr_server),
            client,
        }
    }

    async fn stop(self) {
        let _ = self.kpr.stop.send(true);
        for t in self.kpr.tasks {
            let _ = t.await;
        }
        self.kpr.client.close();
        self.client.close();
        let _ = self.kpr_server.0.send(());
        let _ = self.kpr_server.1.await;
        for (stop, task) in self.daemons {
            let _ = stop.send(());
            task.await.expect("a daemon stopped cleanly");
        }
    }

    fn order(&self, project: &str, registers: &[&str]) -> ProjectOrder {
        ProjectOrder {
            project: pid(project),
            title: BoundedString::new("hostile peers").expect("fits"),
            legal_basis: BoundedString::new("REK test").expect("fits"),
            manifest_digest: self.manifest.digest(),
            linker: name("LINKER"),
            registers: BoundedVec::new(
                registers
                    .iter()
                    .map(|r| RegisterRequest {
                        register: name(r),
                        variables: BoundedVec::new(
                            self.pop.extract(r).expect("extract").columns[1..]
                                .iter()
                                .map(|c| BoundedString::new(*c).expect("fits"))
                                .collect(),
                        )
                        .expect("fits"),
                    })
                    .collect(),
            )
            .expect("fits"),
            cohort: BoundedString::new("NPR").expect("fits"),
            expires: unix_now() + 86_400 * 365,
            researcher_signing_key: Key32(self.researcher.verifying_key().to_bytes()),
            researcher_hpke_key: Key32(*self.researcher_hpke.public_key().as_bytes()),
            test_mode: false,
        }
    }

    /// Submits a project and has both operators of every register approve.
    async fn run_project(&self, project: &str, registers: &[&str]) {
        let order = self.order(project, registers);
        let signed = Statement {
            project: order.project.clone(),
            time: unix_now(),
            signer: Signer::Researcher(order.researcher_signing_key),
            body: Body::Order(order.clone()),
        }
        .sign(&self.researcher);
        let reply = self
            .client
            .request(&name("LINKER"), &Message::SubmitOrder(signed))
            .await
            .expect("submitted");
        assert!(matches!(reply, Message::Ack { .. }), "{reply:?}");
        for r in registers {
            for key in &self.operators[&name(r)] {
                self.approve(&order, r, key).await;
            }
        }
    }

    async fn approve(&self, order: &ProjectOrder, register: &str, key: &SigningKey) {
        let path = extract_path(self.dir.path(), register);
        let extract = self.pop.extract(register).expect("extract");
        let approval = Approval {
            register: name(register),
            order: order.digest(),
            extract: file_digest(path.to_str().expect("utf-8")).expect("digest"),
            rows: extract.rows.len() as u64,
            columns: BoundedVec::new(
                extract
                    .columns
                    .iter()
                    .map(|c| BoundedString::new(*c).expect("fits"))
                    .collect(),
            )
            .expect("fits"),
        };
        let msg = Message::Approve {
            statement: Statement {
                project: order.project.clone(),
                time: unix_now(),
                signer: Signer::Operator {
                    register: name(register),
                    key: Key32(key.verifying_key().to_bytes()),
                },
                body: Body::Approval(approval),
            }
            .sign(key),
            extract_path: BoundedString::new(path.to_str().expect("utf-8")).expect("fits"),
        };
        // The register learns of the project from the linker: until then
        // it answers `not-ready`.
        let deadline = Instant::now() + LIVENESS;
        loop {
            match self.client.request(&name(register), &msg).await {
                Ok(Message::Ack { .. }) => return,
                Ok(Message::Refused { code, .. }) if code.as_str() == "not-ready" => {}
                other => panic!("approval at {register}: {other:?}"),
            }
            assert!(
                Instant::now() < deadline,
                "{register} never took the approval"
            );
            sleep(Duration::from_millis(50)).await;
        }
    }

    fn request(&self, project: &str, action: Action) -> Message {
        let req = Request {
            project: pid(project),
            action,
            time: unix_now(),
        }
        .sign(&self.researcher);
        match action {
            Action::Fetch => Message::Fetch(req),
            Action::Close => Message::Close(req),
            Action::Status => Message::Status(req),
        }
    }

    /// Fetches until the delivery is ready and checks it is exactly the
    /// ground truth.
    async fn fetch_and_check(&self, project: &str, registers: &[&str]) {
        let deadline = Instant::now() + LIVENESS;
        let replies = loop {
            let replies = self
                .client
                .request_all(&name("LINKER"), &self.request(project, Action::Fetch))
                .await
                .expect("fetch");
            match replies.first() {
                Some(Message::Refused { code, .. }) if code.as_str() == "not-ready" => {}
                Some(Message::TranscriptFile { .. }) => break replies,
                other => panic!("fetch: {other:?}"),
            }
            assert!(Instant::now() < deadline, "{project} was never delivered");
            sleep(Duration::from_millis(200)).await;
        };
        let delivered = open_delivery(&self.manifest, &self.researcher_hpke, replies)
            .expect("the delivery verifies and opens");
        let keystores: Vec<PathBuf> = registers
            .iter()
            .chain(std::iter::once(&"LINKER"))
            .map(|m| self.dir.path().join(m).join("keys"))
            .collect();
        let lnr_of =
            truth::lnr_from_keystores(&keystores, &pid(project), &self.pop).expect("shares");
        let tables: truth::Tables = delivered
            .tables
            .into_iter()
            .map(|(n, t)| (n, t.rows))
            .collect();
        assert_eq!(tables.len(), registers.len());
        assert_eq!(
            truth::compare(&self.pop, &lnr_of, "NPR", &tables),
            Vec::<String>::new(),
            "{project}: the delivery differs from the ground truth"
        );
    }

    /// Closes a project and waits until every key holder shredded.
    async fn close(&self, project: &str) {
        let reply = self
            .client
            .request(&name("LINKER"), &self.request(project, Action::Close))
            .await
            .expect("close");
        assert!(matches!(reply, Message::Ack { .. }), "{reply:?}");
        let deadline = Instant::now() + LIVENESS;
        loop {
            let entries = lock(&self.kpr.engine)
                .transcript(&pid(project))
                .expect("entries");
            let shredded = entries
                .iter()
                .filter(|e| matches!(e.signed.statement.body, Body::Shredded(_)))
                .count();
            if shredded == 5 {
                return;
            }
            assert!(Instant::now() < deadline, "{project} never shredded");
            sleep(Duration::from_millis(100)).await;
        }
    }

    fn keystore(&self, member: &str) -> Keystore {
        Keystore::open(self.dir.path().join(member).join("keys"), None).expect("keystore")
    }

    /// Every 11-digit identifier of the population's extracts.
    fn identifiers(&self) -> Vec<String> {
        REGISTERS
            .iter()
            .flat_map(|r| self.pop.extract(r).expect("extract").rows.iter())
            .map(|(id, _)| id.trim().to_string())
            .filter(|id| id.len() == 11 && id.bytes().all(|b| b.is_ascii_digit()))
            .collect()
    }
}

/// The code of a refusal (panics on anything else).
fn code(reply: Result<Message, ClientError>) -> String {
    match reply {
        Ok(Message::Refused { code, .. }) => code.into_inner(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Writes `bytes` on a new stream of a fresh connection to `to` and
/// returns how the node closed the connection.
async fn send_raw(client: &Client, to: &Name, bytes: &[u8]) -> Option<CloseCode> {
    let conn = client.connect(to).await.expect("connect");
    let (mut send, mut recv) = conn.quinn().open_bi().await.expect("stream");
    send.write_all(bytes).await.expect("write");
    let _ = send.finish();
    assert!(crate::net::frame::read_message(&mut recv).await.is_err());
    match conn.quinn().closed().await {
        quinn::ConnectionError::ApplicationClosed(c) => CloseCode::from_varint(c.error_code),
        _ => None,
    }
}

/// `Message::Points` with `n` output points, as raw postcard bytes: a
/// message no honest encoder can produce when `n` exceeds the limit.
fn points_bytes(chunk: &PointChunk, n: usize) -> Vec<u8> {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let probe = messages::encode(&Message::Points(chunk.clone()));
    let tag = probe[0]; // the variant index of `Points` (< 128)
    let mut out = vec![tag];
    for s in [chunk.project.as_str(), chunk.list.as_str()] {
        varint(s.len() as u64, &mut out);
        out.extend_from_slice(s.as_bytes());
    }
    varint(u64::from(chunk.hop), &mut out);
    varint(chunk.chunk, &mut out);
    varint(0, &mut out); // no input
    varint(n as u64, &mut out);
    let point = chunk.output[0].0;
    for _ in 0..n {
        out.extend_from_slice(&point);
    }
    out.push(0); // no proof
    out
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[test]
fn hostile_peers_are_refused_with_a_reason_and_the_nodes_deliver_exactly() {
    let logs = Logs::default();
    let (rt, dispatch) = runtime(&logs);
    let _default = tracing::dispatcher::set_default(&dispatch);
    rt.block_on(async {
        let fed = Fed::start().await;
        let (kpr, ssb, npr, linker) = (name("KPR"), name("SSB"), name("NPR"), name("LINKER"));
        let p1 = "HOSTILE-1";

        // Hold KPR's first chunk of NPR's list (KPR is its hop 1; SSB hop 2).
        fed.kpr.hold(|_, m| {
            matches!(m, Message::Points(c) if c.list.as_str() == "NPR" && c.hop == 1 && c.chunk == 0)
        });
        fed.run_project(p1, &REGISTERS).await;
        let (dest, held) = fed.kpr.held().await;
        assert_eq!(dest, ssb);
        let Message::Points(honest) = held.clone() else {
            panic!("held {held:?}")
        };
        assert!(honest.output.len() >= 3, "a chunk to tamper with");
        let to_ssb = |c: PointChunk| {
            let client = fed.kpr.client.clone();
            let ssb = ssb.clone();
            async move { code(client.request(&ssb, &Message::Points(c)).await) }
        };

        // Chunks that break the chain, from the list's genuine previous hop.
        let mut c = honest.clone();
        let mut out = c.output.clone().into_inner();
        out[2] = WirePoint([0xff; 32]);
        c.output = BoundedVec::new(out).expect("fits");
        assert_eq!(to_ssb(c).await, "bad-chunk", "an invalid point encoding");

        let mut c = honest.clone();
        let mut out = c.output.clone().into_inner();
        out[2] = WirePoint([0; 32]);
        c.output = BoundedVec::new(out).expect("fits");
        assert_eq!(to_ssb(c).await, "bad-chunk", "the identity point");

        let mut c = honest.clone();
        let (mut input, mut out) = (c.input.clone().into_inner(), c.output.clone().into_inner());
        input.pop();
        out.pop();
        c.input = BoundedVec::new(input).expect("fits");
        c.output = BoundedVec::new(out).expect("fits");
        assert_eq!(to_ssb(c).await, "bad-chunk", "a count that disagrees with the announcement");

        let mut c = honest.clone();
        if let Some(p) = c.proof.as_mut() {
            p.proof.response[0] ^= 1;
        }
        assert_eq!(to_ssb(c).await, "bad-chunk", "a proof that does not verify");

        let mut c = honest.clone();
        let mut out = c.output.clone().into_inner();
        out.swap(0, 1);
        c.output = BoundedVec::new(out).expect("fits");
        assert_eq!(to_ssb(c).await, "bad-chunk", "valid points that are not the proven ones");

        let mut c = honest.clone();
        c.proof = None;
        assert_eq!(to_ssb(c).await, "bad-chunk", "no proof");

        let mut c = honest.clone();
        c.hop = u32::MAX;
        assert_eq!(to_ssb(c).await, "bad-chunk", "a hop past the chain");

        let mut c = honest.clone();
        c.chunk = 1 << 40;
        assert_eq!(to_ssb(c).await, "bad-chunk", "a chunk past the list");

        let mut c = honest.clone();
        c.project = pid("NO-SUCH-PROJECT");
        assert_eq!(to_ssb(c).await, "unknown-project");

        let mut c = honest.clone();
        c.list = linker.clone();
        assert_eq!(to_ssb(c).await, "unknown-list");

        let mut c = honest.clone();
        c.hop = 0; // as if KPR were NPR, the owner
        assert_eq!(to_ssb(c).await, "unexpected-sender");

        // A member speaking for another (to the linker, which records).
        let npr_key = SigningKey::from_bytes(&fed.keystore("NPR").signing_key().to_bytes());
        let kpr_key = SigningKey::from_bytes(&fed.keystore("KPR").signing_key().to_bytes());
        let commitment = |key: &SigningKey, signer: Signer| {
            Message::Statement(
                Statement {
                    project: pid(p1),
                    time: unix_now(),
                    signer,
                    body: Body::Commitment(KeyCommitment {
                        member: name("NPR"),
                        domain: Domain::Project(pid(p1)),
                        key: WirePoint([1; 32]),
                    }),
                }
                .sign(key),
            )
        };
        let to = |dest: &Name, m: Message| {
            let client = fed.kpr.client.clone();
            let dest = dest.clone();
            async move { code(client.request(&dest, &m).await) }
        };
        assert_eq!(
            to(&linker, commitment(&npr_key, Signer::Node(npr.clone()))).await,
            "impersonation",
            "a statement signed with another member's (stolen) key"
        );
        assert_eq!(
            to(&linker, commitment(&kpr_key, Signer::Node(npr.clone()))).await,
            "impersonation",
            "a statement claiming another member's name"
        );
        let op = &fed.operators[&npr][0];
        assert_eq!(
            to(
                &linker,
                commitment(
                    op,
                    Signer::Operator {
                        register: npr.clone(),
                        key: Key32(op.verifying_key().to_bytes()),
                    }
                )
            )
            .await,
            "impersonation",
            "another register's operator statement"
        );
        let wrapped = WrappedKey {
            enc: [3; 32],
            ciphertext: BoundedBytes::new(vec![4; 48]).expect("fits"),
        };
        assert_eq!(
            to(
                &linker,
                Message::Blinding {
                    project: pid(p1),
                    list: npr.clone(),
                    sealed: wrapped.clone(),
                }
            )
            .await,
            "unexpected",
            "another owner's list blinding"
        );
        assert_eq!(
            to(
                &linker,
                Message::SealedItems {
                    project: pid(p1),
                    list: npr.clone(),
                    first: Position(0),
                    items: BoundedVec::new(vec![SealedItem(
                        BoundedBytes::new(vec![0; 256]).expect("fits")
                    )])
                    .expect("fits"),
                }
            )
            .await,
            "unexpected",
            "another owner's sealed items"
        );
        assert_eq!(
            to(
                &npr,
                Message::Entries {
                    project: pid(p1),
                    first: 0,
                    entries: BoundedVec::default(),
                }
            )
            .await,
            "not-the-linker",
            "transcript entries from a register"
        );
        assert_eq!(
            code(fed.client.request(&ssb, &Message::Points(honest.clone())).await),
            "unexpected",
            "a chunk from a client without a member certificate"
        );

        // Messages larger than the limits, and broken framing: the
        // connection is closed, the node goes on.
        let too_large = ((MAX_FRAME + 1) as u32).to_le_bytes();
        assert_eq!(
            send_raw(&fed.kpr.client, &ssb, &too_large).await,
            Some(CloseCode::FrameTooLarge)
        );
        let over = points_bytes(&honest, kobling_protocol::hop::MAX_CHUNK_POINTS + 1);
        assert!(over.len() < MAX_FRAME);
        assert_eq!(
            send_raw(&fed.kpr.client, &ssb, &frame(&over)).await,
            Some(CloseCode::Malformed),
            "a chunk over the point limit"
        );
        assert_eq!(
            send_raw(&fed.kpr.client, &linker, &frame(&[0xff, 0xff, 0xff])).await,
            Some(CloseCode::Malformed)
        );

        // A peer whose certificate is in no manifest entry.
        let stranger_dir = fed.dir.path().join("stranger");
        let stranger = Keystore::create(
            stranger_dir.join("keys"),
            None,
            KdfParams::default(),
            &["localhost".into()],
        )
        .expect("keystore");
        let stranger = Client::new(
            client_endpoint("127.0.0.1:0".parse().expect("addr")).expect("endpoint"),
            Some(&TlsIdentity::from_keystore(&stranger).expect("identity")),
            fed.manifest.clone(),
            &TransportLimits::default(),
            settings(),
        )
        .expect("client");
        assert!(matches!(
            stranger.request(&ssb, &Message::Points(honest.clone())).await,
            Err(ClientError::Connection(_))
        ));

        // The honest chunk goes, and a replay of it is acknowledged without
        // being processed again (the delivery below is still exact).
        fed.kpr.release();
        let deadline = Instant::now() + LIVENESS;
        while lock(&fed.kpr.engine)
            .outbox_to(&ssb, 1024)
            .expect("outbox")
            .iter()
            .any(|(_, m)| *m == held)
        {
            assert!(Instant::now() < deadline, "the honest chunk never went");
            sleep(Duration::from_millis(50)).await;
        }
        for _ in 0..3 {
            let reply = fed
                .kpr
                .client
                .request(&ssb, &Message::Points(honest.clone()))
                .await
                .expect("reply");
            assert!(matches!(reply, Message::Ack { .. }), "{reply:?}");
        }
        fed.fetch_and_check(p1, &REGISTERS).await;

        // Closed: nothing is processed or stored for the project again.
        fed.close(p1).await;
        assert_eq!(to_ssb(honest.clone()).await, "closed", "a chunk for a closed project");
        let kpr_items = Message::SealedItems {
            project: pid(p1),
            list: kpr.clone(),
            first: Position(0),
            items: BoundedVec::new(vec![SealedItem(
                BoundedBytes::new(vec![0; 256]).expect("fits"),
            )])
            .expect("fits"),
        };
        assert_eq!(to(&linker, kpr_items).await, "closed", "items for a closed project");
        let late = Message::Statement(
            Statement {
                project: pid(p1),
                time: unix_now(),
                signer: Signer::Node(kpr.clone()),
                body: Body::Commitment(KeyCommitment {
                    member: kpr.clone(),
                    domain: Domain::Project(pid(p1)),
                    key: WirePoint([1; 32]),
                }),
            }
            .sign(&kpr_key),
        );
        assert_eq!(to(&linker, late).await, "closed", "a statement for a closed project");

        // Everything else is still served: a new project runs and delivers
        // exactly, and KPR's honest messages were never refused.
        fed.run_project("HOSTILE-2", &REGISTERS).await;
        fed.fetch_and_check("HOSTILE-2", &REGISTERS).await;
        assert_eq!(*lock(&fed.kpr.refused), Vec::<String>::new());

        let identifiers = fed.identifiers();
        stranger.close();
        fed.stop().await;

        // Every refusal was logged with its reason, and no log line holds
        // an identifier.
        let text = logs.text();
        for reason in [
            "code=\"bad-chunk\"",
            "code=\"unknown-project\"",
            "code=\"unknown-list\"",
            "code=\"unexpected-sender\"",
            "code=\"impersonation\"",
            "code=\"unexpected\"",
            "code=\"not-the-linker\"",
            "code=\"closed\"",
            "bad frame; closing connection",
            "handshake refused or failed",
        ] {
            assert!(text.contains(reason), "no log line with {reason}");
        }
        assert!(!text.contains("panicked"));
        assert!(identifiers.len() > 100);
        eprintln!(
            "FIGURES {} log lines, none holds any of {} identifiers",
            text.lines().count(),
            identifiers.len()
        );
        for id in &identifiers {
            assert!(!text.contains(id.as_str()), "an identifier in the logs");
        }
    });
}
