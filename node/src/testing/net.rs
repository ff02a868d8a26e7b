//! The in-memory network: real engines, a virtual clock, seeded faults.
//!
//! It moves messages the way the daemon's senders do (`node/src/sender.rs`):
//! per (source, destination) one message at a time, in outbox order, the
//! next one only after the reply; `not-ready` is offered again after a
//! pause; no reply within [`RETRY_TIMEOUT_MS`] is retried with a doubling
//! back-off; a final refusal is recorded and dropped. Every node ticks every
//! [`TICK_MS`] of virtual time, as the daemon's ticker does.
//!
//! Faults, drawn from one seeded generator so that a seed replays the same
//! run: a request or a reply is lost; a request arrives twice; every hop
//! takes a latency drawn from a range, so that messages between different
//! pairs overtake one another; a node crashes (its engine is dropped, its
//! directory kept) and restarts from its directory.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use kobling_keys::Keystore;
use kobling_protocol::{
    hash::framed_sha3,
    manifest::Manifest,
    messages::Message,
    refusal::RefusalCode,
    transcript::Entry,
    types::{Name, ProjectId, UnixTime},
};
use rand_chacha::{
    rand_core::{Rng, SeedableRng},
    ChaCha20Rng,
};

use super::TestingError;
use crate::{
    engine::{Engine, EngineConfig, Peer},
    store::Store,
};

/// Virtual milliseconds between two ticks of every node.
pub const TICK_MS: u64 = 500;
/// Virtual milliseconds a sender waits for a reply before it retries.
pub const RETRY_TIMEOUT_MS: u64 = 1_000;
/// Longest back-off between two attempts.
const MAX_BACKOFF_MS: u64 = 10_000;
/// Pause before a `not-ready` message is offered again.
const NOT_READY_MS: u64 = 20;

/// The faults of a run (all off by default).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Chance that a request, and separately its reply, is lost.
    pub loss: f64,
    /// Chance that a request is delivered a second time, later.
    pub duplicate: f64,
    /// Shortest one-way latency, in virtual milliseconds.
    pub min_latency_ms: u64,
    /// Longest one-way latency (a wide range reorders messages between
    /// pairs).
    pub max_latency_ms: u64,
    /// Chance per tick that a running node other than the linker crashes.
    pub crash: f64,
    /// How long a crashed node stays down, in virtual milliseconds.
    pub downtime_ms: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            loss: 0.0,
            duplicate: 0.0,
            min_latency_ms: 1,
            max_latency_ms: 1,
            crash: 0.0,
            downtime_ms: 2_000,
        }
    }
}

/// What the network did to a run, so that a test can show its faults
/// happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Requests delivered (copies included).
    pub delivered: u64,
    /// Requests and replies lost.
    pub lost: u64,
    /// Requests delivered twice.
    pub duplicated: u64,
    /// Messages offered again after no reply.
    pub retried: u64,
    /// Crashes.
    pub crashes: u64,
}

/// A message seen on the network, for observers.
pub type Observer = Box<dyn FnMut(&Name, &Name, &Message)>;
/// A rewrite of a message in flight (from, to, message), for attack tests.
pub type Tamper = Box<dyn FnMut(&Name, &Name, &mut Message)>;

/// One node: its directory, and its engine while it runs.
struct Node {
    dir: PathBuf,
    engine: Option<Engine>,
    /// Times started, so that a restart draws a fresh seed and replies to
    /// a request of an earlier life are ignored.
    lives: u64,
    /// Virtual time of a pending restart after a random crash.
    restart_at: Option<u64>,
}

/// What a sender (source → destination) is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    /// Ready to send from this virtual time on.
    Idle { from: u64 },
    /// Waiting for the reply to outbox message `id` until `deadline`.
    Waiting {
        id: i64,
        deadline: u64,
        backoff: u64,
    },
}

#[derive(Debug)]
enum Flight {
    Request {
        from: Name,
        to: Name,
        id: i64,
        life: u64,
        msg: Message,
        /// A duplicate: its reply is dropped.
        copy: bool,
    },
    Reply {
        from: Name,
        to: Name,
        id: i64,
        life: u64,
        reply: Message,
    },
}

