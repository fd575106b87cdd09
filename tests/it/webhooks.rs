//! Webhooks to real receivers on 127.0.0.1: unsigned events, delivery
//! latency, a slow receiver. (Signed events, failures and retries, whose
//! tests read the server's log, are in the `process` binary.)

use std::time::{Duration, Instant};

use crate::in_process::TestServer;
use crate::support::receiver::{Answer, Receiver, WAIT};

#[test]
fn without_a_secret_requests_are_unsigned() {
    let receiver = Receiver::ok();
    let server = TestServer::start_with(&["--webhook", &receiver.url()]);
    server.create("a", "b", &[]);
    let delivery = &receiver.wait_for(1, WAIT)[0];
    assert_eq!(delivery.header("webhook-signature"), None);
    assert!(
        delivery.header("webhook-id").is_some() && delivery.header("webhook-timestamp").is_some()
    );
}

#[test]
fn deliveries_follow_the_commit_within_milliseconds() {
    let receiver = Receiver::ok();
    let server = TestServer::start_with(&["--webhook", &receiver.url()]);
    let mut latencies = Vec::new();
    for n in 0..20 {
        server.create(&format!("t{n}"), "c", &[]);
        let answered = Instant::now();
        let delivered = receiver.wait_for(n + 1, WAIT)[n].at;
        latencies.push(delivered.saturating_duration_since(answered));
    }
    latencies.sort();
    eprintln!(
        "delivery after the 201: median {:?}, max {:?}",
        latencies[10], latencies[19]
    );
    assert!(latencies[19] < Duration::from_millis(500), "{latencies:?}");
}

#[test]
fn a_slow_receiver_does_not_slow_the_api() {
    let slow = Receiver::start(|_| Answer::status(200).after(Duration::from_secs(6)));
    let server = TestServer::start_with(&["--webhook", &slow.url()]);
    server.create("first", "c", &[]);
    slow.wait_for(1, WAIT); // an attempt is now hanging on the receiver
    let mut latencies = Vec::new();
    for n in 0..30 {
        let started = Instant::now();
        server.create(&format!("t{n}"), "c", &[]);
        assert_eq!(server.get("/articles?per_page=1").status, 200);
        latencies.push(started.elapsed());
    }
    latencies.sort();
    eprintln!(
        "create + list with a 6 s receiver: median {:?}, max {:?}",
        latencies[15], latencies[29]
    );
    assert!(latencies[29] < Duration::from_millis(500), "{latencies:?}");
    slow.wait_for(4, WAIT);
    assert_eq!(
        slow.received().len(),
        4,
        "at most 4 attempts in flight per URL"
    );
    assert_eq!(server.get("/readyz").status, 200);
}
