//! Test helpers: start the real `articles` binary on port 0 with a temporary
//! database, and speak HTTP/1.1 to it over plain sockets.
//!
//! The database is SQLite (a file in the server's temporary directory) unless
//! `ARTICLES_TEST_POSTGRES` holds an admin URL of a PostgreSQL cluster
//! (`postgres://postgres@127.0.0.1:55432/postgres`, see `.ci/postgres`): then
//! each temporary directory that asks for a database gets a fresh PostgreSQL
//! database, created with `psql` and dropped when the last directory holding
//! it is dropped.
#![allow(dead_code)] // each test crate uses a different part

pub mod ledger;
pub mod procfs;
pub mod receiver;
pub mod rng;
pub mod sqlite_integrity;
pub mod wire;
pub mod write_lock;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// How long a test waits for any one response.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The variable that selects PostgreSQL: an admin URL of a cluster on which
/// the tests may create and drop databases.
pub const POSTGRES_VAR: &str = "ARTICLES_TEST_POSTGRES";

/// The admin URL of the PostgreSQL cluster under test, if the suite runs on
/// PostgreSQL.
pub fn postgres_admin() -> Option<String> {
    std::env::var(POSTGRES_VAR)
        .ok()
        .map(|url| url.trim().to_owned())
        .filter(|url| !url.is_empty())
}

/// Whether the suite runs on PostgreSQL (`ARTICLES_TEST_POSTGRES` set).
pub fn postgres() -> bool {
    postgres_admin().is_some()
}

/// For a test that depends on SQLite itself (its files, its locks, its
/// pragmas): on PostgreSQL says so and returns true, so that the test can
/// `if sqlite_only("reads the WAL file") { return; }`.
pub fn sqlite_only(why: &str) -> bool {
    if postgres() {
        println!("skipped on PostgreSQL: {why}");
        true
    } else {
        false
    }
}

/// For a test written for PostgreSQL only: on SQLite says so and returns
/// true.
pub fn postgres_only(why: &str) -> bool {
    if postgres() {
        false
    } else {
        println!("skipped on SQLite: {why}");
        true
    }
}

/// The `--db` value for a server whose files live in `dir`: the SQLite file
/// `dir/test.db`, or on PostgreSQL the URL of a fresh database that lives as
/// long as `dir` (the same one on every call).
pub fn database(dir: &TempDir) -> String {
    dir.database()
}

/// Runs `psql` on `url` with `sql`; returns its standard output (unaligned,
/// tuples only). Panics with psql's message if it fails.
pub fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("psql (PostgreSQL's client) must be on PATH: {e}"));
    assert!(
        output.status.success(),
        "psql {sql:?} on {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `admin` (a `postgres://` URL) with its database name replaced by `name`.
fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin, String::new()),
    };
    let authority_at = base.find("://").map_or(0, |at| at + 3);
    let authority_end = base[authority_at..]
        .find('/')
        .map_or(base.len(), |at| authority_at + at);
    format!("{}/{name}{query}", &base[..authority_end])
}

/// A PostgreSQL database made for one test; dropped (connections and all)
/// with the last handle.
pub struct PgDatabase {
    admin: String,
    name: String,
    url: String,
}

impl PgDatabase {
    /// Creates a database with a name no other test or run uses.
    fn create(admin: &str) -> PgDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "articles_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        psql(admin, &format!("CREATE DATABASE \"{name}\""));
        PgDatabase {
            admin: admin.to_owned(),
            url: with_database(admin, &name),
            name,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let output = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.admin,
                "-c",
                &sql,
            ])
            .stdin(Stdio::null())
            .output();
        match output {
            Ok(output) if output.status.success() => {}
            Ok(output) => eprintln!(
                "could not drop {}: {}",
                self.name,
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(err) => eprintln!("could not drop {}: {err}", self.name),
        }
    }
}

/// A temporary directory, removed on drop; on PostgreSQL also the owner of
/// the test's database (see `database`).
pub struct TempDir {
    path: PathBuf,
    postgres: OnceLock<Arc<PgDatabase>>,
}

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "articles-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir {
            path,
            postgres: OnceLock::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// See `database`.
    pub fn database(&self) -> String {
        match postgres_admin() {
            None => self.path.join("test.db").to_str().unwrap().to_owned(),
            Some(admin) => self
                .postgres
                .get_or_init(|| Arc::new(PgDatabase::create(&admin)))
                .url
                .clone(),
        }
    }

    /// A new temporary directory that shares this one's PostgreSQL database,
    /// if it has one, so that the database lives until both are dropped.
    pub fn sharing_database(&self) -> TempDir {
        let dir = TempDir::new();
        if let Some(db) = self.postgres.get() {
            let _ = dir.postgres.set(Arc::clone(db));
        }
        dir
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        // The database, if any, goes with the last directory holding it.
    }
}

