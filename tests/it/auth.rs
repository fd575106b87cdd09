//! Users, tokens, `/me` and ownership, through the real binary and its
//! command line.

use crate::support::{binary, Conn, TestServer};
use serde_json::json;

/// Runs an admin command against `db`; returns (exit code, stdout, stderr).
fn admin(db: &str, args: &[&str]) -> (i32, String, String) {
    let output = binary().args(args).args(["--db", db]).output().unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// Creates a user on the server's database and returns its token.
fn add_user(server: &TestServer, name: &str) -> String {
    let (code, out, err) = admin(&server.db(), &["user", "add", name]);
    assert_eq!(code, 0, "{err}");
    out.lines().last().unwrap().to_owned()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn write(
    server: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> crate::support::Resp {
    let auth = token.map(bearer);
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    server.request(
        method,
        path,
        &headers,
        Some(&serde_json::to_vec(&body).unwrap()),
    )
}

fn get_as(server: &TestServer, path: &str, token: &str) -> crate::support::Resp {
    server.request("GET", path, &[("Authorization", &bearer(token))], None)
}

fn assert_401(resp: &crate::support::Resp) {
    resp.problem(401);
    assert!(resp
        .header("WWW-Authenticate")
        .unwrap()
        .starts_with("Bearer"));
}

#[test]
fn user_add_prints_a_token_that_me_recognises() {
    let server = TestServer::start();
    let token = add_user(&server, "Alice");
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
    let token = add_user(&server, "bob");
    assert_401(&server.get("/me"));
    assert_401(&get_as(&server, "/me", "art_nope"));
    assert_401(&server.request(
        "GET",
        "/me",
        &[("Authorization", &format!("Basic {token}"))],
        None,
    ));
    assert_401(&server.request("GET", "/me", &[("Authorization", "Bearer")], None));
}

#[test]
fn an_invalid_token_is_401_on_every_request() {
    let server = TestServer::start();
    server.create("public", "read", &[]);
    for path in ["/articles", "/articles/1", "/articles/999", "/nowhere"] {
        assert_401(&get_as(&server, path, "art_forged"));
    }
    assert_401(&write(
        &server,
        "POST",
        "/articles",
        Some("art_forged"),
        json!({"title": "t", "content": "c"}),
    ));
    assert_eq!(server.get("/articles/1").status, 200, "reads need no token");
}

#[test]
fn admin_commands_report_clear_errors() {
    let server = TestServer::start();
    add_user(&server, "carol");
    let db = server.db();
    let (code, _, err) = admin(&db, &["user", "add", "CAROL"]);
    assert_eq!(code, 1);
    assert!(err.contains("taken"), "{err}");
    let (code, _, err) = admin(&db, &["user", "add", "no spaces"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a valid username"), "{err}");
    let (code, _, err) = admin(&db, &["token", "new", "dave"]);
    assert_eq!(code, 1);
    assert!(err.contains("no user"), "{err}");
    let (code, _, err) = admin(&db, &["token", "revoke", "dave"]);
    assert_eq!(code, 1);
    assert!(err.contains("no user"), "{err}");
}

#[test]
fn articles_carry_their_author_and_filter_by_it() {
    let server = TestServer::start();
    let token = add_user(&server, "Erin");
    let created = write(
        &server,
        "POST",
        "/articles",
        Some(&token),
        json!({"title": "mine", "content": "c"}),
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
    let token = add_user(&server, "frank");
    let body = json!({"title": "t", "content": "c"});
    assert_401(&write(&server, "POST", "/articles", None, body.clone()));
    let created = write(&server, "POST", "/articles", Some(&token), body.clone());
    assert_eq!(created.status, 201);
    let path = format!("/articles/{}", created.json()["id"]);
    assert_401(&write(&server, "PATCH", &path, None, json!({"title": "x"})));
    assert_401(&write(&server, "PUT", "/articles/999", None, json!({})));
    assert_401(&server.request("DELETE", &path, &[], None));
    assert_eq!(server.get(&path).status, 200, "reads stay open");
    assert_eq!(server.get("/articles").header("X-Total-Count"), Some("1"));
}

#[test]
fn only_the_author_may_modify_an_authored_article() {
    let server = TestServer::start();
    let owner = add_user(&server, "grace");
    let other = add_user(&server, "heidi");
    let created = write(
        &server,
        "POST",
        "/articles",
        Some(&owner),
        json!({"title": "t", "content": "c"}),
    );
    let path = format!("/articles/{}", created.json()["id"]);

    write(
        &server,
        "PATCH",
        &path,
        Some(&other),
        json!({"title": "hijack"}),
    )
    .problem(403);
    write(
        &server,
        "PUT",
        &path,
        Some(&other),
        json!({"title": "x", "content": "y"}),
    )
    .problem(403);
    server
        .request("DELETE", &path, &[("Authorization", &bearer(&other))], None)
        .problem(403);
    assert_401(&write(
        &server,
        "PATCH",
        &path,
        None,
        json!({"title": "anon"}),
    ));
    assert_401(&server.request("DELETE", &path, &[], None));
    // 403 comes before the body is judged.
    write(&server, "PATCH", &path, Some(&other), json!({"title": ""})).problem(403);
    assert_eq!(server.get(&path).json()["title"], "t", "nothing changed");

    let patched = write(
        &server,
        "PATCH",
        &path,
        Some(&owner),
        json!({"title": "mine"}),
    );
    assert_eq!(patched.status, 200);
    assert_eq!(patched.json()["author"]["username"], "grace");
    let deleted = server.request("DELETE", &path, &[("Authorization", &bearer(&owner))], None);
    assert_eq!(deleted.status, 204);
}

#[test]
fn anyone_may_modify_an_anonymous_article() {
    let server = TestServer::start();
    let token = add_user(&server, "ivan");
    let created = server.create("anon", "c", &[]);
    let path = format!("/articles/{}", created["id"]);
    assert_eq!(
        write(&server, "PATCH", &path, None, json!({"title": "by anyone"})).status,
        200
    );
    let patched = write(
        &server,
        "PATCH",
        &path,
        Some(&token),
        json!({"title": "by ivan"}),
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
    let token = add_user(&server, "judy");
    let (code, out, _) = admin(&server.db(), &["token", "new", "judy"]);
    assert_eq!(code, 0);
    let second = out.lines().last().unwrap().to_owned();
    assert_ne!(second, token);

    let mut conn = Conn::open(server.addr);
    let auth = bearer(&token);
    assert_eq!(
        conn.request("GET", "/me", &[("Authorization", &auth)], None)
            .status,
        200
    );
    assert_eq!(get_as(&server, "/me", &second).status, 200);

    let (code, out, _) = admin(&server.db(), &["token", "revoke", "judy"]);
    assert_eq!(code, 0);
    assert!(out.contains("revoked 2"), "{out}");
    assert_401(&conn.request("GET", "/me", &[("Authorization", &auth)], None));
    assert_401(&get_as(&server, "/me", &second));
}

#[test]
fn tokens_never_reach_the_database_or_the_logs() {
    let server = TestServer::start();
    let token = add_user(&server, "mallory");
    let auth = bearer(&token);
    let mut conn = Conn::open(server.addr);
    for _ in 0..3 {
        assert_eq!(
            conn.request("GET", "/me", &[("Authorization", &auth)], None)
                .status,
            200
        );
    }
    assert_401(&conn.request(
        "GET",
        "/me",
        &[("Authorization", &format!("Bearer {token}x"))],
        None,
    ));
    std::thread::sleep(std::time::Duration::from_millis(100));

    let secret = token.strip_prefix("art_").unwrap();
    for entry in std::fs::read_dir(server.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(!found, "token text found in {}", path.display());
    }
    if crate::support::postgres() {
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
