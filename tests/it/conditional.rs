//! ETag, If-None-Match and If-Match.

use std::sync::{Arc, Barrier};

use serde_json::{json, Value};

use crate::in_process::TestServer;
use crate::support::{bearer, Conn, Resp};

fn etag(resp: &Resp) -> String {
    let tag = resp.header("ETag").expect("an ETag").to_owned();
    assert!(
        tag.len() > 2 && tag.starts_with('"') && tag.ends_with('"'),
        "a quoted strong tag: {tag}"
    );
    tag
}

/// Creates an article and returns its path and ETag.
fn article(server: &TestServer) -> (String, String) {
    let resp = server.post(&json!({"title": "t", "content": "c"}));
    assert_eq!(resp.status, 201, "{}", resp.text());
    (resp.header("Location").unwrap().to_owned(), etag(&resp))
}

#[test]
fn get_put_and_patch_send_an_etag_that_changes_with_every_modification() {
    let server = TestServer::start();
    let (path, created) = article(&server);
    assert_eq!(etag(&server.get(&path)), created);
    let head = server.request("HEAD", &path, &[], None);
    assert_eq!((head.status, etag(&head)), (200, created.clone()));

    let put = server.send_json("PUT", &path, &[], &json!({"title": "u", "content": "c"}));
    assert_eq!(put.status, 200);
    let replaced = etag(&put);
    assert_ne!(replaced, created);
    assert_eq!(etag(&server.get(&path)), replaced);

    // The same change again still modifies the article, so the tag moves.
    for _ in 0..3 {
        let before = etag(&server.get(&path));
        let patch = server.send_json("PATCH", &path, &[], &json!({"tags": ["x"]}));
        assert_eq!(patch.status, 200);
        assert_ne!(etag(&patch), before);
        assert_eq!(etag(&server.get(&path)), etag(&patch));
    }
    let (other, other_tag) = article(&server);
    assert_ne!(other, path);
    assert_ne!(other_tag, created, "tags differ between articles");
}

#[test]
fn if_none_match_gives_304_without_body_or_content_length() {
    let server = TestServer::start();
    let (path, tag) = article(&server);
    let weak = format!("W/{tag}");
    let listed = format!("\"other\", {tag}");
    let mut conn = server.connect();
    for (method, value) in [
        ("GET", tag.as_str()),
        ("GET", weak.as_str()),
        ("GET", listed.as_str()),
        ("GET", "*"),
        ("HEAD", tag.as_str()),
    ] {
        let resp = conn.request(
            method,
            &path,
            &[("If-None-Match", value), ("X-Request-Id", "cond-1")],
            None,
        );
        assert_eq!(resp.status, 304, "{method} {value}");
        assert_eq!(resp.header("ETag"), Some(tag.as_str()));
        assert_eq!(resp.header("X-Request-Id"), Some("cond-1"));
        assert_eq!(resp.header("Content-Length"), None);
        assert_eq!(resp.header("Content-Type"), None);
        // Keep-alive still frames correctly: the 304 carried no body.
        assert_eq!(conn.request("GET", &path, &[], None).status, 200);
    }
    for stale in ["\"1-1\"", "garbage", ""] {
        let resp = conn.request("GET", &path, &[("If-None-Match", stale)], None);
        assert_eq!(resp.status, 200, "{stale:?}");
        assert_eq!(resp.json()["id"], path[10..].parse::<i64>().unwrap());
    }
}

#[test]
fn if_match_mismatch_is_412_and_changes_nothing() {
    let server = TestServer::start();
    let (path, tag) = article(&server);
    let before = server.get(&path).json();
    let weak = format!("W/{tag}");
    for value in ["\"1-1\"", weak.as_str(), "unquoted", ""] {
        for method in ["PUT", "PATCH"] {
            let resp = server.send_json(
                method,
                &path,
                &[("If-Match", value)],
                &json!({"title": "changed", "content": "changed"}),
            );
            resp.problem(412);
        }
    }
    let resp = server.send_json(
        "PATCH",
        &path,
        &[("If-None-Match", "*")],
        &json!({"title": "x"}),
    );
    resp.problem(412);
    let read = server.request("GET", &path, &[("If-Match", "\"1-1\"")], None);
    read.problem(412);
    assert_eq!(server.get(&path).json(), before);
    assert_eq!(etag(&server.get(&path)), tag);
}

