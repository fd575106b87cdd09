//! The command line of the real binary: help, version, bad usage, variables,
//! migrate, and refusing a database from the future.

mod common;

use std::process::Output;

use common::{binary, TempDir, TestServer};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = binary();
    command.args(args).env_remove("RUST_LOG");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

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
    let flag_db = dir.path().join("from-flag.db");
    let server = TestServer::launch(
        dir,
        &["--db", flag_db.to_str().unwrap()],
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
    assert!(
        flag_db.exists() && !env_db.exists(),
        "--db wins over ARTICLES_DB"
    );
}

#[test]
fn memory_database_from_the_environment() {
    let dir = TempDir::new();
    let server = TestServer::start_in(dir, &[], &["--db", ":memory:"]);
    server.create("in memory", "only", &[]);
    assert_eq!(server.get("/articles").header("X-Total-Count"), Some("1"));
    assert!(!std::path::Path::new(":memory:").exists());
}

#[test]
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
    let db = dir.path().join("p.db");
    let output = run(&["--addr", &addr, "--db", db.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("in use"), "{}", stderr(&output));
}
