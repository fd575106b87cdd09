//! The HTTP layer's own answers (the contract's "Every response"): heads
//! refused before they reach a handler, each as problem+json with a request
//! id and `Connection: close`, counted in `/metrics`; what is legal and must
//! reach the application; framing that must not be read two ways; the
//! connection cap; heads that arrive slowly or in pieces. The costs after a
//! burst are measured on a process of its own (`process::resources`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::in_process::TestServer;
use crate::support::{status_of, Conn};

const WAIT: Duration = Duration::from_secs(3);

/// The response `bytes` hold: status, headers (names lower-cased), body.
fn parse(bytes: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head");
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    (status, headers, bytes[split + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Sends `request` on a connection of its own; checks the answer is
/// `status` as problem+json with a request id and `Connection: close`, and
/// that the server then closed the connection. Returns the problem.
fn refused(server: &TestServer, request: &[u8], status: u16) -> Value {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(request).unwrap();
    let started = Instant::now();
    let mut reply = Vec::new();
    // read_to_end returns only once the server closes the connection.
    stream
        .read_to_end(&mut reply)
        .expect("closed by the server");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let (got, headers, body) = parse(&reply);
    let shown = String::from_utf8_lossy(&request[..request.len().min(80)]);
    assert_eq!(got, status, "{shown}");
    assert_eq!(header(&headers, "connection"), Some("close"), "{shown}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/problem+json; charset=utf-8")
    );
    assert_eq!(
        header(&headers, "content-length"),
        Some(body.len().to_string().as_str())
    );
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["status"], status);
    let id = header(&headers, "x-request-id").expect("a request id");
    assert_eq!(problem["request_id"], id);
    problem
}

fn get(headers: &str) -> Vec<u8> {
    format!("GET /articles HTTP/1.1\r\nHost: t\r\n{headers}\r\n").into_bytes()
}

#[test]
fn each_malformed_head_gets_the_status_the_contract_names() {
    let server = TestServer::start();
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(8 * 1024));
    let big_head = get(&format!("X-Big: {}\r\n", "b".repeat(32 * 1024)));
    let many = get(&"X-N: 1\r\n".repeat(100));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unparsable request line", b"GET /articles\r\n\r\n".to_vec(), 400),
        ("unparsable header line", get("Host-ish\r\n"), 400),
        ("obsolete line folding", get("X-A: a\r\n b\r\n"), 400),
        ("whitespace before the colon", get("X-A : a\r\n"), 400),
        (
            "conflicting lengths on two lines",
            b"POST /articles HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}".to_vec(),
            400,
        ),
        (
            "conflicting lengths in one list",
            b"POST /articles HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2, 40\r\n\r\n{}".to_vec(),
            400,
        ),
        ("request line over 8 KiB", long_line.into_bytes(), 414),
        ("head over 32 KiB", big_head, 431),
        ("101 header lines", many, 431),
        ("HTTP/2.0", b"GET /articles HTTP/2.0\r\nHost: t\r\n\r\n".to_vec(), 505),
        ("HTTP/3.0", b"GET /articles HTTP/3.0\r\nHost: t\r\n\r\n".to_vec(), 505),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), 505),
    ];
    for (name, request, status) in &cases {
        let problem = refused(&server, request, *status);
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}"
        );
    }
    // 8 KiB exactly, and 100 lines exactly, are within the limits.
    let longest = format!("GET /articles?q={} HTTP/1.1", "a".repeat(8 * 1024 - 25));
    assert_eq!(longest.len(), 8 * 1024);
    let reply = server.raw(
        format!("{longest}\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        WAIT,
    );
    assert_eq!(status_of(&reply), Some(200));
    let reply = server.raw(
        &get(&format!("{}Connection: close\r\n", "X-N: 1\r\n".repeat(98))),
        WAIT,
    );
    assert_eq!(status_of(&reply), Some(200));
    server.assert_serving();
}

#[test]
fn refusals_are_counted_in_the_metrics() {
    let server = TestServer::start();
    for _ in 0..3 {
        refused(&server, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505);
    }
    refused(&server, &get("X : 1\r\n"), 400);
    let series = |status: u16| {
        format!("articles_http_requests_total{{method=\"other\",route=\"unmatched\",status=\"{status}\"}}")
    };
    assert_eq!(server.metric(&series(505)), Some(3.0));
    assert_eq!(server.metric(&series(400)), Some(1.0));
}

