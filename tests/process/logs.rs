//! What the server writes to its own standard error: access lines with
//! request ids, a panic's request, no token, no webhook secret, no control
//! bytes, and why a webhook failed. Read from the log file of a server
//! process (in this process the logger would be one for every test).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::spawned::TestServer;
use crate::support::database::postgres;
use crate::support::receiver::{Answer, Delivery, Receiver, WAIT};
use crate::support::{bearer, status_of, Conn, Resp};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[test]
fn request_ids_are_echoed_when_sane_and_made_otherwise() {
    let server = TestServer::start();
    let resp = server.request("GET", "/articles", &[("X-Request-Id", "abc-123.X_y")], None);
    assert_eq!(resp.header("X-Request-Id"), Some("abc-123.X_y"));
    let long = "a".repeat(129);
    let resp = server.request("GET", "/articles", &[("X-Request-Id", &long)], None);
    let made = resp.header("X-Request-Id").unwrap();
    assert!(!made.is_empty() && made != long);
    let resp = server.request("GET", "/articles", &[("X-Request-Id", "has space")], None);
    assert_ne!(resp.header("X-Request-Id"), Some("has space"));

    let resp = server.get("/articles/1");
    let id = resp.header("X-Request-Id").unwrap().to_owned();
    assert_eq!(resp.json()["request_id"], id.as_str());
    let log = server.flushed_log();
    let line = log
        .lines()
        .find(|l| l.contains(&id))
        .expect("access log line");
    assert!(line.contains("GET /articles/1 404"), "{line}");
    assert!(line.contains("ms"), "{line}");
}

#[test]
fn a_panicking_handler_is_a_500_for_that_request_only() {
    let server = TestServer::start();
    let mut conn = server.connect();
    let body = conn.request("GET", "/__panic", &[], None).problem(500);
    assert!(!body["detail"].as_str().unwrap().contains("deliberate"));
    assert_eq!(conn.request("GET", "/articles", &[], None).status, 200);
    assert!(server
        .flushed_log()
        .contains(body["request_id"].as_str().unwrap()));
}

#[test]
fn tokens_never_reach_the_database_or_the_logs() {
    let server = TestServer::start();
    let token = server.add_user("mallory");
    let auth = bearer(&token);
    let mut conn = Conn::open(server.addr);
    for _ in 0..3 {
        assert_eq!(
            conn.request("GET", "/me", &[("Authorization", &auth)], None)
                .status,
            200
        );
    }
    conn.request(
        "GET",
        "/me",
        &[("Authorization", &format!("Bearer {token}x"))],
        None,
    )
    .assert_401();
    std::thread::sleep(std::time::Duration::from_millis(100));

    let secret = token.strip_prefix("art_").unwrap();
    for entry in std::fs::read_dir(server.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(!found, "token text found in {}", path.display());
    }
    if postgres() {
        // The database is not in the directory: dump it.
        let dump = std::process::Command::new("pg_dump")
            .args(["--data-only", "--dbname", &server.db()])
            .output()
            .expect("pg_dump (PostgreSQL's client) on PATH");
        assert!(dump.status.success(), "{dump:?}");
        let found = dump
            .stdout
            .windows(secret.len())
            .any(|w| w == secret.as_bytes());
        assert!(!found, "token text found in the PostgreSQL database");
    }
    assert!(!server.flushed_log().contains(secret));
}

/// A head the HTTP layer refuses gets an access line like any other
/// answer, with its status and the request id the client was sent.
#[test]
fn refused_heads_are_logged_like_any_other_answer() {
    let server = TestServer::start();
    let reply = server.raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Duration::from_secs(3));
    assert_eq!(status_of(&reply), Some(505));
    let text = String::from_utf8_lossy(&reply).into_owned();
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("X-Request-Id: "))
        .expect("a request id")
        .to_owned();
    let log = server.flushed_log();
    let line = log
        .lines()
        .find(|l| l.contains(&id))
        .expect("an access line");
    assert!(line.contains(" 505 "), "{line}");
}

