//! The hostile-peer harness: four node daemons, KPR played by the test,
//! captured logs (see `main.rs`). Keys, operators, the researcher, the
//! manifest, orders, approvals and requests are `kobling_node::testing`'s;
//! what is here is what the in-memory federation has no need of: real
//! sockets, and a member whose outgoing messages the test holds.

use std::{
    io::Write,
    net::UdpSocket,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use kobling_keys::Keystore;
use kobling_node::{
    daemon::{self, unix_now},
    engine::{Engine, EngineConfig},
    net::{
        client::{Client, ClientSettings},
        endpoint::{client_endpoint, server_endpoint_on, TransportLimits},
        tls::TlsIdentity,
    },
    store::Store,
    testing::{quic, Federation, LINKER},
};
use kobling_protocol::{
    manifest::Manifest,
    messages::{Action, Message},
    transcript::{Body, ProjectOrder},
    types::{ListName, Name, ProjectId},
};
use kobling_sim::{
    population::{generate, Extract, Population, PopulationConfig},
    truth,
};
use tokio::{
    sync::{oneshot, watch},
    task::JoinHandle,
    time::{sleep, Instant},
};

pub(crate) const REGISTERS: [&str; 4] = ["NPR", "KPR", "SSB", "RESEPT"];
pub(crate) const PERSONS: usize = 200;
pub(crate) const CHUNK_SIZE: u32 = 16;
/// No wait for the federation may take longer (liveness, not speed).
pub(crate) const LIVENESS: Duration = Duration::from_secs(120);

pub(crate) fn name(s: &str) -> Name {
    Name::new(s).expect("valid name")
}

pub(crate) fn list_name(s: &str) -> ListName {
    ListName::new(s).expect("valid name")
}

pub(crate) fn pid(s: &str) -> ProjectId {
    ProjectId::new(s).expect("valid project id")
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---- captured logs ----

/// Every log line of the test's runtime (the daemons, KPR, the server).
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.0)).into_owned()
    }
}

