//! Hostile JSON and parameters, beyond `hostile`: every write endpoint
//! answers malformed bodies with 400 or 422, query syntax of SQL and FTS5 is
//! data in every parameter, and no request byte can add a response header.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::in_process::TestServer;

/// Hostile bodies and the status each must get from POST /articles.
fn hostile_bodies() -> Vec<(String, Vec<u8>, u16)> {
    let text = |s: &str| s.as_bytes().to_vec();
    let nested = |depth: usize| {
        let tags = format!("{}\"t\"{}", "[".repeat(depth), "]".repeat(depth));
        text(&format!(
            "{{\"title\":\"t\",\"content\":\"c\",\"tags\":{tags}}}"
        ))
    };
    let many_keys: String = (0..20_000).map(|n| format!("\"k{n}\":{n},")).collect();
    let emoji = |n: usize| "\u{1F600}".repeat(n);
    let utf16: Vec<u8> = "{\"title\":\"t\",\"content\":\"c\"}"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    vec![
        (
            "invalid UTF-8 in a string".into(),
            b"{\"title\":\"\xff\",\"content\":\"c\"}".to_vec(),
            400,
        ),
        (
            "overlong UTF-8".into(),
            b"{\"title\":\"\xc0\xaf\",\"content\":\"c\"}".to_vec(),
            400,
        ),
        ("UTF-16 body".into(), utf16, 400),
        (
            "lone low surrogate".into(),
            text(r#"{"title":"\udc00","content":"c"}"#),
            400,
        ),
        (
            "escaped surrogate pair".into(),
            text(r#"{"title":"\ud83d\ude00","content":"c"}"#),
            201,
        ),
        (
            "number past f64".into(),
            text(r#"{"title":"t","content":"c","x":1e400}"#),
            400,
        ),
        (
            "negative number past f64".into(),
            text(r#"{"title":"t","content":"c","x":-1e400}"#),
            400,
        ),
        (
            "underflowing number as title".into(),
            text(r#"{"title":1e-400,"content":"c"}"#),
            422,
        ),
        (
            "huge integer as a tag".into(),
            text(r#"{"title":"t","content":"c","tags":[123456789012345678901234567890]}"#),
            422,
        ),
        ("tags nested 100 deep".into(), nested(100), 422),
        ("tags nested 10000 deep".into(), nested(10_000), 400),
        (
            "duplicate key, other type first".into(),
            text(r#"{"title":1,"title":"ok","content":"c"}"#),
            201,
        ),
        (
            "100 KB key".into(),
            text(&format!(
                "{{\"{}\":1,\"title\":\"t\",\"content\":\"c\"}}",
                "k".repeat(100_000)
            )),
            201,
        ),
        (
            "20000 unknown keys".into(),
            text(&format!("{{{many_keys}\"title\":\"t\",\"content\":\"c\"}}")),
            201,
        ),
        (
            "C1 control in the title".into(),
            text(r#"{"title":"a\u0085b","content":"c"}"#),
            422,
        ),
        (
            "line separator in the title".into(),
            text(r#"{"title":"a\u2028b","content":"c"}"#),
            201,
        ),
        (
            "bell in a tag".into(),
            text(r#"{"title":"t","content":"c","tags":["a\u0007"]}"#),
            422,
        ),
        (
            "200 emoji title".into(),
            text(&format!(
                "{{\"title\":\"{}\",\"content\":\"c\"}}",
                emoji(200)
            )),
            201,
        ),
        (
            "201 emoji title".into(),
            text(&format!(
                "{{\"title\":\"{}\",\"content\":\"c\"}}",
                emoji(201)
            )),
            422,
        ),
        (
            "comments".into(),
            text(r#"{"title":"t", /* no */ "content":"c"}"#),
            400,
        ),
        (
            "NaN".into(),
            text(r#"{"title":"t","content":"c","x":NaN}"#),
            400,
        ),
        (
            "Infinity".into(),
            text(r#"{"title":"t","content":"c","x":Infinity}"#),
            400,
        ),
        ("null".into(), text("null"), 400),
        ("array".into(), text("[]"), 400),
        ("empty".into(), Vec::new(), 400),
        ("whitespace".into(), text("   \n"), 400),
        (
            "content just under 1 MiB".into(),
            text(&format!(
                "{{\"title\":\"t\",\"content\":\"{}\"}}",
                "x".repeat(1_000_000)
            )),
            201,
        ),
    ]
}

#[test]
fn hostile_json_is_400_or_422_on_every_write_never_5xx() {
    let server = TestServer::start();
    let target = server.create("target", "of PUT and PATCH", &[]);
    let path = format!("/articles/{}", target["id"]);
    let cases = hostile_bodies();
    for (name, body, expected) in &cases {
        let resp = server.send_json_bytes("POST", "/articles", &[], body);
        assert_eq!(resp.status, *expected, "POST {name}: {}", resp.text());
        if *expected >= 400 {
            resp.problem(*expected);
            // PUT and PATCH read bodies the same way; 422s may differ
            // (PATCH needs no field), 400s may not.
            for method in ["PUT", "PATCH"] {
                let resp = server.send_json_bytes(method, &path, &[], body);
                assert!(
                    matches!(resp.status, 400 | 422),
                    "{method} {name}: {}",
                    resp.status
                );
                if *expected == 400 {
                    resp.problem(400);
                }
            }
        }
    }
    let unchanged = server.get(&path).json();
    assert_eq!(unchanged["title"], "target", "no failed write changed it");
    println!(
        "hostile JSON: {} bodies on POST, 400s and 422s also on PUT and PATCH, 0 x 5xx",
        cases.len()
    );
}

/// Values of SQL, FTS5 and encoding trouble, percent-encoded for a URL.
fn hostile_values() -> Vec<String> {
    let raw = [
        "'",
        "' OR 1=1 --",
        "x'); DROP TABLE articles; --",
        "\" OR \"\"=\"",
        "\"",
        "*",
        "NEAR(a b)",
        "a OR b",
        "^x",
        "title:x",
        "(",
        "{a b}",
        "a AND NOT b",
        "\0",
        "\r\nX-Injected: 1",
        "%",
        "\u{202e}evil",
        "\u{FFFF}",
    ];
    let mut values: Vec<String> = raw
        .iter()
        .map(|v| v.bytes().map(|b| format!("%{b:02X}")).collect())
        .collect();
    values.extend([
        "%FF%FE".into(),
        "%C0%80".into(),
        "%ED%A0%80".into(),
        "%zz".into(),
    ]);
    // As long as a request line may be (8 KiB; a longer one is a 414).
    values.push("a".repeat(8_000));
    values.push(vec!["word"; 1_500].join("+"));
    values
}

#[test]
fn sql_and_search_syntax_in_every_parameter_is_data() {
    let server = TestServer::start();
    server.create("canary", "keep me", &["t"]);
    let mut conn = server.connect();
    let mut slowest = Duration::ZERO;
    let values = hostile_values();
    for value in &values {
        for param in ["tag", "author", "q", "sort", "page", "per_page", "unknown"] {
            let path = format!("/articles?{param}={value}");
            let started = Instant::now();
            let resp = conn.try_request("GET", &path, &[], None).expect("answered");
            slowest = slowest.max(started.elapsed());
            assert!(
                matches!(resp.status, 200 | 422),
                "{param}={value}: {}",
                resp.status
            );
            if resp.status == 200 {
                assert!(resp.json().as_array().unwrap().len() <= 1);
            }
        }
        let id_path = format!("/articles/1{value}");
        if id_path.len() < 1000 {
            let resp = conn
                .try_request("GET", &id_path, &[], None)
                .expect("answered");
            assert_eq!(resp.status, 404, "{id_path}");
        }
    }
    assert!(slowest < Duration::from_secs(2), "slowest {slowest:?}");
    let all = server.get("/articles");
    assert_eq!(all.header("X-Total-Count"), Some("1"));
    assert_eq!(all.json()[0]["title"], "canary");
    println!(
        "hostile parameters: {} values x 7 parameters and as ids, 200 or 422 (404 for ids), slowest {slowest:?}",
        values.len()
    );
}

#[test]
fn hostile_idempotency_keys_are_data_or_400() {
    let server = TestServer::start();
    let body = serde_json::to_vec(&json!({"title": "keyed", "content": "once"})).unwrap();
    for (key, expected) in [
        ("';DROP/**/TABLE/**/articles;--", 201),
        ("'; DROP TABLE articles; --", 400), // spaces are not visible ASCII
        ("%0D%0AX-Injected:%201", 201),
        ("\"*\"", 201),
        ("a b", 400),
        ("", 400),
    ] {
        let headers = [("Idempotency-Key", key)];
        let first = server.send_json_bytes("POST", "/articles", &headers, &body);
        assert_eq!(first.status, expected, "{key:?}: {}", first.text());
        if expected == 201 {
            let again = server.send_json_bytes("POST", "/articles", &headers, &body);
            assert_eq!(
                again.header("Idempotency-Replayed"),
                Some("true"),
                "{key:?}"
            );
            assert_eq!(again.json(), first.json());
        }
    }
    assert_eq!(server.get("/articles").header("X-Total-Count"), Some("3"));
}

/// The header lines of a raw response, checked to be one header each.
fn header_lines(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let lines: Vec<String> = head.split("\r\n").map(str::to_owned).collect();
    for line in &lines {
        assert!(!line.contains(['\r', '\n']), "a bare CR or LF in {line:?}");
    }
    lines
}

/// Sends `request` and asserts that no header the attacker named came back.
fn assert_no_injected_header(server: &TestServer, request: &str) -> Vec<String> {
    let raw = server.raw(request.as_bytes(), Duration::from_secs(3));
    assert!(raw.starts_with(b"HTTP/1.1 "), "{request:?}");
    let lines = header_lines(&raw);
    for line in &lines {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            !matches!(name.as_str(), "x-injected" | "set-cookie"),
            "{request:?} injected {line:?}"
        );
    }
    lines
}

#[test]
fn no_request_byte_can_add_a_response_header() {
    let crlf = "%0D%0AX-Injected:%201%0D%0ASet-Cookie:%20x=1";
    for cors in ["https://app.example", "*"] {
        let server = TestServer::start_with(&["--cors-origin", cors]);
        server.create("one", "article", &[]);
        let get = |target: &str, header: &str| {
            format!("GET {target} HTTP/1.1\r\nHost: t\r\n{header}Connection: close\r\n\r\n")
        };
        let requests = [
            get("/articles", &format!("X-Request-Id: abc{crlf}\r\n")),
            get(
                &format!("/articles?tag={crlf}&q={crlf}&{crlf}=v&per_page=1"),
                "",
            ),
            get(&format!("/articles{crlf}"), ""),
            get(
                "/articles/1",
                &format!("Origin: https://app.example{crlf}\r\n"),
            ),
            get("/articles/1", &format!("If-None-Match: \"{crlf}\"\r\n")),
            get("/me", &format!("Authorization: Bearer {crlf}\r\n")),
            get(
                "/articles",
                "Origin: https://app.example\r\nX-Request-Id: ok-1\r\n",
            ),
            format!(
                "OPTIONS /articles HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n\
                 Access-Control-Request-Method: POST{crlf}\r\n\
                 Access-Control-Request-Headers: x{crlf}\r\nConnection: close\r\n\r\n"
            ),
        ];
        for request in &requests {
            assert_no_injected_header(&server, request);
        }
        let body = r#"{"title":"t","content":"c"}"#;
        let post = format!(
            "POST /articles HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
             Idempotency-Key: k{crlf}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        assert_no_injected_header(&server, &post);
        let replay = assert_no_injected_header(&server, &post);
        assert!(
            replay.iter().any(|l| l == "Idempotency-Replayed: true"),
            "{replay:?}"
        );
        let link = assert_no_injected_header(&server, &requests[1]);
        let link = link
            .iter()
            .find(|l| l.starts_with("Link: "))
            .expect("a Link header");
        assert!(
            link.contains("%0D%0A"),
            "CR LF kept percent-encoded: {link}"
        );
    }
}

#[test]
fn a_retry_spelling_a_number_differently_is_a_replay() {
    // One double, spelt shortest and with 17 digits. serde_json's default
    // float parser is not exact and read them as two different numbers.
    let server = TestServer::start();
    let first = br#"{"title":"t","content":"c","x":-7.428246415244006e-40}"#;
    let retry = br#"{"title":"t","content":"c","x":-7.42824641524400566e-40}"#;
    let headers = [("Idempotency-Key", "spelt-twice")];
    let created = server.send_json_bytes("POST", "/articles", &headers, first);
    assert_eq!(created.status, 201);
    let again = server.send_json_bytes("POST", "/articles", &headers, retry);
    assert_eq!(again.status, 201, "{}", again.text());
    assert_eq!(again.header("Idempotency-Replayed"), Some("true"));
    assert_eq!(again.json(), created.json());
}
