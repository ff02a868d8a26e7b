//! The hostile-peer harness: four node daemons, KPR played by the test,
//! captured logs (see the parent module).

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
    bounded::{BoundedString, BoundedVec},
    manifest::{Key32, Manifest, Member, Operator, Role},
    messages::{Action, Message, Request},
    seal::HpkeSecretKey,
    transcript::{Approval, Body, ProjectOrder, RegisterRequest, Signer, Statement},
    types::{Name, ProjectId},
};
use kobling_sim::{
    population::{generate, render_csv, Population, PopulationConfig},
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
    engine::{file_digest, Engine, EngineConfig, Peer},
    net::{
        client::{Client, ClientSettings},
        endpoint::{client_endpoint, server_endpoint, TransportLimits},
        peer::Peer as NetPeer,
        server::{self, Handler, HandlerFuture, ServerSettings},
        tls::TlsIdentity,
    },
    researcher::open_delivery,
    store::Store,
};

pub(super) const REGISTERS: [&str; 4] = ["NPR", "KPR", "SSB", "RESEPT"];
pub(super) const PERSONS: usize = 200;
pub(super) const CHUNK_SIZE: u32 = 16;
/// No wait for the federation may take longer (liveness, not speed).
pub(super) const LIVENESS: Duration = Duration::from_secs(120);

pub(super) fn name(s: &str) -> Name {
    Name::new(s).expect("valid name")
}

/// The access authority of the harness's manifest.
fn authority() -> SigningKey {
    SigningKey::from_bytes(&[0xa5; 32])
}

pub(super) fn pid(s: &str) -> ProjectId {
    ProjectId::new(s).expect("valid project id")
}

// ---- captured logs ----

/// Every log line of the test's runtime (the daemons, KPR, the server).
#[derive(Clone, Default)]
pub(super) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

pub(super) struct LogWriter(Arc<Mutex<Vec<u8>>>);

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
pub(super) fn runtime(logs: &Logs) -> (tokio::runtime::Runtime, tracing::Dispatch) {
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
pub(super) struct EngineHandler(Arc<Mutex<Engine>>);

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
            .map(|r| Box::new(r.into_iter()) as server::Replies)
            .expect("KPR's handler")
        })
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) type Rule = Box<dyn Fn(&Name, &Message) -> bool + Send>;

/// Outgoing messages of KPR that the test holds back.
#[derive(Default)]
pub(super) struct Hold {
    rule: Option<Rule>,
    held: Option<(Name, Message)>,
}

pub(super) struct Kpr {
    pub(super) engine: Arc<Mutex<Engine>>,
    pub(super) client: Arc<Client>,
    pub(super) hold: Arc<Mutex<Hold>>,
    /// Final refusals of KPR's honest messages (there must be none).
    pub(super) refused: Arc<Mutex<Vec<String>>>,
    pub(super) stop: watch::Sender<bool>,
    pub(super) tasks: Vec<JoinHandle<()>>,
}

impl Kpr {
    /// Holds the first outgoing message matching `rule` (and everything
    /// after it to the same destination) until [`Kpr::release`].
    pub(super) fn hold(&self, rule: impl Fn(&Name, &Message) -> bool + Send + 'static) {
        let mut h = lock(&self.hold);
        h.rule = Some(Box::new(rule));
        h.held = None;
    }

    pub(super) async fn held(&self) -> (Name, Message) {
        let deadline = Instant::now() + LIVENESS;
        loop {
            if let Some(h) = lock(&self.hold).held.clone() {
                return h;
            }
            assert!(Instant::now() < deadline, "KPR never sent the message");
            sleep(Duration::from_millis(50)).await;
        }
    }

    pub(super) fn release(&self) {
        *lock(&self.hold) = Hold::default();
    }

    /// KPR's sender: honest, in outbox order per destination, except for
    /// what is held.
    pub(super) async fn send_loop(
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

pub(super) struct Fed {
    pub(super) dir: tempfile::TempDir,
    pub(super) manifest: Arc<Manifest>,
    pub(super) operators: BTreeMap<Name, Vec<SigningKey>>,
    pub(super) researcher: SigningKey,
    pub(super) researcher_hpke: HpkeSecretKey,
    pub(super) pop: Population,
    pub(super) daemons: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
    pub(super) kpr: Kpr,
    pub(super) kpr_server: (oneshot::Sender<()>, JoinHandle<()>),
    /// A certificate-less client: the researcher's and operators' CLI.
    pub(super) client: Client,
}

pub(super) fn free_addr() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

pub(super) fn settings() -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(60),
    }
}

pub(super) fn extract_path(dir: &Path, register: &str) -> PathBuf {
    dir.join("extracts").join(format!("{register}.csv"))
}

