//! `Req`, what a handler sees of a request: method, path, query, headers,
//! and a bounded, validated JSON body.

use std::borrow::Cow;
use std::io::{ErrorKind, Read};

use serde_json::{Map, Value};
use tiny_http_fork::{Method, Request};

use crate::http::error::ApiError;
use crate::model::User;
use crate::util::urlencoded;

/// Longest client-supplied `X-Request-Id` that is echoed back.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// A request on its way through a handler.
pub struct Req<'a> {
    inner: &'a mut Request,
    /// The method; `HEAD` is served by the `GET` handler.
    pub method: Method,
    /// The path, without the query string.
    pub path: String,
    /// The decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// This request's id, echoed in `X-Request-Id` and the access log.
    pub request_id: String,
    /// The user behind the bearer token, once authenticated.
    pub user: Option<User>,
    /// The route pattern the path matched, once routed (for metrics).
    pub route: Option<&'static str>,
    /// The path's `{id}`, once routed to a pattern that has one.
    pub id: i64,
    max_body: u64,
    body_read: bool,
}

impl<'a> Req<'a> {
    /// Wraps a tiny_http request. `max_body` is the body limit in bytes.
    pub fn new(inner: &'a mut Request, request_id: String, max_body: u64) -> Req<'a> {
        let method = inner.method().clone();
        let (path, query) = split_url(inner.url());
        let (path, query) = (path.to_owned(), urlencoded::parse(query));
        Req {
            inner,
            method,
            path,
            query,
            request_id,
            user: None,
            route: None,
            id: 0,
            max_body,
            body_read: false,
        }
    }

    /// Whether this is an HTTP/1.1 request without a `Host` header, which
    /// RFC 9112 (section 3.2) says to answer 400. HTTP/1.0 did not need one.
    pub fn missing_host(&self) -> bool {
        *self.inner.http_version() >= (1, 1) && self.header("Host").is_none()
    }

    /// The first value of a request header, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.headers().get(name).map(|v| v.as_str())
    }

    /// A list-valued header, whether sent on one line or on several: the
    /// values joined with ", " (RFC 9110, section 5.3).
    pub fn list_header(&self, name: &str) -> Option<Cow<'_, str>> {
        let mut values = self
            .inner
            .headers()
            .iter()
            .filter(|header| header.field.equiv(name))
            .map(|header| header.value.as_str());
        let first = values.next()?;
        match values.next() {
            None => Some(Cow::Borrowed(first)),
            Some(second) => {
                let mut joined = format!("{first}, {second}");
                for value in values {
                    joined.push_str(", ");
                    joined.push_str(value);
                }
                Some(Cow::Owned(joined))
            }
        }
    }

    /// Reads the body as a JSON object, enforcing, in order: a declared
    /// length or chunked encoding (411), the size limit before reading a byte
    /// (413, and again while reading a chunked body), `application/json`
    /// (415), UTF-8 and JSON syntax (400) and an object at the top (400).
    pub fn json_object(&mut self) -> Result<Map<String, Value>, ApiError> {
        let declared = self.declared_length()?;
        if declared.is_some_and(|length| length > self.max_body) {
            return Err(ApiError::TooLarge(self.max_body));
        }
        if !self.header("Content-Type").is_some_and(is_json) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let body = self.read_body(declared.unwrap_or(0))?;
        parse_object(&body)
    }

    /// Whether no part of the request body is left unread: there was none,
    /// tiny_http buffered it already (up to 1 KiB, without `Expect`), or it
    /// was read to the end.
    pub fn body_settled(&self) -> bool {
        if self.body_read {
            return true;
        }
        if self.header("Transfer-Encoding").is_some() || self.header("Expect").is_some() {
            return false;
        }
        // An unparsable length counts as no body for tiny_http too.
        self.header("Content-Length")
            .and_then(|length| length.trim().parse::<u64>().ok())
            .is_none_or(|length| length <= 1024)
    }

    /// The declared body length: `Some(n)` from Content-Length, `None` for
    /// chunked encoding (tiny_http rejects a request with both).
    fn declared_length(&self) -> Result<Option<u64>, ApiError> {
        if let Some(length) = self.header("Content-Length") {
            return crate::util::decimal(length)
                .map(Some)
                .ok_or_else(|| ApiError::BadRequest("Content-Length is not a number".into()));
        }
        match self.header("Transfer-Encoding") {
            Some(_) => Ok(None),
            None => Err(ApiError::LengthRequired),
        }
    }

    /// Reads at most `max_body` bytes; one more means the body is too large.
    fn read_body(&mut self, expected: u64) -> Result<Vec<u8>, ApiError> {
        let limit = self.max_body;
        let mut body = Vec::with_capacity(expected.min(limit) as usize);
        let reader = self.inner.as_reader();
        match reader.take(limit + 1).read_to_end(&mut body) {
            Ok(_) if body.len() as u64 > limit => Err(ApiError::TooLarge(limit)),
            Ok(_) => {
                self.body_read = true;
                Ok(body)
            }
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(ApiError::Timeout)
            }
            Err(err) => Err(ApiError::BadRequest(format!(
                "The request body could not be read: {}",
                body_error_reason(&err)
            ))),
        }
    }
}

/// A client-facing reason for a failed body read (chunked syntax, early end).
fn body_error_reason(err: &std::io::Error) -> &'static str {
    match err.kind() {
        ErrorKind::InvalidInput | ErrorKind::InvalidData => "malformed chunked encoding",
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionAborted => "it ended early",
        _ => "the connection failed",
    }
}

/// Parses a body as a JSON object.
fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("The request body is not valid UTF-8".into()))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::BadRequest(
            "The request body must be a JSON object".into(),
        )),
        Err(err) => Err(ApiError::BadRequest(format!(
            "The request body is not valid JSON: {err}"
        ))),
    }
}

/// `application/json`, any case, parameters (`; charset=utf-8`) allowed.
fn is_json(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    media_type.eq_ignore_ascii_case("application/json")
}

/// Splits a request target into path and query string.
pub fn split_url(url: &str) -> (&str, &str) {
    url.split_once('?').unwrap_or((url, ""))
}

/// The client's `X-Request-Id` if it is sane (1 to 128 characters of
/// `[A-Za-z0-9._-]`), so it can be echoed and logged safely.
pub fn sane_request_id(value: &str) -> bool {
    (1..=MAX_REQUEST_ID_CHARS).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_json_media_type_with_parameters() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/jsonx"));
        assert!(!is_json("application/problem+json"));
    }

    #[test]
    fn parses_only_utf8_json_objects() {
        assert!(parse_object(br#"{"a":1}"#).is_ok());
        for bad in [
            &b"[1]"[..],
            b"\"s\"",
            b"{",
            b"\xff\xfe",
            b"",
            b"{\"a\":\"\\ud800\"}",
        ] {
            assert!(
                matches!(parse_object(bad), Err(ApiError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rejects_deep_nesting_without_overflowing_the_stack() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            parse_object(deep.as_bytes()),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn request_ids_are_checked() {
        assert!(sane_request_id("abc-123_X.y"));
        assert!(sane_request_id(&"a".repeat(128)));
        assert!(!sane_request_id(&"a".repeat(129)));
        assert!(!sane_request_id(""));
        assert!(!sane_request_id("a b"));
        assert!(!sane_request_id("a\r\nSet-Cookie: x"));
    }

    #[test]
    fn splits_path_and_query() {
        assert_eq!(split_url("/articles?page=2"), ("/articles", "page=2"));
        assert_eq!(split_url("/articles"), ("/articles", ""));
    }
}
