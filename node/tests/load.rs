//! Issue 7 (reliability): load. One project runs alone on the five node
//! processes (its wall time, submit to a checked delivery, is the solo
//! time); then four projects run at once on the same nodes. Each must
//! deliver exactly its ground truth, and each must finish within twice its
//! share of the machine: the four share it, so the bound is
//! `concurrent wall time ≤ 2 × 4 × solo`. The times are printed.

mod common;

use std::time::{Duration, Instant};

use common::{approve_all, fetch_and_check, setup_with, submit, NodeAddr, Setup};

const PERSONS: usize = 300;
const CONCURRENT: usize = 4;

fn project(s: &Setup, id: &str) -> Duration {
    let started = Instant::now();
    let researcher = submit(s, id);
    approve_all(s, id);
    fetch_and_check(s, &researcher, id);
    started.elapsed()
}

#[test]
fn four_projects_at_once_complete_correctly_within_twice_their_share() {
    let (s, _nodes) = setup_with(PERSONS, "warn", &["--chunk-size", "32"], |_| {
        NodeAddr::direct()
    });
    let solo = project(&s, "LOAD-SOLO");
    let started = Instant::now();
    let times: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..=CONCURRENT)
            .map(|i| {
                let s = &s;
                scope.spawn(move || project(s, &format!("LOAD-{i}")))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a project failed"))
            .collect()
    });
    let all = started.elapsed();
    let bound = solo * 2 * CONCURRENT as u32;
    println!(
        "load: solo {:.1} s; {CONCURRENT} at once: {} (all done in {:.1} s); bound 2 × {CONCURRENT} × solo = {:.1} s",
        solo.as_secs_f64(),
        times
            .iter()
            .map(|t| format!("{:.1} s", t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
        all.as_secs_f64(),
        bound.as_secs_f64()
    );
    for (i, t) in times.iter().enumerate() {
        assert!(
            *t <= bound,
            "LOAD-{} took {:.1} s, more than 2 × {CONCURRENT} × solo ({:.1} s)",
            i + 1,
            t.as_secs_f64(),
            bound.as_secs_f64()
        );
    }
}
