//! `Idempotency-Key` on `POST /articles`.

use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use serde_json::json;

use crate::in_process::TestServer;
use crate::support::write_lock::WriteLock;
use crate::support::{bearer, Conn, Resp};

/// One `POST /articles` of `body` with `Idempotency-Key: key` to each of
/// `addrs`, each from a thread of its own and all released at once; the
/// responses in the order of `addrs`.
pub fn keyed_posts_at_once(addrs: &[SocketAddr], key: &str, body: &'static str) -> Vec<Resp> {
    let barrier = Arc::new(std::sync::Barrier::new(addrs.len()));
    let handles: Vec<_> = addrs
        .iter()
        .map(|&addr| {
            let (key, barrier) = (key.to_owned(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let headers = [
                    ("Content-Type", "application/json"),
                    ("Idempotency-Key", key.as_str()),
                ];
                barrier.wait();
                conn.request("POST", "/articles", &headers, Some(body.as_bytes()))
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

const BODY: &str = r#"{"title": "Once", "content": "only once", "tags": ["b", "a"]}"#;

#[test]
fn a_retry_gets_the_first_response_again_and_creates_nothing() {
    let server = TestServer::start();
    let key = [("Idempotency-Key", "order-7f3a:1")];
    let first = server.send_json_bytes("POST", "/articles", &key, BODY.as_bytes());
    assert_eq!(first.status, 201, "{}", first.text());
    assert!(first.header("ETag").is_some());
    assert_eq!(first.header("Idempotency-Replayed"), None);

    // The same JSON value, spelled differently.
    let same = r#"{ "tags":["b","a"],"content":"only once","title":"\u004fnce" }"#;
    for body in [BODY, same] {
        let again = server.send_json_bytes("POST", "/articles", &key, body.as_bytes());
        assert_eq!(again.saved_part(), first.saved_part());
        assert_eq!(again.header("Idempotency-Replayed"), Some("true"));
        assert_ne!(again.header("X-Request-Id"), first.header("X-Request-Id"));
    }
    assert_eq!(server.total(), "1");
    // A replay is the first answer, even after the article has changed.
    let path = first.header("Location").unwrap();
    let patched = server.send_json("PATCH", path, &[], &json!({"title": "changed"}));
    assert_eq!(patched.status, 200);
    assert_eq!(
        server
            .send_json_bytes("POST", "/articles", &key, BODY.as_bytes())
            .saved_part(),
        first.saved_part()
    );
}

#[test]
fn the_same_key_with_a_different_body_is_422() {
    let server = TestServer::start();
    let key = [("Idempotency-Key", "k-1")];
    assert_eq!(
        server
            .send_json_bytes("POST", "/articles", &key, BODY.as_bytes())
            .status,
        201
    );
    let other = r#"{"title": "Once", "content": "only once", "tags": ["a", "b"]}"#;
    let resp = server.send_json_bytes("POST", "/articles", &key, other.as_bytes());
    assert_eq!(resp.invalid_fields(), ["Idempotency-Key"]);
    assert_eq!(resp.header("Idempotency-Replayed"), None);
    assert_eq!(server.total(), "1");
}

#[test]
fn invalid_keys_are_400_and_create_nothing() {
    let server = TestServer::start();
    let long = "k".repeat(256);
    for key in ["", "two words", long.as_str()] {
        let resp = server.send_json_bytes(
            "POST",
            "/articles",
            &[("Idempotency-Key", key)],
            BODY.as_bytes(),
        );
        resp.problem(400);
    }
    assert_eq!(server.total(), "0");
    let longest = "k".repeat(255);
    let visible = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    for key in [longest.as_str(), visible] {
        assert_eq!(
            server
                .send_json_bytes(
                    "POST",
                    "/articles",
                    &[("Idempotency-Key", key)],
                    BODY.as_bytes()
                )
                .status,
            201,
            "{key}"
        );
    }
}

#[test]
fn keys_are_scoped_per_user() {
    let server = TestServer::start();
    let alice = bearer(&server.add_user("alice"));
    let bob = bearer(&server.add_user("bob"));
    let key = ("Idempotency-Key", "shared");
    let by_alice = server.send_json_bytes(
        "POST",
        "/articles",
        &[key, ("Authorization", &alice)],
        BODY.as_bytes(),
    );
    let by_bob = server.send_json_bytes(
        "POST",
        "/articles",
        &[key, ("Authorization", &bob)],
        BODY.as_bytes(),
    );
    let anonymous = server.send_json_bytes("POST", "/articles", &[key], BODY.as_bytes());
    for resp in [&by_alice, &by_bob, &anonymous] {
        assert_eq!(resp.status, 201, "{}", resp.text());
        assert_eq!(resp.header("Idempotency-Replayed"), None);
    }
    assert_eq!(by_alice.json()["author"]["username"], "alice");
    assert_eq!(by_bob.json()["author"]["username"], "bob");
    assert_eq!(server.total(), "3");
    let again = server.send_json_bytes(
        "POST",
        "/articles",
        &[key, ("Authorization", &alice)],
        BODY.as_bytes(),
    );
    assert_eq!(again.saved_part(), by_alice.saved_part());
    let again = server.send_json_bytes("POST", "/articles", &[key], BODY.as_bytes());
    assert_eq!(again.saved_part(), anonymous.saved_part());
}

#[test]
fn a_failed_request_may_be_retried_with_the_same_key() {
    let server = TestServer::start();
    let key = [("Idempotency-Key", "retry-me")];
    assert_eq!(
        server
            .send_json_bytes("POST", "/articles", &key, br#"{"title": ""}"#)
            .status,
        422
    );
    assert_eq!(
        server
            .send_json_bytes("POST", "/articles", &key, b"{")
            .status,
        400
    );
    let created = server.send_json_bytes("POST", "/articles", &key, BODY.as_bytes());
    assert_eq!(created.status, 201);
    assert_eq!(created.header("Idempotency-Replayed"), None);
    assert_eq!(
        server
            .send_json_bytes("POST", "/articles", &key, BODY.as_bytes())
            .header("Idempotency-Replayed"),
        Some("true")
    );
    assert_eq!(server.total(), "1");
}

#[test]
fn a_retry_while_the_first_is_in_flight_is_409() {
    let server = TestServer::start();
    // Hold the write lock so the first request waits, key claimed.
    let lock = WriteLock::hold(&server);
    let (sender, answers) = mpsc::channel();
    for _ in 0..2 {
        let (addr, sender) = (server.addr, sender.clone());
        std::thread::spawn(move || {
            let headers = [
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "slow"),
            ];
            let resp =
                Conn::open(addr).request("POST", "/articles", &headers, Some(BODY.as_bytes()));
            sender.send(resp).unwrap();
        });
        std::thread::sleep(Duration::from_millis(200));
    }
    let early = answers
        .recv_timeout(Duration::from_secs(3))
        .expect("an early answer");
    early.problem(409);
    assert_eq!(early.header("Retry-After"), Some("1"));
    lock.release();
    let late = answers.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(late.status, 201, "{}", late.text());
    assert_eq!(
        server
            .send_json_bytes(
                "POST",
                "/articles",
                &[("Idempotency-Key", "slow")],
                BODY.as_bytes()
            )
            .header("Idempotency-Replayed"),
        Some("true")
    );
    assert_eq!(server.total(), "1");
}

#[test]
fn twenty_concurrent_posts_with_one_key_create_one_article() {
    let server = TestServer::start();
    let answers = keyed_posts_at_once(&[server.addr; 20], "burst", BODY);
    let created: Vec<&Resp> = answers
        .iter()
        .filter(|r| r.status == 201 && r.header("Idempotency-Replayed").is_none())
        .collect();
    assert_eq!(created.len(), 1);
    for resp in &answers {
        match (resp.status, resp.header("Idempotency-Replayed")) {
            (409, None) => assert_eq!(resp.problem(409)["status"], 409),
            (201, Some("true")) => assert_eq!(resp.saved_part(), created[0].saved_part()),
            (201, None) => {}
            other => panic!("unexpected {other:?}: {}", resp.text()),
        }
    }
    assert_eq!(server.total(), "1");
}
