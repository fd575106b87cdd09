//! What both test binaries share: the HTTP client side (`Conn`, `Resp`), the
//! database under test (`database`), the server under test of either kind
//! (`server`), and the tools of the reliability tests.
//!
//! Each binary includes this module, and the one kind of server it runs:
//! `in_process.rs` (the `it` binary) or `spawned.rs` (the `process`
//! binary).

pub mod database;
pub mod ledger;
pub mod load;
pub mod receiver;
pub mod rng;
pub mod server;
pub mod sse;
pub mod wire;
pub mod write_lock;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// How long a test waits for any one response.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The `Authorization` value for a bearer `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
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

    /// Asserts a 401 problem+json with a `WWW-Authenticate: Bearer`
    /// challenge.
    pub fn assert_401(&self) {
        self.problem(401);
        assert!(self
            .header("WWW-Authenticate")
            .unwrap()
            .starts_with("Bearer"));
    }

    /// The fields named in a 422's `errors`.
    #[allow(dead_code)] // only the `it` binary's tests use it
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

/// One keep-alive connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// A new keep-alive connection.
    pub fn open(addr: SocketAddr) -> Conn {
        Conn::try_open(addr).unwrap()
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

/// The status of the first response in `bytes`, if any.
pub fn status_of(bytes: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}
