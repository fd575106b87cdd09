//! One request's exchange, from the request id to the access line: the
//! one function that wraps every request (dispatch under `catch_unwind`,
//! error rendering, CORS), and the writing of the response.

use std::cell::RefCell;
use std::io::{self, Cursor, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use tiny_http_fork::{Header, Method, Request, Response};

use super::connection::Reuse;
use crate::http::error::ApiError;
use crate::http::handlers::events::{self, EventStream};
use crate::http::request::{sane_request_id, Req};
use crate::http::response::{reason_phrase, Reply};
use crate::http::{cors, routes, App};
use crate::util::time::{http_date, now_millis};
use crate::util::{ids, json};
use crate::{logging, metrics};

/// Most threads at once that discard the rest of an unread body after a
/// reply that closes the connection (408, 413, 503 at shutdown) was sent,
/// so that workers never do it.
const MAX_DISCARDERS: usize = 64;

/// Serves one request: request id, dispatch under `catch_unwind`, error
/// rendering, response, access log. Everything cross-cutting happens here.
/// Returns whether the connection may carry another request.
pub(super) fn handle(app: &App, mut request: Request) -> Reuse {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get("X-Request-Id")
        .map(|value| value.as_str())
        .filter(|id| sane_request_id(id))
        .map_or_else(ids::request_id, str::to_owned);

    app.metrics.start();
    let mut req = Req::new(&mut request, request_id, app.config.max_body);
    let outcome = catch_unwind(AssertUnwindSafe(|| routes::dispatch(app, &mut req)));
    let reply = match outcome {
        Ok(Ok(reply)) => reply,
        Ok(Err(err)) => {
            if err.status() >= 500 {
                log::error!("request {} failed: {err}", req.request_id);
            }
            err.into_reply(&req.request_id)
        }
        Err(panic) => {
            let message = panic_message(panic.as_ref());
            log::error!("request {} panicked: {message}", req.request_id);
            ApiError::Internal(message).into_reply(&req.request_id)
        }
    };
    let reply = match &app.config.cors {
        Some(policy) => {
            let preflight = req.method == Method::Options
                && req.header("Access-Control-Request-Method").is_some();
            cors::decorate(policy, req.header("Origin"), preflight, reply)
        }
        None => reply,
    };
    Served::of(req, started).respond(app, request, reply)
}

/// Whether requests with `method` change articles (and so usually write).
pub(super) fn writes(method: &Method) -> bool {
    matches!(
        method,
        Method::Post | Method::Put | Method::Patch | Method::Delete
    )
}

/// What is left of a request once its reply is made: what the response,
/// the metrics and the access line need.
struct Served {
    route: &'static str,
    body_settled: bool,
    method: Method,
    path: String,
    request_id: String,
    started: Instant,
}

impl Served {
    /// Takes what it needs from `req`, which ends the request's borrow.
    fn of(mut req: Req<'_>, started: Instant) -> Served {
        Served {
            route: req.route.unwrap_or(metrics::UNMATCHED),
            body_settled: req.body_settled(),
            method: req.method.clone(),
            path: std::mem::take(&mut req.path),
            request_id: std::mem::take(&mut req.request_id),
            started,
        }
    }

    /// Sends `reply` with its request id, counts and logs it. Returns
    /// whether the connection may carry another request.
    fn respond(self, app: &App, request: Request, mut reply: Reply) -> Reuse {
        if let Some(stream) = reply.stream.take() {
            return self.follow(app, request, reply, stream);
        }
        let mut reply = reply.header("X-Request-Id", self.request_id.clone());
        // A connection ends after any response sent once a shutdown has
        // begun: the client hears it rather than finding the connection gone.
        if app.shutting_down() && !closes_connection(&reply) {
            reply = reply.header("Connection", "close");
        }
        let status = reply.status;
        let bytes = if self.method == Method::Head {
            0
        } else {
            reply.body.len()
        };
        // Counted before the write, so a scrape includes every response a
        // client has already received.
        app.metrics.finish(
            self.method.as_str(),
            self.route,
            status,
            self.started.elapsed(),
        );
        let reuse = match send(request, reply, self.body_settled) {
            Ok(reuse) => reuse,
            Err(err) => {
                log::debug!("response to {} not delivered: {err}", self.request_id);
                Reuse::Close
            }
        };
        logging::Access {
            method: self.method.as_str(),
            path: &self.path,
            status,
            bytes,
            elapsed: self.started.elapsed(),
            request_id: &self.request_id,
        }
        .log();
        reuse
    }
}

impl Served {
    /// Sends a change-feed stream: the head without `Content-Length`, then
    /// the events as they commit until the client goes or the server stops;
    /// the connection ends with it. Counted and logged when it ends.
    fn follow(self, app: &App, request: Request, reply: Reply, stream: EventStream) -> Reuse {
        let reply = reply
            .header("X-Request-Id", self.request_id.clone())
            .header("Connection", "close");
        let head_only = self.method == Method::Head;
        let mut writer = request.into_writer();
        let head = wire_head(&reply, None, 0);
        let bytes = match writer.write_all(&head).and_then(|()| writer.flush()) {
            Ok(()) if !head_only => events::follow(app, stream, &mut writer),
            Ok(()) => 0,
            Err(err) => {
                log::debug!("stream {} not started: {err}", self.request_id);
                0
            }
        };
        app.metrics.finish(
            self.method.as_str(),
            self.route,
            reply.status,
            self.started.elapsed(),
        );
        logging::Access {
            method: self.method.as_str(),
            path: &self.path,
            status: reply.status,
            bytes: bytes as usize,
            elapsed: self.started.elapsed(),
            request_id: &self.request_id,
        }
        .log();
        Reuse::Close
    }
}

/// Whether a reply says `Connection: close`.
fn closes_connection(reply: &Reply) -> bool {
    reply
        .header_value("Connection")
        .is_some_and(|value| value.eq_ignore_ascii_case("close"))
}

/// Answers a request that arrived too late to be served, during a shutdown:
/// 503 with `Retry-After`, and the connection closes. Counted and logged
/// like any other.
pub(super) fn refuse(app: &App, mut request: Request) {
    let started = Instant::now();
    let request_id = ids::request_id();
    let reply = ApiError::Unavailable("The server is shutting down")
        .into_reply(&request_id)
        .header("Connection", "close");
    // The body is never read here: an unread one is left to tiny_http's
    // writer to discard, on a discard thread.
    let req = Req::new(&mut request, request_id, app.config.max_body);
    let served = Served::of(req, started);
    app.metrics.start();
    served.respond(app, request, reply);
}

/// Answers a request the HTTP layer refused before it was parsed whole (a
/// malformed or oversized head, another HTTP version, one connection over
/// `--max-connections`): problem+json with `Connection: close`, counted
/// and logged like any other response. Its method and path are not known:
/// the access line shows `-` for both.
pub(super) fn answer_refusal(app: &App, error: ApiError, mut writer: Box<dyn Write + Send>) {
    let started = Instant::now();
    let request_id = ids::request_id();
    app.metrics.start();
    let mut reply = error
        .into_reply(&request_id)
        .header("X-Request-Id", request_id.clone());
    if !closes_connection(&reply) {
        reply = reply.header("Connection", "close");
    }
    let status = reply.status;
    app.metrics
        .finish("other", metrics::UNMATCHED, status, started.elapsed());
    let written = writer
        .write_all(&wire_bytes(&reply, false))
        .and_then(|()| writer.flush());
    if let Err(err) = written {
        log::debug!("refusal {request_id} not delivered: {err}");
    }
    logging::Access {
        method: "-",
        path: "-",
        status,
        bytes: reply.body.len(),
        elapsed: started.elapsed(),
        request_id: &request_id,
    }
    .log();
}

/// Writes a reply; returns whether the connection may carry another
/// request. Most replies go out through `write_response`. A request whose
/// body was not read goes through tiny_http's own writer, which answers
/// first and then discards the rest of the body, however long the client
/// takes to send it; for a reply that closes the connection (a 408, a 413, a
/// refusal at shutdown) that happens on a discard thread, not a worker.
fn send(request: Request, reply: Reply, body_settled: bool) -> io::Result<Reuse> {
    let reuse = if closes_connection(&reply) {
        Reuse::Close
    } else {
        Reuse::KeepAlive
    };
    if body_settled {
        return write_response(request, reply).map(|()| reuse);
    }
    if reuse == Reuse::Close {
        static DISCARDERS: AtomicUsize = AtomicUsize::new(0);
        if DISCARDERS.fetch_add(1, Ordering::AcqRel) < MAX_DISCARDERS {
            // The request moves to the thread only once it runs: a thread
            // that cannot start must not take it along (a dropped request is
            // a 500 from tiny_http).
            let (handover, taken) = mpsc::channel::<(Request, Reply)>();
            let spawned = thread::Builder::new()
                .name("discard".into())
                .spawn(move || {
                    if let Ok((request, reply)) = taken.recv() {
                        let _ = respond_then_discard(request, reply);
                    }
                    DISCARDERS.fetch_sub(1, Ordering::AcqRel);
                });
            if spawned.is_ok() {
                let _ = handover.send((request, reply));
                return Ok(reuse);
            }
        }
        DISCARDERS.fetch_sub(1, Ordering::AcqRel);
    }
    respond_then_discard(request, reply).map(|()| reuse)
}

/// Writes the whole response with one write: status line, `Date`,
/// `Content-Length` (never on 204 and 304, where RFC 9110 forbids or
/// misreads it), our headers, and the body (not for HEAD). Faster than
/// tiny_http's writer, which allocates and re-validates every header and
/// writes piece by piece. A header value with a byte outside printable ASCII
/// is dropped, so no request data can split a header.
fn write_response(request: Request, reply: Reply) -> io::Result<()> {
    let head_only = *request.method() == Method::Head;
    let mut writer = request.into_writer();
    writer.write_all(&wire_bytes(&reply, head_only))?;
    writer.flush()
}

/// A reply as it goes on the wire: status line, `Date`, `Content-Length`
/// (never on 204 and 304, where RFC 9110 forbids or misreads it), our
/// headers, and the body (not for HEAD).
fn wire_bytes(reply: &Reply, head_only: bool) -> Vec<u8> {
    let bodyless = matches!(reply.status, 204 | 304);
    let send_body = !bodyless && !head_only;
    let extra = if send_body { reply.body.len() } else { 0 };
    let mut out = wire_head(reply, (!bodyless).then_some(reply.body.len()), extra);
    if send_body {
        out.extend_from_slice(&reply.body);
    }
    out
}

/// A reply's status line and headers, with `Content-Length` if `length`
/// is given, in a buffer with room for `extra` bytes more.
fn wire_head(reply: &Reply, length: Option<usize>, extra: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + extra);
    out.extend_from_slice(b"HTTP/1.1 ");
    json::push_int(&mut out, i64::from(reply.status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(reply.status).as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    with_http_date(|date| out.extend_from_slice(date));
    if let Some(length) = length {
        out.extend_from_slice(b"\r\nContent-Length: ");
        json::push_int(&mut out, length as i64);
    }
    for (name, value) in &reply.headers {
        if value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
        } else {
            log::error!("invalid value for response header {name} dropped");
        }
    }
    out.extend_from_slice(b"\r\n\r\n");
    out
}

/// The current HTTP date, formatted at most once a second per thread.
fn with_http_date(use_date: impl FnOnce(&[u8])) {
    thread_local! {
        static CACHE: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let now = now_millis();
    CACHE.with_borrow_mut(|(second, text)| {
        if *second != now / 1000 {
            *second = now / 1000;
            *text = http_date(now);
        }
        use_date(text.as_bytes());
    });
}

/// tiny_http's writer: the response first, then the unread body is
/// discarded as the request is dropped.
fn respond_then_discard(request: Request, reply: Reply) -> io::Result<()> {
    let length = reply.body.len();
    let mut response = Response::empty(reply.status)
        .with_data(Cursor::new(reply.body), Some(length))
        // Never chunk: Content-Length on every response, whatever its size.
        .with_chunked_threshold(usize::MAX);
    for (name, value) in &reply.headers {
        match Header::from_str(name, value) {
            Ok(header) => response.add_header(header),
            Err(_) => log::error!("invalid value for response header {name} dropped"),
        }
    }
    request.respond(response)
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_recovered() {
        let payload = catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(panic_message(payload.as_ref()), "boom 1");
    }
}
