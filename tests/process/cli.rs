//! The command line of the real binary: help, version, bad usage,
//! variables, migrate, refusing a database from the future, the admin
//! commands' errors, and tokens made on the command line.

use std::process::Output;

use crate::spawned::{binary, run, stderr, TestServer};
use crate::support::bearer;
use crate::support::database::{postgres, psql, TempDir};

#[test]
fn help_and_version_exit_zero() {
    let help = run(&["--help"], &[]);
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--addr",
        "--db",
        "--workers",
        "--pool-size",
        "--max-body",
        "ARTICLES_DB",
        "migrate",
    ] {
        assert!(text.contains(flag), "help lacks {flag}");
    }
    let version = run(&["--version"], &[]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8(version.stdout).unwrap().trim(),
        format!("articles {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_flags_and_values_exit_2_with_one_line_naming_them() {
    for (args, env, name) in [
        (vec!["--bogus"], vec![], "--bogus"),
        (vec!["--workers", "0"], vec![], "--workers"),
        (vec!["--max-body", "lots"], vec![], "--max-body"),
        (vec!["--addr", "no-port"], vec![], "--addr"),
        (vec!["--db"], vec![], "--db"),
        (vec!["launch"], vec![], "launch"),
        (vec![], vec![("ARTICLES_WORKERS", "-3")], "ARTICLES_WORKERS"),
        (
            vec![],
            vec![("ARTICLES_IDLE_TIMEOUT", "0")],
            "ARTICLES_IDLE_TIMEOUT",
        ),
    ] {
        let output = run(&args, &env);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}");
        let message = stderr(&output);
        assert_eq!(message.lines().count(), 1, "{message}");
        assert!(message.contains(name), "{message}");
    }
}

#[test]
fn variables_configure_the_server_and_flags_win() {
    let dir = TempDir::new();
    let env_db = dir.path().join("from-env.db");
    // SQLite: dir/test.db; PostgreSQL: a fresh database.
    let flag_db = dir.database();
    let server = TestServer::launch(
        dir,
        &flag_db,
        &[],
        &[
            ("ARTICLES_DB", env_db.to_str().unwrap()),
            ("ARTICLES_ADDR", "127.0.0.1:1"),
            ("ARTICLES_MAX_BODY", "10"),
        ],
    );
    assert_ne!(server.addr.port(), 0, "the real port is printed");
    let resp = server.request(
        "POST",
        "/articles",
        &[("Content-Type", "application/json")],
        Some(br#"{"title":"t","content":"c"}"#),
    );
    assert_eq!(resp.status, 413, "ARTICLES_MAX_BODY applies");
    assert!(!env_db.exists(), "--db wins over ARTICLES_DB");
    if !postgres() {
        assert!(std::path::Path::new(&flag_db).exists(), "--db is used");
    }
    assert_eq!(server.get("/articles").header("X-Total-Count"), Some("0"));
}

#[test]
#[cfg_attr(
    feature = "postgres",
    ignore = "SQLite only: `--db :memory:` is SQLite's in-memory database"
)]
fn memory_database_from_the_environment() {
    let server = TestServer::start_on(":memory:", &[]);
    server.create("in memory", "only", &[]);
    assert_eq!(server.get("/articles").header("X-Total-Count"), Some("1"));
    assert!(!std::path::Path::new(":memory:").exists());
}

