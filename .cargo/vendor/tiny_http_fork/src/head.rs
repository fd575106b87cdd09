//! Patch (articles): a strict reader of request heads (RFC 9112 section 2
//! to 5, RFC 9110 section 5), in place of the fork's lenient one.
//!
//! - Every byte of a head is bounded: the request line (`Limits::request_line`,
//!   414 past it), the whole head (`Limits::head_bytes`, 431), the header
//!   lines (`Limits::header_lines`, 431), and the time from its first byte
//!   (`Limits::head_time`, 408).
//! - One framing only: `Content-Length` on several lines or in a list must
//!   name one number (it is then kept once), never together with
//!   `Transfer-Encoding`; a second `Host` is refused.
//! - Obsolete line folding, whitespace before a colon, a bare CR or LF, and
//!   anything but the exact `METHOD SP target SP HTTP/x.y` are refused (400);
//!   a major version other than 1 (`HTTP/2.0`, the HTTP/2 preface) is a 505
//!   as soon as the request line is read.
//! - Every RFC 9110 token is a header name, and a value may hold tabs and
//!   bytes 0x80 to 0xFF (obs-text): those reach the application. A value
//!   that is not UTF-8 is read as ISO-8859-1, byte for character.
//!
//! A refusal is returned, never answered here: the server answers it in its
//! own format (`ClientConnection::refusal_writer`).

use std::io::{self, BufRead, ErrorKind};
use std::time::Duration;

use crate::common::{HTTPVersion, Header, Headers, Method};

/// Limits on a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, without its CRLF: 414 past it.
    pub request_line: usize,
    /// Longest head (request line and headers, line ends included): 431.
    pub head_bytes: usize,
    /// Most header lines: 431.
    pub header_lines: usize,
    /// Longest time from a head's first byte to its end: 408.
    pub head_time: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            request_line: 8 * 1024,
            head_bytes: 32 * 1024,
            header_lines: 100,
            head_time: Duration::from_secs(10),
        }
    }
}

/// A request head refused before it reached the application: the status
/// to answer with, and why, in words for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 408, 414, 417, 431 or 505.
    pub status: u16,
    /// A sentence for the client.
    pub reason: &'static str,
}

const fn refusal(status: u16, reason: &'static str) -> Refusal {
    Refusal { status, reason }
}

const BAD_LINE: Refusal = refusal(400, "The request line or a header line is malformed");
const BAD_LINE_END: Refusal = refusal(400, "Lines must end with CRLF");
const OBS_FOLD: Refusal = refusal(400, "Obsolete line folding is not accepted");
const BAD_NAME: Refusal = refusal(400, "A header name is not a token (no whitespace before the colon)");
const BAD_VALUE: Refusal = refusal(400, "A header value holds a control character");
const BAD_LENGTH: Refusal = refusal(400, "Content-Length is not one decimal number");
const BOTH_FRAMINGS: Refusal = refusal(400, "Content-Length and Transfer-Encoding together are not accepted");
const TWO_HOSTS: Refusal = refusal(400, "More than one Host header");
const INCOMPLETE: Refusal = refusal(400, "The request head ended early");
const SLOW: Refusal = refusal(408, "The request head was not received in time");
const LONG_LINE: Refusal = refusal(414, "The request line is too long");
const BIG_HEAD: Refusal = refusal(431, "The request head is too large");
const MANY_HEADERS: Refusal = refusal(431, "The request has too many header lines");
const VERSION: Refusal = refusal(505, "Only HTTP/1.0 and HTTP/1.1 are served");

/// A request head as read.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) version: HTTPVersion,
    pub(crate) headers: Headers,
}

/// Why no head was read.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The connection ended, or stayed idle, before a head began.
    Closed,
    /// The head is refused.
    Refused(Refusal),
    /// The connection failed in the middle of a head: nothing to answer.
    Io(io::Error),
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Failure {
        Failure::Refused(refusal)
    }
}

/// Reads one head from `source`. `began` is called once, when the head's
/// first bytes arrive.
pub(crate) fn read_head<R: BufRead>(
    source: &mut R,
    limits: &Limits,
    began: impl FnOnce(),
) -> Result<Head, Failure> {
    let mut lines = Lines {
        source,
        used: 0,
        limits,
        began: Some(began),
        line: Vec::new(),
    };
    // A server should ignore empty lines before a request line (RFC 9112
    // section 2.2): a client may send a CRLF after a body.
    let line = loop {
        let line = lines.next(limits.request_line, LONG_LINE)?;
        if !line.is_empty() {
            break request_line(line)?;
        }
    };
    let (method, path, version) = line;
    let mut headers = Headers::new();
    let mut count = 0;
    loop {
        let line = lines.next(limits.head_bytes, BIG_HEAD)?;
        if line.is_empty() {
            break;
        }
        count += 1;
        if count > limits.header_lines {
            return Err(MANY_HEADERS.into());
        }
        headers.push(header_line(line)?);
    }
    check_framing(&mut headers)?;
    Ok(Head {
        method,
        path,
        version,
        headers,
    })
}

