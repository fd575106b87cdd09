//! Data out of the real binary: `articles export` (JSON Lines, one
//! snapshot, also while a server writes) and `articles backup` (a copy of a
//! live SQLite database that passes its check and serves).

use std::collections::BTreeMap;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use serde_json::{json, Value};

use crate::spawned::{run, stderr, TestServer};
use crate::support::bearer;
use crate::support::Conn;

/// `articles export` of `server`'s database to standard output: the lines,
/// parsed, and standard error.
fn export(server: &TestServer) -> (Vec<Value>, String) {
    let output = run(&["export", "--db", &server.db()], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    let lines = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    (lines, stderr(&output))
}

#[test]
fn export_writes_users_then_articles_as_the_api_shows_them_and_never_a_token() {
    let server = TestServer::start();
    let token = server.add_user("alice");
    server.add_user("Bob");
    let auth = bearer(&token);
    let body = json!({"title": "é \"q\" \u{1f980}", "content": "line\nbreak", "tags": ["b", "a"]});
    let resp = server.send_json("POST", "/articles", &[("Authorization", &auth)], &body);
    assert_eq!(resp.status, 201);
    server.create("anonymous", "c", &[]);
    let deleted = server.create("deleted", "c", &[]);
    let path = format!("/articles/{}", deleted["id"]);
    assert_eq!(server.request("DELETE", &path, &[], None).status, 204);

    let (lines, err) = export(&server);
    let users: Vec<&Value> = lines.iter().take(2).map(|l| &l["user"]).collect();
    assert_eq!(users[0]["username"], "alice");
    assert_eq!(users[1]["username"], "Bob");
    for user in &users {
        let keys: Vec<&str> = user
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(keys, ["created_at", "id", "username"], "{user}");
    }
    let articles: Vec<&Value> = lines[2..].iter().map(|l| &l["article"]).collect();
    assert_eq!(articles.len(), 2);
    for article in &articles {
        // Exactly what GET answers.
        let got = server.get(&format!("/articles/{}", article["id"]));
        assert_eq!(&got.json(), *article);
    }
    let text = serde_json::to_string(&lines).unwrap();
    assert!(!text.contains(&token) && !text.to_lowercase().contains("token"));
    // Not a terminal: no progress line, one summary.
    assert!(!err.contains('\r'), "{err}");
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("exported 2 user(s) and 2 article(s) in "),
        "{err}"
    );
}

#[test]
fn export_under_concurrent_writes_is_one_snapshot() {
    let server = TestServer::start();
    let mut conn = server.connect();
    for n in 0..1500 {
        let resp = conn.create(&json!({"title": format!("seed {n}"), "content": "x".repeat(500)}));
        assert_eq!(resp.status, 201);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (addr, stop) = (server.addr, Arc::clone(&stop));
            thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let body = json!({"title": format!("w{w} {n}"), "content": "y"});
                    assert_eq!(conn.create(&body).status, 201);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let (lines, _) = export(&server);
    stop.store(true, Ordering::Relaxed);
    let written: u32 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(written > 0, "the writers wrote during the export");
    // Articles are only created: a snapshot is every id up to some N, with
    // no gap, each whole.
    let ids: Vec<i64> = lines
        .iter()
        .map(|l| l["article"]["id"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = (1..=ids.len() as i64).collect();
    assert_eq!(ids, expected);
    assert!(ids.len() >= 1500);
}

#[test]
fn export_to_a_file_is_whole_or_absent() {
    let server = TestServer::start();
    server.create("one", "c", &[]);
    let file = server.dir.path().join("out.jsonl");
    let file = file.to_str().unwrap();
    let output = run(&["export", "--db", &server.db(), "--output", file], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
    assert_eq!(fs::read_to_string(file).unwrap().lines().count(), 1);
    assert!(!std::path::Path::new(&format!("{file}.partial")).exists());

    let nowhere = server.dir.path().join("missing/out.jsonl");
    let output = run(
        &[
            "export",
            "--db",
            &server.db(),
            "--output",
            nowhere.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("missing/out.jsonl"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn export_and_backup_of_a_missing_database_fail_and_create_nothing() {
    let dir = crate::support::database::TempDir::new();
    let db = dir.path().join("none.db");
    let db = db.to_str().unwrap();
    let copy = dir.path().join("copy.db");
    for args in [
        vec!["export", "--db", db],
        vec!["backup", copy.to_str().unwrap(), "--db", db],
    ] {
        let output = run(&args, &[]);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let message = stderr(&output);
        assert!(message.contains("none.db"), "{message}");
    }
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing created"
    );
}

#[test]
#[cfg_attr(feature = "postgres", ignore = "SQLite only: backs up the SQLite file")]
fn backup_of_a_live_database_is_consistent_whole_and_serves() {
    let server = TestServer::start();
    let mut conn = server.connect();
    for n in 0..300 {
        assert_eq!(
            conn.create(&json!({"title": format!("a{n}"), "content": "c"}))
                .status,
            201
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (addr, stop) = (server.addr, Arc::clone(&stop));
        thread::spawn(move || {
            let mut conn = Conn::open(addr);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(
                    conn.create(&json!({"title": format!("b{n}"), "content": "c"}))
                        .status,
                    201
                );
                n += 1;
            }
            n
        })
    };
    let copy = server.dir.path().join("copy.db");
    let copy = copy.to_str().unwrap().to_owned();
    let output = run(&["backup", &copy, "--db", &server.db()], &[]);
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(summary.contains("integrity ok"), "{summary}");
    assert!(
        !std::path::Path::new(&format!("{copy}-wal")).exists(),
        "one file"
    );

    // The copy serves: a prefix of ids, each as the original has it.
    let original: BTreeMap<i64, Value> = crate::support::ledger::fetch_all(server.addr);
    let restored = TestServer::start_on(&copy, &[]);
    let copied = crate::support::ledger::fetch_all(restored.addr);
    assert!(copied.len() >= 300);
    let ids: Vec<i64> = copied.keys().copied().collect();
    assert_eq!(ids, (1..=copied.len() as i64).collect::<Vec<_>>());
    for (id, article) in &copied {
        assert_eq!(Some(article), original.get(id));
    }

    // Never over an existing file.
    let before = fs::read(&copy).unwrap();
    let again = run(&["backup", &copy, "--db", &server.db()], &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("exists"), "{}", stderr(&again));
    drop(restored);
    assert_eq!(fs::read(&copy).unwrap(), before);
}

#[test]
fn backup_of_postgresql_says_to_use_pg_dump() {
    let output = run(
        &[
            "backup",
            "/tmp/never.db",
            "--db",
            "postgres://u@127.0.0.1/none",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("pg_dump"), "{}", stderr(&output));
    assert!(!std::path::Path::new("/tmp/never.db").exists());
}