#[test]
fn every_legal_header_reaches_the_application() {
    let server = TestServer::start();
    // Token characters in names, a tab inside a value, obs-text bytes.
    let mut legal = get("X!#$%&'*+.^`|~: 1\r\nX-Tab: a\tb\r\nConnection: close\r\n");
    let reply = server.raw(&legal, WAIT);
    assert_eq!(
        status_of(&reply),
        Some(200),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    legal = b"GET /articles HTTP/1.1\r\nHost: t\r\nX-Latin: caf\xe9\r\nX-Utf8: caf\xc3\xa9\r\nConnection: close\r\n\r\n".to_vec();
    assert_eq!(status_of(&server.raw(&legal, WAIT)), Some(200));
    // The application may still refuse a value, with its own problem+json:
    // an Idempotency-Key of obs-text is not visible ASCII.
    let body = br#"{"title":"t","content":"c"}"#;
    let mut post = format!(
        "POST /articles HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nIdempotency-Key: k",
        body.len()
    )
    .into_bytes();
    post.push(0xe9);
    post.extend_from_slice(b"y\r\nConnection: close\r\n\r\n");
    post.extend_from_slice(body);
    let (status, headers, body) = parse(&server.raw(&post, WAIT));
    assert_eq!(status, 400);
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("Idempotency-Key"));
    assert!(header(&headers, "x-request-id").is_some());
    // Empty lines before a request line are skipped (RFC 9112, 2.2).
    let reply = server.raw(
        b"\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        WAIT,
    );
    assert_eq!(status_of(&reply), Some(200));
}

#[test]
fn if_match_on_several_lines_is_one_list() {
    let server = TestServer::start();
    let created = server.create("one", "c", &[]);
    let id = created["id"].as_i64().unwrap();
    let tag = server
        .get(&format!("/articles/{id}"))
        .header("ETag")
        .unwrap()
        .to_owned();
    let patch = |lines: &str| {
        let body = br#"{"title":"two"}"#;
        let mut request = format!(
            "PATCH /articles/{id} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{lines}Connection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        status_of(&server.raw(&request, WAIT))
    };
    // The current tag only on the second line: it still matches.
    assert_eq!(
        patch(&format!("If-Match: \"nope\"\r\nIf-Match: {tag}\r\n")),
        Some(200)
    );
    // Now the old tag is stale on every line.
    assert_eq!(
        patch(&format!("If-Match: \"nope\"\r\nIf-Match: {tag}\r\n")),
        Some(412)
    );
    // If-None-Match on several lines: a match on any line is a 304.
    let tag = server
        .get(&format!("/articles/{id}"))
        .header("ETag")
        .unwrap()
        .to_owned();
    let request = format!(
        "GET /articles/{id} HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"a\"\r\nIf-None-Match: \"b\", {tag}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(status_of(&server.raw(request.as_bytes(), WAIT)), Some(304));
}

#[test]
fn pipelined_requests_in_one_write_are_each_framed_once() {
    let server = TestServer::start();
    let body = br#"{"title":"fixed","content":"by length"}"#;
    let mut batch = format!(
        "POST /articles HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Request-Id: r0\r\n\r\n",
        body.len()
    )
    .into_bytes();
    batch.extend_from_slice(body);
    let chunked = br#"{"title":"chunked","content":"in pieces"}"#;
    batch.extend_from_slice(
        b"POST /articles HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nX-Request-Id: r1\r\n\r\n",
    );
    let (first, second) = chunked.split_at(10);
    for piece in [first, second] {
        batch.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        batch.extend_from_slice(piece);
        batch.extend_from_slice(b"\r\n");
    }
    batch.extend_from_slice(b"0\r\n\r\n");
    batch.extend_from_slice(
        b"GET /articles?sort=created_at HTTP/1.1\r\nHost: t\r\nX-Request-Id: r2\r\n\r\n",
    );
    batch.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-Id: r3\r\n\r\n");
    let mut conn = Conn::open(server.addr);
    conn.stream().write_all(&batch).unwrap();
    let answers: Vec<_> = (0..4).map(|_| conn.read_response(false)).collect();
    let ids: Vec<_> = answers
        .iter()
        .map(|r| r.header("X-Request-Id").unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["r0", "r1", "r2", "r3"]);
    assert_eq!(
        answers.iter().map(|r| r.status).collect::<Vec<_>>(),
        [201, 201, 200, 200]
    );
    let titles: Vec<Value> = answers[2]
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].clone())
        .collect();
    assert_eq!(titles, [json!("fixed"), json!("chunked")]);
    // The connection goes on after all four.
    assert_eq!(conn.request("GET", "/healthz", &[], None).status, 200);
}