impl Fed {
    pub(super) async fn start() -> Fed {
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
            authorities: vec![kobling_protocol::manifest::Authority {
                name: "access office".into(),
                key: Key32(authority().verifying_key().to_bytes()),
            }],
            domains: Vec::new(),
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
            let extracts = dir.path().join("extracts");
            let task = tokio::spawn(async move {
                let options = daemon::Options {
                    chunk_size: CHUNK_SIZE,
                    test_mode: true,
                    extracts: Some(extracts.clone()),
                    ..daemon::Options::default()
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
        let config = EngineConfig {
            chunk_size: CHUNK_SIZE,
            background_preparation: false,
            test_mode: true,
            extracts: Some(dir.path().join("extracts")),
            ..EngineConfig::default()
        };
        let engine = Engine::new(name("KPR"), (*manifest).clone(), ks, store, [9; 32], config)
            .expect("engine");
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

    pub(super) async fn stop(self) {
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

    pub(super) fn order(&self, project: &str, registers: &[&str]) -> ProjectOrder {
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
            grant: None,
        }
        .granted_by(&authority())
    }

    /// Submits a project and has both operators of every register approve.
    pub(super) async fn run_project(&self, project: &str, registers: &[&str]) {
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

    pub(super) async fn approve(&self, order: &ProjectOrder, register: &str, key: &SigningKey) {
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
        let statement = Statement {
            project: order.project.clone(),
            time: unix_now(),
            signer: Signer::Operator {
                register: name(register),
                key: Key32(key.verifying_key().to_bytes()),
            },
            body: Body::Approval(approval),
        }
        .sign(key);
        // The order lives at the linker alone until the first approval:
        // the approval carries its entry (the researcher's status here).
        let status = self
            .client
            .request(
                &name("LINKER"),
                &self.request(order.project.as_str(), Action::Status),
            )
            .await
            .expect("status");
        let Message::TranscriptFile { bytes } = status else {
            panic!("status: {status:?}");
        };
        let (entries, _) = kobling_protocol::transcript::decode_file(&bytes).expect("file");
        let order_entry = entries.into_iter().next().expect("the order");
        // Each attempt in a fresh envelope.
        let deadline = Instant::now() + LIVENESS;
        loop {
            let action = Action::Approve {
                statement: statement.statement.digest(),
                extract: BoundedString::new(format!("{register}.csv")).expect("fits"),
            };
            let msg = Message::Approve {
                statement: statement.clone(),
                request: Box::new(self.request_to(register, &order.project, action).sign(key)),
                order: Box::new(order_entry.clone()),
            };
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

    pub(super) fn request(&self, project: &str, action: Action) -> Message {
        let req = self
            .request_to("LINKER", &pid(project), action.clone())
            .sign(&self.researcher);
        match action {
            Action::Fetch => Message::Fetch(req),
            Action::Close => Message::Close(req),
            _ => Message::Status(req),
        }
    }

    /// A request for node `to`, now, with a fresh nonce.
    fn request_to(&self, to: &str, project: &ProjectId, action: Action) -> Request {
        let mut nonce = [0u8; kobling_protocol::messages::NONCE_LEN];
        getrandom::fill(&mut nonce).expect("randomness");
        Request {
            project: project.clone(),
            action,
            time: unix_now(),
            node: name(to),
            manifest: self.manifest.digest(),
            nonce,
        }
    }

    /// Fetches until the delivery is ready and checks it is exactly the
    /// ground truth.
    pub(super) async fn fetch_and_check(&self, project: &str, registers: &[&str]) {
        let replies = self.fetch_replies(project).await;
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

    /// Fetches until the delivery is ready: the linker's replies, unopened.
    pub(super) async fn fetch_replies(&self, project: &str) -> Vec<Message> {
        let deadline = Instant::now() + LIVENESS;
        loop {
            let replies = self
                .client
                .request_all(&name("LINKER"), &self.request(project, Action::Fetch))
                .await
                .expect("fetch");
            match replies.first() {
                Some(Message::Refused { code, .. }) if code.as_str() == "not-ready" => {}
                Some(Message::TranscriptFile { .. }) => return replies,
                other => panic!("fetch: {other:?}"),
            }
            assert!(Instant::now() < deadline, "{project} was never delivered");
            sleep(Duration::from_millis(200)).await;
        }
    }

    /// Closes a project and waits until every key holder shredded.
    pub(super) async fn close(&self, project: &str) {
        let reply = self
            .client
            .request(&name("LINKER"), &self.request(project, Action::Close))
            .await
            .expect("close");
        assert!(matches!(reply, Message::Ack { .. }), "{reply:?}");
        let deadline = Instant::now() + LIVENESS;
        loop {
            // Registers never hold the shreddings (issue 12 item 1): the
            // researcher's status, the linker's whole transcript.
            let status = self
                .client
                .request(&name("LINKER"), &self.request(project, Action::Status))
                .await
                .expect("status");
            let Message::TranscriptFile { bytes } = status else {
                panic!("status: {status:?}");
            };
            let (entries, _) = kobling_protocol::transcript::decode_file(&bytes).expect("file");
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

    pub(super) fn keystore(&self, member: &str) -> Keystore {
        Keystore::open(self.dir.path().join(member).join("keys"), None).expect("keystore")
    }

    /// Every 11-digit identifier of the population's extracts.
    pub(super) fn identifiers(&self) -> Vec<String> {
        REGISTERS
            .iter()
            .flat_map(|r| self.pop.extract(r).expect("extract").rows.iter())
            .map(|(id, _)| id.trim().to_string())
            .filter(|id| id.len() == 11 && id.bytes().all(|b| b.is_ascii_digit()))
            .collect()
    }
}