/// `read_head` over any buffered source: for tests and fuzzing (bytes in
/// memory are a `BufRead`). What follows the head is left unread.
pub fn parse_head<R: BufRead>(
    source: &mut R,
    limits: &Limits,
) -> Result<(Method, String, HTTPVersion, Vec<(String, String)>), Refusal> {
    match read_head(source, limits, || {}) {
        Ok(head) => Ok((
            head.method,
            head.path,
            head.version,
            head.headers
                .iter()
                .map(|h| (h.field.as_str().to_string(), h.value.as_str().to_string()))
                .collect(),
        )),
        Err(Failure::Refused(refusal)) => Err(refusal),
        Err(Failure::Closed | Failure::Io(_)) => Err(INCOMPLETE),
    }
}

/// The lines of one head, within its limits.
struct Lines<'a, R, F> {
    source: &'a mut R,
    /// Bytes of the head read so far, line ends included.
    used: usize,
    limits: &'a Limits,
    /// Called when the head's first bytes arrive.
    began: Option<F>,
    /// The line being read, kept from one line to the next.
    line: Vec<u8>,
}

impl<R: BufRead, F: FnOnce()> Lines<'_, R, F> {
    /// The next line, without its CRLF: at most `max` bytes and its CRLF,
    /// within what is left of the head. Scans the buffer for the line end;
    /// reads more only when the line goes on past it. A line that crosses
    /// a limit is refused at the first byte past it, whatever the reads:
    /// `too_long` if it crossed its own limit first, 431 if the head's.
    fn next(&mut self, max: usize, too_long: Refusal) -> Result<&[u8], Failure> {
        self.line.clear();
        loop {
            let available = fill(self.source, &mut self.began)?;
            let line_room = max + 2 - self.line.len();
            let head_room = self.limits.head_bytes - self.used;
            let room = line_room.min(head_room);
            let within = &available[..available.len().min(room)];
            let (take, complete) = match within.iter().position(|b| *b == b'\n') {
                Some(at) => (at + 1, true),
                None if available.len() > room => {
                    return Err(match line_room <= head_room {
                        true => too_long.into(),
                        false => BIG_HEAD.into(),
                    });
                }
                None => (available.len(), false),
            };
            self.line.extend_from_slice(&available[..take]);
            self.source.consume(take);
            self.used += take;
            if complete {
                break;
            }
        }
        match self.line.as_slice() {
            [line @ .., b'\r', b'\n'] if !line.contains(&b'\r') => Ok(line),
            _ => Err(BAD_LINE_END.into()),
        }
    }
}

/// What `source`'s buffer holds, reading more if it is empty; calls
/// `began` when the first bytes arrive.
fn fill<'s, R: BufRead, F: FnOnce()>(
    source: &'s mut R,
    began: &mut Option<F>,
) -> Result<&'s [u8], Failure> {
    loop {
        match source.fill_buf() {
            Ok([]) if began.is_some() => return Err(Failure::Closed),
            Ok([]) => return Err(Failure::Io(ErrorKind::UnexpectedEof.into())),
            Ok(_) => break,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) if is_timeout(&err) && began.is_some() => return Err(Failure::Closed),
            Err(err) if is_timeout(&err) => return Err(SLOW.into()),
            Err(err) => return Err(Failure::Io(err)),
        }
    }
    if let Some(began) = began.take() {
        began();
    }
    source.fill_buf().map_err(Failure::Io)
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// RFC 9110 section 5.6.2: `tchar`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// `METHOD SP request-target SP HTTP-version`, exactly.
fn request_line(line: &[u8]) -> Result<(Method, String, HTTPVersion), Refusal> {
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD_LINE);
    };
    let version = match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            HTTPVersion(major - b'0', minor - b'0')
        }
        _ => return Err(BAD_LINE),
    };
    if version.0 != 1 {
        return Err(VERSION);
    }
    if method.is_empty() || !method.iter().all(|b| is_tchar(*b)) {
        return Err(BAD_LINE);
    }
    if target.is_empty() || !target.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(BAD_LINE);
    }
    // Both are ASCII, checked above.
    let method = std::str::from_utf8(method).map_err(|_| BAD_LINE)?;
    let method = method.parse().map_err(|()| BAD_LINE)?;
    let target = String::from_utf8(target.to_vec()).map_err(|_| BAD_LINE)?;
    Ok((method, target, version))
}

