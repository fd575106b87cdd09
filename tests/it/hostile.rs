//! Hostile input: malformed HTTP, oversized and stalled bodies, query syntax
//! attacks. Each gets a 4xx or a closed connection, never a 5xx, and the
//! server keeps serving everyone else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::in_process::TestServer;
use crate::support::status_of;

const SHORT: Duration = Duration::from_secs(3);

#[test]
fn huge_content_length_with_short_body_is_413_at_once() {
    let server = TestServer::start_with(&["--workers", "1"]);
    for length in ["2000000", "999999999999999", "18446744073709551615"] {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream.set_read_timeout(Some(SHORT)).unwrap();
        let head = format!(
            "POST /articles HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{\"ti"
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).unwrap();
        assert_eq!(
            status_of(&buf[..n]),
            Some(413),
            "{length}: {}",
            String::from_utf8_lossy(&buf[..n])
        );
        // Leave the connection open and stalled: the only worker must still
        // be free for others.
        server.assert_serving();
        drop(stream);
    }
}

#[test]
fn an_unparsable_content_length_is_rejected() {
    let server = TestServer::start();
    for length in ["-1", "abc", "1e3", "99999999999999999999999"] {
        let head = format!(
            "POST /articles HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{}}"
        );
        let reply = server.raw(head.as_bytes(), SHORT);
        let status = status_of(&reply);
        assert!(
            matches!(status, Some(400..=499)) || reply.is_empty(),
            "{length}: {status:?}"
        );
    }
    server.assert_serving();
}

#[test]
fn body_over_the_configured_limit_is_413_and_nothing_is_written() {
    let server = TestServer::start_with(&["--max-body", "100"]);
    let big = json!({"title": "t", "content": "x".repeat(200)});
    let body = server.post(&big).problem(413);
    assert!(body["detail"].as_str().unwrap().contains("100 bytes"));
    let small = json!({"title": "t", "content": "x"});
    assert_eq!(server.post(&small).status, 201);
    assert_eq!(server.get("/articles").header("X-Total-Count"), Some("1"));
}

#[test]
fn chunked_body_over_the_limit_is_413() {
    let server = TestServer::start_with(&["--max-body", "1000"]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(SHORT)).unwrap();
    stream
        .write_all(b"POST /articles HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = format!("400\r\n{}\r\n", "a".repeat(0x400));
    for _ in 0..4 {
        if stream.write_all(chunk.as_bytes()).is_err() {
            break;
        }
    }
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).unwrap();
    assert_eq!(status_of(&buf[..n]), Some(413));
    server.assert_serving();
}

#[test]
fn a_small_chunked_body_is_accepted() {
    let server = TestServer::start();
    let body = br#"{"title":"chunked","content":"works"}"#;
    let mut request = b"POST /articles HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    request.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(status_of(&server.raw(&request, SHORT)), Some(201));
}

#[test]
fn malformed_chunked_encoding_is_400() {
    let server = TestServer::start();
    let request = b"POST /articles HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n";
    let status = status_of(&server.raw(request, SHORT));
    assert!(matches!(status, Some(400..=499)), "{status:?}");
    server.assert_serving();
}

