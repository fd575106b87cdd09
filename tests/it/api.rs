//! The article API over real sockets.

use serde_json::{json, Value};

use crate::in_process::TestServer;
use crate::support::{Conn, Resp};

fn titles(resp: &Resp) -> Vec<String> {
    resp.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn create_then_fetch() {
    let server = TestServer::start();
    let resp = server.post(&json!({"title": "Choosing a framework", "content": "Full text", "tags": ["web", "python", "web"]}));
    assert_eq!(resp.status, 201);
    assert_eq!(
        resp.header("Content-Type"),
        Some("application/json; charset=utf-8")
    );
    let created = resp.json();
    let id = created["id"].as_i64().unwrap();
    assert!(id > 0);
    assert_eq!(
        resp.header("Location"),
        Some(format!("/articles/{id}").as_str())
    );
    assert_eq!(created["title"], "Choosing a framework");
    assert_eq!(created["tags"], json!(["python", "web"]));
    assert_eq!(created["author"], Value::Null);
    let stamp = created["created_at"].as_str().unwrap();
    assert_eq!(stamp.len(), 24, "{stamp}");
    assert!(
        stamp.ends_with('Z') && stamp.as_bytes()[19] == b'.',
        "{stamp}"
    );
    assert_eq!(created["updated_at"], created["created_at"]);

    let fetched = server.get(&format!("/articles/{id}"));
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.json(), created);
}

#[test]
fn missing_article_is_404_article_not_found() {
    let server = TestServer::start();
    for path in [
        "/articles/1",
        "/articles/abc",
        "/articles/0",
        "/articles/-5",
        "/articles/99999999999999999999",
    ] {
        let body = server.get(path).problem(404);
        assert_eq!(body["detail"], "Article not found", "{path}");
        assert_eq!(body["title"], "Not Found");
    }
    server.get("/nope").problem(404);
}

#[test]
fn lists_newest_first_with_total_and_links() {
    let server = TestServer::start();
    for n in 1..=5 {
        server.create(&format!("a{n}"), "body", &[]);
    }
    let resp = server.get("/articles?per_page=2");
    assert_eq!(resp.status, 200);
    assert_eq!(titles(&resp), ["a5", "a4"]);
    assert_eq!(resp.header("X-Total-Count"), Some("5"));
    let link = resp.header("Link").unwrap();
    assert!(
        link.contains("</articles?per_page=2&page=1>; rel=\"first\""),
        "{link}"
    );
    assert!(
        link.contains("</articles?per_page=2&page=3>; rel=\"last\""),
        "{link}"
    );
    assert!(
        link.contains("</articles?per_page=2&page=2>; rel=\"next\""),
        "{link}"
    );
    assert!(!link.contains("rel=\"prev\""), "{link}");

    let last = server.get("/articles?per_page=2&page=3");
    assert_eq!(titles(&last), ["a1"]);
    let past = server.get("/articles?per_page=2&page=9&foo=bar");
    assert_eq!(past.status, 200);
    assert_eq!(past.json(), json!([]));
    let link = past.header("Link").unwrap();
    assert!(
        link.contains("</articles?per_page=2&foo=bar&page=3>; rel=\"prev\""),
        "{link}"
    );
    assert!(!link.contains("rel=\"next\""), "{link}");
}

#[test]
fn default_page_size_is_20() {
    let server = TestServer::start();
    for n in 0..25 {
        server.create(&format!("t{n}"), "c", &[]);
    }
    let resp = server.get("/articles");
    assert_eq!(resp.json().as_array().unwrap().len(), 20);
    assert_eq!(resp.header("X-Total-Count"), Some("25"));
}

#[test]
fn filters_by_tag_and_full_text() {
    let server = TestServer::start();
    server.create("Rust servers", "Fast and small", &["rust", "web"]);
    server.create("Python apps", "Flask and FastAPI", &["python", "web"]);
    server.create("Baking", "Bread and butter", &[]);

    let by_tag = server.get("/articles?tag=web");
    assert_eq!(titles(&by_tag), ["Python apps", "Rust servers"]);
    assert_eq!(by_tag.header("X-Total-Count"), Some("2"));
    assert_eq!(
        titles(&server.get("/articles?tag=Web")),
        Vec::<String>::new()
    );

    assert_eq!(titles(&server.get("/articles?q=FLASK")), ["Python apps"]);
    assert_eq!(
        titles(&server.get("/articles?q=and+fast")),
        ["Rust servers"]
    );
    assert_eq!(titles(&server.get("/articles?q=and%20butter")), ["Baking"]);
    assert_eq!(
        titles(&server.get("/articles?q=rust+python")),
        Vec::<String>::new()
    );
    let combined = server.get("/articles?q=and&tag=web");
    assert_eq!(titles(&combined), ["Python apps", "Rust servers"]);
    assert_eq!(combined.header("X-Total-Count"), Some("2"));
    // A NUL separates words (it was a 500: FTS5 ended the query string at it).
    assert_eq!(
        titles(&server.get("/articles?q=fast%00and")),
        ["Rust servers"]
    );
    let nul = server.request("HEAD", "/articles?q=%00w%0B%7F", &[], None);
    assert_eq!(nul.status, 200);
}

