//! Running as a sidecar: probes, metrics, the OpenAPI document, CORS and
//! graceful shutdown, through the real binary.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{bearer, TestServer};
use serde_json::{json, Value};

#[test]
fn health_and_readiness() {
    let server = TestServer::start();
    let health = server.get("/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"status": "ok"}));
    let ready = server.get("/readyz");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json(), json!({"status": "ready"}));
    let head = server.request("HEAD", "/healthz", &[], None);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[test]
fn metrics_count_by_route_pattern_never_the_raw_path() {
    let server = TestServer::start();
    let created = server.create("m", "c", &[]);
    server.get(&format!("/articles/{}", created["id"]));
    server.get("/articles/987654");
    server.get("/some/secret/path");
    let resp = server.get("/metrics");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = resp.text();
    let pools = match crate::support::postgres() {
        false => [
            "articles_db_pool_connections{pool=\"read\",state=\"idle\"}",
            "articles_db_pool_connections{pool=\"write\",state=\"in_use\"} 0",
        ],
        // One pool serves reads and writes.
        true => [
            "articles_db_pool_connections{pool=\"postgres\",state=\"idle\"}",
            "articles_db_pool_connections{pool=\"postgres\",state=\"in_use\"} 0",
        ],
    };
    for expected in pools.into_iter().chain([
        "articles_http_requests_total{method=\"POST\",route=\"/articles\",status=\"201\"} 1",
        "articles_http_requests_total{method=\"GET\",route=\"/articles/{id}\",status=\"200\"} 1",
        "articles_http_requests_total{method=\"GET\",route=\"/articles/{id}\",status=\"404\"} 1",
        "articles_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
        "articles_http_request_duration_seconds_count{route=\"/articles/{id}\"} 2",
        "articles_http_requests_in_flight 1",
        "articles_db_busy_errors_total 0",
        "articles_build_info{version=\"",
    ]) {
        assert!(text.contains(expected), "missing {expected}\n{text}");
    }
    assert!(
        !text.contains("987654") && !text.contains("secret"),
        "raw paths leaked into labels"
    );
}

/// Whether `real` has exactly the keys of `example`, each of the same JSON
/// type, recursively (arrays compare their first elements).
fn same_shape(example: &Value, real: &Value) -> bool {
    match (example, real) {
        (Value::Object(e), Value::Object(r)) => {
            e.len() == r.len()
                && e.iter()
                    .all(|(k, v)| r.get(k).is_some_and(|rv| same_shape(v, rv)))
        }
        (Value::Array(e), Value::Array(r)) => match (e.first(), r.first()) {
            (Some(e), Some(r)) => same_shape(e, r),
            _ => true,
        },
        (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null) => true,
        _ => false,
    }
}

#[test]
fn openapi_examples_match_real_responses() {
    let server = TestServer::start();
    let doc = server.get("/openapi.json").json();
    let example = |schema: &str| doc["components"]["schemas"][schema]["examples"][0].clone();

    let auth = bearer(&server.add_user("alice"));
    let created = server.send_json(
        "POST",
        "/articles",
        &[("Authorization", &auth)],
        &example("ArticleInput"),
    );
    assert_eq!(created.status, 201);
    let real = [
        ("Article", created.json()),
        (
            "User",
            server
                .request("GET", "/me", &[("Authorization", &auth)], None)
                .json(),
        ),
        ("Problem", server.get("/articles/999").json()),
        ("ValidationProblem", server.get("/articles?page=0").json()),
        ("Health", server.get("/healthz").json()),
        ("Ready", server.get("/readyz").json()),
    ];
    for (schema, real) in real {
        assert!(
            same_shape(&example(schema), &real),
            "{schema}: example {} vs real {real}",
            example(schema)
        );
    }
    let patched = server.send_json(
        "PATCH",
        &format!("/articles/{}", created.json()["id"]),
        &[("Authorization", &auth)],
        &example("ArticlePatch"),
    );
    assert_eq!(patched.status, 200);
}

#[test]
fn no_cors_headers_without_the_flag() {
    let server = TestServer::start();
    let resp = server.request(
        "GET",
        "/articles",
        &[("Origin", "https://app.example")],
        None,
    );
    assert!(resp
        .headers
        .iter()
        .all(|(name, _)| !name.to_ascii_lowercase().starts_with("access-control")));
    assert_eq!(resp.header("Vary"), None);
}

#[test]
fn cors_for_configured_origins() {
    let server = TestServer::start_with(&[
        "--cors-origin",
        "https://app.example",
        "--cors-origin",
        "http://localhost:3000",
    ]);
    let resp = server.request(
        "GET",
        "/articles",
        &[("Origin", "https://app.example")],
        None,
    );
    assert_eq!(
        resp.header("Access-Control-Allow-Origin"),
        Some("https://app.example")
    );
    assert_eq!(resp.header("Vary"), Some("Origin"));
    let exposed = resp.header("Access-Control-Expose-Headers").unwrap();
    for name in [
        "X-Total-Count",
        "Link",
        "Location",
        "X-Request-Id",
        "ETag",
        "Idempotency-Replayed",
        "Retry-After",
        "WWW-Authenticate",
    ] {
        assert!(exposed.contains(name), "{name}");
    }

    let other = server.request(
        "GET",
        "/articles",
        &[("Origin", "https://evil.example")],
        None,
    );
    assert_eq!(other.header("Access-Control-Allow-Origin"), None);

    let preflight = server.request(
        "OPTIONS",
        "/articles/1",
        &[
            ("Origin", "http://localhost:3000"),
            ("Access-Control-Request-Method", "PATCH"),
        ],
        None,
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("Access-Control-Allow-Origin"),
        Some("http://localhost:3000")
    );
    assert!(preflight
        .header("Access-Control-Allow-Methods")
        .unwrap()
        .contains("PATCH"));
    let allowed = preflight.header("Access-Control-Allow-Headers").unwrap();
    for name in [
        "Authorization",
        "Content-Type",
        "X-Request-Id",
        "If-Match",
        "If-None-Match",
        "Idempotency-Key",
    ] {
        assert!(allowed.contains(name), "{name}");
    }
    assert!(preflight.header("Access-Control-Max-Age").is_some());

    let error = server.request(
        "GET",
        "/articles/999",
        &[("Origin", "https://app.example")],
        None,
    );
    assert_eq!(
        error.header("Access-Control-Allow-Origin"),
        Some("https://app.example"),
        "errors too"
    );
}

#[test]
fn cors_any_origin_from_the_environment() {
    let dir = crate::support::TempDir::new();
    let db = crate::support::database(&dir);
    let server = TestServer::launch(
        dir,
        &["--db", &db],
        &[("ARTICLES_CORS_ORIGIN", "https://a.example,*")],
    );
    let resp = server.request(
        "GET",
        "/healthz",
        &[("Origin", "https://anything.example")],
        None,
    );
    assert_eq!(resp.header("Access-Control-Allow-Origin"), Some("*"));
}

#[test]
fn sigterm_finishes_requests_in_flight_then_exits_zero() {
    let mut server = TestServer::start_with(&["--workers", "1"]);
    let (mut in_flight, rest) = crate::support::half_sent_post(&server);
    std::thread::sleep(Duration::from_millis(200));
    // Queued behind the busy worker before the signal (a write: only
    // workers take those): must still be served, and see the shutdown.
    let mut queued = crate::support::sent(
        &server,
        b"DELETE /articles/999999 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    std::thread::sleep(Duration::from_millis(200));

    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "new connections are refused at once"
    );
    in_flight.write_all(&rest).unwrap();

    let answer = crate::support::read_all(&mut in_flight);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let article: Value = serde_json::from_str(body).expect("a complete body");
    let deleted = crate::support::read_all(&mut queued);
    assert!(deleted.starts_with("HTTP/1.1 404"), "{deleted}");
    assert!(deleted.contains("\r\nConnection: close\r\n"), "{deleted}");

    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0));
    if !crate::support::postgres() {
        assert!(
            !server.dir.path().join("test.db-wal").exists(),
            "WAL checkpointed and removed"
        );
    }
    let log = server.log();
    assert!(log.contains("SIGTERM received"), "{log}");

    let again = server.restart_with("TERM", &[]);
    assert_eq!(
        again.get(&format!("/articles/{}", article["id"])).json(),
        article,
        "acknowledged write kept"
    );
}

#[test]
fn sigterm_lets_a_read_still_being_sent_finish() {
    let mut server = TestServer::start_with(&["--max-body", "2000000"]);
    let content = "x".repeat(100_000);
    for n in 0..100 {
        let resp = server.post(&json!({"title": format!("big {n}"), "content": content}));
        assert_eq!(resp.status, 201);
    }
    // About 10 MB, more than the sockets hold: the server is still writing
    // it when the signal comes, and the client reads it only afterwards.
    let mut reader = crate::support::sent(
        &server,
        b"GET /articles?per_page=100 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    std::thread::sleep(Duration::from_millis(300));
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));

    let answer = crate::support::read_all(&mut reader);
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let page: Value = serde_json::from_str(body).expect("the whole body");
    assert_eq!(page.as_array().map(Vec::len), Some(100));
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sigint_stops_an_idle_server_at_once() {
    let mut server = TestServer::start();
    let _idle = server.connect();
    let started = Instant::now();
    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(5)).expect("exits");
    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_grace_period_is_bounded() {
    let mut server = TestServer::start_with(&["--workers", "1", "--shutdown-timeout", "1"]);
    let (_stalled, _rest) = crate::support::half_sent_post(&server);
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(server
        .log()
        .contains("still running after the grace period"));
}
