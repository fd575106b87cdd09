//! Reading responses strictly: every byte of the framing is checked, and a
//! response that stops half-way is told apart from a connection that closed
//! cleanly between responses.

use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::TcpStream;

use super::Resp;

/// Why no whole response could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The connection closed or was reset before any byte of a response:
    /// a clean close, which a client may meet between requests.
    Closed(String),
    /// Part of a response arrived and then the connection ended, or the bytes
    /// were not a well-formed HTTP/1.1 response: never acceptable.
    Broken(String),
}

/// Reads one response and checks its framing: a status line
/// `HTTP/1.1 NNN Reason`, header lines `Name: value` ending in CRLF with a
/// token name and printable value, a `Content-Length` (except on 1xx, 204
/// and 304) and exactly that many body bytes; a JSON body must parse.
/// `head`: the request was a HEAD, so no body follows.
pub fn read_strict(reader: &mut BufReader<TcpStream>, head: bool) -> Result<Resp, WireError> {
    let status_line = match read_line(reader) {
        Ok(line) if line.is_empty() => return Err(WireError::Closed("EOF".into())),
        Ok(line) => line,
        Err((err, 0)) => return Err(WireError::Closed(err.to_string())),
        Err((err, n)) => return Err(broken(format!("status line cut after {n} bytes: {err}"))),
    };
    let status = parse_status_line(&status_line)?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader).map_err(|(err, _)| broken(format!("in headers: {err}")))?;
        if line == b"\r\n" {
            break;
        }
        headers.push(parse_header_line(&line)?);
    }
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    let bodyless = matches!(status, 100..=199 | 204 | 304);
    let length = match resp.header("Content-Length") {
        Some(value) => Some(
            value
                .parse::<usize>()
                .map_err(|_| broken(format!("Content-Length {value:?}")))?,
        ),
        None if bodyless => None,
        None => return Err(broken(format!("{status} without Content-Length"))),
    };
    if bodyless && length.is_some_and(|n| n > 0) && !head {
        return Err(broken(format!("{status} with a Content-Length")));
    }
    if !head && !bodyless {
        let length = length.unwrap_or(0);
        resp.body = vec![0; length];
        let mut read = 0;
        while read < length {
            match reader.read(&mut resp.body[read..]) {
                Ok(0) => return Err(broken(format!("body cut at {read} of {length} bytes"))),
                Ok(n) => read += n,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => {
                    return Err(broken(format!("body cut at {read} of {length}: {err}")));
                }
            }
        }
        let json = resp
            .header("Content-Type")
            .is_some_and(|t| t.contains("json"));
        if json && serde_json::from_slice::<serde_json::Value>(&resp.body).is_err() {
            return Err(broken(format!("body is not JSON: {}", resp.text())));
        }
    }
    Ok(resp)
}

fn broken(message: String) -> WireError {
    WireError::Broken(message)
}

/// One line up to and including LF; on error, how many bytes came first.
fn read_line(reader: &mut BufReader<TcpStream>) -> Result<Vec<u8>, (std::io::Error, usize)> {
    let mut line = Vec::new();
    loop {
        match reader.read_until(b'\n', &mut line) {
            Ok(_) if line.is_empty() || line.ends_with(b"\n") => return Ok(line),
            Ok(_) => {
                let n = line.len();
                return Err((std::io::Error::new(ErrorKind::UnexpectedEof, "EOF"), n));
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err((err, line.len())),
        }
    }
}

fn parse_status_line(line: &[u8]) -> Result<u16, WireError> {
    let text = std::str::from_utf8(line).map_err(|_| broken("status line not UTF-8".into()))?;
    let bad = || broken(format!("bad status line {text:?}"));
    let rest = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.strip_suffix("\r\n"))
        .ok_or_else(bad)?;
    let (code, reason) = rest.split_at_checked(3).ok_or_else(bad)?;
    if !reason.is_empty() && !reason.starts_with(' ') {
        return Err(bad());
    }
    code.parse()
        .ok()
        .filter(|c| (100..600).contains(c))
        .ok_or_else(bad)
}

fn parse_header_line(line: &[u8]) -> Result<(String, String), WireError> {
    let text = std::str::from_utf8(line).map_err(|_| broken("header not UTF-8".into()))?;
    let bad = || broken(format!("bad header line {text:?}"));
    let content = text.strip_suffix("\r\n").ok_or_else(bad)?;
    let (name, value) = content.split_once(':').ok_or_else(bad)?;
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(bad());
    }
    let value = value.trim_matches([' ', '\t']);
    if !value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return Err(bad());
    }
    Ok((name.to_owned(), value.to_owned()))
}
