//! Webhooks through the real binary, to real receivers on 127.0.0.1: the
//! payload of each event, its Standard Webhooks signature checked the way a
//! receiver must, delivery latency, a slow receiver, and the flags.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::receiver::{Answer, Delivery, Receiver};
use crate::support::{run, Resp, TestServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(10);

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

#[test]
fn bad_webhook_flags_exit_2_without_echoing_the_secret() {
    let short = "whsec_c2hvcnRzZWNyZXQ="; // 11 bytes
    for (args, env, hidden, named) in [
        (
            vec!["--webhook-secret", short],
            None,
            "c2hvcnRzZWNyZXQ",
            "--webhook-secret",
        ),
        (
            vec![],
            Some("sk_live_0123456789abcdef"),
            "0123456789abcdef",
            "ARTICLES_WEBHOOK_SECRET",
        ),
        (
            vec!["--webhook-secret=MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            None,
            "MfKQ9r8G",
            "whsec_",
        ),
        (
            vec!["--webhook", "https://example.com/hook"],
            None,
            "\n\n",
            "TLS",
        ),
        (
            vec!["--webhook", "http://user:pw@example.com/"],
            None,
            "pw@",
            "--webhook",
        ),
    ] {
        let mut argv = vec!["--addr", "127.0.0.1:0", "--db", ":memory:"];
        argv.extend(&args);
        let env: Vec<(&str, &str)> = env
            .map(|value| ("ARTICLES_WEBHOOK_SECRET", value))
            .into_iter()
            .collect();
        let output = run(&argv, &env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(named), "{stderr}");
        assert!(!stderr.contains(hidden), "{stderr}");
        assert!(output.stdout.is_empty());
    }
    let help = run(&["--help"], &[]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--webhook URL") && help.contains("--webhook-secret SECRET"));
}