pub(crate) struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
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
pub(crate) fn runtime(logs: &Logs) -> (tokio::runtime::Runtime, tracing::Dispatch) {
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

pub(crate) type Rule = Box<dyn Fn(&Name, &Message) -> bool + Send>;

/// Outgoing chunks of KPR that the test holds back, or copies.
#[derive(Default)]
pub(crate) struct Hold {
    rules: Vec<(Rule, bool)>,
    /// What the hold rules caught, never sent.
    held: Vec<(Name, Message)>,
    /// What the copy rules caught, sent and acknowledged.
    copied: Vec<(Name, Message)>,
}

impl Hold {
    /// Whether `msg` to `dest` waits behind a held chunk of its project
    /// (a project's chunks to a destination go in order; other projects'
    /// go on).
    fn behind_held(&self, dest: &Name, msg: &Message) -> bool {
        let Some(project) = chunk_project(msg) else {
            return false;
        };
        self.held
            .iter()
            .any(|(d, h)| d == dest && chunk_project(h) == Some(project))
    }
}

/// The project of a chunk (v1 or v2).
fn chunk_project(m: &Message) -> Option<&ProjectId> {
    match m {
        Message::Points(c) => Some(&c.project),
        Message::ChunkV2 { project, .. } => Some(project),
        _ => None,
    }
}

pub(crate) struct Kpr {
    pub(crate) engine: Arc<Mutex<Engine>>,
    /// KPR's endpoint and identity, for clients of its own.
    endpoint: quinn::Endpoint,
    identity: TlsIdentity,
    pub(crate) client: Arc<Client>,
    pub(crate) hold: Arc<Mutex<Hold>>,
    /// Final refusals of KPR's honest messages (there must be none).
    pub(crate) refused: Arc<Mutex<Vec<String>>>,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Kpr {
    /// Holds the first outgoing chunk matching `rule` (and every later
    /// chunk of its project to the same destination), for good.
    pub(crate) fn hold(&self, rule: impl Fn(&Name, &Message) -> bool + Send + 'static) {
        lock(&self.hold).rules.push((Box::new(rule), true));
    }

    /// Keeps a copy of every outgoing message matching `rule` once it is
    /// acknowledged.
    pub(crate) fn copy(&self, rule: impl Fn(&Name, &Message) -> bool + Send + 'static) {
        lock(&self.hold).rules.push((Box::new(rule), false));
    }

    /// The first held (`held`) or copied message that `matches`, waited for.
    pub(crate) async fn caught(
        &self,
        held: bool,
        matches: impl Fn(&Message) -> bool,
    ) -> (Name, Message) {
        let deadline = Instant::now() + LIVENESS;
        loop {
            {
                let h = lock(&self.hold);
                let list = if held { &h.held } else { &h.copied };
                if let Some(found) = list.iter().find(|(_, m)| matches(m)) {
                    return found.clone();
                }
            }
            assert!(Instant::now() < deadline, "KPR never sent the message");
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// KPR's sender: honest, in outbox order per destination, except for
    /// what is held.
    pub(crate) async fn send_loop(
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
                        e.outbox_to(&dest, 1024).expect("outbox")
                    })
                    .await
                    .expect("outbox task")
                };
                for (id, msg) in batch {
                    let copy = {
                        let mut h = lock(&hold);
                        if h.behind_held(dest, &msg) {
                            continue;
                        }
                        let caught = h.rules.iter().find(|(r, _)| r(dest, &msg)).map(|(_, k)| *k);
                        if caught == Some(true) {
                            h.held.push((dest.clone(), msg));
                            continue;
                        }
                        caught == Some(false)
                    };
                    match client.request(dest, &msg).await {
                        Ok(Message::Ack { .. }) => {
                            let engine = engine.clone();
                            tokio::task::spawn_blocking(move || lock(&engine).acked(id))
                                .await
                                .expect("ack task")
                                .expect("acked");
                            if copy {
                                lock(&hold).copied.push((dest.clone(), msg));
                            }
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

type Stop = (oneshot::Sender<()>, JoinHandle<()>);

pub(crate) struct Fed {
    /// Keys, operators, the researcher and the manifest (with the
    /// sockets' addresses), under `_dir`.
    pub(crate) keys: Federation,
    _dir: tempfile::TempDir,
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) pop: Population,
    daemons: Mutex<Vec<Stop>>,
    pub(crate) kpr: Kpr,
    kpr_server: Mutex<Option<Stop>>,
    /// A certificate-less client: the researcher's and operators' CLI.
    pub(crate) client: Client,
}

pub(crate) fn settings() -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(60),
    }
}

impl Fed {
    pub(crate) async fn start() -> Fed {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut keys = Federation::create(dir.path(), &REGISTERS, 7).expect("keys");
        // Every node's socket is bound before the manifest names its port,
        // and kept until the node serves on it: no other program can take
        // the port in between.
        let mut sockets = Vec::new();
        for m in &mut keys.manifest.members {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
            m.address = socket.local_addr().expect("addr").to_string();
            sockets.push((m.name.clone(), socket));
        }
        keys.manifest.validate().expect("manifest");
        let manifest = Arc::new(keys.manifest.clone());
        let pop = generate(&PopulationConfig {
            persons: PERSONS,
            seed: 5,
            ..Default::default()
        });
        for r in REGISTERS {
            let extract = pop.extract(r).expect("extract");
            keys.write_extract(extract, &format!("{r}.csv"))
                .expect("write");
        }

        // Four daemons.
        let mut daemons = Vec::new();
        let mut kpr_socket = None;
        for (m, socket) in sockets {
            if m.as_str() == "KPR" {
                kpr_socket = Some(socket);
                continue;
            }
            let (stop, stopped) = oneshot::channel::<()>();
            let node_dir = keys.dir.join(m.as_str());
            let manifest = (*manifest).clone();
            let extracts = keys.extracts();
            let task = tokio::spawn(async move {
                let options = daemon::Options {
                    chunk_size: CHUNK_SIZE,
                    test_mode: true,
                    extracts: Some(extracts),
                    socket: Some(Arc::new(socket)),
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
        let ks = keys.keystore("KPR").expect("keystore");
        let identity = TlsIdentity::from_keystore(&ks).expect("identity");
        let store = Store::open(&keys.dir.join("KPR")).expect("store");
        let config = EngineConfig {
            chunk_size: CHUNK_SIZE,
            background_preparation: false,
            test_mode: true,
            extracts: Some(keys.extracts()),
            ..EngineConfig::default()
        };
        let engine = Engine::new(name("KPR"), (*manifest).clone(), ks, store, [9; 32], config)
            .expect("engine");
        let engine = Arc::new(Mutex::new(engine));
        let limits = TransportLimits::default();
        let endpoint = server_endpoint_on(
            kpr_socket.expect("KPR's socket"),
            &identity,
            manifest.clone(),
            &limits,
        )
        .expect("endpoint");
        let (stop, stopped) = oneshot::channel::<()>();
        let kpr_server = tokio::spawn(quic::serve_engine(
            endpoint.clone(),
            manifest.clone(),
            engine.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        let kpr_client = Arc::new(
            Client::new(
                endpoint.clone(),
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
            engine: engine.clone(),
            endpoint,
            identity,
            client: kpr_client,
            hold,
            refused,
            stop: stop_kpr,
            tasks: Mutex::new(vec![sender]),
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
            keys,
            _dir: dir,
            manifest,
            pop,
            daemons: Mutex::new(daemons),
            kpr,
            kpr_server: Mutex::new(Some((stop, kpr_server))),
            client,
        }
    }

    /// A client of KPR's own, on its endpoint with its certificate, whose
    /// connections no other test shares (a test that breaks its
    /// connection on purpose breaks no one else's).
    pub(crate) fn kpr_alone(&self) -> Client {
        Client::new(
            self.kpr.endpoint.clone(),
            Some(&self.kpr.identity),
            self.manifest.clone(),
            &TransportLimits::default(),
            settings(),
        )
        .expect("client")
    }

    /// Stops KPR and the daemons; every daemon must stop cleanly.
    pub(crate) async fn stop(&self) {
        let _ = self.kpr.stop.send(true);
        let tasks = std::mem::take(&mut *lock(&self.kpr.tasks));
        for t in tasks {
            let _ = t.await;
        }
        self.kpr.client.close();
        self.client.close();
        let server = lock(&self.kpr_server).take();
        if let Some((stop, task)) = server {
            let _ = stop.send(());
            let _ = task.await;
        }
        let daemons = std::mem::take(&mut *lock(&self.daemons));
        for (stop, task) in daemons {
            let _ = stop.send(());
            task.await.expect("a daemon stopped cleanly");
        }
    }

    fn extracts(&self, registers: &[&str]) -> Vec<&Extract> {
        registers
            .iter()
            .map(|r| self.pop.extract(r).expect("extract"))
            .collect()
    }

    /// Submits a project and has both operators of every register approve.
    pub(crate) async fn run_project(&self, project: &str, registers: &[&str]) -> ProjectOrder {
        let order = self
            .keys
            .order(project, "NPR", &self.extracts(registers))
            .expect("order");
        let reply = self
            .client
            .request(&name(LINKER), &self.keys.submit_message(&order, unix_now()))
            .await
            .expect("submitted");
        assert!(matches!(reply, Message::Ack { .. }), "{reply:?}");
        for r in registers {
            for operator in 0..2 {
                self.approve(&order, r, operator).await;
            }
        }
        order
    }

    /// Operator `operator` of `register` approves `order`.
    pub(crate) async fn approve(&self, order: &ProjectOrder, register: &str, operator: usize) {
        let extract = self.pop.extract(register).expect("extract");
        // The order lives at the linker alone until the first approval:
        // the approval carries its entry (the researcher's status here).
        let status = self
            .client
            .request(
                &name(LINKER),
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
            let msg = self
                .keys
                .approval_message(
                    order,
                    &order_entry,
                    extract,
                    &format!("{register}.csv"),
                    operator,
                    unix_now(),
                )
                .expect("approval");
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

    /// The researcher's request to the linker, now.
    pub(crate) fn request(&self, project: &str, action: Action) -> Message {
        self.keys
            .request(project, action, unix_now())
            .expect("request")
    }

    /// Fetches until the delivery is ready and checks it is exactly the
    /// ground truth.
    pub(crate) async fn fetch_and_check(&self, project: &str, registers: &[&str]) {
        let replies = self.fetch_replies(project).await;
        let delivered = quic::open_delivery(&self.manifest, &self.keys.researcher_hpke, replies)
            .expect("the delivery verifies and opens");
        let keystores: Vec<PathBuf> = registers
            .iter()
            .chain(std::iter::once(&LINKER))
            .map(|m| self.keys.dir.join(m).join("keys"))
            .collect();
        let lnr_of =
            truth::lnr_from_keystores(&keystores, &pid(project), &self.pop).expect("shares");
        assert_eq!(delivered.tables.len(), registers.len());
        assert_eq!(
            truth::compare(&self.pop, &lnr_of, "NPR", &delivered.tables),
            Vec::<String>::new(),
            "{project}: the delivery differs from the ground truth"
        );
    }

    /// Fetches until the delivery is ready: the linker's replies, unopened.
    pub(crate) async fn fetch_replies(&self, project: &str) -> Vec<Message> {
        let deadline = Instant::now() + LIVENESS;
        loop {
            let replies = self
                .client
                .request_all(&name(LINKER), &self.request(project, Action::Fetch))
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
    pub(crate) async fn close(&self, project: &str) {
        let reply = self
            .client
            .request(&name(LINKER), &self.request(project, Action::Close))
            .await
            .expect("close");
        assert!(matches!(reply, Message::Ack { .. }), "{reply:?}");
        let deadline = Instant::now() + LIVENESS;
        loop {
            // Registers never hold the shreddings (issue 12 item 1): the
            // researcher's status, the linker's whole transcript.
            let status = self
                .client
                .request(&name(LINKER), &self.request(project, Action::Status))
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

    pub(crate) fn keystore(&self, member: &str) -> Keystore {
        self.keys.keystore(member).expect("keystore")
    }

    /// Every 11-digit identifier of the population's extracts.
    pub(crate) fn identifiers(&self) -> Vec<String> {
        REGISTERS
            .iter()
            .flat_map(|r| self.pop.extract(r).expect("extract").rows.iter())
            .map(|(id, _)| id.trim().to_string())
            .filter(|id| id.len() == 11 && id.bytes().all(|b| b.is_ascii_digit()))
            .collect()
    }
}