/// A federation of engines on one virtual clock.
pub struct Net {
    manifest: Manifest,
    config: EngineConfig,
    /// Per-member configurations that differ from `config`.
    overrides: BTreeMap<Name, EngineConfig>,
    seed: u64,
    nodes: BTreeMap<Name, Node>,
    senders: BTreeMap<(Name, Name), Sender>,
    /// (arrival, sequence) → message.
    flights: BTreeMap<(u64, u64), Flight>,
    sequence: u64,
    rng: ChaCha20Rng,
    faults: Faults,
    /// Virtual milliseconds since the start.
    clock: u64,
    next_tick: u64,
    /// Unix seconds at virtual time zero.
    epoch: u64,
    observers: Vec<Observer>,
    tamper: Option<Tamper>,
    /// Final refusals of member messages: (from, to, code, detail).
    refusals: Vec<(Name, Name, String, String)>,
    stats: NetStats,
}

impl core::fmt::Debug for Net {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Net")
            .field("clock_ms", &self.clock)
            .field("nodes", &self.nodes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Net {
    /// Starts an engine for every member of `manifest` from its directory
    /// in `dirs` (a keystore in `keys/`, the state beside it). `epoch` is
    /// the Unix time at virtual time zero; `seed` fixes every random
    /// choice of the network and of the engines.
    ///
    /// # Errors
    ///
    /// [`TestingError`] if a node cannot start.
    pub fn start(
        manifest: Manifest,
        dirs: BTreeMap<Name, PathBuf>,
        config: EngineConfig,
        faults: Faults,
        seed: u64,
        epoch: u64,
    ) -> Result<Self, TestingError> {
        let mut net = Self {
            manifest,
            config: EngineConfig {
                // Deterministic: lists are prepared within the tick.
                background_preparation: false,
                ..config
            },
            overrides: BTreeMap::new(),
            seed,
            nodes: dirs
                .into_iter()
                .map(|(name, dir)| {
                    let node = Node {
                        dir,
                        engine: None,
                        lives: 0,
                        restart_at: None,
                    };
                    (name, node)
                })
                .collect(),
            senders: BTreeMap::new(),
            flights: BTreeMap::new(),
            sequence: 0,
            rng: ChaCha20Rng::seed_from_u64(seed),
            faults,
            clock: 0,
            next_tick: 0,
            epoch,
            observers: Vec::new(),
            tamper: None,
            refusals: Vec::new(),
            stats: NetStats::default(),
        };
        let names: Vec<Name> = net.nodes.keys().cloned().collect();
        for from in &names {
            for to in &names {
                net.senders
                    .insert((from.clone(), to.clone()), Sender::Idle { from: 0 });
            }
        }
        for n in &names {
            net.restart(n)?;
        }
        Ok(net)
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Unix seconds on the virtual clock.
    pub fn now(&self) -> UnixTime {
        UnixTime(self.epoch + self.clock / 1000)
    }

    /// Virtual milliseconds since the start.
    pub fn clock_ms(&self) -> u64 {
        self.clock
    }

    /// Calls `observer` with every message a node receives from a member.
    pub fn observe(&mut self, observer: Observer) {
        self.observers.push(observer);
    }

    /// Lets `tamper` rewrite every message between members before it
    /// arrives.
    pub fn tamper(&mut self, tamper: Tamper) {
        self.tamper = Some(tamper);
    }

    /// What the network did so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Final refusals between members so far: (from, to, code, detail).
    pub fn refusals(&self) -> &[(Name, Name, String, String)] {
        &self.refusals
    }

    /// The running engine of `name`.
    ///
    /// # Errors
    ///
    /// [`TestingError::Down`] for a node that is down or unknown.
    pub fn engine(&mut self, name: &Name) -> Result<&mut Engine, TestingError> {
        self.nodes
            .get_mut(name)
            .and_then(|n| n.engine.as_mut())
            .ok_or_else(|| TestingError::Down(name.clone()))
    }

    /// The transcript `name` holds for `project`.
    ///
    /// # Errors
    ///
    /// As [`engine`](Self::engine), or the engine's error.
    pub fn transcript(
        &mut self,
        name: &Name,
        project: &ProjectId,
    ) -> Result<Vec<Entry>, TestingError> {
        Ok(self.engine(name)?.transcript(project)?)
    }

    /// A client's request to `to`, answered at once (clients retry on
    /// their own; the network's faults are for members).
    ///
    /// # Errors
    ///
    /// As [`engine`](Self::engine), or the engine's error.
    pub fn client(&mut self, to: &Name, msg: Message) -> Result<Vec<Message>, TestingError> {
        let now = self.now();
        Ok(self.engine(to)?.handle(&Peer::Client, msg, now)?)
    }

    /// Crashes `name`: its engine is dropped mid-flight, its directory kept.
    pub fn crash(&mut self, name: &Name) {
        if let Some(node) = self.nodes.get_mut(name) {
            node.engine = None;
        }
    }

    /// (Re)starts `name` from its directory, as after a crash.
    ///
    /// # Errors
    ///
    /// [`TestingError`] if the keystore, the store or the engine cannot be
    /// opened.
    pub fn restart(&mut self, name: &Name) -> Result<(), TestingError> {
        let node = self
            .nodes
            .get_mut(name)
            .ok_or_else(|| TestingError::Down(name.clone()))?;
        node.engine = None;
        node.lives += 1;
        node.restart_at = None;
        let keystore = Keystore::open(node.dir.join("keys"), None)?;
        let store = Store::open(&node.dir)?;
        let seed = framed_sha3(
            b"KOBLING-TESTING-ENGINE-SEED",
            &[
                &self.seed.to_le_bytes(),
                name.as_str().as_bytes(),
                &node.lives.to_le_bytes(),
            ],
        );
        let engine = Engine::new(
            name.clone(),
            self.manifest.clone(),
            keystore,
            store,
            seed,
            self.overrides
                .get(name)
                .cloned()
                .unwrap_or_else(|| self.config.clone()),
        )?;
        node.engine = Some(engine);
        // Its senders start afresh, as the daemon's do.
        for ((from, _), sender) in &mut self.senders {
            if from == name {
                *sender = Sender::Idle { from: self.clock };
            }
        }
        Ok(())
    }

    /// Gives every node a new manifest and restarts each with it, as a
    /// federation does when its operators distribute a changed manifest
    /// (e.g. a key holder of a domain replaced by another member).
    ///
    /// # Errors
    ///
    /// As [`restart`](Self::restart).
    pub fn set_manifest(&mut self, manifest: Manifest) -> Result<(), TestingError> {
        self.manifest = manifest;
        let names: Vec<Name> = self.nodes.keys().cloned().collect();
        for n in &names {
            self.restart(n)?;
        }
        Ok(())
    }

    /// Restarts `name` with its configuration changed by `change` (for
    /// tests of a member that runs differently from the others, e.g. a
    /// register announcing chain v1 to a chain v2 linker).
    ///
    /// # Errors
    ///
    /// As [`restart`](Self::restart).
    pub fn configure(
        &mut self,
        name: &Name,
        change: impl FnOnce(&mut EngineConfig),
    ) -> Result<(), TestingError> {
        let mut config = self
            .overrides
            .get(name)
            .cloned()
            .unwrap_or_else(|| self.config.clone());
        change(&mut config);
        self.overrides.insert(name.clone(), config);
        self.restart(name)
    }

    /// Runs until `done` holds (checked after every event), for at most
    /// `limit_ms` of virtual time.
    ///
    /// # Errors
    ///
    /// [`TestingError::Timeout`] when the limit passes first, or an
    /// engine's internal error.
    pub fn run_until(
        &mut self,
        limit_ms: u64,
        mut done: impl FnMut(&mut Net) -> Result<bool, TestingError>,
    ) -> Result<(), TestingError> {
        let until = self.clock.saturating_add(limit_ms);
        loop {
            if done(self)? {
                return Ok(());
            }
            if self.clock > until {
                return Err(TestingError::Timeout(limit_ms));
            }
            self.step()?;
        }
    }

    /// Runs for `ms` of virtual time.
    ///
    /// # Errors
    ///
    /// An engine's internal error.
    pub fn run_for(&mut self, ms: u64) -> Result<(), TestingError> {
        let until = self.clock.saturating_add(ms);
        self.run_until(ms.saturating_add(1), |net| Ok(net.clock >= until))
    }

    /// A client's request to `to`, asked again (after letting the network
    /// run) for as long as the node answers `not-ready`, up to `limit_ms`
    /// of virtual time: a client that retries, as the CLI's user does.
    ///
    /// # Errors
    ///
    /// As [`client`](Self::client), or [`TestingError::Timeout`].
    pub fn client_retrying(
        &mut self,
        to: &Name,
        msg: &Message,
        limit_ms: u64,
    ) -> Result<Vec<Message>, TestingError> {
        let until = self.clock.saturating_add(limit_ms);
        loop {
            let replies = self.client(to, msg.clone())?;
            let not_ready = replies
                .first()
                .is_some_and(|m| m.refusal_code() == Some(RefusalCode::NotReady));
            if !not_ready {
                return Ok(replies);
            }
            if self.clock > until {
                return Err(TestingError::Timeout(limit_ms));
            }
            self.run_for(100)?;
        }
    }

    /// Runs until nothing is queued or in flight anywhere, for at most
    /// `limit_ms` of virtual time.
    ///
    /// # Errors
    ///
    /// As [`run_until`](Self::run_until).
    pub fn settle(&mut self, limit_ms: u64) -> Result<(), TestingError> {
        // Quiet for two ticks: nothing sent, nothing queued.
        let mut quiet_since: Option<u64> = None;
        self.run_until(limit_ms, |net| {
            if net.busy()? {
                quiet_since = None;
                return Ok(false);
            }
            let since = *quiet_since.get_or_insert(net.clock);
            Ok(net.clock >= since + 2 * TICK_MS)
        })
    }

    /// Whether any message is in flight, awaited or queued.
    fn busy(&mut self) -> Result<bool, TestingError> {
        if !self.flights.is_empty()
            || self
                .senders
                .values()
                .any(|s| matches!(s, Sender::Waiting { .. }))
            || self.nodes.values().any(|n| n.restart_at.is_some())
        {
            return Ok(true);
        }
        let names: Vec<Name> = self.nodes.keys().cloned().collect();
        for from in &names {
            let Some(engine) = self.nodes.get(from).and_then(|n| n.engine.as_ref()) else {
                continue;
            };
            for to in &names {
                if !engine.outbox_to(to, 1)?.is_empty() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// One event: sends what senders may send now, then delivers the
    /// earliest message due, ticks, or advances the clock to the next
    /// event.
    fn step(&mut self) -> Result<(), TestingError> {
        self.send_ready()?;
        let next_flight = self.flights.keys().next().map(|(at, _)| *at);
        let next_timer = self.next_timer();
        match next_flight {
            Some(at) if at <= self.clock => {
                let key = *self.flights.keys().next().expect("a flight is due");
                let flight = self.flights.remove(&key).expect("present");
                self.arrive(flight)?;
            }
            _ if self.next_tick <= self.clock => self.tick()?,
            _ => {
                let next = [Some(self.next_tick), next_flight, next_timer]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(self.next_tick);
                self.clock = next.max(self.clock + 1);
            }
        }
        Ok(())
    }

    /// The earliest sender deadline or ready time, or pending restart, in
    /// the future.
    fn next_timer(&self) -> Option<u64> {
        let senders = self.senders.values().filter_map(|s| match *s {
            Sender::Idle { from } if from > self.clock => Some(from),
            Sender::Waiting { deadline, .. } => Some(deadline),
            Sender::Idle { .. } => None,
        });
        let restarts = self.nodes.values().filter_map(|n| n.restart_at);
        senders.chain(restarts).min()
    }

    fn tick(&mut self) -> Result<(), TestingError> {
        self.next_tick = self.clock + TICK_MS;
        let now = self.now();
        let names: Vec<Name> = self.nodes.keys().cloned().collect();
        let linker = self.manifest.linker().map(|m| m.name.clone());
        for n in &names {
            let restart = self.nodes[n].restart_at.is_some_and(|at| at <= self.clock);
            if restart {
                self.restart(n)?;
            }
            let crash = self.faults.crash > 0.0
                && Some(n) != linker.as_ref()
                && self.nodes[n].engine.is_some()
                && self.chance(self.faults.crash);
            if crash {
                self.stats.crashes += 1;
                self.crash(n);
                let at = self.clock + self.faults.downtime_ms;
                if let Some(node) = self.nodes.get_mut(n) {
                    node.restart_at = Some(at);
                }
                continue;
            }
            if let Some(engine) = self.nodes.get_mut(n).and_then(|n| n.engine.as_mut()) {
                engine.tick(now)?;
            }
        }
        Ok(())
    }

    /// Every idle sender whose node runs sends the head of its outbox.
    fn send_ready(&mut self) -> Result<(), TestingError> {
        let pairs: Vec<(Name, Name)> = self
            .senders
            .iter()
            .filter_map(|(pair, s)| match *s {
                Sender::Idle { from } if from <= self.clock => Some(pair.clone()),
                // No reply in time: the message is offered again.
                Sender::Waiting { deadline, .. } if deadline <= self.clock => Some(pair.clone()),
                _ => None,
            })
            .collect();
        for (from, to) in pairs {
            let backoff = match self.senders[&(from.clone(), to.clone())] {
                Sender::Waiting { backoff, .. } => {
                    self.stats.retried += 1;
                    (backoff * 2).min(MAX_BACKOFF_MS)
                }
                Sender::Idle { .. } => RETRY_TIMEOUT_MS,
            };
            let Some(node) = self.nodes.get(&from) else {
                continue;
            };
            let life = node.lives;
            let Some(engine) = node.engine.as_ref() else {
                continue;
            };
            let Some((id, msg)) = engine.outbox_to(&to, 1)?.into_iter().next() else {
                self.senders.insert(
                    (from.clone(), to.clone()),
                    Sender::Idle {
                        from: self.clock + 1,
                    },
                );
                continue;
            };
            self.senders.insert(
                (from.clone(), to.clone()),
                Sender::Waiting {
                    id,
                    deadline: self.clock + backoff,
                    backoff,
                },
            );
            if from != to && self.chance(self.faults.loss) {
                self.stats.lost += 1;
                continue;
            }
            if from != to && self.chance(self.faults.duplicate) {
                self.stats.duplicated += 1;
                let extra = self.latency() + self.latency();
                self.schedule(
                    extra,
                    Flight::Request {
                        from: from.clone(),
                        to: to.clone(),
                        id,
                        life,
                        msg: msg.clone(),
                        copy: true,
                    },
                );
            }
            let latency = if from == to { 0 } else { self.latency() };
            self.schedule(
                latency,
                Flight::Request {
                    from,
                    to,
                    id,
                    life,
                    msg,
                    copy: false,
                },
            );
        }
        Ok(())
    }

    fn arrive(&mut self, flight: Flight) -> Result<(), TestingError> {
        match flight {
            Flight::Request {
                from,
                to,
                id,
                life,
                mut msg,
                copy,
            } => {
                if from != to {
                    if let Some(tamper) = self.tamper.as_mut() {
                        tamper(&from, &to, &mut msg);
                    }
                    for o in &mut self.observers {
                        o(&from, &to, &msg);
                    }
                }
                let now = self.now();
                let Some(engine) = self.nodes.get_mut(&to).and_then(|n| n.engine.as_mut()) else {
                    return Ok(()); // down: the sender times out
                };
                let mut replies = engine.handle(&Peer::Member(from.clone()), msg, now)?;
                self.stats.delivered += 1;
                if copy || replies.is_empty() {
                    return Ok(());
                }
                if from != to && self.chance(self.faults.loss) {
                    self.stats.lost += 1;
                    return Ok(());
                }
                let latency = if from == to { 0 } else { self.latency() };
                self.schedule(
                    latency,
                    Flight::Reply {
                        from: to,
                        to: from,
                        id,
                        life,
                        reply: replies.swap_remove(0),
                    },
                );
            }
            Flight::Reply {
                from,
                to,
                id,
                life,
                reply,
            } => {
                let pair = (to.clone(), from.clone());
                let current = self.nodes.get(&to).map(|n| n.lives) == Some(life)
                    && matches!(self.senders.get(&pair), Some(Sender::Waiting { id: w, .. }) if *w == id);
                if !current {
                    return Ok(());
                }
                let Some(engine) = self.nodes.get_mut(&to).and_then(|n| n.engine.as_mut()) else {
                    return Ok(());
                };
                match &reply {
                    Message::Ack { .. } => {
                        engine.acked(id)?;
                        self.senders.insert(pair, Sender::Idle { from: self.clock });
                    }
                    m if m.refusal_code().is_some_and(|c| c.is_transient())
                        || m.refusal_code() == Some(RefusalCode::NotReady) =>
                    {
                        self.senders.insert(
                            pair,
                            Sender::Idle {
                                from: self.clock + NOT_READY_MS,
                            },
                        );
                    }
                    Message::Refused { code, detail } => {
                        self.refusals.push((
                            to.clone(),
                            from.clone(),
                            code.as_str().to_owned(),
                            detail.as_str().to_owned(),
                        ));
                        engine.acked(id)?;
                        self.senders.insert(pair, Sender::Idle { from: self.clock });
                    }
                    other => {
                        return Err(TestingError::Unexpected(format!(
                            "{from} answered {to} with {}",
                            other.kind()
                        )))
                    }
                }
            }
        }
        Ok(())
    }

    fn schedule(&mut self, latency: u64, flight: Flight) {
        self.sequence += 1;
        self.flights
            .insert((self.clock + latency, self.sequence), flight);
    }

    fn latency(&mut self) -> u64 {
        let (lo, hi) = (self.faults.min_latency_ms, self.faults.max_latency_ms);
        if hi <= lo {
            return lo;
        }
        lo + self.rng.next_u64() % (hi - lo + 1)
    }

    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // 53 random bits as a fraction in [0, 1).
        let x = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        x < p
    }

    /// Nodes currently down.
    pub fn down(&self) -> BTreeSet<Name> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.engine.is_none())
            .map(|(name, _)| name.clone())
            .collect()
    }
}
