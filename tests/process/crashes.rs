//! SIGKILL, then a restart on the same database: what was acknowledged is
//! there. Crash durability under writers that never stop: the server is
//! killed at a random moment, and after each kill the database passes
//! SQLite's integrity checks and holds every acknowledged write, exactly
//! (on PostgreSQL the same, without SQLite's file checks). Also a kept
//! article, an `Idempotency-Key`, and webhook events to a receiver that was
//! down.
//!
//! Five rounds of kills; `RELIABILITY_SCALE=10` runs ten times as many;
//! `RELIABILITY_SEED` replays a run.

use std::thread;
use std::time::Duration;

use crate::spawned::TestServer;
use crate::sqlite_integrity::integrity_problems;
use crate::support::database::postgres;
use crate::support::ledger::{self, Writer};
use crate::support::receiver::{Answer, Receiver, WAIT};
use crate::support::rng::{self, Rng};
use crate::support::Conn;

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

        if !postgres() {
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

#[test]
fn data_survives_a_restart() {
    let first = TestServer::start();
    let created = first.create("kept", "across restarts", &["x"]);
    let second = first.kill_and_restart();
    assert_eq!(
        second.get(&format!("/articles/{}", created["id"])).json(),
        created
    );
}

#[test]
fn a_key_survives_a_restart() {
    let server = TestServer::start();
    let key = [("Idempotency-Key", "durable")];
    let body = br#"{"title": "Once", "content": "only once", "tags": ["b", "a"]}"#;
    let first = server.send_json_bytes("POST", "/articles", &key, body);
    assert_eq!(first.status, 201);
    let server = server.kill_and_restart();
    let again = server.send_json_bytes("POST", "/articles", &key, body);
    assert_eq!(again.saved_part(), first.saved_part());
    assert_eq!(again.header("Idempotency-Replayed"), Some("true"));
    assert_eq!(server.total(), "1");
}

#[test]
fn a_receiver_down_across_a_crash_gets_every_event_when_back() {
    let port = Receiver::free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let server = TestServer::start_with(&["--webhook", &url]);
    let ids: Vec<i64> = (0..3)
        .map(|n| {
            server.create(&format!("t{n}"), "c", &[])["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    server.await_metric("webhook_deliveries_total{outcome=\"failure\"}", 3.0);
    assert_eq!(server.metric("webhook_deliveries_pending"), Some(3.0));
    assert!(server.metric("webhook_oldest_pending_age_seconds").unwrap() > 0.0);
    assert!(
        server.log().contains("connection refused"),
        "{}",
        server.log()
    );

    let server = server.restart_with("KILL", &["--webhook", &url]);
    let receiver = Receiver::start_on(port, |_| Answer::status(200));
    let delivered = receiver.wait_for(3, WAIT);
    let mut got: Vec<i64> = delivered
        .iter()
        .map(|d| d.json()["data"]["id"].as_i64().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, ids, "every committed change announced, across SIGKILL");
    server.await_metric("webhook_deliveries_pending", 0.0);
    assert_eq!(receiver.received().len(), 3);
}