/// The `articles` binary under test.
pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_articles"))
}

/// Runs the binary with `args` and the variables `env` (and no `RUST_LOG`,
/// so that standard error holds only what the command itself says) to its
/// end.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    binary()
        .args(args)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// What a run printed on standard error.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The `Authorization` value for a bearer `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A running server process.
pub struct TestServer {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: TempDir,
    /// The `--db` it was started with, if given on its command line.
    db: Option<String>,
}

impl TestServer {
    /// A server on a fresh database file.
    pub fn start() -> TestServer {
        TestServer::start_with(&[])
    }

    /// A server on a fresh database (see `database`), with extra arguments.
    pub fn start_with(args: &[&str]) -> TestServer {
        let dir = TempDir::new();
        let db = database(&dir);
        TestServer::start_in(dir, &["--db", &db], args)
    }

    /// A server on the database `db` (a `--db` value), with extra
    /// arguments, logging into a temporary directory of its own. The caller
    /// keeps `db` alive.
    pub fn start_on(db: &str, args: &[&str]) -> TestServer {
        TestServer::start_in(TempDir::new(), &["--db", db], args)
    }

    /// Another server on this server's database, with `args`: for
    /// PostgreSQL, two processes sharing one database. The database lives
    /// until both servers are dropped.
    pub fn another(&self, args: &[&str]) -> TestServer {
        let db = self.db();
        TestServer::start_in(self.dir.sharing_database(), &["--db", &db], args)
    }

    /// A server in `dir` with `base` then `extra` arguments.
    pub fn start_in(dir: TempDir, base: &[&str], extra: &[&str]) -> TestServer {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        TestServer::launch(dir, &args, &[])
    }

    /// A server in `dir` on port 0 with `args` and environment variables.
    pub fn launch(dir: TempDir, args: &[&str], env: &[(&str, &str)]) -> TestServer {
        let mut command = binary();
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--workers", "4"])
            .args(args)
            .envs(env.iter().copied());
        TestServer::spawn(dir, command)
    }

