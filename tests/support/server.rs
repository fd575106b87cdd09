//! A server under test, of either kind: in this process (`in_process`, the
//! `it` binary's) or a process of its own (`spawned`, the `process`
//! binary's). Both listen on 127.0.0.1, port 0, with `--workers 4` and a
//! fresh database unless told otherwise; this file is what a test can do
//! with either over HTTP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::database::{postgres, TempDir};
use super::{Conn, Resp, TIMEOUT};

/// How a kind of server starts, and how it makes users.
pub trait Kind: Sized {
    /// Starts a server in `dir` with `server_args(db, args)` and the
    /// environment variables `env`.
    fn launch(dir: TempDir, db: &str, args: &[&str], env: &[(&str, &str)]) -> TestServer<Self>;

    /// Creates user `name` on the database `db`, as `articles user add`
    /// does; returns its token.
    fn add_user(db: &str, name: &str) -> String;
}

/// The command line of every test server: `serve` on port 0 of 127.0.0.1
/// with four workers and `--db db`, then `args` (a later flag wins).
pub fn server_args(db: &str, args: &[&str]) -> Vec<String> {
    [
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--workers",
        "4",
        "--db",
        db,
    ]
    .iter()
    .chain(args)
    .map(|arg| arg.to_string())
    .collect()
}

/// A running server.
pub struct TestServer<K> {
    /// The running server; declared first, so that it stops before its
    /// directory (and database) go. The `it` binary only drops it, which
    /// stops the server.
    #[allow(dead_code)]
    pub(crate) kind: K,
    pub addr: SocketAddr,
    pub dir: TempDir,
    /// Its `--db`.
    pub(crate) db: String,
}

impl<K: Kind> TestServer<K> {
    /// A server on a fresh database.
    pub fn start() -> TestServer<K> {
        TestServer::start_with(&[])
    }

    /// A server on a fresh database (see `TempDir::database`), with extra
    /// arguments.
    pub fn start_with(args: &[&str]) -> TestServer<K> {
        let dir = TempDir::new();
        let db = dir.database();
        K::launch(dir, &db, args, &[])
    }

    /// A server on the database `db` (a `--db` value), with extra
    /// arguments, in a temporary directory of its own. The caller keeps
    /// `db` alive.
    pub fn start_on(db: &str, args: &[&str]) -> TestServer<K> {
        K::launch(TempDir::new(), db, args, &[])
    }

    /// Another server on this server's database, with `args`: for
    /// PostgreSQL, two servers sharing one database. The database lives
    /// until both servers are dropped.
    pub fn another(&self, args: &[&str]) -> TestServer<K> {
        K::launch(self.dir.sharing_database(), &self.db, args, &[])
    }

    /// A server in `dir` on `db`, with extra arguments and the
    /// environment variables `env`.
    pub fn launch(dir: TempDir, db: &str, args: &[&str], env: &[(&str, &str)]) -> TestServer<K> {
        K::launch(dir, db, args, env)
    }

    /// Creates a user on the server's database and returns its token.
    pub fn add_user(&self, name: &str) -> String {
        K::add_user(&self.db, name)
    }
}

impl<K> TestServer<K> {
    /// The `--db` value of this server. Give it to `articles user add
    /// --db`, `articles migrate --db` or another server.
    pub fn db(&self) -> String {
        self.db.clone()
    }

    /// The database file of a server on SQLite. Only for tests that read or
    /// damage SQLite's files, which PostgreSQL runs do not run.
    pub fn db_path(&self) -> PathBuf {
        assert!(
            !postgres() && self.db != ":memory:",
            "db_path() is a SQLite file: {}",
            self.db
        );
        PathBuf::from(&self.db)
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

    /// Creates an article and returns it.
    pub fn create(&self, title: &str, content: &str, tags: &[&str]) -> Value {
        let resp =
            self.post(&serde_json::json!({"title": title, "content": content, "tags": tags}));
        assert_eq!(resp.status, 201, "{}", resp.text());
        resp.json()
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

    /// How long a new client waits, at worst of `samples` tries, for
    /// `GET /articles` on a new connection.
    pub fn worst_fresh_client_wait(&self, samples: usize) -> Duration {
        let fresh_client_wait = || {
            let started = Instant::now();
            let mut conn = self.connect();
            let resp = conn.try_request("GET", "/articles", &[], None);
            assert_eq!(resp.map(|r| r.status), Ok(200));
            started.elapsed()
        };
        (0..samples).map(|_| fresh_client_wait()).max().unwrap()
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

    /// A new connection on which `bytes` have been sent and nothing read
    /// yet; reads on it time out after 10 s.
    pub fn sent(&self, bytes: &[u8]) -> TcpStream {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.write_all(bytes).unwrap();
        stream
    }

    /// Starts a POST whose body is only half sent, so a worker is busy
    /// reading it; returns the stream and the rest of the body.
    pub fn half_sent_post(&self) -> (TcpStream, Vec<u8>) {
        let body = serde_json::to_vec(
            &serde_json::json!({"title": "in flight", "content": "x".repeat(3000)}),
        )
        .unwrap();
        let mut head = format!(
            "POST /articles HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        head.extend_from_slice(&body[..1500]);
        (self.sent(&head), body[1500..].to_vec())
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
}