#[test]
fn unknown_author_gives_an_empty_list() {
    let server = TestServer::start();
    server.create("x", "y", &[]);
    let resp = server.get("/articles?author=nobody");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), json!([]));
    assert_eq!(resp.header("X-Total-Count"), Some("0"));
}

#[test]
fn sorts_by_every_key_with_ties_broken_by_id() {
    let server = TestServer::start();
    let b = server.create("b", "c", &[]);
    let a = server.create("a", "c", &[]);
    let b2 = server.create("b", "c", &[]);
    let upper = server.create("Z", "c", &[]);
    let accent = server.create("é", "c", &[]);

    assert_eq!(
        titles(&server.get("/articles?sort=title")),
        ["Z", "a", "b", "b", "é"]
    );
    assert_eq!(
        titles(&server.get("/articles?sort=-title")),
        ["é", "b", "b", "a", "Z"]
    );
    let ids = |resp: Resp| -> Vec<Value> {
        resp.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].clone())
            .collect()
    };
    let asc = ids(server.get("/articles?sort=title"));
    assert_eq!(
        asc[2..4],
        [b["id"].clone(), b2["id"].clone()],
        "ties by id ascending"
    );
    let desc = ids(server.get("/articles?sort=-title"));
    assert_eq!(
        desc[1..3],
        [b2["id"].clone(), b["id"].clone()],
        "ties by id descending"
    );

    let oldest = ids(server.get("/articles?sort=created_at"));
    assert_eq!(oldest[0], b["id"]);
    server.send_json(
        "PATCH",
        &format!("/articles/{}", a["id"]),
        &[],
        &json!({"content": "new"}),
    );
    assert_eq!(ids(server.get("/articles?sort=-updated_at"))[0], a["id"]);
    assert_eq!(
        *ids(server.get("/articles?sort=updated_at")).last().unwrap(),
        a["id"]
    );
    let _ = (upper, accent);
}

#[test]
fn invalid_query_parameters_are_422_naming_each() {
    let server = TestServer::start();
    assert_eq!(server.get("/articles?page=0").invalid_fields(), ["page"]);
    assert_eq!(server.get("/articles?page=abc").invalid_fields(), ["page"]);
    assert_eq!(
        server.get("/articles?per_page=101").invalid_fields(),
        ["per_page"]
    );
    assert_eq!(server.get("/articles?sort=id").invalid_fields(), ["sort"]);
    assert_eq!(
        server
            .get("/articles?page=-1&per_page=0&sort=x")
            .invalid_fields(),
        ["page", "per_page", "sort"]
    );
    assert_eq!(server.get("/articles?unknown=1&page=1").status, 200);
}

#[test]
fn put_replaces_and_patch_changes_only_given_fields() {
    let server = TestServer::start();
    let created = server.create("Title", "Content", &["a", "b"]);
    let path = format!("/articles/{}", created["id"]);

    let patched = server.send_json("PATCH", &path, &[], &json!({"title": "New title"}));
    assert_eq!(patched.status, 200);
    let patched = patched.json();
    assert_eq!(patched["title"], "New title");
    assert_eq!(patched["content"], "Content");
    assert_eq!(patched["tags"], json!(["a", "b"]));
    assert_eq!(patched["created_at"], created["created_at"]);
    assert_ne!(patched["updated_at"], created["updated_at"]);

    let replaced = server.send_json("PUT", &path, &[], &json!({"title": "T2", "content": "C2"}));
    assert_eq!(replaced.status, 200);
    let replaced = replaced.json();
    assert_eq!(replaced["tags"], json!([]), "tags default to [] on PUT");
    assert_ne!(replaced["updated_at"], patched["updated_at"]);
    assert_eq!(server.get(&path).json(), replaced);

    // A client may PUT back what it GOT.
    let again = server.send_json("PUT", &path, &[], &replaced);
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["title"], "T2");

    let missing = server.send_json("PUT", &path, &[], &json!({"title": "only"}));
    assert_eq!(missing.invalid_fields(), ["content"]);
}

