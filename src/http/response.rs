//! What a handler answers: a status, headers and a fully buffered body.
//!
//! Every body is buffered so that `Content-Length` is always exact (the
//! contract promises it on every response but 204 and 304).

use std::borrow::Cow;

use serde::Serialize;

use crate::http::handlers::events::EventStream;

/// `Content-Type` of every JSON body.
pub const JSON: &str = "application/json; charset=utf-8";
/// `Content-Type` of every error body (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json; charset=utf-8";

/// A response before it is written to the wire.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Header names and values. Values are built by the server from
    /// validated data only; none is copied from a request unchecked. A
    /// fixed value (a content type, say) is borrowed, not allocated.
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    /// The body; empty for 204 and 304.
    pub body: Vec<u8>,
    /// A change-feed stream to follow instead of a body: the server sends
    /// the head, then runs it (`handlers::events::follow`).
    pub stream: Option<EventStream>,
}

impl Reply {
    /// A reply with a JSON body.
    /// (Articles, the bulk of the traffic, are written by `Article::to_json`.)
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Reply {
        let mut body = Vec::with_capacity(256);
        // Serializing our own types into memory cannot fail.
        serde_json::to_writer(&mut body, value).expect("serializable response");
        Reply::with_body(status, JSON, body)
    }

    /// A reply with a body of the given content type.
    pub fn with_body(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
        let mut reply = Reply::empty(status);
        reply.body = body;
        reply.header("Content-Type", content_type)
    }

    /// A reply without a body, such as 204.
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            // Content-Type, ETag, X-Request-Id and one more without growing.
            headers: Vec::with_capacity(4),
            body: Vec::new(),
            stream: None,
        }
    }

    /// A 200 whose body is a change-feed stream.
    pub(crate) fn stream(stream: EventStream) -> Reply {
        let mut reply = Reply::empty(200);
        reply.stream = Some(stream);
        reply
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// The value of a header this reply carries, if any.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

/// The reason phrase of a status code we send.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}