#[test]
#[cfg_attr(
    feature = "postgres",
    ignore = "SQLite only: migrates a database file (see migrate_creates_the_schema_once_on_postgres)"
)]
fn migrate_creates_the_schema_once() {
    let dir = TempDir::new();
    let db = dir.path().join("m.db");
    let db = db.to_str().unwrap();
    let first = run(&["migrate", "--db", db], &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(String::from_utf8_lossy(&first.stdout).contains("schema version 0 -> "));
    let second = run(&["migrate"], &[("ARTICLES_DB", db)]);
    assert!(second.status.success());
    let out = String::from_utf8_lossy(&second.stdout).into_owned();
    let (before, after) = out
        .trim()
        .trim_start_matches("schema version ")
        .split_once(" -> ")
        .unwrap();
    assert_eq!(before, after, "nothing left to apply: {out}");
}

#[test]
#[cfg_attr(
    feature = "postgres",
    ignore = "SQLite only: sets SQLite's user_version (see a_newer_schema_version_is_refused_on_postgres)"
)]
fn a_database_from_a_newer_version_is_refused() {
    let dir = TempDir::new();
    let db = dir.path().join("future.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", 9999).unwrap();
    drop(conn);
    let output = run(
        &["--addr", "127.0.0.1:0", "--db", db.to_str().unwrap()],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("newer"), "{}", stderr(&output));
    let output = run(&["migrate", "--db", db.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn a_taken_port_is_a_clear_failure() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = TempDir::new();
    let db = dir.database();
    let output = run(&["--addr", &addr, "--db", &db], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("in use"), "{}", stderr(&output));
}

#[test]
fn a_postgres_url_says_what_the_build_lacks_or_what_is_wrong() {
    // Nothing listens on port 1: with the feature, a clear failure to
    // connect; without it, how to get a build that has it.
    let url = "postgres://nobody@127.0.0.1:1/none";
    let expected = match cfg!(feature = "postgres") {
        true => "database unavailable",
        false => "--features postgres",
    };
    for args in [&["--db", url][..], &["migrate", "--db", url][..]] {
        let output = run(args, &[]);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let err = stderr(&output);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

/// `schema version A -> B` from `articles migrate`.
fn versions(output: &Output) -> (u32, u32) {
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let (before, after) = out
        .trim()
        .trim_start_matches("schema version ")
        .split_once(" -> ")
        .unwrap_or_else(|| panic!("not `schema version A -> B`: {out:?}"));
    (before.parse().unwrap(), after.parse().unwrap())
}

/// PostgreSQL only: migrates an empty PostgreSQL database.
#[test]
#[cfg_attr(
    not(feature = "postgres"),
    ignore = "needs PostgreSQL: cargo test --features postgres with ARTICLES_TEST_POSTGRES set"
)]
fn migrate_creates_the_schema_once_on_postgres() {
    let dir = TempDir::new();
    let url = dir.database();
    let first = run(&["migrate", "--db", &url], &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let (before, latest) = versions(&first);
    assert_eq!(before, 0, "a new database");
    assert!(latest > 0);
    let tables = psql(
        &url,
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'articles'",
    );
    assert_eq!(tables.trim(), "1", "migrate made the articles table");
    let second = run(&["migrate"], &[("ARTICLES_DB", &url)]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(versions(&second), (latest, latest), "nothing left to apply");
    // A server on the migrated database serves it.
    let server = TestServer::start_on(&url, &[]);
    server.create("after migrate", "c", &[]);
    assert_eq!(server.get("/articles").header("X-Total-Count"), Some("1"));
}

/// PostgreSQL only: moves a PostgreSQL database's schema version forward.
#[test]
#[cfg_attr(
    not(feature = "postgres"),
    ignore = "needs PostgreSQL: cargo test --features postgres with ARTICLES_TEST_POSTGRES set"
)]
fn a_newer_schema_version_is_refused_on_postgres() {
    let dir = TempDir::new();
    let url = dir.database();
    let migrated = run(&["migrate", "--db", &url], &[]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let (_, latest) = versions(&migrated);
    // The schema version is wherever the backend keeps it: the one table
    // of the schema with a `version` column (one row, or one per migration).
    let found = psql(
        &url,
        "SELECT table_name FROM information_schema.columns \
         WHERE table_schema = current_schema() AND column_name = 'version'",
    );
    let tables: Vec<&str> = found.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        tables.len(),
        1,
        "expected one table with a `version` column holding the schema version, found {tables:?}"
    );
    let table = tables[0];
    let newer = latest + 9999;
    psql(
        &url,
        &format!(
            "UPDATE \"{table}\" SET version = {newer} \
             WHERE version = (SELECT max(version) FROM \"{table}\")"
        ),
    );
    let output = run_briefly(&["--addr", "127.0.0.1:0", "--db", &url]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("newer"), "{}", stderr(&output));
    let output = run_briefly(&["migrate", "--db", &url]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
}

/// Like `run`, but a process still running after 20 s is killed and the
/// test fails (a server that should have refused to start).
fn run_briefly(args: &[&str]) -> Output {
    let mut child = binary()
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!("{args:?} still running after 20 s: {}", stderr(&output));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn admin_commands_report_clear_errors() {
    let server = TestServer::start();
    server.add_user("carol");
    let db = server.db();
    let taken = run(&["user", "add", "CAROL", "--db", &db], &[]);
    assert_eq!(taken.status.code(), Some(1));
    assert!(stderr(&taken).contains("taken"), "{}", stderr(&taken));
    let invalid = run(&["user", "add", "no spaces", "--db", &db], &[]);
    assert_eq!(invalid.status.code(), Some(2));
    assert!(
        stderr(&invalid).contains("not a valid username"),
        "{}",
        stderr(&invalid)
    );
    for command in ["new", "revoke"] {
        let unknown = run(&["token", command, "dave", "--db", &db], &[]);
        assert_eq!(unknown.status.code(), Some(1));
        assert!(stderr(&unknown).contains("no user"), "{}", stderr(&unknown));
    }
}

/// PostgreSQL only: two servers on one PostgreSQL database.
#[test]
#[cfg_attr(
    not(feature = "postgres"),
    ignore = "needs PostgreSQL: cargo test --features postgres with ARTICLES_TEST_POSTGRES set"
)]
fn a_token_made_on_the_command_line_works_on_both_servers() {
    let a = TestServer::start_with(&["--auth", "required"]);
    let b = a.another(&["--auth", "required"]);
    let added = run(&["user", "add", "alice", "--db", &a.db()], &[]);
    assert!(added.status.success(), "{}", stderr(&added));
    let out = String::from_utf8(added.stdout).unwrap();
    let token = out.lines().last().unwrap().to_owned();
    let auth = bearer(&token);
    for server in [&a, &b] {
        let me = server.request("GET", "/me", &[("Authorization", &auth)], None);
        assert_eq!(me.status, 200, "{}", me.text());
        assert_eq!(me.json()["username"], "alice");
    }
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    let body = br#"{"title": "Mine", "content": "through the second server"}"#;
    let created = b.request("POST", "/articles", &headers, Some(body));
    assert_eq!(created.status, 201, "{}", created.text());
    let path = created.header("Location").unwrap().to_owned();
    assert_eq!(a.get(&path).json()["author"]["username"], "alice");
    let anonymous = a.request(
        "POST",
        "/articles",
        &[("Content-Type", "application/json")],
        Some(body),
    );
    anonymous.problem(401);
    let patched = a.request(
        "PATCH",
        &path,
        &headers,
        Some(br#"{"title": "Still mine"}"#),
    );
    assert_eq!(patched.status, 200, "{}", patched.text());

    // Revocation reaches both at once: tokens are never cached.
    let revoked = run(&["token", "revoke", "alice", "--db", &b.db()], &[]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let out = String::from_utf8(revoked.stdout).unwrap();
    assert!(out.contains("revoked 1"), "{out}");
    for server in [&a, &b] {
        let me = server.request("GET", "/me", &[("Authorization", &auth)], None);
        me.problem(401);
    }
}

#[test]
fn bad_webhook_flags_exit_2_without_echoing_the_secret() {
    let short = "whsec_c2hvcnRzZWNyZXQ="; // 11 bytes
    for (args, env, hidden, named) in [
        (
            vec!["--webhook-secret", short],
            None,
            "c2hvcnRzZWNyZXQ",
            "--webhook-secret",
        ),
        (
            vec![],
            Some("sk_live_0123456789abcdef"),
            "0123456789abcdef",
            "ARTICLES_WEBHOOK_SECRET",
        ),
        (
            vec!["--webhook-secret=MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            None,
            "MfKQ9r8G",
            "whsec_",
        ),
        (
            vec!["--webhook", "https://example.com/hook"],
            None,
            "\n\n",
            "TLS",
        ),
        (
            vec!["--webhook", "http://user:pw@example.com/"],
            None,
            "pw@",
            "--webhook",
        ),
    ] {
        let mut argv = vec!["--addr", "127.0.0.1:0", "--db", ":memory:"];
        argv.extend(&args);
        let env: Vec<(&str, &str)> = env
            .map(|value| ("ARTICLES_WEBHOOK_SECRET", value))
            .into_iter()
            .collect();
        let output = run(&argv, &env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(named), "{stderr}");
        assert!(!stderr.contains(hidden), "{stderr}");
        assert!(output.stdout.is_empty());
    }
    let help = run(&["--help"], &[]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--webhook URL") && help.contains("--webhook-secret SECRET"));
}

/// A new user's first minutes: on a terminal (standard output and error
/// on one screen) the token is the last line, after the log of the
/// migrations, and the log names the database's absolute path, so a
/// command run from another directory does not silently use another file.
#[test]
#[cfg_attr(
    feature = "postgres",
    ignore = "SQLite only: a database file relative to the working directory"
)]
fn user_add_ends_with_the_token_and_names_the_database_file() {
    let dir = TempDir::new();
    let screen = dir.path().join("screen");
    let file = std::fs::File::create(&screen).unwrap();
    let status = binary()
        .args(["user", "add", "alice", "--db", "relative.db"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .status()
        .unwrap();
    assert!(status.success());
    let shown = std::fs::read_to_string(&screen).unwrap();
    let last = shown.lines().last().unwrap();
    assert!(
        last.starts_with("art_"),
        "the last line is not the token:\n{shown}"
    );
    assert!(shown.contains("applied schema migration"), "{shown}");
    let absolute = dir.path().join("relative.db").canonicalize().unwrap();
    assert!(
        shown.contains(&format!("database: {}", absolute.display())),
        "{shown}"
    );
}
