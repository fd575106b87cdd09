//! One webhook request: HTTP/1.1 `POST` over a plain `TcpStream`, with one
//! deadline from connect to the last byte of the answer.
//!
//! Written here rather than taken from an HTTP client crate because the job
//! is this narrow: one request per connection (`Connection: close`), no
//! redirects, no TLS, no body to keep. ureq 3 without default features
//! costs 7 crates and about 370 KB of binary for the same thing.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::url::WebhookUrl;

/// Largest response head read; a longer one is a failed attempt.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most response body bytes read (and thrown away) before the connection is
/// closed: enough for any acknowledgement, little for a receiver to waste.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The final status code (informational 1xx answers are skipped).
    pub status: u16,
    /// Its `Retry-After` header, as sent.
    pub retry_after: Option<String>,
}

/// Sends `body` to `url` with `headers` and reads the answer, all within
/// `limit`. The error is a short reason for the log: refused, timed out,
/// reset, not HTTP.
pub fn post(
    url: &WebhookUrl,
    headers: &[(&str, String)],
    body: &[u8],
    limit: Duration,
) -> Result<Answer, String> {
    let deadline = Instant::now() + limit;
    let mut stream = connect(url, deadline).map_err(|err| describe(&err))?;
    let _ = stream.set_nodelay(true);
    exchange(&mut stream, url, headers, body, deadline).map_err(|err| describe(&err))
}

fn exchange(
    stream: &mut TcpStream,
    url: &WebhookUrl,
    headers: &[(&str, String)],
    body: &[u8],
    deadline: Instant,
) -> io::Result<Answer> {
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: articles/{}\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        url.target(),
        url.authority(),
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    stream.set_write_timeout(Some(remaining(deadline)?))?;
    stream.write_all(&bytes)?;

    let mut buffer = Vec::with_capacity(1024);
    loop {
        let (head_len, answer, length) = read_head(stream, &mut buffer, deadline)?;
        buffer.drain(..head_len);
        match answer.status {
            100..=199 => continue, // 100 Continue and friends: the real answer follows
            // No body by definition, whatever the headers say; waiting for
            // one would wait for a close that a keep-alive receiver never sends.
            204 | 304 => {}
            _ => drain_body(stream, buffer, length, deadline)?,
        }
        return Ok(answer);
    }
}

/// Connects to the first address of the host that answers, within the
/// deadline. (Name resolution itself is the system resolver's, with its own
/// time-outs.)
fn connect(url: &WebhookUrl, deadline: Instant) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
    for addr in url.host_port().to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, remaining(deadline)?) {
            Ok(stream) => return Ok(stream),
            Err(err) => last = err,
        }
    }
    Err(last)
}

/// Reads until a complete head is in `buffer`; returns its length, the
/// answer and its `Content-Length`, if any.
fn read_head(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    deadline: Instant,
) -> io::Result<(usize, Answer, Option<usize>)> {
    loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..end]).map_err(|_| bad("head not text"))?;
            let (answer, length) = parse_head(head)?;
            return Ok((end + 4, answer, length));
        }
        if buffer.len() > MAX_HEAD_BYTES {
            return Err(bad("response head too long"));
        }
        if read_some(stream, buffer, deadline)? == 0 {
            return Err(bad("connection closed before a complete answer"));
        }
    }
}

/// The status and the headers that matter from a response head.
fn parse_head(head: &str) -> io::Result<(Answer, Option<usize>)> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .filter(|code| code.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| bad("not an HTTP/1.x status line"))?;
    let mut answer = Answer {
        status,
        retry_after: None,
    };
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("retry-after") {
            answer.retry_after = Some(value.to_owned());
        }
    }
    Ok((answer, length))
}

/// Reads the rest of the body (or up to `MAX_BODY_BYTES` of it): framed by
/// `Content-Length`, or else by the close we asked for.
fn drain_body(
    stream: &mut TcpStream,
    mut buffer: Vec<u8>,
    length: Option<usize>,
    deadline: Instant,
) -> io::Result<()> {
    let wanted = length.unwrap_or(usize::MAX).min(MAX_BODY_BYTES);
    while buffer.len() < wanted {
        // A chunked body whose last chunk has come is complete even if the
        // receiver keeps the connection open despite `Connection: close`.
        if length.is_none() && buffer.ends_with(b"0\r\n\r\n") {
            break;
        }
        if read_some(stream, &mut buffer, deadline)? == 0 {
            break;
        }
    }
    Ok(())
}

fn read_some(stream: &mut TcpStream, buffer: &mut Vec<u8>, deadline: Instant) -> io::Result<usize> {
    stream.set_read_timeout(Some(remaining(deadline)?))?;
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk)?;
    buffer.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Time left before the deadline; an error once it has passed.
fn remaining(deadline: Instant) -> io::Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
        .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "timed out"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn bad(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_owned())
}

/// A short reason for the log.
fn describe(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".to_owned(),
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        _ => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_and_retry_after() {
        let (answer, length) =
            parse_head("HTTP/1.1 503 Busy\r\nretry-after: 7\r\nContent-Length: 12").unwrap();
        assert_eq!(answer.status, 503);
        assert_eq!(answer.retry_after.as_deref(), Some("7"));
        assert_eq!(length, Some(12));
        assert_eq!(parse_head("HTTP/1.0 204").unwrap().0.status, 204);
    }

    /// A one-connection server on loopback that reads the request, writes
    /// `answer` and then holds the connection open for a while.
    fn answering(answer: &'static [u8]) -> WebhookUrl {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(answer);
            std::thread::sleep(Duration::from_secs(3));
        });
        WebhookUrl::parse(&url).unwrap()
    }

    fn send(url: &WebhookUrl, limit: Duration) -> Result<Answer, String> {
        post(url, &[("webhook-id", "msg_1".into())], b"{}", limit)
    }

    #[test]
    fn an_answer_is_complete_without_waiting_for_the_close() {
        let started = Instant::now();
        let framed = answering(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        );
        assert_eq!(send(&framed, Duration::from_secs(2)).unwrap().status, 200);
        let empty = answering(b"HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(send(&empty, Duration::from_secs(2)).unwrap().status, 204);
        let chunked =
            answering(b"HTTP/1.1 202 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
        assert_eq!(send(&chunked, Duration::from_secs(2)).unwrap().status, 202);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn one_deadline_covers_the_whole_attempt() {
        let silent = answering(b"");
        let started = Instant::now();
        assert_eq!(
            send(&silent, Duration::from_millis(300)),
            Err("timed out".into())
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        // A body that never ends is not a finished attempt either.
        let endless = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
        assert_eq!(
            send(&endless, Duration::from_millis(300)),
            Err("timed out".into())
        );
    }

    #[test]
    fn a_closed_port_is_refused() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = WebhookUrl::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        assert_eq!(
            send(&url, Duration::from_secs(2)),
            Err("connection refused".into())
        );
    }

    #[test]
    fn refuses_what_is_not_http() {
        for bad in [
            "",
            "HTTP/2 200",
            "HTTP/1.1 2x0 OK",
            "SSH-2.0-OpenSSH",
            "HTTP/1.1 20",
        ] {
            assert!(parse_head(bad).is_err(), "{bad}");
        }
    }
}
