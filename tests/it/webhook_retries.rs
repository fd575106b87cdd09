//! Webhook delivery when receivers fail: backoff and Retry-After, a receiver
//! down across a crash, 410 Gone, and SIGTERM with an attempt in flight.

use std::time::{Duration, Instant};

use crate::support::receiver::{Answer, Receiver};
use crate::support::TestServer;

const WAIT: Duration = Duration::from_secs(15);

fn seconds(from: Instant, to: Instant) -> f64 {
    to.duration_since(from).as_secs_f64()
}

#[test]
fn failures_are_retried_with_backoff_and_retry_after_is_honoured() {
    let receiver = Receiver::start(|n| match n {
        0 | 1 => Answer::status(500),
        2 => Answer::status(429).header("Retry-After", "6"),
        _ => Answer::status(204),
    });
    let server = TestServer::start_with(&["--webhook", &receiver.url()]);
    server.create("t", "c", &[]);
    let attempts = receiver.wait_for(4, WAIT);
    let gaps: Vec<f64> = attempts
        .windows(2)
        .map(|w| seconds(w[0].at, w[1].at))
        .collect();
    eprintln!("gaps between attempts: {gaps:.2?} s");
    assert!(
        (0.75..1.6).contains(&gaps[0]),
        "~1 s after the first failure: {gaps:?}"
    );
    assert!((1.55..2.9).contains(&gaps[1]), "then ~2 s: {gaps:?}");
    assert!(
        (5.9..7.5).contains(&gaps[2]),
        "Retry-After: 6 beats ~4 s: {gaps:?}"
    );
    for attempt in &attempts {
        assert_eq!(
            attempt.id(),
            attempts[0].id(),
            "one webhook-id for every retry"
        );
        assert_eq!(attempt.body, attempts[0].body, "one body for every retry");
    }
    server.await_metric("webhook_deliveries_total{outcome=\"success\"}", 1.0);
    assert_eq!(
        server.metric("webhook_deliveries_total{outcome=\"failure\"}"),
        Some(3.0)
    );
    assert_eq!(server.metric("webhook_deliveries_pending"), Some(0.0));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(receiver.received().len(), 4, "nothing after the success");
    let log = server.log();
    assert!(
        log.contains(&format!("webhook {} failed", receiver.url())),
        "{log}"
    );
    assert!(
        log.contains("status 500") && log.contains("status 429"),
        "{log}"
    );
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

#[test]
fn gone_stops_deliveries_to_that_url_only() {
    let gone = Receiver::start(|_| Answer::status(410));
    let fine = Receiver::ok();
    let server = TestServer::start_with(&["--webhook", &gone.url(), "--webhook", &fine.url()]);
    server.create("one", "c", &[]);
    gone.wait_for(1, WAIT);
    server.await_metric("webhook_deliveries_total{outcome=\"gone\"}", 1.0);
    server.create("two", "c", &[]);
    server.create("three", "c", &[]);
    fine.wait_for(3, WAIT);
    server.await_metric("webhook_deliveries_total{outcome=\"success\"}", 3.0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(gone.received().len(), 1, "nothing more after a 410");
    assert_eq!(server.metric("webhook_deliveries_pending"), Some(0.0));
    assert!(server.log().contains("410 Gone"), "{}", server.log());
}

#[test]
fn sigterm_abandons_an_attempt_in_flight_and_it_is_retried_after_restart() {
    let receiver = Receiver::start(|n| match n {
        0 => Answer::status(200).after(Duration::from_secs(20)),
        _ => Answer::status(200),
    });
    let args = ["--webhook", &receiver.url()];
    let mut server = TestServer::start_with(&args);
    server.create("t", "c", &[]);
    let first = receiver.wait_for(1, WAIT)[0].clone();

    let stopping = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(5)).expect("exits");
    assert_eq!(status.code(), Some(0));
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "{:?}",
        stopping.elapsed()
    );
    if !crate::support::postgres() {
        assert!(
            !server.dir.path().join("test.db-wal").exists(),
            "WAL checkpointed and removed"
        );
    }

    let server = server.restart_with("TERM", &args);
    let again = &receiver.wait_for(2, WAIT)[1];
    assert_eq!(again.id(), first.id());
    assert_eq!(again.body, first.body);
    server.await_metric("webhook_deliveries_pending", 0.0);
}
