//! Issue 7 (reliability): crashes and restarts. Five `kobling node run`
//! processes run a project whose lists have many chunks each; each of the
//! five nodes in turn (in a seeded random order, at seeded random points of
//! the chain's progress) is killed with SIGKILL and started again from its
//! directory. The delivery must be exactly the ground truth, and no chunk
//! already verified, stepped and committed may be stepped again: the engine
//! writes one `chunk stepped` debug line per committed chunk step, and every
//! (list, hop, chunk) appears at most once in each node's log across its
//! restarts.
//!
//! `KOBLING_KILL_SEED` (default 7) and `KOBLING_KILL_ROUNDS` (default 2:
//! every node killed twice) override the seed and the number of rounds.

mod common;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use common::{
    approve_all, fetch_and_check, setup_with, stepped_chunks, submit, NodeAddr, Nodes, MEMBERS,
    REGISTERS,
};

const PERSONS: usize = 400;
const CHUNK: usize = 16;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// splitmix64: a seeded sequence for the kill order and points.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Committed chunk steps so far, over every node's log.
fn steps_so_far(nodes: &Nodes) -> usize {
    MEMBERS
        .iter()
        .map(|m| {
            let log = std::fs::read_to_string(nodes.log_path(m)).unwrap_or_default();
            stepped_chunks(&log).len()
        })
        .sum()
}

#[test]
fn each_node_killed_in_turn_restarts_without_redoing_verified_chunks() {
    let seed = env_u64("KOBLING_KILL_SEED", 7);
    let rounds = env_u64("KOBLING_KILL_ROUNDS", 2) as usize;
    let (s, mut nodes) = setup_with(
        PERSONS,
        "warn,kobling_node::engine=debug",
        &["--chunk-size", &CHUNK.to_string()],
        |_| NodeAddr::direct(),
    );
    // Every list passes the three other registers and the linker.
    let expected: usize = REGISTERS
        .iter()
        .map(|r| 4 * s.pop.members(r).len().div_ceil(CHUNK))
        .sum();
    let mut rng = Seeded(seed);
    // Kill points: fractions of the expected chunk steps, rising, one per
    // kill, all inside the chain (5% … 90%).
    let kills = rounds * MEMBERS.len();
    let mut points: Vec<usize> = (0..kills)
        .map(|_| expected * (5 + rng.below(86) as usize) / 100)
        .collect();
    points.sort_unstable();
    let mut order = Vec::new();
    for _ in 0..rounds {
        let mut round: Vec<usize> = (0..MEMBERS.len()).collect();
        for i in (1..round.len()).rev() {
            round.swap(i, rng.below(i as u64 + 1) as usize);
        }
        order.extend(round);
    }

    let started = Instant::now();
    let researcher = submit(&s, "CRASH-1");
    approve_all(&s, "CRASH-1");
    let mut done = Vec::new();
    for (point, victim) in points.iter().zip(&order) {
        let deadline = Instant::now() + Duration::from_secs(240);
        while steps_so_far(&nodes) < *point {
            assert!(Instant::now() < deadline, "the chain stopped progressing");
            std::thread::sleep(Duration::from_millis(20));
        }
        // A little further, so the kill does not always follow a commit.
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        let at = steps_so_far(&nodes);
        nodes.kill_and_restart(*victim);
        done.push(format!("{} at {at}/{expected} steps", MEMBERS[*victim]));
    }
    fetch_and_check(&s, &researcher, "CRASH-1");
    let elapsed = started.elapsed();
    nodes.stop();

    let mut total = 0;
    let mut resends = 0;
    for m in MEMBERS {
        let log = std::fs::read_to_string(nodes.log_path(m)).expect("log");
        resends += log
            .lines()
            .filter(|l| l.contains("chunk already stepped"))
            .count();
        let mut seen: BTreeMap<(String, u32, u64), usize> = BTreeMap::new();
        for step in stepped_chunks(&log) {
            *seen.entry(step).or_default() += 1;
            total += 1;
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{m} stepped chunks again: {twice:?}");
    }
    println!(
        "seed {seed}: {} kills ({}); {total} of {expected} chunk steps logged, none twice; \
         {resends} resent chunks acknowledged without redoing; {:.1} s",
        done.len(),
        done.join(", "),
        elapsed.as_secs_f64()
    );
    assert_eq!(done.len(), kills);
    // A kill between a step's commit and its log line loses at most that
    // line; nothing is logged twice.
    assert!(
        total <= expected && total + kills >= expected,
        "{total} chunk steps logged, {expected} expected"
    );
}