#[test]
fn writes_to_a_missing_article_are_404_whatever_the_body() {
    let server = TestServer::start();
    server
        .send_json("PATCH", "/articles/77", &[], &json!({"title": ""}))
        .problem(404);
    server
        .send_json_bytes("PUT", "/articles/77", &[], b"{nope")
        .problem(404);
    server
        .request("DELETE", "/articles/77", &[], None)
        .problem(404);
}

#[test]
fn delete_is_204_and_ids_are_never_reused() {
    let server = TestServer::start();
    let first = server.create("a", "b", &[]);
    let path = format!("/articles/{}", first["id"]);
    let resp = server.request("DELETE", &path, &[], None);
    assert_eq!(resp.status, 204);
    assert_eq!(resp.header("Content-Length"), None);
    assert!(resp.header("X-Request-Id").is_some());
    server.get(&path).problem(404);
    let second = server.create("c", "d", &[]);
    assert!(second["id"].as_i64() > first["id"].as_i64());
}

#[test]
fn validation_errors_list_every_field() {
    let server = TestServer::start();
    let resp = server.post(&json!({"title": "", "content": "  ", "tags": ["ok", " pad", 5]}));
    assert_eq!(
        resp.invalid_fields(),
        ["title", "content", "tags[1]", "tags[2]"]
    );
    let body = resp.json();
    assert_eq!(body["detail"], "Validation failed");
    assert_eq!(body["title"], "Unprocessable Content");
    assert_eq!(body["errors"][0]["message"], "must be 1 to 200 characters");

    let long_title = "x".repeat(201);
    assert_eq!(
        server
            .post(&json!({"title": long_title, "content": "c"}))
            .invalid_fields(),
        ["title"]
    );
    let many: Vec<String> = (0..21).map(|n| format!("t{n}")).collect();
    assert_eq!(
        server
            .post(&json!({"title": "t", "content": "c", "tags": many}))
            .invalid_fields(),
        ["tags"]
    );
    assert_eq!(
        server.post(&json!({"content": "c"})).invalid_fields(),
        ["title"]
    );
    assert_eq!(
        server.get("/articles").header("X-Total-Count"),
        Some("0"),
        "nothing was written"
    );
}

