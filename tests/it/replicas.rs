//! Two servers on one PostgreSQL database, as behind a load balancer:
//! writes through either are seen by both, `If-Match` and `Idempotency-Key`
//! hold across servers, and every change is announced to a webhook exactly
//! once (neither server sends the other's deliveries again). The two share
//! nothing but the database, as two processes would. (Tokens made on the
//! command line for both are in the `process` binary's `cli`.)
//!
//! PostgreSQL only: on SQLite each test is ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::idempotency::keyed_posts_at_once;
use crate::in_process::TestServer;
use crate::support::receiver::Receiver;
use crate::support::sse::Stream;
use crate::support::{Conn, Resp};

/// Two servers on one fresh database, both with `args`.
fn pair(args: &[&str]) -> (TestServer, TestServer) {
    let first = TestServer::start_with(args);
    let second = first.another(args);
    (first, second)
}

#[test]
#[cfg_attr(
    not(feature = "postgres"),
    ignore = "needs PostgreSQL: cargo test --features postgres with ARTICLES_TEST_POSTGRES set"
)]
fn concurrent_writes_through_both_servers_are_visible_through_both() {
    let (a, b) = pair(&[]);
    const THREADS: usize = 4;
    const EACH: usize = 25;
    let handles: Vec<_> = [(0, a.addr), (1, b.addr)]
        .into_iter()
        .flat_map(|(server, addr)| {
            (0..THREADS).map(move |t| {
                thread::spawn(move || {
                    let mut conn = Conn::open(addr);
                    (0..EACH)
                        .map(|n| {
                            let resp = conn.create(&json!({
                                "title": format!("s{server} t{t} n{n}"),
                                "content": "written through one of two servers",
                                "tags": [format!("server{server}")],
                            }));
                            assert_eq!(resp.status, 201, "{}", resp.text());
                            resp.json()
                        })
                        .collect::<Vec<Value>>()
                })
            })
        })
        .collect();
    let created: Vec<Value> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let expected = 2 * THREADS * EACH;
    assert_eq!(created.len(), expected);
    let ids: BTreeSet<i64> = created.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), expected, "every id given once");

    let (mut on_a, mut on_b) = (a.connect(), b.connect());
    for article in &created {
        let path = format!("/articles/{}", article["id"]);
        for (name, conn) in [("first", &mut on_a), ("second", &mut on_b)] {
            let resp = conn.request("GET", &path, &[], None);
            assert_eq!(resp.status, 200, "{path} on the {name} server");
            assert_eq!(&resp.json(), article, "{path} on the {name} server");
        }
    }
    assert_eq!(a.total(), expected.to_string());
    assert_eq!(b.total(), expected.to_string());
    for server in [&a, &b] {
        let tagged = server.get("/articles?tag=server1&per_page=1");
        assert_eq!(
            tagged.header("X-Total-Count"),
            Some((THREADS * EACH).to_string().as_str())
        );
    }
}

#[test]
#[cfg_attr(
    not(feature = "postgres"),
    ignore = "needs PostgreSQL: cargo test --features postgres with ARTICLES_TEST_POSTGRES set"
)]
fn the_same_if_match_through_both_servers_lets_exactly_one_win() {
    let (a, b) = pair(&[]);
    for round in 0..10 {
        let created = if round % 2 == 0 { &a } else { &b }.post(&json!({
            "title": format!("contested {round}"),
            "content": "c",
        }));
        assert_eq!(created.status, 201);
        let path = created.header("Location").unwrap().to_owned();
        let tag = created.header("ETag").unwrap().to_owned();
        // Both servers agree on the tag before the race.
        assert_eq!(b.get(&path).header("ETag"), Some(tag.as_str()));

        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = [a.addr, b.addr]
            .into_iter()
            .enumerate()
            .map(|(n, addr)| {
                let (path, tag, barrier) = (path.clone(), tag.clone(), Arc::clone(&barrier));
                thread::spawn(move || {
                    let mut conn = Conn::open(addr);
                    let body =
                        serde_json::to_vec(&json!({"title": format!("server {n}")})).unwrap();
                    let headers = [
                        ("Content-Type", "application/json"),
                        ("If-Match", tag.as_str()),
                    ];
                    barrier.wait();
                    let resp = conn.request("PATCH", &path, &headers, Some(&body));
                    (resp.status, resp)
                })
            })
            .collect();
        let results: Vec<(u16, Resp)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let mut statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 412], "round {round}: {results:?}");
        let (_, winner) = results.iter().find(|(s, _)| *s == 200).unwrap();
        let (_, loser) = results.iter().find(|(s, _)| *s == 412).unwrap();
        loser.problem(412);
        for server in [&a, &b] {
            let now = server.get(&path);
            assert_eq!(now.json(), winner.json(), "round {round}");
            assert_eq!(now.header("ETag"), winner.header("ETag"));
        }
    }
}