/// `name: value`, the name a token, the value without control characters
/// but HTAB, its surrounding whitespace removed.
fn header_line(line: &[u8]) -> Result<Header, Refusal> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(OBS_FOLD);
    }
    let colon = line.iter().position(|b| *b == b':').ok_or(BAD_LINE)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|b| is_tchar(*b)) {
        return Err(BAD_NAME);
    }
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_space(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !is_space(b)).map_or(start, |i| i + 1);
    let value = &value[start..end];
    if value.iter().any(|b| (*b < 0x20 && *b != b'\t') || *b == 0x7f) {
        return Err(BAD_VALUE);
    }
    let value = match std::str::from_utf8(value) {
        Ok(text) => text.to_owned(),
        Err(_) => value.iter().map(|b| char::from(*b)).collect(),
    };
    Ok(Header::from_validated(name, value))
}

/// One framing per request: `Content-Length` once (several equal values,
/// on several lines or in a list, become one), never with
/// `Transfer-Encoding`; one `Host` at most.
fn check_framing(headers: &mut Headers) -> Result<(), Refusal> {
    let mut length: Option<u64> = None;
    let mut lengths = 0;
    let mut hosts = 0;
    let mut chunked = false;
    let mut listed = false;
    for header in headers.iter() {
        if header.field.equiv("Content-Length") {
            lengths += 1;
            listed |= header.value.as_str().contains(',');
            for part in header.value.as_str().split(',') {
                let part = part.trim_matches(|c| c == ' ' || c == '\t');
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(BAD_LENGTH);
                }
                let value: u64 = part.parse().map_err(|_| BAD_LENGTH)?;
                if length.is_some_and(|seen| seen != value) {
                    return Err(BAD_LENGTH);
                }
                length = Some(value);
            }
        } else if header.field.equiv("Transfer-Encoding") {
            chunked = true;
        } else if header.field.equiv("Host") {
            hosts += 1;
        }
    }
    if hosts > 1 {
        return Err(TWO_HOSTS);
    }
    match (length, chunked) {
        (Some(_), true) => Err(BOTH_FRAMINGS),
        (Some(length), false) if lengths > 1 || listed => {
            headers.retain(|h| !h.field.equiv("Content-Length"));
            headers.push(Header::from_validated(b"Content-Length", length.to_string()));
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(head: &str) -> Result<Vec<(String, String)>, u16> {
        parse_head(&mut head.as_bytes(), &Limits::default())
            .map(|(_, _, _, headers)| headers)
            .map_err(|r| r.status)
    }

    #[test]
    fn reads_a_plain_head() {
        let (method, path, version, headers) =
            parse_head(&mut &b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nX!Y: 1\r\n\r\n"[..], &Limits::default()).unwrap();
        assert_eq!(method, Method::Get);
        assert_eq!(path, "/a?b=c");
        assert_eq!(version, HTTPVersion(1, 1));
        assert_eq!(headers, [("Host".into(), "x".into()), ("X!Y".into(), "1".into())]);
    }

    #[test]
    fn refuses_what_the_contract_names() {
        assert_eq!(parse("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"), Err(400));
        assert_eq!(parse("GET / HTTP/1.1\r\nX : a\r\n\r\n"), Err(400));
        assert_eq!(parse("GET / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n"), Err(400));
        assert_eq!(parse("GET / HTTP/1.1\r\nContent-Length: 2, 40\r\n\r\n"), Err(400));
        assert_eq!(parse("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Err(505));
        assert_eq!(parse(&format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000))), Err(414));
        assert_eq!(parse(&format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(40_000))), Err(431));
        assert_eq!(parse(&format!("GET / HTTP/1.1\r\n{}\r\n", "X: 1\r\n".repeat(101))), Err(431));
    }

    #[test]
    fn accepts_tabs_tokens_and_obs_text() {
        let headers = parse("GET / HTTP/1.1\r\nX-A: a\tb\r\n#$%&'*+.^`|~: 1\r\nX-B: caf\u{e9}\r\n\r\n").unwrap();
        assert_eq!(headers[0].1, "a\tb");
        assert_eq!(headers[1].0, "#$%&'*+.^`|~");
        assert_eq!(headers[2].1, "caf\u{e9}");
        let latin1 = parse_head(&mut &b"GET / HTTP/1.1\r\nX: caf\xe9\r\n\r\n"[..], &Limits::default()).unwrap();
        assert_eq!(latin1.3[0].1, "caf\u{e9}");
    }

    #[test]
    fn equal_lengths_become_one() {
        let headers = parse("POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\n").unwrap();
        assert_eq!(headers, [("Content-Length".into(), "2".into())]);
    }
}
