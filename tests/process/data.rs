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
    // Articles are only created: the seeded ones all there, in id order,
    // each once and whole. On SQLite ids commit in order, so a snapshot is
    // every id up to some N; on PostgreSQL an id taken by a transaction
    // that commits later may be missing while a larger one is there.
    let ids: Vec<i64> = lines
        .iter()
        .map(|l| l["article"]["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order, once each");
    assert_eq!(ids[..1500], (1..=1500).collect::<Vec<i64>>());
    if !crate::support::database::postgres() {
        let expected: Vec<i64> = (1..=ids.len() as i64).collect();
        assert_eq!(ids, expected);
    }
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

/// `articles import` with `args` into `db`.
fn import(db: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--db", db]);
    run(&all, &[])
}

/// Every article of `server`, as `GET /articles/{id}` answers.
fn articles(server: &TestServer) -> BTreeMap<i64, Value> {
    crate::support::ledger::fetch_all(server.addr)
        .into_keys()
        .map(|id| (id, server.get(&format!("/articles/{id}")).json()))
        .collect()
}

/// A server with users, authored and anonymous articles, tags, updates
/// and a deletion.
fn seeded() -> TestServer {
    let server = TestServer::start();
    let alice = bearer(&server.add_user("alice"));
    server.add_user("bob");
    for n in 0..30 {
        let body = json!({"title": format!("title {n} é"), "content": format!("findme{n} text"),
                          "tags": [format!("t{}", n % 3), "all"]});
        let auth = [("Authorization", alice.as_str())];
        let headers: &[(&str, &str)] = if n % 2 == 0 { &auth } else { &[] };
        assert_eq!(
            server.send_json("POST", "/articles", headers, &body).status,
            201
        );
    }
    let resp = server.send_json("PATCH", "/articles/2", &[], &json!({"title": "changed"}));
    assert_eq!(resp.status, 200);
    assert_eq!(
        server.request("DELETE", "/articles/6", &[], None).status,
        204
    );
    server
}

#[test]
fn export_then_import_copies_every_article_users_and_search() {
    let source = seeded();
    let file = source.dir.path().join("all.jsonl");
    let file = file.to_str().unwrap().to_owned();
    let out = run(&["export", "--db", &source.db(), "--output", &file], &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    let target = TestServer::start();
    let out = import(&target.db(), &[&file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        summary.starts_with("imported 29 article(s) (0 skipped as existing) and 2 new user(s) in "),
        "{summary}"
    );
    assert_eq!(articles(&target), articles(&source));
    assert_eq!(target.total(), source.total());
    // The same search, the same listing by tag and author.
    for query in [
        "/articles?q=findme7",
        "/articles?tag=t1&per_page=50",
        "/articles?author=alice&per_page=50",
    ] {
        assert_eq!(
            target.get(query).json(),
            source.get(query).json(),
            "{query}"
        );
    }
    // Ids go on after the largest imported; the users' ids came along.
    assert_eq!(target.create("next", "c", &[])["id"], 31);
    let me = target.request("GET", "/articles/1", &[], None).json();
    assert_eq!(me["author"]["username"], "alice");
}

#[test]
#[cfg_attr(
    not(feature = "postgres"),
    ignore = "needs PostgreSQL: cargo test --features postgres with ARTICLES_TEST_POSTGRES set"
)]
fn a_sqlite_export_imports_into_postgresql_and_answers_the_same() {
    let dir = crate::support::database::TempDir::new();
    let sqlite = dir.path().join("source.db");
    let source = TestServer::start_on(sqlite.to_str().unwrap(), &[]);
    let alice = bearer(&source.add_user("alice"));
    for n in 0..20 {
        let body =
            json!({"title": format!("t{n} ü"), "content": "c", "tags": ["x", format!("n{n}")]});
        let resp = source.send_json("POST", "/articles", &[("Authorization", &alice)], &body);
        assert_eq!(resp.status, 201);
    }
    let out = run(&["export", "--db", sqlite.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = dir.path().join("all.jsonl");
    fs::write(&file, &out.stdout).unwrap();
    let target = TestServer::start(); // PostgreSQL
    let out = import(&target.db(), &[file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(articles(&target), articles(&source));
    assert_eq!(target.create("next", "c", &[])["id"], 21);
}

#[test]
fn a_db_json_an_array_and_standard_input_import() {
    let server = TestServer::start();
    let dir = server.dir.path();
    let db_json = dir.join("db.json");
    fs::write(
        &db_json,
        r#"{"posts": [1], "articles": [
             {"id": 10, "title": "first", "content": "c", "tags": ["a"], "author": "carol",
              "created_at": "2026-01-02T03:04:05.678+01:00"},
             {"title": "second", "content": "c"}
           ], "comments": {"x": 1}}"#,
    )
    .unwrap();
    let out = import(&server.db(), &[db_json.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = server.get("/articles/10").json();
    assert_eq!(first["author"]["username"], "carol");
    assert_eq!(first["created_at"], "2026-01-02T02:04:05.678Z");
    assert_eq!(first["updated_at"], first["created_at"]);
    assert_eq!(server.get("/articles/11").json()["title"], "second");

    let array = dir.join("array.json");
    fs::write(&array, r#"[{"title": "third", "content": "c"}]"#).unwrap();
    assert!(import(&server.db(), &[array.to_str().unwrap()])
        .status
        .success());
    let mut child = crate::spawned::binary()
        .args(["import", "-", "--db", &server.db()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"article\": {\"title\": \"fourth\", \"content\": \"c\"}}\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(server.total(), "4");
}

#[test]
fn bad_input_is_one_line_naming_where_and_nothing_is_imported() {
    let server = TestServer::start();
    server.create("kept", "c", &[]);
    let dir = server.dir.path().to_owned();
    let before = export(&server).0;
    let ok = r#"{"article": {"title": "fine", "content": "c"}}"#;
    for (name, input, expected) in [
        ("not_json", format!("{ok}\n{{oops\n"), "line 2: not JSON"),
        ("invalid", format!("{ok}\n{{\"article\": {{\"title\": \"\", \"content\": \"c\"}}}}\n"), "line 2: title"),
        ("bad_user", format!("{ok}\n{{\"user\": {{\"username\": \"no way\"}}}}\n"), "line 2: username"),
        ("bad_author", format!("{ok}\n{{\"article\": {{\"title\": \"t\", \"content\": \"c\", \"author\": \"a b\"}}}}\n"), "line 2: author"),
        ("twice", "{\"article\": {\"id\": 9, \"title\": \"t\", \"content\": \"c\"}}\n\n{\"article\": {\"id\": 9, \"title\": \"t\", \"content\": \"c\"}}\n".into(), "line 3: id 9 is in the input twice (first at line 1)"),
        ("exists", "{\"article\": {\"id\": 1, \"title\": \"t\", \"content\": \"c\"}}\n".into(), "line 1: an article with id 1 exists"),
        ("array", r#"[{"title": "t", "content": "c"}, {"title": "t"}]"#.into(), "article 2: content"),
        ("neither", r#"{"posts": []}"#.into(), "without an \"articles\" array"),
        (
            "record",
            format!("{ok}\n{{\"comment\": {{}}}}\n"),
            "line 2: expected",
        ),
    ] {
        let file = dir.join(name);
        fs::write(&file, input).unwrap();
        let out = import(&server.db(), &[file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let message = stderr(&out);
        let last = message.lines().last().unwrap_or_default();
        assert!(last.contains(expected) && last.contains("nothing was imported"), "{name}: {message}");
        assert_eq!(export(&server).0, before, "{name}: the database changed");
    }
    // The count of articles is still kept (its trigger is back).
    server.create("after", "c", &[]);
    assert_eq!(server.total(), "2");
    // A file that is not there creates no database either.
    let nowhere = dir.join("nowhere.db");
    let out = import(
        nowhere.to_str().unwrap(),
        &[dir.join("missing.jsonl").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing.jsonl"), "{}", stderr(&out));
    assert!(!nowhere.exists());
}

#[test]
#[cfg_attr(
    feature = "postgres",
    ignore = "SQLite only: holds SQLite's write lock"
)]
fn a_locked_database_fails_the_import_and_keeps_it_as_it_was() {
    let server = TestServer::start();
    server.create("kept", "c", &[]);
    let file = server.dir.path().join("one.jsonl");
    fs::write(
        &file,
        "{\"article\": {\"title\": \"t\", \"content\": \"c\"}}\n",
    )
    .unwrap();
    let lock = crate::support::write_lock::WriteLock::hold(&server);
    let out = import(&server.db(), &[file.to_str().unwrap()]);
    lock.release();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("busy"), "{}", stderr(&out));
    assert_eq!(server.total(), "1");
}

#[test]
fn an_import_resets_followers_of_the_change_feed() {
    let server = TestServer::start();
    server.create("before", "c", &[]);
    let position = server.get("/events").json()["next"].as_i64().unwrap();
    let file = server.dir.path().join("one.jsonl");
    fs::write(
        &file,
        "{\"article\": {\"title\": \"imported\", \"content\": \"c\"}}\n",
    )
    .unwrap();
    let out = import(&server.db(), &[file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // No event per article; a follower from before the import is told to
    // reload (within the second it takes the server to see the import).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let page = loop {
        let page = server.get(&format!("/events?after={position}")).json();
        if page["reset"] == true || std::time::Instant::now() > deadline {
            break page;
        }
        thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(page["reset"], true, "{page}");
    assert!(page["events"].as_array().unwrap().is_empty());
    let next = page["next"].as_i64().unwrap();
    assert!(next > position);
    // Changes after it follow on from there.
    server.create("after", "c", &[]);
    let after = server.get(&format!("/events?after={next}")).json();
    assert_eq!(after["events"][0]["data"]["title"], "after", "{after}");
}

#[test]
#[cfg_attr(
    feature = "postgres",
    ignore = "the same code on both backends; 60,000 articles take long on PostgreSQL"
)]
fn on_a_terminal_an_import_shows_its_progress_in_place() {
    let server = TestServer::start();
    let file = server.dir.path().join("many.jsonl");
    let lines: String = (1..=60_000)
        .map(|n| format!("{{\"article\": {{\"title\": \"a{n}\", \"content\": \"c\"}}}}\n"))
        .collect();
    fs::write(&file, lines).unwrap();
    // `script` runs the command with a pseudo-terminal as its output.
    let command = format!(
        "{} import {} --db {}",
        env!("CARGO_BIN_EXE_articles"),
        file.display(),
        server.db()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("script (util-linux)");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\rimported "), "no progress line: {text:?}");
    assert!(text.contains("imported 60000 article(s)"), "{text:?}");
}
