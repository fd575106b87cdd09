//! Users, tokens, `/me` and ownership. (The command line that makes users
//! and tokens is tested in the `process` binary's `cli`.)

use serde_json::json;

use crate::in_process::TestServer;
use crate::support::{bearer, Conn, Resp};

fn get_as(server: &TestServer, path: &str, token: &str) -> Resp {
    server.request("GET", path, &[("Authorization", &bearer(token))], None)
}

#[test]
fn user_add_prints_a_token_that_me_recognises() {
    let server = TestServer::start();
    let token = server.add_user("Alice");
    assert!(token.starts_with("art_") && token.len() >= 40, "{token}");
    let me = get_as(&server, "/me", &token);
    assert_eq!(me.status, 200);
    let me = me.json();
    assert_eq!(me["username"], "Alice");
    assert!(me["id"].as_i64().unwrap() > 0);
    assert!(me["created_at"].as_str().unwrap().ends_with('Z'));
    let lower = server.request(
        "GET",
        "/me",
        &[("Authorization", &format!("bearer {token}"))],
        None,
    );
    assert_eq!(lower.status, 200, "the scheme is case-insensitive");
}

#[test]
fn me_needs_a_valid_token() {
    let server = TestServer::start();
    let token = server.add_user("bob");
    server.get("/me").assert_401();
    get_as(&server, "/me", "art_nope").assert_401();
    server
        .request(
            "GET",
            "/me",
            &[("Authorization", &format!("Basic {token}"))],
            None,
        )
        .assert_401();
    server
        .request("GET", "/me", &[("Authorization", "Bearer")], None)
        .assert_401();
}

#[test]
fn an_invalid_token_is_401_on_every_request() {
    let server = TestServer::start();
    server.create("public", "read", &[]);
    for path in ["/articles", "/articles/1", "/articles/999", "/nowhere"] {
        get_as(&server, path, "art_forged").assert_401();
    }
    server
        .send_json(
            "POST",
            "/articles",
            &[("Authorization", &bearer("art_forged"))],
            &json!({"title": "t", "content": "c"}),
        )
        .assert_401();
    assert_eq!(server.get("/articles/1").status, 200, "reads need no token");
}

#[test]
fn articles_carry_their_author_and_filter_by_it() {
    let server = TestServer::start();
    let token = server.add_user("Erin");
    let created = server.send_json(
        "POST",
        "/articles",
        &[("Authorization", &bearer(&token))],
        &json!({"title": "mine", "content": "c"}),
    );
    assert_eq!(created.status, 201);
    let created = created.json();
    let me = get_as(&server, "/me", &token).json();
    assert_eq!(
        created["author"],
        json!({"id": me["id"], "username": "Erin"})
    );
    server.create("anonymous", "c", &[]);

    let by_author = server.get("/articles?author=erin");
    assert_eq!(by_author.header("X-Total-Count"), Some("1"));
    assert_eq!(by_author.json()[0]["author"]["username"], "Erin");
    let all = server.get("/articles").json();
    assert_eq!(all[0]["author"], serde_json::Value::Null);
    assert_eq!(all[1]["author"]["username"], "Erin");
    assert_eq!(server.get("/articles?author=nobody").json(), json!([]));
}

#[test]
fn required_mode_needs_a_token_for_every_write() {
    let server = TestServer::start_with(&["--auth", "required"]);
    let token = server.add_user("frank");
    let body = json!({"title": "t", "content": "c"});
    server
        .send_json("POST", "/articles", &[], &body)
        .assert_401();
    let created = server.send_json(
        "POST",
        "/articles",
        &[("Authorization", &bearer(&token))],
        &body,
    );
    assert_eq!(created.status, 201);
    let path = format!("/articles/{}", created.json()["id"]);
    server
        .send_json("PATCH", &path, &[], &json!({"title": "x"}))
        .assert_401();
    server
        .send_json("PUT", "/articles/999", &[], &json!({}))
        .assert_401();
    server.request("DELETE", &path, &[], None).assert_401();
    assert_eq!(server.get(&path).status, 200, "reads stay open");
    assert_eq!(server.get("/articles").header("X-Total-Count"), Some("1"));
}

#[test]
fn only_the_author_may_modify_an_authored_article() {
    let server = TestServer::start();
    let owner = server.add_user("grace");
    let other = server.add_user("heidi");
    let created = server.send_json(
        "POST",
        "/articles",
        &[("Authorization", &bearer(&owner))],
        &json!({"title": "t", "content": "c"}),
    );
    let path = format!("/articles/{}", created.json()["id"]);

    server
        .send_json(
            "PATCH",
            &path,
            &[("Authorization", &bearer(&other))],
            &json!({"title": "hijack"}),
        )
        .problem(403);
    server
        .send_json(
            "PUT",
            &path,
            &[("Authorization", &bearer(&other))],
            &json!({"title": "x", "content": "y"}),
        )
        .problem(403);
    server
        .request("DELETE", &path, &[("Authorization", &bearer(&other))], None)
        .problem(403);
    server
        .send_json("PATCH", &path, &[], &json!({"title": "anon"}))
        .assert_401();
    server.request("DELETE", &path, &[], None).assert_401();
    // 403 comes before the body is judged.
    server
        .send_json(
            "PATCH",
            &path,
            &[("Authorization", &bearer(&other))],
            &json!({"title": ""}),
        )
        .problem(403);
    assert_eq!(server.get(&path).json()["title"], "t", "nothing changed");

    let patched = server.send_json(
        "PATCH",
        &path,
        &[("Authorization", &bearer(&owner))],
        &json!({"title": "mine"}),
    );
    assert_eq!(patched.status, 200);
    assert_eq!(patched.json()["author"]["username"], "grace");
    let deleted = server.request("DELETE", &path, &[("Authorization", &bearer(&owner))], None);
    assert_eq!(deleted.status, 204);
}

#[test]
fn anyone_may_modify_an_anonymous_article() {
    let server = TestServer::start();
    let token = server.add_user("ivan");
    let created = server.create("anon", "c", &[]);
    let path = format!("/articles/{}", created["id"]);
    assert_eq!(
        server
            .send_json("PATCH", &path, &[], &json!({"title": "by anyone"}))
            .status,
        200
    );
    let patched = server.send_json(
        "PATCH",
        &path,
        &[("Authorization", &bearer(&token))],
        &json!({"title": "by ivan"}),
    );
    assert_eq!(patched.status, 200);
    assert_eq!(
        patched.json()["author"],
        serde_json::Value::Null,
        "authorship does not change"
    );
}

#[test]
fn revocation_applies_to_an_open_keep_alive_connection() {
    let server = TestServer::start();
    let token = server.add_user("judy");
    let printed = server.token_new("judy");
    let second = printed.lines().last().unwrap().to_owned();
    assert_ne!(second, token);

    let mut conn = Conn::open(server.addr);
    let auth = bearer(&token);
    assert_eq!(
        conn.request("GET", "/me", &[("Authorization", &auth)], None)
            .status,
        200
    );
    assert_eq!(get_as(&server, "/me", &second).status, 200);

    let revoked = server.token_revoke("judy");
    assert!(revoked.contains("revoked 2"), "{revoked}");
    conn.request("GET", "/me", &[("Authorization", &auth)], None)
        .assert_401();
    get_as(&server, "/me", &second).assert_401();
}