#[test]
fn control_characters_and_length_in_the_method_never_reach_the_log() {
    let server = TestServer::start();
    let methods = [
        "G\x1b[31mE\x07T\x7f".to_owned(),
        "X\0Y".to_owned(),
        "M".repeat(10_000),
    ];
    for method in &methods {
        let request =
            format!("{method} /articles HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let reply = server.raw(request.as_bytes(), Duration::from_secs(4));
        // Not a token: an unparsable request line (400); too long: 414.
        assert!(
            matches!(status_of(&reply), Some(400 | 414)),
            "{:?}",
            status_of(&reply)
        );
    }
    server.assert_serving();
    let log = std::fs::read(server.dir.path().join("stderr.log")).unwrap();
    let bad = log
        .iter()
        .find(|b| (**b < 0x20 && **b != b'\n') || **b == 0x7f);
    assert_eq!(bad, None, "a control byte reached the log");
    let longest = log.split(|b| *b == b'\n').map(<[u8]>::len).max().unwrap();
    assert!(longest < 1000, "a log line of {longest} bytes");
}

/// What a receiver does, per the Standard Webhooks specification: decode
/// the key after `whsec_`, HMAC-SHA256 `{id}.{timestamp}.{body}`, and
/// compare with each `v1,` signature of the (space-separated) header.
fn verify(secret: &str, delivery: &Delivery) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let (id, timestamp) = (delivery.id(), delivery.header("webhook-timestamp").unwrap());
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(&delivery.body);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(&signed);
    let expected = mac.finalize().into_bytes();
    delivery
        .header("webhook-signature")
        .unwrap_or_default()
        .split(' ')
        .filter_map(|sig| sig.strip_prefix("v1,"))
        .filter_map(|sig| STANDARD.decode(sig).ok())
        .any(|sig| sig.as_slice() == expected.as_slice())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The body of a write that succeeded.
fn accepted(resp: Resp) -> Value {
    assert!(resp.status < 300, "{}: {}", resp.status, resp.text());
    resp.json()
}

#[test]
fn each_change_is_one_signed_event_to_every_url() {
    let (one, two) = (Receiver::ok(), Receiver::ok());
    let server = TestServer::start_with(&[
        "--webhook",
        &one.url(),
        "--webhook",
        &two.url(),
        "--webhook-secret",
        SECRET,
    ]);
    let key = [("Idempotency-Key", "k-1")];
    let created = accepted(server.send_json(
        "POST",
        "/articles",
        &key,
        &json!({"title": "T", "content": "C"}),
    ));
    accepted(server.send_json(
        "POST",
        "/articles",
        &key,
        &json!({"title": "T", "content": "C"}),
    )); // a replay
    let path = format!("/articles/{}", created["id"]);
    let replaced = accepted(server.send_json(
        "PUT",
        &path,
        &[],
        &json!({"title": "U", "content": "C", "tags": ["a"]}),
    ));
    let patched = accepted(server.send_json("PATCH", &path, &[], &json!({"content": "D"})));
    // Refused writes announce nothing.
    assert_eq!(
        server
            .send_json("PATCH", "/articles/999", &[], &json!({"title": "x"}))
            .status,
        404
    );
    assert_eq!(
        server
            .send_json("PUT", &path, &[], &json!({"title": ""}))
            .status,
        422
    );
    assert_eq!(server.request("DELETE", &path, &[], None).status, 204);

    let mut events = one.wait_for(4, WAIT);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(one.received().len(), 4, "one delivery per change, no more");
    let mut ids: Vec<String> = events.iter().map(|d| d.id().to_owned()).collect();
    let mut other: Vec<String> = two
        .wait_for(4, WAIT)
        .iter()
        .map(|d| d.id().to_owned())
        .collect();
    ids.sort();
    other.sort();
    assert_eq!(ids, other, "the same webhook-id for every URL of an event");

    // By timestamp, as a receiver orders them; a deletion may share its
    // millisecond with the change before it.
    events.sort_by_key(|d| {
        let body = d.json();
        let rank = ["article.created", "article.updated", "article.deleted"]
            .iter()
            .position(|kind| body["type"] == *kind);
        (body["timestamp"].as_str().unwrap().to_owned(), rank)
    });
    let expected = [
        ("article.created", &created, "created_at"),
        ("article.updated", &replaced, "updated_at"),
        ("article.updated", &patched, "updated_at"),
        ("article.deleted", &patched, ""),
    ];
    for (delivery, (kind, data, stamp)) in events.iter().zip(expected) {
        assert!(
            delivery.request_line.starts_with("POST /hook HTTP/1.1"),
            "{}",
            delivery.request_line
        );
        assert_eq!(delivery.header("Content-Type"), Some("application/json"));
        let id = delivery.id();
        assert!(
            id.starts_with("msg_") && !id.contains('.') && !id.contains(' '),
            "{id}"
        );
        let sent: i64 = delivery
            .header("webhook-timestamp")
            .unwrap()
            .parse()
            .unwrap();
        assert!((sent - unix_now()).abs() < 60, "{sent}");
        assert!(verify(SECRET, delivery), "signature of {id}");
        assert!(!verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", delivery));
        let body = delivery.json();
        assert_eq!(body["type"], kind);
        assert_eq!(&body["data"], data);
        assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
        if !stamp.is_empty() {
            assert_eq!(body["timestamp"], data[stamp]);
        }
    }
    let log = server.flushed_log();
    assert!(
        !log.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        "secret logged"
    );
    assert!(!server.get("/metrics").text().contains("MfKQ9r8G"));
    server.await_metric("webhook_deliveries_total{outcome=\"success\"}", 8.0);
    assert_eq!(server.metric("webhook_deliveries_pending"), Some(0.0));
}

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