#[test]
fn bad_bodies_are_400_415_411() {
    let server = TestServer::start();
    let json_type = [("Content-Type", "application/json")];
    let body = server
        .request("POST", "/articles", &json_type, Some(b"{\"title\": "))
        .problem(400);
    assert!(body["detail"].as_str().unwrap().contains("not valid JSON"));
    server
        .request("POST", "/articles", &json_type, Some(b"[1,2]"))
        .problem(400);
    server
        .request("POST", "/articles", &json_type, Some(b"\"text\""))
        .problem(400);
    server
        .request(
            "POST",
            "/articles",
            &json_type,
            Some(b"{\"title\":\"\xff\xfe\",\"content\":\"c\"}"),
        )
        .problem(400);
    server
        .request("POST", "/articles", &json_type, Some(b""))
        .problem(400);

    let plain = [("Content-Type", "text/plain")];
    server
        .request("POST", "/articles", &plain, Some(b"{}"))
        .problem(415);
    server
        .request("POST", "/articles", &[], Some(b"{}"))
        .problem(415);
    let with_charset = [("Content-Type", "Application/JSON; charset=UTF-8")];
    let ok = server.request(
        "POST",
        "/articles",
        &with_charset,
        Some(br#"{"title":"t","content":"c"}"#),
    );
    assert_eq!(ok.status, 201);

    server
        .request("POST", "/articles", &json_type, None)
        .problem(411);
}

#[test]
fn method_not_allowed_lists_allowed_methods() {
    let server = TestServer::start();
    let resp = server.request("DELETE", "/articles", &[], None);
    resp.problem(405);
    assert_eq!(resp.header("Allow"), Some("GET, HEAD, POST, OPTIONS"));
    let resp = server.send_json_bytes("POST", "/articles/1", &[], b"{}");
    resp.problem(405);
    assert_eq!(
        resp.header("Allow"),
        Some("GET, HEAD, PUT, PATCH, DELETE, OPTIONS")
    );
}

#[test]
fn options_and_head() {
    let server = TestServer::start();
    let resp = server.request("OPTIONS", "/articles/1", &[], None);
    assert_eq!(resp.status, 204);
    assert_eq!(
        resp.header("Allow"),
        Some("GET, HEAD, PUT, PATCH, DELETE, OPTIONS")
    );
    server
        .request("OPTIONS", "/nowhere", &[], None)
        .problem(404);

    let created = server.create("t", "c", &[]);
    let path = format!("/articles/{}", created["id"]);
    let mut conn = server.connect();
    let head = conn.request("HEAD", &path, &[], None);
    let get = conn.request("GET", &path, &[], None);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Length"), get.header("Content-Length"));
    assert!(head.body.is_empty());
    let head_list = conn.request("HEAD", "/articles", &[], None);
    assert_eq!(head_list.header("X-Total-Count"), Some("1"));
}

#[test]
fn every_response_but_204_has_content_length() {
    let server = TestServer::start();
    let created = server.create("t", "c", &[]);
    let path = format!("/articles/{}", created["id"]);
    let big = "x".repeat(200_000);
    let big_article = server.create("big", &big, &[]);
    for resp in [
        server.get("/articles"),
        server.get(&path),
        server.get(&format!("/articles/{}", big_article["id"])),
        server.get("/articles/999"),
        server.get("/articles?page=0"),
        server.request("PUT", "/articles", &[], None),
    ] {
        let length: usize = resp
            .header("Content-Length")
            .expect("Content-Length")
            .parse()
            .unwrap();
        assert_eq!(length, resp.body.len());
        assert_eq!(resp.header("Transfer-Encoding"), None);
    }
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let server = TestServer::start();
    let mut conn = server.connect();
    for n in 0..50 {
        let resp = conn.create(&json!({"title": format!("t{n}"), "content": "c"}));
        assert_eq!(resp.status, 201);
    }
    assert_eq!(
        conn.request("GET", "/articles", &[], None)
            .header("X-Total-Count"),
        Some("50")
    );
}

#[test]
#[cfg_attr(
    feature = "postgres",
    ignore = "SQLite only: `--db :memory:` is SQLite's in-memory database"
)]
fn memory_database_serves_concurrent_writers() {
    let server = TestServer::start_on(":memory:", &[]);
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                for n in 0..25 {
                    let resp = conn.create(&json!({"title": format!("{t}-{n}"), "content": "c"}));
                    assert_eq!(resp.status, 201, "{}", resp.text());
                    assert_eq!(
                        conn.request("GET", "/articles?per_page=5", &[], None)
                            .status,
                        200
                    );
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(server.get("/articles").header("X-Total-Count"), Some("200"));
}

#[test]
fn search_works_across_scripts_and_combining_marks() {
    let server = TestServer::start();
    let texts = [
        "नमस्ते दुनिया",
        "e\u{301}cole naïve",
        "日本語のテキスト",
        "Привет мир",
        "مرحبا بالعالم",
        "한국어 텍스트",
    ];
    for text in texts {
        server.create(&format!("t {text}"), text, &[]);
    }
    for (query, expected) in [
        ("%E0%A4%A6%E0%A5%81%E0%A4%A8%E0%A4%BF%E0%A4%AF%E0%A4%BE", 1), // दुनिया
        ("ecole", 1),
        ("%C3%A9cole", 1), // école, precomposed, finds the decomposed one
        ("NAIVE", 1),
        ("%D0%BC%D0%B8%D1%80", 1),          // мир
        ("%ED%85%8D%EC%8A%A4%ED%8A%B8", 1), // 텍스트
        ("%D0%BC%D0%B8%D1%80+ecole", 0),
    ] {
        let resp = server.get(&format!("/articles?q={query}"));
        assert_eq!(resp.status, 200, "q={query}: {}", resp.text());
        assert_eq!(resp.json().as_array().unwrap().len(), expected, "q={query}");
    }
}

#[test]
fn many_more_writers_than_workers_all_land() {
    // Two workers (so eight worker threads taking two turns): writers
    // waiting on a group commit give their turn to the next request.
    let server = TestServer::start_with(&["--workers", "2"]);
    let handles: Vec<_> = (0..16)
        .map(|t| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                for n in 0..20 {
                    let resp = conn.create(&json!({"title": format!("{t}-{n}"), "content": "c"}));
                    assert_eq!(resp.status, 201, "{}", resp.text());
                    let id = resp.json()["id"].as_i64().unwrap();
                    let read = conn.request("GET", &format!("/articles/{id}"), &[], None);
                    assert_eq!(read.status, 200, "a write acknowledged but not readable");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(server.get("/articles").header("X-Total-Count"), Some("320"));
    if let (Some(writes), Some(commits)) = (
        server.metric("articles_db_writes_total"),
        server.metric("articles_db_commits_total"),
    ) {
        eprintln!("{writes} writes in {commits} commits");
    }
}