#[test]
fn expect_continue_with_an_oversize_body_is_413_without_100() {
    let server = TestServer::start_with(&["--max-body", "1000"]);
    let request = b"POST /articles HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n";
    let reply = server.raw(request, Duration::from_millis(1500));
    assert_eq!(
        status_of(&reply),
        Some(413),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    server.assert_serving();
}

#[test]
fn a_stalled_body_times_out_with_408() {
    let server = TestServer::start_with(&["--idle-timeout", "1", "--workers", "1"]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let head = format!(
        "POST /articles HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{}",
        "x".repeat(2000)
    );
    stream.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).unwrap();
    assert_eq!(
        status_of(&buf[..n]),
        Some(408),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    server.assert_serving();
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let server = TestServer::start_with(&["--idle-timeout", "1"]);
    let mut conn = server.connect();
    assert_eq!(conn.request("GET", "/articles", &[], None).status, 200);
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = conn.stream().read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[test]
fn malformed_requests_get_4xx_or_a_close_never_5xx() {
    let server = TestServer::start();
    let long_url = format!(
        "GET /articles?q={} HTTP/1.1\r\nHost: t\r\n\r\n",
        "a".repeat(100_000)
    );
    let big_header = format!(
        "GET /articles HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(1_000_000)
    );
    let many_headers = format!(
        "GET /articles HTTP/1.1\r\nHost: t\r\n{}\r\n",
        (0..5000)
            .map(|n| format!("X-H{n}: v\r\n"))
            .collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\x00\x01\x02garbage\r\n\r\n".to_vec()),
        ("no version", b"GET /articles\r\n\r\n".to_vec()),
        ("bad version", b"GET /articles HTTP/9.9\r\n\r\n".to_vec()),
        ("http2 version", b"GET /articles HTTP/2.0\r\nHost: t\r\n\r\n".to_vec()),
        ("http2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()),
        ("header without colon", b"GET /articles HTTP/1.1\r\nHost t\r\n\r\n".to_vec()),
        ("nul in path", b"GET /articles/\x001 HTTP/1.1\r\nHost: t\r\n\r\n".to_vec()),
        ("nul in header", b"GET /articles HTTP/1.1\r\nHost: t\x00x\r\n\r\n".to_vec()),
        ("bare LF", b"GET /articles HTTP/1.1\nHost: t\n\n".to_vec()),
        ("lowercase method", b"get /articles HTTP/1.1\r\nHost: t\r\n\r\n".to_vec()),
        ("absolute form", b"GET http://x/articles HTTP/1.1\r\nHost: t\r\n\r\n".to_vec()),
        ("bad percent", b"GET /articles?q=%zz%&page=%31 HTTP/1.1\r\nHost: t\r\n\r\n".to_vec()),
        ("dot segments", b"GET /articles/../articles/1 HTTP/1.1\r\nHost: t\r\n\r\n".to_vec()),
        ("encoded id", b"GET /articles/%31 HTTP/1.1\r\nHost: t\r\n\r\n".to_vec()),
        ("utf8 path", "GET /articles/ü HTTP/1.1\r\nHost: t\r\n\r\n".as_bytes().to_vec()),
        ("both lengths", b"POST /articles HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec()),
        ("unknown transfer coding", b"POST /articles HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: bogus\r\n\r\n".to_vec()),
        ("conflicting lengths", b"POST /articles HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}".to_vec()),
        ("long url", long_url.into_bytes()),
        ("1 MB header", big_header.into_bytes()),
        ("5000 headers", many_headers.into_bytes()),
    ];
    for (name, request) in cases {
        let reply = server.raw(&request, SHORT);
        let status = status_of(&reply);
        // Another major version is a 505 (or a close), as the contract says.
        let other_version = name.contains("version") || name.contains("preface");
        assert!(
            !matches!(status, Some(500..=599)) || (other_version && status == Some(505)),
            "{name}: {}",
            String::from_utf8_lossy(&reply[..reply.len().min(300)])
        );
        server.assert_serving();
    }
}

#[test]
fn search_syntax_is_plain_text() {
    let server = TestServer::start();
    server.create("C++ and \"quotes\"", "NEAR OR AND NOT", &[]);
    for q in [
        "%22",
        "*",
        "NEAR(a+b)",
        "a+OR+b",
        "-x",
        "^start",
        "title:x",
        "(",
        ")",
        "%22unterminated",
        "AND",
        "NOT+c",
        "{a}",
        "c%2B%2B",
    ] {
        let resp = server.get(&format!("/articles?q={q}"));
        assert_eq!(resp.status, 200, "q={q}: {}", resp.text());
    }
    let found = server.get("/articles?q=NEAR+OR");
    assert_eq!(
        found.json().as_array().unwrap().len(),
        1,
        "operators are words"
    );
    let found = server.get("/articles?q=%22quotes%22");
    assert_eq!(found.json().as_array().unwrap().len(), 1);
}

#[test]
fn sql_in_every_parameter_is_data() {
    let server = TestServer::start();
    server.create("keep me", "safe", &["t"]);
    let attacks = [
        "'",
        "' OR 1=1 --",
        "x'); DROP TABLE articles; --",
        "1; DELETE FROM articles",
        "\" OR \"\"=\"",
    ];
    for attack in attacks {
        let encoded: String = attack.bytes().map(|b| format!("%{b:02X}")).collect();
        for param in ["tag", "author", "q", "sort", "page", "per_page"] {
            let resp = server.get(&format!("/articles?{param}={encoded}"));
            assert!(
                matches!(resp.status, 200 | 422),
                "{param}={attack}: {}",
                resp.status
            );
            if resp.status == 200 {
                assert!(resp.json().as_array().unwrap().len() <= 1);
            }
        }
        let resp = server.post(&json!({"title": attack, "content": attack, "tags": [attack]}));
        assert_eq!(resp.status, 201);
        assert_eq!(resp.json()["title"], attack);
    }
    assert_eq!(
        server.get("/articles?tag=t").header("X-Total-Count"),
        Some("1")
    );
}

#[test]
fn hostile_json_is_400_or_422() {
    let server = TestServer::start();
    let deep = format!(
        "{{\"title\":{}1{}}}",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let cases: Vec<(&[u8], u16)> = vec![
        (deep.as_bytes(), 400),
        (br#"{"title":"a\ud800b","content":"c"}"#, 400),
        (br#"{"title":1e999999,"content":"c"}"#, 400),
        (
            br#"{"title":123456789012345678901234567890,"content":"c"}"#,
            422,
        ),
        (br#"{"title":"t\u0000","content":"c"}"#, 422),
        (br#"{"title":"t","content":"nul\u0000inside"}"#, 422),
        (br#"{"title":"a","title":"b","content":"c"}"#, 201),
        (b"{\"title\":\"t\",\"content\":\"c\"} trailing", 400),
        (b"\xef\xbb\xbf{\"title\":\"t\",\"content\":\"c\"}", 400),
    ];
    for (body, expected) in cases {
        let resp = server.request(
            "POST",
            "/articles",
            &[("Content-Type", "application/json")],
            Some(body),
        );
        assert_eq!(
            resp.status,
            expected,
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        if expected >= 400 {
            resp.problem(expected);
        }
    }
    server.assert_serving();
}

#[test]
fn a_client_that_never_reads_frees_its_worker_after_the_idle_timeout() {
    let server = TestServer::start_with(&[
        "--workers",
        "1",
        "--idle-timeout",
        "1",
        "--max-body",
        "2000000",
    ]);
    let content = "x".repeat(1_000_000);
    for n in 0..12 {
        server.create(&format!("big {n}"), &content, &[]);
    }
    // About 12 MB of response each, more than loopback socket buffers hold.
    // The first is answered on its connection thread (the one read slot of
    // one worker), the second by the only worker; the new client's request
    // queues for that worker, which only the send timeout frees.
    let readers: Vec<TcpStream> = (0..2)
        .map(|_| {
            let reader = server.sent(b"GET /articles?per_page=100 HTTP/1.1\r\nHost: t\r\n\r\n");
            std::thread::sleep(Duration::from_millis(300));
            reader
        })
        .collect();
    let started = Instant::now();
    let mut conn = server.connect();
    assert_eq!(conn.request("GET", "/healthz", &[], None).status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    drop(readers);
}