#[test]
fn a_head_sent_one_byte_at_a_time_within_the_limit_is_served() {
    let server = TestServer::start();
    let request = b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // About 4 s in all, well within the 10 s a head may take.
    for byte in request {
        stream.write_all(&[*byte]).unwrap();
        thread::sleep(Duration::from_millis(80));
    }
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    assert_eq!(status_of(&reply), Some(200));
}

#[test]
fn a_head_not_done_10_s_after_its_first_byte_is_a_408() {
    // The idle timeout is longer than the head's limit, and each byte comes
    // sooner than either: only the head's own clock can end it.
    let server = TestServer::start_with(&["--idle-timeout", "60"]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let started = Instant::now();
    let mut reply = Vec::new();
    for byte in b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: "
        .iter()
        .chain(b"a".repeat(100).iter())
    {
        if stream.write_all(&[*byte]).is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if !reply.is_empty() || started.elapsed() > Duration::from_secs(15) {
            break;
        }
        thread::sleep(Duration::from_millis(150));
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(12),
        "{took:?}"
    );
    let (status, headers, _) = parse(&reply);
    assert_eq!(status, 408);
    assert_eq!(header(&headers, "connection"), Some("close"));
}

#[test]
fn one_connection_over_the_cap_gets_503_and_the_others_are_served() {
    let server = TestServer::start_with(&["--max-connections", "3"]);
    let mut held: Vec<Conn> = (0..3).map(|_| Conn::open(server.addr)).collect();
    for conn in &mut held {
        assert_eq!(conn.request("GET", "/healthz", &[], None).status, 200);
    }
    let mut extra = TcpStream::connect(server.addr).unwrap();
    extra.set_read_timeout(Some(WAIT)).unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    let started = Instant::now();
    let mut reply = Vec::new();
    extra.read_to_end(&mut reply).expect("closed by the server");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let (status, headers, body) = parse(&reply);
    assert_eq!(status, 503);
    assert_eq!(header(&headers, "retry-after"), Some("1"));
    assert_eq!(header(&headers, "connection"), Some("close"));
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["status"], 503);
    // Every connection already open goes on being served.
    for conn in &mut held {
        assert_eq!(conn.request("GET", "/healthz", &[], None).status, 200);
    }
    // Once one closes, a new connection is served again.
    drop(held.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = server.raw(
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            WAIT,
        );
        if status_of(&reply) == Some(200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused: {}",
            String::from_utf8_lossy(&reply)
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn max_header_bytes_sets_the_431_limit() {
    let server = TestServer::start_with(&["--max-header-bytes", "16384"]);
    let within = get(&format!(
        "X-Big: {}\r\nConnection: close\r\n",
        "b".repeat(16_000)
    ));
    assert_eq!(status_of(&server.raw(&within, WAIT)), Some(200));
    refused(
        &server,
        &get(&format!("X-Big: {}\r\n", "b".repeat(16_400))),
        431,
    );
}

#[test]
fn a_connection_kept_from_before_the_server_stopped_is_closed_not_left_waiting() {
    // A server stopped inside a process that goes on (a library user, this
    // suite): a client that sends its next request on a kept-alive
    // connection must see the connection end, and retry elsewhere, not
    // wait for an answer that nothing would ever send.
    let server = TestServer::start();
    let mut read = server.connect();
    assert_eq!(read.request("GET", "/healthz", &[], None).status, 200);
    let mut write = server.connect();
    assert_eq!(
        write.create(&json!({"title": "t", "content": "c"})).status,
        201
    );
    drop(server);
    for (conn, request) in [
        (&mut read, &b"GET /articles HTTP/1.1\r\nHost: t\r\n\r\n"[..]),
        (
            &mut write,
            &b"DELETE /articles/1 HTTP/1.1\r\nHost: t\r\n\r\n"[..],
        ),
    ] {
        let stream = conn.stream();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = stream.write_all(request);
        let mut buf = [0u8; 256];
        match stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("an answer from a stopped server: {:?}", &buf[..n]),
            Err(err) => assert!(
                !matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "left waiting: {err}"
            ),
        }
    }
}