    /// Runs `command`, which must start a server on port 0 (possibly through
    /// a wrapper that execs it), logging to `stderr.log` in `dir`.
    pub fn spawn(dir: TempDir, mut command: Command) -> TestServer {
        let db = db_argument(&command);
        let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start articles");
        let addr = match read_listening_line(&mut child) {
            Ok(addr) => addr,
            Err(line) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.path().join("stderr.log"));
                let hint = if postgres() {
                    " (on PostgreSQL: is the binary built with `--features postgres`?)"
                } else {
                    ""
                };
                panic!(
                    "the server did not start{hint}: first line {line:?}; its log:\n{}",
                    log.unwrap_or_default()
                );
            }
        };
        TestServer {
            child,
            addr,
            dir,
            db,
        }
    }

    /// The `--db` value of this server: what it was started with, else its
    /// directory's database (see `database`). Give it to `articles user
    /// add --db`, `articles migrate --db` or another server.
    pub fn db(&self) -> String {
        self.db.clone().unwrap_or_else(|| self.dir.database())
    }

    /// The database file of a server started with `start` or `start_with`
    /// on SQLite. Only for tests that read or damage SQLite's files: guard
    /// them with `sqlite_only`.
    pub fn db_path(&self) -> PathBuf {
        assert!(
            !postgres(),
            "db_path() is the SQLite file: guard this test with sqlite_only(...)"
        );
        self.dir.path().join("test.db")
    }

    /// Everything the server has logged up to now, flushed: the server
    /// buffers its log for up to 100 ms, so this sends a request with a
    /// unique id and waits until its access line is in the file.
    pub fn flushed_log(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let marker = format!("log-marker-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.request("GET", "/healthz", &[("X-Request-Id", &marker)], None);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let log = self.log();
            if log.contains(&marker) {
                return log;
            }
            assert!(Instant::now() < deadline, "the log never showed {marker}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the server has logged so far (it buffers access lines for
    /// up to 100 ms; see `flushed_log`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// `X-Total-Count` of the unfiltered listing.
    pub fn total(&self) -> String {
        let resp = self.get("/articles");
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.header("X-Total-Count").unwrap().to_owned()
    }

    /// A new keep-alive connection.
    pub fn connect(&self) -> Conn {
        Conn::open(self.addr)
    }

    /// One request on a new connection.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        self.connect().request(method, path, headers, body)
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], None)
    }

    /// A write (POST, PUT, PATCH) of `body` as JSON, with extra `headers`.
    pub fn send_json(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Resp {
        let body = serde_json::to_vec(body).unwrap();
        self.send_json_bytes(method, path, headers, &body)
    }

    /// A write whose body is sent byte for byte as it is given (spelt any
    /// way, or not JSON at all), labelled `Content-Type: application/json`,
    /// with extra `headers`.
    pub fn send_json_bytes(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        self.request(method, path, &all, Some(body))
    }

    /// `POST /articles` of `body` as JSON.
    pub fn post(&self, body: &Value) -> Resp {
        self.send_json("POST", "/articles", &[], body)
    }

    /// Asserts that the server still answers a plain request promptly:
    /// `GET /articles` is 200 within 2 s.
    pub fn assert_serving(&self) {
        let started = Instant::now();
        assert_eq!(self.get("/articles").status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "slow: {:?}",
            started.elapsed()
        );
    }

    /// Creates an article and returns it.
    pub fn create(&self, title: &str, content: &str, tags: &[&str]) -> Value {
        let resp =
            self.post(&serde_json::json!({"title": title, "content": content, "tags": tags}));
        assert_eq!(resp.status, 201, "{}", resp.text());
        resp.json()
    }

    /// Writes raw bytes on a new connection and returns what the server
    /// sends until it closes the connection, goes quiet for 300 ms after
    /// answering, or `wait` passes.
    pub fn raw(&self, bytes: &[u8], wait: Duration) -> Vec<u8> {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(wait)).unwrap();
        let _ = stream.write_all(bytes);
        let mut out = Vec::new();
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    stream
                        .set_read_timeout(Some(Duration::from_millis(300)))
                        .unwrap();
                }
            }
        }
        out
    }

    /// Creates a user on the server's database with the command line and
    /// returns its token (the last line printed).
    pub fn add_user(&self, name: &str) -> String {
        let output = run(&["user", "add", name, "--db", &self.db()], &[]);
        assert!(output.status.success(), "{output:?}");
        let out = String::from_utf8(output.stdout).unwrap();
        out.lines().last().unwrap().to_owned()
    }

    /// Kills the server (SIGKILL: no clean shutdown) and starts a new one on
    /// the same database, with the default flags.
    pub fn kill_and_restart(self) -> TestServer {
        self.restart_with("KILL", &[])
    }

    /// Stops the server, if still running, with `signal` ("KILL": no clean
    /// shutdown; "TERM": a graceful one), then starts a new one on the same
    /// database (file or PostgreSQL database) with `args`.
    pub fn restart_with(mut self, signal: &str, args: &[&str]) -> TestServer {
        if self.alive() {
            self.signal(signal);
            self.wait_exit(Duration::from_secs(15))
                .unwrap_or_else(|| panic!("still running 15 s after SIG{signal}"));
        }
        let db = self.db();
        // The directory (and with it a PostgreSQL database) moves on to the
        // new server.
        let dir = std::mem::replace(&mut self.dir, TempDir::new());
        drop(self);
        TestServer::start_in(dir, &["--db", &db], args)
    }

    /// The value of one series on `/metrics` (name and labels exactly as
    /// rendered), if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let text = self.get("/metrics").text();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|value| value.parse().unwrap())
    }

    /// Polls `/metrics` until `series` has `value`, for `TIMEOUT` at most.
    pub fn await_metric(&self, series: &str, value: f64) {
        let deadline = Instant::now() + TIMEOUT;
        while self.metric(series) != Some(value) {
            assert!(
                Instant::now() < deadline,
                "{series} is {:?}, never {value}",
                self.metric(series)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the server said, the last lines first
        // to matter: CI keeps only the test's output.
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- the server's last log lines ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Reads `listening on http://HOST:PORT` from the child's standard output;
/// the line read otherwise.
fn read_listening_line(child: &mut Child) -> Result<SocketAddr, String> {
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    line.trim()
        .strip_prefix("listening on http://")
        .and_then(|addr| addr.parse().ok())
        .ok_or(line)
}

/// The `--db` value on a server's command line (the last one wins), or in
/// its `ARTICLES_DB`.
fn db_argument(command: &Command) -> Option<String> {
    let args: Vec<String> = command
        .get_args()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let mut db = None;
    for (at, arg) in args.iter().enumerate() {
        if arg == "--db" {
            db = args.get(at + 1).cloned();
        } else if let Some(value) = arg.strip_prefix("--db=") {
            db = Some(value.to_owned());
        }
    }
    db.or_else(|| {
        command
            .get_envs()
            .find(|(name, _)| *name == "ARTICLES_DB")
            .and_then(|(_, value)| value.map(|v| v.to_string_lossy().into_owned()))
    })
}

/// A response as read off the wire.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// What a replayed response must repeat: the status, `Location`, `ETag`
    /// and `Content-Type`, and the body.
    pub fn saved_part(&self) -> (u16, [Option<&str>; 3], &[u8]) {
        (
            self.status,
            [
                self.header("Location"),
                self.header("ETag"),
                self.header("Content-Type"),
            ],
            &self.body,
        )
    }

    /// The first value of a header, any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Asserts a problem+json error with this status, and returns its body.
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.header("Content-Type"),
            Some("application/problem+json; charset=utf-8")
        );
        let body = self.json();
        assert_eq!(body["status"], status);
        assert_eq!(body["type"], "about:blank");
        assert!(body["detail"].is_string());
        assert_eq!(body["request_id"].as_str(), self.header("X-Request-Id"));
        body
    }

    /// The fields named in a 422's `errors`.
    pub fn invalid_fields(&self) -> Vec<String> {
        let body = self.problem(422);
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// One `POST /articles` of `body` with `Idempotency-Key: key` to each of
/// `addrs`, each from a thread of its own and all released at once; the
/// responses in the order of `addrs`.
pub fn keyed_posts_at_once(addrs: &[SocketAddr], key: &str, body: &'static str) -> Vec<Resp> {
    let barrier = Arc::new(std::sync::Barrier::new(addrs.len()));
    let handles: Vec<_> = addrs
        .iter()
        .map(|&addr| {
            let (key, barrier) = (key.to_owned(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let headers = [
                    ("Content-Type", "application/json"),
                    ("Idempotency-Key", key.as_str()),
                ];
                barrier.wait();
                conn.request("POST", "/articles", &headers, Some(body.as_bytes()))
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// One keep-alive connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            reader: BufReader::new(stream),
        }
    }

    /// A new keep-alive connection, or why none could be made (a server
    /// that stopped listening).
    pub fn try_open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(stream),
        })
    }

    /// Like `request`, but the response is read with `wire::read_strict`,
    /// and a connection that fails is an error, not a panic.
    pub fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Resp, wire::WireError> {
        let bytes = request_bytes(method, path, headers, body);
        if let Err(err) = self.stream().write_all(&bytes) {
            return Err(wire::WireError::Closed(format!("sending: {err}")));
        }
        wire::read_strict(&mut self.reader, method == "HEAD")
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        self.reader.get_mut()
    }

    /// Sends a request (adding Host and, with a body, Content-Length) and
    /// reads its response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let bytes = request_bytes(method, path, headers, body);
        self.stream().write_all(&bytes).unwrap();
        self.read_response(method == "HEAD")
    }

    /// `POST /articles` with `body` as JSON.
    pub fn create(&mut self, body: &Value) -> Resp {
        let body = serde_json::to_vec(body).unwrap();
        self.request(
            "POST",
            "/articles",
            &[("Content-Type", "application/json")],
            Some(&body),
        )
    }

    /// Reads one response strictly (see `wire::read_strict`).
    pub fn try_read_response(&mut self, head: bool) -> Result<Resp, wire::WireError> {
        wire::read_strict(&mut self.reader, head)
    }

    /// Reads one response; `head` means no body follows whatever the headers say.
    pub fn read_response(&mut self, head: bool) -> Resp {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("header line");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header with colon");
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        let length: usize = resp
            .header("Content-Length")
            .map_or(0, |v| v.parse().unwrap());
        if !head && !matches!(status, 204 | 304) {
            resp.body = vec![0; length];
            self.reader.read_exact(&mut resp.body).expect("body");
        }
        resp
    }
}

/// A request on the wire: Host added, and Content-Length with a body.
fn request_bytes(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    bytes
}

/// A new connection on which `bytes` have been sent and nothing read yet;
/// reads on it time out after 10 s.
pub fn sent(server: &TestServer, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    stream
}

/// Starts a POST whose body is only half sent, so a worker is busy reading
/// it; returns the stream and the rest of the body.
pub fn half_sent_post(server: &TestServer) -> (TcpStream, Vec<u8>) {
    let body =
        serde_json::to_vec(&serde_json::json!({"title": "in flight", "content": "x".repeat(3000)}))
            .unwrap();
    let mut head = format!(
        "POST /articles HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    head.extend_from_slice(&body[..1500]);
    (sent(server, &head), body[1500..].to_vec())
}

/// The status of the first response in `bytes`, if any.
pub fn status_of(bytes: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

pub fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
