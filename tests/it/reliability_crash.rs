//! Crash durability: writers never stop, the server is killed with SIGKILL
//! at a random moment, and after each kill the database passes SQLite's
//! integrity checks and holds every acknowledged write, exactly. On
//! PostgreSQL (`ARTICLES_TEST_POSTGRES`) the same, without SQLite's file
//! checks: every acknowledged write survives a SIGKILL of the server.
//!
//! Five rounds; `RELIABILITY_SCALE=10` runs ten times as many; `RELIABILITY_SEED`
//! replays a run.

use std::thread;
use std::time::Duration;

use crate::support::ledger::{self, Writer};
use crate::support::rng::{self, Rng};
use crate::support::sqlite_integrity::integrity_problems;
use crate::support::{Conn, TestServer};

/// No article is made outside the ledgers.
const OTHERS: &[i64] = &[];

/// Runs every writer on its own connection until the server dies; kills it
/// with SIGKILL after `run_for`.
fn write_until_killed(server: &TestServer, writers: &mut [Writer], run_for: Duration) {
    thread::scope(|scope| {
        for writer in writers.iter_mut() {
            let addr = server.addr;
            scope.spawn(move || {
                let mut conn = Conn::open(addr);
                // An error is the kill: a refused, reset or cut-short answer.
                while writer.step(&mut conn).is_ok() {}
            });
        }
        thread::sleep(run_for);
        server.signal("KILL");
    });
}

#[test]
fn every_acknowledged_write_survives_sigkill() {
    let seed = rng::seed("crash");
    let rounds = 5 * rng::scale();
    let mut rng = Rng::new(seed);
    let mut server = TestServer::start();
    let token = server.add_user("crasher");
    let mut writers: Vec<Writer> = (0..4)
        .map(|n| Writer::new(&format!("w{n}"), seed.wrapping_add(n), None))
        .collect();
    writers.push(Writer::new("owner", seed ^ 0xA5, Some(token)));

    let (mut applied_in_flight, mut checked) = (0, 0);
    for round in 1..=rounds {
        let run_for = Duration::from_millis(rng.between(150, 700));
        write_until_killed(&server, &mut writers, run_for);
        let status = server.wait_exit(Duration::from_secs(5)).expect("killed");
        assert_eq!(status.code(), None, "killed by a signal");

        if !crate::support::postgres() {
            let problems = integrity_problems(&server.db_path());
            assert!(problems.is_empty(), "round {round}: {problems:?}");
        }

        server = server.restart_with("KILL", &[]);
        let verdict = ledger::verify(server.addr, &mut writers, OTHERS);
        assert_eq!(verdict.lost, 0, "round {round}: {:#?}", verdict.problems);
        assert!(
            verdict.problems.is_empty(),
            "round {round}: {:#?}",
            verdict.problems
        );
        applied_in_flight += verdict.applied_in_flight;
        checked += verdict.checked;
        println!(
            "round {round}: killed after {run_for:?}; {} states checked",
            verdict.checked
        );
    }
    let sent: u64 = writers.iter().map(|w| w.stats.sent).sum();
    let acknowledged: u64 = writers.iter().map(|w| w.stats.acknowledged).sum();
    for writer in &writers {
        assert!(
            writer.stats.problems.is_empty(),
            "{:?}",
            writer.stats.problems
        );
    }
    println!(
        "crash: {rounds} SIGKILLs, {sent} writes sent, {acknowledged} acknowledged, \
         {checked} states checked, 0 lost, {applied_in_flight} unanswered writes had applied"
    );
}