#[test]
fn if_match_with_the_current_tag_or_star_succeeds() {
    let server = TestServer::start();
    let (path, tag) = article(&server);
    let listed = format!("\"nope\", {tag}");
    let resp = server.send_json(
        "PATCH",
        &path,
        &[("If-Match", &listed)],
        &json!({"title": "a"}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = server.send_json("PATCH", &path, &[("If-Match", "*")], &json!({"title": "b"}));
    assert_eq!(resp.status, 200);
    let current = etag(&resp);
    let resp = server.send_json(
        "PUT",
        &path,
        &[("If-Match", &current)],
        &json!({"title": "c", "content": "d"}),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["title"], "c");
    let missing = server.send_json("PATCH", "/articles/999", &[("If-Match", "*")], &json!({}));
    assert_eq!(missing.problem(404)["detail"], "Article not found");
}

#[test]
fn delete_honours_if_match() {
    let server = TestServer::start();
    let (path, tag) = article(&server);
    let stale = server.request("DELETE", &path, &[("If-Match", "\"1-1\"")], None);
    stale.problem(412);
    assert_eq!(server.get(&path).status, 200);
    let done = server.request("DELETE", &path, &[("If-Match", &tag)], None);
    assert_eq!(done.status, 204);
    assert_eq!(server.get(&path).status, 404);
    let gone = server.request("DELETE", &path, &[("If-Match", "*")], None);
    gone.problem(404);
}

#[test]
fn checks_run_404_then_412_then_the_body() {
    let server = TestServer::start();
    let (path, tag) = article(&server);
    let stale = [("If-Match", "\"1-1\"")];
    let invalid = json!({"title": 5});
    server
        .send_json("PUT", "/articles/999", &stale, &invalid)
        .problem(404);
    server
        .send_json("PUT", &path, &stale, &invalid)
        .problem(412);
    server
        .send_json("PATCH", &path, &stale, &invalid)
        .problem(412);
    let not_json = server.request(
        "PATCH",
        &path,
        &[("If-Match", "\"1-1\""), ("Content-Type", "text/plain")],
        Some(b"x"),
    );
    not_json.problem(412);
    let broken = server.request(
        "PATCH",
        &path,
        &[
            ("If-Match", "\"1-1\""),
            ("Content-Type", "application/json"),
        ],
        Some(b"{"),
    );
    broken.problem(412);
    // With a matching tag, the body is judged.
    assert_eq!(
        server
            .send_json("PUT", &path, &[("If-Match", &tag)], &invalid)
            .invalid_fields(),
        ["title", "content"]
    );
}

#[test]
fn checks_run_401_and_403_before_412() {
    let server = TestServer::start();
    let alice = bearer(&server.add_user("alice"));
    let bob = bearer(&server.add_user("bob"));
    let resp = server.send_json(
        "POST",
        "/articles",
        &[("Authorization", &alice)],
        &json!({"title": "t", "content": "c"}),
    );
    let path = resp.header("Location").unwrap().to_owned();
    let stale = ("If-Match", "\"1-1\"");
    let body = json!({"title": "x"});
    server
        .send_json("PATCH", &path, &[("Authorization", &bob), stale], &body)
        .problem(403);
    server
        .request("DELETE", &path, &[("Authorization", &bob), stale], None)
        .problem(403);
    server
        .send_json("PATCH", &path, &[stale], &body)
        .problem(401);
    server
        .send_json("PATCH", &path, &[("Authorization", &alice), stale], &body)
        .problem(412);
}

#[test]
fn concurrent_patches_with_the_same_if_match_let_exactly_one_win() {
    let server = TestServer::start();
    for _ in 0..5 {
        let (path, tag) = article(&server);
        const WRITERS: usize = 8;
        let barrier = Arc::new(Barrier::new(WRITERS));
        let handles: Vec<_> = (0..WRITERS)
            .map(|n| {
                let (addr, path, tag, barrier) =
                    (server.addr, path.clone(), tag.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    let mut conn = Conn::open(addr);
                    let body =
                        serde_json::to_vec(&json!({"title": format!("writer {n}")})).unwrap();
                    barrier.wait();
                    let headers = [
                        ("Content-Type", "application/json"),
                        ("If-Match", tag.as_str()),
                    ];
                    let resp = conn.request("PATCH", &path, &headers, Some(&body));
                    (resp.status, resp.json()["title"].clone())
                })
            })
            .collect();
        let results: Vec<(u16, Value)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<&Value> = results
            .iter()
            .filter(|(s, _)| *s == 200)
            .map(|(_, t)| t)
            .collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        assert_eq!(
            results.iter().filter(|(s, _)| *s == 412).count(),
            WRITERS - 1,
            "{results:?}"
        );
        assert_eq!(&server.get(&path).json()["title"], winners[0]);
    }
}