#[test]
#[cfg_attr(
    not(feature = "postgres"),
    ignore = "needs PostgreSQL: cargo test --features postgres with ARTICLES_TEST_POSTGRES set"
)]
fn one_idempotency_key_through_both_servers_creates_one_article() {
    let (a, b) = pair(&[]);
    const BODY: &str = r#"{"title": "Once", "content": "through two servers", "tags": ["x"]}"#;
    const ROUNDS: usize = 10;
    for round in 0..ROUNDS {
        let key = format!("replicated-{round}");
        let answers = keyed_posts_at_once(&[a.addr, b.addr], &key, BODY);
        let created: Vec<&Resp> = answers
            .iter()
            .filter(|r| r.status == 201 && r.header("Idempotency-Replayed").is_none())
            .collect();
        assert_eq!(created.len(), 1, "round {round}: {answers:?}");
        let first = created[0];
        for resp in &answers {
            match (resp.status, resp.header("Idempotency-Replayed")) {
                (201, None) => {}
                (201, Some("true")) => assert_eq!(resp.saved_part(), first.saved_part()),
                (409, None) => {
                    resp.problem(409);
                    assert_eq!(resp.header("Retry-After"), Some("1"));
                }
                other => panic!("round {round}: unexpected {other:?}: {}", resp.text()),
            }
        }
        // Afterwards both replay the one creation.
        for server in [&a, &b] {
            let again = server.request(
                "POST",
                "/articles",
                &[
                    ("Content-Type", "application/json"),
                    ("Idempotency-Key", key.as_str()),
                ],
                Some(BODY.as_bytes()),
            );
            assert_eq!(again.header("Idempotency-Replayed"), Some("true"));
            assert_eq!(again.saved_part(), first.saved_part());
        }
    }
    assert_eq!(a.total(), ROUNDS.to_string());
    assert_eq!(b.total(), ROUNDS.to_string());
}

#[test]
#[cfg_attr(
    not(feature = "postgres"),
    ignore = "needs PostgreSQL: cargo test --features postgres with ARTICLES_TEST_POSTGRES set"
)]
fn webhooks_from_two_servers_are_delivered_once_each() {
    let receiver = Receiver::ok();
    let url = receiver.url();
    let (a, b) = pair(&["--webhook", &url]);
    const N: usize = 20;
    let mut created = BTreeSet::new();
    for n in 0..N {
        let server = if n % 2 == 0 { &a } else { &b };
        let article = server.create(&format!("announced {n}"), "c", &[]);
        created.insert(article["id"].as_i64().unwrap());
    }
    receiver.wait_for(N, Duration::from_secs(20));
    // Longer than either dispatcher needs to pick up the other's pending
    // deliveries, were it to send them again.
    thread::sleep(Duration::from_secs(3));
    let received = receiver.received();
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for delivery in &received {
        *by_id.entry(delivery.id().to_owned()).or_default() += 1;
    }
    let repeated: Vec<_> = by_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "delivered more than once: {repeated:?}"
    );
    assert_eq!(received.len(), N, "one delivery per change");
    let announced: BTreeSet<i64> = received
        .iter()
        .map(|d| {
            let event = d.json();
            assert_eq!(event["type"], "article.created");
            event["data"]["id"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(announced, created, "every creation announced");
    for server in [&a, &b] {
        server.await_metric("webhook_deliveries_pending", 0.0);
    }
}

#[test]
#[cfg_attr(
    not(feature = "postgres"),
    ignore = "needs PostgreSQL: cargo test --features postgres with ARTICLES_TEST_POSTGRES set"
)]
fn the_change_feed_has_every_change_through_both_servers_once_in_commit_order() {
    // Six writers, three through each server, a stream on one and a JSON
    // reader on the other: a seq taken by a transaction that commits late
    // must not be skipped by a reader that already saw a later one.
    let (a, b) = pair(&[]);
    crate::events::follow_concurrent_writers(&[&a, &b], 6);
}

#[test]
#[cfg_attr(
    not(feature = "postgres"),
    ignore = "needs PostgreSQL: cargo test --features postgres with ARTICLES_TEST_POSTGRES set"
)]
fn a_change_through_one_server_reaches_the_others_streams_within_a_second() {
    let (a, b) = pair(&[]);
    let mut stream = Stream::open(a.addr, "/events", &[]);
    assert_eq!(stream.head.status, 200);
    let mut worst = Duration::ZERO;
    for n in 0..5 {
        let started = Instant::now();
        b.create(&format!("through b {n}"), "c", &[]);
        let event = stream.event().unwrap();
        worst = worst.max(started.elapsed());
        assert_eq!(event.json()["data"]["title"], format!("through b {n}"));
    }
    assert!(worst < Duration::from_millis(1200), "{worst:?}");
    println!("a change through the other server reached a stream within {worst:?}");
}
